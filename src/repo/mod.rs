//! The git side of a policy: a bare mirror of the upstream repository that pushgate fetches the
//! staging and target branches into, reads ranges from, checks runs out of, and pushes from.
//!
//! Every call here blocks (libgit2); the gate runs them on tokio's blocking pool.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use git2::{Direction, Oid, Repository};

pub mod worktree;
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
}

impl Mirror {
    /// Opens the mirror named `name` under `dir`, creating it on first use.
    pub fn open(dir: &Path, name: &str, url: &str) -> Result<Mirror, RepoError> {
        let path = dir.join(format!("{name}.git"));
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(|e| RepoError::Git {
                context: format!("creating {}", dir.display()),
                message: e.to_string(),
            })?;
            Repository::init_bare(&path).map_err(git(format!("creating {}", path.display())))?;
        }
        Ok(Mirror {
            path,
            url: url.to_string(),
        })
    }

    fn repo(&self) -> Result<Repository, RepoError> {
        Repository::open_bare(&self.path).map_err(git(format!("opening {}", self.path.display())))
    }

    /// Fetches `branches` and returns the upstream head of each, exactly as the remote
    /// advertises them now (a branch deleted upstream is an error, not a stale head).
    pub fn fetch(&self, branches: &[&str]) -> Result<BTreeMap<String, Oid>, RepoError> {
        let repo = self.repo()?;
        let unreachable = |e: git2::Error| RepoError::Unreachable {
            url: self.url.clone(),
            message: e.message().to_string(),
        };
        let mut remote = repo.remote_anonymous(&self.url).map_err(unreachable)?;
        remote.connect(Direction::Fetch).map_err(unreachable)?;
        let advertised: BTreeMap<String, Oid> = remote
            .list()
            .map_err(unreachable)?
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect();
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
        if !missing.is_empty() {
            remote.download(&missing, None).map_err(unreachable)?;
        }
        remote.disconnect().map_err(unreachable)?;
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
        let repo = self.repo()?;
        let unreachable = |e: git2::Error| RepoError::Unreachable {
            url: self.url.clone(),
            message: e.message().to_string(),
        };
        let unknown = || RepoError::UnknownRev {
            url: self.url.clone(),
            rev: rev.to_string(),
        };
        let mut remote = repo.remote_anonymous(&self.url).map_err(unreachable)?;
        remote.connect(Direction::Fetch).map_err(unreachable)?;
        let advertised: BTreeMap<String, Oid> = remote
            .list()
            .map_err(unreachable)?
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect();
        let named = [
            format!("refs/heads/{rev}"),
            format!("refs/tags/{rev}"),
            rev.to_string(),
        ]
        .into_iter()
        .find(|r| r.starts_with("refs/") && advertised.contains_key(r));
        let refspec = match &named {
            Some(r) => format!("+{r}:refs/pushgate/jobs/{}", r.trim_start_matches("refs/")),
            None if rev.len() >= 4 && rev.chars().all(|c| c.is_ascii_hexdigit()) => {
                "+refs/heads/*:refs/pushgate/jobs/heads/*".to_string()
            }
            None => return Err(unknown()),
        };
        remote
            .download(&[refspec.as_str()], None)
            .map_err(unreachable)?;
        remote.disconnect().map_err(unreachable)?;
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

    /// The first-parent commits of `base..tip`, oldest first: what the gate can push one by one.
    pub fn first_parent_range(&self, base: Oid, tip: Oid) -> Result<Vec<CommitInfo>, RepoError> {
        let repo = self.repo()?;
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

    pub fn commit_info(&self, sha: Oid) -> Result<CommitInfo, RepoError> {
        let repo = self.repo()?;
        let commit = repo.find_commit(sha).map_err(git("reading a commit"))?;
        Ok(commit_info(&commit))
    }

    /// Pushes `sha` to `branch` upstream without force: the remote refuses anything but a
    /// fast-forward from the value it has.
    pub fn push(&self, sha: Oid, branch: &str) -> Result<(), RepoError> {
        let repo = self.repo()?;
        let staging_ref = "refs/pushgate/push";
        repo.reference(staging_ref, sha, true, "pushgate: push")
            .map_err(git("preparing the push"))?;
        let mut remote = repo
            .remote_anonymous(&self.url)
            .map_err(|e| RepoError::Unreachable {
                url: self.url.clone(),
                message: e.message().to_string(),
            })?;
        let mut refused: Option<String> = None;
        let result = {
            let mut callbacks = git2::RemoteCallbacks::new();
            callbacks.push_update_reference(|_, status| {
                if let Some(message) = status {
                    refused = Some(message.to_string());
                }
                Ok(())
            });
            let mut opts = git2::PushOptions::new();
            opts.remote_callbacks(callbacks);
            remote.push(
                &[format!("{staging_ref}:refs/heads/{branch}")],
                Some(&mut opts),
            )
        };
        let rejected = |message: String| RepoError::Rejected {
            url: self.url.clone(),
            branch: branch.to_string(),
            sha: sha.to_string(),
            message,
        };
        result.map_err(|e| rejected(e.message().to_string()))?;
        if let Some(message) = refused {
            return Err(rejected(message));
        }
        repo.reference(
            &format!("refs/remotes/origin/{branch}"),
            sha,
            true,
            "pushgate: pushed",
        )
        .map_err(git("updating the mirror after the push"))?;
        Ok(())
    }
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
