//! The xen provisioner: each run gets a fresh guest on a dom0 with the `xl` toolstack, on a
//! copy-on-write disk made from a golden image, and the guest is destroyed afterwards.
//!
//! Over SSH to the dom0: `lvcreate -s` (or `qemu-img create -b`), a guest config, `xl create`
//! (or `xl restore` of a saved guest, which skips the boot), then wait until the guest answers
//! SSH and hand it to the sequence. Every name made carries the run id (`pushgate-run-ID`), so
//! teardown and [`Provisioner::reap`] are one idempotent path: list what exists, remove what
//! belongs to runs that are not live.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::inventory::{DiskKind, XenSpec};
use super::ssh::quote;
use super::{
    run_id_in, run_name, upload_checkout, Connection, Host, HostError, HostRequest, Provisioner,
    SshHost, SshTarget, StepExit,
};
use crate::sequence::{Step, StepContext};

pub struct XenProvisioner {
    dom0: SshTarget,
    xen: XenSpec,
}

impl XenProvisioner {
    pub fn new(dom0: SshTarget, xen: XenSpec) -> XenProvisioner {
        XenProvisioner { dom0, xen }
    }

    fn config_path(&self, name: &str) -> String {
        format!("{}/{name}.cfg", self.xen.image_dir.trim_end_matches('/'))
    }

    fn overlay_path(&self, name: &str) -> String {
        format!("{}/{name}.qcow2", self.xen.image_dir.trim_end_matches('/'))
    }

    fn volume_group(&self) -> &str {
        self.xen.volume_group.as_deref().unwrap_or("")
    }

    /// The guest's disk line for the xl config.
    fn disk_spec(&self, name: &str) -> String {
        match self.xen.disk {
            DiskKind::Lvm => format!("phy:/dev/{}/{name},xvda,w", self.volume_group()),
            DiskKind::Qcow2 => format!(
                "format=qcow2,vdev=xvda,access=rw,target={}",
                self.overlay_path(name)
            ),
        }
    }

    /// The xl config of a run's guest.
    pub fn guest_config(&self, run_id: i64) -> String {
        let name = run_name(run_id);
        let x = &self.xen;
        let mut cfg = format!(
            "# Made by pushgate for run {run_id}; destroyed with its disk when the run ends.\n\
             name = \"{name}\"\n\
             type = \"{}\"\n\
             memory = {}\n\
             vcpus = {}\n\
             disk = [ \"{}\" ]\n\
             vif = [ \"mac={},bridge={}\" ]\n",
            x.guest_type,
            x.memory_mb,
            x.vcpus,
            self.disk_spec(&name),
            x.mac,
            x.bridge,
        );
        if let Some(b) = &x.bootloader {
            cfg.push_str(&format!("bootloader = \"{b}\"\n"));
        }
        if let Some(k) = &x.kernel {
            cfg.push_str(&format!("kernel = \"{k}\"\n"));
        }
        cfg.push_str(
            "on_poweroff = \"destroy\"\non_reboot = \"restart\"\non_crash = \"destroy\"\n",
        );
        cfg
    }

    /// Makes the disk, writes the config and starts the guest.
    async fn start_guest(&self, dom0: &Connection, run_id: i64) -> Result<(), HostError> {
        let name = run_name(run_id);
        let cfg = self.config_path(&name);
        dom0.must(&format!("mkdir -p {}", quote(&self.xen.image_dir)), None)
            .await?;
        let disk = match self.xen.disk {
            DiskKind::Lvm => format!(
                "lvcreate -s -n {name} -L {} {}",
                quote(&self.xen.snapshot_size),
                quote(&format!("{}/{}", self.volume_group(), self.xen.golden))
            ),
            DiskKind::Qcow2 => format!(
                "qemu-img create -q -f qcow2 -F qcow2 -b {} {}",
                quote(&self.xen.golden),
                quote(&self.overlay_path(&name))
            ),
        };
        dom0.must(&disk, None).await?;
        dom0.must(
            &format!("cat > {}", quote(&cfg)),
            Some(self.guest_config(run_id).as_bytes()),
        )
        .await?;
        let start = match &self.xen.restore {
            Some(saved) => format!("xl restore {} {}", quote(&cfg), quote(saved)),
            None => format!("xl create {}", quote(&cfg)),
        };
        dom0.must(&start, None).await?;
        Ok(())
    }

    /// Waits until the guest answers SSH (it is booting, or resuming).
    async fn reach_guest(&self) -> Result<Connection, HostError> {
        let deadline = Instant::now() + self.xen.boot_timeout;
        let mut target = self.xen.guest.clone();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            target.connect_timeout = left.min(Duration::from_secs(10));
            match Connection::open(&target).await {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() + Duration::from_millis(300) >= deadline => {
                    return Err(HostError::Connect {
                        host: target.name(),
                        message: format!(
                            "the guest did not answer SSH within {:?}: {e}",
                            self.xen.boot_timeout
                        ),
                    })
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// Removes every domain, disk and config of the runs `keep` says no to; returns how many
    /// things it removed.
    async fn remove_leftovers(
        &self,
        dom0: &Connection,
        keep: impl Fn(i64) -> bool,
    ) -> Result<usize, HostError> {
        let mut removed = 0;
        let listing = dom0.must("xl list", None).await?;
        for line in String::from_utf8_lossy(&listing).lines().skip(1) {
            let Some(domain) = line.split_whitespace().next() else {
                continue;
            };
            if run_id_in(domain).is_some_and(|id| !keep(id)) {
                dom0.must(&format!("xl destroy {}", quote(domain)), None)
                    .await?;
                removed += 1;
            }
        }
        if self.xen.disk == DiskKind::Lvm {
            let vg = quote(self.volume_group());
            let volumes = dom0
                .must(&format!("lvs --noheadings -o lv_name {vg}"), None)
                .await?;
            for lv in String::from_utf8_lossy(&volumes).split_whitespace() {
                if run_id_in(lv).is_some_and(|id| !keep(id)) {
                    dom0.must(
                        &format!(
                            "lvremove -f {}",
                            quote(&format!("{}/{lv}", self.volume_group()))
                        ),
                        None,
                    )
                    .await?;
                    removed += 1;
                }
            }
        }
        let dir = quote(self.xen.image_dir.trim_end_matches('/'));
        let files = dom0
            .must(
                &format!(
                    "for f in {dir}/pushgate-run-*; do [ -e \"$f\" ] && echo \"$f\"; done; true"
                ),
                None,
            )
            .await?;
        for file in String::from_utf8_lossy(&files).lines() {
            if run_id_in(file).is_some_and(|id| !keep(id)) {
                dom0.must(&format!("rm -f {}", quote(file)), None).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Destroys one run's guest and drops its disk and config, whatever of them exists.
    async fn teardown(&self, run_id: i64) -> Result<usize, HostError> {
        let dom0 = Connection::open(&self.dom0).await?;
        let result = self.remove_leftovers(&dom0, |id| id != run_id).await;
        dom0.close().await;
        result.map_err(|e| HostError::Cleanup {
            host: self.dom0.name(),
            message: e.to_string(),
        })
    }
}

#[async_trait]
impl Provisioner for XenProvisioner {
    async fn acquire(&self, request: &HostRequest) -> Result<Box<dyn Host>, HostError> {
        let run_id = request.run_id;
        let dom0 = Connection::open(&self.dom0).await?;
        let started = self.start_guest(&dom0, run_id).await;
        dom0.close().await;
        let ready = match started {
            Ok(()) => match self.reach_guest().await {
                Ok(guest) => {
                    let dir = format!(
                        "{}/{}",
                        self.xen.guest.work_dir.trim_end_matches('/'),
                        run_name(run_id)
                    );
                    match upload_checkout(&guest, &dir, request).await {
                        Ok(()) => Ok(SshHost::new(guest, dir).own_processes(run_id).await),
                        Err(e) => {
                            guest.close().await;
                            Err(e)
                        }
                    }
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match ready {
            Ok(guest) => Ok(Box::new(XenGuest {
                guest,
                provisioner: XenProvisioner::new(self.dom0.clone(), self.xen.clone()),
                run_id,
            })),
            Err(e) => {
                // Whatever got made goes: a half-started guest must not hold the host's disk.
                if let Err(t) = self.teardown(run_id).await {
                    tracing::error!(run_id, error = %t, "cannot tear down a guest that failed to start");
                }
                Err(e)
            }
        }
    }

    async fn reap(&self, live: &BTreeSet<i64>) -> Result<usize, HostError> {
        let dom0 = Connection::open(&self.dom0).await?;
        let result = self.remove_leftovers(&dom0, |id| live.contains(&id)).await;
        dom0.close().await;
        result.map_err(|e| HostError::Cleanup {
            host: self.dom0.name(),
            message: e.to_string(),
        })
    }
}

/// A run's guest: steps run on it over SSH; releasing it destroys it.
struct XenGuest {
    guest: SshHost,
    provisioner: XenProvisioner,
    run_id: i64,
}

#[async_trait]
impl Host for XenGuest {
    fn name(&self) -> String {
        format!(
            "{} on {}",
            run_name(self.run_id),
            self.provisioner.dom0.name()
        )
    }

    async fn run_step(
        &self,
        step: &Step,
        context: &StepContext,
        log: &Path,
    ) -> Result<StepExit, HostError> {
        self.guest.run_step(step, context, log).await
    }

    async fn fetch(
        &self,
        step: &Step,
        pattern: &str,
        into: &Path,
    ) -> Result<Vec<PathBuf>, HostError> {
        self.guest.fetch(step, pattern, into).await
    }

    async fn release(self: Box<Self>) -> Result<(), HostError> {
        let XenGuest {
            guest,
            provisioner,
            run_id,
        } = *self;
        // The guest and its disk are about to go: its work directory goes with them.
        guest.close().await;
        provisioner.teardown(run_id).await.map(|_| ())
    }
}
