//! `pushgate jobs ...`: the job client, against `serve`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use pushgate::hosts::HostState;
use pushgate::jobs::Submission;
use pushgate::store::JobRow;
use pushgate::web::client::ApiClient;
use pushgate::web::jobs::{Borrowed, Done, Submitted};
use pushgate::web::overrides::OverrideDone;

use pushgate::web::url_word;

use super::table::{when, Table};

/// Where the job server is and how to get in.
#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The service configuration (for the server address and token).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The server (default: the config's public_url).
    #[arg(long, global = true, env = "PUSHGATE_SERVER")]
    server: Option<String>,
    /// The API token (default: the config's [api] token).
    #[arg(long, global = true, env = "PUSHGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Queue a run of SEQUENCE; prints the job id.
    Submit {
        /// The sequence to run: a name from the sequences directory.
        sequence: String,
        /// A branch, tag or commit (default: the policy's target branch).
        #[arg(long)]
        rev: Option<String>,
        /// A repository URL or path, or a policy's name (default: the only policy's).
        #[arg(long)]
        repo: Option<String>,
        /// Run on this host of the lab.
        #[arg(long)]
        host: Option<String>,
        /// Stop after these failing testcases (TC,... or ALL) and keep the host as it is.
        #[arg(long, value_name = "TC|ALL")]
        pause_on_fail: Option<String>,
        /// Mail the result (and any pause) here.
        #[arg(long)]
        email: Option<String>,
    },
    /// The newest jobs.
    List {
        /// Only yours.
        #[arg(long)]
        mine: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A job's state, its run and steps.
    Status {
        /// The job's number, as `jobs submit` and `jobs list` show it.
        id: i64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per-testcase progress and results; -v (the global flag) adds the end of each log.
    Showlog {
        /// The job's number, as `jobs submit` printed it.
        id: i64,
    },
    /// Stop a job (its host is cleaned up and freed).
    Cancel {
        /// The job's number, as `jobs submit` and `jobs list` show it.
        id: i64,
    },
    /// Mark a stuck job finished and free its hosts.
    Complete {
        /// The job's number, as `jobs submit` and `jobs list` show it.
        id: i64,
    },
    /// See or release the pauses of a job (or, with --run, of a gate run).
    Interact {
        /// The job's id, or the run's with --run.
        id: i64,
        /// ID is a run id (as in a gate run's pause mail).
        #[arg(long)]
        run: bool,
        /// List the testcases the run waits after.
        #[arg(long)]
        list: bool,
        /// Let the run go on after TC.
        #[arg(long = "continue", value_name = "TC")]
        continue_: Option<String>,
        /// Let the run go on after every pause.
        #[arg(long)]
        continue_all: bool,
    },
    /// Take a host out of the lab for yourself (24 hours by default; again to extend).
    Borrow {
        /// The host's name, as in hosts.toml.
        host: String,
        /// For how long, in hours [default: 24].
        #[arg(long)]
        hours: Option<f64>,
    },
    /// Give a borrowed host back.
    Return {
        /// The host's name, as in hosts.toml.
        host: String,
        /// End someone else's borrow.
        #[arg(long)]
        force: bool,
    },
    /// Every host: its state, who holds it and until when.
    Hosts {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Hold a branch: the gate plans and pushes nothing for it until `unblock`.
    Block {
        /// A policy's name, or a staging or target branch only one policy has.
        branch: String,
        /// Why: recorded, and told to the list.
        #[arg(long)]
        why: String,
    },
    /// Lift a hold.
    Unblock {
        /// A policy's name, or a staging or target branch only one policy has.
        branch: String,
        /// Why: recorded, and told to the list.
        #[arg(long, default_value = "")]
        why: String,
    },
    /// Test the staging tip again although it was decided.
    Retry {
        /// A policy's name, or a staging or target branch only one policy has.
        branch: String,
        /// Why: recorded, and told to the list.
        #[arg(long, default_value = "")]
        why: String,
    },
    /// Push a commit to the target without it passing (fast-forward only); the reason is
    /// recorded and mailed to the list.
    Force {
        /// A policy's name, or a staging or target branch only one policy has.
        branch: String,
        /// The commit (default: the staging tip).
        #[arg(long)]
        rev: Option<String>,
        /// Why: recorded, and told to the list.
        #[arg(long)]
        why: String,
    },
}

async fn override_branch(
    api: &ApiClient,
    branch: &str,
    action: &str,
    why: &str,
    rev: Option<&str>,
) -> anyhow::Result<()> {
    let done: OverrideDone = api
        .post(
            &format!("/api/branches/{}/{action}", url_word(branch)),
            &json!({ "who": me(), "why": why, "rev": rev }),
        )
        .await?;
    println!("{}", done.message);
    Ok(())
}

/// Who is asking: for `--mine`, borrows and the job's submitter.
fn me() -> String {
    std::env::var("PUSHGATE_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs one `pushgate jobs` subcommand against the server.
///
/// Long because it is a dispatch: one short arm per subcommand, each a request and what it
/// prints; a function per arm would only move the arms apart.
pub async fn run(what: JobsCommand, server: ServerArgs, verbose: bool) -> Result<()> {
    let config = super::load_config(server.config.as_deref())?;
    let address = server.server.unwrap_or(config.public_url.clone());
    let token = server.token.or(config.api_token.clone());
    if token.is_none() {
        bail!("no API token: set [api] token in pushgate.toml, or pass --token / PUSHGATE_TOKEN");
    }
    let api = ApiClient::new(&address, token)?;
    match what {
        JobsCommand::Submit {
            sequence,
            rev,
            repo,
            host,
            pause_on_fail,
            email,
        } => {
            let s = Submission {
                sequence,
                rev,
                repo,
                host,
                pause_on_fail,
                email,
                submitter: me(),
            };
            let done: Submitted = api.post("/api/jobs", &s).await?;
            println!("{}", done.id);
        }
        JobsCommand::List { mine, json } => {
            let path = if mine {
                format!("/api/jobs?submitter={}", url_word(&me()))
            } else {
                "/api/jobs".to_string()
            };
            let jobs: Vec<JobRow> = api.get(&path).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&jobs)?);
            } else {
                let mut table =
                    Table::new(&["JOB", "STATE", "SEQUENCE", "REV", "SUBMITTER", "MESSAGE"]);
                for j in &jobs {
                    table.row(vec![
                        j.id.to_string(),
                        j.state.as_str().to_string(),
                        j.sequence.clone(),
                        j.rev.clone(),
                        j.submitter.clone(),
                        j.message.clone(),
                    ]);
                }
                table.print(if mine { "no jobs of yours" } else { "no jobs" });
            }
        }
        JobsCommand::Status { id, json } => {
            let status: Value = api.get(&format!("/api/jobs/{id}")).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                let job = &status["job"];
                println!(
                    "job {id}: {} ({})",
                    job["state"].as_str().unwrap_or("?"),
                    job["message"].as_str().unwrap_or("")
                );
                for run in status["runs"].as_array().into_iter().flatten() {
                    println!(
                        "run {} on {}: {}",
                        run["run"]["id"],
                        run["run"]["host"].as_str().unwrap_or("-"),
                        run["run"]["state"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        JobsCommand::Showlog { id } => {
            let text = api
                .get_text(&format!("/api/jobs/{id}/log?verbose={verbose}"))
                .await?;
            print!("{text}");
        }
        JobsCommand::Cancel { id } => {
            let done: Done = api
                .post(&format!("/api/jobs/{id}/cancel"), &json!({}))
                .await?;
            println!("{}", done.message);
        }
        JobsCommand::Complete { id } => {
            let done: Done = api
                .post(&format!("/api/jobs/{id}/complete"), &json!({}))
                .await?;
            println!("{}", done.message);
        }
        JobsCommand::Interact {
            id,
            run,
            list,
            continue_,
            continue_all,
        } => {
            if !list && continue_.is_none() && !continue_all {
                bail!("say --list, --continue TC or --continue-all");
            }
            let kind = if run { "runs" } else { "jobs" };
            let body = json!({ "continue": continue_, "all": continue_all });
            let answer: Value = api
                .post(&format!("/api/{kind}/{id}/interact"), &body)
                .await?;
            let released = answer["released"].as_u64().unwrap_or(0);
            let paused = answer["paused"].as_array().cloned().unwrap_or_default();
            if released > 0 {
                println!(
                    "run {} goes on ({released} pause{} released)",
                    answer["run"],
                    if released == 1 { "" } else { "s" }
                );
            } else if paused.is_empty() {
                println!("{} {id} is not paused", if run { "run" } else { "job" });
            } else {
                for p in paused {
                    let resumes = p["resume_at"]
                        .as_i64()
                        .map_or("when told".to_string(), |at| format!("at {}", when(at)));
                    println!(
                        "run {} paused after {} (goes on {resumes})",
                        p["run_id"],
                        p["testcase"].as_str().unwrap_or("?")
                    );
                }
            }
        }
        JobsCommand::Block { branch, why } => {
            override_branch(&api, &branch, "block", &why, None).await?
        }
        JobsCommand::Unblock { branch, why } => {
            override_branch(&api, &branch, "unblock", &why, None).await?
        }
        JobsCommand::Retry { branch, why } => {
            override_branch(&api, &branch, "retry", &why, None).await?
        }
        JobsCommand::Force { branch, rev, why } => {
            override_branch(&api, &branch, "force", &why, rev.as_deref()).await?
        }
        JobsCommand::Borrow { host, hours } => {
            let b: Borrowed = api
                .post(
                    &format!("/api/hosts/{}/borrow", url_word(&host)),
                    &json!({ "who": me(), "hours": hours }),
                )
                .await?;
            println!("{} is yours until {}", b.host, when(b.until));
        }
        JobsCommand::Return { host, force } => {
            let done: Done = api
                .post(
                    &format!("/api/hosts/{}/return", url_word(&host)),
                    &json!({ "who": me(), "force": force }),
                )
                .await?;
            println!("{}", done.message);
        }
        JobsCommand::Hosts { json } => {
            let hosts: Vec<HostState> = api.get("/api/hosts").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hosts)?);
            } else {
                print_hosts(&hosts);
            }
        }
    }
    Ok(())
}

fn print_hosts(hosts: &[HostState]) {
    let mut table = Table::new(&["HOST", "PROVISIONER", "SLOTS", "STATE", "HELD BY"]);
    for h in hosts {
        let runs = h.leases.iter().filter(|l| l.kind != "borrow").count();
        let mut held: Vec<String> = h
            .leases
            .iter()
            .map(|l| format!("{} until {}", l.holder, when(l.expires_at)))
            .collect();
        if let Some(health) = h.health.as_ref().filter(|h| h.state == "out-of-service") {
            held.push(format!("({})", health.reason));
        }
        table.row(vec![
            h.name.clone(),
            h.provisioner.clone(),
            format!("{runs}/{}", h.slots),
            h.state.clone(),
            held.join("; "),
        ]);
    }
    table.print("no hosts");
}
