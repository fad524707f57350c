//! The HTML pages, one file per page family: the dashboard, a branch's history, flights and
//! runs and jobs, the lab's hosts, a step's log. They are public (no token): every link pushgate
//! mails opens one of them. Each reads a bounded amount of the store, by an index.

mod dashboard;
mod history;
mod hosts;
mod logs;
mod runs;

pub use dashboard::status;
pub use history::branch;
pub use hosts::{host, hosts};
pub use logs::{log, log_raw, log_tail};
pub use runs::{job, jobs, run};

use axum::extract::{Path, State};
use axum::response::Html;

use super::api::flight_view;
use super::{when, AppState, WebError};
use crate::store::{RunRow, Store};
use crate::templates::render;

/// A page of at most `size` of `rows` (read one more than that), and whether more follow.
fn page<T>(mut rows: Vec<T>, size: usize) -> (Vec<T>, bool) {
    let more = rows.len() > size;
    rows.truncate(size);
    (rows, more)
}

#[derive(serde::Deserialize)]
pub struct BeforeQuery {
    /// Only what is older than this id (the next page).
    before: Option<i64>,
}

pub async fn flight(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    let view = flight_view(&state.store, id).await?;
    Ok(Html(render("flight.html", &view)?))
}

/// A step as the run and job pages list it.
#[derive(serde::Serialize)]
struct StepLine {
    id: i64,
    position: i64,
    name: String,
    status: String,
    exit_code: Option<i64>,
    log: bool,
    started: Option<String>,
    took: Option<String>,
    tests: Vec<TestLine>,
}

#[derive(serde::Serialize)]
struct TestLine {
    name: String,
    status: String,
}

/// A pause as a page shows it.
#[derive(serde::Serialize)]
struct PauseLine {
    testcase: String,
    paused_at: String,
    resume_at: Option<String>,
}

/// How long from `start` to `end` (ms), as people say it.
fn took(start: i64, end: i64) -> String {
    let ms = (end - start).max(0);
    match ms {
        0..=999 => format!("{ms} ms"),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => {
            humantime::format_duration(std::time::Duration::from_secs(ms as u64 / 1000)).to_string()
        }
    }
}

async fn step_lines(store: &Store, run_id: i64) -> Result<Vec<StepLine>, WebError> {
    let results = store.run_sub_results(run_id).await?;
    Ok(store
        .run_steps(run_id)
        .await?
        .into_iter()
        .map(|s| StepLine {
            tests: results
                .iter()
                .filter(|r| r.step_id == s.id)
                .map(|r| TestLine {
                    name: r.name.clone(),
                    status: r.status.clone(),
                })
                .collect(),
            id: s.id,
            position: s.position,
            log: s.log_path.is_some(),
            started: s.started_at.map(when),
            took: s.started_at.zip(s.finished_at).map(|(a, b)| took(a, b)),
            name: s.name,
            status: s.status,
            exit_code: s.exit_code,
        })
        .collect())
}

async fn pause_lines(store: &Store, run_id: i64) -> Result<Vec<PauseLine>, WebError> {
    Ok(store
        .waiting_pauses(run_id)
        .await?
        .into_iter()
        .map(|p| PauseLine {
            testcase: p.testcase,
            paused_at: when(p.paused_at),
            resume_at: p.resume_at.map(when),
        })
        .collect())
}

async fn run_or_404(store: &Store, id: i64) -> Result<RunRow, WebError> {
    store
        .run(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no run {id}")))
}
