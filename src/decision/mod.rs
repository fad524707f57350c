//! The gate's decision for one flight, as a pure function of what has been observed so far.
//!
//! The driver stores every finished test and asks [`decide`] what to do next. Because the answer
//! depends only on stored observations, a restart replays to the same point: finished tests are
//! never run again, and a decision is never made twice differently.
//!
//! The rules, after OSSTest:
//! - the tip is tested; a failure is retried `retries` times, and a pass on retry is `flaky`;
//! - a tip that still fails is compared with the baseline (the target branch's head): steps that
//!   fail there too are `like-baseline`, steps that never passed anywhere are `never-passed`, and
//!   neither blocks the push;
//! - any other failing step is a regression: the culprit finder searches the range for the
//!   first commit that shows one (flake-aware, on `hosts` hosts at once, reusing results of
//!   earlier flights), and the commits before it are pushed;
//! - an infrastructure failure (`broken`) is retried like a failure but never blamed on a commit.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::culprit::{FlakeHistory, Settings};

mod search;

use search::search;
pub use search::{finder_log, FinderStep};

/// Why a commit was tested.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Role {
    /// The staging tip, the commit the flight wants to push.
    Tip,
    /// The target branch's head, to tell regressions from old failures.
    Baseline,
    /// A commit inside the range, to find the culprit.
    Bisect,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub const ALL: [Role; 3] = [Role::Tip, Role::Baseline, Role::Bisect];

    pub fn parse(s: &str) -> Option<Role> {
        s.parse().ok()
    }
}

/// The result of testing one commit once (all of the policy's sequences).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every step passed.
    Pass,
    /// Some steps failed. Step names are qualified by their sequence (`smoke/test`).
    Fail {
        failed: BTreeSet<String>,
        passed: BTreeSet<String>,
        /// Failed steps that are their sequence's first and did not start at all (the shell
        /// could not find or run the command): nothing of that sequence ran.
        not_started: BTreeSet<String>,
    },
    /// The host, the network or pushgate itself failed: says nothing about the commit.
    Broken { reason: String },
}

impl Outcome {
    /// A pass when nothing failed, else the failure.
    pub fn of(
        failed: BTreeSet<String>,
        passed: BTreeSet<String>,
        not_started: BTreeSet<String>,
    ) -> Outcome {
        if failed.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Fail {
                failed,
                passed,
                not_started,
            }
        }
    }
}

/// One finished test of one commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// 0 is the base (the target's head), `1..=n` the range's first-parent commits, oldest first.
    pub index: usize,
    pub role: Role,
    pub outcome: Outcome,
}

/// The outcome of a flight, judged against the baseline.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Verdict {
    Pass,
    Regression,
    NeverPassed,
    LikeBaseline,
    Flaky,
    Broken,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub const ALL: [Verdict; 6] = [
        Verdict::Pass,
        Verdict::Regression,
        Verdict::NeverPassed,
        Verdict::LikeBaseline,
        Verdict::Flaky,
        Verdict::Broken,
    ];

    pub fn parse(s: &str) -> Option<Verdict> {
        s.parse().ok()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the flight concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    /// The commit to fast-forward the target to (index into the range); `None` pushes nothing.
    pub push_to: Option<usize>,
    /// For a regression, the commit each regression began at, oldest first: one per set of
    /// steps that regressed together.
    pub culprits: Vec<Blame>,
    /// The failing steps that block (for a regression) or that were let through (otherwise).
    pub steps: BTreeSet<String>,
    /// Steps that failed on the tip but did not gate, and why (`like-baseline`,
    /// `never-passed`).
    pub not_gating: Vec<(String, Verdict)>,
    /// One sentence a maintainer can read on the page and in the mail.
    pub reason: String,
}

impl Decision {
    /// The oldest culprit: the commit the target may not reach.
    pub fn culprit(&self) -> Option<usize> {
        self.culprits.iter().map(|b| b.index).min()
    }
}

/// One commit named the culprit of one regression.
#[derive(Clone, Debug, PartialEq)]
pub struct Blame {
    /// Index into the range (1..=n).
    pub index: usize,
    /// The steps whose failure began there.
    pub steps: BTreeSet<String>,
    pub probability: f64,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Next {
    /// Run these tests, at once when there are several.
    Test(Vec<(usize, Role)>),
    Conclude(Decision),
}

/// Everything [`decide`] needs to know about a flight.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// Number of first-parent commits in `base..tip`; the tip has index `n`.
    pub n: usize,
    /// How many times a failure is retried before it counts.
    pub retries: u32,
    /// Every finished test of this flight, in the order they finished.
    pub observations: &'a [Observation],
    /// Steps that have passed on this branch before, to tell `never-passed` from a regression
    /// where the baseline did not reach a step.
    pub ever_passed: &'a BTreeSet<String>,
    /// Tests of this range's commits made by earlier flights (indices are this flight's):
    /// evidence the culprit finder reuses instead of running again.
    pub earlier: &'a [Observation],
    /// Commits of this range that earlier flights named culprits (indices are this flight's):
    /// the finder does not take their failures to reach the tip.
    pub blamed: &'a [usize],
    /// Commits of this range that a blamed commit's failure is known to reach: the tips of
    /// the flights that blamed them, which failed because of them. The fix came later.
    pub held: &'a [usize],
    /// Whether a step that never passed on this branch and fails on the baseline too blocks
    /// (policy `never_passed = "block"`) instead of being let through.
    pub never_passed_blocks: bool,
    /// What the branch's recent runs say of each step's flakiness (`sequence/step`): the prior
    /// of a search's flake rate when it is not told.
    pub flake_histories: &'a BTreeMap<String, FlakeHistory>,
    /// How the culprit finder is tuned (flake rate, confidence, tests that may run at once).
    pub finder: Settings,
}

/// How the tests of one commit in one role add up.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    /// Needs another attempt.
    Pending,
    Good {
        flaky: bool,
    },
    Bad {
        /// Steps that failed in some attempt.
        failed: BTreeSet<String>,
        /// Steps that passed in some attempt (a flaky one is in both).
        passed: BTreeSet<String>,
        /// First steps that did not start in a failed attempt.
        not_started: BTreeSet<String>,
    },
    Broken {
        reason: String,
    },
}

/// Adds up the attempts at one commit. Failures of steps in `allowed` (old failures, known
/// from the baseline) do not count against the commit.
fn judge(facts: &Facts, index: usize, role: Role, allowed: &BTreeSet<String>) -> Judged {
    let mut fails = 0u32;
    let mut broken = 0u32;
    let mut passed_once = false;
    let (mut failed, mut passed) = (BTreeSet::new(), BTreeSet::new());
    let mut not_started = BTreeSet::new();
    let mut last_reason = String::new();
    for o in facts
        .observations
        .iter()
        .filter(|o| o.index == index && o.role == role)
    {
        match &o.outcome {
            Outcome::Pass => passed_once = true,
            Outcome::Fail { failed: f, .. } if f.is_subset(allowed) => passed_once = true,
            Outcome::Fail {
                failed: f,
                passed: p,
                not_started: n,
            } => {
                fails += 1;
                failed.extend(f.iter().cloned());
                passed.extend(p.iter().cloned());
                not_started.extend(n.iter().cloned());
            }
            Outcome::Broken { reason } => {
                broken += 1;
                last_reason.clone_from(reason);
            }
        }
    }
    if passed_once {
        Judged::Good { flaky: fails > 0 }
    } else if fails > facts.retries {
        // No attempt passed as a whole; `passed` keeps every step that passed in some attempt
        // (a step may be in both sets: flaky there).
        Judged::Bad {
            failed,
            passed,
            not_started,
        }
    } else if broken > facts.retries {
        Judged::Broken {
            reason: last_reason,
        }
    } else {
        Judged::Pending
    }
}

fn decision(
    verdict: Verdict,
    push_to: Option<usize>,
    culprits: Vec<Blame>,
    steps: BTreeSet<String>,
    reason: String,
) -> Decision {
    Decision {
        verdict,
        push_to,
        culprits,
        steps,
        not_gating: Vec::new(),
        reason,
    }
}

/// The decision as the driver's next action.
fn concluded(
    verdict: Verdict,
    push_to: Option<usize>,
    culprits: Vec<Blame>,
    steps: BTreeSet<String>,
    reason: String,
) -> Next {
    Next::Conclude(decision(verdict, push_to, culprits, steps, reason))
}

fn list(steps: &BTreeSet<String>) -> String {
    steps.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// Decides the next action of a flight from what has been observed so far.
pub fn decide(facts: &Facts) -> Next {
    match triage(facts) {
        Err(next) => next,
        Ok(Regressed {
            steps,
            allowed,
            not_gating,
        }) => match search(facts, steps, &allowed) {
            Next::Conclude(d) => Next::Conclude(Decision { not_gating, ..d }),
            next => next,
        },
    }
}

/// The steps a flight found regressed, the failures that do not count against a commit, and
/// the tip's failures that do not gate.
struct Regressed {
    steps: BTreeSet<String>,
    allowed: BTreeSet<String>,
    not_gating: Vec<(String, Verdict)>,
}

/// Tests the tip and the baseline and tells a regression from everything else; `Err` is the
/// next action when that is not settled yet, or the conclusion when there is no regression.
fn triage(facts: &Facts) -> Result<Regressed, Next> {
    let n = facts.n;
    let none = BTreeSet::new();
    let test = |index, role| Err(Next::Test(vec![(index, role)]));
    let conclude = |verdict, push_to, steps, reason| {
        Err(concluded(verdict, push_to, Vec::new(), steps, reason))
    };

    let tip_failed = match judge(facts, n, Role::Tip, &none) {
        Judged::Pending => return test(n, Role::Tip),
        Judged::Broken { reason } => {
            return conclude(
                Verdict::Broken,
                None,
                none,
                format!("the tip could not be tested (infrastructure, not the commit): {reason}"),
            )
        }
        Judged::Good { flaky: false } => {
            return conclude(
                Verdict::Pass,
                Some(n),
                none,
                "the tip passed every step".into(),
            )
        }
        Judged::Good { flaky: true } => {
            return conclude(
                Verdict::Flaky,
                Some(n),
                none,
                "the tip failed, then passed on retry: flaky, not blocking".into(),
            )
        }
        Judged::Bad {
            failed,
            not_started,
            ..
        } => (failed, not_started),
    };
    let (tip_failed, tip_not_started) = tip_failed;

    let (base_failed, base_passed) = match judge(facts, 0, Role::Baseline, &none) {
        Judged::Pending => return test(0, Role::Baseline),
        Judged::Broken { reason } => {
            return conclude(
                Verdict::Broken,
                None,
                tip_failed,
                format!(
                    "the tip failed but the baseline could not be tested, so a regression cannot \
                     be told from an old failure: {reason}"
                ),
            )
        }
        Judged::Good { .. } => (BTreeSet::new(), None),
        Judged::Bad {
            failed,
            passed,
            not_started,
        } => {
            // A sequence whose first step starts on neither side has not been tested at all:
            // an old failure it is not, and letting it through would gate on nothing.
            let unrunnable: BTreeSet<String> = tip_not_started
                .intersection(&not_started)
                .cloned()
                .collect();
            if !unrunnable.is_empty() {
                return conclude(
                    Verdict::Broken,
                    None,
                    unrunnable.clone(),
                    format!(
                        "{} did not start on the tip nor on the baseline (the shell could not \
                         find or run the command): the sequence cannot run; fix it, then retry",
                        list(&unrunnable)
                    ),
                );
            }
            // A step that passed here before and failed every run of the baseline may be a
            // good baseline's flakes (two steps flaking at 20% fail one of them twice in one
            // baseline of twelve): the baseline runs as often again before such a failure is
            // called old, and a step it passed once is not an old failure.
            let doubtful = tip_failed.iter().any(|s| {
                failed.contains(s) && facts.ever_passed.contains(s) && !passed.contains(s)
            });
            let runs = facts
                .observations
                .iter()
                .filter(|o| o.index == 0 && o.role == Role::Baseline)
                .count();
            if doubtful && runs < 2 * (facts.retries as usize + 1) {
                return test(0, Role::Baseline);
            }
            (failed, Some(passed))
        }
    };
    // A step the baseline did not reach is a regression only if it passed here before.
    let regressed: BTreeSet<String> = tip_failed
        .iter()
        .filter(|s| match &base_passed {
            None => true,
            Some(passed) => {
                passed.contains(*s) || (!base_failed.contains(*s) && facts.ever_passed.contains(*s))
            }
        })
        .cloned()
        .collect();

    // Failures the baseline shares are `like-baseline` once the step has worked here before;
    // a step that never passed on this branch is `never-passed`.
    let not_gating: Vec<(String, Verdict)> = tip_failed
        .difference(&regressed)
        .map(|s| {
            let verdict = if facts.ever_passed.contains(s) {
                Verdict::LikeBaseline
            } else {
                Verdict::NeverPassed
            };
            (s.clone(), verdict)
        })
        .collect();
    let never_passed: BTreeSet<String> = not_gating
        .iter()
        .filter(|(_, v)| *v == Verdict::NeverPassed)
        .map(|(s, _)| s.clone())
        .collect();
    let blocks = facts.never_passed_blocks && !never_passed.is_empty();
    if regressed.is_empty() {
        let like = not_gating.iter().any(|(_, v)| *v == Verdict::LikeBaseline);
        let (verdict, push_to, reason) = if blocks {
            (
                Verdict::NeverPassed,
                None,
                format!(
                    "the tip fails {}, which never passed on this branch and fails on the \
                     baseline too: blocking, as the policy says (never_passed = \"block\")",
                    list(&never_passed)
                ),
            )
        } else if !like {
            (
                Verdict::NeverPassed,
                Some(n),
                format!(
                    "the tip fails {}, which never passed on this branch and fails on the \
                     baseline too: not blocking",
                    list(&tip_failed)
                ),
            )
        } else {
            (
                Verdict::LikeBaseline,
                Some(n),
                format!(
                    "the tip fails {}, which fails on the baseline too: not blocking",
                    list(&tip_failed)
                ),
            )
        };
        return Err(Next::Conclude(Decision {
            not_gating,
            ..decision(verdict, push_to, Vec::new(), tip_failed, reason)
        }));
    }

    // Old failures do not make a commit bad; only a regressed or newly failing step does
    // (and a step that never passed, where the policy makes those block).
    let allowed: BTreeSet<String> = tip_failed
        .difference(&regressed)
        .chain(base_failed.difference(&regressed))
        .filter(|s| !(blocks && never_passed.contains(*s)))
        .cloned()
        .collect();
    Ok(Regressed {
        steps: regressed,
        allowed,
        not_gating,
    })
}

#[cfg(test)]
mod tests;
