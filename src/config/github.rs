//! The `[github]` section as the service uses it: how to log in to GitHub's API and git.

use std::path::PathBuf;

/// How pushgate logs in to GitHub.
#[derive(Clone)]
pub enum GitHubAuth {
    /// A personal (or fine-grained) access token. It cannot make check runs: only Apps can.
    Token(String),
    App {
        app_id: u64,
        /// The App's private key, PEM.
        private_key: String,
        installation_id: u64,
    },
}

/// The `[github]` settings beyond the webhook secret.
#[derive(Clone)]
pub struct GitHubSettings {
    /// `https://api.github.com`, or a GitHub Enterprise `https://HOST/api/v3`.
    pub api_url: String,
    pub auth: GitHubAuth,
    /// A deploy key for `ssh://` and `git@` repository URLs.
    pub deploy_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    /// Certificate authorities (PEM) that git over HTTPS trusts besides the system's: a GitHub
    /// Enterprise with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for GitHubSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            GitHubAuth::Token(_) => "token".to_string(),
            GitHubAuth::App {
                app_id,
                installation_id,
                ..
            } => format!("app {app_id} installation {installation_id}"),
        };
        f.debug_struct("GitHubSettings")
            .field("api_url", &self.api_url)
            .field("auth", &auth)
            .field("deploy_key", &self.deploy_key)
            .finish()
    }
}
