//! Candidates, flights and pushes: the decisions and what they did.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::outbox::insert_mail;
use super::{get, json, now_ms, word, NewMail, NewReport, Result, Store, StoreError};
use crate::decision::Verdict;
use crate::repo::CommitInfo;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr, strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum FlightState {
    Running,
    Done,
    Cancelled,
}

impl FlightState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// The runs made for one decision about `base..tip`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlightRow {
    pub id: i64,
    pub branch_id: i64,
    pub candidate_id: i64,
    pub base: String,
    pub tip: String,
    /// First-parent commits of `base..tip`, oldest first: index 1 is `commits[0]`.
    pub commits: Vec<CommitInfo>,
    pub state: FlightState,
    pub verdict: Option<Verdict>,
    pub culprit: Option<String>,
    pub pushed_to: Option<String>,
    pub reason: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// The culprit finder's log, one line per result (empty when it did not search).
    pub finder_log: Vec<String>,
    /// The mailed series revision it tests, when it tests one instead of staging.
    pub series_id: Option<i64>,
}

/// By hand: `commits` and `finder_log` are JSON, `verdict` an optional word.
impl<'r> sqlx::FromRow<'r, AnyRow> for FlightRow {
    fn from_row(row: &'r AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(FlightRow {
            id: row.try_get("id")?,
            branch_id: row.try_get("branch_id")?,
            candidate_id: row.try_get("candidate_id")?,
            base: row.try_get("base")?,
            tip: row.try_get("tip")?,
            commits: json(row, "commits")?,
            state: word(row, "state")?.ok_or_else(|| sqlx::Error::ColumnDecode {
                index: "state".into(),
                source: "a flight without a state".into(),
            })?,
            verdict: word(row, "verdict")?,
            culprit: row.try_get("culprit")?,
            pushed_to: row.try_get("pushed_to")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
            finished_at: row.try_get("finished_at")?,
            finder_log: json(row, "finder_log")?,
            series_id: row.try_get("series_id")?,
        })
    }
}

impl FlightRow {
    /// The sha of a commit by its index in the flight (0 is the base).
    pub fn sha(&self, index: usize) -> &str {
        match index {
            0 => &self.base,
            i => self.commits.get(i - 1).map_or(&self.tip, |c| &c.sha),
        }
    }

    /// The commit at an index of the range (1-based), if it is one.
    pub fn commit(&self, index: usize) -> Option<&CommitInfo> {
        index.checked_sub(1).and_then(|i| self.commits.get(i))
    }
}

/// How a flight ended, as stored.
#[derive(Clone, Debug)]
pub struct Conclusion {
    pub verdict: Verdict,
    /// The oldest culprit.
    pub culprit: Option<String>,
    /// Every culprit named, one per regression.
    pub blames: Vec<BlameRow>,
    pub pushed_to: Option<String>,
    pub reason: String,
    /// The culprit finder's log, one line per result (empty when it did not search).
    pub finder_log: Vec<String>,
}

/// A commit a flight named the culprit of a regression.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BlameRow {
    pub flight_id: i64,
    pub sha: String,
    /// The steps whose failure began there.
    pub steps: Vec<String>,
    pub probability: f64,
}

impl<'r> sqlx::FromRow<'r, AnyRow> for BlameRow {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(BlameRow {
            flight_id: row.try_get("flight_id")?,
            sha: row.try_get("sha")?,
            steps: json(row, "steps")?,
            probability: row.try_get("probability")?,
        })
    }
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct PushRow {
    pub flight_id: i64,
    pub target: String,
    pub old_sha: String,
    pub new_sha: String,
    pub pushed_at: i64,
}

/// Which flights a history page asks for.
#[derive(Clone, Debug, Default)]
pub struct FlightFilter {
    /// Only flights older than this one (the next page).
    pub before: Option<i64>,
    /// Only flights with this verdict (`regression`, `pass`, ...).
    pub verdict: Option<String>,
    /// Made at or after this time (ms).
    pub since: Option<i64>,
    /// Made before this time (ms).
    pub until: Option<i64>,
}

impl Store {
    /// Starts a flight for `tip`, in one transaction: it takes the candidate a delivery queued
    /// for that tip (or records one), and settles the candidates queued before `seen_at`, when
    /// the gate read staging: their commits are in this flight, or no longer on staging.
    pub async fn create_flight(
        &self,
        branch_id: i64,
        base: &str,
        tip: &str,
        commits: &[CommitInfo],
        seen_at: i64,
        reports: impl FnOnce(&FlightRow) -> Vec<NewReport>,
    ) -> Result<FlightRow> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let queued = sqlx::query(
            "UPDATE candidates SET state = 'testing'
             WHERE branch_id = $1 AND tip = $2 AND state = 'queued' RETURNING id",
        )
        .bind(branch_id)
        .bind(tip)
        .fetch_optional(&mut *tx)
        .await?;
        let candidate: i64 = match queued {
            Some(row) => get(&row, "id")?,
            None => insert_candidate(&mut tx, branch_id, base, tip, "testing", now).await?,
        };
        sqlx::query(
            "UPDATE candidates SET state = 'superseded'
             WHERE branch_id = $1 AND state = 'queued' AND created_at <= $2",
        )
        .bind(branch_id)
        .bind(seen_at)
        .execute(&mut *tx)
        .await?;
        let range = (base, tip, commits);
        let flight = insert_flight(&mut tx, branch_id, candidate, range, None, now).await?;
        super::forge::insert_reports(&mut tx, &reports(&flight), now).await?;
        tx.commit().await?;
        Ok(flight)
    }

    pub async fn flight(&self, id: i64) -> Result<Option<FlightRow>> {
        self.by_id("flights", id).await
    }

    /// The branch's running flight, if any (there is at most one).
    pub async fn active_flight(&self, branch_id: i64) -> Result<Option<FlightRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM flights WHERE branch_id = $1 AND state = 'running' AND series_id IS NULL
             ORDER BY id DESC LIMIT 1",
        )
        .bind(branch_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// The newest finished flight of this tip, to avoid deciding the same thing twice.
    pub async fn last_done_flight_for_tip(
        &self,
        branch_id: i64,
        tip: &str,
    ) -> Result<Option<FlightRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM flights WHERE branch_id = $1 AND tip = $2 AND state = 'done'
             AND series_id IS NULL ORDER BY id DESC LIMIT 1",
        )
        .bind(branch_id)
        .bind(tip)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn recent_flights(&self, branch_id: i64, limit: i64) -> Result<Vec<FlightRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM flights WHERE branch_id = $1 AND series_id IS NULL
             ORDER BY id DESC LIMIT $2",
        )
        .bind(branch_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A page of a branch's staging flights, newest first, as a history page filters them.
    pub async fn flights_page(
        &self,
        branch_id: i64,
        filter: &FlightFilter,
        limit: i64,
    ) -> Result<Vec<FlightRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM flights WHERE branch_id = $1 AND series_id IS NULL AND id < $2
             AND ($3 = '' OR verdict = $3) AND created_at >= $4 AND created_at < $5
             ORDER BY id DESC LIMIT $6",
        )
        .bind(branch_id)
        .bind(filter.before.unwrap_or(i64::MAX))
        .bind(filter.verdict.clone().unwrap_or_default())
        .bind(filter.since.unwrap_or(0))
        .bind(filter.until.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Stops a flight whose range no longer stands (staging rewritten, target moved aside).
    /// Cancels a running flight and queues what the forge is told of it, at once.
    pub async fn cancel_flight(
        &self,
        flight: &FlightRow,
        reason: &str,
        reports: &[NewReport],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE flights SET state = 'cancelled', reason = $1, finished_at = $2
             WHERE id = $3 AND state = 'running'",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(flight.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE candidates SET state = 'superseded' WHERE id = $1")
            .bind(flight.candidate_id)
            .execute(&mut *tx)
            .await?;
        super::forge::insert_reports(&mut tx, reports, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends a flight: its conclusion, the mail it sends, and the branch's status, all at once,
    /// so a crash leaves either none of it or all of it.
    pub async fn finish_flight(
        &self,
        flight: &FlightRow,
        conclusion: &Conclusion,
        mails: &[NewMail],
        reports: &[NewReport],
        branch_state: &str,
    ) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        if !settle_flight(&mut tx, flight, conclusion, now).await? {
            // Someone else finished or cancelled it: their word stands, and no mail goes twice.
            return Ok(());
        }
        for mail in mails {
            insert_mail(&mut tx, Some(flight.id), mail, now).await?;
        }
        super::forge::insert_reports(&mut tx, reports, now).await?;
        sqlx::query("UPDATE branches SET state = $1, message = $2, updated_at = $3 WHERE id = $4")
            .bind(branch_state)
            .bind(format!("{}: {}", conclusion.verdict, conclusion.reason))
            .bind(now)
            .bind(flight.branch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts the flight of a series revision that was just applied, and records the revision
    /// as applied, in one transaction: a crash leaves it unapplied (applied again next pass)
    /// or applied with its flight.
    pub async fn start_series_flight(
        &self,
        branch_id: i64,
        record: &super::SeriesRecord<'_>,
        applied: &super::AppliedSeries<'_>,
        commits: &[CommitInfo],
    ) -> Result<FlightRow> {
        let (Some(base), Some(tip)) = (record.base.as_deref(), record.tip.as_deref()) else {
            return Err(StoreError::Corrupt(
                "a series flight needs the applied base and tip".into(),
            ));
        };
        let _turn = self.write_turn().await;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let series_id = super::mail::upsert_series(&mut tx, record, Some(applied), now).await?;
        // A candidate of its own, never `queued`: staging's deliveries cannot take it.
        let candidate = insert_candidate(&mut tx, branch_id, base, tip, "series", now).await?;
        let range = (base, tip, commits);
        let flight =
            insert_flight(&mut tx, branch_id, candidate, range, Some(series_id), now).await?;
        tx.commit().await?;
        Ok(flight)
    }

    /// The running flights of mailed series on a branch, oldest first.
    pub async fn running_series_flights(&self, branch_id: i64) -> Result<Vec<FlightRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM flights WHERE branch_id = $1 AND state = 'running'
             AND series_id IS NOT NULL ORDER BY id",
        )
        .bind(branch_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ends a series flight: its conclusion, the revision's `concluded` state and the reply
    /// to its thread, at once. Branch status is left alone: a series is not staging.
    pub async fn finish_series_flight(
        &self,
        flight: &FlightRow,
        conclusion: &Conclusion,
        reply: Option<&NewMail>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        if !settle_flight(&mut tx, flight, conclusion, now).await? {
            return Ok(());
        }
        sqlx::query(
            "UPDATE series_revisions SET state = 'concluded', updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(flight.series_id)
        .execute(&mut *tx)
        .await?;
        if let Some(mail) = reply {
            insert_mail(&mut tx, Some(flight.id), mail, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records that the target branch was moved for a flight (at most once per flight), and
    /// that the branch's target is there now, at once: the page and `/api/branches` show the
    /// new head without waiting for the next fetch.
    pub async fn record_push(
        &self,
        flight: &FlightRow,
        target: &str,
        old_sha: &str,
        new_sha: &str,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO pushes (flight_id, branch_id, target, old_sha, new_sha, pushed_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(flight.id)
        .bind(flight.branch_id)
        .bind(target)
        .bind(old_sha)
        .bind(new_sha)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE branches SET target_head = $1 WHERE id = $2")
            .bind(new_sha)
            .bind(flight.branch_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn push_of(&self, flight_id: i64) -> Result<Option<PushRow>> {
        Ok(sqlx::query_as("SELECT * FROM pushes WHERE flight_id = $1")
            .bind(flight_id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// The culprits a branch's staging flights before `before_flight` named, oldest first
    /// (read from the few blames, not the branch's many flights: hence `CROSS JOIN`).
    pub async fn earlier_blames(
        &self,
        branch_id: i64,
        before_flight: i64,
    ) -> Result<Vec<BlameRow>> {
        Ok(sqlx::query_as(
            "SELECT blames.* FROM blames CROSS JOIN flights
             WHERE flights.id = blames.flight_id AND flights.branch_id = $1 AND flights.id < $2
             AND flights.series_id IS NULL ORDER BY blames.flight_id, blames.sha",
        )
        .bind(branch_id)
        .bind(before_flight)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The culprits one flight named.
    pub async fn blames(&self, flight_id: i64) -> Result<Vec<BlameRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM blames WHERE flight_id = $1 ORDER BY sha")
                .bind(flight_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn pushes(&self, branch_id: i64) -> Result<Vec<PushRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM pushes WHERE branch_id = $1 ORDER BY id")
                .bind(branch_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Marks a running flight done with its conclusion and its candidate decided. False when the
/// flight was no longer running (finished or cancelled by someone else).
async fn settle_flight(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    flight: &FlightRow,
    conclusion: &Conclusion,
    now: i64,
) -> Result<bool> {
    let updated = sqlx::query(
        "UPDATE flights SET state = 'done', verdict = $1, culprit = $2, pushed_to = $3,
         reason = $4, finished_at = $5, finder_log = $6 WHERE id = $7 AND state = 'running'",
    )
    .bind(conclusion.verdict.as_str())
    .bind(&conclusion.culprit)
    .bind(&conclusion.pushed_to)
    .bind(&conclusion.reason)
    .bind(now)
    .bind(
        (!conclusion.finder_log.is_empty())
            .then(|| serde_json::to_string(&conclusion.finder_log).unwrap_or_default()),
    )
    .bind(flight.id)
    .execute(&mut **tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    for blame in &conclusion.blames {
        sqlx::query(
            "INSERT INTO blames (flight_id, sha, steps, probability) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(flight.id)
        .bind(&blame.sha)
        .bind(serde_json::to_string(&blame.steps).unwrap_or_default())
        .bind(blame.probability)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE candidates SET state = 'decided' WHERE id = $1")
        .bind(flight.candidate_id)
        .execute(&mut **tx)
        .await?;
    Ok(true)
}

/// A running flight of `base..tip` (the range's first-parent commits), for staging or, with
/// `series_id`, for a mailed series.
async fn insert_flight(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    branch_id: i64,
    candidate: i64,
    (base, tip, commits): (&str, &str, &[CommitInfo]),
    series_id: Option<i64>,
    now: i64,
) -> Result<FlightRow> {
    let json =
        serde_json::to_string(commits).map_err(|e| StoreError::Corrupt(format!("commits: {e}")))?;
    // Only the id comes back: a range of Linux's size is megabytes of JSON that the caller
    // already holds, not worth reading back and parsing again.
    let row = sqlx::query(
        "INSERT INTO flights
            (branch_id, candidate_id, base, tip, commits, state, reason, created_at, series_id)
         VALUES ($1, $2, $3, $4, $5, 'running', '', $6, $7) RETURNING id",
    )
    .bind(branch_id)
    .bind(candidate)
    .bind(base)
    .bind(tip)
    .bind(json)
    .bind(now)
    .bind(series_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(FlightRow {
        id: get(&row, "id")?,
        branch_id,
        candidate_id: candidate,
        base: base.to_string(),
        tip: tip.to_string(),
        commits: commits.to_vec(),
        state: FlightState::Running,
        verdict: None,
        culprit: None,
        pushed_to: None,
        reason: String::new(),
        created_at: now,
        finished_at: None,
        finder_log: Vec::new(),
        series_id,
    })
}

async fn insert_candidate(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    branch_id: i64,
    base: &str,
    tip: &str,
    state: &str,
    now: i64,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO candidates (branch_id, base, tip, state, created_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(branch_id)
    .bind(base)
    .bind(tip)
    .bind(state)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    get(&row, "id")
}
