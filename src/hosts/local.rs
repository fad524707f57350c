//! The local provisioner: each run gets a fresh git worktree of its commit in a work directory
//! on this machine. A run owns every process it starts: each step runs in a cgroup of its own
//! inside the run's (where the machine allows; see [`super::cgroup`]) and in a process group
//! of its own, and what it leaves in the background ends when it ends, or with the run for a
//! step whose `background = "run"`.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::cgroup::{Cgroups, RunCgroup, StepCgroup};
use super::{Host, HostError, HostRequest, Provisioner, StepExit};
use crate::repo::worktree;
use crate::sequence::{Background, Step, StepContext};

const HOST_NAME: &str = "local";

/// Runs on this machine, in worktrees under `work_dir`.
pub struct LocalProvisioner {
    work_dir: PathBuf,
    /// Where runs' cgroups are made; `None` where this machine does not let pushgate.
    cgroups: Option<Cgroups>,
}

impl LocalProvisioner {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        let work_dir = work_dir.into();
        let cgroups = match Cgroups::find(&work_dir) {
            Ok(c) => {
                tracing::debug!("local runs are held in cgroups ({:?})", c.version());
                Some(c)
            }
            Err(why) => {
                tracing::warn!("no cgroup can be made here ({why}): a local step's processes are ended by their process group, and one that leaves it (setsid) escapes");
                None
            }
        };
        LocalProvisioner { work_dir, cgroups }
    }

    /// Every name this provisioner creates carries the run id, so leftovers can be found.
    fn worktree_name(run_id: i64) -> String {
        super::run_name(run_id)
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    async fn acquire(&self, request: &HostRequest) -> Result<Box<dyn Host>, HostError> {
        let name = Self::worktree_name(request.run_id);
        let dir = self.work_dir.join(&name);
        let run_id = request.run_id;
        let request = request.clone();
        let commit = request.commit.clone();
        let checkout_dir = dir.clone();
        tokio::task::spawn_blocking(move || add_worktree(&request, &name, &checkout_dir))
            .await
            .map_err(|e| checkout_error(&commit, e.to_string()))??;
        let cgroup = match &self.cgroups {
            Some(c) => match c.run(run_id) {
                Ok(run) => Some(run),
                Err(e) => {
                    tracing::warn!(run = run_id, error = %e, "cannot make the run's cgroup: its steps are ended by process group");
                    None
                }
            },
            None => None,
        };
        Ok(Box::new(LocalHost {
            dir,
            cgroup,
            services: Mutex::new(Vec::new()),
        }))
    }

    async fn reap(&self, live: &BTreeSet<i64>) -> Result<usize, HostError> {
        let work_dir = self.work_dir.clone();
        let cgroups = self.cgroups.clone();
        let live = live.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = cgroups.as_ref().map_or(0, |c| c.reap(&live));
            let Ok(entries) = std::fs::read_dir(&work_dir) else {
                return Ok(removed);
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let leftover =
                    super::run_id_in(&name.to_string_lossy()).is_some_and(|id| !live.contains(&id));
                if leftover {
                    std::fs::remove_dir_all(entry.path()).map_err(|e| HostError::Cleanup {
                        host: HOST_NAME.into(),
                        message: format!("{}: {e}", entry.path().display()),
                    })?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(|e| HostError::Cleanup {
            host: HOST_NAME.into(),
            message: e.to_string(),
        })?
    }
}

fn checkout_error(commit: &str, message: String) -> HostError {
    HostError::Checkout {
        host: HOST_NAME.into(),
        commit: commit.to_string(),
        message,
    }
}

/// Adds a detached worktree of the commit.
fn add_worktree(request: &HostRequest, name: &str, dir: &Path) -> Result<(), HostError> {
    let fail = |e: git2::Error| checkout_error(&request.commit, e.message().to_string());
    let repo = git2::Repository::open(&request.repository).map_err(fail)?;
    let oid = git2::Oid::from_str(&request.commit).map_err(fail)?;
    worktree::add_detached(&repo, name, dir, oid).map_err(fail)
}

struct LocalHost {
    dir: PathBuf,
    /// The run's cgroup, which holds every process its steps start.
    cgroup: Option<RunCgroup>,
    /// Without a cgroup: the process groups of steps whose services run on until the run ends.
    services: Mutex<Vec<u32>>,
}

#[async_trait]
impl Host for LocalHost {
    fn name(&self) -> String {
        HOST_NAME.to_string()
    }

    async fn run_step(
        &self,
        step: &Step,
        context: &StepContext,
        log: &Path,
    ) -> Result<StepExit, HostError> {
        let spawn_error = |message: String| HostError::Spawn {
            host: HOST_NAME.into(),
            step: step.name.clone(),
            message,
        };
        let cwd = match &step.workdir {
            Some(w) => self.dir.join(w),
            None => self.dir.clone(),
        };
        let cgroup = match &self.cgroup {
            Some(run) => match run.step(&step.name) {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => return Err(spawn_error(format!("making the step's cgroup: {e}"))),
            },
            None => None,
        };
        let out = File::create(log).map_err(|e| spawn_error(format!("{}: {e}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| spawn_error(format!("{}: {e}", log.display())))?;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&step.command)
            .current_dir(&cwd)
            .env("PUSHGATE_COMMIT", &context.commit)
            .env("PUSHGATE_RUN_ID", context.run_id.to_string())
            .env("PUSHGATE_SEQUENCE", &context.sequence)
            .env("PUSHGATE_STEP", &step.name)
            .env("PUSHGATE_CHECKOUT", &self.dir)
            .envs(&step.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .kill_on_drop(true);
        if let Some(c) = &cgroup {
            let c = Arc::clone(c);
            // SAFETY: `enter` only opens, writes and closes a file, which is what may run
            // between fork and exec.
            unsafe {
                command.pre_exec(move || c.enter());
            }
        }
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| spawn_error(format!("sh -c in {}: {e}", cwd.display())))?;
        // If this future is dropped (the service stops mid-step), the guard ends the step's
        // processes; kill_on_drop alone would reach only `sh`.
        let mut group = child.id().map(|pgid| StepProcesses {
            pgid,
            cgroup: cgroup.clone(),
        });
        let exit = match tokio::time::timeout(step.timeout, child.wait()).await {
            Ok(Ok(status)) => match (status.code(), status.signal()) {
                (Some(code), _) => StepExit::Exited(code),
                (None, Some(signal)) => StepExit::Signalled(signal),
                (None, None) => StepExit::Signalled(0),
            },
            Ok(Err(e)) => return Err(spawn_error(format!("waiting for the step: {e}"))),
            Err(_) => {
                drop(group.take());
                let _ = child.wait().await;
                StepExit::TimedOut
            }
        };
        // What it left running in the background ends now, or with the run.
        let mut left = String::new();
        if let Some(g) = group.take() {
            match step.background {
                Background::Step => {
                    let ended = tokio::task::spawn_blocking(move || g.end())
                        .await
                        .unwrap_or(0);
                    if ended > 0 {
                        left = format!("; ended {ended} process(es) it left running");
                    }
                }
                Background::Run => {
                    let pgid = g.keep_for_the_run();
                    if self.cgroup.is_none() {
                        self.services
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(pgid);
                    }
                }
            }
        }
        let note = match exit {
            StepExit::Exited(code) => format!("exit status {code}"),
            StepExit::Signalled(signal) => format!("killed by signal {signal}"),
            StepExit::TimedOut => format!(
                "timed out after {}; killed its process group",
                humantime::format_duration(step.timeout)
            ),
        };
        append_note(
            log,
            &format!(
                "\n--- pushgate: {note} after {:.2}s{left}\n",
                started.elapsed().as_secs_f64()
            ),
        )
        .await;
        Ok(exit)
    }

    async fn fetch(
        &self,
        step: &Step,
        pattern: &str,
        into: &Path,
    ) -> Result<Vec<PathBuf>, HostError> {
        let base = match &step.workdir {
            Some(w) => self.dir.join(w),
            None => self.dir.clone(),
        };
        let (pattern, into) = (pattern.to_string(), into.to_path_buf());
        let fail = {
            let pattern = pattern.clone();
            move |message: String| HostError::Fetch {
                host: HOST_NAME.into(),
                pattern: pattern.clone(),
                message,
            }
        };
        tokio::task::spawn_blocking(move || copy_matching(&base, &pattern, &into).map_err(fail))
            .await
            .map_err(|e| HostError::Fetch {
                host: HOST_NAME.into(),
                pattern: String::new(),
                message: e.to_string(),
            })?
    }

    async fn release(self: Box<Self>) -> Result<(), HostError> {
        let dir = self.dir.clone();
        let services =
            std::mem::take(&mut *self.services.lock().unwrap_or_else(|e| e.into_inner()));
        let cgroup = self.cgroup;
        tokio::task::spawn_blocking(move || {
            end_run(services, cgroup);
            remove_worktree(&dir)
        })
        .await
        .map_err(|e| HostError::Cleanup {
            host: HOST_NAME.into(),
            message: e.to_string(),
        })?
    }
}

/// Copies the files under `base` that match `pattern` into `into`, flattened by name.
fn copy_matching(base: &Path, pattern: &str, into: &Path) -> Result<Vec<PathBuf>, String> {
    let full = base.join(pattern);
    let full = full.to_str().ok_or("the path is not UTF-8")?;
    let escaped = glob::Pattern::escape(&base.to_string_lossy());
    let pattern = format!("{escaped}{}", &full[base.to_string_lossy().len()..]);
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut out = Vec::new();
    for entry in glob::glob(&pattern).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?;
        if !path.is_file() {
            continue;
        }
        let name = path.file_name().unwrap_or_default();
        let dest = into.join(format!("{}-{}", out.len(), name.to_string_lossy()));
        std::fs::copy(&path, &dest).map_err(|e| format!("{}: {e}", path.display()))?;
        out.push(dest);
    }
    Ok(out)
}

fn remove_worktree(dir: &Path) -> Result<(), HostError> {
    worktree::remove(dir).map_err(|message| HostError::Cleanup {
        host: HOST_NAME.into(),
        message: format!("{}: {message}", dir.display()),
    })
}

/// The processes of a step: its process group and, where there is one, its cgroup. Ended
/// when dropped (a step whose future is dropped ends with it), unless kept for the run.
struct StepProcesses {
    /// 0 once ended or kept.
    pgid: u32,
    cgroup: Option<Arc<StepCgroup>>,
}

impl StepProcesses {
    /// Ends every process the step started and still runs; how many there were (as far as a
    /// cgroup can tell; without one, 0).
    fn end(mut self) -> usize {
        self.end_now()
    }

    fn end_now(&mut self) -> usize {
        let ended = self.cgroup.as_ref().map_or(0, |c| c.count());
        if self.pgid > 0 {
            kill_group(self.pgid);
            self.pgid = 0;
        }
        if let Some(c) = self.cgroup.take() {
            c.end();
        }
        ended
    }

    /// Leaves the step's processes to the run (its cgroup holds them); the process group, to
    /// end them by where there is no cgroup.
    fn keep_for_the_run(mut self) -> u32 {
        self.cgroup = None;
        std::mem::take(&mut self.pgid)
    }
}

impl Drop for StepProcesses {
    fn drop(&mut self) {
        self.end_now();
    }
}

/// The run is over: so are the services its steps left running.
fn end_run(services: Vec<u32>, cgroup: Option<RunCgroup>) {
    for pgid in services {
        kill_group(pgid);
    }
    if let Some(c) = cgroup {
        c.end();
    }
}

fn kill_group(pgid: u32) {
    // SAFETY: kill(2) with a negative pid signals a process group and touches no memory. The
    // group is a step's own (process_group(0)): nothing else is hit.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

async fn append_note(log: &Path, note: &str) {
    if let Ok(mut f) = tokio::fs::OpenOptions::new().append(true).open(log).await {
        let _ = f.write_all(note.as_bytes()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn alive(marker: &str) -> bool {
        std::process::Command::new("pgrep")
            .args(["-f", marker])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    }

    /// Whether a process matching `marker` is still there after up to 5 s.
    async fn still_alive(marker: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive(marker) {
            if std::time::Instant::now() > deadline {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    fn step(name: &str, command: &str, background: Background) -> Step {
        Step {
            name: name.into(),
            command: command.into(),
            timeout: Duration::from_secs(60),
            workdir: None,
            env: BTreeMap::new(),
            results: None,
            background,
        }
    }

    /// A host in a run's cgroup, as the provisioner makes one on this machine.
    fn host_in_a_cgroup(dir: &Path, run_id: i64) -> (LocalHost, Cgroups) {
        let cgroups = Cgroups::find(dir).expect("this machine lets pushgate make cgroups");
        let host = LocalHost {
            dir: dir.to_path_buf(),
            cgroup: Some(cgroups.run(run_id).unwrap()),
            services: Mutex::new(Vec::new()),
        };
        (host, cgroups)
    }

    fn context() -> StepContext {
        StepContext {
            run_id: 1,
            commit: "0".repeat(40),
            sequence: "s".into(),
        }
    }

    #[tokio::test]
    async fn a_step_that_double_forks_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _cgroups) = host_in_a_cgroup(dir.path(), 1);
        // One child leaves the step's process group and session, one stays in it.
        let forks = step(
            "forks",
            "setsid sleep 3021 & sleep 3022 & sleep 0.2",
            Background::Step,
        );
        let log = dir.path().join("log");
        let exit = host.run_step(&forks, &context(), &log).await.unwrap();
        assert_eq!(exit, StepExit::Exited(0));
        assert!(
            !still_alive("sleep 302[12]").await,
            "a background child outlived its step"
        );
        let log = std::fs::read_to_string(&log).unwrap();
        assert!(log.contains("ended 2 process(es) it left running"), "{log}");
        end_run(Vec::new(), host.cgroup);
    }

    #[tokio::test]
    async fn a_service_a_step_leaves_for_the_run_ends_with_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let (host, _cgroups) = host_in_a_cgroup(dir.path(), 2);
        let start = step(
            "start",
            "setsid sleep 3031 > /dev/null 2>&1 &",
            Background::Run,
        );
        let log = dir.path().join("log");
        host.run_step(&start, &context(), &log).await.unwrap();
        // The next step finds the service running.
        let uses = step("uses", "pgrep -f 'sleep 303[1]'", Background::Step);
        let exit = host.run_step(&uses, &context(), &log).await.unwrap();
        assert_eq!(exit, StepExit::Exited(0), "the service ended with its step");
        end_run(Vec::new(), host.cgroup);
        assert!(
            !still_alive("sleep 303[1]").await,
            "the service outlived its run"
        );
    }

    #[tokio::test]
    async fn what_a_killed_pushgate_left_running_is_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let (host, cgroups) = host_in_a_cgroup(dir.path(), 3);
        let start = step(
            "start",
            "setsid sleep 3041 > /dev/null 2>&1 &",
            Background::Run,
        );
        host.run_step(&start, &context(), &dir.path().join("log"))
            .await
            .unwrap();
        // pushgate is killed: the host is never released.
        drop(host);
        assert!(alive("sleep 304[1]"));
        // The next start finds the run's cgroup by its state directory and ends it; a live run
        // would be left alone.
        let again = Cgroups::find(dir.path()).unwrap();
        assert_eq!(again.reap(&BTreeSet::from([4])), 1);
        assert!(!still_alive("sleep 304[1]").await);
        assert_eq!(cgroups.reap(&BTreeSet::new()), 0, "nothing left to reap");
    }

    #[tokio::test]
    async fn a_step_dropped_mid_run_takes_its_whole_process_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost {
            dir: dir.path().to_path_buf(),
            cgroup: None,
            services: Mutex::new(Vec::new()),
        };
        let hang = step("hang", "sleep 3011 & sleep 3012", Background::Step);
        let log = dir.path().join("log");
        let context = context();
        let run = host.run_step(&hang, &context, &log);
        // Cancel the step the way a stopping service does: by dropping its future.
        assert!(tokio::time::timeout(Duration::from_millis(500), run)
            .await
            .is_err());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive("sleep 301[12]") {
            assert!(
                std::time::Instant::now() < deadline,
                "the step's processes survived"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
