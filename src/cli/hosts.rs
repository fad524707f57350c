//! `pushgate hosts ...`: lab housekeeping, against the store and the hosts directly.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

use pushgate::hosts::Inventory;
use pushgate::store::Store;

#[derive(Subcommand)]
pub enum HostsCommand {
    /// Validate the hosts file and print the lab.
    Check {
        /// The service configuration [default: ./pushgate.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove what crashed runs left on every host (directories, domains, disks, configs);
    /// runs that still hold a live lease are left alone. Idempotent.
    Reap {
        /// Also what runs still holding a lease left, and forget those leases: for when no
        /// pushgate is running (after a `kill -9`, before the lease would expire).
        #[arg(long)]
        all: bool,
        /// The service configuration [default: ./pushgate.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Put a host that was taken out of service back.
    Enable {
        /// The host's name, as in hosts.toml.
        host: String,
        /// The service configuration [default: ./pushgate.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

impl HostsCommand {
    fn config(&self) -> Option<&std::path::Path> {
        match self {
            HostsCommand::Check { config }
            | HostsCommand::Reap { config, .. }
            | HostsCommand::Enable { config, .. } => config.as_deref(),
        }
    }
}

pub async fn run(what: HostsCommand) -> Result<()> {
    let config = super::load_config(what.config())?;
    let inventory = Inventory::load(&config.hosts_file)?;
    match what {
        HostsCommand::Check { .. } => {
            println!(
                "{}: {} host(s)",
                inventory.file.display(),
                inventory.hosts.len()
            );
            for h in &inventory.hosts {
                let p = &h.properties;
                let mut props = Vec::new();
                if let Some(a) = &p.arch {
                    props.push(format!("arch={a}"));
                }
                if let Some(c) = &p.cpu {
                    props.push(format!("cpu={c}"));
                }
                if let Some(m) = p.memory_gb {
                    props.push(format!("memory_gb={m}"));
                }
                if !p.tags.is_empty() {
                    props.push(format!(
                        "tags={}",
                        p.tags.iter().cloned().collect::<Vec<_>>().join(",")
                    ));
                }
                println!(
                    "  {:<16} {:<5} slots={} {}",
                    h.name,
                    h.provisioner.kind(),
                    h.slots,
                    props.join(" ")
                );
            }
        }
        HostsCommand::Reap { all, .. } => {
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            let lab = pushgate::service::open_lab(&config, inventory, store.clone());
            let live: BTreeSet<i64> = if all {
                BTreeSet::new()
            } else {
                lab.live_runs().await?
            };
            let mut failed = false;
            for (host, result) in lab.reap(&live).await {
                match result {
                    Ok(n) => println!("{host}: removed {n} leftover(s)"),
                    Err(e) => {
                        failed = true;
                        eprintln!("{host}: {e}");
                    }
                }
            }
            if !live.is_empty() {
                println!(
                    "left alone: run(s) {} (holding live leases)",
                    live.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if failed {
                bail!("some hosts could not be cleaned; run `pushgate hosts reap` again later");
            }
            if all {
                store.drop_all_run_leases().await?;
            }
        }
        HostsCommand::Enable { host, .. } => {
            if inventory.get(&host).is_none() {
                bail!("there is no host `{host}` in {}", inventory.file.display());
            }
            let store = Store::open(&config.database_url).await?;
            if store.set_host_in_service(&host).await? {
                println!("{host} is back in service");
            } else {
                println!("{host} was not out of service");
            }
        }
    }
    Ok(())
}
