//! The culprit finder: which commit of a failing range to test next, and when to conclude.
//!
//! This is a plain binary search over the first-parent history of the range, trusting each
//! judgement it is given (the gate already retries failures before it judges). It is pure: it
//! sees commits only as indices, so the gate can replay it from stored results after a restart
//! and get the same path. A flake-aware, parallel finder replaces it behind the same seam.

/// Where the search stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// The commit at this index must be judged before the search can go on.
    Test(usize),
    /// `first_bad` is the culprit; `last_good` is the newest commit known good below it
    /// (0 is the base, which the baseline run showed good).
    Culprit { first_bad: usize, last_good: usize },
}

/// Binary search over indices `0..=n`: 0 is the known-good base, `n` the known-bad tip.
///
/// `judged(i)` answers `Some(true)` for good, `Some(false)` for bad and `None` for not judged
/// yet. The search always probes between the newest good and oldest bad index it has seen, so
/// the same answers always produce the same probes.
pub fn binary_search(n: usize, mut judged: impl FnMut(usize) -> Option<bool>) -> Search {
    let (mut good, mut bad) = (0, n);
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        match judged(mid) {
            Some(true) => good = mid,
            Some(false) => bad = mid,
            None => return Search::Test(mid),
        }
    }
    Search::Culprit {
        first_bad: bad,
        last_good: good,
    }
}

/// How many probes a binary search over `n` commits needs at most.
pub fn max_probes(n: usize) -> u32 {
    usize::BITS - n.saturating_sub(1).leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search to its end against a range whose first bad commit is `culprit`,
    /// replaying it from all answers so far each time, as the gate does from the store.
    fn find(n: usize, culprit: usize) -> (Search, u32) {
        let mut answered = std::collections::BTreeMap::new();
        loop {
            match binary_search(n, |i| answered.get(&i).copied()) {
                Search::Test(i) => {
                    assert!(
                        answered.insert(i, i < culprit).is_none(),
                        "probed {i} twice"
                    );
                }
                done => return (done, answered.len() as u32),
            }
        }
    }

    #[test]
    fn finds_every_culprit_in_every_range_up_to_64() {
        for n in 1..=64 {
            for culprit in 1..=n {
                let (found, probes) = find(n, culprit);
                assert_eq!(
                    found,
                    Search::Culprit {
                        first_bad: culprit,
                        last_good: culprit - 1
                    },
                    "n={n} culprit={culprit}"
                );
                assert!(
                    probes <= max_probes(n),
                    "n={n} culprit={culprit}: {probes} probes"
                );
            }
        }
    }

    #[test]
    fn a_single_commit_is_its_own_culprit_without_a_probe() {
        assert_eq!(
            binary_search(1, |_| None),
            Search::Culprit {
                first_bad: 1,
                last_good: 0
            }
        );
    }

    #[test]
    fn probe_bound() {
        assert_eq!(max_probes(1), 0);
        assert_eq!(max_probes(2), 1);
        assert_eq!(max_probes(20), 5);
        assert_eq!(max_probes(1024), 10);
    }
}
