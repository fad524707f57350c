//! `pushgate serve`: a real post-receive hook wakes the gate, and the pages tell what happened.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use support::*;

struct Serve(std::process::Child);

impl Serve {
    /// `pushgate serve` on the sandbox's config, once it listens on `addr`.
    fn start(sandbox: &Sandbox, addr: SocketAddr) -> Serve {
        let serve = Serve(
            Command::new(env!("CARGO_BIN_EXE_pushgate"))
                .args(["serve", "--config"])
                .arg(sandbox.path().join("pushgate.toml"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_for_port(addr.port(), "pushgate serve");
        serve
    }
}

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

    let _serve = Serve::start(&sandbox, addr);
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

/// How long until the server closes `stream`, while `send` is written to it a byte at a time,
/// one every `every` (all of it at once when `every` is zero); `None` after `give_up`.
fn closed_after(
    mut stream: std::net::TcpStream,
    send: &[u8],
    every: std::time::Duration,
    give_up: std::time::Duration,
) -> Option<std::time::Duration> {
    use std::io::{Read, Write};
    let start = std::time::Instant::now();
    if every.is_zero() {
        let _ = stream.write_all(send);
    }
    let mut bytes = send.iter().cycle();
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut last_write = start;
    while start.elapsed() < give_up {
        if !every.is_zero() && last_write.elapsed() >= every {
            last_write = std::time::Instant::now();
            let _ = stream.write_all(&[*bytes.next().unwrap()]);
        }
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {} // an answer (an error status) before the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

#[test]
fn slow_and_silent_clients_are_dropped_while_others_are_served() {
    use std::net::TcpStream;
    use std::time::{Duration, Instant};
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let config = sandbox.config(
        "[http]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"2s\"\nmax_connections = 24\n",
    );
    let addr: SocketAddr = config.listen;
    let _serve = Serve::start(&sandbox, addr);
    // The bound past which a connection is taken to be held for ever; not a measure of speed.
    let never = Duration::from_secs(30);
    let second = Duration::from_millis(950);

    // Twenty clients dribbling their headers, a byte every 200 ms, each dropped once its
    // headers are a second late; the page is served to others meanwhile.
    let header =
        b"GET / HTTP/1.1\r\nHost: gate\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let dribblers: Vec<_> = (0..20)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            std::thread::spawn(move || closed_after(s, header, Duration::from_millis(200), never))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = http("GET", addr, "/api/branches", "");
    assert_eq!(status, 200, "served while twenty clients dribble");
    for d in dribblers {
        let after = d.join().unwrap().expect("a dribbling client is dropped");
        assert!(
            after >= second,
            "dropped before its header timeout: {after:?}"
        );
    }

    // A client that sends nothing, and one that stays after its answer: dropped after the
    // header and the idle timeout.
    let silent = TcpStream::connect(addr).unwrap();
    let after =
        closed_after(silent, b"", Duration::ZERO, never).expect("a silent client is dropped");
    assert!(after >= second, "{after:?}");
    let kept = TcpStream::connect(addr).unwrap();
    let after = closed_after(
        kept,
        b"GET /api/branches HTTP/1.1\r\nHost: gate\r\n\r\n",
        Duration::ZERO,
        never,
    )
    .expect("an idle kept-alive connection is closed");
    assert!(
        after >= 2 * second,
        "closed before its idle timeout: {after:?}"
    );

    // A body announced and not sent: dropped after the body timeout; one of 100 GB is refused
    // at once.
    for length in ["1000", "100000000000"] {
        let s = TcpStream::connect(addr).unwrap();
        let head = format!(
            "POST /hooks/git HTTP/1.1\r\nHost: gate\r\nContent-Length: {length}\r\n\r\nabc"
        );
        let after = closed_after(s, head.as_bytes(), Duration::ZERO, never)
            .unwrap_or_else(|| panic!("a body of {length} bytes never sent holds its connection"));
        if length == "1000" {
            assert!(after >= second, "{after:?}");
        }
    }

    // 24 connections at once: a 25th waits in the queue until the silent ones are dropped,
    // then is served.
    let start = Instant::now();
    let silent: Vec<TcpStream> = (0..24).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (status, _) = http("GET", addr, "/api/branches", "");
    assert_eq!(status, 200);
    assert!(
        start.elapsed() >= second,
        "served beyond the cap: {:?}",
        start.elapsed()
    );
    drop(silent);
}
