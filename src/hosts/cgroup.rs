//! Control groups that hold every process a run starts on this machine, so that the run can
//! end all of them: a step that runs `setsid sleep 1000 &` leaves its process group, and
//! killing the group missed it; a cgroup keeps whatever its members fork, in any group or
//! session.
//!
//! The layout, under the cgroup pushgate itself runs in: `pushgate-<state>/run-<id>/step-<n>`,
//! where `<state>` tells apart the pushgates of one machine (a hash of the work directory) and
//! stays the same across restarts, so a restarted pushgate finds what a killed one left. cgroup
//! v2 is used where the machine has it and pushgate may write its own cgroup (root, or a
//! systemd service with `Delegate=yes`), else cgroup v1's `pids` hierarchy; no controller is
//! enabled, membership is all that is used.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the members of a cgroup killed with SIGKILL get to be gone before it is given up.
const GONE_WITHIN: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    /// v1's `pids` hierarchy.
    V1,
}

/// Where this pushgate makes its runs' cgroups.
#[derive(Clone, Debug)]
pub struct Cgroups {
    dir: PathBuf,
    version: Version,
}

impl Cgroups {
    /// The cgroups of the pushgate whose work directory is `work_dir`, when this machine lets
    /// pushgate make them; `None` (and the reason) when it does not.
    pub fn find(work_dir: &Path) -> Result<Cgroups, String> {
        Self::find_among(work_dir, &[Version::V2, Version::V1])
    }

    /// The first of `versions` this machine lets pushgate make cgroups in.
    fn find_among(work_dir: &Path, versions: &[Version]) -> Result<Cgroups, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("/proc/self/mountinfo: {e}"))?;
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("/proc/self/cgroup: {e}"))?;
        let name = name_for(&work_dir.to_string_lossy());
        let mut reasons = Vec::new();
        for &version in versions {
            let Some(base) = place(&mountinfo, &own, version) else {
                reasons.push(format!("no {version:?} hierarchy"));
                continue;
            };
            let dir = base.join(&name);
            match std::fs::create_dir_all(&dir) {
                Ok(()) => return Ok(Cgroups { dir, version }),
                Err(e) => reasons.push(format!("{}: {e}", dir.display())),
            }
        }
        Err(reasons.join("; "))
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The cgroup of run `run_id`, made if needed.
    pub fn run(&self, run_id: i64) -> io::Result<RunCgroup> {
        let dir = self.dir.join(format!("run-{run_id}"));
        std::fs::create_dir_all(&dir)?;
        Ok(RunCgroup {
            dir,
            version: self.version,
        })
    }

    /// Kills and removes the cgroups of runs that `live` does not hold (a killed pushgate's);
    /// how many there were.
    pub fn reap(&self, live: &std::collections::BTreeSet<i64>) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let id = name
                .to_string_lossy()
                .strip_prefix("run-")
                .and_then(|id| id.parse::<i64>().ok());
            if id.is_some_and(|id| !live.contains(&id)) {
                end(&entry.path(), self.version);
                removed += 1;
            }
        }
        // Fails while a run is in it, as it should; the next run makes it again.
        let _ = std::fs::remove_dir(&self.dir);
        removed
    }
}

/// The cgroup of one run: every step's cgroup is inside it.
#[derive(Debug)]
pub struct RunCgroup {
    dir: PathBuf,
    version: Version,
}

impl RunCgroup {
    /// A fresh cgroup for the run's next step.
    pub fn step(&self, name: &str) -> io::Result<StepCgroup> {
        let safe: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let mut n = 0u64;
        loop {
            n += 1;
            let dir = self.dir.join(format!("step-{n}-{safe}"));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let procs = CString::new(
                        dir.join("cgroup.procs")
                            .into_os_string()
                            .into_encoded_bytes(),
                    )
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    return Ok(StepCgroup {
                        dir,
                        procs,
                        version: self.version,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Kills every process the run started, the services its steps left included, and
    /// removes its cgroups (and this pushgate's, once no run is left in it).
    pub fn end(&self) {
        end(&self.dir, self.version);
        if let Some(parent) = self.dir.parent() {
            // Fails while another run is in it, as it should.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The cgroup of one step.
#[derive(Debug)]
pub struct StepCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, ready for [`StepCgroup::enter`] to open without allocating.
    procs: CString,
    version: Version,
}

impl StepCgroup {
    /// Moves the calling process into the cgroup. Made to run between fork and exec (a
    /// `pre_exec` hook): only open, write and close, no allocation. Everything the process
    /// forks from then on is a member too.
    pub fn enter(&self) -> io::Result<()> {
        // SAFETY: open, write and close on a path owned by self; "0" names the caller.
        unsafe {
            let fd = libc::open(self.procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let error = io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Kills every process still in the step's cgroup and removes it.
    pub fn end(&self) {
        end(&self.dir, self.version);
    }

    /// How many processes are in the step's cgroup now.
    pub fn count(&self) -> usize {
        members(&self.dir).len()
    }
}

/// Kills every member of `dir` and of the cgroups below it, waits until they are gone and
/// removes the cgroups, deepest first. What cannot be removed (a process in uninterruptible
/// sleep) is said in the log and left for the next reap.
fn end(dir: &Path, version: Version) {
    if !dir.exists() {
        return;
    }
    // v2 kills a whole subtree at once and atomically (no fork slips through).
    let killed_at_once =
        version == Version::V2 && std::fs::write(dir.join("cgroup.kill"), "1").is_ok();
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let left = members(dir);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            tracing::warn!(cgroup = %dir.display(), left = left.len(), "processes of a run would not die; left for the next reap");
            return;
        }
        if !killed_at_once {
            for pid in left {
                // SAFETY: kill(2) signals a process and touches no memory; the pid was read
                // from the cgroup a moment ago (a reused pid would have to be in it too).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    remove_tree(dir);
}

/// Every process in `dir` and the cgroups below it.
fn members(dir: &Path) -> Vec<libc::pid_t> {
    let mut pids = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(
                text.lines()
                    .filter_map(|l| l.trim().parse::<libc::pid_t>().ok()),
            );
        }
        if let Ok(entries) = std::fs::read_dir(&d) {
            todo.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    pids
}

/// Removes an empty cgroup and those below it (a cgroup is removed with rmdir, its files
/// being the kernel's).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove a run's cgroup");
    }
}

/// Where the cgroups of `version` below this process's own are made: its own cgroup in that
/// hierarchy, under the hierarchy's mount point.
fn place(mountinfo: &str, own: &str, version: Version) -> Option<PathBuf> {
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut right = right.split_whitespace();
        let fstype = right.next()?;
        let options = right.nth(1).unwrap_or("");
        let point = left.split_whitespace().nth(4)?;
        let wanted = match version {
            Version::V2 => fstype == "cgroup2",
            Version::V1 => fstype == "cgroup" && options.split(',').any(|o| o == "pids"),
        };
        wanted.then(|| PathBuf::from(point))
    })?;
    let path = own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let wanted = match version {
            Version::V2 => id == "0" && controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == "pids"),
        };
        wanted.then(|| path.trim().to_string())
    })?;
    Some(mount.join(path.trim_start_matches('/')))
}

/// The name of the cgroup that holds the runs of the pushgate whose work directory is
/// `work_dir` (on this machine or a host): `pushgate-<hash>`, the same across restarts.
pub fn name_for(work_dir: &str) -> String {
    format!("pushgate-{:016x}", fnv1a(work_dir.as_bytes()))
}

/// FNV-1a, 64 bits: a stable name for a path (std's hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        // A killed child stays a zombie until waited for: that is not running.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    }

    /// A process that double-forks into a cgroup of `version` is ended with the run.
    fn double_fork_ends_with_the_run(version: Version) {
        let dir = tempfile::tempdir().unwrap();
        let cgroups = Cgroups::find_among(dir.path(), &[version]).expect("cgroups here");
        let run = cgroups.run(9).unwrap();
        let step = std::sync::Arc::new(run.step("forks").unwrap());
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "setsid sleep 600 >/dev/null 2>&1 & echo $!"]);
        let entering = std::sync::Arc::clone(&step);
        // SAFETY: `enter` only opens, writes and closes a file.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || entering.enter());
        }
        let out = command.output().unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(alive(pid), "the escaped child runs");
        assert_eq!(step.count(), 1, "the cgroup holds what left the session");
        run.end();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "{version:?}: the escaped child survived its run"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!run.dir.exists());
    }

    #[test]
    fn a_double_fork_ends_with_the_run_in_cgroup_v2() {
        double_fork_ends_with_the_run(Version::V2);
    }

    #[test]
    fn a_double_fork_ends_with_the_run_in_cgroup_v1() {
        double_fork_ends_with_the_run(Version::V1);
    }

    const MOUNTINFO: &str = "\
25 1 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
30 25 0:26 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str =
        "8:pids:/system.slice/pushgate.service\n4:memory:/x\n0::/system.slice/pushgate.service\n";

    #[test]
    fn the_place_is_the_own_cgroup_under_each_hierarchys_mount() {
        assert_eq!(
            place(MOUNTINFO, OWN, Version::V2),
            Some(PathBuf::from(
                "/sys/fs/cgroup/unified/system.slice/pushgate.service"
            ))
        );
        assert_eq!(
            place(MOUNTINFO, OWN, Version::V1),
            Some(PathBuf::from(
                "/sys/fs/cgroup/pids/system.slice/pushgate.service"
            ))
        );
        // A machine with v2 only, pushgate at its root.
        let v2 = "36 25 0:31 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            place(v2, "0::/\n", Version::V2),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(place(v2, "0::/\n", Version::V1), None);
    }
}
