//! The belief about where the culprit is: a posterior over "commit c is the culprit" for every
//! candidate, plus "there is no culprit" (the failures were flakes).
//!
//! Results go through a flaky-fail channel: a bad commit always fails; a good commit fails with
//! probability `f`. So a pass proves a commit good, and a fail is weak evidence when `f` is
//! large.
//!
//! "Commit c is the culprit" means what a maintainer means by the culprit of the tip's failure:
//! c and every commit after it up to the tip fail, and c's parents pass. It says nothing about
//! commits below c beyond its parents: they may be good, or bad because of an earlier bug that a
//! later commit fixed (a revert, or any fix). So a failure below a later pass is explained, not
//! a contradiction, and it does not pull the search down. Along the first-parent line the
//! commits below c follow a two-state chain (good, or inside such an earlier, fixed bug); a
//! commit of a merged branch that is not a descendant of c is on its own either good or bad.
//!
//! The flake rate may be told, or inferred with the culprit: the posterior is over (culprit,
//! rate) pairs on a grid of rates, with a prior over the grid, and the culprit's probability is
//! summed over the rates. A stated probability then includes the doubt about the rate.
//!
//! Likelihoods are kept as (number of zero factors, log of the rest), so that `f = 0` is
//! exact and a contradiction shows as "every hypothesis has a zero" rather than as NaN.

use super::history::History;

/// The result of one run of the test on one commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Observed {
    Pass,
    Fail,
    /// The commit cannot be tested (does not build, the test was skipped): says nothing about
    /// the culprit, and the commit is not tried again.
    Untestable,
}

/// The results so far, per commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub passes: u32,
    pub fails: u32,
    pub untestable: u32,
}

impl Tally {
    pub fn runs(&self) -> u32 {
        self.passes + self.fails + self.untestable
    }
}

/// Adds up observations `(commit, result)` per commit. Commits outside the history are ignored.
pub fn tally(n: usize, observations: &[(usize, Observed)]) -> Vec<Tally> {
    let mut t = vec![Tally::default(); n];
    for &(c, o) in observations {
        if let Some(t) = t.get_mut(c) {
            match o {
                Observed::Pass => t.passes += 1,
                Observed::Fail => t.fails += 1,
                Observed::Untestable => t.untestable += 1,
            }
        }
    }
    t
}

/// A likelihood as `0^zeros * exp(log)`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Lik {
    zeros: i32,
    log: f64,
}

impl std::ops::Add for Lik {
    type Output = Lik;
    fn add(self, o: Lik) -> Lik {
        Lik {
            zeros: self.zeros + o.zeros,
            log: self.log + o.log,
        }
    }
}

impl std::ops::Sub for Lik {
    type Output = Lik;
    fn sub(self, o: Lik) -> Lik {
        Lik {
            zeros: self.zeros - o.zeros,
            log: self.log - o.log,
        }
    }
}

/// The likelihood of a commit's results if it is good: each pass `1 - f`, each fail `f`.
fn if_good(t: &Tally, f: f64) -> Lik {
    let mut l = Lik {
        zeros: 0,
        log: t.passes as f64 * (1.0 - f).ln(),
    };
    if t.fails > 0 {
        if f == 0.0 {
            l.zeros += 1;
        } else {
            l.log += t.fails as f64 * f.ln();
        }
    }
    l
}

/// The likelihood if it is bad: it always fails, so one pass rules it out.
fn if_bad(t: &Tally) -> Lik {
    Lik {
        zeros: i32::from(t.passes > 0),
        log: 0.0,
    }
}

impl Lik {
    fn linear(self) -> f64 {
        if self.zeros > 0 {
            0.0
        } else {
            self.log.exp()
        }
    }

    fn of_linear(x: f64) -> Lik {
        if x > 0.0 {
            Lik {
                zeros: 0,
                log: x.ln(),
            }
        } else {
            Lik { zeros: 1, log: 0.0 }
        }
    }
}

/// The chance that a bug which a later commit of the range fixes begins at an ordinary
/// commit: rare, and such a bug is fixed soon (`FIX` per commit), so a search of a clean range
/// costs what it did before fixes were thought of.
pub const ONSET: f64 = 1e-5;
pub const FIX: f64 = 0.3;
/// The same at a commit blamed for an earlier failure: after a blocked flight a fix on top is
/// the normal case, anywhere above it, so whether the blamed commit still explains the tip is
/// left to the tests.
pub const ONSET_BLAMED: f64 = 0.5;
/// Where the tip of the last flight that blamed the commit is known, the fix is not spread
/// evenly above it: a gate runs flight after flight, and every one while the bug lasts blames
/// it again, so most fixes land among the few commits pushed while that last flight ran
/// (`FIX_SOON` per commit, `FIX_SOON_SHARE` of them); the rest came after a long pause of the
/// gate, anywhere above, at `FIX_BLAMED` per commit ([`fix_blamed_above`]). (`FIX_BLAMED` a
/// tenth for every fix searched a little better close above the tip, but named the blamed
/// commit again, wrongly, in up to a fifth of searches where that flight ran long before the
/// fix.)
pub const FIX_BLAMED: f64 = 0.02;
pub const FIX_SOON: f64 = 0.4;
pub const FIX_SOON_SHARE: f64 = 0.5;
/// The share of the culprit's prior on the commits blamed before ([`Model::culprit_prior`]).
/// Without it a bug not fixed yet cannot be told from a fix and a new breaker in some
/// untested gap: searches of a still-broken range ran out of runs. More than this makes a
/// search give up on a fix too soon when the blaming flight is long before it.
pub const BLAMED_CULPRIT: f64 = 0.1;

/// The flake rates a search considers when the rate is not told.
pub const RATES: [f64; 16] = [
    0.0, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5,
];

/// What a search assumes before any of its results.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The flake rates considered, each with its prior probability (they sum to 1).
    pub rates: Vec<(f64, f64)>,
    /// The prior probability that the range has no culprit, before any result (the tip's
    /// failure included); the rest is spread evenly over the commits.
    pub prior_none: f64,
    /// Commits blamed for an earlier failure (indexed by commit; empty for none).
    pub blamed: Vec<bool>,
    /// Commits an earlier failure of a blamed commit is known to reach (indexed by commit;
    /// empty for none): the tips of the flights that blamed them, which failed. Its fix came
    /// later, so no commit up to one of these can be it.
    pub held: Vec<bool>,
}

impl Model {
    /// A model with a told flake rate.
    pub fn told(flake_rate: f64, prior_none: f64) -> Model {
        Model {
            rates: vec![(flake_rate.clamp(0.0, MAX_FLAKE_RATE), 1.0)],
            prior_none,
            blamed: Vec::new(),
            held: Vec::new(),
        }
    }

    /// A model that infers the flake rate, from a weak prior (a quarter on "never flakes", the
    /// rest spread over the grid) updated with earlier runs of the test on good commits: `runs`
    /// of them, `fails` failed.
    pub fn inferred(history: FlakeHistory, prior_none: f64) -> Model {
        let (runs, fails) = (history.runs, history.fails.min(history.runs));
        let logs: Vec<f64> = RATES
            .iter()
            .map(|&f| {
                let weak: f64 = if f == 0.0 {
                    0.25
                } else {
                    0.75 / (RATES.len() - 1) as f64
                };
                let fit = if f == 0.0 {
                    if fails > 0 {
                        f64::NEG_INFINITY
                    } else {
                        0.0
                    }
                } else {
                    fails as f64 * f.ln() + (runs - fails) as f64 * (1.0 - f).ln()
                };
                weak.ln() + fit
            })
            .collect();
        let top = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = logs.iter().map(|l| (l - top).exp()).collect();
        let total: f64 = weights.iter().sum();
        Model {
            rates: RATES
                .iter()
                .zip(weights)
                .map(|(&f, w)| (f, w / total))
                .filter(|&(_, w)| w > 1e-12)
                .collect(),
            prior_none,
            blamed: Vec::new(),
            held: Vec::new(),
        }
    }

    fn is_blamed(&self, commit: usize) -> bool {
        self.blamed.get(commit).copied().unwrap_or(false)
    }

    /// Each commit's prior probability of being the culprit, before any result: the share
    /// `BLAMED_CULPRIT` of it evenly on the commits blamed before (when the range holds any),
    /// the rest evenly on every commit. The flight after a blocked one most often fails for the
    /// same reason, and a uniform prior makes "fixed, then broken again somewhere above" about
    /// a range's length more likely than "not fixed yet".
    pub fn culprit_prior(&self, n: usize) -> Vec<f64> {
        let culprit = 1.0 - self.prior_none;
        let blamed = (0..n).filter(|&c| self.is_blamed(c)).count();
        if blamed == 0 {
            return vec![culprit / n as f64; n];
        }
        let spread = culprit * (1.0 - BLAMED_CULPRIT) / n as f64;
        let on_blamed = culprit * BLAMED_CULPRIT / blamed as f64;
        (0..n)
            .map(|c| spread + if self.is_blamed(c) { on_blamed } else { 0.0 })
            .collect()
    }

    /// Roughly how likely a commit that failed every run is bad on its own (an earlier, fixed
    /// bug) rather than good and flaky, were it not the culprit's descendant: then running it
    /// again tells nothing. For merged commits, whose own bugs the line's chain does not weigh;
    /// on the line the chain says it, and also when the commit must be good (a culprit's
    /// parent), which this rough share cannot.
    pub(crate) fn earlier_bug_share(&self, commit: usize, t: &Tally, f: f64) -> f64 {
        if t.fails == 0 || t.passes > 0 {
            return 0.0;
        }
        let fix = if self.is_blamed(commit) {
            FIX_BLAMED
        } else {
            FIX
        };
        let bug = self.onset(commit) / fix;
        let flakes = f.powi(t.fails.min(1000) as i32);
        bug / (bug + flakes)
    }

    fn onset(&self, commit: usize) -> f64 {
        if self.is_blamed(commit) {
            ONSET_BLAMED
        } else {
            ONSET
        }
    }
}

/// The posterior after a set of results.
#[derive(Clone, Debug)]
pub struct Posterior {
    /// Probability that each commit is the culprit; these and `none` sum to 1.
    pub mass: Vec<f64>,
    /// Probability that there is no culprit: every failure was a flake.
    pub none: f64,
    /// The flake rate's posterior mean.
    pub flake_rate: f64,
}

/// Where each commit sits, for the likelihoods: the same at every flake rate.
struct Layout {
    /// The first-parent line from the oldest to the tip.
    main: Vec<usize>,
    on_main: Vec<bool>,
    /// For each commit, the line commit it joins the line at (itself, or the merge that
    /// brings it in).
    merged_at: Vec<usize>,
    /// For each commit, the line commit whose state it shares: itself on the line; for a
    /// merged commit, its newest line ancestor (`None`: none in the range, so it shares the
    /// base's, good). A merged commit descends from a line commit c exactly when this is at
    /// or above c.
    fork: Vec<Option<usize>>,
    /// Merged commits that were run, by the line commit they forked from.
    forked_at: Vec<Vec<usize>>,
    forked_at_base: Vec<usize>,
    /// For a merged commit c: its run descendants (itself included) that forked below the
    /// merge bringing c in, so that the line's chain counts them as if not c's descendants.
    early_descendants: Vec<Vec<usize>>,
    /// Line commits at or below this one have a run at or after them that passed: none of
    /// them can start a failure that lasts to the tip.
    pass_reaches: Option<usize>,
    /// For merged commits: whether a blamed commit is among their ancestors.
    blamed_below: Vec<bool>,
    /// Each line commit's position on the line.
    line_index: Vec<usize>,
    /// Per line position: whether a blamed commit is it or comes in with it (a merge that
    /// brings in a blamed commit may bring in its bug).
    blamed_line: Vec<bool>,
    /// The highest line position a blamed commit's bug is known to reach: the line commits
    /// that are ancestors of a blaming flight's tip, a prefix of the line. Its fix came later.
    held_top: Option<usize>,
}

impl Layout {
    /// The chance that a blamed commit's bug, lasting below line position `i`, ends there:
    /// none up to the highest commit it is known to reach, then [`fix_blamed_above`] it;
    /// `FIX_BLAMED` where no blaming flight's tip is known.
    fn fix_blamed(&self, i: usize) -> f64 {
        match self.held_top {
            Some(top) if i <= top => 0.0,
            Some(top) => fix_blamed_above(i - top),
            None => FIX_BLAMED,
        }
    }

    fn of(history: &History, tallies: &[Tally], model: &Model) -> Layout {
        let n = history.len();
        let observed = |c: usize| tallies[c].passes + tallies[c].fails > 0;
        let mut main = Vec::new();
        let mut at = Some(history.tip());
        while let Some(c) = at {
            main.push(c);
            at = history.first_parent(c);
        }
        main.reverse();
        let mut on_main = vec![false; n];
        let mut merged_at: Vec<usize> = (0..n).collect();
        for &m in &main {
            on_main[m] = true;
            for &s in history.introduced(m) {
                merged_at[s as usize] = m;
            }
        }
        let mut fork: Vec<Option<usize>> = vec![None; n];
        let mut forked_at = vec![Vec::new(); n];
        let mut forked_at_base = Vec::new();
        for c in 0..n {
            fork[c] = if on_main[c] {
                Some(c)
            } else {
                history.parents(c).filter_map(|p| fork[p]).max()
            };
            if !on_main[c] && observed(c) {
                match fork[c] {
                    Some(m) => forked_at[m].push(c),
                    None => forked_at_base.push(c),
                }
            }
        }
        let side_runs: Vec<usize> = (0..n).filter(|&x| !on_main[x] && observed(x)).collect();
        let below = |x: usize, m: usize| fork[x].is_none_or(|f| f < m);
        let early_descendants = (0..n)
            .map(|c| {
                if on_main[c] {
                    return Vec::new();
                }
                side_runs
                    .iter()
                    .copied()
                    .filter(|&x| below(x, merged_at[c]) && history.is_ancestor(c, x))
                    .collect()
            })
            .collect();
        let pass_reaches = (0..n)
            .filter(|&x| tallies[x].passes > 0)
            .filter_map(|x| fork[x])
            .max();
        let blamed: Vec<usize> = (0..n).filter(|&b| model.is_blamed(b)).collect();
        let blamed_below = (0..n)
            .map(|x| blamed.iter().any(|&b| history.is_ancestor(b, x)))
            .collect();
        let mut line_index = vec![0; n];
        for (i, &m) in main.iter().enumerate() {
            line_index[m] = i;
        }
        let blamed_line = main
            .iter()
            .map(|&m| {
                model.is_blamed(m)
                    || history
                        .introduced(m)
                        .iter()
                        .any(|&s| model.is_blamed(s as usize))
            })
            .collect();
        let held: Vec<usize> = (0..n)
            .filter(|&h| model.held.get(h).copied().unwrap_or(false))
            .collect();
        let held_top = main
            .iter()
            .rposition(|&m| held.iter().any(|&h| history.is_ancestor(m, h)));
        Layout {
            line_index,
            blamed_line,
            held_top,
            main,
            on_main,
            merged_at,
            fork,
            forked_at,
            forked_at_base,
            early_descendants,
            pass_reaches,
            blamed_below,
        }
    }
}

/// A 3x3 matrix over the states of the first-parent line at one commit: good, inside an
/// earlier bug begun at an ordinary commit, or inside one begun at a blamed commit (fixed at its
/// own, slower rate).
type Mat = [[f64; 3]; 3];
type State = [f64; 3];

const IDENTITY: Mat = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
/// Below the range: the base is good.
const START: State = [1.0, 0.0, 0.0];

/// The chance that a blamed commit's bug, lasting up to the line commit below, ends at the
/// line commit `above` commits over the tip of the last flight that blamed it (from 1). The fix
/// comes soon after that flight with the share `FIX_SOON_SHARE`, late otherwise: a mixture of
/// two geometric laws, whose chance of ending falls from about `FIX_SOON_SHARE * FIX_SOON` just
/// above the tip to `FIX_BLAMED` far above it.
pub(crate) fn fix_blamed_above(above: usize) -> f64 {
    above
        .checked_sub(1)
        .and_then(|i| FIX_SOON_CHANCES.get(i).copied())
        .unwrap_or(FIX_BLAMED)
}

/// [`fix_blamed_above`] 1, 2, ... commits above the tip, for as long as the soon fixes still
/// count (beyond, `FIX_BLAMED` alone): worked out once, as every search reads it per commit.
static FIX_SOON_CHANCES: std::sync::LazyLock<Vec<f64>> = std::sync::LazyLock::new(|| {
    // The chance the bug lasts through `k` commits above the tip.
    let lasts = |k: i32| {
        FIX_SOON_SHARE * (1.0 - FIX_SOON).powi(k)
            + (1.0 - FIX_SOON_SHARE) * (1.0 - FIX_BLAMED).powi(k)
    };
    (1..)
        .take_while(|&d| FIX_SOON_SHARE * (1.0 - FIX_SOON).powi(d) >= 1e-12)
        .map(|d| (1.0 - lasts(d) / lasts(d - 1)).clamp(FIX_BLAMED, 1.0))
        .collect()
});

/// Onto the next commit of the line (`next = T * state`): at a blamed commit a bug may begin,
/// and a blamed commit's bug ends with the chance `fix_blamed` (the layout's, for the place).
fn transition(blamed: bool, fix_blamed: f64) -> Mat {
    let onset_blamed = if blamed { ONSET_BLAMED } else { 0.0 };
    [
        [1.0 - ONSET - onset_blamed, FIX, fix_blamed],
        [ONSET, 1.0 - FIX, 0.0],
        [onset_blamed, 0.0, 1.0 - fix_blamed],
    ]
}

fn product(a: &Mat, b: &Mat) -> Mat {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

fn apply(m: &Mat, v: State) -> State {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn dot(a: &[f64; 3], b: &State) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Weighs a state's runs (in the good and the bad states) and scales it back to 1, the log of
/// the scale added to `log`. A state nothing explains stays all zero.
fn weigh(state: State, log: &mut f64, good: Lik, bad: Lik) -> State {
    let (good, bad) = (good.linear(), bad.linear());
    let s = [state[0] * good, state[1] * bad, state[2] * bad];
    let total = s[0] + s[1] + s[2];
    if total > 0.0 {
        *log += total.ln();
        s.map(|x| x / total)
    } else {
        [0.0; 3]
    }
}

/// The line's chain without results: the same at every flake rate, so computed once. The
/// likelihood below a line commit is the state after the line commit run last below it
/// (`runs` of them), carried up through commits nobody ran by a product of transitions; at a
/// given rate only the run commits need work, and the commits between them are weighed for
/// all rates at once.
struct LinePlan {
    /// Line positions that have runs (of their own, or of merged commits forked from them).
    runs: Vec<usize>,
    /// For each line position, how many positions with runs are below it.
    below_runs: Vec<usize>,
    /// For each line position i, `state below i = before[i] * state after the last run below`.
    before: Vec<Mat>,
    /// For each position with runs, the transitions from the last one below up to it.
    into: Vec<Mat>,
    /// The transitions from the last position with runs to past the tip.
    to_end: Mat,
    /// The chain's prior probability of a good line commit below each position, and past the
    /// tip: the hypothesis says the culprit's first parent is good, so what is kept is the
    /// likelihood given that (otherwise older culprits would gain merely from having fewer
    /// commits below them where an earlier bug could hide).
    prior_good: Vec<f64>,
    prior_good_end: f64,
}

impl LinePlan {
    fn of(layout: &Layout, tallies: &[Tally]) -> LinePlan {
        let n = layout.main.len();
        let mut plan = LinePlan {
            runs: Vec::new(),
            below_runs: Vec::with_capacity(n),
            before: Vec::with_capacity(n),
            into: Vec::new(),
            to_end: IDENTITY,
            prior_good: Vec::with_capacity(n),
            prior_good_end: 1.0,
        };
        let (mut carry, mut prior) = (IDENTITY, START);
        for (i, &m) in layout.main.iter().enumerate() {
            plan.before.push(carry);
            plan.prior_good.push(prior[0]);
            plan.below_runs.push(plan.runs.len());
            let t = transition(layout.blamed_line[i], layout.fix_blamed(i));
            prior = apply(&t, prior);
            carry = product(&t, &carry);
            let ran = tallies[m].passes + tallies[m].fails > 0 || !layout.forked_at[m].is_empty();
            if ran {
                plan.runs.push(i);
                plan.into.push(carry);
                carry = IDENTITY;
            }
        }
        plan.to_end = carry;
        plan.prior_good_end = prior[0];
        plan
    }
}

/// What one flake rate makes of the results: the chain's state and log after each line
/// position with runs (index 0: below the range), what those runs weigh, and the weight of
/// the merged commits that forked below the range.
struct AtRate {
    f: f64,
    /// The rate's prior, in log.
    prior: f64,
    after: Vec<(State, f64)>,
    weights: Vec<(Lik, Lik)>,
    base: Lik,
}

fn observed(tallies: &[Tally], c: usize) -> bool {
    tallies[c].passes + tallies[c].fails > 0
}

/// How a merged commit that is not the culprit's descendant weighs: good (sharing the state of
/// the line commit it forked from), or bad on its own (rarely; often above a blamed commit).
fn good_or_own_bug(layout: &Layout, t: &Tally, x: usize, f: f64) -> Lik {
    let onset = if layout.blamed_below[x] {
        ONSET_BLAMED
    } else {
        ONSET
    };
    Lik::of_linear((1.0 - onset) * if_good(t, f).linear() + onset * if_bad(t).linear())
}

/// What the runs at a line commit weigh, in the good and the bad state: its own, and those of
/// the merged commits forked from it (which share its state, or are bad on their own).
fn line_weights(layout: &Layout, tallies: &[Tally], m: usize, f: f64) -> (Lik, Lik) {
    let mut good = if_good(&tallies[m], f);
    let mut bad = if_bad(&tallies[m]);
    for &x in &layout.forked_at[m] {
        good = good + good_or_own_bug(layout, &tallies[x], x, f);
        bad = bad + if_bad(&tallies[x]);
    }
    (good, bad)
}

impl AtRate {
    fn of(layout: &Layout, plan: &LinePlan, tallies: &[Tally], f: f64, prior: f64) -> AtRate {
        let weights: Vec<(Lik, Lik)> = plan
            .runs
            .iter()
            .map(|&i| line_weights(layout, tallies, layout.main[i], f))
            .collect();
        let mut after = Vec::with_capacity(weights.len() + 1);
        let (mut state, mut log) = (START, 0.0);
        after.push((state, log));
        for (j, &(good, bad)) in weights.iter().enumerate() {
            state = weigh(apply(&plan.into[j], state), &mut log, good, bad);
            after.push((state, log));
        }
        let base = layout
            .forked_at_base
            .iter()
            .fold(Lik::default(), |acc, &x| {
                acc + good_or_own_bug(layout, &tallies[x], x, f)
            });
        AtRate {
            f,
            prior,
            after,
            weights,
            base,
        }
    }

    /// The log weight of a state after `k` positions with runs, before the share of it below
    /// a given commit; `None` when nothing explains the results at this rate.
    fn log(&self, k: usize) -> Option<f64> {
        let (state, log) = self.after[k];
        let alive = state.iter().any(|&x| x > 0.0) && self.base.zeros == 0;
        alive.then_some(self.prior + self.base.log + log)
    }
}

/// The merged commit `c` as the culprit at one rate: its descendants that forked below the
/// merge bringing it in are bad, and its merged parents good, where the chain weighed them as
/// neither; so the chain is run again from the first such line commit to the merge. The
/// likelihood as (log, share), or `None`.
fn merged_culprit(
    history: &History,
    layout: &Layout,
    plan: &LinePlan,
    tallies: &[Tally],
    rate: &AtRate,
    c: usize,
) -> Option<(f64, f64)> {
    let f = rate.f;
    let m = layout.merged_at[c];
    let i = layout.line_index[m];
    let mut changes: Vec<(usize, Lik, bool)> = Vec::new();
    let mut at_base = Lik::default();
    let mut change = |fork: Option<usize>, by: Lik, must_be_good: bool| match fork {
        // The base is good.
        None => at_base = at_base + by,
        Some(at) => changes.push((layout.line_index[at], by, must_be_good)),
    };
    for &x in &layout.early_descendants[c] {
        let by = if_bad(&tallies[x]) - good_or_own_bug(layout, &tallies[x], x, f);
        change(layout.fork[x], by, false);
    }
    for p in history.parents(c).filter(|&p| !layout.on_main[p]) {
        if tallies[p].passes + tallies[p].fails > 0 && layout.fork[p] < Some(m) {
            let by = if_good(&tallies[p], f) - good_or_own_bug(layout, &tallies[p], p, f);
            change(layout.fork[p], by, true);
        }
    }
    changes.sort_by_key(|c| c.0);
    let from = changes.first().map_or(i, |c| c.0);
    let k = plan.below_runs[from];
    let (start, mut log) = rate.after[k];
    let mut state = apply(&plan.before[from], start);
    let mut pending = changes.iter().peekable();
    let mut runs = k;
    for j in from..i {
        let mut by = Lik::default();
        let mut must_be_good = false;
        while let Some(&&(at, l, good)) = pending.peek() {
            if at != j {
                break;
            }
            by = by + l;
            must_be_good |= good;
            pending.next();
        }
        state = apply(
            &transition(layout.blamed_line[j], layout.fix_blamed(j)),
            state,
        );
        if must_be_good {
            state[1] = 0.0;
            state[2] = 0.0;
        }
        let ran = plan.runs.get(runs) == Some(&j);
        let (good, bad) = if ran {
            runs += 1;
            rate.weights[runs - 1]
        } else {
            (Lik::default(), Lik::default())
        };
        if ran || by != Lik::default() {
            state = weigh(state, &mut log, good + by, bad);
        }
    }
    let at_base = rate.base + at_base;
    if at_base.zeros > 0 || state[0] <= 0.0 {
        return None;
    }
    Some((
        rate.prior + at_base.log + log,
        state[0] / plan.prior_good[i],
    ))
}

impl Posterior {
    /// Computes the posterior, or `None` when no hypothesis explains the results at all (a
    /// commit both passed and failed, and flakes are ruled out).
    ///
    /// The cost is one pass over the range plus, per flake rate, one step per commit with
    /// runs: commits nobody ran are weighed for every rate at once (their likelihood is a
    /// fixed linear form of the state after the last run below them).
    pub fn compute(history: &History, tallies: &[Tally], model: &Model) -> Option<Posterior> {
        Evidence::of(history, tallies, model).posterior()
    }
}

/// The results of a range under a model, with the range's layout and the line's chain worked
/// out once: for the posterior, and for a search, where an earlier bug lasts
/// ([`Evidence::bad_below_culprit`]).
pub struct Evidence<'a> {
    history: &'a History,
    tallies: &'a [Tally],
    model: &'a Model,
    layout: Layout,
    plan: LinePlan,
}

impl<'a> Evidence<'a> {
    pub fn of(history: &'a History, tallies: &'a [Tally], model: &'a Model) -> Evidence<'a> {
        let layout = Layout::of(history, tallies, model);
        let plan = LinePlan::of(&layout, tallies);
        Evidence {
            history,
            tallies,
            model,
            layout,
            plan,
        }
    }

    /// Whether a commit is on the range's first-parent line, where the chain weighs whether it
    /// is bad inside an earlier bug; a merged commit may also be bad on its own.
    pub fn on_line(&self, commit: usize) -> bool {
        self.layout.on_main.get(commit).copied().unwrap_or(false)
    }

    /// The posterior, as [`Posterior::compute`] gives it.
    pub fn posterior(&self) -> Option<Posterior> {
        let (history, tallies, model) = (self.history, self.tallies, self.model);
        let (layout, plan) = (&self.layout, &self.plan);
        let n = history.len();
        let rates: Vec<AtRate> = model
            .rates
            .iter()
            .map(|&(f, w)| AtRate::of(layout, plan, tallies, f, w.ln()))
            .collect();
        let culprit_prior = model.culprit_prior(n);
        let none_prior = model.prior_none.ln();
        let segments = plan.runs.len() + 1;
        // Merged culprits whose descendants or parents the chain weighed otherwise: their own
        // run of the chain, per rate, as (log, share, rate).
        let merged: Vec<Option<Vec<(f64, f64, f64)>>> = (0..n)
            .map(|c| {
                let passed_above = layout
                    .pass_reaches
                    .is_some_and(|p| p >= layout.merged_at[c]);
                let own = !layout.on_main[c]
                    && !passed_above
                    && (!layout.early_descendants[c].is_empty()
                        || history
                            .parents(c)
                            .any(|p| !layout.on_main[p] && observed(tallies, p)));
                own.then(|| {
                    rates
                        .iter()
                        .filter_map(|r| {
                            let (log, share) =
                                merged_culprit(history, layout, plan, tallies, r, c)?;
                            Some((log, share, r.f))
                        })
                        .collect()
                })
            })
            .collect();
        // The largest log: every share is at most a few times 1, so no weight overflows.
        let top = rates
            .iter()
            .flat_map(|r| (0..segments).filter_map(|k| r.log(k)))
            .chain(merged.iter().flatten().flatten().map(|m| m.0))
            .fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            return None;
        }
        let mixed = |scale: f64| {
            // Per segment, the states of all rates mixed by their weight (and by their rate,
            // for the rate's posterior mean).
            let mut mix = vec![([0.0; 3], [0.0; 3]); segments];
            for r in &rates {
                for (k, slot) in mix.iter_mut().enumerate() {
                    if let Some(log) = r.log(k) {
                        let w = (log - scale).exp();
                        for (x, s) in r.after[k].0.iter().enumerate() {
                            slot.0[x] += w * s;
                            slot.1[x] += w * r.f * s;
                        }
                    }
                }
            }
            mix
        };
        let weights_at = |scale: f64| {
            let mix = mixed(scale);
            let line: Vec<(f64, f64)> = (0..layout.main.len())
                .map(|i| {
                    let m = layout.main[i];
                    if layout.pass_reaches.is_some_and(|p| p >= m) {
                        return (0.0, 0.0);
                    }
                    let (v, u) = &mix[plan.below_runs[i]];
                    let row = &plan.before[i][0];
                    let good = plan.prior_good[i];
                    (dot(row, v) / good, dot(row, u) / good)
                })
                .collect();
            let mut weights = vec![0.0; n + 1];
            let mut rate_sum = 0.0;
            for c in 0..n {
                let (w, u) = match &merged[c] {
                    // A merged commit the chain weighed as it would: like its merge.
                    None => line[layout.line_index[layout.merged_at[c]]],
                    Some(per_rate) => per_rate.iter().fold((0.0, 0.0), |acc, &(log, share, f)| {
                        let w = (log - scale).exp() * share;
                        (acc.0 + w, acc.1 + w * f)
                    }),
                };
                weights[c] = w * culprit_prior[c];
                rate_sum += u * culprit_prior[c];
            }
            for r in &rates {
                if let Some(log) = r.log(segments - 1) {
                    let end = apply(&plan.to_end, r.after[segments - 1].0);
                    let w = (log - scale).exp() * end[0] / plan.prior_good_end * none_prior.exp();
                    weights[n] += w;
                    rate_sum += w * r.f;
                }
            }
            (weights, rate_sum)
        };
        let (mut weights, mut rate_sum) = weights_at(top);
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 1e-250 {
            // Every share is tiny: scale by the largest weight instead.
            let largest = weights.iter().copied().fold(0.0, f64::max);
            if largest.is_nan() || largest <= 0.0 {
                return None;
            }
            (weights, rate_sum) = weights_at(top + largest.ln());
        }
        Posterior::normalized(&weights, rate_sum)
    }
}

impl Posterior {
    /// The posterior from unnormalised weights (every commit, then "no culprit") and their
    /// rate-weighted sum; `None` when nothing is left to normalise.
    fn normalized(weights: &[f64], rate_sum: f64) -> Option<Posterior> {
        let total: f64 = weights.iter().sum();
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        let mut mass: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let none = mass.pop().unwrap_or(0.0);
        Some(Posterior {
            mass,
            none,
            flake_rate: rate_sum / total,
        })
    }

    /// The probability that each commit is bad (the culprit is among its ancestors): the mass
    /// of its ancestors, summed along first parents plus what each merge brings in.
    pub fn bad_probability(&self, history: &History) -> Vec<f64> {
        let mut bad = vec![0.0; self.mass.len()];
        for c in 0..self.mass.len() {
            let from_first = history.first_parent(c).map_or(0.0, |p| bad[p]);
            let merged: f64 = history
                .introduced(c)
                .iter()
                .map(|&a| self.mass[a as usize])
                .sum();
            bad[c] = (from_first + merged + self.mass[c]).min(1.0);
        }
        bad
    }

    /// The most likely culprit and its probability (`None` for "no culprit").
    pub fn top(&self) -> (Option<usize>, f64) {
        let mut best = (None, self.none);
        for (c, &m) in self.mass.iter().enumerate() {
            if m > best.1 {
                best = (Some(c), m);
            }
        }
        best
    }
}

/// Earlier runs of a test on commits known to be good: how many, and how many of them failed.
/// The prior of an inferred flake rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlakeHistory {
    pub runs: u64,
    pub fails: u64,
}

/// Above this, a fail says almost nothing and a search could not end; such a test needs fixing.
pub const MAX_FLAKE_RATE: f64 = 0.5;

/// The capacity in bits per run of the flaky-fail (Z) channel: no search can gain more per run.
pub fn z_channel_capacity(f: f64) -> f64 {
    if f <= 0.0 {
        return 1.0;
    }
    if f >= 1.0 {
        return 0.0;
    }
    (1.0 + (1.0 - f) * f.powf(f / (1.0 - f))).log2()
}

mod below;
pub use below::Below;

#[cfg(test)]
mod tests;

/// The direct computation, one rate at a time and one commit at a time, that the fast one
/// must agree with.
#[cfg(test)]
mod direct;
