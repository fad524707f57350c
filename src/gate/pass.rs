//! The pass over a branch: overrides first, then a hold, then plan and drive flights until one
//! decides, the branch has nothing new, or it re-planned too often.

use tracing::Instrument;

use super::{blocking, BranchOutcome, Driven, Gate, GateError, Heads, Tested};
use crate::config::policy::Policy;
use crate::decision::Verdict;
use crate::forge;
use crate::gate::Event;
use crate::repo::{short, Ahead, Mirror};
use crate::store::FlightRow;

/// Re-plans allowed in one pass before the gate waits for the next one.
const MAX_PLANS_PER_PASS: usize = 5;

impl Gate {
    /// Brings one branch as far as it can go now: to a decision, or to a clear reason why not.
    pub async fn pass(&self, policy: &Policy) -> Result<BranchOutcome, GateError> {
        let span = tracing::info_span!("branch", policy = %policy.name);
        self.pass_inner(policy).instrument(span).await
    }

    async fn pass_inner(&self, policy: &Policy) -> Result<BranchOutcome, GateError> {
        let branch = self.store.upsert_branch(policy).await?;
        let mirror = {
            let (dir, name, url) = (
                self.settings.mirrors_dir.clone(),
                policy.name.clone(),
                policy.repository.clone(),
            );
            let credentials = match self.git_credentials(policy).await {
                Ok(c) => c,
                Err(e) => return self.branch_error(branch, policy, e).await,
            };
            match blocking(move || Mirror::open(&dir, &name, &url)).await {
                Ok(m) => m.with_credentials(credentials),
                Err(e) => return self.branch_error(branch, policy, e.to_string()).await,
            }
        };
        let mut retry = self.apply_overrides(policy, branch, &mirror).await?;
        if let Some(hold) = self.store.branch(branch).await?.and_then(|b| b.hold) {
            let message = format!("held by a maintainer: {hold}; nothing is planned or pushed");
            self.emit(Event::Idle {
                policy: &policy.name,
                message: &message,
            });
            self.store
                .set_branch_status(branch, "held", &message)
                .await?;
            return Ok(BranchOutcome::Idle { message });
        }
        for _ in 0..MAX_PLANS_PER_PASS {
            let heads = match self.fetch(&mirror, policy).await {
                Ok(h) => h,
                Err(e) => return self.branch_error(branch, policy, e.to_string()).await,
            };
            self.store
                .set_branch_heads(
                    branch,
                    &heads.staging.to_string(),
                    &heads.target.to_string(),
                )
                .await?;
            let flight = match self.store.active_flight(branch).await? {
                Some(f) => f,
                None => match self
                    .plan(policy, branch, &mirror, heads, retry.take())
                    .await?
                {
                    Ok(f) => f,
                    Err(outcome) => return Ok(outcome),
                },
            };
            match self
                .drive(policy, &mirror, flight, Tested::Staging(heads))
                .await?
            {
                Driven::Done(outcome) => return Ok(outcome),
                Driven::Replan => continue,
            }
        }
        let message =
            "re-planned too often in one pass (is someone rewriting staging?); will look again";
        self.store
            .set_branch_status(branch, "idle", message)
            .await?;
        Ok(BranchOutcome::Idle {
            message: message.into(),
        })
    }

    /// Starts a flight when staging has something new, or says why not.
    ///
    /// One function because it is one ladder of early answers (nothing new, diverged, the
    /// decision stands, an empty range), each saying on the branch why nothing is planned.
    async fn plan(
        &self,
        policy: &Policy,
        branch: i64,
        mirror: &Mirror,
        heads: Heads,
        retry: Option<i64>,
    ) -> Result<Result<FlightRow, BranchOutcome>, GateError> {
        let idle = |message: String| async move {
            self.emit(Event::Idle {
                policy: &policy.name,
                message: &message,
            });
            self.store
                .set_branch_status(branch, "idle", &message)
                .await?;
            // What was queued before this look is accounted for: there is nothing to test.
            self.store
                .settle_queued_candidates(branch, heads.seen_at)
                .await?;
            if let Some(id) = retry {
                self.store.finish_override(id, &message).await?;
            }
            Ok::<_, GateError>(Err(BranchOutcome::Idle { message }))
        };
        let m = mirror.clone();
        let commits = match blocking(move || m.ahead_of(heads.target, heads.staging)).await {
            Ok(Ahead::Commits(commits)) => commits,
            Ok(Ahead::Contained) => {
                return idle(format!(
                    "nothing to test: {} contains {} ({})",
                    policy.target,
                    policy.staging,
                    short(&heads.staging.to_string())
                ))
                .await
            }
            Ok(Ahead::Diverged) => {
                let message = format!(
                    "{staging} has diverged from {target}: {target} ({t}) is not in {staging} \
                     ({s}); rebase {staging} onto {target}. Nothing is tested or pushed until then.",
                    staging = policy.staging,
                    target = policy.target,
                    t = short(&heads.target.to_string()),
                    s = short(&heads.staging.to_string()),
                );
                return Ok(Err(self.branch_error(branch, policy, message).await?));
            }
            Err(e) => {
                return Ok(Err(self
                    .branch_error(branch, policy, e.to_string())
                    .await?))
            }
        };

        let staging_hex = heads.staging.to_string();
        if let Some(last) = self
            .store
            .last_done_flight_for_tip(branch, &staging_hex)
            .await?
        {
            let target = heads.target.to_string();
            let now = crate::store::now_ms();
            if let Some(message) = decision_stands(policy, &last, &target, retry.is_some(), now) {
                self.emit(Event::Idle {
                    policy: &policy.name,
                    message: &message,
                });
                self.store
                    .settle_queued_candidates(branch, heads.seen_at)
                    .await?;
                return Ok(Err(BranchOutcome::Idle { message }));
            }
        }

        let flight = self
            .store
            .create_flight(
                branch,
                &heads.target.to_string(),
                &staging_hex,
                &commits,
                heads.seen_at,
                // Queued with the flight: a crash cannot leave it planned but unreported.
                |flight| match self.report_target(policy) {
                    Some(target) => {
                        forge::reports::pending(&target, flight, &self.settings.public_url)
                    }
                    None => Vec::new(),
                },
            )
            .await?;
        if let Some(id) = retry {
            self.store
                .finish_override(id, &format!("flight {}", flight.id))
                .await?;
        }
        self.emit(Event::Planned {
            policy: &policy.name,
            flight: flight.id,
            base: &flight.base,
            tip: &flight.tip,
            commits: commits.len(),
        });
        Ok(Ok(flight))
    }
}

/// Why a tip an earlier flight decided is not tested again, when it is not: a decision stands
/// until staging changes, unless a maintainer asked for a retry, the flight was `broken` and
/// `retry_broken_after` has passed, or the target is no longer where that flight left it.
fn decision_stands(
    policy: &Policy,
    last: &FlightRow,
    target: &str,
    retried: bool,
    now: i64,
) -> Option<String> {
    let left_at = last.pushed_to.as_deref().unwrap_or(&last.base);
    if left_at != target {
        return None;
    }
    let verdict = last.verdict.unwrap_or(Verdict::Broken);
    let waited = now - last.finished_at.unwrap_or(0);
    let again = retried
        || (verdict == Verdict::Broken && waited >= policy.retry_broken_after.as_millis() as i64);
    (!again).then(|| {
        format!(
            "waiting for a new {}: flight {} decided {verdict}: {}",
            policy.staging, last.id, last.reason
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::tests::{flight, policy};

    #[test]
    fn a_decision_stands_until_staging_changes() {
        let policy = policy();
        let mut last = flight(Verdict::Regression);
        last.pushed_to = Some("b".repeat(40));
        let target = "b".repeat(40);
        let said = decision_stands(&policy, &last, &target, false, 1_000).unwrap();
        assert_eq!(
            said,
            "waiting for a new staging: flight 7 decided regression: smoke/test broke"
        );
        // A maintainer's retry tests it again.
        assert_eq!(decision_stands(&policy, &last, &target, true, 1_000), None);
        // So does a target that moved on since (the range is another one now).
        assert_eq!(
            decision_stands(&policy, &last, &"c".repeat(40), false, 1_000),
            None
        );
    }

    #[test]
    fn a_broken_flight_is_tried_again_after_the_wait() {
        let policy = policy();
        let mut last = flight(Verdict::Broken);
        last.finished_at = Some(0);
        let target = last.base.clone();
        let wait = policy.retry_broken_after.as_millis() as i64;
        assert!(decision_stands(&policy, &last, &target, false, wait - 1).is_some());
        assert_eq!(decision_stands(&policy, &last, &target, false, wait), None);
        // Nothing else is retried by waiting.
        let mut passed = flight(Verdict::Pass);
        passed.finished_at = Some(0);
        assert!(decision_stands(&policy, &passed, &target, false, wait * 100).is_some());
    }
}
