//! Sequences: what to run on a commit.
//!
//! A sequence is a list of named steps run in order; a failing step stops the run unless it is
//! marked `blocker = false`, and the steps it stops are `blocked`. The model is shared by every
//! form a sequence is written in (our TOML now) and by every host that runs one.

mod executor;
mod native;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use executor::{execute, RunReport, StepRecorder, StepStatus};
pub use native::load;

/// A named list of steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    pub name: String,
    pub description: String,
    pub steps: Vec<Step>,
}

/// One command of a sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub name: String,
    /// Run by `sh -c` in the checkout of the commit under test.
    pub command: String,
    /// The whole process group is killed when it runs longer.
    pub timeout: Duration,
    /// Relative to the checkout's root.
    pub workdir: Option<PathBuf>,
    /// A failing blocker stops the run; the failure of any step still fails the run.
    pub blocker: bool,
    pub env: BTreeMap<String, String>,
}

/// Where a step runs and what it knows about the run.
#[derive(Clone, Debug)]
pub struct StepContext {
    pub run_id: i64,
    pub commit: String,
    pub sequence: String,
}

/// Every sequence of a directory, by name.
pub type Sequences = BTreeMap<String, Sequence>;

/// Loads every `*.toml` of a directory; the file stem is the sequence's name.
pub fn load_dir(dir: &std::path::Path) -> Result<Sequences, crate::source::FileError> {
    let mut out = Sequences::new();
    for path in crate::source::toml_files(dir, "sequences")? {
        let seq = load(&path)?;
        out.insert(seq.name.clone(), seq);
    }
    Ok(out)
}
