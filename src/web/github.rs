//! `POST /hooks/github`: GitHub's webhook deliveries. Each is verified (HMAC-SHA256 with the
//! configured secret) before anything else, parsed, recorded by its `X-GitHub-Delivery` so that
//! a redelivery is acknowledged but acted on once, and then acted on: a push to a policy's
//! staging branch queues a candidate and wakes that policy's gate, which plans (or cancels and
//! re-plans, when the push rewrote staging) from what the branch holds; a maintainer's
//! `@pushgate` comment is carried out and answered.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use super::{overrides, AppState, WebError};
use crate::config::policy::Policy;
use crate::intake::github::{
    parse_command, parse_event, verify_signature, Comment, CommentOn, Event, PullRequest, PushKind,
};
use crate::store::{NewReport, PushedCandidate, Recorded, ReportKind};

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
    // A push to a watched staging branch becomes candidates in the same transaction that
    // records the delivery: acted on once, and never lost once GitHub got its answer.
    let rules = state.rules.get();
    let watching: Vec<&Policy> = match &parsed {
        Event::Push(push) => match (push.kind, push.branch()) {
            (PushKind::BranchUpdated, Some(branch)) => rules
                .policies
                .iter()
                .filter(|p| p.staging == branch && watches(p, &push.repository))
                .collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    let candidates: Vec<PushedCandidate> = match &parsed {
        Event::Push(push) => watching
            .iter()
            .map(|p| PushedCandidate {
                policy: &p.name,
                base: &push.before,
                tip: &push.after,
            })
            .collect(),
        _ => Vec::new(),
    };
    // Try runs are queued before the delivery is recorded, and idempotently (one job per head
    // and sequence): a crash in between cannot lose them, and a redelivery adds none.
    let tried = match &parsed {
        Event::PullRequest(pr) => Some(try_runs(&state, pr).await?),
        _ => None,
    };
    let queued = match state
        .store
        .record_delivery(delivery, event, &candidates)
        .await?
    {
        Recorded::Redelivery => {
            tracing::info!(delivery, event, "redelivered: already handled");
            return Ok((
                StatusCode::OK,
                format!("delivery {delivery} was already handled\n"),
            ));
        }
        Recorded::New { queued } => queued,
    };
    let (code, said) = match parsed {
        Event::Ping { zen } => (
            StatusCode::OK,
            format!(
                "pong{}\n",
                zen.map(|z| format!(": {z}")).unwrap_or_default()
            ),
        ),
        Event::Push(push) => match (push.kind, push.branch()) {
            (PushKind::BranchUpdated, Some(branch)) if watching.is_empty() => (
                StatusCode::OK,
                format!("no policy watches {} {branch}\n", push.repository),
            ),
            (PushKind::BranchUpdated, Some(_)) => {
                for p in &watching {
                    state.wakers.wake(None, Some(&p.name));
                }
                (
                    StatusCode::ACCEPTED,
                    format!(
                        "queued {queued} candidate{} for {}{}\n",
                        if queued == 1 { "" } else { "s" },
                        watching
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        if push.forced { " (forced push)" } else { "" }
                    ),
                )
            }
            (kind, _) => (
                StatusCode::OK,
                format!("ignored: {} ({kind:?})\n", push.git_ref),
            ),
        },
        Event::PullRequest(_) => tried.unwrap_or((StatusCode::OK, String::new())),
        Event::Comment(comment) => (StatusCode::OK, command(&state, delivery, comment).await?),
        Event::Other { event } => (StatusCode::OK, format!("ignored: {event} events\n")),
    };
    tracing::info!(delivery, event, answer = %said.trim(), "github delivery");
    Ok((code, said))
}

/// Queues try runs of a pull request opened or updated against a policy's target, when the
/// policy asks for them.
async fn try_runs(state: &AppState, pr: &PullRequest) -> Result<(StatusCode, String), WebError> {
    if !matches!(pr.action.as_str(), "opened" | "synchronize" | "reopened") {
        return Ok((
            StatusCode::OK,
            format!("ignored: pull request #{} {}\n", pr.number, pr.action),
        ));
    }
    let mut queued = Vec::new();
    let rules = state.rules.get();
    for p in rules
        .policies
        .iter()
        .filter(|p| p.try_runs && watches(p, &pr.repository) && p.target == pr.base_ref)
    {
        let ids = state
            .jobs
            .submit_try(p, pr.number, &pr.head_sha)
            .await
            .map_err(|e| match e {
                crate::jobs::JobError::Refused(m) => WebError::BadRequest(m),
                other => WebError::Internal(other.to_string()),
            })?;
        queued.extend(ids.iter().map(|id| format!("job {id} ({})", p.name)));
    }
    if queued.is_empty() {
        return Ok((
            StatusCode::OK,
            format!(
                "ignored: pull request #{} to {} (no policy runs try runs for it)\n",
                pr.number, pr.base_ref
            ),
        ));
    }
    state.reports_wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        format!(
            "try runs of pull request #{} queued: {}\n",
            pr.number,
            queued.join(", ")
        ),
    ))
}

fn watches(policy: &Policy, repository: &str) -> bool {
    policy
        .github
        .as_deref()
        .is_some_and(|g| g.eq_ignore_ascii_case(repository))
}

/// Carries out a `@pushgate` command from a maintainer's comment and answers in the thread;
/// anyone else is refused politely and nothing changes.
async fn command(state: &AppState, delivery: &str, c: Comment) -> Result<String, WebError> {
    if c.action != "created" {
        return Ok(format!("ignored: a comment {}\n", c.action));
    }
    let Some(parsed) = parse_command(&c.body) else {
        return Ok("ignored: not addressed to @pushgate\n".into());
    };
    let rules = state.rules.get();
    let policies: Vec<&Policy> = rules
        .policies
        .iter()
        .filter(|p| watches(p, &c.repository))
        .collect();
    if policies.is_empty() {
        return Ok(format!("ignored: no policy watches {}\n", c.repository));
    }
    let login = c.user.to_ascii_lowercase();
    let answer = match parsed {
        Err(why) => format!("@{}: {why}. Nothing was changed.", c.user),
        Ok(_) if !policies.iter().any(|p| p.maintainers.contains(&login)) => format!(
            "Sorry @{}, only the maintainers listed in pushgate's policy for {} can give it \
             commands. Nothing was changed; please ask one of them.",
            c.user, c.repository
        ),
        Ok(cmd) => {
            let mut said = Vec::new();
            for p in policies.iter().filter(|p| p.maintainers.contains(&login)) {
                let why = format!("@pushgate command by @{} on GitHub", c.user);
                said.push(overrides::apply(state, p, &c.user, &why, &cmd).await?);
            }
            format!("@{}: {}", c.user, said.join("; "))
        }
    };
    if state.reports_to_github {
        let (issue, sha) = match &c.on {
            CommentOn::Issue(n) => (Some(*n as i64), None),
            CommentOn::Commit(sha) => (None, Some(sha.clone())),
        };
        state
            .store
            .enqueue_reports(&[NewReport {
                key: format!("comment:{delivery}"),
                repository: c.repository.clone(),
                kind: ReportKind::Comment,
                sha,
                issue,
                context: "pushgate".into(),
                state: "comment".into(),
                title: String::new(),
                body: answer.clone(),
                target_url: None,
                flight_id: None,
            }])
            .await?;
        state.reports_wake.notify_one();
    }
    Ok(format!("{answer}\n"))
}
