//! `pushgate outbox`: the mail and the GitHub reports that wait to be delivered, with how often
//! each was tried, when it is tried next and why the last try failed. Reads the store; needs
//! no running `serve`.

use anyhow::Result;

use pushgate::repo::short;

use super::table::{when, Table};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigArg,
}

/// At most this many of each are listed.
const LIMIT: i64 = 200;

pub async fn run(args: Args) -> Result<()> {
    let Some(store) = super::open_store_to_read(&args.config).await? else {
        return Ok(());
    };
    let mut mail = Table::new(&[
        "MAIL",
        "KIND",
        "TO",
        "SUBJECT",
        "TRIES",
        "NEXT TRY",
        "LAST ERROR",
    ]);
    for m in store.unsent_mail(LIMIT).await? {
        mail.row(vec![
            m.id.to_string(),
            m.kind.clone(),
            m.recipients.join(", "),
            m.subject.clone(),
            m.attempts.to_string(),
            when(m.next_attempt_at),
            m.last_error.clone().unwrap_or_default(),
        ]);
    }
    mail.print("no mail waits");
    println!();
    let mut reports = Table::new(&[
        "REPORT",
        "REPOSITORY",
        "KIND",
        "ON",
        "STATE",
        "TRIES",
        "NEXT TRY",
        "LAST ERROR",
    ]);
    for r in store.unsent_reports(LIMIT).await? {
        let on = match (&r.sha, r.issue) {
            (Some(sha), _) => short(sha).to_string(),
            (None, Some(issue)) => format!("#{issue}"),
            (None, None) => "-".into(),
        };
        reports.row(vec![
            r.id.to_string(),
            r.repository.clone(),
            r.kind.as_str().to_string(),
            on,
            r.state.clone(),
            r.attempts.to_string(),
            when(r.next_attempt_at),
            r.last_error.clone().unwrap_or_default(),
        ]);
    }
    reports.print("no GitHub report waits");
    Ok(())
}
