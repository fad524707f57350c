//! Test hosts reached over SSH (russh): one connection per run, one channel per step.
//!
//! - The host key is checked against a known_hosts file; an unknown or changed key refuses the
//!   connection (the run is `broken`), never accepted silently.
//! - A step's stdout and stderr go to its log as they arrive, never held in memory.
//! - Each step runs as the session's own process group (sshd makes every session a new
//!   session), so a timeout kills the whole group over a second channel. Where the host lets
//!   pushgate (root, cgroup v2), the run also has a cgroup, `<cgroup2>/pushgate/run-ID`, and
//!   each step one inside it: what a step leaves in the background, even out of its group
//!   (`setsid`), ends with the step, or with the run for `background = "run"`.
//! - A connection lost mid-step is a [`HostError`]: the host's fault, not the commit's.
//! - The checkout is uploaded as a tar stream of the commit's tree (git2), unpacked by the
//!   host's `tar`; result files come back with `cat`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::ChannelMsg;
use tokio::io::AsyncWriteExt;

use super::{Host, HostError, HostRequest, Provisioner, StepExit};
use crate::sequence::{Background, Step, StepContext};

/// How to reach one SSH host (a static one, a dom0, a guest), as `hosts.toml` says.
#[derive(Clone, Debug, PartialEq)]
pub struct SshTarget {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The private key pushgate logs in with.
    pub key: PathBuf,
    /// Pinned host keys, OpenSSH's format (`[host]:port` for ports other than 22).
    pub known_hosts: PathBuf,
    /// Where runs make their directories on the host.
    pub work_dir: String,
    /// Gives up connecting after this long.
    pub connect_timeout: Duration,
}

impl SshTarget {
    pub fn name(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }
}

/// An open, authenticated connection.
pub struct Connection {
    handle: Handle<Verifier>,
    name: String,
    /// What the last `output` printed on stderr, for `must`'s error.
    last_stderr: Mutex<String>,
}

/// Checks the server's key against known_hosts and remembers why it refused one.
struct Verifier {
    address: String,
    port: u16,
    known_hosts: PathBuf,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Verifier {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            self.refuse("the host offered a certificate; pin its key in known_hosts instead");
            return Ok(false);
        };
        let fingerprint = key.fingerprint(Default::default());
        match russh::keys::check_known_hosts_path(&self.address, self.port, key, &self.known_hosts)
        {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.refuse(&format!(
                    "unknown host key {fingerprint}: {} has no entry for [{}]:{}",
                    self.known_hosts.display(),
                    self.address,
                    self.port
                ));
                Ok(false)
            }
            Err(russh::keys::Error::KeyChanged { line }) => {
                self.refuse(&format!(
                    "the host key CHANGED (now {fingerprint}; {} line {line} pins another): refusing",
                    self.known_hosts.display()
                ));
                Ok(false)
            }
            Err(e) => {
                self.refuse(&format!("cannot read {}: {e}", self.known_hosts.display()));
                Ok(false)
            }
        }
    }
}

impl Verifier {
    fn refuse(&self, why: &str) {
        if let Ok(mut r) = self.refusal.lock() {
            *r = Some(why.to_string());
        }
    }
}

impl Connection {
    /// Connects, verifies the host key and logs in.
    pub async fn open(target: &SshTarget) -> Result<Connection, HostError> {
        let name = target.name();
        let fail = |message: String| HostError::Connect {
            host: name.clone(),
            message,
        };
        let key = russh::keys::load_secret_key(&target.key, None)
            .map_err(|e| fail(format!("cannot load the key {}: {e}", target.key.display())))?;
        let refusal = Arc::new(Mutex::new(None));
        let verifier = Verifier {
            address: target.address.clone(),
            port: target.port,
            known_hosts: target.known_hosts.clone(),
            refusal: refusal.clone(),
        };
        let config = Arc::new(client::Config {
            // Keep-alives find a dead host during a long step.
            keepalive_interval: Some(Duration::from_secs(15)),
            keepalive_max: 4,
            // Steps are small request/answer exchanges: with Nagle's algorithm on, each one
            // waits for delayed ACKs (about 130 ms a step on loopback instead of a few).
            nodelay: true,
            ..Default::default()
        });
        let connect = client::connect(config, (target.address.as_str(), target.port), verifier);
        let mut handle = match tokio::time::timeout(target.connect_timeout, connect).await {
            Err(_) => {
                return Err(fail(format!(
                    "no answer within {:?}",
                    target.connect_timeout
                )))
            }
            Ok(Err(e)) => {
                let why = refusal.lock().ok().and_then(|r| r.clone());
                return Err(fail(why.unwrap_or_else(|| e.to_string())));
            }
            Ok(Ok(h)) => h,
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| fail(e.to_string()))?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !auth.success() {
            return Err(fail(format!(
                "{} refused the key {}",
                target.user,
                target.key.display()
            )));
        }
        Ok(Connection {
            handle,
            name,
            last_stderr: Mutex::new(String::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn lost(&self, step: &str, message: impl Into<String>) -> HostError {
        HostError::Spawn {
            host: self.name.clone(),
            step: step.to_string(),
            message: message.into(),
        }
    }

    /// Opens a channel running `command`.
    async fn exec(
        &self,
        step: &str,
        command: &str,
    ) -> Result<russh::Channel<client::Msg>, HostError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.lost(step, e.to_string()))?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| self.lost(step, e.to_string()))?;
        Ok(channel)
    }

    /// Runs a short command and returns its exit status and stdout (for housekeeping only:
    /// output is held in memory).
    pub async fn output(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<(u32, Vec<u8>), HostError> {
        let mut channel = self.exec(command, command).await?;
        if let Some(data) = stdin {
            channel
                .data(data)
                .await
                .map_err(|e| self.lost(command, e.to_string()))?;
        }
        channel
            .eof()
            .await
            .map_err(|e| self.lost(command, e.to_string()))?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut code = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } if err.len() < 64 * 1024 => {
                    err.extend_from_slice(&data)
                }
                ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                _ => {}
            }
        }
        let code = code
            .ok_or_else(|| self.lost(command, "the connection closed before the command ended"))?;
        self.last_stderr
            .lock()
            .map(|mut e| *e = String::from_utf8_lossy(&err).trim().to_string())
            .ok();
        Ok((code, out))
    }

    /// Runs a command that must succeed; its failure says what it printed on stderr.
    pub async fn must(&self, command: &str, stdin: Option<&[u8]>) -> Result<Vec<u8>, HostError> {
        let (code, out) = self.output(command, stdin).await?;
        if code != 0 {
            let stderr = self
                .last_stderr
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            let tail: String = {
                let chars: Vec<char> = stderr.chars().collect();
                chars[chars.len().saturating_sub(400)..].iter().collect()
            };
            let said = if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            };
            return Err(self.lost(command, format!("`{command}` exited {code}{said}")));
        }
        Ok(out)
    }

    /// Streams a local file to `remote` (created or replaced).
    pub async fn upload(&self, local: &Path, remote: &str) -> Result<(), HostError> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| self.lost("upload", format!("{}: {e}", local.display())))?;
        let command = format!("cat > {}", quote(remote));
        let mut channel = self.exec("upload", &command).await?;
        channel
            .data(file)
            .await
            .map_err(|e| self.lost("upload", e.to_string()))?;
        channel
            .eof()
            .await
            .map_err(|e| self.lost("upload", e.to_string()))?;
        let mut code = None;
        while let Some(msg) = channel.wait().await {
            if let ChannelMsg::ExitStatus { exit_status } = msg {
                code = Some(exit_status);
            }
        }
        match code {
            Some(0) => Ok(()),
            Some(c) => Err(self.lost("upload", format!("`{command}` exited {c}"))),
            None => Err(self.lost("upload", "the connection closed mid-upload")),
        }
    }

    /// Streams `remote` into a local file, chunk by chunk.
    pub async fn download(&self, remote: &str, local: &Path) -> Result<(), HostError> {
        let mut out = tokio::fs::File::create(local)
            .await
            .map_err(|e| self.lost("download", format!("{}: {e}", local.display())))?;
        let command = format!("cat -- {}", quote(remote));
        let mut channel = self.exec("download", &command).await?;
        let mut code = None;
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out
                    .write_all(&data)
                    .await
                    .map_err(|e| self.lost("download", format!("{}: {e}", local.display())))?,
                ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                _ => {}
            }
        }
        out.flush()
            .await
            .map_err(|e| self.lost("download", e.to_string()))?;
        match code {
            Some(0) => Ok(()),
            Some(c) => Err(self.lost("download", format!("`{command}` exited {c}"))),
            None => Err(self.lost("download", "the connection closed mid-download")),
        }
    }

    /// Runs `command` in `dir` with `env`, streaming its output to `log`; kills its process
    /// group when it outlives `timeout`. With `pgids`, the group's id is appended to that
    /// file on the host first, so that a reaper can kill the step if pushgate dies during it;
    /// with `cgroup`, the step runs in that cgroup (made if needed). Returns how it ended and
    /// its process group's id, when the host said it.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        &self,
        step: &str,
        dir: &str,
        env: &[(String, String)],
        command: &str,
        timeout: Duration,
        log: &Path,
        pgids: Option<&str>,
        cgroup: Option<&str>,
    ) -> Result<(StepExit, Option<u32>), HostError> {
        let mut out = tokio::fs::File::create(log)
            .await
            .map_err(|e| self.lost(step, format!("{}: {e}", log.display())))?;
        let record = pgids.map_or(String::new(), |f| format!("echo $$ >> {} && ", quote(f)));
        // The wrapper shell enters the step's cgroup before it becomes the step: everything
        // the step forks is in it.
        let enter = cgroup.map_or(String::new(), |c| {
            format!(
                "mkdir -p {c} && echo $$ > {procs} && ",
                c = quote(c),
                procs = quote(&format!("{c}/cgroup.procs"))
            )
        });
        let mut line = format!(
            "{record}{enter}cd {} && echo {PID_MARK}$$ && exec env",
            quote(dir)
        );
        for (k, v) in env {
            line.push(' ');
            line.push_str(&quote(&format!("{k}={v}")));
        }
        line.push_str(" sh -c ");
        line.push_str(&quote(command));
        let mut channel = self.exec(step, &line).await?;
        channel
            .eof()
            .await
            .map_err(|e| self.lost(step, e.to_string()))?;
        let started = Instant::now();
        let mut pid: Option<u32> = None;
        let mut first_line = Vec::new();
        let mut exit: Option<StepExit> = None;
        let watched = async {
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => {
                        let mut data: &[u8] = &data;
                        if pid.is_none() {
                            // The wrapper's first line says which process group is the step's.
                            first_line.extend_from_slice(data);
                            let Some(end) = first_line.iter().position(|&b| b == b'\n') else {
                                continue;
                            };
                            let text = String::from_utf8_lossy(&first_line[..end]).into_owned();
                            pid = text
                                .strip_prefix(PID_MARK)
                                .and_then(|p| p.trim().parse().ok())
                                .or(Some(0));
                            let rest = first_line.split_off(end + 1);
                            out.write_all(&rest).await?;
                            data = &[];
                        }
                        out.write_all(data).await?;
                    }
                    ChannelMsg::ExtendedData { data, .. } => out.write_all(&data).await?,
                    ChannelMsg::ExitStatus { exit_status } => {
                        exit = Some(StepExit::Exited(exit_status as i32));
                    }
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        exit = Some(StepExit::Signalled(signal_number(&signal_name)));
                    }
                    _ => {}
                }
            }
            Ok::<(), std::io::Error>(())
        };
        let timed_out = match tokio::time::timeout(timeout, watched).await {
            Ok(Ok(())) => false,
            Ok(Err(e)) => return Err(self.lost(step, format!("writing {}: {e}", log.display()))),
            Err(_) => true,
        };
        let exit = if timed_out {
            self.kill_group(step, pid).await?;
            let _ = channel.close().await;
            StepExit::TimedOut
        } else {
            match exit {
                Some(e) => e,
                None => {
                    let _ = out
                        .write_all(
                            b"\n--- pushgate: the connection to the host was lost mid-step\n",
                        )
                        .await;
                    return Err(self.lost(step, "the connection to the host was lost mid-step"));
                }
            }
        };
        let note = match exit {
            StepExit::Exited(code) => format!("exit status {code}"),
            StepExit::Signalled(signal) => format!("killed by signal {signal}"),
            StepExit::TimedOut => format!(
                "timed out after {}; killed its process group on {}",
                humantime::format_duration(timeout),
                self.name
            ),
        };
        let _ = out
            .write_all(
                format!(
                    "\n--- pushgate: {note} after {:.2}s\n",
                    started.elapsed().as_secs_f64()
                )
                .as_bytes(),
            )
            .await;
        Ok((exit, pid.filter(|&p| p > 1)))
    }

    async fn kill_group(&self, step: &str, pid: Option<u32>) -> Result<(), HostError> {
        let Some(pid) = pid.filter(|&p| p > 1) else {
            return Err(self.lost(step, "timed out before it said which process to kill"));
        };
        // TERM first so that well-behaved steps clean up, then KILL whatever is left.
        let kill = format!(
            "kill -TERM -- -{pid} 2>/dev/null; sleep 1; kill -KILL -- -{pid} 2>/dev/null; true"
        );
        self.output(&kill, None).await.map(|_| ())
    }

    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// The wrapper's first line: `PUSHGATE-PID 1234`.
const PID_MARK: &str = "PUSHGATE-PID ";

fn signal_number(sig: &russh::Sig) -> i32 {
    match sig {
        russh::Sig::ABRT => 6,
        russh::Sig::ALRM => 14,
        russh::Sig::FPE => 8,
        russh::Sig::HUP => 1,
        russh::Sig::ILL => 4,
        russh::Sig::INT => 2,
        russh::Sig::KILL => 9,
        russh::Sig::PIPE => 13,
        russh::Sig::QUIT => 3,
        russh::Sig::SEGV => 11,
        russh::Sig::TERM => 15,
        russh::Sig::USR1 => 10,
        _ => 0,
    }
}

pub(crate) fn quote(word: &str) -> String {
    shlex::try_quote(&word.replace('\0', ""))
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// A static machine reached over SSH: each run gets `work_dir/pushgate-run-ID` holding the
/// commit's tree, removed afterwards; leftovers of crashed runs are removed at start.
pub struct SshProvisioner {
    target: SshTarget,
}

impl SshProvisioner {
    pub fn new(target: SshTarget) -> SshProvisioner {
        SshProvisioner { target }
    }

    fn run_dir(&self, run_id: i64) -> String {
        format!(
            "{}/pushgate-run-{run_id}",
            self.target.work_dir.trim_end_matches('/')
        )
    }
}

#[async_trait]
impl Provisioner for SshProvisioner {
    async fn acquire(&self, request: &HostRequest) -> Result<Box<dyn Host>, HostError> {
        let connection = Connection::open(&self.target).await?;
        let dir = self.run_dir(request.run_id);
        upload_checkout(&connection, &dir, request).await?;
        let host = SshHost::new(connection, dir)
            .own_processes(request.run_id)
            .await;
        Ok(Box::new(host))
    }

    async fn reap(&self, live: &BTreeSet<i64>) -> Result<usize, HostError> {
        let connection = Connection::open(&self.target).await?;
        let base = quote(self.target.work_dir.trim_end_matches('/'));
        let list =
            format!("for d in {base}/pushgate-run-*; do [ -e \"$d\" ] && echo \"$d\"; done; true");
        let cleanup = |e: HostError| HostError::Cleanup {
            host: connection.name().to_string(),
            message: e.to_string(),
        };
        let out = connection.must(&list, None).await.map_err(cleanup)?;
        let dead: BTreeSet<i64> = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(super::run_id_in)
            .filter(|id| !live.contains(id))
            .collect();
        for id in &dead {
            // A step still running from a dead run is killed with its whole group, and its
            // cgroup where it had one, first.
            let dir = quote(&self.run_dir(*id));
            let pgids = quote(&pgids_file(&self.run_dir(*id)));
            let cgroup = end_cgroup(&format!("$root/run-{id}"));
            let kill = format!(
                "if [ -f {pgids} ]; then for g in $(cat {pgids}); do kill -KILL -- \"-$g\" 2>/dev/null; done; fi; \
                 if {root}; then {cgroup}; fi; rm -rf {dir} {pgids}",
                root = cgroup_root(self.target.work_dir.trim_end_matches('/'))
            );
            connection.must(&kill, None).await.map_err(cleanup)?;
        }
        connection.close().await;
        Ok(dead.len())
    }
}

/// A shell command that sets `$root` to where the cgroups of runs in `work_dir` go on the host
/// (`pushgate-<hash of work_dir>` under the cgroup v2 mount: two pushgates, or two labs, on one
/// host keep apart), and succeeds when that is there or can be made.
fn cgroup_root(work_dir: &str) -> String {
    let name = super::cgroup::name_for(work_dir);
    format!(
        "root=$(awk '$0 ~ / - cgroup2 / {{print $5; exit}}' /proc/self/mountinfo) && \
         [ -n \"$root\" ] && root=\"$root/{name}\" && mkdir -p \"$root\" 2>/dev/null"
    )
}

/// A shell command that kills every process in the cgroup `dir` (and below), waits until they
/// are gone and removes the cgroups; nothing when `dir` is not there. `cgroup.kill` where the
/// kernel has it (5.14), else each member by pid until none is left.
fn end_cgroup(dir: &str) -> String {
    let d = if dir.starts_with('$') {
        format!("\"{dir}\"")
    } else {
        quote(dir)
    };
    format!(
        "if [ -d {d} ]; then \
           echo 1 > {d}/cgroup.kill 2>/dev/null; \
           i=0; while [ $i -lt 200 ] && [ -n \"$(cat $(find {d} -name cgroup.procs) 2>/dev/null)\" ]; do \
             for p in $(cat $(find {d} -name cgroup.procs) 2>/dev/null); do kill -KILL $p 2>/dev/null; done; \
             sleep 0.05; i=$((i+1)); done; \
           find {d} -depth -type d -exec rmdir {{}} \\; 2>/dev/null; \
         fi; true"
    )
}

/// Where a run's steps' process group ids are kept on the host, beside its directory.
fn pgids_file(run_dir: &str) -> String {
    format!("{run_dir}.pgids")
}

/// Puts the commit's tree in `dir` on the host (emptied first).
pub async fn upload_checkout(
    connection: &Connection,
    dir: &str,
    request: &HostRequest,
) -> Result<(), HostError> {
    let request_c = request.clone();
    let tar = tokio::task::spawn_blocking(move || tree_tar(&request_c))
        .await
        .map_err(|e| checkout_error(connection, request, e.to_string()))?
        .map_err(|e| checkout_error(connection, request, e))?;
    let unpack = format!(
        "rm -rf {d} && mkdir -p {d} && tar -x -C {d}",
        d = quote(dir)
    );
    connection
        .must(&unpack, Some(&tar))
        .await
        .map_err(|e| checkout_error(connection, request, e.to_string()))?;
    Ok(())
}

fn checkout_error(c: &Connection, request: &HostRequest, message: String) -> HostError {
    HostError::Checkout {
        host: c.name().to_string(),
        commit: request.commit.clone(),
        message,
    }
}

/// The commit's tree as a tar archive (modes and symlinks kept, as a checkout has them).
fn tree_tar(request: &HostRequest) -> Result<Vec<u8>, String> {
    let repo = git2::Repository::open(&request.repository).map_err(|e| e.message().to_string())?;
    let oid = git2::Oid::from_str(&request.commit).map_err(|e| e.message().to_string())?;
    let tree = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| e.message().to_string())?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut failure: Option<String> = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |root, entry| {
        let path = format!("{root}{}", entry.name().unwrap_or(""));
        let mode = entry.filemode();
        let kind = entry.kind();
        let result = match kind {
            Some(git2::ObjectType::Blob) => (|| {
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| e.message().to_string())?;
                let mut header = tar::Header::new_gnu();
                header.set_size(blob.content().len() as u64);
                header.set_mtime(0);
                if mode == 0o120000 {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    header.set_mode(0o777);
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    builder
                        .append_link(&mut header, &path, target)
                        .map_err(|e| e.to_string())
                } else {
                    header.set_mode(if mode & 0o111 != 0 { 0o755 } else { 0o644 });
                    builder
                        .append_data(&mut header, &path, blob.content())
                        .map_err(|e| e.to_string())
                }
            })(),
            Some(git2::ObjectType::Tree) => {
                let mut header = tar::Header::new_gnu();
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                header.set_mtime(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(|e| e.to_string())
            }
            // Submodules are not part of the tree's content.
            _ => Ok(()),
        };
        match result {
            Ok(()) => git2::TreeWalkResult::Ok,
            Err(e) => {
                failure = Some(format!("{path}: {e}"));
                git2::TreeWalkResult::Abort
            }
        }
    })
    .map_err(|e| failure.clone().unwrap_or_else(|| e.message().to_string()))?;
    if let Some(f) = failure {
        return Err(f);
    }
    builder.into_inner().map_err(|e| e.to_string())
}

/// A run's directory on an SSH host.
pub struct SshHost {
    connection: Connection,
    dir: String,
    /// The run's cgroup on the host, where it lets pushgate make one.
    cgroup: Option<String>,
    /// Steps run so far: each gets a cgroup of its own.
    steps: std::sync::atomic::AtomicUsize,
}

impl SshHost {
    /// A host on an open connection, running steps in `dir` (which must exist).
    pub fn new(connection: Connection, dir: String) -> SshHost {
        SshHost {
            connection,
            dir,
            cgroup: None,
            steps: Default::default(),
        }
    }

    /// Makes run `run_id`'s cgroup on the host, where the host lets pushgate; else says in the
    /// log that its steps are ended by process group only.
    pub async fn own_processes(mut self, run_id: i64) -> SshHost {
        let work_dir = self.dir.rsplit_once('/').map_or("", |(w, _)| w);
        let made = self
            .connection
            .output(
                &format!(
                    "{} && mkdir -p \"$root/run-{run_id}\" && echo \"$root/run-{run_id}\"",
                    cgroup_root(work_dir)
                ),
                None,
            )
            .await;
        match made {
            Ok((0, out)) => {
                let dir = String::from_utf8_lossy(&out).trim().to_string();
                self.cgroup = (!dir.is_empty()).then_some(dir);
            }
            _ => {
                tracing::info!(host = %self.connection.name(), "no cgroup can be made on this host (cgroup v2 and root needed): a step's processes are ended by its process group, and one that leaves it (setsid) escapes")
            }
        }
        self
    }

    /// Closes the connection and leaves the directory (its machine is about to go).
    pub async fn close(self) {
        self.connection.close().await;
    }

    fn step_dir(&self, step: &Step) -> String {
        match &step.workdir {
            Some(w) => format!("{}/{}", self.dir, w.display()),
            None => self.dir.clone(),
        }
    }
}

#[async_trait]
impl Host for SshHost {
    fn name(&self) -> String {
        self.connection.name().to_string()
    }

    async fn run_step(
        &self,
        step: &Step,
        context: &StepContext,
        log: &Path,
    ) -> Result<StepExit, HostError> {
        let mut env: Vec<(String, String)> = vec![
            ("PUSHGATE_COMMIT".into(), context.commit.clone()),
            ("PUSHGATE_RUN_ID".into(), context.run_id.to_string()),
            ("PUSHGATE_SEQUENCE".into(), context.sequence.clone()),
            ("PUSHGATE_STEP".into(), step.name.clone()),
            ("PUSHGATE_CHECKOUT".into(), self.dir.clone()),
        ];
        env.extend(step.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let n = self
            .steps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let cgroup = self.cgroup.as_ref().map(|c| format!("{c}/step-{n}"));
        let (exit, group) = self
            .connection
            .run(
                &step.name,
                &self.step_dir(step),
                &env,
                &step.command,
                step.timeout,
                log,
                Some(&pgids_file(&self.dir)),
                cgroup.as_deref(),
            )
            .await?;
        // What it left running in the background ends now, or with the run.
        if step.background == Background::Step {
            let end = match (&cgroup, group) {
                (Some(c), _) => Some(end_cgroup(c)),
                (None, Some(g)) => Some(format!("kill -KILL -- -{g} 2>/dev/null; true")),
                (None, None) => None,
            };
            if let Some(end) = end {
                self.connection.output(&end, None).await?;
            }
        }
        Ok(exit)
    }

    async fn fetch(
        &self,
        step: &Step,
        pattern: &str,
        into: &Path,
    ) -> Result<Vec<PathBuf>, HostError> {
        let fail = |message: String| HostError::Fetch {
            host: self.name(),
            pattern: pattern.to_string(),
            message,
        };
        // The pattern is expanded by the host's shell: only path and glob characters pass.
        if pattern.is_empty()
            || !pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/*?[]".contains(c))
        {
            return Err(fail(
                "only letters, digits and `._-/*?[]` may form a results path".into(),
            ));
        }
        let list = format!(
            "cd {} && for f in {pattern}; do [ -f \"$f\" ] && printf '%s\\0' \"$f\"; done; true",
            quote(&self.step_dir(step))
        );
        let (_, out) = self.connection.output(&list, None).await?;
        tokio::fs::create_dir_all(into)
            .await
            .map_err(|e| fail(format!("{}: {e}", into.display())))?;
        let mut files = Vec::new();
        for (i, name) in out.split(|&b| b == 0).filter(|n| !n.is_empty()).enumerate() {
            let name = String::from_utf8_lossy(name).into_owned();
            let base = name.rsplit('/').next().unwrap_or(&name).to_string();
            let local = into.join(format!("{i}-{base}"));
            let remote = format!("{}/{name}", self.step_dir(step));
            self.connection.download(&remote, &local).await?;
            files.push(local);
        }
        Ok(files)
    }

    async fn release(self: Box<Self>) -> Result<(), HostError> {
        // The run is over: so is every process of it, services its steps left included.
        let pgids = quote(&pgids_file(&self.dir));
        let end = match &self.cgroup {
            Some(c) => end_cgroup(c),
            None => format!(
                "if [ -f {pgids} ]; then for g in $(cat {pgids}); do kill -KILL -- \"-$g\" 2>/dev/null; done; fi; true"
            ),
        };
        let result = self
            .connection
            .must(&format!("{end}; rm -rf {} {pgids}", quote(&self.dir)), None)
            .await
            .map(|_| ())
            .map_err(|e| HostError::Cleanup {
                host: self.connection.name().to_string(),
                message: e.to_string(),
            });
        self.connection.close().await;
        result
    }
}
