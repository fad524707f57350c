//! The local provisioner: each run gets a fresh git worktree of its commit in a work directory
//! on this machine, and each step runs there in a process group of its own, so that a timeout
//! kills everything the step started.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;

use super::{Host, HostError, HostRequest, Provisioner, StepExit};
use crate::repo::worktree;
use crate::sequence::{Step, StepContext};

const HOST_NAME: &str = "local";

/// Runs on this machine, in worktrees under `work_dir`.
pub struct LocalProvisioner {
    work_dir: PathBuf,
}

impl LocalProvisioner {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        LocalProvisioner {
            work_dir: work_dir.into(),
        }
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
        let request = request.clone();
        let commit = request.commit.clone();
        let checkout_dir = dir.clone();
        tokio::task::spawn_blocking(move || add_worktree(&request, &name, &checkout_dir))
            .await
            .map_err(|e| checkout_error(&commit, e.to_string()))??;
        Ok(Box::new(LocalHost { dir }))
    }

    async fn reap(&self, live: &BTreeSet<i64>) -> Result<usize, HostError> {
        let work_dir = self.work_dir.clone();
        let live = live.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            let Ok(entries) = std::fs::read_dir(&work_dir) else {
                return Ok(0);
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
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| spawn_error(format!("sh -c in {}: {e}", cwd.display())))?;
        // If this future is dropped (the service stops mid-step), the guard kills the step's
        // whole group; kill_on_drop alone would reach only `sh`.
        let mut group = child.id().map(GroupGuard);
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
        // It ended by itself: what it left running in the background is its own business.
        if let Some(g) = group.as_mut() {
            g.disarm();
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
                "\n--- pushgate: {note} after {:.2}s\n",
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
        tokio::task::spawn_blocking(move || remove_worktree(&dir))
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

/// Kills a step's process group when dropped, unless disarmed.
struct GroupGuard(u32);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = 0;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.0 > 0 {
            // SAFETY: kill(2) with a negative pid signals a process group and touches no
            // memory. The group is the step's own (process_group(0) above): nothing else is hit.
            unsafe {
                libc::kill(-(self.0 as libc::pid_t), libc::SIGKILL);
            }
        }
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

    #[tokio::test]
    async fn a_step_dropped_mid_run_takes_its_whole_process_group_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost {
            dir: dir.path().to_path_buf(),
        };
        let step = Step {
            name: "hang".into(),
            command: "sleep 3011 & sleep 3012".into(),
            timeout: Duration::from_secs(60),
            workdir: None,
            env: BTreeMap::new(),
            results: None,
        };
        let context = StepContext {
            run_id: 1,
            commit: "0".repeat(40),
            sequence: "s".into(),
        };
        let log = dir.path().join("log");
        let run = host.run_step(&step, &context, &log);
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
