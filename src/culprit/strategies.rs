//! Proptest strategies over ranges, for the finder's and the model's property tests.

use proptest::prelude::*;

use super::history::History;

/// A random range of `sizes` commits: each commit has one or two older parents, and the tip
/// merges every commit left without a child, so the whole range is its history.
pub fn dag(sizes: std::ops::Range<usize>) -> impl Strategy<Value = History> {
    sizes
        .prop_flat_map(|n| {
            proptest::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<Option<prop::sample::Index>>(),
                ),
                n - 1,
            )
        })
        .prop_map(|picks| {
            let n = picks.len() + 1;
            let mut parents: Vec<Vec<usize>> = vec![Vec::new()];
            for (i, (a, b)) in picks.iter().enumerate().take(n - 2) {
                let i = i + 1;
                let mut ps = vec![a.index(i)];
                if let Some(b) = b {
                    let b = b.index(i);
                    if !ps.contains(&b) {
                        ps.push(b);
                    }
                }
                parents.push(ps);
            }
            let mut has_child = vec![false; n - 1];
            for ps in &parents {
                for &p in ps {
                    has_child[p] = true;
                }
            }
            parents.push((0..n - 1).filter(|&c| !has_child[c]).collect());
            History::new(parents).expect("generated ranges are valid")
        })
}
