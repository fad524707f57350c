//! A flight's conclusion: push what the decision allows (fast-forward only, never forced; a
//! moved target re-plans, a refusal is reported), then record the conclusion, its mail and its
//! forge reports in one transaction, so that a crash either did all of it or none.

use git2::Oid;

use super::{blocking, BranchOutcome, Driven, Gate, GateError};
use crate::config::policy::{Mode, Policy};
use crate::decision::{Decision, FinderStep, Verdict};
use crate::forge;
use crate::gate::Event;
use crate::notify::{self, FlightFacts};
use crate::repo::{short, Mirror, RepoError};
use crate::store::{BlameRow, Conclusion, FlightRow, RunRow, StepRow};

/// What earlier flights of the branch told this one: the culprits they named, and which of
/// them gave results this flight reused.
#[derive(Clone, Debug, Default)]
pub(crate) struct Earlier {
    pub blames: Vec<BlameRow>,
    pub flights: Vec<i64>,
}

/// The decision's culprits as stored.
pub(crate) fn blame_rows(flight: &FlightRow, decision: &Decision) -> Vec<BlameRow> {
    decision
        .culprits
        .iter()
        .map(|b| BlameRow {
            flight_id: flight.id,
            sha: flight.sha(b.index).to_string(),
            steps: b.steps.iter().cloned().collect(),
            probability: b.probability,
        })
        .collect()
}

impl Gate {
    /// Pushes what the decision allows, then records the conclusion and its mail at once.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn conclude(
        &self,
        policy: &Policy,
        sequences: &crate::sequence::Sequences,
        mirror: &Mirror,
        flight: &FlightRow,
        decision: Decision,
        runs: &[RunRow],
        run_steps: &[StepRow],
        finder_log: &[FinderStep],
        earlier: &Earlier,
    ) -> Result<Driven, GateError> {
        let push_sha = decision.push_to.map(|i| flight.sha(i).to_string());
        let mut push = self.store.push_of(flight.id).await?;
        let mut would_push = None;
        let mut reason = decision.reason.clone();
        let mut refused = false;
        match push_step(push_sha, policy.mode, push.is_some()) {
            PushStep::WouldPush(sha) => {
                reason.push_str(&format!(
                    " (report-only: would have pushed {} to {})",
                    short(&sha),
                    policy.target
                ));
                would_push = Some(sha);
            }
            PushStep::Push(sha) => {
                let sha = &sha;
                match self.fast_forward(policy, mirror, flight, sha).await {
                    Ok(Some(old)) => {
                        self.store
                            .record_push(flight, &policy.target, &old, sha)
                            .await?;
                        self.emit(Event::Pushed {
                            policy: &policy.name,
                            flight: flight.id,
                            target: &policy.target,
                            sha,
                        });
                        push = self.store.push_of(flight.id).await?;
                    }
                    Ok(None) => reason.push_str(&format!(
                        " ({} already contains {}: nothing to push)",
                        policy.target,
                        short(sha)
                    )),
                    Err(PushFailure::Moved(why)) => {
                        self.cancel(policy, flight, &why).await?;
                        return Ok(Driven::Replan);
                    }
                    Err(PushFailure::Refused(message)) => {
                        refused = true;
                        reason.push_str(&format!(
                            " (but {} refused the push of {} to {}: {message}; nothing was \
                             pushed, and pushgate never forces: lift the rule or push by hand)",
                            policy.repository,
                            short(sha),
                            policy.target
                        ));
                    }
                    Err(PushFailure::Repo(e)) => {
                        // The flight stays running: the next pass tries the push again.
                        let message = format!("decided, but the push failed: {e}");
                        return Ok(Driven::Done(
                            self.branch_error(flight.branch_id, policy, message).await?,
                        ));
                    }
                }
            }
            PushStep::Nothing => {}
        }

        let conclusion = Conclusion {
            verdict: decision.verdict,
            culprit: decision.culprit().map(|i| flight.sha(i).to_string()),
            blames: blame_rows(flight, &decision),
            pushed_to: push.as_ref().map(|p| p.new_sha.clone()),
            reason,
            finder_log: notify::finder_lines(flight, finder_log),
        };
        // The runs the decision was made from: concluding runs nothing more.
        let mails = notify::compose(&FlightFacts {
            policy,
            flight,
            conclusion: &conclusion,
            culprits: &decision.culprits,
            steps: &decision.steps,
            not_gating: &decision.not_gating,
            blamed_before: &earlier.blames,
            reused_from: &earlier.flights,
            push: push.as_ref(),
            would_push: would_push.as_deref(),
            runs,
            run_steps,
            finder_log,
            sequences,
            public_url: &self.settings.public_url,
            from: &self.settings.mail_from,
        })?;
        let reports = match self.report_target(policy) {
            Some(target) => forge::reports::concluded(
                &target,
                flight,
                &forge::Outcome {
                    verdict: decision.verdict,
                    reason: &conclusion.reason,
                    passed_up_to: decision.push_to.filter(|_| !refused),
                    report_only: policy.mode == Mode::ReportOnly,
                    culprit: decision.culprit(),
                },
                &self.settings.public_url,
            ),
            None => Vec::new(),
        };
        let state = branch_state(decision.verdict, refused);
        self.store
            .finish_flight(flight, &conclusion, &mails, &reports, state)
            .await?;
        Ok(self.concluded(policy, flight, conclusion))
    }

    /// Says a recorded conclusion and hands it back as the flight's outcome.
    pub(crate) fn concluded(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        conclusion: Conclusion,
    ) -> Driven {
        self.emit(Event::Concluded {
            policy: &policy.name,
            flight: flight.id,
            verdict: conclusion.verdict,
            reason: &conclusion.reason,
        });
        Driven::Done(BranchOutcome::Decided {
            flight: flight.id,
            verdict: conclusion.verdict,
            pushed_to: conclusion.pushed_to,
            culprit: conclusion.culprit,
            reason: conclusion.reason,
        })
    }

    /// Moves the target to `sha` if that is a fast-forward from where it is now. Returns the
    /// old head, or `None` when the target already contains `sha`.
    async fn fast_forward(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: &FlightRow,
        sha: &str,
    ) -> Result<Option<String>, PushFailure> {
        let new = Oid::from_str(sha).map_err(|e| PushFailure::Refused(e.to_string()))?;
        let m = mirror.clone();
        let target = policy.target.clone();
        let base = flight.base.clone();
        blocking(move || {
            let now = m.fetch(&[&target])?[&target];
            if now == new {
                // Pushed before a crash, not yet recorded: record it, do not push again.
                return Ok(Ok(Some(base)));
            }
            if m.is_ancestor(new, now)? {
                return Ok(Ok(None));
            }
            if !m.is_ancestor(now, new)? {
                return Ok(Err(PushFailure::Moved(format!(
                    "{target} moved to {}, and {} is not a fast-forward from it",
                    short(&now.to_string()),
                    short(&new.to_string())
                ))));
            }
            match m.push(new, &target, now) {
                Ok(()) => Ok(Ok(Some(now.to_string()))),
                Err(RepoError::Rejected { message, .. }) => {
                    // Refused because the branch moved meanwhile (re-plan), or for a reason
                    // of the server's, such as a protection rule (report; never force).
                    let after = m.fetch(&[&target])?[&target];
                    if after != now {
                        Ok(Err(PushFailure::Moved(format!(
                            "the push to {target} was refused ({message}): it moved to {}; \
                             re-planning",
                            short(&after.to_string())
                        ))))
                    } else {
                        Ok(Err(PushFailure::Refused(message)))
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(PushFailure::Repo)?
    }
}

enum PushFailure {
    /// The target is not where the flight expects: re-plan.
    Moved(String),
    /// The server refused although the target had not moved (a protection rule, a hook):
    /// the decision stands, unpushed, and says why.
    Refused(String),
    /// The remote could not be reached: try again later.
    Repo(RepoError),
}

/// What a conclusion does about the target.
#[derive(Debug, PartialEq, Eq)]
enum PushStep {
    Nothing,
    /// Report-only: say where the target would have gone.
    WouldPush(String),
    Push(String),
}

/// The decision's commit goes to the target unless the policy only reports, or it was pushed
/// already (before a crash, recorded).
fn push_step(decided: Option<String>, mode: Mode, pushed_already: bool) -> PushStep {
    match (decided, mode) {
        (Some(sha), Mode::ReportOnly) => PushStep::WouldPush(sha),
        (Some(sha), Mode::Push) if !pushed_already => PushStep::Push(sha),
        _ => PushStep::Nothing,
    }
}

/// The branch's state on the status page after a conclusion.
fn branch_state(verdict: Verdict, push_refused: bool) -> &'static str {
    match verdict {
        _ if push_refused => "error",
        Verdict::Regression => "blocked",
        Verdict::Broken => "broken",
        _ => "idle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_pushing_policy_pushes_and_only_once() {
        let sha = || Some("a".repeat(40));
        assert_eq!(
            push_step(sha(), Mode::Push, false),
            PushStep::Push("a".repeat(40))
        );
        assert_eq!(push_step(sha(), Mode::Push, true), PushStep::Nothing);
        assert_eq!(
            push_step(sha(), Mode::ReportOnly, false),
            PushStep::WouldPush("a".repeat(40))
        );
        assert_eq!(push_step(None, Mode::Push, false), PushStep::Nothing);
        assert_eq!(push_step(None, Mode::ReportOnly, false), PushStep::Nothing);
    }

    #[test]
    fn the_branch_says_blocked_broken_or_error() {
        assert_eq!(branch_state(Verdict::Regression, false), "blocked");
        assert_eq!(branch_state(Verdict::Broken, false), "broken");
        for v in [
            Verdict::Pass,
            Verdict::Flaky,
            Verdict::LikeBaseline,
            Verdict::NeverPassed,
        ] {
            assert_eq!(branch_state(v, false), "idle");
        }
        for v in Verdict::ALL {
            assert_eq!(
                branch_state(v, true),
                "error",
                "a refused push is an error: {v}"
            );
        }
    }
}
