//! Mailing-list patch series: reading mails as `git am` does, assembling them into series as
//! maintainers read a list, and the sources they come from.
//!
//! Parsing and assembly are pure (no I/O) so that they can be fuzzed and tested on their own;
//! sources and the store sit around them.

pub mod inbox;
pub mod ingest;
pub mod mbox;
pub mod message;
pub mod pass;
pub mod queue;
pub mod series;
pub mod subject;
pub mod trailers;
pub mod triage;

pub use message::{Mail, Person};
pub use series::{assemble, Revision, RevisionSummary};
pub use subject::{Counter, Subject};

/// Why a mail could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MailError {
    #[error("the message is empty")]
    Empty,
    #[error("the message could not be parsed as RFC 5322")]
    Unparseable,
    #[error("the message has no From, Subject, Message-ID or Date header")]
    NoHeaders,
}

/// Parses every message of an mbox; a message that cannot be read is reported with its place
/// (1-based) and left out.
pub fn parse_mbox(data: &[u8]) -> (Vec<Mail>, Vec<(usize, MailError)>) {
    let mut mails = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in mbox::split(data).iter().enumerate() {
        match Mail::parse(raw) {
            Ok(m) => mails.push(m),
            Err(e) => errors.push((i + 1, e)),
        }
    }
    (mails, errors)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first `n` bytes of SHA-256(`data`) in hex: a short stable name made from content
/// (a Message-ID for a mail that has none, ours for a reply).
pub(crate) fn short_digest(data: &[u8], n: usize) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, data);
    hex(&digest.as_ref()[..n.min(32)])
}
