//! `pushgate gate`: the gate without the web server; `--once` makes one pass over every
//! policy and its list, delivers the mail and reports and exits (for cron), with a code that
//! says what a cron job must notice:
//!
//! - 0: every policy gated, every mail and report due delivered;
//! - 1: pushgate could not start, or a policy could not be gated (said on standard error);
//! - 75 ([`UNDELIVERED`]): every decision made, but mail or reports could not be delivered
//!   now; they stay queued and the next run tries them again.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};

use pushgate::gate::{BranchOutcome, LogProgress};
use pushgate::service::Service;

use super::progress::GateProgress;

/// `gate --once` made its decisions but could not deliver all its mail or reports: sysexits'
/// EX_TEMPFAIL, "try again later", which is what the next run does.
pub const UNDELIVERED: u8 = 75;

#[derive(clap::Args)]
pub struct Args {
    /// One pass over every policy, deliver the mail and reports, then exit (for cron): 0 when
    /// all is done, 1 on an error, 75 when mail or reports wait for the next run.
    #[arg(long)]
    pub once: bool,
    /// The service configuration [default: ./pushgate.toml if present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// Runs the gate; with `--once`, returns the exit code.
pub async fn run(args: Args) -> Result<u8> {
    let config = super::load_config(args.config.as_deref())?;
    let progress: Arc<dyn pushgate::gate::Progress> = if args.once {
        Arc::new(GateProgress::new())
    } else {
        Arc::new(LogProgress)
    };
    let service = Service::open(config, progress).await?;
    loop {
        let mut failed = false;
        // Without --once, the log (an event per line) is the output.
        let say = |line: String| {
            if args.once {
                println!("{line}")
            }
        };
        for (policy, outcome) in service.gate_once().await? {
            match outcome {
                BranchOutcome::Decided {
                    verdict, reason, ..
                } => say(format!("{policy}: {verdict}: {reason}")),
                BranchOutcome::Idle { message } => say(format!("{policy}: {message}")),
                // The log has said it, once.
                BranchOutcome::Error { .. } => failed = true,
            }
        }
        match service.series_once().await {
            Ok(lines) => {
                for (policy, line) in lines {
                    say(format!("{policy}: {line}"));
                }
            }
            Err(e) => {
                failed = true;
                tracing::error!("the series pass failed: {e}");
            }
        }
        service.deliver_mail().await?;
        let reports = service.deliver_reports().await?;
        // What failed now or in an earlier run and waits for its next attempt.
        let mail_waiting = service.store().failed_mail_count().await?;
        let reports_waiting = service.store().failed_report_count().await?;
        if mail_waiting > 0 {
            eprintln!(
                "{mail_waiting} mail could not be sent; it stays in the outbox and is tried again \
                 later (see the log for why)"
            );
        }
        if reports_waiting > 0 {
            eprintln!(
                "{reports_waiting} report(s) could not be posted to GitHub; they are tried again \
                 later (see the log for why)"
            );
        }
        if reports.refused > 0 {
            eprintln!(
                "GitHub refused {} report(s) (see the log); they are not tried again",
                reports.refused
            );
        }
        if args.once {
            if failed {
                bail!("some policies could not be gated (their errors are above)");
            }
            let undelivered = mail_waiting + reports_waiting + reports.refused as i64;
            return Ok(if undelivered > 0 { UNDELIVERED } else { 0 });
        }
        tokio::time::sleep(service.config.poll_interval).await;
    }
}
