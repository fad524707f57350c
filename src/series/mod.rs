//! Mailed patch series, from mail to verdict: assembly of a list's mails into revisions
//! (pure), triage of what each revision needs next (pure), the pass that carries that out
//! (apply, reply, store), the series' flights, and a maintainer queueing one onto staging.

pub mod assembly;
mod flight;
pub mod pass;
pub mod queue;
pub mod triage;

pub use assembly::{assemble, Revision, RevisionSummary};

use crate::intake::mail::Mail;
use crate::repo::apply::Patch;

/// A mailed patch as `repo::apply` commits it: the diff in its sender's bytes, the author and
/// date git am would write, the commit message, and the subject that names it in an error.
pub fn patch(mail: &Mail) -> Patch<'_> {
    Patch {
        diff: &mail.patch,
        author_name: mail.author_name(),
        author_email: &mail.author.email,
        date: mail.author_date(),
        message: mail.commit_message(),
        subject: mail.listing(),
    }
}
