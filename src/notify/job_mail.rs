//! The mail a job's submitter asked for (`pushgate jobs submit --email`): what ran, how each
//! step ended, where the logs are.

use serde::Serialize;

use super::envelope::{compose_notice, Notice};
use super::ReportError;
use crate::repo::short;
use crate::store::{JobRow, JobState, NewMail, RunRow, StepRow};
use crate::templates::render;

/// Everything the job's mail tells.
pub struct JobFacts<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub job: &'a JobRow,
    pub state: JobState,
    /// The job's last word (`run 12 passed`, `run 12 failed: smoke/boot`).
    pub message: &'a str,
    /// The commit the job resolved its revision to.
    pub sha: &'a str,
    /// The job's runs, each with its steps.
    pub runs: &'a [(RunRow, Vec<StepRow>)],
    pub public_url: &'a str,
}

#[derive(Serialize)]
struct JobContext<'a> {
    job: &'a JobRow,
    sha_short: &'a str,
    message: &'a str,
    runs: Vec<JobRun<'a>>,
    public_url: &'a str,
}

#[derive(Serialize)]
struct JobRun<'a> {
    id: i64,
    host: &'a str,
    state: &'a str,
    /// `status   name`, the status in a column.
    steps: Vec<String>,
}

/// Composes the job's mail; `None` when its address is no address.
pub fn compose_job_result(f: &JobFacts) -> Result<Option<NewMail>, ReportError> {
    let job = f.job;
    let runs: Vec<_> = f
        .runs
        .iter()
        .map(|(run, steps)| JobRun {
            id: run.id,
            host: &run.host,
            state: run.state.as_str(),
            steps: steps
                .iter()
                .map(|s| format!("{:<8} {}", s.status, s.name))
                .collect(),
        })
        .collect();
    let body = render(
        "job-result.txt",
        JobContext {
            job,
            sha_short: short(f.sha),
            message: f.message,
            runs,
            public_url: f.public_url,
        },
    )?;
    compose_notice(&Notice {
        from: f.from,
        to: std::slice::from_ref(&f.to.to_string()),
        subject: format!(
            "[pushgate] job {} {} on {}: {}",
            job.id,
            job.sequence,
            short(f.sha),
            f.state.as_str()
        ),
        body,
        kind: "job",
        key: format!("{}", job.id),
    })
}
