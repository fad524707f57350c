//! Killing pushgate with SIGKILL in the middle of a bisection loses nothing and repeats nothing.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pushgate::decision::Role;
use pushgate::store::{RunState, Store};
use support::*;

/// Starts `pushgate gate --once`, its log appended beside the config for a failing test.
fn gate_once(config: &std::path::Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(config.with_file_name("gate.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["gate", "--once", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn log_of(config: &std::path::Path) -> String {
    std::fs::read_to_string(config.with_file_name("gate.log")).unwrap_or_default()
}

#[tokio::test]
async fn a_kill_mid_bisection_then_a_restart_finishes_with_one_push_and_one_of_each_mail() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(16, Some(11));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.gate_with(
        &up,
        "slow",
        "[[step]]\nname = \"test\"\ncommand = \"sleep 0.3; test ! -e BROKEN\"\n",
        0,
    );
    let config = sandbox.config("");
    let config_path = sandbox.path().join("pushgate.toml");

    let mut first = gate_once(&config_path);
    // Open the store only once the gate is past its start-up (it has made its mirror), so the
    // two processes do not both create the schema of a new SQLite file.
    let mirrors = sandbox.path().join("state/repos");
    eventually(30, "the gate to start", || mirrors.exists().then_some(()));
    let store = Store::open(&config.database_url).await.unwrap();
    // Wait until a bisection run has finished and the next one is running, then kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let branches = store.branches().await.unwrap_or_default();
        let runs = match branches.first() {
            Some(b) => match store.active_flight(b.id).await.unwrap() {
                Some(f) => store.runs(f.id).await.unwrap(),
                None => vec![],
            },
            None => vec![],
        };
        let bisect = |state| {
            runs.iter()
                .any(|r| r.role == Role::Bisect && r.state == state)
        };
        if bisect(RunState::Pass) && bisect(RunState::Running) {
            break;
        }
        assert!(Instant::now() < deadline, "no bisection seen");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the gate ended before the kill"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    assert_eq!(up.history("master").len(), 1, "master has not moved yet");

    let second = gate_once(&config_path).wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "restart failed:\n{}",
        log_of(&config_path)
    );

    assert_eq!(
        up.head("master"),
        shas[9],
        "the ten commits before the culprit"
    );
    let branch = &store.branches().await.unwrap()[0];
    assert_eq!(store.pushes(branch.id).await.unwrap().len(), 1, "one push");
    let flights = store.recent_flights(branch.id, 10).await.unwrap();
    assert_eq!(flights.len(), 1, "the same flight carried on");
    assert_eq!(flights[0].culprit.as_deref(), Some(shas[10].as_str()));
    let runs = store.runs(flights[0].id).await.unwrap();
    let aborted = runs.iter().filter(|r| r.state == RunState::Aborted).count();
    assert_eq!(aborted, 1, "the killed run is marked aborted");
    let mut seen = HashSet::new();
    for r in runs.iter().filter(|r| r.state != RunState::Aborted) {
        assert!(
            seen.insert((r.commit_index, r.role, r.attempt)),
            "run {} repeated a finished test",
            r.id
        );
    }
    let kinds: Vec<String> = sandbox
        .outbox()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds.iter().any(|k| k.ends_with("-gate-report.eml")));
    assert!(kinds.iter().any(|k| k.ends_with("-culprit.eml")));
    let leftovers: Vec<_> = std::fs::read_dir(sandbox.path().join("state/work"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "checkouts left: {leftovers:?}");
    let mirror = sandbox.path().join("state/repos/project.git");
    let worktrees = git(&mirror, &["worktree", "list", "--porcelain"]);
    assert_eq!(
        worktrees.matches("worktree ").count(),
        1,
        "registrations left: {worktrees}"
    );

    // A third start finds the decision standing: nothing more is pushed or mailed.
    assert!(gate_once(&config_path).wait().unwrap().success());
    assert_eq!(store.pushes(branch.id).await.unwrap().len(), 1);
    assert_eq!(sandbox.outbox().len(), 2);
}

/// Runs `gate --once` on `config` to its end; its standard error when it fails.
fn gate_once_to_the_end(config: &std::path::Path) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["gate", "--once", "--config"])
        .arg(config)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn kills_at_every_2ms_of_a_fresh_start_leave_nothing_the_next_start_trips_on() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    let shas = up.commits(2, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let mut failures = Vec::new();
    // The first tenth of a second: the config, the new database and its schema, the mirror.
    for k in 0..=50u64 {
        let state = format!("state-{k}");
        let config = sandbox.path().join(format!("pushgate-{k}.toml"));
        std::fs::write(&config, format!("state_dir = \"{state}\"\n")).unwrap();
        let mut killed = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["gate", "--once", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(2 * k));
        let _ = killed.kill();
        let _ = killed.wait();
        // A normal start decides and pushes (or finds the push a killed one made done).
        if let Err(e) = gate_once_to_the_end(&config) {
            failures.push(format!("killed at {} ms: {e}", 2 * k));
        } else if up.head("master") != shas[1] {
            failures.push(format!("killed at {} ms: master not pushed", 2 * k));
        }
        let locks = pushgate::repo::lock_files(&up.bare);
        assert!(locks.is_empty(), "killed at {} ms: {locks:?}", 2 * k);
        git(&up.bare, &["update-ref", "refs/heads/master", &base]);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_kill_during_a_push_to_a_local_repository_leaves_it_unlocked_and_pushed_once() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    let shas = up.commits(3, None);
    up.push_staging();
    // The upstream holds master's lock for two seconds while it updates it.
    let mark = root.path().join("pushing");
    let hook = up.bare.join("hooks/reference-transaction");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nif [ \"$1\" = prepared ] && grep -q refs/heads/master; then touch '{}'; sleep 2; fi\nexit 0\n",
            mark.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    sandbox.config("");
    let config = sandbox.path().join("pushgate.toml");

    let mut first = gate_once(&config);
    eventually(60, "the push to lock master", || {
        mark.exists().then_some(())
    });
    assert!(up.bare.join("refs/heads/master.lock").exists());
    first.kill().unwrap();
    first.wait().unwrap();
    // The push goes on without pushgate, and lets go of the lock.
    eventually(30, "the push to finish", || {
        (!up.bare.join("refs/heads/master.lock").exists()).then_some(())
    });
    assert_eq!(up.head("master"), shas[2]);
    std::fs::remove_file(&hook).unwrap();
    // The next start sees the push done: not pushed again.
    gate_once_to_the_end(&config).unwrap_or_else(|e| panic!("{e}\n{}", log_of(&config)));
    assert_eq!(up.history("master"), vec![base, shas[2].clone()]);
    assert!(pushgate::repo::lock_files(&up.bare).is_empty());
}
