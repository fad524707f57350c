//! What the operator writes: the service's `pushgate.toml` and the policy files. A mistake in
//! either is a `FileError` naming the file, line and field (`crate::file_error`).

mod github;
pub mod policy;
mod rules;
mod service;

pub use github::{GitHubAuth, GitHubSettings};
pub use policy::Policy;
pub use rules::{InForce, Rules};
pub use service::{default_state_dir, Config, HttpLimits, MailTransport};
