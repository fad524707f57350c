//! Taking submissions and running jobs: checked before they are queued, started as they
//! come, each run watched so that a cancel or `complete` stops it, the result mailed.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::try_merge::try_report;
use super::{job_needs, JobError, JobRunner, Submission};
use crate::decision::Role;
use crate::hosts::{LeaseRequest, Priority};
use crate::notify::{compose_job_result, JobFacts};
use crate::run::{self, PauseContext, RunPlan};
use crate::sequence::{PauseOn, Sequence};
use crate::store::{now_ms, JobRow, JobState, NewJob, RunOwner, RunState, StoreError};

/// How often a running job looks whether someone cancelled or completed it.
const WATCH: Duration = Duration::from_millis(500);

impl JobRunner {
    /// Checks a submission and queues it; returns the job id.
    pub async fn submit(&self, s: &Submission) -> Result<i64, JobError> {
        let refuse = |m: String| Err(JobError::Refused(m));
        let rules = self.rules.get();
        let Some(sequence) = rules.sequences.get(&s.sequence) else {
            let known: Vec<&str> = rules.sequences.keys().map(String::as_str).collect();
            return refuse(format!(
                "no sequence `{}` (there are: {})",
                s.sequence,
                known.join(", ")
            ));
        };
        let policy = match &s.repo {
            None if rules.policies.len() == 1 => Some(&rules.policies[0]),
            None => {
                return refuse(
                    "say which repository with --repo (a URL, a path or a policy's name)".into(),
                )
            }
            Some(r) => rules
                .policies
                .iter()
                .find(|p| &p.name == r || &p.repository == r),
        };
        let repository = match policy {
            Some(p) => p.repository.clone(),
            None => s.repo.clone().unwrap_or_default(),
        };
        let rev = match (&s.rev, policy) {
            (Some(r), _) => r.clone(),
            (None, Some(p)) => p.target.clone(),
            (None, None) => return refuse("say which commit with --rev".into()),
        };
        if !is_revision(&rev) {
            return refuse(format!("`{rev}` is not a branch, tag or commit"));
        }
        let needs = job_needs(sequence, policy, s.host.as_deref()).map_err(JobError::Refused)?;
        let inventory = self.lab.inventory();
        if let Some(h) = &s.host {
            if inventory.get(h).is_none() {
                return refuse(format!(
                    "there is no host `{h}` in {}",
                    inventory.file.display()
                ));
            }
        }
        if !crate::hosts::scheduler::satisfiable(&inventory.hosts, &needs) {
            return refuse(format!(
                "no host in {} can take a run that needs {needs}",
                inventory.file.display()
            ));
        }
        if let Some(e) = &s.email {
            if e.parse::<lettre::message::Mailbox>().is_err() {
                return refuse(format!("`{e}` is not a mail address"));
            }
        }
        // Asked now, not when a host is free: a revision that does not exist is the
        // submitter's mistake to hear at once, not a `broken` job an hour later.
        if let Err(why) = self.fetch_rev(&repository, &rev).await {
            return refuse(format!("cannot find `{rev}` in {repository}: {why}"));
        }
        // A run of the target branch is evidence about the branch's baseline; any other is not.
        let branch_id = match policy {
            Some(p) if p.target == rev => Some(self.store.upsert_branch(p).await?),
            _ => None,
        };
        let id = self
            .store
            .create_job(&NewJob {
                kind: "manual".into(),
                branch_id,
                sequence: s.sequence.clone(),
                repository,
                rev,
                host: s.host.clone(),
                pause_on_fail: s.pause_on_fail.clone(),
                email: s.email.clone(),
                submitter: s.submitter.clone(),
            })
            .await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Starts every queued job this process is not running yet, each in its own task; they
    /// wait for hosts in the lab's queue.
    pub async fn start_queued(self: &Arc<Self>) -> Result<usize, StoreError> {
        let mut started = 0;
        for job in self.store.queued_jobs().await? {
            let fresh = self
                .running
                .lock()
                .map(|mut r| r.insert(job.id))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            started += 1;
            let this = self.clone();
            tokio::spawn(async move {
                let id = job.id;
                if let Err(e) = this.run(job).await {
                    tracing::error!(job = id, error = %e, "job failed to run");
                }
                if let Ok(mut r) = this.running.lock() {
                    r.remove(&id);
                }
            });
        }
        Ok(started)
    }

    /// Starts queued jobs as they come, and periodic ones when due, until dropped.
    pub async fn serve(self: Arc<Self>) {
        let mut last_periodic = 0;
        loop {
            if now_ms() - last_periodic >= 30_000 {
                last_periodic = now_ms();
                if let Err(e) = self.queue_periodic().await {
                    tracing::error!(error = %e, "cannot queue periodic jobs");
                }
            }
            if let Err(e) = self.start_queued().await {
                tracing::error!(error = %e, "cannot start queued jobs");
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Runs one job to its end (or until someone cancels or completes it).
    pub async fn run(&self, job: JobRow) -> Result<(), StoreError> {
        let span = tracing::info_span!("job", id = job.id, sequence = %job.sequence);
        async move {
            let rules = self.rules.get();
            let (state, message) = match rules.sequences.get(&job.sequence) {
                None => (
                    JobState::Broken,
                    format!("no sequence `{}` any more", job.sequence),
                ),
                Some(sequence) => match self.prepare(&job).await? {
                    Err(why) => (JobState::Broken, why),
                    Ok(None) => return Ok(()),
                    Ok(Some((run_id, sha))) => self.execute(&job, sequence, run_id, &sha).await?,
                },
            };
            if self.store.finish_job(job.id, state, &message).await? {
                self.mail_result(&job, state, &message).await?;
                if job.kind == "try" {
                    let report = self.policy_of(&job).and_then(|p| {
                        try_report(
                            &p,
                            self.report_try_runs,
                            job.id,
                            &job.sequence,
                            &job.rev,
                            "done",
                            Some((state, &message)),
                        )
                    });
                    if let Some(report) = report {
                        self.store.enqueue_reports(&[report]).await?;
                    }
                }
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Resolves the commit and makes the run; `Ok(None)` when the job was cancelled first.
    async fn prepare(
        &self,
        job: &JobRow,
    ) -> Result<Result<Option<(i64, String)>, String>, StoreError> {
        let oid = match self.fetch_rev(&job.repository, &job.rev).await {
            Ok(oid) => oid,
            Err(why) => return Ok(Err(why)),
        };
        let oid = if job.kind == "try" {
            match self.merge_onto_target(job, oid).await {
                Ok(merged) => merged,
                Err(why) => return Ok(Err(why)),
            }
        } else {
            oid
        };
        let sha = oid.to_string();
        if !self.store.start_job(job.id, &sha).await? {
            return Ok(Ok(None));
        }
        let run_id = self
            .store
            .create_run(&crate::store::NewRun {
                owner: RunOwner::Job(job.id),
                index: 0,
                sha: &sha,
                role: role_of(&job.kind),
                attempt: 1,
                sequence: &job.sequence,
                host: "-",
            })
            .await?;
        self.store
            .set_job_message(job.id, &format!("run {run_id}: waiting for a host"))
            .await?;
        Ok(Ok(Some((run_id, sha))))
    }

    async fn execute(
        &self,
        job: &JobRow,
        sequence: &Sequence,
        run_id: i64,
        sha: &str,
    ) -> Result<(JobState, String), StoreError> {
        let policy = self.policy_of(job);
        let policy = policy.as_ref();
        let needs = match job_needs(sequence, policy, job.host.as_deref()) {
            Ok(n) => n,
            Err(why) => return Ok((JobState::Broken, why)),
        };
        let pause_on = job
            .pause_on_fail
            .as_deref()
            .map_or(PauseOn::Never, PauseOn::parse);
        let label = format!("[pushgate job {}]", job.id);
        let plan = RunPlan {
            run_id,
            sequence,
            sequence_name: &job.sequence,
            repository: self
                .settings
                .mirrors_dir
                .join(format!("{}.git", self.mirror_name(&job.repository))),
            sha,
            log_dir: self.log_dir(job.id, run_id),
            lease: LeaseRequest {
                run_id,
                priority: priority_of(&job.kind),
                needs,
                prefer: None,
            },
            pause_on: &pause_on,
            pause: PauseContext {
                to: job.email.iter().cloned().collect(),
                sha,
                subject_prefix: &label,
                host: String::new(),
                resume_after: policy.and_then(|p| p.pause_resume_after),
                from: &self.settings.mail_from,
                public_url: &self.settings.public_url,
            },
            flight_id: None,
        };
        let run = run::run_on_lab(&self.store, &self.lab, plan);
        tokio::pin!(run);
        let ended = loop {
            tokio::select! {
                ended = &mut run => break Some(ended?),
                _ = tokio::time::sleep(WATCH) => {
                    let state = self.store.job(job.id).await?.map(|j| j.state);
                    if state.is_none_or(JobState::is_finished) {
                        break None;
                    }
                }
            }
        };
        match ended {
            Some(run::RunEnd { state, detail, .. }) => {
                let error = (state == RunState::Broken).then_some(detail.as_str());
                self.store.finish_run(run_id, state, error).await?;
                Ok(job_outcome(run_id, state, &detail))
            }
            None => {
                // Cancelled or completed: the run was dropped mid-way, so clean up after it
                // as after a crash.
                self.store
                    .finish_run(run_id, RunState::Aborted, Some("the job was stopped"))
                    .await?;
                self.store.drop_job_leases(job.id).await?;
                self.reap_after(run_id).await;
                Ok((JobState::Cancelled, String::new()))
            }
        }
    }

    /// Removes what a dropped run left on its host.
    async fn reap_after(&self, run_id: i64) {
        let live = match self.lab.live_runs().await {
            Ok(mut l) => {
                l.remove(&run_id);
                l
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list live runs; not reaping");
                return;
            }
        };
        for (host, result) in self.lab.reap(&live).await {
            match result {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(%host, removed = n, run_id, "cleaned up after a stopped job")
                }
                Err(e) => tracing::warn!(%host, error = %e, "cannot clean up after a stopped job"),
            }
        }
    }

    async fn mail_result(
        &self,
        job: &JobRow,
        state: JobState,
        message: &str,
    ) -> Result<(), StoreError> {
        let Some(to) = &job.email else { return Ok(()) };
        let sha = self
            .store
            .job(job.id)
            .await?
            .and_then(|j| j.sha)
            .unwrap_or_default();
        let mut runs = Vec::new();
        for run in self.store.job_runs(job.id).await? {
            let steps = self.store.run_steps(run.id).await?;
            runs.push((run, steps));
        }
        let mail = compose_job_result(&JobFacts {
            from: &self.settings.mail_from,
            to,
            job,
            state,
            message,
            sha: &sha,
            runs: &runs,
            public_url: &self.settings.public_url,
        });
        match mail {
            Ok(Some(mail)) => self.store.enqueue_mail(None, &mail).await?,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot compose a job's mail"),
        }
        Ok(())
    }
}

/// A revision a job may name: not empty, not an option, not a range.
fn is_revision(rev: &str) -> bool {
    !(rev.is_empty() || rev.starts_with('-') || rev.contains(".."))
}

/// A periodic job's run is evidence about the target's baseline; any other job's is a tip.
fn role_of(kind: &str) -> Role {
    if kind == "periodic" {
        Role::Baseline
    } else {
        Role::Tip
    }
}

/// Periodic jobs wait behind people's.
fn priority_of(kind: &str) -> Priority {
    if kind == "periodic" {
        Priority::Periodic
    } else {
        Priority::Manual
    }
}

/// What a job came to from how its run ended, and the line that says so.
fn job_outcome(run_id: i64, state: RunState, detail: &str) -> (JobState, String) {
    match state {
        RunState::Pass => (JobState::Pass, format!("run {run_id} passed")),
        RunState::Fail => (JobState::Fail, format!("run {run_id} failed: {detail}")),
        _ => (JobState::Broken, format!("run {run_id} broke: {detail}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_no_option_and_no_range() {
        for good in ["master", "v4.19.0", "1a2b3c4d", "refs/heads/staging"] {
            assert!(is_revision(good), "{good}");
        }
        for bad in ["", "-rf", "--upload-pack=evil", "master..staging", "a...b"] {
            assert!(!is_revision(bad), "{bad}");
        }
    }

    #[test]
    fn periodic_jobs_are_baselines_and_wait_behind_people() {
        assert_eq!(role_of("periodic"), Role::Baseline);
        assert_eq!(priority_of("periodic"), Priority::Periodic);
        for kind in ["manual", "try"] {
            assert_eq!(role_of(kind), Role::Tip);
            assert_eq!(priority_of(kind), Priority::Manual);
        }
    }

    #[test]
    fn a_job_says_how_its_run_ended() {
        assert_eq!(
            job_outcome(3, RunState::Pass, ""),
            (JobState::Pass, "run 3 passed".into())
        );
        assert_eq!(
            job_outcome(3, RunState::Fail, "smoke/test"),
            (JobState::Fail, "run 3 failed: smoke/test".into())
        );
        for state in [RunState::Broken, RunState::Aborted, RunState::Running] {
            assert_eq!(
                job_outcome(3, state, "ssh: no route to host"),
                (
                    JobState::Broken,
                    "run 3 broke: ssh: no route to host".into()
                )
            );
        }
    }
}
