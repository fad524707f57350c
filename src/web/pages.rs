//! The HTML pages: every branch with its last decision and why, each flight with its runs,
//! steps, logs and mail, any run, the jobs, and a step's log. They are public (no token): every
//! link pushgate mails opens one of them.

use std::path::PathBuf;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};

use super::api::{branch_views, flight_view, queue_lines};
use super::{log_view, when, AppState, WebError};
use crate::store::{RunRow, StepRow, Store};
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
    let queue = queue_lines(&state).await?;
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
        minijinja::context! { branches, hosts, queue, now => when(crate::store::now_ms()) },
    )?))
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
const JOBS_PAGE: i64 = 50;

/// `/jobs`: the newest jobs, a page at a time.
pub async fn jobs(
    State(state): State<AppState>,
    Query(q): Query<BeforeQuery>,
) -> Result<Html<String>, WebError> {
    let mut rows = state.store.jobs_before(q.before, JOBS_PAGE + 1).await?;
    let more = rows.len() as i64 > JOBS_PAGE;
    rows.truncate(JOBS_PAGE as usize);
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

/// A host as `/hosts` and `/hosts/NAME` show it.
#[derive(serde::Serialize)]
struct HostView {
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

/// `/hosts`: every host of the lab, what holds it, how it is.
pub async fn hosts(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let hosts: Vec<HostView> = state
        .lab
        .states()
        .await?
        .into_iter()
        .map(host_view)
        .collect();
    Ok(Html(render(
        "hosts.html",
        minijinja::context! { hosts, file => state.lab.inventory().file.display().to_string() },
    )?))
}

/// Runs per page of `/hosts/NAME`.
const HOST_RUNS_PAGE: i64 = 50;

#[derive(serde::Deserialize)]
pub struct BeforeQuery {
    /// Only what is older than this id (the next page).
    before: Option<i64>,
}

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
    let mut rows = state
        .store
        .runs_on_host(&name, q.before, HOST_RUNS_PAGE + 1)
        .await?;
    let more = rows.len() as i64 > HOST_RUNS_PAGE;
    rows.truncate(HOST_RUNS_PAGE as usize);
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
    let filter = crate::store::FlightFilter {
        before: q.before,
        verdict: q.verdict.clone().filter(|v| !v.is_empty()),
        since: q
            .since
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(day_or_time)
            .transpose()?,
        until: q
            .until
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(day_or_time)
            .transpose()?,
    };
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
    let more = flights.len() > HISTORY_PAGE;
    flights.truncate(HISTORY_PAGE);
    // Per flight, each step of its tip's last attempt of each sequence.
    let mut results: Vec<std::collections::BTreeMap<String, Cell>> = Vec::new();
    for f in &flights {
        let runs = state.store.runs(f.id).await?;
        let steps = state.store.flight_steps(f.id).await?;
        let mut last: std::collections::BTreeMap<&str, &RunRow> = Default::default();
        for r in runs.iter().filter(|r| r.role == crate::decision::Role::Tip) {
            let newer = last
                .get(r.sequence.as_str())
                .is_none_or(|o| o.attempt <= r.attempt);
            if newer {
                last.insert(&r.sequence, r);
            }
        }
        let mut cells = std::collections::BTreeMap::new();
        for run in last.values() {
            for s in steps.iter().filter(|s| s.run_id == run.id) {
                cells.insert(
                    format!("{}/{}", run.sequence, s.name),
                    Cell {
                        status: s.status.clone(),
                        step: s.id,
                    },
                );
            }
        }
        results.push(cells);
    }
    let columns: std::collections::BTreeSet<String> =
        results.iter().flat_map(|c| c.keys().cloned()).collect();
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
            .map(|v| format!("&{k}={}", super::url_word(v)))
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
