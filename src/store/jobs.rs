//! Jobs: runs asked for by a person (`pushgate jobs submit`) or by a policy's schedule, outside
//! any gate flight.

use super::{get, now_ms, read, Result, RunRow, Store};

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Pass,
    Fail,
    Broken,
    Cancelled,
    /// Marked finished by hand (`jobs complete`), its hosts freed.
    Completed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn parse(s: &str) -> Option<JobState> {
        s.parse().ok()
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, sqlx::FromRow)]
pub struct JobRow {
    pub id: i64,
    /// `manual` or `periodic`.
    pub kind: String,
    pub branch_id: Option<i64>,
    pub sequence: String,
    pub repository: String,
    pub rev: String,
    pub sha: Option<String>,
    pub host: Option<String>,
    pub pause_on_fail: Option<String>,
    pub email: Option<String>,
    pub submitter: String,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub message: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub kind: String,
    pub branch_id: Option<i64>,
    pub sequence: String,
    pub repository: String,
    pub rev: String,
    pub host: Option<String>,
    pub pause_on_fail: Option<String>,
    pub email: Option<String>,
    pub submitter: String,
}

impl Store {
    /// The try run already queued for this head and sequence, if any.
    pub async fn try_job(&self, branch_id: i64, sequence: &str, head: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT id FROM jobs WHERE kind = 'try' AND branch_id = $1 AND sequence = $2
             AND rev = $3 ORDER BY id LIMIT 1",
        )
        .bind(branch_id)
        .bind(sequence)
        .bind(head)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| get(&r, "id")).transpose()
    }

    pub async fn create_job(&self, job: &NewJob) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO jobs (kind, branch_id, sequence, repository, rev, host, pause_on_fail,
                               email, submitter, state, message, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 'waiting for a host', $10)
             RETURNING id",
        )
        .bind(&job.kind)
        .bind(job.branch_id)
        .bind(&job.sequence)
        .bind(&job.repository)
        .bind(&job.rev)
        .bind(job.host.as_deref())
        .bind(job.pause_on_fail.as_deref())
        .bind(job.email.as_deref())
        .bind(&job.submitter)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        self.by_id("jobs", id).await
    }

    /// The newest jobs first, optionally only one submitter's.
    pub async fn jobs(&self, submitter: Option<&str>, limit: i64) -> Result<Vec<JobRow>> {
        let rows = match submitter {
            Some(s) => {
                sqlx::query("SELECT * FROM jobs WHERE submitter = $1 ORDER BY id DESC LIMIT $2")
                    .bind(s)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM jobs ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(read).collect()
    }

    /// A page of jobs, newest first: those older than `before` when given.
    pub async fn jobs_before(&self, before: Option<i64>, limit: i64) -> Result<Vec<JobRow>> {
        let rows = sqlx::query("SELECT * FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2")
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(read).collect()
    }

    pub async fn queued_jobs(&self) -> Result<Vec<JobRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM jobs WHERE state = 'queued' ORDER BY id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Moves a queued job to running; false if it is no longer queued (cancelled, or taken by
    /// another process).
    pub async fn start_job(&self, id: i64, sha: &str) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'running', sha = $1, started_at = $2,
             message = 'running' WHERE id = $3 AND state = 'queued'",
        )
        .bind(sha)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    pub async fn set_job_message(&self, id: i64, message: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET message = $1 WHERE id = $2")
            .bind(message)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records how a job ended, unless someone already finished it (cancel, complete): returns
    /// whether this call did.
    pub async fn finish_job(&self, id: i64, state: JobState, message: &str) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = $1, message = $2, finished_at = $3
             WHERE id = $4 AND state IN ('queued', 'running')",
        )
        .bind(state.as_str())
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Frees the hosts a job's runs hold (its run was stopped mid-way).
    pub async fn drop_job_leases(&self, id: i64) -> Result<()> {
        sqlx::query(
            "DELETE FROM leases WHERE kind = 'run' AND run_id IN (SELECT id FROM runs WHERE job_id = $1)",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `complete`: finishes the job whatever it is doing and frees the hosts its runs hold.
    pub async fn complete_job(&self, id: i64, message: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET state = 'completed', message = $1, finished_at = $2
             WHERE id = $3 AND state IN ('queued', 'running')",
        )
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        sqlx::query(
            "DELETE FROM leases WHERE kind = 'run' AND run_id IN (SELECT id FROM runs WHERE job_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Puts jobs that were running when pushgate stopped back in the queue.
    pub async fn requeue_unfinished_jobs(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'queued', message = 'requeued: pushgate stopped during it'
             WHERE state = 'running'",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    pub async fn job_runs(&self, job_id: i64) -> Result<Vec<RunRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM runs WHERE job_id = $1 ORDER BY id")
                .bind(job_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// When a policy's branch last had a periodic job of `sequence`, if ever.
    pub async fn last_periodic_job(&self, branch_id: i64, sequence: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MAX(created_at) AS at FROM jobs
             WHERE kind = 'periodic' AND branch_id = $1 AND sequence = $2",
        )
        .bind(branch_id)
        .bind(sequence)
        .fetch_one(&self.pool)
        .await?;
        get(&row, "at")
    }
}
