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
#[cfg(test)]
mod strategies;
pub mod synthetic;

pub use finder::{indistinguishable, rounds_bound, CulpritFinder, Found, Settings, Standing, Step};
pub use history::{History, HistoryError, MAX_COMMITS};
pub use model::{
    tally, z_channel_capacity, Below, Evidence, FlakeHistory, Model, Observed, Posterior, Tally,
    MAX_FLAKE_RATE, RATES,
};
