//! Applying a series of patches onto a base, as `git am` would, without a worktree.
//!
//! Each patch is parsed by libgit2 (`Diff::from_buffer`), applied to the previous commit's
//! tree in memory, and committed with its author, date and message; no ref and no
//! working tree is touched, so a series that does not apply leaves nothing behind. When a
//! patch fails, its files are tried one by one to name the one that did not apply.

use git2::{ApplyOptions, Diff, Oid, Repository, Signature, Time};

/// One patch as git am commits it. Where it came from (a mail, a file) is the caller's
/// business.
#[derive(Clone, Debug)]
pub struct Patch<'a> {
    /// The diff, in the bytes its author's charset wrote.
    pub diff: &'a [u8],
    pub author_name: &'a str,
    pub author_email: &'a str,
    /// Seconds since the epoch and the author's offset from UTC in minutes.
    pub date: (i64, i32),
    pub message: String,
    /// How an error names the patch (a mail's `[PATCH v2 3/5] subject`).
    pub subject: String,
}

/// Why a series did not apply.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A patch does not apply on what came before it: the maintainer's "does not apply".
    #[error("patch {number} ({subject}) does not apply{}: {reason}", file.as_ref().map(|f| format!(" to {f}")).unwrap_or_default())]
    DoesNotApply {
        /// 1-based place in the series.
        number: usize,
        subject: String,
        file: Option<String>,
        reason: String,
    },
    /// A patch's text is not a diff libgit2 can read.
    #[error("patch {number} ({subject}) is not a readable diff: {reason}")]
    Unreadable {
        number: usize,
        subject: String,
        reason: String,
    },
    #[error("the base {base} is not in the repository: {source}")]
    NoBase {
        base: String,
        #[source]
        source: git2::Error,
    },
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// Applies `patches` in order onto `base` and returns the commits made, one per patch. The
/// committer is `committer` (pushgate); authors, dates and messages are the patches'.
pub fn apply_series(
    repo: &Repository,
    base: Oid,
    patches: &[Patch<'_>],
    committer: &Signature<'_>,
) -> Result<Vec<Oid>, ApplyError> {
    let mut parent = repo
        .find_commit(base)
        .map_err(|source| ApplyError::NoBase {
            base: base.to_string(),
            source,
        })?;
    let mut made = Vec::with_capacity(patches.len());
    for (i, patch) in patches.iter().enumerate() {
        let number = i + 1;
        let subject = patch.subject.clone();
        let diff = Diff::from_buffer(patch.diff).map_err(|e| ApplyError::Unreadable {
            number,
            subject: subject.clone(),
            reason: e.message().to_string(),
        })?;
        let tree = parent.tree()?;
        let mut index = match repo.apply_to_tree(&tree, &diff, None) {
            Ok(index) => index,
            Err(e) => {
                return Err(ApplyError::DoesNotApply {
                    number,
                    file: failing_file(repo, &tree, &diff),
                    subject,
                    reason: e.message().to_string(),
                })
            }
        };
        let tree_id = index.write_tree_to(repo)?;
        let new_tree = repo.find_tree(tree_id)?;
        let (seconds, offset) = patch.date;
        let author = Signature::new(
            patch.author_name,
            patch.author_email,
            &Time::new(seconds, offset),
        )?;
        let id = repo.commit(
            None,
            &author,
            committer,
            &patch.message,
            &new_tree,
            &[&parent],
        )?;
        made.push(id);
        parent = repo.find_commit(id)?;
    }
    Ok(made)
}

/// The first file of `diff` that does not apply to `tree` on its own.
fn failing_file(repo: &Repository, tree: &git2::Tree<'_>, diff: &Diff<'_>) -> Option<String> {
    for (i, delta) in diff.deltas().enumerate() {
        let mut options = ApplyOptions::new();
        let mut seen = 0usize;
        options.delta_callback(move |_| {
            let keep = seen == i;
            seen += 1;
            keep
        });
        if repo.apply_to_tree(tree, diff, Some(&mut options)).is_err() {
            let path = delta.old_file().path().or(delta.new_file().path())?;
            return Some(path.display().to_string());
        }
    }
    None
}
