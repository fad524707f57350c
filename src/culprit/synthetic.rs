//! Synthetic histories and a seeded world to search in: for the benchmark, the property tests
//! and anyone tuning the finder. A world fixes the culprit, which commits cannot be tested, and
//! every flake draw (by commit and attempt), so two searchers can be compared on equal terms.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::finder::{indistinguishable, CulpritFinder, Found, Settings, Step};
use super::history::{History, HistoryError};
use super::model::Observed;

/// The shapes of history the benchmark covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// One commit after another.
    Linear,
    /// Short branches forked from the main line and merged back, with some direct commits.
    MergeTrain,
    /// Every branch forked from the base, before the range, and merged in turn.
    StaleBase,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Linear, Shape::MergeTrain, Shape::StaleBase];

    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Linear => "linear",
            Shape::MergeTrain => "merge-train",
            Shape::StaleBase => "stale-base",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// The parents of `n` commits of the given shape (oldest first, the tip last), first parent
/// first, where `None` is the base the range starts from.
pub fn git_parents(shape: Shape, n: usize, seed: u64) -> Vec<Vec<Option<usize>>> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut parents: Vec<Vec<Option<usize>>> = Vec::with_capacity(n);
    let mut main: Option<usize> = None;
    while parents.len() < n {
        let left = n - parents.len();
        if shape == Shape::Linear || left == 1 || rng.random_bool(0.25) {
            parents.push(vec![main]);
            main = Some(parents.len() - 1);
            continue;
        }
        let len = rng.random_range(1..=4).min(left - 1);
        let mut head = match shape {
            Shape::StaleBase => None,
            _ => main,
        };
        for _ in 0..len {
            parents.push(vec![head]);
            head = Some(parents.len() - 1);
        }
        parents.push(vec![main, head]);
        main = Some(parents.len() - 1);
    }
    parents
}

/// The same, with only the parents inside the range, as [`History::new`] takes them.
pub fn parents(shape: Shape, n: usize, seed: u64) -> Vec<Vec<usize>> {
    git_parents(shape, n, seed)
        .into_iter()
        .map(|ps| ps.into_iter().flatten().collect())
        .collect()
}

pub fn history(shape: Shape, n: usize, seed: u64) -> Result<History, HistoryError> {
    History::new(parents(shape, n, seed))
}

/// A 64-bit mix of the inputs (SplitMix64's finaliser): the flake draw of one run.
pub fn draw(seed: u64, commit: usize, attempt: u32) -> f64 {
    let mut z = seed
        ^ (commit as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(attempt).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The truth a search is run against.
#[derive(Clone, Debug)]
pub struct World {
    pub culprit: usize,
    pub untestable: Vec<bool>,
    pub flake_rate: f64,
    pub seed: u64,
    /// An earlier bug, begun at the first commit and fixed by the second (a revert, or any
    /// later fix), below the culprit: the history is not monotone.
    pub fixed: Option<(usize, usize)>,
}

impl World {
    /// A culprit drawn evenly from the history, each commit but the tip untestable with
    /// probability `untestable`.
    pub fn new(history: &History, flake_rate: f64, untestable: f64, seed: u64) -> World {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED);
        let n = history.len();
        let culprit = rng.random_range(0..n);
        let untestable = (0..n)
            .map(|c| c != history.tip() && rng.random_bool(untestable.clamp(0.0, 1.0)))
            .collect();
        World {
            culprit,
            untestable,
            flake_rate,
            seed,
            fixed: None,
        }
    }

    /// A world whose range also holds an earlier bug fixed before the culprit, all three on the
    /// first-parent line (the culprit's parent is good); `None` when the line is too short.
    pub fn with_fixed_bug(history: &History, flake_rate: f64, seed: u64) -> Option<World> {
        let mut rng = SmallRng::seed_from_u64(seed ^ 0xF1C5);
        let mut line = vec![history.tip()];
        while let Some(p) = line.last().and_then(|&c| history.first_parent(c)) {
            line.push(p);
        }
        line.reverse();
        if line.len() < 3 {
            return None;
        }
        let at = rng.random_range(2..line.len());
        let fixed_at = rng.random_range(1..at);
        let begun = rng.random_range(0..fixed_at);
        Some(World {
            culprit: line[at],
            untestable: vec![false; history.len()],
            flake_rate,
            seed,
            fixed: Some((line[begun], line[fixed_at])),
        })
    }

    /// Whether a commit is bad: the culprit is among its ancestors, or the earlier bug is and
    /// its fix is not.
    pub fn is_bad(&self, history: &History, commit: usize) -> bool {
        history.is_ancestor(self.culprit, commit)
            || self.fixed.is_some_and(|(begun, fixed)| {
                history.is_ancestor(begun, commit) && !history.is_ancestor(fixed, commit)
            })
    }

    /// The result of the `attempt`-th run (from 0) of `commit`.
    pub fn result(&self, history: &History, commit: usize, attempt: u32) -> Observed {
        if self.untestable[commit] {
            Observed::Untestable
        } else if self.is_bad(history, commit) || draw(self.seed, commit, attempt) < self.flake_rate
        {
            Observed::Fail
        } else {
            Observed::Pass
        }
    }

    /// Whether an answer is right: the exact culprit, or a set that holds it.
    pub fn judge(&self, found: &Found) -> Judgement {
        match found {
            Found::Culprit { commit, .. } if *commit == self.culprit => Judgement::Exact,
            Found::Culprit { .. } => Judgement::FalseBlame,
            Found::OneOf { commits, .. } if commits.contains(&self.culprit) => Judgement::Contains,
            Found::OneOf { .. } => Judgement::FalseBlame,
            _ => Judgement::NoAnswer,
        }
    }

    /// Whether untestable commits hide the culprit: no test can tell it from some other commit.
    pub fn hidden(&self, history: &History) -> bool {
        indistinguishable(history, &self.untestable, self.culprit).len() > 1
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    Exact,
    Contains,
    FalseBlame,
    NoAnswer,
}

/// How one search went.
#[derive(Clone, Debug)]
pub struct Trial {
    pub found: Found,
    /// Runs the finder asked for (the tip's first failure, which started the search, is not
    /// counted: `git bisect` gets it for free too).
    pub executions: usize,
    pub rounds: usize,
    /// Repeat runs of the named commit and its parents: the confirmation OSSTest makes.
    pub confirmations: usize,
    /// The longest time one call of the finder took, and all calls together.
    pub slowest_decision: std::time::Duration,
    pub decision_time: std::time::Duration,
    pub decisions: usize,
}

/// What a search is given from earlier ones, as a gate's flight is given earlier flights'.
#[derive(Clone, Debug, Default)]
pub struct Reused {
    pub earlier: Vec<(usize, Observed)>,
    pub blamed: Vec<usize>,
    /// The tips of the searches that blamed them, which failed because of them.
    pub held: Vec<usize>,
}

impl Reused {
    /// What the last flight that blamed the world's fixed bug left, as a gate's second flight
    /// is given it: its tip failed twice, the bug's first commit failed twice and its parent
    /// (when in the range) passed. Every flight while the bug lasted blamed it again, so the
    /// last one's tip lies just below the fix: only the commits pushed while that flight ran
    /// (a few; geometric, mean 2) separate them.
    pub fn blamed_fix(history: &History, world: &World) -> Reused {
        Self::blamed(history, world, |rng, below_fix| {
            let mut back = 1;
            while back < below_fix && rng.random_bool(0.5) {
                back += 1;
            }
            back
        })
    }

    /// The same when the blaming flight's tip is anywhere from the bug's first commit up to
    /// the fix: as if no flight had run for a long while before the fix was pushed. Finding
    /// the new breaker is then a search for a stretch of passing commits of any width among
    /// failing ones, which no number of runs logarithmic in the range can do every time.
    pub fn blamed_long_before_fix(history: &History, world: &World) -> Reused {
        Self::blamed(history, world, |rng, below_fix| {
            rng.random_range(1..=below_fix)
        })
    }

    /// What the last flight left when it blamed the world's culprit and nothing has fixed it
    /// since: the culprit failed twice and its parents passed, and that flight's tip (a few
    /// line commits below this tip: those pushed while it ran, geometric, mean 2; never below
    /// the culprit) failed twice. The culprit of this search is the blamed commit again.
    pub fn still_broken(history: &History, world: &World) -> Reused {
        let mut rng = SmallRng::seed_from_u64(world.seed ^ 0xB20C);
        let mut tip = history.tip();
        while let Some(p) = history.first_parent(tip) {
            if !history.is_ancestor(world.culprit, p) || !rng.random_bool(0.5) {
                break;
            }
            tip = p;
        }
        let mut earlier = vec![(tip, Observed::Fail), (tip, Observed::Fail)];
        earlier.extend([
            (world.culprit, Observed::Fail),
            (world.culprit, Observed::Fail),
        ]);
        earlier.extend(history.parents(world.culprit).map(|p| (p, Observed::Pass)));
        Reused {
            earlier,
            blamed: vec![world.culprit],
            held: vec![tip],
        }
    }

    /// `back(rng, m)` picks how many line commits below the fix the blaming tip is, from 1 to
    /// `m` (the bug's first commit).
    fn blamed(
        history: &History,
        world: &World,
        back: impl Fn(&mut SmallRng, usize) -> usize,
    ) -> Reused {
        let Some((begun, fixed)) = world.fixed else {
            return Reused::default();
        };
        let mut line = vec![fixed];
        while let Some(p) = line.last().and_then(|&c| history.first_parent(c)) {
            if p == begun {
                break;
            }
            line.push(p);
        }
        line.push(begun);
        // `line` runs from the fix down to the bug's first commit: the tip is below the fix.
        let mut rng = SmallRng::seed_from_u64(world.seed ^ 0x7195);
        let tip = line[back(&mut rng, line.len() - 1).clamp(1, line.len() - 1)];
        let mut earlier = vec![(tip, Observed::Fail), (tip, Observed::Fail)];
        earlier.extend([(begun, Observed::Fail), (begun, Observed::Fail)]);
        earlier.extend(history.parents(begun).map(|p| (p, Observed::Pass)));
        Reused {
            earlier,
            blamed: vec![begun],
            held: vec![tip],
        }
    }
}

/// Runs a search to its end in synchronous rounds of `hosts` runs.
pub fn simulate(history: &History, world: &World, settings: Settings, hosts: usize) -> Trial {
    simulate_reusing(history, world, settings, hosts, Reused::default())
}

/// The same, given earlier searches' results.
pub fn simulate_reusing(
    history: &History,
    world: &World,
    settings: Settings,
    hosts: usize,
    reused: Reused,
) -> Trial {
    let finder = CulpritFinder::new(history, Settings { hosts, ..settings })
        .reusing(reused.earlier, &reused.blamed)
        .held_to(&reused.held);
    let mut attempts = vec![0u32; history.len()];
    let mut observations = vec![(history.tip(), Observed::Fail)];
    attempts[history.tip()] = 1;
    let mut rounds = 0;
    let mut slowest_decision = std::time::Duration::ZERO;
    let (mut decision_time, mut decisions) = (std::time::Duration::ZERO, 0);
    let found = loop {
        let started = std::time::Instant::now();
        let step = finder.next(&observations, &[], hosts);
        let took = started.elapsed();
        slowest_decision = slowest_decision.max(took);
        decision_time += took;
        decisions += 1;
        match step {
            Step::Test(batch) => {
                rounds += 1;
                for c in batch {
                    observations.push((c, world.result(history, c, attempts[c])));
                    attempts[c] += 1;
                }
            }
            // Nothing is in progress between rounds; a finder that waits on nothing is stuck.
            Step::Wait => {
                break Found::GaveUp {
                    suspect: None,
                    probability: 0.0,
                }
            }
            Step::Done(found) => break found,
        }
    };
    let confirmations = match &found {
        Found::Culprit { commit, .. } => std::iter::once(*commit)
            .chain(history.parents(*commit))
            .map(|c| attempts[c].saturating_sub(1) as usize)
            .sum(),
        _ => 0,
    };
    Trial {
        found,
        executions: observations.len() - 1,
        rounds,
        confirmations,
        slowest_decision,
        decision_time,
        decisions,
    }
}
