//! One flight's driving: while it stands (staging not rewritten, the target not moved aside,
//! its series not replaced), ask the decision what to test next, run those tests at once on
//! the lab, and when the decision can conclude, hand over to the conclusion.

use std::collections::BTreeSet;

use tracing::Instrument;

use super::observations::{earlier_observations, flake_histories, next_attempt, observations};
use super::{oid, BranchOutcome, Earlier, Gate, GateError, Heads};
use crate::config::policy::{NeverPassed, Policy};
use crate::culprit;
use crate::decision::{decide, finder_log, Facts, Next, Observation, Role};
use crate::forge;
use crate::gate::Event;
use crate::hosts::{LeaseRequest, Priority};
use crate::repo::{short, CommitInfo, Mirror, RepoError};
use crate::run::{self, PauseContext, RunPlan};
use crate::sequence::{PauseOn, Sequences};
use crate::store::{FlightRow, RunRow, RunState};

/// How driving a flight ended.
pub(crate) enum Driven {
    Done(BranchOutcome),
    /// The flight was cancelled (staging rewritten, the target moved): plan again.
    Replan,
}

/// What a flight tests: staging, with its heads as last read, or a mailed series (which
/// stands until a newer revision replaces it, and never pushes).
#[derive(Clone, Copy)]
pub(crate) enum Tested {
    Staging(Heads),
    Series,
}

/// How many of a branch's latest step results (and as many per-test results) make the prior
/// of each step's and each test's flake rate: enough to know a test's habits, few enough that
/// neither a long history nor a test fixed long ago weighs.
const FLAKE_HISTORY_STEPS: i64 = 5000;

/// What earlier flights tell this one before it runs anything.
struct Prior {
    /// Steps that have passed on this branch before: a failing one that never did is not a
    /// regression.
    ever_passed: BTreeSet<String>,
    /// Results of these same commits in earlier flights.
    earlier: Vec<Observation>,
    /// Culprits earlier flights named and the flights whose results are reused; the culprits'
    /// indices in this flight's range (those still in it).
    told: Earlier,
    blamed: Vec<usize>,
    /// The tips of the flights that blamed them, where still in the range.
    held: Vec<usize>,
    /// Each step's recent record on good commits: the prior of its flake rate.
    flake_histories: std::collections::BTreeMap<String, culprit::FlakeHistory>,
    finder: culprit::Settings,
}

/// One run a flight asks for: which commit, in which role, which try, which sequence.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    index: usize,
    role: Role,
    attempt: u32,
    sequence: &'a str,
}

impl Gate {
    /// Drives `flight` until it concludes or no longer stands.
    pub(crate) async fn drive(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: FlightRow,
        mut tested: Tested,
    ) -> Result<Driven, GateError> {
        let span = tracing::info_span!("flight", id = flight.id);
        async move {
            if let Tested::Staging(_) = tested {
                self.store
                    .set_branch_status(flight.branch_id, "testing", &testing_status(&flight))
                    .await?;
            }
            let prior = self.prior(policy, &flight).await?;
            // The sequences as they are now, for the whole flight: a reload meanwhile changes
            // the next flight, never this one halfway.
            let rules = self.rules.get();
            let sequences = &rules.sequences;
            let mut fresh = true;
            loop {
                match self
                    .why_stale(policy, mirror, &flight, &mut tested, fresh)
                    .await?
                {
                    Err(outcome) => return Ok(Driven::Done(outcome)),
                    Ok(Some(why)) => {
                        self.cancel(policy, &flight, &why).await?;
                        return Ok(match tested {
                            Tested::Staging(_) => Driven::Replan,
                            Tested::Series => Driven::Done(BranchOutcome::Idle {
                                message: format!("flight {} cancelled: {why}", flight.id),
                            }),
                        });
                    }
                    Ok(None) => {}
                }
                fresh = false;
                let runs = self.store.runs(flight.id).await?;
                let steps = self.store.flight_steps(flight.id).await?;
                let subs = self.store.flight_sub_results(flight.id).await?;
                let observed = observations(&runs, &steps, &subs, &policy.sequences);
                let facts = Facts {
                    n: flight.commits.len(),
                    retries: policy.retries,
                    observations: &observed,
                    ever_passed: &prior.ever_passed,
                    earlier: &prior.earlier,
                    blamed: &prior.blamed,
                    held: &prior.held,
                    never_passed_blocks: policy.never_passed == NeverPassed::Block,
                    flake_histories: &prior.flake_histories,
                    finder: prior.finder,
                };
                match decide(&facts) {
                    Next::Test(tests) => {
                        self.run_tests(policy, sequences, mirror, &flight, &runs, tests)
                            .await?
                    }
                    Next::Conclude(decision) => {
                        let log = finder_log(&facts);
                        if let Tested::Series = tested {
                            return self
                                .conclude_series(policy, &flight, decision, &runs, &steps, &log)
                                .await;
                        }
                        return self
                            .conclude(
                                policy,
                                sequences,
                                mirror,
                                &flight,
                                decision,
                                &runs,
                                &steps,
                                &log,
                                &prior.told,
                            )
                            .await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// What the branch's history says before the flight runs: steps that ever passed, earlier
    /// results of the same commits, and the finder's settings with the branch's flake rate.
    async fn prior(&self, policy: &Policy, flight: &FlightRow) -> Result<Prior, GateError> {
        let ever_passed = self
            .store
            .ever_passed_steps(flight.branch_id, flight.id)
            .await?
            .into_iter()
            .collect();
        let index_of: std::collections::HashMap<&str, usize> = (1..=flight.commits.len())
            .map(|i| (flight.sha(i), i))
            .collect();
        let shas: Vec<&str> = index_of.keys().copied().collect();
        let (old_runs, old_steps) = self
            .store
            .earlier_runs(flight.branch_id, flight.id, &shas)
            .await?;
        let recent = self
            .store
            .recent_step_results(flight.branch_id, flight.id, FLAKE_HISTORY_STEPS)
            .await?;
        let earlier = earlier_observations(&old_runs, &old_steps, &policy.sequences, &index_of);
        let finder = culprit::Settings {
            flake_rate: policy.flake_rate,
            flake_history: Default::default(),
            confidence: policy.confidence,
            hosts: policy.hosts,
            ..Default::default()
        };
        let blames = self
            .store
            .earlier_blames(flight.branch_id, flight.id)
            .await?;
        let mut flights: Vec<i64> = old_runs
            .iter()
            .filter(|r| index_of.contains_key(r.sha.as_str()))
            .filter_map(|r| r.flight_id)
            .collect();
        flights.sort_unstable();
        flights.dedup();
        let mut blamed: Vec<usize> = blames
            .iter()
            .filter_map(|b| index_of.get(b.sha.as_str()).copied())
            .collect();
        blamed.sort_unstable();
        blamed.dedup();
        // The tips of the flights that blamed a commit still in the range failed because of
        // it: its fix, if any, came after them.
        let blaming: std::collections::BTreeSet<i64> = blames
            .iter()
            .filter(|b| index_of.contains_key(b.sha.as_str()))
            .map(|b| b.flight_id)
            .collect();
        let mut held = Vec::new();
        for id in blaming {
            if let Some(f) = self.store.flight(id).await? {
                held.extend(index_of.get(f.tip.as_str()).copied());
            }
        }
        Ok(Prior {
            flake_histories: flake_histories(&recent),
            ever_passed,
            earlier,
            told: Earlier { blames, flights },
            blamed,
            held,
            finder,
        })
    }

    /// Why the flight no longer stands (`Ok(Some)`), or the branch's error when that cannot be
    /// told. Staging's heads are fetched again but for the first look of a pass, which has
    /// just fetched them.
    async fn why_stale(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: &FlightRow,
        tested: &mut Tested,
        fresh: bool,
    ) -> Result<Result<Option<String>, BranchOutcome>, GateError> {
        let heads = match tested {
            Tested::Series => return Ok(Ok(self.series_stale(flight).await?)),
            Tested::Staging(heads) => heads,
        };
        if !fresh {
            *heads = match self.fetch(mirror, policy).await {
                Ok(h) => h,
                Err(e) => {
                    let outcome = self.branch_error(flight.branch_id, policy, e.to_string());
                    return Ok(Err(outcome.await?));
                }
            };
        }
        match self.stale(mirror, policy, flight, *heads).await? {
            Ok(stale) => Ok(Ok(stale)),
            Err(e) => {
                let message = format!("cannot compare staging with flight {}: {e}", flight.id);
                Ok(Err(self
                    .branch_error(flight.branch_id, policy, message)
                    .await?))
            }
        }
    }

    /// Why a running flight no longer stands, if it does not. A git error is returned, not
    /// taken for a rewrite: a flight is cancelled only on evidence.
    async fn stale(
        &self,
        mirror: &Mirror,
        policy: &Policy,
        flight: &FlightRow,
        heads: Heads,
    ) -> Result<Result<Option<String>, RepoError>, GateError> {
        let tip = oid(&flight.tip)?;
        let on_staging = tip == heads.staging
            || match self.is_ancestor(mirror, tip, heads.staging).await {
                Ok(yes) => yes,
                Err(e) => return Ok(Err(e)),
            };
        // Only asked when the tip is still on staging, and of git only when the target has
        // moved from the flight's base (an ancestor of its tip by construction): asking every
        // round walks the whole range, which at Linux's size is most of the gate's own time.
        let target_inside = on_staging
            && (heads.target == oid(&flight.base)? || {
                match self.is_ancestor(mirror, heads.target, tip).await {
                    Ok(yes) => yes,
                    Err(e) => return Ok(Err(e)),
                }
            });
        let (staging, target) = (heads.staging.to_string(), heads.target.to_string());
        Ok(Ok(stale_reason(
            policy,
            flight,
            (&staging, &target),
            on_staging,
            target_inside,
        )))
    }

    /// Runs the tests the decision asked for at once; each runs its missing sequences in turn.
    async fn run_tests(
        &self,
        policy: &Policy,
        sequences: &Sequences,
        mirror: &Mirror,
        flight: &FlightRow,
        runs: &[RunRow],
        tests: Vec<(usize, Role)>,
    ) -> Result<(), GateError> {
        let prefer = preferred_host(runs);
        let tests = tests.into_iter().map(|(index, role)| {
            let (attempt, missing) = next_attempt(runs, index, role, &policy.sequences);
            async move {
                for seq in missing {
                    let run = Attempt {
                        index,
                        role,
                        attempt,
                        sequence: &seq,
                    };
                    self.run(policy, sequences, mirror, flight, run, prefer)
                        .await?;
                }
                Ok::<(), GateError>(())
            }
        });
        for done in futures_util::future::join_all(tests).await {
            done?;
        }
        Ok(())
    }

    /// Runs one sequence on one commit and records it.
    async fn run(
        &self,
        policy: &Policy,
        sequences: &Sequences,
        mirror: &Mirror,
        flight: &FlightRow,
        Attempt {
            index,
            role,
            attempt,
            sequence: sequence_name,
        }: Attempt<'_>,
        prefer: Option<&str>,
    ) -> Result<(), GateError> {
        let sha = flight.sha(index).to_string();
        let sequence = sequences.get(sequence_name).ok_or_else(|| {
            GateError::Internal(format!(
                "the policy names sequence `{sequence_name}`, which is not loaded"
            ))
        })?;
        let run_id = self
            .store
            .create_run(&crate::store::NewRun {
                owner: crate::store::RunOwner::Flight(flight.id),
                index,
                sha: &sha,
                role,
                attempt,
                sequence: sequence_name,
                host: "-",
            })
            .await?;
        let span = tracing::info_span!("run", id = run_id, sha = short(&sha), role = role.as_str());
        async move {
            self.emit(Event::Testing {
                policy: &policy.name,
                flight: flight.id,
                index,
                commits: flight.commits.len(),
                sha: &sha,
                title: flight
                    .commit(index)
                    .map_or("(baseline)", |c| c.title.as_str()),
                role,
                attempt,
                sequence: sequence_name,
            });
            let to = pause_recipients(policy, flight.commit(index));
            let never = PauseOn::Never;
            let needs = if flight.series_id.is_some() {
                run::series_needs(sequence, policy)
            } else {
                run::needs_of(sequence, &policy.needs)
            };
            let run::RunEnd {
                state,
                detail,
                host,
            } = match needs {
                Err(why) => run::RunEnd {
                    state: RunState::Broken,
                    detail: why,
                    host: None,
                },
                Ok(needs) => {
                    let plan = RunPlan {
                        run_id,
                        sequence,
                        sequence_name,
                        repository: mirror.path.clone(),
                        sha: &sha,
                        log_dir: self
                            .settings
                            .logs_dir
                            .join(format!("flight-{}", flight.id))
                            .join(format!("run-{run_id}")),
                        lease: LeaseRequest {
                            run_id,
                            // Untrusted series wait behind the gate and its bisections.
                            priority: priority(role, flight.series_id.is_some()),
                            needs,
                            prefer: prefer.map(str::to_string),
                        },
                        // A series never holds a host for a maintainer to look at.
                        pause_on: if flight.series_id.is_some() {
                            &never
                        } else {
                            &policy.pause_on_fail
                        },
                        pause: PauseContext {
                            to,
                            sha: &sha,
                            subject_prefix: &policy.mail.subject_prefix,
                            host: String::new(),
                            resume_after: policy.pause_resume_after,
                            from: &self.settings.mail_from,
                            public_url: &self.settings.public_url,
                        },
                        flight_id: Some(flight.id),
                    };
                    run::run_on_lab(&self.store, &self.lab, plan).await?
                }
            };
            let error = (state == RunState::Broken).then_some(detail.as_str());
            self.store.finish_run(run_id, state, error).await?;
            self.emit(Event::Tested {
                policy: &policy.name,
                flight: flight.id,
                sha: &sha,
                role,
                attempt,
                state,
                detail: &detail,
                host: host.as_deref().unwrap_or(""),
            });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Cancels a flight that no longer stands, and says so on its commits.
    pub(super) async fn cancel(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        why: &str,
    ) -> Result<(), GateError> {
        let reports = match self.report_target(policy) {
            Some(target) if flight.series_id.is_none() => {
                forge::reports::cancelled(&target, flight, why, &self.settings.public_url)
            }
            _ => Vec::new(),
        };
        self.store.cancel_flight(flight, why, &reports).await?;
        self.emit(Event::Cancelled {
            policy: &policy.name,
            flight: flight.id,
            reason: why,
        });
        Ok(())
    }
}

/// The branch's status line while a flight tests it.
fn testing_status(flight: &FlightRow) -> String {
    format!(
        "flight {}: testing {} commit{} up to {}",
        flight.id,
        flight.commits.len(),
        if flight.commits.len() == 1 { "" } else { "s" },
        short(&flight.tip)
    )
}

/// Why a staging flight no longer stands, from what git says of its tip and the heads
/// (`staging`, `target`): its tip left staging, or the target moved outside its range.
fn stale_reason(
    policy: &Policy,
    flight: &FlightRow,
    (staging, target): (&str, &str),
    tip_on_staging: bool,
    target_inside: bool,
) -> Option<String> {
    if !tip_on_staging {
        return Some(format!(
            "{} was rewritten: the tested tip {} is no longer on it (now {})",
            policy.staging,
            short(&flight.tip),
            short(staging)
        ));
    }
    if !target_inside {
        return Some(format!(
            "{} moved to {}, which the tested range does not contain",
            policy.target,
            short(target)
        ));
    }
    None
}

/// Which queue a run waits in: untrusted series behind everything of the gate, bisections
/// behind tips and baselines.
fn priority(role: Role, series: bool) -> Priority {
    match role {
        _ if series => Priority::Periodic,
        Role::Bisect => Priority::Bisection,
        _ => Priority::Gate,
    }
}

/// Confirmations go back to the host that saw the last failure.
fn preferred_host(runs: &[RunRow]) -> Option<&str> {
    runs.iter()
        .rev()
        .find(|r| r.state == RunState::Fail)
        .map(|r| r.host.as_str())
}

/// Who hears of a paused run: the list, and the tested commit's author if the policy mails
/// authors.
fn pause_recipients(policy: &Policy, commit: Option<&CommitInfo>) -> Vec<String> {
    let mut to: Vec<String> = policy.mail.list.iter().cloned().collect();
    if let Some(c) = commit.filter(|_| policy.mail.authors) {
        to.push(format!("{} <{}>", c.author_name, c.author_email));
    }
    to
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;
    use crate::gate::tests::{flight, policy};

    #[test]
    fn a_flight_stands_while_its_tip_is_on_staging_and_the_target_inside() {
        let (policy, flight) = (policy(), flight(Verdict::Pass));
        let heads = (&*"c".repeat(40), &*"d".repeat(40));
        assert_eq!(stale_reason(&policy, &flight, heads, true, true), None);
        assert_eq!(
            stale_reason(&policy, &flight, heads, false, false).unwrap(),
            "staging was rewritten: the tested tip 02ababababab is no longer on it (now \
             cccccccccccc)"
        );
        assert_eq!(
            stale_reason(&policy, &flight, heads, true, false).unwrap(),
            "master moved to dddddddddddd, which the tested range does not contain"
        );
    }

    #[test]
    fn series_wait_behind_the_gate_and_bisections_behind_tips() {
        assert_eq!(priority(Role::Tip, false), Priority::Gate);
        assert_eq!(priority(Role::Baseline, false), Priority::Gate);
        assert_eq!(priority(Role::Bisect, false), Priority::Bisection);
        for role in Role::ALL {
            assert_eq!(priority(role, true), Priority::Periodic);
        }
    }

    #[test]
    fn a_confirmation_goes_to_the_host_of_the_last_failure() {
        let mut runs = crate::gate::tests::runs();
        assert_eq!(preferred_host(&runs), Some("b"));
        runs.retain(|r| r.state != RunState::Fail);
        assert_eq!(preferred_host(&runs), None);
    }

    #[test]
    fn a_pause_is_told_to_the_list_and_the_author_if_authors_are_mailed() {
        let mut policy = policy();
        let flight = flight(Verdict::Pass);
        assert_eq!(
            pause_recipients(&policy, flight.commit(1)),
            [
                "xen-devel@lists.example.org",
                "Ann Author <ann@example.org>"
            ]
        );
        policy.mail.authors = false;
        assert_eq!(
            pause_recipients(&policy, flight.commit(1)),
            ["xen-devel@lists.example.org"]
        );
    }
}
