//! `pushgate bench intake`: GitHub webhook intake under load. This process serves
//! `/hooks/github` (verify the signature, dedupe the delivery, persist the candidate, answer)
//! on SQLite; a second process (`pushgate bench intake-load`, the same binary) sends signed
//! push deliveries over loopback on many keep-alive connections, every tenth a redelivery of an
//! earlier one, and reports what it saw. Afterwards the store is counted: every delivery that
//! was answered must have exactly one candidate, and no redelivery a second one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::{fail, BenchError, Report};
use pushgate::config::Config;
use pushgate::gate::LogProgress;
use pushgate::service::Service;
use pushgate::web::Wakers;

const SECRET: &str = "bench-webhook-secret";
const REPOSITORY: &str = "bench/project";

/// What the load process saw.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadReport {
    pub sent: usize,
    pub connections: usize,
    pub seconds: f64,
    /// 202: a new delivery, candidate queued.
    pub accepted: usize,
    /// 200: a redelivery, acknowledged.
    pub acknowledged: usize,
    /// Anything else, or no answer.
    pub failed: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub payload_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct IntakeReport {
    pub load: LoadReport,
    pub deliveries_per_second: f64,
    /// Distinct deliveries sent (redeliveries not counted).
    pub distinct_sent: usize,
    pub deliveries_recorded: i64,
    pub candidates: i64,
    /// Distinct deliveries with no candidate.
    pub lost: i64,
    /// Candidates beyond one per tip.
    pub doubled: i64,
}

impl Report for IntakeReport {
    fn table(&self) -> String {
        let l = &self.load;
        format!(
            "{} deliveries ({} distinct, {} B each) on {} connections in {:.2} s: {:.0} deliveries/s\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}\n\
             answers: {} accepted (202), {} redeliveries acknowledged (200), {} failed\n\
             store: {} deliveries recorded, {} candidates; lost {}, doubled {}\n",
            l.sent,
            self.distinct_sent,
            l.payload_bytes,
            l.connections,
            l.seconds,
            self.deliveries_per_second,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms,
            l.accepted,
            l.acknowledged,
            l.failed,
            self.deliveries_recorded,
            self.candidates,
            self.lost,
            self.doubled,
        )
    }
}

/// Which delivery request `i` carries: every tenth repeats the one five before it.
fn delivery_of(i: usize) -> usize {
    if i % 10 == 9 {
        i - 5
    } else {
        i
    }
}

/// A push of `staging` to `tip`, shaped like GitHub's (three commits, the repository's many
/// URLs), about 6 KB.
fn payload(tip: usize) -> Vec<u8> {
    let after = format!("{:040x}", tip + 1);
    let before = format!("{:040x}", tip + 1_000_000_000);
    let url = format!("https://github.com/{REPOSITORY}");
    let person = serde_json::json!({
        "name": "Contributor Example", "email": "contributor@example.org", "username": "contributor"
    });
    let commits: Vec<serde_json::Value> = (0..3)
        .map(|c| {
            serde_json::json!({
                "id": format!("{:040x}", tip * 3 + c + 7),
                "tree_id": format!("{:040x}", tip * 3 + c + 9),
                "distinct": true,
                "message": format!("x86/hvm: change {c} of a series\n\nA longer explanation of why this change is needed, as a commit message has.\n\nSigned-off-by: Contributor Example <contributor@example.org>"),
                "timestamp": "2026-11-22T08:00:00+00:00",
                "url": format!("{url}/commit/{:040x}", tip * 3 + c + 7),
                "author": person, "committer": person,
                "added": [], "removed": [], "modified": ["xen/arch/x86/hvm/hvm.c", "xen/include/asm-x86/hvm/hvm.h"],
            })
        })
        .collect();
    let mut repository = serde_json::json!({
        "id": 123456789, "node_id": "R_kgDOBench", "name": "project", "full_name": REPOSITORY,
        "private": false, "owner": { "login": "bench", "id": 1, "type": "Organization" },
        "html_url": url, "description": "A project gated by pushgate", "fork": false,
        "default_branch": "master", "master_branch": "master",
    });
    for field in [
        "forks",
        "keys",
        "collaborators",
        "teams",
        "hooks",
        "issue_events",
        "events",
        "assignees",
        "branches",
        "tags",
        "blobs",
        "git_tags",
        "git_refs",
        "trees",
        "statuses",
        "languages",
        "stargazers",
        "contributors",
        "subscribers",
        "subscription",
        "commits",
        "git_commits",
        "comments",
        "issue_comment",
        "contents",
        "compare",
        "merges",
        "archive",
        "downloads",
        "issues",
        "pulls",
        "milestones",
        "notifications",
        "labels",
        "releases",
        "deployments",
    ] {
        repository[format!("{field}_url")] =
            format!("https://api.github.com/repos/{REPOSITORY}/{field}").into();
    }
    serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/staging", "before": before, "after": after,
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": format!("{url}/compare/{}...{}", &before[..12], &after[..12]),
        "commits": commits, "head_commit": commits[2], "repository": repository,
        "pusher": { "name": "contributor", "email": "contributor@example.org" },
        "sender": { "login": "contributor", "id": 2, "type": "User" },
    }))
    .unwrap_or_default()
}

fn sign(body: &[u8]) -> String {
    pushgate::intake::github::webhook::signature(SECRET.as_bytes(), body)
}

/// The load process: `count` deliveries to `addr` over `connections` keep-alive connections.
#[derive(clap::Args)]
pub struct Args {
    /// How many webhook deliveries to send.
    #[arg(long, default_value_t = 20000)]
    deliveries: usize,
    /// Concurrent keep-alive connections of the load process.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The address of the `serve` under test (host:port).
    #[arg(long)]
    pub addr: String,
    /// How many webhook deliveries to send.
    #[arg(long)]
    pub deliveries: usize,
    /// Concurrent keep-alive connections.
    #[arg(long)]
    pub connections: usize,
}

pub async fn measure(args: &Args) -> Result<IntakeReport, BenchError> {
    intake(args.deliveries.max(10), args.connections).await
}

pub async fn load(addr: &str, count: usize, connections: usize) -> Result<LoadReport, BenchError> {
    // Everything is signed before the clock starts: the load is the server's, not ours.
    let requests: Arc<Vec<(String, Bytes, String)>> = Arc::new(
        (0..count)
            .map(|i| {
                let d = delivery_of(i);
                let body = payload(d);
                let sig = sign(&body);
                (format!("bench-{d}"), Bytes::from(body), sig)
            })
            .collect(),
    );
    let payload_bytes = requests.first().map_or(0, |r| r.1.len());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.max(1) {
        let (requests, next, addr) = (requests.clone(), next.clone(), addr.to_string());
        tasks.spawn(async move {
            let mut seen: Vec<(u16, f64)> = Vec::new();
            let stream = tokio::net::TcpStream::connect(&addr).await.map_err(fail)?;
            stream.set_nodelay(true).map_err(fail)?;
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(fail)?;
            tokio::spawn(conn);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((delivery, body, sig)) = requests.get(i) else {
                    break;
                };
                let request = hyper::Request::post("/hooks/github")
                    .header("host", &addr)
                    .header("content-type", "application/json")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", delivery.as_str())
                    .header("x-hub-signature-256", sig.as_str())
                    .body(Full::new(body.clone()))
                    .map_err(fail)?;
                let t = Instant::now();
                let status = match send.send_request(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        response.into_body().collect().await.map_err(fail)?;
                        status
                    }
                    Err(_) => 0,
                };
                seen.push((status, t.elapsed().as_secs_f64() * 1000.0));
                if status == 0 {
                    break;
                }
            }
            Ok::<_, BenchError>(seen)
        });
    }
    let mut seen = Vec::new();
    while let Some(done) = tasks.join_next().await {
        seen.extend(done.map_err(fail)??);
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut ms: Vec<f64> = seen.iter().map(|s| s.1).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(LoadReport {
        sent: seen.len(),
        connections,
        seconds,
        accepted: seen.iter().filter(|s| s.0 == 202).count(),
        acknowledged: seen.iter().filter(|s| s.0 == 200).count(),
        failed: seen.iter().filter(|s| s.0 != 200 && s.0 != 202).count(),
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
        payload_bytes,
    })
}

/// Serves the intake here and loads it from a second process.
async fn intake(count: usize, connections: usize) -> Result<IntakeReport, BenchError> {
    let tmp = tempfile::tempdir().map_err(fail)?;
    let dir = tmp.path();
    for sub in ["policies", "sequences"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(fail)?;
    }
    std::fs::write(
        dir.join("sequences/smoke.toml"),
        "[[step]]\nname = \"smoke\"\ncommand = \"true\"\ntimeout = \"1m\"\n",
    )
    .map_err(fail)?;
    std::fs::write(
        dir.join("policies/bench.toml"),
        format!("repository = \"https://github.com/{REPOSITORY}.git\"\nsequences = [\"smoke\"]\n"),
    )
    .map_err(fail)?;
    std::fs::write(
        dir.join("pushgate.toml"),
        format!("state_dir = \"state\"\nlisten = \"127.0.0.1:0\"\n[github]\nwebhook_secret = \"{SECRET}\"\n"),
    )
    .map_err(fail)?;
    let config = Config::load(Some(&dir.join("pushgate.toml")), dir).map_err(fail)?;
    let service = Service::open(config, Arc::new(LogProgress))
        .await
        .map_err(fail)?;
    let wakers = Arc::new(Wakers::default());
    // Nobody waits on it: the gate is not running, only the intake is measured.
    let _gate = wakers.add("bench", "staging");
    let listener = service.bind().await.map_err(fail)?;
    let addr = listener.local_addr().map_err(fail)?;
    let app = pushgate::web::router(service.app_state(wakers));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let exe = std::env::current_exe().map_err(fail)?;
    let out = tokio::process::Command::new(exe)
        .args(["bench", "intake-load", "--addr"])
        .arg(addr.to_string())
        .arg("--deliveries")
        .arg(count.to_string())
        .arg("--connections")
        .arg(connections.to_string())
        .output()
        .await
        .map_err(fail)?;
    if !out.status.success() {
        return Err(fail(format!(
            "the load process failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let load: LoadReport = serde_json::from_slice(&out.stdout).map_err(fail)?;
    // Let the last answered requests' transactions settle (they are committed before the
    // answer; this is only for a request cut off mid-way).
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.abort();
    let (recorded, candidates, tips) = service.store().intake_counts().await.map_err(fail)?;
    let distinct_sent = (0..load.sent)
        .map(delivery_of)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    Ok(IntakeReport {
        deliveries_per_second: load.sent as f64 / load.seconds.max(1e-9),
        distinct_sent,
        deliveries_recorded: recorded,
        candidates,
        // An accepted (202) delivery was recorded with its candidate in one transaction.
        lost: (load.accepted as i64).max(recorded) - candidates,
        doubled: (candidates - tips).max(candidates - recorded),
        load,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenth_is_a_redelivery_of_an_earlier_one() {
        let d: Vec<usize> = (0..20).map(delivery_of).collect();
        assert_eq!(d[9], 4);
        assert_eq!(d[19], 14);
        assert_eq!(
            d.iter().collect::<std::collections::BTreeSet<_>>().len(),
            18
        );
    }

    #[test]
    fn payloads_parse_as_pushes_to_staging() {
        let body = payload(41);
        assert!(body.len() > 4000, "{}", body.len());
        match pushgate::intake::github::parse_event("push", &body).unwrap() {
            pushgate::intake::github::Event::Push(p) => {
                assert_eq!(p.branch(), Some("staging"));
                assert_eq!(p.repository, REPOSITORY);
                assert_eq!(p.kind, pushgate::intake::github::PushKind::BranchUpdated);
            }
            other => panic!("{other:?}"),
        }
    }
}
