//! Per-test results that a step leaves in files (JUnit XML, TAP, subunit v2), parsed into
//! sub-results so that the gate can say which test regressed, not only which step.
//!
//! Parsers are pure, take bytes from a host nobody vetted, and never panic: bad input is an
//! error naming the file and where in it.

mod junit;
mod subunit;
mod tap;

use std::path::Path;

use serde::Serialize;

use super::model::ResultFormat;

/// One test's outcome inside a step.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubResult {
    pub name: String,
    pub status: SubStatus,
    /// Seconds, when the format says.
    pub duration: Option<f64>,
    /// The failure's message or the skip's reason.
    pub message: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubStatus {
    Pass,
    Fail,
    Skip,
    /// The test could not run (JUnit's `<error>`, a TAP bail-out, a test that never finished).
    Error,
}

impl SubStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubStatus::Pass => "pass",
            SubStatus::Fail => "fail",
            SubStatus::Skip => "skip",
            SubStatus::Error => "error",
        }
    }

    /// Whether it counts against the commit.
    pub fn failed(self) -> bool {
        matches!(self, SubStatus::Fail | SubStatus::Error)
    }
}

/// A result file that cannot be read as its format says.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ResultsError {
    pub file: String,
    pub message: String,
}

/// Parses one result file's bytes; `file` names it in errors.
pub fn parse(
    format: ResultFormat,
    file: &Path,
    bytes: &[u8],
) -> Result<Vec<SubResult>, ResultsError> {
    let fail = |message: String| ResultsError {
        file: file.display().to_string(),
        message,
    };
    match format {
        ResultFormat::Junit => {
            let text = std::str::from_utf8(bytes).map_err(|e| fail(format!("not UTF-8: {e}")))?;
            junit::parse(file, text).map_err(|e| fail(e.to_string()))
        }
        ResultFormat::Tap => {
            let text = String::from_utf8_lossy(bytes);
            tap::parse(&text).map_err(fail)
        }
        ResultFormat::Subunit => subunit::parse(bytes).map_err(fail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Whatever a host leaves behind, the parsers answer without panicking.
        #[test]
        fn parsers_survive_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for format in [ResultFormat::Junit, ResultFormat::Tap, ResultFormat::Subunit] {
                let _ = parse(format, Path::new("f"), &bytes);
            }
        }

        #[test]
        fn parsers_survive_mangled_valid_input(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
            let samples: [(ResultFormat, Vec<u8>); 3] = [
                (ResultFormat::Junit, junit::tests::SAMPLE.as_bytes().to_vec()),
                (ResultFormat::Tap, tap::tests::SAMPLE.as_bytes().to_vec()),
                (ResultFormat::Subunit, subunit::tests::sample()),
            ];
            for (format, mut bytes) in samples {
                if !bytes.is_empty() {
                    let i = flip % bytes.len();
                    bytes[i] ^= 1 << bit;
                    bytes.truncate(cut.max(1).min(bytes.len()));
                }
                let _ = parse(format, Path::new("f"), &bytes);
            }
        }
    }
}
