//! `pushgate series ...`: the mailed series the service has seen, and a maintainer's way to
//! take one that passed onto staging.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use pushgate::forge::Forge;
use pushgate::repo::{short, Credentials};
use pushgate::series::queue;
use pushgate::store::Store;

#[derive(Subcommand)]
pub enum SeriesCommand {
    /// The series revisions seen on the lists, newest first: id, list, version, state, the
    /// verdict of their flight and where they were queued.
    List {
        /// Only this list's series.
        #[arg(long)]
        list: Option<String>,
        /// The service configuration [default: ./pushgate.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Queue a series that passed onto its policy's staging branch: its patches are applied
    /// on staging's head and pushed there (never with force), and the gate tests them as any
    /// other push before they reach the target. Series never push by themselves.
    Queue {
        /// The series id, from `pushgate series list`.
        id: i64,
        /// The service configuration [default: ./pushgate.toml if present].
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: SeriesCommand) -> Result<()> {
    match command {
        SeriesCommand::List { list, config, json } => {
            let config = super::load_config(config.as_deref())?;
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            let rows = store.series_list(list.as_deref()).await?;
            store.close().await;
            if json {
                println!("{}", serde_json::to_string(&rows)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no series yet");
            }
            for r in rows {
                let verdict = match (&r.flight, &r.flight_state, &r.verdict) {
                    (Some(f), _, Some(v)) => format!(", flight {f}: {v}"),
                    (Some(f), Some(state), None) => format!(", flight {f}: {state}"),
                    _ => String::new(),
                };
                let queued = r
                    .queued
                    .as_ref()
                    .map(|q| format!(", queued onto {q}"))
                    .unwrap_or_default();
                let tip = r
                    .tip
                    .as_deref()
                    .map(|t| format!(" at {}", short(t)))
                    .unwrap_or_default();
                println!(
                    "{:>4}  {}  v{}  {}{tip}{verdict}{queued}  <{}>",
                    r.id, r.list, r.version, r.state, r.root
                );
            }
            Ok(())
        }
        SeriesCommand::Queue { id, config, json } => {
            let config = super::load_config(config.as_deref())?;
            let (policies, _) = config.load_policies()?;
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            // A policy on GitHub pushes with the login `[github]` gives, as the gate does.
            let row = store.series(id).await?;
            let policy = row
                .as_ref()
                .and_then(|r| policies.iter().find(|p| Some(&p.name) == r.policy.as_ref()));
            let credentials = match (&config.github, policy) {
                (Some(settings), Some(p)) if p.github.is_some() => {
                    let github = pushgate::forge::GitHub::new(settings.clone())
                        .map_err(|e| anyhow::anyhow!("[github]: {e}"))?;
                    github
                        .git_credentials(&p.repository)
                        .await
                        .context("getting git credentials from GitHub")?
                }
                _ => Credentials::Anonymous,
            };
            let committer = config
                .mail_from
                .rsplit_once('<')
                .map_or(config.mail_from.as_str(), |(_, a)| a.trim_end_matches('>'))
                .trim()
                .to_string();
            let queued = queue::queue_series(
                &store,
                &policies,
                &config.mirrors_dir(),
                |_| credentials,
                &committer,
                id,
            )
            .await;
            store.close().await;
            let queued = queued?;
            if json {
                println!("{}", serde_json::to_string(&queued)?);
            } else {
                println!("{queued}");
            }
            Ok(())
        }
    }
}
