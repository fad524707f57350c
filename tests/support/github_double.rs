//! A stand-in for GitHub's REST API on loopback (nothing real can run here): it records every
//! call, answers like GitHub for the endpoints pushgate uses, and fails calls on demand.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: serde_json::Value,
    pub authorization: String,
    /// What the double answered.
    pub status: u16,
}

/// (method, path prefix, status, extra headers): the next matching call fails so.
type Failure = (String, String, u16, Vec<(String, String)>);

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    failures: VecDeque<Failure>,
    heads: BTreeMap<String, String>,
    next_id: i64,
}

#[derive(Clone, Default)]
pub struct GitHubDouble {
    inner: Arc<Mutex<Inner>>,
    pub addr: Option<SocketAddr>,
}

impl GitHubDouble {
    pub async fn start() -> GitHubDouble {
        let mut double = GitHubDouble::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        double.addr = Some(listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(double.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        double
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr.unwrap())
    }

    /// The next `method` call whose path starts with `prefix` answers `status`.
    pub fn fail_next(&self, method: &str, prefix: &str, status: u16, headers: &[(&str, &str)]) {
        self.inner.lock().unwrap().failures.push_back((
            method.into(),
            prefix.into(),
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }

    pub fn set_head(&self, repository: &str, branch: &str, sha: &str) {
        self.inner
            .lock()
            .unwrap()
            .heads
            .insert(format!("{repository}/{branch}"), sha.into());
    }

    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn clear(&self) {
        self.inner.lock().unwrap().calls.clear();
    }
}

async fn answer(
    State(double): State<GitHubDouble>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let mut inner = double.inner.lock().unwrap();
    let failure = inner
        .failures
        .iter()
        .position(|(m, p, _, _)| *m == method.as_str() && path.starts_with(p.as_str()));
    let (status, extra, json) = match failure.and_then(|i| inner.failures.remove(i)) {
        Some((_, _, status, extra)) => (
            status,
            extra,
            serde_json::json!({ "message": "the double says no" }),
        ),
        None => {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match (method.as_str(), parts.as_slice()) {
                ("GET", ["repos", o, r, "branches", b]) => {
                    match inner.heads.get(&format!("{o}/{r}/{b}")) {
                        Some(sha) => (
                            200,
                            vec![],
                            serde_json::json!({ "name": b, "commit": { "sha": sha } }),
                        ),
                        None => (
                            404,
                            vec![],
                            serde_json::json!({ "message": "Branch not found" }),
                        ),
                    }
                }
                ("POST", ["repos", _, _, "statuses", _]) => (201, vec![], serde_json::json!({})),
                ("POST", ["app", "installations", id, "access_tokens"]) => (
                    201,
                    vec![],
                    serde_json::json!({
                        "token": format!("ghs_installation_{id}"),
                        "expires_at": "2099-01-01T00:00:00Z",
                        "permissions": { "statuses": "write", "checks": "write" },
                        "repository_selection": "all",
                    }),
                ),
                ("POST", ["repos", _, _, "check-runs"]) => {
                    inner.next_id += 1;
                    (
                        201,
                        vec![],
                        serde_json::json!({ "id": 1000 + inner.next_id }),
                    )
                }
                ("PATCH", ["repos", _, _, "check-runs", id]) => (
                    200,
                    vec![],
                    serde_json::json!({ "id": id.parse::<i64>().unwrap_or(0) }),
                ),
                ("POST", ["repos", _, _, "issues", _, "comments"])
                | ("POST", ["repos", _, _, "commits", _, "comments"]) => {
                    inner.next_id += 1;
                    (201, vec![], serde_json::json!({ "id": inner.next_id }))
                }
                _ => (404, vec![], serde_json::json!({ "message": "Not Found" })),
            }
        }
    };
    inner.calls.push(Call {
        method: method.to_string(),
        path,
        body: serde_json::from_slice(&body).unwrap_or_default(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        status,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(json)).into_response();
    for (k, v) in extra {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}
