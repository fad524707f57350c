//! The series pass: for a policy with a mailing list, what the list's series need next
//! ([`triage`]), carried out: a complete revision is applied onto its base (its `base-commit:`
//! when the repository has it, else the policy's target) and recorded with its commits; one
//! that does not apply is answered in its thread; an incomplete one hears what is missing
//! after the wait; a replaced one is dropped. Each outcome and its reply are stored in one
//! transaction, so a thread hears once.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::triage::{triage, Action, Handled};
use super::{assemble, Revision};
use crate::config::policy::{MailingList, Policy};
use crate::intake::mail::{ingest, Mail};
use crate::notify::{compose_series_reply, SeriesOutcome, SeriesReply};
use crate::repo::apply::{apply_series, ApplyError};
use crate::repo::{short, Mirror};
use crate::store::{AppliedSeries, SeriesRecord, Store};

/// Where the pass finds the repository and who it writes as.
pub struct PassSettings {
    pub mirrors_dir: PathBuf,
    /// Where remote public-inbox archives are mirrored.
    pub inboxes_dir: PathBuf,
    /// pushgate's sender address.
    pub from: String,
}

/// What one pass did, revision by revision (root, what happened).
#[derive(Debug, Default, Serialize)]
pub struct PassReport {
    /// What the list's configured source gave, when it has one.
    pub ingested: Option<ingest::Ingested>,
    /// Why the source could not be read this time (the stored mail was still gone through).
    pub source_error: Option<String>,
    pub done: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Repo(#[from] crate::repo::RepoError),
    #[error(transparent)]
    Report(#[from] crate::notify::ReportError),
    #[error("{0}")]
    Other(String),
}

const STATES: [(&str, Handled); 5] = [
    ("missing-reported", Handled::MissingReported),
    ("applied", Handled::Applied),
    ("does-not-apply", Handled::DoesNotApply),
    ("concluded", Handled::Concluded),
    ("superseded", Handled::Superseded),
];

/// One pass over `policy`'s list at `now` (seconds since the epoch).
pub async fn series_pass(
    store: &Store,
    policy: &Policy,
    list: &MailingList,
    settings: &PassSettings,
    now: i64,
) -> Result<PassReport, PassError> {
    let mut report = PassReport::default();
    if let Some(source) = &list.source {
        // A source that cannot be read now (lore down) does not hold up what is stored.
        match ingest::ingest_source(store, &list.name, source, &settings.inboxes_dir).await {
            Ok(got) => {
                for e in &got.unreadable {
                    tracing::warn!(list = %list.name, error = %e, "unreadable mail left out");
                }
                report.ingested = Some(got);
            }
            Err(e) => {
                tracing::warn!(list = %list.name, error = %e, "cannot read the list's source");
                report.source_error = Some(e.to_string());
            }
        }
    }
    let mails = ingest::load_list(store, &list.name).await?;
    let revisions = assemble(&mails);
    let handled: HashMap<String, Handled> = store
        .series_states(&list.name)
        .await?
        .into_iter()
        .filter_map(|(root, state)| {
            STATES
                .iter()
                .find(|(name, _)| *name == state)
                .map(|(_, h)| (root, *h))
        })
        .collect();
    let wait = list.missing_after.as_secs() as i64;
    let by_root: HashMap<&str, &Revision> =
        revisions.iter().map(|r| (r.root.as_str(), r)).collect();
    let max_age = list.max_age.as_secs() as i64;
    for action in triage(&revisions, &handled, now, wait, max_age) {
        let Some(r) = by_root.get(action.root()).copied() else {
            continue;
        };
        let record = |state, superseded_by| SeriesRecord {
            list: &list.name,
            root: &r.root,
            version: r.version,
            state,
            base: None,
            tip: None,
            superseded_by,
        };
        let said = match &action {
            Action::Supersede { by, cancel, .. } => {
                store
                    .record_series(&record("superseded", Some(by.as_str())), None)
                    .await?;
                if *cancel {
                    format!("superseded by <{by}>; its flight is cancelled")
                } else {
                    format!("superseded by <{by}>")
                }
            }
            Action::ReportMissing { missing, .. } => {
                let outcome = SeriesOutcome::Incomplete {
                    missing: missing.clone(),
                    total: r.total,
                };
                let reply = reply(list, settings, r, &mails, &policy.target, outcome)?;
                store
                    .record_series(&record("missing-reported", None), reply.as_ref())
                    .await?;
                let names: Vec<String> =
                    missing.iter().map(|n| format!("{n}/{}", r.total)).collect();
                format!("missing {}", names.join(", "))
            }
            Action::Apply { .. } => apply(store, policy, list, settings, r, &mails).await?,
        };
        report.done.push((r.root.clone(), said));
    }
    Ok(report)
}

/// Applies `r` onto its base in the policy's mirror and records the outcome: applied, with
/// the flight that tests it, or the reply saying which patch does not apply. One function so
/// that the base it resolved, the commits it made and what it records stay side by side.
async fn apply(
    store: &Store,
    policy: &Policy,
    list: &MailingList,
    settings: &PassSettings,
    r: &Revision,
    mails: &[Mail],
) -> Result<String, PassError> {
    let patches: Vec<Mail> = r
        .patches
        .iter()
        .flatten()
        .map(|&i| mails[i].clone())
        .collect();
    let (dir, name, url, target, base_commit, from, root) = (
        settings.mirrors_dir.clone(),
        policy.name.clone(),
        policy.repository.clone(),
        policy.target.clone(),
        r.base_commit.clone(),
        settings.from.clone(),
        r.root.clone(),
    );
    let applied = tokio::task::spawn_blocking(move || -> Result<_, PassError> {
        let mirror = Mirror::open(&dir, &name, &url)?;
        let head = *mirror
            .fetch(&[&target])?
            .get(&target)
            .ok_or_else(|| PassError::Other(format!("{url} has no branch {target}")))?;
        // The sender's base when the repository has it (fetched by id if need be), else the
        // target's head.
        let base = base_commit
            .as_deref()
            .and_then(|sha| mirror.resolve(sha).or_else(|_| mirror.fetch_rev(sha)).ok());
        let (base, base_said) = match base {
            Some(oid) => (oid, format!("base-commit {}", short(&oid.to_string()))),
            None => (head, format!("{target} at {}", short(&head.to_string()))),
        };
        let repo = git2::Repository::open_bare(&mirror.path)
            .map_err(|e| PassError::Other(format!("{}: {e}", mirror.path.display())))?;
        let committer = git2::Signature::now("pushgate", committer_address(&from))
            .map_err(|e| PassError::Other(e.to_string()))?;
        let refs: Vec<_> = patches.iter().map(super::patch).collect();
        let outcome = match apply_series(&repo, base, &refs, &committer) {
            Ok(commits) => {
                let tip = commits.last().copied().unwrap_or(base);
                // A ref keeps the commits from git's gc while they are tested and queued.
                let name = series_ref(&root);
                repo.reference(&name, tip, true, "pushgate: series applied")
                    .map_err(|e| PassError::Other(format!("{name}: {e}")))?;
                Ok((tip, mirror.first_parent_range(base, tip)?))
            }
            Err(e) => Err(e),
        };
        Ok((base, base_said, outcome))
    })
    .await
    .map_err(|e| PassError::Other(e.to_string()))??;
    let (base, base_said, outcome) = applied;
    let mut record = SeriesRecord {
        list: &list.name,
        root: &r.root,
        version: r.version,
        state: "applied",
        base: Some(base.to_string()),
        tip: None,
        superseded_by: None,
    };
    let (subject, file, reason) = match outcome {
        Ok((tip, commits)) => {
            record.tip = Some(tip.to_string());
            if commits.is_empty() {
                record.state = "concluded";
                store.record_series(&record, None).await?;
                return Ok(format!(
                    "applied on {base_said}: no commit, nothing to test"
                ));
            }
            let answering = r.mails().next().map(|i| mails[i].message_id.clone());
            let patch_ids: Vec<String> = r
                .patches
                .iter()
                .flatten()
                .map(|&i| mails[i].message_id.clone())
                .collect();
            let applied = AppliedSeries {
                policy: &policy.name,
                base_said: &base_said,
                answering: answering.as_deref().unwrap_or(&r.root),
                patches: &patch_ids,
            };
            let branch = store.upsert_branch(policy).await?;
            let flight = store
                .start_series_flight(branch, &record, &applied, &commits)
                .await?;
            return Ok(format!(
                "applied on {base_said}: {} commit(s); flight {}",
                commits.len(),
                flight.id
            ));
        }
        Err(ApplyError::DoesNotApply {
            subject,
            file,
            reason,
            ..
        }) => (subject, file, reason),
        Err(ApplyError::Unreadable {
            subject, reason, ..
        }) => (subject, None, format!("not a readable diff: {reason}")),
        Err(e) => return Err(PassError::Other(e.to_string())),
    };
    let said = format!(
        "does not apply on {base_said}: {subject}{}",
        file.as_ref().map(|f| format!(" ({f})")).unwrap_or_default()
    );
    let outcome = SeriesOutcome::DoesNotApply {
        patch: subject,
        file,
        reason,
    };
    let mail = reply(list, settings, r, mails, &base_said, outcome)?;
    record.state = "does-not-apply";
    store.record_series(&record, mail.as_ref()).await?;
    Ok(said)
}

/// The ref that holds a revision's applied commits in the policy's mirror.
pub fn series_ref(root: &str) -> String {
    format!(
        "refs/pushgate/series/{}",
        crate::digest::short_digest(root.as_bytes(), 10)
    )
}

/// The reply to `r`'s thread, answering its cover letter or else its first patch.
fn reply(
    list: &MailingList,
    settings: &PassSettings,
    r: &Revision,
    mails: &[Mail],
    base: &str,
    outcome: SeriesOutcome,
) -> Result<Option<crate::store::NewMail>, PassError> {
    let Some(answering) = r.mails().next().map(|i| &mails[i]) else {
        return Ok(None);
    };
    Ok(Some(compose_series_reply(&SeriesReply {
        from: &settings.from,
        list: &list.address,
        answering,
        base,
        outcome,
        link: None,
    })?))
}

fn committer_address(from: &str) -> &str {
    from.rsplit_once('<')
        .map_or(from, |(_, a)| a.trim_end_matches('>'))
        .trim()
}
