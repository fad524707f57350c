//! The `pushgate` command.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use pushgate::config::Config;
use pushgate::culprit::synthetic::Shape;
use pushgate::culprit::MAX_COMMITS;
use pushgate::demo::{self, TerminalProgress};
use pushgate::gate::{BranchOutcome, LogProgress};
use pushgate::service::Service;

mod jobs_command;
mod mail_command;
mod series_command;
use jobs_command::{HostsCommand, JobsCommand};
use mail_command::MailCommand;
use series_command::SeriesCommand;

#[derive(Parser)]
#[command(
    name = "pushgate",
    version,
    about = "A push gate: test what arrives on staging, fast-forward master to what passed, find and mail the culprit."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gate loop for every policy, with the status page and the git hook endpoint.
    Serve {
        /// The service configuration (default: ./pushgate.toml if present, else defaults).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the gate without the web server.
    Gate {
        /// One pass over every policy, deliver the mail, then exit (for cron).
        #[arg(long)]
        once: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Run the whole loop on a sample repository with the shipped policy and sequence.
    Demo {
        /// Where to create the sample (default: a new temporary directory, kept).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print one JSON object instead of the summary.
        #[arg(long)]
        json: bool,
        /// Keep the status page up afterwards.
        #[arg(long)]
        serve: bool,
    },
    /// Find the commit that broke CMD, flake-aware and on several worktrees at once.
    ///
    /// Exit codes of CMD are read as `git bisect run` reads them: 0 good, 125 untestable,
    /// 1-127 bad, 128 or more aborts. Exits 0 when a culprit is named, 3 when the answer is
    /// ambiguous or inconsistent, 2 on misuse.
    Bisect {
        /// A commit known good (repeat for several bases).
        #[arg(long, required = true)]
        good: Vec<String>,
        /// The commit known bad.
        #[arg(long)]
        bad: String,
        /// Commits tested at once, each in its own worktree.
        #[arg(long, short = 'j', default_value_t = 1)]
        jobs: usize,
        /// How often a good commit fails anyway (0 trusts every result, as git bisect does);
        /// estimated from the results when not given.
        #[arg(long)]
        flake_rate: Option<f64>,
        /// How sure the answer must be.
        #[arg(long, default_value_t = 0.99)]
        confidence: f64,
        /// The most runs the search may use (default: from the range size and flake rate).
        #[arg(long)]
        max_runs: Option<usize>,
        /// Print one JSON object instead of progress and a summary.
        #[arg(long)]
        json: bool,
        /// The test command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Sequences: see what a file means before a gate runs it.
    Sequence {
        #[command(subcommand)]
        what: SequenceCommand,
    },
    /// The job server's client: submit runs, follow them, borrow hosts (talks to `serve`).
    Jobs {
        #[command(subcommand)]
        what: JobsCommand,
        #[command(flatten)]
        server: jobs_command::ServerArgs,
    },
    /// The lab: check the hosts file, clean up after crashed runs, put a host back in service.
    Hosts {
        #[command(subcommand)]
        what: HostsCommand,
    },
    /// Mailing-list patch series.
    Mail {
        #[command(subcommand)]
        what: MailCommand,
    },
    /// Mailed series as tested: list them, queue one that passed onto staging.
    Series {
        #[command(subcommand)]
        what: SeriesCommand,
    },
    /// Measure pushgate's own overhead.
    Bench {
        #[command(subcommand)]
        what: Bench,
    },
}

#[derive(Subcommand)]
enum SequenceCommand {
    /// Parse, validate and print the plan of sequence files (TOML or XenRT .seq): blocks,
    /// testcases with their bound commands, prepare needs, unbound ids, what is kept unused.
    /// Exits 1, with `file:line:col: message`, when a file is wrong.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The testcase bindings (default: testcases.toml beside each file, if any).
        #[arg(long)]
        bindings: Option<PathBuf>,
        /// Override a `<default>`: NAME=VALUE (repeatable).
        #[arg(long = "param", short = 'D')]
        params: Vec<String>,
        /// Print a JSON array, one object per file.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Bench {
    /// GitHub webhook intake (verify, dedupe, persist, answer) on SQLite under load from a
    /// second process; counts lost and doubled candidates afterwards.
    Intake {
        #[arg(long, default_value_t = 20000)]
        deliveries: usize,
        /// Concurrent keep-alive connections of the load process.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long)]
        json: bool,
    },
    /// The load process of `bench intake` (prints JSON).
    #[command(hide = true)]
    IntakeLoad {
        #[arg(long)]
        addr: String,
        #[arg(long)]
        deliveries: usize,
        #[arg(long)]
        connections: usize,
    },
    /// A list's mail taken in (split, parse, assemble, store) in messages/s, and a long series
    /// applied with git2 beside `git am` on the same base.
    Mail {
        #[arg(long, default_value_t = 20000)]
        messages: usize,
        /// Patches in the series applied beside git am.
        #[arg(long, default_value_t = 50)]
        patches: usize,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Time from a staging push to the first step, and from the last step to master moved.
    Overhead {
        #[arg(long, default_value_t = 20)]
        iterations: usize,
        #[arg(long)]
        json: bool,
    },
    /// The SSH executor on a private loopback sshd: per-step overhead beside a local spawn and
    /// OpenSSH's client, and a large log streamed with peak memory before and after.
    Ssh {
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Size of the streamed log, in MiB.
        #[arg(long, default_value_t = 10)]
        log_mb: u64,
        /// Log in as this user (its login shell starts for every step; default: you).
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// One scheduling decision with a big lab and a long queue: the pure assignment, and a
    /// lab's whole round with its leases in SQLite.
    Schedule {
        #[arg(long, default_value_t = 200)]
        hosts: usize,
        #[arg(long, default_value_t = 2000)]
        queued: usize,
        /// Slots that come free before each decision.
        #[arg(long, default_value_t = 20)]
        free: usize,
        #[arg(long, default_value_t = 200)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// The culprit finder on seeded synthetic histories, beside the bounds and `git bisect run`.
    Culprit {
        /// Searches per cell.
        #[arg(long, default_value_t = 200)]
        trials: usize,
        /// Runs of the real `git bisect run` per one-host cell (0: leave git out).
        #[arg(long, default_value_t = 20)]
        git_trials: usize,
        /// Candidate counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [8, 64, 512, 4096])]
        sizes: Vec<usize>,
        /// Host counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1, 4, 16])]
        hosts: Vec<usize>,
        /// Flake rates, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.01, 0.05, 0.1])]
        flake_rates: Vec<f64>,
        /// Untestable rates, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [0.0, 0.1])]
        untestable_rates: Vec<f64>,
        /// History shapes: linear, merge-train, stale-base.
        #[arg(long, value_delimiter = ',', default_values_t = ["linear".to_string(), "merge-train".to_string(), "stale-base".to_string()])]
        shapes: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let default = cwd.join("pushgate.toml");
    let path = path.or(default.exists().then_some(default.as_path()));
    Ok(Config::load(path, &cwd)?)
}

async fn shutdown_signal() {
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

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Bisect {
            good,
            bad,
            jobs,
            flake_rate,
            confidence,
            max_runs,
            json,
            command,
        } => {
            init_logs("warn");
            let code = bisect_command(
                good, bad, jobs, flake_rate, confidence, max_runs, json, command,
            )
            .await;
            std::process::exit(code);
        }
        Command::Sequence {
            what:
                SequenceCommand::Check {
                    files,
                    bindings,
                    params,
                    json,
                },
        } => {
            let ok = sequence_check(&files, bindings.as_deref(), &params, json)?;
            std::process::exit(if ok { 0 } else { 1 });
        }
        Command::Mail { what } => {
            init_logs("warn");
            mail_command::run(what, load_config).await?;
        }
        Command::Series { what } => {
            init_logs("warn");
            series_command::run(what, load_config).await?;
        }
        Command::Jobs { what, server } => {
            init_logs("warn");
            jobs_command::jobs(what, server, load_config).await?;
        }
        Command::Hosts { what } => {
            init_logs("warn");
            let path = match &what {
                HostsCommand::Check { config }
                | HostsCommand::Reap { config, .. }
                | HostsCommand::Enable { config, .. } => config.clone(),
            };
            jobs_command::hosts(what, load_config(path.as_deref())?).await?;
        }
        Command::Serve { config } => {
            init_logs("info");
            let config = load_config(config.as_deref())?;
            let service = Arc::new(Service::open(config, Arc::new(LogProgress)).await?);
            let listener = service.bind().await?;
            eprintln!("pushgate serving on http://{}", listener.local_addr()?);
            service.serve(listener, shutdown_signal()).await?;
        }
        Command::Gate { once, config } => {
            init_logs("info");
            let config = load_config(config.as_deref())?;
            let service = Service::open(config, Arc::new(LogProgress)).await?;
            loop {
                let mut failed = false;
                for (policy, outcome) in service.gate_once().await? {
                    match outcome {
                        BranchOutcome::Decided {
                            verdict, reason, ..
                        } => {
                            println!("{policy}: {verdict}: {reason}")
                        }
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
                if once {
                    if failed {
                        bail!("some policies could not be gated (see above)");
                    }
                    break;
                }
                tokio::time::sleep(service.config.poll_interval).await;
            }
        }
        Command::Demo { dir, json, serve } => {
            init_logs("warn");
            let dir = match dir {
                Some(d) => d,
                None => demo::default_dir()?,
            };
            if !json {
                println!("pushgate demo in {}", dir.display());
            }
            let (summary, service) = demo::run(&dir, Arc::new(TerminalProgress)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_summary(&summary, demo::outbox(&service.config));
            }
            if summary.culprit.as_deref() != Some(summary.expected_culprit.as_str()) {
                bail!("the demo did not find the sample's culprit; see the log above");
            }
            if serve {
                let service = Arc::new(service);
                let listener = service.bind().await?;
                println!(
                    "status page: http://{}/ (Ctrl-C to stop)",
                    listener.local_addr()?
                );
                service.serve(listener, shutdown_signal()).await?;
            }
        }
        Command::Bench {
            what:
                Bench::Schedule {
                    hosts,
                    queued,
                    free,
                    rounds,
                    json,
                },
        } => {
            init_logs("warn");
            let report = pushgate::bench::schedule(hosts, queued, free, rounds.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Bench {
            what:
                Bench::Mail {
                    messages,
                    patches,
                    rounds,
                    json,
                },
        } => {
            init_logs("warn");
            let report = pushgate::bench::mail(messages, patches.max(1), rounds).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Bench {
            what:
                Bench::Ssh {
                    steps,
                    log_mb,
                    user,
                    json,
                },
        } => {
            init_logs("warn");
            let report = pushgate::bench::ssh(steps.max(1), log_mb, user.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Bench {
            what:
                Bench::Intake {
                    deliveries,
                    connections,
                    json,
                },
        } => {
            init_logs("warn");
            let report = pushgate::bench::intake::intake(deliveries.max(10), connections).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Bench {
            what:
                Bench::IntakeLoad {
                    addr,
                    deliveries,
                    connections,
                },
        } => {
            let report = pushgate::bench::intake::load(&addr, deliveries, connections).await?;
            println!("{}", serde_json::to_string(&report)?);
        }
        Command::Bench {
            what: Bench::Overhead { iterations, json },
        } => {
            init_logs("warn");
            let report = pushgate::bench::overhead(iterations.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Command::Bench {
            what:
                Bench::Culprit {
                    trials,
                    git_trials,
                    sizes,
                    hosts,
                    flake_rates,
                    untestable_rates,
                    shapes,
                    seed,
                    json,
                },
        } => {
            init_logs("warn");
            let shapes = shapes
                .iter()
                .map(|s| {
                    Shape::parse(s).with_context(|| {
                        format!("--shapes: unknown shape `{s}` (linear, merge-train, stale-base)")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if let Some(bad) = sizes.iter().find(|&&n| n == 0 || n > MAX_COMMITS) {
                bail!("--sizes: {bad} is not between 1 and {MAX_COMMITS}");
            }
            if let Some(bad) = flake_rates
                .iter()
                .chain(&untestable_rates)
                .find(|r| !(0.0..0.5).contains(*r))
            {
                bail!("--flake-rates/--untestable-rates: {bad} is not in [0, 0.5)");
            }
            let options = pushgate::bench::culprit::Options {
                trials: trials.max(1),
                git_trials,
                shapes,
                sizes,
                hosts: hosts.into_iter().map(|k| k.max(1)).collect(),
                flake_rates,
                untestable_rates,
                seed,
                ..Default::default()
            };
            let report = pushgate::bench::culprit::run(&options, &|c| {
                eprintln!(
                    "{} N={} k={} f={} u={}: exact {:.3}, rounds {:.1}, runs {:.1}",
                    c.shape.as_str(),
                    c.n,
                    c.k,
                    c.f,
                    c.u,
                    c.accuracy,
                    c.rounds_mean,
                    c.executions_mean
                )
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
    }
    Ok(())
}

/// Runs `pushgate bisect` and returns its exit code.
#[allow(clippy::too_many_arguments)]
async fn bisect_command(
    good: Vec<String>,
    bad: String,
    jobs: usize,
    flake_rate: Option<f64>,
    confidence: f64,
    max_runs: Option<usize>,
    json: bool,
    command: Vec<String>,
) -> i32 {
    use pushgate::bisect::{self, BisectError, Range};
    let misuse = |message: String| {
        eprintln!("pushgate bisect: {message}");
        2
    };
    if let Some(f) = flake_rate.filter(|f| !(0.0..pushgate::culprit::MAX_FLAKE_RATE).contains(f)) {
        return misuse(format!(
            "--flake-rate {f} is not in [0, {})",
            pushgate::culprit::MAX_FLAKE_RATE
        ));
    }
    if !(0.5..1.0).contains(&confidence) {
        return misuse(format!("--confidence {confidence} is not in [0.5, 1)"));
    }
    if jobs == 0 {
        return misuse("--jobs must be at least 1".into());
    }
    let cwd = match std::env::current_dir() {
        Ok(d) => d,
        Err(e) => return misuse(format!("cannot read the current directory: {e}")),
    };
    let repo = match git2::Repository::discover(&cwd) {
        Ok(r) => r,
        Err(e) => return misuse(format!("not in a git repository: {}", e.message())),
    };
    let range = match Range::load(&repo, &good, &bad) {
        Ok(r) => r,
        Err(e) => return misuse(e.to_string()),
    };
    let repo_dir = repo.path().to_path_buf();
    drop(repo);
    let options = bisect::Options {
        jobs,
        settings: pushgate::culprit::Settings {
            flake_rate,
            confidence,
            max_executions: max_runs,
            ..Default::default()
        },
        command,
    };
    if !json {
        println!(
            "bisecting {} commit{} with {jobs} worktree{}",
            range.commits.len(),
            if range.commits.len() == 1 { "" } else { "s" },
            if jobs == 1 { "" } else { "s" }
        );
    }
    let progress: Box<dyn bisect::BisectProgress> = if json {
        Box::new(QuietBisect)
    } else {
        Box::new(PrintedBisect)
    };
    let outcome = match bisect::bisect(&repo_dir, &range, &options, progress.as_ref()).await {
        Ok(o) => o,
        Err(BisectError::Misuse(m)) => return misuse(m),
        Err(e) => {
            eprintln!("pushgate bisect: {e}");
            return 1;
        }
    };
    let named = outcome.culprit.is_some();
    if json {
        match serde_json::to_string_pretty(&outcome) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("pushgate bisect: {e}");
                return 1;
            }
        }
    } else {
        print_bisect(&outcome);
    }
    if named {
        0
    } else {
        3
    }
}

struct QuietBisect;

impl pushgate::bisect::BisectProgress for QuietBisect {
    fn started(&self, _: usize, _: &pushgate::bisect::Commit, _: usize) {}
    fn finished(&self, _: &pushgate::bisect::LogEntry, _: &str) {}
}

struct PrintedBisect;

impl pushgate::bisect::BisectProgress for PrintedBisect {
    fn started(&self, round: usize, commit: &pushgate::bisect::Commit, in_flight: usize) {
        println!(
            "round {round}: testing {} {} ({in_flight} in flight)",
            &commit.sha[..12.min(commit.sha.len())],
            commit.title
        );
    }

    fn finished(&self, entry: &pushgate::bisect::LogEntry, title: &str) {
        let suspect = entry
            .suspect
            .as_deref()
            .map_or("no culprit".to_string(), |s| {
                s[..12.min(s.len())].to_string()
            });
        println!(
            "  {} {title}: {:?}; top suspect {suspect} ({:.3})",
            &entry.sha[..12.min(entry.sha.len())],
            entry.result,
            entry.probability
        );
    }
}

fn print_bisect(o: &pushgate::bisect::Outcome) {
    use pushgate::culprit::Found;
    println!();
    match (&o.found, &o.culprit) {
        (Found::Culprit { .. }, Some(c)) => {
            println!("culprit: {} {}", c.sha, c.title);
            println!("probability {:.4}", o.probability);
        }
        (Found::OneOf { .. }, _) => {
            println!(
                "the culprit is one of these {} commits (untestable ones hide it), probability {:.4}:",
                o.candidates.len(),
                o.probability
            );
            for c in &o.candidates {
                println!("  {} {}", c.sha, c.title);
            }
        }
        (Found::NoCulprit { .. }, _) => println!(
            "no culprit: the bad commit's failure was a flake (probability {:.4})",
            o.probability
        ),
        (Found::Inconsistent { .. }, _) => {
            println!("inconsistent results: a commit failed repeatedly but a descendant passed (fixed inside the range?):");
            for c in &o.candidates {
                println!("  {} {}", c.sha, c.title);
            }
        }
        (Found::GaveUp { .. }, _) => {
            println!("gave up: the budget of runs is spent without reaching the confidence target");
            for c in &o.candidates {
                println!("  top suspect {} {} ({:.3})", c.sha, c.title, o.probability);
            }
        }
        (Found::Culprit { .. }, None) => {}
    }
    println!(
        "{} runs in {} rounds over {} commits (flake rate {:.3})",
        o.executions, o.rounds, o.commits, o.flake_rate
    );
}

fn print_summary(s: &demo::DemoSummary, outbox: Option<&Path>) {
    println!();
    match (&s.verdict, &s.culprit) {
        (Some(v), Some(c)) => println!(
            "verdict:  {v}\nculprit:  {} {}",
            &c[..12.min(c.len())],
            s.culprit_title.as_deref().unwrap_or("")
        ),
        (Some(v), None) => println!("verdict:  {v}"),
        _ => println!("no decision: {}", s.reason),
    }
    match &s.pushed_to {
        Some(p) => println!(
            "pushed:   master is now {} ({} of {} commits)",
            &p[..12.min(p.len())],
            s.pushed_commits,
            demo::COMMITS
        ),
        None => println!("pushed:   nothing"),
    }
    println!("runs:     {}", s.runs);
    println!(
        "mail:     {} message{}",
        s.mails.len(),
        if s.mails.len() == 1 { "" } else { "s" }
    );
    for m in &s.mails {
        println!("          {m}");
    }
    if let Some(dir) = outbox {
        println!("outbox:   {}", dir.display());
    }
    println!("upstream: {}", s.upstream.display());
}

/// `pushgate sequence check`: prints each file's plan; errors go to stderr as
/// `file:line:col: message`. Returns whether every file was good.
fn sequence_check(
    files: &[PathBuf],
    bindings: Option<&Path>,
    params: &[String],
    json: bool,
) -> Result<bool> {
    use pushgate::sequence::{self, plan, Bindings};
    let mut defaults = std::collections::BTreeMap::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p}: say NAME=VALUE");
        };
        defaults.insert(k.to_string(), v.to_string());
    }
    let shared = bindings.map(Bindings::load).transpose()?;
    let mut ok = true;
    let mut plans = Vec::new();
    let (mut total, mut unbound) = (0, 0);
    for file in files {
        let checked = (|| {
            let mut seq = sequence::load_unbound(file, &defaults)?;
            match &shared {
                Some(b) => b.bind(&mut seq)?,
                None => {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    sequence::load_bindings(dir)?.bind(&mut seq)?
                }
            }
            Ok::<_, pushgate::source::FileError>(seq)
        })();
        match checked {
            Ok(seq) => {
                total += seq.testcases().len();
                unbound += seq.unbound().len();
                if json {
                    plans.push(plan::json(&seq));
                } else {
                    print!("{}", plan::text(&seq));
                    println!();
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else if files.len() > 1 {
        println!(
            "{} files, {} good: {total} testcases, {unbound} unbound ids",
            files.len(),
            if ok {
                "all".to_string()
            } else {
                "not all".to_string()
            }
        );
    }
    Ok(ok)
}
