//! The native TOML form of a sequence (`sequences/NAME.toml`).

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Sequence, Step};
use crate::source::{parse_duration, FileError, Source};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    description: String,
    #[serde(default)]
    step: Vec<Spanned<StepFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: Spanned<String>,
    command: Spanned<String>,
    timeout: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    #[serde(default = "yes")]
    blocker: bool,
    #[serde(default)]
    env: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Loads one sequence file; its name is the file stem.
pub fn load(path: &Path) -> Result<Sequence, FileError> {
    let text = Source::read(path)?;
    parse(path, &text)
}

/// Parses and validates a sequence's text.
pub fn parse(path: &Path, text: &str) -> Result<Sequence, FileError> {
    let src = Source { path, text };
    let file: File = src.parse()?;
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| src.whole("", "the file name is not valid UTF-8"))?
        .to_string();
    if file.step.is_empty() {
        return Err(src.whole("step", "a sequence needs at least one [[step]]"));
    }
    let mut seen = HashSet::new();
    let mut steps = Vec::new();
    for step in file.step {
        let step = step.into_inner();
        let step_name = step.name.get_ref().trim().to_string();
        if step_name.is_empty() || step_name.contains(['/', ' ']) {
            return Err(src.error(
                step.name.span(),
                "step.name",
                "a step name is one word without `/` or spaces",
            ));
        }
        if !seen.insert(step_name.clone()) {
            return Err(src.error(
                step.name.span(),
                "step.name",
                format!("two steps are named `{step_name}`"),
            ));
        }
        if step.command.get_ref().trim().is_empty() {
            return Err(src.error(step.command.span(), "step.command", "empty command"));
        }
        let timeout = match &step.timeout {
            None => DEFAULT_TIMEOUT,
            Some(t) => parse_duration(t.get_ref())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    src.error(
                        t.span(),
                        "step.timeout",
                        format!(
                            "`{}` is not a duration like `30s`, `5m` or `1h`",
                            t.get_ref()
                        ),
                    )
                })?,
        };
        let workdir = match &step.workdir {
            None => None,
            Some(w) => {
                let p = PathBuf::from(w.get_ref());
                let inside = p
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
                if !inside {
                    return Err(src.error(
                        w.span(),
                        "step.workdir",
                        "the working directory must be relative and stay inside the checkout",
                    ));
                }
                Some(p)
            }
        };
        steps.push(Step {
            name: step_name,
            command: step.command.into_inner(),
            timeout,
            workdir,
            blocker: step.blocker,
            env: step.env,
        });
    }
    Ok(Sequence {
        name,
        description: file.description,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Sequence, FileError> {
        parse(Path::new("sequences/smoke.toml"), text)
    }

    #[test]
    fn the_shipped_smoke_sequence_loads() {
        let seq = load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/sequences/smoke.toml"
        )))
        .unwrap();
        assert_eq!(seq.name, "smoke");
        assert!(seq.steps.len() >= 2);
    }

    #[test]
    fn steps_keep_order_and_defaults() {
        let s = p("[[step]]\nname = \"a\"\ncommand = \"true\"\n[[step]]\nname = \"b\"\ncommand = \"make\"\ntimeout = \"5m\"\nblocker = false\nworkdir = \"sub/dir\"\n")
            .unwrap();
        assert_eq!(s.steps[0].timeout, DEFAULT_TIMEOUT);
        assert!(s.steps[0].blocker);
        assert_eq!(s.steps[1].timeout, Duration::from_secs(300));
        assert!(!s.steps[1].blocker);
        assert_eq!(s.steps[1].workdir.as_deref(), Some(Path::new("sub/dir")));
    }

    #[test]
    fn bad_sequences_name_line_and_field() {
        let cases = [
            ("", 0, "step"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\n[[step]]\nname = \"a\"\ncommand = \"y\"\n", 5, "step.name"),
            ("[[step]]\nname = \"a\"\ncommand = \"  \"\n", 3, "step.command"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\ntimeout = \"later\"\n", 4, "step.timeout"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\nworkdir = \"../up\"\n", 4, "step.workdir"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\ntimout = \"1m\"\n", 4, "timout"),
            ("[[step]]\nname = \"a b\"\ncommand = \"x\"\n", 2, "step.name"),
        ];
        for (text, line, field) in cases {
            let e = p(text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
        }
    }
}
