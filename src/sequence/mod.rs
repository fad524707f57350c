//! Sequences: what to run on a commit.
//!
//! Two forms load into one [`model`]: our TOML (`sequences/NAME.toml`) and XenRT's XML
//! (`sequences/NAME.seq`). Testcases that name a class instead of a command are bound to
//! commands by `sequences/testcases.toml` ([`bindings`]). What a sequence means is here; running
//! it on a host is `run::execute`'s.

mod bindings;
pub mod model;
mod native;
mod pause;
pub mod plan;
pub mod results;
mod step_status;
mod xenrt;
mod xml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use bindings::{Bindings, FILE_NAME as BINDINGS_FILE};
pub use model::{Background, Sequence, Step};
pub use pause::PauseOn;
pub use step_status::StepStatus;

use crate::file_error::{FileError, FileErrors};

/// Where a step runs and what it knows about the run.
#[derive(Clone, Debug)]
pub struct StepContext {
    pub run_id: i64,
    pub commit: String,
    pub sequence: String,
}

/// Every sequence of a directory, by name.
pub type Sequences = BTreeMap<String, Sequence>;

/// Loads one sequence file of either form, unbound. A XenRT file may include files of its own
/// directory and of `include_roots`, no others.
pub fn load_unbound(
    path: &Path,
    params: &BTreeMap<String, String>,
    include_roots: &[PathBuf],
) -> Result<Sequence, FileError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("seq") | Some("xml") => xenrt::load(path, params, include_roots),
        _ => native::load(path),
    }
}

/// Parses a sequence in pushgate's TOML, unbound.
pub fn parse_native(path: &Path, text: &str) -> Result<Sequence, FileError> {
    native::parse(path, text)
}

/// Parses a XenRT sequence's text, unbound; it may include files of its own directory only.
pub fn parse_xenrt(
    path: &Path,
    text: &str,
    params: &BTreeMap<String, String>,
) -> Result<Sequence, FileError> {
    xenrt::parse(path, text, params, &[])
}

/// Loads one sequence file and binds its testcases.
pub fn load(
    path: &Path,
    bindings: &Bindings,
    include_roots: &[PathBuf],
) -> Result<Sequence, FileError> {
    let mut seq = load_unbound(path, &BTreeMap::new(), include_roots)?;
    bindings.bind(&mut seq)?;
    Ok(seq)
}

/// The bindings of a sequences directory (none when it has no `testcases.toml`).
pub fn load_bindings(dir: &Path) -> Result<Bindings, FileError> {
    let path = dir.join(BINDINGS_FILE);
    if path.exists() {
        Bindings::load(&path)
    } else {
        Ok(Bindings::none())
    }
}

/// Loads every `*.toml` (but the bindings) and `*.seq` of a directory, bound; the file stem is
/// the sequence's name. XenRT includes are read from `dir` and `include_roots` only. Refuses
/// the directory when any file is wrong, with every file's errors.
pub fn load_dir(dir: &Path, include_roots: &[PathBuf]) -> Result<Sequences, FileErrors> {
    let (sequences, errors) = load_dir_reporting(dir, include_roots);
    errors.or(|| sequences)
}

/// The sequences of a directory that load, and the errors of those that do not: what
/// `pushgate check` lists, all at once.
pub fn load_dir_reporting(dir: &Path, include_roots: &[PathBuf]) -> (Sequences, FileErrors) {
    let mut errors = FileErrors::default();
    let mut out = Sequences::new();
    let Some(bindings) = errors.take(load_bindings(dir)) else {
        // Without the bindings every sequence would fail for want of them: one error is enough.
        return (out, errors);
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(FileError {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!("cannot read the sequences directory: {e}"),
            });
            return (out, errors);
        }
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|x| x.to_str());
            let bindings = p.file_name().is_some_and(|n| n == BINDINGS_FILE);
            matches!(ext, Some("toml") | Some("seq")) && !bindings
        })
        .collect();
    paths.sort();
    for path in paths {
        let Some(seq) = errors.take(load(&path, &bindings, include_roots)) else {
            continue;
        };
        if let Some(other) = out.get(&seq.name) {
            errors.push(FileError {
                file: path.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message: format!(
                    "another sequence is named `{}` ({})",
                    seq.name,
                    other.source.display()
                ),
            });
            continue;
        }
        out.insert(seq.name.clone(), seq);
    }
    (out, errors)
}
