//! One run end to end: a lease on a host of the lab, the commit provisioned there, its
//! sequence executed step by step with every result recorded in the store, the host released
//! and cleaned. The gate, mailed series and jobs all run this way.

mod executor;
mod runner;

pub use executor::{execute, RunReport, StepRecorder};
pub use runner::{
    needs_of, run_on_lab, series_needs, PauseContext, RunEnd, RunPlan, StoreRecorder,
};
