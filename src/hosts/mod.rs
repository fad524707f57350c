//! Test hosts: where a run's steps execute.
//!
//! A [`Provisioner`] hands out a [`Host`] prepared with the commit under test; the sequence
//! executor runs steps on it and releases it. Everything a host can get wrong is a
//! [`HostError`], which the gate judges `broken`: the host's fault, never the commit's.

mod cgroup;
pub mod inventory;
mod lab;
mod local;
mod loopback;
pub mod scheduler;
mod ssh;
mod xen;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use inventory::{HostSpec, Inventory, Needs};
pub use lab::{
    HealthWatch, HostOutcome, HostState, Lab, LabError, LabSettings, Lease, LeaseRequest, Queued,
    RUN_LEASE,
};
pub use local::LocalProvisioner;
pub use loopback::{LoopbackSshd, SshdFiles};
pub use scheduler::Priority;
pub use ssh::{upload_checkout, Connection, SshHost, SshProvisioner, SshTarget};
pub use xen::XenProvisioner;

use crate::sequence::{Step, StepContext};

/// A failure of the host, the network or pushgate's own plumbing, never of the commit.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("could not prepare a checkout of {commit} on {host}: {message}")]
    Checkout {
        host: String,
        commit: String,
        message: String,
    },
    #[error("could not reach {host}: {message}")]
    Connect { host: String, message: String },
    #[error("could not run step `{step}` on {host}: {message}")]
    Spawn {
        host: String,
        step: String,
        message: String,
    },
    #[error("could not fetch `{pattern}` from {host}: {message}")]
    Fetch {
        host: String,
        pattern: String,
        message: String,
    },
    #[error("could not clean up {host}: {message}")]
    Cleanup { host: String, message: String },
}

/// What a run needs from its host.
#[derive(Clone, Debug)]
pub struct HostRequest {
    pub run_id: i64,
    /// A git repository that has the commit.
    pub repository: PathBuf,
    pub commit: String,
}

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepExit {
    Exited(i32),
    /// Killed by a signal it did not ask for (not our timeout).
    Signalled(i32),
    /// Ran past its timeout; its whole process group was killed.
    TimedOut,
}

/// Gives out hosts for runs.
#[async_trait]
pub trait Provisioner: Send + Sync {
    async fn acquire(&self, request: &HostRequest) -> Result<Box<dyn Host>, HostError>;

    /// Removes what runs not in `live` left behind (a crashed run's directory, domain or
    /// disk): idempotent, safe at any start and from `pushgate hosts reap`. Returns how many
    /// leftovers it removed.
    async fn reap(&self, live: &BTreeSet<i64>) -> Result<usize, HostError>;
}

/// Every name a provisioner creates is `pushgate-run-ID` (with a suffix or a directory before
/// it): the run id in such a name.
pub fn run_name(run_id: i64) -> String {
    format!("pushgate-run-{run_id}")
}

/// The run id in a name made by [`run_name`], wherever it sits in a path.
pub fn run_id_in(name: &str) -> Option<i64> {
    let base = name.rsplit('/').next()?;
    let rest = base.strip_prefix("pushgate-run-")?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let after = &rest[digits.len()..];
    // `pushgate-run-12`, `pushgate-run-12.cfg`, `pushgate-run-12.qcow2`; not `-12x`.
    if digits.is_empty() || !(after.is_empty() || after.starts_with('.')) {
        return None;
    }
    digits.parse().ok()
}

/// A host holding a checkout of the commit under test.
#[async_trait]
pub trait Host: Send + Sync {
    fn name(&self) -> String;

    /// Runs one step, writing its stdout and stderr to `log` as they come. Several steps may
    /// run at once (a parallel block).
    async fn run_step(
        &self,
        step: &Step,
        context: &StepContext,
        log: &Path,
    ) -> Result<StepExit, HostError>;

    /// Copies the files matching `pattern` (a glob relative to the step's working directory)
    /// into `into`, and returns their local paths.
    async fn fetch(
        &self,
        step: &Step,
        pattern: &str,
        into: &Path,
    ) -> Result<Vec<PathBuf>, HostError>;

    /// Gives the host back, removing the checkout.
    async fn release(self: Box<Self>) -> Result<(), HostError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_in_names() {
        assert_eq!(run_id_in(&run_name(12)), Some(12));
        assert_eq!(run_id_in("/var/tmp/pushgate/pushgate-run-7"), Some(7));
        assert_eq!(run_id_in("/var/lib/pushgate/pushgate-run-7.qcow2"), Some(7));
        assert_eq!(run_id_in("pushgate-run-7.cfg"), Some(7));
        for other in [
            "pushgate-run-",
            "pushgate-run-7x",
            "my-pushgate-run-7",
            "golden",
            "pushgate-run-99999999999999999999",
        ] {
            assert_eq!(run_id_in(other), None, "{other}");
        }
    }
}
