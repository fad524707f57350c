//! The command line: one file per subcommand, each with its arguments and what it prints. The
//! library does the work; these files only read arguments, call it and say what happened.

pub mod bench;
pub mod bisect;
pub mod demo;
pub mod gate;
pub mod hosts;
pub mod jobs;
pub mod mail;
pub mod sequence;
pub mod series;
pub mod serve;

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use pushgate::config::Config;

#[derive(Parser)]
#[command(
    name = "pushgate",
    version,
    about = "A push gate: test what arrives on staging, fast-forward master to what passed, find and mail the culprit."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gate loop for every policy, with the status page and the git hook endpoint.
    Serve(serve::Args),
    /// Run the gate without the web server.
    Gate(gate::Args),
    /// Run the whole loop on a sample repository with the shipped policy and sequence.
    Demo(demo::Args),
    /// Find the commit that broke CMD, flake-aware and on several worktrees at once.
    ///
    /// Exit codes of CMD are read as `git bisect run` reads them: 0 good, 125 untestable,
    /// 1-127 bad, 128 or more aborts. Exits 0 when a culprit is named, 3 when the answer is
    /// ambiguous or inconsistent, 2 on misuse.
    Bisect(bisect::Args),
    /// Sequences: see what a file means before a gate runs it.
    Sequence {
        #[command(subcommand)]
        what: sequence::SequenceCommand,
    },
    /// The job server's client: submit runs, follow them, borrow hosts (talks to `serve`).
    Jobs {
        #[command(subcommand)]
        what: jobs::JobsCommand,
        #[command(flatten)]
        server: jobs::ServerArgs,
    },
    /// The lab: check the hosts file, clean up after crashed runs, put a host back in service.
    Hosts {
        #[command(subcommand)]
        what: hosts::HostsCommand,
    },
    /// Mailing-list patch series.
    Mail {
        #[command(subcommand)]
        what: mail::MailCommand,
    },
    /// Mailed series as tested: list them, queue one that passed onto staging.
    Series {
        #[command(subcommand)]
        what: series::SeriesCommand,
    },
    /// Measure pushgate's own overhead.
    Bench {
        #[command(subcommand)]
        what: bench::Command,
    },
}

/// Keeps memory the process frees for its next use instead of giving it back to the system at
/// once. A culprit search's decision at N = 4096 allocates and frees a few megabytes of
/// per-commit arrays; with glibc's defaults (blocks over 128 KiB mapped and unmapped, the heap's
/// free top trimmed) every decision faulted fresh zeroed pages in again, about a quarter of its
/// time. The process now keeps up to 64 MiB it does not use.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets two of the allocator's thresholds; it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Logs go to stderr, one line per event; RUST_LOG overrides `default`.
pub fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The configuration at `path`, else `./pushgate.toml` if there is one, else the defaults.
/// Its file size limit holds for every file read from then on (the config itself is read
/// under the default one).
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let default = cwd.join("pushgate.toml");
    let path = path.or(default.exists().then_some(default.as_path()));
    let config = Config::load(path, &cwd)?;
    pushgate::file_error::set_max_file_size(config.max_file_size);
    Ok(config)
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
