//! The candidate commits of a search, as a DAG: which commit is an ancestor of which.
//!
//! A commit is bad iff the culprit is among its ancestors inside the range, so every question
//! the finder asks is an ancestry question. The answers are precomputed once per search (one
//! ancestor bitset per commit, built in one topological pass), because the finder asks them
//! thousands of times and must decide in well under a millisecond.

use std::fmt;

/// Ranges larger than this are refused: the ancestor sets grow with the square of the size
/// (20,000 commits take 50 MB). Narrow such a range with another good commit first.
pub const MAX_COMMITS: usize = 20_000;

/// Why a history cannot be searched.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    #[error("the range is empty: there is no commit between the good and the bad ones")]
    Empty,
    #[error("the range has {0} commits, more than the {MAX_COMMITS} a search takes at once; add a newer --good commit")]
    TooLarge(usize),
    #[error("commit #{commit} names parent #{parent}, which is not older than it (commits must be listed parents first)")]
    NotTopological { commit: usize, parent: usize },
    #[error("commit #{commit} names parent #{parent} twice")]
    DuplicateParent { commit: usize, parent: usize },
    #[error("commit #{0} is not an ancestor of the bad tip (the last commit), so it is not in the range")]
    NotInRange(usize),
}

/// A set of commit indices, one bit each.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    pub(crate) fn contains(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }

    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    fn union_with(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }

    /// The members of `self` that are not in `other`, in increasing order.
    fn minus(&self, other: Option<&Bits>) -> Vec<u32> {
        let mut out = Vec::new();
        for (w, word) in self.0.iter().enumerate() {
            let mut rest = word & !other.map_or(0, |o| o.0[w]);
            while rest != 0 {
                let bit = rest.trailing_zeros() as usize;
                out.push((w * 64 + bit) as u32);
                rest &= rest - 1;
            }
        }
        out
    }
}

/// The commits of a range, oldest first: index `len() - 1` is the bad tip, and every commit is
/// one of its ancestors. Parents outside the range (the good bases and older) are left out.
#[derive(Clone)]
pub struct History {
    parents: Vec<Vec<u32>>,
    children: Vec<Vec<u32>>,
    /// Ancestors of each commit inside the range, the commit itself included.
    ancestors: Vec<Bits>,
    /// For each commit, the ancestors it adds to those of its first parent (itself excluded):
    /// empty for an ordinary commit, the merged branch for a merge.
    introduced: Vec<Vec<u32>>,
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("commits", &self.len())
            .field("parents", &self.parents)
            .finish()
    }
}

impl History {
    /// A history from each commit's parents inside the range, first parent first. Commits are
    /// listed oldest first (every parent before its children) and the last one is the tip.
    pub fn new(parents: Vec<Vec<usize>>) -> Result<History, HistoryError> {
        let n = parents.len();
        if n == 0 {
            return Err(HistoryError::Empty);
        }
        if n > MAX_COMMITS {
            return Err(HistoryError::TooLarge(n));
        }
        let mut compact: Vec<Vec<u32>> = Vec::with_capacity(n);
        let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (commit, ps) in parents.iter().enumerate() {
            let mut mine: Vec<u32> = Vec::with_capacity(ps.len());
            for &parent in ps {
                if parent >= commit {
                    return Err(HistoryError::NotTopological { commit, parent });
                }
                if mine.contains(&(parent as u32)) {
                    return Err(HistoryError::DuplicateParent { commit, parent });
                }
                mine.push(parent as u32);
                children[parent].push(commit as u32);
            }
            compact.push(mine);
        }
        let mut ancestors: Vec<Bits> = Vec::with_capacity(n);
        let mut introduced: Vec<Vec<u32>> = Vec::with_capacity(n);
        for (commit, ps) in compact.iter().enumerate() {
            let mut mine = Bits::new(n);
            for &p in ps {
                mine.union_with(&ancestors[p as usize]);
            }
            let first = ps.first().map(|&p| &ancestors[p as usize]);
            introduced.push(if ps.len() > 1 || first.is_none() {
                mine.minus(first)
            } else {
                Vec::new()
            });
            mine.insert(commit);
            ancestors.push(mine);
        }
        if let Some(outside) = (0..n).find(|&c| !ancestors[n - 1].contains(c)) {
            return Err(HistoryError::NotInRange(outside));
        }
        Ok(History {
            parents: compact,
            children,
            ancestors,
            introduced,
        })
    }

    /// `n` commits, each the only parent of the next.
    pub fn linear(n: usize) -> Result<History, HistoryError> {
        History::new(
            (0..n)
                .map(|i| i.checked_sub(1).into_iter().collect())
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.parents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    pub fn tip(&self) -> usize {
        self.len() - 1
    }

    /// The parents of `commit` inside the range.
    pub fn parents(&self, commit: usize) -> impl Iterator<Item = usize> + '_ {
        self.parents[commit].iter().map(|&p| p as usize)
    }

    pub(crate) fn children(&self, commit: usize) -> &[u32] {
        &self.children[commit]
    }

    pub(crate) fn first_parent(&self, commit: usize) -> Option<usize> {
        self.parents[commit].first().map(|&p| p as usize)
    }

    pub(crate) fn introduced(&self, commit: usize) -> &[u32] {
        &self.introduced[commit]
    }

    /// Whether `a` is `b` or one of its ancestors: if `a` is the culprit, `b` is bad.
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        self.ancestors[b].contains(a)
    }

    /// How many commits are `commit` or its ancestors: what a pass there rules out.
    pub fn ancestor_count(&self, commit: usize) -> usize {
        self.ancestors[commit]
            .0
            .iter()
            .map(|w| w.count_ones() as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0 - 1 - 4 (merge of 3) - 5, with 2 - 3 a branch forked from 0.
    fn diamond() -> History {
        History::new(vec![vec![], vec![0], vec![0], vec![2], vec![1, 3], vec![4]]).unwrap()
    }

    #[test]
    fn ancestry_follows_every_parent() {
        let h = diamond();
        assert!(h.is_ancestor(3, 4) && h.is_ancestor(2, 5) && h.is_ancestor(0, 3));
        assert!(!h.is_ancestor(1, 3) && !h.is_ancestor(3, 1) && !h.is_ancestor(5, 4));
        assert_eq!(h.ancestor_count(4), 5);
        assert_eq!(h.ancestor_count(3), 3);
        assert_eq!(h.introduced(4), &[2, 3]);
        assert!(h.introduced(5).is_empty() && h.introduced(1).is_empty());
        assert_eq!(h.introduced(0), &[] as &[u32]);
        assert_eq!(h.children(0), &[1, 2]);
    }

    #[test]
    fn a_root_inside_the_range_introduces_its_other_parents_history() {
        // 1 forks from outside the range (first parent out), and merges 0 as second parent.
        let h = History::new(vec![vec![], vec![0], vec![1]]).unwrap();
        assert_eq!(h.introduced(0), &[] as &[u32]);
        let stale = History::new(vec![vec![], vec![], vec![0, 1]]).unwrap();
        assert_eq!(stale.introduced(1), &[] as &[u32]);
        assert_eq!(stale.introduced(2), &[1]);
    }

    #[test]
    fn bad_shapes_are_refused_with_the_commit() {
        assert_eq!(History::new(vec![]).unwrap_err(), HistoryError::Empty);
        assert_eq!(
            History::new(vec![vec![], vec![1]]).unwrap_err(),
            HistoryError::NotTopological {
                commit: 1,
                parent: 1
            }
        );
        assert_eq!(
            History::new(vec![vec![], vec![0, 0]]).unwrap_err(),
            HistoryError::DuplicateParent {
                commit: 1,
                parent: 0
            }
        );
        assert_eq!(
            History::new(vec![vec![], vec![], vec![1]]).unwrap_err(),
            HistoryError::NotInRange(0)
        );
        assert!(History::linear(MAX_COMMITS + 1).is_err());
    }
}
