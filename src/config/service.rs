//! The service configuration (`pushgate.toml`): where state lives, which policies to load, how
//! to send mail. Every key is optional; relative paths are relative to the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::policy::{self, Policy};
use crate::config::{GitHubAuth, GitHubSettings};
use crate::file_error::{parse_duration, read_text, FileError, FileErrors, Source};
use crate::sequence::{self, Sequences};

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
    /// How to reach GitHub's API and git (`[github] token`, or `app_id` + `installation_id`
    /// + `private_key_file`); without it, nothing is reported to GitHub.
    pub github: Option<crate::config::GitHubSettings>,
    /// The most read of any file pushgate is given (`[input] max_file_mib`), in bytes.
    pub max_file_size: u64,
    /// Directories besides `sequences_dir` that a XenRT `<include filename>` may read from
    /// (`[input] include_roots`).
    pub include_roots: Vec<PathBuf>,
    /// How long the HTTP server waits on a client, and for how many at once (`[http]`).
    pub http: HttpLimits,
}

/// What the HTTP server grants a client: a client that sends nothing, or dribbles, is dropped
/// instead of holding a connection (and its memory) for ever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// From the connection's start (or the previous response) to the end of a request's headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// A kept-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
        }
    }
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
    #[serde(default)]
    input: InputFile,
    #[serde(default)]
    http: HttpFile,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InputFile {
    max_file_mib: Option<Spanned<u64>>,
    #[serde(default)]
    include_roots: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    header_timeout: Option<Spanned<String>>,
    body_timeout: Option<Spanned<String>>,
    idle_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GithubFile {
    webhook_secret: Option<Spanned<String>>,
    webhook_secret_file: Option<Spanned<String>>,
    api_url: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    app_id: Option<Spanned<u64>>,
    installation_id: Option<Spanned<u64>>,
    private_key_file: Option<Spanned<String>>,
    deploy_key: Option<String>,
    known_hosts: Option<String>,
    ca_file: Option<Spanned<String>>,
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
    pub fn load(path: Option<&Path>, base: &Path) -> Result<Config, FileErrors> {
        match path {
            Some(path) => {
                let text = Source::read(path)?;
                let dir = path.parent().unwrap_or(Path::new("."));
                Self::parse(path, &text, dir)
            }
            None => Self::parse(Path::new("(defaults)"), "", base),
        }
    }

    /// Reads the config's text, reporting every key that is wrong, not only the first.
    pub fn parse(path: &Path, text: &str, base: &Path) -> Result<Config, FileErrors> {
        let r = Reading {
            src: Source { path, text },
            base,
        };
        let file: File = r.src.parse()?;
        let mut errors = FileErrors::default();
        let state_dir = match &file.state_dir {
            Some(dir) => r.rel(Some(dir.clone()), ""),
            None => default_state_dir(),
        };
        let database_url = file.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                state_dir.join("pushgate.db").display()
            )
        });
        let listen = errors
            .take(r.listen(&file.listen))
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8077)));
        let poll_interval = errors
            .take(r.duration(&file.poll_interval, "poll_interval", 60))
            .unwrap_or_default();
        let max_file_size = match &file.input.max_file_mib {
            None => crate::file_error::DEFAULT_MAX_FILE_SIZE,
            Some(m) if (1..=1024).contains(m.get_ref()) => m.get_ref() << 20,
            Some(m) => {
                errors.push(r.src.error(
                    m.span(),
                    "input.max_file_mib",
                    "say how many MiB, from 1 to 1024",
                ));
                crate::file_error::DEFAULT_MAX_FILE_SIZE
            }
        };
        let include_roots = file
            .input
            .include_roots
            .iter()
            .map(|p| r.rel(Some(p.clone()), ""))
            .collect();
        let http = errors.take(r.http(&file.http)).unwrap_or_default();
        let mail_from = errors.take(r.mail_from(&file.mail)).unwrap_or_default();
        let mail = errors
            .take(r.mail_transport(&file.mail, &state_dir))
            .unwrap_or(MailTransport::Folder(PathBuf::new()));
        let api_token = errors
            .take(r.secret(&file.api.token, &file.api.token_file, "api.token", 16))
            .flatten();
        let github_secret = errors
            .take(r.secret(
                &file.github.webhook_secret,
                &file.github.webhook_secret_file,
                "github.webhook_secret",
                1,
            ))
            .flatten();
        let github = errors.take(r.github(&file.github)).flatten();
        errors.or(|| Config {
            github,
            github_secret,
            hosts_file: r.rel(file.hosts, "hosts.toml"),
            api_token,
            public_url: file
                .public_url
                .unwrap_or_else(|| format!("http://{listen}"))
                .trim_end_matches('/')
                .to_string(),
            policies_dir: r.rel(file.policies, "policies"),
            sequences_dir: r.rel(file.sequences, "sequences"),
            database_url,
            listen,
            poll_interval,
            mail_from,
            mail,
            state_dir,
            max_file_size,
            include_roots,
            http,
        })
    }

    /// Loads the sequences and the policies, refusing them when any file is wrong, with
    /// every error.
    pub fn load_policies(&self) -> Result<(Vec<Policy>, Sequences), FileErrors> {
        let (sequences, mut errors) =
            sequence::load_dir_reporting(&self.sequences_dir, &self.include_roots);
        let (policies, more) = policy::load_dir_reporting(&self.policies_dir, &sequences);
        errors.0.extend(more.0);
        errors.or(|| (policies, sequences))
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
    /// Where remote public-inbox archives are mirrored.
    pub fn inboxes_dir(&self) -> PathBuf {
        self.state_dir.join("inboxes")
    }
}

/// Where state lives when the config does not say: systemd's `$STATE_DIRECTORY` (a unit with
/// `StateDirectory=pushgate`), else `/var/lib/pushgate` for root, else
/// `$XDG_STATE_HOME/pushgate` (`~/.local/state/pushgate`). Never the current directory: a
/// `serve` started from another directory would otherwise begin again with an empty store.
pub fn default_state_dir() -> PathBuf {
    state_dir_from(
        |name| std::env::var_os(name).filter(|v| !v.is_empty()),
        // SAFETY: geteuid has no preconditions and cannot fail.
        unsafe { libc::geteuid() } == 0,
    )
}

fn state_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>, root: bool) -> PathBuf {
    if let Some(dir) = env("STATE_DIRECTORY") {
        // systemd lists several, colon-separated, when the unit names several.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        return PathBuf::from(first);
    }
    if root {
        return PathBuf::from("/var/lib/pushgate");
    }
    if let Some(dir) = env("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return dir.join("pushgate");
    }
    match env("HOME") {
        Some(home) => PathBuf::from(home).join(".local/state/pushgate"),
        None => PathBuf::from("/var/lib/pushgate"),
    }
}

/// One configuration file being read: its text, for errors that name the line, and the
/// directory its relative paths are relative to.
struct Reading<'a> {
    src: Source<'a>,
    base: &'a Path,
}

impl Reading<'_> {
    /// `p` (else `default`), relative to the file's directory unless absolute.
    fn rel(&self, p: Option<String>, default: &str) -> PathBuf {
        let p = PathBuf::from(p.unwrap_or_else(|| default.to_string()));
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// A duration key, `default_secs` when absent.
    fn duration(
        &self,
        value: &Option<Spanned<String>>,
        field: &str,
        default_secs: u64,
    ) -> Result<Duration, FileError> {
        match value {
            None => Ok(Duration::from_secs(default_secs)),
            Some(t) => parse_duration(t.get_ref()).map_err(|m| self.src.error(t.span(), field, m)),
        }
    }

    fn http(&self, http: &HttpFile) -> Result<HttpLimits, FileError> {
        let default = HttpLimits::default();
        let positive = |value: &Option<Spanned<String>>, field: &str, default: Duration| {
            let d = self.duration(value, field, default.as_secs())?;
            match value {
                Some(v) if d.is_zero() => Err(self.src.error(
                    v.span(),
                    field,
                    "a client would be dropped at once: say how long to wait, like `10s`",
                )),
                _ => Ok(d),
            }
        };
        let max_connections = match &http.max_connections {
            None => default.max_connections,
            Some(m) if *m.get_ref() >= 1 => *m.get_ref(),
            Some(m) => {
                return Err(self.src.error(
                    m.span(),
                    "http.max_connections",
                    "at least 1 connection must be served",
                ))
            }
        };
        Ok(HttpLimits {
            header_timeout: positive(
                &http.header_timeout,
                "http.header_timeout",
                default.header_timeout,
            )?,
            body_timeout: positive(
                &http.body_timeout,
                "http.body_timeout",
                default.body_timeout,
            )?,
            idle_timeout: positive(
                &http.idle_timeout,
                "http.idle_timeout",
                default.idle_timeout,
            )?,
            max_connections,
        })
    }

    fn listen(&self, listen: &Option<Spanned<String>>) -> Result<SocketAddr, FileError> {
        Ok(match listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8077)),
            Some(l) => l.get_ref().parse().map_err(|e| {
                self.src.error(
                    l.span(),
                    "listen",
                    format!(
                        "`{}` is not an address like 127.0.0.1:8077: {e}",
                        l.get_ref()
                    ),
                )
            })?,
        })
    }

    fn mail_from(&self, mail: &MailFile) -> Result<String, FileError> {
        Ok(match &mail.from {
            None => "pushgate <pushgate@localhost>".to_string(),
            Some(f) => {
                f.get_ref()
                    .parse::<lettre::message::Mailbox>()
                    .map_err(|e| {
                        self.src
                            .error(f.span(), "mail.from", format!("not a mail address: {e}"))
                    })?;
                f.get_ref().clone()
            }
        })
    }

    /// SMTP when `mail.smtp` says so, else a folder of .eml files.
    fn mail_transport(
        &self,
        mail: &MailFile,
        state_dir: &Path,
    ) -> Result<MailTransport, FileError> {
        Ok(match &mail.smtp {
            Some(url) => {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url.get_ref())
                    .map_err(|e| {
                        self.src
                            .error(url.span(), "mail.smtp", format!("not an SMTP URL: {e}"))
                    })?;
                MailTransport::Smtp(url.get_ref().clone())
            }
            None => MailTransport::Folder(self.rel(
                mail.outbox_dir.clone(),
                &state_dir.join("outbox").display().to_string(),
            )),
        })
    }

    /// A secret is written in the file or kept in a file of its own, not both; it is never
    /// shorter than `min` characters.
    fn secret(
        &self,
        value: &Option<Spanned<String>>,
        from_file: &Option<Spanned<String>>,
        field: &str,
        min: usize,
    ) -> Result<Option<String>, FileError> {
        let (text, span, at) = match (value, from_file) {
            (None, None) => return Ok(None),
            (Some(v), None) => (v.get_ref().clone(), v.span(), field.to_string()),
            (None, Some(f)) => {
                let at = format!("{field}_file");
                let path = self.rel(Some(f.get_ref().clone()), "");
                let text = read_text(&path).map_err(|e| {
                    self.src
                        .error(f.span(), &at, format!("{}: {e}", path.display()))
                })?;
                (
                    text.trim_end_matches(['\r', '\n']).to_string(),
                    f.span(),
                    at,
                )
            }
            (Some(v), Some(_)) => {
                return Err(self.src.error(
                    v.span(),
                    field,
                    format!("set `{field}` or `{field}_file`, not both"),
                ))
            }
        };
        if text.chars().count() < min {
            return Err(self.src.error(
                span,
                &at,
                format!("use a secret of at least {min} characters"),
            ));
        }
        Ok(Some(text))
    }

    /// `[github]`: a token or an App login, the API's URL, git's keys and authorities; `None`
    /// when it says no login.
    fn github(&self, g: &GithubFile) -> Result<Option<GitHubSettings>, FileError> {
        let token = self.secret(&g.token, &g.token_file, "github.token", 8)?;
        let auth = match (token, &g.app_id, &g.installation_id, &g.private_key_file) {
            (None, None, None, None) => None,
            (Some(t), None, None, None) => Some(GitHubAuth::Token(t)),
            (None, Some(app), Some(installation), Some(key)) => {
                let path = self.rel(Some(key.get_ref().clone()), "");
                let private_key = read_text(&path).map_err(|e| {
                    self.src.error(
                        key.span(),
                        "github.private_key_file",
                        format!("{}: {e}", path.display()),
                    )
                })?;
                Some(GitHubAuth::App {
                    app_id: *app.get_ref(),
                    private_key,
                    installation_id: *installation.get_ref(),
                })
            }
            _ => {
                let span = g
                    .app_id
                    .as_ref()
                    .map(|s| s.span())
                    .or(g.installation_id.as_ref().map(|s| s.span()))
                    .or(g.private_key_file.as_ref().map(|s| s.span()))
                    .or(g.token.as_ref().map(|s| s.span()))
                    .unwrap_or(0..0);
                return Err(self.src.error(
                    span,
                    "github",
                    "log in with `token` (or `token_file`), or as an App with `app_id`, \
                         `installation_id` and `private_key_file` together, not both"
                        .to_string(),
                ));
            }
        };
        let api_url = match &g.api_url {
            None => "https://api.github.com".to_string(),
            Some(u) => {
                let url = u.get_ref().trim_end_matches('/').to_string();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(self.src.error(
                        u.span(),
                        "github.api_url",
                        format!("`{url}` is not an http(s) URL"),
                    ));
                }
                url
            }
        };
        let ca_file = match &g.ca_file {
            None => None,
            Some(f) => {
                let path = self.rel(Some(f.get_ref().clone()), "");
                if !path.is_file() {
                    return Err(self.src.error(
                        f.span(),
                        "github.ca_file",
                        format!("{} is not a file", path.display()),
                    ));
                }
                Some(path)
            }
        };
        Ok(auth.map(|auth| GitHubSettings {
            ca_file,
            api_url,
            auth,
            deploy_key: g.deploy_key.clone().map(|k| self.rel(Some(k), "")),
            known_hosts: g.known_hosts.clone().map(|k| self.rel(Some(k), "")),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_found_beside_the_config_and_state_in_the_state_directory() {
        let c = Config::parse(
            Path::new("/srv/gate/pushgate.toml"),
            "state_dir = \"state\"\n",
            Path::new("/srv/gate"),
        )
        .unwrap();
        assert_eq!(
            c.database_url,
            "sqlite:///srv/gate/state/pushgate.db?mode=rwc"
        );
        assert_eq!(c.policies_dir, Path::new("/srv/gate/policies"));
        assert_eq!(
            c.mail,
            MailTransport::Folder("/srv/gate/state/outbox".into())
        );
        assert_eq!(c.public_url, "http://127.0.0.1:8077");
        let c = Config::load(None, Path::new("/srv/gate")).unwrap();
        assert_eq!(c.state_dir, default_state_dir());
    }

    #[test]
    fn the_default_state_directory_is_never_the_current_one() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| std::ffi::OsString::from(v))
            }
        };
        static ALL: [(&str, &str); 3] = [
            ("STATE_DIRECTORY", "/var/lib/pushgate:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/m/.state"),
            ("HOME", "/home/m"),
        ];
        assert_eq!(
            state_dir_from(env(&ALL[..]), false),
            Path::new("/var/lib/pushgate")
        );
        assert_eq!(
            state_dir_from(env(&ALL[1..]), true),
            Path::new("/var/lib/pushgate")
        );
        assert_eq!(
            state_dir_from(env(&ALL[1..]), false),
            Path::new("/home/m/.state/pushgate")
        );
        assert_eq!(
            state_dir_from(
                env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/home/m")]),
                false
            ),
            Path::new("/home/m/.local/state/pushgate")
        );
    }

    #[test]
    fn input_and_http_limits_are_read() {
        let text =
            "[input]\nmax_file_mib = 16\ninclude_roots = [\"shared-seqs\", \"/opt/xenrt/seqs\"]\n\
                    [http]\nheader_timeout = \"5s\"\nbody_timeout = \"1m\"\nidle_timeout = \"2m\"\n\
                    max_connections = 64\n";
        let c = Config::parse(Path::new("pushgate.toml"), text, Path::new("/etc/gate")).unwrap();
        assert_eq!(c.max_file_size, 16 << 20);
        assert_eq!(
            c.include_roots,
            [
                PathBuf::from("/etc/gate/shared-seqs"),
                PathBuf::from("/opt/xenrt/seqs")
            ]
        );
        assert_eq!(
            c.http,
            HttpLimits {
                header_timeout: Duration::from_secs(5),
                body_timeout: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(120),
                max_connections: 64,
            }
        );
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
            ("[github]\ntoken = \"short\"\n", 2, "github.token"),
            ("[github]\napp_id = 1\n", 2, "github"),
            (
                "[github]\ntoken = \"long-enough-token\"\napp_id = 1\ninstallation_id = 2\n",
                3,
                "github",
            ),
            (
                "[github]\napp_id = 1\ninstallation_id = 2\nprivate_key_file = \"/nonexistent\"\n",
                4,
                "github.private_key_file",
            ),
            (
                "[github]\ntoken = \"long-enough-token\"\napi_url = \"ftp://x\"\n",
                3,
                "github.api_url",
            ),
            ("[input]\nmax_file_mib = 0\n", 2, "input.max_file_mib"),
            ("[input]\nmax_file_mib = 4096\n", 2, "input.max_file_mib"),
            (
                "[http]\nheader_timeout = \"0s\"\n",
                2,
                "http.header_timeout",
            ),
            ("[http]\nidle_timeout = \"later\"\n", 2, "http.idle_timeout"),
            ("[http]\nmax_connections = 0\n", 2, "http.max_connections"),
        ] {
            let e = Config::parse(p, text, base).unwrap_err();
            assert_eq!(e.0.len(), 1, "{text:?}: {e}");
            let e = &e.0[0];
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
        }
        // Every mistake of a file at once.
        let e = Config::parse(
            p,
            "listen = \"x\"\npoll_interval = \"often\"\n[api]\ntoken = \"short\"\n[http]\nmax_connections = 0\n",
            base,
        )
        .unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "listen",
                "poll_interval",
                "http.max_connections",
                "api.token"
            ]
        );
        let gh = Config::parse(p, "[github]\ntoken = \"long-enough-token\"\n", base).unwrap();
        let gh = gh.github.unwrap();
        assert_eq!(gh.api_url, "https://api.github.com");
        assert!(!format!("{gh:?}").contains("long-enough-token"));
        let ok = Config::parse(p, "[mail]\nsmtp = \"smtp://127.0.0.1:2525\"\n", base).unwrap();
        assert_eq!(ok.max_file_size, 4 << 20);
        assert_eq!(ok.http, HttpLimits::default());
        assert_eq!(ok.mail, MailTransport::Smtp("smtp://127.0.0.1:2525".into()));
    }
}
