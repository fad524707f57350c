//! `pushgate series queue ID`: a maintainer takes a mailed series that passed onto the staging
//! branch, where the normal gate tests it again before anything reaches the target. Series
//! never push by themselves; this is the one way they get in, and it is a person's decision.
//!
//! The patches are applied again on staging's head (as `b4 shazam` would), not the commits
//! that were tested: staging may have moved since, and the gate tests what lands anyway.

use git2::Oid;

use crate::config::policy::Policy;
use crate::intake::mail::Mail;
use crate::repo::apply::{apply_series, ApplyError};
use crate::repo::{short, Credentials, Mirror, RepoError};
use crate::store::{SeriesRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("there is no series {0} (see `pushgate series list`)")]
    NoSuchSeries(i64),
    #[error("series {id} has not passed ({state}); only a series that passed is queued")]
    NotPassed { id: i64, state: String },
    #[error("series {id} was queued already: {queued}")]
    AlreadyQueued { id: i64, queued: String },
    #[error("series {id} was tested for policy `{policy}`, which the configuration no longer has")]
    NoPolicy { id: i64, policy: String },
    #[error("series {id}: the mail of patch {number} ({message_id}) is no longer in the store")]
    MailGone {
        id: i64,
        number: usize,
        message_id: String,
    },
    #[error("series {id} does not apply on {staging} at {at}: {source}")]
    DoesNotApply {
        id: i64,
        staging: String,
        at: String,
        source: Box<ApplyError>,
    },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What queuing did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Queued {
    pub id: i64,
    pub staging: String,
    pub old: String,
    pub new: String,
    pub patches: usize,
}

impl std::fmt::Display for Queued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "series {}: {} patch(es) queued onto {} ({} -> {}); the gate tests it from there",
            self.id,
            self.patches,
            self.staging,
            short(&self.old),
            short(&self.new)
        )
    }
}

/// Whether `row` may be queued, and for which of `policies`.
pub fn check_queueable<'p>(
    row: &SeriesRow,
    policies: &'p [Policy],
) -> Result<&'p Policy, QueueError> {
    if let Some(queued) = &row.queued {
        return Err(QueueError::AlreadyQueued {
            id: row.id,
            queued: queued.clone(),
        });
    }
    // `flaky`: the tip's failures were flakes and no patch is bad, as the gate would push.
    let passed = matches!(row.verdict.as_deref(), Some("pass" | "flaky"));
    if row.state != "concluded" || !passed {
        let state = match &row.verdict {
            Some(v) if row.state == "concluded" => format!("its flight decided {v}"),
            _ => format!("it is {}", row.state),
        };
        return Err(QueueError::NotPassed { id: row.id, state });
    }
    let name = row.policy.clone().unwrap_or_default();
    policies
        .iter()
        .find(|p| p.name == name)
        .ok_or(QueueError::NoPolicy {
            id: row.id,
            policy: name,
        })
}

/// Applies series `id` on the head of its policy's staging branch and pushes it there (never
/// with force: if staging moves meanwhile, the push is refused and nothing changes).
pub async fn queue_series(
    store: &Store,
    policies: &[Policy],
    mirrors_dir: &std::path::Path,
    credentials: impl FnOnce(&Policy) -> Credentials,
    committer: &str,
    id: i64,
) -> Result<Queued, QueueError> {
    let row = store
        .series(id)
        .await?
        .ok_or(QueueError::NoSuchSeries(id))?;
    let policy = check_queueable(&row, policies)?;
    let mut patches = Vec::with_capacity(row.patches.len());
    for (n, message_id) in row.patches.iter().enumerate() {
        let mail = store
            .list_mail_raw(&row.list, message_id)
            .await?
            .and_then(|raw| Mail::parse(&raw).ok())
            .ok_or_else(|| QueueError::MailGone {
                id,
                number: n + 1,
                message_id: message_id.clone(),
            })?;
        patches.push(mail);
    }
    let (dir, name, url, staging) = (
        mirrors_dir.to_path_buf(),
        policy.name.clone(),
        policy.repository.clone(),
        policy.staging.clone(),
    );
    let credentials = credentials(policy);
    let committer = committer.to_string();
    let (old, new) = tokio::task::spawn_blocking(move || -> Result<(Oid, Oid), QueueError> {
        let mirror = Mirror::open(&dir, &name, &url)?.with_credentials(credentials);
        let head = mirror.fetch(&[&staging])?[&staging];
        let repo = git2::Repository::open_bare(&mirror.path)
            .map_err(|e| QueueError::Internal(format!("{}: {e}", mirror.path.display())))?;
        let signature = git2::Signature::now("pushgate", &committer)
            .map_err(|e| QueueError::Internal(e.to_string()))?;
        let refs: Vec<_> = patches.iter().map(super::patch).collect();
        let commits = apply_series(&repo, head, &refs, &signature).map_err(|source| {
            QueueError::DoesNotApply {
                id,
                staging: staging.clone(),
                at: short(&head.to_string()).to_string(),
                source: Box::new(source),
            }
        })?;
        let tip = commits.last().copied().unwrap_or(head);
        mirror.push(tip, &staging, head)?;
        Ok((head, tip))
    })
    .await
    .map_err(|e| QueueError::Internal(e.to_string()))??;
    let queued = Queued {
        id,
        staging: policy.staging.clone(),
        old: old.to_string(),
        new: new.to_string(),
        patches: row.patches.len(),
    };
    store
        .set_series_queued(
            id,
            &format!(
                "{} at {} (was {})",
                queued.staging,
                short(&queued.new),
                short(&queued.old)
            ),
        )
        .await?;
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, verdict: Option<&str>, queued: Option<&str>) -> SeriesRow {
        SeriesRow {
            id: 7,
            list: "l".into(),
            root: "r@x".into(),
            version: 2,
            state: state.into(),
            base: Some("b".into()),
            tip: Some("t".into()),
            superseded_by: None,
            policy: Some("xen".into()),
            base_said: None,
            answering: None,
            patches: vec!["p1@x".into()],
            queued: queued.map(str::to_string),
            flight: Some(3),
            flight_state: Some("done".into()),
            verdict: verdict.map(str::to_string),
            culprit: None,
            updated_at: 0,
        }
    }

    #[test]
    fn only_a_passed_unqueued_series_of_a_known_policy_is_queued() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let sequences = crate::sequence::load_dir(&root.join("sequences"), &[]).unwrap();
        let policies = vec![Policy::parse(
            std::path::Path::new("/etc/pushgate/policies/xen.toml"),
            "repository = \"/r\"\nsequences = [\"smoke\"]\n",
            &sequences,
        )
        .unwrap()];
        assert!(check_queueable(&row("concluded", Some("pass"), None), &policies).is_ok());
        assert!(check_queueable(&row("concluded", Some("flaky"), None), &policies).is_ok());
        let refused = |r: SeriesRow, policies: &[Policy]| {
            check_queueable(&r, policies).unwrap_err().to_string()
        };
        assert_eq!(
            refused(row("concluded", Some("regression"), None), &policies),
            "series 7 has not passed (its flight decided regression); only a series that passed is queued"
        );
        assert_eq!(
            refused(row("applied", None, None), &policies),
            "series 7 has not passed (it is applied); only a series that passed is queued"
        );
        assert_eq!(
            refused(
                row("concluded", Some("pass"), Some("staging at 1")),
                &policies
            ),
            "series 7 was queued already: staging at 1"
        );
        assert!(refused(row("concluded", Some("pass"), None), &[])
            .contains("policy `xen`, which the configuration no longer has"));
    }
}
