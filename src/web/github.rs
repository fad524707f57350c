//! `POST /hooks/github`: GitHub's webhook deliveries. Each is verified (HMAC-SHA256 with the
//! configured secret) before anything else, parsed, recorded by its `X-GitHub-Delivery` so that
//! a redelivery is acknowledged but acted on once, and then acted on: a push to a policy's
//! staging branch wakes that policy's gate, which plans (or cancels and re-plans, when the push
//! rewrote staging) from what the branch holds.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{AppState, WebError};
use crate::github::{parse_event, verify_signature, Event, PushKind};

/// Larger deliveries are refused with 413 (GitHub caps payloads at 25 MB; pushes of thousands
/// of commits are cut short by GitHub well before this).
pub const MAX_BODY: usize = 5 << 20;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, String), WebError> {
    let Some(secret) = &state.github_secret else {
        return Err(WebError::Unauthorized(
            "GitHub webhooks are off: set [github] webhook_secret in pushgate.toml".into(),
        ));
    };
    verify_signature(
        secret.as_bytes(),
        &body,
        header(&headers, "x-hub-signature-256"),
        headers.contains_key("x-hub-signature"),
    )
    .map_err(|e| WebError::Unauthorized(e.to_string()))?;
    let event = header(&headers, "x-github-event")
        .ok_or_else(|| WebError::BadRequest("no X-GitHub-Event header".into()))?;
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 100)
        .ok_or_else(|| WebError::BadRequest("no X-GitHub-Delivery header".into()))?;
    let parsed = parse_event(event, &body).map_err(WebError::BadRequest)?;
    if !state.store.record_delivery(delivery, event).await? {
        tracing::info!(delivery, event, "redelivered: already handled");
        return Ok((
            StatusCode::OK,
            format!("delivery {delivery} was already handled\n"),
        ));
    }
    let (code, said) = match parsed {
        Event::Ping { zen } => (
            StatusCode::OK,
            format!(
                "pong{}\n",
                zen.map(|z| format!(": {z}")).unwrap_or_default()
            ),
        ),
        Event::Push(push) => match (push.kind, push.branch()) {
            (PushKind::BranchUpdated, Some(branch)) => {
                let woken = state.wakers.wake_github(&push.repository, branch);
                if woken.is_empty() {
                    (
                        StatusCode::OK,
                        format!("no policy watches {} {branch}\n", push.repository),
                    )
                } else {
                    (
                        StatusCode::ACCEPTED,
                        format!(
                            "woke {}{}\n",
                            woken.join(", "),
                            if push.forced { " (forced push)" } else { "" }
                        ),
                    )
                }
            }
            (kind, _) => (
                StatusCode::OK,
                format!("ignored: {} ({kind:?})\n", push.git_ref),
            ),
        },
        Event::PullRequest(pr) => (
            StatusCode::OK,
            format!(
                "ignored: pull request #{} {} (no policy runs try runs for {})\n",
                pr.number, pr.action, pr.repository
            ),
        ),
        Event::Other { event } => (StatusCode::OK, format!("ignored: {event} events\n")),
    };
    tracing::info!(delivery, event, answer = %said.trim(), "github delivery");
    Ok((code, said))
}
