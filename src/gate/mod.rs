//! The gate: for each policy branch, decide what of staging may go to the target branch.

mod decision;
mod driver;
mod events;
mod observations;
mod series;

pub use decision::{
    decide, finder_log, Decision, Facts, FinderStep, Next, Observation, Outcome, Role, Verdict,
};
pub use driver::{BranchOutcome, Gate, GateError, GateSettings};
pub use events::{Event, LogProgress, Progress};
