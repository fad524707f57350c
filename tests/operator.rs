//! The operator's first day, with the real binary: `check` lists every mistake of a tree at
//! once and asks each service without changing anything; logs captured to a file are plain
//! lines, once each; an empty or misdirected hook body wakes nothing; mail for a repository
//! given relative to the config names it absolutely; `status`, `flights` and `outbox` say what
//! the store holds, with headers; an error is printed once.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::*;

fn pushgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An upstream repository and a sandbox whose standard policy gates it (the directory holding
/// the repository lives as long as the first value).
fn a_project() -> (tempfile::TempDir, Upstream, Sandbox) {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    (root, up, sandbox)
}

/// A config that needs nothing from outside but the repository.
fn write_config(sandbox: &Sandbox, extra: &str) {
    std::fs::write(
        sandbox.path().join("pushgate.toml"),
        format!(
            "state_dir = \"state\"\nlisten = \"127.0.0.1:{}\"\npoll_interval = \"1h\"\n{extra}",
            free_port()
        ),
    )
    .unwrap();
}

#[test]
fn check_lists_every_mistake_of_a_tree_at_once() {
    let sandbox = Sandbox::new();
    write_config(&sandbox, "");
    sandbox.sequence("smoke", "[[step]]\nname = \"t\"\ncommand = \"true\"\n");
    // 1: a sequence that is not TOML.
    sandbox.sequence("broken", "[[step]]\nname = \"x\"\ncommand = \n");
    // 2 and 3: a policy with two mistakes (its repository does not exist; too many retries).
    sandbox.policy(
        "a",
        "repository = \"../nowhere.git\"\nsequences = [\"smoke\"]\nretries = 50\n",
    );
    // 4: a policy naming a sequence that does not exist.
    sandbox.policy(
        "b",
        "repository = \"https://git.example.org/b.git\"\nsequences = [\"smoke\", \"missing\"]\n",
    );
    // 5: a host that cannot be reached, for want of an address.
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        "[[host]]\nname = \"dom0-1\"\nprovisioner = \"ssh\"\n",
    )
    .unwrap();

    let out = pushgate(sandbox.path(), &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    let dir = sandbox.path().display().to_string();
    for expected in [
        format!("{dir}/sequences/broken.toml:3:"),
        format!("{dir}/policies/a.toml:1:1: field `repository`:"),
        format!("{dir}/policies/a.toml:3:11: field `retries`: at most 10 retries"),
        format!("{dir}/policies/b.toml:2:23: field `sequences`: no sequence named `missing`"),
        format!("{dir}/hosts.toml:2:"),
    ] {
        assert!(said.contains(&expected), "missing {expected:?} in:\n{said}");
    }
    assert_eq!(said.matches("\nerror: ").count(), 5, "{said}");
    assert!(said.contains("5 mistakes in the files"), "{said}");
    assert!(
        !sandbox.path().join("state").exists(),
        "check makes nothing"
    );

    // The config's own mistakes, all of them, before anything else.
    write_config(
        &sandbox,
        "[input]\nmax_file_mib = 0\n[api]\ntoken = \"short\"\n",
    );
    let out = pushgate(sandbox.path(), &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("pushgate.toml:5:16: field `input.max_file_mib`"),
        "{said}"
    );
    assert!(
        said.contains("pushgate.toml:7:9: field `api.token`: use a secret of at least 16"),
        "{said}"
    );
}

#[test]
fn check_asks_each_service_and_changes_nothing() {
    let (root, up, sandbox) = a_project();
    let port = free_port();
    write_config(
        &sandbox,
        &format!("[mail]\nsmtp = \"smtp://127.0.0.1:{port}\"\n"),
    );

    let out = pushgate(sandbox.path(), &["check"]);
    let said = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the mail server is down:\n{said}"
    );
    assert!(
        said.contains(&format!("FAIL  mail: SMTP: smtp://127.0.0.1:{port}: ")),
        "{said}"
    );
    assert!(said.contains("ok    database: SQLite "), "{said}");
    assert!(
        said.contains(&format!(
            "ok    repository {} (policy project): master at ",
            up.bare.display()
        )),
        "{said}"
    );
    assert!(
        said.contains("1 of 4 services could not be reached"),
        "{said}"
    );

    let maildir = root.path().join("maildir");
    let smtp = Smtp::start(port, &maildir);
    let out = pushgate(sandbox.path(), &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.ends_with("all is well\n"), "{said}");
    assert!(smtp.messages().is_empty(), "no mail sent");
    assert!(!sandbox.path().join("state").exists(), "nothing made");
    // A staging branch deleted upstream is said; a missing target is a failure.
    git(&up.bare, &["update-ref", "-d", "refs/heads/master"]);
    let out = pushgate(sandbox.path(), &["check"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("it has no branch `master`"), "{said}");
}

#[test]
fn serve_refuses_a_bad_file_and_says_the_error_once() {
    let sandbox = Sandbox::new();
    write_config(&sandbox, "");
    sandbox.sequence("test", TEST_SEQUENCE);
    sandbox.policy(
        "project",
        "repository = \"/nonexistent/up.git\"\nsequences = [\"test\"]\n",
    );
    let out = pushgate(sandbox.path(), &["serve"]);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_eq!(
        said.matches("/nonexistent/up.git does not exist").count(),
        1,
        "{said}"
    );
    assert!(said.starts_with("error: "), "{said}");
    assert!(!said.contains("Caused by"), "{said}");
    assert!(!sandbox.path().join("state/pushgate.db").exists());
}

#[test]
fn logs_in_a_file_are_plain_lines_each_once() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commits(3, Some(2));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let serve = Served::start(&sandbox, "");
    serve.wait_for("mail sent", 1);
    let log = serve.log.clone();
    drop(serve);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(!said.contains('\x1b'), "no escape codes in a file:\n{said}");
    assert!(!said.contains(" { "), "no Debug dumps:\n{said}");
    let bodies: Vec<&str> = said
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    let mut seen = std::collections::HashSet::new();
    for body in &bodies {
        assert!(seen.insert(*body), "said twice: {body}\n{said}");
    }
    assert!(
        said.contains("INFO flight 1 of project: 3 new commits"),
        "{said}"
    );
    assert!(said.contains("regression"), "{said}");

    // JSON for collectors: every line an object with a message.
    let out = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["gate", "--once", "--log-format", "json", "-v"])
        .current_dir(sandbox.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stderr);
    assert!(!lines.is_empty());
    for line in lines.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["message"].is_string(), "{line}");
    }
    // Its decision, once, on standard output.
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_hook_without_refs_or_for_an_unknown_policy_wakes_nothing() {
    let (_root, _up, sandbox) = a_project();
    // The mail server is down: said as a warning, and serve goes on.
    let smtp = free_port();
    let serve = Served::start(
        &sandbox,
        &format!("[mail]\nsmtp = \"smtp://127.0.0.1:{smtp}\"\n"),
    );
    serve.wait_for("mail: SMTP: ", 1);
    assert!(serve.log().contains("WARN mail: SMTP: "), "{}", serve.log());
    let addr = serve.addr;
    let (status, body) = http("POST", addr, "/hooks/git", "");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("names no ref"), "{body}");
    let line = format!("{} {} refs/heads/staging\n", "0".repeat(40), "a".repeat(40));
    let (status, body) = http("POST", addr, "/hooks/git?policy=nosuch", &line);
    assert_eq!(status, 404, "{body}");
    let (status, _) = http("POST", addr, "/hooks/git?policy=project", &line);
    assert_eq!(status, 202);
    assert!(
        !serve.log().contains("new commit"),
        "nothing to test was started"
    );
}

#[test]
fn a_relative_repository_is_named_absolutely_and_the_store_is_listed() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commits(4, Some(3));
    up.push_staging();
    // The tree beside the repository, the policy naming it relative to itself.
    let tree = root.path().join("gate");
    std::fs::create_dir_all(tree.join("policies")).unwrap();
    std::fs::create_dir_all(tree.join("sequences")).unwrap();
    std::fs::write(tree.join("sequences/test.toml"), TEST_SEQUENCE).unwrap();
    std::fs::write(
        tree.join("policies/project.toml"),
        "repository = \"../../upstream.git\"\nsequences = [\"test\"]\nretries = 0\n\
         [mail]\nlist = \"devel@lists.example.org\"\n",
    )
    .unwrap();
    std::fs::write(
        tree.join("pushgate.toml"),
        "state_dir = \"state\"\npoll_interval = \"1h\"\n",
    )
    .unwrap();

    // Before anything ran, the listings say so and make no store.
    let out = pushgate(&tree, &["status"]);
    assert!(
        text(&out.stdout).starts_with("nothing yet"),
        "{}",
        text(&out.stdout)
    );
    assert!(!tree.join("state").exists());

    // Run from the directory above, the config named relatively.
    let out = pushgate(
        root.path(),
        &["gate", "--once", "--config", "gate/pushgate.toml"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let absolute = up.bare.display().to_string();
    let outbox: Vec<_> = std::fs::read_dir(tree.join("state/outbox"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    let culprit = outbox
        .iter()
        .find(|m| m.contains("To reproduce"))
        .expect("a culprit mail");
    assert!(
        culprit.contains(&format!("git fetch {absolute} staging")),
        "{culprit}"
    );
    assert!(!culprit.contains(".."), "{culprit}");

    let status = text(&pushgate(&tree, &["status"]).stdout);
    assert!(status.starts_with("POLICY "), "{status}");
    let row: Vec<&str> = status
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row[..2], ["project", "blocked"], "{status}");
    let flights = text(&pushgate(&tree, &["flights", "project"]).stdout);
    assert!(flights.starts_with("FLIGHT "), "{flights}");
    assert!(flights.contains("regression"), "{flights}");
    let outbox = text(&pushgate(&tree, &["outbox"]).stdout);
    assert_eq!(outbox, "no mail waits\n\nno GitHub report waits\n");
    let unknown = pushgate(&tree, &["flights", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no policy `nosuch`"));
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = pushgate(Path::new("."), &["completions", shell]);
        assert!(out.status.success(), "{shell}");
        assert!(text(&out.stdout).contains("pushgate"), "{shell}");
    }
}

/// `serve` with its log in a file, stopped (SIGTERM) when dropped.
struct Served {
    child: std::process::Child,
    log: std::path::PathBuf,
    addr: std::net::SocketAddr,
}

impl Served {
    /// Serves the sandbox with `extra` lines in its pushgate.toml.
    fn start(sandbox: &Sandbox, extra: &str) -> Served {
        Self::start_with(sandbox, extra, &[])
    }

    /// The same, with `env` set for the service.
    fn start_with(sandbox: &Sandbox, extra: &str, env: &[(&str, &Path)]) -> Served {
        let port = free_port();
        std::fs::write(
            sandbox.path().join("pushgate.toml"),
            format!(
                "state_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\npoll_interval = \"1h\"\n{extra}"
            ),
        )
        .unwrap();
        let log = sandbox.path().join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve"])
            .current_dir(sandbox.path())
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, "serve");
        Served {
            child,
            log,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `text` `times` times.
    fn wait_for(&self, text: &str, times: usize) {
        eventually(60, text, || {
            (self.log().matches(text).count() >= times).then_some(())
        });
    }

    fn signal(&self, signal: i32) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Tells the gate that staging moved, as the post-receive hook does.
    fn hook(&self, old: &str, new: &str) {
        let (status, body) = http(
            "POST",
            self.addr,
            "/hooks/git",
            &format!("{old} {new} refs/heads/staging\n"),
        );
        assert_eq!(status, 202, "{body}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
    }
}

#[test]
fn sighup_puts_new_sequences_in_force_for_the_next_flight_only() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    // Slow enough for a reload to land while a flight runs.
    let old = "[[step]]\nname = \"test\"\ncommand = \"sleep 2; echo the old sequence\"\n";
    sandbox.gate_with(&up, "test", old, 0);
    let serve = Served::start(&sandbox, "");

    let base = up.head("master");
    let first = up.commits(1, None).remove(0);
    up.push_staging();
    serve.hook(&base, &first);
    serve.wait_for(&format!("testing {}", &first[..12]), 1);
    // While flight 1 runs: a new sequence, named by the policy, that fails.
    sandbox.sequence(
        "extra",
        "[[step]]\nname = \"probe\"\ncommand = \"echo the new sequence; exit 1\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"test\", \"extra\"]\nretries = 0\n",
            up.bare.display()
        ),
    );
    serve.signal(libc::SIGHUP);
    serve.wait_for("reloaded: 1 policy, 2 sequences", 1);
    serve.wait_for("flight 1 of project: pass", 1);
    assert_eq!(
        up.head("master"),
        first,
        "flight 1 kept the sequences it began with"
    );

    // A broken file is refused with its error, and what is in force stays.
    sandbox.sequence("extra", "[[step]]\nname = \n");
    serve.signal(libc::SIGHUP);
    serve.wait_for("sequences/extra.toml:2:", 1);
    sandbox.sequence(
        "extra",
        "[[step]]\nname = \"probe\"\ncommand = \"echo the new sequence; exit 1\"\n",
    );
    serve.signal(libc::SIGHUP);
    serve.wait_for("reloaded: 1 policy, 2 sequences", 2);

    let second = up.commits(1, None).remove(0);
    up.push_staging();
    serve.hook(&first, &second);
    serve.wait_for("flight 2 of project: ", 3);
    serve.wait_for(&format!("{} (tip) fail", &second[..12]), 1);
    assert_eq!(up.head("master"), first, "the new sequence gates flight 2");
    let log = serve.log();
    assert!(log.contains("extra"), "{log}");
}

#[test]
fn init_then_check_then_a_first_gated_push() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let out = pushgate(
        root.path(),
        &[
            "init",
            "gate",
            "--repository",
            "upstream.git",
            "--name",
            "hello",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("pushgate check --config "), "{said}");
    let gate = root.path().join("gate");
    for file in [
        "pushgate.toml",
        "policies/hello.toml",
        "sequences/smoke.toml",
        "hooks/post-receive",
    ] {
        assert!(gate.join(file).is_file(), "{file}");
    }
    let out = pushgate(&gate, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));

    let pushed = up.commits(2, None);
    up.push_staging();
    let out = pushgate(&gate, &["gate", "--once"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "hello: pass: the tip passed every step\n"
    );
    assert_eq!(up.head("master"), pushed[1]);

    // The hook it wrote wakes a serve (curl to the configured address).
    let hook = std::fs::read_to_string(gate.join("hooks/post-receive")).unwrap();
    assert!(hook.contains("/hooks/git"), "{hook}");
    // A second init writes nothing over the first.
    let again = pushgate(
        root.path(),
        &["init", "gate", "--repository", "upstream.git"],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("exists"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let (root, _up, sandbox) = a_project();
    let socket_path = root.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let heard = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a message to systemd");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let serve = Served::start_with(&sandbox, "", &[("NOTIFY_SOCKET", socket_path.as_path())]);
    assert!(heard().starts_with("READY=1"));
    serve.signal(libc::SIGHUP);
    assert!(heard().starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(heard().starts_with("READY=1"));
    drop(serve);
    assert_eq!(heard(), "STOPPING=1");
}

/// `[[host]]` of hosts.toml for a loopback sshd, with `known_hosts` as given.
fn ssh_host(name: &str, sshd: &pushgate::hosts::LoopbackSshd, known_hosts: &Path) -> String {
    let t = sshd.target();
    format!(
        "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n\
         key = \"{}\"\nknown_hosts = \"{}\"\nwork_dir = \"{}\"\n",
        sshd.port,
        t.user,
        t.key.display(),
        known_hosts.display(),
        t.work_dir
    )
}

/// `pushgate check` in `dir`, off the runtime's threads (the GitHub double serves on them).
async fn check_beside_a_runtime(dir: &Path) -> (Output, String) {
    let dir = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || pushgate(&dir, &["check"]))
        .await
        .unwrap();
    let said = text(&out.stdout);
    (out, said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_logs_in_to_each_host_with_its_pinned_key_and_to_github() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let good = pushgate::hosts::LoopbackSshd::start(None).unwrap();
    let other = pushgate::hosts::LoopbackSshd::start(None).unwrap();
    let github = support::github_double::GitHubDouble::start().await;
    let sandbox = Sandbox::new();
    sandbox.sequence("test", TEST_SEQUENCE);
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\ngithub = \"o/r\"\nsequences = [\"test\"]\n",
            up.bare.display()
        ),
    );
    // `dom0-b` pins only another server's key: the one answering on its port is unknown.
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        format!(
            "{}{}",
            ssh_host("dom0-a", &good, &good.target().known_hosts),
            ssh_host("dom0-b", &good, &other.target().known_hosts)
        ),
    )
    .unwrap();
    write_config(
        &sandbox,
        &format!(
            "[github]\ntoken = \"a-token-0123456789\"\napi_url = \"{}\"\n",
            github.url()
        ),
    );
    github.set_head("o/r", "master", &up.head("master"));
    let (out, said) = check_beside_a_runtime(sandbox.path()).await;
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("ok    host dom0-a (ssh): "), "{said}");
    assert!(said.contains("with its pinned key"), "{said}");
    assert!(said.contains("FAIL  host dom0-b (ssh): "), "{said}");
    assert!(said.contains("unknown host key"), "{said}");
    assert!(
        said.contains("ok    GitHub: logged in; reads o/r"),
        "{said}"
    );
    assert!(
        github.calls().iter().all(|c| c.method == "GET"),
        "check only reads GitHub"
    );

    // A login GitHub refuses is a failure too.
    github.fail_next("GET", "/repos/o/r/branches/master", 401, &[]);
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        ssh_host("dom0-a", &good, &good.target().known_hosts),
    )
    .unwrap();
    let (out, said) = check_beside_a_runtime(sandbox.path()).await;
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL  GitHub: o/r: "), "{said}");
    assert!(said.contains("401"), "{said}");
}
