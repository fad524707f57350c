//! What the operator writes: the service's `pushgate.toml` and the policy files. A mistake in
//! either is a `FileError` naming the file, line and field (`crate::file_error`).

mod github;
pub mod policy;
mod service;

pub use github::{GitHubAuth, GitHubSettings};
pub use policy::Policy;
pub use service::{Config, HttpLimits, MailTransport};
