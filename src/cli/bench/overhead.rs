//! `pushgate bench overhead`: the gate's own cost per decision, apart from the test steps.
//!
//! A real `serve` (gate loop, web server, SQLite store) runs in this process against a bare
//! upstream repository. Each iteration commits to staging the way a push does (a new commit,
//! then the ref update), calls `POST /hooks/git` as a post-receive hook would, and waits for
//! master to move. From the store's timestamps it takes (a) push to first step started and
//! (b) last step finished to master moved. Beside them, the same git work done by the git CLI
//! (fetch + worktree add; push) gives the floor that any gate pays.

use std::time::{Duration, Instant};

use git2::{Oid, Repository, Signature};
use serde::Serialize;

use super::{fail, git, served, timed, BenchError, Report, Stats};
use pushgate::store::now_ms;

/// The target from the push-gate issue, per direction.
pub const BOUND_MS: f64 = 200.0;

#[derive(Debug, Serialize)]
pub struct OverheadReport {
    pub iterations: usize,
    pub bound_ms: f64,
    pub push_to_first_step: Stats,
    pub last_step_to_master_moved: Stats,
    /// `git fetch` + `git worktree add` of the new commit, by the git CLI.
    pub git_fetch_and_checkout: Stats,
    /// `git push` of one commit, by the git CLI.
    pub git_push: Stats,
    pub samples_to_first_step_ms: Vec<f64>,
    pub samples_to_master_ms: Vec<f64>,
}

impl Report for OverheadReport {
    fn table(&self) -> String {
        let row = |name: &str, s: &Stats, git: &Stats| {
            format!(
                "{name:<30} {:>8.1} {:>8.1} {:>8.1} {:>10.3} {:>12.1} {:>9.2}\n",
                s.median_ms,
                s.p90_ms,
                s.max_ms,
                s.median_ms / self.bound_ms,
                git.median_ms,
                s.median_ms / git.median_ms.max(0.001)
            )
        };
        format!(
            "pushgate overhead per decision: local provisioner, one `true` step, SQLite, {} iterations\n\
             {:<30} {:>8} {:>8} {:>8} {:>10} {:>12} {:>9}\n{}{}",
            self.iterations,
            "",
            "median",
            "p90",
            "max",
            "med/200ms",
            "git CLI med",
            "med/git",
            row("staging push -> first step", &self.push_to_first_step, &self.git_fetch_and_checkout),
            row("last step -> master moved", &self.last_step_to_master_moved, &self.git_push),
        )
    }
}

const SEQUENCE: &str = "[[step]]\nname = \"noop\"\ncommand = \"true\"\ntimeout = \"1m\"\n";
const POLICY: &str = "repository = \"../upstream.git\"\nsequences = [\"quick\"]\nretries = 0\n[mail]\nauthors = false\ncommitters = false\n";

fn new_commit(repo: &Repository, parent: Oid, n: usize) -> Result<Oid, git2::Error> {
    let sig = Signature::now("Bench", "bench@example.org")?;
    let parent = repo.find_commit(parent)?;
    let mut tree = repo.treebuilder(Some(&parent.tree()?))?;
    let blob = repo.blob(format!("iteration {n}\n").as_bytes())?;
    tree.insert("COUNTER", blob, 0o100644)?;
    let tree = repo.find_tree(tree.write()?)?;
    repo.commit(
        None,
        &sig,
        &sig,
        &format!("bench: iteration {n}"),
        &tree,
        &[&parent],
    )
}

#[derive(clap::Args)]
pub struct Args {
    /// Pushes to staging, each gated to master.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn measure(args: &Args) -> Result<OverheadReport, BenchError> {
    overhead(args.iterations.max(1)).await
}

/// Runs the overhead benchmark.
///
/// One function on purpose: it reads as the script it is (make the upstream, start the
/// service, push and time each iteration, then time git doing the same work), and its steps
/// share the service, the repositories and the clock that pieces would pass back and forth.
async fn overhead(iterations: usize) -> Result<OverheadReport, BenchError> {
    let tmp = tempfile::tempdir().map_err(fail)?;
    let dir = tmp.path();
    let upstream_path = dir.join("upstream.git");
    let upstream = Repository::init_bare(&upstream_path).map_err(fail)?;
    let sig = Signature::now("Bench", "bench@example.org").map_err(fail)?;
    let tree = upstream
        .find_tree(
            upstream
                .treebuilder(None)
                .and_then(|t| t.write())
                .map_err(fail)?,
        )
        .map_err(fail)?;
    let root = upstream
        .commit(None, &sig, &sig, "root", &tree, &[])
        .map_err(fail)?;
    for b in ["master", "staging"] {
        upstream
            .reference(&format!("refs/heads/{b}"), root, true, "bench")
            .map_err(fail)?;
    }
    let served = served::serve(dir, POLICY, SEQUENCE).await?;
    let store = served.service.store().clone();

    let mut to_first_step = Vec::new();
    let mut to_master = Vec::new();
    let mut head = root;
    for n in 0..iterations {
        let new = new_commit(&upstream, head, n).map_err(fail)?;
        let t0 = now_ms();
        upstream
            .reference("refs/heads/staging", new, true, "bench: push")
            .map_err(fail)?;
        served
            .post_hook(&head.to_string(), &new.to_string(), "staging")
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let flight = loop {
            let master = upstream.refname_to_id("refs/heads/master").map_err(fail)?;
            if master == new {
                let branch = store.branches().await.map_err(fail)?;
                let flights = store.recent_flights(branch[0].id, 1).await.map_err(fail)?;
                if let Some(f) = flights
                    .into_iter()
                    .next()
                    .filter(|f| f.tip == new.to_string())
                {
                    if store.push_of(f.id).await.map_err(fail)?.is_some() {
                        break f;
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "iteration {n}: master did not move within 60 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let steps = store.flight_steps(flight.id).await.map_err(fail)?;
        let push = store
            .push_of(flight.id)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail("no push recorded"))?;
        let first = steps
            .iter()
            .filter_map(|s| s.started_at)
            .min()
            .ok_or_else(|| fail("no step started"))?;
        let last = steps
            .iter()
            .filter_map(|s| s.finished_at)
            .max()
            .ok_or_else(|| fail("no step finished"))?;
        to_first_step.push((first - t0) as f64);
        to_master.push((push.pushed_at - last) as f64);
        head = new;
    }
    served.stop().await;

    // The git CLI doing the same git work, on a scratch clone, for scale.
    let scratch = dir.join("scratch");
    let remote = dir.join("remote.git");
    git(
        dir,
        &[
            "clone",
            "-q",
            "--bare",
            upstream_path.to_str().unwrap_or("."),
            remote.to_str().unwrap_or("."),
        ],
    )?;
    git(
        dir,
        &["init", "-q", "--bare", scratch.to_str().unwrap_or(".")],
    )?;
    let mut fetch_checkout = Vec::new();
    let mut push = Vec::new();
    let url = upstream_path.display().to_string();
    for n in 0..iterations {
        let new = new_commit(&upstream, head, iterations + n).map_err(fail)?;
        upstream
            .reference("refs/heads/staging", new, true, "bench: push")
            .map_err(fail)?;
        let wt = dir.join(format!("wt-{n}"));
        let wt_s = wt.display().to_string();
        fetch_checkout.push(timed(|| {
            git(
                &scratch,
                &[
                    "fetch",
                    "-q",
                    &url,
                    "+refs/heads/staging:refs/remotes/origin/staging",
                ],
            )?;
            git(
                &scratch,
                &["worktree", "add", "-q", "--detach", &wt_s, &new.to_string()],
            )
            .map(drop)
        })?);
        git(&scratch, &["worktree", "remove", "--force", &wt_s])?;
        push.push(timed(|| {
            git(
                &scratch,
                &[
                    "push",
                    "-q",
                    remote.to_str().unwrap_or("."),
                    &format!("{new}:refs/heads/master"),
                ],
            )
            .map(drop)
        })?);
        head = new;
    }

    Ok(OverheadReport {
        iterations,
        bound_ms: BOUND_MS,
        push_to_first_step: Stats::of(&to_first_step),
        last_step_to_master_moved: Stats::of(&to_master),
        git_fetch_and_checkout: Stats::of(&fetch_checkout),
        git_push: Stats::of(&push),
        samples_to_first_step_ms: to_first_step,
        samples_to_master_ms: to_master,
    })
}
