//! The gate for one policy branch: look at staging, plan a flight, drive it to a decision, push,
//! and report. Every step reads its state from the store, so a kill at any point followed by a
//! restart carries on without repeating a finished run, a push or a mail.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use git2::Oid;
use tracing::Instrument;

use super::events::{self, Event, Progress};
use super::observations::{
    earlier_observations, flake_rate_from_history, next_attempt, observations,
};
use crate::config::policy::{GithubReport, Mode, Policy};
use crate::decision::{decide, finder_log, Decision, Facts, FinderStep, Next, Role, Verdict};
use crate::forge::{self, Forge, ReportTarget};
use crate::hosts::{Lab, LeaseRequest, Priority};
use crate::notify::{self, FlightFacts, ReportError};
use crate::repo::{short, Credentials, Mirror, RepoError};
use crate::run::{self, PauseContext, RunPlan};
use crate::sequence::{PauseOn, Sequences};
use crate::store::{Conclusion, FlightRow, RunRow, RunState, StepRow, Store, StoreError};

/// Re-plans allowed in one pass before the gate waits for the next one.
const MAX_PLANS_PER_PASS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where a branch stands after a pass.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum BranchOutcome {
    /// Nothing to test, or a decision that still stands; says which.
    Idle { message: String },
    Decided {
        flight: i64,
        verdict: Verdict,
        pushed_to: Option<String>,
        culprit: Option<String>,
        reason: String,
    },
    /// Something is wrong with the repository or the branches; nothing was pushed.
    Error { message: String },
}

/// Paths and addresses the gate needs from the service configuration.
#[derive(Clone, Debug)]
pub struct GateSettings {
    pub mirrors_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub public_url: String,
    pub mail_from: String,
}

/// Runs the gate for any number of policy branches.
pub struct Gate {
    pub store: Store,
    pub settings: GateSettings,
    pub sequences: Sequences,
    pub lab: Arc<Lab>,
    pub progress: Arc<dyn Progress>,
    /// Where policies with a `github` repository report, and how git logs in there.
    pub forge: Option<Arc<dyn Forge>>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Heads {
    staging: Oid,
    target: Oid,
    /// When they were read (ms): candidates queued before this are accounted for.
    seen_at: i64,
}

pub(crate) enum Driven {
    Done(BranchOutcome),
    Replan,
}

/// What a flight tests: staging, with its heads as last read, or a mailed series (which
/// stands until a newer revision replaces it, and never pushes).
#[derive(Clone, Copy)]
pub(crate) enum Tested {
    Staging(Heads),
    Series,
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RepoError> + Send + 'static,
) -> Result<T, RepoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RepoError::Git {
            context: "background git task".into(),
            message: e.to_string(),
        })?
}

fn oid(sha: &str) -> Result<Oid, GateError> {
    Oid::from_str(sha).map_err(|e| GateError::Internal(format!("stored sha `{sha}`: {e}")))
}

impl Gate {
    pub(super) fn emit(&self, event: Event) {
        events::log(&event);
        self.progress.event(&event);
    }

    /// Where and how `policy` reports on GitHub, when it does.
    fn report_target(&self, policy: &Policy) -> Option<ReportTarget> {
        self.forge.as_ref()?;
        let kind = match policy.github_report {
            GithubReport::Status => crate::store::ReportKind::Status,
            GithubReport::Check => crate::store::ReportKind::Check,
            GithubReport::None => return None,
        };
        Some(ReportTarget {
            repository: policy.github.clone()?,
            kind,
            context: format!("pushgate/{}", policy.name),
            target_branch: policy.target.clone(),
        })
    }

    /// What git logs in with for `policy`'s repository.
    async fn git_credentials(&self, policy: &Policy) -> Result<Credentials, String> {
        match (&self.forge, &policy.github) {
            (Some(forge), Some(_)) => forge
                .git_credentials(&policy.repository)
                .await
                .map_err(|e| format!("cannot get git credentials from GitHub: {e}")),
            _ => Ok(Credentials::Anonymous),
        }
    }

    /// Carries out a maintainer's `force`: pushes the commit (default: the staging tip) to the
    /// target if that is a fast-forward, whether or not it passed, and mails the list who did
    /// it and why. Returns what happened, or `None` when the repository could not be reached
    /// (the force stays pending for the next pass).
    async fn force(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        o: &crate::store::OverrideRow,
    ) -> Result<Option<String>, GateError> {
        let heads = match self.fetch(mirror, policy).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(policy = %policy.name, error = %e, "force: cannot fetch; will try again");
                return Ok(None);
            }
        };
        let (m, rev, target) = (mirror.clone(), o.rev.clone(), policy.target.clone());
        let done = blocking(move || {
            let sha = match &rev {
                Some(r) => m.resolve(r)?,
                None => heads.staging,
            };
            let (sha_hex, now_hex) = (sha.to_string(), heads.target.to_string());
            if m.is_ancestor(sha, heads.target)? {
                return Ok(format!(
                    "nothing to push: {target} already contains {}",
                    short(&sha_hex)
                ));
            }
            if !m.is_ancestor(heads.target, sha)? {
                return Ok(format!(
                    "refused: {} is not a fast-forward from {target} ({}); pushgate never \
                     pushes with force",
                    short(&sha_hex),
                    short(&now_hex)
                ));
            }
            m.push(sha, &target, heads.target)?;
            Ok(format!(
                "pushed {} to {target} (was {}) without testing",
                short(&sha_hex),
                short(&now_hex)
            ))
        })
        .await;
        let outcome = match done {
            Ok(outcome) => outcome,
            Err(RepoError::Unreachable { message, .. }) => {
                tracing::warn!(policy = %policy.name, error = %message, "force: cannot push; will try again");
                return Ok(None);
            }
            Err(e) => format!("not done: {e}"),
        };
        tracing::warn!(policy = %policy.name, who = %o.who, why = %o.why, %outcome, "maintainer's force");
        let mail = crate::notify::compose_force(
            &self.settings.mail_from,
            policy,
            o,
            &outcome,
            &self.settings.public_url,
        )?;
        if let Some(mail) = mail {
            self.store.enqueue_mail(None, &mail).await?;
        }
        Ok(Some(outcome))
    }

    /// Cancels a flight that no longer stands, and says so on its commits.
    async fn cancel(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        why: &str,
    ) -> Result<(), GateError> {
        let reports = match self.report_target(policy) {
            Some(target) if flight.series_id.is_none() => {
                forge::reports::cancelled(&target, flight, why, &self.settings.public_url)
            }
            _ => Vec::new(),
        };
        self.store.cancel_flight(flight, why, &reports).await?;
        self.emit(Event::Cancelled {
            policy: &policy.name,
            flight: flight.id,
            reason: why,
        });
        Ok(())
    }

    /// Brings one branch as far as it can go now: to a decision, or to a clear reason why not.
    pub async fn pass(&self, policy: &Policy) -> Result<BranchOutcome, GateError> {
        let span = tracing::info_span!("branch", policy = %policy.name);
        self.pass_inner(policy).instrument(span).await
    }

    async fn pass_inner(&self, policy: &Policy) -> Result<BranchOutcome, GateError> {
        let branch = self.store.upsert_branch(policy).await?;
        let mirror = {
            let (dir, name, url) = (
                self.settings.mirrors_dir.clone(),
                policy.name.clone(),
                policy.repository.clone(),
            );
            let credentials = match self.git_credentials(policy).await {
                Ok(c) => c,
                Err(e) => return self.branch_error(branch, policy, e).await,
            };
            match blocking(move || Mirror::open(&dir, &name, &url)).await {
                Ok(m) => m.with_credentials(credentials),
                Err(e) => return self.branch_error(branch, policy, e.to_string()).await,
            }
        };
        let mut retry = None;
        for o in self.store.pending_overrides(branch).await? {
            match o.action.as_str() {
                "force" => {
                    if let Some(outcome) = self.force(policy, &mirror, &o).await? {
                        self.store.finish_override(o.id, &outcome).await?;
                    }
                }
                "retry" => retry = Some(o.id),
                other => {
                    self.store
                        .finish_override(o.id, &format!("unknown action `{other}`"))
                        .await?
                }
            }
        }
        if let Some(hold) = self.store.branch(branch).await?.and_then(|b| b.hold) {
            let message = format!("held by a maintainer: {hold}; nothing is planned or pushed");
            self.emit(Event::Idle {
                policy: &policy.name,
                message: &message,
            });
            self.store
                .set_branch_status(branch, "held", &message)
                .await?;
            return Ok(BranchOutcome::Idle { message });
        }
        for _ in 0..MAX_PLANS_PER_PASS {
            let heads = match self.fetch(&mirror, policy).await {
                Ok(h) => h,
                Err(e) => return self.branch_error(branch, policy, e.to_string()).await,
            };
            self.store
                .set_branch_heads(
                    branch,
                    &heads.staging.to_string(),
                    &heads.target.to_string(),
                )
                .await?;
            let flight = match self.store.active_flight(branch).await? {
                Some(f) => f,
                None => match self
                    .plan(policy, branch, &mirror, heads, retry.take())
                    .await?
                {
                    Ok(f) => f,
                    Err(outcome) => return Ok(outcome),
                },
            };
            match self
                .drive(policy, &mirror, flight, Tested::Staging(heads))
                .await?
            {
                Driven::Done(outcome) => return Ok(outcome),
                Driven::Replan => continue,
            }
        }
        let message =
            "re-planned too often in one pass (is someone rewriting staging?); will look again";
        self.store
            .set_branch_status(branch, "idle", message)
            .await?;
        Ok(BranchOutcome::Idle {
            message: message.into(),
        })
    }

    async fn branch_error(
        &self,
        branch: i64,
        policy: &Policy,
        message: String,
    ) -> Result<BranchOutcome, GateError> {
        self.emit(Event::Error {
            policy: &policy.name,
            message: &message,
        });
        self.store
            .set_branch_status(branch, "error", &message)
            .await?;
        Ok(BranchOutcome::Error { message })
    }

    async fn fetch(&self, mirror: &Mirror, policy: &Policy) -> Result<Heads, RepoError> {
        let (m, staging, target) = (
            mirror.clone(),
            policy.staging.clone(),
            policy.target.clone(),
        );
        let seen_at = crate::store::now_ms();
        blocking(move || {
            let heads = m.fetch(&[&staging, &target])?;
            Ok(Heads {
                staging: heads[&staging],
                target: heads[&target],
                seen_at,
            })
        })
        .await
    }

    async fn is_ancestor(&self, mirror: &Mirror, a: Oid, b: Oid) -> Result<bool, RepoError> {
        let m = mirror.clone();
        blocking(move || m.is_ancestor(a, b)).await
    }

    /// Starts a flight when staging has something new, or says why not.
    async fn plan(
        &self,
        policy: &Policy,
        branch: i64,
        mirror: &Mirror,
        heads: Heads,
        retry: Option<i64>,
    ) -> Result<Result<FlightRow, BranchOutcome>, GateError> {
        let idle = |message: String| async move {
            self.emit(Event::Idle {
                policy: &policy.name,
                message: &message,
            });
            self.store
                .set_branch_status(branch, "idle", &message)
                .await?;
            // What was queued before this look is accounted for: there is nothing to test.
            self.store
                .settle_queued_candidates(branch, heads.seen_at)
                .await?;
            if let Some(id) = retry {
                self.store.finish_override(id, &message).await?;
            }
            Ok::<_, GateError>(Err(BranchOutcome::Idle { message }))
        };
        let ancestor = |a, b| self.is_ancestor(mirror, a, b);
        let error = |e: RepoError| self.branch_error(branch, policy, e.to_string());

        match ancestor(heads.staging, heads.target).await {
            Ok(true) => {
                return idle(format!(
                    "nothing to test: {} contains {} ({})",
                    policy.target,
                    policy.staging,
                    short(&heads.staging.to_string())
                ))
                .await
            }
            Ok(false) => {}
            Err(e) => return Ok(Err(error(e).await?)),
        }
        match ancestor(heads.target, heads.staging).await {
            Ok(true) => {}
            Ok(false) => {
                let message = format!(
                    "{staging} has diverged from {target}: {target} ({t}) is not in {staging} \
                     ({s}); rebase {staging} onto {target}. Nothing is tested or pushed until then.",
                    staging = policy.staging,
                    target = policy.target,
                    t = short(&heads.target.to_string()),
                    s = short(&heads.staging.to_string()),
                );
                return Ok(Err(self.branch_error(branch, policy, message).await?));
            }
            Err(e) => return Ok(Err(error(e).await?)),
        }

        let staging_hex = heads.staging.to_string();
        if let Some(last) = self
            .store
            .last_done_flight_for_tip(branch, &staging_hex)
            .await?
        {
            let left_at = last.pushed_to.as_deref().unwrap_or(&last.base);
            if left_at == heads.target.to_string() {
                let verdict = last.verdict.unwrap_or(Verdict::Broken);
                let waited = crate::store::now_ms() - last.finished_at.unwrap_or(0);
                let again = retry.is_some()
                    || (verdict == Verdict::Broken
                        && waited >= policy.retry_broken_after.as_millis() as i64);
                if !again {
                    let message = format!(
                        "waiting for a new {}: flight {} decided {verdict}: {}",
                        policy.staging, last.id, last.reason
                    );
                    self.emit(Event::Idle {
                        policy: &policy.name,
                        message: &message,
                    });
                    self.store
                        .settle_queued_candidates(branch, heads.seen_at)
                        .await?;
                    return Ok(Err(BranchOutcome::Idle { message }));
                }
            }
        }

        let m = mirror.clone();
        let commits =
            match blocking(move || m.first_parent_range(heads.target, heads.staging)).await {
                Ok(c) if !c.is_empty() => c,
                Ok(_) => {
                    return idle(format!(
                        "nothing to test: no first-parent commits between {} and {}",
                        policy.target, policy.staging
                    ))
                    .await
                }
                Err(e) => return Ok(Err(error(e).await?)),
            };
        let flight = self
            .store
            .create_flight(
                branch,
                &heads.target.to_string(),
                &staging_hex,
                &commits,
                heads.seen_at,
                // Queued with the flight: a crash cannot leave it planned but unreported.
                |flight| match self.report_target(policy) {
                    Some(target) => {
                        forge::reports::pending(&target, flight, &self.settings.public_url)
                    }
                    None => Vec::new(),
                },
            )
            .await?;
        if let Some(id) = retry {
            self.store
                .finish_override(id, &format!("flight {}", flight.id))
                .await?;
        }
        self.emit(Event::Planned {
            policy: &policy.name,
            flight: flight.id,
            base: &flight.base,
            tip: &flight.tip,
            commits: commits.len(),
        });
        Ok(Ok(flight))
    }

    /// Why a running flight no longer stands, if it does not. A git error is returned, not
    /// taken for a rewrite: a flight is cancelled only on evidence.
    async fn stale(
        &self,
        mirror: &Mirror,
        policy: &Policy,
        flight: &FlightRow,
        heads: Heads,
    ) -> Result<Result<Option<String>, RepoError>, GateError> {
        let tip = oid(&flight.tip)?;
        let check = |a, b| self.is_ancestor(mirror, a, b);
        let on_staging = match check(tip, heads.staging).await {
            Ok(yes) => yes,
            Err(e) => return Ok(Err(e)),
        };
        if !on_staging {
            return Ok(Ok(Some(format!(
                "{} was rewritten: the tested tip {} is no longer on it (now {})",
                policy.staging,
                short(&flight.tip),
                short(&heads.staging.to_string())
            ))));
        }
        let target_inside = match check(heads.target, tip).await {
            Ok(yes) => yes,
            Err(e) => return Ok(Err(e)),
        };
        if !target_inside {
            return Ok(Ok(Some(format!(
                "{} moved to {}, which the tested range does not contain",
                policy.target,
                short(&heads.target.to_string())
            ))));
        }
        Ok(Ok(None))
    }

    pub(crate) async fn drive(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: FlightRow,
        mut tested: Tested,
    ) -> Result<Driven, GateError> {
        let span = tracing::info_span!("flight", id = flight.id);
        async move {
            if let Tested::Staging(_) = tested {
                self.store
                    .set_branch_status(
                        flight.branch_id,
                        "testing",
                        &format!(
                            "flight {}: testing {} commit{} up to {}",
                            flight.id,
                            flight.commits.len(),
                            if flight.commits.len() == 1 { "" } else { "s" },
                            short(&flight.tip)
                        ),
                    )
                    .await?;
            }
            let ever_passed: BTreeSet<String> = self
                .store
                .ever_passed_steps(flight.branch_id, flight.id)
                .await?
                .into_iter()
                .collect();
            // What earlier flights learnt about these commits, and how flaky the branch is.
            let (old_runs, old_steps) =
                self.store.earlier_runs(flight.branch_id, flight.id).await?;
            let index_of: std::collections::HashMap<&str, usize> = (1..=flight.commits.len())
                .map(|i| (flight.sha(i), i))
                .collect();
            let earlier = earlier_observations(&old_runs, &old_steps, &policy.sequences, &index_of);
            let finder = crate::culprit::Settings {
                flake_rate: Some(
                    policy
                        .flake_rate
                        .unwrap_or_else(|| flake_rate_from_history(&old_runs)),
                ),
                confidence: policy.confidence,
                hosts: policy.hosts,
                ..Default::default()
            };
            let mut fresh = true;
            loop {
                let stale = match &mut tested {
                    Tested::Series => self.series_stale(&flight).await?,
                    Tested::Staging(heads) => {
                        if !fresh {
                            *heads = match self.fetch(mirror, policy).await {
                                Ok(h) => h,
                                Err(e) => {
                                    return Ok(Driven::Done(
                                        self.branch_error(flight.branch_id, policy, e.to_string())
                                            .await?,
                                    ))
                                }
                            };
                        }
                        match self.stale(mirror, policy, &flight, *heads).await? {
                            Ok(stale) => stale,
                            Err(e) => {
                                let message = format!(
                                    "cannot compare staging with flight {}: {e}",
                                    flight.id
                                );
                                return Ok(Driven::Done(
                                    self.branch_error(flight.branch_id, policy, message).await?,
                                ));
                            }
                        }
                    }
                };
                fresh = false;
                if let Some(why) = stale {
                    self.cancel(policy, &flight, &why).await?;
                    return Ok(match tested {
                        Tested::Staging(_) => Driven::Replan,
                        Tested::Series => Driven::Done(BranchOutcome::Idle {
                            message: format!("flight {} cancelled: {why}", flight.id),
                        }),
                    });
                }
                let runs = self.store.runs(flight.id).await?;
                let steps = self.store.flight_steps(flight.id).await?;
                let subs = self.store.flight_sub_results(flight.id).await?;
                let observed = observations(&runs, &steps, &subs, &policy.sequences);
                let facts = Facts {
                    n: flight.commits.len(),
                    retries: policy.retries,
                    observations: &observed,
                    ever_passed: &ever_passed,
                    earlier: &earlier,
                    finder,
                };
                match decide(&facts) {
                    Next::Test(tests) => {
                        // Each test runs its missing sequences in turn; the tests run at once.
                        // Confirmations go back to the host that saw the failure.
                        let prefer = runs
                            .iter()
                            .rev()
                            .find(|r| r.state == RunState::Fail)
                            .map(|r| r.host.as_str());
                        let tests = tests.into_iter().map(|(index, role)| {
                            let (attempt, missing) =
                                next_attempt(&runs, index, role, &policy.sequences);
                            let flight = &flight;
                            async move {
                                for seq in missing {
                                    self.run(
                                        policy, mirror, flight, index, role, attempt, &seq, prefer,
                                    )
                                    .await?;
                                }
                                Ok::<(), GateError>(())
                            }
                        });
                        for done in futures_util::future::join_all(tests).await {
                            done?;
                        }
                    }
                    Next::Conclude(decision) => {
                        let log = finder_log(&facts);
                        if let Tested::Series = tested {
                            return self
                                .conclude_series(policy, &flight, decision, &runs, &steps, &log)
                                .await;
                        }
                        return self
                            .conclude(policy, mirror, &flight, decision, &runs, &steps, &log)
                            .await;
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Runs one sequence on one commit and records it.
    #[allow(clippy::too_many_arguments)]
    async fn run(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: &FlightRow,
        index: usize,
        role: Role,
        attempt: u32,
        sequence_name: &str,
        prefer: Option<&str>,
    ) -> Result<(), GateError> {
        let sha = flight.sha(index).to_string();
        let sequence = self.sequences.get(sequence_name).ok_or_else(|| {
            GateError::Internal(format!("sequence `{sequence_name}` vanished after loading"))
        })?;
        let run_id = self
            .store
            .create_run(&crate::store::NewRun {
                owner: crate::store::RunOwner::Flight(flight.id),
                index,
                sha: &sha,
                role,
                attempt,
                sequence: sequence_name,
                host: "-",
            })
            .await?;
        let span = tracing::info_span!("run", id = run_id, sha = short(&sha), role = role.as_str());
        async move {
            self.emit(Event::Testing {
                policy: &policy.name,
                index,
                commits: flight.commits.len(),
                sha: &sha,
                title: flight
                    .commit(index)
                    .map_or("(baseline)", |c| c.title.as_str()),
                role,
                attempt,
                sequence: sequence_name,
            });
            let commit = flight.commit(index);
            let mut to: Vec<String> = policy.mail.list.iter().cloned().collect();
            if let Some(c) = commit.filter(|_| policy.mail.authors) {
                to.push(format!("{} <{}>", c.author_name, c.author_email));
            }
            let never = PauseOn::Never;
            let needs = if flight.series_id.is_some() {
                run::series_needs(sequence, policy)
            } else {
                run::needs_of(sequence, &policy.needs)
            };
            let (state, detail) = match needs {
                Err(why) => (RunState::Broken, why),
                Ok(needs) => {
                    let plan = RunPlan {
                        run_id,
                        sequence,
                        sequence_name,
                        repository: mirror.path.clone(),
                        sha: &sha,
                        log_dir: self
                            .settings
                            .logs_dir
                            .join(format!("flight-{}", flight.id))
                            .join(format!("run-{run_id}")),
                        lease: LeaseRequest {
                            run_id,
                            // Untrusted series wait behind the gate and its bisections.
                            priority: match role {
                                _ if flight.series_id.is_some() => Priority::Periodic,
                                Role::Bisect => Priority::Bisection,
                                _ => Priority::Gate,
                            },
                            needs,
                            prefer: prefer.map(str::to_string),
                        },
                        // A series never holds a host for a maintainer to look at.
                        pause_on: if flight.series_id.is_some() {
                            &never
                        } else {
                            &policy.pause_on_fail
                        },
                        pause: PauseContext {
                            to,
                            sha: &sha,
                            staging: &policy.staging,
                            host: String::new(),
                            resume_after: policy.pause_resume_after,
                            from: &self.settings.mail_from,
                            public_url: &self.settings.public_url,
                        },
                        flight_id: Some(flight.id),
                    };
                    run::run_on_lab(&self.store, &self.lab, plan).await?
                }
            };
            let error = (state == RunState::Broken).then_some(detail.as_str());
            self.store.finish_run(run_id, state, error).await?;
            self.emit(Event::Tested {
                policy: &policy.name,
                sha: &sha,
                role,
                state,
                detail: &detail,
            });
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Pushes what the decision allows, then records the conclusion and its mail at once.
    #[allow(clippy::too_many_arguments)]
    async fn conclude(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: &FlightRow,
        decision: Decision,
        runs: &[RunRow],
        run_steps: &[StepRow],
        finder_log: &[FinderStep],
    ) -> Result<Driven, GateError> {
        let push_sha = decision.push_to.map(|i| flight.sha(i).to_string());
        let mut push = self.store.push_of(flight.id).await?;
        let mut would_push = None;
        let mut reason = decision.reason.clone();
        let mut refused = false;
        match (&push_sha, policy.mode) {
            (Some(sha), Mode::ReportOnly) => {
                would_push = Some(sha.clone());
                reason.push_str(&format!(
                    " (report-only: would have pushed {} to {})",
                    short(sha),
                    policy.target
                ));
            }
            (Some(sha), Mode::Push) if push.is_none() => {
                match self.fast_forward(policy, mirror, flight, sha).await {
                    Ok(Some(old)) => {
                        self.store
                            .record_push(flight, &policy.target, &old, sha)
                            .await?;
                        self.emit(Event::Pushed {
                            policy: &policy.name,
                            target: &policy.target,
                            sha,
                        });
                        push = self.store.push_of(flight.id).await?;
                    }
                    Ok(None) => reason.push_str(&format!(
                        " ({} already contains {}: nothing to push)",
                        policy.target,
                        short(sha)
                    )),
                    Err(PushFailure::Moved(why)) => {
                        self.cancel(policy, flight, &why).await?;
                        return Ok(Driven::Replan);
                    }
                    Err(PushFailure::Refused(message)) => {
                        refused = true;
                        reason.push_str(&format!(
                            " (but {} refused the push of {} to {}: {message}; nothing was \
                             pushed, and pushgate never forces: lift the rule or push by hand)",
                            policy.repository,
                            short(sha),
                            policy.target
                        ));
                    }
                    Err(PushFailure::Repo(e)) => {
                        // The flight stays running: the next pass tries the push again.
                        let message = format!("decided, but the push failed: {e}");
                        return Ok(Driven::Done(
                            self.branch_error(flight.branch_id, policy, message).await?,
                        ));
                    }
                }
            }
            _ => {}
        }

        let conclusion = Conclusion {
            verdict: decision.verdict,
            culprit: decision.culprit.map(|i| flight.sha(i).to_string()),
            pushed_to: push.as_ref().map(|p| p.new_sha.clone()),
            reason,
            finder_log: notify::finder_lines(flight, finder_log),
        };
        // The runs the decision was made from: concluding runs nothing more.
        let mails = notify::compose(&FlightFacts {
            policy,
            flight,
            conclusion: &conclusion,
            culprit_index: decision.culprit,
            steps: &decision.steps,
            push: push.as_ref(),
            would_push: would_push.as_deref(),
            runs,
            run_steps,
            finder_log,
            sequences: &self.sequences,
            public_url: &self.settings.public_url,
            from: &self.settings.mail_from,
        })?;
        let reports = match self.report_target(policy) {
            Some(target) => forge::reports::concluded(
                &target,
                flight,
                &forge::Outcome {
                    verdict: decision.verdict,
                    reason: &conclusion.reason,
                    passed_up_to: decision.push_to.filter(|_| !refused),
                    report_only: policy.mode == Mode::ReportOnly,
                    culprit: decision.culprit,
                },
                &self.settings.public_url,
            ),
            None => Vec::new(),
        };
        let branch_state = match decision.verdict {
            _ if refused => "error",
            Verdict::Regression => "blocked",
            Verdict::Broken => "broken",
            _ => "idle",
        };
        self.store
            .finish_flight(flight, &conclusion, &mails, &reports, branch_state)
            .await?;
        Ok(self.concluded(policy, flight, conclusion))
    }

    /// Says a recorded conclusion and hands it back as the flight's outcome.
    pub(crate) fn concluded(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        conclusion: Conclusion,
    ) -> Driven {
        self.emit(Event::Concluded {
            policy: &policy.name,
            flight: flight.id,
            verdict: conclusion.verdict,
            reason: &conclusion.reason,
        });
        Driven::Done(BranchOutcome::Decided {
            flight: flight.id,
            verdict: conclusion.verdict,
            pushed_to: conclusion.pushed_to,
            culprit: conclusion.culprit,
            reason: conclusion.reason,
        })
    }

    /// Moves the target to `sha` if that is a fast-forward from where it is now. Returns the
    /// old head, or `None` when the target already contains `sha`.
    async fn fast_forward(
        &self,
        policy: &Policy,
        mirror: &Mirror,
        flight: &FlightRow,
        sha: &str,
    ) -> Result<Option<String>, PushFailure> {
        let new = Oid::from_str(sha).map_err(|e| PushFailure::Refused(e.to_string()))?;
        let m = mirror.clone();
        let target = policy.target.clone();
        let base = flight.base.clone();
        blocking(move || {
            let now = m.fetch(&[&target])?[&target];
            if now == new {
                // Pushed before a crash, not yet recorded: record it, do not push again.
                return Ok(Ok(Some(base)));
            }
            if m.is_ancestor(new, now)? {
                return Ok(Ok(None));
            }
            if !m.is_ancestor(now, new)? {
                return Ok(Err(PushFailure::Moved(format!(
                    "{target} moved to {}, and {} is not a fast-forward from it",
                    short(&now.to_string()),
                    short(&new.to_string())
                ))));
            }
            match m.push(new, &target, now) {
                Ok(()) => Ok(Ok(Some(now.to_string()))),
                Err(RepoError::Rejected { message, .. }) => {
                    // Refused because the branch moved meanwhile (re-plan), or for a reason
                    // of the server's, such as a protection rule (report; never force).
                    let after = m.fetch(&[&target])?[&target];
                    if after != now {
                        Ok(Err(PushFailure::Moved(format!(
                            "the push to {target} was refused ({message}): it moved to {}; \
                             re-planning",
                            short(&after.to_string())
                        ))))
                    } else {
                        Ok(Err(PushFailure::Refused(message)))
                    }
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(PushFailure::Repo)?
    }
}

enum PushFailure {
    /// The target is not where the flight expects: re-plan.
    Moved(String),
    /// The server refused although the target had not moved (a protection rule, a hook):
    /// the decision stands, unpushed, and says why.
    Refused(String),
    /// The remote could not be reached: try again later.
    Repo(RepoError),
}
