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
    pub flights: Vec<FlightLine>,
}

pub async fn branch_views(store: &Store) -> Result<Vec<BranchView>, WebError> {
    let mut out = Vec::new();
    for mut branch in store.branches().await? {
        let flights = store.recent_flights(branch.id, RECENT_FLIGHTS).await?;
        branch.staging_head = branch.staging_head.as_deref().map(|s| short(s).to_string());
        branch.target_head = branch.target_head.as_deref().map(|s| short(s).to_string());
        out.push(BranchView {
            running: flights
                .iter()
                .find(|f| f.state == FlightState::Running)
                .map(|f| f.id),
            flights: flights.iter().map(FlightLine::from).collect(),
            branch,
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
