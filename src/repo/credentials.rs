//! How pushgate proves who it is to the repository it fetches from and pushes to: a token over
//! HTTPS (GitHub's `x-access-token`, an installation token or a personal one) or a key over SSH
//! (a deploy key, with the server's key pinned in a known_hosts file).

use std::cell::Cell;
use std::fmt;
use std::path::PathBuf;

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

#[derive(Clone, Default)]
pub enum Credentials {
    /// Whatever the URL allows without a login (a local path, `git://`, a public https).
    #[default]
    Anonymous,
    /// HTTP(S) basic authentication with a token as the password.
    Token { user: String, token: String },
    /// SSH with a private key file; the server's key must be in `known_hosts` when one is
    /// given (else libgit2 checks `~/.ssh/known_hosts`).
    SshKey {
        private_key: PathBuf,
        known_hosts: Option<PathBuf>,
    },
}

/// Never prints the token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Token { user, .. } => write!(f, "Token {{ user: {user:?}, .. }}"),
            Credentials::SshKey {
                private_key,
                known_hosts,
            } => f
                .debug_struct("SshKey")
                .field("private_key", private_key)
                .field("known_hosts", known_hosts)
                .finish(),
        }
    }
}

/// The port an SSH URL names (`ssh://host:2222/x`), or 22 (also for `user@host:path`).
fn ssh_port(url: &str) -> u16 {
    url.strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(22)
}

impl Credentials {
    /// Callbacks that answer the server's questions with these credentials. libgit2 asks again
    /// after a refused login; the second time is an error, not a loop.
    pub fn callbacks<'a>(&'a self, url: &'a str) -> RemoteCallbacks<'a> {
        let mut callbacks = RemoteCallbacks::new();
        let asked = Cell::new(0u32);
        callbacks.credentials(move |_url, username, allowed| {
            asked.set(asked.get() + 1);
            if asked.get() > 1 {
                return Err(git2::Error::from_str(
                    "the server refused pushgate's credentials",
                ));
            }
            match self {
                Credentials::Token { user, token }
                    if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
                {
                    Cred::userpass_plaintext(user, token)
                }
                Credentials::SshKey { private_key, .. }
                    if allowed.contains(CredentialType::SSH_KEY) =>
                {
                    Cred::ssh_key(username.unwrap_or("git"), None, private_key, None)
                }
                Credentials::SshKey { .. } if allowed.contains(CredentialType::USERNAME) => {
                    Cred::username(username.unwrap_or("git"))
                }
                _ => Err(git2::Error::from_str(&format!(
                    "the server asks for a login ({allowed:?}) that pushgate has no \
                     credentials for: set [github] token, or deploy_key for an SSH URL"
                ))),
            }
        });
        if let Credentials::SshKey {
            known_hosts: Some(known_hosts),
            ..
        } = self
        {
            let port = ssh_port(url);
            callbacks.certificate_check(move |cert, host| {
                let Some(key) = cert.as_hostkey().and_then(|k| k.hostkey()) else {
                    return Ok(CertificateCheckStatus::CertificatePassthrough);
                };
                let key = russh::keys::PublicKey::from_bytes(key)
                    .map_err(|e| git2::Error::from_str(&format!("the server's host key: {e}")))?;
                match russh::keys::check_known_hosts_path(host, port, &key, known_hosts) {
                    Ok(true) => Ok(CertificateCheckStatus::CertificateOk),
                    Ok(false) => Err(git2::Error::from_str(&format!(
                        "{host}:{port} is not in {}: pin its key there",
                        known_hosts.display()
                    ))),
                    Err(e) => Err(git2::Error::from_str(&format!(
                        "{host}:{port}'s key does not match {}: {e}",
                        known_hosts.display()
                    ))),
                }
            });
        }
        callbacks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_ports() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/x.git"), 2222);
        assert_eq!(ssh_port("ssh://git@github.com/o/r.git"), 22);
        assert_eq!(ssh_port("git@github.com:o/r.git"), 22);
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Credentials::Token {
            user: "x-access-token".into(),
            token: "ghs_secret".into(),
        };
        assert!(!format!("{c:?}").contains("ghs_secret"));
    }
}
