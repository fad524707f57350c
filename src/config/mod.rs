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

/// `path` taken from `base` (unless absolute), with `.` and `..` resolved as written, not by
/// following links: how a relative path in a file reads once it is shown elsewhere (mail, the
/// pages), and how a relative `--config` becomes absolute. A `..` with nothing to go up from
/// stays.
pub fn lexical_join(base: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in base.join(path).components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn relative_paths_are_joined_as_written() {
        let join = |base: &str, path: &str| super::lexical_join(Path::new(base), Path::new(path));
        assert_eq!(
            join("/srv/gate/policies", "../../up.git"),
            Path::new("/srv/up.git")
        );
        assert_eq!(
            join("/srv/gate", "./pushgate.toml"),
            Path::new("/srv/gate/pushgate.toml")
        );
        assert_eq!(join("/srv", "/etc/x"), Path::new("/etc/x"));
        assert_eq!(join("..", "x"), Path::new("../x"));
    }
}
