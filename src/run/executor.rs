//! Runs a sequence's tree on a host with the semantics XenRT's harness had:
//!
//! - prepare steps run first; if one fails, everything else is `blocked`;
//! - in a serial block a failing blocker marks the rest of the block `blocked`, and a failing
//!   blocker *block* does the same to the block around it;
//! - a parallel block runs at most `workers` of its nodes at once;
//! - a block's `finally` part always runs, after its nodes, whatever happened to them;
//! - a host failure (`broken`) stops the run: nothing after it can say anything about the commit;
//! - a testcase without a binding is `broken` with a message saying so;
//! - with pause-on-fail, a failing testcase waits (before anything after it, cleanup included)
//!   until someone lets the run go on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::future::{join_all, BoxFuture, FutureExt};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::hosts::{Host, StepExit};
use crate::sequence::model::{Block, BlockKind, Node, Sequence, Step, Testcase};
use crate::sequence::results::{self, SubResult, SubStatus};
use crate::sequence::{PauseOn, StepContext, StepStatus};

/// Where the executor writes what it does; the gate records into the store. Called from
/// several testcases at once when a parallel block runs.
#[async_trait]
pub trait StepRecorder: Send + Sync {
    type Error: std::error::Error + Send + Sync + 'static;

    /// A step starts; returns its id.
    async fn started(&self, position: usize, name: &str, log: &Path) -> Result<i64, Self::Error>;

    async fn finished(
        &self,
        step_id: i64,
        status: StepStatus,
        exit_code: Option<i32>,
    ) -> Result<(), Self::Error>;

    /// A step that will not run.
    async fn blocked(&self, position: usize, name: &str) -> Result<(), Self::Error>;

    /// The per-test results a step left.
    async fn results(&self, step_id: i64, results: &[SubResult]) -> Result<(), Self::Error>;

    /// A failing step asked to pause the run: returns when the run may go on.
    async fn paused(&self, step_id: i64, name: &str) -> Result<(), Self::Error>;
}

/// What a run of one sequence showed. Step names are bare (the gate qualifies them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub passed: BTreeSet<String>,
    pub failed: BTreeSet<String>,
    /// Set when the host failed or a testcase had nothing to run: the run says nothing about
    /// the commit.
    pub broken: Option<String>,
}

/// Runs `sequence` on `host`, logging each step to `log_dir/NN-name.log`.
pub async fn execute<R: StepRecorder>(
    sequence: &Sequence,
    host: &dyn Host,
    context: &StepContext,
    log_dir: &Path,
    recorder: &R,
    pause: &PauseOn,
) -> Result<RunReport, R::Error> {
    let positions = sequence
        .testcases()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let run = Execution {
        host,
        context,
        log_dir,
        recorder,
        pause,
        positions,
        report: Mutex::new(RunReport::default()),
        halted: AtomicBool::new(false),
    };
    let mut prepared = true;
    for test in &sequence.prepare.steps {
        if !prepared || run.is_halted() {
            run.block_test(test).await?;
        } else if run.test(test).await? {
            prepared = false;
        }
    }
    if prepared && !run.is_halted() {
        run.block(&sequence.body).await?;
    } else {
        run.block_all(&sequence.body).await?;
    }
    let report = run.report.lock().map(|r| r.clone()).unwrap_or_default();
    Ok(report)
}

struct Execution<'a, R> {
    host: &'a dyn Host,
    context: &'a StepContext,
    log_dir: &'a Path,
    recorder: &'a R,
    pause: &'a PauseOn,
    positions: BTreeMap<String, usize>,
    report: Mutex<RunReport>,
    /// Set when the host failed: everything not yet started is blocked.
    halted: AtomicBool,
}

impl<'a, R: StepRecorder> Execution<'a, R> {
    fn is_halted(&self) -> bool {
        self.halted.load(Ordering::SeqCst)
    }

    fn note(&self, f: impl FnOnce(&mut RunReport)) {
        if let Ok(mut r) = self.report.lock() {
            f(&mut r);
        }
    }

    /// Runs a node; returns whether it failed.
    fn node<'s>(&'s self, node: &'s Node) -> BoxFuture<'s, Result<bool, R::Error>> {
        async move {
            match node {
                Node::Test(t) => self.test(t).await,
                Node::Block(b) => self.block(b).await,
            }
        }
        .boxed()
    }

    async fn block(&self, block: &Block) -> Result<bool, R::Error> {
        let failed = match block.kind {
            BlockKind::Serial => {
                let mut failed = false;
                let mut stopped = false;
                for node in &block.nodes {
                    if stopped || self.is_halted() {
                        self.block_node(node).await?;
                        continue;
                    }
                    if self.node(node).await? {
                        failed = true;
                        stopped = blocker(node);
                    }
                }
                failed
            }
            BlockKind::Parallel { workers } => {
                let limit = workers.unwrap_or(block.nodes.len()).max(1);
                let gate = Semaphore::new(limit);
                let runs = block.nodes.iter().map(|node| {
                    let gate = &gate;
                    async move {
                        let _permit = gate.acquire().await.ok();
                        if self.is_halted() {
                            self.block_node(node).await.map(|_| false)
                        } else {
                            self.node(node).await
                        }
                    }
                });
                let mut failed = false;
                for result in join_all(runs).await {
                    failed |= result?;
                }
                failed
            }
        };
        let mut cleanup_failed = false;
        for node in &block.finally {
            if self.is_halted() {
                self.block_node(node).await?;
            } else {
                cleanup_failed |= self.node(node).await?;
            }
        }
        Ok(failed || cleanup_failed)
    }

    fn block_node<'s>(&'s self, node: &'s Node) -> BoxFuture<'s, Result<(), R::Error>> {
        async move {
            match node {
                Node::Test(t) => self.block_test(t).await,
                Node::Block(b) => self.block_all(b).await,
            }
        }
        .boxed()
    }

    async fn block_all(&self, block: &Block) -> Result<(), R::Error> {
        for node in block.nodes.iter().chain(&block.finally) {
            self.block_node(node).await?;
        }
        Ok(())
    }

    async fn block_test(&self, test: &Testcase) -> Result<(), R::Error> {
        self.recorder.blocked(self.position(test), &test.name).await
    }

    fn position(&self, test: &Testcase) -> usize {
        self.positions.get(&test.name).copied().unwrap_or(0)
    }

    fn log_path(&self, test: &Testcase) -> PathBuf {
        let safe: String = test
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.log_dir
            .join(format!("{:02}-{safe}.log", self.position(test) + 1))
    }

    /// Runs one testcase; returns whether it failed (a broken testcase has not failed: it
    /// says nothing about the commit).
    async fn test(&self, test: &Testcase) -> Result<bool, R::Error> {
        let log = self.log_path(test);
        let id = self
            .recorder
            .started(self.position(test), &test.name, &log)
            .await?;
        let Some(step) = &test.step else {
            let why = format!(
                "testcase `{}` ({}) has no binding: add one to sequences/testcases.toml",
                test.name, test.id
            );
            let _ = tokio::fs::write(&log, format!("--- pushgate: {why}\n")).await;
            self.note(|r| {
                r.broken.get_or_insert(why);
            });
            self.recorder.finished(id, StepStatus::Broken, None).await?;
            return Ok(false);
        };
        let span = tracing::info_span!("step", step = %test.name);
        let exit = self
            .host
            .run_step(step, self.context, &log)
            .instrument(span)
            .await;
        let (mut status, code) = match exit {
            Ok(StepExit::Exited(0)) => (StepStatus::Pass, Some(0)),
            Ok(StepExit::Exited(code)) => (StepStatus::Fail, Some(code)),
            Ok(StepExit::Signalled(_)) => (StepStatus::Fail, None),
            Ok(StepExit::TimedOut) => (StepStatus::Timeout, None),
            Err(e) => {
                tracing::warn!(error = %e, "host failed");
                let why = e.to_string();
                append(&log, &format!("\n--- pushgate: the host failed: {why}\n")).await;
                self.note(|r| {
                    r.broken.get_or_insert(why);
                });
                self.halted.store(true, Ordering::SeqCst);
                (StepStatus::Broken, None)
            }
        };
        if status != StepStatus::Broken && step.results.is_some() {
            let subs = self.sub_results(step, &log).await;
            if subs.iter().any(|s| s.status.failed()) && status == StepStatus::Pass {
                status = StepStatus::Fail;
            }
            self.recorder.results(id, &subs).await?;
        }
        self.recorder.finished(id, status, code).await?;
        let failed = matches!(status, StepStatus::Fail | StepStatus::Timeout);
        self.note(|r| match status {
            StepStatus::Pass => {
                r.passed.insert(test.name.clone());
            }
            StepStatus::Fail | StepStatus::Timeout => {
                r.failed.insert(test.name.clone());
            }
            _ => {}
        });
        if failed && self.pause.matches(test) {
            append(
                &log,
                "\n--- pushgate: paused on failure; waiting for `pushgate jobs interact`\n",
            )
            .await;
            self.recorder.paused(id, &test.name).await?;
        }
        Ok(failed)
    }

    /// Fetches and parses the step's result files. A missing or unreadable file is a result of
    /// its own (an error), so that a step cannot pass by losing its results.
    async fn sub_results(&self, step: &Step, log: &Path) -> Vec<SubResult> {
        let Some(spec) = &step.results else {
            return Vec::new();
        };
        let dir = self
            .log_dir
            .join("results")
            .join(log.file_stem().unwrap_or_default());
        let error = |message: String| SubResult {
            name: "(results)".into(),
            status: SubStatus::Error,
            duration: None,
            message: Some(message),
        };
        let files = match self.host.fetch(step, &spec.path, &dir).await {
            Ok(files) if files.is_empty() => {
                return vec![error(format!("no file matches `{}`", spec.path))]
            }
            Ok(files) => files,
            Err(e) => return vec![error(format!("cannot fetch `{}`: {e}", spec.path))],
        };
        let mut out = Vec::new();
        for file in files {
            match tokio::fs::read(&file).await {
                Ok(bytes) => match results::parse(spec.format, &file, &bytes) {
                    Ok(subs) => out.extend(subs),
                    Err(e) => out.push(error(e.to_string())),
                },
                Err(e) => out.push(error(format!("{}: {e}", file.display()))),
            }
        }
        let failed = out.iter().filter(|s| s.status.failed()).count();
        append(
            log,
            &format!("--- pushgate: {} results, {failed} failed\n", out.len()),
        )
        .await;
        out
    }
}

fn blocker(node: &Node) -> bool {
    match node {
        Node::Test(t) => t.blocker,
        Node::Block(b) => b.blocker,
    }
}

async fn append(log: &Path, note: &str) {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut f) = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .await
    {
        let _ = f.write_all(note.as_bytes()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::HostError;
    use crate::sequence::model::Block;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A host that answers each step by its command: `exit N`, `sleep`, `lost`.
    #[derive(Default)]
    struct ScriptedHost {
        running: AtomicUsize,
        most: AtomicUsize,
    }

    #[async_trait]
    impl Host for ScriptedHost {
        fn name(&self) -> String {
            "scripted".into()
        }
        async fn run_step(
            &self,
            step: &Step,
            _: &StepContext,
            _: &Path,
        ) -> Result<StepExit, HostError> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            match step.command.as_str() {
                "lost" => Err(HostError::Spawn {
                    host: "scripted".into(),
                    step: step.name.clone(),
                    message: "connection lost".into(),
                }),
                "timeout" => Ok(StepExit::TimedOut),
                c => Ok(StepExit::Exited(
                    c.trim_start_matches("exit ").parse().unwrap_or(0),
                )),
            }
        }
        async fn fetch(&self, _: &Step, _: &str, _: &Path) -> Result<Vec<PathBuf>, HostError> {
            Ok(Vec::new())
        }
        async fn release(self: Box<Self>) -> Result<(), HostError> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct Log {
        steps: Mutex<Vec<(String, &'static str)>>,
        paused: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl StepRecorder for Log {
        type Error = std::convert::Infallible;
        async fn started(&self, _: usize, name: &str, _: &Path) -> Result<i64, Self::Error> {
            let mut s = self.steps.lock().unwrap();
            s.push((name.into(), "running"));
            Ok(s.len() as i64 - 1)
        }
        async fn finished(
            &self,
            id: i64,
            status: StepStatus,
            _: Option<i32>,
        ) -> Result<(), Self::Error> {
            self.steps.lock().unwrap()[id as usize].1 = status.as_str();
            Ok(())
        }
        async fn blocked(&self, _: usize, name: &str) -> Result<(), Self::Error> {
            self.steps.lock().unwrap().push((name.into(), "blocked"));
            Ok(())
        }
        async fn results(&self, _: i64, _: &[SubResult]) -> Result<(), Self::Error> {
            Ok(())
        }
        async fn paused(&self, _: i64, name: &str) -> Result<(), Self::Error> {
            self.paused.lock().unwrap().push(name.into());
            Ok(())
        }
    }

    fn t(name: &str, command: Option<&str>, blocker: bool) -> Node {
        Node::Test(Testcase {
            id: format!("x.{name}"),
            name: name.into(),
            tc: None,
            blocker,
            group: None,
            prio: None,
            host: None,
            guest: None,
            args: Vec::new(),
            step: command.map(|c| Step {
                name: name.into(),
                command: c.into(),
                timeout: Duration::from_secs(1),
                workdir: None,
                env: Default::default(),
                results: None,
                background: Default::default(),
            }),
            line: 1,
        })
    }

    fn serial(nodes: Vec<Node>, finally: Vec<Node>, blocker: bool) -> Node {
        let mut b = Block::serial(nodes);
        b.finally = finally;
        b.blocker = blocker;
        Node::Block(b)
    }

    fn parallel(workers: Option<usize>, nodes: Vec<Node>) -> Node {
        let mut b = Block::serial(nodes);
        b.kind = BlockKind::Parallel { workers };
        Node::Block(b)
    }

    fn seq(prepare: Vec<Node>, body: Vec<Node>) -> Sequence {
        Sequence {
            name: "s".into(),
            description: String::new(),
            source: PathBuf::from("s.toml"),
            variables: Default::default(),
            prepare: crate::sequence::model::Prepare {
                steps: prepare
                    .into_iter()
                    .map(|n| match n {
                        Node::Test(t) => t,
                        Node::Block(_) => unreachable!(),
                    })
                    .collect(),
                ..Default::default()
            },
            body: Block::serial(body),
            kept: Vec::new(),
        }
    }

    async fn go(
        s: &Sequence,
        pause: PauseOn,
    ) -> (RunReport, HashMap<String, &'static str>, usize, Vec<String>) {
        let host = ScriptedHost::default();
        let log = Log::default();
        let ctx = StepContext {
            run_id: 1,
            commit: "c".into(),
            sequence: "s".into(),
        };
        let dir = tempfile::tempdir().unwrap();
        let report = execute(s, &host, &ctx, dir.path(), &log, &pause)
            .await
            .unwrap();
        let statuses = log.steps.into_inner().unwrap().into_iter().collect();
        (
            report,
            statuses,
            host.most.load(Ordering::SeqCst),
            log.paused.into_inner().unwrap(),
        )
    }

    #[tokio::test]
    async fn a_failing_blocker_blocks_the_rest_of_its_block_and_finally_still_runs() {
        let s = seq(
            vec![],
            vec![
                serial(
                    vec![
                        t("a", Some("exit 0"), false),
                        t("b", Some("exit 2"), true),
                        t("c", Some("exit 0"), false),
                    ],
                    vec![t("clean", Some("exit 0"), false)],
                    false,
                ),
                t("after", Some("exit 0"), false),
            ],
        );
        let (r, st, _, _) = go(&s, PauseOn::Never).await;
        assert_eq!(
            (st["a"], st["b"], st["c"], st["clean"], st["after"]),
            ("pass", "fail", "blocked", "pass", "pass")
        );
        assert_eq!(r.failed, ["b".to_string()].into());
        assert!(r.broken.is_none());
    }

    #[tokio::test]
    async fn a_failing_non_blocker_lets_the_block_go_on_but_a_blocker_block_stops_its_parent() {
        let s = seq(
            vec![],
            vec![
                serial(
                    vec![t("a", Some("exit 1"), false), t("b", Some("exit 0"), false)],
                    vec![],
                    true,
                ),
                t("after", Some("exit 0"), false),
            ],
        );
        let (_, st, _, _) = go(&s, PauseOn::Never).await;
        assert_eq!((st["a"], st["b"], st["after"]), ("fail", "pass", "blocked"));
    }

    #[tokio::test]
    async fn parallel_blocks_keep_to_their_workers() {
        let nodes = (0..6)
            .map(|i| t(&format!("p{i}"), Some("exit 0"), false))
            .collect();
        let (_, _, most, _) =
            go(&seq(vec![], vec![parallel(Some(2), nodes)]), PauseOn::Never).await;
        assert_eq!(most, 2);
        let nodes = (0..5)
            .map(|i| t(&format!("p{i}"), Some("exit 0"), false))
            .collect();
        let (_, _, most, _) = go(&seq(vec![], vec![parallel(None, nodes)]), PauseOn::Never).await;
        assert_eq!(most, 5);
    }

    #[tokio::test]
    async fn a_failed_prepare_blocks_everything() {
        let s = seq(
            vec![
                t("build", Some("exit 1"), true),
                t("build2", Some("exit 0"), true),
            ],
            vec![serial(
                vec![t("a", Some("exit 0"), false)],
                vec![t("clean", Some("exit 0"), false)],
                false,
            )],
        );
        let (r, st, _, _) = go(&s, PauseOn::Never).await;
        assert_eq!(
            (st["build"], st["build2"], st["a"], st["clean"]),
            ("fail", "blocked", "blocked", "blocked")
        );
        assert!(r.failed.contains("build"));
    }

    #[tokio::test]
    async fn a_lost_host_halts_the_run_and_an_unbound_testcase_is_broken() {
        let s = seq(
            vec![],
            vec![
                t("unbound", None, false),
                t("ok", Some("exit 0"), false),
                t("lost", Some("lost"), false),
                t("never", Some("exit 0"), false),
            ],
        );
        let (r, st, _, _) = go(&s, PauseOn::Never).await;
        assert_eq!(
            (st["unbound"], st["ok"], st["lost"], st["never"]),
            ("broken", "pass", "broken", "blocked")
        );
        assert!(r.broken.unwrap().contains("no binding"));
    }

    #[tokio::test]
    async fn pause_on_fail_waits_after_the_failing_testcase_only() {
        let s = seq(
            vec![],
            vec![
                t("a", Some("exit 1"), false),
                t("b", Some("timeout"), false),
                t("c", Some("exit 0"), false),
            ],
        );
        let (_, _, _, paused) = go(&s, PauseOn::parse("b")).await;
        assert_eq!(paused, ["b"]);
        let (_, _, _, paused) = go(&s, PauseOn::parse("ALL")).await;
        assert_eq!(paused, ["a", "b"]);
        let (_, _, _, paused) = go(&s, PauseOn::Never).await;
        assert!(paused.is_empty());
    }
}
