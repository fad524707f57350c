//! Mailing lists' mail: read as `git am` does (pure, fuzzed), and the sources it comes from
//! (public-inbox archives, Maildirs, mbox files, stdin) into the store. Assembling mails into
//! series is `series::assembly`.

pub mod inbox;
pub mod ingest;
pub mod mbox;
pub mod message;
pub mod subject;
pub mod trailers;

pub use message::{Mail, Person};
pub use subject::{Counter, Subject};

/// Why a mail could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnreadableMail {
    #[error("the message is empty")]
    Empty,
    #[error("the message could not be parsed as RFC 5322")]
    Unparseable,
    #[error("the message has no From, Subject, Message-ID or Date header")]
    NoHeaders,
}

/// Parses every message of an mbox; a message that cannot be read is reported with its place
/// (1-based) and left out.
pub fn parse_mbox(data: &[u8]) -> (Vec<Mail>, Vec<(usize, UnreadableMail)>) {
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
