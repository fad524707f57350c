//! Delivering the outbox. A mail leaves the store's outbox only once a transport has taken it,
//! so an SMTP outage or a crash delays mail but loses none.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::store::{MailRow, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("SMTP: {0}")]
    Smtp(String),
    #[error("writing {path}: {message}")]
    Folder { path: PathBuf, message: String },
    #[error("bad address in mail {message_id}: {message}")]
    Address { message_id: String, message: String },
}

/// Hands one mail to the world; returns where it went.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn deliver(&self, mail: &MailRow, from: &Address) -> Result<String, MailError>;
}

fn envelope(mail: &MailRow, from: &Address) -> Result<Envelope, MailError> {
    let bad = |message: String| MailError::Address {
        message_id: mail.message_id.clone(),
        message,
    };
    let to = mail
        .recipients
        .iter()
        .map(|r| r.parse::<Address>().map_err(|e| bad(format!("{r}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from.clone()), to).map_err(|e| bad(e.to_string()))
}

/// Sends over SMTP with lettre.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    url: String,
}

impl SmtpMailer {
    pub fn new(url: &str) -> Result<SmtpMailer, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Smtp(format!("{url}: {e}")))?
            .timeout(Some(Duration::from_secs(30)))
            .build();
        Ok(SmtpMailer {
            transport,
            url: url.to_string(),
        })
    }
}

impl SmtpMailer {
    /// Connects and greets the server (EHLO, and STARTTLS when the URL asks), sending no mail:
    /// what `pushgate check` asks.
    pub async fn probe(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Smtp(format!(
                "{}: the server did not answer NOOP",
                self.url
            ))),
            Err(e) => Err(MailError::Smtp(format!("{}: {e}", self.url))),
        }
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn deliver(&self, mail: &MailRow, from: &Address) -> Result<String, MailError> {
        let envelope = envelope(mail, from)?;
        self.transport
            .send_raw(&envelope, mail.message.as_bytes())
            .await
            .map_err(|e| MailError::Smtp(e.to_string()))?;
        Ok(self.url.clone())
    }
}

/// Writes each mail as an `.eml` file, for machines without a mail server.
pub struct FolderMailer {
    pub dir: PathBuf,
}

#[async_trait]
impl Mailer for FolderMailer {
    async fn deliver(&self, mail: &MailRow, from: &Address) -> Result<String, MailError> {
        envelope(mail, from)?;
        let path = self.dir.join(format!("{:05}-{}.eml", mail.id, mail.kind));
        let fail = |e: std::io::Error| MailError::Folder {
            path: path.clone(),
            message: e.to_string(),
        };
        tokio::fs::create_dir_all(&self.dir).await.map_err(fail)?;
        // Written aside and renamed, so a reader never sees half a mail.
        let partial = path.with_extension("eml.partial");
        tokio::fs::write(&partial, mail.message.as_bytes())
            .await
            .map_err(fail)?;
        tokio::fs::rename(&partial, &path).await.map_err(fail)?;
        Ok(path.display().to_string())
    }
}

/// What one delivery pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub sent: Vec<String>,
    pub failed: usize,
}

/// Delivers every mail that is due. A failed mail is tried again after `retry_base`, doubling
/// with each attempt up to an hour.
pub async fn deliver_due(
    store: &Store,
    mailer: &dyn Mailer,
    from: &str,
    retry_base: Duration,
) -> Result<DeliveryReport, StoreError> {
    let from: Address = match from.parse::<lettre::message::Mailbox>() {
        Ok(m) => m.email,
        Err(e) => {
            tracing::error!(%from, error = %e, "the sender address is not valid; no mail sent");
            return Ok(DeliveryReport::default());
        }
    };
    let mut report = DeliveryReport::default();
    for mail in store.due_mail(100).await? {
        match mailer.deliver(&mail, &from).await {
            Ok(place) => {
                tracing::info!(message_id = %mail.message_id, "mail sent to {} ({place})", mail.recipients.join(", "));
                store.mark_mail_sent(mail.id, &place).await?;
                report.sent.push(place);
            }
            Err(e) => {
                let shift = u32::try_from(mail.attempts.clamp(0, 16)).unwrap_or(16);
                let delay = retry_base
                    .saturating_mul(1 << shift)
                    .min(Duration::from_secs(3600));
                tracing::warn!(message_id = %mail.message_id, "mail not sent, trying again in {}: {e}", humantime::format_duration(delay));
                store
                    .mark_mail_failed(mail.id, &e.to_string(), delay.as_millis() as i64)
                    .await?;
                report.failed += 1;
            }
        }
    }
    Ok(report)
}
