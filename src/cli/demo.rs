//! `pushgate demo`: the whole loop on a sample repository, with the shipped policy and sequence.
//!
//! It makes an upstream repository whose `staging` is 20 commits ahead of `master`, one of which
//! (#13) breaks the smoke test, and runs the gate until it has decided: the 12 commits before
//! the culprit go to `master`, the culprit is named, and the mail lands in an outbox folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{Oid, Repository, Signature, Time};
use serde::Serialize;

use anyhow::bail;
use pushgate::config::{Config, MailTransport};
use pushgate::decision::Verdict;
use pushgate::gate::{BranchOutcome, Progress};
use pushgate::service::{Service, ServiceError};

use super::progress::GateProgress;

#[derive(clap::Args)]
pub struct Args {
    /// Where to create the sample (default: a new temporary directory, kept).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Keep the status page up afterwards.
    #[arg(long)]
    serve: bool,
}

/// Runs the demo, prints what it came to, and serves the status page if asked.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let dir = match args.dir {
        Some(d) => d,
        None => default_dir()?,
    };
    if !args.json {
        println!("pushgate demo in {}", dir.display());
    }
    let (summary, service) = play(&dir, Arc::new(GateProgress::new())).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary, outbox(&service.config));
    }
    if summary.culprit.as_deref() != Some(summary.expected_culprit.as_str()) {
        bail!("the demo did not find the sample's culprit; see the log above");
    }
    if args.serve {
        let service = Arc::new(service);
        let listener = service.bind().await?;
        println!(
            "status page: http://{}/ (Ctrl-C to stop)",
            listener.local_addr()?
        );
        service.serve(listener, super::shutdown_signal()).await?;
    }
    Ok(())
}

fn print_summary(s: &DemoSummary, outbox: Option<&Path>) {
    println!();
    match (&s.verdict, &s.culprit) {
        (Some(v), Some(c)) => println!(
            "verdict:  {v}\nculprit:  {} {}",
            &c[..12.min(c.len())],
            s.culprit_title.as_deref().unwrap_or("")
        ),
        (Some(v), None) => println!("verdict:  {v}"),
        _ => println!("no decision: {}", s.reason),
    }
    match &s.pushed_to {
        Some(p) => println!(
            "pushed:   master is now {} ({} of {} commits)",
            &p[..12.min(p.len())],
            s.pushed_commits,
            COMMITS
        ),
        None => println!("pushed:   nothing"),
    }
    println!("runs:     {}", s.runs);
    println!(
        "mail:     {} message{}",
        s.mails.len(),
        if s.mails.len() == 1 { "" } else { "s" }
    );
    for m in &s.mails {
        println!("          {m}");
    }
    if let Some(dir) = outbox {
        println!("outbox:   {}", dir.display());
    }
    println!("upstream: {}", s.upstream.display());
}

/// Commits on staging ahead of master.
const COMMITS: usize = 20;
/// The commit (1-based, on staging) that breaks the smoke test.
const BREAKS_AT: usize = 13;

const POLICY: &str = include_str!("../../policies/sample.toml");
const SMOKE: &str = include_str!("../../sequences/smoke.toml");

const GREET: &str = "#!/bin/sh\n# Greets everyone named on the command line.\nfor name in \"$@\"; do\n    printf 'Hello, %s!\\n' \"$name\"\ndone\n";
const GREET_BROKEN: &str = "#!/bin/sh\n# Greets everyone named on the command line.\nfor name in \"$@\"; do\n    printf 'Hello %s\\n' \"$name\"\ndone\n";
const TEST: &str = "#!/bin/sh\n# The sample project's unit test.\nout=$(sh ./greet.sh Xen)\nif [ \"$out\" != \"Hello, Xen!\" ]; then\n    echo \"FAIL: greet.sh Xen printed '$out', expected 'Hello, Xen!'\" >&2\n    exit 1\nfi\necho \"PASS: greet.sh\"\n";

const AUTHORS: [(&str, &str); 4] = [
    ("Alice Example", "alice@example.org"),
    ("Bob Example", "bob@example.org"),
    ("Carol Example", "carol@example.org"),
    ("Dave Example", "dave@example.org"),
];

const TITLES: [&str; COMMITS] = [
    "docs: say what the sample project is for",
    "changes: start a change log",
    "test: explain how to run the unit test",
    "docs: add a usage example",
    "changes: note the usage example",
    "docs: mention the licence",
    "changes: record the 0.1 release",
    "docs: fix a typo in the example",
    "changes: open 0.2",
    "docs: describe the exit status",
    "changes: note the exit status",
    "docs: add a section on portability",
    "greet: simplify the greeting",
    "changes: note the simpler greeting",
    "docs: list the authors",
    "changes: credit the authors",
    "docs: reflow the README",
    "changes: tidy the 0.2 entry",
    "docs: link the change log",
    "changes: record the 0.2 release",
];

#[derive(Debug, thiserror::Error)]
enum DemoError {
    #[error("{0} is not empty; give a new or empty directory with --dir")]
    NotEmpty(PathBuf),
    #[error("setting up {path}: {message}")]
    Setup { path: PathBuf, message: String },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

fn setup(path: &Path) -> impl Fn(String) -> DemoError + '_ {
    move |message| DemoError::Setup {
        path: path.to_path_buf(),
        message,
    }
}

/// What the demo did, as `--json` prints it.
#[derive(Debug, Serialize)]
struct DemoSummary {
    pub dir: PathBuf,
    pub upstream: PathBuf,
    pub verdict: Option<Verdict>,
    pub reason: String,
    pub flight: Option<i64>,
    /// Where master is now.
    pub pushed_to: Option<String>,
    pub pushed_commits: usize,
    pub culprit: Option<String>,
    pub culprit_title: Option<String>,
    /// The sample's known culprit, to check the answer against.
    pub expected_culprit: String,
    pub runs: usize,
    pub mails: Vec<String>,
}

/// Writes one commit of `files` on top of `parent` in a bare repository.
fn commit(
    repo: &Repository,
    parent: Option<Oid>,
    files: &BTreeMap<&str, String>,
    author: &Signature,
    committer: &Signature,
    message: &str,
) -> Result<Oid, git2::Error> {
    let mut tree = repo.treebuilder(None)?;
    for (name, content) in files {
        let blob = repo.blob(content.as_bytes())?;
        let mode = if name.ends_with(".sh") {
            0o100755
        } else {
            0o100644
        };
        tree.insert(name, blob, mode)?;
    }
    let tree = repo.find_tree(tree.write()?)?;
    let parents: Vec<git2::Commit> = parent
        .map(|p| repo.find_commit(p))
        .transpose()?
        .into_iter()
        .collect();
    let parent_refs: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(None, author, committer, message, &tree, &parent_refs)
}

/// Creates the sample upstream repository; returns the sha of each staging commit (1-based
/// index `i` is `shas[i - 1]`). Commit times are fixed, so the shas are the same every time.
fn create_upstream(path: &Path) -> Result<Vec<Oid>, git2::Error> {
    let repo = Repository::init_bare(path)?;
    let epoch = 1_767_225_600; // 2026-01-01
    let maintainer = |i: i64| {
        Signature::new(
            "Mia Maintainer",
            "mia@example.org",
            &Time::new(epoch + i * 3600, 0),
        )
    };
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    files.insert("README", "A sample project for the pushgate demo.\n".into());
    files.insert("CHANGES", String::new());
    files.insert("greet.sh", GREET.into());
    files.insert("test.sh", TEST.into());
    let base = commit(
        &repo,
        None,
        &files,
        &maintainer(0)?,
        &maintainer(0)?,
        "Start the sample project\n",
    )?;
    repo.reference("refs/heads/master", base, true, "demo")?;
    let mut shas = Vec::new();
    let mut at = base;
    for (i, title) in TITLES.iter().enumerate() {
        let n = i + 1;
        if n == BREAKS_AT {
            files.insert("greet.sh", GREET_BROKEN.into());
        } else if title.starts_with("docs") {
            if let Some(readme) = files.get_mut("README") {
                readme.push_str(&format!(
                    "{title}.
"
                ));
            }
        } else {
            if let Some(changes) = files.get_mut("CHANGES") {
                changes.push_str(&format!(
                    "- {title}
"
                ));
            }
        }
        let (name, email) = AUTHORS[i % AUTHORS.len()];
        let author = Signature::new(name, email, &Time::new(epoch + n as i64 * 3600, 0))?;
        let message = format!("{title}\n\nSigned-off-by: {name} <{email}>\n");
        at = commit(
            &repo,
            Some(at),
            &files,
            &author,
            &maintainer(n as i64)?,
            &message,
        )?;
        shas.push(at);
    }
    repo.reference("refs/heads/staging", at, true, "demo")?;
    repo.set_head("refs/heads/master")?;
    Ok(shas)
}

/// Lays out the demo's directory: upstream, policy, sequence and config.
fn prepare(dir: &Path) -> Result<(Config, Vec<Oid>), DemoError> {
    let fail = setup(dir);
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| fail(e.to_string()))?
            .next()
            .is_some()
    {
        return Err(DemoError::NotEmpty(dir.to_path_buf()));
    }
    for sub in ["policies", "sequences"] {
        std::fs::create_dir_all(dir.join(sub)).map_err(|e| fail(e.to_string()))?;
    }
    let shas =
        create_upstream(&dir.join("upstream.git")).map_err(|e| fail(e.message().to_string()))?;
    std::fs::write(dir.join("policies/sample.toml"), POLICY).map_err(|e| fail(e.to_string()))?;
    std::fs::write(dir.join("sequences/smoke.toml"), SMOKE).map_err(|e| fail(e.to_string()))?;
    // A port picked now, so the links in the demo's mail work when `--serve` shows the page.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| fail(format!("finding a free port: {e}")))?
        .port();
    let config_text = format!(
        "# Written by `pushgate demo`.\nstate_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\n\n[mail]\nfrom = \"pushgate <pushgate@example.org>\"\noutbox_dir = \"outbox\"\n"
    );
    let config_path = dir.join("pushgate.toml");
    std::fs::write(&config_path, config_text).map_err(|e| fail(e.to_string()))?;
    let config = Config::load(Some(&config_path), dir).map_err(ServiceError::from)?;
    Ok((config, shas))
}

/// Runs the demo in `dir` to a decision and delivers its mail.
async fn play(
    dir: &Path,
    progress: Arc<dyn Progress>,
) -> Result<(DemoSummary, Service), DemoError> {
    let (config, shas) = prepare(dir)?;
    let service = Service::open(config, progress).await?;
    let mut outcome = None;
    // A pass ends at a decision; a second one would only find it standing.
    for (_, o) in service.gate_once().await? {
        outcome = Some(o);
    }
    let delivered = service.deliver_mail().await?;
    let expected = shas[BREAKS_AT - 1].to_string();
    let mut summary = DemoSummary {
        dir: dir.to_path_buf(),
        upstream: dir.join("upstream.git"),
        verdict: None,
        reason: String::new(),
        flight: None,
        pushed_to: None,
        pushed_commits: 0,
        culprit: None,
        culprit_title: None,
        expected_culprit: expected,
        runs: 0,
        mails: delivered.sent,
    };
    match outcome {
        Some(BranchOutcome::Decided {
            flight,
            verdict,
            pushed_to,
            culprit,
            reason,
        }) => {
            let row = service
                .store()
                .flight(flight)
                .await
                .map_err(ServiceError::from)?;
            summary.runs = service
                .store()
                .runs(flight)
                .await
                .map_err(ServiceError::from)?
                .len();
            if let Some(row) = row {
                summary.pushed_commits = pushed_to
                    .as_ref()
                    .and_then(|p| row.commits.iter().position(|c| &c.sha == p))
                    .map_or(0, |i| i + 1);
                summary.culprit_title = culprit
                    .as_ref()
                    .and_then(|c| row.commits.iter().find(|x| &x.sha == c))
                    .map(|c| c.title.clone());
            }
            summary.verdict = Some(verdict);
            summary.flight = Some(flight);
            summary.pushed_to = pushed_to;
            summary.culprit = culprit;
            summary.reason = reason;
        }
        Some(BranchOutcome::Idle { message }) | Some(BranchOutcome::Error { message }) => {
            summary.reason = message;
        }
        None => {}
    }
    Ok((summary, service))
}

/// The default demo directory: a new one under the system's temporary directory, kept.
fn default_dir() -> Result<PathBuf, DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("pushgate-demo-")
        .tempdir()
        .map_err(|e| DemoError::Setup {
            path: std::env::temp_dir(),
            message: e.to_string(),
        })?;
    Ok(dir.keep())
}

/// Where the demo's mail goes, for the summary.
fn outbox(config: &Config) -> Option<&Path> {
    match &config.mail {
        MailTransport::Folder(dir) => Some(dir),
        MailTransport::Smtp(_) => None,
    }
}
