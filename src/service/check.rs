//! What `pushgate check` asks, and `serve` at its start: every file the service would load
//! (sequences with their bindings, policies, the hosts file, and whether the lab can run what
//! the policies ask), every mistake at once; then what it can reach without changing anything
//! (each repository and its branches, the database, the mail server, each host's SSH with its
//! pinned key, GitHub's API with the login).

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::config::policy::Policy;
use crate::config::{Config, MailTransport};
use crate::file_error::{FileError, FileErrors};
use crate::forge::{Forge, GitHub};
use crate::hosts::inventory::ProvisionerSpec;
use crate::hosts::{Connection, Inventory};
use crate::notify::SmtpMailer;
use crate::repo::Credentials;
use crate::sequence::Sequences;
use crate::store::Store;

/// The files a service runs on, all of them sound.
pub struct Loaded {
    pub policies: Vec<Policy>,
    pub sequences: Sequences,
    pub inventory: Inventory,
}

/// Loads every file the config names and checks that the lab can run what the policies ask;
/// every error of every file at once.
pub fn load_files(config: &Config) -> Result<Loaded, FileErrors> {
    let (sequences, mut errors) =
        crate::sequence::load_dir_reporting(&config.sequences_dir, &config.include_roots);
    let (policies, more) =
        crate::config::policy::load_dir_reporting(&config.policies_dir, &sequences);
    errors.0.extend(more.0);
    let inventory = errors.take(Inventory::load(&config.hosts_file));
    if let Some(inventory) = &inventory {
        errors
            .0
            .extend(lab_errors(inventory, &policies, &sequences));
    }
    match inventory {
        Some(inventory) if errors.is_empty() => Ok(Loaded {
            policies,
            sequences,
            inventory,
        }),
        _ => Err(errors),
    }
}

/// A sequence of a policy that no host of the lab can run, said against the policy's file.
pub(crate) fn lab_errors(
    inventory: &Inventory,
    policies: &[Policy],
    sequences: &Sequences,
) -> Vec<FileError> {
    let mut errors = Vec::new();
    let error = |policy: &Policy, message: String| FileError {
        file: policy.file.clone(),
        line: 0,
        column: 0,
        field: "sequences".into(),
        message,
    };
    for policy in policies {
        for name in &policy.sequences {
            let Some(seq) = sequences.get(name) else {
                continue;
            };
            let needs = match crate::run::needs_of(seq, &policy.needs) {
                Ok(needs) => needs,
                Err(m) => {
                    errors.push(error(policy, m));
                    continue;
                }
            };
            if !crate::hosts::scheduler::satisfiable(&inventory.hosts, &needs) {
                errors.push(error(
                    policy,
                    format!(
                        "sequence `{name}` needs {needs}, and no host in {} has that",
                        inventory.file.display()
                    ),
                ));
            }
            if policy.mailing_list.is_none() {
                continue;
            }
            match crate::run::series_needs(seq, policy) {
                Err(m) => errors.push(error(policy, m)),
                Ok(needs) if !crate::hosts::scheduler::satisfiable(&inventory.hosts, &needs) => {
                    errors.push(error(
                        policy,
                        format!(
                            "series from its mailing list run `{name}` on a host with {needs}, \
                             and {} has none; add a test host, or set \
                             `[mailing_list] local_hosts = true` to run them on this machine",
                            inventory.file.display()
                        ),
                    ))
                }
                Ok(_) => {}
            }
        }
    }
    errors
}

/// One thing the service needs to reach, and what happened when it was asked.
#[derive(Debug)]
pub struct Probe {
    /// What was asked: `repository /srv/xen.git (policy xen)`, `database ...`, `host dom0-1`.
    pub what: String,
    /// What it answered, or why it could not be reached.
    pub outcome: Result<String, String>,
}

/// How long each question may take: a host that does not answer is unreachable, not a hang.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks every service the config and files name whether it answers, all at once, changing
/// nothing anywhere: no fetch, no mail, no file made.
pub async fn probe(config: &Config, policies: &[Policy], inventory: &Inventory) -> Vec<Probe> {
    let forge = config.github.as_ref().map(|g| GitHub::new(g.clone()));
    let mut asks: Vec<BoxFuture<'_, Probe>> = Vec::new();
    asks.push(ask("database".into(), async move {
        Store::probe(&config.database_url)
            .await
            .map_err(|e| e.to_string())
    }));
    asks.push(ask("state directory".into(), async move {
        crate::store::disk::could_write(&config.state_dir)
            .map(|state| format!("{} ({state})", config.state_dir.display()))
            .map_err(|e| e.to_string())
    }));
    asks.push(ask("mail".into(), async move {
        match &config.mail {
            MailTransport::Smtp(url) => {
                let mailer = SmtpMailer::new(url).map_err(|e| e.to_string())?;
                mailer.probe().await.map_err(|e| e.to_string())?;
                Ok(format!("{} answers", crate::store::redact(url)))
            }
            MailTransport::Folder(dir) => crate::store::disk::could_write(dir)
                .map(|state| format!("written to the folder {} ({state})", dir.display()))
                .map_err(|e| e.to_string()),
        }
    }));
    for policy in policies {
        let forge = forge.as_ref().and_then(|f| f.as_ref().ok());
        asks.push(ask(
            format!("repository {} (policy {})", policy.repository, policy.name),
            repository(policy, forge),
        ));
    }
    for host in &inventory.hosts {
        let target = match &host.provisioner {
            ProvisionerSpec::Local => continue,
            ProvisionerSpec::Ssh(target) => target,
            ProvisionerSpec::Xen { dom0, .. } => dom0,
        };
        asks.push(ask(
            format!("host {} ({})", host.name, host.provisioner.kind()),
            async move {
                let connection = Connection::open(target).await.map_err(|e| e.to_string())?;
                connection.close().await;
                Ok(format!("{} answers with its pinned key", target.name()))
            },
        ));
    }
    if let Some(forge) = &forge {
        asks.push(ask("GitHub".into(), github(forge, policies)));
    }
    futures_util::future::join_all(asks).await
}

/// `question`, given [`PROBE_TIMEOUT`] to answer.
fn ask<'a>(
    what: String,
    question: impl std::future::Future<Output = Result<String, String>> + Send + 'a,
) -> BoxFuture<'a, Probe> {
    async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, question).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
        };
        Probe { what, outcome }
    }
    .boxed()
}

/// The repository's branches as it advertises them: the target must exist; a staging branch
/// that does not exist yet is said (nothing is tested until someone pushes to it).
async fn repository(policy: &Policy, forge: Option<&GitHub>) -> Result<String, String> {
    let credentials = match (forge, &policy.github) {
        (Some(forge), Some(_)) => forge
            .git_credentials(&policy.repository)
            .await
            .map_err(|e| format!("cannot get git credentials from GitHub: {e}"))?,
        _ => Credentials::Anonymous,
    };
    let url = policy.repository.clone();
    let heads = tokio::task::spawn_blocking(move || crate::repo::remote_heads(&url, &credentials))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let Some(target) = heads.get(&policy.target) else {
        return Err(format!(
            "it has no branch `{}` (the target, which pushgate fast-forwards)",
            policy.target
        ));
    };
    let staging = match heads.get(&policy.staging) {
        Some(sha) => format!(
            "{} at {}",
            policy.staging,
            crate::repo::short(&sha.to_string())
        ),
        None => format!("{} not pushed yet", policy.staging),
    };
    Ok(format!(
        "{} at {}, {staging}",
        policy.target,
        crate::repo::short(&target.to_string())
    ))
}

/// GitHub answers with the login: each policy's target branch is read through the API.
async fn github(forge: &Result<GitHub, String>, policies: &[Policy]) -> Result<String, String> {
    let forge = forge.as_ref().map_err(|e| format!("[github]: {e}"))?;
    let mut seen = Vec::new();
    for policy in policies {
        let Some(name) = &policy.github else { continue };
        match forge.branch_head(name, &policy.target).await {
            Ok(Some(_)) => seen.push(name.clone()),
            Ok(None) => return Err(format!("{name} has no branch `{}`", policy.target)),
            Err(e) => return Err(format!("{name}: {e}")),
        }
    }
    Ok(if seen.is_empty() {
        "logged in; no policy names a GitHub repository".into()
    } else {
        format!("logged in; reads {}", seen.join(", "))
    })
}
