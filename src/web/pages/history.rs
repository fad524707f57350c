//! `/branches/NAME`: a branch's history grid, OSSTest's flight table.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, Query, State};
use axum::response::Html;

use crate::decision::Role;
use crate::store::{FlightFilter, RunRow, Store};
use crate::templates::render;
use crate::web::{when, AppState, WebError};

/// Flights per page of a branch's history.
const HISTORY_PAGE: usize = 20;
/// With an author filter, how many flights are looked through for a page of them.
const AUTHOR_LOOK: i64 = 500;

#[derive(serde::Deserialize, serde::Serialize, Default)]
pub struct HistoryQuery {
    before: Option<i64>,
    verdict: Option<String>,
    author: Option<String>,
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 time.
    since: Option<String>,
    until: Option<String>,
}

/// `2026-12-01` or `2026-12-01T10:00:00Z` as ms since the epoch.
fn day_or_time(text: &str) -> Result<i64, WebError> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_string()
    };
    humantime::parse_rfc3339_weak(&full)
        .map_err(|e| WebError::BadRequest(format!("`{text}` is not a date like 2026-12-01: {e}")))
        .and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .map_err(|e| WebError::BadRequest(e.to_string()))
        })
}

/// What the query asks of the store (the author is looked for among the flights it gives).
fn filter_of(q: &HistoryQuery) -> Result<FlightFilter, WebError> {
    let time = |t: &Option<String>| {
        t.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(day_or_time)
            .transpose()
    };
    Ok(FlightFilter {
        before: q.before,
        verdict: q.verdict.clone().filter(|v| !v.is_empty()),
        since: time(&q.since)?,
        until: time(&q.until)?,
    })
}

/// A flight's row of cells: each step of the last attempt of each sequence on its tip, by
/// `sequence/step`.
async fn tip_cells(store: &Store, flight: i64) -> Result<BTreeMap<String, Cell>, WebError> {
    let runs = store.runs(flight).await?;
    let steps = store.flight_steps(flight).await?;
    let mut last: BTreeMap<&str, &RunRow> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.role == Role::Tip) {
        if last
            .get(r.sequence.as_str())
            .is_none_or(|o| o.attempt <= r.attempt)
        {
            last.insert(&r.sequence, r);
        }
    }
    let mut cells = BTreeMap::new();
    for run in last.values() {
        for s in steps.iter().filter(|s| s.run_id == run.id) {
            let cell = Cell {
                status: s.status.clone(),
                step: s.id,
            };
            cells.insert(format!("{}/{}", run.sequence, s.name), cell);
        }
    }
    Ok(cells)
}

/// One cell of the history grid: a step's result on a flight's tip.
#[derive(serde::Serialize, Clone)]
struct Cell {
    status: String,
    step: i64,
}

/// `/branches/NAME`: the branch's flights as rows (newest first, a page at a time) and each
/// sequence's steps as columns, every cell the step's result on the flight's tip, linking to
/// its log; filtered by verdict, author and date.
pub async fn branch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Html<String>, WebError> {
    let branch = state
        .store
        .branches()
        .await?
        .into_iter()
        .find(|b| b.policy == name)
        .ok_or_else(|| WebError::NotFound(format!("no branch of a policy `{name}`")))?;
    let author = q.author.as_deref().map(str::trim).filter(|a| !a.is_empty());
    let filter = filter_of(&q)?;
    let look = if author.is_some() {
        AUTHOR_LOOK
    } else {
        HISTORY_PAGE as i64 + 1
    };
    let mut flights = state.store.flights_page(branch.id, &filter, look).await?;
    if let Some(who) = author {
        let who = who.to_lowercase();
        flights.retain(|f| {
            f.commits.iter().any(|c| {
                c.author_name.to_lowercase().contains(&who)
                    || c.author_email.to_lowercase().contains(&who)
            })
        });
    }
    let (flights, more) = super::page(flights, HISTORY_PAGE);
    let mut results = Vec::new();
    for f in &flights {
        results.push(tip_cells(&state.store, f.id).await?);
    }
    let columns: BTreeSet<String> = results.iter().flat_map(|c| c.keys().cloned()).collect();
    let rows: Vec<_> = flights
        .iter()
        .zip(&results)
        .map(|(f, cells)| {
            let culprit = f
                .culprit
                .as_ref()
                .and_then(|sha| f.commits.iter().find(|c| &c.sha == sha));
            minijinja::context! {
                id => f.id,
                base => crate::repo::short(&f.base),
                tip => crate::repo::short(&f.tip),
                commits => f.commits.len(),
                verdict => f.verdict.map(|v| v.to_string()),
                state => f.state.as_str(),
                culprit => f.culprit.as_deref().map(crate::repo::short),
                culprit_author => culprit.map(|c| c.author_name.clone()),
                pushed => f.pushed_to.as_deref().map(crate::repo::short),
                made => when(f.created_at),
                cells => columns.iter().map(|c| cells.get(c).cloned()).collect::<Vec<_>>(),
            }
        })
        .collect();
    // The filters again, for the next page's link.
    let query: String = [
        ("verdict", q.verdict.as_deref()),
        ("author", q.author.as_deref()),
        ("since", q.since.as_deref()),
        ("until", q.until.as_deref()),
    ]
    .iter()
    .filter_map(|(k, v)| {
        v.filter(|v| !v.is_empty())
            .map(|v| format!("&{k}={}", crate::web::url_word(v)))
    })
    .collect();
    let verdicts: Vec<&str> = crate::decision::Verdict::ALL
        .iter()
        .map(|v| v.as_str())
        .collect();
    Ok(Html(render(
        "branch.html",
        minijinja::context! {
            filtered => filter.verdict.is_some() || author.is_some() || filter.since.is_some() || filter.until.is_some(),
            filter => &q,
            branch,
            columns,
            rows,
            more,
            query,
            verdicts,
        },
    )?))
}
