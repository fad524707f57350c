//! Maintainers' overrides (OSSTest's force and block files, bors's treeclosed), from the CLI
//! (`pushgate jobs block|unblock|retry|force`, over the token-protected API) and from
//! `@pushgate` comments on GitHub: one place that carries them out for both.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::{AppState, WebError};
use crate::config::policy::Policy;
use crate::intake::github::Command;

/// Records `command` for `policy` and wakes its gate; returns one line saying what will happen.
pub async fn apply(
    state: &AppState,
    policy: &Policy,
    who: &str,
    why: &str,
    command: &Command,
) -> Result<String, WebError> {
    let branch = state.store.upsert_branch(policy).await?;
    let said = match command {
        Command::Block { reason } => {
            state
                .store
                .set_hold(branch, Some(reason), who, reason)
                .await?;
            format!(
                "{}: blocked by {who} ({reason}): nothing is planned or pushed until unblocked",
                policy.name
            )
        }
        Command::Unblock => {
            state.store.set_hold(branch, None, who, why).await?;
            format!("{}: unblocked by {who}", policy.name)
        }
        Command::Retry => {
            state
                .store
                .request_override(branch, "retry", None, who, why)
                .await?;
            format!("{}: {} will be tested again", policy.name, policy.staging)
        }
        Command::Force { rev } => {
            let id = state
                .store
                .request_override(branch, "force", rev.as_deref(), who, why)
                .await?;
            format!(
                "{}: {} will be pushed to {} untested if it is a fast-forward (override {id}); \
                 the list is told",
                policy.name,
                rev.as_deref().unwrap_or("the staging tip"),
                policy.target
            )
        }
    };
    tracing::warn!("{}: {who}'s override: {said} (why: {why})", policy.name);
    state.wakers.wake(None, Some(&policy.name));
    Ok(said)
}

/// The policy a maintainer names: by policy name, else by its staging or target branch when
/// only one policy has that branch.
pub fn find_policy<'a>(policies: &'a [Policy], name: &str) -> Result<&'a Policy, WebError> {
    if let Some(p) = policies.iter().find(|p| p.name == name) {
        return Ok(p);
    }
    let by_branch: Vec<&Policy> = policies
        .iter()
        .filter(|p| p.staging == name || p.target == name)
        .collect();
    match by_branch.as_slice() {
        [one] => Ok(one),
        [] => Err(WebError::NotFound(format!(
            "no policy is named `{name}` or gates a branch of that name"
        ))),
        many => Err(WebError::BadRequest(format!(
            "several policies gate a branch `{name}` ({}): name the policy",
            many.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[derive(Serialize, Deserialize)]
pub struct OverrideRequest {
    pub who: String,
    #[serde(default)]
    pub why: String,
    #[serde(default)]
    pub rev: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct OverrideDone {
    pub policy: String,
    pub message: String,
}

/// `POST /api/branches/{name}/{action}`, action one of block, unblock, retry, force.
pub async fn override_branch(
    State(state): State<AppState>,
    Path((name, action)): Path<(String, String)>,
    Json(r): Json<OverrideRequest>,
) -> Result<Json<OverrideDone>, WebError> {
    let rules = state.rules.get();
    let policy = find_policy(&rules.policies, &name)?;
    if r.who.trim().is_empty() {
        return Err(WebError::BadRequest("say who asks (`who`)".into()));
    }
    let why = r.why.trim();
    let needs_why = |what: &str| {
        if why.is_empty() {
            Err(WebError::BadRequest(format!(
                "say why with --why: {what} is recorded and mailed"
            )))
        } else {
            Ok(())
        }
    };
    let command = match action.as_str() {
        "block" => {
            needs_why("a block")?;
            Command::Block {
                reason: why.to_string(),
            }
        }
        "unblock" => Command::Unblock,
        "retry" => Command::Retry,
        "force" => {
            needs_why("a force")?;
            let rev = r.rev.as_deref().map(str::trim).filter(|s| !s.is_empty());
            if let Some(rev) = rev {
                if !(4..=40).contains(&rev.len()) || !rev.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(WebError::BadRequest(format!(
                        "--rev `{rev}` is not a commit id (4 to 40 hex digits)"
                    )));
                }
            }
            Command::Force {
                rev: rev.map(str::to_ascii_lowercase),
            }
        }
        other => {
            return Err(WebError::NotFound(format!(
                "`{other}` is not an override: block, unblock, retry or force"
            )))
        }
    };
    let message = apply(&state, policy, r.who.trim(), why, &command).await?;
    Ok(Json(OverrideDone {
        policy: policy.name.clone(),
        message,
    }))
}
