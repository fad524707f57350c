//! What a forge (GitHub) brings and takes: candidates queued by webhook deliveries and the
//! reconciliation pass, maintainers' overrides, and the queue of reports (statuses, check runs,
//! comments) that waits for the forge as mail waits for SMTP.

use super::{get, now_ms, Result, Store};

/// A candidate a delivery asks for: `policy`'s staging moved from `base` to `tip`.
#[derive(Clone, Debug)]
pub struct PushedCandidate<'a> {
    pub policy: &'a str,
    pub base: &'a str,
    pub tip: &'a str,
}

/// What recording a delivery did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Seen before: nothing was done.
    Redelivery,
    /// New: this many candidates were queued (a tip already queued is not queued twice).
    New { queued: usize },
}

/// A report to post: a commit status or check run, or a comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReport {
    /// Unique: enqueueing the same key again does nothing.
    pub key: String,
    pub repository: String,
    pub kind: ReportKind,
    pub sha: Option<String>,
    pub issue: Option<i64>,
    pub context: String,
    pub state: String,
    pub title: String,
    pub body: String,
    pub target_url: Option<String>,
    pub flight_id: Option<i64>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr, strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum ReportKind {
    Status,
    Check,
    Comment,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct ReportRow {
    pub id: i64,
    pub repository: String,
    #[sqlx(try_from = "String")]
    pub kind: ReportKind,
    pub sha: Option<String>,
    pub issue: Option<i64>,
    pub context: String,
    pub state: String,
    pub title: String,
    pub body: String,
    pub target_url: Option<String>,
    pub attempts: i64,
    pub sent_at: Option<i64>,
    pub remote_id: Option<i64>,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    /// When the next attempt may be made (ms since the epoch).
    pub next_attempt_at: i64,
}

/// A maintainer's instruction and what came of it.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct OverrideRow {
    pub id: i64,
    pub branch_id: i64,
    pub action: String,
    pub rev: Option<String>,
    pub who: String,
    pub why: String,
    pub created_at: i64,
    pub done_at: Option<i64>,
    pub outcome: Option<String>,
}

impl Store {
    /// Records a delivery and queues the candidates it asks for, in one transaction: a
    /// delivery is acted on exactly once, even when GitHub sends it again or two deliveries
    /// race. Candidates of policies the store has no branch for yet are not queued (the
    /// service registers every policy's branch at start).
    pub async fn record_delivery(
        &self,
        delivery: &str,
        event: &str,
        candidates: &[PushedCandidate<'_>],
    ) -> Result<Recorded> {
        let now = now_ms();
        let _turn = self.write_turn().await;
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO github_deliveries (delivery, event, received_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(delivery)
        .bind(event)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            return Ok(Recorded::Redelivery);
        }
        let source = format!("github:{delivery}");
        let mut queued = 0;
        for c in candidates {
            queued += queue_candidate(&mut tx, c, &source, now).await?;
        }
        tx.commit().await?;
        Ok(Recorded::New { queued })
    }

    /// Queues a candidate found some other way (the reconciliation pass); false when that tip
    /// is already queued.
    pub async fn queue_candidate(&self, c: &PushedCandidate<'_>, source: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let queued = queue_candidate(&mut tx, c, source, now_ms()).await?;
        tx.commit().await?;
        Ok(queued == 1)
    }

    /// Candidates of a branch by state, newest first (`None`: every state).
    pub async fn candidates(
        &self,
        branch_id: i64,
        state: Option<&str>,
    ) -> Result<Vec<(i64, String, String, String)>> {
        let rows = sqlx::query(
            "SELECT id, tip, state, source FROM candidates
             WHERE branch_id = $1 AND ($2 IS NULL OR state = $2) ORDER BY id DESC",
        )
        .bind(branch_id)
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    get(r, "id")?,
                    get(r, "tip")?,
                    get(r, "state")?,
                    get(r, "source")?,
                ))
            })
            .collect()
    }

    /// Whether any candidate of the branch, in any state, has this tip.
    pub async fn knows_candidate(&self, branch_id: i64, tip: &str) -> Result<bool> {
        Ok(
            sqlx::query("SELECT 1 AS x FROM candidates WHERE branch_id = $1 AND tip = $2 LIMIT 1")
                .bind(branch_id)
                .bind(tip)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Marks candidates queued before `seen_at` superseded: the gate has looked at staging
    /// since, and what they asked for is either being tested or gone.
    pub async fn settle_queued_candidates(&self, branch_id: i64, seen_at: i64) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE candidates SET state = 'superseded'
             WHERE branch_id = $1 AND state = 'queued' AND created_at <= $2",
        )
        .bind(branch_id)
        .bind(seen_at)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Sets or clears a branch's hold and logs who did it.
    pub async fn set_hold(
        &self,
        branch_id: i64,
        hold: Option<&str>,
        who: &str,
        why: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE branches SET hold = $1, updated_at = $2 WHERE id = $3")
            .bind(hold)
            .bind(now)
            .bind(branch_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO overrides (branch_id, action, who, why, created_at, done_at, outcome)
             VALUES ($1, $2, $3, $4, $5, $5, 'done')",
        )
        .bind(branch_id)
        .bind(if hold.is_some() { "block" } else { "unblock" })
        .bind(who)
        .bind(why)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks the gate to do something on its next pass (`retry`, `force`).
    pub async fn request_override(
        &self,
        branch_id: i64,
        action: &str,
        rev: Option<&str>,
        who: &str,
        why: &str,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO overrides (branch_id, action, rev, who, why, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(branch_id)
        .bind(action)
        .bind(rev)
        .bind(who)
        .bind(why)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    /// Overrides the gate has yet to carry out, oldest first.
    pub async fn pending_overrides(&self, branch_id: i64) -> Result<Vec<OverrideRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM overrides WHERE branch_id = $1 AND done_at IS NULL ORDER BY id",
        )
        .bind(branch_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A branch's overrides, newest first.
    pub async fn overrides(&self, branch_id: i64, limit: i64) -> Result<Vec<OverrideRow>> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM overrides WHERE branch_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(branch_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
        )
    }

    pub async fn override_row(&self, id: i64) -> Result<Option<OverrideRow>> {
        self.by_id("overrides", id).await
    }

    pub async fn finish_override(&self, id: i64, outcome: &str) -> Result<()> {
        sqlx::query("UPDATE overrides SET done_at = $1, outcome = $2 WHERE id = $3")
            .bind(now_ms())
            .bind(outcome)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Queues reports for the forge; a key already queued is skipped.
    pub async fn enqueue_reports(&self, reports: &[NewReport]) -> Result<()> {
        if reports.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        insert_reports(&mut tx, reports, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Reports whose attempt is due and that no earlier unsent report of the same commit and
    /// context must precede, oldest first.
    pub async fn due_reports(&self, limit: i64) -> Result<Vec<ReportRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM forge_reports o WHERE o.sent_at IS NULL AND o.next_attempt_at <= $1
             AND NOT EXISTS (SELECT 1 FROM forge_reports e WHERE e.sent_at IS NULL
                 AND e.repository = o.repository AND e.context = o.context AND e.kind = o.kind
                 AND e.sha IS NOT DISTINCT FROM o.sha AND e.issue IS NOT DISTINCT FROM o.issue
                 AND e.kind <> 'comment' AND e.id < o.id)
             ORDER BY o.id LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Whether a later report about the same commit and context is queued: then this one is
    /// out of date before it is posted.
    pub async fn report_superseded(&self, report: &ReportRow) -> Result<bool> {
        if report.kind == ReportKind::Comment {
            return Ok(false);
        }
        Ok(sqlx::query(
            "SELECT 1 AS x FROM forge_reports WHERE repository = $1 AND sha = $2 AND context = $3
             AND kind = $4 AND id > $5 LIMIT 1",
        )
        .bind(&report.repository)
        .bind(&report.sha)
        .bind(&report.context)
        .bind(report.kind.as_str())
        .bind(report.id)
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }

    /// The id of the check run posted last for this commit and name, to update it.
    pub async fn posted_check_run(&self, report: &ReportRow) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT remote_id FROM forge_reports WHERE repository = $1 AND sha = $2
             AND context = $3 AND kind = 'check' AND remote_id IS NOT NULL AND id < $4
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&report.repository)
        .bind(&report.sha)
        .bind(&report.context)
        .bind(report.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| get(&r, "remote_id")).transpose()
    }

    /// Marks a report done: `outcome` is `posted`, `superseded` or `refused`.
    pub async fn mark_report_done(
        &self,
        id: i64,
        outcome: &str,
        remote_id: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE forge_reports SET sent_at = $1, outcome = $2, remote_id = $3,
             last_error = COALESCE($4, last_error), attempts = attempts + 1 WHERE id = $5",
        )
        .bind(now_ms())
        .bind(outcome)
        .bind(remote_id)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many reports still wait after at least one failed attempt.
    pub async fn failed_report_count(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM forge_reports WHERE sent_at IS NULL AND attempts > 0",
        )
        .fetch_one(&self.pool)
        .await?;
        get(&row, "n")
    }

    /// Records a failed attempt; the next one is `delay_ms` from now.
    pub async fn mark_report_failed(&self, id: i64, error: &str, delay_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE forge_reports SET attempts = attempts + 1, last_error = $1,
             next_attempt_at = $2 WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms() + delay_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reports not yet posted, due or not, oldest first: what `pushgate outbox` lists.
    pub async fn unsent_reports(&self, limit: i64) -> Result<Vec<ReportRow>> {
        Ok(
            sqlx::query_as(
                "SELECT * FROM forge_reports WHERE sent_at IS NULL ORDER BY id LIMIT $1",
            )
            .bind(limit)
            .fetch_all(&self.pool)
            .await?,
        )
    }

    /// Every report, oldest first (for tests and the API).
    pub async fn reports(&self, limit: i64) -> Result<Vec<ReportRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM forge_reports ORDER BY id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

async fn queue_candidate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    c: &PushedCandidate<'_>,
    source: &str,
    now: i64,
) -> Result<usize> {
    let done = sqlx::query(
        "INSERT INTO candidates (branch_id, base, tip, state, created_at, source)
         SELECT id, $1, $2, 'queued', $3, $4 FROM branches WHERE policy = $5
         ON CONFLICT DO NOTHING",
    )
    .bind(c.base)
    .bind(c.tip)
    .bind(now)
    .bind(source)
    .bind(c.policy)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() as usize)
}

pub(super) async fn insert_reports(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    reports: &[NewReport],
    now: i64,
) -> Result<()> {
    for r in reports {
        sqlx::query(
            "INSERT INTO forge_reports (dedupe_key, repository, kind, sha, issue, context, state,
             title, body, target_url, flight_id, created_at, attempts, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, $12)
             ON CONFLICT DO NOTHING",
        )
        .bind(&r.key)
        .bind(&r.repository)
        .bind(r.kind.as_str())
        .bind(&r.sha)
        .bind(r.issue)
        .bind(&r.context)
        .bind(&r.state)
        .bind(&r.title)
        .bind(&r.body)
        .bind(&r.target_url)
        .bind(r.flight_id)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

impl Store {
    /// Deliveries recorded, candidates queued from them, and their distinct tips per branch
    /// (the intake bench counts lost and doubled candidates with these).
    pub async fn intake_counts(&self) -> Result<(i64, i64, i64)> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM github_deliveries) AS deliveries,
                    (SELECT COUNT(*) FROM candidates WHERE source LIKE 'github:%') AS candidates,
                    (SELECT COUNT(*) FROM (SELECT DISTINCT branch_id, tip FROM candidates
                        WHERE source LIKE 'github:%') AS t) AS tips",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            get(&row, "deliveries")?,
            get(&row, "candidates")?,
            get(&row, "tips")?,
        ))
    }
}
