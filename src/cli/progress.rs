//! Progress of long work (`gate --once`, `mail ingest`, benchmarks) for whoever runs it: on a
//! terminal, a spinner that shows what is happening now, with the events worth keeping printed
//! above it; elsewhere (cron, a pipe, a file) one plain line per event.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Where the lines of long work go.
pub struct Progress {
    /// `None` when standard error is not a terminal.
    spinner: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when standard error is a terminal, plain lines otherwise.
    pub fn new() -> Progress {
        let spinner = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress { spinner }
    }

    /// What is happening now: replaces the spinner's line, or prints a line.
    pub fn now(&self, line: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(line.to_string()),
            None => eprintln!("{line}"),
        }
    }

    /// A line to keep: printed above the spinner, or plainly.
    pub fn keep(&self, line: &str) {
        match &self.spinner {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the spinner (the work is done, or the command prints its result now).
    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A gate's flights as they go, for `gate --once` and the demo, whose log is quiet (warnings
/// and errors): the run under way on the spinner, each other event a line kept. What each
/// policy decided is the command's own output, so it is not said here too.
pub struct GateProgress(Progress);

impl GateProgress {
    pub fn new() -> GateProgress {
        GateProgress(Progress::new())
    }
}

impl pushgate::gate::Progress for GateProgress {
    fn event(&self, event: &pushgate::gate::Event) {
        use pushgate::gate::Event;
        match event {
            Event::Idle { .. } | Event::Error { .. } | Event::Concluded { .. } => {}
            Event::Testing { .. } => self.0.now(&event.to_string()),
            _ => self.0.keep(&event.to_string()),
        }
    }
}
