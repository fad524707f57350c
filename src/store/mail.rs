//! Mail read from mailing lists, and how far each source has been read.

use super::{get, now_ms, Result, Store, StoreError};

/// One mail to keep: its list-wide identity and its bytes.
#[derive(Clone, Debug)]
pub struct ListMail<'a> {
    pub message_id: &'a str,
    pub raw: &'a [u8],
}

/// Where a source stands after a batch: saved with the batch, so a crash never skips mail
/// (nor reads it twice into the store: the insert ignores what is already there).
#[derive(Clone, Debug)]
pub struct Cursor {
    pub source: String,
    pub position: String,
}

/// Rows per INSERT. Measured on SQLite through sqlx (bench mail, 20,000 mails of 2 KiB):
/// 10 rows 743 ms, 50 rows 668 ms, 200 rows 846 ms, 1000 rows 1464 ms; bigger statements
/// cost more to bind than they save in round trips.
const ROWS_PER_INSERT: usize = 50;

impl Store {
    /// Keeps the mails not already kept for `list` and moves the cursor, in one transaction.
    /// Returns how many were new.
    pub async fn add_list_mail(
        &self,
        list: &str,
        source: &str,
        mails: &[ListMail<'_>],
        cursor: Option<&Cursor>,
    ) -> Result<u64> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let mut added = 0;
        for chunk in mails.chunks(ROWS_PER_INSERT) {
            let mut sql = String::from(
                "INSERT INTO mail_messages (list, message_id, source, received_at, raw) VALUES ",
            );
            for i in 0..chunk.len() {
                let p = i * 5;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    p + 1,
                    p + 2,
                    p + 3,
                    p + 4,
                    p + 5
                ));
            }
            sql.push_str(" ON CONFLICT (list, message_id) DO NOTHING");
            let mut query = sqlx::query(&sql);
            for m in chunk {
                query = query
                    .bind(list)
                    .bind(m.message_id)
                    .bind(source)
                    .bind(now)
                    .bind(m.raw);
            }
            added += query.execute(&mut *tx).await?.rows_affected();
        }
        if let Some(c) = cursor {
            sqlx::query(
                "INSERT INTO mail_cursors (source, position, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET position = $2, updated_at = $3",
            )
            .bind(&c.source)
            .bind(&c.position)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Where `source` was left, if it was ever read.
    pub async fn mail_cursor(&self, source: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT position FROM mail_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "position")).transpose()
    }

    /// Every mail kept for `list`, oldest first, as raw bytes.
    pub async fn list_mail(&self, list: &str) -> Result<Vec<Vec<u8>>> {
        let rows = sqlx::query("SELECT raw FROM mail_messages WHERE list = $1 ORDER BY id")
            .bind(list)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| get(r, "raw")).collect()
    }

    /// How many mails are kept for `list`.
    pub async fn list_mail_count(&self, list: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM mail_messages WHERE list = $1")
            .bind(list)
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }
}

/// What the series pass decided about one revision, recorded with the reply it sends.
#[derive(Clone, Debug)]
pub struct SeriesRecord<'a> {
    pub list: &'a str,
    pub root: &'a str,
    pub version: u32,
    /// missing-reported, applied, does-not-apply, concluded, superseded
    pub state: &'a str,
    pub base: Option<String>,
    pub tip: Option<String>,
    pub superseded_by: Option<&'a str>,
}

/// What is kept of an applied revision for its reply and for `pushgate series queue`.
#[derive(Clone, Debug)]
pub struct AppliedSeries<'a> {
    pub policy: &'a str,
    /// The base as the thread is told it: `master at 1a2b3c4d`, `base-commit 1a2b3c4d`.
    pub base_said: &'a str,
    /// The Message-ID the reply answers (the cover letter, else patch 1).
    pub answering: &'a str,
    /// The patches' Message-IDs, in order.
    pub patches: &'a [String],
}

/// A revision as stored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeriesRow {
    pub id: i64,
    pub list: String,
    pub root: String,
    pub version: i64,
    pub state: String,
    pub base: Option<String>,
    pub tip: Option<String>,
    pub superseded_by: Option<String>,
    pub policy: Option<String>,
    pub base_said: Option<String>,
    pub answering: Option<String>,
    pub patches: Vec<String>,
    /// Where `pushgate series queue` put it (`staging at 1a2b3c4d`).
    pub queued: Option<String>,
    /// Its newest flight, with that flight's state and verdict.
    pub flight: Option<i64>,
    pub flight_state: Option<String>,
    pub verdict: Option<String>,
    pub culprit: Option<String>,
    pub updated_at: i64,
}

const SERIES_SELECT: &str = "SELECT s.*, f.id AS flight, f.state AS flight_state,
        f.verdict AS verdict, f.culprit AS culprit
     FROM series_revisions s LEFT JOIN flights f
        ON f.id = (SELECT MAX(id) FROM flights WHERE series_id = s.id)";

/// By hand: `patches` is JSON.
impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for SeriesRow {
    fn from_row(row: &'r sqlx::any::AnyRow) -> std::result::Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(SeriesRow {
            id: row.try_get("id")?,
            list: row.try_get("list")?,
            root: row.try_get("root")?,
            version: row.try_get("version")?,
            state: row.try_get("state")?,
            base: row.try_get("base")?,
            tip: row.try_get("tip")?,
            superseded_by: row.try_get("superseded_by")?,
            policy: row.try_get("policy")?,
            base_said: row.try_get("base_said")?,
            answering: row.try_get("answering")?,
            patches: super::json(row, "patches")?,
            queued: row.try_get("queued")?,
            flight: row.try_get("flight")?,
            flight_state: row.try_get("flight_state")?,
            verdict: row.try_get("verdict")?,
            culprit: row.try_get("culprit")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Inserts or moves a revision to `record.state` (with what applying it left, when it was
/// applied); returns its id.
pub(super) async fn upsert_series(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    record: &SeriesRecord<'_>,
    applied: Option<&AppliedSeries<'_>>,
    now: i64,
) -> Result<i64> {
    let patches = applied
        .map(|a| serde_json::to_string(a.patches))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("series patches: {e}")))?;
    let row = sqlx::query(
        "INSERT INTO series_revisions
            (list, root, version, state, base, tip, superseded_by, created_at, updated_at,
             policy, base_said, answering, patches)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10, $11, $12)
         ON CONFLICT (list, root) DO UPDATE SET state = $4, version = $3,
            base = COALESCE($5, series_revisions.base), tip = COALESCE($6, series_revisions.tip),
            superseded_by = COALESCE($7, series_revisions.superseded_by), updated_at = $8,
            policy = COALESCE($9, series_revisions.policy),
            base_said = COALESCE($10, series_revisions.base_said),
            answering = COALESCE($11, series_revisions.answering),
            patches = COALESCE($12, series_revisions.patches)
         RETURNING id",
    )
    .bind(record.list)
    .bind(record.root)
    .bind(record.version as i64)
    .bind(record.state)
    .bind(record.base.as_deref())
    .bind(record.tip.as_deref())
    .bind(record.superseded_by)
    .bind(now)
    .bind(applied.map(|a| a.policy))
    .bind(applied.map(|a| a.base_said))
    .bind(applied.map(|a| a.answering))
    .bind(patches)
    .fetch_one(&mut **tx)
    .await?;
    get(&row, "id")
}

impl Store {
    /// The recorded state of every revision of `list`, by root Message-ID.
    pub async fn series_states(
        &self,
        list: &str,
    ) -> Result<std::collections::HashMap<String, String>> {
        let rows = sqlx::query("SELECT root, state FROM series_revisions WHERE list = $1")
            .bind(list)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((get(r, "root")?, get(r, "state")?)))
            .collect()
    }

    /// Records a revision's new state and queues `reply` in the same transaction, so the
    /// thread hears once whatever happens between the two.
    pub async fn record_series(
        &self,
        record: &SeriesRecord<'_>,
        reply: Option<&super::NewMail>,
    ) -> Result<()> {
        let _turn = self.write_turn().await;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        upsert_series(&mut tx, record, None, now).await?;
        if let Some(mail) = reply {
            super::outbox::insert_mail(&mut tx, None, mail, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One revision by id.
    pub async fn series(&self, id: i64) -> Result<Option<SeriesRow>> {
        Ok(sqlx::query_as(&format!("{SERIES_SELECT} WHERE s.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Every revision (of one list, when given), newest first.
    pub async fn series_list(&self, list: Option<&str>) -> Result<Vec<SeriesRow>> {
        let rows = match list {
            Some(list) => {
                sqlx::query(&format!(
                    "{SERIES_SELECT} WHERE s.list = $1 ORDER BY s.id DESC"
                ))
                .bind(list)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{SERIES_SELECT} ORDER BY s.id DESC"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(super::read).collect()
    }

    /// Notes where `pushgate series queue` put a revision.
    pub async fn set_series_queued(&self, id: i64, queued: &str) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE series_revisions SET queued = $1, updated_at = $2 WHERE id = $3")
            .bind(queued)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The raw bytes of one kept mail.
    pub async fn list_mail_raw(&self, list: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT raw FROM mail_messages WHERE list = $1 AND message_id = $2")
            .bind(list)
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| get(&r, "raw")).transpose()
    }
}
