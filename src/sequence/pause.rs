//! Pause-on-fail (XenRT's `--pause-on-fail`): which failing testcases stop their run on its
//! host, before any cleanup, so that someone can look.

use std::collections::BTreeSet;

use super::model::Testcase;

/// Which failing testcases pause the run (XenRT's `--pause-on-fail`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PauseOn {
    #[default]
    Never,
    All,
    /// Testcases by name, id or TC number.
    Testcases(BTreeSet<String>),
}

impl PauseOn {
    /// Reads `ALL` or a comma-separated list of testcases.
    pub fn parse(text: &str) -> PauseOn {
        let list: BTreeSet<String> = text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if list.is_empty() {
            PauseOn::Never
        } else if list.iter().any(|s| s.eq_ignore_ascii_case("all")) {
            PauseOn::All
        } else {
            PauseOn::Testcases(list)
        }
    }

    /// Whether a failure of `test` pauses the run.
    pub fn matches(&self, test: &Testcase) -> bool {
        match self {
            PauseOn::Never => false,
            PauseOn::All => true,
            PauseOn::Testcases(set) => {
                set.contains(&test.name)
                    || set.contains(&test.id)
                    || test.tc.as_ref().is_some_and(|tc| set.contains(tc))
            }
        }
    }
}
