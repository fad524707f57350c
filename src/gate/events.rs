//! What the gate tells whoever watches it: the demo prints it, the service logs it.

use crate::decision::{Role, Verdict};
use crate::store::RunState;

#[derive(Clone, Debug)]
pub enum Event<'a> {
    Planned {
        policy: &'a str,
        flight: i64,
        base: &'a str,
        tip: &'a str,
        commits: usize,
    },
    Testing {
        policy: &'a str,
        index: usize,
        commits: usize,
        sha: &'a str,
        title: &'a str,
        role: Role,
        attempt: u32,
        sequence: &'a str,
    },
    Tested {
        policy: &'a str,
        sha: &'a str,
        role: Role,
        state: RunState,
        detail: &'a str,
    },
    Pushed {
        policy: &'a str,
        target: &'a str,
        sha: &'a str,
    },
    Cancelled {
        policy: &'a str,
        flight: i64,
        reason: &'a str,
    },
    Concluded {
        policy: &'a str,
        flight: i64,
        verdict: Verdict,
        reason: &'a str,
    },
    /// Nothing to do, or waiting; says why.
    Idle {
        policy: &'a str,
        message: &'a str,
    },
    Error {
        policy: &'a str,
        message: &'a str,
    },
}

/// Receives the gate's events as they happen.
pub trait Progress: Send + Sync {
    fn event(&self, event: &Event);
}

/// For commands with no terminal to draw on (`serve`, `gate`, `mail`): the log line that the
/// gate writes for every event is all they show. (It used to log the event again here, so
/// `serve` printed every event twice.)
pub struct LogProgress;

impl Progress for LogProgress {
    fn event(&self, _: &Event) {}
}

/// The log line of an event; every watcher gets it.
pub fn log(event: &Event) {
    match event {
        Event::Error { policy, message } => tracing::error!(%policy, "{message}"),
        Event::Cancelled { policy, reason, .. } => {
            tracing::warn!(%policy, "flight cancelled: {reason}")
        }
        other => tracing::info!("{other:?}"),
    }
}
