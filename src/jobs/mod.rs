//! The job server (XenRT's): runs asked for by hand with `pushgate jobs submit`, the periodic
//! runs a policy schedules on its target branch so that baselines exist, and try runs of pull
//! requests. Each job is one run of one sequence on one commit, on a host the lab leases it, at
//! a lower priority than the gate's runs.
//!
//! `server.rs` takes submissions and runs jobs, `periodic.rs` queues what a schedule says is
//! due, `try_merge.rs` tests a pull request merged onto its target and reports on GitHub.

mod periodic;
mod server;
mod try_merge;

pub use periodic::Candidate;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::policy::Policy;
use crate::config::{InForce, Rules};
use crate::gate::GateSettings;
use crate::hosts::{Lab, Needs};
use crate::repo::Mirror;
use crate::run;
use crate::sequence::Sequence;
use crate::store::{JobRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Refused(String),
}

/// Runs jobs as they are queued.
pub struct JobRunner {
    pub store: Store,
    pub lab: Arc<Lab>,
    /// The policies and sequences in force (a reload changes them for the next job).
    pub rules: Arc<InForce<Rules>>,
    pub settings: GateSettings,
    /// Whether try runs report to GitHub (`[github]` login configured).
    pub report_try_runs: bool,
    /// Jobs this process is running now.
    running: std::sync::Mutex<BTreeSet<i64>>,
    wake: tokio::sync::Notify,
}

/// What `jobs submit` asks for, before it is checked.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Submission {
    pub sequence: String,
    /// A branch, tag or commit; the policy's target branch by default.
    pub rev: Option<String>,
    /// A repository URL or path, or a policy's name; the only policy's by default.
    pub repo: Option<String>,
    pub host: Option<String>,
    pub pause_on_fail: Option<String>,
    pub email: Option<String>,
    pub submitter: String,
}

impl JobRunner {
    pub fn new(
        store: Store,
        lab: Arc<Lab>,
        rules: Arc<InForce<Rules>>,
        settings: GateSettings,
        report_try_runs: bool,
    ) -> Arc<JobRunner> {
        Arc::new(JobRunner {
            store,
            lab,
            rules,
            settings,
            report_try_runs,
            running: Default::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Wakes the loop (a job was queued elsewhere).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn log_dir(&self, job_id: i64, run_id: i64) -> PathBuf {
        self.settings
            .logs_dir
            .join(format!("job-{job_id}"))
            .join(format!("run-{run_id}"))
    }

    /// The policy that gates the job's repository, if one does.
    fn policy_of(&self, job: &JobRow) -> Option<Policy> {
        self.rules
            .get()
            .policies
            .iter()
            .find(|p| p.repository == job.repository)
            .cloned()
    }

    /// The mirror a job fetches into: its policy's, else one named for the repository.
    fn mirror_name(&self, repository: &str) -> String {
        match self
            .rules
            .get()
            .policies
            .iter()
            .find(|p| p.repository == repository)
        {
            Some(p) => p.name.clone(),
            None => format!("job-{:08x}", crc32fast::hash(repository.as_bytes())),
        }
    }

    /// Fetches what `rev` names in `repository` into its mirror; the commit, or why not.
    async fn fetch_rev(&self, repository: &str, rev: &str) -> Result<git2::Oid, String> {
        let (dir, name, url, rev) = (
            self.settings.mirrors_dir.clone(),
            self.mirror_name(repository),
            repository.to_string(),
            rev.to_string(),
        );
        match tokio::task::spawn_blocking(move || Mirror::open(&dir, &name, &url)?.fetch_rev(&rev))
            .await
        {
            Ok(Ok(oid)) => Ok(oid),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("background git task: {e}")),
        }
    }
}

/// What a job's run asks of its host: its sequence's and policy's needs, and the host named.
fn job_needs(
    sequence: &Sequence,
    policy: Option<&Policy>,
    host: Option<&str>,
) -> Result<Needs, String> {
    let mut needs = run::needs_of(sequence, policy.map_or(&Needs::default(), |p| &p.needs))?;
    if let Some(h) = host {
        needs.host = Some(h.to_string());
    }
    Ok(needs)
}
