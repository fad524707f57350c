//! `pushgate check`: what `serve` would load and reach, checked without changing anything.

use std::path::PathBuf;

use anyhow::Result;

use pushgate::config::Config;
use pushgate::file_error::FileErrors;
use pushgate::service::check::{self, Probe};

#[derive(clap::Args)]
pub struct Args {
    /// The service configuration [default: ./pushgate.toml if present, else the defaults].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Only the files: ask no repository, database, mail server, host or GitHub.
    #[arg(long)]
    offline: bool,
}

/// Prints every problem found; 0 when there is none, 1 otherwise.
pub async fn run(args: Args) -> Result<u8> {
    let (path, cwd) = super::config_path(args.config.as_deref())?;
    let shown = path
        .as_ref()
        .map_or("(no pushgate.toml: the defaults)".to_string(), |p| {
            p.display().to_string()
        });
    let config = match Config::load(path.as_deref(), &cwd) {
        Ok(config) => config,
        Err(errors) => {
            print_file_errors(&errors);
            println!(
                "{shown}: {} to fix before anything else can be checked",
                count(errors.0.len(), "mistake")
            );
            return Ok(1);
        }
    };
    pushgate::file_error::set_max_file_size(config.max_file_size);
    println!("configuration: {shown}");
    println!("policies:      {}", config.policies_dir.display());
    println!("sequences:     {}", config.sequences_dir.display());
    println!(
        "hosts:         {}{}",
        config.hosts_file.display(),
        if config.hosts_file.exists() {
            ""
        } else {
            " (none: runs go to this machine)"
        }
    );
    println!("state:         {}", config.state_dir.display());
    let loaded = match check::load_files(&config) {
        Ok(loaded) => loaded,
        Err(errors) => {
            println!();
            print_file_errors(&errors);
            println!(
                "\n{} in the files; fix them first (nothing was asked over the network)",
                count(errors.0.len(), "mistake")
            );
            return Ok(1);
        }
    };
    println!(
        "\nfiles: {}, {}, {}: no mistakes",
        count(loaded.policies.len(), "policy"),
        count(loaded.sequences.len(), "sequence"),
        count(loaded.inventory.hosts.len(), "host"),
    );
    if args.offline {
        return Ok(0);
    }
    println!();
    let probes = check::probe(&config, &loaded.policies, &loaded.inventory).await;
    let failed = probes.iter().filter(|p| p.outcome.is_err()).count();
    for Probe { what, outcome } in &probes {
        match outcome {
            Ok(said) => println!("ok    {what}: {said}"),
            Err(why) => println!("FAIL  {what}: {why}"),
        }
    }
    if failed > 0 {
        println!(
            "\n{} of {} could not be reached",
            failed,
            count(probes.len(), "service")
        );
        return Ok(1);
    }
    println!("\nall is well");
    Ok(0)
}

fn print_file_errors(errors: &FileErrors) {
    for e in &errors.0 {
        println!("error: {e}");
    }
}

/// `1 policy`, `3 policies`.
fn count(n: usize, word: &str) -> String {
    match (n, word.strip_suffix('y')) {
        (1, _) => format!("1 {word}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ => format!("{n} {word}s"),
    }
}
