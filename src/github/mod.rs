//! GitHub: the webhooks pushgate takes in (verified, parsed, pure), the maintainers' comment
//! commands (pure), and the REST client that reports, reads branch heads and hands out git
//! credentials.

mod client;
pub mod commands;
pub mod webhook;

pub use client::{GitHub, GitHubAuth, GitHubSettings};
pub use commands::{parse_command, Command};
pub use webhook::{
    parse_event, verify_signature, Comment, CommentOn, Event, PullRequest, Push, PushKind,
    SignatureError,
};
