//! The git side of a policy: a bare mirror of the upstream repository that pushgate fetches the
//! staging and target branches into, reads ranges from, checks runs out of, and pushes from.
//!
//! Every call here blocks (libgit2); the gate runs them on tokio's blocking pool.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use git2::{Direction, Oid, Repository};

use crate::file_lock::FileLock;

pub mod apply;
mod credentials;
pub mod worktree;
pub use credentials::Credentials;
use serde::{Deserialize, Serialize};

/// A commit as reports show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    pub sha: String,
    pub title: String,
    pub author_name: String,
    pub author_email: String,
    pub committer_name: String,
    pub committer_email: String,
}

/// Where one commit stands against another (`Mirror::ahead_of`).
#[derive(Debug, PartialEq, Eq)]
pub enum Ahead {
    /// The tip is the base or one of its ancestors: nothing new.
    Contained,
    /// Neither contains the other.
    Diverged,
    /// The base is an ancestor of the tip; these are the first-parent commits above it,
    /// oldest first; never empty, the tip being one of them.
    Commits(Vec<CommitInfo>),
}

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("cannot reach repository {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error("repository {url} has no branch `{branch}`")]
    UnknownBranch { url: String, branch: String },
    #[error("repository {url} has no branch, tag or commit `{rev}`")]
    UnknownRev { url: String, rev: String },
    #[error("push of {sha} to `{branch}` was refused by {url}: {message}")]
    Rejected {
        url: String,
        branch: String,
        sha: String,
        message: String,
    },
    #[error("git: {context}: {message}")]
    Git { context: String, message: String },
}

fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> RepoError {
    let context = context.into();
    move |e| RepoError::Git {
        context,
        message: e.message().to_string(),
    }
}

/// The local bare mirror of one upstream repository.
#[derive(Clone, Debug)]
pub struct Mirror {
    pub path: PathBuf,
    pub url: String,
    pub credentials: Credentials,
}

impl Mirror {
    /// Opens the mirror named `name` under `dir`, creating it on first use. It is made under a
    /// temporary name and renamed into place, so a kill while it is made leaves no half-made
    /// repository where the mirror belongs; one an older pushgate left (no `HEAD`) is made
    /// anew.
    pub fn open(dir: &Path, name: &str, url: &str) -> Result<Mirror, RepoError> {
        let mirror = Mirror {
            path: dir.join(format!("{name}.git")),
            url: url.to_string(),
            credentials: Credentials::Anonymous,
        };
        let io = |what: &str, path: &Path| {
            let context = format!("{what} {}", path.display());
            move |e: std::io::Error| RepoError::Git {
                context,
                message: e.to_string(),
            }
        };
        // Every gate pass opens its mirror: one that is there costs a stat.
        if mirror.path.join("HEAD").exists() {
            return Ok(mirror);
        }
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        // Under the mirror's lock: the gate and a job opening it at once must not see a
        // directory the other has made but not yet filled.
        let writing = mirror.writing()?;
        let unfinished = mirror.path.exists() && !mirror.path.join("HEAD").exists();
        if unfinished {
            tracing::warn!(mirror = %mirror.path.display(), "making anew a mirror a killed pushgate left unfinished");
            std::fs::remove_dir_all(&mirror.path).map_err(io("removing", &mirror.path))?;
        }
        // What a killed maker left beside it: nobody else makes one while we hold the lock.
        let partial_prefix = format!("{name}.git.partial-");
        for entry in std::fs::read_dir(dir)
            .map_err(io("reading", dir))?
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&partial_prefix)
            {
                std::fs::remove_dir_all(entry.path()).map_err(io("removing", &entry.path()))?;
            }
        }
        if !mirror.path.exists() {
            let partial = dir.join(format!("{partial_prefix}{}", std::process::id()));
            Repository::init_bare(&partial)
                .map_err(git(format!("creating {}", partial.display())))?;
            std::fs::rename(&partial, &mirror.path).map_err(io("creating", &mirror.path))?;
        }
        drop(writing);
        Ok(mirror)
    }

    /// The same mirror, logging in to its upstream with `credentials`.
    pub fn with_credentials(mut self, credentials: Credentials) -> Mirror {
        self.credentials = credentials;
        self
    }

    fn unreachable(&self) -> impl Fn(git2::Error) -> RepoError + '_ {
        |e| RepoError::Unreachable {
            url: self.url.clone(),
            message: local_problem(&self.url).unwrap_or_else(|| e.message().to_string()),
        }
    }

    /// Over one connection: reads what the remote advertises, lets `wanted` pick refspecs
    /// from it, and downloads them (nothing when it picks none).
    fn download<T>(
        &self,
        repo: &Repository,
        wanted: impl FnOnce(&BTreeMap<String, Oid>) -> Result<(Vec<String>, T), RepoError>,
    ) -> Result<(BTreeMap<String, Oid>, T), RepoError> {
        let unreachable = self.unreachable();
        let mut remote = repo.remote_anonymous(&self.url).map_err(&unreachable)?;
        let mut connection = remote
            .connect_auth(
                Direction::Fetch,
                Some(self.credentials.callbacks(&self.url)),
                None,
            )
            .map_err(&unreachable)?;
        let advertised: BTreeMap<String, Oid> = connection
            .list()
            .map_err(&unreachable)?
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect();
        let (refspecs, picked) = wanted(&advertised)?;
        if !refspecs.is_empty() {
            connection
                .remote()
                .download(&refspecs, Some(&mut self.fetch_options()))
                .map_err(&unreachable)?;
        }
        Ok((advertised, picked))
    }

    fn fetch_options(&self) -> git2::FetchOptions<'_> {
        let mut opts = git2::FetchOptions::new();
        opts.remote_callbacks(self.credentials.callbacks(&self.url));
        opts
    }

    /// Serializes what writes to this mirror (fetches, pushes): within the process, as the
    /// gate and a job fetching into one mirror at once would trip over each other's ref locks,
    /// and across processes (the service, `pushgate jobs`, a restart beside a dying one), with
    /// an `flock` on a file beside the mirror, which the kernel releases when its holder dies.
    /// Under both, at this process's first write, a git lock file among the refs only writers
    /// touch was left by a writer that was killed (a killed pushgate's, before this one
    /// started), and is removed: otherwise every later fetch failed on it. Once per process,
    /// as `refs/pushgate` may hold a ref per branch upstream.
    fn writing(&self) -> Result<Writing, RepoError> {
        // Per mirror: whether this process has swept it yet.
        type Locks = Mutex<HashMap<PathBuf, &'static Mutex<bool>>>;
        static LOCKS: OnceLock<Locks> = OnceLock::new();
        let lock: &'static Mutex<bool> = {
            let mut locks = LOCKS
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            locks
                .entry(self.path.clone())
                .or_insert_with(|| Box::leak(Box::new(Mutex::new(false))))
        };
        let mut thread = lock.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.path.with_extension("git.writer");
        let process = FileLock::take(&lock_path).map_err(|e| RepoError::Git {
            context: format!("locking {}", lock_path.display()),
            message: e.to_string(),
        })?;
        if !*thread {
            for namespace in ["refs/remotes", "refs/pushgate"] {
                remove_lock_files(&self.path.join(namespace));
            }
            *thread = true;
        }
        Ok(Writing {
            _process: process,
            _thread: thread,
        })
    }

    fn repo(&self) -> Result<Repository, RepoError> {
        // As git itself, trust what the object store holds (a fetched pack's objects were
        // hashed when it was indexed): checking every read doubles the cost of reading the
        // range at Linux's size.
        static TRUST_OBJECTS: std::sync::Once = std::sync::Once::new();
        TRUST_OBJECTS.call_once(|| git2::opts::strict_hash_verification(false));
        Repository::open_bare(&self.path).map_err(git(format!("opening {}", self.path.display())))
    }

    /// Fetches `branches` and returns the upstream head of each, exactly as the remote
    /// advertises them now (a branch deleted upstream is an error, not a stale head).
    pub fn fetch(&self, branches: &[&str]) -> Result<BTreeMap<String, Oid>, RepoError> {
        let _writing = self.writing()?;
        let repo = self.repo()?;
        let (_, heads) = self.download(&repo, |advertised| {
            let mut heads = BTreeMap::new();
            for branch in branches {
                let oid = advertised
                    .get(&format!("refs/heads/{branch}"))
                    .ok_or_else(|| RepoError::UnknownBranch {
                        url: self.url.clone(),
                        branch: branch.to_string(),
                    })?;
                heads.insert(branch.to_string(), *oid);
            }
            let missing: Vec<String> = heads
                .iter()
                .filter(|(_, oid)| repo.find_commit(**oid).is_err())
                .map(|(b, _)| format!("+refs/heads/{b}:refs/remotes/origin/{b}"))
                .collect();
            Ok((missing, heads))
        })?;
        for (branch, oid) in &heads {
            repo.reference(
                &format!("refs/remotes/origin/{branch}"),
                *oid,
                true,
                "pushgate: fetch",
            )
            .map_err(git(format!("updating the mirror's `{branch}`")))?;
        }
        Ok(heads)
    }

    /// Fetches what `rev` names upstream (a branch, a tag, a full ref, or a commit id on one
    /// of the branches) and returns its commit.
    pub fn fetch_rev(&self, rev: &str) -> Result<Oid, RepoError> {
        let _writing = self.writing()?;
        let repo = self.repo()?;
        let unknown = || RepoError::UnknownRev {
            url: self.url.clone(),
            rev: rev.to_string(),
        };
        let (advertised, named) = self.download(&repo, |advertised| {
            let named = [
                format!("refs/heads/{rev}"),
                format!("refs/tags/{rev}"),
                rev.to_string(),
            ]
            .into_iter()
            .find(|r| r.starts_with("refs/") && advertised.contains_key(r));
            let refspecs = match &named {
                Some(r) => vec![format!(
                    "+{r}:refs/pushgate/jobs/{}",
                    r.trim_start_matches("refs/")
                )],
                // A commit id: look on every branch, and on GitHub's pull request heads.
                None if rev.len() >= 4 && rev.chars().all(|c| c.is_ascii_hexdigit()) => vec![
                    "+refs/heads/*:refs/pushgate/jobs/heads/*".to_string(),
                    "+refs/pull/*/head:refs/pushgate/jobs/pull/*".to_string(),
                ],
                None => return Err(unknown()),
            };
            Ok((refspecs, named))
        })?;
        let object = match &named {
            Some(r) => repo.find_object(advertised[r], None),
            None => repo.revparse_single(rev),
        }
        .map_err(|_| unknown())?;
        let commit = object.peel_to_commit().map_err(|_| unknown())?;
        Ok(commit.id())
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: Oid, descendant: Oid) -> Result<bool, RepoError> {
        if ancestor == descendant {
            return Ok(true);
        }
        self.repo()?
            .graph_descendant_of(descendant, ancestor)
            .map_err(git("comparing commits"))
    }

    /// Where `tip` stands against `base`, and the first-parent commits of `base..tip` when it
    /// is ahead: what the gate plans a flight from.
    ///
    /// The usual case (master on staging's first-parent line) reads only that line down to
    /// `base`: a commit above `base` on the line is `base`'s descendant, so it is in the range
    /// without a walk of the whole history. The line is given up once its commits are a day
    /// older than `base` (clocks and rebases skew, so the time only bounds the waste), and the
    /// answer is then worked out exactly, as `git merge-base --is-ancestor` would.
    pub fn ahead_of(&self, base: Oid, tip: Oid) -> Result<Ahead, RepoError> {
        if base == tip {
            return Ok(Ahead::Contained);
        }
        let repo = self.repo()?;
        let read = |oid| repo.find_commit(oid).map_err(git("reading a commit"));
        let give_up_below = read(base)?.committer().when().seconds() - 24 * 60 * 60;
        let mut line = Vec::new();
        let mut at = read(tip)?;
        loop {
            line.push(commit_info(&at));
            match at.parent_id(0) {
                Ok(parent) if parent == base => {
                    line.reverse();
                    return Ok(Ahead::Commits(line));
                }
                Ok(parent) => {
                    at = read(parent)?;
                    if at.committer().when().seconds() < give_up_below {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let descendant_of = |a, b| {
            repo.graph_descendant_of(a, b)
                .map_err(git("comparing commits"))
        };
        if descendant_of(base, tip)? {
            return Ok(Ahead::Contained);
        }
        if !descendant_of(tip, base)? {
            return Ok(Ahead::Diverged);
        }
        Ok(Ahead::Commits(first_parent_range(&repo, base, tip)?))
    }

    /// The first-parent commits of `base..tip`, oldest first: what the gate can push one by one.
    pub fn first_parent_range(&self, base: Oid, tip: Oid) -> Result<Vec<CommitInfo>, RepoError> {
        first_parent_range(&self.repo()?, base, tip)
    }

    /// Merges `head` onto `target` as `git merge` would, in a commit no branch points at (kept
    /// from garbage collection by a ref named after `label`): what a pull request would become.
    /// `Ok(Err(paths))` names the conflicting paths when it does not merge cleanly.
    pub fn merge_onto(
        &self,
        head: Oid,
        target: Oid,
        label: &str,
    ) -> Result<Result<Oid, Vec<String>>, RepoError> {
        let _writing = self.writing()?;
        let repo = self.repo()?;
        let (ours, theirs) = (
            repo.find_commit(target)
                .map_err(git("reading the target"))?,
            repo.find_commit(head).map_err(git("reading the head"))?,
        );
        let mut index = repo
            .merge_commits(&ours, &theirs, None)
            .map_err(git("merging"))?;
        if index.has_conflicts() {
            let mut paths: Vec<String> = index
                .conflicts()
                .map_err(git("listing conflicts"))?
                .filter_map(|c| c.ok())
                .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                .collect();
            paths.dedup();
            return Ok(Err(paths));
        }
        let tree = index
            .write_tree_to(&repo)
            .and_then(|t| repo.find_tree(t))
            .map_err(git("writing the merged tree"))?;
        let me = git2::Signature::now("pushgate", "pushgate@localhost")
            .map_err(git("making a signature"))?;
        let merged = repo
            .commit(
                None,
                &me,
                &me,
                &format!(
                    "Try {label}: merge {} onto {}",
                    short(&head.to_string()),
                    short(&target.to_string())
                ),
                &tree,
                &[&ours, &theirs],
            )
            .map_err(git("making the merge commit"))?;
        repo.reference(
            &format!("refs/pushgate/try/{label}"),
            merged,
            true,
            "pushgate: try merge",
        )
        .map_err(git("keeping the merge commit"))?;
        Ok(Ok(merged))
    }

    /// The commit `rev` (a full or abbreviated id) names among what the mirror has fetched.
    pub fn resolve(&self, rev: &str) -> Result<Oid, RepoError> {
        let unknown = || RepoError::UnknownRev {
            url: self.url.clone(),
            rev: rev.to_string(),
        };
        let repo = self.repo()?;
        let object = repo.revparse_single(rev).map_err(|_| unknown())?;
        let commit = object.peel_to_commit().map_err(|_| unknown())?;
        Ok(commit.id())
    }

    pub fn commit_info(&self, sha: Oid) -> Result<CommitInfo, RepoError> {
        let repo = self.repo()?;
        let commit = repo.find_commit(sha).map_err(git("reading a commit"))?;
        Ok(commit_info(&commit))
    }

    /// Pushes `sha` to `branch` upstream without force, and only while the branch is still at
    /// `expected` (the value the decision was made against): a branch that moved is refused
    /// here, and a push that is not a fast-forward is refused by the remote.
    ///
    /// To a repository on a local path, git's own `push` does it in a process of its own:
    /// libgit2 would write the upstream's refs from inside this process, so a kill mid-push
    /// left the upstream's `master.lock` behind and every later push to it refused. git's
    /// receive-pack finishes (or abandons cleanly) a push whatever happens to pushgate, and
    /// runs the upstream's hooks as any other push would.
    pub fn push(&self, sha: Oid, branch: &str, expected: Oid) -> Result<(), RepoError> {
        let _writing = self.writing()?;
        let repo = self.repo()?;
        let staging_ref = "refs/pushgate/push";
        repo.reference(staging_ref, sha, true, "pushgate: push")
            .map_err(git("preparing the push"))?;
        let rejected = |message: String| RepoError::Rejected {
            url: self.url.clone(),
            branch: branch.to_string(),
            sha: sha.to_string(),
            message,
        };
        let unreachable = self.unreachable();
        let mut remote = repo.remote_anonymous(&self.url).map_err(&unreachable)?;
        let mut connection = remote
            .connect_auth(
                Direction::Push,
                Some(self.credentials.callbacks(&self.url)),
                None,
            )
            .map_err(&unreachable)?;
        let now = connection
            .list()
            .map_err(&unreachable)?
            .iter()
            .find(|h| h.name() == format!("refs/heads/{branch}"))
            .map(|h| h.oid());
        if now != Some(expected) {
            return Err(rejected(format!(
                "`{branch}` is at {}, not at {} as expected",
                now.map_or("nothing".to_string(), |o| short(&o.to_string()).to_string()),
                short(&expected.to_string())
            )));
        }
        if is_local_path(&self.url) {
            drop(connection);
            self.push_with_git(&repo, sha, branch, expected)
                .map_err(&rejected)?;
            return self.pushed(&repo, sha, branch);
        }
        let mut refused: Option<String> = None;
        let result = {
            let mut callbacks = self.credentials.callbacks(&self.url);
            callbacks.push_update_reference(|_, status| {
                if let Some(message) = status {
                    refused = Some(message.to_string());
                }
                Ok(())
            });
            let mut opts = git2::PushOptions::new();
            opts.remote_callbacks(callbacks);
            connection.remote().push(
                &[format!("{staging_ref}:refs/heads/{branch}")],
                Some(&mut opts),
            )
        };
        if let Err(e) = result {
            use git2::ErrorClass::*;
            return Err(match e.class() {
                Net | Http | Ssh | Ssl | Os => unreachable(e),
                _ => rejected(e.message().to_string()),
            });
        }
        if let Some(message) = refused {
            return Err(rejected(message));
        }
        self.pushed(&repo, sha, branch)
    }

    /// The mirror's copy of `branch` follows a push of `sha` to it.
    fn pushed(&self, repo: &Repository, sha: Oid, branch: &str) -> Result<(), RepoError> {
        repo.reference(
            &format!("refs/remotes/origin/{branch}"),
            sha,
            true,
            "pushgate: pushed",
        )
        .map_err(git("updating the mirror after the push"))?;
        Ok(())
    }

    /// `git push` of `sha` to `branch` of a repository on a local path, as a compare-and-swap
    /// against `expected` (a lease) of a fast-forward (checked here first, since a lease
    /// forces). In a process group of its own, so that a Ctrl-C or a service manager's signal
    /// to pushgate's group does not stop it halfway; it outlives a killed pushgate. The error
    /// is git's own words.
    fn push_with_git(
        &self,
        repo: &Repository,
        sha: Oid,
        branch: &str,
        expected: Oid,
    ) -> Result<(), String> {
        let forward = repo.graph_descendant_of(sha, expected).unwrap_or(false);
        if sha != expected && !forward {
            return Err(format!(
                "{} is not a fast-forward of {}",
                short(&sha.to_string()),
                short(&expected.to_string())
            ));
        }
        let mut command = std::process::Command::new("git");
        command
            .arg("--git-dir")
            .arg(&self.path)
            .args(["push", "--porcelain"])
            .arg(format!("--force-with-lease=refs/heads/{branch}:{expected}"))
            .arg(&self.url)
            .arg(format!("{sha}:refs/heads/{branch}"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null());
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let out = command
            .output()
            .map_err(|e| format!("cannot run git push (is git installed?): {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        // --porcelain puts each ref's fate on standard output (`!\t<from>:<to>\t[rejected]
        // (stale info)`); anything else (no such repository) is on standard error.
        let said = String::from_utf8_lossy(&out.stdout);
        let refused = said.lines().find(|l| l.starts_with('!'));
        let message = match refused {
            Some(line) => line.split('\t').skip(2).collect::<Vec<_>>().join(" "),
            None => String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        };
        Err(format!("git push: {message}"))
    }
}

/// Whether `url` names a repository on this machine: a path or a `file://` URL, not a URL of
/// another scheme nor scp's `host:path`.
fn is_local_path(url: &str) -> bool {
    if url.starts_with("file://") {
        return true;
    }
    if url.contains("://") {
        return false;
    }
    // `host:path` has its colon before any slash; a path may hold a colon after one.
    match (url.find(':'), url.find('/')) {
        (Some(colon), Some(slash)) => slash < colon,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// A mirror's writer lock ([`Mirror::writing`]); released when dropped.
struct Writing {
    _process: FileLock,
    _thread: std::sync::MutexGuard<'static, bool>,
}

/// What is wrong with a repository on a local path, in words: libgit2 calls a path where
/// nothing is "an unsupported URL protocol".
fn local_problem(url: &str) -> Option<String> {
    if !is_local_path(url) {
        return None;
    }
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    match std::fs::metadata(path) {
        Err(e) => Some(format!("no repository at this path: {e}")),
        Ok(_) if Repository::open(path).is_err() => {
            Some("this path is not a git repository".to_string())
        }
        Ok(_) => None,
    }
}

/// The branches a remote repository advertises and where they point, as `git ls-remote
/// --heads` lists them: what `pushgate check` asks, which fetches nothing and writes nothing.
pub fn remote_heads(
    url: &str,
    credentials: &Credentials,
) -> Result<BTreeMap<String, Oid>, RepoError> {
    let unreachable = |e: git2::Error| RepoError::Unreachable {
        url: url.to_string(),
        message: local_problem(url).unwrap_or_else(|| e.message().to_string()),
    };
    let mut remote = git2::Remote::create_detached(url).map_err(unreachable)?;
    let connection = remote
        .connect_auth(Direction::Fetch, Some(credentials.callbacks(url)), None)
        .map_err(unreachable)?;
    let heads = connection
        .list()
        .map_err(unreachable)?
        .iter()
        .filter_map(|h| Some((h.name().strip_prefix("refs/heads/")?.to_string(), h.oid())))
        .collect();
    Ok(heads)
}

/// Every git lock file (`*.lock`) under `dir`.
pub fn lock_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                found.push(path);
            }
        }
    }
    found
}

/// Removes every `*.lock` under `dir` (a killed writer's), saying so.
fn remove_lock_files(dir: &Path) {
    for path in lock_files(dir) {
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::warn!(lock = %path.display(), "removed a lock a killed pushgate left")
            }
            Err(e) => {
                tracing::warn!(lock = %path.display(), error = %e, "cannot remove a stale lock")
            }
        }
    }
}

/// The first-parent commits of `base..tip` that `base` cannot reach, oldest first.
fn first_parent_range(
    repo: &Repository,
    base: Oid,
    tip: Oid,
) -> Result<Vec<CommitInfo>, RepoError> {
    let mut walk = repo.revwalk().map_err(git("walking history"))?;
    walk.push(tip).map_err(git("walking history"))?;
    walk.hide(base).map_err(git("walking history"))?;
    let in_range: HashSet<Oid> = walk
        .collect::<Result<_, _>>()
        .map_err(git("walking history"))?;
    let mut out = Vec::new();
    let mut at = tip;
    while in_range.contains(&at) {
        let commit = repo.find_commit(at).map_err(git("reading a commit"))?;
        out.push(commit_info(&commit));
        match commit.parent_id(0) {
            Ok(parent) => at = parent,
            Err(_) => break,
        }
    }
    out.reverse();
    Ok(out)
}

fn commit_info(commit: &git2::Commit) -> CommitInfo {
    let author = commit.author();
    let committer = commit.committer();
    CommitInfo {
        sha: commit.id().to_string(),
        title: commit.summary().unwrap_or("").to_string(),
        author_name: author.name().unwrap_or("").to_string(),
        author_email: author.email().unwrap_or("").to_string(),
        committer_name: committer.name().unwrap_or("").to_string(),
        committer_email: committer.email().unwrap_or("").to_string(),
    }
}

pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

#[cfg(test)]
mod tests {
    use git2::{Repository, Signature, Time};

    use super::*;

    const DAY: i64 = 24 * 60 * 60;

    /// A bare repository and a way to make commits in it at chosen times.
    struct Repo {
        _dir: tempfile::TempDir,
        mirror: Mirror,
        repo: Repository,
    }

    impl Repo {
        fn new() -> Repo {
            let dir = tempfile::tempdir().unwrap();
            let mirror = Mirror::open(dir.path(), "m", "unused").unwrap();
            let repo = Repository::open_bare(&mirror.path).unwrap();
            Repo {
                _dir: dir,
                mirror,
                repo,
            }
        }

        fn commit(&self, title: &str, parents: &[Oid], at: i64) -> Oid {
            let sig = Signature::new("A", "a@example.org", &Time::new(at, 0)).unwrap();
            let tree = self.repo.treebuilder(None).unwrap().write().unwrap();
            let tree = self.repo.find_tree(tree).unwrap();
            let parents: Vec<_> = parents
                .iter()
                .map(|p| self.repo.find_commit(*p).unwrap())
                .collect();
            let parents: Vec<_> = parents.iter().collect();
            self.repo
                .commit(None, &sig, &sig, title, &tree, &parents)
                .unwrap()
        }

        fn line(&self, from: Oid, titles: &[&str], start: i64) -> Vec<Oid> {
            let mut at = from;
            titles
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    at = self.commit(t, &[at], start + i as i64);
                    at
                })
                .collect()
        }

        fn titles(&self, base: Oid, tip: Oid) -> Result<Vec<String>, Ahead> {
            match self.mirror.ahead_of(base, tip).unwrap() {
                Ahead::Commits(c) => Ok(c.into_iter().map(|c| c.title).collect()),
                other => Err(other),
            }
        }
    }

    #[test]
    fn a_half_made_mirror_and_a_killed_writers_locks_are_cleared_under_the_writer_lock() {
        let dir = tempfile::tempdir().unwrap();
        // What a kill while making the mirror left, before mirrors were made aside: no HEAD.
        std::fs::create_dir_all(dir.path().join("m.git/refs")).unwrap();
        std::fs::create_dir_all(dir.path().join("m.git.partial-1")).unwrap();
        let mirror = Mirror::open(dir.path(), "m", "unused").unwrap();
        assert!(mirror.repo().is_ok());
        assert!(!dir.path().join("m.git.partial-1").exists());
        // A mirror a killed pushgate wrote to: at this process's first write to it, lock files
        // of refs only writers touch go; a worktree's branch lock is not ours.
        Repository::init_bare(dir.path().join("k.git")).unwrap();
        let mirror = Mirror::open(dir.path(), "k", "unused").unwrap();
        let path = &mirror.path;
        for d in [
            "refs/remotes/origin",
            "refs/pushgate/jobs/heads",
            "refs/heads",
        ] {
            std::fs::create_dir_all(path.join(d)).unwrap();
        }
        for f in [
            "refs/remotes/origin/master.lock",
            "refs/pushgate/jobs/heads/x.lock",
            "refs/heads/run-1.lock",
        ] {
            std::fs::write(path.join(f), "").unwrap();
        }
        drop(mirror.writing().unwrap());
        assert!(!path.join("refs/remotes/origin/master.lock").exists());
        assert!(!path.join("refs/pushgate/jobs/heads/x.lock").exists());
        assert!(path.join("refs/heads/run-1.lock").exists());
    }

    #[test]
    fn local_paths_are_told_from_remote_urls() {
        for local in [
            "/srv/git/xen.git",
            "../upstream.git",
            "file:///srv/x.git",
            "x.git",
            "./a:b",
        ] {
            assert!(is_local_path(local), "{local}");
        }
        for remote in [
            "https://github.com/xen/xen.git",
            "ssh://git@host/x.git",
            "git@github.com:xen/xen.git",
            "host:x.git",
            "git://host/x",
        ] {
            assert!(!is_local_path(remote), "{remote}");
        }
    }

    #[test]
    fn ahead_on_the_first_parent_line_lists_the_line_oldest_first() {
        let r = Repo::new();
        let root = r.commit("root", &[], 1_000 * DAY);
        let line = r.line(root, &["a", "b", "c"], 1_000 * DAY);
        assert_eq!(
            r.titles(root, line[2]),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(r.titles(line[0], line[2]), Ok(vec!["b".into(), "c".into()]));
        assert_eq!(r.titles(line[1], line[2]), Ok(vec!["c".into()]));
    }

    #[test]
    fn a_tip_the_base_holds_is_contained_and_unrelated_lines_diverge() {
        let r = Repo::new();
        let root = r.commit("root", &[], 1_000 * DAY);
        let main = r.line(root, &["a", "b"], 1_000 * DAY);
        let side = r.line(root, &["x"], 1_000 * DAY);
        assert_eq!(r.titles(main[1], main[1]), Err(Ahead::Contained));
        assert_eq!(r.titles(main[1], main[0]), Err(Ahead::Contained));
        assert_eq!(r.titles(main[1], root), Err(Ahead::Contained));
        assert_eq!(r.titles(main[1], side[0]), Err(Ahead::Diverged));
        assert_eq!(r.titles(side[0], main[1]), Err(Ahead::Diverged));
    }

    #[test]
    fn a_base_reached_only_through_a_merge_gives_the_first_parent_commits_it_cannot_reach() {
        let r = Repo::new();
        // The first-parent line is a day and more older than the base, so that the quick
        // walk gives up there, and the root too, so that it would also end there.
        let root = r.commit("root", &[], 1_000 * DAY);
        let old = r.line(root, &["m1", "m2"], 1_000 * DAY);
        let side = r.commit("side", &[root], 1_010 * DAY);
        let merge = r.commit("merge", &[old[1], side], 1_010 * DAY);
        let tip = r.commit("tip", &[merge], 1_010 * DAY);
        assert_eq!(
            r.titles(side, tip),
            Ok(vec!["m1".into(), "m2".into(), "merge".into(), "tip".into()])
        );
        // And the same answer as the walk of the whole range.
        let walked: Vec<String> = r
            .mirror
            .first_parent_range(side, tip)
            .unwrap()
            .into_iter()
            .map(|c| c.title)
            .collect();
        assert_eq!(r.titles(side, tip), Ok(walked));
    }

    #[test]
    fn a_base_on_the_line_behind_commits_with_older_clocks_is_still_found() {
        let r = Repo::new();
        // Rebased commits keep clocks older than the base's by far: the quick walk gives up,
        // the exact one finds the base all the same.
        let root = r.commit("root", &[], 1_000 * DAY);
        let base = r.commit("base", &[root], 1_100 * DAY);
        let line = r.line(base, &["old1", "old2"], 1_000 * DAY);
        assert_eq!(
            r.titles(base, line[1]),
            Ok(vec!["old1".into(), "old2".into()])
        );
    }
}
