//! The `pushgate` command: parses the command line, starts logging, hands over to the
//! subcommand's file in `cli/` and prints its error, once.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::logs::LogArgs;
use cli::{Cli, Command};

fn main() -> ExitCode {
    cli::keep_freed_memory();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", cli::logs::describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; its exit code, or the error that ended it.
async fn dispatch(cli: Cli) -> Result<u8> {
    let logs = cli.logs;
    if matches!(
        cli.command,
        Command::Status(_)
            | Command::Flights(_)
            | Command::Outbox(_)
            | Command::Completions(_)
            | Command::Check(_)
            | Command::Sequence { .. }
    ) {
        cli::end_quietly_when_output_closes();
    }
    match cli.command {
        Command::Bisect(args) => {
            logs.init("warn");
            Ok(cli::bisect::run(args).await)
        }
        Command::Sequence { what } => {
            logs.init("warn");
            let good = cli::sequence::run(what)?;
            Ok(if good { 0 } else { 1 })
        }
        Command::Mail { what } => {
            logs.init("warn");
            cli::mail::run(what).await.map(|()| 0)
        }
        Command::Series { what } => {
            logs.init("warn");
            cli::series::run(what).await.map(|()| 0)
        }
        Command::Jobs { what, server } => {
            // `jobs showlog -v` asks for the logs' ends, not for our debug lines.
            LogArgs {
                verbose: 0,
                ..logs.clone()
            }
            .init("warn");
            cli::jobs::run(what, server, logs.verbose > 0)
                .await
                .map(|()| 0)
        }
        Command::Hosts { what } => {
            logs.init("warn");
            cli::hosts::run(what).await.map(|()| 0)
        }
        Command::Init(args) => {
            logs.init("warn");
            cli::init::run(args).await.map(|()| 0)
        }
        Command::Check(args) => {
            logs.init("warn");
            cli::check::run(args).await
        }
        Command::Status(args) => {
            logs.init("warn");
            cli::status::run(args).await.map(|()| 0)
        }
        Command::Flights(args) => {
            logs.init("warn");
            cli::flights::run(args).await.map(|()| 0)
        }
        Command::Outbox(args) => {
            logs.init("warn");
            cli::outbox::run(args).await.map(|()| 0)
        }
        Command::Serve(args) => {
            logs.init("info");
            cli::serve::run(args).await.map(|()| 0)
        }
        Command::Gate(args) => {
            // With --once, what it does is shown as progress and its decisions as output.
            logs.init(if args.once { "warn" } else { "info" });
            cli::gate::run(args).await
        }
        Command::Demo(args) => {
            logs.init("warn");
            cli::demo::run(args).await.map(|()| 0)
        }
        Command::Completions(args) => cli::completions::run(args).map(|()| 0),
        Command::Bench { what } => {
            // The intake bench's load process prints JSON and logs nothing.
            if !matches!(what, cli::bench::Command::IntakeLoad(_)) {
                logs.init("warn");
            }
            cli::bench::run(what).await.map(|()| 0)
        }
    }
}
