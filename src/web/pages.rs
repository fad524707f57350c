//! The HTML pages: every branch with its last decision and why, and each flight with its runs,
//! steps, logs and mail.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};

use super::api::{branch_views, flight_view};
use super::{when, AppState, WebError};
use crate::templates::render;

/// A host as the status page shows it.
#[derive(serde::Serialize)]
struct HostLine {
    name: String,
    provisioner: String,
    state: String,
    /// Who holds it and until when, or why it is out of service.
    detail: String,
}

pub async fn status(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let branches = branch_views(&state.store).await?;
    let hosts: Vec<HostLine> = state
        .lab
        .states()
        .await?
        .into_iter()
        .map(|h| {
            let mut detail: Vec<String> = h
                .leases
                .iter()
                .map(|l| format!("{} until {}", l.holder, when(l.expires_at)))
                .collect();
            if let Some(health) = h.health.filter(|x| x.state == "out-of-service") {
                detail.push(health.reason);
            }
            HostLine {
                name: h.name,
                provisioner: h.provisioner,
                state: h.state,
                detail: detail.join("; "),
            }
        })
        .collect();
    Ok(Html(render(
        "status.html",
        minijinja::context! { branches, hosts, now => when(crate::store::now_ms()) },
    )?))
}

pub async fn flight(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Html<String>, WebError> {
    let view = flight_view(&state.store, id).await?;
    Ok(Html(render("flight.html", &view)?))
}

pub async fn log(
    State(state): State<AppState>,
    Path(step): Path<i64>,
) -> Result<impl IntoResponse, WebError> {
    let row = state
        .store
        .step(step)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no step {step}")))?;
    let path = row
        .log_path
        .ok_or_else(|| WebError::NotFound(format!("step {step} has no log (it did not run)")))?;
    // Logs are written by the step as it runs: this is a live tail while it does.
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| WebError::NotFound(format!("log of step {step} is gone: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], bytes))
}
