//! `pushgate bench ssh`: the SSH executor's cost per step on loopback, beside a local `sh -c`
//! spawn and OpenSSH's own client (one new connection per command, as a naive harness would),
//! and a 10 MB log streamed with the process's peak memory before and after.
//!
//! It runs against a [`LoopbackSshd`], as the tests do, stopped at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{fail, BenchError, Report, Stats};
use pushgate::hosts::{Connection, LoopbackSshd, StepExit};

#[derive(Debug, Serialize)]
pub struct SshReport {
    pub steps: usize,
    /// Who the steps ran as: the login shell's start-up is part of every step.
    pub user: String,
    /// Opening a connection: TCP, key exchange, host key check, login.
    pub connect: Stats,
    /// One trivial step (`true`) on an open connection, log file included.
    pub step: Stats,
    /// The same command spawned locally with `sh -c`.
    pub local_spawn: Stats,
    /// `ssh host true` with OpenSSH's client: a new connection each time.
    pub openssh_per_command: Stats,
    pub log_bytes: u64,
    pub log_seconds: f64,
    /// Peak resident memory of this process before and after streaming the log.
    pub peak_rss_before_kib: u64,
    pub peak_rss_after_kib: u64,
}

impl Report for SshReport {
    fn table(&self) -> String {
        let row = |name: &str, s: &Stats| {
            format!(
                "{name:<34} {:>9.2} {:>9.2} {:>9.2}\n",
                s.median_ms, s.p90_ms, s.max_ms
            )
        };
        let mut out = format!(
            "{:<34} {:>9} {:>9} {:>9}\n",
            format!("{} runs each as {} (ms)", self.steps, self.user),
            "median",
            "p90",
            "max"
        );
        out += &row("connect (once per run)", &self.connect);
        out += &row("step on an open connection", &self.step);
        out += &row("local sh -c spawn", &self.local_spawn);
        out += &row("OpenSSH client, new connection", &self.openssh_per_command);
        out += &format!(
            "step / local spawn: {:.1}x; OpenSSH per command / step: {:.1}x\n",
            self.step.median_ms / self.local_spawn.median_ms,
            self.openssh_per_command.median_ms / self.step.median_ms
        );
        out += &format!(
            "log: {} MB streamed in {:.2}s ({:.0} MB/s); peak RSS {} KiB before, {} KiB after\n",
            self.log_bytes / 1_000_000,
            self.log_seconds,
            self.log_bytes as f64 / 1e6 / self.log_seconds,
            self.peak_rss_before_kib,
            self.peak_rss_after_kib
        );
        out
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[derive(clap::Args)]
pub struct Args {
    /// Steps run over one SSH connection.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Size of the streamed log, in MiB.
    #[arg(long, default_value_t = 10)]
    log_mb: u64,
    /// Log in as this user (its login shell starts for every step; default: you).
    #[arg(long)]
    user: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn measure(args: &Args) -> Result<SshReport, BenchError> {
    ssh(args.steps.max(1), args.log_mb, args.user.as_deref()).await
}

async fn ssh(steps: usize, log_mb: u64, user: Option<&str>) -> Result<SshReport, BenchError> {
    let server = LoopbackSshd::start(user).map_err(fail)?;
    let target = server.target();
    let dir: PathBuf = server.dir.path().to_path_buf();
    // A directory any login user may use.
    let home = "/tmp".to_string();
    let log = dir.join("step.log");

    let mut connect = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let c = Connection::open(&target)
            .await
            .map_err(|e| fail(e.to_string()))?;
        connect.push(ms(t.elapsed()));
        c.close().await;
    }
    let c = Connection::open(&target)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let (mut step, mut local, mut openssh) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..steps {
        // Interleaved, so that machine noise hits all three alike.
        let t = Instant::now();
        let (exit, _) = c
            .run(
                "bench",
                &home,
                &[],
                "true",
                Duration::from_secs(30),
                &log,
                None,
                None,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        step.push(ms(t.elapsed()));
        if exit != StepExit::Exited(0) {
            return Err(fail(format!("step {i} ended {exit:?}")));
        }
        let t = Instant::now();
        let out = std::fs::File::create(&log).map_err(|e| fail(e.to_string()))?;
        tokio::process::Command::new("sh")
            .args(["-c", "true"])
            .current_dir(&dir)
            .stdout(out)
            .status()
            .await
            .map_err(|e| fail(e.to_string()))?;
        local.push(ms(t.elapsed()));
        if i % 4 == 0 {
            let t = Instant::now();
            let ok = tokio::process::Command::new("ssh")
                .args(["-q", "-o", "BatchMode=yes", "-o"])
                .arg(format!(
                    "UserKnownHostsFile={}",
                    target.known_hosts.display()
                ))
                .arg("-i")
                .arg(&target.key)
                .args(["-p", &target.port.to_string()])
                .arg(format!("{}@127.0.0.1", target.user))
                .arg("true")
                .status()
                .await
                .map_err(|e| fail(format!("ssh: {e}")))?
                .success();
            if ok {
                openssh.push(ms(t.elapsed()));
            }
        }
    }
    if openssh.is_empty() {
        openssh.push(f64::NAN);
    }

    let bytes = log_mb * 1_048_576;
    let before = peak_rss_kib();
    let t = Instant::now();
    c.run(
        "log",
        &home,
        &[],
        &format!("head -c {bytes} /dev/zero | tr '\\0' x"),
        Duration::from_secs(600),
        &log,
        None,
        None,
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    let log_seconds = t.elapsed().as_secs_f64();
    let after = peak_rss_kib();
    let written = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    if written < bytes {
        return Err(fail(format!("the log holds {written} bytes, not {bytes}")));
    }
    c.close().await;
    drop(server);
    Ok(SshReport {
        steps,
        user: target.user.clone(),
        connect: Stats::of(&connect),
        step: Stats::of(&step),
        local_spawn: Stats::of(&local),
        openssh_per_command: Stats::of(&openssh),
        log_bytes: bytes,
        log_seconds,
        peak_rss_before_kib: before,
        peak_rss_after_kib: after,
    })
}
