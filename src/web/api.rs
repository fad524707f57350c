//! The JSON API, and the views the HTML pages render from the same data.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use super::{when, AppState, WebError};
use crate::repo::short;
use crate::store::{BranchRow, FlightRow, FlightState, MailRow, RunRow, StepRow, Store};

/// Flights listed per branch.
const RECENT_FLIGHTS: i64 = 15;

#[derive(Serialize)]
pub struct FlightLine {
    pub id: i64,
    pub base: String,
    pub tip: String,
    pub commits: usize,
    pub state: &'static str,
    pub verdict: String,
    pub reason: String,
    pub culprit: Option<String>,
    pub pushed_to: Option<String>,
    pub created: String,
}

impl From<&FlightRow> for FlightLine {
    fn from(f: &FlightRow) -> Self {
        FlightLine {
            id: f.id,
            base: short(&f.base).to_string(),
            tip: short(&f.tip).to_string(),
            commits: f.commits.len(),
            state: f.state.as_str(),
            verdict: f.verdict.map(|v| v.to_string()).unwrap_or_default(),
            reason: f.reason.clone(),
            culprit: f.culprit.clone(),
            pushed_to: f.pushed_to.clone(),
            created: when(f.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct BranchView {
    #[serde(flatten)]
    pub branch: BranchRow,
    /// The flight being run now, if any.
    pub running: Option<i64>,
    /// How far the running flight is.
    pub progress: Option<Progress>,
    /// The newest culprit named on this branch.
    pub culprit: Option<CulpritLine>,
    /// What was pushed last.
    pub pushed: Option<PushedLine>,
    pub flights: Vec<FlightLine>,
}

/// A commit a flight named as the first bad one.
#[derive(Serialize)]
pub struct CulpritLine {
    pub flight: i64,
    pub sha: String,
    pub short: String,
    pub title: String,
    pub author: String,
}

/// The target's last move by the gate.
#[derive(Serialize)]
pub struct PushedLine {
    pub flight: i64,
    pub sha: String,
    pub short: String,
    /// Commits of the flight's range that went in.
    pub commits: usize,
    pub at: String,
}

/// A running flight's runs so far, its time, and what past flights say is left.
#[derive(Serialize)]
pub struct Progress {
    pub runs_done: usize,
    pub runs_made: usize,
    pub elapsed: String,
    /// From the median length of the branch's last finished flights; `None` without any.
    pub left: Option<String>,
}

/// A span of time as people say it, to the second.
fn span(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms.max(0) as u64 / 1000)).to_string()
}

async fn progress(
    store: &Store,
    running: &FlightRow,
    flights: &[FlightRow],
) -> Result<Progress, WebError> {
    let runs = store.runs(running.id).await?;
    let elapsed = crate::store::now_ms() - running.created_at;
    let mut lengths: Vec<i64> = flights
        .iter()
        .filter_map(|f| Some(f.finished_at? - f.created_at))
        .collect();
    lengths.sort_unstable();
    let left = (!lengths.is_empty()).then(|| span(lengths[lengths.len() / 2] - elapsed));
    Ok(Progress {
        runs_done: runs.iter().filter(|r| r.finished_at.is_some()).count(),
        runs_made: runs.len(),
        elapsed: span(elapsed),
        left,
    })
}

pub async fn branch_views(store: &Store) -> Result<Vec<BranchView>, WebError> {
    let mut out = Vec::new();
    for mut branch in store.branches().await? {
        let flights = store.recent_flights(branch.id, RECENT_FLIGHTS).await?;
        branch.staging_head = branch.staging_head.as_deref().map(|s| short(s).to_string());
        branch.target_head = branch.target_head.as_deref().map(|s| short(s).to_string());
        let running = flights.iter().find(|f| f.state == FlightState::Running);
        let progress = match running {
            Some(f) => Some(progress(store, f, &flights).await?),
            None => None,
        };
        let culprit = flights.iter().find_map(|f| {
            let sha = f.culprit.as_ref()?;
            let c = f.commits.iter().find(|c| &c.sha == sha)?;
            Some(CulpritLine {
                flight: f.id,
                short: short(sha).to_string(),
                sha: sha.clone(),
                title: c.title.clone(),
                author: format!("{} <{}>", c.author_name, c.author_email),
            })
        });
        let pushed = flights.iter().find_map(|f| {
            let sha = f.pushed_to.as_ref()?;
            Some(PushedLine {
                flight: f.id,
                short: short(sha).to_string(),
                commits: f
                    .commits
                    .iter()
                    .position(|c| &c.sha == sha)
                    .map_or(0, |i| i + 1),
                sha: sha.clone(),
                at: f.finished_at.map(when).unwrap_or_default(),
            })
        });
        out.push(BranchView {
            running: running.map(|f| f.id),
            progress,
            culprit,
            pushed,
            flights: flights.iter().map(FlightLine::from).collect(),
            branch,
        });
    }
    Ok(out)
}

/// A run waiting for a host, with what it is for.
#[derive(Serialize)]
pub struct QueueLine {
    pub run: i64,
    /// `flight 12` or `job 7`.
    pub of: String,
    pub link: String,
    pub sha: String,
    pub sequence: String,
    pub priority: &'static str,
    pub needs: String,
    pub waiting: String,
}

/// The lab's queue, oldest first.
pub async fn queue_lines(state: &AppState) -> Result<Vec<QueueLine>, WebError> {
    let mut out = Vec::new();
    for q in state.lab.queued() {
        let Some(run) = state.store.run(q.run_id).await? else {
            continue;
        };
        let (of, link) = match (run.flight_id, run.job_id) {
            (Some(f), _) => (format!("flight {f}"), format!("/flights/{f}")),
            (None, Some(j)) => (format!("job {j}"), format!("/jobs/{j}")),
            (None, None) => (format!("run {}", run.id), format!("/runs/{}", run.id)),
        };
        out.push(QueueLine {
            run: run.id,
            of,
            link,
            sha: short(&run.sha).to_string(),
            sequence: run.sequence,
            priority: q.priority,
            needs: q.needs,
            waiting: span(crate::store::now_ms() - run.created_at),
        });
    }
    Ok(out)
}

pub async fn branches(State(state): State<AppState>) -> Result<Json<Vec<BranchView>>, WebError> {
    Ok(Json(branch_views(&state.store).await?))
}

#[derive(Serialize)]
pub struct StepView {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub log: bool,
    pub seconds: Option<f64>,
}

#[derive(Serialize)]
pub struct RunView {
    #[serde(flatten)]
    pub run: RunRow,
    pub steps: Vec<StepView>,
    /// When it was made, when it ended, and how long it took.
    pub made: String,
    pub ended: Option<String>,
    pub took: Option<String>,
}

/// A commit of the flight's range and what became of it.
#[derive(Serialize)]
pub struct CommitLine {
    #[serde(flatten)]
    pub commit: crate::repo::CommitInfo,
    /// `pushed`, `first bad`, or empty while it waits.
    pub fate: &'static str,
    /// For a culprit, the steps whose failure began there.
    pub broke: Vec<String>,
}

/// A result an earlier flight made of one of this flight's commits, which the finder reused.
#[derive(Serialize)]
pub struct Reused {
    pub flight: i64,
    /// This flight's index of the commit (1-based).
    pub index: usize,
    pub sha: String,
    pub sequence: String,
    pub state: String,
}

#[derive(Serialize)]
pub struct FlightView {
    pub policy: String,
    pub flight: FlightRow,
    pub commits: Vec<CommitLine>,
    pub runs: Vec<RunView>,
    pub mails: Vec<MailSummary>,
    /// Commits earlier flights blamed that are in this range, and what became of them.
    pub blamed_before: Vec<String>,
    /// Earlier flights' results of this range's commits: evidence the finder reused.
    pub reused: Vec<Reused>,
}

#[derive(Serialize)]
pub struct MailSummary {
    pub kind: String,
    pub subject: String,
    pub message_id: String,
    pub recipients: Vec<String>,
    pub delivered_to: Option<String>,
    pub last_error: Option<String>,
}

impl From<MailRow> for MailSummary {
    fn from(m: MailRow) -> Self {
        MailSummary {
            kind: m.kind,
            subject: m.subject,
            message_id: m.message_id,
            recipients: m.recipients,
            delivered_to: m.delivered_to,
            last_error: m.last_error,
        }
    }
}

fn step_view(s: StepRow) -> StepView {
    StepView {
        id: s.id,
        seconds: s
            .started_at
            .zip(s.finished_at)
            .map(|(a, b)| (b - a) as f64 / 1000.0),
        log: s.log_path.is_some(),
        name: s.name,
        status: s.status,
        exit_code: s.exit_code,
    }
}

pub async fn flight_view(store: &Store, id: i64) -> Result<FlightView, WebError> {
    let flight = store
        .flight(id)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("no flight {id}")))?;
    let policy = store
        .branch(flight.branch_id)
        .await?
        .map(|b| b.policy)
        .unwrap_or_default();
    let mut steps = store.flight_steps(id).await?;
    let runs = store
        .runs(id)
        .await?
        .into_iter()
        .map(|run| {
            let (mine, rest): (Vec<StepRow>, Vec<StepRow>) = std::mem::take(&mut steps)
                .into_iter()
                .partition(|s| s.run_id == run.id);
            steps = rest;
            RunView {
                made: when(run.created_at),
                ended: run.finished_at.map(when),
                took: run.finished_at.map(|f| span(f - run.created_at)),
                run,
                steps: mine.into_iter().map(step_view).collect(),
            }
        })
        .collect();
    let mails = store
        .mail_of_flight(id)
        .await?
        .into_iter()
        .map(MailSummary::from)
        .collect();
    let pushed = flight
        .pushed_to
        .as_ref()
        .and_then(|p| flight.commits.iter().position(|c| &c.sha == p));
    let blames = store.blames(id).await?;
    let blame_of = |sha: &str| blames.iter().find(|b| b.sha == sha);
    let commits = flight
        .commits
        .iter()
        .enumerate()
        .map(|(i, c)| CommitLine {
            fate: if blame_of(&c.sha).is_some() || flight.culprit.as_ref() == Some(&c.sha) {
                "first bad"
            } else if pushed.is_some_and(|p| i <= p) {
                "pushed"
            } else {
                ""
            },
            broke: blame_of(&c.sha)
                .map(|b| b.steps.clone())
                .unwrap_or_default(),
            commit: c.clone(),
        })
        .collect();
    let index_of: std::collections::HashMap<&str, usize> = flight
        .commits
        .iter()
        .enumerate()
        .map(|(i, c)| (c.sha.as_str(), i + 1))
        .collect();
    let shas: Vec<&str> = index_of.keys().copied().collect();
    let (earlier_runs, _) = store.earlier_runs(flight.branch_id, id, &shas).await?;
    let reused = earlier_runs
        .into_iter()
        .filter_map(|r| {
            Some(Reused {
                flight: r.flight_id?,
                index: *index_of.get(r.sha.as_str())?,
                sequence: r.sequence,
                state: r.state.as_str().to_string(),
                sha: r.sha,
            })
        })
        .collect();
    let culprits: Vec<usize> = blames
        .iter()
        .filter_map(|b| index_of.get(b.sha.as_str()).copied())
        .collect();
    let before = store.earlier_blames(flight.branch_id, id).await?;
    let blamed_before = crate::notify::blamed_before(&flight, &culprits, flight.verdict, &before);
    Ok(FlightView {
        policy,
        commits,
        flight,
        runs,
        mails,
        blamed_before,
        reused,
    })
}

pub async fn flight(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<FlightView>, WebError> {
    Ok(Json(flight_view(&state.store, id).await?))
}

pub async fn queue(State(state): State<AppState>) -> Result<Json<Vec<QueueLine>>, WebError> {
    Ok(Json(queue_lines(&state).await?))
}
