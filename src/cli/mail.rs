//! `pushgate mail ...`: mailing-list series, offline from mbox files or into the store.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use pushgate::gate::LogProgress;
use pushgate::intake::mail::ingest::{self, Ingested};
use pushgate::intake::mail::{self, Mail};
use pushgate::series::{assemble, RevisionSummary};
use pushgate::service::Service;
use pushgate::store::Store;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum MailCommand {
    /// Assemble patch series from mbox files and print them: version, cover letter, patches
    /// in order, what is missing, the base commit and the trailers collected from replies.
    Series {
        /// mbox files (`-` reads standard input).
        #[arg(required = true)]
        mboxes: Vec<PathBuf>,
        /// Print a JSON array, one object per series revision.
        #[arg(long)]
        json: bool,
    },
    /// One pass over every policy's `[mailing_list]`, for cron: read its configured source,
    /// apply each new complete revision onto its base and run its flight to the end (the
    /// culprit finder names the patch that broke a test), answer in the thread, say what is
    /// missing after the wait, drop replaced revisions (cancelling their flights), then send
    /// the mail. Prints what it did. Not while `serve` runs on the same store.
    Check {
        /// The service configuration (store, policies, mirrors, sender).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Keep a list's mail in the store, once per Message-ID: from a public-inbox archive (a
    /// directory, or the URL of public-inbox-httpd or lore, read incrementally), a Maildir,
    /// mbox files, or standard input (an MDA pipe). Prints what was read and what was new.
    Ingest {
        /// The list the mail belongs to (its series are assembled per list).
        #[arg(long)]
        list: String,
        /// A public-inbox archive: a directory (v2 with git/N.git, or a v1 repository) or an
        /// http(s) URL, mirrored under the state directory.
        #[arg(long, conflicts_with = "maildir")]
        inbox: Option<String>,
        /// A Maildir (its new/ and cur/).
        #[arg(long)]
        maildir: Option<PathBuf>,
        /// mbox files; with no source given, one mbox (or one message) on standard input.
        mboxes: Vec<PathBuf>,
        /// The service configuration (for the store).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: MailCommand) -> Result<()> {
    match command {
        MailCommand::Series { mboxes, json } => series(&mboxes, json),
        MailCommand::Check { config, json } => {
            let config = super::load_config(config.as_deref())?;
            let service = Service::open(config, Arc::new(LogProgress)).await?;
            let lines = service.series_once().await?;
            let mail = service.deliver_mail().await?;
            service.store().close().await;
            if json {
                let all: Vec<_> = lines
                    .iter()
                    .map(|(policy, done)| serde_json::json!({"policy": policy, "done": done}))
                    .collect();
                println!("{}", serde_json::to_string(&all)?);
            } else if lines.is_empty() {
                println!("nothing new");
            } else {
                for (policy, done) in &lines {
                    println!("{policy}: {done}");
                }
            }
            if mail.failed > 0 {
                eprintln!(
                    "{} mail could not be sent yet; it stays in the outbox",
                    mail.failed
                );
            }
            Ok(())
        }
        MailCommand::Ingest {
            list,
            inbox,
            maildir,
            mboxes,
            config,
            json,
        } => {
            let config = super::load_config(config.as_deref())?;
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            let mut done = Ingested::default();
            let progress = super::progress::Progress::new();
            if let Some(inbox) = &inbox {
                progress.now(&format!("reading the inbox {inbox}"));
                let got =
                    ingest::ingest_any_inbox(&store, &list, inbox, &config.inboxes_dir()).await;
                done.absorb(got.with_context(|| format!("reading the inbox {inbox}"))?);
            }
            if let Some(dir) = &maildir {
                progress.now(&format!("reading the Maildir {}", dir.display()));
                done.absorb(ingest::ingest_maildir(&store, &list, dir).await?);
            }
            let stdin = inbox.is_none() && maildir.is_none() && mboxes.is_empty();
            let inputs = if stdin {
                vec![PathBuf::from("-")]
            } else {
                mboxes
            };
            for path in &inputs {
                let data = read_input(path)?;
                let name = if stdin {
                    "stdin".to_string()
                } else {
                    path.display().to_string()
                };
                progress.now(&format!("reading {name}"));
                done.absorb(ingest::ingest_mbox(&store, &list, &name, data).await?);
            }
            progress.finish();
            store.close().await;
            for e in &done.unreadable {
                eprintln!("{e}; left out");
            }
            if json {
                println!("{}", serde_json::to_string(&done)?);
            } else {
                println!(
                    "{list}: read {} mail(s), {} new, {} unreadable",
                    done.read,
                    done.added,
                    done.unreadable.len()
                );
            }
            Ok(())
        }
    }
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("reading the mbox from standard input")?;
        Ok(data)
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn series(paths: &[PathBuf], json: bool) -> Result<()> {
    let mut mails: Vec<Mail> = Vec::new();
    for path in paths {
        let data = read_input(path)?;
        let (parsed, errors) = mail::parse_mbox(&data);
        for (n, e) in errors {
            eprintln!("{}: message {n}: {e}; left out", path.display());
        }
        mails.extend(parsed);
    }
    let revisions = assemble(&mails);
    let summaries: Vec<RevisionSummary> = revisions
        .iter()
        .map(|r| RevisionSummary::new(r, &mails))
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&summaries)?);
        return Ok(());
    }
    if summaries.is_empty() {
        println!("no patch series in {} mail(s)", mails.len());
    }
    for (s, r) in summaries.iter().zip(&revisions) {
        let state = if s.complete {
            "complete".to_string()
        } else {
            let missing: Vec<String> = s
                .missing
                .iter()
                .map(|n| format!("{n}/{}", r.total))
                .collect();
            format!("missing {}", missing.join(", "))
        };
        println!("v{} from {} ({state}) <{}>", s.version, s.sender, s.root);
        if let Some(cover) = &s.cover {
            println!("  cover: {cover}");
        }
        let mut listed = s.patches.iter();
        for (n, (slot, trailers)) in r.patches.iter().zip(&s.trailers).enumerate() {
            match slot {
                Some(_) => println!("  {}", listed.next().map_or("", String::as_str)),
                None => println!("  {}/{}: missing", n + 1, r.total),
            }
            for t in trailers {
                println!("      + {t}");
            }
        }
        if let Some(base) = &s.base_commit {
            println!("  base-commit: {base}");
        }
        if let Some(of) = &s.rerolls {
            println!("  rerolls part of <{of}>");
        }
        if let Some(newer) = &s.superseded_by {
            println!("  superseded by <{newer}>");
        }
    }
    Ok(())
}
