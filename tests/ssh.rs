//! Sequences on a real OpenSSH server (Debian's openssh-server) on a loopback port: blocks and
//! worker limits, blockers, finally, timeouts that kill the remote process group, host keys,
//! a connection cut mid-step, result files, file transfer and crash leftovers.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pushgate::hosts::{Connection, HostRequest, Provisioner, SshProvisioner};
use pushgate::run::{self, RunReport, StepRecorder};
use pushgate::sequence::results::SubResult;
use pushgate::sequence::{self, Bindings, PauseOn, StepContext, StepStatus};
use support::commit_all;
use support::sshd::Sshd;

#[derive(Default)]
struct Recorder {
    steps: Mutex<Vec<(String, StepStatus)>>,
    subs: Mutex<BTreeMap<String, Vec<SubResult>>>,
}

#[async_trait]
impl StepRecorder for Recorder {
    type Error = std::convert::Infallible;
    async fn started(&self, _: usize, name: &str, _: &Path) -> Result<i64, Self::Error> {
        let mut s = self.steps.lock().unwrap();
        s.push((name.into(), StepStatus::Running));
        Ok(s.len() as i64 - 1)
    }
    async fn finished(
        &self,
        id: i64,
        status: StepStatus,
        _: Option<i32>,
    ) -> Result<(), Self::Error> {
        self.steps.lock().unwrap()[id as usize].1 = status;
        Ok(())
    }
    async fn blocked(&self, _: usize, name: &str) -> Result<(), Self::Error> {
        self.steps
            .lock()
            .unwrap()
            .push((name.into(), StepStatus::Blocked));
        Ok(())
    }
    async fn results(&self, id: i64, results: &[SubResult]) -> Result<(), Self::Error> {
        let name = self.steps.lock().unwrap()[id as usize].0.clone();
        self.subs.lock().unwrap().insert(name, results.to_vec());
        Ok(())
    }
    async fn paused(&self, _: i64, _: &str) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Recorder {
    fn status(&self, name: &str) -> StepStatus {
        self.steps
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("no step {name}"))
    }
}

/// A repository with one commit holding a script and a subdirectory.
fn repository(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    std::fs::write(repo.join("greet.sh"), "#!/bin/sh\necho hello\n").unwrap();
    std::fs::write(repo.join("sub/keep"), "x\n").unwrap();
    std::os::unix::fs::symlink("greet.sh", repo.join("link")).unwrap();
    let sha = commit_all(&repo, "one");
    (repo, sha)
}

fn load(dir: &Path, name: &str, text: &str) -> sequence::Sequence {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    sequence::load(&path, &Bindings::none(), &[]).unwrap()
}

async fn run(sshd: &Sshd, seq: &sequence::Sequence, run_id: i64) -> (Recorder, RunReport) {
    let (repo, sha) = repository(&sshd.dir.path().join(format!("r{run_id}")));
    let provisioner = SshProvisioner::new(sshd.target());
    let host = provisioner
        .acquire(&HostRequest {
            run_id,
            repository: repo,
            commit: sha.clone(),
        })
        .await
        .unwrap();
    let logs = sshd.dir.path().join(format!("logs{run_id}"));
    std::fs::create_dir_all(&logs).unwrap();
    let recorder = Recorder::default();
    let context = StepContext {
        run_id,
        commit: sha,
        sequence: seq.name.clone(),
    };
    let report = run::execute(
        seq,
        host.as_ref(),
        &context,
        &logs,
        &recorder,
        &PauseOn::Never,
    )
    .await
    .unwrap();
    // A released run's directory and its record of process groups go with it (a run whose
    // connection was cut cannot release: the reaper cleans up after it).
    if host.release().await.is_ok() {
        let work = PathBuf::from(sshd.target().work_dir);
        for leftover in [
            format!("pushgate-run-{run_id}"),
            format!("pushgate-run-{run_id}.pgids"),
        ] {
            assert!(!work.join(&leftover).exists(), "{leftover} was left behind");
        }
    }
    (recorder, report)
}

fn alive(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false)
}

#[tokio::test]
async fn blocks_blockers_finally_env_workdir_and_results_over_ssh() {
    let sshd = Sshd::start();
    let mark = sshd.dir.path().join("mark");
    std::fs::create_dir_all(&mark).unwrap();
    let m = mark.display();
    let conc = "mkdir -p ../.conc && touch ../.conc/$PUSHGATE_STEP && ls ../.conc | wc -l >> $MARK/conc && sleep 0.5 && rm ../.conc/$PUSHGATE_STEP";
    let text = format!(
        r#"
[[step]]
name = "env"
workdir = "sub"
command = "test \"$GREETING\" = 'hello world' && test -f keep && test -L ../link && sh ../greet.sh > $MARK/greeted"
env = {{ GREETING = "hello world", MARK = "{m}" }}

[[step]]
name = "par"
workers = 2
{par}

[[step]]
name = "guarded"
blocker = false
[[step.step]]
name = "fails"
command = "exit 3"
[[step.step]]
name = "skipped"
command = "touch {m}/should-not-exist"
[[step.finally]]
name = "cleanup"
command = "touch {m}/cleaned"

[[step]]
name = "junit"
blocker = false
command = "mkdir -p out && printf '%s' '<testsuite><testcase classname=\"c\" name=\"ok\"/><testcase classname=\"c\" name=\"bad\"><failure message=\"boom\"/></testcase></testsuite>' > out/r.xml"
results = {{ format = "junit", path = "out/*.xml" }}

[[step]]
name = "tap"
blocker = false
command = "printf '1..2\nok 1 - boots\nok 2 - pings\n' > r.tap"
results = {{ format = "tap", path = "*.tap" }}

[[step]]
name = "subunit"
blocker = false
command = "/usr/bin/python3 -c 'import sys, subunit.v2 as v; o = v.StreamResultToBytes(sys.stdout.buffer); o.status(test_id=\"t.ok\", test_status=\"inprogress\"); o.status(test_id=\"t.ok\", test_status=\"success\"); o.status(test_id=\"t.bad\", test_status=\"fail\")' > r.subunit"
results = {{ format = "subunit", path = "r.subunit" }}

[[step]]
name = "missing"
blocker = false
command = "true"
results = {{ format = "junit", path = "nothing/*.xml" }}

[[step]]
name = "last"
command = "true"
"#,
        par = (1..=4)
            .map(|i| format!("[[step.step]]\nname = \"p{i}\"\ncommand = \"{conc}\"\nenv = {{ MARK = \"{m}\" }}\n"))
            .collect::<String>()
    );
    let seq = load(sshd.dir.path(), "remote.toml", &text);
    let (rec, report) = run(&sshd, &seq, 1).await;

    assert_eq!(
        rec.status("env"),
        StepStatus::Pass,
        "{:?}",
        rec.steps.lock().unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(mark.join("greeted")).unwrap(),
        "hello\n"
    );
    let conc: Vec<usize> = std::fs::read_to_string(mark.join("conc"))
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(conc.len(), 4);
    assert_eq!(
        conc.iter().max(),
        Some(&2),
        "two workers at most, and both used: {conc:?}"
    );
    assert_eq!(rec.status("fails"), StepStatus::Fail);
    assert_eq!(rec.status("skipped"), StepStatus::Blocked);
    assert!(!mark.join("should-not-exist").exists());
    assert_eq!(rec.status("cleanup"), StepStatus::Pass);
    assert!(
        mark.join("cleaned").exists(),
        "finally ran after the failure"
    );

    let subs = rec.subs.lock().unwrap().clone();
    let names = |step: &str| -> Vec<(String, &'static str)> {
        subs[step]
            .iter()
            .map(|s| (s.name.clone(), s.status.as_str()))
            .collect()
    };
    assert_eq!(
        names("junit"),
        [("c.ok".into(), "pass"), ("c.bad".into(), "fail")]
    );
    assert_eq!(
        rec.status("junit"),
        StepStatus::Fail,
        "a failing test fails its step"
    );
    assert_eq!(
        names("tap"),
        [("boots".into(), "pass"), ("pings".into(), "pass")]
    );
    assert_eq!(rec.status("tap"), StepStatus::Pass);
    assert_eq!(
        names("subunit"),
        [("t.ok".into(), "pass"), ("t.bad".into(), "fail")]
    );
    assert_eq!(names("missing")[0].1, "error");
    assert_eq!(rec.status("missing"), StepStatus::Fail);
    assert_eq!(rec.status("last"), StepStatus::Pass);
    assert!(report.broken.is_none());
    // The run's directory is gone from the host.
    assert!(!Path::new(&sshd.target().work_dir)
        .join("pushgate-run-1")
        .exists());
}

#[tokio::test]
async fn a_timeout_kills_the_remote_process_group() {
    let sshd = Sshd::start();
    let seq = load(
        sshd.dir.path(),
        "hang.toml",
        "[[step]]\nname = \"hang\"\ncommand = \"sleep 4567 & sleep 4568; echo never\"\ntimeout = \"1s\"\n[[step]]\nname = \"after\"\ncommand = \"true\"\n",
    );
    let started = Instant::now();
    let (rec, _) = run(&sshd, &seq, 2).await;
    assert_eq!(rec.status("hang"), StepStatus::Timeout);
    assert_eq!(rec.status("after"), StepStatus::Blocked);
    assert!(started.elapsed() < Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive("sleep 456[78]") {
        assert!(
            Instant::now() < deadline,
            "the step's processes outlived its timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn what_a_remote_step_leaves_running_ends_with_the_step_or_with_the_run() {
    let sshd = Sshd::start();
    // Out of its group and session, and in it; then a service for the next step.
    let seq = load(
        sshd.dir.path(),
        "forks.toml",
        r#"
[[step]]
name = "forks"
command = "setsid sleep 4671 >/dev/null 2>&1 & sleep 4672 >/dev/null 2>&1 & true"

[[step]]
name = "service"
command = "setsid sleep 4673 >/dev/null 2>&1 &"
background = "run"

[[step]]
name = "uses"
command = "! pgrep -f 'sleep 467[12]' && pgrep -f 'sleep 467[3]'"
"#,
    );
    let (rec, _) = run(&sshd, &seq, 7).await;
    assert_eq!(
        rec.status("uses"),
        StepStatus::Pass,
        "the forks ended, the service ran"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive("sleep 467[123]") {
        assert!(Instant::now() < deadline, "a process outlived its run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_service_a_killed_pushgate_left_on_a_host_is_reaped_through_its_cgroup() {
    let sshd = Sshd::start();
    let (repo, sha) = repository(&sshd.dir.path().join("r53"));
    let provisioner = SshProvisioner::new(sshd.target());
    let host = provisioner
        .acquire(&HostRequest {
            run_id: 53,
            repository: repo,
            commit: sha.clone(),
        })
        .await
        .unwrap();
    let seq = load(
        sshd.dir.path(),
        "service.toml",
        "[[step]]\nname = \"service\"\ncommand = \"setsid sleep 4681 >/dev/null 2>&1 &\"\nbackground = \"run\"\n",
    );
    let step = seq.testcases()[0].step.clone().unwrap();
    let context = StepContext {
        run_id: 53,
        commit: sha,
        sequence: seq.name.clone(),
    };
    let log = sshd.dir.path().join("service.log");
    host.run_step(&step, &context, &log).await.unwrap();
    // pushgate dies: the host is never released, and the service left its process group.
    drop(host);
    assert!(alive("sleep 468[1]"));
    assert_eq!(provisioner.reap(&Default::default()).await.unwrap(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive("sleep 468[1]") {
        assert!(Instant::now() < deadline, "the reaper missed the service");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn unknown_and_changed_host_keys_are_refused() {
    let sshd = Sshd::start();
    let mut target = sshd.target();
    target.known_hosts = sshd.changed_known_hosts().unwrap();
    let e = Connection::open(&target)
        .await
        .err()
        .expect("a changed key is refused");
    assert!(e.to_string().contains("CHANGED"), "{e}");

    let empty = sshd.dir.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    target.known_hosts = empty;
    let e = Connection::open(&target)
        .await
        .err()
        .expect("an unknown key is refused");
    assert!(e.to_string().contains("unknown host key"), "{e}");

    // The same through a provisioner: the run would be broken, nothing ran.
    let provisioner = SshProvisioner::new(target);
    let (repo, sha) = repository(sshd.dir.path());
    let e = provisioner
        .acquire(&HostRequest {
            run_id: 9,
            repository: repo,
            commit: sha,
        })
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("unknown host key"), "{e}");
}

#[tokio::test]
async fn a_connection_cut_mid_step_is_broken_not_failed() {
    let sshd = Sshd::start();
    let seq = load(
        sshd.dir.path(),
        "long.toml",
        "[[step]]\nname = \"long\"\ncommand = \"sleep 4599\"\n[[step]]\nname = \"after\"\ncommand = \"true\"\n",
    );
    let cut = async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sshd.cut_connections();
    };
    let ((rec, report), ()) = tokio::join!(run(&sshd, &seq, 3), cut);
    assert_eq!(rec.status("long"), StepStatus::Broken);
    assert_eq!(rec.status("after"), StepStatus::Blocked);
    assert!(
        report.failed.is_empty(),
        "the host's failure is not the commit's"
    );
    assert!(report.broken.unwrap().contains("lost"));
    let _ = std::process::Command::new("pkill")
        .args(["-f", "sleep 4599"])
        .status();
}

#[tokio::test]
async fn files_go_up_and_come_back_byte_for_byte_and_leftovers_are_reaped() {
    let sshd = Sshd::start();
    let target = sshd.target();
    let c = Connection::open(&target).await.unwrap();
    let local = sshd.dir.path().join("artifact.bin");
    let bytes: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&local, &bytes).unwrap();
    let remote = sshd.dir.path().join("uploaded.bin");
    c.upload(&local, &remote.display().to_string())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), bytes);
    let back = sshd.dir.path().join("back.bin");
    c.download(&remote.display().to_string(), &back)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    c.close().await;

    let work = PathBuf::from(&target.work_dir);
    std::fs::create_dir_all(work.join("pushgate-run-41/x")).unwrap();
    std::fs::create_dir_all(work.join("pushgate-run-42")).unwrap();
    std::fs::create_dir_all(work.join("pushgate-run-43")).unwrap();
    std::fs::create_dir_all(work.join("someone-else")).unwrap();
    let provisioner = SshProvisioner::new(target);
    // Run 43 is live (it holds a lease): its directory stays.
    let live = std::collections::BTreeSet::from([43]);
    assert_eq!(provisioner.reap(&live).await.unwrap(), 2);
    assert_eq!(provisioner.reap(&live).await.unwrap(), 0);
    assert!(work.join("someone-else").exists());
    assert!(work.join("pushgate-run-43").exists());
    assert_eq!(provisioner.reap(&Default::default()).await.unwrap(), 1);
}

/// A step still running from a dead run (one that outlived sshd's clean-up of the lost
/// session, say a daemonising test script) is killed by `reap`, its whole process group, as
/// recorded beside the run's directory when the step started; then the directory goes.
#[tokio::test]
async fn reap_kills_what_a_dead_run_left_running() {
    let sshd = Sshd::start();
    let work = PathBuf::from(sshd.target().work_dir);
    std::fs::create_dir_all(work.join("pushgate-run-51")).unwrap();
    // A process group of its own, as a step's is (sshd makes each session a group leader).
    let mut orphan = std::process::Command::new("setsid")
        .args(["sh", "-c", "sleep 317; true"])
        .spawn()
        .unwrap();
    let pgid = orphan.id();
    std::fs::write(work.join("pushgate-run-51.pgids"), format!("{pgid}\n")).unwrap();
    // `setsid` takes a moment to make the group and `sh` to start `sleep` in it: a reap before
    // that finds no group to kill (`pgrep -f` alone would match `setsid`'s own command line).
    let deadline = Instant::now() + Duration::from_secs(10);
    let in_group = || {
        std::process::Command::new("pgrep")
            .args(["-g", &pgid.to_string(), "-x", "sleep"])
            .output()
            .map(|o| !o.stdout.is_empty())
            .unwrap_or(false)
    };
    while !in_group() {
        assert!(Instant::now() < deadline, "the orphan never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let provisioner = SshProvisioner::new(sshd.target());
    assert_eq!(provisioner.reap(&Default::default()).await.unwrap(), 1);
    let _ = orphan.wait();
    // The group, not `pgrep -f`: an orphan another run of this test left must not count.
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_group() {
        if Instant::now() >= deadline {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .status();
            panic!("reap left the group {pgid} running");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!work.join("pushgate-run-51").exists());
    assert!(!work.join("pushgate-run-51.pgids").exists());
    assert_eq!(provisioner.reap(&Default::default()).await.unwrap(), 0);
}
