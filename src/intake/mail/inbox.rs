//! A public-inbox archive, the format lore.kernel.org serves, read with git2.
//!
//! A v2 inbox is a directory with `git/0.git`, `git/1.git` ... ("epochs"): one commit per
//! message, whose tree holds the message as the blob `m` (a deletion commit has `d` instead).
//! Reading is incremental: the caller keeps each epoch's last commit read and passes it back.
//! A remote inbox (`public-inbox-httpd`, lore) is mirrored epoch by epoch with a git fetch
//! first, then read the same way.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository, Sort};

/// Why an inbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("{0}: not a public-inbox archive (no git/0.git, nor a v1 repository)")]
    NotAnInbox(PathBuf),
    #[error("{path}: {source}")]
    Git {
        path: PathBuf,
        #[source]
        source: git2::Error,
    },
    #[error("{url}: cannot mirror epoch {epoch}: {source}")]
    Mirror {
        url: String,
        epoch: u32,
        #[source]
        source: git2::Error,
    },
}

/// One epoch of an inbox.
#[derive(Clone, Debug)]
pub struct Epoch {
    pub number: u32,
    pub path: PathBuf,
}

impl Epoch {
    /// The key its cursor is kept under.
    pub fn cursor_key(&self) -> String {
        format!("inbox:{}", self.path.display())
    }
}

/// A message read from an epoch.
pub struct InboxMessage {
    pub commit: Oid,
    pub raw: Vec<u8>,
}

/// The epochs of the inbox at `dir`, in order (a v1 inbox is one epoch: the repository itself).
pub fn epochs(dir: &Path) -> Result<Vec<Epoch>, InboxError> {
    let git = dir.join("git");
    let mut found: Vec<Epoch> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&git) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".git"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            found.push(Epoch {
                number,
                path: entry.path(),
            });
        }
    }
    if found.is_empty() {
        if Repository::open_bare(dir).is_ok() {
            return Ok(vec![Epoch {
                number: 0,
                path: dir.to_path_buf(),
            }]);
        }
        return Err(InboxError::NotAnInbox(dir.to_path_buf()));
    }
    found.sort_by_key(|e| e.number);
    Ok(found)
}

/// Messages of `epoch` committed after `since` (all of them when None), oldest first, at most
/// `limit`. Deletions are skipped; an epoch with no commits yet has nothing.
pub fn read_epoch(
    epoch: &Epoch,
    since: Option<&str>,
    limit: usize,
) -> Result<Vec<InboxMessage>, InboxError> {
    let git = |source| InboxError::Git {
        path: epoch.path.clone(),
        source,
    };
    let repo = Repository::open_bare(&epoch.path).map_err(git)?;
    let head = match repo
        .find_reference("refs/heads/master")
        .or_else(|_| repo.head())
    {
        Ok(r) => match r.target() {
            Some(oid) => oid,
            None => return Ok(Vec::new()),
        },
        Err(_) => return Ok(Vec::new()),
    };
    let mut walk = repo.revwalk().map_err(git)?;
    walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
        .map_err(git)?;
    walk.push(head).map_err(git)?;
    if let Some(since) = since {
        // A cursor the epoch does not have (a rewritten archive) reads it whole; the store
        // drops what it already holds.
        if let Ok(oid) = Oid::from_str(since) {
            if repo.find_commit(oid).is_ok() {
                walk.hide(oid).map_err(git)?;
            }
        }
    }
    let mut out = Vec::new();
    for oid in walk {
        let oid = oid.map_err(git)?;
        let commit = repo.find_commit(oid).map_err(git)?;
        let tree = commit.tree().map_err(git)?;
        if let Some(entry) = tree.get_name("m") {
            let blob = repo.find_blob(entry.id()).map_err(git)?;
            out.push(InboxMessage {
                commit: oid,
                raw: blob.content().to_vec(),
            });
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Mirrors the inbox at `url` (`https://lore.kernel.org/xen-devel`, or public-inbox-httpd's
/// `http://host/NAME`) into `cache`, epoch by epoch (`URL/git/N.git`), and returns the local
/// directory to read. An epoch that is not there ends the list.
pub fn mirror(url: &str, cache: &Path) -> Result<PathBuf, InboxError> {
    let base = url.trim_end_matches('/');
    let git_dir = cache.join("git");
    std::fs::create_dir_all(&git_dir).map_err(|e| InboxError::Git {
        path: git_dir.clone(),
        source: git2::Error::from_str(&e.to_string()),
    })?;
    for number in 0.. {
        let path = git_dir.join(format!("{number}.git"));
        let existed = path.exists();
        let failed = |source| InboxError::Mirror {
            url: url.to_string(),
            epoch: number,
            source,
        };
        let repo = Repository::init_bare(&path).map_err(failed)?;
        let fetched = repo
            .remote_anonymous(&format!("{base}/git/{number}.git"))
            .and_then(|mut remote| remote.fetch(&["+refs/heads/*:refs/heads/*"], None, None));
        match fetched {
            Ok(()) => {}
            Err(_) if number > 0 && !existed => {
                // No such epoch: the newest one was the last.
                drop(repo);
                let _ = std::fs::remove_dir_all(&path);
                break;
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(cache.to_path_buf())
}
