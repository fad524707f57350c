//! The HTTP side of `pushgate serve`: the status pages, the JSON API, and the hook that a git
//! server's post-receive calls to wake the gate at once.

pub mod api;
pub mod client;
pub mod connection;
mod github;
mod hooks;
pub mod jobs;
mod log_view;
pub mod overrides;
mod pages;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

use crate::hosts::Lab;
use crate::jobs::JobRunner;
use crate::store::{Store, StoreError};

/// Wakes one policy's gate loop before its poll interval is up. The policies change with a
/// reload, so the map is behind a lock.
#[derive(Default)]
pub struct Wakers {
    /// Policy name to what it watches and its waker.
    by_policy: std::sync::RwLock<BTreeMap<String, Watch>>,
}

#[derive(Clone)]
struct Watch {
    staging: String,
    notify: Arc<Notify>,
}

impl Wakers {
    /// The waker of `policy`, which watches `staging` (made on first use; a reload that moved
    /// the policy's staging branch changes what it watches, not its waker).
    pub fn add(&self, policy: &str, staging: &str) -> Arc<Notify> {
        let mut map = self.by_policy.write().unwrap_or_else(|p| p.into_inner());
        let watch = map.entry(policy.to_string()).or_insert_with(|| Watch {
            staging: staging.to_string(),
            notify: Arc::new(Notify::new()),
        });
        watch.staging = staging.to_string();
        watch.notify.clone()
    }

    /// Forgets the policies `keep` says no to (a reload removed them).
    pub fn keep_only(&self, keep: impl Fn(&str) -> bool) {
        let mut map = self.by_policy.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|name, _| keep(name));
    }

    /// Whether a policy of this name is loaded.
    pub fn watches(&self, policy: &str) -> bool {
        let map = self.by_policy.read().unwrap_or_else(|p| p.into_inner());
        map.contains_key(policy)
    }

    /// Wakes the policies that watch `git_ref` (`refs/heads/NAME`), or only `only` if given.
    /// Returns their names.
    pub fn wake(&self, git_ref: Option<&str>, only: Option<&str>) -> Vec<String> {
        self.wake_where(|name, w| {
            only.is_none_or(|o| o == name)
                && git_ref.is_none_or(|r| r == format!("refs/heads/{}", w.staging))
        })
    }

    /// Wakes every policy.
    pub fn wake_all(&self) {
        self.wake_where(|_, _| true);
    }

    fn wake_where(&self, watches: impl Fn(&str, &Watch) -> bool) -> Vec<String> {
        let map = self.by_policy.read().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(name, w)| watches(name, w))
            .map(|(name, w)| {
                // notify_one keeps a permit when the loop is busy, so no wake-up is lost.
                w.notify.notify_one();
                name.clone()
            })
            .collect()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub wakers: Arc<Wakers>,
    pub lab: Arc<Lab>,
    pub jobs: Arc<JobRunner>,
    /// The job API's secret; `None` turns the job API off.
    pub api_token: Option<String>,
    /// GitHub's webhook secret; `None` refuses every delivery.
    pub github_secret: Option<String>,
    /// The policies in force: who their maintainers are, which GitHub repository they watch.
    pub rules: Arc<crate::config::InForce<crate::config::Rules>>,
    /// Whether reports and comments go to GitHub (`[github]` login configured).
    pub reports_to_github: bool,
    /// Wakes the delivery of forge reports (a comment to answer).
    pub reports_wake: Arc<Notify>,
}

pub fn router(state: AppState) -> Router {
    let job_api = Router::new()
        .route("/api/jobs", post(jobs::submit).get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::status))
        .route("/api/jobs/{id}/log", get(jobs::showlog))
        .route("/api/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/jobs/{id}/complete", post(jobs::complete))
        .route("/api/jobs/{id}/interact", post(jobs::interact))
        .route("/api/runs/{id}/interact", post(jobs::interact_run))
        .route("/api/hosts", get(jobs::hosts))
        .route(
            "/api/branches/{name}/{action}",
            post(overrides::override_branch),
        )
        .route("/api/hosts/{name}/borrow", post(jobs::borrow))
        .route("/api/hosts/{name}/return", post(jobs::give_back))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            jobs::require_token,
        ));
    Router::new()
        .merge(job_api)
        .route("/", get(pages::status))
        .route("/flights/{id}", get(pages::flight))
        .route("/logs/{step}", get(pages::log))
        .route("/logs/{step}/raw", get(pages::log_raw))
        .route("/logs/{step}/tail", get(pages::log_tail))
        .route("/runs/{id}", get(pages::run))
        .route("/jobs", get(pages::jobs))
        .route("/branches/{name}", get(pages::branch))
        .route("/hosts", get(pages::hosts))
        .route("/hosts/{name}", get(pages::host))
        .route("/jobs/{id}", get(pages::job))
        .route("/api/branches", get(api::branches))
        .route("/api/queue", get(api::queue))
        .route("/api/flights/{id}", get(api::flight))
        .route("/hooks/git", post(hooks::git))
        .route(
            "/hooks/github",
            post(github::webhook).layer(axum::extract::DefaultBodyLimit::max(github::MAX_BODY)),
        )
        .layer(axum::middleware::from_fn(connection::track))
        .with_state(state)
}

/// What a handler can fail with; the body says what went wrong.
pub enum WebError {
    NotFound(String),
    BadRequest(String),
    /// A missing or wrong signature or token.
    Unauthorized(String),
    /// The request is fine but the thing is not in a state to do it (a finished job).
    Conflict(String),
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving a page");
        WebError::Internal(e.to_string())
    }
}

impl From<crate::templates::TemplateError> for WebError {
    fn from(e: crate::templates::TemplateError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            WebError::Conflict(m) => (StatusCode::CONFLICT, m),
            WebError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (code, format!("{message}\n")).into_response()
    }
}

/// A word for a URL's path or query: plain characters as they are, anything else
/// percent-encoded (host names, user names, filter values).
pub fn url_word(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Milliseconds since the epoch (the store's times), as people read them: UTC, to the second.
pub fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
