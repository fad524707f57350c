//! `pushgate bench gate-size`: the gate on a repository of Linux's order of size, beside git
//! doing the least the same work needs on the same repository.
//!
//! The upstream has a root on master and N commits on staging above it (made by
//! `git fast-import`); commit B adds a file `BROKEN` that the one step (`test ! -e BROKEN`)
//! fails on. A real `serve` starts on an empty state directory, so its first flight first
//! mirrors the whole repository, then bisects the range with one host: every step is a
//! decision, and the time between one step's end and the next one's start is the bot's own
//! per decision (store, staleness, the finder over N commits, the worktree switch). Beside
//! them: `git clone --bare` (the floor of a first start) and `git log` of the range (the
//! floor of reading it once).

use std::io::Write;
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{fail, git, served, timed, BenchError, Report, Stats};
use pushgate::store::{now_ms, FlightState};

/// The bounds: a decision within 3x `git log` of the range, a first start within 1.5x
/// `git clone --bare`.
pub const DECISION_BOUND: f64 = 3.0;
pub const FIRST_START_BOUND: f64 = 1.5;

#[derive(clap::Args)]
pub struct Args {
    /// Commits between master and staging.
    #[arg(long, default_value_t = 10_000)]
    commits: usize,
    /// The commit (one-based, from master) that breaks the step; 0 for none.
    #[arg(long)]
    breaker: Option<usize>,
    /// First starts, and repetitions of each git command.
    #[arg(long, default_value_t = 5)]
    samples: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct GateSizeReport {
    pub commits: usize,
    pub breaker: usize,
    /// First starts measured, each on a new state directory.
    pub samples: usize,
    /// Decisions in each first flight.
    pub decisions: usize,
    /// Service opened on an empty state directory to the first step started.
    pub first_start: Stats,
    /// `git clone --bare git://...` of the upstream.
    pub git_clone_bare: Stats,
    /// One step's end to the next step's start in the bisection.
    pub decision: Stats,
    /// `git log --first-parent master..staging` with each commit's id, author and subject.
    pub git_log: Stats,
    /// The last step's end to master moved.
    pub last_step_to_master_moved: Option<Stats>,
    /// What the gate found.
    pub culprit: Option<String>,
    pub expected_culprit: Option<String>,
    pub decision_samples_ms: Vec<f64>,
}

impl Report for GateSizeReport {
    fn table(&self) -> String {
        let row = |name: &str, s: &Stats, git_name: &str, g: &Stats, bound: f64| {
            format!(
                "| {name} | {:.1} | {:.1} | {git_name} | {:.1} | {:.2} | {bound} |\n",
                s.median_ms,
                s.p90_ms,
                g.median_ms,
                s.median_ms / g.median_ms.max(0.001)
            )
        };
        format!(
            "The gate on a {}-commit range (breaker at {}, one host, {} first starts of {} decisions each), ms\n\n\
             | pushgate | median | p90 | git, same repository | git median | ratio | bound |\n\
             |---|---|---|---|---|---|---|\n{}{}\n\
             last step -> master moved: {} ms (median); culprit {} (expected {})\n",
            self.commits,
            self.breaker,
            self.samples,
            self.decisions,
            row(
                "first start (empty state -> first step)",
                &self.first_start,
                "`git clone --bare`",
                &self.git_clone_bare,
                FIRST_START_BOUND
            ),
            row(
                "per decision (step end -> next step start)",
                &self.decision,
                "`git log` of the range",
                &self.git_log,
                DECISION_BOUND
            ),
            self.last_step_to_master_moved
                .as_ref()
                .map_or("-".to_string(), |s| format!("{:.1}", s.median_ms)),
            self.culprit.as_deref().unwrap_or("none"),
            self.expected_culprit.as_deref().unwrap_or("none"),
        )
    }
}

const SEQUENCE: &str =
    "[[step]]\nname = \"smoke\"\ncommand = \"test ! -e BROKEN\"\ntimeout = \"1m\"\n";

pub async fn measure(args: &Args) -> Result<GateSizeReport, BenchError> {
    let commits = args.commits.max(1);
    let breaker = args.breaker.unwrap_or(commits * 7 / 10).min(commits);
    let samples = args.samples.max(1);
    let tmp = tempfile::tempdir().map_err(fail)?;
    let dir = tmp.path();
    let upstream = dir.join("upstream.git");
    make_upstream(&upstream, commits, breaker)?;
    let daemon = GitDaemon::start(dir)?;
    let url = format!("git://{}/upstream.git", daemon.addr);

    let expected_culprit = (breaker > 0)
        .then(|| {
            git(
                &upstream,
                &["rev-parse", &format!("staging~{}", commits - breaker)],
            )
        })
        .transpose()?;
    let policy = format!(
        "repository = \"{url}\"\nsequences = [\"quick\"]\nretries = 0\nhosts = 1\n\
         [mail]\nauthors = false\ncommitters = false\n"
    );
    let root = format!("staging~{commits}");
    let (mut clone, mut log) = (Vec::new(), Vec::new());
    let mut first_starts = Vec::new();
    let mut gaps = Vec::new();
    let mut to_master = Vec::new();
    let mut culprit = None;
    // Each sample times git and the gate back to back, so that both see the same machine.
    for n in 0..samples {
        // The gate pushed master last time: put it back.
        git(&upstream, &["update-ref", "refs/heads/master", &root])?;
        let to = dir.join(format!("clone-{n}.git"));
        let to_s = to.display().to_string();
        clone.push(timed(|| {
            git(dir, &["clone", "-q", "--bare", &url, &to_s]).map(drop)
        })?);
        std::fs::remove_dir_all(&to).map_err(fail)?;
        let mut listed = 0;
        log.push(timed(|| {
            let range = [
                "log",
                "--first-parent",
                "--format=%H %an <%ae> %s",
                "master..staging",
            ];
            listed = git(&upstream, &range)?.lines().count();
            Ok(())
        })?);
        if listed != commits {
            return Err(fail(format!(
                "git log listed {listed} commits, not {commits}"
            )));
        }
        // A new state directory each time, so that every start is a first one.
        let one = flight(&dir.join(format!("gate-{n}")), &policy).await?;
        first_starts.push(one.first_start);
        gaps.extend(one.gaps);
        to_master.extend(one.to_master);
        culprit = one.culprit;
    }
    drop(daemon);
    if gaps.is_empty() {
        return Err(fail("the gate decided once only: nothing to time"));
    }
    Ok(GateSizeReport {
        commits,
        breaker,
        samples,
        decisions: gaps.len() / samples,
        first_start: Stats::of(&first_starts),
        git_clone_bare: Stats::of(&clone),
        decision: Stats::of(&gaps),
        git_log: Stats::of(&log),
        last_step_to_master_moved: (!to_master.is_empty()).then(|| Stats::of(&to_master)),
        culprit,
        expected_culprit,
        decision_samples_ms: gaps,
    })
}

/// What one first start's flight showed.
struct Flight {
    first_start: f64,
    gaps: Vec<f64>,
    to_master: Option<f64>,
    culprit: Option<String>,
}

/// Serves `policy` from the empty state directory `dir` until its first flight ends.
async fn flight(dir: &Path, policy: &str) -> Result<Flight, BenchError> {
    std::fs::create_dir_all(dir).map_err(fail)?;
    let started = now_ms();
    let served = served::serve(dir, policy, SEQUENCE).await?;
    let store = served.service.store().clone();
    let deadline = Instant::now() + Duration::from_secs(600);
    let flight = loop {
        let branches = store.branches().await.map_err(fail)?;
        let branch = branches.first().ok_or_else(|| fail("no branch"))?;
        let flights = store.recent_flights(branch.id, 1).await.map_err(fail)?;
        if let Some(f) = flights
            .into_iter()
            .find(|f| f.state != FlightState::Running)
        {
            break f;
        }
        if Instant::now() > deadline {
            return Err(fail("the flight did not end within 10 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut steps = store.flight_steps(flight.id).await.map_err(fail)?;
    let push = store.push_of(flight.id).await.map_err(fail)?;
    served.stop().await;

    steps.retain(|s| s.started_at.is_some() && s.finished_at.is_some());
    steps.sort_by_key(|s| s.started_at);
    let first = steps.first().ok_or_else(|| fail("no step ran"))?;
    let last = steps
        .iter()
        .filter_map(|s| s.finished_at)
        .max()
        .unwrap_or(0);
    Ok(Flight {
        first_start: (first.started_at.unwrap_or(started) - started) as f64,
        gaps: steps
            .windows(2)
            .map(|w| (w[1].started_at.unwrap_or(0) - w[0].finished_at.unwrap_or(0)) as f64)
            .collect(),
        to_master: push.map(|p| (p.pushed_at - last) as f64),
        culprit: flight.culprit,
    })
}

/// `git daemon` serving `dir`'s repositories on a free loopback port, pushes allowed: an
/// upstream over a real transport, as a lab's is (libgit2's `file://` transport builds a
/// fresh pack without reusing deltas, which no remote makes it do). Stopped by its PID when
/// dropped.
struct GitDaemon {
    addr: std::net::SocketAddr,
    child: std::process::Child,
}

impl GitDaemon {
    fn start(dir: &Path) -> Result<GitDaemon, BenchError> {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?;
        let child = Process::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--base-path={}", dir.display()))
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("git daemon: {e}")))?;
        let daemon = GitDaemon { addr, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline {
                return Err(fail("git daemon did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(daemon)
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare repository at `path`: master at a root commit, staging `commits` commits above it,
/// each changing one file; the `breaker`-th adds `BROKEN`.
fn make_upstream(path: &Path, commits: usize, breaker: usize) -> Result<(), BenchError> {
    let path_s = path.display().to_string();
    git(Path::new("."), &["init", "-q", "--bare", &path_s])?;
    let mut stream = String::new();
    let commit = |stream: &mut String, n: usize, parent: Option<usize>, extra: &str| {
        let message = format!("change {n}\n");
        let data = format!("{n}\n");
        stream.push_str(&format!(
            "commit refs/heads/staging\nmark :{}\nauthor Dev {} <dev{}@example.org> {} +0000\n\
             committer Dev {} <dev{}@example.org> {} +0000\ndata {}\n{message}",
            n + 1,
            n % 50,
            n % 50,
            1_700_000_000 + n,
            n % 50,
            n % 50,
            1_700_000_000 + n,
            message.len()
        ));
        if let Some(p) = parent {
            stream.push_str(&format!("from :{}\n", p + 1));
        }
        stream.push_str(&format!(
            "M 100644 inline COUNTER\ndata {}\n{data}{extra}\n",
            data.len()
        ));
    };
    commit(&mut stream, 0, None, "");
    stream.push_str("reset refs/heads/master\nfrom :1\n\n");
    for n in 1..=commits {
        let extra = if n == breaker {
            "M 100644 inline BROKEN\ndata 0\n"
        } else {
            ""
        };
        commit(&mut stream, n, Some(n - 1), extra);
    }
    let mut child = Process::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(path)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("git fast-import: {e}")))?;
    child
        .stdin
        .take()
        .ok_or_else(|| fail("git fast-import: no stdin"))?
        .write_all(stream.as_bytes())
        .map_err(|e| fail(format!("git fast-import: {e}")))?;
    let status = child
        .wait()
        .map_err(|e| fail(format!("git fast-import: {e}")))?;
    if !status.success() {
        return Err(fail(format!("git fast-import: {status}")));
    }
    // Packed, as a served repository would be: a clone then copies a pack, not loose objects.
    git(path, &["gc", "-q"]).map(drop)
}
