//! The mail that tells the submitter a run is paused on its host (pause-on-fail).

use std::path::Path;

use lettre::message::{header::ContentType, Mailbox, Message};

use super::envelope::seal;
use super::gate_mail::{log_tail, LOG_TAIL_LINES};
use super::ReportError;
use crate::repo::short;
use crate::store::NewMail;
use crate::templates::render;

/// What the mail about a paused run says.
pub struct PauseFacts<'a> {
    pub from: &'a str,
    /// The submitter (the tested commit's author) and the policy's list.
    pub to: Vec<String>,
    pub run_id: i64,
    pub testcase: &'a str,
    pub sha: &'a str,
    /// The policy's subject prefix (`[xen staging]`), or `[pushgate job N]`.
    pub subject_prefix: &'a str,
    pub host: &'a str,
    pub log: &'a Path,
    /// When the run goes on by itself, as text; `None` when it waits until told.
    pub resumes: Option<String>,
    pub public_url: &'a str,
}

/// The mail that tells the submitter a run is paused on its host for them to look at.
pub fn compose_pause(f: &PauseFacts) -> Result<Option<NewMail>, ReportError> {
    let to: Vec<Mailbox> = f.to.iter().filter_map(|a| a.parse().ok()).collect();
    if to.is_empty() {
        return Ok(None);
    }
    let from: Mailbox = f
        .from
        .parse()
        .map_err(|e| ReportError::Mail(format!("sender `{}`: {e}", f.from)))?;
    let subject = format!(
        "{} paused: {} failed on {} ({})",
        f.subject_prefix,
        f.testcase,
        short(f.sha),
        f.host
    );
    let body = render(
        "pause.txt",
        minijinja::context! {
            run_id => f.run_id,
            testcase => f.testcase,
            testcase_word => shlex::try_quote(f.testcase).unwrap_or_default(),
            sha => f.sha,
            host => f.host,
            resumes => f.resumes,
            public_url => f.public_url,
            log_tail => log_tail(f.log, LOG_TAIL_LINES),
        },
    )?;
    let message_id = format!(
        "<pushgate.run{}.pause.{}@{}>",
        f.run_id,
        f.testcase
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        from.email.domain()
    );
    let mut builder = Message::builder()
        .from(from)
        .subject(subject.clone())
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    for m in &to {
        builder = builder.to(m.clone());
    }
    seal(builder, body, "pause", message_id, &subject).map(Some)
}
