//! `pushgate bench ...`: measurements compared side by side in one run (ratio to git, to the
//! bound, to the old code), never asserted as timings in tests. Each benchmark has its file and
//! its arguments; they share the error, the statistics, the git helper and the way a report is
//! printed.

mod chaos;
mod culprit;
mod gate_size;
mod history;
mod intake;
mod mail;
mod overhead;
mod schedule;
mod served;
mod ssh;
mod two_regressions;

use std::path::Path;
use std::process::Command as Process;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

#[derive(Subcommand)]
pub enum Command {
    /// GitHub webhook intake (verify, dedupe, persist, answer) on SQLite under load from a
    /// second process; counts lost and doubled candidates afterwards.
    Intake(intake::Args),
    /// The load process of `bench intake` (prints JSON).
    #[command(hide = true)]
    IntakeLoad(intake::LoadArgs),
    /// A list's mail taken in (split, parse, assemble, store) in messages/s, and a long series
    /// applied with git2 beside `git am` on the same base.
    Mail(mail::Args),
    /// Time from a staging push to the first step, and from the last step to master moved.
    Overhead(overhead::Args),
    /// The SSH executor on a private loopback sshd: per-step overhead beside a local spawn and
    /// OpenSSH's client, and a large log streamed with peak memory before and after.
    Ssh(ssh::Args),
    /// One scheduling decision with a big lab and a long queue: the pure assignment, and a
    /// lab's whole round with its leases in SQLite.
    Schedule(schedule::Args),
    /// The culprit finder on seeded synthetic histories, beside the bounds and `git bisect run`.
    Culprit(culprit::Args),
    /// Whole flights under random SIGKILLs (pushes, bisections, mail over aiosmtpd), then
    /// every promise checked; exits 1 when one was broken.
    Chaos(chaos::Args),
    /// What a flight's decision reads from the store, with 100 to 50,000 earlier flights.
    History(history::Args),
    /// The gate on a 10,000-commit range: its first start beside `git clone --bare`, its time
    /// per decision beside `git log` of the range.
    GateSize(gate_size::Args),
}

/// Runs one benchmark and prints its report.
pub async fn run(command: Command) -> Result<()> {
    match command {
        Command::IntakeLoad(a) => {
            // Read by `bench intake` from this process's stdout: compact, no table.
            let report = intake::load(&a.addr, a.deliveries, a.connections).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::Intake(a) => show(&measuring("intake", intake::measure(&a)).await?, a.json),
        Command::Mail(a) => show(&measuring("mail", mail::measure(&a)).await?, a.json),
        Command::Overhead(a) => show(&measuring("overhead", overhead::measure(&a)).await?, a.json),
        Command::Ssh(a) => show(&measuring("ssh", ssh::measure(&a)).await?, a.json),
        Command::Schedule(a) => show(&measuring("schedule", schedule::measure(&a)).await?, a.json),
        Command::Culprit(a) => {
            let report = measuring("culprit", async { culprit::measure(&a) }).await?;
            show(&report, a.json)
        }
        Command::History(a) => show(&measuring("history", history::measure(&a)).await?, a.json),
        Command::GateSize(a) => show(
            &measuring("gate-size", gate_size::measure(&a)).await?,
            a.json,
        ),
        Command::Chaos(a) => {
            let report = chaos::measure(&a).await?;
            show(&report, a.json)?;
            if report.broken() > 0 {
                anyhow::bail!("{} promise(s) broken (see above)", report.broken());
            }
            Ok(())
        }
    }
}

/// Runs a benchmark with a spinner and the time so far on a terminal (they take minutes).
async fn measuring<T>(name: &str, work: impl std::future::Future<Output = T>) -> T {
    let progress = super::progress::Progress::new();
    progress.now(&format!("bench {name}: measuring"));
    let done = work.await;
    progress.finish();
    done
}

/// What a benchmark hands back: JSON for machines, a table for README.
trait Report: Serialize {
    fn table(&self) -> String;
}

fn show(report: &impl Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("bench: {0}")]
pub struct BenchError(String);

fn fail(e: impl std::fmt::Display) -> BenchError {
    BenchError(e.to_string())
}

/// Median, p90 and extremes of a set of timings.
#[derive(Debug, Serialize)]
pub struct Stats {
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    fn of(samples: &[f64]) -> Stats {
        let mut s = samples.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
        Stats {
            median_ms: at(0.5),
            p90_ms: at(0.9),
            min_ms: s[0],
            max_ms: s[s.len() - 1],
        }
    }
}

/// How long `f` took, in milliseconds.
fn timed(f: impl FnOnce() -> Result<(), BenchError>) -> Result<f64, BenchError> {
    let t = std::time::Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// Runs the git CLI in `dir`; its trimmed standard output.
fn git(dir: &Path, args: &[&str]) -> Result<String, BenchError> {
    let out = Process::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| fail(format!("git {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(fail(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
