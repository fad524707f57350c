//! Maintainers' overrides, carried out at the start of a pass: `force` pushes a commit without
//! the gate (fast-forward only, mailed to the list), `retry` tests a decided tip again. `block`
//! and `unblock` are a hold on the branch the pass reads (store and web).

use super::{blocking, Gate, GateError};
use crate::config::policy::Policy;
use crate::repo::{short, Mirror, RepoError};

impl Gate {
    /// Carries out the branch's pending overrides; returns the pending `retry`, which the
    /// planning of this pass answers.
    pub(super) async fn apply_overrides(
        &self,
        policy: &Policy,
        branch: i64,
        mirror: &Mirror,
    ) -> Result<Option<i64>, GateError> {
        let mut retry = None;
        for o in self.store.pending_overrides(branch).await? {
            match o.action.as_str() {
                "force" => {
                    if let Some(outcome) = self.force(policy, mirror, &o).await? {
                        self.store.finish_override(o.id, &outcome).await?;
                    }
                }
                "retry" => retry = Some(o.id),
                other => {
                    self.store
                        .finish_override(o.id, &format!("unknown action `{other}`"))
                        .await?
                }
            }
        }
        Ok(retry)
    }

    /// Carries out a maintainer's `force`: pushes the commit (default: the staging tip) to the
    /// target if that is a fast-forward, whether or not it passed, and mails the list who did
    /// it and why. Returns what happened, or `None` when the repository could not be reached
    /// (the force stays pending for the next pass).
    async fn force(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        o: &crate::store::OverrideRow,
    ) -> Result<Option<String>, GateError> {
        let heads = match self.fetch(mirror, policy).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(policy = %policy.name, error = %e, "force: cannot fetch; will try again");
                return Ok(None);
            }
        };
        let (m, rev, target) = (mirror.clone(), o.rev.clone(), policy.target.clone());
        let done = blocking(move || {
            let sha = match &rev {
                Some(r) => m.resolve(r)?,
                None => heads.staging,
            };
            let step = force_step(
                m.is_ancestor(sha, heads.target)?,
                m.is_ancestor(heads.target, sha)?,
            );
            if step == ForceStep::Push {
                m.push(sha, &target, heads.target)?;
            }
            Ok(step.said(&target, &sha.to_string(), &heads.target.to_string()))
        })
        .await;
        let outcome = match done {
            Ok(outcome) => outcome,
            Err(RepoError::Unreachable { message, .. }) => {
                tracing::warn!(policy = %policy.name, error = %message, "force: cannot push; will try again");
                return Ok(None);
            }
            Err(e) => format!("not done: {e}"),
        };
        tracing::warn!(policy = %policy.name, who = %o.who, why = %o.why, %outcome, "maintainer's force");
        let mail = crate::notify::compose_force(
            &self.settings.mail_from,
            policy,
            o,
            &outcome,
            &self.settings.public_url,
        )?;
        if let Some(mail) = mail {
            self.store.enqueue_mail(None, &mail).await?;
        }
        Ok(Some(outcome))
    }
}

/// What a force does, from where the target stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ForceStep {
    /// The target contains the commit already.
    AlreadyThere,
    /// The commit is not a fast-forward from the target: pushgate never forces.
    NotFastForward,
    Push,
}

fn force_step(target_contains_it: bool, it_contains_target: bool) -> ForceStep {
    if target_contains_it {
        ForceStep::AlreadyThere
    } else if it_contains_target {
        ForceStep::Push
    } else {
        ForceStep::NotFastForward
    }
}

impl ForceStep {
    /// The outcome as the override's record and the list's mail say it.
    fn said(self, target: &str, sha: &str, now: &str) -> String {
        match self {
            ForceStep::AlreadyThere => {
                format!("nothing to push: {target} already contains {}", short(sha))
            }
            ForceStep::NotFastForward => format!(
                "refused: {} is not a fast-forward from {target} ({}); pushgate never \
                 pushes with force",
                short(sha),
                short(now)
            ),
            ForceStep::Push => format!(
                "pushed {} to {target} (was {}) without testing",
                short(sha),
                short(now)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_force_only_ever_fast_forwards() {
        assert_eq!(force_step(true, false), ForceStep::AlreadyThere);
        // The commit is the target itself: both contain each other.
        assert_eq!(force_step(true, true), ForceStep::AlreadyThere);
        assert_eq!(force_step(false, true), ForceStep::Push);
        assert_eq!(force_step(false, false), ForceStep::NotFastForward);
    }

    #[test]
    fn the_outcome_says_what_was_done() {
        let (sha, now) = ("a".repeat(40), "b".repeat(40));
        assert_eq!(
            ForceStep::Push.said("master", &sha, &now),
            "pushed aaaaaaaaaaaa to master (was bbbbbbbbbbbb) without testing"
        );
        assert_eq!(
            ForceStep::NotFastForward.said("master", &sha, &now),
            "refused: aaaaaaaaaaaa is not a fast-forward from master (bbbbbbbbbbbb); pushgate \
             never pushes with force"
        );
        assert_eq!(
            ForceStep::AlreadyThere.said("master", &sha, &now),
            "nothing to push: master already contains aaaaaaaaaaaa"
        );
    }
}
