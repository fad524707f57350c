//! Per-test results of steps, and the pauses of runs that wait after a failing testcase.

use super::{get, now_ms, Result, Store};
use crate::sequence::results::SubResult;

#[derive(Clone, Debug, serde::Serialize)]
pub struct SubResultRow {
    pub step_id: i64,
    pub name: String,
    pub status: String,
    pub duration_ms: Option<i64>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct PauseRow {
    pub id: i64,
    pub run_id: i64,
    pub step_id: i64,
    pub testcase: String,
    pub paused_at: i64,
    pub resume_at: Option<i64>,
    pub continued_at: Option<i64>,
    pub continued_by: Option<String>,
}

impl Store {
    pub async fn add_sub_results(&self, step_id: i64, results: &[SubResult]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for r in results {
            sqlx::query(
                "INSERT INTO sub_results (step_id, name, status, duration_ms, message)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(step_id)
            .bind(&r.name)
            .bind(r.status.as_str())
            .bind(r.duration.map(|d| (d * 1000.0).round() as i64))
            .bind(r.message.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sub-results of every step of a flight's runs, in step order.
    pub async fn flight_sub_results(&self, flight_id: i64) -> Result<Vec<SubResultRow>> {
        self.sub_results_where("runs.flight_id = $1", flight_id)
            .await
    }

    pub async fn run_sub_results(&self, run_id: i64) -> Result<Vec<SubResultRow>> {
        self.sub_results_where("runs.id = $1", run_id).await
    }

    async fn sub_results_where(&self, condition: &str, id: i64) -> Result<Vec<SubResultRow>> {
        let sql = format!(
            "SELECT sub_results.* FROM sub_results JOIN steps ON steps.id = sub_results.step_id
             JOIN runs ON runs.id = steps.run_id WHERE {condition} ORDER BY sub_results.id"
        );
        sqlx::query(&sql)
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(SubResultRow {
                    step_id: get(row, "step_id")?,
                    name: get(row, "name")?,
                    status: get(row, "status")?,
                    duration_ms: get(row, "duration_ms")?,
                    message: get(row, "message")?,
                })
            })
            .collect()
    }

    /// Records that a run waits after a failing testcase; returns the pause's id.
    pub async fn pause(
        &self,
        run_id: i64,
        step_id: i64,
        testcase: &str,
        resume_at: Option<i64>,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO pauses (run_id, step_id, testcase, paused_at, resume_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(run_id)
        .bind(step_id)
        .bind(testcase)
        .bind(now_ms())
        .bind(resume_at)
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    pub async fn pause_row(&self, id: i64) -> Result<Option<PauseRow>> {
        self.by_id("pauses", id).await
    }

    /// Pauses of a run still waiting, oldest first.
    pub async fn waiting_pauses(&self, run_id: i64) -> Result<Vec<PauseRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM pauses WHERE run_id = $1 AND continued_at IS NULL ORDER BY id",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Lets a waiting pause go on; `testcase` picks one, `None` takes them all. Returns how
    /// many were waiting and are now released.
    pub async fn continue_pauses(
        &self,
        run_id: i64,
        testcase: Option<&str>,
        by: &str,
    ) -> Result<u64> {
        let done = match testcase {
            Some(tc) => {
                sqlx::query(
                    "UPDATE pauses SET continued_at = $1, continued_by = $2
                     WHERE run_id = $3 AND testcase = $4 AND continued_at IS NULL",
                )
                .bind(now_ms())
                .bind(by)
                .bind(run_id)
                .bind(tc)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE pauses SET continued_at = $1, continued_by = $2
                     WHERE run_id = $3 AND continued_at IS NULL",
                )
                .bind(now_ms())
                .bind(by)
                .bind(run_id)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected())
    }
}
