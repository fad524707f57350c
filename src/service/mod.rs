//! The running service: loads the configuration, recovers from a crash, and runs the gate loop
//! per policy, the mail loop and the web server. `serve`, `gate --once`, the demo and the bench
//! all start here, so they behave the same.

pub mod check;
pub mod readiness;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::policy::Policy;
use crate::config::{Config, InForce, MailTransport, Rules};
use crate::file_error::{FileError, FileErrors};
use crate::forge::GitHub;
use crate::forge::{deliver_due_reports, Forge, ReportDelivery};
use crate::gate::{BranchOutcome, Gate, GateError, GateSettings, Progress};
use crate::hosts::{Inventory, Lab, LabSettings, RUN_LEASE};
use crate::jobs::JobRunner;
use crate::notify::{
    deliver_due, DeliveryReport, FolderMailer, HostMail, MailError, Mailer, SmtpMailer,
};
use crate::store::{PushedCandidate, Store, StoreError};
use crate::web::{self, AppState, Wakers};

/// How long a failed mail waits before its first retry; it doubles after each failure.
const MAIL_RETRY_BASE: Duration = Duration::from_secs(30);
/// How often the mail loop looks at the outbox when nothing wakes it.
/// How often `serve` looks whether the files of its rules changed.
const FILES_POLL: Duration = Duration::from_secs(3);
const MAIL_INTERVAL: Duration = Duration::from_secs(10);
/// How long a report GitHub did not take waits before its first retry; it doubles after each.
const REPORT_RETRY_BASE: Duration = Duration::from_secs(15);
/// How often each staging branch's head on GitHub is compared with the store, to catch a
/// webhook delivery that never came.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(300);

impl From<FileError> for ServiceError {
    fn from(e: FileError) -> ServiceError {
        ServiceError::Config(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Config(#[from] FileErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("[github]: {0}")]
    Forge(String),
    #[error("list {list}: {message}")]
    List { list: String, message: String },
    #[error("cannot listen on {address}: {message}")]
    Listen { address: String, message: String },
    #[error("the state directory: {0}")]
    StateDir(#[from] crate::store::disk::NotWritable),
}

pub struct Service {
    pub config: Config,
    /// The policies and sequences in force: replaced whole by [`Service::reload`].
    pub rules: Arc<InForce<Rules>>,
    pub gate: Arc<Gate>,
    pub lab: Arc<Lab>,
    pub jobs: Arc<JobRunner>,
    pub mailer: Arc<dyn Mailer>,
    pub mail_retry_base: Duration,
    /// GitHub, when `[github]` says how to log in there.
    pub forge: Option<Arc<dyn Forge>>,
    pub report_retry_base: Duration,
    pub reconcile_interval: Duration,
    reports_wake: Arc<Notify>,
    /// Told when new rules are in force, so that loops start for new policies.
    reloaded: Arc<Notify>,
}

impl Service {
    /// Loads policies (refusing a bad one), opens the store, and cleans up after a crash.
    pub async fn open(
        config: Config,
        progress: Arc<dyn Progress>,
    ) -> Result<Service, ServiceError> {
        let check::Loaded {
            policies,
            sequences,
            inventory,
        } = check::load_files(&config)?;
        crate::store::disk::check_writable(&config.state_dir)?;
        let store = Store::open(&config.database_url).await?;
        // Every policy has its branch row before the first delivery asks for it.
        for policy in &policies {
            store.upsert_branch(policy).await?;
        }
        for p in &policies {
            let token = matches!(
                config.github.as_ref().map(|g| &g.auth),
                Some(crate::config::GitHubAuth::Token(_))
            );
            if token && p.github_report == crate::config::policy::GithubReport::Check {
                tracing::warn!(policy = %p.name, "github_report = \"check\" needs a GitHub App login: GitHub refuses check runs made with a personal token");
            }
        }
        if let Some(ca) = config.github.as_ref().and_then(|g| g.ca_file.as_ref()) {
            // SAFETY: libgit2 asks that this option not be set while another thread uses
            // libgit2's TLS. It is set here, at start, before this service runs any git; and
            // it only adds authorities to what is trusted, so another service of the same
            // process (tests) sees no change it did not ask for but more trust of this CA.
            unsafe { git2::opts::set_ssl_cert_file(ca) }
                .map_err(|e| ServiceError::Forge(format!("ca_file {}: {e}", ca.display())))?;
        }
        let forge: Option<Arc<dyn Forge>> = match &config.github {
            Some(settings) => Some(Arc::new(
                GitHub::new(settings.clone()).map_err(ServiceError::Forge)?,
            )),
            None => None,
        };
        let lab = open_lab(&config, inventory, store.clone());
        // No run of this store can be alive now: its leases go, and whatever it left on a
        // host (a directory, a domain, a disk) is removed.
        let aborted = store.abort_unfinished_runs().await?;
        let requeued = store.requeue_unfinished_jobs().await?;
        store.drop_all_run_leases().await?;
        let removed = reap_all(&lab).await;
        if aborted > 0 || removed > 0 || requeued > 0 {
            tracing::warn!(
                aborted,
                requeued,
                removed,
                "recovered from an interrupted start: unfinished runs will run again"
            );
        }
        let mailer: Arc<dyn Mailer> = match &config.mail {
            MailTransport::Smtp(url) => Arc::new(SmtpMailer::new(url)?),
            MailTransport::Folder(dir) => Arc::new(FolderMailer { dir: dir.clone() }),
        };
        let settings = GateSettings {
            mirrors_dir: config.mirrors_dir(),
            logs_dir: config.logs_dir(),
            public_url: config.public_url.clone(),
            mail_from: config.mail_from.clone(),
        };
        let rules = Arc::new(InForce::new(Rules {
            policies,
            sequences,
        }));
        let jobs = JobRunner::new(
            store.clone(),
            lab.clone(),
            rules.clone(),
            settings.clone(),
            forge.is_some(),
        );
        let gate = Gate {
            store,
            settings,
            rules: rules.clone(),
            lab: lab.clone(),
            progress,
            forge: forge.clone(),
        };
        Ok(Service {
            config,
            rules,
            lab,
            jobs,
            gate: Arc::new(gate),
            mailer,
            mail_retry_base: MAIL_RETRY_BASE,
            forge,
            report_retry_base: REPORT_RETRY_BASE,
            reconcile_interval: RECONCILE_INTERVAL,
            reports_wake: Arc::new(Notify::new()),
            reloaded: Arc::new(Notify::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.gate.store
    }

    /// One pass over every policy, in order.
    pub async fn gate_once(&self) -> Result<Vec<(String, BranchOutcome)>, ServiceError> {
        let mut out = Vec::new();
        let rules = self.rules.get();
        for policy in &rules.policies {
            out.push((policy.name.clone(), self.gate.pass(policy).await?));
        }
        Ok(out)
    }

    /// What the series pass needs from the configuration.
    fn pass_settings(&self) -> crate::series::pass::PassSettings {
        crate::series::pass::PassSettings {
            mirrors_dir: self.config.mirrors_dir(),
            inboxes_dir: self.config.inboxes_dir(),
            from: self.config.mail_from.clone(),
        }
    }

    /// One series pass for a policy with a mailing list: reads its source, applies what is
    /// complete (starting its flight), answers what does not apply or is missing, drops what
    /// was replaced. Returns what it did, per revision root. A source that cannot be read is
    /// said in the report, after the stored mail was gone through.
    pub async fn list_pass(
        &self,
        policy: &Policy,
    ) -> Result<crate::series::pass::PassReport, ServiceError> {
        let Some(list) = &policy.mailing_list else {
            return Ok(Default::default());
        };
        let now = crate::store::now_ms() / 1000;
        let report = crate::series::pass::series_pass(
            self.store(),
            policy,
            list,
            &self.pass_settings(),
            now,
        )
        .await
        .map_err(|e| ServiceError::List {
            list: list.name.clone(),
            message: e.to_string(),
        })?;
        Ok(report)
    }

    /// Every policy's list pass, then every series flight driven to its end, in order (for
    /// `gate --once` and `pushgate mail check`).
    pub async fn series_once(&self) -> Result<Vec<(String, String)>, ServiceError> {
        let mut out = Vec::new();
        let rules = self.rules.get();
        for policy in rules.policies.iter().filter(|p| p.mailing_list.is_some()) {
            let report = self.list_pass(policy).await?;
            if let Some(e) = report.source_error {
                out.push((
                    policy.name.clone(),
                    format!("cannot read the list now: {e}"),
                ));
            }
            for (root, said) in report.done {
                out.push((policy.name.clone(), format!("<{root}> {said}")));
            }
            for outcome in self.gate.series_pass(policy).await? {
                out.push((policy.name.clone(), describe(&outcome)));
            }
        }
        Ok(out)
    }

    /// Sends whatever mail is due now.
    pub async fn deliver_mail(&self) -> Result<DeliveryReport, ServiceError> {
        Ok(deliver_due(
            self.store(),
            self.mailer.as_ref(),
            &self.config.mail_from,
            self.mail_retry_base,
        )
        .await?)
    }

    /// Posts whatever statuses, check runs and comments are due now.
    pub async fn deliver_reports(&self) -> Result<ReportDelivery, ServiceError> {
        match &self.forge {
            Some(forge) => {
                Ok(
                    deliver_due_reports(self.store(), forge.as_ref(), self.report_retry_base)
                        .await?,
                )
            }
            None => Ok(ReportDelivery::default()),
        }
    }

    /// Compares each GitHub staging branch's head with what the store knows and queues the
    /// candidate a lost webhook delivery would have queued. Returns the policies it woke.
    pub async fn reconcile(&self) -> Result<Vec<String>, ServiceError> {
        let Some(forge) = &self.forge else {
            return Ok(Vec::new());
        };
        let mut missed = Vec::new();
        let rules = self.rules.get();
        for policy in &rules.policies {
            let Some(repository) = &policy.github else {
                continue;
            };
            let head = match forge.branch_head(repository, &policy.staging).await {
                Ok(Some(head)) => head,
                Ok(None) => {
                    tracing::warn!(policy = %policy.name, %repository, staging = %policy.staging, "reconcile: no such branch on GitHub");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(policy = %policy.name, error = %e, "reconcile: cannot read the branch from GitHub");
                    continue;
                }
            };
            let branch = self.store().upsert_branch(policy).await?;
            let known = self
                .store()
                .branch(branch)
                .await?
                .and_then(|b| b.staging_head);
            if known.as_deref() == Some(head.as_str())
                || self.store().knows_candidate(branch, &head).await?
            {
                continue;
            }
            let base = known.unwrap_or_default();
            let queued = self
                .store()
                .queue_candidate(
                    &PushedCandidate {
                        policy: &policy.name,
                        base: &base,
                        tip: &head,
                    },
                    "reconcile",
                )
                .await?;
            if queued {
                tracing::warn!(policy = %policy.name, %head, "reconcile: GitHub has a staging head no delivery told of; queued it");
                missed.push(policy.name.clone());
            }
        }
        Ok(missed)
    }

    /// Binds the configured address (port 0 picks a free one).
    pub async fn bind(&self) -> Result<TcpListener, ServiceError> {
        TcpListener::bind(self.config.listen)
            .await
            .map_err(|e| ServiceError::Listen {
                address: self.config.listen.to_string(),
                message: e.to_string(),
            })
    }

    /// Runs the gate loops, the mail loop and the web server until `shutdown` completes.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServiceError> {
        let wakers = Arc::new(Wakers::default());
        let mail_wake = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        let state = self.app_state(wakers.clone());
        tasks.spawn(self.clone().run_policies(wakers, mail_wake.clone()));
        let this = self.clone();
        tasks.spawn(async move {
            loop {
                if let Err(e) = this.deliver_mail().await {
                    tracing::error!(error = %e, "mail delivery failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(MAIL_INTERVAL) => {}
                    _ = mail_wake.notified() => {}
                }
            }
        });
        if self.forge.is_some() {
            let this = self.clone();
            tasks.spawn(async move {
                loop {
                    if let Err(e) = this.deliver_reports().await {
                        tracing::error!(error = %e, "reporting to GitHub failed");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(MAIL_INTERVAL) => {}
                        _ = this.reports_wake.notified() => {}
                    }
                }
            });
            let (this, wakers) = (self.clone(), state.wakers.clone());
            tasks.spawn(async move {
                loop {
                    match this.reconcile().await {
                        Ok(missed) => {
                            for name in missed {
                                wakers.wake(None, Some(&name));
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "reconciliation with GitHub failed"),
                    }
                    tokio::time::sleep(this.reconcile_interval).await;
                }
            });
        }
        tasks.spawn(self.jobs.clone().serve());
        let ticker = self.lab.spawn_ticker();
        let this = self.clone();
        tasks.spawn(async move { this.warn_of_the_unreachable().await });
        let this = self.clone();
        tasks.spawn(async move { this.watch_files().await });
        let this = self.clone();
        tasks.spawn(async move { this.reload_on_sighup().await });
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!("serving on http://{address}");
        let listener = web::connection::Listener::new(listener, self.config.http);
        let app = web::router(state).into_make_service_with_connect_info::<web::connection::Peer>();
        readiness::tell(readiness::State::Ready);
        let shutdown = async move {
            shutdown.await;
            readiness::tell(readiness::State::Stopping);
        };
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await;
        // Dropping a run mid-step is like a crash: the next start aborts it and runs it again.
        // Its host is cleaned up now, though, not at the next start.
        tasks.shutdown().await;
        ticker.abort();
        if let Err(e) = self.store().drop_all_run_leases().await {
            tracing::warn!(error = %e, "cannot drop the stopped runs' leases");
        }
        reap_all(&self.lab).await;
        served.map_err(|e| ServiceError::Listen {
            address,
            message: e.to_string(),
        })
    }
}

impl Service {
    /// A policy's list, for as long as the service runs: a list pass every poll interval, and
    /// each series flight driven in a task of its own, so that a newer revision arriving
    /// meanwhile is seen and cancels the flight it replaces.
    async fn watch_list(self: Arc<Self>, name: String, mail_wake: Arc<Notify>) {
        // Owned here: when the service stops and this task is dropped, so are the flights'.
        let mut driving: JoinSet<i64> = JoinSet::new();
        let mut running = std::collections::HashSet::new();
        loop {
            // As the rules in force say now: a reload may have changed the list or removed it.
            let rules = self.rules.get();
            let Some(policy) = rules.policy(&name).filter(|p| p.mailing_list.is_some()) else {
                tracing::info!("{name}: no longer reads a mailing list");
                return;
            };
            match self.list_pass(policy).await {
                Ok(report) => {
                    if let Some(e) = report.source_error {
                        tracing::warn!(policy = %policy.name, error = %e, "cannot read the list now");
                    }
                    for (root, said) in report.done {
                        tracing::info!(policy = %policy.name, %root, %said, "series");
                    }
                }
                Err(e) => tracing::error!(policy = %policy.name, error = %e, "list pass failed"),
            }
            while let Some(done) = driving.try_join_next() {
                if let Ok(id) = done {
                    running.remove(&id);
                }
            }
            let flights = match self.store().upsert_branch(policy).await {
                Ok(branch) => self.store().running_series_flights(branch).await,
                Err(e) => Err(e),
            };
            let flights = match flights {
                Ok(flights) => flights,
                Err(e) => {
                    tracing::error!(policy = %policy.name, error = %e, "cannot read series flights");
                    Vec::new()
                }
            };
            for flight in flights {
                if !running.insert(flight.id) {
                    continue;
                }
                let (this, policy, wake) = (self.clone(), policy.clone(), mail_wake.clone());
                driving.spawn(async move {
                    let id = flight.id;
                    match this.gate.series_flight(&policy, flight).await {
                        Ok(outcome) => tracing::info!(policy = %policy.name, flight = id, outcome = %describe(&outcome), "series flight ended"),
                        Err(e) => tracing::error!(policy = %policy.name, flight = id, error = %e, "series flight failed"),
                    }
                    wake.notify_one();
                    id
                });
            }
            mail_wake.notify_one();
            drop(rules);
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// Keeps a gate loop (and a list loop, for a policy with a list) running for every policy
    /// in force: at start, and again after each reload, for the policies it added. A loop
    /// whose policy a reload removed ends by itself at its next pass.
    async fn run_policies(self: Arc<Self>, wakers: Arc<Wakers>, mail_wake: Arc<Notify>) {
        // Owned here: when the service stops and this task is dropped, so are the loops.
        let mut loops = JoinSet::new();
        let mut running: std::collections::HashMap<String, tokio::task::AbortHandle> =
            Default::default();
        loop {
            while loops.try_join_next().is_some() {}
            let rules = self.rules.get();
            wakers.keep_only(|name| rules.policy(name).is_some());
            for policy in &rules.policies {
                let wake = wakers.add(&policy.name, &policy.staging);
                let gate = format!("gate {}", policy.name);
                if running.get(&gate).is_none_or(|h| h.is_finished()) {
                    let task = self
                        .clone()
                        .gate_loop(policy.name.clone(), wake, mail_wake.clone());
                    running.insert(gate, loops.spawn(task));
                }
                let list = format!("list {}", policy.name);
                if policy.mailing_list.is_some()
                    && running.get(&list).is_none_or(|h| h.is_finished())
                {
                    let task = self
                        .clone()
                        .watch_list(policy.name.clone(), mail_wake.clone());
                    running.insert(list, loops.spawn(task));
                }
            }
            drop(rules);
            self.reloaded.notified().await;
            // Every loop looks again under the new rules now, not at its next poll.
            wakers.wake_all();
        }
    }

    /// One policy's gate, for as long as the policy is in force: a pass, then a wait for a
    /// hook or the poll interval.
    async fn gate_loop(self: Arc<Self>, name: String, wake: Arc<Notify>, mail_wake: Arc<Notify>) {
        loop {
            let Some(policy) = self.rules.get().policy(&name).cloned() else {
                tracing::info!("{name}: no longer a policy; its gate stops");
                return;
            };
            match self.gate.pass(&policy).await {
                Ok(outcome) => tracing::debug!("{name}: pass done: {}", describe(&outcome)),
                // Only the store can fail a pass; it may come back, so keep going.
                Err(e) => tracing::error!("{name}: the gate pass failed: {e}"),
            }
            mail_wake.notify_one();
            self.reports_wake.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = wake.notified() => {}
            }
        }
    }

    /// What the web side serves from.
    pub fn app_state(&self, wakers: Arc<Wakers>) -> AppState {
        AppState {
            store: self.store().clone(),
            wakers,
            lab: self.lab.clone(),
            jobs: self.jobs.clone(),
            api_token: self.config.api_token.clone(),
            github_secret: self.config.github_secret.clone(),
            rules: self.rules.clone(),
            reports_to_github: self.forge.is_some(),
            reports_wake: self.reports_wake.clone(),
        }
    }

    /// Reloads the policies, the sequences and the hosts file together (SIGHUP, or a change of
    /// the files). A mistake in any file refuses the whole reload, with every error, and what
    /// is in force stays; flights in progress go on with the sequences they started with.
    pub async fn reload(&self) -> Result<(), ServiceError> {
        let loaded = check::load_files(&self.config)?;
        for policy in &loaded.policies {
            self.store().upsert_branch(policy).await?;
        }
        let (policies, sequences, hosts) = (
            loaded.policies.len(),
            loaded.sequences.len(),
            loaded.inventory.hosts.len(),
        );
        self.lab.replace_inventory(loaded.inventory);
        self.rules.replace(Rules {
            policies: loaded.policies,
            sequences: loaded.sequences,
        });
        self.reloaded.notify_one();
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        tracing::info!(
            "reloaded: {}, {}, {}",
            plural(policies, "policy", "policies"),
            plural(sequences, "sequence", "sequences"),
            plural(hosts, "host", "hosts")
        );
        Ok(())
    }

    /// Asks, once at start, what `pushgate check` asks of the services the files name; one
    /// that does not answer is a warning (it may come back), not a reason to stop.
    async fn warn_of_the_unreachable(&self) {
        let rules = self.rules.get();
        let inventory = self.lab.inventory();
        for p in check::probe(&self.config, &rules.policies, &inventory).await {
            if let Err(why) = p.outcome {
                tracing::warn!(
                    "{}: {why} (serving anyway; `pushgate check` asks again)",
                    p.what
                );
            }
        }
    }

    /// Reloads on SIGHUP, as daemons do.
    async fn reload_on_sighup(&self) {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            readiness::tell(readiness::State::Reloading);
            if let Err(e) = self.reload().await {
                tracing::error!("SIGHUP: the files are wrong, so what is in force stays:\n{e}");
            }
            readiness::tell(readiness::State::Ready);
        }
    }

    /// Reloads when a policy, a sequence or the hosts file changes (looked at every 3 s).
    async fn watch_files(&self) {
        let mut seen = self.files_stamp();
        loop {
            tokio::time::sleep(FILES_POLL).await;
            let now = self.files_stamp();
            if now != seen {
                seen = now;
                if let Err(e) = self.reload().await {
                    tracing::error!(
                        "the files changed but are wrong, so what is in force stays:\n{e}"
                    );
                }
            }
        }
    }

    /// What changes when a file of the rules does: each one's name, size and time.
    fn files_stamp(&self) -> Vec<(std::path::PathBuf, u64, Option<std::time::SystemTime>)> {
        let stamp = |p: &std::path::Path| {
            let meta = std::fs::metadata(p).ok();
            (
                p.to_path_buf(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            )
        };
        let mut out = vec![stamp(&self.config.hosts_file)];
        for dir in [&self.config.policies_dir, &self.config.sequences_dir] {
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            files.sort();
            out.extend(files.iter().map(|p| stamp(p)));
        }
        out
    }
}

/// The lab as the configuration describes it: the one place `serve`, `gate` and `pushgate hosts`
/// build it.
pub fn open_lab(config: &Config, inventory: Inventory, store: Store) -> Arc<Lab> {
    Lab::new(
        inventory,
        store.clone(),
        LabSettings {
            local_work_dir: config.work_dir(),
            lease_length: RUN_LEASE,
            health: Arc::new(HostMail {
                store: store.clone(),
                from: config.mail_from.clone(),
            }),
        },
    )
}

/// Cleans every host of what dead runs left; an unreachable host is logged, not fatal (the
/// next start, or `pushgate hosts reap`, tries again). Returns how much was removed.
async fn reap_all(lab: &Lab) -> usize {
    let mut removed = 0;
    for (host, result) in lab.reap(&std::collections::BTreeSet::new()).await {
        match result {
            Ok(n) => removed += n,
            Err(e) => tracing::warn!(%host, error = %e, "cannot clean up the host"),
        }
    }
    removed
}

/// One line for what a flight came to.
pub fn describe(outcome: &BranchOutcome) -> String {
    match outcome {
        BranchOutcome::Idle { message } | BranchOutcome::Error { message } => message.clone(),
        BranchOutcome::Decided {
            flight,
            verdict,
            reason,
            ..
        } => format!("flight {flight}: {verdict}: {reason}"),
    }
}
