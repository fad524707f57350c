//! `POST /hooks/github` on a real listener: signatures (GitHub's own vector and one-byte
//! changes), redeliveries acted on once, size and format limits, and every recorded payload
//! in `../shared/testdata/github-webhooks/` handled.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pushgate::web::Wakers;
use support::{http_with, open_service, Sandbox, Upstream};
use tokio::sync::Notify;

const SECRET: &str = "It's a Secret to Everybody";

fn sign(body: &[u8]) -> String {
    support::github_signature(SECRET, body)
}

fn payloads() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/testdata/github-webhooks/payload-examples/api.github.com")
}

/// Delivers `body` as `event` with `delivery`, signed unless `signature` says otherwise.
fn deliver(
    addr: SocketAddr,
    event: &str,
    delivery: &str,
    body: &[u8],
    signature: Option<&str>,
) -> (u16, String) {
    let signed = sign(body);
    let mut headers = vec![("X-GitHub-Event", event), ("X-GitHub-Delivery", delivery)];
    match signature {
        None => headers.push(("X-Hub-Signature-256", signed.as_str())),
        Some("") => {}
        Some(other) => headers.push(other.split_once(": ").unwrap()),
    }
    http_with("POST", addr, "/hooks/github", &headers, body)
}

/// A push of `staging` on Codertocat/Hello-World, from a recorded payload.
fn staging_push(forced: bool) -> Vec<u8> {
    let text =
        std::fs::read_to_string(payloads().join("push/with-organization.payload.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["ref"] = "refs/heads/staging".into();
    v["before"] = "6113728f27ae82c7b1a177c8d03f9e96e0adf246".into();
    v["after"] = "1111111111111111111111111111111111111111".into();
    v["created"] = false.into();
    v["deleted"] = false.into();
    v["forced"] = forced.into();
    v["repository"]["full_name"] = "Codertocat/Hello-World".into();
    serde_json::to_vec(&v).unwrap()
}

async fn woken(notify: &Notify) -> bool {
    tokio::time::timeout(Duration::from_millis(300), notify.notified())
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_verified_deduplicated_and_acted_on() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let policy = sandbox.path().join("policies/project.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        format!("github = \"Codertocat/Hello-World\"\n{text}"),
    )
    .unwrap();
    let service =
        open_service(sandbox.config(&format!("[github]\nwebhook_secret = \"{SECRET}\"\n"))).await;
    let wakers = Arc::new(Wakers::default());
    let notify: Arc<Notify> = wakers.add("project", "staging");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = pushgate::web::router(service.app_state(wakers));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let post =
        |event: &'static str, delivery: &'static str, body: Vec<u8>, sig: Option<&'static str>| {
            tokio::task::spawn_blocking(move || deliver(addr, event, delivery, &body, sig))
        };

    let (code, said) = post(
        "ping",
        "d-ping",
        b"{\"zen\":\"Keep it logically awesome.\"}".to_vec(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (code, said.as_str()),
        (200, "pong: Keep it logically awesome.\n")
    );

    // A push to staging queues a candidate and wakes the policy, once.
    let (code, said) = post("push", "d-1", staging_push(false), None)
        .await
        .unwrap();
    assert_eq!(
        (code, said.as_str()),
        (202, "queued 1 candidate for project\n")
    );
    assert!(woken(&notify).await);
    let (code, said) = post("push", "d-1", staging_push(false), None)
        .await
        .unwrap();
    assert_eq!(
        (code, said.as_str()),
        (200, "delivery d-1 was already handled\n")
    );
    assert!(!woken(&notify).await, "a redelivery is not acted on again");

    // A forged body is refused and not recorded: the genuine delivery still counts.
    let mut forged = staging_push(true);
    let at = forged.len() / 2;
    forged[at] ^= 1;
    let good = sign(&staging_push(true));
    let header: &'static str = Box::leak(format!("X-Hub-Signature-256: {good}").into_boxed_str());
    let (code, said) = post("push", "d-2", forged, Some(header)).await.unwrap();
    assert_eq!(code, 401, "{said}");
    assert!(said.contains("does not match"), "{said}");
    assert!(!woken(&notify).await);
    let (code, said) = post("push", "d-2", staging_push(true), None).await.unwrap();
    // The same tip again: the policy looks, but the candidate is not doubled.
    assert_eq!(
        (code, said.as_str()),
        (202, "queued 0 candidates for project (forced push)\n")
    );
    assert!(woken(&notify).await);
    let store = service.store();
    let branch = store
        .upsert_branch(&service.rules.get().policies[0])
        .await
        .unwrap();
    let queued = store.candidates(branch, Some("queued")).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].3, "github:d-1");

    // Unsigned, SHA-1 only, malformed, too big.
    let (code, said) = post("push", "d-3", staging_push(false), Some(""))
        .await
        .unwrap();
    assert_eq!(code, 401, "{said}");
    let (code, said) = post(
        "push",
        "d-3",
        staging_push(false),
        Some("X-Hub-Signature: sha1=0123"),
    )
    .await
    .unwrap();
    assert_eq!(code, 401);
    assert!(said.contains("X-Hub-Signature-256"), "{said}");
    let (code, said) = post("push", "d-3", b"{\"ref\": [".to_vec(), None)
        .await
        .unwrap();
    assert_eq!(code, 400);
    assert!(said.starts_with("push payload:"), "{said}");
    let (code, _) = post("push", "d-4", vec![b' '; 6 << 20], None)
        .await
        .unwrap();
    assert_eq!(code, 413);
    assert!(!woken(&notify).await);

    // Every recorded payload: handled, never an error; tags and new or deleted branches ignored.
    let mut n = 0;
    for dir in std::fs::read_dir(payloads()).unwrap().flatten() {
        let event: &'static str = Box::leak(
            dir.file_name()
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
            n += 1;
            let delivery: &'static str = Box::leak(format!("recorded-{n}").into_boxed_str());
            let body = std::fs::read(file.path()).unwrap();
            let (code, said) = post(event, delivery, body, None).await.unwrap();
            assert_eq!(code, 200, "{}: {said}", file.path().display());
            if event == "push" {
                assert!(
                    said.starts_with("ignored: refs/tags/")
                        || said.starts_with("ignored: refs/heads/")
                        || said.starts_with("no policy watches"),
                    "{said}"
                );
            }
        }
    }
    assert!(n >= 70);
    assert!(
        !woken(&notify).await,
        "none of them is a push to our staging"
    );
}
