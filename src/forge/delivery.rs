//! Posting the queued forge reports. A report leaves the queue only once the forge has taken
//! it (or refused it for good), so GitHub being down or rate-limiting delays reports but loses
//! none, and a later report about the same commit is never posted before an earlier one.

use std::time::Duration;

use super::{retry_delay, Forge, ForgeError};
use crate::store::{ReportKind, Store, StoreError};

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReportDelivery {
    pub posted: usize,
    pub superseded: usize,
    pub refused: usize,
    pub failed: usize,
}

/// Posts every report that is due.
pub async fn deliver_due_reports(
    store: &Store,
    forge: &dyn Forge,
    retry_base: Duration,
) -> Result<ReportDelivery, StoreError> {
    let mut done = ReportDelivery::default();
    // Reports of a commit whose earlier report just failed wait for it.
    let mut blocked = std::collections::BTreeSet::new();
    for report in store.due_reports(200).await? {
        let key = (
            report.repository.clone(),
            report.sha.clone(),
            report.context.clone(),
        );
        if report.kind != ReportKind::Comment && blocked.contains(&key) {
            continue;
        }
        if store.report_superseded(&report).await? {
            store
                .mark_report_done(report.id, "superseded", None, None)
                .await?;
            done.superseded += 1;
            continue;
        }
        let update = match report.kind {
            ReportKind::Check => store.posted_check_run(&report).await?,
            _ => None,
        };
        match forge.post(&report, update).await {
            Ok(remote_id) => {
                tracing::info!(
                    id = report.id,
                    "{} {} posted to {}{}",
                    report.kind.as_str(),
                    report.state,
                    report.repository,
                    report
                        .sha
                        .as_deref()
                        .map(|s| format!(" on {}", crate::repo::short(s)))
                        .unwrap_or_default()
                );
                store
                    .mark_report_done(report.id, "posted", remote_id.or(update), None)
                    .await?;
                done.posted += 1;
            }
            Err(ForgeError::Refused { message }) => {
                tracing::error!(
                    id = report.id,
                    "{} refused a report, which is dropped: {message}",
                    report.repository
                );
                store
                    .mark_report_done(report.id, "refused", None, Some(&message))
                    .await?;
                done.refused += 1;
            }
            Err(ForgeError::Transient { message, after }) => {
                let delay = retry_delay(retry_base, report.attempts, after);
                tracing::warn!(
                    id = report.id,
                    "report to {} not posted, trying again in {}: {message}",
                    report.repository,
                    humantime::format_duration(delay)
                );
                store
                    .mark_report_failed(report.id, &message, delay.as_millis() as i64)
                    .await?;
                blocked.insert(key);
                done.failed += 1;
                if after.is_some() {
                    // A rate limit holds for every call: the rest wait for the next pass.
                    break;
                }
            }
        }
    }
    Ok(done)
}
