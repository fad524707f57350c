//! Periodic jobs: each policy's `[periodic]` schedule runs its sequences on the target branch
//! so that baselines exist; an optional selector program picks among what is due.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::{JobError, JobRunner};
use crate::store::{now_ms, NewJob};

impl JobRunner {
    /// Queues the periodic runs that are due, as each policy's schedule (and selector) says.
    pub async fn queue_periodic(&self) -> Result<Vec<i64>, JobError> {
        let mut queued = Vec::new();
        let rules = self.rules.get();
        for policy in &rules.policies {
            let Some(periodic) = &policy.periodic else {
                continue;
            };
            let branch = self.store.upsert_branch(policy).await?;
            let mut candidates = Vec::new();
            for seq in &periodic.sequences {
                let last = self.store.last_periodic_job(branch, seq).await?;
                let due = is_due(last, now_ms(), periodic.every);
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
    chosen(program, &String::from_utf8_lossy(&out.stdout), candidates)
}

/// The sequences a selector printed, one a line, each once; a name that is not a candidate is
/// an error naming its line.
fn chosen(program: &Path, printed: &str, candidates: &[Candidate]) -> Result<Vec<String>, String> {
    let known: BTreeSet<&str> = candidates.iter().map(|c| c.sequence.as_str()).collect();
    let mut chosen = Vec::new();
    for (i, line) in printed.lines().enumerate() {
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

/// Whether a sequence last queued at `last` (ms) is due again at `now` by its schedule.
fn is_due(last: Option<i64>, now: i64, every: Duration) -> bool {
    last.is_none_or(|at| now - at >= every.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(sequence: &str) -> Candidate {
        Candidate {
            policy: "xen".into(),
            sequence: sequence.into(),
            branch: "master".into(),
            last_queued_at: None,
            due: true,
        }
    }

    #[test]
    fn a_sequence_is_due_once_its_period_has_passed() {
        let hour = Duration::from_secs(3600);
        assert!(is_due(None, 0, hour));
        assert!(!is_due(Some(1_000), 1_000 + 3_599_999, hour));
        assert!(is_due(Some(1_000), 1_000 + 3_600_000, hour));
    }

    #[test]
    fn a_selector_picks_among_the_candidates_once_each() {
        let program = Path::new("/etc/pushgate/select");
        let candidates = [candidate("smoke"), candidate("bvt")];
        assert_eq!(
            chosen(program, "bvt\n\n  smoke \nbvt\n", &candidates).unwrap(),
            ["bvt", "smoke"]
        );
        assert_eq!(
            chosen(program, "", &candidates).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            chosen(program, "smoke\nboot\n", &candidates).unwrap_err(),
            "/etc/pushgate/select printed `boot` on line 2, which is not one of the candidates"
        );
    }
}
