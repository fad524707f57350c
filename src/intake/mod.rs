//! Where work comes in: GitHub's webhooks and comments, and mailing lists' mail. Both are
//! untrusted input; everything here parses it into plain values, bounded and without panics,
//! before anything else looks at it.

pub mod github;
pub mod mail;
