//! Test hosts: where a run's steps execute.
//!
//! A [`Provisioner`] hands out a [`Host`] prepared with the commit under test; the sequence
//! executor runs steps on it and releases it. Everything a host can get wrong is a
//! [`HostError`], which the gate judges `broken`: the host's fault, never the commit's.

mod local;
mod loopback;
mod ssh;

use std::path::{Path, PathBuf};

use async_trait::async_trait;

pub use local::LocalProvisioner;
pub use loopback::LoopbackSshd;
pub use ssh::{Connection, SshHost, SshProvisioner, SshTarget};

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

    /// Removes what crashed runs left behind; safe to call at any start. Returns how many
    /// leftovers it removed.
    async fn recover(&self) -> Result<usize, HostError>;
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
