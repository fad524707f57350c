//! The envelope every mail gets: sender, recipients, a Message-ID that is stable for the same
//! mail so that composing it twice sends it once, and the outbox row.

use lettre::message::{header::ContentType, Mailbox, Message};

use super::ReportError;
use crate::store::NewMail;

/// A short plain-text mail that is not about a flight: a host out of service, a job's result.
pub(super) struct Notice<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub subject: String,
    pub body: String,
    /// The outbox kind (`host`, `job`), also part of the Message-ID.
    pub kind: &'a str,
    /// Makes the Message-ID unique and stable: the same notice composed twice is sent once.
    pub key: String,
}

/// Composes a notice; `None` when nobody valid is there to read it.
pub(super) fn compose_notice(n: &Notice) -> Result<Option<NewMail>, ReportError> {
    let to: Vec<Mailbox> = n.to.iter().filter_map(|a| a.parse().ok()).collect();
    if to.is_empty() {
        return Ok(None);
    }
    let from: Mailbox = n
        .from
        .parse()
        .map_err(|e| ReportError::Mail(format!("sender `{}`: {e}", n.from)))?;
    let message_id = format!(
        "<pushgate.{}.{}@{}>",
        n.kind,
        n.key.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        from.email.domain()
    );
    let mut builder = Message::builder()
        .from(from)
        .subject(n.subject.clone())
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    for m in &to {
        builder = builder.to(m.clone());
    }
    seal(builder, n.body.clone(), n.kind, message_id, &n.subject).map(Some)
}

/// Puts the body in and makes the outbox row, with the envelope's recipients.
pub(super) fn seal(
    builder: lettre::message::MessageBuilder,
    body: String,
    kind: &str,
    message_id: String,
    subject: &str,
) -> Result<NewMail, ReportError> {
    let message = builder
        .body(body)
        .map_err(|e| ReportError::Mail(e.to_string()))?;
    let recipients = message
        .envelope()
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect();
    Ok(NewMail {
        kind: kind.to_string(),
        message_id,
        subject: subject.to_string(),
        recipients,
        message: String::from_utf8_lossy(&message.formatted()).into_owned(),
    })
}
