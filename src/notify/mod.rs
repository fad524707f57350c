//! Telling people what happened: every mail pushgate sends, composed from `templates/`, and
//! the transports that take it from the outbox (SMTP, a folder of .eml files).

mod envelope;
mod force_mail;
mod gate_mail;
mod host_mail;
mod job_mail;
mod pause_mail;
mod series_reply;
mod transport;

use crate::templates::TemplateError;

pub use force_mail::compose_force;
pub use gate_mail::{
    blamed_before, compose, failing_step_at, finder_lines, log_tail, FailingStep, FlightFacts,
};
pub use host_mail::{compose_out_of_service, HostMail};
pub use job_mail::{compose_job_result, JobFacts};
pub use pause_mail::{compose_pause, PauseFacts};
pub use series_reply::{compose_series_reply, SeriesOutcome, SeriesReply};
pub use transport::{deliver_due, DeliveryReport, FolderMailer, MailError, Mailer, SmtpMailer};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot build the mail: {0}")]
    Mail(String),
}

#[cfg(test)]
mod tests;
