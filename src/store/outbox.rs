//! The outbox: mail waits here until a transport has taken it.

use sqlx::any::AnyRow;
use sqlx::Row;
use sqlx::{Any, Transaction};

use super::{get, now_ms, Result, Store, StoreError};

/// A mail to enqueue: already rendered, with its Message-ID fixed, so a resend is the same mail.
#[derive(Clone, Debug)]
pub struct NewMail {
    pub kind: String,
    pub message_id: String,
    pub subject: String,
    pub recipients: Vec<String>,
    /// The whole RFC 5322 message.
    pub message: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct MailRow {
    pub id: i64,
    pub flight_id: Option<i64>,
    pub kind: String,
    pub message_id: String,
    pub subject: String,
    pub recipients: Vec<String>,
    pub message: String,
    pub attempts: i64,
    pub sent_at: Option<i64>,
    pub delivered_to: Option<String>,
    pub last_error: Option<String>,
    /// When the next attempt may be made (ms since the epoch).
    pub next_attempt_at: i64,
}

/// By hand: `recipients` is JSON.
impl<'r> sqlx::FromRow<'r, AnyRow> for MailRow {
    fn from_row(row: &'r AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(MailRow {
            id: row.try_get("id")?,
            flight_id: row.try_get("flight_id")?,
            kind: row.try_get("kind")?,
            message_id: row.try_get("message_id")?,
            subject: row.try_get("subject")?,
            recipients: super::json(row, "recipients")?,
            message: row.try_get("message")?,
            attempts: row.try_get("attempts")?,
            sent_at: row.try_get("sent_at")?,
            delivered_to: row.try_get("delivered_to")?,
            last_error: row.try_get("last_error")?,
            next_attempt_at: row.try_get("next_attempt_at")?,
        })
    }
}

pub(super) async fn insert_mail(
    tx: &mut Transaction<'_, Any>,
    flight_id: Option<i64>,
    mail: &NewMail,
    now: i64,
) -> Result<()> {
    let recipients = serde_json::to_string(&mail.recipients)
        .map_err(|e| StoreError::Corrupt(format!("mail recipients: {e}")))?;
    sqlx::query(
        "INSERT INTO outbox (flight_id, kind, message_id, message, recipients, subject, created_at,
         attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7)",
    )
    .bind(flight_id)
    .bind(&mail.kind)
    .bind(&mail.message_id)
    .bind(&mail.message)
    .bind(recipients)
    .bind(&mail.subject)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Mail not yet sent whose next attempt is due.
    pub async fn due_mail(&self, limit: i64) -> Result<Vec<MailRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $1
             ORDER BY id LIMIT $2",
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Mail not yet sent, due or not, oldest first: what `pushgate outbox` lists.
    pub async fn unsent_mail(&self, limit: i64) -> Result<Vec<MailRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// How much mail still waits, due or not.
    pub async fn unsent_mail_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        get(&row, "n")
    }

    /// How much mail still waits after at least one failed attempt: what `gate --once`'s
    /// exit code reports.
    pub async fn failed_mail_count(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL AND attempts > 0")
                .fetch_one(&self.pool)
                .await?;
        get(&row, "n")
    }

    pub async fn mark_mail_sent(&self, id: i64, delivered_to: &str) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET sent_at = $1, delivered_to = $2, attempts = attempts + 1,
             last_error = NULL WHERE id = $3 AND sent_at IS NULL",
        )
        .bind(now_ms())
        .bind(delivered_to)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mark_mail_failed(&self, id: i64, error: &str, retry_in_ms: i64) -> Result<()> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2
             WHERE id = $3",
        )
        .bind(error)
        .bind(now_ms() + retry_in_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn mail_of_flight(&self, flight_id: i64) -> Result<Vec<MailRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM outbox WHERE flight_id = $1 ORDER BY id")
                .bind(flight_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

impl Store {
    /// Queues one mail outside a flight's conclusion (a paused run's, say).
    pub async fn enqueue_mail(&self, flight_id: Option<i64>, mail: &NewMail) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_mail(&mut tx, flight_id, mail, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }
}
