//! What unit tests of several modules build alike: a policy with its sequences, commits, a
//! flight, its runs and steps, as the config and the store give them.

use std::path::Path;

use crate::config::Policy;
use crate::decision::{Role, Verdict};
use crate::repo::CommitInfo;
use crate::sequence::Sequences;
use crate::store::{FlightRow, FlightState, RunRow, RunState, StepRow};

pub const ANN: (&str, &str) = ("Ann Author", "ann@example.org");
pub const BOB: (&str, &str) = ("Bob Builder", "bob@example.org");

/// A policy for xen's staging (list `xen-devel@lists.example.org`) and its sequence `smoke`
/// (steps `build` and `test`), written under `dir`.
pub fn policy_in(dir: &Path) -> (Policy, Sequences) {
    std::fs::create_dir_all(dir.join("sequences")).unwrap();
    std::fs::write(
        dir.join("sequences/smoke.toml"),
        "[[step]]\nname = \"build\"\ncommand = \"make\"\ntimeout = \"10m\"\n\n\
         [[step]]\nname = \"test\"\ncommand = \"make check\"\ntimeout = \"10m\"\n",
    )
    .unwrap();
    let sequences = crate::sequence::load_dir(&dir.join("sequences"), &[]).unwrap();
    let policy = Policy::parse(
        &dir.join("xen.toml"),
        "repository = \"https://xenbits.example.org/xen.git\"\nsequences = [\"smoke\"]\n\
         [mail]\nlist = \"xen-devel@lists.example.org\"\n",
        &sequences,
    )
    .unwrap();
    (policy, sequences)
}

/// The same policy, for tests that need no sequence files afterwards.
pub fn policy() -> Policy {
    policy_in(tempfile::tempdir().unwrap().path()).0
}

/// Commit `n` of a range (its sha is `n` in two digits, then `ab`s).
pub fn commit(n: usize, title: &str, author: (&str, &str)) -> CommitInfo {
    CommitInfo {
        sha: format!("{n:02}{}", "ab".repeat(19)),
        title: title.into(),
        author_name: author.0.into(),
        author_email: author.1.into(),
        committer_name: "Mia Maintainer".into(),
        committer_email: "mia@example.org".into(),
    }
}

/// Flight 7 of `commits` on the base `00…`, done with `verdict` and, for a regression, the
/// culprit at its (one-based) index.
pub fn flight(commits: Vec<CommitInfo>, verdict: Verdict, culprit: Option<usize>) -> FlightRow {
    FlightRow {
        id: 7,
        branch_id: 1,
        candidate_id: 3,
        base: "00".repeat(20),
        tip: commits.last().map(|c| c.sha.clone()).unwrap_or_default(),
        state: FlightState::Done,
        verdict: Some(verdict),
        culprit: culprit.map(|i| commits[i - 1].sha.clone()),
        pushed_to: None,
        reason: String::new(),
        created_at: 0,
        finished_at: Some(0),
        finder_log: Vec::new(),
        series_id: None,
        commits,
    }
}

/// A run of flight 7's sequence `smoke` on host `local`.
pub fn run(id: i64, index: usize, sha: &str, role: Role, attempt: u32, state: RunState) -> RunRow {
    RunRow {
        id,
        flight_id: Some(7),
        job_id: None,
        commit_index: index,
        sha: sha.into(),
        role,
        attempt,
        sequence: "smoke".into(),
        host: "local".into(),
        state,
        error: None,
        created_at: 0,
        finished_at: Some(0),
    }
}

/// A step of run `run_id`; every status but `pass` exited 1.
pub fn step(id: i64, run_id: i64, name: &str, status: &str, log: Option<&Path>) -> StepRow {
    StepRow {
        id,
        run_id,
        position: 0,
        name: name.into(),
        status: status.into(),
        exit_code: (status != "pass").then_some(1),
        log_path: log.map(|p| p.display().to_string()),
        started_at: Some(0),
        finished_at: Some(0),
    }
}
