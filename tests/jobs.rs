//! The job server end to end: a real `pushgate serve`, and every `pushgate jobs` command
//! against it through its JSON API with a token; a periodic job chosen by a selector program.

mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::*;

const TOKEN: &str = "the-lab-token-0123456789";

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Cli {
    config: PathBuf,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("PUSHGATE_USER", "tester")
            .env_remove("PUSHGATE_TOKEN")
            .env_remove("PUSHGATE_SERVER")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pushgate {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "pushgate {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn state(&self, id: &str) -> String {
        let status: serde_json::Value =
            serde_json::from_str(&self.ok(&["jobs", "status", id, "--json"])).unwrap();
        status["job"]["state"].as_str().unwrap().to_string()
    }

    fn wait_for(&self, id: &str, state: &str) {
        eventually(60, &format!("job {id} to be {state}"), || {
            (self.state(id) == state).then_some(())
        });
    }
}

fn setup(root: &Path, sandbox: &Sandbox) -> (PathBuf, SocketAddr) {
    let up = Upstream::new(root, &[("README", "the project\n")]);
    sandbox.sequence(
        "smoke",
        "[[step]]\nname = \"hello\"\ncommand = \"echo hello from the job; cat README\"\n",
    );
    sandbox.sequence("fails", "[[step]]\nname = \"check\"\ncommand = \"false\"\n");
    sandbox.sequence("slow", "[[step]]\nname = \"nap\"\ncommand = \"sleep 60\"\n");
    let selector = sandbox.path().join("policies/select.sh");
    std::fs::create_dir_all(selector.parent().unwrap()).unwrap();
    std::fs::write(
        &selector,
        format!(
            "#!/bin/sh\ncat > {}\necho smoke\n",
            sandbox.path().join("selector-input.json").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&selector, std::fs::Permissions::from_mode(0o755)).unwrap();
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"smoke\"]\n[periodic]\nevery = \"1h\"\n\
             selector = \"select.sh\"\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    let config = sandbox.config(&format!("[api]\ntoken = \"{TOKEN}\"\n"));
    std::mem::forget(up); // its directory lives in `root`
    (sandbox.path().join("pushgate.toml"), config.listen)
}

#[test]
fn the_cli_round_trips_every_command_against_serve() {
    let root = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    let (config, addr) = setup(root.path(), &sandbox);
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(addr.port(), "pushgate serve");
    let cli = Cli { config };

    // No token, or a wrong one: refused, and nothing is queued.
    let (status, _) = http("GET", addr, "/api/jobs", "");
    assert_eq!(status, 401);
    let (status, _) = http(
        "POST",
        addr,
        "/api/jobs",
        "{\"sequence\":\"smoke\",\"submitter\":\"x\"}",
    );
    assert_eq!(status, 401);
    let wrong = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["jobs", "list", "--config"])
        .arg(&cli.config)
        .args(["--token", "not-the-token-at-all"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("401"));

    // The policy's periodic job: queued at start on the selector's word, run, mailed.
    let periodic = eventually(60, "the periodic job to pass", || {
        let jobs: serde_json::Value =
            serde_json::from_str(&cli.ok(&["jobs", "list", "--json"])).unwrap();
        jobs.as_array()?
            .iter()
            .find(|j| j["kind"] == "periodic" && j["state"] == "pass")
            .cloned()
    });
    assert_eq!(
        (periodic["sequence"].as_str(), periodic["rev"].as_str()),
        (Some("smoke"), Some("master"))
    );
    let input: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sandbox.path().join("selector-input.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(input[0]["sequence"], "smoke");
    assert_eq!(input[0]["due"], true);
    eventually(30, "the periodic job's mail", || {
        sandbox.outbox().into_iter().find(|p| {
            let m = parse_mail(&std::fs::read(p).unwrap());
            m.subject.contains("smoke")
                && m.subject.contains(": pass")
                && m.to.iter().any(|t| t.contains("devel@lists.example.org"))
        })
    });

    // submit, status, showlog.
    let id = cli
        .ok(&["jobs", "submit", "smoke", "--email", "dev@example.org"])
        .trim()
        .to_string();
    assert!(id.parse::<i64>().is_ok(), "a job id: {id}");
    cli.wait_for(&id, "pass");
    let log = cli.ok(&["jobs", "showlog", &id, "-v"]);
    assert!(
        log.contains(&format!("job {id} smoke (manual): pass")),
        "{log}"
    );
    assert!(log.contains("pass     hello"), "{log}");
    assert!(log.contains("| hello from the job"), "{log}");
    assert!(!cli.ok(&["jobs", "showlog", &id]).contains("| hello"));
    assert!(cli.ok(&["jobs", "status", &id]).contains("run "));
    assert!(cli
        .fails(&["jobs", "submit", "nope"])
        .contains("no sequence `nope`"));
    // A revision that does not exist is refused before anything is queued.
    let jobs_before = cli.ok(&["jobs", "list"]);
    let said = cli.fails(&["jobs", "submit", "smoke", "--rev", "no-such-branch"]);
    assert!(
        said.contains("cannot find `no-such-branch`")
            && said.contains("no branch, tag or commit `no-such-branch`"),
        "{said}"
    );
    assert_eq!(cli.ok(&["jobs", "list"]), jobs_before, "nothing queued");
    let table = cli.ok(&["jobs", "list", "--mine"]);
    assert!(table.starts_with("JOB  "), "a header: {table}");
    assert!(cli.fails(&["jobs", "cancel", &id]).contains("already pass"));
    assert!(cli.fails(&["jobs", "status", "999"]).contains("no job 999"));

    // hosts, borrow, return: a borrowed host takes no job.
    let hosts = cli.ok(&["jobs", "hosts"]);
    assert!(hosts.starts_with("HOST "), "{hosts}");
    assert_eq!(
        hosts.lines().filter(|l| l.starts_with("local ")).count(),
        1,
        "a host once, with its slots: {hosts}"
    );
    let borrowed = cli.ok(&["jobs", "borrow", "local", "--hours", "2"]);
    assert!(borrowed.contains("local is yours until"), "{borrowed}");
    let hosts = cli.ok(&["jobs", "hosts"]);
    assert!(
        hosts.contains("borrowed") && hosts.contains("tester until"),
        "{hosts}"
    );
    let waiting = cli.ok(&["jobs", "submit", "smoke"]).trim().to_string();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let status = cli.ok(&["jobs", "status", &waiting]);
    assert!(status.contains("waiting for a host"), "{status}");
    assert!(cli.ok(&["jobs", "cancel", &waiting]).contains("cancelled"));
    cli.wait_for(&waiting, "cancelled");
    assert!(cli
        .fails(&["jobs", "borrow", "nowhere"])
        .contains("no host `nowhere`"));
    assert!(cli
        .ok(&["jobs", "return", "local"])
        .contains("back in the lab"));
    // The cancelled job let go of its place in the queue: nothing takes the host.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let hosts = cli.ok(&["jobs", "hosts"]);
    assert!(hosts.contains("free"), "{hosts}");

    // Pause on fail, then interact.
    let paused = cli
        .ok(&["jobs", "submit", "fails", "--pause-on-fail", "ALL"])
        .trim()
        .to_string();
    eventually(60, "the job to pause", || {
        cli.ok(&["jobs", "interact", &paused, "--list"])
            .contains("paused after check")
            .then_some(())
    });
    assert!(cli
        .fails(&["jobs", "interact", &paused, "--continue", "other"])
        .contains("not paused after `other`"));
    assert!(cli
        .ok(&["jobs", "interact", &paused, "--continue", "check"])
        .contains("goes on"));
    cli.wait_for(&paused, "fail");

    // complete: a stuck job is finished by hand and its host freed.
    let stuck = cli.ok(&["jobs", "submit", "slow"]).trim().to_string();
    eventually(60, "the slow job to hold the host", || {
        cli.ok(&["jobs", "hosts"]).contains("busy").then_some(())
    });
    assert!(cli.ok(&["jobs", "complete", &stuck]).contains("completed"));
    assert_eq!(cli.state(&stuck), "completed");
    eventually(30, "the host to be free again", || {
        cli.ok(&["jobs", "hosts"]).contains("free").then_some(())
    });

    // list --mine: only the tester's jobs, newest first.
    let mine: serde_json::Value =
        serde_json::from_str(&cli.ok(&["jobs", "list", "--mine", "--json"])).unwrap();
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 4, "the refused submission is not among them");
    assert!(mine.iter().all(|j| j["submitter"] == "tester"));
    assert_eq!(mine[0]["id"].as_i64().unwrap().to_string(), stuck);
}
