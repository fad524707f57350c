//! `pushgate completions SHELL`: the shell's completion script, printed, for packagers and
//! users to install (`pushgate completions bash > /usr/share/bash-completion/completions/pushgate`).

use clap::CommandFactory;

#[derive(clap::Args)]
pub struct Args {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    use std::io::Write;
    let mut command = super::Cli::command();
    // Made in memory first: clap_complete panics on a write error, such as `| head`.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "pushgate", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
