//! The native TOML form of a sequence (`sequences/NAME.toml`).
//!
//! ```toml
//! description = "..."
//! [prepare]
//! needs = { arch = "x86_64" }   # host properties the scheduler matches
//! hosts = 1
//! [[prepare.step]]              # run first; a failure blocks everything
//! name = "build"
//! command = "make"
//!
//! [[step]]                      # a command ...
//! name = "unit"
//! command = "make check"
//! results = { format = "junit", path = "out/*.xml" }
//!
//! [[step]]                      # ... a bound testcase ...
//! name = "boot"
//! testcase = "xenserver.tc.smoketest.TCSmokeTest"
//! args = ["guest=debian"]
//!
//! [[step]]                      # ... or a block of steps
//! name = "guests"
//! workers = 2                   # parallel, at most 2 at once (`parallel = true`: no limit)
//! [[step.step]]
//! ...
//! [[step.finally]]              # runs whatever happened in the block
//! ...
//! [[finally]]                   # the same for the whole sequence
//! ```
//!
//! A failing step stops the rest of its serial block unless it says `blocker = false`.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::{
    make_names_unique, Background, Block, BlockKind, HostNeed, Node, Prepare, ResultFiles,
    ResultFormat, Sequence, Step, Testcase,
};
use crate::file_error::{parse_duration, FileError, Source};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Blocks nested deeper than this are refused (they also bound the recursion below).
const MAX_DEPTH: usize = 16;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    description: String,
    prepare: Option<PrepareFile>,
    #[serde(default)]
    step: Vec<Spanned<StepFile>>,
    #[serde(default)]
    finally: Vec<Spanned<StepFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrepareFile {
    #[serde(default)]
    needs: BTreeMap<String, String>,
    hosts: Option<Spanned<usize>>,
    #[serde(default)]
    step: Vec<Spanned<StepFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFile {
    name: Spanned<String>,
    command: Option<Spanned<String>>,
    testcase: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    timeout: Option<Spanned<String>>,
    workdir: Option<Spanned<String>>,
    #[serde(default = "yes")]
    blocker: bool,
    #[serde(default)]
    env: BTreeMap<String, String>,
    results: Option<Spanned<ResultsFile>>,
    background: Option<Spanned<String>>,
    parallel: Option<bool>,
    workers: Option<Spanned<usize>>,
    #[serde(default)]
    step: Vec<Spanned<StepFile>>,
    #[serde(default)]
    finally: Vec<Spanned<StepFile>>,
}

/// `results = { format = "junit", path = "out/*.xml" }`, shared with the bindings file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResultsFile {
    format: String,
    path: String,
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
    let mut reader = Reader {
        src: &src,
        names: HashSet::new(),
    };
    let mut prepare = Prepare::default();
    if let Some(p) = file.prepare {
        prepare.needs = p.needs;
        if let Some(hosts) = &p.hosts {
            if !(1..=64).contains(hosts.get_ref()) {
                return Err(src.error(hosts.span(), "prepare.hosts", "between 1 and 64 hosts"));
            }
            prepare.hosts = (0..*hosts.get_ref())
                .map(|i| HostNeed {
                    id: Some(i.to_string()),
                    ..HostNeed::default()
                })
                .collect();
        }
        for step in p.step {
            match reader.node(step, "prepare.step", 0)? {
                Node::Test(t) => prepare.steps.push(t),
                Node::Block(_) => {
                    return Err(src.whole("prepare.step", "prepare steps are commands, not blocks"))
                }
            }
        }
    }
    let mut body = Block::serial(Vec::new());
    for step in file.step {
        body.nodes.push(reader.node(step, "step", 0)?);
    }
    for step in file.finally {
        body.finally.push(reader.node(step, "finally", 0)?);
    }
    let mut sequence = Sequence {
        name,
        description: file.description,
        source: path.to_path_buf(),
        variables: BTreeMap::new(),
        prepare,
        body,
        kept: Vec::new(),
    };
    make_names_unique(&mut sequence);
    Ok(sequence)
}

struct Reader<'a> {
    src: &'a Source<'a>,
    names: HashSet<String>,
}

impl Reader<'_> {
    /// One step of the file: a command, a testcase bound later, or a block of steps (read
    /// recursively). One function because each kind is checked against the same set of
    /// fields, and a mistake must name the field whatever the kind.
    fn node(
        &mut self,
        step: Spanned<StepFile>,
        field: &str,
        depth: usize,
    ) -> Result<Node, FileError> {
        let src = self.src;
        let line = src.line_of(step.span().start);
        let step = step.into_inner();
        let step_name = step.name.get_ref().trim().to_string();
        if step_name.is_empty() || step_name.contains(['/', ' ', '#']) {
            return Err(src.error(
                step.name.span(),
                &format!("{field}.name"),
                "a step name is one word without `/`, `#` or spaces",
            ));
        }
        if !self.names.insert(step_name.clone()) {
            return Err(src.error(
                step.name.span(),
                &format!("{field}.name"),
                format!("two steps are named `{step_name}`"),
            ));
        }
        let is_block = !step.step.is_empty() || !step.finally.is_empty();
        let kinds = [step.command.is_some(), step.testcase.is_some(), is_block];
        if kinds.iter().filter(|&&k| k).count() != 1 {
            return Err(src.error(
                step.name.span(),
                field,
                format!("step `{step_name}` needs exactly one of `command`, `testcase` or nested [[{field}.step]]"),
            ));
        }
        if is_block {
            if depth >= MAX_DEPTH {
                return Err(src.error(step.name.span(), field, "blocks nest too deeply"));
            }
            if let Some(w) = &step.workers {
                if *w.get_ref() == 0 {
                    return Err(src.error(
                        w.span(),
                        &format!("{field}.workers"),
                        "at least 1 worker",
                    ));
                }
            }
            let parallel = step.parallel.unwrap_or(step.workers.is_some());
            let kind = if parallel {
                BlockKind::Parallel {
                    workers: step.workers.map(|w| w.into_inner()),
                }
            } else {
                BlockKind::Serial
            };
            let inner = format!("{field}.step");
            let mut block = Block {
                kind,
                blocker: step.blocker,
                group: None,
                nodes: Vec::new(),
                finally: Vec::new(),
                line,
            };
            for s in step.step {
                block.nodes.push(self.node(s, &inner, depth + 1)?);
            }
            for s in step.finally {
                block
                    .finally
                    .push(self.node(s, &format!("{field}.finally"), depth + 1)?);
            }
            return Ok(Node::Block(block));
        }
        if step.parallel.is_some() || step.workers.is_some() {
            return Err(src.error(
                step.name.span(),
                field,
                "`parallel` and `workers` belong to a block of steps",
            ));
        }
        let run = match &step.command {
            Some(command) => {
                if command.get_ref().trim().is_empty() {
                    return Err(src.error(
                        command.span(),
                        &format!("{field}.command"),
                        "empty command",
                    ));
                }
                let timeout = match &step.timeout {
                    None => DEFAULT_TIMEOUT,
                    Some(t) => parse_timeout(src, t, &format!("{field}.timeout"))?,
                };
                let workdir = match &step.workdir {
                    None => None,
                    Some(w) => Some(check_workdir(src, w, &format!("{field}.workdir"))?),
                };
                let results = match &step.results {
                    None => None,
                    Some(r) => Some(results(src, r, &format!("{field}.results"))?),
                };
                let background = match &step.background {
                    None => Background::Step,
                    Some(b) => match b.get_ref().as_str() {
                        "step" => Background::Step,
                        "run" => Background::Run,
                        other => {
                            return Err(src.error(
                                b.span(),
                                &format!("{field}.background"),
                                format!(
                                    "`{other}`: say `step` (what the step leaves running ends \
                                     with it) or `run` (it ends with the run)"
                                ),
                            ))
                        }
                    },
                };
                Some(Step {
                    name: step_name.clone(),
                    command: command.get_ref().clone(),
                    timeout,
                    workdir,
                    env: step.env,
                    results,
                    background,
                })
            }
            // Bound later, from the bindings file.
            None => None,
        };
        let id = match &step.testcase {
            Some(id) if id.get_ref().trim().is_empty() => {
                return Err(src.error(id.span(), &format!("{field}.testcase"), "empty testcase id"))
            }
            Some(id) => id.get_ref().trim().to_string(),
            None => step_name.clone(),
        };
        Ok(Node::Test(Testcase {
            id,
            name: step_name,
            tc: None,
            blocker: step.blocker,
            group: None,
            prio: None,
            host: None,
            guest: None,
            args: step.args,
            step: run,
            line,
        }))
    }
}

pub(super) fn parse_timeout(
    src: &Source<'_>,
    t: &Spanned<String>,
    field: &str,
) -> Result<Duration, FileError> {
    parse_duration(t.get_ref())
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            src.error(
                t.span(),
                field,
                format!(
                    "`{}` is not a duration like `30s`, `5m` or `1h`",
                    t.get_ref()
                ),
            )
        })
}

pub(super) fn check_workdir(
    src: &Source<'_>,
    w: &Spanned<String>,
    field: &str,
) -> Result<PathBuf, FileError> {
    let p = PathBuf::from(w.get_ref());
    let inside = p
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(src.error(
            w.span(),
            field,
            "the working directory must be relative and stay inside the checkout",
        ));
    }
    Ok(p)
}

pub(super) fn results(
    src: &Source<'_>,
    r: &Spanned<ResultsFile>,
    field: &str,
) -> Result<ResultFiles, FileError> {
    let inner = r.get_ref();
    let format = ResultFormat::parse(&inner.format).ok_or_else(|| {
        src.error(
            r.span(),
            field,
            format!(
                "result format `{}` is not junit, tap or subunit",
                inner.format
            ),
        )
    })?;
    let path = Path::new(&inner.path);
    let inside = !inner.path.trim().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(src.error(
            r.span(),
            field,
            "the results path is a relative glob inside the step's working directory",
        ));
    }
    Ok(ResultFiles {
        format,
        path: inner.path.clone(),
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
        assert!(seq.testcases().len() >= 2);
    }

    #[test]
    fn steps_keep_order_and_defaults() {
        let s = p("[[step]]\nname = \"a\"\ncommand = \"true\"\n[[step]]\nname = \"b\"\ncommand = \"make\"\ntimeout = \"5m\"\nblocker = false\nworkdir = \"sub/dir\"\n")
            .unwrap();
        let t = s.testcases();
        let a = t[0].step.as_ref().unwrap();
        let b = t[1].step.as_ref().unwrap();
        assert_eq!(a.timeout, DEFAULT_TIMEOUT);
        assert!(t[0].blocker);
        assert_eq!(b.timeout, Duration::from_secs(300));
        assert!(!t[1].blocker);
        assert_eq!(b.workdir.as_deref(), Some(Path::new("sub/dir")));
    }

    #[test]
    fn blocks_finally_prepare_and_testcases() {
        let s = p(r#"
[prepare]
needs = { arch = "x86_64" }
hosts = 2
[[prepare.step]]
name = "build"
command = "make"

[[step]]
name = "guests"
workers = 2
blocker = false
[[step.step]]
name = "g1"
testcase = "xenserver.guest.TCInstall"
args = ["guest=a"]
[[step.step]]
name = "g2"
command = "true"
[[step.finally]]
name = "clean"
command = "true"

[[finally]]
name = "logs"
command = "true"
"#)
        .unwrap();
        assert_eq!(s.prepare.host_count(), 2);
        assert_eq!(s.prepare.needs["arch"], "x86_64");
        let Node::Block(b) = &s.body.nodes[0] else {
            panic!()
        };
        assert_eq!(b.kind, BlockKind::Parallel { workers: Some(2) });
        assert!(!b.blocker);
        let names: Vec<&str> = s.testcases().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["build", "g1", "g2", "clean", "logs"]);
        assert_eq!(s.unbound(), ["xenserver.guest.TCInstall"]);
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
            ("[[step]]\nname = \"a\"\n", 2, "step"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\ntestcase = \"t\"\n", 2, "step"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\nworkers = 2\n", 2, "step"),
            ("[[step]]\nname = \"a\"\nworkers = 0\n[[step.step]]\nname = \"b\"\ncommand = \"x\"\n", 3, "step.workers"),
            ("[[step]]\nname = \"a\"\ncommand = \"x\"\nresults = { format = \"xml\", path = \"o\" }\n", 4, "step.results"),
            ("[prepare]\nhosts = 0\n[[step]]\nname = \"a\"\ncommand = \"x\"\n", 2, "prepare.hosts"),
        ];
        for (text, line, field) in cases {
            let e = p(text).unwrap_err();
            assert_eq!((e.line, e.field.as_str()), (line, field), "{text:?}: {e}");
        }
    }
}
