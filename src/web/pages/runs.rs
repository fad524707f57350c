//! `/runs/ID`, `/jobs` and `/jobs/ID`: any run with its steps and pauses, and the job server in
//! a browser.

use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::{page, pause_lines, run_or_404, step_lines, took, BeforeQuery};
use crate::templates::render;
use crate::web::{when, AppState, WebError};

/// `/runs/ID`: any run, of a flight or a job, with its steps and what it waits after.
pub async fn run(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    let run = run_or_404(&state.store, id).await?;
    Ok(Html(render(
        "run.html",
        minijinja::context! {
            created => when(run.created_at),
            finished => run.finished_at.map(when),
            duration => run.finished_at.map(|f| took(run.created_at, f)),
            steps => step_lines(&state.store, id).await?,
            pauses => pause_lines(&state.store, id).await?,
            run,
        },
    )?))
}

/// Jobs per page of `/jobs`.
const JOBS_PAGE: usize = 50;

/// `/jobs`: the newest jobs, a page at a time.
pub async fn jobs(
    State(state): State<AppState>,
    Query(q): Query<BeforeQuery>,
) -> Result<Html<String>, WebError> {
    let rows = state
        .store
        .jobs_before(q.before, JOBS_PAGE as i64 + 1)
        .await?;
    let (rows, more) = page(rows, JOBS_PAGE);
    let jobs: Vec<_> = rows
        .into_iter()
        .map(|j| {
            minijinja::context! {
                created => when(j.created_at),
                state => j.state.as_str(),
                ..minijinja::Value::from_serialize(&j)
            }
        })
        .collect();
    Ok(Html(render(
        "jobs.html",
        minijinja::context! { jobs, more, before => q.before },
    )?))
}

/// `/jobs/ID`: a job, its runs, their steps and pauses (with the line that resumes them).
pub async fn job(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    let job = state
        .store
        .job(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no job {id}")))?;
    let mut runs = Vec::new();
    for run in state.store.job_runs(id).await? {
        runs.push(minijinja::context! {
            steps => step_lines(&state.store, run.id).await?,
            pauses => pause_lines(&state.store, run.id).await?,
            run,
        });
    }
    Ok(Html(render(
        "job.html",
        minijinja::context! {
            created => when(job.created_at),
            finished => job.finished_at.map(when),
            job => minijinja::context! { state => job.state.as_str(), ..minijinja::Value::from_serialize(&job) },
            runs,
        },
    )?))
}
