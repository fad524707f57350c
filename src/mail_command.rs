//! `pushgate mail ...`: mailing-list series, offline from mbox files or into the store.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use pushgate::config::Config;
use pushgate::mail::ingest::{self, Ingested};
use pushgate::mail::pass;
use pushgate::mail::{self, Mail, RevisionSummary};
use pushgate::store::Store;

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
    /// One series pass for every policy with a `[mailing_list]`: apply each new complete
    /// revision onto its base, answer in the thread when it does not apply, say what is
    /// missing after the wait, drop replaced revisions. Prints what it did.
    Check {
        /// The service configuration (store, policies, mirrors, sender).
        #[arg(long)]
        config: Option<PathBuf>,
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
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(
    command: MailCommand,
    load_config: impl Fn(Option<&std::path::Path>) -> Result<Config>,
) -> Result<()> {
    match command {
        MailCommand::Series { mboxes, json } => series(&mboxes, json),
        MailCommand::Check { config, json } => {
            let config = load_config(config.as_deref())?;
            let (policies, _) = config.load_policies()?;
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            let settings = pass::PassSettings {
                mirrors_dir: config.mirrors_dir(),
                from: config.mail_from.clone(),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let mut all = Vec::new();
            for policy in &policies {
                let Some(list) = &policy.mailing_list else {
                    continue;
                };
                let report = pass::series_pass(&store, policy, list, &settings, now)
                    .await
                    .with_context(|| format!("policy {}: list {}", policy.name, list.name))?;
                for (root, said) in report.done {
                    if !json {
                        println!("{}: <{root}> {said}", list.name);
                    }
                    all.push(serde_json::json!({"list": list.name, "root": root, "done": said}));
                }
            }
            store.close().await;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else if all.is_empty() {
                println!("nothing new");
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
            let config = load_config(config.as_deref())?;
            let store = Store::open(&config.database_url)
                .await
                .context("opening the store")?;
            let mut done = Ingested::default();
            if let Some(inbox) = &inbox {
                let got = if inbox.starts_with("http://") || inbox.starts_with("https://") {
                    let cache = config.state_dir.join("inboxes").join(cache_name(inbox));
                    ingest::ingest_remote_inbox(&store, &list, inbox, &cache).await
                } else {
                    ingest::ingest_inbox(&store, &list, std::path::Path::new(inbox)).await
                };
                done.absorb(got.with_context(|| format!("reading the inbox {inbox}"))?);
            }
            if let Some(dir) = &maildir {
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
                done.absorb(ingest::ingest_mbox(&store, &list, &name, data).await?);
            }
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

/// A directory name for a remote inbox's mirror.
fn cache_name(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
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
    let revisions = mail::assemble(&mails);
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
