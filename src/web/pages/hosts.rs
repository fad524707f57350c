//! `/hosts` and `/hosts/NAME`: the lab, who holds each host until when, its health and runs.

use axum::extract::{Path, Query, State};
use axum::response::Html;

use super::{page, took, BeforeQuery};
use crate::templates::render;
use crate::web::{when, AppState, WebError};

/// A host as `/hosts` and `/hosts/NAME` show it.
#[derive(serde::Serialize)]
pub(super) struct HostView {
    name: String,
    provisioner: String,
    slots: u32,
    /// Slots held by runs now.
    busy: usize,
    state: String,
    leases: Vec<minijinja::Value>,
    health: Option<minijinja::Value>,
}

fn host_view(h: crate::hosts::HostState) -> HostView {
    HostView {
        busy: h.leases.iter().filter(|l| l.kind == "run").count(),
        leases: h
            .leases
            .iter()
            .map(|l| {
                minijinja::context! { holder => &l.holder, kind => &l.kind, until => when(l.expires_at) }
            })
            .collect(),
        health: h.health.map(|x| {
            minijinja::context! {
                state => x.state, reason => x.reason, since => when(x.updated_at),
                broken_streak => x.broken_streak,
            }
        }),
        name: h.name,
        provisioner: h.provisioner,
        slots: h.slots,
        state: h.state,
    }
}

/// Every host of the lab as the pages show it (`/hosts` and the dashboard).
pub(super) async fn host_views(state: &AppState) -> Result<Vec<HostView>, WebError> {
    Ok(state
        .lab
        .states()
        .await?
        .into_iter()
        .map(host_view)
        .collect())
}

/// `/hosts`: every host of the lab, what holds it, how it is.
pub async fn hosts(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let hosts = host_views(&state).await?;
    Ok(Html(render(
        "hosts.html",
        minijinja::context! { hosts, file => state.lab.inventory().file.display().to_string() },
    )?))
}

/// Runs per page of `/hosts/NAME`.
const HOST_RUNS_PAGE: usize = 50;

/// `/hosts/NAME`: one host, what holds it, its health, and the runs it ran, newest first.
pub async fn host(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<BeforeQuery>,
) -> Result<Html<String>, WebError> {
    let host = state
        .lab
        .states()
        .await?
        .into_iter()
        .find(|h| h.name == name)
        .map(host_view)
        .ok_or_else(|| WebError::NotFound(format!("no host `{name}` in the lab")))?;
    let rows = state
        .store
        .runs_on_host(&name, q.before, HOST_RUNS_PAGE as i64 + 1)
        .await?;
    let (rows, more) = page(rows, HOST_RUNS_PAGE);
    let runs: Vec<_> = rows
        .into_iter()
        .map(|r| {
            minijinja::context! {
                created => when(r.created_at),
                took => r.finished_at.map(|f| took(r.created_at, f)),
                ..minijinja::Value::from_serialize(&r)
            }
        })
        .collect();
    Ok(Html(render(
        "host.html",
        minijinja::context! { host, runs, more, before => q.before },
    )?))
}
