//! `pushgate bench schedule`: how long one scheduling decision takes with a big lab and a long
//! queue: the pure assignment alone, and the whole round a lab makes (read the leases and the
//! hosts' health from the store, assign, take the leases) on SQLite.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::{fail, BenchError, Report, Stats};
use pushgate::hosts::inventory::{HostSpec, Inventory, Needs, Properties, ProvisionerSpec};
use pushgate::hosts::scheduler::{assign, FreeSlot, Priority, Waiting};
use pushgate::hosts::{Lab, LabSettings, LeaseRequest};
use pushgate::notify::HostMail;
use pushgate::store::{now_ms, Store};

#[derive(Debug, Serialize)]
pub struct ScheduleReport {
    pub hosts: usize,
    pub queued: usize,
    pub free_per_round: usize,
    pub rounds: usize,
    /// `assign` alone: the decision.
    pub decision: Stats,
    /// A lab's whole round on SQLite: leases and health read, decision, leases taken.
    pub round_with_store: Stats,
    /// Runs given a host per round with the store, on average.
    pub granted_per_round: f64,
}

impl Report for ScheduleReport {
    fn table(&self) -> String {
        let row = |name: &str, s: &Stats| {
            format!(
                "{name:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3}\n",
                s.median_ms, s.p90_ms, s.min_ms, s.max_ms
            )
        };
        format!(
            "{} hosts, {} runs queued, {} slots free per round, {} rounds\n\n\
             {:<34} {:>8} {:>8} {:>8} {:>8}\n{}{}\n\
             runs given a host per round (with the store): {:.1}\n",
            self.hosts,
            self.queued,
            self.free_per_round,
            self.rounds,
            "ms per decision",
            "median",
            "p90",
            "min",
            "max",
            row("assign (pure)", &self.decision),
            row("lab round on SQLite", &self.round_with_store),
            self.granted_per_round,
        )
    }
}

const TAGS: [&str; 6] = ["iommu", "gpu", "sriov", "nested-virt", "numa", "big-disk"];

/// A lab of `n` hosts: mostly x86_64, some arm64, a few tags each.
fn lab(rng: &mut SmallRng, n: usize) -> Vec<HostSpec> {
    (0..n)
        .map(|i| HostSpec {
            name: format!("host-{i:03}"),
            slots: 1,
            provisioner: ProvisionerSpec::Local,
            properties: Properties {
                arch: Some(
                    if rng.random_bool(0.9) {
                        "x86_64"
                    } else {
                        "arm64"
                    }
                    .into(),
                ),
                cpu: Some(if rng.random_bool(0.5) { "intel" } else { "amd" }.into()),
                memory_gb: Some(16 << rng.random_range(0..5)),
                tags: (0..rng.random_range(0..3))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())].to_string())
                    .collect(),
            },
            max_broken: 3,
        })
        .collect()
}

/// What a queued run asks for: usually nothing special; otherwise something a real host has.
fn needs(rng: &mut SmallRng, hosts: &[HostSpec]) -> Needs {
    let model = &hosts[rng.random_range(0..hosts.len())].properties;
    let roll = rng.random_range(0..10);
    Needs {
        arch: (roll >= 7).then(|| model.arch.clone()).flatten(),
        tags: if roll >= 8 {
            model.tags.iter().take(1).cloned().collect()
        } else {
            BTreeSet::new()
        },
        memory_gb: (roll == 9).then_some(model.memory_gb.unwrap_or(16)),
        ..Default::default()
    }
}

fn priority(rng: &mut SmallRng) -> Priority {
    [
        Priority::Gate,
        Priority::Bisection,
        Priority::Periodic,
        Priority::Manual,
    ][rng.random_range(0..4)]
}

#[derive(clap::Args)]
pub struct Args {
    /// Hosts in the simulated lab.
    #[arg(long, default_value_t = 200)]
    hosts: usize,
    /// Runs waiting for a host.
    #[arg(long, default_value_t = 2000)]
    queued: usize,
    /// Slots that come free before each decision.
    #[arg(long, default_value_t = 20)]
    free: usize,
    /// Decisions timed.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn measure(args: &Args) -> Result<ScheduleReport, BenchError> {
    schedule(args.hosts, args.queued, args.free, args.rounds.max(1)).await
}

/// One function on purpose, like the other benchmarks: a script (a lab, a full queue, then the
/// timed rounds) whose steps share the lab, the store and the random source.
async fn schedule(
    hosts: usize,
    queued: usize,
    free_per_round: usize,
    rounds: usize,
) -> Result<ScheduleReport, BenchError> {
    let hosts = hosts.max(1);
    let free_per_round = free_per_round.clamp(1, hosts);
    let mut rng = SmallRng::seed_from_u64(7);
    let specs = lab(&mut rng, hosts);

    // The decision alone.
    let waiting: Vec<Waiting> = (0..queued)
        .map(|i| Waiting {
            ticket: i as u64,
            priority: priority(&mut rng),
            needs: needs(&mut rng, &specs),
            prefer: rng
                .random_bool(0.1)
                .then(|| specs[rng.random_range(0..hosts)].name.clone()),
        })
        .collect();
    let mut decision = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let mut free: Vec<FreeSlot> = (0..hosts).map(|h| FreeSlot { host: h, slot: 0 }).collect();
        while free.len() > free_per_round {
            free.swap_remove(rng.random_range(0..free.len()));
        }
        let t = Instant::now();
        let chosen = assign(&specs, &free, &waiting);
        decision.push(t.elapsed().as_secs_f64() * 1000.0);
        std::hint::black_box(chosen);
    }

    // A lab's whole round, with the leases in SQLite.
    let dir = tempfile::tempdir().map_err(fail)?;
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = Store::open(&url).await.map_err(fail)?;
    let inventory = Inventory {
        file: PathBuf::from("(bench)"),
        hosts: specs.clone(),
        admin: None,
    };
    let lab = Lab::new(
        inventory,
        store.clone(),
        LabSettings {
            local_work_dir: dir.path().to_path_buf(),
            lease_length: Duration::from_secs(3600),
            health: Arc::new(HostMail {
                store: store.clone(),
                from: "bench <bench@localhost>".into(),
            }),
        },
    );
    // Every host busy, then a full queue.
    let far = now_ms() + 3_600_000;
    for (i, h) in specs.iter().enumerate() {
        store
            .take_run_lease(&h.name, 0, 1_000_000 + i as i64, far)
            .await
            .map_err(fail)?;
    }
    let mut next_run = 0i64;
    let mut enqueue = |lab: &Arc<Lab>, rng: &mut SmallRng, n: usize| {
        for _ in 0..n {
            next_run += 1;
            let request = LeaseRequest {
                run_id: next_run,
                priority: priority(rng),
                needs: needs(rng, &specs),
                prefer: None,
            };
            let lab = lab.clone();
            // A granted lease is dropped at once: its row stays, like a run holding it.
            tokio::spawn(async move { drop(lab.acquire(request).await) });
        }
    };
    enqueue(&lab, &mut rng, queued);
    while lab.waiting() < queued.saturating_sub(free_per_round) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut with_store = Vec::with_capacity(rounds);
    let mut granted = 0usize;
    for _ in 0..rounds {
        // Keep the queue full, then free some slots: the runs that held them ended.
        let short = queued.saturating_sub(lab.waiting());
        enqueue(&lab, &mut rng, short);
        // Let the new arrivals' own scheduling calls finish: only the timed one should run.
        while lab.waiting() < queued {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        lab.schedule().await.map_err(fail)?;
        let mut leases = store.live_leases().await.map_err(fail)?;
        for _ in 0..free_per_round.min(leases.len()) {
            let l = leases.swap_remove(rng.random_range(0..leases.len()));
            store
                .drop_run_lease(&l.host, l.slot as u32, l.run_id.unwrap_or_default())
                .await
                .map_err(fail)?;
        }
        let before = lab.waiting();
        let t = Instant::now();
        lab.schedule().await.map_err(fail)?;
        with_store.push(t.elapsed().as_secs_f64() * 1000.0);
        granted += before.saturating_sub(lab.waiting());
    }
    Ok(ScheduleReport {
        hosts,
        queued,
        free_per_round,
        rounds,
        decision: Stats::of(&decision),
        round_with_store: Stats::of(&with_store),
        granted_per_round: granted as f64 / rounds.max(1) as f64,
    })
}
