//! `pushgate bisect`: find the commit that broke a command, flake-aware and on several
//! worktrees at once, in the repository of the current directory.

use pushgate::bisect::{self, BisectError, Range};
use pushgate::culprit::{Found, Settings, MAX_FLAKE_RATE};

#[derive(clap::Args)]
pub struct Args {
    /// A commit known good (repeat for several bases).
    #[arg(long, required = true)]
    good: Vec<String>,
    /// The commit known bad.
    #[arg(long, default_value = "HEAD")]
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
}

/// Runs `pushgate bisect` and returns its exit code.
pub async fn run(args: Args) -> u8 {
    let Args {
        good,
        bad,
        jobs,
        flake_rate,
        confidence,
        max_runs,
        json,
        command,
    } = args;
    let misuse = |message: String| {
        eprintln!("pushgate bisect: {message}");
        2
    };
    if let Some(f) = flake_rate.filter(|f| !(0.0..MAX_FLAKE_RATE).contains(f)) {
        return misuse(format!(
            "--flake-rate {f} is not in [0, {})",
            MAX_FLAKE_RATE
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
        settings: Settings {
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

impl bisect::BisectProgress for QuietBisect {
    fn started(&self, _: usize, _: &bisect::Commit, _: usize) {}
    fn finished(&self, _: &bisect::LogEntry, _: &str) {}
}

struct PrintedBisect;

impl bisect::BisectProgress for PrintedBisect {
    fn started(&self, round: usize, commit: &bisect::Commit, in_flight: usize) {
        println!(
            "round {round}: testing {} {} ({in_flight} in flight)",
            &commit.sha[..12.min(commit.sha.len())],
            commit.title
        );
    }

    fn finished(&self, entry: &bisect::LogEntry, title: &str) {
        let suspect = entry
            .suspect
            .as_deref()
            .map_or("no culprit".to_string(), |s| {
                s[..12.min(s.len())].to_string()
            });
        let left = match (entry.candidates, entry.rounds_left) {
            (1, _) => "1 candidate left (confirming it)".to_string(),
            (n, r) => format!(
                "{n} candidates left (roughly {r} more round{})",
                if r == 1 { "" } else { "s" }
            ),
        };
        println!(
            "  {} {title}: {:?}; top suspect {suspect} ({:.3}); {left}",
            &entry.sha[..12.min(entry.sha.len())],
            entry.result,
            entry.probability,
        );
    }
}

fn print_bisect(o: &bisect::Outcome) {
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
