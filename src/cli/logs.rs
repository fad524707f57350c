//! How pushgate logs and how it says that a command failed: one line per event on standard
//! error, once; human words by default (colour only on a terminal), JSON for collectors; an
//! error printed once with those of its causes that add something.

use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The logging flags every command takes.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct LogArgs {
    /// Say more: `-v` adds debug lines, `-vv` everything (RUST_LOG, when set, decides instead:
    /// `RUST_LOG=pushgate=debug,sqlx=warn`).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say less: `-q` only warnings and errors, `-qq` only errors.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    /// How log lines are written: `human` (default), or `json`, one object per line, for a log
    /// collector.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

const LEVELS: [&str; 5] = ["error", "warn", "info", "debug", "trace"];

impl LogArgs {
    /// The level in force for a command whose own default is `default`, moved by `-v`/`-q`.
    fn level(&self, default: &str) -> &'static str {
        let at = LEVELS.iter().position(|l| *l == default).unwrap_or(1) as i32;
        let at = at + i32::from(self.verbose) - i32::from(self.quiet);
        LEVELS[at.clamp(0, LEVELS.len() as i32 - 1) as usize]
    }

    /// Starts logging to standard error. RUST_LOG, when set, overrides the level.
    pub fn init(&self, default: &str) {
        let level = self.level(default);
        let filter = match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => EnvFilter::try_new(&spec).unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG=`{spec}` is not a log filter ({e}); using `{level}`");
                EnvFilter::new(level)
            }),
            // The libraries we stand on say too much at debug for an operator; `-vv` shows it.
            _ if level == "debug" => {
                EnvFilter::new("debug,sqlx=info,hyper=info,h2=info,russh=info")
            }
            _ => EnvFilter::new(level),
        };
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false);
        let set = match self.log_format {
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
            LogFormat::Human => {
                let ansi =
                    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                builder
                    .with_ansi(ansi)
                    .event_format(HumanLine { ansi })
                    .try_init()
            }
        };
        // Only a second init in one process (a test) fails; the first one stands.
        let _ = set;
    }
}

/// A human log line: time, level, the message and the event's own fields. The spans it happens
/// in (branch, flight, run, step) are left out: our messages name their flight and policy, and
/// the spans' fields repeated on every line made each one twice as long. `--log-format json`
/// keeps them.
struct HumanLine {
    ansi: bool,
}

impl<S, N> FormatEvent<S, N> for HumanLine
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let time = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
        let level = *event.metadata().level();
        let (on, off) = match (self.ansi, level) {
            (false, _) => ("", ""),
            (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
            (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
            (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
            (true, _) => ("\x1b[2m", "\x1b[0m"),
        };
        write!(writer, "{time} {on}{level:>5}{off} ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// What a failed command prints: `error: ` and the error, then each cause that its message does
/// not already hold. (Our errors often quote their cause in their own message, and anyhow's
/// default printing then says it twice, under "Caused by:".)
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = format!("error: {e}");
    let mut said = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || said.contains(&text) {
            continue;
        }
        out.push_str(&format!("\n  caused by: {text}"));
        said.push_str(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the store: {0}")]
    struct Outer(#[source] Inner);
    #[derive(Debug, thiserror::Error)]
    #[error("disk full")]
    struct Inner;

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        let e = anyhow::Error::new(Outer(Inner)).context("pushgate could not start");
        assert_eq!(
            describe(&e),
            "error: pushgate could not start\n  caused by: cannot open the store: disk full"
        );
        let plain = anyhow::anyhow!("no such policy");
        assert_eq!(describe(&plain), "error: no such policy");
    }

    #[test]
    fn verbosity_moves_the_default_level() {
        let args = |verbose, quiet| LogArgs {
            verbose,
            quiet,
            log_format: LogFormat::Human,
        };
        assert_eq!(args(0, 0).level("info"), "info");
        assert_eq!(args(1, 0).level("info"), "debug");
        assert_eq!(args(5, 0).level("info"), "trace");
        assert_eq!(args(0, 1).level("info"), "warn");
        assert_eq!(args(0, 4).level("warn"), "error");
    }
}
