//! The command line: one file per subcommand, each with its arguments and what it prints. The
//! library does the work; these files only read arguments, call it and say what happened.

pub mod bench;
pub mod bisect;
pub mod check;
pub mod completions;
pub mod demo;
pub mod flights;
pub mod gate;
pub mod hosts;
pub mod init;
pub mod jobs;
pub mod logs;
pub mod mail;
pub mod outbox;
pub mod progress;
pub mod sequence;
pub mod series;
pub mod serve;
pub mod status;
pub mod table;

use std::path::Path;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use pushgate::config::Config;

#[derive(Parser)]
#[command(
    name = "pushgate",
    version,
    about = "A push gate: test what arrives on staging, fast-forward master to what passed, find and mail the culprit."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub logs: logs::LogArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the gate loop for every policy, with the status page and the git hook endpoint.
    Serve(serve::Args),
    /// Write a configuration to start from: pushgate.toml, a policy for a repository, a first
    /// sequence and the repository's post-receive hook.
    Init(init::Args),
    /// Check a configuration: every file `serve` would load, every mistake at once (file,
    /// line, field), then whether each repository, the database, the mail server, each host
    /// and GitHub answer. Changes nothing. Exits 0 when all is well, 1 otherwise.
    Check(check::Args),
    /// Each policy's branch: state, heads, the flight running now, the last decision.
    Status(status::Args),
    /// The newest flights of every policy, or of one: range, verdict, culprit, push.
    Flights(flights::Args),
    /// Mail and GitHub reports waiting to be delivered, and why they wait.
    Outbox(outbox::Args),
    /// Run the gate without the web server.
    Gate(gate::Args),
    /// Run the whole loop on a sample repository with the shipped policy and sequence.
    Demo(demo::Args),
    /// Find the commit that broke CMD, flake-aware and on several worktrees at once.
    ///
    /// Exit codes of CMD are read as `git bisect run` reads them: 0 good, 125 untestable,
    /// 1-127 bad, 128 or more aborts. Exits 0 when a culprit is named, 3 when the answer is
    /// ambiguous or inconsistent, 2 on misuse.
    Bisect(bisect::Args),
    /// Sequences: see what a file means before a gate runs it.
    Sequence {
        #[command(subcommand)]
        what: sequence::SequenceCommand,
    },
    /// The job server's client: submit runs, follow them, borrow hosts (talks to `serve`).
    Jobs {
        #[command(subcommand)]
        what: jobs::JobsCommand,
        #[command(flatten)]
        server: jobs::ServerArgs,
    },
    /// The lab: check the hosts file, clean up after crashed runs, put a host back in service.
    Hosts {
        #[command(subcommand)]
        what: hosts::HostsCommand,
    },
    /// Mailing-list patch series.
    Mail {
        #[command(subcommand)]
        what: mail::MailCommand,
    },
    /// Mailed series as tested: list them, queue one that passed onto staging.
    Series {
        #[command(subcommand)]
        what: series::SeriesCommand,
    },
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Measure pushgate's own overhead.
    Bench {
        #[command(subcommand)]
        what: bench::Command,
    },
}

/// Keeps memory the process frees for its next use instead of giving it back to the system at
/// once. A culprit search's decision at N = 4096 allocates and frees a few megabytes of
/// per-commit arrays; with glibc's defaults (blocks over 128 KiB mapped and unmapped, the heap's
/// free top trimmed) every decision faulted fresh zeroed pages in again, about a quarter of its
/// time. The process now keeps up to 64 MiB it does not use.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt sets two of the allocator's thresholds; it touches no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// The configuration at `path`, else `./pushgate.toml` if there is one, else the defaults.
/// Its file size limit holds for every file read from then on (the config itself is read
/// under the default one). The path is made absolute first, so that every path found from it
/// (policies, their repositories) is absolute in mail, on pages and in the API.
pub fn load_config(path: Option<&Path>) -> Result<Config> {
    let (path, cwd) = config_path(path)?;
    let config = Config::load(path.as_deref(), &cwd)?;
    pushgate::file_error::set_max_file_size(config.max_file_size);
    Ok(config)
}

/// `--config` for commands that only read the store.
#[derive(clap::Args)]
pub struct ConfigArg {
    /// The service configuration [default: ./pushgate.toml if present].
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

/// The store the configuration names, to read it; `None` (having said so) when an SQLite store
/// was never made, so that a look at it does not make one.
pub async fn open_store_to_read(args: &ConfigArg) -> Result<Option<pushgate::store::Store>> {
    let config = load_config(args.config.as_deref())?;
    if let Some(file) = config.database_url.strip_prefix("sqlite://") {
        let file = file.split('?').next().unwrap_or("");
        if !file.is_empty() && !Path::new(file).exists() {
            println!("nothing yet: there is no store at {file} (serve or gate has not run)");
            return Ok(None);
        }
    }
    Ok(Some(
        pushgate::store::Store::open(&config.database_url).await?,
    ))
}

/// The config file to read (absolute), if any, and the current directory.
pub fn config_path(
    path: Option<&Path>,
) -> Result<(Option<std::path::PathBuf>, std::path::PathBuf)> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let default = cwd.join("pushgate.toml");
    let path = match path {
        Some(p) => Some(pushgate::config::lexical_join(&cwd, p)),
        None => default.exists().then_some(default),
    };
    Ok((path, cwd))
}

/// For commands that print listings: a reader that goes away (`pushgate flights | head`) ends
/// the process quietly, as it ends `ls`, instead of a panic on the failed write. Not for the
/// service, whose sockets must not kill it.
pub fn end_quietly_when_output_closes() {
    // SAFETY: sets SIGPIPE's disposition back to the default at start, before any thread
    // writes; touches no memory.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag and positional of every command says what it is, so that `--help` is a
    /// manual and not a list of names.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(format!("{path} {} (the command)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "pushgate", &mut missing);
        assert!(missing.is_empty(), "no help text:\n{}", missing.join("\n"));
    }
}
