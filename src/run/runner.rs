//! One run from start to end, for the gate and for jobs alike: wait for a lease on a host that
//! fits, provision it, run the sequence, record every step, give the host back and count how
//! the run went against the host.

use std::path::PathBuf;
use std::sync::Arc;

use super::executor::{execute, RunReport, StepRecorder};
use crate::hosts::{HostOutcome, HostRequest, Lab, LeaseRequest, Needs};
use crate::sequence::{PauseOn, Sequence, StepContext, StepStatus};
use crate::store::{RunState, Store, StoreError};

/// What one run needs to know.
pub struct RunPlan<'a> {
    pub run_id: i64,
    pub sequence: &'a Sequence,
    pub sequence_name: &'a str,
    /// A git repository that has the commit.
    pub repository: PathBuf,
    pub sha: &'a str,
    pub log_dir: PathBuf,
    pub lease: LeaseRequest,
    pub pause_on: &'a PauseOn,
    /// Who hears about a pause (`host` is filled in once a host is leased).
    pub pause: PauseContext<'a>,
    pub flight_id: Option<i64>,
}

/// How a run ended: its state and what to say about it (why it broke, what failed).
pub async fn run_on_lab(
    store: &Store,
    lab: &Arc<Lab>,
    mut plan: RunPlan<'_>,
) -> Result<RunEnd, StoreError> {
    let lease = match lab.acquire(plan.lease.clone()).await {
        Ok(lease) => lease,
        Err(crate::hosts::LabError::Store(e)) => return Err(e),
        Err(e) => {
            return Ok(RunEnd {
                state: RunState::Broken,
                detail: e.to_string(),
                host: None,
            })
        }
    };
    store.set_run_host(plan.run_id, &lease.host.name).await?;
    let provisioner = lab.provisioner(&lease.host);
    let request = HostRequest {
        run_id: plan.run_id,
        repository: plan.repository.clone(),
        commit: plan.sha.to_string(),
    };
    let ended = match provisioner.acquire(&request).await {
        Err(e) => Ok((RunState::Broken, e.to_string())),
        Ok(host) => {
            plan.pause.host = host.name();
            let result = match tokio::fs::create_dir_all(&plan.log_dir).await {
                Err(e) => Ok(RunReport {
                    broken: Some(format!("cannot create {}: {e}", plan.log_dir.display())),
                    ..Default::default()
                }),
                Ok(()) => {
                    let context = StepContext {
                        run_id: plan.run_id,
                        commit: plan.sha.to_string(),
                        sequence: plan.sequence_name.to_string(),
                    };
                    let recorder = StoreRecorder {
                        store,
                        run_id: plan.run_id,
                        flight_id: plan.flight_id,
                        pause: plan.pause,
                    };
                    execute(
                        plan.sequence,
                        host.as_ref(),
                        &context,
                        &plan.log_dir,
                        &recorder,
                        plan.pause_on,
                    )
                    .await
                }
            };
            if let Err(e) = host.release().await {
                tracing::warn!(error = %e, "could not release the host");
            }
            result.map(|report| match (&report.broken, report.failed.is_empty()) {
                (Some(why), _) => (RunState::Broken, why.clone()),
                (None, true) => (RunState::Pass, String::new()),
                (None, false) => (
                    RunState::Fail,
                    report.failed.iter().cloned().collect::<Vec<_>>().join(", "),
                ),
            })
        }
    };
    let outcome = match &ended {
        Ok((RunState::Broken, why)) => HostOutcome::Broken(why.clone()),
        _ => HostOutcome::Fine,
    };
    let host = lease.host.name.clone();
    // The lease goes back even when the store failed mid-run: the host is not the store's.
    if let Err(e) = lab.release(lease, outcome).await {
        tracing::warn!(error = %e, "could not return the lease");
    }
    let (state, detail) = ended?;
    Ok(RunEnd {
        state,
        detail,
        host: Some(host),
    })
}

/// How a run ended: its state, what failed or broke it (empty on a pass), and the host of the
/// lab it ran on (`None` when it never got one).
#[derive(Clone, Debug)]
pub struct RunEnd {
    pub state: RunState,
    pub detail: String,
    pub host: Option<String>,
}

/// What a run of `sequence` asks of its host: the sequence's `needs`, then the policy's.
pub fn needs_of(sequence: &Sequence, policy_needs: &Needs) -> Result<Needs, String> {
    let own = Needs::parse(&sequence.prepare.needs)
        .map_err(|e| format!("sequence `{}`: {e}", sequence.name))?;
    Ok(own.and(policy_needs))
}

/// What a run of a mailed series asks of its host: the sequence's and the policy's needs, and
/// a test host rather than pushgate's own machine unless the list allows `local_hosts`.
pub fn series_needs(
    sequence: &Sequence,
    policy: &crate::config::policy::Policy,
) -> Result<Needs, String> {
    let mut needs = needs_of(sequence, &policy.needs)?;
    needs.untrusted = !policy.mailing_list.as_ref().is_some_and(|l| l.local_hosts);
    Ok(needs)
}

/// Records steps as the executor reports them.
pub struct StoreRecorder<'a> {
    pub store: &'a Store,
    pub run_id: i64,
    /// The flight the pause mail is filed under, if any.
    pub flight_id: Option<i64>,
    pub pause: PauseContext<'a>,
}

/// Who hears about a paused run, and how long it waits.
pub struct PauseContext<'a> {
    pub to: Vec<String>,
    pub sha: &'a str,
    /// What the mail's subject starts with: the policy's prefix (`[xen staging]`), or
    /// `[pushgate job N]`.
    pub subject_prefix: &'a str,
    pub host: String,
    pub resume_after: Option<std::time::Duration>,
    pub from: &'a str,
    pub public_url: &'a str,
}

/// How often a paused run looks whether someone let it go on.
const PAUSE_POLL: std::time::Duration = std::time::Duration::from_millis(500);

#[async_trait::async_trait]
impl StepRecorder for StoreRecorder<'_> {
    type Error = StoreError;

    async fn started(
        &self,
        position: usize,
        name: &str,
        log: &std::path::Path,
    ) -> Result<i64, StoreError> {
        self.store
            .start_step(self.run_id, position, name, log)
            .await
    }

    async fn finished(
        &self,
        step_id: i64,
        status: StepStatus,
        exit_code: Option<i32>,
    ) -> Result<(), StoreError> {
        self.store.finish_step(step_id, status, exit_code).await
    }

    async fn blocked(&self, position: usize, name: &str) -> Result<(), StoreError> {
        self.store.blocked_step(self.run_id, position, name).await
    }

    async fn results(
        &self,
        step_id: i64,
        results: &[crate::sequence::results::SubResult],
    ) -> Result<(), StoreError> {
        self.store.add_sub_results(step_id, results).await
    }

    async fn paused(&self, step_id: i64, name: &str) -> Result<(), StoreError> {
        let now = crate::store::now_ms();
        let resume_at = self
            .pause
            .resume_after
            .map(|d| now.saturating_add(d.as_millis() as i64));
        let id = self
            .store
            .pause(self.run_id, step_id, name, resume_at)
            .await?;
        let log = self
            .store
            .step(step_id)
            .await?
            .and_then(|s| s.log_path)
            .unwrap_or_default();
        let p = &self.pause;
        let facts = crate::notify::PauseFacts {
            from: p.from,
            to: p.to.clone(),
            run_id: self.run_id,
            testcase: name,
            sha: p.sha,
            subject_prefix: p.subject_prefix,
            host: &p.host,
            log: std::path::Path::new(&log),
            resumes: p
                .resume_after
                .map(|d| format!("in {}", humantime::format_duration(d))),
            public_url: p.public_url,
        };
        match crate::notify::compose_pause(&facts) {
            Ok(Some(mail)) => self.store.enqueue_mail(self.flight_id, &mail).await?,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot compose the pause mail"),
        }
        tracing::info!(run = self.run_id, testcase = name, "paused on failure");
        loop {
            tokio::time::sleep(PAUSE_POLL).await;
            match self.store.pause_row(id).await? {
                Some(row) if row.continued_at.is_some() => break,
                None => break,
                Some(row) => {
                    if row.resume_at.is_some_and(|at| crate::store::now_ms() >= at) {
                        self.store
                            .continue_pauses(self.run_id, Some(name), "timeout")
                            .await?;
                        break;
                    }
                }
            }
        }
        tracing::info!(
            run = self.run_id,
            testcase = name,
            "going on after the pause"
        );
        Ok(())
    }
}
