//! What each fuzz target (`fuzz/fuzz_targets/NAME.rs`, run by `fuzz/run`) feeds pushgate:
//! every parser of what comes from outside, given arbitrary bytes. A target fails when a
//! parser panics, runs out of memory or time (libFuzzer's limits), or breaks a promise checked
//! here: an error about a file names that file.
//!
//! The bodies live in the library, not in the fuzz crate, so that the parsers they reach may
//! stay private to their modules, and so that the ordinary tests run every seed through every
//! target on each CI run: a target that no longer builds or panics on its seeds fails there,
//! without the nightly toolchain libFuzzer needs.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::policy::Policy;
use crate::file_error::FileErrors;
use crate::hosts::Inventory;
use crate::intake::github::{commands, webhook};
use crate::intake::mail::{mbox, message::Mail};
use crate::sequence::model::ResultFormat;
use crate::sequence::results;
use crate::sequence::{self, Bindings, Sequences};
use crate::series::assembly;

/// A target's body: any bytes in, a panic out when a promise is broken.
pub type Target = fn(&[u8]);

/// Every target, by name, as `fuzz/run` and the seed test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("mail", mail),
    ("webhook", webhook),
    ("policy", policy),
    ("sequence", native_sequence),
    ("bindings", bindings),
    ("hosts", hosts),
    ("xenrt", xenrt),
    ("junit", junit),
    ("tap", tap),
    ("subunit", subunit),
];

/// A message or an mbox of them: each parsed, and the good ones assembled into series.
pub fn mail(data: &[u8]) {
    let mut mails: Vec<Mail> = Mail::parse(data).into_iter().collect();
    mails.extend(mbox::split(data).iter().filter_map(|m| Mail::parse(m).ok()));
    // Assembly only groups what it is given: every place it fills is one of the mails.
    for revision in assembly::assemble(&mails) {
        for i in revision.patches.iter().flatten().chain(&revision.cover) {
            assert!(*i < mails.len(), "mail {i} of {}", mails.len());
        }
    }
}

/// A webhook body, read as each event GitHub sends; as text, a comment's command.
pub fn webhook(data: &[u8]) {
    for event in [
        "push",
        "pull_request",
        "issue_comment",
        "commit_comment",
        "ping",
        "other",
    ] {
        let _ = webhook::parse_event(event, data);
    }
    let _ = commands::parse_command(&String::from_utf8_lossy(data));
}

/// A policy file, against a sequences directory holding `smoke`.
pub fn policy(data: &[u8]) {
    // Made once: the fuzzer calls this millions of times.
    static SEQUENCES: std::sync::OnceLock<Sequences> = std::sync::OnceLock::new();
    let sequences = SEQUENCES.get_or_init(|| {
        let mut sequences = Sequences::new();
        if let Ok(smoke) = sequence::parse_native(
            Path::new("fuzz/sequences/smoke.toml"),
            "[[step]]\nname = \"build\"\ncommand = \"make\"\n",
        ) {
            sequences.insert("smoke".into(), smoke);
        }
        sequences
    });
    let path = Path::new("fuzz/policies/p.toml");
    names_its_file(
        Policy::parse(path, &String::from_utf8_lossy(data), sequences),
        path,
    );
}

/// A sequence file in pushgate's TOML.
pub fn native_sequence(data: &[u8]) {
    let path = Path::new("fuzz/sequences/s.toml");
    names_its_file(
        sequence::parse_native(path, &String::from_utf8_lossy(data)),
        path,
    );
}

/// A testcase bindings file.
pub fn bindings(data: &[u8]) {
    let path = Path::new("fuzz/sequences/testcases.toml");
    names_its_file(Bindings::parse(path, &String::from_utf8_lossy(data)), path);
}

/// A hosts file.
pub fn hosts(data: &[u8]) {
    let path = Path::new("fuzz/hosts.toml");
    names_its_file(Inventory::parse(path, &String::from_utf8_lossy(data)), path);
}

/// A XenRT sequence file. Its directory does not exist, so an include reads nothing.
pub fn xenrt(data: &[u8]) {
    let path = Path::new("/nonexistent/pushgate-fuzz/s.seq");
    let loaded = sequence::parse_xenrt(path, &String::from_utf8_lossy(data), &BTreeMap::new());
    if let Err(e) = &loaded {
        // An include's own errors name the included file; everything else names this one.
        assert!(
            e.file == path || e.field == "filename" || e.file.starts_with("/nonexistent"),
            "{e}"
        );
    }
}

pub fn junit(data: &[u8]) {
    let _ = results::parse(ResultFormat::Junit, Path::new("r.xml"), data);
}

pub fn tap(data: &[u8]) {
    let _ = results::parse(ResultFormat::Tap, Path::new("r.tap"), data);
}

pub fn subunit(data: &[u8]) {
    let _ = results::parse(ResultFormat::Subunit, Path::new("r.subunit"), data);
}

/// An error about a file a person wrote names that file.
fn names_its_file<T, E: Into<FileErrors>>(result: Result<T, E>, path: &Path) {
    if let Err(errors) = result {
        let errors = errors.into();
        assert!(!errors.is_empty(), "an error with no mistake in it");
        for e in &errors.0 {
            assert_eq!(e.file, path, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every file under `dir`, recursively.
    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
                .flatten()
            {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    /// The seeds `fuzz/run` gives each target: the test data and the project's own files.
    fn seeds(target: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let testdata = root.join("../shared/testdata");
        let dirs: Vec<PathBuf> = match target {
            "mail" => vec![testdata.join("mailinfo")],
            "webhook" => vec![testdata.join("github-webhooks")],
            "policy" => vec![root.join("policies")],
            "sequence" => vec![root.join("sequences")],
            "xenrt" => vec![testdata.join("xenrt-seqs")],
            _ => Vec::new(),
        };
        let mut seeds: Vec<PathBuf> = dirs.iter().flat_map(|d| files(d)).collect();
        let own = root.join("fuzz/seeds").join(target);
        if own.exists() {
            seeds.extend(files(&own));
        }
        seeds
    }

    #[test]
    fn every_seed_passes_through_its_target() {
        for (name, target) in TARGETS {
            let seeds = seeds(name);
            assert!(!seeds.is_empty(), "no seeds for {name}");
            for seed in seeds {
                let data = std::fs::read(&seed).unwrap();
                target(&data);
            }
        }
    }
}
