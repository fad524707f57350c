//! The HTTP side of `pushgate serve`: the status pages, the JSON API, and the hook that a git
//! server's post-receive calls to wake the gate at once.

mod api;
mod hooks;
mod pages;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Notify;

use crate::store::{Store, StoreError};

/// Wakes one policy's gate loop before its poll interval is up.
#[derive(Clone, Default)]
pub struct Wakers {
    /// Policy name to (staging branch, its waker).
    by_policy: BTreeMap<String, (String, Arc<Notify>)>,
}

impl Wakers {
    pub fn add(&mut self, policy: &str, staging: &str) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        self.by_policy
            .insert(policy.to_string(), (staging.to_string(), notify.clone()));
        notify
    }

    /// Wakes the policies that watch `git_ref` (`refs/heads/NAME`), or only `only` if given.
    /// Returns their names.
    pub fn wake(&self, git_ref: Option<&str>, only: Option<&str>) -> Vec<String> {
        self.by_policy
            .iter()
            .filter(|(name, (staging, _))| {
                only.is_none_or(|o| o == name.as_str())
                    && git_ref.is_none_or(|r| r == format!("refs/heads/{staging}"))
            })
            .map(|(name, (_, notify))| {
                // notify_one keeps a permit when the loop is busy, so no wake-up is lost.
                notify.notify_one();
                name.clone()
            })
            .collect()
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub wakers: Arc<Wakers>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::status))
        .route("/flights/{id}", get(pages::flight))
        .route("/logs/{step}", get(pages::log))
        .route("/api/branches", get(api::branches))
        .route("/api/flights/{id}", get(api::flight))
        .route("/hooks/git", post(hooks::git))
        .with_state(state)
}

/// What a handler can fail with; the body says what went wrong.
pub enum WebError {
    NotFound(String),
    BadRequest(String),
    Internal(String),
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error while serving a page");
        WebError::Internal(e.to_string())
    }
}

impl From<crate::report::ReportError> for WebError {
    fn from(e: crate::report::ReportError) -> Self {
        WebError::Internal(e.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (code, message) = match self {
            WebError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            WebError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, m),
        };
        (code, format!("{message}\n")).into_response()
    }
}

/// Milliseconds since the epoch, as people read them on a page.
fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
