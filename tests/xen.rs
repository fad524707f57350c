//! The xen provisioner over a real SSH connection to a stand-in dom0 (tests/standin-dom0): the
//! exact `xl`/LVM/qemu-img transcript, teardown after failures, a guest that never answers,
//! and recovery after `kill -9` of a pushgate in the middle of a run.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pushgate::hosts::inventory::ProvisionerSpec;
use pushgate::hosts::{Connection, HostRequest, Inventory, Provisioner, XenProvisioner};
use pushgate::sequence::{self, PauseOn, StepContext};
use support::dom0::Dom0;
use support::{commit_all, eventually, Sandbox, Upstream};

/// The `[host.xen]` lines of a guest on an LVM snapshot of the stand-in's golden volume.
const LVM: &str = "disk = \"lvm\"\nvolume_group = \"vg0\"\ngolden = \"debian-12\"";

fn provisioner(dom0: &Dom0, xen_extra: &str) -> XenProvisioner {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts.toml");
    let inventory = Inventory::parse(&path, &dom0.hosts_toml(xen_extra)).unwrap();
    let ProvisionerSpec::Xen { dom0, xen } = &inventory.hosts[0].provisioner else {
        panic!("xen-1 is a xen host")
    };
    XenProvisioner::new(dom0.clone(), (**xen).clone())
}

fn repository(dir: &Path) -> (std::path::PathBuf, String) {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README"), "the commit under test\n").unwrap();
    let sha = commit_all(&repo, "one");
    (repo, sha)
}

/// Runs `cat README` on the provisioned guest and returns what it printed.
async fn run_on_guest(host: &dyn pushgate::hosts::Host, dir: &Path) -> String {
    let seq_path = dir.join("guest.toml");
    std::fs::write(
        &seq_path,
        "[[step]]\nname = \"read\"\ncommand = \"cat README\"\n",
    )
    .unwrap();
    let seq = sequence::load_unbound(&seq_path, &Default::default(), &[]).unwrap();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let report = pushgate::run::execute(
        &seq,
        host,
        &StepContext {
            run_id: 7,
            commit: "x".into(),
            sequence: "guest".into(),
        },
        &logs,
        &NoRecorder,
        &PauseOn::Never,
    )
    .await
    .unwrap();
    assert!(
        report.failed.is_empty() && report.broken.is_none(),
        "{report:?}"
    );
    let log = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(log).unwrap();
    // The executor ends each log with a line of its own.
    text.split("\n--- pushgate:")
        .next()
        .unwrap_or_default()
        .to_string()
}

struct NoRecorder;

#[async_trait::async_trait]
impl pushgate::run::StepRecorder for NoRecorder {
    type Error = std::convert::Infallible;
    async fn started(&self, p: usize, _: &str, _: &Path) -> Result<i64, Self::Error> {
        Ok(p as i64)
    }
    async fn finished(
        &self,
        _: i64,
        _: sequence::StepStatus,
        _: Option<i32>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn blocked(&self, _: usize, _: &str) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn results(&self, _: i64, _: &[sequence::results::SubResult]) -> Result<(), Self::Error> {
        Ok(())
    }
    async fn paused(&self, _: i64, _: &str) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[tokio::test]
async fn lvm_guest_lifecycle_matches_the_xl_transcript() {
    let dom0 = Dom0::start();
    let work = tempfile::tempdir().unwrap();
    let (repo, sha) = repository(work.path());
    let xen = provisioner(&dom0, LVM);
    assert!(!dom0.guest_up(), "no guest before xl create");
    let request = HostRequest {
        run_id: 7,
        repository: repo,
        commit: sha,
    };
    let host = xen.acquire(&request).await.unwrap();
    assert!(dom0.guest_up(), "the guest answers once started");
    assert_eq!(
        dom0.leftovers(),
        [
            "domain pushgate-run-7.json",
            "domain pushgate-run-7.pid",
            "lv pushgate-run-7",
            "image pushgate-run-7.cfg"
        ]
    );
    let cfg = std::fs::read_to_string(dom0.images.join("pushgate-run-7.cfg")).unwrap();
    assert!(cfg.contains("name = \"pushgate-run-7\""), "{cfg}");
    assert!(
        cfg.contains("disk = [ \"phy:/dev/vg0/pushgate-run-7,xvda,w\" ]"),
        "{cfg}"
    );
    assert!(
        cfg.contains("vif = [ \"mac=00:16:3e:00:00:10,bridge=xenbr0\" ]"),
        "{cfg}"
    );
    assert_eq!(
        run_on_guest(host.as_ref(), work.path()).await,
        "the commit under test\n"
    );
    host.release().await.unwrap();

    let cfg_path = format!("{}/pushgate-run-7.cfg", dom0.images.display());
    assert_eq!(
        dom0.transcript(),
        [
            "lvcreate -s -n pushgate-run-7 -L 8G vg0/debian-12".to_string(),
            format!(
                "xl create {}",
                cfg_path.replace(&dom0.state.path().display().to_string(), "$STATE")
            ),
            "xl list".into(),
            "xl destroy pushgate-run-7".into(),
            "lvs --noheadings -o lv_name vg0".into(),
            "lvremove -f vg0/pushgate-run-7".into(),
        ]
    );
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
    assert!(!dom0.guest_up(), "xl destroy stopped the guest");
}

#[tokio::test]
async fn qcow2_overlay_and_restore_from_a_saved_guest() {
    let dom0 = Dom0::start();
    let work = tempfile::tempdir().unwrap();
    let (repo, sha) = repository(work.path());
    std::fs::create_dir_all(&dom0.images).unwrap();
    let golden = dom0.images.join("golden.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&golden)
        .arg("64M")
        .status();
    if !made.is_ok_and(|s| s.success()) {
        std::fs::write(&golden, "QFI golden\n").unwrap();
    }
    let saved = dom0.images.join("golden.save");
    std::fs::write(&saved, "a saved guest\n").unwrap();
    let xen = provisioner(
        &dom0,
        &format!(
            "disk = \"qcow2\"\ngolden = \"{}\"\nrestore = \"{}\"",
            golden.display(),
            saved.display()
        ),
    );
    let host = xen
        .acquire(&HostRequest {
            run_id: 8,
            repository: repo,
            commit: sha,
        })
        .await
        .unwrap();
    let overlay = dom0.images.join("pushgate-run-8.qcow2");
    assert!(overlay.exists());
    assert_eq!(
        run_on_guest(host.as_ref(), work.path()).await,
        "the commit under test\n"
    );
    host.release().await.unwrap();
    let s = |p: &Path| {
        p.display()
            .to_string()
            .replace(&dom0.state.path().display().to_string(), "$STATE")
    };
    assert_eq!(
        dom0.transcript(),
        [
            format!(
                "qemu-img create -q -f qcow2 -F qcow2 -b {} {}",
                s(&golden),
                s(&overlay)
            ),
            format!(
                "xl restore {} {}",
                s(&dom0.images.join("pushgate-run-8.cfg")),
                s(&saved)
            ),
            "xl list".into(),
            "xl destroy pushgate-run-8".into(),
        ]
    );
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
    assert!(golden.exists(), "the golden image stays");
}

#[tokio::test]
async fn a_failed_start_tears_down_what_it_made() {
    let dom0 = Dom0::start();
    let work = tempfile::tempdir().unwrap();
    let (repo, sha) = repository(work.path());
    let xen = provisioner(&dom0, LVM);
    let request = HostRequest {
        run_id: 9,
        repository: repo.clone(),
        commit: sha.clone(),
    };

    dom0.inject("fail", "xl-create");
    let e = xen.acquire(&request).await.err().expect("xl create fails");
    assert!(e.to_string().contains("injected failure"), "{e}");
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
    assert!(dom0
        .transcript()
        .contains(&"lvremove -f vg0/pushgate-run-9".to_string()));

    // A golden LV that is not there: lvcreate refuses, as the real one does.
    std::fs::remove_dir_all(dom0.state.path().join("fail")).unwrap();
    let xen_missing = provisioner(
        &dom0,
        "disk = \"lvm\"\nvolume_group = \"vg0\"\ngolden = \"nope\"",
    );
    let e = xen_missing
        .acquire(&request)
        .await
        .err()
        .expect("no golden LV");
    assert!(
        e.to_string()
            .contains("Failed to find logical volume \"vg0/nope\""),
        "{e}"
    );
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());

    // A guest that never answers SSH: the boot times out and the domain goes.
    dom0.no_guest();
    let slow = provisioner(
        &dom0,
        "disk = \"lvm\"\nvolume_group = \"vg0\"\ngolden = \"debian-12\"\nboot_timeout = \"2s\"",
    );
    let e = slow
        .acquire(&request)
        .await
        .err()
        .expect("no guest answers");
    assert!(
        e.to_string().contains("did not answer SSH within 2s"),
        "{e}"
    );
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
}

#[tokio::test]
async fn the_standin_checks_configs_like_xl() {
    let dom0 = Dom0::start();
    let c = Connection::open(&dom0.sshd.target()).await.unwrap();
    std::fs::create_dir_all(&dom0.images).unwrap();
    let cfg = dom0.images.join("bad.cfg");
    for (text, says) in [
        ("name = \"a\"\nmemory = 1\ndisk = [ \"phy:/dev/vg0/debian-12,xvda,w\" ]\ncolour = \"red\"\n", "unknown key `colour'"),
        ("name = \"a\"\nmemory = 1\ndisk = [ \"phy:/dev/vg0/none,xvda,w\" ]\n", "does not exist"),
        ("name = \"a\"\ndisk = [ \"phy:/dev/vg0/debian-12,xvda,w\" ]\n", "no `memory'"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let e = c.must(&format!("xl create {}", cfg.display()), None).await.unwrap_err();
        assert!(e.to_string().contains(says), "{text}: {e}");
    }
    std::fs::write(
        &cfg,
        "name = \"twice\"\nmemory = 1\ndisk = [ \"phy:/dev/vg0/debian-12,xvda,w\" ]\n",
    )
    .unwrap();
    dom0.no_guest();
    c.must(&format!("xl create {}", cfg.display()), None)
        .await
        .unwrap();
    let e = c
        .must(&format!("xl create {}", cfg.display()), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = c.must("xl destroy nobody", None).await.unwrap_err();
    assert!(e.to_string().contains("not found"), "{e}");
    let e = c.must("lvremove -f vg0/debian-12", None).await.unwrap_err();
    assert!(e.to_string().contains("golden"), "{e}");
    c.must("xl destroy twice", None).await.unwrap();
    c.close().await;
}

#[tokio::test]
async fn reap_removes_leftovers_of_dead_runs_only() {
    let dom0 = Dom0::start();
    let work = tempfile::tempdir().unwrap();
    let (repo, sha) = repository(work.path());
    let xen = provisioner(&dom0, LVM);
    dom0.no_guest();
    // Two runs' domains and disks, as a crash would leave them (no guest answers, so make
    // them with the stand-in directly).
    let c = Connection::open(&dom0.sshd.target()).await.unwrap();
    std::fs::create_dir_all(&dom0.images).unwrap();
    for run in [21, 22] {
        c.must(
            &format!("lvcreate -s -n pushgate-run-{run} -L 8G vg0/debian-12"),
            None,
        )
        .await
        .unwrap();
        let cfg = dom0.images.join(format!("pushgate-run-{run}.cfg"));
        std::fs::write(&cfg, xen.guest_config(run)).unwrap();
        c.must(&format!("xl create {}", cfg.display()), None)
            .await
            .unwrap();
    }
    c.close().await;
    let _ = (repo, sha);
    assert_eq!(xen.reap(&BTreeSet::from([22])).await.unwrap(), 3);
    assert_eq!(
        dom0.leftovers(),
        [
            "domain pushgate-run-22.json",
            "lv pushgate-run-22",
            "image pushgate-run-22.cfg"
        ]
    );
    assert_eq!(
        xen.reap(&BTreeSet::from([22])).await.unwrap(),
        0,
        "idempotent"
    );
    assert_eq!(xen.reap(&BTreeSet::new()).await.unwrap(), 3);
    assert!(dom0.leftovers().is_empty());
}

/// A pushgate killed with SIGKILL in the middle of a run on a xen host leaves a domain and a
/// disk; `hosts reap` leaves them while the run's lease could still be alive, `--all` (or the
/// next start) removes them, and a second reap finds nothing.
#[test]
fn kill_9_mid_run_is_recovered() {
    let dom0 = Dom0::start();
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commit("a change", ("Ann Author", "ann@example.org"));
    up.push_staging();
    let sandbox = Sandbox::new();
    let hold = sandbox.path().join("hold");
    std::fs::write(&hold, "").unwrap();
    sandbox.sequence(
        "slow",
        &format!(
            "[[step]]\nname = \"wait\"\ncommand = \"while [ -e {} ]; do sleep 0.1; done\"\ntimeout = \"2m\"\n",
            hold.display()
        ),
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"slow\"]\nretries = 0\n",
            up.bare.display()
        ),
    );
    std::fs::write(sandbox.path().join("hosts.toml"), dom0.hosts_toml(LVM)).unwrap();
    sandbox.config("");
    let config = sandbox.path().join("pushgate.toml");
    let pushgate = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };

    let log = sandbox.path().join("gate.log");
    let mut gate = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["gate", "--once", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    eventually(60, "the step running on the guest", || {
        if let Ok(Some(status)) = gate.try_wait() {
            panic!(
                "the gate ended ({status}): {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        let dirs = std::fs::read_dir(dom0.guest.dir.path().join("work")).ok()?;
        dirs.flatten().next().map(|_| ())
    });
    gate.kill().unwrap(); // SIGKILL
    gate.wait().unwrap();
    assert!(
        dom0.leftovers().contains(&"lv pushgate-run-1".to_string()),
        "{:?}",
        dom0.leftovers()
    );
    assert!(dom0.guest_up());

    let careful = pushgate(&["hosts", "reap"]);
    let said = String::from_utf8_lossy(&careful.stdout);
    assert!(careful.status.success(), "{said}");
    assert!(said.contains("left alone: run(s) 1"), "{said}");
    assert!(dom0.leftovers().contains(&"lv pushgate-run-1".to_string()));

    dom0.clear_transcript();
    let all = pushgate(&["hosts", "reap", "--all"]);
    let said = String::from_utf8_lossy(&all.stdout);
    assert!(
        all.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert!(said.contains("xen-1: removed 3 leftover(s)"), "{said}");
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
    assert!(!dom0.guest_up());
    assert_eq!(
        dom0.transcript(),
        [
            "xl list",
            "xl destroy pushgate-run-1",
            "lvs --noheadings -o lv_name vg0",
            "lvremove -f vg0/pushgate-run-1",
        ]
    );
    let again = pushgate(&["hosts", "reap", "--all"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("xen-1: removed 0 leftover(s)"));

    // Killed again; this time the next start cleans up, then runs the flight to the end.
    let mut gate = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["gate", "--once", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The domain, not just its disk: a kill between lvcreate and xl create leaves no domain to
    // destroy, and this half is about recovering a running guest.
    eventually(60, "the guest of the second run up", || {
        dom0.leftovers()
            .iter()
            .any(|l| l == "domain pushgate-run-2.json")
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    gate.kill().unwrap();
    gate.wait().unwrap();
    std::fs::remove_file(&hold).unwrap();
    dom0.clear_transcript();
    let done = pushgate(&["gate", "--once"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let transcript = dom0.transcript();
    assert!(
        transcript.contains(&"xl destroy pushgate-run-2".to_string()),
        "{transcript:?}"
    );
    assert!(
        transcript.contains(&"lvremove -f vg0/pushgate-run-2".to_string()),
        "{transcript:?}"
    );
    assert!(dom0.leftovers().is_empty(), "{:?}", dom0.leftovers());
    assert_eq!(
        up.head("master"),
        up.head("staging"),
        "the flight passed and pushed"
    );
}
