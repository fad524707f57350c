//! Telling people what happened: every mail pushgate sends, composed from `templates/`, and
//! the transports that take it from the outbox (SMTP, a folder of .eml files).

mod gate_mail;
mod series_reply;
mod transport;

use crate::templates::TemplateError;

pub use gate_mail::{
    compose, compose_notice, compose_pause, failing_step_at, finder_lines, FailingStep,
    FlightFacts, Notice, PauseFacts,
};
pub use series_reply::{compose_series_reply, SeriesOutcome, SeriesReply};
pub use transport::{deliver_due, DeliveryReport, FolderMailer, MailError, Mailer, SmtpMailer};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot build the mail: {0}")]
    Mail(String),
}
