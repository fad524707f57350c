//! Runs (one sequence on one commit) and their steps.

use std::path::Path;

use super::{get, now_ms, read, Result, Store, StoreError};
use crate::decision::Role;
use crate::sequence::StepStatus;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, strum::IntoStaticStr, strum::EnumString,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum RunState {
    Running,
    Pass,
    Fail,
    Broken,
    /// Interrupted by a restart; it says nothing and is run again.
    Aborted,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: i64,
    /// The flight it belongs to; `None` for a job's run.
    pub flight_id: Option<i64>,
    pub job_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub commit_index: usize,
    pub sha: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(try_from = "i64")]
    pub attempt: u32,
    pub sequence: String,
    pub host: String,
    #[sqlx(try_from = "String")]
    pub state: RunState,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow)]
pub struct StepRow {
    pub id: i64,
    pub run_id: i64,
    pub position: i64,
    pub name: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub log_path: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// What a run is made for.
#[derive(Clone, Copy, Debug)]
pub enum RunOwner {
    Flight(i64),
    Job(i64),
}

/// What identifies a run inside its flight or job.
#[derive(Clone, Debug)]
pub struct NewRun<'a> {
    pub owner: RunOwner,
    pub index: usize,
    pub sha: &'a str,
    pub role: Role,
    pub attempt: u32,
    pub sequence: &'a str,
    pub host: &'a str,
}

impl Store {
    pub async fn create_run(&self, run: &NewRun<'_>) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO runs (flight_id, job_id, commit_index, sha, role, attempt, sequence, host,
                               state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9) RETURNING id",
        )
        .bind(match run.owner {
            RunOwner::Flight(id) => Some(id),
            RunOwner::Job(_) => None,
        })
        .bind(match run.owner {
            RunOwner::Job(id) => Some(id),
            RunOwner::Flight(_) => None,
        })
        .bind(run.index as i64)
        .bind(run.sha)
        .bind(run.role.as_str())
        .bind(i64::from(run.attempt))
        .bind(run.sequence)
        .bind(run.host)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    pub async fn set_run_host(&self, id: i64, host: &str) -> Result<()> {
        sqlx::query("UPDATE runs SET host = $1 WHERE id = $2")
            .bind(host)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn finish_run(&self, id: i64, state: RunState, error: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE runs SET state = $1, error = $2, finished_at = $3 WHERE id = $4")
            .bind(state.as_str())
            .bind(error)
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks every run still `running` as aborted: called at start, when no run can be live.
    /// Returns how many there were.
    pub async fn abort_unfinished_runs(&self) -> Result<u64> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE steps SET status = 'broken', finished_at = $1 WHERE status = 'running'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE runs SET state = 'aborted', error = 'interrupted: pushgate stopped during this run',
             finished_at = $1 WHERE state = 'running'",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    pub async fn runs(&self, flight_id: i64) -> Result<Vec<RunRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM runs WHERE flight_id = $1 ORDER BY id")
                .bind(flight_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// A page of the runs a host ran, newest first: those older than `before` when given.
    pub async fn runs_on_host(
        &self,
        host: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<RunRow>> {
        Ok(sqlx::query_as(
            "SELECT * FROM runs WHERE host = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(host)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRow>> {
        self.by_id("runs", id).await
    }

    /// Runs of a branch's flights before `before_flight` of the commits `shas`, and their
    /// steps: the evidence earlier flights gathered about this flight's commits. Read by sha
    /// (in chunks, to stay under the databases' limits on parameters), so the cost follows the
    /// range, not the branch's whole history. `CROSS JOIN` fixes SQLite's join order here and
    /// below: left to itself it walks every flight of the branch first.
    pub async fn earlier_runs(
        &self,
        branch_id: i64,
        before_flight: i64,
        shas: &[&str],
    ) -> Result<(Vec<RunRow>, Vec<StepRow>)> {
        const CHUNK: usize = 500;
        let (mut runs, mut steps) = (Vec::new(), Vec::new());
        // A branch's first flight (a first start on a big repository) asks for thousands of
        // commits nothing ran: one look at the flights says so.
        let earlier_flight = sqlx::query(
            "SELECT id FROM flights WHERE branch_id = $1 AND id < $2 AND series_id IS NULL LIMIT 1",
        )
        .bind(branch_id)
        .bind(before_flight)
        .fetch_optional(&self.pool)
        .await?;
        if earlier_flight.is_none() {
            return Ok((runs, steps));
        }
        for chunk in shas.chunks(CHUNK) {
            let list = (0..chunk.len())
                .map(|i| format!("${}", i + 3))
                .collect::<Vec<_>>()
                .join(", ");
            let runs_sql = format!(
                "SELECT runs.* FROM runs CROSS JOIN flights
                 WHERE flights.id = runs.flight_id AND runs.sha IN ({list})
                 AND flights.branch_id = $1 AND flights.id < $2 AND flights.series_id IS NULL
                 ORDER BY runs.id"
            );
            let steps_sql = format!(
                "SELECT steps.* FROM runs CROSS JOIN flights CROSS JOIN steps
                 WHERE flights.id = runs.flight_id AND steps.run_id = runs.id
                 AND runs.sha IN ({list})
                 AND flights.branch_id = $1 AND flights.id < $2 AND flights.series_id IS NULL
                 ORDER BY steps.run_id, steps.position"
            );
            let mut q = sqlx::query(&runs_sql).bind(branch_id).bind(before_flight);
            for sha in chunk {
                q = q.bind(*sha);
            }
            for row in q.fetch_all(&self.pool).await? {
                runs.push(read(&row)?);
            }
            let mut q = sqlx::query(&steps_sql).bind(branch_id).bind(before_flight);
            for sha in chunk {
                q = q.bind(*sha);
            }
            for row in q.fetch_all(&self.pool).await? {
                steps.push(read(&row)?);
            }
        }
        runs.sort_by_key(|r: &RunRow| r.id);
        Ok((runs, steps))
    }

    /// The most recent finished steps of a branch's staging flights before `before_flight` (at
    /// most `limit`), as (sha, `sequence/step`, status), followed by as many of their per-test
    /// results, as (sha, `sequence/step::test`, pass or fail): what each of the branch's tests
    /// has done lately, the prior of its flake rate. Bounded, so a long history costs no more
    /// than a short one.
    pub async fn recent_step_results(
        &self,
        branch_id: i64,
        before_flight: i64,
        limit: i64,
    ) -> Result<Vec<(String, String, StepStatus)>> {
        let latest = |sql: &'static str| {
            sqlx::query(sql)
                .bind(branch_id)
                .bind(before_flight)
                .bind(limit)
                .fetch_all(&self.pool)
        };
        let steps = latest(
            "SELECT runs.sha, runs.sequence, steps.name, steps.status
             FROM steps CROSS JOIN runs CROSS JOIN flights
             WHERE runs.id = steps.run_id AND flights.id = runs.flight_id
             AND flights.branch_id = $1 AND flights.id < $2 AND flights.series_id IS NULL
             AND steps.status IN ('pass', 'fail', 'timeout')
             ORDER BY steps.id DESC LIMIT $3",
        )
        .await?;
        let tests = latest(
            "SELECT runs.sha, runs.sequence, steps.name AS step, sub_results.name,
                    sub_results.status
             FROM sub_results CROSS JOIN steps CROSS JOIN runs CROSS JOIN flights
             WHERE steps.id = sub_results.step_id AND runs.id = steps.run_id
             AND flights.id = runs.flight_id
             AND flights.branch_id = $1 AND flights.id < $2 AND flights.series_id IS NULL
             AND sub_results.status IN ('pass', 'fail', 'error')
             ORDER BY sub_results.id DESC LIMIT $3",
        )
        .await?;
        let mut out = Vec::with_capacity(steps.len() + tests.len());
        for row in &steps {
            let status: String = get(row, "status")?;
            let status = status
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("step status {status:?}")))?;
            let (sequence, name): (String, String) = (get(row, "sequence")?, get(row, "name")?);
            out.push((get(row, "sha")?, format!("{sequence}/{name}"), status));
        }
        for row in &tests {
            let status: String = get(row, "status")?;
            // As the decision counts them: an error of a test is its failure.
            let status = if status == "pass" {
                StepStatus::Pass
            } else {
                StepStatus::Fail
            };
            let (sequence, step): (String, String) = (get(row, "sequence")?, get(row, "step")?);
            let name: String = get(row, "name")?;
            out.push((
                get(row, "sha")?,
                format!("{sequence}/{step}::{name}"),
                status,
            ));
        }
        Ok(out)
    }

    /// Steps of one run, in order.
    pub async fn run_steps(&self, run_id: i64) -> Result<Vec<StepRow>> {
        Ok(
            sqlx::query_as("SELECT * FROM steps WHERE run_id = $1 ORDER BY position, id")
                .bind(run_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Steps of every run of a flight, in run and position order.
    pub async fn flight_steps(&self, flight_id: i64) -> Result<Vec<StepRow>> {
        Ok(sqlx::query_as(
            "SELECT steps.* FROM steps JOIN runs ON runs.id = steps.run_id
             WHERE runs.flight_id = $1 ORDER BY steps.run_id, steps.position",
        )
        .bind(flight_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn step(&self, id: i64) -> Result<Option<StepRow>> {
        self.by_id("steps", id).await
    }

    pub async fn start_step(
        &self,
        run_id: i64,
        position: usize,
        name: &str,
        log: &Path,
    ) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO steps (run_id, position, name, status, log_path, started_at)
             VALUES ($1, $2, $3, 'running', $4, $5) RETURNING id",
        )
        .bind(run_id)
        .bind(position as i64)
        .bind(name)
        .bind(log.display().to_string())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        get(&row, "id")
    }

    pub async fn finish_step(
        &self,
        id: i64,
        status: StepStatus,
        exit_code: Option<i32>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE steps SET status = $1, exit_code = $2, finished_at = $3 WHERE id = $4")
            .bind(status.as_str())
            .bind(exit_code.map(i64::from))
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if status == StepStatus::Pass {
            // Kept as steps pass, for `ever_passed_steps` (see migration 0011).
            sqlx::query(
                "INSERT INTO passed_steps (branch_id, step, source, first_flight_id)
                 SELECT flights.branch_id, runs.sequence || '/' || steps.name, 'flight', flights.id
                 FROM steps JOIN runs ON runs.id = steps.run_id
                 JOIN flights ON flights.id = runs.flight_id
                 WHERE steps.id = $1 AND flights.series_id IS NULL
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO passed_steps (branch_id, step, source, first_flight_id)
                 SELECT jobs.branch_id, runs.sequence || '/' || steps.name, 'job',
                        CAST(NULL AS BIGINT)
                 FROM steps JOIN runs ON runs.id = steps.run_id JOIN jobs ON jobs.id = runs.job_id
                 WHERE steps.id = $1 AND jobs.branch_id IS NOT NULL
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn blocked_step(&self, run_id: i64, position: usize, name: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO steps (run_id, position, name, status) VALUES ($1, $2, $3, 'blocked')",
        )
        .bind(run_id)
        .bind(position as i64)
        .bind(name)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Steps (as `sequence/step`) that passed on a branch in flights before `before_flight`,
    /// or in its periodic jobs on the target: tells a step that never worked from one that
    /// regressed.
    pub async fn ever_passed_steps(
        &self,
        branch_id: i64,
        before_flight: i64,
    ) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT DISTINCT step FROM passed_steps WHERE branch_id = $1
             AND (source = 'job' OR first_flight_id < $2) ORDER BY step",
        )
        .bind(branch_id)
        .bind(before_flight)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| get(row, "step"))
        .collect()
    }
}
