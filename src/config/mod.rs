//! What the operator writes: the service's `pushgate.toml`, the policy files, and the error that
//! names the file, line and field of a mistake in any of them (sequence and hosts files too).

mod file_error;
mod github;
pub mod policy;
mod service;

pub use file_error::{parse_duration, toml_files, FileError, Source};
pub use github::{GitHubAuth, GitHubSettings};
pub use policy::Policy;
pub use service::{Config, MailTransport};
