//! GitHub's REST API through octocrab: the [`Forge`] pushgate reports to, reads branch heads
//! from and takes git credentials from. Authenticates as a GitHub App installation (tokens
//! renewed by octocrab) or with a personal token.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde_json::json;

use crate::config::{GitHubAuth, GitHubSettings};
use crate::forge::{Forge, ForgeError};
use crate::repo::Credentials;
use crate::store::{ReportKind, ReportRow};

pub struct GitHub {
    crab: Octocrab,
    settings: GitHubSettings,
}

/// GitHub caps a status description at 140 characters.
fn description(title: &str) -> String {
    if title.chars().count() <= 140 {
        return title.to_string();
    }
    let mut s: String = title.chars().take(139).collect();
    s.push('…');
    s
}

fn transient(message: String) -> ForgeError {
    ForgeError::Transient {
        message,
        after: None,
    }
}

impl GitHub {
    pub fn new(settings: GitHubSettings) -> Result<GitHub, String> {
        let builder = Octocrab::builder()
            .base_uri(settings.api_url.as_str())
            .map_err(|e| format!("github.api_url `{}`: {e}", settings.api_url))?
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .add_header(
                axum::http::header::USER_AGENT,
                format!("pushgate/{}", env!("CARGO_PKG_VERSION")),
            );
        let crab = match &settings.auth {
            GitHubAuth::Token(token) => builder
                .personal_token(token.clone())
                .build()
                .map_err(|e| e.to_string())?,
            GitHubAuth::App {
                app_id,
                private_key,
                installation_id,
            } => {
                let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.as_bytes())
                    .map_err(|e| format!("github.private_key_file: not an RSA key in PEM: {e}"))?;
                builder
                    .app((*app_id).into(), key)
                    .build()
                    .map_err(|e| e.to_string())?
                    .installation((*installation_id).into())
                    .map_err(|e| e.to_string())?
            }
        };
        Ok(GitHub { crab, settings })
    }

    /// Sends one request and sorts the answer: 2xx gives the JSON body; a rate limit or 5xx is
    /// worth retrying (after what GitHub said, when it did); any other 4xx is a refusal.
    async fn call(
        &self,
        method: axum::http::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(axum::http::StatusCode, serde_json::Value), ForgeError> {
        let response = match method {
            axum::http::Method::POST => self.crab._post(path, body).await,
            axum::http::Method::PATCH => self.crab._patch(path, body).await,
            _ => self.crab._get(path).await,
        }
        .map_err(|e| transient(format!("{method} {path}: {e}")))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after").and_then(|s| s.parse::<u64>().ok());
        let remaining = header("x-ratelimit-remaining");
        let reset = header("x-ratelimit-reset").and_then(|s| s.parse::<u64>().ok());
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| transient(format!("{method} {path}: reading the answer: {e}")))?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        if status.is_success() {
            return Ok((status, json));
        }
        let said = json
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        let message = format!("{method} {path}: {status}: {said}");
        let rate_limited = status == axum::http::StatusCode::TOO_MANY_REQUESTS
            || (status == axum::http::StatusCode::FORBIDDEN
                && (remaining.as_deref() == Some("0") || retry_after.is_some()));
        if rate_limited || status.is_server_error() {
            let after = retry_after.map(Duration::from_secs).or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .ok()?
                    .as_secs();
                reset.map(|r| Duration::from_secs(r.saturating_sub(now)))
            });
            return Err(ForgeError::Transient { message, after });
        }
        Err(ForgeError::Refused { message })
    }
}

/// A check run's status and conclusion for one of pushgate's states.
fn check_state(state: &str) -> (&'static str, Option<&'static str>) {
    match state {
        "pending" => ("queued", None),
        "success" => ("completed", Some("success")),
        "failure" => ("completed", Some("failure")),
        "cancelled" => ("completed", Some("cancelled")),
        _ => ("completed", Some("neutral")),
    }
}

/// A commit status's state: GitHub has no neutral one; `error` is "not decided by the tests".
fn status_state(state: &str) -> &'static str {
    match state {
        "pending" => "pending",
        "success" => "success",
        "failure" => "failure",
        _ => "error",
    }
}

#[async_trait]
impl Forge for GitHub {
    async fn branch_head(
        &self,
        repository: &str,
        branch: &str,
    ) -> Result<Option<String>, ForgeError> {
        let path = format!("/repos/{repository}/branches/{branch}");
        match self.call(axum::http::Method::GET, &path, None).await {
            Ok((_, json)) => json
                .pointer("/commit/sha")
                .and_then(|s| s.as_str())
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| transient(format!("GET {path}: no commit.sha in the answer"))),
            Err(ForgeError::Refused { message }) if message.contains(" 404 ") => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn post(
        &self,
        report: &ReportRow,
        update: Option<i64>,
    ) -> Result<Option<i64>, ForgeError> {
        let repo = &report.repository;
        let refused = |what: &str| ForgeError::Refused {
            message: format!("report {}: no {what}", report.id),
        };
        match report.kind {
            ReportKind::Status => {
                let sha = report.sha.as_deref().ok_or_else(|| refused("commit"))?;
                let body = json!({
                    "state": status_state(&report.state),
                    "target_url": report.target_url,
                    "description": description(&report.title),
                    "context": report.context,
                });
                self.call(
                    axum::http::Method::POST,
                    &format!("/repos/{repo}/statuses/{sha}"),
                    Some(&body),
                )
                .await?;
                Ok(None)
            }
            ReportKind::Check => {
                let sha = report.sha.as_deref().ok_or_else(|| refused("commit"))?;
                let (status, conclusion) = check_state(&report.state);
                let mut body = json!({
                    "name": report.context,
                    "head_sha": sha,
                    "status": status,
                    "details_url": report.target_url,
                    "output": { "title": report.title, "summary": report.body },
                });
                if let Some(c) = conclusion {
                    body["conclusion"] = json!(c);
                }
                let (_, answer) = match update {
                    Some(id) => {
                        self.call(
                            axum::http::Method::PATCH,
                            &format!("/repos/{repo}/check-runs/{id}"),
                            Some(&body),
                        )
                        .await?
                    }
                    None => {
                        self.call(
                            axum::http::Method::POST,
                            &format!("/repos/{repo}/check-runs"),
                            Some(&body),
                        )
                        .await?
                    }
                };
                Ok(answer.get("id").and_then(|i| i.as_i64()))
            }
            ReportKind::Comment => {
                let path = match (report.issue, report.sha.as_deref()) {
                    (Some(n), _) => format!("/repos/{repo}/issues/{n}/comments"),
                    (None, Some(sha)) => format!("/repos/{repo}/commits/{sha}/comments"),
                    (None, None) => return Err(refused("pull request or commit")),
                };
                let (_, answer) = self
                    .call(
                        axum::http::Method::POST,
                        &path,
                        Some(&json!({ "body": report.body })),
                    )
                    .await?;
                Ok(answer.get("id").and_then(|i| i.as_i64()))
            }
        }
    }

    async fn git_credentials(&self, url: &str) -> Result<Credentials, ForgeError> {
        let ssh = url.starts_with("ssh://") || (url.contains('@') && !url.contains("://"));
        if ssh {
            if let Some(key) = &self.settings.deploy_key {
                return Ok(Credentials::SshKey {
                    private_key: key.clone(),
                    known_hosts: self.settings.known_hosts.clone(),
                });
            }
        }
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Ok(Credentials::Anonymous);
        }
        let token = match &self.settings.auth {
            GitHubAuth::Token(t) => t.clone(),
            GitHubAuth::App { .. } => {
                use secrecy::ExposeSecret;
                self.crab
                    .installation_token()
                    .await
                    .map_err(|e| transient(format!("installation token: {e}")))?
                    .expose_secret()
                    .to_string()
            }
        };
        Ok(Credentials::Token {
            user: "x-access-token".into(),
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_github() {
        assert_eq!(description("short"), "short");
        let long = "x".repeat(300);
        assert_eq!(description(&long).chars().count(), 140);
    }

    #[test]
    fn states_map_to_statuses_and_checks() {
        assert_eq!(status_state("neutral"), "error");
        assert_eq!(status_state("cancelled"), "error");
        assert_eq!(check_state("pending"), ("queued", None));
        assert_eq!(check_state("neutral"), ("completed", Some("neutral")));
    }
}
