//! `pushgate bisect`: the culprit finder as a standalone tool, in place of `git bisect run`.
//!
//! It reads the range `bad ^good...` from the repository (merges included), keeps K throwaway
//! worktrees, and runs the user's command in as many of them at once as the finder has work
//! for. Exit codes are read as `git bisect run` reads them, so existing scripts work unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use git2::{Oid, Repository, Sort};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::culprit::{
    rounds_bound, CulpritFinder, Found, History, Observed, Settings, Standing, Step,
};
use crate::repo::{short, worktree};

/// What can stop a bisection before it concludes.
#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    /// The command line or the repository does not allow a search (exit 2).
    #[error("{0}")]
    Misuse(String),
    /// The command asked to abort (exit code 128 or more, or a signal), or could not run.
    #[error("{0}")]
    Aborted(String),
    #[error("git: {0}")]
    Git(String),
}

fn git(context: &str) -> impl Fn(git2::Error) -> BisectError + '_ {
    move |e| BisectError::Git(format!("{context}: {}", e.message()))
}

/// A commit of the range as the report shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Commit {
    pub sha: String,
    pub title: String,
}

/// The range to search: its commits oldest first, and their ancestry.
pub struct Range {
    pub commits: Vec<Commit>,
    pub history: History,
}

impl Range {
    /// The commits reachable from `bad` and from none of `goods`, as `git rev-list` lists them.
    pub fn load(repo: &Repository, goods: &[String], bad: &str) -> Result<Range, BisectError> {
        let resolve = |rev: &str| -> Result<Oid, BisectError> {
            repo.revparse_single(rev)
                .and_then(|o| o.peel_to_commit())
                .map(|c| c.id())
                .map_err(|e| {
                    BisectError::Misuse(format!("`{rev}` is not a commit: {}", e.message()))
                })
        };
        let bad = resolve(bad)?;
        let mut walk = repo.revwalk().map_err(git("walk the range"))?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(git("walk the range"))?;
        walk.push(bad).map_err(git("walk the range"))?;
        for good in goods {
            let good_oid = resolve(good)?;
            if good_oid == bad || repo.graph_descendant_of(good_oid, bad).unwrap_or(false) {
                return Err(BisectError::Misuse(format!(
                    "the good commit `{good}` contains the bad one: nothing to search"
                )));
            }
            walk.hide(good_oid).map_err(git("walk the range"))?;
        }
        let oids: Vec<Oid> = walk
            .collect::<Result<_, _>>()
            .map_err(git("walk the range"))?;
        let index: HashMap<Oid, usize> = oids.iter().enumerate().map(|(i, o)| (*o, i)).collect();
        let mut commits = Vec::with_capacity(oids.len());
        let mut parents = Vec::with_capacity(oids.len());
        for oid in &oids {
            let c = repo.find_commit(*oid).map_err(git("read a commit"))?;
            parents.push(
                c.parent_ids()
                    .filter_map(|p| index.get(&p).copied())
                    .collect(),
            );
            commits.push(Commit {
                sha: oid.to_string(),
                title: c.summary().unwrap_or("").to_string(),
            });
        }
        let history = History::new(parents).map_err(|e| BisectError::Misuse(e.to_string()))?;
        Ok(Range { commits, history })
    }
}

/// How one run of the command ended, read as `git bisect run` reads it.
pub fn judge_exit(code: Option<i32>) -> Result<Observed, String> {
    match code {
        Some(0) => Ok(Observed::Pass),
        Some(125) => Ok(Observed::Untestable),
        Some(1..=127) => Ok(Observed::Fail),
        Some(c) => Err(format!(
            "the command exited with {c} (128 or more aborts the search)"
        )),
        None => Err("the command was killed by a signal".into()),
    }
}

/// What the search found, for people and for `--json`.
#[derive(Debug, Serialize)]
pub struct Outcome {
    pub found: Found,
    /// The named culprit, with its sha and title.
    pub culprit: Option<Commit>,
    pub probability: f64,
    /// The commits the answer could not tell apart, when it is ambiguous.
    pub candidates: Vec<Commit>,
    pub executions: usize,
    pub rounds: usize,
    pub commits: usize,
    pub flake_rate: f64,
    /// Every run, in the order it finished.
    pub log: Vec<LogEntry>,
}

#[derive(Debug, Serialize)]
pub struct LogEntry {
    pub sha: String,
    pub result: Observed,
    pub round: usize,
    /// The most likely culprit after this result (`None`: no culprit) and its probability.
    pub suspect: Option<String>,
    pub probability: f64,
    /// Answers still in the running after this result (`no culprit` counts as one).
    pub candidates: usize,
    /// Roughly how many more rounds the search takes from here, at best.
    pub rounds_left: usize,
}

/// What a search tells its watcher as it goes.
pub trait BisectProgress: Send + Sync {
    fn started(&self, round: usize, commit: &Commit, in_flight: usize);
    fn finished(&self, entry: &LogEntry, title: &str);
}

/// A run in progress: which worktree, which commit, and in which round it started.
struct Running {
    slot: usize,
    commit: usize,
    round: usize,
}

/// The options of one search.
#[derive(Clone, Debug)]
pub struct Options {
    pub jobs: usize,
    pub settings: Settings,
    pub command: Vec<String>,
}

/// Runs the search in the repository at `repo_dir` to its conclusion.
pub async fn bisect(
    repo_dir: &Path,
    range: &Range,
    options: &Options,
    progress: &dyn BisectProgress,
) -> Result<Outcome, BisectError> {
    if options.command.is_empty() {
        return Err(BisectError::Misuse(
            "no command to run: give it after `--`".into(),
        ));
    }
    let history = &range.history;
    let jobs = options.jobs.max(1);
    let finder = CulpritFinder::new(
        history,
        Settings {
            hosts: jobs,
            ..options.settings
        },
    );
    let oids: Vec<Oid> = range
        .commits
        .iter()
        .map(|c| Oid::from_str(&c.sha).map_err(git("read a commit")))
        .collect::<Result<_, _>>()?;
    let workdir = Worktrees::create(repo_dir, jobs, oids[history.tip()]).await?;

    // The bad tip counts as one failure, as `git bisect` takes the user's word for it; but as
    // the user's word, not a run of this search: "no culprit: a flake" (or the tip itself as
    // the culprit) is only said once the tip ran.
    let finder = finder.reusing(vec![(history.tip(), Observed::Fail)], &[]);
    let mut observations: Vec<(usize, Observed)> = Vec::new();
    // Round of each result: one more than the results its test was chosen from.
    let mut result_round: Vec<usize> = Vec::new();
    let mut log = Vec::new();
    let mut running: Vec<Running> = Vec::new();
    let mut tasks: JoinSet<(usize, Result<Option<i32>, String>)> = JoinSet::new();
    let mut free: Vec<usize> = (0..jobs).rev().collect();
    let mut stop = Stop::new()?;
    let found = loop {
        let pending: Vec<usize> = running.iter().map(|r| r.commit).collect();
        match finder.next(&observations, &pending, free.len()) {
            Step::Done(found) => break found,
            Step::Test(commits) => {
                let round = result_round.iter().max().copied().unwrap_or(0) + 1;
                for commit in commits {
                    let Some(slot) = free.pop() else { break };
                    progress.started(round, &range.commits[commit], running.len() + 1);
                    running.push(Running {
                        slot,
                        commit,
                        round,
                    });
                    let dir = workdir.slot(slot);
                    let (oid, command) = (oids[commit], options.command.clone());
                    tasks.spawn(async move { (slot, run_command(&dir, oid, &command).await) });
                }
            }
            Step::Wait => {}
        }
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            signal = stop.signalled() => {
                abort(&mut tasks, &workdir).await;
                return Err(BisectError::Aborted(format!("{signal}; search aborted")));
            }
        };
        let Some(joined) = joined else {
            // Nothing running and nothing to start: the finder must conclude next time.
            continue;
        };
        let (slot, exit) = match joined {
            Ok(done) => done,
            Err(e) => {
                abort(&mut tasks, &workdir).await;
                return Err(BisectError::Aborted(format!("a run failed: {e}")));
            }
        };
        let at = running
            .iter()
            .position(|r| r.slot == slot)
            .ok_or_else(|| BisectError::Aborted("lost track of a run".into()))?;
        let done = running.swap_remove(at);
        free.push(slot);
        let commit = &range.commits[done.commit];
        let result = match exit.and_then(judge_exit) {
            Ok(r) => r,
            Err(why) => {
                abort(&mut tasks, &workdir).await;
                return Err(BisectError::Aborted(format!(
                    "{why} at {} {}; search aborted",
                    short(&commit.sha),
                    commit.title
                )));
            }
        };
        observations.push((done.commit, result));
        result_round.push(done.round);
        let assessed = finder.progress(&observations);
        let standing = assessed.map(|(s, _)| s);
        let left = assessed.map_or(range.commits.len() + 1, |(_, left)| left);
        let entry = LogEntry {
            sha: commit.sha.clone(),
            result,
            round: done.round,
            suspect: standing
                .and_then(|s| s.suspect)
                .map(|c| range.commits[c].sha.clone()),
            probability: standing.map_or(0.0, |s| s.probability),
            candidates: left,
            rounds_left: rounds_bound(left, jobs),
        };
        progress.finished(&entry, &commit.title);
        log.push(entry);
    };
    abort(&mut tasks, &workdir).await;

    let standing = finder.standing(&observations);
    Ok(summary(
        range,
        found,
        standing,
        observations.len(),
        result_round.iter().max().copied().unwrap_or(0),
        log,
    ))
}

/// What the search came to, with the commits it names.
fn summary(
    range: &Range,
    found: Found,
    standing: Option<Standing>,
    executions: usize,
    rounds: usize,
    log: Vec<LogEntry>,
) -> Outcome {
    let commit = |c: usize| range.commits[c].clone();
    let (culprit, probability, candidates) = match &found {
        Found::Culprit {
            commit: c,
            probability,
        } => (Some(commit(*c)), *probability, Vec::new()),
        Found::OneOf {
            commits,
            probability,
        } => (
            None,
            *probability,
            commits.iter().map(|&c| commit(c)).collect(),
        ),
        Found::NoCulprit { probability } => (None, *probability, Vec::new()),
        Found::GaveUp {
            probability,
            suspect,
        } => (
            None,
            *probability,
            suspect.map(commit).into_iter().collect(),
        ),
        Found::Inconsistent { bad, good } => (None, 0.0, vec![commit(*bad), commit(*good)]),
    };
    Outcome {
        found,
        culprit,
        probability,
        candidates,
        executions,
        rounds,
        commits: range.history.len(),
        flake_rate: standing.map_or(0.0, |s| s.flake_rate),
        log,
    }
}

/// Checks `commit` out in `dir` and runs the command there in a process group of its own.
/// What it prints goes to standard error, each line prefixed with the commit (so that the
/// output of several worktrees can be read apart, and `--json` keeps standard output for its
/// object). Whatever the command left running in its group is stopped when it exits, or when
/// the search drops the run.
async fn run_command(dir: &Path, commit: Oid, command: &[String]) -> Result<Option<i32>, String> {
    let at = dir.to_path_buf();
    tokio::task::spawn_blocking(move || worktree::switch(&at, commit))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot check out {commit}: {}", e.message()))?;
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{}`: {e}", command[0]))?;
    let group = ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()));
    let label = short(&commit.to_string()).to_string();
    let out = child.stdout.take().map(|o| forward(o, label.clone()));
    let err = child.stderr.take().map(|e| forward(e, label));
    let status = child
        .wait()
        .await
        .map_err(|e| format!("cannot wait for `{}`: {e}", command[0]))?;
    // Children it left behind hold the pipes open: they go with it.
    drop(group);
    tokio::join!(
        async {
            if let Some(f) = out {
                f.await
            }
        },
        async {
            if let Some(f) = err {
                f.await
            }
        }
    );
    Ok(status.code())
}

/// Copies a command's output to standard error, line by line, each prefixed with `label`.
async fn forward(from: impl tokio::io::AsyncRead + Unpin, label: String) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut lines = tokio::io::BufReader::new(from);
    let mut stderr = tokio::io::stderr();
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if !line.ends_with(b"\n") {
            line.push(b'\n');
        }
        let mut out = format!("{label} | ").into_bytes();
        out.extend_from_slice(&line);
        // One write per line, so that lines of runs side by side do not mix.
        if stderr.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A command's process group, killed whole when dropped: after the command exits, or when the
/// search drops its run (an abort, a signal).
struct ProcessGroup(Option<i32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: killpg only sends a signal; a group that is gone gives ESRCH, ignored.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

/// Stops every run (dropping a run kills its process group) and removes the worktrees.
async fn abort(tasks: &mut JoinSet<(usize, Result<Option<i32>, String>)>, workdir: &Worktrees) {
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    workdir.remove().await;
}

/// The signals that stop a search: Ctrl-C, SIGTERM (a CI's timeout, `kill`) and SIGHUP (the
/// terminal went away).
struct Stop {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> Result<Stop, BisectError> {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind| {
            signal(kind).map_err(|e| BisectError::Aborted(format!("cannot catch signals: {e}")))
        };
        Ok(Stop {
            term: listen(SignalKind::terminate())?,
            hup: listen(SignalKind::hangup())?,
        })
    }

    /// Completes when one of them arrives, naming it.
    async fn signalled(&mut self) -> &'static str {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = self.term.recv() => "terminated (SIGTERM)",
            _ = self.hup.recv() => "hung up (SIGHUP)",
        }
    }
}

/// K worktrees in a temporary directory, removed at the end (also after an abort).
struct Worktrees {
    dir: tempfile::TempDir,
    slots: Vec<PathBuf>,
}

impl Worktrees {
    async fn create(repo_dir: &Path, jobs: usize, start: Oid) -> Result<Worktrees, BisectError> {
        let repo_dir = repo_dir.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let dir = tempfile::Builder::new()
                .prefix("pushgate-bisect-")
                .tempdir()
                .map_err(|e| BisectError::Git(format!("cannot make a work directory: {e}")))?;
            let repo = Repository::open(&repo_dir).map_err(git("open the repository"))?;
            let tag = dir
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Slots are recorded as they are made, so a failure half-way still removes them.
            let mut made = Worktrees {
                dir,
                slots: Vec::with_capacity(jobs),
            };
            for i in 0..jobs {
                let path = made.dir.path().join(format!("{tag}-{i}"));
                worktree::add_detached(&repo, &format!("{tag}-{i}"), &path, start)
                    .map_err(git("add a worktree"))?;
                made.slots.push(path);
            }
            Ok(made)
        })
        .await
        .map_err(|e| BisectError::Git(e.to_string()))?
    }

    fn slot(&self, i: usize) -> PathBuf {
        self.slots[i].clone()
    }

    async fn remove(&self) {
        let slots = self.slots.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for s in slots {
                if let Err(e) = worktree::remove(&s) {
                    tracing::warn!(worktree = %s.display(), error = %e, "could not remove a worktree");
                }
            }
        })
        .await;
    }
}

impl Drop for Worktrees {
    fn drop(&mut self) {
        // The TempDir removes the checkouts; forget their registrations too.
        if let Some(first) = self.slots.first() {
            if let Ok(repo) = Repository::open(first) {
                if let Ok(parent) = Repository::open(repo.commondir()) {
                    drop(repo);
                    let _ = std::fs::remove_dir_all(self.dir.path());
                    worktree::prune_stale(&parent);
                }
            }
        }
    }
}
