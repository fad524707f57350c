//! GitHub: the webhooks pushgate takes in (verified, parsed, pure), and later the statuses and
//! pushes it sends out.

pub mod webhook;

pub use webhook::{
    parse_event, verify_signature, Event, PullRequest, Push, PushKind, SignatureError,
};
