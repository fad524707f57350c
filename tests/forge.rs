//! GitHub as the forge: statuses and check runs through a local REST double (with a 502 and a
//! rate limit on the way), pushes over HTTP with a token to `git http-backend` behind lighttpd
//! and over SSH with a deploy key to a real sshd, the reconciliation pass, and maintainers'
//! overrides from comments and the API.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pushgate::gate::BranchOutcome;
use pushgate::repo::{Credentials, Mirror, RepoError};
use pushgate::service::Service;
use pushgate::store::ReportKind;
use pushgate::web::Wakers;
use support::github_double::{Call, GitHubDouble};
use support::{git, http_with, open_service, GitHttp, Sandbox, Upstream};

const TOKEN: &str = "test-token-0123456789";
const SECRET: &str = "webhook-secret";

/// A policy on `repository` that GitHub knows as o/r; its test waits for `release` to exist.
fn policy(sandbox: &Sandbox, repository: &str, release: &Path, extra: &str) {
    sandbox.sequence(
        "test",
        &format!(
            r#"
[[step]]
name = "test"
command = "while [ ! -e {release} ]; do sleep 0.05; done; if [ -e BROKEN ]; then exit 1; fi"
timeout = "1m"
"#,
            release = release.display()
        ),
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{repository}\"\ngithub = \"o/r\"\nsequences = [\"test\"]\nretries = 1\n\
             maintainers = [\"mia\"]\n{extra}[mail]\nlist = \"devel@lists.example.org\"\n"
        ),
    );
}

/// A policy on `up` whose test runs at once.
fn ready_policy(root: &Path, up: &Upstream, extra: &str) -> Sandbox {
    let release = root.join("release");
    std::fs::write(&release, "").unwrap();
    let sandbox = Sandbox::new();
    policy(&sandbox, up.bare.to_str().unwrap(), &release, extra);
    sandbox
}

fn github_config(double: &GitHubDouble, token: &str) -> String {
    format!(
        "[github]\nwebhook_secret = \"{SECRET}\"\ntoken = \"{token}\"\napi_url = \"{}\"\n",
        double.url()
    )
}

/// The same on `db` (a PostgreSQL URL) when given; keys before any table.
fn on(db: Option<&str>, config: String) -> String {
    match db {
        Some(url) => format!("database_url = \"{url}\"\n{config}"),
        None => config,
    }
}

async fn open(sandbox: &Sandbox, config: &str) -> Arc<Service> {
    let mut service = open_service(sandbox.config(config)).await;
    service.report_retry_base = Duration::ZERO;
    Arc::new(service)
}

/// Delivers reports until nothing more is due (at most `passes` passes).
async fn drain(service: &Service, passes: usize) {
    for _ in 0..passes {
        let done = service.deliver_reports().await.unwrap();
        if done.posted + done.failed + done.superseded + done.refused == 0 {
            return;
        }
    }
}

fn of_kind<'a>(calls: &'a [Call], part: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.path.contains(part)).collect()
}

fn state_of(c: &Call) -> String {
    let b = &c.body;
    b["state"]
        .as_str()
        .or(b["conclusion"].as_str())
        .or(b["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Starts the gate on a flight of three commits (the second breaks the test) and waits until
/// its pending reports are queued; returns the service, the commits and the gate's task.
async fn flight_waiting(
    extra: &str,
    double: &GitHubDouble,
    db: Option<&str>,
) -> (
    Arc<Service>,
    Vec<String>,
    tokio::task::JoinHandle<Vec<(String, BranchOutcome)>>,
    std::path::PathBuf,
    tempfile::TempDir,
    Sandbox,
) {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let commits = up.commits(3, Some(2));
    up.push_staging();
    let sandbox = Sandbox::new();
    let release = root.path().join("release");
    policy(&sandbox, up.bare.to_str().unwrap(), &release, extra);
    let service = open(&sandbox, &on(db, github_config(double, TOKEN))).await;
    let s = service.clone();
    let gate = tokio::spawn(async move { s.gate_once().await.unwrap() });
    for _ in 0..200 {
        if service.store().reports(100).await.unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(service.store().reports(100).await.unwrap().len(), 3);
    (service, commits, gate, release, root, sandbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_a_flight_through_a_502_and_a_rate_limit() {
    statuses_follow_a_flight(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_follow_a_flight_on_postgres() {
    let pg = support::Postgres::new();
    statuses_follow_a_flight(Some(&pg.url)).await;
}

async fn statuses_follow_a_flight(db: Option<&str>) {
    let double = GitHubDouble::start().await;
    double.fail_next("POST", "/repos/o/r/statuses/", 502, &[]);
    double.fail_next(
        "POST",
        "/repos/o/r/statuses/",
        403,
        &[("x-ratelimit-remaining", "0"), ("retry-after", "1")],
    );
    let (service, commits, gate, release, _root, _sandbox) = flight_waiting("", &double, db).await;

    // Pass 1: the first pending status meets a 502, the second the rate limit, which ends the
    // pass (GitHub says to wait a second).
    let done = service.deliver_reports().await.unwrap();
    assert_eq!((done.posted, done.failed), (0, 2));
    // Pass 2: the first is retried at once (base 0) and goes, and so does the third.
    let done = service.deliver_reports().await.unwrap();
    assert_eq!((done.posted, done.failed), (2, 0));
    let done = service.deliver_reports().await.unwrap();
    assert_eq!((done.posted, done.failed), (0, 0), "GitHub said to wait");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let done = service.deliver_reports().await.unwrap();
    assert_eq!((done.posted, done.failed), (1, 0));

    std::fs::write(&release, "").unwrap();
    let outcome = gate.await.unwrap();
    let BranchOutcome::Decided {
        flight, culprit, ..
    } = &outcome[0].1
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(culprit.as_deref(), Some(commits[1].as_str()));
    drain(&service, 5).await;
    // The culprit's status links the flight page's finder log, which is there.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = pushgate::web::router(service.app_state(Default::default()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let path = format!("/flights/{flight}");
    let (code, page) = tokio::task::spawn_blocking(move || support::http("GET", addr, &path, ""))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("id=\"finder\""), "{page}");
    assert!(page.contains("top suspect"), "{page}");

    let calls = double.calls();
    let statuses = of_kind(&calls, "/statuses/");
    let seen: Vec<(String, String, u16)> = statuses
        .iter()
        .map(|c| {
            let sha = c.path.rsplit('/').next().unwrap();
            let index = commits.iter().position(|s| s == sha).unwrap() + 1;
            (format!("commit {index}"), state_of(c), c.status)
        })
        .collect();
    let want: Vec<(String, String, u16)> = [
        (1, "pending", 502),
        (2, "pending", 403),
        (1, "pending", 201),
        (3, "pending", 201),
        (2, "pending", 201),
        (1, "success", 201),
        (2, "failure", 201),
        (3, "failure", 201),
    ]
    .iter()
    .map(|(i, s, c)| (format!("commit {i}"), s.to_string(), *c))
    .collect();
    assert_eq!(seen, want);
    for c in &statuses {
        assert_eq!(c.authorization, format!("Bearer {TOKEN}"));
        assert_eq!(c.body["context"], "pushgate/project");
        assert_eq!(
            c.body["target_url"].as_str().unwrap(),
            format!("{}/flights/{flight}", service.config.public_url)
        );
    }
    assert_eq!(
        statuses[5].body["description"],
        "regression: pushed to master"
    );
    assert_eq!(
        statuses[6].body["description"],
        "regression: first bad commit"
    );
    assert!(statuses[7].body["description"]
        .as_str()
        .unwrap()
        .starts_with("regression: follows the first bad commit"));
    let rows = service.store().reports(100).await.unwrap();
    let errors: Vec<(i64, &str)> = rows
        .iter()
        .filter_map(|r| Some((r.attempts, r.last_error.as_deref()?)))
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].0 == 2 && errors[0].1.contains("502"),
        "{errors:?}"
    );
    assert!(
        errors[1].0 == 2 && errors[1].1.contains("403"),
        "{errors:?}"
    );
    assert!(rows.iter().all(|r| r.outcome.as_deref() == Some("posted")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_are_made_pending_and_completed_in_place() {
    let double = GitHubDouble::start().await;
    let (service, commits, gate, release, _root, _sandbox) =
        flight_waiting("github_report = \"check\"\n", &double, None).await;
    drain(&service, 3).await;
    std::fs::write(&release, "").unwrap();
    gate.await.unwrap();
    drain(&service, 3).await;
    let calls = double.calls();
    let made: Vec<&Call> = of_kind(&calls, "/check-runs");
    assert_eq!(made.len(), 6, "{made:#?}");
    let mut ids = std::collections::BTreeMap::new();
    for c in &made[..3] {
        assert_eq!(
            (c.method.as_str(), c.path.as_str()),
            ("POST", "/repos/o/r/check-runs")
        );
        assert_eq!(c.body["status"], "queued");
        assert_eq!(c.body["name"], "pushgate/project");
        ids.insert(
            c.body["head_sha"].as_str().unwrap().to_string(),
            ids.len() + 1001,
        );
    }
    for (c, (index, conclusion)) in
        made[3..]
            .iter()
            .zip([(0, "success"), (1, "failure"), (2, "failure")])
    {
        let sha = &commits[index];
        assert_eq!(c.method, "PATCH");
        assert_eq!(c.path, format!("/repos/o/r/check-runs/{}", ids[sha]));
        assert_eq!(c.body["conclusion"], conclusion);
        assert_eq!(c.body["status"], "completed");
    }
    let culprit = &made[4].body;
    assert_eq!(culprit["output"]["title"], "regression: first bad commit");
    assert!(culprit["output"]["summary"]
        .as_str()
        .unwrap()
        .contains("bisection log"));
    assert!(service
        .store()
        .reports(100)
        .await
        .unwrap()
        .iter()
        .all(|r| r.kind == ReportKind::Check));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_http_with_a_token_and_never_by_force() {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let server = GitHttp::start(root.path(), "x-access-token", TOKEN);
    let url = server.url("upstream.git");
    let commits = up.commits(2, None);
    up.push_staging();
    let release = root.path().join("release");
    std::fs::write(&release, "").unwrap();

    // A wrong token: the gate says so and pushes nothing.
    let sandbox = Sandbox::new();
    policy(&sandbox, &url, &release, "");
    let service = open(&sandbox, &github_config(&double, "not-the-right-token")).await;
    let outcome = service.gate_once().await.unwrap();
    let BranchOutcome::Error { message } = &outcome[0].1 else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("cannot reach"), "{message}");
    assert_ne!(up.head("master"), commits[1]);

    let sandbox = Sandbox::new();
    policy(&sandbox, &url, &release, "");
    let service = open(&sandbox, &github_config(&double, TOKEN)).await;
    let outcome = service.gate_once().await.unwrap();
    assert!(
        matches!(&outcome[0].1, BranchOutcome::Decided { pushed_to: Some(p), .. } if *p == commits[1]),
        "{outcome:?}"
    );
    assert_eq!(up.head("master"), commits[1]);

    // A protection rule (here a pre-receive hook): the decision stands, unpushed, once.
    let hook = up.bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/master ] && \
         { echo 'master is protected' >&2; exit 1; }\ndone\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let more = up.commits(1, None);
    up.push_staging();
    let outcome = service.gate_once().await.unwrap();
    let BranchOutcome::Decided {
        pushed_to, reason, ..
    } = &outcome[0].1
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(pushed_to, &None);
    assert!(reason.contains("refused the push"), "{reason}");
    assert!(reason.contains("never forces"), "{reason}");
    assert_eq!(up.head("master"), commits[1]);
    let branch = service
        .store()
        .upsert_branch(&service.rules.get().policies[0])
        .await
        .unwrap();
    let flights = service.store().recent_flights(branch, 10).await.unwrap();
    assert_eq!(flights.len(), 2, "no re-planning after a refusal");
    let b = service.store().branch(branch).await.unwrap().unwrap();
    assert_eq!(b.state, "error");
    assert_ne!(more[0], commits[1]);
    std::fs::remove_file(&hook).unwrap();

    // Straight through the mirror: a push from a stale expectation, and one that is not a
    // fast-forward, are both refused and change nothing.
    let mirrors = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(mirrors.path(), "m", &url)
        .unwrap()
        .with_credentials(Credentials::Token {
            user: "x-access-token".into(),
            token: TOKEN.into(),
        });
    let heads = mirror.fetch(&["master"]).unwrap();
    let master = heads["master"];
    let older = git2::Oid::from_str(&commits[0]).unwrap();
    let err = mirror.push(older, "master", older).unwrap_err();
    assert!(
        matches!(&err, RepoError::Rejected { message, .. } if message.contains("is at")),
        "{err}"
    );
    let err = mirror.push(older, "master", master).unwrap_err();
    assert!(matches!(err, RepoError::Rejected { .. }), "{err}");
    assert_eq!(up.head("master"), commits[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_ssh_with_a_deploy_key_to_a_pinned_host() {
    let sshd = support::sshd::Sshd::start();
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let commits = up.commits(1, None);
    up.push_staging();
    let target = sshd.target();
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        target.user,
        target.port,
        up.bare.display()
    );
    let mirrors = tempfile::tempdir().unwrap();
    let open = |known_hosts: &Path| {
        Mirror::open(mirrors.path(), "m", &url)
            .unwrap()
            .with_credentials(Credentials::SshKey {
                private_key: target.key.clone(),
                known_hosts: Some(known_hosts.to_path_buf()),
            })
    };
    let changed = sshd.changed_known_hosts().unwrap();
    let err = open(&changed).fetch(&["master"]).unwrap_err();
    assert!(err.to_string().contains("hostkey"), "{err}");

    let mirror = open(&target.known_hosts);
    let heads = mirror.fetch(&["master", "staging"]).unwrap();
    mirror
        .push(heads["staging"], "master", heads["master"])
        .unwrap();
    assert_eq!(up.head("master"), commits[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_queues_what_a_lost_delivery_would_have() {
    reconciliation(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_on_postgres() {
    let pg = support::Postgres::new();
    reconciliation(Some(&pg.url)).await;
}

async fn reconciliation(db: Option<&str>) {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = ready_policy(root.path(), &up, "");
    let service = open(&sandbox, &on(db, github_config(&double, TOKEN))).await;
    service.gate_once().await.unwrap();

    let commits = up.commits(2, None);
    up.push_staging();
    double.set_head("o/r", "staging", &commits[1]);
    assert_eq!(service.reconcile().await.unwrap(), ["project"]);
    assert!(service.reconcile().await.unwrap().is_empty(), "queued once");
    let branch = service
        .store()
        .upsert_branch(&service.rules.get().policies[0])
        .await
        .unwrap();
    let queued = service
        .store()
        .candidates(branch, Some("queued"))
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].1.as_str(), queued[0].3.as_str()),
        (commits[1].as_str(), "reconcile")
    );

    service.gate_once().await.unwrap();
    let all = service.store().candidates(branch, None).await.unwrap();
    let tested = all.iter().find(|c| c.1 == commits[1]).unwrap();
    assert_eq!(
        (tested.2.as_str(), tested.3.as_str()),
        ("decided", "reconcile")
    );
    assert_eq!(all.iter().filter(|c| c.1 == commits[1]).count(), 1);
    assert!(service.reconcile().await.unwrap().is_empty());
    let gets = double
        .calls()
        .iter()
        .filter(|c| c.path == "/repos/o/r/branches/staging")
        .count();
    assert_eq!(gets, 3);
}

fn sign(body: &[u8]) -> String {
    support::github_signature(SECRET, body)
}

fn comment(user: &str, body: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../shared/testdata/github-webhooks/payload-examples/api.github.com/issue_comment/created.payload.json",
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["repository"]["full_name"] = "o/r".into();
    v["comment"]["user"]["login"] = user.into();
    v["comment"]["body"] = body.into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintainers_block_unblock_and_force_from_comments_and_the_api() {
    maintainers_override(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintainers_override_on_postgres() {
    let pg = support::Postgres::new();
    maintainers_override(Some(&pg.url)).await;
}

async fn maintainers_override(db: Option<&str>) {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = ready_policy(root.path(), &up, "");
    let config = on(
        db,
        format!(
            "{}[api]\ntoken = \"api-token-0123456789\"\n",
            github_config(&double, TOKEN)
        ),
    );
    let service = open(&sandbox, &config).await;
    let wakers = Arc::new(Wakers::default());
    wakers.add("project", "staging");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = pushgate::web::router(service.app_state(wakers));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let say = |delivery: &'static str, user: &'static str, text: &'static str| {
        tokio::task::spawn_blocking(move || {
            let body = comment(user, text);
            let sig = sign(&body);
            http_with(
                "POST",
                addr,
                "/hooks/github",
                &[
                    ("X-GitHub-Event", "issue_comment"),
                    ("X-GitHub-Delivery", delivery),
                    ("X-Hub-Signature-256", &sig),
                ],
                &body,
            )
        })
    };
    let store = service.store().clone();
    let branch = store
        .upsert_branch(&service.rules.get().policies[0])
        .await
        .unwrap();
    let hold = || async { store.branch(branch).await.unwrap().unwrap().hold };

    // Someone not listed: a polite refusal in the thread, and nothing changes.
    let (code, said) = say("c-1", "stranger", "@pushgate block no reason")
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(said.starts_with("Sorry @stranger"), "{said}");
    assert_eq!(hold().await, None);
    // A maintainer (logins are case-insensitive) holds the branch; the redelivery does nothing.
    let (_, said) = say(
        "c-2",
        "Mia",
        "Freezing.\n@pushgate block release 4.19 is being cut",
    )
    .await
    .unwrap();
    assert!(said.contains("blocked by Mia"), "{said}");
    assert_eq!(hold().await.as_deref(), Some("release 4.19 is being cut"));
    let (_, said) = say("c-2", "Mia", "@pushgate block again").await.unwrap();
    assert!(said.contains("already handled"), "{said}");
    let (_, said) = say("c-3", "mia", "@pushgate merge it").await.unwrap();
    assert!(said.contains("not a pushgate command"), "{said}");

    let broken = up.commits(2, Some(1));
    up.push_staging();
    let outcome = service.gate_once().await.unwrap();
    assert!(
        matches!(&outcome[0].1, BranchOutcome::Idle { message } if message.contains("held by a maintainer")),
        "{outcome:?}"
    );
    drain(&service, 3).await;
    let comments: Vec<(String, String)> = double
        .calls()
        .iter()
        .filter(|c| c.path.ends_with("/comments"))
        .map(|c| (c.path.clone(), c.body["body"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(comments
        .iter()
        .all(|(p, _)| p == "/repos/o/r/issues/1/comments"));
    assert!(comments[0].1.contains("only the maintainers"));

    // The API: the token is needed; unblock, then force the failing tip through.
    let api = |path: &'static str, body: &'static str, token: &'static str| {
        tokio::task::spawn_blocking(move || {
            let auth = format!("Bearer {token}");
            http_with(
                "POST",
                addr,
                path,
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                body.as_bytes(),
            )
        })
    };
    let (code, _) = api(
        "/api/branches/project/unblock",
        r#"{"who":"mia"}"#,
        "wrong-token-0123456789",
    )
    .await
    .unwrap();
    assert_eq!(code, 401);
    assert_eq!(hold().await.as_deref(), Some("release 4.19 is being cut"));
    let (code, said) = api(
        "/api/branches/staging/unblock",
        r#"{"who":"mia"}"#,
        "api-token-0123456789",
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{said}");
    assert_eq!(hold().await, None);
    let (code, said) = api(
        "/api/branches/project/force",
        r#"{"who":"mia"}"#,
        "api-token-0123456789",
    )
    .await
    .unwrap();
    assert_eq!(code, 400, "a force needs a reason: {said}");
    let (code, said) = api(
        "/api/branches/project/force",
        r#"{"who":"mia","why":"the test is wrong, not the code"}"#,
        "api-token-0123456789",
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{said}");
    service.gate_once().await.unwrap();
    assert_eq!(up.head("master"), broken[1], "forced without passing");
    let overrides = store.overrides(branch, 10).await.unwrap();
    assert!(overrides[0]
        .outcome
        .as_deref()
        .unwrap()
        .starts_with("pushed"));
    service.deliver_mail().await.unwrap();
    let mail = sandbox
        .outbox()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|m| m.contains("forced master"));
    let mail = mail.expect("the list is told of the force");
    assert!(mail.contains("the test is wrong, not the code"), "{mail}");
    // A second force finds nothing to do and says so.
    api(
        "/api/branches/project/force",
        r#"{"who":"mia","why":"again"}"#,
        "api-token-0123456789",
    )
    .await
    .unwrap();
    service.gate_once().await.unwrap();
    let overrides = store.overrides(branch, 10).await.unwrap();
    assert!(overrides[0]
        .outcome
        .as_deref()
        .unwrap()
        .starts_with("nothing to push"));
    let _ = git(&up.bare, &["rev-parse", "HEAD"]);
}

fn pull_request(number: u64, head: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../shared/testdata/github-webhooks/payload-examples/api.github.com/pull_request/opened.payload.json",
    );
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["repository"]["full_name"] = "o/r".into();
    v["number"] = number.into();
    v["pull_request"]["head"]["sha"] = head.into();
    v["pull_request"]["base"]["ref"] = "master".into();
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_runs_test_the_merge_report_on_the_head_and_never_push() {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    // PR 7 breaks the test; PR 8 changes README as master does next: it cannot merge.
    let pr7 = up.commits(1, Some(1))[0].clone();
    git(&up.work, &["push", "-q", "origin", "HEAD:refs/pull/7/head"]);
    git(&up.work, &["reset", "-q", "--hard", &base]);
    up.write("README", "hello from pull request 8\n");
    let pr8 = up.commit("Reword README", ("Bob Example", "bob@example.org"));
    git(&up.work, &["push", "-q", "origin", "HEAD:refs/pull/8/head"]);
    git(&up.work, &["reset", "-q", "--hard", &base]);
    up.write("README", "hello from master\n");
    let master = up.commit(
        "Reword README on master",
        ("Mia Maintainer", "mia@example.org"),
    );
    up.push_master_and_staging();

    let sandbox = ready_policy(root.path(), &up, "try_runs = true\n");
    let service = open(&sandbox, &github_config(&double, TOKEN)).await;
    let listener = service.bind().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(service.clone().serve(listener, async {
        let _ = stopped.await;
    }));
    let deliver = |delivery: &'static str, body: Vec<u8>| {
        tokio::task::spawn_blocking(move || {
            let sig = sign(&body);
            http_with(
                "POST",
                addr,
                "/hooks/github",
                &[
                    ("X-GitHub-Event", "pull_request"),
                    ("X-GitHub-Delivery", delivery),
                    ("X-Hub-Signature-256", &sig),
                ],
                &body,
            )
        })
    };
    let (code, said) = deliver("pr-7", pull_request(7, &pr7)).await.unwrap();
    assert_eq!(
        (code, said.as_str()),
        (202, "try runs of pull request #7 queued: job 1 (project)\n")
    );
    let (code, said) = deliver("pr-8", pull_request(8, &pr8)).await.unwrap();
    assert_eq!(code, 202, "{said}");
    // The same head again (a redelivery, or another event for it): the same job, no second.
    let (_, said) = deliver("pr-7-again", pull_request(7, &pr7)).await.unwrap();
    assert!(said.ends_with("queued: job 1 (project)\n"), "{said}");
    let (_, said) = deliver("pr-7", pull_request(7, &pr7)).await.unwrap();
    assert!(said.contains("already handled"), "{said}");
    assert!(service.store().job(3).await.unwrap().is_none());

    let store = service.store().clone();
    let mut done = Vec::new();
    for _ in 0..400 {
        done.clear();
        for id in [1, 2] {
            let job = store.job(id).await.unwrap().unwrap();
            if job.finished_at.is_some() {
                done.push(job);
            }
        }
        if done.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done.len(), 2, "both try runs finish");
    let (seven, eight) = (&done[0], &done[1]);
    assert_eq!(seven.state.as_str(), "fail", "{}", seven.message);
    let merged = seven.sha.clone().unwrap();
    let mirror = sandbox.path().join("state/repos/project.git");
    assert_eq!(git(&mirror, &["rev-parse", &format!("{merged}^1")]), master);
    assert_eq!(git(&mirror, &["rev-parse", &format!("{merged}^2")]), pr7);
    assert_eq!(eight.state.as_str(), "broken");
    assert!(
        eight
            .message
            .contains("does not merge onto master: conflicts in README"),
        "{}",
        eight.message
    );

    drain(&service, 3).await;
    let statuses: Vec<(String, String, String)> = double
        .calls()
        .iter()
        .filter(|c| c.path.contains("/statuses/"))
        .map(|c| {
            (
                c.path.rsplit('/').next().unwrap().to_string(),
                c.body["context"].as_str().unwrap().to_string(),
                c.body["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let on = |sha: &str| -> Vec<&str> {
        statuses
            .iter()
            .filter(|s| s.0 == sha && s.1 == "pushgate/try/test")
            .map(|s| s.2.as_str())
            .collect()
    };
    // The pending status may be superseded before it is posted: the final one always goes.
    assert_eq!(on(&pr7).last(), Some(&"failure"), "{statuses:?}");
    assert_eq!(on(&pr8).last(), Some(&"error"), "{statuses:?}");
    assert_eq!(up.head("master"), master, "a try run never pushes");
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_github_app_logs_in_with_installation_tokens() {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let commits = up.commits(1, None);
    up.push_staging();
    let sandbox = ready_policy(root.path(), &up, "github_report = \"check\"\n");
    // GitHub hands out an App's private key in PKCS#1 PEM.
    let key = sandbox.path().join("app.pem");
    let made = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = format!(
        "[github]\napp_id = 42\ninstallation_id = 7\nprivate_key_file = \"app.pem\"\napi_url = \"{}\"\n",
        double.url()
    );
    let service = open(&sandbox, &config).await;
    service.gate_once().await.unwrap();
    drain(&service, 3).await;
    let calls = double.calls();
    let token = &calls[0];
    assert_eq!(
        (token.method.as_str(), token.path.as_str()),
        ("POST", "/app/installations/7/access_tokens")
    );
    // The App signs in with a JWT (header.claims.signature), then uses the installation token.
    let jwt = token.authorization.strip_prefix("Bearer ").unwrap();
    assert_eq!(jwt.split('.').count(), 3, "{jwt}");
    let checks = of_kind(&calls, "/check-runs");
    assert_eq!(checks.len(), 1, "{calls:#?}");
    assert_eq!(checks[0].authorization, "Bearer ghs_installation_7");
    assert_eq!(checks[0].body["head_sha"], commits[0].as_str());
    assert_eq!(checks[0].body["conclusion"], "success");
    // git over https logs in with the same token, as `x-access-token`.
    let forge = service.forge.as_ref().unwrap();
    match forge
        .git_credentials("https://github.com/o/r.git")
        .await
        .unwrap()
    {
        Credentials::Token { user, token } => {
            assert_eq!(
                (user.as_str(), token.as_str()),
                ("x-access-token", "ghs_installation_7")
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        forge
            .git_credentials(up.bare.to_str().unwrap())
            .await
            .unwrap(),
        Credentials::Anonymous
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_https_trusting_only_the_configured_authority() {
    let double = GitHubDouble::start().await;
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let server = GitHttp::start_tls(root.path(), "x-access-token", TOKEN);
    let url = server.url("upstream.git");
    assert!(url.starts_with("https://"));
    let commits = up.commits(1, None);
    up.push_staging();

    // A certificate nobody vouches for: refused before the token is sent.
    let sandbox = ready_policy(root.path(), &up, "");
    sandbox.policy(
        "project",
        &std::fs::read_to_string(sandbox.path().join("policies/project.toml"))
            .unwrap()
            .replace(&format!("\"{}\"", up.bare.display()), &format!("\"{url}\"")),
    );
    let service = open(&sandbox, &github_config(&double, TOKEN)).await;
    let outcome = service.gate_once().await.unwrap();
    let BranchOutcome::Error { message } = &outcome[0].1 else {
        panic!("{outcome:?}")
    };
    assert!(message.contains("certificate"), "{message}");

    // `[github] ca_file` trusts it: the flight passes and the push goes over TLS with the token.
    let ca = server.certificate.clone().unwrap();
    let config = format!(
        "{}ca_file = \"{}\"\n",
        github_config(&double, TOKEN),
        ca.display()
    );
    let service = open(&sandbox, &config).await;
    let outcome = service.gate_once().await.unwrap();
    assert!(
        matches!(&outcome[0].1, BranchOutcome::Decided { pushed_to: Some(p), .. } if *p == commits[0]),
        "{outcome:?}"
    );
    assert_eq!(up.head("master"), commits[0]);
}
