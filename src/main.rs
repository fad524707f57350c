//! The `pushgate` command: parses the command line, starts logging and hands over to the
//! subcommand's file in `cli/`.

mod cli;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};

#[tokio::main]
async fn main() -> Result<()> {
    cli::keep_freed_memory();
    let cli = Cli::parse();
    match cli.command {
        Command::Bisect(args) => {
            cli::init_logs("warn");
            std::process::exit(cli::bisect::run(args).await);
        }
        Command::Sequence { what } => {
            let good = cli::sequence::run(what)?;
            std::process::exit(if good { 0 } else { 1 });
        }
        Command::Mail { what } => {
            cli::init_logs("warn");
            cli::mail::run(what).await
        }
        Command::Series { what } => {
            cli::init_logs("warn");
            cli::series::run(what).await
        }
        Command::Jobs { what, server } => {
            cli::init_logs("warn");
            cli::jobs::run(what, server).await
        }
        Command::Hosts { what } => {
            cli::init_logs("warn");
            cli::hosts::run(what).await
        }
        Command::Serve(args) => {
            cli::init_logs("info");
            cli::serve::run(args).await
        }
        Command::Gate(args) => {
            cli::init_logs("info");
            std::process::exit(cli::gate::run(args).await?);
        }
        Command::Demo(args) => {
            cli::init_logs("warn");
            cli::demo::run(args).await
        }
        Command::Bench { what } => {
            // The intake bench's load process prints JSON and logs nothing.
            if !matches!(what, cli::bench::Command::IntakeLoad(_)) {
                cli::init_logs("warn");
            }
            cli::bench::run(what).await
        }
    }
}
