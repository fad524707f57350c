//! `pushgate gate`: the gate without the web server; `--once` makes one pass over every
//! policy and its list, delivers the mail and exits (for cron).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};

use pushgate::gate::{BranchOutcome, LogProgress};
use pushgate::service::Service;

#[derive(clap::Args)]
pub struct Args {
    /// One pass over every policy, deliver the mail, then exit (for cron).
    #[arg(long)]
    once: bool,
    #[arg(long)]
    config: Option<PathBuf>,
}

pub async fn run(args: Args) -> Result<()> {
    let config = super::load_config(args.config.as_deref())?;
    let service = Service::open(config, Arc::new(LogProgress)).await?;
    loop {
        let mut failed = false;
        for (policy, outcome) in service.gate_once().await? {
            match outcome {
                BranchOutcome::Decided {
                    verdict, reason, ..
                } => println!("{policy}: {verdict}: {reason}"),
                BranchOutcome::Idle { message } => println!("{policy}: {message}"),
                BranchOutcome::Error { message } => {
                    failed = true;
                    println!("{policy}: error: {message}")
                }
            }
        }
        match service.series_once().await {
            Ok(lines) => {
                for (policy, line) in lines {
                    println!("{policy}: {line}");
                }
            }
            Err(e) => {
                failed = true;
                println!("error: {e}");
            }
        }
        let mail = service.deliver_mail().await?;
        if mail.failed > 0 {
            eprintln!(
                "{} mail could not be sent yet; it stays in the outbox",
                mail.failed
            );
        }
        if args.once {
            if failed {
                bail!("some policies could not be gated (see above)");
            }
            return Ok(());
        }
        tokio::time::sleep(service.config.poll_interval).await;
    }
}
