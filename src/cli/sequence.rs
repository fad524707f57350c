//! `pushgate sequence check`: what a sequence file means, before a gate runs it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Subcommand;

use pushgate::sequence::{self, plan, Bindings};

#[derive(Subcommand)]
pub enum SequenceCommand {
    /// Parse, validate and print the plan of sequence files (TOML or XenRT .seq): blocks,
    /// testcases with their bound commands, prepare needs, unbound ids, what is kept unused.
    /// Exits 1, with `file:line:col: message`, when a file is wrong.
    Check {
        /// The sequence files to check (our .toml or XenRT's .seq).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The testcase bindings (default: testcases.toml beside each file, if any).
        #[arg(long)]
        bindings: Option<PathBuf>,
        /// Override a `<default>`: NAME=VALUE (repeatable).
        #[arg(long = "param", short = 'D')]
        params: Vec<String>,
        /// A directory, besides each file's own, that XenRT `<include filename>` may read
        /// from (repeatable; `[input] include_roots` in pushgate.toml).
        #[arg(long = "include-root", value_name = "DIR")]
        include_roots: Vec<PathBuf>,
        /// Print a JSON array, one object per file.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the subcommand; whether every file was good.
pub fn run(what: SequenceCommand) -> Result<bool> {
    match what {
        SequenceCommand::Check {
            files,
            bindings,
            params,
            include_roots,
            json,
        } => check(&files, bindings.as_deref(), &params, &include_roots, json),
    }
}

/// `pushgate sequence check`: prints each file's plan; errors go to stderr as
/// `file:line:col: message`. Returns whether every file was good.
fn check(
    files: &[PathBuf],
    bindings: Option<&Path>,
    params: &[String],
    include_roots: &[PathBuf],
    json: bool,
) -> Result<bool> {
    let mut defaults = std::collections::BTreeMap::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            bail!("--param {p}: say NAME=VALUE");
        };
        defaults.insert(k.to_string(), v.to_string());
    }
    let shared = bindings.map(Bindings::load).transpose()?;
    let mut ok = true;
    let mut plans = Vec::new();
    let (mut total, mut unbound) = (0, 0);
    for file in files {
        let checked = (|| {
            let mut seq = sequence::load_unbound(file, &defaults, include_roots)?;
            match &shared {
                Some(b) => b.bind(&mut seq)?,
                None => {
                    let dir = file.parent().unwrap_or(Path::new("."));
                    sequence::load_bindings(dir)?.bind(&mut seq)?
                }
            }
            Ok::<_, pushgate::file_error::FileError>(seq)
        })();
        match checked {
            Ok(seq) => {
                total += seq.testcases().len();
                unbound += seq.unbound().len();
                if json {
                    plans.push(plan::json(&seq));
                } else {
                    print!("{}", plan::text(&seq));
                    println!();
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ok = false;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&plans)?);
    } else if files.len() > 1 {
        println!(
            "{} files, {} good: {total} testcases, {unbound} unbound ids",
            files.len(),
            if ok {
                "all".to_string()
            } else {
                "not all".to_string()
            }
        );
    }
    Ok(ok)
}
