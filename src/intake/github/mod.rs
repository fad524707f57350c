//! What GitHub sends: webhooks (verified and parsed, pure) and the maintainers' `@pushgate`
//! comment commands (pure). What pushgate sends back lives in `forge`.

pub mod commands;
pub mod webhook;

pub use commands::{parse_command, Command};
pub use webhook::{
    parse_event, verify_signature, Comment, CommentOn, Event, PullRequest, Push, PushKind,
    SignatureError,
};
