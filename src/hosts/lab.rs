//! The lab at run time: the inventory, the queue of runs waiting for a host, and the leases
//! that say who holds what. Leases live in the store, so they survive a restart and a second
//! process (or replica) cannot take a slot this one holds; the queue lives here, because the
//! gate and the job runner remake their requests after a restart anyway.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use super::inventory::{HostSpec, Inventory, Needs, ProvisionerSpec};
use super::scheduler::{assign, satisfiable, FreeSlot, Priority, Waiting};
use super::{LocalProvisioner, Provisioner, SshProvisioner, XenProvisioner};
use crate::store::{now_ms, BorrowRefusal, HealthRow, LeaseRow, Store, StoreError};

/// How long a run's lease lasts unless renewed; its holder renews it every third of that, so
/// a crashed process's hosts come free after at most this long.
pub const RUN_LEASE: Duration = Duration::from_secs(600);
/// How often the queue is looked at when nothing wakes it (expired leases, other processes).
const TICK: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no host in {file} can take a run that needs {needs}")]
    NoSuchHost { file: String, needs: String },
    #[error("there is no host `{0}` in the lab")]
    UnknownHost(String),
    #[error("{host} is running run {run}; borrow it when the run is over")]
    Busy { host: String, run: String },
    #[error("{host} is borrowed by {holder}")]
    Borrowed { host: String, holder: String },
    #[error("{host} is not borrowed by {who}")]
    NotBorrowed { host: String, who: String },
    #[error("stopped waiting for a host")]
    Closed,
}

/// What a run asks for.
#[derive(Clone, Debug)]
pub struct LeaseRequest {
    pub run_id: i64,
    pub priority: Priority,
    pub needs: Needs,
    pub prefer: Option<String>,
}

/// A slot of a host held by a run: renewed in the background until released.
pub struct Lease {
    pub host: HostSpec,
    pub slot: u32,
    pub run_id: i64,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// How a run ended, as far as its host is concerned.
#[derive(Clone, Debug)]
pub enum HostOutcome {
    Fine,
    /// The host or the network failed (a `broken` run), with why.
    Broken(String),
}

/// One host as `jobs hosts` shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HostState {
    pub name: String,
    pub provisioner: String,
    pub slots: u32,
    /// `free`, `busy`, `borrowed` or `out-of-service`.
    pub state: String,
    pub leases: Vec<LeaseRow>,
    pub health: Option<HealthRow>,
}

/// A run waiting for a host, as the dashboard shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Queued {
    pub run_id: i64,
    /// `gate`, `bisection`, `periodic` or `manual`.
    pub priority: &'static str,
    /// What it asks of its host, as `needs` are written (empty: anything).
    pub needs: String,
}

/// Runs waiting for a host, in no particular order (the scheduler orders them).
#[derive(Default)]
struct Queue {
    /// The last ticket given: arrival order.
    last_ticket: u64,
    entries: Vec<Entry>,
}

struct Entry {
    waiting: Waiting,
    request: LeaseRequest,
    reply: oneshot::Sender<Result<Lease, LabError>>,
}

pub struct Lab {
    inventory: RwLock<Arc<Inventory>>,
    store: Store,
    /// Where the local provisioner makes its worktrees.
    local_work_dir: PathBuf,
    queue: Mutex<Queue>,
    /// One scheduling decision at a time in this process.
    deciding: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    lease_length: Duration,
    health: Arc<dyn HealthWatch>,
}

/// What a lab needs besides its inventory and store.
#[derive(Clone)]
pub struct LabSettings {
    /// Where the local provisioner makes its worktrees.
    pub local_work_dir: PathBuf,
    /// How long a run's lease lasts unless renewed ([`RUN_LEASE`]).
    pub lease_length: Duration,
    /// Told when a host's health changes (the service mails the lab's admin).
    pub health: Arc<dyn HealthWatch>,
}

/// Who hears of a change of a host's health. The lab only says it; what is done about it
/// (a mail to the admin) is the watcher's.
#[async_trait::async_trait]
pub trait HealthWatch: Send + Sync {
    /// The lab took `health.host` out of service; `admin` is the inventory's admin address.
    async fn out_of_service(
        &self,
        health: &HealthRow,
        admin: Option<&str>,
    ) -> Result<(), StoreError>;
}

impl Lab {
    pub fn new(inventory: Inventory, store: Store, settings: LabSettings) -> Arc<Lab> {
        Arc::new(Lab {
            inventory: RwLock::new(Arc::new(inventory)),
            store,
            local_work_dir: settings.local_work_dir,
            queue: Mutex::new(Queue::default()),
            deciding: tokio::sync::Mutex::new(()),
            wake: tokio::sync::Notify::new(),
            lease_length: settings.lease_length,
            health: settings.health,
        })
    }

    pub fn inventory(&self) -> Arc<Inventory> {
        match self.inventory.read() {
            Ok(i) => i.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a new inventory (SIGHUP, or the file changed). Leases on hosts that left the
    /// lab stay until their runs end; nothing new goes to those hosts.
    pub fn replace_inventory(&self, inventory: Inventory) {
        match self.inventory.write() {
            Ok(mut i) => *i = Arc::new(inventory),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(inventory),
        }
        self.wake.notify_one();
    }

    pub fn provisioner(&self, host: &HostSpec) -> Arc<dyn Provisioner> {
        match &host.provisioner {
            ProvisionerSpec::Local => Arc::new(LocalProvisioner::new(self.local_work_dir.clone())),
            ProvisionerSpec::Ssh(ssh) => Arc::new(SshProvisioner::new(ssh.clone())),
            ProvisionerSpec::Xen { dom0, xen } => {
                Arc::new(XenProvisioner::new(dom0.clone(), (**xen).clone()))
            }
        }
    }

    /// Waits for a slot of a host that meets the request, and holds it.
    pub async fn acquire(self: &Arc<Self>, request: LeaseRequest) -> Result<Lease, LabError> {
        let inventory = self.inventory();
        if let Some(h) = &request.needs.host {
            if inventory.get(h).is_none() {
                return Err(LabError::UnknownHost(h.clone()));
            }
        }
        if !satisfiable(&inventory.hosts, &request.needs) {
            return Err(LabError::NoSuchHost {
                file: inventory.file.display().to_string(),
                needs: request.needs.to_string(),
            });
        }
        let (reply, answer) = oneshot::channel();
        {
            let mut q = self.queue.lock().map_err(|_| LabError::Closed)?;
            q.last_ticket += 1;
            let waiting = Waiting {
                ticket: q.last_ticket,
                priority: request.priority,
                needs: request.needs.clone(),
                prefer: request.prefer.clone(),
            };
            q.entries.push(Entry {
                waiting,
                request,
                reply,
            });
        }
        self.schedule().await?;
        answer.await.map_err(|_| LabError::Closed)?
    }

    /// Ends a run's hold on its host and counts how the run went against the host.
    pub async fn release(&self, lease: Lease, outcome: HostOutcome) -> Result<(), LabError> {
        lease.renewer.abort();
        self.store
            .drop_run_lease(&lease.host.name, lease.slot, lease.run_id)
            .await?;
        let broken = match &outcome {
            HostOutcome::Fine => None,
            HostOutcome::Broken(why) => Some(why.as_str()),
        };
        let (health, went_out) = self
            .store
            .record_host_outcome(&lease.host.name, broken, lease.host.max_broken)
            .await?;
        if went_out {
            tracing::error!(host = %lease.host.name, reason = %health.reason, "host taken out of service");
            let admin = self.inventory().admin.clone();
            self.health
                .out_of_service(&health, admin.as_deref())
                .await?;
        }
        self.schedule().await
    }

    /// Gives free slots to waiting runs. Safe to call at any time, from anywhere.
    pub async fn schedule(&self) -> Result<(), LabError> {
        let _deciding = self.deciding.lock().await;
        let inventory = self.inventory();
        let (waiting, run_ids): (Vec<Waiting>, Vec<i64>) = {
            let mut q = self.queue.lock().map_err(|_| LabError::Closed)?;
            // A caller that stopped waiting (its run was cancelled) leaves the queue.
            q.entries.retain(|e| !e.reply.is_closed());
            if q.entries.is_empty() {
                return Ok(());
            }
            q.entries
                .iter()
                .map(|e| (e.waiting.clone(), e.request.run_id))
                .unzip()
        };
        let free = self.free_slots(&inventory).await?;
        let chosen = assign(&inventory.hosts, &free, &waiting);
        if chosen.is_empty() {
            return Ok(());
        }
        let picks: Vec<(u64, &HostSpec, u32, i64)> = chosen
            .iter()
            .map(|&(w, f)| {
                let slot = free[f];
                (
                    waiting[w].ticket,
                    &inventory.hosts[slot.host],
                    slot.slot,
                    run_ids[w],
                )
            })
            .collect();
        let expires = now_ms() + self.lease_length.as_millis() as i64;
        let wanted: Vec<(String, u32, i64)> = picks
            .iter()
            .map(|(_, host, slot, run_id)| (host.name.clone(), *slot, *run_id))
            .collect();
        // Another process may have taken a slot since we looked: that run waits on.
        let taken = self.store.take_run_leases(&wanted, expires).await?;
        let granted: Vec<(u64, HostSpec, u32, i64)> = picks
            .into_iter()
            .zip(taken)
            .filter(|(_, ok)| *ok)
            .map(|((ticket, host, slot, run_id), _)| (ticket, host.clone(), slot, run_id))
            .collect();
        for (ticket, host, slot, run_id) in granted {
            let entry = {
                let mut q = self.queue.lock().map_err(|_| LabError::Closed)?;
                let i = q.entries.iter().position(|e| e.waiting.ticket == ticket);
                i.map(|i| q.entries.swap_remove(i))
            };
            let Some(entry) = entry else {
                self.store.drop_run_lease(&host.name, slot, run_id).await?;
                continue;
            };
            let lease = Lease {
                renewer: self.renewer(host.name.clone(), slot, run_id),
                host,
                slot,
                run_id,
            };
            if let Err(Ok(lease)) = entry.reply.send(Ok(lease)) {
                // The run stopped waiting just now: hand the slot back.
                lease.renewer.abort();
                self.store
                    .drop_run_lease(&lease.host.name, lease.slot, lease.run_id)
                    .await?;
            }
        }
        Ok(())
    }

    fn renewer(&self, host: String, slot: u32, run_id: i64) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let length = self.lease_length;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(length / 3).await;
                let expires = now_ms() + length.as_millis() as i64;
                match store.renew_run_lease(&host, slot, run_id, expires).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(%host, run_id, "lost the lease on the host (expired)");
                        return;
                    }
                    Err(e) => tracing::warn!(%host, error = %e, "cannot renew a lease"),
                }
            }
        })
    }

    /// Slots nobody holds, on hosts in service.
    async fn free_slots(&self, inventory: &Inventory) -> Result<Vec<FreeSlot>, LabError> {
        let held: HashSet<(String, i64)> = self
            .store
            .live_leases()
            .await?
            .into_iter()
            .map(|l| (l.host, l.slot))
            .collect();
        let out_of_service: BTreeSet<String> = self
            .store
            .host_health()
            .await?
            .into_iter()
            .filter(|h| h.state == "out-of-service")
            .map(|h| h.host)
            .collect();
        let mut free = Vec::new();
        for (i, host) in inventory.hosts.iter().enumerate() {
            if out_of_service.contains(&host.name) {
                continue;
            }
            for slot in 0..host.slots {
                if !held.contains(&(host.name.clone(), i64::from(slot))) {
                    free.push(FreeSlot { host: i, slot });
                }
            }
        }
        Ok(free)
    }

    /// Looks at the queue every few seconds: leases expire, other processes release hosts.
    pub fn spawn_ticker(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let lab = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(this) = lab.upgrade() else { return };
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = this.wake.notified() => {}
                }
                if let Err(e) = this.schedule().await {
                    tracing::warn!(error = %e, "scheduling failed; will try again");
                }
            }
        })
    }

    /// Looks at the queue again soon (a lease was freed elsewhere).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How many runs wait for a host.
    pub fn waiting(&self) -> usize {
        self.queue.lock().map_or(0, |q| q.entries.len())
    }

    /// The runs waiting for a host, in arrival order: what the dashboard lists as the queue.
    pub fn queued(&self) -> Vec<Queued> {
        let Ok(queue) = self.queue.lock() else {
            return Vec::new();
        };
        let mut out: Vec<(u64, Queued)> = queue
            .entries
            .iter()
            .map(|e| {
                (
                    e.waiting.ticket,
                    Queued {
                        run_id: e.request.run_id,
                        priority: e.request.priority.as_str(),
                        needs: e.request.needs.to_string(),
                    },
                )
            })
            .collect();
        out.sort_by_key(|(ticket, _)| *ticket);
        out.into_iter().map(|(_, q)| q).collect()
    }

    /// Lends every slot of `host` to `who` for `hours`, or extends their borrow.
    pub async fn borrow(&self, host: &str, who: &str, hours: f64) -> Result<i64, LabError> {
        let inventory = self.inventory();
        let spec = inventory
            .get(host)
            .ok_or_else(|| LabError::UnknownHost(host.to_string()))?;
        let until = now_ms() + (hours.max(0.0) * 3_600_000.0) as i64;
        match self.store.borrow_host(host, spec.slots, who, until).await? {
            Ok(()) => Ok(until),
            Err(BorrowRefusal::RunningRun(run)) => Err(LabError::Busy {
                host: host.to_string(),
                run: run.map_or("a run".into(), |r| r.to_string()),
            }),
            Err(BorrowRefusal::BorrowedBy(holder)) => Err(LabError::Borrowed {
                host: host.to_string(),
                holder,
            }),
        }
    }

    /// Ends a borrow (anyone's when `who` is `None`: an admin's `return --force`).
    pub async fn give_back(&self, host: &str, who: Option<&str>) -> Result<(), LabError> {
        if self.inventory().get(host).is_none() {
            return Err(LabError::UnknownHost(host.to_string()));
        }
        if self.store.return_host(host, who).await? == 0 {
            return Err(LabError::NotBorrowed {
                host: host.to_string(),
                who: who.unwrap_or("anyone").to_string(),
            });
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Every host with its leases and health.
    pub async fn states(&self) -> Result<Vec<HostState>, LabError> {
        let inventory = self.inventory();
        let mut leases: BTreeMap<String, Vec<LeaseRow>> = BTreeMap::new();
        for l in self.store.live_leases().await? {
            leases.entry(l.host.clone()).or_default().push(l);
        }
        let health: BTreeMap<String, HealthRow> = self
            .store
            .host_health()
            .await?
            .into_iter()
            .map(|h| (h.host.clone(), h))
            .collect();
        Ok(inventory
            .hosts
            .iter()
            .map(|h| {
                let leases = leases.remove(&h.name).unwrap_or_default();
                let health = health.get(&h.name).cloned();
                let state = if health.as_ref().is_some_and(|h| h.state == "out-of-service") {
                    "out-of-service"
                } else if leases.iter().any(|l| l.kind == "borrow") {
                    "borrowed"
                } else if leases.is_empty() {
                    "free"
                } else {
                    "busy"
                };
                HostState {
                    name: h.name.clone(),
                    provisioner: h.provisioner.kind().to_string(),
                    slots: h.slots,
                    state: state.to_string(),
                    leases,
                    health,
                }
            })
            .collect())
    }

    /// Removes what crashed runs left on every host: everything not belonging to a run in
    /// `live`. One unreachable host does not stop the others; its error is returned with
    /// its name.
    pub async fn reap(
        &self,
        live: &BTreeSet<i64>,
    ) -> Vec<(String, Result<usize, super::HostError>)> {
        let inventory = self.inventory();
        let work = inventory.hosts.iter().map(|h| {
            let provisioner = self.provisioner(h);
            async move { (h.name.clone(), provisioner.reap(live).await) }
        });
        futures_util::future::join_all(work).await
    }

    /// Runs holding a live lease: what `hosts reap` must leave alone.
    pub async fn live_runs(&self) -> Result<BTreeSet<i64>, LabError> {
        Ok(self
            .store
            .live_leases()
            .await?
            .into_iter()
            .filter_map(|l| l.run_id)
            .collect())
    }
}
