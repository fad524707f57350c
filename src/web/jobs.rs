//! The job server's JSON API, which `pushgate jobs ...` talks to: submit, list, status, log,
//! cancel, complete, interact, and the lab's hosts (borrow, return). Every call needs the
//! configured token as `Authorization: Bearer TOKEN`.

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{AppState, WebError};
use crate::hosts::{HostState, LabError};
use crate::jobs::{JobError, Submission};
use crate::store::{JobRow, PauseRow, RunRow, StepRow, SubResultRow};

/// Refuses any call without the configured token (and every call when none is configured).
pub async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&state.api_token, given) {
        (None, _) => (
            StatusCode::UNAUTHORIZED,
            "the job API is off: set [api] token in pushgate.toml\n",
        )
            .into_response(),
        (Some(want), Some(got)) if same(want.as_bytes(), got.trim().as_bytes()) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token (Authorization: Bearer ...)\n",
        )
            .into_response(),
    }
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl From<JobError> for WebError {
    fn from(e: JobError) -> Self {
        match e {
            JobError::Store(e) => e.into(),
            JobError::Refused(m) => WebError::BadRequest(m),
        }
    }
}

impl From<LabError> for WebError {
    fn from(e: LabError) -> Self {
        match e {
            LabError::Store(e) => e.into(),
            LabError::UnknownHost(_) => WebError::NotFound(e.to_string()),
            other => WebError::Conflict(other.to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
pub struct Submitted {
    pub id: i64,
}

pub async fn submit(
    State(state): State<AppState>,
    Json(s): Json<Submission>,
) -> Result<Json<Submitted>, WebError> {
    if s.submitter.trim().is_empty() {
        return Err(WebError::BadRequest("say who submits (`submitter`)".into()));
    }
    Ok(Json(Submitted {
        id: state.jobs.submit(&s).await?,
    }))
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub submitter: Option<String>,
    pub limit: Option<i64>,
}

pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<JobRow>>, WebError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    Ok(Json(state.store.jobs(q.submitter.as_deref(), limit).await?))
}

/// A job with everything its runs recorded.
#[derive(Serialize)]
pub struct JobStatus {
    pub job: JobRow,
    pub runs: Vec<JobRun>,
}

#[derive(Serialize)]
pub struct JobRun {
    pub run: RunRow,
    pub steps: Vec<StepRow>,
    pub results: Vec<SubResultRow>,
    pub pauses: Vec<PauseRow>,
}

async fn job_or_404(state: &AppState, id: i64) -> Result<JobRow, WebError> {
    state
        .store
        .job(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no job {id}")))
}

/// Why a finished job cannot be stopped.
fn already_finished(job: &JobRow) -> WebError {
    WebError::Conflict(format!("job {} is already {}", job.id, job.state.as_str()))
}

async fn status_of(state: &AppState, id: i64) -> Result<JobStatus, WebError> {
    let job = job_or_404(state, id).await?;
    let mut runs = Vec::new();
    for run in state.store.job_runs(id).await? {
        runs.push(JobRun {
            steps: state.store.run_steps(run.id).await?,
            results: state.store.run_sub_results(run.id).await?,
            pauses: state.store.waiting_pauses(run.id).await?,
            run,
        });
    }
    Ok(JobStatus { job, runs })
}

pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<JobStatus>, WebError> {
    Ok(Json(status_of(&state, id).await?))
}

#[derive(Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    pub verbose: bool,
}

/// Lines of a step's log shown by `showlog -v`.
const LOG_LINES: usize = 40;

/// Per-testcase progress and results, as text; `verbose` adds the end of each step's log.
pub async fn showlog(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Result<String, WebError> {
    let s = status_of(&state, id).await?;
    let j = &s.job;
    let mut out = format!(
        "job {} {} ({}): {} on {} {}\n{}\n",
        j.id,
        j.sequence,
        j.kind,
        j.state.as_str(),
        j.rev,
        j.sha.as_deref().map(crate::repo::short).unwrap_or(""),
        j.message
    );
    for r in &s.runs {
        out.push_str(&format!(
            "run {} on {}: {}\n",
            r.run.id,
            r.run.host,
            r.run.state.as_str()
        ));
        for step in &r.steps {
            let seconds = match (step.started_at, step.finished_at) {
                (Some(a), Some(b)) => format!(" {:.1}s", (b - a) as f64 / 1000.0),
                _ => String::new(),
            };
            out.push_str(&format!("  {:<8} {}{seconds}\n", step.status, step.name));
            for sub in r.results.iter().filter(|x| x.step_id == step.id) {
                out.push_str(&format!("    {:<6} {}\n", sub.status, sub.name));
            }
            if let Some(p) = r.pauses.iter().find(|p| p.step_id == step.id) {
                out.push_str(&format!(
                    "    paused: pushgate jobs interact {} --continue {}\n",
                    j.id, p.testcase
                ));
            }
            if q.verbose {
                if let Some(path) = &step.log_path {
                    let last = super::log_view::last_lines(std::path::Path::new(path), LOG_LINES);
                    for line in last.unwrap_or_default() {
                        out.push_str("    | ");
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
            }
        }
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
pub struct Done {
    pub message: String,
}

pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Done>, WebError> {
    let job = job_or_404(&state, id).await?;
    if !state
        .store
        .finish_job(id, crate::store::JobState::Cancelled, "cancelled")
        .await?
    {
        return Err(already_finished(&job));
    }
    state.jobs.wake();
    Ok(Json(Done {
        message: format!("job {id} cancelled"),
    }))
}

pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Done>, WebError> {
    let job = job_or_404(&state, id).await?;
    if !state
        .store
        .complete_job(id, "marked complete by hand; its hosts were freed")
        .await?
    {
        return Err(already_finished(&job));
    }
    state.lab.wake();
    Ok(Json(Done {
        message: format!("job {id} completed; its hosts are free"),
    }))
}

#[derive(Serialize, Deserialize, Default)]
pub struct Interaction {
    /// Let the run go on after this testcase.
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    /// Let the run go on after every pause.
    #[serde(default)]
    pub all: bool,
}

#[derive(Serialize)]
pub struct Interacted {
    pub run: Option<i64>,
    pub paused: Vec<PauseRow>,
    pub released: u64,
}

/// Lists a job's pauses, or lets its run go on.
pub async fn interact(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Json(i): Json<Interaction>,
) -> Result<Json<Interacted>, WebError> {
    job_or_404(&state, id).await?;
    let run = state.store.job_runs(id).await?.last().map(|r| r.id);
    let Some(run) = run else {
        return Ok(Json(Interacted {
            run: None,
            paused: Vec::new(),
            released: 0,
        }));
    };
    interact_with_run(&state, run, i).await.map(Json)
}

/// The same for a gate run, by run id (the pause mail names it).
pub async fn interact_run(
    State(state): State<AppState>,
    Path(run): Path<i64>,
    Json(i): Json<Interaction>,
) -> Result<Json<Interacted>, WebError> {
    if state.store.run(run).await?.is_none() {
        return Err(WebError::NotFound(format!("no run {run}")));
    }
    interact_with_run(&state, run, i).await.map(Json)
}

async fn interact_with_run(
    state: &AppState,
    run: i64,
    i: Interaction,
) -> Result<Interacted, WebError> {
    let paused = state.store.waiting_pauses(run).await?;
    let which = match (&i.continue_, i.all) {
        (_, true) => Some(None),
        (Some(tc), false) => Some(Some(tc.clone())),
        (None, false) => None,
    };
    let Some(which) = which else {
        return Ok(Interacted {
            run: Some(run),
            paused,
            released: 0,
        });
    };
    if let Some(tc) = &which {
        if !paused.iter().any(|p| &p.testcase == tc) {
            let names: Vec<&str> = paused.iter().map(|p| p.testcase.as_str()).collect();
            return Err(WebError::Conflict(format!(
                "run {run} is not paused after `{tc}` (paused after: {})",
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            )));
        }
    }
    let released = state
        .store
        .continue_pauses(run, which.as_deref(), "interact")
        .await?;
    if released == 0 {
        return Err(WebError::Conflict(format!("run {run} is not paused")));
    }
    Ok(Interacted {
        run: Some(run),
        paused,
        released,
    })
}

pub async fn hosts(State(state): State<AppState>) -> Result<Json<Vec<HostState>>, WebError> {
    Ok(Json(state.lab.states().await?))
}

#[derive(Serialize, Deserialize)]
pub struct Borrow {
    pub who: String,
    /// 24 by default; borrowing again extends.
    pub hours: Option<f64>,
}

#[derive(Serialize, Deserialize)]
pub struct Borrowed {
    pub host: String,
    pub until: i64,
}

pub async fn borrow(
    State(state): State<AppState>,
    Path(host): Path<String>,
    Json(b): Json<Borrow>,
) -> Result<Json<Borrowed>, WebError> {
    let hours = b.hours.unwrap_or(24.0);
    if b.who.trim().is_empty() || !(hours > 0.0 && hours <= 24.0 * 30.0) {
        return Err(WebError::BadRequest(
            "say who borrows, for more than 0 and at most 720 hours".into(),
        ));
    }
    let until = state.lab.borrow(&host, &b.who, hours).await?;
    Ok(Json(Borrowed { host, until }))
}

#[derive(Serialize, Deserialize)]
pub struct Return {
    pub who: String,
    /// Ends anyone's borrow (a lab admin's fix for a forgotten host).
    #[serde(default)]
    pub force: bool,
}

pub async fn give_back(
    State(state): State<AppState>,
    Path(host): Path<String>,
    Json(r): Json<Return>,
) -> Result<Json<Done>, WebError> {
    let who = (!r.force).then_some(r.who.as_str());
    state.lab.give_back(&host, who).await?;
    Ok(Json(Done {
        message: format!("{host} is back in the lab"),
    }))
}
