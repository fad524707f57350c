//! The service configuration (`pushgate.toml`): where state lives, which policies to load, how
//! to send mail. Every key is optional; relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::policy::{self, Policy};
use crate::sequence::{self, Sequences};
use crate::source::{parse_duration, FileError, Source};

/// How mail leaves pushgate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MailTransport {
    /// An SMTP URL as lettre reads it: `smtp://host:25`, `smtp://host:587?tls=required`,
    /// `smtps://user:pass@host`.
    Smtp(String),
    /// `.eml` files in a folder, for a machine with no mail server (and for the demo).
    Folder(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Holds the database (by default), repository mirrors, checkouts, logs and the outbox.
    pub state_dir: PathBuf,
    pub database_url: String,
    pub policies_dir: PathBuf,
    pub sequences_dir: PathBuf,
    pub listen: SocketAddr,
    /// How the page's links and mail's links start.
    pub public_url: String,
    pub poll_interval: Duration,
    pub mail_from: String,
    pub mail: MailTransport,
    /// The lab's inventory; without the file, runs go to this machine.
    pub hosts_file: PathBuf,
    /// The job server API's secret (`[api] token` or `token_file`); without one the job
    /// API refuses every call.
    pub api_token: Option<String>,
    /// The secret GitHub signs webhook deliveries with (`[github] webhook_secret` or
    /// `webhook_secret_file`); without one, `/hooks/github` refuses every delivery.
    pub github_secret: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    state_dir: Option<String>,
    database_url: Option<String>,
    policies: Option<String>,
    sequences: Option<String>,
    listen: Option<Spanned<String>>,
    public_url: Option<String>,
    poll_interval: Option<Spanned<String>>,
    hosts: Option<String>,
    #[serde(default)]
    mail: MailFile,
    #[serde(default)]
    api: ApiFile,
    #[serde(default)]
    github: GithubFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GithubFile {
    webhook_secret: Option<Spanned<String>>,
    webhook_secret_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ApiFile {
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MailFile {
    from: Option<Spanned<String>>,
    smtp: Option<Spanned<String>>,
    outbox_dir: Option<String>,
}

impl Config {
    /// Reads `path`, or takes every default relative to `base` when there is no file.
    pub fn load(path: Option<&Path>, base: &Path) -> Result<Config, FileError> {
        match path {
            Some(path) => {
                let text = Source::read(path)?;
                let dir = path.parent().unwrap_or(Path::new("."));
                Self::parse(path, &text, dir)
            }
            None => Self::parse(Path::new("(defaults)"), "", base),
        }
    }

    pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Config, FileError> {
        let src = Source { path, text };
        let file: File = src.parse()?;
        let rel = |p: Option<String>, default: &str| -> PathBuf {
            let p = PathBuf::from(p.unwrap_or_else(|| default.to_string()));
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let state_dir = rel(file.state_dir, ".");
        let database_url = file.database_url.unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                state_dir.join("pushgate.db").display()
            )
        });
        let listen = match &file.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8077)),
            Some(l) => l.get_ref().parse().map_err(|e| {
                src.error(
                    l.span(),
                    "listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:8077: {e}",
                        l.get_ref()
                    ),
                )
            })?,
        };
        let poll_interval = match &file.poll_interval {
            None => Duration::from_secs(60),
            Some(t) => {
                parse_duration(t.get_ref()).map_err(|m| src.error(t.span(), "poll_interval", m))?
            }
        };
        let mail_from = match &file.mail.from {
            None => "pushgate <pushgate@localhost>".to_string(),
            Some(f) => {
                f.get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| {
                        src.error(f.span(), "mail.from", format!("not a mail address: {e}"))
                    })?;
                f.get_ref().clone()
            }
        };
        let mail = match &file.mail.smtp {
            Some(url) => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url.get_ref())
                    .map_err(|e| {
                        src.error(url.span(), "mail.smtp", format!("not an SMTP URL: {e}"))
                    })?;
                MailTransport::Smtp(url.get_ref().clone())
            }
            None => MailTransport::Folder(rel(
                file.mail.outbox_dir,
                &state_dir.join("outbox").display().to_string(),
            )),
        };
        // A secret is written in the file or kept in a file of its own, not both; it is never
        // shorter than `min` characters.
        let secret = |value: &Option<Spanned<String>>,
                      from_file: &Option<Spanned<String>>,
                      field: &str,
                      min: usize|
         -> Result<Option<String>, FileError> {
            let (text, span, at) = match (value, from_file) {
                (None, None) => return Ok(None),
                (Some(v), None) => (v.get_ref().clone(), v.span(), field.to_string()),
                (None, Some(f)) => {
                    let at = format!("{field}_file");
                    let path = rel(Some(f.get_ref().clone()), "");
                    let text = std::fs::read_to_string(&path).map_err(|e| {
                        src.error(f.span(), &at, format!("{}: {e}", path.display()))
                    })?;
                    (
                        text.trim_end_matches(['\r', '\n']).to_string(),
                        f.span(),
                        at,
                    )
                }
                (Some(v), Some(_)) => {
                    return Err(src.error(
                        v.span(),
                        field,
                        format!("set `{field}` or `{field}_file`, not both"),
                    ))
                }
            };
            if text.chars().count() < min {
                return Err(src.error(
                    span,
                    &at,
                    format!("use a secret of at least {min} characters"),
                ));
            }
            Ok(Some(text))
        };
        let api_token = secret(&file.api.token, &file.api.token_file, "api.token", 16)?;
        let github_secret = secret(
            &file.github.webhook_secret,
            &file.github.webhook_secret_file,
            "github.webhook_secret",
            1,
        )?;
        Ok(Config {
            github_secret,
            hosts_file: rel(file.hosts, "hosts.toml"),
            api_token,
            public_url: file
                .public_url
                .unwrap_or_else(|| format!("http://{listen}"))
                .trim_end_matches('/')
                .to_string(),
            policies_dir: rel(file.policies, "policies"),
            sequences_dir: rel(file.sequences, "sequences"),
            database_url,
            listen,
            poll_interval,
            mail_from,
            mail,
            state_dir,
        })
    }

    /// Loads the sequences and the policies, refusing the first file that is wrong.
    pub fn load_policies(&self) -> Result<(Vec<Policy>, Sequences), FileError> {
        let sequences = sequence::load_dir(&self.sequences_dir)?;
        let policies = policy::load_dir(&self.policies_dir, &sequences)?;
        Ok((policies, sequences))
    }

    pub fn mirrors_dir(&self) -> PathBuf {
        self.state_dir.join("repos")
    }
    pub fn work_dir(&self) -> PathBuf {
        self.state_dir.join("work")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.state_dir.join("logs")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_live_in_the_base_directory() {
        let c = Config::load(None, Path::new("/srv/gate")).unwrap();
        assert_eq!(c.database_url, "sqlite:///srv/gate/./pushgate.db?mode=rwc");
        assert_eq!(c.policies_dir, Path::new("/srv/gate/policies"));
        assert_eq!(c.mail, MailTransport::Folder("/srv/gate/./outbox".into()));
        assert_eq!(c.public_url, "http://127.0.0.1:8077");
    }

    #[test]
    fn bad_keys_are_located() {
        let p = Path::new("pushgate.toml");
        let base = Path::new("/x");
        for (text, line, field) in [
            ("listen = \"nowhere\"\n", 1, "listen"),
            ("poll_interval = \"often\"\n", 1, "poll_interval"),
            ("[mail]\nsmtp = \"http://x\"\n", 2, "mail.smtp"),
            ("[mail]\nfrom = \"@@\"\n", 2, "mail.from"),
            ("state = \"/x\"\n", 1, "state"),
            (
                "[github]\nwebhook_secret = \"\"\n",
                2,
                "github.webhook_secret",
            ),
            (
                "[github]\nwebhook_secret_file = \"/nonexistent\"\n",
                2,
                "github.webhook_secret_file",
            ),
        ] {
            let e = Config::parse(p, text, base).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
        }
        let ok = Config::parse(p, "[mail]\nsmtp = \"smtp://127.0.0.1:2525\"\n", base).unwrap();
        assert_eq!(ok.mail, MailTransport::Smtp("smtp://127.0.0.1:2525".into()));
    }
}
