//! Throwaway checkouts: linked worktrees with a detached HEAD, for runs and bisection.

use std::path::Path;

use git2::{Oid, Repository};

/// Adds a worktree named `name` at `dir` with `commit` checked out, HEAD detached. libgit2
/// checks a worktree out on a branch, so a throwaway branch is made for it and deleted once
/// the worktree's HEAD is detached.
pub fn add_detached(
    repo: &Repository,
    name: &str,
    dir: &Path,
    commit: Oid,
) -> Result<(), git2::Error> {
    prune_stale(repo);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| git2::Error::from_str(&format!("{}: {e}", parent.display())))?;
    }
    let target = repo.find_commit(commit)?;
    let mut branch = repo.branch(name, &target, true)?;
    let result = (|| {
        let mut opts = git2::WorktreeAddOptions::new();
        opts.reference(Some(branch.get()));
        let wt = repo.worktree(name, dir, Some(&opts))?;
        let wt_repo = Repository::open_from_worktree(&wt)?;
        wt_repo.set_head_detached(commit)
    })();
    branch.delete()?;
    result
}

/// Moves an existing worktree to `commit`, overwriting tracked files. Untracked files (build
/// output) stay, as with `git bisect`, so builds can be incremental.
pub fn switch(dir: &Path, commit: Oid) -> Result<(), git2::Error> {
    let repo = Repository::open(dir)?;
    repo.set_head_detached(commit)?;
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
}

/// Removes the checkout and its registration in the repository it came from.
pub fn remove(dir: &Path) -> Result<(), String> {
    let repo = Repository::open(dir).map_err(|e| e.message().to_string())?;
    let parent = Repository::open(repo.commondir()).ok();
    std::fs::remove_dir_all(dir).map_err(|e| e.to_string())?;
    if let Some(parent) = parent {
        if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
            if let Ok(wt) = parent.find_worktree(name) {
                wt.prune(Some(git2::WorktreePruneOptions::new().valid(true)))
                    .map_err(|e| e.message().to_string())?;
            }
        }
    }
    Ok(())
}

/// Forgets the worktrees whose checkout is gone (a crashed run's, once its directory was
/// removed), so their registrations do not pile up.
pub fn prune_stale(repo: &Repository) {
    let Ok(names) = repo.worktrees() else { return };
    for name in names.iter().flatten() {
        if let Ok(wt) = repo.find_worktree(name) {
            // Default options prune only what libgit2 finds invalid (its checkout is gone) and
            // unlocked, so a checkout in use is never touched.
            if wt.validate().is_err() {
                if let Err(e) = wt.prune(None) {
                    tracing::warn!(worktree = name, error = %e, "could not prune a stale worktree");
                }
            }
        }
    }
}
