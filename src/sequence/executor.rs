//! Runs a sequence's steps on a host, in order, recording each as it starts and ends.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tracing::Instrument;

use super::{Sequence, StepContext};
use crate::hosts::{Host, StepExit};

/// A step's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepStatus {
    Running,
    Pass,
    Fail,
    /// Ran past its timeout and was killed: the commit's fault as much as a failure is.
    Timeout,
    /// Not run, because a blocker before it failed.
    Blocked,
    /// The host failed while running it.
    Broken,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Pass => "pass",
            StepStatus::Fail => "fail",
            StepStatus::Timeout => "timeout",
            StepStatus::Blocked => "blocked",
            StepStatus::Broken => "broken",
        }
    }
}

/// Where the executor writes what it does; the gate records into the store.
#[async_trait]
pub trait StepRecorder: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A step starts; returns its id.
    async fn started(
        &mut self,
        position: usize,
        name: &str,
        log: &Path,
    ) -> Result<i64, Self::Error>;

    async fn finished(
        &mut self,
        step_id: i64,
        status: StepStatus,
        exit_code: Option<i32>,
    ) -> Result<(), Self::Error>;

    /// A step that will not run.
    async fn blocked(&mut self, position: usize, name: &str) -> Result<(), Self::Error>;
}

/// What a run of one sequence showed. Step names are bare (the gate qualifies them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub passed: BTreeSet<String>,
    pub failed: BTreeSet<String>,
    /// Set when the host failed: the run says nothing about the commit.
    pub broken: Option<String>,
}

/// Runs every step of `sequence` on `host`, logging each to `log_dir/NN-name.log`.
pub async fn execute<R: StepRecorder>(
    sequence: &Sequence,
    host: &mut dyn Host,
    context: &StepContext,
    log_dir: &Path,
    recorder: &mut R,
) -> Result<RunReport, R::Error> {
    let mut report = RunReport::default();
    let mut stopped = false;
    for (position, step) in sequence.steps.iter().enumerate() {
        if stopped {
            recorder.blocked(position, &step.name).await?;
            continue;
        }
        let log: PathBuf = log_dir.join(format!("{:02}-{}.log", position + 1, step.name));
        let id = recorder.started(position, &step.name, &log).await?;
        let span = tracing::info_span!("step", step = %step.name);
        let (status, code) = match host.run_step(step, context, &log).instrument(span).await {
            Ok(StepExit::Exited(0)) => (StepStatus::Pass, Some(0)),
            Ok(StepExit::Exited(code)) => (StepStatus::Fail, Some(code)),
            Ok(StepExit::Signalled(_)) => (StepStatus::Fail, None),
            Ok(StepExit::TimedOut) => (StepStatus::Timeout, None),
            Err(e) => {
                tracing::warn!(error = %e, "host failed");
                report.broken = Some(e.to_string());
                (StepStatus::Broken, None)
            }
        };
        recorder.finished(id, status, code).await?;
        match status {
            StepStatus::Pass => {
                report.passed.insert(step.name.clone());
            }
            StepStatus::Broken => stopped = true,
            _ => {
                report.failed.insert(step.name.clone());
                stopped = step.blocker;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::HostError;
    use crate::sequence::Step;
    use std::collections::BTreeMap;
    use std::time::Duration;

    /// A host that answers each step from a script of exits.
    struct ScriptedHost(Vec<Result<StepExit, ()>>);

    #[async_trait]
    impl Host for ScriptedHost {
        fn name(&self) -> String {
            "scripted".into()
        }
        async fn run_step(
            &mut self,
            step: &Step,
            _: &StepContext,
            _: &Path,
        ) -> Result<StepExit, HostError> {
            self.0.remove(0).map_err(|_| HostError::Spawn {
                host: "scripted".into(),
                step: step.name.clone(),
                message: "connection lost".into(),
            })
        }
        async fn release(self: Box<Self>) -> Result<(), HostError> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Log(Vec<(String, &'static str)>);

    #[async_trait]
    impl StepRecorder for Log {
        type Error = std::convert::Infallible;
        async fn started(&mut self, _: usize, name: &str, _: &Path) -> Result<i64, Self::Error> {
            self.0.push((name.into(), "running"));
            Ok(self.0.len() as i64 - 1)
        }
        async fn finished(
            &mut self,
            id: i64,
            status: StepStatus,
            _: Option<i32>,
        ) -> Result<(), Self::Error> {
            self.0[id as usize].1 = status.as_str();
            Ok(())
        }
        async fn blocked(&mut self, _: usize, name: &str) -> Result<(), Self::Error> {
            self.0.push((name.into(), "blocked"));
            Ok(())
        }
    }

    fn seq(blockers: &[bool]) -> Sequence {
        Sequence {
            name: "s".into(),
            description: String::new(),
            steps: blockers
                .iter()
                .enumerate()
                .map(|(i, &blocker)| Step {
                    name: format!("s{i}"),
                    command: "true".into(),
                    timeout: Duration::from_secs(1),
                    workdir: None,
                    blocker,
                    env: BTreeMap::new(),
                })
                .collect(),
        }
    }

    async fn go(
        blockers: &[bool],
        exits: Vec<Result<StepExit, ()>>,
    ) -> (RunReport, Vec<&'static str>) {
        let mut host = ScriptedHost(exits);
        let mut log = Log::default();
        let ctx = StepContext {
            run_id: 1,
            commit: "c".into(),
            sequence: "s".into(),
        };
        let report = execute(&seq(blockers), &mut host, &ctx, Path::new("/tmp"), &mut log)
            .await
            .unwrap();
        (report, log.0.into_iter().map(|(_, s)| s).collect())
    }

    #[tokio::test]
    async fn a_failing_blocker_blocks_the_rest() {
        let (r, statuses) = go(
            &[true, true, true],
            vec![Ok(StepExit::Exited(0)), Ok(StepExit::Exited(2))],
        )
        .await;
        assert_eq!(statuses, ["pass", "fail", "blocked"]);
        assert_eq!(r.failed.len(), 1);
        assert!(r.broken.is_none());
    }

    #[tokio::test]
    async fn a_failing_non_blocker_lets_the_run_go_on_but_still_fails_it() {
        let (r, statuses) = go(
            &[false, true],
            vec![Ok(StepExit::Exited(1)), Ok(StepExit::Exited(0))],
        )
        .await;
        assert_eq!(statuses, ["fail", "pass"]);
        assert!(r.failed.contains("s0") && r.passed.contains("s1"));
    }

    #[tokio::test]
    async fn a_timeout_fails_and_a_host_error_breaks() {
        let (r, statuses) = go(&[false, true, true], vec![Ok(StepExit::TimedOut), Err(())]).await;
        assert_eq!(statuses, ["timeout", "broken", "blocked"]);
        assert!(r.broken.unwrap().contains("connection lost"));
    }
}
