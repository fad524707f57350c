//! `pushgate bench chaos`: whole flights under random SIGKILLs, then every promise checked.
//!
//! Each trial makes an upstream repository whose staging holds a few commits (one of them
//! breaks the test, in most trials), a policy that gates it with mail to a real SMTP server
//! (aiosmtpd), and then starts `pushgate gate --once` over and over, killing it with SIGKILL
//! at a random moment, until a start runs to its end. What the upstream, the store, the SMTP
//! server and the machine hold afterwards is checked against the gate's promises; every broken
//! promise is counted by name. The same as `tests/crash.rs`, at random and at length.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{fail, git, BenchError, Report};
use pushgate::store::{RunState, Store};

#[derive(clap::Args)]
pub struct Args {
    /// How many trials (each a fresh repository, state and database).
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// A PostgreSQL server's URL (a database it may create databases from); each trial gets
    /// a database of its own there. Default: SQLite in each trial's state directory.
    #[arg(long)]
    database: Option<String>,
    /// Seeds the kills and the worlds, to repeat a run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Kills at most this many starts per trial before letting one finish.
    #[arg(long, default_value_t = 6)]
    max_kills: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The promises checked after every trial, by name.
const PROMISES: &[(&str, &str)] = &[
    ("fast-forward", "master only ever moved fast-forward"),
    (
        "only-passed",
        "master only ever moved to a commit that passes",
    ),
    (
        "pushed-once",
        "no commit was pushed twice (upstream reflog and the store agree)",
    ),
    (
        "decided",
        "a start ran to its end and decided: master where it belongs",
    ),
    ("culprit", "the breaking commit was named"),
    ("test-once", "no finished test was run again"),
    ("mail-once", "no mail was generated twice"),
    ("mail-sent", "every mail was delivered"),
    ("unlocked", "no lock file left in the upstream repository"),
    ("no-process", "no process of a run left behind"),
];

#[derive(Debug, Serialize)]
pub struct ChaosReport {
    pub trials: usize,
    pub database: String,
    pub kills: usize,
    pub starts: usize,
    pub seconds: f64,
    /// Broken promises, by name (every promise listed, 0 when kept).
    pub violations: BTreeMap<String, usize>,
    /// Mail the SMTP server took twice (same Message-ID): the window README admits.
    pub mail_resent: usize,
    /// One line per broken promise: trial, promise, what was seen.
    pub details: Vec<String>,
}

impl ChaosReport {
    pub fn broken(&self) -> usize {
        self.violations.values().sum()
    }
}

impl Report for ChaosReport {
    fn table(&self) -> String {
        let mut out = format!(
            "chaos: {} trials on {}, {} SIGKILLs over {} starts, {:.0} s\n",
            self.trials, self.database, self.kills, self.starts, self.seconds
        );
        for (name, what) in PROMISES {
            out.push_str(&format!(
                "  {:<13} {:>4} broken  {what}\n",
                name, self.violations[*name]
            ));
        }
        out.push_str(&format!(
            "  mail the SMTP server took twice (same Message-ID): {}\n",
            self.mail_resent
        ));
        for d in &self.details {
            out.push_str(&format!("  ! {d}\n"));
        }
        out
    }
}

pub async fn measure(args: &Args) -> Result<ChaosReport, BenchError> {
    let exe = std::env::current_exe().map_err(fail)?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let mut report = ChaosReport {
        trials: args.trials,
        database: if args.database.is_some() {
            "PostgreSQL".into()
        } else {
            "SQLite".into()
        },
        kills: 0,
        starts: 0,
        seconds: 0.0,
        violations: PROMISES.iter().map(|(n, _)| (n.to_string(), 0)).collect(),
        mail_resent: 0,
        details: Vec::new(),
    };
    let started = Instant::now();
    // How long a start that is not killed takes, as far as seen: kills land anywhere in it.
    let mut typical = Duration::from_secs(2);
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    for trial in 1..=args.trials {
        let world = World::make(&mut rng, trial).map_err(fail)?;
        let database = match &args.database {
            Some(admin) => Some(Database::create(admin, trial).await?),
            None => None,
        };
        let outcome = world
            .run(
                &exe,
                &mut rng,
                args.max_kills,
                &mut typical,
                database.as_ref(),
            )
            .await?;
        report.kills += outcome.kills;
        report.starts += outcome.starts;
        report.mail_resent += outcome.mail_resent;
        for (promise, seen) in outcome.broken {
            *report.violations.entry(promise.to_string()).or_default() += 1;
            report
                .details
                .push(format!("trial {trial}: {promise}: {seen}"));
        }
        if let Some(db) = database {
            db.drop().await;
        }
        if progress {
            eprint!("\rchaos: trial {trial}/{}", args.trials);
        }
    }
    if progress {
        eprintln!();
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One trial's repository, policy and expectations.
struct World {
    dir: tempfile::TempDir,
    /// Every commit on staging, oldest first, after `base`.
    commits: Vec<String>,
    base: String,
    /// The index in `commits` of the one that breaks the test.
    breaking: Option<usize>,
    /// In the step's command, so that its processes can be looked for.
    marker: String,
}

/// What a trial saw.
struct Outcome {
    kills: usize,
    starts: usize,
    mail_resent: usize,
    broken: Vec<(&'static str, String)>,
}

impl World {
    fn make(rng: &mut SmallRng, trial: usize) -> Result<World, BenchError> {
        let dir = tempfile::tempdir().map_err(fail)?;
        let d = dir.path();
        let bare = d.join("upstream.git");
        let work = d.join("work");
        git(d, &["init", "-q", "--bare", "-b", "master", path(&bare)])?;
        git(&bare, &["config", "core.logAllRefUpdates", "always"])?;
        git(d, &["init", "-q", "-b", "master", path(&work)])?;
        for (k, v) in [("user.name", "Chaos"), ("user.email", "chaos@example.org")] {
            git(&work, &["config", k, v])?;
        }
        git(&work, &["remote", "add", "origin", path(&bare)])?;
        let commit = |message: &str| -> Result<String, BenchError> {
            git(&work, &["add", "-A"])?;
            git(&work, &["commit", "-q", "-m", message])?;
            git(&work, &["rev-parse", "HEAD"])
        };
        std::fs::write(work.join("README"), "chaos\n").map_err(fail)?;
        let base = commit("base")?;
        git(&work, &["push", "-q", "origin", "master"])?;
        let count = rng.random_range(4..=10);
        // Three trials in four have a commit that breaks the test (never the first: then
        // nothing could be pushed, which tests less).
        let breaking = (rng.random_range(0..4) > 0).then(|| rng.random_range(1..count));
        let mut commits = Vec::new();
        for i in 0..count {
            std::fs::write(work.join("NOTES"), format!("note {i}\n")).map_err(fail)?;
            if Some(i) == breaking {
                std::fs::write(work.join("BROKEN"), "yes\n").map_err(fail)?;
            }
            commits.push(commit(&format!("change {i}"))?);
        }
        git(&work, &["push", "-q", "origin", "HEAD:refs/heads/staging"])?;
        let marker = format!("chaos-{}-{trial}", std::process::id());
        for sub in ["policies", "sequences"] {
            std::fs::create_dir_all(d.join(sub)).map_err(fail)?;
        }
        // A step of 0.1 to 0.3 s; the marker names its shell's command line.
        let nap = rng.random_range(1..=3);
        std::fs::write(
            d.join("sequences/slow.toml"),
            format!(
                "[[step]]\nname = \"test\"\ncommand = \"sleep 0.{nap} # {marker}\\ntest ! -e BROKEN\"\n\
                 timeout = \"1m\"\n"
            ),
        )
        .map_err(fail)?;
        std::fs::write(
            d.join("policies/project.toml"),
            "repository = \"../upstream.git\"\nsequences = [\"slow\"]\nretries = 0\n\
             [mail]\nlist = \"devel@lists.example.org\"\n",
        )
        .map_err(fail)?;
        Ok(World {
            dir,
            commits,
            base,
            breaking,
            marker,
        })
    }

    async fn run(
        &self,
        exe: &Path,
        rng: &mut SmallRng,
        max_kills: usize,
        typical: &mut Duration,
        database: Option<&Database>,
    ) -> Result<Outcome, BenchError> {
        let d = self.dir.path();
        let smtp = Smtp::start(&d.join("maildir"))?;
        let mut config = format!(
            "state_dir = \"state\"\nlisten = \"127.0.0.1:0\"\n[mail]\nsmtp = \"smtp://127.0.0.1:{}\"\n",
            smtp.port
        );
        if let Some(db) = database {
            config.insert_str(0, &format!("database_url = \"{}\"\n", db.url));
        }
        std::fs::write(d.join("pushgate.toml"), config).map_err(fail)?;
        let mut outcome = Outcome {
            kills: 0,
            starts: 0,
            mail_resent: 0,
            broken: Vec::new(),
        };
        let mut finished = false;
        // Starts until one runs to its end; the first `max_kills` may be killed.
        for _ in 0..max_kills + 3 {
            let mut child = tokio::process::Command::new(exe)
                .args(["gate", "--once", "--config", "pushgate.toml"])
                .current_dir(d)
                .env("RUST_LOG", "warn")
                .env("RUST_BACKTRACE", "0")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(fail)?;
            outcome.starts += 1;
            let began = Instant::now();
            let kill_at = (outcome.kills < max_kills).then(|| typical.mul_f64(rng.random::<f64>()));
            let status = match kill_at {
                Some(at) => match tokio::time::timeout(at, child.wait()).await {
                    Ok(status) => Some(status.map_err(fail)?),
                    Err(_) => {
                        let _ = child.kill().await; // SIGKILL
                        outcome.kills += 1;
                        None
                    }
                },
                None => Some(child.wait().await.map_err(fail)?),
            };
            if let Some(status) = status {
                *typical = (*typical).max(began.elapsed());
                if status.success() {
                    finished = true;
                    break;
                }
                outcome.broken.push((
                    "decided",
                    format!("a start that was not killed exited {status}"),
                ));
            }
        }
        if !finished {
            outcome
                .broken
                .push(("decided", "no start ran to its end".into()));
        }
        self.check(database, &smtp, &mut outcome).await?;
        Ok(outcome)
    }

    /// Checks every promise against what the trial left.
    async fn check(
        &self,
        database: Option<&Database>,
        smtp: &Smtp,
        outcome: &mut Outcome,
    ) -> Result<(), BenchError> {
        let d = self.dir.path();
        let bare = d.join("upstream.git");
        let broken = &mut outcome.broken;
        // The upstream: master's every value, oldest first.
        let log = git(&bare, &["log", "-g", "--format=%H", "refs/heads/master"])?;
        let mut history: Vec<String> = log.lines().map(str::to_string).collect();
        history.reverse();
        for pair in history.windows(2) {
            let forward = git(&bare, &["merge-base", "--is-ancestor", &pair[0], &pair[1]]).is_ok();
            if !forward {
                broken.push(("fast-forward", format!("{} -> {}", pair[0], pair[1])));
            }
        }
        let passing = |sha: &str| match self.commits.iter().position(|c| c == sha) {
            Some(i) => self.breaking.is_none_or(|b| i < b),
            None => sha == self.base,
        };
        for sha in &history {
            if !passing(sha) {
                broken.push(("only-passed", format!("master at {sha}")));
            }
        }
        let distinct: HashSet<&String> = history.iter().collect();
        if distinct.len() != history.len() {
            broken.push(("pushed-once", format!("master's values: {history:?}")));
        }
        let expected = match self.breaking {
            Some(0) => &self.base,
            Some(b) => &self.commits[b - 1],
            None => self.commits.last().unwrap_or(&self.base),
        };
        let head = history.last().cloned().unwrap_or_default();
        if &head != expected {
            broken.push(("decided", format!("master at {head}, not {expected}")));
        }
        let locks = pushgate::repo::lock_files(&bare);
        if !locks.is_empty() {
            broken.push(("unlocked", format!("{locks:?}")));
        }
        // The store.
        let url = match database {
            Some(db) => db.url.clone(),
            None => format!("sqlite://{}?mode=rw", d.join("state/pushgate.db").display()),
        };
        let store = Store::open(&url).await.map_err(fail)?;
        let mut kinds: HashMap<(Option<i64>, String), usize> = HashMap::new();
        for branch in store.branches().await.map_err(fail)? {
            let pushes = store.pushes(branch.id).await.map_err(fail)?;
            if pushes.len() + 1 != history.len() {
                broken.push((
                    "pushed-once",
                    format!(
                        "{} pushes recorded, {} moves of master",
                        pushes.len(),
                        history.len() - 1
                    ),
                ));
            }
            for flight in store.recent_flights(branch.id, 100).await.map_err(fail)? {
                if let Some(b) = self.breaking {
                    if flight.culprit.as_deref() != Some(self.commits[b].as_str()) {
                        broken.push((
                            "culprit",
                            format!("flight {}: {:?}", flight.id, flight.culprit),
                        ));
                    }
                }
                let mut seen = HashSet::new();
                for r in store.runs(flight.id).await.map_err(fail)? {
                    if r.state != RunState::Aborted
                        && !seen.insert((r.commit_index, r.role, r.attempt))
                    {
                        broken.push(("test-once", format!("run {} repeats a finished test", r.id)));
                    }
                }
                for mail in store.mail_of_flight(flight.id).await.map_err(fail)? {
                    *kinds
                        .entry((mail.flight_id, mail.kind.clone()))
                        .or_default() += 1;
                    if mail.sent_at.is_none() {
                        broken.push((
                            "mail-sent",
                            format!("{} ({}) unsent", mail.message_id, mail.kind),
                        ));
                    }
                }
            }
        }
        store.close().await;
        for ((flight, kind), n) in kinds {
            if n > 1 {
                broken.push((
                    "mail-once",
                    format!("{n} {kind} mails for flight {flight:?}"),
                ));
            }
        }
        // The SMTP server: a Message-ID twice is the admitted window, not a broken promise.
        let ids = smtp.message_ids();
        let distinct: HashSet<&String> = ids.iter().collect();
        outcome.mail_resent += ids.len() - distinct.len();
        // The machine.
        let left = std::process::Command::new("pgrep")
            .args(["-f", &self.marker])
            .output()
            .map_err(fail)?;
        if !left.stdout.is_empty() {
            broken.push((
                "no-process",
                String::from_utf8_lossy(&left.stdout).trim().to_string(),
            ));
        }
        Ok(())
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// aiosmtpd on a free port of loopback, writing what it takes into a Maildir; stopped when
/// dropped.
struct Smtp {
    port: u16,
    maildir: PathBuf,
    child: std::process::Child,
}

impl Smtp {
    fn start(maildir: &Path) -> Result<Smtp, BenchError> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(fail)?
            .port();
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("aiosmtpd (apt-get install python3-aiosmtpd): {e}")))?;
        let smtp = Smtp {
            port,
            maildir: maildir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(fail("aiosmtpd did not start listening within 20 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(smtp)
    }

    /// The Message-ID of every mail it took.
    fn message_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("Message-ID: "))
                    .map(|id| id.trim().to_string())
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PostgreSQL database made for one trial and dropped after it.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    async fn create(admin: &str, trial: usize) -> Result<Database, BenchError> {
        use sqlx::Connection;
        let name = format!("pushgate_chaos_{}_{trial}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(admin).await.map_err(fail)?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .map_err(fail)?;
        let _ = conn.close().await;
        let (server, query) = match admin.split_once('?') {
            Some((s, q)) => (s, format!("?{q}")),
            None => (admin, String::new()),
        };
        let server = server.rsplit_once('/').map_or(server, |(s, _)| s);
        Ok(Database {
            admin: admin.to_string(),
            url: format!("{server}/{name}{query}"),
            name,
        })
    }

    async fn drop(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}
