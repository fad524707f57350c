//! `pushgate bench history`: what a flight's decision reads from the store before it runs
//! anything (earlier flights' runs of its commits, the branch's recent runs for the flake
//! rate's prior, the steps that ever passed, the culprits blamed before), on one branch with
//! 100, 5,000 and 50,000 earlier flights: the cost should not grow with the history.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{fail, BenchError, Report, Stats};
use pushgate::decision::Role;
use pushgate::repo::CommitInfo;
use pushgate::sequence::StepStatus;
use pushgate::store::{BranchKey, NewRun, RunOwner, RunState, Store};

#[derive(clap::Args)]
pub struct Args {
    /// Earlier flights on the branch at each measurement, comma-separated, increasing.
    #[arg(long, value_delimiter = ',', default_values_t = [100, 5_000, 50_000])]
    flights: Vec<usize>,
    /// Commits in the range of the flight whose reads are timed.
    #[arg(long, default_value_t = 50)]
    range: usize,
    /// Timed repetitions per size.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct HistoryReport {
    pub range: usize,
    pub sizes: Vec<Size>,
}

#[derive(Debug, Serialize)]
pub struct Size {
    pub flights: usize,
    /// Earlier runs of this flight's commits, by sha.
    pub earlier_runs: Stats,
    /// The branch's latest step results (bounded), for the flake rates' priors.
    pub recent_runs: Stats,
    /// Steps that ever passed on the branch.
    pub ever_passed: Stats,
    /// Culprits blamed before.
    pub blames: Stats,
    pub total: Stats,
}

impl Report for HistoryReport {
    fn table(&self) -> String {
        let mut out = format!(
            "A flight of {} commits: the store reads of its decision, ms (median / p90)\n\n\
             | earlier flights | earlier runs | recent step results | ever passed | blames | total | total / first size |\n\
             |---|---|---|---|---|---|---|\n",
            self.range
        );
        let first = self.sizes.first().map_or(1.0, |s| s.total.median_ms);
        for s in &self.sizes {
            let cell = |x: &Stats| format!("{:.2} / {:.2}", x.median_ms, x.p90_ms);
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.2} |\n",
                s.flights,
                cell(&s.earlier_runs),
                cell(&s.recent_runs),
                cell(&s.ever_passed),
                cell(&s.blames),
                cell(&s.total),
                s.total.median_ms / first
            ));
        }
        out
    }
}

fn sha(i: usize) -> String {
    format!("{i:040x}")
}

fn commit(i: usize) -> CommitInfo {
    CommitInfo {
        sha: sha(i),
        title: format!("change {i}"),
        author_name: "A".into(),
        author_email: "a@example.org".into(),
        committer_name: "A".into(),
        committer_email: "a@example.org".into(),
    }
}

/// Adds flights `from..to`, each testing one commit once: mostly passing, now and then failing.
async fn add_flights(
    store: &Store,
    branch: i64,
    from: usize,
    to: usize,
    log: &Path,
) -> Result<(), BenchError> {
    for i in from..to {
        let flight = store
            .create_flight(branch, &sha(i), &sha(i + 1), &[commit(i + 1)], 0, |_| {
                Vec::new()
            })
            .await
            .map_err(fail)?;
        let run = store
            .create_run(&NewRun {
                owner: RunOwner::Flight(flight.id),
                index: 1,
                sha: &sha(i + 1),
                role: Role::Tip,
                attempt: 1,
                sequence: "smoke",
                host: "local",
            })
            .await
            .map_err(fail)?;
        let failed = i % 20 == 7;
        for (position, name) in ["build", "test"].into_iter().enumerate() {
            let step = store
                .start_step(run, position, name, log)
                .await
                .map_err(fail)?;
            let status = if failed && name == "test" {
                StepStatus::Fail
            } else {
                StepStatus::Pass
            };
            store
                .finish_step(step, status, Some(0))
                .await
                .map_err(fail)?;
        }
        let state = if failed {
            RunState::Fail
        } else {
            RunState::Pass
        };
        store.finish_run(run, state, None).await.map_err(fail)?;
    }
    Ok(())
}

pub async fn measure(args: &Args) -> anyhow::Result<HistoryReport> {
    if args.flights.is_empty() || args.flights.windows(2).any(|w| w[0] >= w[1]) {
        anyhow::bail!("--flights: give increasing counts, such as 100,5000,50000");
    }
    if args.range == 0 || args.samples == 0 {
        anyhow::bail!("--range and --samples must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = Store::open(&url).await?;
    let branch = store
        .upsert_branch(BranchKey {
            name: "bench",
            repository: "bench.git",
            staging: "staging",
            target: "master",
        })
        .await?;
    let log = dir.path().join("step.log");
    let mut sizes = Vec::new();
    let mut made = 0;
    for &flights in &args.flights {
        eprintln!("history: {made} -> {flights} flights");
        add_flights(&store, branch, made, flights, &log).await?;
        made = flights;
        // The flight whose reads are timed: the last `range` commits, seen again.
        let first = flights.saturating_sub(args.range) + 1;
        let commits: Vec<CommitInfo> = (first..=flights).map(commit).collect();
        let flight = store
            .create_flight(branch, &sha(first - 1), &sha(flights), &commits, 0, |_| {
                Vec::new()
            })
            .await?;
        let shas: Vec<String> = commits.iter().map(|c| c.sha.clone()).collect();
        let shas: Vec<&str> = shas.iter().map(String::as_str).collect();
        let (mut runs, mut recent, mut passed, mut blames, mut total) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..args.samples {
            let all = Instant::now();
            let t = Instant::now();
            let (found, _) = store.earlier_runs(branch, flight.id, &shas).await?;
            runs.push(t.elapsed().as_secs_f64() * 1e3);
            if found.len() < args.range.min(flights) {
                return Err(fail(format!(
                    "found {} earlier runs of {} commits",
                    found.len(),
                    args.range
                ))
                .into());
            }
            let t = Instant::now();
            store.recent_step_results(branch, flight.id, 5000).await?;
            recent.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            store.ever_passed_steps(branch, flight.id).await?;
            passed.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            store.earlier_blames(branch, flight.id).await?;
            blames.push(t.elapsed().as_secs_f64() * 1e3);
            total.push(all.elapsed().as_secs_f64() * 1e3);
        }
        sizes.push(Size {
            flights,
            earlier_runs: Stats::of(&runs),
            recent_runs: Stats::of(&recent),
            ever_passed: Stats::of(&passed),
            blames: Stats::of(&blames),
            total: Stats::of(&total),
        });
    }
    store.close().await;
    Ok(HistoryReport {
        range: args.range,
        sizes,
    })
}
