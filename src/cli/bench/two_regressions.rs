//! The `two-steps` world of `bench culprit`: a linear range where two steps regress at two
//! different commits, searched the way a gate's flight is, by `decision::decide` (one search
//! per regression, sharing every run), not by one finder.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use pushgate::culprit::synthetic::draw;
use pushgate::culprit::Settings;
use pushgate::decision::{decide, Facts, Next, Observation, Outcome, Role};

const STEPS: [&str; 2] = ["smoke/a", "smoke/b"];

/// What one flight did.
pub struct Trial {
    /// The step's culprit, per step.
    pub truth: [usize; 2],
    /// The commits the decision named.
    pub named: Vec<(usize, f64)>,
    /// Where master went (None: nowhere).
    pub push_to: Option<usize>,
    pub rounds: usize,
    pub executions: usize,
    pub slowest_decision: Duration,
    pub decision_time: Duration,
    pub decisions: usize,
}

impl Trial {
    /// Both culprits named, and nothing else.
    pub fn exact(&self) -> bool {
        let named: BTreeSet<usize> = self.named.iter().map(|(c, _)| *c).collect();
        named == self.truth.into_iter().collect()
    }

    /// A commit named that broke neither step.
    pub fn false_blame(&self) -> bool {
        self.named.iter().any(|(c, _)| !self.truth.contains(c))
    }

    /// Master moved to the newest commit that passes both steps, the parent of the older
    /// culprit (nowhere when that is the first commit).
    pub fn pushed_newest_passing(&self) -> bool {
        let newest = self.truth[0].min(self.truth[1]) - 1;
        self.push_to.unwrap_or(0) == newest
    }
}

/// One flight over `n` commits (n >= 2) with `hosts` hosts, each step flaking with rate `f` on
/// the commits it passes; the finder is told `f` when `told`. The gate's default of one retry.
pub fn trial(n: usize, hosts: usize, f: f64, told: bool, seed: u64) -> Trial {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x2EC5);
    let a = rng.random_range(1..=n);
    let b = loop {
        let b = rng.random_range(1..=n);
        if b != a {
            break b;
        }
    };
    let truth = [a, b];
    let outcome = |index: usize, role: Role, attempt: u32| {
        let (mut failed, mut passed) = (BTreeSet::new(), BTreeSet::new());
        for (s, (&culprit, step)) in truth.iter().zip(STEPS).enumerate() {
            // The baseline is commit 0 and good; each role's attempts draw their own flakes.
            let flake_seed = seed ^ (s as u64 + 1).wrapping_mul(0x51ED) ^ role as u64;
            let bad = index >= culprit && role != Role::Baseline;
            if bad || draw(flake_seed, index, attempt) < f {
                failed.insert(step.to_string());
            } else {
                passed.insert(step.to_string());
            }
        }
        Outcome::of(failed, passed, BTreeSet::new())
    };
    let ever_passed: BTreeSet<String> = STEPS.iter().map(|s| s.to_string()).collect();
    let histories = Default::default();
    let settings = Settings {
        flake_rate: told.then_some(f),
        hosts,
        ..Settings::default()
    };
    let mut observations: Vec<Observation> = Vec::new();
    let (mut rounds, mut decisions) = (0, 0);
    let (mut slowest, mut total) = (Duration::ZERO, Duration::ZERO);
    let decision = loop {
        let facts = Facts {
            n,
            retries: 1,
            observations: &observations,
            ever_passed: &ever_passed,
            earlier: &[],
            blamed: &[],
            held: &[],
            never_passed_blocks: false,
            flake_histories: &histories,
            finder: settings,
        };
        let started = Instant::now();
        let next = decide(&facts);
        let took = started.elapsed();
        slowest = slowest.max(took);
        total += took;
        decisions += 1;
        match next {
            // A flight that will not end is cut here: it names nothing and pushes nothing.
            Next::Test(_) if observations.len() > 20 * n + 100 => break None,
            Next::Test(tests) => {
                rounds += 1;
                for (index, role) in tests {
                    let attempt = observations
                        .iter()
                        .filter(|o| o.index == index && o.role == role)
                        .count() as u32;
                    observations.push(Observation {
                        index,
                        role,
                        outcome: outcome(index, role, attempt),
                    });
                }
            }
            Next::Conclude(d) => break Some(d),
        }
    };
    Trial {
        truth,
        named: decision
            .as_ref()
            .map(|d| {
                d.culprits
                    .iter()
                    .map(|b| (b.index, b.probability))
                    .collect()
            })
            .unwrap_or_default(),
        push_to: decision.and_then(|d| d.push_to),
        rounds,
        executions: observations.len(),
        slowest_decision: slowest,
        decision_time: total,
        decisions,
    }
}
