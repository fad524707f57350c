//! Policy files (`policies/NAME.toml`): the rules for one repository and staging branch.
//!
//! A policy that does not hold together is refused when pushgate starts, with the file, line
//! and field, so a mistake never reaches a push.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::file_error::{parse_duration, toml_files, FileError, FileErrors, Source};
use crate::hosts::Needs;
use crate::sequence::{PauseOn, Sequences};

/// Push what passed, or only report what would have been pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Push,
    ReportOnly,
}

/// What a step that never passed on this branch, and fails on the baseline too, does to a
/// flight: let through (OSSTest's meaning; the report says so) or block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeverPassed {
    #[default]
    Pass,
    Block,
}

/// Who hears about a flight.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MailPolicy {
    /// The project's list: gets every gate report, and is copied on culprit mail.
    pub list: Option<String>,
    /// Mail the culprit's author, and Cc the authors of the range on gate reports.
    pub authors: bool,
    /// The same for committers.
    pub committers: bool,
    /// What every subject of this policy's mail starts with, so that a reader's filter and eye
    /// tell projects apart: `[xen staging]` by default (`mail.subject_prefix`, where `{policy}`,
    /// `{staging}` and `{target}` are replaced).
    pub subject_prefix: String,
}

/// The rules for one staging branch.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The file stem: names the branch in the store, on the page and in mail.
    pub name: String,
    pub file: PathBuf,
    /// A path (relative ones are relative to the policy file) or a git URL.
    pub repository: String,
    pub staging: String,
    pub target: String,
    pub sequences: Vec<String>,
    pub mode: Mode,
    /// How many times a failing test is run again before the failure counts.
    pub retries: u32,
    /// Whether a step that never passed here blocks.
    pub never_passed: NeverPassed,
    /// How long to wait before testing a tip again whose flight was `broken`.
    pub retry_broken_after: Duration,
    /// How often a good commit fails these sequences anyway; `None` estimates it from the
    /// branch's history (commits that failed and also passed).
    pub flake_rate: Option<f64>,
    /// How sure the culprit finder must be before it names a commit.
    pub confidence: f64,
    /// How many tests of a search may run at once.
    pub hosts: usize,
    /// Failing testcases that pause their run for someone to look at the host (XenRT's
    /// pause-on-fail): none, `ALL`, or a list of testcase names, ids or TC numbers.
    pub pause_on_fail: PauseOn,
    /// How long a paused run waits before it goes on by itself; `None` waits until told.
    pub pause_resume_after: Option<Duration>,
    /// What every run of this policy asks of its host, on top of its sequence's `needs`.
    pub needs: Needs,
    /// Runs on the target branch on a schedule, so that baselines exist.
    pub periodic: Option<Periodic>,
    /// The GitHub repository (`owner/name`) whose webhooks concern this policy: `github`, or
    /// read from a github.com repository URL.
    pub github: Option<String>,
    /// How commits are reported on GitHub: commit statuses (default) or check runs (these
    /// need a GitHub App).
    pub github_report: GithubReport,
    /// GitHub logins that may give `@pushgate` commands in comments.
    pub maintainers: Vec<String>,
    /// Test pull requests to the target (their head merged onto it) and report on GitHub;
    /// they never push.
    pub try_runs: bool,
    pub mail: MailPolicy,
    /// Patch series mailed to this list are applied and tested against this policy's target.
    pub mailing_list: Option<MailingList>,
}

/// A mailing list whose series a policy tests (they never push by themselves).
#[derive(Clone, Debug, PartialEq)]
pub struct MailingList {
    /// The list's name in the store, as `pushgate mail ingest --list` keeps it.
    pub name: String,
    /// Its posting address: replies go to the sender, Cc this.
    pub address: String,
    /// How long an incomplete series waits before the thread hears what is missing.
    pub missing_after: Duration,
    /// Series whose newest mail is older than this are never taken up (an archive read for
    /// the first time holds years of them).
    pub max_age: Duration,
    /// Where the service reads the list from on each pass (besides `pushgate mail ingest`).
    pub source: Option<ListSource>,
    /// Say nothing in the thread when a series passes (failures are always answered).
    pub quiet_on_success: bool,
    /// Let series run on the local provisioner, on pushgate's own machine (a demo, or a lab
    /// where every poster is trusted). Off: series run on test hosts only.
    pub local_hosts: bool,
}

/// Where a list's mail is read from.
#[derive(Clone, Debug, PartialEq)]
pub enum ListSource {
    /// A public-inbox archive: a directory, or an http(s) URL of public-inbox-httpd or lore.
    Inbox(String),
    Maildir(std::path::PathBuf),
}

/// `owner/name` of a github.com URL (`https://github.com/o/n.git`, `git@github.com:o/n`).
pub fn github_name(url: &str) -> Option<String> {
    let rest = url
        .split_once("github.com/")
        .or_else(|| url.split_once("github.com:"))?
        .1;
    let rest = rest.trim_end_matches('/').trim_end_matches(".git");
    let mut parts = rest.split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !owner.is_empty() && !name.is_empty())
        .then(|| format!("{owner}/{name}"))
}

/// A policy's schedule of runs on its target branch (OSSTest's baseline flights).
#[derive(Clone, Debug, PartialEq)]
pub struct Periodic {
    /// How often each sequence runs on the target's head.
    pub every: Duration,
    /// A program that picks what to run next (autopkgtest's selector): it reads the
    /// candidates as JSON on stdin and prints sequence names, one a line.
    pub selector: Option<PathBuf>,
    /// Which of the policy's sequences run on the schedule (all of them by default).
    pub sequences: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    repository: Spanned<String>,
    #[serde(default = "default_staging")]
    staging: Spanned<String>,
    #[serde(default = "default_target")]
    target: Spanned<String>,
    sequences: Spanned<Vec<Spanned<String>>>,
    #[serde(default = "default_mode")]
    mode: Mode,
    #[serde(default = "default_retries")]
    retries: Spanned<u32>,
    #[serde(default)]
    never_passed: NeverPassed,
    retry_broken_after: Option<Spanned<String>>,
    flake_rate: Option<Spanned<f64>>,
    confidence: Option<Spanned<f64>>,
    hosts: Option<Spanned<usize>>,
    pause_on_fail: Option<String>,
    pause_resume_after: Option<Spanned<String>>,
    needs: Option<Spanned<BTreeMap<String, String>>>,
    periodic: Option<Spanned<PeriodicFile>>,
    github: Option<Spanned<String>>,
    #[serde(default)]
    github_report: GithubReport,
    #[serde(default)]
    maintainers: Vec<Spanned<String>>,
    #[serde(default)]
    try_runs: bool,
    #[serde(default)]
    mail: MailFile,
    mailing_list: Option<Spanned<MailingListFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailingListFile {
    name: Spanned<String>,
    address: Spanned<String>,
    missing_after: Option<Spanned<String>>,
    max_age: Option<Spanned<String>>,
    inbox: Option<Spanned<String>>,
    maildir: Option<Spanned<String>>,
    #[serde(default)]
    quiet_on_success: bool,
    #[serde(default)]
    local_hosts: bool,
}

/// `github_report`: what pushgate posts on each tested commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GithubReport {
    #[default]
    Status,
    Check,
    /// Nothing.
    None,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodicFile {
    every: Spanned<String>,
    selector: Option<Spanned<String>>,
    sequences: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailFile {
    list: Option<Spanned<String>>,
    subject_prefix: Option<Spanned<String>>,
    #[serde(default = "yes")]
    authors: bool,
    #[serde(default = "yes")]
    committers: bool,
}

impl Default for MailFile {
    fn default() -> Self {
        MailFile {
            list: None,
            subject_prefix: None,
            authors: true,
            committers: true,
        }
    }
}

fn default_staging() -> Spanned<String> {
    Spanned::new(0..0, "staging".into())
}
fn default_target() -> Spanned<String> {
    Spanned::new(0..0, "master".into())
}
fn default_mode() -> Mode {
    Mode::Push
}
fn default_retries() -> Spanned<u32> {
    Spanned::new(0..0, 1)
}
fn yes() -> bool {
    true
}

/// At most this many tests of one search at once.
const MAX_HOSTS: usize = 64;

/// A paused run goes on by itself after this long, as XenRT's did.
const DEFAULT_PAUSE: Duration = Duration::from_secs(24 * 3600);

/// At most this many retries: more hides real failures and costs host time.
const MAX_RETRIES: u32 = 10;

impl<'a> From<&'a Policy> for crate::store::BranchKey<'a> {
    fn from(p: &'a Policy) -> Self {
        crate::store::BranchKey {
            name: &p.name,
            repository: &p.repository,
            staging: &p.staging,
            target: &p.target,
        }
    }
}

impl Policy {
    /// Loads and validates one policy against the sequences that exist; a repository given
    /// as a local path must be a git repository there.
    pub fn load(path: &Path, sequences: &Sequences) -> Result<Policy, FileErrors> {
        let text = Source::read(path)?;
        let src = Source { path, text: &text };
        let parsed = Self::parse(path, &text, sequences);
        // Said beside the file's other mistakes, when it has some.
        let repository = match &parsed {
            Ok(policy) => Some(policy.repository.clone()),
            Err(_) => src
                .parse::<File>()
                .ok()
                .map(|f| resolve_repository(path, f.repository.get_ref().trim())),
        };
        let missing = repository
            .as_deref()
            .and_then(missing_local_repository)
            .map(|message| src.error(src.span_of_key("repository"), "repository", message));
        match (parsed, missing) {
            (Ok(policy), None) => Ok(policy),
            (Ok(_), Some(e)) => Err(e.into()),
            (Err(mut errors), Some(e)) => {
                errors.0.insert(0, e);
                Err(errors)
            }
            (Err(errors), None) => Err(errors),
        }
    }

    /// Reads a policy's text, reporting every key that is wrong, not only the first.
    pub fn parse(path: &Path, text: &str, sequences: &Sequences) -> Result<Policy, FileErrors> {
        let src = Source { path, text };
        let file: File = src.parse()?;
        let mut errors = FileErrors::default();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| src.whole("", "the file name is not valid UTF-8"))?
            .to_string();

        let written = file.repository.get_ref().trim();
        if written.is_empty() {
            errors.push(src.error(file.repository.span(), "repository", "empty repository"));
        }
        let repository = resolve_repository(path, written);
        errors.take(check_branches(&src, &file));
        let listed = errors
            .take(listed_sequences(&src, &file, sequences))
            .unwrap_or_default();
        let search = errors.take(search_settings(&src, &file));
        let pause_resume_after = errors.take(pause_resume_after(&src, &file)).flatten();
        let list = errors.take(mail_list(&src, &file)).flatten();
        let subject_prefix = errors
            .take(subject_prefix(&src, &file, &name))
            .unwrap_or_default();
        let needs = match &file.needs {
            None => Needs::default(),
            Some(n) => errors
                .take(Needs::parse(n.get_ref()).map_err(|m| src.error(n.span(), "needs", m)))
                .unwrap_or_default(),
        };
        let periodic = match &file.periodic {
            None => None,
            Some(p) => errors.take(periodic(&src, p, &listed)),
        };
        let github = match &file.github {
            Some(g) => errors.take(github_repository(&src, g)),
            None => github_name(&repository),
        };
        let maintainers = errors
            .take(maintainers(&src, &file.maintainers))
            .unwrap_or_default();
        let mailing_list = match &file.mailing_list {
            Some(m) => errors.take(mailing_list(&src, m.get_ref())),
            None => None,
        };
        let Some(search) = search.filter(|_| errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Policy {
            mailing_list,
            github,
            github_report: file.github_report,
            maintainers,
            try_runs: file.try_runs,
            name,
            file: path.to_path_buf(),
            repository,
            staging: file.staging.into_inner(),
            target: file.target.into_inner(),
            sequences: listed,
            mode: file.mode,
            retries: file.retries.into_inner(),
            never_passed: file.never_passed,
            retry_broken_after: search.retry_broken_after,
            flake_rate: search.flake_rate,
            confidence: search.confidence,
            hosts: search.hosts,
            pause_on_fail: file
                .pause_on_fail
                .as_deref()
                .map_or(PauseOn::Never, PauseOn::parse),
            pause_resume_after,
            needs,
            periodic,
            mail: MailPolicy {
                list,
                authors: file.mail.authors,
                committers: file.mail.committers,
                subject_prefix,
            },
        })
    }
}

/// Why a repository given as a local path cannot be used, when it cannot.
fn missing_local_repository(repository: &str) -> Option<String> {
    if is_url(repository) {
        return None;
    }
    let path = Path::new(repository);
    if !path.exists() {
        return Some(format!(
            "{repository} does not exist (a path is relative to this file; a remote repository \
             is a URL such as https://host/repo.git or git@host:repo.git)"
        ));
    }
    match git2::Repository::open(path) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "{repository} is not a git repository: {}",
            e.message()
        )),
    }
}

/// A git URL (`scheme://...`, or scp-like `user@host:path`), not a local path.
fn is_url(repository: &str) -> bool {
    repository.contains("://") || repository.contains('@')
}

/// URLs stay as they are; a relative path is taken relative to the policy file.
fn resolve_repository(policy_file: &Path, repository: &str) -> String {
    if is_url(repository) {
        return repository.to_string();
    }
    let path = Path::new(repository);
    if path.is_absolute() {
        return repository.to_string();
    }
    let base = policy_file.parent().unwrap_or(Path::new("."));
    // Lexically, so `../upstream.git` reads as a plain path in mail and on the page.
    crate::config::lexical_join(base, path)
        .display()
        .to_string()
}

/// Staging and target are valid branch names, and not the same branch.
fn check_branches(src: &Source, file: &File) -> Result<(), FileError> {
    for (field, branch) in [("staging", &file.staging), ("target", &file.target)] {
        let full = format!("refs/heads/{}", branch.get_ref());
        if !git2::Reference::is_valid_name(&full) {
            return Err(src.error(
                branch.span(),
                field,
                format!("`{}` is not a valid branch name", branch.get_ref()),
            ));
        }
    }
    if file.staging.get_ref() == file.target.get_ref() {
        return Err(src.error(
            file.target.span(),
            "target",
            "the target branch must differ from the staging branch",
        ));
    }
    Ok(())
}

/// The policy's sequences: at least one, each one that exists.
fn listed_sequences(
    src: &Source,
    file: &File,
    sequences: &Sequences,
) -> Result<Vec<String>, FileError> {
    let listed = file.sequences.get_ref();
    if listed.is_empty() {
        return Err(src.error(
            file.sequences.span(),
            "sequences",
            "list at least one sequence",
        ));
    }
    for seq in listed {
        if !sequences.contains_key(seq.get_ref()) {
            let known: Vec<&str> = sequences.keys().map(String::as_str).collect();
            return Err(src.error(
                seq.span(),
                "sequences",
                format!(
                    "no sequence named `{}` (known: {})",
                    seq.get_ref(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        }
    }
    Ok(listed.iter().map(|s| s.get_ref().clone()).collect())
}

/// How hard the gate tries: retries, the wait after a broken flight, the finder's settings.
struct Search {
    retry_broken_after: Duration,
    flake_rate: Option<f64>,
    confidence: f64,
    hosts: usize,
}

fn search_settings(src: &Source, file: &File) -> Result<Search, FileErrors> {
    let mut errors = FileErrors::default();
    if *file.retries.get_ref() > MAX_RETRIES {
        errors.push(src.error(
            file.retries.span(),
            "retries",
            format!("at most {MAX_RETRIES} retries"),
        ));
    }
    let retry_broken_after = match &file.retry_broken_after {
        None => Some(Duration::from_secs(600)),
        Some(t) => errors.take(
            parse_duration(t.get_ref()).map_err(|m| src.error(t.span(), "retry_broken_after", m)),
        ),
    };
    let flake_rate = match &file.flake_rate {
        Some(f) if !(0.0..crate::culprit::MAX_FLAKE_RATE).contains(f.get_ref()) => {
            errors.push(src.error(
                f.span(),
                "flake_rate",
                format!(
                    "{} is not in [0, {})",
                    f.get_ref(),
                    crate::culprit::MAX_FLAKE_RATE
                ),
            ));
            None
        }
        f => f.as_ref().map(|f| *f.get_ref()),
    };
    let confidence = match &file.confidence {
        Some(c) if !(0.5..1.0).contains(c.get_ref()) => {
            errors.push(src.error(
                c.span(),
                "confidence",
                format!("{} is not in [0.5, 1)", c.get_ref()),
            ));
            0.99
        }
        c => c.as_ref().map_or(0.99, |c| *c.get_ref()),
    };
    let hosts = match &file.hosts {
        Some(h) if !(1..=MAX_HOSTS).contains(h.get_ref()) => {
            errors.push(src.error(
                h.span(),
                "hosts",
                format!("{} is not between 1 and {MAX_HOSTS}", h.get_ref()),
            ));
            1
        }
        h => h.as_ref().map_or(1, |h| *h.get_ref()),
    };
    match retry_broken_after {
        Some(retry_broken_after) if errors.is_empty() => Ok(Search {
            retry_broken_after,
            flake_rate,
            confidence,
            hosts,
        }),
        _ => Err(errors),
    }
}

/// How long a paused run waits; `never` waits until told.
fn pause_resume_after(src: &Source, file: &File) -> Result<Option<Duration>, FileError> {
    Ok(match &file.pause_resume_after {
        None => Some(DEFAULT_PAUSE),
        Some(t) if t.get_ref().trim() == "never" => None,
        Some(t) => {
            Some(parse_duration(t.get_ref()).map_err(|m| {
                src.error(t.span(), "pause_resume_after", format!("{m}, or `never`"))
            })?)
        }
    })
}

/// The list's address, checked as a mailbox.
fn mail_list(src: &Source, file: &File) -> Result<Option<String>, FileError> {
    Ok(match &file.mail.list {
        None => None,
        Some(addr) => {
            addr.get_ref()
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| {
                    src.error(
                        addr.span(),
                        "mail.list",
                        format!("`{}` is not a mail address: {e}", addr.get_ref()),
                    )
                })?;
            Some(addr.get_ref().clone())
        }
    })
}

/// The subject prefix with its names filled in.
fn subject_prefix(src: &Source, file: &File, name: &str) -> Result<String, FileError> {
    let Some(prefix) = &file.mail.subject_prefix else {
        return Ok(format!("[{name} {}]", file.staging.get_ref()));
    };
    let text = prefix.get_ref();
    let filled = text
        .replace("{policy}", name)
        .replace("{staging}", file.staging.get_ref())
        .replace("{target}", file.target.get_ref());
    if filled.contains(['{', '}']) {
        return Err(src.error(
            prefix.span(),
            "mail.subject_prefix",
            "only `{policy}`, `{staging}` and `{target}` are filled in",
        ));
    }
    if filled.chars().any(char::is_control) || filled.chars().count() > 60 {
        return Err(src.error(
            prefix.span(),
            "mail.subject_prefix",
            "one line of at most 60 characters",
        ));
    }
    Ok(filled.trim().to_string())
}

/// `[periodic]`: how often, which sequences (the policy's own), and the selector program.
fn periodic(
    src: &Source,
    p: &Spanned<PeriodicFile>,
    listed: &[String],
) -> Result<Periodic, FileError> {
    let every = parse_duration(p.get_ref().every.get_ref())
        .map_err(|m| src.error(p.get_ref().every.span(), "periodic.every", m))?;
    if every < Duration::from_secs(60) {
        return Err(src.error(
            p.get_ref().every.span(),
            "periodic.every",
            "run at most once a minute",
        ));
    }
    let sequences = match &p.get_ref().sequences {
        None => listed.to_vec(),
        Some(list) => {
            for name in list.get_ref() {
                if !listed.iter().any(|s| s == name) {
                    return Err(src.error(
                        list.span(),
                        "periodic.sequences",
                        format!("`{name}` is not one of this policy's sequences"),
                    ));
                }
            }
            list.get_ref().clone()
        }
    };
    let selector = match &p.get_ref().selector {
        None => None,
        Some(sel) => {
            let dir = src.path.parent().unwrap_or(Path::new("."));
            let program = dir.join(sel.get_ref());
            if !program.is_file() {
                return Err(src.error(
                    sel.span(),
                    "periodic.selector",
                    format!("{} is not a program", program.display()),
                ));
            }
            Some(program)
        }
    };
    Ok(Periodic {
        every,
        selector,
        sequences,
    })
}

/// `github`: `owner/name`.
fn github_repository(src: &Source, g: &Spanned<String>) -> Result<String, FileError> {
    let name = g.get_ref();
    let parts: Vec<&str> = name.split('/').collect();
    let word = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() != 2 || !parts.iter().all(|p| word(p)) {
        return Err(src.error(
            g.span(),
            "github",
            format!("`{name}` is not a GitHub repository like `owner/name`"),
        ));
    }
    Ok(name.clone())
}

/// `maintainers`: GitHub logins, compared in lower case.
fn maintainers(src: &Source, logins: &[Spanned<String>]) -> Result<Vec<String>, FileError> {
    let mut maintainers = Vec::new();
    for m in logins {
        let login = m.get_ref();
        let ok = !login.is_empty()
            && login.len() <= 39
            && login
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(src.error(
                m.span(),
                "maintainers",
                format!("`{login}` is not a GitHub login"),
            ));
        }
        maintainers.push(login.to_ascii_lowercase());
    }
    Ok(maintainers)
}

/// `[mailing_list]`: the list, where its mail comes from, and how long to wait for it.
fn mailing_list(src: &Source, m: &MailingListFile) -> Result<MailingList, FileError> {
    let address = m.address.get_ref();
    if !address.contains('@') || address.contains(char::is_whitespace) {
        return Err(src.error(
            m.address.span(),
            "mailing_list.address",
            format!("`{address}` is not a mail address"),
        ));
    }
    if m.name.get_ref().trim().is_empty() {
        return Err(src.error(m.name.span(), "mailing_list.name", "is empty".to_string()));
    }
    let missing_after = match &m.missing_after {
        Some(t) => parse_duration(t.get_ref())
            .map_err(|e| src.error(t.span(), "mailing_list.missing_after", e))?,
        None => Duration::from_secs(3600),
    };
    let max_age = match &m.max_age {
        Some(t) => parse_duration(t.get_ref())
            .map_err(|e| src.error(t.span(), "mailing_list.max_age", e))?,
        None => Duration::from_secs(14 * 86_400),
    };
    let source = match (&m.inbox, &m.maildir) {
        (Some(_), Some(maildir)) => {
            return Err(src.error(
                maildir.span(),
                "mailing_list.maildir",
                "give `inbox` or `maildir`, not both".to_string(),
            ))
        }
        (Some(inbox), None) if inbox.get_ref().trim().is_empty() => {
            return Err(src.error(inbox.span(), "mailing_list.inbox", "is empty".to_string()))
        }
        (Some(inbox), None) => Some(ListSource::Inbox(inbox.get_ref().clone())),
        (None, Some(maildir)) => Some(ListSource::Maildir(std::path::PathBuf::from(
            maildir.get_ref(),
        ))),
        (None, None) => None,
    };
    Ok(MailingList {
        name: m.name.get_ref().clone(),
        address: address.clone(),
        missing_after,
        max_age,
        source,
        quiet_on_success: m.quiet_on_success,
        local_hosts: m.local_hosts,
    })
}

/// Loads every policy of a directory; refuses it when any file is wrong, with every error.
pub fn load_dir(dir: &Path, sequences: &Sequences) -> Result<Vec<Policy>, FileErrors> {
    let (policies, errors) = load_dir_reporting(dir, sequences);
    errors.or(|| policies)
}

/// The policies of a directory that load, and every error of those that do not.
pub fn load_dir_reporting(dir: &Path, sequences: &Sequences) -> (Vec<Policy>, FileErrors) {
    let mut errors = FileErrors::default();
    let Some(paths) = errors.take(toml_files(dir, "policies")) else {
        return (Vec::new(), errors);
    };
    if paths.is_empty() {
        errors.push(FileError {
            file: dir.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: "no policy files (*.toml) here (`pushgate init` writes one)".into(),
        });
    }
    let policies = paths
        .iter()
        .filter_map(|p| errors.take(Policy::load(p, sequences)))
        .collect();
    (policies, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_among_the_policies_is_refused_not_waited_on() {
        // `gate --once` blocked forever on a FIFO named `*.toml` in the policies directory.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("a.toml");
        crate::file_error::make_fifo(&fifo);
        let (tx, rx) = std::sync::mpsc::channel();
        let path = dir.path().to_path_buf();
        std::thread::spawn(move || {
            let _ = tx.send(load_dir(&path, &sequences()).map(|_| ()));
        });
        let answer = rx.recv_timeout(std::time::Duration::from_secs(20));
        // Unblock a reader stuck on the FIFO, should there be one, before judging.
        if answer.is_err() {
            let _ = std::fs::write(&fifo, "");
        }
        let e = answer.expect("load_dir waited on the FIFO").unwrap_err();
        let e = &e.0[0];
        assert_eq!(e.file, fifo);
        assert!(e.message.contains("not a regular file"), "{e}");
    }

    fn sequences() -> Sequences {
        let seq = crate::sequence::load_unbound(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sequences/smoke.toml")),
            &Default::default(),
            &[],
        )
        .unwrap();
        let mut s = Sequences::new();
        s.insert("smoke".into(), seq);
        s
    }

    /// The policy, or its first mistake.
    fn parse(text: &str) -> Result<Policy, FileError> {
        Policy::parse(
            Path::new("/etc/pushgate/policies/xen.toml"),
            text,
            &sequences(),
        )
        .map_err(|e| e.0[0].clone())
    }

    #[test]
    fn the_shipped_sample_policy_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let seqs = crate::sequence::load_dir(&root.join("sequences"), &[]).unwrap();
        // Parsed, not loaded: the repository it names is the one `pushgate demo` makes.
        let path = root.join("policies/sample.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let p = Policy::parse(&path, &text, &seqs).unwrap();
        assert_eq!(
            (p.staging.as_str(), p.target.as_str()),
            ("staging", "master")
        );
    }

    #[test]
    fn defaults_and_relative_paths() {
        let p = parse("repository = \"../repo.git\"\nsequences = [\"smoke\"]\n").unwrap();
        assert_eq!(p.name, "xen");
        assert_eq!(p.repository, "/etc/pushgate/repo.git");
        assert_eq!(
            (p.staging.as_str(), p.target.as_str()),
            ("staging", "master")
        );
        assert_eq!((p.mode, p.retries), (Mode::Push, 1));
        assert!(p.mail.authors && p.mail.committers && p.mail.list.is_none());
        let url = parse("repository = \"git://h/x.git\"\nsequences = [\"smoke\"]\n").unwrap();
        assert_eq!(url.repository, "git://h/x.git");
    }

    #[test]
    fn bad_policies_name_line_and_field() {
        let r = "repository = \"/r\"\n";
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("{r}sequences = [\"smoke\", \"nope\"]\n"),
                2,
                "sequences",
            ),
            (format!("{r}sequences = []\n"), 2, "sequences"),
            (
                format!("{r}sequences = [\"smoke\"]\nstaging = \"a..b\"\n"),
                3,
                "staging",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\ntarget = \"staging\"\n"),
                3,
                "target",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\nretries = 99\n"),
                3,
                "retries",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\nretries = -1\n"),
                3,
                "retries",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\nmode = \"yolo\"\n"),
                3,
                "mode",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\nmaintainers = [\"ok\", \"not a login\"]\n"),
                3,
                "maintainers",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\ngithub_report = \"email\"\n"),
                3,
                "github_report",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\nretry_broken_after = \"x\"\n"),
                3,
                "retry_broken_after",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mailing_list]\nname = \"l\"\naddress = \"nowhere\"\n"),
                5,
                "mailing_list.address",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mailing_list]\nname = \"l\"\naddress = \"l@x\"\nmissing_after = \"soon\"\n"),
                6,
                "mailing_list.missing_after",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mailing_list]\nname = \"l\"\naddress = \"l@x\"\ninbox = \"/i\"\nmaildir = \"/m\"\n"),
                7,
                "mailing_list.maildir",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mailing_list]\nname = \"l\"\naddress = \"l@x\"\ninbox = \" \"\n"),
                6,
                "mailing_list.inbox",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mail]\nlist = \"not an address\"\n"),
                4,
                "mail.list",
            ),
            (
                format!("{r}sequences = [\"smoke\"]\n[mail]\nlsit = \"a@b.c\"\n"),
                4,
                "lsit",
            ),
            ("sequences = [\"smoke\"]\n".to_string(), 0, "repository"),
            (
                "repository = \" \"\nsequences = [\"smoke\"]\n".to_string(),
                1,
                "repository",
            ),
        ];
        for (text, line, field) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
            assert!(e.to_string().contains("xen.toml"));
        }
    }

    #[test]
    fn github_names() {
        for (url, name) in [
            (
                "https://github.com/xen-project/xen.git",
                Some("xen-project/xen"),
            ),
            ("git@github.com:xen-project/xen", Some("xen-project/xen")),
            (
                "https://github.com/xen-project/xen/",
                Some("xen-project/xen"),
            ),
            ("https://git.example.org/xen.git", None),
            ("../upstream.git", None),
            ("https://github.com/only-owner", None),
        ] {
            assert_eq!(github_name(url).as_deref(), name, "{url}");
        }
    }

    #[test]
    fn mangled_policies_never_panic() {
        // A cheap, deterministic mutation fuzz of the sample: every byte dropped, or replaced.
        let text = include_str!("../../policies/sample.toml");
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [None, Some(b'"'), Some(b'['), Some(b'=')] {
                let mut m = bytes.to_vec();
                match replacement {
                    None => {
                        m.remove(i);
                    }
                    Some(b) => m[i] = b,
                }
                if let Ok(s) = std::str::from_utf8(&m) {
                    let _ = parse(s);
                }
            }
        }
    }
}
