//! The gate: for each policy branch, decide what of staging may go to the target branch.

pub(crate) mod driver;
mod events;
mod observations;

pub use driver::{BranchOutcome, Gate, GateError, GateSettings};
pub use events::{Event, LogProgress, Progress};
