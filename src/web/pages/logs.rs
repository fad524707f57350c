//! `/logs/STEP`, its live tail and the raw file: a log of any size in bounded memory.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};

use super::{run_or_404, took};
use crate::store::{RunRow, StepRow, Store};
use crate::templates::render;
use crate::web::{log_view, when, AppState, WebError};

/// A step with a log, and its run, or why there is none.
async fn step_with_log(store: &Store, step: i64) -> Result<(StepRow, RunRow, PathBuf), WebError> {
    let row = store
        .step(step)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no step {step}")))?;
    let path = row
        .log_path
        .clone()
        .ok_or_else(|| WebError::NotFound(format!("step {step} has no log (it did not run)")))?;
    let run = run_or_404(store, row.run_id).await?;
    Ok((row, run, PathBuf::from(path)))
}

fn log_gone(step: i64, e: std::io::Error) -> WebError {
    WebError::NotFound(format!("the log of step {step} is gone: {e}"))
}

#[derive(serde::Deserialize)]
pub struct LogQuery {
    /// Show the page of lines from this one (1-based) instead of the last lines.
    from: Option<usize>,
}

/// `/logs/STEP`: the log with its step's facts, every line numbered and anchored (`#L12`), a
/// page of lines at a time (the last ones by default), and a live tail while the step runs.
pub async fn log(
    State(state): State<AppState>,
    Path(step): Path<i64>,
    Query(q): Query<LogQuery>,
) -> Result<Html<String>, WebError> {
    let (row, run, path) = step_with_log(&state.store, step).await?;
    let growing = row.status == "running";
    let from = q.from.filter(|&f| f >= 1);
    let window = tokio::task::spawn_blocking(move || log_view::window(&path, from, growing))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| log_gone(step, e))?;
    Ok(Html(render(
        "log.html",
        minijinja::context! {
            started => row.started_at.map(when),
            finished => row.finished_at.map(when),
            duration => row.started_at.zip(row.finished_at).map(|(a, b)| took(a, b)),
            page => log_view::PAGE_LINES,
            step => row,
            run,
            window,
            growing,
        },
    )?))
}

#[derive(serde::Deserialize)]
pub struct TailQuery {
    offset: u64,
}

/// What the live tail of `/logs/STEP` fetches: the lines past `offset`.
#[derive(serde::Serialize)]
pub struct TailAnswer {
    #[serde(flatten)]
    tail: log_view::Tail,
    /// Whether to ask again: the step runs, or there is more than one answer held.
    running: bool,
    status: String,
}

pub async fn log_tail(
    State(state): State<AppState>,
    Path(step): Path<i64>,
    Query(q): Query<TailQuery>,
) -> Result<axum::Json<TailAnswer>, WebError> {
    let (row, _, path) = step_with_log(&state.store, step).await?;
    let growing = row.status == "running";
    let tail = tokio::task::spawn_blocking(move || log_view::tail(&path, q.offset, growing))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| log_gone(step, e))?;
    Ok(axum::Json(TailAnswer {
        running: growing || !tail.at_end,
        tail,
        status: row.status,
    }))
}

/// `/logs/STEP/raw`: the file as it is, streamed (a log of any size in bounded memory).
pub async fn log_raw(
    State(state): State<AppState>,
    Path(step): Path<i64>,
) -> Result<impl IntoResponse, WebError> {
    let (_, _, path) = step_with_log(&state.store, step).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| log_gone(step, e))?;
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 64 * 1024];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(n) => {
                chunk.truncate(n);
                Some((Ok::<_, std::io::Error>(chunk), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        axum::body::Body::from_stream(chunks),
    ))
}
