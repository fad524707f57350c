//! Try runs: a pull request's head merged onto the policy's target and tested there, reported
//! on the head on GitHub; never pushed.

use super::{JobError, JobRunner};
use crate::config::policy::Policy;
use crate::repo::{short, Mirror};
use crate::store::{JobRow, JobState, NewJob, NewReport, ReportKind};

impl JobRunner {
    /// Queues a try run of a pull request: each of the policy's sequences on `head` merged onto
    /// the target. Report only: a try run never pushes. Returns the job ids.
    pub async fn submit_try(
        &self,
        policy: &Policy,
        number: u64,
        head: &str,
    ) -> Result<Vec<i64>, JobError> {
        if !is_commit_id(head) {
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
            if let Some(report) = try_report(
                policy,
                self.report_try_runs,
                id,
                sequence,
                &head,
                "queued",
                None,
            ) {
                self.store.enqueue_reports(&[report]).await?;
            }
        }
        self.wake.notify_one();
        Ok(ids)
    }

    /// A try run tests the pull request as it would land: its head merged onto the target.
    pub(super) async fn merge_onto_target(
        &self,
        job: &JobRow,
        head: git2::Oid,
    ) -> Result<git2::Oid, String> {
        let policy = self
            .policy_of(job)
            .ok_or_else(|| format!("no policy gates {} any more", job.repository))?;
        let (dir, name, url, target, label) = (
            self.settings.mirrors_dir.clone(),
            self.mirror_name(&job.repository),
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
}

/// What GitHub is told about a try run (`None` when nothing goes to GitHub).
pub(super) fn try_report(
    policy: &Policy,
    reports: bool,
    job: i64,
    sequence: &str,
    head: &str,
    phase: &str,
    outcome: Option<(JobState, &str)>,
) -> Option<NewReport> {
    let repository = policy.github.clone().filter(|_| reports)?;
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
    Some(NewReport {
        key: format!("try:job-{job}:{phase}"),
        repository,
        kind: ReportKind::Status,
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

/// A pull request's head as GitHub sends it: forty hex digits.
fn is_commit_id(head: &str) -> bool {
    head.len() == 40 && head.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_full_commit_id_is_tried() {
        assert!(is_commit_id(
            &"aB3"
                .repeat(13)
                .chars()
                .chain("4".chars())
                .collect::<String>()
        ));
        assert!(!is_commit_id("1a2b3c4d"));
        assert!(!is_commit_id(&"g".repeat(40)));
    }

    #[test]
    fn a_try_run_reports_pending_then_its_end_and_never_a_push() {
        let mut policy = crate::gate::tests::policy();
        policy.github = Some("xen-project/xen".into());
        let head = "a".repeat(40);
        let queued = try_report(&policy, true, 5, "smoke", &head, "queued", None).unwrap();
        assert_eq!(queued.state, "pending");
        assert_eq!(queued.key, "try:job-5:queued");
        assert_eq!(queued.context, "pushgate/try/smoke");
        assert_eq!(queued.title, "try run queued (job 5): merged onto master");
        let done = |state| {
            try_report(
                &policy,
                true,
                5,
                "smoke",
                &head,
                "done",
                Some((state, "why")),
            )
            .unwrap()
        };
        assert_eq!(done(JobState::Pass).state, "success");
        assert_eq!(done(JobState::Fail).state, "failure");
        assert_eq!(done(JobState::Cancelled).state, "cancelled");
        assert_eq!(done(JobState::Broken).state, "neutral");
        assert_eq!(
            done(JobState::Fail).title,
            "try run fail: merged onto master (job 5; never pushed)"
        );
        // Nothing goes to GitHub without a login, or for a repository not on GitHub.
        assert!(try_report(&policy, false, 5, "smoke", &head, "queued", None).is_none());
        policy.github = None;
        assert!(try_report(&policy, true, 5, "smoke", &head, "queued", None).is_none());
    }
}
