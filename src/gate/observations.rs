//! Turning stored runs into the decision's observations.
//!
//! A test of a commit is one run of each of the policy's sequences with the same index, role
//! and attempt. Only complete tests are observations; an attempt that a crash cut short is
//! finished by running the sequences it is missing, never by repeating the ones it has.

use std::collections::{BTreeMap, BTreeSet};

use crate::decision::{Observation, Outcome, Role};
use crate::sequence::StepStatus;
use crate::store::{RunRow, RunState, StepRow, SubResultRow};

/// A test: the runs of one flight, commit, role and attempt.
type Key = (Option<i64>, usize, Role, u32);

fn finished(run: &RunRow) -> bool {
    matches!(
        run.state,
        RunState::Pass | RunState::Fail | RunState::Broken
    )
}

/// The complete tests of a flight, in the order they finished.
///
/// Per-test results (`subs`) count as tests of their own, named `sequence/step::test`, so that
/// a step that failed before and fails again for a new test is still seen to regress.
pub fn observations(
    runs: &[RunRow],
    steps: &[StepRow],
    subs: &[SubResultRow],
    sequences: &[String],
) -> Vec<Observation> {
    let mut groups: BTreeMap<Key, Vec<&RunRow>> = BTreeMap::new();
    for run in runs.iter().filter(|r| finished(r)) {
        groups
            .entry((run.flight_id, run.commit_index, run.role, run.attempt))
            .or_default()
            .push(run);
    }
    let mut complete: Vec<(i64, Observation)> = groups
        .into_iter()
        .filter(|(_, group)| {
            sequences
                .iter()
                .all(|s| group.iter().any(|r| &r.sequence == s))
        })
        .map(|((_, index, role, _), group)| {
            let last_id = group.iter().map(|r| r.id).max().unwrap_or(0);
            (
                last_id,
                Observation {
                    index,
                    role,
                    outcome: outcome(&group, steps, subs),
                },
            )
        })
        .collect();
    complete.sort_by_key(|(id, _)| *id);
    complete.into_iter().map(|(_, o)| o).collect()
}

fn outcome(group: &[&RunRow], steps: &[StepRow], subs: &[SubResultRow]) -> Outcome {
    if let Some(broken) = group.iter().find(|r| r.state == RunState::Broken) {
        return Outcome::Broken {
            reason: broken
                .error
                .clone()
                .unwrap_or_else(|| "the host failed".into()),
        };
    }
    let (mut failed, mut passed) = (BTreeSet::new(), BTreeSet::new());
    let mut not_started = BTreeSet::new();
    for run in group {
        for step in steps.iter().filter(|s| s.run_id == run.id) {
            let name = format!("{}/{}", run.sequence, step.name);
            match step.status.as_str() {
                "pass" => {
                    passed.insert(name.clone());
                }
                "fail" | "timeout" => {
                    if step.position == 0 && did_not_start(step.exit_code) {
                        not_started.insert(name.clone());
                    }
                    failed.insert(name.clone());
                }
                _ => {}
            }
            for sub in subs.iter().filter(|r| r.step_id == step.id) {
                let test = format!("{name}::{}", sub.name);
                match sub.status.as_str() {
                    "pass" => {
                        passed.insert(test);
                    }
                    "fail" | "error" => {
                        failed.insert(test);
                    }
                    _ => {}
                }
            }
        }
    }
    Outcome::of(failed, passed, not_started)
}

/// Whether a step's exit says its command never ran: POSIX shells exit 127 when the command is
/// not found and 126 when it cannot be executed (every host runs steps through `sh -c`).
fn did_not_start(exit_code: Option<i64>) -> bool {
    matches!(exit_code, Some(126 | 127))
}

/// The tests that earlier flights made of this flight's commits, as this flight's bisection
/// tests (same sha, this flight's index). Baseline tests are left out: the baseline is not in
/// the range.
pub fn earlier_observations(
    runs: &[RunRow],
    steps: &[StepRow],
    sequences: &[String],
    index_of: &std::collections::HashMap<&str, usize>,
) -> Vec<Observation> {
    let mapped: Vec<RunRow> = runs
        .iter()
        .filter(|r| r.role != Role::Baseline)
        .filter_map(|r| {
            let index = *index_of.get(r.sha.as_str())?;
            Some(RunRow {
                commit_index: index,
                role: Role::Bisect,
                ..r.clone()
            })
        })
        .collect();
    observations(&mapped, steps, &[], sequences)
}

/// What a branch's recent history says of each test's flakiness (`sequence/step`): its runs
/// on commits where it also passed (so good for it: a bad commit never passes), and how many of
/// those failed. The finder's prior of the flake rate when the policy does not set one, per
/// step, since one flaky step must not make every other step's failures look like flakes.
pub fn flake_histories(
    recent: &[(String, String, StepStatus)],
) -> BTreeMap<String, crate::culprit::FlakeHistory> {
    let mut per: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for (sha, step, status) in recent {
        let e = per.entry((step.as_str(), sha.as_str())).or_default();
        match status {
            StepStatus::Pass => e.0 += 1,
            StepStatus::Fail | StepStatus::Timeout => e.1 += 1,
            _ => {}
        }
    }
    let mut out: BTreeMap<String, crate::culprit::FlakeHistory> = BTreeMap::new();
    for ((step, _), (passes, fails)) in per {
        if passes > 0 {
            let h = out.entry(step.to_string()).or_default();
            h.runs += passes + fails;
            h.fails += fails;
        }
    }
    out
}

/// The attempt to make next for a commit in a role, and which sequences it still needs.
pub fn next_attempt(
    runs: &[RunRow],
    index: usize,
    role: Role,
    sequences: &[String],
) -> (u32, Vec<String>) {
    let mine: Vec<&RunRow> = runs
        .iter()
        .filter(|r| r.commit_index == index && r.role == role && finished(r))
        .collect();
    let mut attempt = 1;
    loop {
        let done: Vec<&String> = sequences
            .iter()
            .filter(|s| {
                mine.iter()
                    .any(|r| r.attempt == attempt && &r.sequence == *s)
            })
            .collect();
        if done.len() < sequences.len() {
            let missing = sequences
                .iter()
                .filter(|s| !done.contains(s))
                .cloned()
                .collect();
            return (attempt, missing);
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: i64, index: usize, attempt: u32, sequence: &str, state: RunState) -> RunRow {
        RunRow {
            id,
            flight_id: Some(1),
            job_id: None,
            commit_index: index,
            sha: format!("{index:040}"),
            role: Role::Bisect,
            attempt,
            sequence: sequence.into(),
            host: "local".into(),
            state,
            error: (state == RunState::Broken).then(|| "ssh: connection reset".into()),
            created_at: 0,
            finished_at: Some(0),
        }
    }

    fn step(run_id: i64, name: &str, status: &str) -> StepRow {
        StepRow {
            id: 0,
            run_id,
            position: 0,
            name: name.into(),
            status: status.into(),
            exit_code: None,
            log_path: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_first_step_whose_command_is_missing_did_not_start_and_a_later_one_only_failed() {
        let seqs = vec!["a".to_string(), "b".to_string()];
        let runs = vec![
            run(1, 1, 1, "a", RunState::Fail),
            run(2, 1, 1, "b", RunState::Fail),
        ];
        let mut steps = vec![
            step(1, "first", "fail"),
            step(1, "second", "fail"),
            step(2, "build", "fail"),
            step(2, "test", "fail"),
        ];
        // Sequence a: its first step exits 127 (not found); b: a step after the first does,
        // and b's first step fails in earnest (exit 1).
        let codes = [(0, Some(127)), (1, Some(1)), (0, Some(1)), (1, Some(127))];
        for (s, (position, code)) in steps.iter_mut().zip(codes) {
            s.position = position;
            s.exit_code = code;
        }
        let obs = observations(&runs, &steps, &[], &seqs);
        match &obs[0].outcome {
            Outcome::Fail { not_started, .. } => {
                assert_eq!(not_started, &BTreeSet::from(["a/first".to_string()]))
            }
            other => panic!("{other:?}"),
        }
        assert!(did_not_start(Some(126)) && !did_not_start(Some(2)) && !did_not_start(None));
    }

    #[test]
    fn a_test_counts_only_once_every_sequence_has_run() {
        let seqs = vec!["a".to_string(), "b".to_string()];
        let runs = vec![
            run(1, 3, 1, "a", RunState::Pass),
            run(2, 3, 1, "b", RunState::Fail),
            run(3, 5, 1, "a", RunState::Pass),
            run(4, 5, 1, "b", RunState::Aborted),
        ];
        let steps = vec![
            step(1, "x", "pass"),
            step(2, "y", "timeout"),
            step(2, "z", "blocked"),
        ];
        let obs = observations(&runs, &steps, &[], &seqs);
        assert_eq!(obs.len(), 1);
        assert_eq!(
            obs[0].outcome,
            Outcome::Fail {
                failed: ["b/y".to_string()].into(),
                passed: ["a/x".to_string()].into(),
                not_started: BTreeSet::new(),
            }
        );
        // Commit 5's attempt 1 lacks `b` (aborted): only `b` is run again, as attempt 1.
        assert_eq!(
            next_attempt(&runs, 5, Role::Bisect, &seqs),
            (1, vec!["b".to_string()])
        );
        assert_eq!(
            next_attempt(&runs, 3, Role::Bisect, &seqs),
            (2, seqs.clone())
        );
        assert_eq!(next_attempt(&runs, 3, Role::Tip, &seqs), (1, seqs.clone()));
    }

    #[test]
    fn a_broken_run_breaks_the_test() {
        let seqs = vec!["a".to_string()];
        let runs = vec![run(1, 2, 1, "a", RunState::Broken)];
        let obs = observations(&runs, &[], &[], &seqs);
        assert!(matches!(&obs[0].outcome, Outcome::Broken { reason } if reason.contains("ssh")));
    }

    #[test]
    fn each_step_keeps_its_own_flake_record_on_good_commits() {
        let r = |sha: &str, step: &str, status| (sha.to_string(), step.to_string(), status);
        let recent = vec![
            // c1 is good for smoke/flaky (it passed once), which failed there once too.
            r("c1", "smoke/flaky", StepStatus::Pass),
            r("c1", "smoke/flaky", StepStatus::Fail),
            r("c1", "smoke/solid", StepStatus::Pass),
            // c2 never passed smoke/flaky: its failure may be a real one, so it is not counted.
            r("c2", "smoke/flaky", StepStatus::Timeout),
            r("c2", "smoke/solid", StepStatus::Pass),
            r("c2", "smoke/solid", StepStatus::Pass),
        ];
        let h = flake_histories(&recent);
        let flaky = h["smoke/flaky"];
        let solid = h["smoke/solid"];
        assert_eq!((flaky.runs, flaky.fails), (2, 1));
        assert_eq!((solid.runs, solid.fails), (3, 0));
    }
}
