//! What the gate tells whoever watches it: the demo prints it, the service logs it.

use std::fmt;

use crate::decision::{Role, Verdict};
use crate::repo::short;
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
        flight: i64,
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
        flight: i64,
        sha: &'a str,
        role: Role,
        attempt: u32,
        state: RunState,
        detail: &'a str,
        /// The host it ran on; empty when it never got one.
        host: &'a str,
    },
    Pushed {
        policy: &'a str,
        flight: i64,
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
        Event::Error { .. } => tracing::error!("{event}"),
        Event::Cancelled { .. } => tracing::warn!("{event}"),
        _ => tracing::info!("{event}"),
    }
}

/// One line an operator reads in the log: which flight of which policy, what happened.
impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Planned {
                policy,
                flight,
                base,
                tip,
                commits,
            } => write!(
                f,
                "flight {flight} of {policy}: {commits} new commit{} ({}..{})",
                plural(*commits),
                short(base),
                short(tip)
            ),
            Event::Testing {
                policy,
                flight,
                index,
                commits,
                sha,
                title,
                role,
                attempt,
                sequence,
            } => {
                write!(
                    f,
                    "flight {flight} of {policy}: testing {} ({}",
                    short(sha),
                    role.as_str()
                )?;
                if *role != Role::Baseline {
                    write!(f, " {index}/{commits}")?;
                }
                if *attempt > 1 {
                    write!(f, ", retry {}", attempt - 1)?;
                }
                write!(f, ", {sequence}): {title}")
            }
            Event::Tested {
                policy,
                flight,
                sha,
                role,
                attempt,
                state,
                detail,
                host,
            } => {
                write!(
                    f,
                    "flight {flight} of {policy}: {} ({}",
                    short(sha),
                    role.as_str()
                )?;
                if *attempt > 1 {
                    write!(f, ", retry {}", attempt - 1)?;
                }
                write!(f, ") {}", state.as_str())?;
                if !host.is_empty() && *host != "-" {
                    write!(f, " on {host}")?;
                }
                if !detail.is_empty() && *state != RunState::Pass {
                    write!(f, ": {detail}")?;
                }
                Ok(())
            }
            Event::Pushed {
                policy,
                flight,
                target,
                sha,
            } => write!(
                f,
                "flight {flight} of {policy}: pushed {target} to {}",
                short(sha)
            ),
            Event::Cancelled {
                policy,
                flight,
                reason,
            } => write!(f, "flight {flight} of {policy}: cancelled: {reason}"),
            Event::Concluded {
                policy,
                flight,
                verdict,
                reason,
            } => write!(f, "flight {flight} of {policy}: {verdict}: {reason}"),
            Event::Idle { policy, message } => write!(f, "{policy}: {message}"),
            Event::Error { policy, message } => write!(f, "{policy}: {message}"),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_sentences() {
        let sha = "0e2d2d6ad43b1c0ffee0000000000000000000000";
        let testing = Event::Testing {
            policy: "xen",
            flight: 12,
            index: 3,
            commits: 5,
            sha,
            title: "x86: fix the thing",
            role: Role::Bisect,
            attempt: 2,
            sequence: "smoke",
        };
        assert_eq!(
            testing.to_string(),
            "flight 12 of xen: testing 0e2d2d6ad43b (bisect 3/5, retry 1, smoke): x86: fix the thing"
        );
        let tested = Event::Tested {
            policy: "xen",
            flight: 12,
            sha,
            role: Role::Bisect,
            attempt: 1,
            state: RunState::Fail,
            detail: "smoke/boot failed",
            host: "dom0-3",
        };
        assert_eq!(
            tested.to_string(),
            "flight 12 of xen: 0e2d2d6ad43b (bisect) fail on dom0-3: smoke/boot failed"
        );
        assert!(!tested.to_string().contains('{'));
    }
}
