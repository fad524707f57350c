//! Mailed patch series, from mail to verdict: assembly of a list's mails into revisions
//! (pure), triage of what each revision needs next (pure), the pass that carries that out
//! (apply, reply, store), the series' flights, and a maintainer queueing one onto staging.

pub mod assembly;
mod flight;
pub mod pass;
pub mod queue;
pub mod triage;

pub use assembly::{assemble, Revision, RevisionSummary};
