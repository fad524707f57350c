//! The running service: loads the configuration, recovers from a crash, and runs the gate loop
//! per policy, the mail loop and the web server. `serve`, `gate --once`, the demo and the bench
//! all start here, so they behave the same.

pub mod check;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::policy::Policy;
use crate::config::{Config, MailTransport};
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
    #[error("{0}")]
    Lab(String),
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
    pub policies: Vec<Policy>,
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
        let jobs = JobRunner::new(
            store.clone(),
            lab.clone(),
            sequences.clone(),
            policies.clone(),
            settings.clone(),
            forge.is_some(),
        );
        let gate = Gate {
            store,
            settings,
            sequences,
            lab: lab.clone(),
            progress,
            forge: forge.clone(),
        };
        Ok(Service {
            config,
            policies,
            lab,
            jobs,
            gate: Arc::new(gate),
            mailer,
            mail_retry_base: MAIL_RETRY_BASE,
            forge,
            report_retry_base: REPORT_RETRY_BASE,
            reconcile_interval: RECONCILE_INTERVAL,
            reports_wake: Arc::new(Notify::new()),
        })
    }

    pub fn store(&self) -> &Store {
        &self.gate.store
    }

    /// One pass over every policy, in order.
    pub async fn gate_once(&self) -> Result<Vec<(String, BranchOutcome)>, ServiceError> {
        let mut out = Vec::new();
        for policy in &self.policies {
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
        for policy in self.policies.iter().filter(|p| p.mailing_list.is_some()) {
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
        for policy in &self.policies {
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
        let mut wakers = Wakers::default();
        let mail_wake = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        let mut loops = Vec::new();
        for policy in self.policies.clone() {
            let wake = wakers.add(&policy.name, &policy.staging);
            loops.push((policy, wake));
        }
        let state = self.app_state(wakers);
        for (policy, wake) in loops {
            let this = self.clone();
            let mail_wake = mail_wake.clone();
            tasks.spawn(async move {
                loop {
                    match this.gate.pass(&policy).await {
                        Ok(outcome) => {
                            tracing::debug!("{}: pass done: {}", policy.name, describe(&outcome))
                        }
                        // Only the store can fail a pass; it may come back, so keep going.
                        Err(e) => {
                            tracing::error!(policy = %policy.name, error = %e, "gate pass failed")
                        }
                    }
                    mail_wake.notify_one();
                    this.reports_wake.notify_one();
                    tokio::select! {
                        _ = tokio::time::sleep(this.config.poll_interval) => {}
                        _ = wake.notified() => {}
                    }
                }
            });
        }
        for policy in self.policies.clone() {
            if policy.mailing_list.is_some() {
                tasks.spawn(self.clone().watch_list(policy, mail_wake.clone()));
            }
        }
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
        tasks.spawn(async move { this.watch_hosts_file().await });
        let this = self.clone();
        tasks.spawn(async move { this.reload_on_sighup().await });
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!("serving on http://{address}");
        let listener = web::connection::Listener::new(listener, self.config.http);
        let app = web::router(state).into_make_service_with_connect_info::<web::connection::Peer>();
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
    async fn watch_list(self: Arc<Self>, policy: Policy, mail_wake: Arc<Notify>) {
        // Owned here: when the service stops and this task is dropped, so are the flights'.
        let mut driving: JoinSet<i64> = JoinSet::new();
        let mut running = std::collections::HashSet::new();
        loop {
            match self.list_pass(&policy).await {
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
            let flights = match self.store().upsert_branch(&policy).await {
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
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// What the web side serves from.
    pub fn app_state(&self, wakers: Wakers) -> AppState {
        AppState {
            store: self.store().clone(),
            wakers: Arc::new(wakers),
            lab: self.lab.clone(),
            jobs: self.jobs.clone(),
            api_token: self.config.api_token.clone(),
            github_secret: self.config.github_secret.clone(),
            policies: Arc::new(self.policies.clone()),
            reports_to_github: self.forge.is_some(),
            reports_wake: self.reports_wake.clone(),
        }
    }

    /// Reloads `hosts.toml` (SIGHUP); a file with a mistake is refused and the lab stays as
    /// it was.
    pub fn reload_hosts(&self) -> Result<(), ServiceError> {
        let inventory = Inventory::load(&self.config.hosts_file)?;
        let errors = check::lab_errors(&inventory, &self.policies, &self.gate.sequences);
        if !errors.is_empty() {
            return Err(FileErrors(errors).into());
        }
        tracing::info!(
            "lab reloaded from {}: {} host(s)",
            inventory.file.display(),
            inventory.hosts.len()
        );
        self.lab.replace_inventory(inventory);
        Ok(())
    }

    /// Reloads the inventory on SIGHUP, as daemons do.
    async fn reload_on_sighup(&self) {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Err(e) = self.reload_hosts() {
                tracing::error!("SIGHUP: keeping the old lab, as the hosts file is wrong: {e}");
            }
        }
    }

    /// Reloads the inventory when its file changes.
    async fn watch_hosts_file(&self) {
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut seen = modified(&self.config.hosts_file);
        loop {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let now = modified(&self.config.hosts_file);
            if now != seen {
                seen = now;
                if let Err(e) = self.reload_hosts() {
                    tracing::error!(
                        "the hosts file changed but is wrong, so the old lab stays: {e}"
                    );
                }
            }
        }
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
