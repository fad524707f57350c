//! `pushgate serve`: a real post-receive hook wakes the gate, and the pages tell what happened.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::*;

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_push_to_staging_wakes_the_gate_through_the_post_receive_hook() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let config = sandbox.config(""); // polls once an hour: only the hook can wake it in time
    let addr: SocketAddr = config.listen;

    // The hook line README documents, installed in the upstream repository.
    let hook = up.bare.join("hooks/post-receive");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ncurl -fsS --data-binary @- http://{addr}/hooks/git >/dev/null\n"),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve", "--config"])
            .arg(sandbox.path().join("pushgate.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(addr.port(), "pushgate serve");
    eventually(20, "the first pass to find nothing to do", || {
        let (_, body) = http("GET", addr, "/api/branches", "");
        body.contains("nothing to test").then_some(())
    });

    let shas = up.commits(6, Some(4));
    up.push_staging(); // runs the hook
    let branches = eventually(30, "a decision", || {
        let (status, body) = http("GET", addr, "/api/branches", "");
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (v[0]["state"] == "blocked").then_some(v)
    });
    let branch = &branches[0];
    assert_eq!(branch["policy"], "project");
    assert_eq!(branch["flights"][0]["verdict"], "regression");
    assert_eq!(branch["flights"][0]["culprit"], shas[3].as_str());
    assert_eq!(up.head("master"), shas[2]);

    // The status page says what happened and why.
    let (status, page) = http("GET", addr, "/", "");
    assert_eq!(status, 200);
    assert!(
        page.contains("blocked") && page.contains("the first bad commit is #4 of 6"),
        "{page}"
    );
    let (status, flight) = http("GET", addr, "/flights/1", "");
    assert_eq!(status, 200);
    assert!(flight.contains(&shas[3][..12]));
    // Every step's log is one click away.
    let api: serde_json::Value =
        serde_json::from_str(&http("GET", addr, "/api/flights/1", "").1).unwrap();
    let failing = api["runs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["steps"].as_array().unwrap().clone())
        .find(|s| s["status"] == "fail")
        .expect("a failing step");
    let (status, log) = http("GET", addr, &format!("/logs/{}", failing["id"]), "");
    assert_eq!(status, 200);
    assert!(log.contains("BROKEN is here"), "{log}");
    // The mail went out through the mail loop.
    eventually(20, "the mail loop to deliver", || {
        (sandbox.outbox().len() == 2).then_some(())
    });

    // Bad input to the hook changes nothing.
    let (status, body) = http(
        "POST",
        addr,
        "/hooks/git",
        "this is not a post-receive line\n",
    );
    assert_eq!(status, 400);
    assert!(body.contains("line 1"), "{body}");
    let (status, _) = http("GET", addr, "/flights/999", "");
    assert_eq!(status, 404);
}
