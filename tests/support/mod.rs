//! Real things for the integration tests: bare git repositories pushed with the git CLI, a
//! `git daemon`, an SMTP server (aiosmtpd) writing a Maildir, PostgreSQL databases, and the
//! pushgate binary. Each service starts on a free port and is stopped by PID when dropped.

#![allow(dead_code)]

pub mod dom0;
pub mod github_double;
pub mod public_inbox;
pub mod sshd;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushgate::config::Config;
use pushgate::gate::LogProgress;
use pushgate::service::Service;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs git, panicking with its stderr on failure; returns trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

/// Commits everything in the work tree `repo` (initialising it if needed) as a test author;
/// returns the commit's sha.
pub fn commit_all(repo: &Path, message: &str) -> String {
    if !repo.join(".git").exists() {
        git(repo, &["init", "-q"]);
    }
    git(repo, &["add", "."]);
    git(
        repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.org",
            "commit",
            "-qm",
            message,
        ],
    );
    git(repo, &["rev-parse", "HEAD"])
}

pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=master",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An upstream bare repository and a clone that contributors push from.
pub struct Upstream {
    pub bare: PathBuf,
    pub work: PathBuf,
}

impl Upstream {
    /// `master` with one commit holding `files`; `staging` equal to it.
    pub fn new(root: &Path, files: &[(&str, &str)]) -> Upstream {
        let bare = root.join("upstream.git");
        let work = root.join("work");
        git(root, &["init", "-q", "--bare", bare.to_str().unwrap()]);
        git(&bare, &["config", "core.logAllRefUpdates", "always"]);
        git(root, &["init", "-q", work.to_str().unwrap()]);
        let up = Upstream { bare, work };
        for (name, content) in files {
            up.write(name, content);
        }
        up.commit("Start the project", ("Mia Maintainer", "mia@example.org"));
        git(
            &up.work,
            &["remote", "add", "origin", up.bare.to_str().unwrap()],
        );
        up.push_master_and_staging();
        up
    }

    /// Pushes the work tree's HEAD to both master and staging, as a maintainer would.
    pub fn push_master_and_staging(&self) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "origin",
                "HEAD:refs/heads/master",
                "HEAD:refs/heads/staging",
            ],
        );
    }

    pub fn write(&self, name: &str, content: &str) {
        let path = self.work.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    /// Commits everything in the work tree; returns the sha.
    pub fn commit(&self, message: &str, (name, email): (&str, &str)) -> String {
        git(&self.work, &["add", "-A"]);
        let env = [
            ("GIT_AUTHOR_NAME", name),
            ("GIT_AUTHOR_EMAIL", email),
            ("GIT_COMMITTER_NAME", "Mia Maintainer"),
            ("GIT_COMMITTER_EMAIL", "mia@example.org"),
        ];
        git_env(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
            &env,
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Makes `n` commits that each append to NOTES; `breaking` (1-based) also breaks the test.
    pub fn commits(&self, n: usize, breaking: Option<usize>) -> Vec<String> {
        (1..=n)
            .map(|i| {
                let notes = std::fs::read_to_string(self.work.join("NOTES")).unwrap_or_default();
                self.write("NOTES", &format!("{notes}note {i}\n"));
                if Some(i) == breaking {
                    self.write("BROKEN", "this commit breaks the test\n");
                }
                let author = AUTHORS[i % AUTHORS.len()];
                self.commit(&format!("change number {i}"), author)
            })
            .collect()
    }

    /// Pushes the work tree's HEAD to staging, as a contributor would.
    pub fn push_staging(&self) {
        git(
            &self.work,
            &["push", "-q", "origin", "HEAD:refs/heads/staging"],
        );
    }

    pub fn head(&self, branch: &str) -> String {
        git(&self.bare, &["rev-parse", &format!("refs/heads/{branch}")])
    }

    /// Every value the branch has had, oldest first (the bare repository keeps a reflog).
    pub fn history(&self, branch: &str) -> Vec<String> {
        let log = git(
            &self.bare,
            &["reflog", "--format=%H", &format!("refs/heads/{branch}")],
        );
        let mut shas: Vec<String> = log.lines().map(str::to_string).collect();
        shas.reverse();
        shas
    }
}

pub const AUTHORS: [(&str, &str); 3] = [
    ("Alice Example", "alice@example.org"),
    ("Bob Example", "bob@example.org"),
    ("Carol Example", "carol@example.org"),
];

/// The test a sample project runs: fails when a commit added BROKEN.
pub const TEST_SEQUENCE: &str = r#"
[[step]]
name = "build"
command = "test -f NOTES || true"
timeout = "1m"

[[step]]
name = "test"
command = "if [ -e BROKEN ]; then echo 'BROKEN is here' >&2; exit 1; fi; echo fine"
timeout = "1m"
"#;

/// A directory with pushgate's config, policies and sequences.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("policies")).unwrap();
        std::fs::create_dir_all(dir.path().join("sequences")).unwrap();
        Sandbox { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn sequence(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(format!("sequences/{name}.toml")), text).unwrap();
    }

    pub fn policy(&self, name: &str, text: &str) {
        std::fs::write(self.path().join(format!("policies/{name}.toml")), text).unwrap();
    }

    /// A policy over `repository` with the test sequence, one retry and a list.
    pub fn standard_policy(&self, repository: &str) {
        self.sequence("test", TEST_SEQUENCE);
        self.policy(
            "project",
            &format!(
                "repository = \"{repository}\"\nsequences = [\"test\"]\nretries = 1\n[mail]\nlist = \"Devel <devel@lists.example.org>\"\n"
            ),
        );
    }

    /// A policy over `up` that runs one sequence (`text`) with `retries`, mailing the list.
    pub fn gate_with(&self, up: &Upstream, sequence: &str, text: &str, retries: u32) {
        self.sequence(sequence, text);
        self.policy(
            "project",
            &format!(
                "repository = \"{}\"\nsequences = [\"{sequence}\"]\nretries = {retries}\n[mail]\nlist = \"devel@lists.example.org\"\n",
                up.bare.display()
            ),
        );
    }

    /// Writes pushgate.toml with `extra` lines and loads it.
    pub fn config(&self, extra: &str) -> Config {
        let text = format!(
            "state_dir = \"state\"\nlisten = \"127.0.0.1:{}\"\npoll_interval = \"1h\"\n{extra}",
            free_port()
        );
        let path = self.path().join("pushgate.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(Some(&path), self.path()).unwrap()
    }

    pub fn outbox(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.path().join("state/outbox"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
    }
}

pub async fn open_service(config: Config) -> Service {
    Service::open(config, Arc::new(LogProgress)).await.unwrap()
}

/// A parsed mail: subject, To, Cc, envelope recipients (when the server recorded them), text.
#[derive(Debug)]
pub struct Mail {
    pub subject: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub rcpt: Vec<String>,
    pub message_id: String,
    pub text: String,
}

fn addresses(a: Option<&mail_parser::Address>) -> Vec<String> {
    a.map(|a| {
        a.iter()
            .filter_map(|x| x.address().map(str::to_string))
            .collect()
    })
    .unwrap_or_default()
}

pub fn parse_mail(bytes: &[u8]) -> Mail {
    let m = mail_parser::MessageParser::default()
        .parse(bytes)
        .expect("a mail that parses");
    let rcpt = m
        .header_raw("X-RcptTo")
        .map(|r| r.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    Mail {
        subject: m.subject().unwrap_or("").to_string(),
        to: addresses(m.to()),
        cc: addresses(m.cc()),
        rcpt,
        message_id: m.message_id().unwrap_or("").to_string(),
        text: m.body_text(0).map(|t| t.to_string()).unwrap_or_default(),
    }
}

/// `python3 -m aiosmtpd` writing every message it receives into a Maildir.
pub struct Smtp {
    pub port: u16,
    pub maildir: PathBuf,
    child: Child,
}

impl Smtp {
    pub fn start(port: u16, maildir: &Path) -> Smtp {
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts (apt-get install python3-aiosmtpd)");
        wait_for_port(port, "aiosmtpd");
        Smtp {
            port,
            maildir: maildir.to_path_buf(),
            child,
        }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(dir) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in dir.flatten() {
                    out.push(parse_mail(&std::fs::read(e.path()).unwrap()));
                }
            }
        }
        out.sort_by(|a, b| a.message_id.cmp(&b.message_id));
        out
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `git daemon` serving a directory, with pushes enabled.
pub struct GitDaemon {
    pub port: u16,
    child: Child,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        let port = free_port();
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--enable=receive-pack",
            ])
            .arg(format!("--base-path={}", base.display()))
            .arg(format!("--port={port}"))
            .arg("--listen=127.0.0.1")
            .arg(base)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        wait_for_port(port, "git daemon");
        GitDaemon { port, child }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh PostgreSQL database on the machine's server, dropped at the end.
pub struct Postgres {
    pub url: String,
    name: String,
}

pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn psql(sql: &str) {
    let admin = std::env::var("PUSHGATE_TEST_POSTGRES").unwrap_or(POSTGRES_ADMIN.into());
    let out = Command::new("psql")
        .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", sql])
        .output()
        .expect("psql runs (the test script installs postgresql-client)");
    assert!(
        out.status.success(),
        "psql {sql}: {} (is PostgreSQL running on 127.0.0.1:5432? the test script starts one)",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    pub fn new() -> Postgres {
        let name = format!(
            "pushgate_test_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        );
        psql(&format!("CREATE DATABASE {name}"));
        let admin = std::env::var("PUSHGATE_TEST_POSTGRES").unwrap_or(POSTGRES_ADMIN.into());
        let base = admin
            .rsplit_once('/')
            .map_or(admin.as_str(), |(b, _)| b)
            .to_string();
        Postgres {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// A minimal HTTP/1.1 client for the tests: (status, body).
pub fn http(method: &str, addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    http_with(method, addr, path, &[], body.as_bytes())
}

/// The same with extra headers and a body of bytes.
pub fn http_with(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connects");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before the whole body is sent.
    let _ = s.write_all(body);
    let mut answer = String::new();
    // After an early answer the rest of a big body may reset the connection: the answer is in.
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Polls `f` until it returns Some, for at most `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `git http-backend` behind lighttpd on loopback, serving the bare repositories in `root`
/// at `/git/NAME.git`, with HTTP basic authentication against one user and password (as
/// GitHub takes `x-access-token` and a token).
pub struct GitHttp {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
    /// The self-signed certificate (PEM) it serves HTTPS with, when it does.
    pub certificate: Option<PathBuf>,
}

impl GitHttp {
    pub fn start(root: &Path, user: &str, password: &str) -> GitHttp {
        Self::start_with(root, user, password, false)
    }

    /// The same over HTTPS, with a self-signed certificate for 127.0.0.1.
    pub fn start_tls(root: &Path, user: &str, password: &str) -> GitHttp {
        Self::start_with(root, user, password, true)
    }

    fn start_with(root: &Path, user: &str, password: &str, tls: bool) -> GitHttp {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let port = free_port();
        std::fs::write(d.join("users"), format!("{user}:{password}\n")).unwrap();
        let certificate = tls.then(|| {
            let (cert, key) = (d.join("cert.pem"), d.join("key.pem"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args([
                    "-subj",
                    "/CN=127.0.0.1",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1",
                ])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            cert
        });
        let ssl = match &certificate {
            Some(cert) => format!(
                "server.modules += (\"mod_openssl\")\nssl.engine = \"enable\"\n\
                 ssl.pemfile = \"{}\"\nssl.privkey = \"{d}/key.pem\"\n",
                cert.display(),
                d = d.display()
            ),
            None => String::new(),
        };
        let config = format!(
            r#"server.document-root = "{d}"
server.port = {port}
server.bind = "127.0.0.1"
server.errorlog = "{d}/error.log"
server.modules = ("mod_auth", "mod_authn_file", "mod_alias", "mod_cgi", "mod_setenv")
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
auth.require = ( "/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user") )
alias.url = ( "/git/" => "/usr/lib/git-core/git-http-backend/" )
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "")
}}
{ssl}"#,
            d = d.display(),
            root = root.display()
        );
        std::fs::write(d.join("lighttpd.conf"), config).unwrap();
        let child = Command::new("lighttpd")
            .arg("-D")
            .arg("-f")
            .arg(d.join("lighttpd.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lighttpd starts (apt-get install lighttpd)");
        wait_for_port(port, "lighttpd");
        GitHttp {
            port,
            child,
            _dir: dir,
            certificate,
        }
    }

    pub fn url(&self, name: &str) -> String {
        let scheme = if self.certificate.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/git/{name}", self.port)
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `X-Hub-Signature-256` of `body` with `secret`, as GitHub signs a delivery.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    pushgate::intake::github::webhook::signature(secret.as_bytes(), body)
}
