//! The layout docs/design.md describes, checked on the source: imports follow the flow (the
//! library's top-level modules import each other without a cycle), and the pure core imports
//! nothing that does I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The `crate::a::b` paths a file names outside its unit tests, as `a::b`.
fn imports(path: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let segments: Vec<&str> = rest[..end]
            .split("::")
            .take_while(|s| s.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
            .collect();
        if !segments.is_empty() {
            out.insert(segments.join("::"));
        }
    }
    out
}

fn library() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src)
        .into_iter()
        .filter(|f| {
            let rel = f.strip_prefix(&src).unwrap();
            !rel.starts_with("cli") && rel != Path::new("main.rs") && rel != Path::new("lib.rs")
        })
        .collect();
    (src, files)
}

/// The top-level module a file of the library belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn the_top_level_modules_import_each_other_without_a_cycle() {
    let (src, files) = library();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let targets = graph.entry(module.clone()).or_default();
        for import in imports(file) {
            let top = import.split("::").next().unwrap().to_string();
            if top != module {
                targets.insert(top);
            }
        }
    }
    assert!(graph.len() > 15, "found too few modules: {graph:?}");
    // Depth-first: a module met again on the path being walked closes a cycle.
    fn walk(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == n) {
            let mut cycle = path[at..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for t in graph.get(n).into_iter().flatten() {
            if let Some(c) = walk(t, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in graph.keys() {
        if let Some(cycle) = walk(n, &graph, &mut Vec::new(), &mut done) {
            panic!(
                "imports go round: {} (a type one of them needs lives in the wrong module)",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_pure_core_imports_nothing_that_does_io() {
    let (src, files) = library();
    // What each part of the pure core may name: other pure modules, the file error, and
    // plain data of the store's rows (never the store's queries: they take a `Store`).
    let pure: &[(&str, &[&str])] = &[
        ("decision", &["culprit"]),
        ("culprit", &[]),
        ("sequence", &["file_error", "sequence"]),
        ("series/assembly.rs", &["intake::mail"]),
        ("series/triage.rs", &[]),
        ("hosts/scheduler.rs", &["hosts::inventory"]),
        ("intake/github", &["digest", "intake::github"]),
        ("intake/mail/message.rs", &["digest", "intake::mail"]),
        ("intake/mail/subject.rs", &[]),
        ("intake/mail/trailers.rs", &[]),
        ("intake/mail/mbox.rs", &[]),
    ];
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let Some((_, allowed)) = pure.iter().find(|(p, _)| rel.starts_with(p)) else {
            continue;
        };
        let own = module_of(&src, file);
        for import in imports(file) {
            let ok = import.split("::").next() == Some(own.as_str()) && !rel.contains('/')
                || allowed
                    .iter()
                    .any(|a| import == *a || import.starts_with(&format!("{a}::")))
                || (own == "sequence" && import.starts_with("sequence"));
            if !ok {
                wrong.push(format!("{rel} imports crate::{import}"));
            }
        }
    }
    assert!(wrong.is_empty(), "the pure core reaches out: {wrong:#?}");
}

#[test]
fn sequences_know_nothing_of_hosts_or_runs() {
    let (src, files) = library();
    for file in files.iter().filter(|f| module_of(&src, f) == "sequence") {
        for import in imports(file) {
            assert!(
                !(import.starts_with("hosts") || import.starts_with("run")),
                "{} imports crate::{import}",
                file.display()
            );
        }
    }
}
