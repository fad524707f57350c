//! The gate: for each policy branch, decide what of staging may go to the target branch.
//!
//! A pass over a branch ([`pass`](Gate::pass)) carries out maintainers' overrides, plans a
//! flight when staging has something new, drives it to a decision (`flight.rs`), pushes what
//! passed and records the conclusion with its mail and reports (`conclude.rs`). Every step
//! reads its state from the store, so a kill at any point followed by a restart carries on
//! without repeating a finished run, a push or a mail. Mailed series' flights are driven by
//! the same machinery (`series::flight`).

mod conclude;
mod events;
mod flight;
mod observations;
mod overrides;
mod pass;

pub(crate) use conclude::{blame_rows, Earlier};
pub use events::{Event, LogProgress, Progress};
pub(crate) use flight::{Driven, Tested};

use std::path::PathBuf;
use std::sync::Arc;

use git2::Oid;

use crate::config::policy::{GithubReport, Policy};
use crate::config::{InForce, Rules};
use crate::decision::Verdict;
use crate::forge::{Forge, ReportTarget};
use crate::hosts::Lab;
use crate::notify::ReportError;
use crate::repo::{Credentials, Mirror, RepoError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a branch stands after a pass.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BranchOutcome {
    /// Nothing to test, or a decision that still stands; says which.
    Idle { message: String },
    Decided {
        flight: i64,
        verdict: Verdict,
        pushed_to: Option<String>,
        culprit: Option<String>,
        reason: String,
    },
    /// Something is wrong with the repository or the branches; nothing was pushed.
    Error { message: String },
}

/// Paths and addresses the gate needs from the service configuration.
#[derive(Clone, Debug)]
pub struct GateSettings {
    pub mirrors_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub public_url: String,
    pub mail_from: String,
}

/// Runs the gate for any number of policy branches.
pub struct Gate {
    pub store: Store,
    pub settings: GateSettings,
    /// The policies and sequences in force; a flight takes them once, at its start.
    pub rules: Arc<InForce<Rules>>,
    pub lab: Arc<Lab>,
    pub progress: Arc<dyn Progress>,
    /// Where policies with a `github` repository report, and how git logs in there.
    pub forge: Option<Arc<dyn Forge>>,
}

/// Where staging and the target point, as one fetch saw them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    staging: Oid,
    target: Oid,
    /// When they were read (ms): candidates queued before this are accounted for.
    seen_at: i64,
}

/// Runs git work off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Git {
            context: "background git task".into(),
            message: e.to_string(),
        })?
}

fn oid(sha: &str) -> Result<Oid, GateError> {
    Oid::from_str(sha).map_err(|e| GateError::Internal(format!("stored sha `{sha}`: {e}")))
}

impl Gate {
    pub(crate) fn emit(&self, event: Event) {
        events::log(&event);
        self.progress.event(&event);
    }

    /// Where and how `policy` reports on GitHub, when it does.
    fn report_target(&self, policy: &Policy) -> Option<ReportTarget> {
        self.forge.as_ref()?;
        let kind = match policy.github_report {
            GithubReport::Status => crate::store::ReportKind::Status,
            GithubReport::Check => crate::store::ReportKind::Check,
            GithubReport::None => return None,
        };
        Some(ReportTarget {
            repository: policy.github.clone()?,
            kind,
            context: format!("pushgate/{}", policy.name),
            target_branch: policy.target.clone(),
        })
    }

    /// What git logs in with for `policy`'s repository.
    async fn git_credentials(&self, policy: &Policy) -> Result<Credentials, String> {
        match (&self.forge, &policy.github) {
            (Some(forge), Some(_)) => forge
                .git_credentials(&policy.repository)
                .await
                .map_err(|e| format!("cannot get git credentials from GitHub: {e}")),
            _ => Ok(Credentials::Anonymous),
        }
    }

    /// Records and says that the branch cannot be gated now, and why.
    pub(crate) async fn branch_error(
        &self,
        branch: i64,
        policy: &Policy,
        message: String,
    ) -> Result<BranchOutcome, GateError> {
        self.emit(Event::Error {
            policy: &policy.name,
            message: &message,
        });
        self.store
            .set_branch_status(branch, "error", &message)
            .await?;
        Ok(BranchOutcome::Error { message })
    }

    /// Fetches staging and the target.
    async fn fetch(&self, mirror: &Mirror, policy: &Policy) -> Result<Heads, RepoError> {
        let (m, staging, target) = (
            mirror.clone(),
            policy.staging.clone(),
            policy.target.clone(),
        );
        let seen_at = crate::store::now_ms();
        blocking(move || {
            let heads = m.fetch(&[&staging, &target])?;
            Ok(Heads {
                staging: heads[&staging],
                target: heads[&target],
                seen_at,
            })
        })
        .await
    }

    /// Whether `a` is an ancestor of (or is) `b`.
    async fn is_ancestor(&self, mirror: &Mirror, a: Oid, b: Oid) -> Result<bool, RepoError> {
        let m = mirror.clone();
        blocking(move || m.is_ancestor(a, b)).await
    }
}

/// What the gate's unit tests share: flight 7 of two commits (Ann's, then Bob's), done with
/// `verdict`, and its runs (the tip failed on hosts a and b, the baseline passed on c).
#[cfg(test)]
pub(crate) mod tests {
    use crate::decision::{Role, Verdict};
    use crate::fixtures::{commit, run, ANN, BOB};
    use crate::store::{FlightRow, RunRow, RunState};

    pub(crate) use crate::fixtures::policy;

    pub(crate) fn flight(verdict: Verdict) -> FlightRow {
        let commits = vec![commit(1, "change 1", ANN), commit(2, "change 2", BOB)];
        let mut flight = crate::fixtures::flight(commits, verdict, None);
        flight.reason = "smoke/test broke".into();
        flight
    }

    pub(crate) fn runs() -> Vec<RunRow> {
        let on = |mut r: RunRow, host: &str| {
            r.host = host.into();
            r
        };
        let tip = "02".to_string();
        vec![
            on(run(1, 2, &tip, Role::Tip, 1, RunState::Fail), "a"),
            on(run(2, 2, &tip, Role::Tip, 1, RunState::Fail), "b"),
            on(run(3, 0, "00", Role::Baseline, 1, RunState::Pass), "c"),
        ]
    }
}
