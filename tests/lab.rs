//! The lab's scheduler and leases against real stores (SQLite and PostgreSQL): no slot is ever
//! held twice, even by two processes' schedulers racing; an expired lease frees its host;
//! borrowed and out-of-service hosts are skipped; gate runs go before manual jobs.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pushgate::hosts::{
    HostOutcome, Inventory, Lab, LabError, LabSettings, LeaseRequest, Needs, Priority,
};
use pushgate::store::Store;

fn inventory(dir: &std::path::Path, text: &str) -> Inventory {
    let path = dir.join("hosts.toml");
    std::fs::write(&path, text).unwrap();
    Inventory::load(&path).unwrap()
}

/// Local hosts `h0`.., each with `slots`.
fn local_hosts(names: &[(&str, u32)]) -> String {
    names
        .iter()
        .map(|(n, slots)| {
            format!("[[host]]\nname = \"{n}\"\nprovisioner = \"local\"\nslots = {slots}\nmax_broken = 2\n")
        })
        .collect()
}

fn lab(store: &Store, inventory: Inventory, lease: Duration) -> Arc<Lab> {
    let lab = Lab::new(
        inventory,
        store.clone(),
        LabSettings {
            local_work_dir: std::env::temp_dir(),
            lease_length: lease,
            health: Arc::new(pushgate::notify::HostMail {
                store: store.clone(),
                from: "pushgate <gate@example.org>".into(),
            }),
        },
    );
    lab.spawn_ticker();
    lab
}

fn request(run_id: i64, priority: Priority) -> LeaseRequest {
    LeaseRequest {
        run_id,
        priority,
        needs: Needs::default(),
        prefer: None,
    }
}

/// The lease a waiting run got (it must get one within 15 s).
async fn granted(
    waiting: tokio::task::JoinHandle<Result<pushgate::hosts::Lease, LabError>>,
) -> pushgate::hosts::Lease {
    tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the run got a host in time")
        .unwrap()
        .unwrap()
}

/// A `[[host]]` of `hosts.toml` reached like `sshd` (its key, pinned key and work directory)
/// on `port`, with `extra` lines.
fn ssh_host(name: &str, sshd: &pushgate::hosts::LoopbackSshd, port: u16, extra: &str) -> String {
    let t = sshd.target();
    format!(
        "[[host]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {port}\nuser = \"{}\"\n\
         key = \"{}\"\nknown_hosts = \"{}\"\nwork_dir = \"{}\"\n{extra}",
        t.user,
        t.key.display(),
        t.known_hosts.display(),
        t.work_dir
    )
}

/// A lab of local hosts on a fresh SQLite store (the directory lives as long as the first
/// value).
async fn local_lab(hosts: &[(&str, u32)], lease: Duration) -> (tempfile::TempDir, Arc<Lab>) {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let lab = lab(&store, inventory(dir.path(), &local_hosts(hosts)), lease);
    (dir, lab)
}

async fn sqlite(dir: &std::path::Path) -> Store {
    Store::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("lab.db").display()
    ))
    .await
    .unwrap()
}

/// Many runs through two schedulers (two processes' worth, each its own pool) on 5 slots.
async fn never_double_booked(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(
        dir.path(),
        &local_hosts(&[("a", 1), ("b", 1), ("c", 1), ("big", 2)]),
    );
    let one = lab(
        &Store::open(url).await.unwrap(),
        inv.clone(),
        Duration::from_secs(60),
    );
    let two = lab(
        &Store::open(url).await.unwrap(),
        inv,
        Duration::from_secs(60),
    );
    let held: Arc<Mutex<HashSet<(String, u32)>>> = Default::default();
    let most = Arc::new(Mutex::new(0usize));
    let runs = (0..24).map(|i| {
        let lab = if i % 2 == 0 { one.clone() } else { two.clone() };
        let (held, most) = (held.clone(), most.clone());
        tokio::spawn(async move {
            let lease = lab.acquire(request(i, Priority::Gate)).await.unwrap();
            let key = (lease.host.name.clone(), lease.slot);
            {
                let mut h = held.lock().unwrap();
                assert!(h.insert(key.clone()), "{key:?} given twice");
                let mut m = most.lock().unwrap();
                *m = (*m).max(h.len());
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
            held.lock().unwrap().remove(&key);
            lab.release(lease, HostOutcome::Fine).await.unwrap();
        })
    });
    let all = futures_util::future::join_all(runs);
    for done in tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("every run got a host")
    {
        done.unwrap();
    }
    let most = *most.lock().unwrap();
    assert!(
        (2..=5).contains(&most),
        "at most the 5 slots at once, and some at once: {most}"
    );
    assert!(one
        .states()
        .await
        .unwrap()
        .iter()
        .all(|h| h.state == "free"));
}

#[tokio::test]
async fn leases_never_double_book_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("lab.db").display());
    never_double_booked(&url).await;
}

#[tokio::test]
async fn leases_never_double_book_on_postgres() {
    let pg = support::Postgres::new();
    never_double_booked(&pg.url).await;
}

#[tokio::test]
async fn one_winner_when_many_take_the_same_slot_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let far = pushgate::store::now_ms() + 60_000;
    let tries = (0..20).map(|run| {
        let store = store.clone();
        tokio::spawn(async move { store.take_run_lease("a", 0, run, far).await.unwrap() })
    });
    let won: Vec<bool> = futures_util::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(won.iter().filter(|w| **w).count(), 1);
}

#[tokio::test]
async fn an_expired_lease_frees_its_host() {
    let (_dir, lab) = local_lab(&[("a", 1)], Duration::from_secs(1)).await;
    let crashed = lab.acquire(request(1, Priority::Gate)).await.unwrap();
    // Its holder dies: nobody renews or releases the lease.
    drop(crashed);
    let next = lab.clone();
    let waiting = tokio::spawn(async move { next.acquire(request(2, Priority::Gate)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "the host is still leased");
    let lease = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the lease expired and the host was given again")
        .unwrap()
        .unwrap();
    assert_eq!((lease.host.name.as_str(), lease.run_id), ("a", 2));
}

#[tokio::test]
async fn a_live_lease_is_renewed_past_its_length() {
    let (_dir, lab) = local_lab(&[("a", 1)], Duration::from_secs(1)).await;
    let held = lab.acquire(request(1, Priority::Gate)).await.unwrap();
    let next = lab.clone();
    let waiting = tokio::spawn(async move { next.acquire(request(2, Priority::Gate)).await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiting.is_finished(), "a renewed lease does not expire");
    lab.release(held, HostOutcome::Fine).await.unwrap();
    let lease = granted(waiting).await;
    assert_eq!(lease.run_id, 2);
}

#[tokio::test]
async fn borrowed_hosts_are_never_scheduled() {
    let (_dir, lab) = local_lab(&[("a", 1), ("b", 1)], Duration::from_secs(60)).await;
    let until = lab.borrow("a", "ann", 1.0).await.unwrap();
    let first = lab.acquire(request(1, Priority::Gate)).await.unwrap();
    assert_eq!(first.host.name, "b");
    let next = lab.clone();
    let waiting = tokio::spawn(async move { next.acquire(request(2, Priority::Gate)).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a borrowed host is not given to a run"
    );

    assert!(
        matches!(lab.borrow("a", "bob", 1.0).await, Err(LabError::Borrowed { holder, .. }) if holder == "ann")
    );
    assert!(matches!(
        lab.borrow("b", "bob", 1.0).await,
        Err(LabError::Busy { .. })
    ));
    assert!(matches!(
        lab.borrow("nope", "bob", 1.0).await,
        Err(LabError::UnknownHost(_))
    ));
    let extended = lab.borrow("a", "ann", 2.0).await.unwrap();
    assert!(extended > until, "borrowing again extends");
    let states = lab.states().await.unwrap();
    let a = states.iter().find(|h| h.name == "a").unwrap();
    assert_eq!(
        (a.state.as_str(), a.leases[0].holder.as_str()),
        ("borrowed", "ann")
    );
    assert_eq!(a.leases[0].expires_at, extended);
    assert!(matches!(
        lab.give_back("a", Some("bob")).await,
        Err(LabError::NotBorrowed { .. })
    ));

    lab.give_back("a", Some("ann")).await.unwrap();
    let second = granted(waiting).await;
    assert_eq!(second.host.name, "a");
}

#[tokio::test]
async fn a_host_that_keeps_breaking_goes_out_of_service_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path()).await;
    let text = format!(
        "admin = \"Lab <lab@example.org>\"\n{}",
        local_hosts(&[("flaky", 1), ("good", 1)])
    );
    let lab = lab(
        &store,
        inventory(dir.path(), &text),
        Duration::from_secs(60),
    );
    let on_flaky = |run| LeaseRequest {
        needs: Needs {
            host: Some("flaky".into()),
            ..Default::default()
        },
        ..request(run, Priority::Gate)
    };
    let l = lab.acquire(on_flaky(1)).await.unwrap();
    lab.release(l, HostOutcome::Broken("ssh: connection reset".into()))
        .await
        .unwrap();
    let l = lab.acquire(on_flaky(2)).await.unwrap();
    lab.release(l, HostOutcome::Fine).await.unwrap(); // a good run clears the streak
    for run in 3..5 {
        let l = lab.acquire(on_flaky(run)).await.unwrap();
        lab.release(l, HostOutcome::Broken("no route to host".into()))
            .await
            .unwrap();
    }
    let states = lab.states().await.unwrap();
    let flaky = states.iter().find(|h| h.name == "flaky").unwrap();
    assert_eq!(flaky.state, "out-of-service");
    assert!(flaky
        .health
        .as_ref()
        .unwrap()
        .reason
        .contains("no route to host"));
    let mail = store.due_mail(10).await.unwrap();
    assert_eq!(mail.len(), 1, "one report, to the lab's admin");
    assert!(mail[0].subject.contains("host flaky taken out of service"));
    assert!(mail[0]
        .recipients
        .iter()
        .any(|r| r.contains("lab@example.org")));

    let next = lab.clone();
    let waiting = tokio::spawn(async move { next.acquire(on_flaky(5)).await });
    let other = lab.acquire(request(6, Priority::Manual)).await.unwrap();
    assert_eq!(other.host.name, "good", "runs go elsewhere");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished());
    assert!(store.set_host_in_service("flaky").await.unwrap());
    lab.wake();
    let back = granted(waiting).await;
    assert_eq!(back.host.name, "flaky");
}

#[tokio::test]
async fn gate_runs_go_before_bisections_before_manual_jobs() {
    let (_dir, lab) = local_lab(&[("a", 1)], Duration::from_secs(60)).await;
    let busy = lab.acquire(request(0, Priority::Gate)).await.unwrap();
    let order: Arc<Mutex<Vec<i64>>> = Default::default();
    let mut waiting = Vec::new();
    for (run, priority) in [
        (1, Priority::Manual),
        (2, Priority::Periodic),
        (3, Priority::Bisection),
        (4, Priority::Gate),
    ] {
        let (lab, order) = (lab.clone(), order.clone());
        waiting.push(tokio::spawn(async move {
            let lease = lab.acquire(request(run, priority)).await.unwrap();
            order.lock().unwrap().push(run);
            tokio::time::sleep(Duration::from_millis(20)).await;
            lab.release(lease, HostOutcome::Fine).await.unwrap();
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    lab.release(busy, HostOutcome::Fine).await.unwrap();
    for w in waiting {
        tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [4, 3, 2, 1]);
}

#[tokio::test]
async fn needs_no_host_has_are_refused_at_once() {
    let (_dir, lab) = local_lab(&[("a", 1)], Duration::from_secs(60)).await;
    let arm = LeaseRequest {
        needs: Needs {
            arch: Some("arm64".into()),
            ..Default::default()
        },
        ..request(1, Priority::Gate)
    };
    let e = lab.acquire(arm).await.err().unwrap();
    assert!(e.to_string().contains("no host in"), "{e}");
    assert!(e.to_string().contains("arch=arm64"), "{e}");
}

/// A flight on a lab of two real SSH hosts (two sshds on loopback, each with its own pinned
/// key): the runs of a search spread over both, the culprit is found and the good commits
/// pushed, and each host's work directory is left empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_spreads_over_two_ssh_hosts() {
    let a = pushgate::hosts::LoopbackSshd::start(None).unwrap();
    let b = pushgate::hosts::LoopbackSshd::start(None).unwrap();
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(8, Some(5));
    up.push_staging();
    let sandbox = support::Sandbox::new();
    sandbox.sequence(
        "check",
        "[[step]]\nname = \"test\"\ncommand = \"! test -e BROKEN\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"check\"]\nretries = 0\nhosts = 2\n",
            up.bare.display()
        ),
    );
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        format!(
            "{}{}",
            ssh_host("ssh-a", &a, a.port, ""),
            ssh_host("ssh-b", &b, b.port, "")
        ),
    )
    .unwrap();
    let service = support::open_service(sandbox.config("")).await;
    let outcome = service.gate_once().await.unwrap();
    let pushgate::gate::BranchOutcome::Decided { culprit, .. } = &outcome[0].1 else {
        panic!("{outcome:?}")
    };
    assert_eq!(culprit.as_deref(), Some(shas[4].as_str()));
    assert_eq!(up.head("master"), shas[3]);
    let runs = service.store().runs(1).await.unwrap();
    let used: HashSet<&str> = runs.iter().map(|r| r.host.as_str()).collect();
    assert_eq!(
        used,
        HashSet::from(["ssh-a", "ssh-b"]),
        "both hosts ran tests"
    );
    for sshd in [&a, &b] {
        let work = std::path::PathBuf::from(&sshd.target().work_dir);
        let left: Vec<_> = std::fs::read_dir(&work)
            .map(|d| d.flatten().count())
            .into_iter()
            .collect();
        assert!(
            left.iter().all(|n| *n == 0),
            "{} holds leftovers",
            work.display()
        );
    }
    let states = service.lab.states().await.unwrap();
    assert!(
        states.iter().all(|h| h.state == "free"),
        "every lease was given back"
    );
}

/// A lab that cannot run a policy's sequences, or a hosts file with a mistake, stops the
/// service at start with a message that says which, instead of runs that wait forever.
#[tokio::test]
async fn a_lab_that_cannot_serve_the_policies_is_refused_at_start() {
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = support::Sandbox::new();
    sandbox.sequence(
        "arm",
        "[prepare]\nneeds = { arch = \"arm64\" }\n[[step]]\nname = \"t\"\ncommand = \"true\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"arm\"]\n",
            up.bare.display()
        ),
    );
    let open = |config| async {
        pushgate::service::Service::open(config, Arc::new(pushgate::gate::LogProgress))
            .await
            .err()
            .map(|e| e.to_string())
    };
    let e = open(sandbox.config("")).await.expect("refused");
    assert!(
        e.contains("project.toml: field `sequences`: sequence `arm` needs arch=arm64"),
        "{e}"
    );

    std::fs::write(
        sandbox.path().join("hosts.toml"),
        "[[host]]\nname = \"pi\"\nprovisioner = \"local\"\narch = \"arm64\"\nslots = 0\n",
    )
    .unwrap();
    let e = open(sandbox.config("")).await.expect("refused");
    assert!(e.contains("hosts.toml:5:"), "{e}");
    assert!(e.contains("field `host[0].slots`"), "{e}");
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        "[[host]]\nname = \"pi\"\nprovisioner = \"local\"\narch = \"arm64\"\n",
    )
    .unwrap();
    assert_eq!(
        open(sandbox.config("")).await,
        None,
        "an arm64 host serves it"
    );
}

/// A host whose link is down breaks its run (`broken`, never the commit's fault), is taken out
/// of service after `max_broken`, and the admin told; the next flight runs on the other host
/// and pushes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_host_breaks_runs_not_commits_and_leaves_service() {
    let good = pushgate::hosts::LoopbackSshd::start(None).unwrap();
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commits(2, None);
    up.push_staging();
    let sandbox = support::Sandbox::new();
    sandbox.sequence(
        "check",
        "[[step]]\nname = \"test\"\ncommand = \"test -e README\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"check\"]\nretries = 0\nretry_broken_after = \"1s\"\n",
            up.bare.display()
        ),
    );
    let extra = "max_broken = 1\nconnect_timeout = \"3s\"\n";
    // "a-dead" sorts first, so the first run goes there; nothing listens on its port.
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        format!(
            "admin = \"lab@example.org\"\n{}{}",
            ssh_host("a-dead", &good, support::free_port(), extra),
            ssh_host("b-good", &good, good.port, extra)
        ),
    )
    .unwrap();
    let service = support::open_service(sandbox.config("")).await;
    let first = service.gate_once().await.unwrap();
    let pushgate::gate::BranchOutcome::Decided {
        verdict, pushed_to, ..
    } = &first[0].1
    else {
        panic!("{first:?}")
    };
    assert_eq!(
        *verdict,
        pushgate::decision::Verdict::Broken,
        "the host's fault, not the commit's"
    );
    assert!(pushed_to.is_none());
    let states = service.lab.states().await.unwrap();
    assert_eq!(states[0].state, "out-of-service");
    let mail = service.store().due_mail(10).await.unwrap();
    assert!(mail
        .iter()
        .any(|m| m.subject.contains("host a-dead taken out of service")));

    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let second = service.gate_once().await.unwrap();
    let pushgate::gate::BranchOutcome::Decided { verdict, .. } = &second[0].1 else {
        panic!("{second:?}")
    };
    assert_eq!(*verdict, pushgate::decision::Verdict::Pass);
    assert_eq!(up.head("master"), up.head("staging"));
    let hosts: Vec<String> = service
        .store()
        .runs(2)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.host)
        .collect();
    assert!(hosts.iter().all(|h| h == "b-good"), "{hosts:?}");
}
