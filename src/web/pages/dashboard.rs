//! `/`: every branch at a glance, what waits for a host, and the lab.

use axum::extract::State;
use axum::response::Html;

use super::hosts::host_views;
use crate::templates::render;
use crate::web::api::{branch_views, queue_lines};
use crate::web::{when, AppState, WebError};

pub async fn status(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let branches = branch_views(&state.store).await?;
    let queue = queue_lines(&state).await?;
    let hosts = host_views(&state).await?;
    Ok(Html(render(
        "status.html",
        minijinja::context! { branches, hosts, queue, now => when(crate::store::now_ms()) },
    )?))
}
