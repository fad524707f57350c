//! The culprit finder: flake-aware, parallel, merge-aware bisection.
//!
//! `git bisect` tests one commit at a time and trusts every answer, so one flaky failure sends
//! it down the wrong half for good. This finder treats the search as inference instead (after
//! Henderson et al., "Flake Aware Culprit Finding", ICST 2023): it keeps a posterior over "commit
//! c is the culprit" for every candidate plus "no culprit", updates it with every result ever
//! seen, tests where the posterior says a result is worth most, on as many hosts as are free,
//! and stops when one answer reaches the confidence target.
//!
//! Everything here is pure: commits are indices into a [`History`], results are plain values,
//! and the same inputs always give the same answer, so the gate can replay a search from the
//! store after a restart.

mod finder;
mod history;
mod model;
pub mod synthetic;

pub use finder::{indistinguishable, CulpritFinder, Found, Settings, Standing, Step};
pub use history::{History, HistoryError, MAX_COMMITS};
pub use model::{
    estimate_flake_rate, flake_rate_from_counts, tally, z_channel_capacity, Observed, Posterior,
    Tally, MAX_FLAKE_RATE,
};
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
