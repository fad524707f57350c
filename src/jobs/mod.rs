//! The job server (XenRT's): runs asked for by hand with `pushgate jobs submit`, and the
//! periodic runs a policy schedules on its target branch so that baselines exist. Each job is
//! one run of one sequence on one commit, on a host the lab leases it, at a lower priority
//! than the gate's runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tracing::Instrument;

use crate::config::policy::Policy;
use crate::decision::Role;
use crate::gate::GateSettings;
use crate::hosts::{Lab, LeaseRequest, Needs, Priority};
use crate::notify::{compose_job_result, JobFacts};
use crate::repo::{short, Mirror};
use crate::run::{self, PauseContext, RunPlan};
use crate::sequence::{PauseOn, Sequences};
use crate::store::{now_ms, JobRow, JobState, NewJob, RunOwner, RunState, Store, StoreError};

/// How often a running job looks whether someone cancelled or completed it.
const WATCH: Duration = Duration::from_millis(500);

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
    pub sequences: Sequences,
    pub policies: Vec<Policy>,
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
        sequences: Sequences,
        policies: Vec<Policy>,
        settings: GateSettings,
        report_try_runs: bool,
    ) -> Arc<JobRunner> {
        Arc::new(JobRunner {
            store,
            lab,
            sequences,
            policies,
            settings,
            report_try_runs,
            running: Default::default(),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Queues a try run of a pull request: each of the policy's sequences on `head` merged onto
    /// the target. Report only: a try run never pushes. Returns the job ids.
    pub async fn submit_try(
        &self,
        policy: &Policy,
        number: u64,
        head: &str,
    ) -> Result<Vec<i64>, JobError> {
        if head.len() != 40 || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JobError::Refused(format!("`{head}` is not a commit id")));
        }
        let branch = self.store.upsert_branch(policy).await?;
        let head = head.to_ascii_lowercase();
        let mut ids = Vec::new();
        for sequence in &policy.sequences {
            if let Some(id) = self.store.try_job(branch, sequence, &head).await? {
                ids.push(id);
                continue;
            }
            let id = self
                .store
                .create_job(&NewJob {
                    kind: "try".into(),
                    branch_id: Some(branch),
                    sequence: sequence.clone(),
                    repository: policy.repository.clone(),
                    rev: head.clone(),
                    host: None,
                    pause_on_fail: None,
                    email: None,
                    submitter: format!("GitHub pull request #{number}"),
                })
                .await?;
            ids.push(id);
            if let Some(report) = self.try_report(policy, id, sequence, &head, "queued", None) {
                self.store.enqueue_reports(&[report]).await?;
            }
        }
        self.wake.notify_one();
        Ok(ids)
    }

    /// What GitHub is told about a try run (`None` when nothing goes to GitHub).
    fn try_report(
        &self,
        policy: &Policy,
        job: i64,
        sequence: &str,
        head: &str,
        phase: &str,
        outcome: Option<(JobState, &str)>,
    ) -> Option<crate::store::NewReport> {
        let repository = policy.github.clone().filter(|_| self.report_try_runs)?;
        let (state, title) = match outcome {
            None => (
                "pending",
                format!("try run queued (job {job}): merged onto {}", policy.target),
            ),
            Some((state, _)) => (
                match state {
                    JobState::Pass => "success",
                    JobState::Fail => "failure",
                    JobState::Cancelled => "cancelled",
                    _ => "neutral",
                },
                format!(
                    "try run {}: merged onto {} (job {job}; never pushed)",
                    state.as_str(),
                    policy.target
                ),
            ),
        };
        Some(crate::store::NewReport {
            key: format!("try:job-{job}:{phase}"),
            repository,
            kind: crate::store::ReportKind::Status,
            sha: Some(head.to_string()),
            issue: None,
            context: format!("pushgate/try/{sequence}"),
            state: state.into(),
            title,
            body: outcome.map(|o| o.1.to_string()).unwrap_or_default(),
            target_url: None,
            flight_id: None,
        })
    }

    /// Checks a submission and queues it; returns the job id.
    pub async fn submit(&self, s: &Submission) -> Result<i64, JobError> {
        let refuse = |m: String| Err(JobError::Refused(m));
        let Some(sequence) = self.sequences.get(&s.sequence) else {
            let known: Vec<&str> = self.sequences.keys().map(String::as_str).collect();
            return refuse(format!(
                "no sequence `{}` (there are: {})",
                s.sequence,
                known.join(", ")
            ));
        };
        let policy = match &s.repo {
            None if self.policies.len() == 1 => Some(&self.policies[0]),
            None => {
                return refuse(
                    "say which repository with --repo (a URL, a path or a policy's name)".into(),
                )
            }
            Some(r) => self
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
        if rev.is_empty() || rev.starts_with('-') || rev.contains("..") {
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

    /// Wakes the loop (a job was queued elsewhere).
    pub fn wake(&self) {
        self.wake.notify_one();
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
            let (state, message) = match self.sequences.get(&job.sequence) {
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
                        self.try_report(
                            p,
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
        let mirror_name = self.mirror_name(job);
        let (dir, url, rev) = (
            self.settings.mirrors_dir.clone(),
            job.repository.clone(),
            job.rev.clone(),
        );
        let resolved = tokio::task::spawn_blocking(move || {
            Mirror::open(&dir, &mirror_name, &url)?.fetch_rev(&rev)
        })
        .await;
        let oid = match resolved {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Ok(Err(e.to_string())),
            Err(e) => return Ok(Err(format!("background git task: {e}"))),
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
                role: if job.kind == "periodic" {
                    Role::Baseline
                } else {
                    Role::Tip
                },
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

    fn policy_of(&self, job: &JobRow) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.repository == job.repository)
    }

    /// A try run tests the pull request as it would land: its head merged onto the target.
    async fn merge_onto_target(&self, job: &JobRow, head: git2::Oid) -> Result<git2::Oid, String> {
        let policy = self
            .policy_of(job)
            .ok_or_else(|| format!("no policy gates {} any more", job.repository))?;
        let (dir, name, url, target, label) = (
            self.settings.mirrors_dir.clone(),
            self.mirror_name(job),
            job.repository.clone(),
            policy.target.clone(),
            format!("job-{}", job.id),
        );
        let merged = tokio::task::spawn_blocking(move || {
            let mirror = Mirror::open(&dir, &name, &url)?;
            let now = mirror.fetch(&[&target])?[&target];
            mirror
                .merge_onto(head, now, &label)
                .map(|m| m.map_err(|paths| (target, paths)))
        })
        .await
        .map_err(|e| format!("background git task: {e}"))?
        .map_err(|e| e.to_string())?;
        merged.map_err(|(target, paths)| {
            format!(
                "{} does not merge onto {target}: conflicts in {}",
                short(&head.to_string()),
                paths.join(", ")
            )
        })
    }

    fn mirror_name(&self, job: &JobRow) -> String {
        match self
            .policies
            .iter()
            .find(|p| p.repository == job.repository)
        {
            Some(p) => p.name.clone(),
            None => format!("job-{:08x}", crc32fast::hash(job.repository.as_bytes())),
        }
    }

    async fn execute(
        &self,
        job: &JobRow,
        sequence: &crate::sequence::Sequence,
        run_id: i64,
        sha: &str,
    ) -> Result<(JobState, String), StoreError> {
        let policy = self
            .policies
            .iter()
            .find(|p| p.repository == job.repository);
        let needs = match job_needs(sequence, policy, job.host.as_deref()) {
            Ok(n) => n,
            Err(why) => return Ok((JobState::Broken, why)),
        };
        let pause_on = job
            .pause_on_fail
            .as_deref()
            .map_or(PauseOn::Never, PauseOn::parse);
        let label = format!("job {}", job.id);
        let plan = RunPlan {
            run_id,
            sequence,
            sequence_name: &job.sequence,
            repository: self
                .settings
                .mirrors_dir
                .join(format!("{}.git", self.mirror_name(job))),
            sha,
            log_dir: self.log_dir(job.id, run_id),
            lease: LeaseRequest {
                run_id,
                priority: if job.kind == "periodic" {
                    Priority::Periodic
                } else {
                    Priority::Manual
                },
                needs,
                prefer: None,
            },
            pause_on: &pause_on,
            pause: PauseContext {
                to: job.email.iter().cloned().collect(),
                sha,
                staging: &label,
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
            Some((state, detail)) => {
                let error = (state == RunState::Broken).then_some(detail.as_str());
                self.store.finish_run(run_id, state, error).await?;
                let job_state = match state {
                    RunState::Pass => JobState::Pass,
                    RunState::Fail => JobState::Fail,
                    _ => JobState::Broken,
                };
                let message = match state {
                    RunState::Pass => format!("run {run_id} passed"),
                    RunState::Fail => format!("run {run_id} failed: {detail}"),
                    _ => format!("run {run_id} broke: {detail}"),
                };
                Ok((job_state, message))
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

    pub fn log_dir(&self, job_id: i64, run_id: i64) -> PathBuf {
        self.settings
            .logs_dir
            .join(format!("job-{job_id}"))
            .join(format!("run-{run_id}"))
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

    /// Queues the periodic runs that are due, as each policy's schedule (and selector) says.
    pub async fn queue_periodic(&self) -> Result<Vec<i64>, JobError> {
        let mut queued = Vec::new();
        for policy in &self.policies {
            let Some(periodic) = &policy.periodic else {
                continue;
            };
            let branch = self.store.upsert_branch(policy).await?;
            let mut candidates = Vec::new();
            for seq in &periodic.sequences {
                let last = self.store.last_periodic_job(branch, seq).await?;
                let due = last.is_none_or(|at| now_ms() - at >= periodic.every.as_millis() as i64);
                candidates.push(Candidate {
                    policy: policy.name.clone(),
                    sequence: seq.clone(),
                    branch: policy.target.clone(),
                    last_queued_at: last,
                    due,
                });
            }
            if !candidates.iter().any(|c| c.due) {
                continue;
            }
            let due: Vec<String> = candidates
                .iter()
                .filter(|c| c.due)
                .map(|c| c.sequence.clone())
                .collect();
            // The selector picks among what is due (and may pick nothing); the schedule
            // still bounds how often each sequence runs.
            let chosen = match &periodic.selector {
                None => due,
                Some(program) => match select(program, &candidates).await {
                    Ok(names) => names.into_iter().filter(|n| due.contains(n)).collect(),
                    Err(e) => {
                        tracing::error!(policy = %policy.name, error = %e, "the selector failed; nothing queued");
                        continue;
                    }
                },
            };
            for seq in chosen {
                let id = self
                    .store
                    .create_job(&NewJob {
                        kind: "periodic".into(),
                        branch_id: Some(branch),
                        sequence: seq.clone(),
                        repository: policy.repository.clone(),
                        rev: policy.target.clone(),
                        host: None,
                        pause_on_fail: None,
                        email: policy.mail.list.clone(),
                        submitter: "periodic".into(),
                    })
                    .await?;
                tracing::info!(policy = %policy.name, sequence = %seq, job = id, "periodic job queued");
                queued.push(id);
            }
        }
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(queued)
    }
}

/// What a job's run asks of its host: its sequence's and policy's needs, and the host named.
fn job_needs(
    sequence: &crate::sequence::Sequence,
    policy: Option<&Policy>,
    host: Option<&str>,
) -> Result<Needs, String> {
    let mut needs = run::needs_of(sequence, policy.map_or(&Needs::default(), |p| &p.needs))?;
    if let Some(h) = host {
        needs.host = Some(h.to_string());
    }
    Ok(needs)
}

/// What a selector program is told about each sequence it may pick.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    pub policy: String,
    pub sequence: String,
    pub branch: String,
    /// When it was last queued (ms since the epoch), or null if never.
    pub last_queued_at: Option<i64>,
    /// Whether its schedule says it is due.
    pub due: bool,
}

/// Runs the selector with the candidates as JSON on stdin; it prints the sequences to queue.
async fn select(program: &Path, candidates: &[Candidate]) -> Result<Vec<String>, String> {
    let input = serde_json::to_vec(candidates).map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .await
            .map_err(|e| format!("{}: writing its input: {e}", program.display()))?;
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| format!("{} ran over a minute", program.display()))?
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let known: BTreeSet<&str> = candidates.iter().map(|c| c.sequence.as_str()).collect();
    let mut chosen = Vec::new();
    for (i, line) in String::from_utf8_lossy(&out.stdout).lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if !known.contains(name) {
            return Err(format!(
                "{} printed `{name}` on line {}, which is not one of the candidates",
                program.display(),
                i + 1
            ));
        }
        if !chosen.iter().any(|c| c == name) {
            chosen.push(name.to_string());
        }
    }
    Ok(chosen)
}
