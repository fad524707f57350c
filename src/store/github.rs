//! What GitHub sent: deliveries already handled.

use super::{now_ms, Result, Store};

impl Store {
    /// Records a delivery; false when it was recorded before (GitHub redelivered it).
    pub async fn record_delivery(&self, delivery: &str, event: &str) -> Result<bool> {
        Ok(sqlx::query(
            "INSERT INTO github_deliveries (delivery, event, received_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(delivery)
        .bind(event)
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }
}
