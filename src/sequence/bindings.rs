//! Testcase bindings (`sequences/testcases.toml`): XenRT's testcases were Python classes, ours
//! are commands. Each binding maps a testcase id, exact or a glob, to a command template, a
//! timeout and where the step leaves per-test results.
//!
//! ```toml
//! [[testcase]]
//! id = "xenserver.tc.smoketest.*"
//! command = "./run-smoke {{ name }} {{ args }} --guest {{ arg.guest }}"
//! timeout = "30m"
//! results = { format = "junit", path = "out/*.xml" }
//! ```
//!
//! Every value a template prints is shell-quoted (a list prints its items quoted, separated by
//! spaces), so args from a sequence file cannot inject shell syntax. The template sees `id`,
//! `name`, `tc`, `host`, `guest`, `group`, `args` (list), `arg` (the `key=value` args as a map)
//! and `vars` (the sequence's `${NAME}` values). A missing value is an error, not an empty word.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use toml::Spanned;

use super::model::{ResultFiles, Sequence, Step, Testcase};
use super::native::{check_workdir, parse_timeout, results};
use crate::file_error::{FileError, Source};

/// The file name the bindings have in a sequences directory.
pub const FILE_NAME: &str = "testcases.toml";

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The bindings of a sequences directory, in file order.
#[derive(Debug, Default)]
pub struct Bindings {
    path: PathBuf,
    entries: Vec<Binding>,
}

#[derive(Debug)]
struct Binding {
    id: String,
    pattern: Option<glob::Pattern>,
    command: String,
    timeout: Duration,
    workdir: Option<PathBuf>,
    env: BTreeMap<String, String>,
    results: Option<ResultFiles>,
    line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    testcase: Vec<Spanned<BindingFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BindingFile {
    id: Spanned<String>,
    command: Spanned<String>,
    timeout: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    results: Option<Spanned<super::native::ResultsFile>>,
}

impl Bindings {
    /// No bindings: every testcase without an inline command is unbound.
    pub fn none() -> Bindings {
        Bindings::default()
    }

    pub fn load(path: &Path) -> Result<Bindings, FileError> {
        let text = Source::read(path)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Bindings, FileError> {
        let src = Source { path, text };
        let file: File = src.parse()?;
        let mut entries = Vec::new();
        for (i, b) in file.testcase.into_iter().enumerate() {
            let line = src.line_of(b.span().start);
            let b = b.into_inner();
            let field = |f: &str| format!("testcase[{i}].{f}");
            let id = b.id.get_ref().trim().to_string();
            if id.is_empty() {
                return Err(src.error(b.id.span(), &field("id"), "empty testcase id"));
            }
            let pattern = if id.contains(['*', '?', '[']) {
                Some(glob::Pattern::new(&id).map_err(|e| {
                    src.error(
                        b.id.span(),
                        &field("id"),
                        format!("`{id}` is not a glob: {e}"),
                    )
                })?)
            } else {
                None
            };
            // Check the template now, so that a typo is reported against this file.
            environment()
                .template_from_str(b.command.get_ref())
                .map_err(|e| src.error(b.command.span(), &field("command"), e.to_string()))?;
            let timeout = match &b.timeout {
                Some(t) => parse_timeout(&src, t, &field("timeout"))?,
                None => DEFAULT_TIMEOUT,
            };
            let workdir = match &b.workdir {
                Some(w) => Some(check_workdir(&src, w, &field("workdir"))?),
                None => None,
            };
            let results = match &b.results {
                Some(r) => Some(results(&src, r, &field("results"))?),
                None => None,
            };
            entries.push(Binding {
                id,
                pattern,
                command: b.command.into_inner(),
                timeout,
                workdir,
                env: b.env,
                results,
                line,
            });
        }
        Ok(Bindings {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// An exact id beats any glob; among globs, the first in the file wins.
    fn find(&self, id: &str) -> Option<&Binding> {
        self.entries
            .iter()
            .find(|b| b.pattern.is_none() && b.id == id)
            .or_else(|| {
                self.entries
                    .iter()
                    .find(|b| b.pattern.as_ref().is_some_and(|p| p.matches(id)))
            })
    }

    /// Gives every testcase of `sequence` that has no inline command the step its binding
    /// makes. Testcases no binding matches stay unbound ([`Sequence::unbound`]).
    pub fn bind(&self, sequence: &mut Sequence) -> Result<(), FileError> {
        let env = environment();
        let vars = sequence.variables.clone();
        let source = sequence.source.clone();
        for test in sequence.testcases_mut() {
            if test.step.is_some() {
                continue;
            }
            let Some(binding) = self.find(&test.id) else {
                continue;
            };
            let command = env
                .render_str(&binding.command, context(test, &vars))
                .map_err(|e| FileError {
                    file: source.clone(),
                    line: test.line,
                    column: 0,
                    field: test.name.clone(),
                    message: format!(
                        "the binding for `{}` ({}:{}) cannot make its command: {e}",
                        test.id,
                        self.path.display(),
                        binding.line
                    ),
                })?;
            test.step = Some(Step {
                name: test.name.clone(),
                command,
                timeout: binding.timeout,
                workdir: binding.workdir.clone(),
                env: binding.env.clone(),
                results: binding.results.clone(),
                background: Default::default(),
            });
        }
        Ok(())
    }
}

fn context(test: &Testcase, vars: &BTreeMap<String, String>) -> Value {
    let arg: BTreeMap<&str, &str> = test.args.iter().filter_map(|a| a.split_once('=')).collect();
    minijinja::context! {
        id => test.id,
        name => test.name,
        tc => test.tc,
        host => test.host,
        guest => test.guest,
        group => test.group,
        args => test.args,
        arg => arg,
        vars => vars,
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, _state, value| {
        let text = shell_words(value);
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    env
}

/// A template value as shell words: strings quoted, lists as their items quoted and joined.
fn shell_words(value: &Value) -> String {
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => value
            .try_iter()
            .map(|items| {
                items
                    .map(|v| quote(&v.to_string()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        ValueKind::None | ValueKind::Undefined => "''".to_string(),
        _ if value.is_safe() => value.to_string(),
        _ => match value.as_str() {
            Some(s) => quote(s),
            None => quote(&value.to_string()),
        },
    }
}

fn quote(word: &str) -> String {
    // try_quote refuses only NUL bytes, which no command line can carry: drop them.
    let clean = word.replace('\0', "");
    shlex::try_quote(&clean)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::model::{Block, ResultFormat};
    use super::*;

    fn bindings(text: &str) -> Result<Bindings, FileError> {
        Bindings::parse(Path::new("sequences/testcases.toml"), text)
    }

    fn sequence(tests: Vec<Testcase>) -> Sequence {
        Sequence {
            name: "s".into(),
            description: String::new(),
            source: PathBuf::from("s.seq"),
            variables: [("V".to_string(), "v 1".to_string())].into(),
            prepare: Default::default(),
            body: Block::serial(
                tests
                    .into_iter()
                    .map(super::super::model::Node::Test)
                    .collect(),
            ),
            kept: Vec::new(),
        }
    }

    fn test(id: &str, args: &[&str]) -> Testcase {
        Testcase {
            id: id.into(),
            name: id.rsplit('.').next().unwrap().into(),
            tc: None,
            blocker: false,
            group: None,
            prio: None,
            host: None,
            guest: None,
            args: args.iter().map(|s| s.to_string()).collect(),
            step: None,
            line: 7,
        }
    }

    #[test]
    fn exact_beats_glob_and_values_are_quoted() {
        let b = bindings(
            r#"
[[testcase]]
id = "guestops.*"
command = "glob {{ name }} {{ args }}"
[[testcase]]
id = "guestops.basic.TCStart"
command = "exact {{ arg.guest }} {{ vars.V }}"
timeout = "5m"
results = { format = "tap", path = "out/*.tap" }
"#,
        )
        .unwrap();
        let mut s = sequence(vec![
            test("guestops.basic.TCStart", &["guest=a b"]),
            test("guestops.srm.TCMigrate", &["to=$(rm -rf /)", "live"]),
            test("other.TCX", &[]),
        ]);
        b.bind(&mut s).unwrap();
        let t = s.testcases();
        let step = t[0].step.as_ref().unwrap();
        assert_eq!(step.command, "exact 'a b' 'v 1'");
        assert_eq!(step.timeout, Duration::from_secs(300));
        assert_eq!(step.results.as_ref().unwrap().format, ResultFormat::Tap);
        assert_eq!(
            t[1].step.as_ref().unwrap().command,
            "glob TCMigrate 'to=$(rm -rf /)' live"
        );
        assert_eq!(s.unbound(), ["other.TCX"]);
    }

    #[test]
    fn a_missing_value_names_the_testcase_and_the_binding() {
        let b = bindings("[[testcase]]\nid = \"t\"\ncommand = \"x {{ arg.guest }}\"\n").unwrap();
        let mut s = sequence(vec![test("t", &[])]);
        let e = b.bind(&mut s).unwrap_err();
        assert_eq!((e.file.as_path(), e.line), (Path::new("s.seq"), 7));
        assert!(e.message.contains("testcases.toml:1"), "{e}");
    }

    #[test]
    fn bad_bindings_name_line_and_field() {
        for (text, line, field) in [
            ("[[testcase]]\nid = \"\"\ncommand = \"x\"\n", 2, "testcase[0].id"),
            ("[[testcase]]\nid = \"a[\"\ncommand = \"x\"\n", 2, "testcase[0].id"),
            ("[[testcase]]\nid = \"a\"\ncommand = \"x {{ \"\n", 3, "testcase[0].command"),
            ("[[testcase]]\nid = \"a\"\ncommand = \"x\"\ntimeout = \"soon\"\n", 4, "testcase[0].timeout"),
            ("[[testcase]]\nid = \"a\"\ncommand = \"x\"\nresults = { format = \"xml\", path = \"a\" }\n", 4, "testcase[0].results"),
            ("[[testcase]]\nid = \"a\"\ncommand = \"x\"\nworkdir = \"/abs\"\n", 4, "testcase[0].workdir"),
        ] {
            let e = bindings(text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text}: {e}");
        }
    }
}
