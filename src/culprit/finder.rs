//! Which commits to test next, and when the search is over.
//!
//! Each call looks at every result so far and the runs still in progress, and answers with up to
//! `free` commits to start, or a conclusion. It keeps no state between calls: the gate replays it
//! from the store after a restart and gets the same answers.
//!
//! The next points come from quantiles of the posterior: with `k` hosts, `k` cuts split the
//! probability that the culprit is at or below a commit into `k + 1` equal parts, so each round
//! divides the suspects by `k + 1` when nothing flakes (Ben-Or & Hassidim). With a single host
//! the cut is the point of greatest expected information instead, which under flakes leans
//! towards older commits (a pass there is worth more than a fail). Confirmation falls out of the
//! same rule: the search ends only when one suspect holds the confidence target, which takes a
//! pass of its parents and as many fails of the suspect as the flake rate demands.
//!
//! "Information" is about the culprit only. Inside an earlier bug that a later commit fixed, a
//! commit may fail whatever the culprit is; the model's chain says how likely (forward-backward,
//! [`Posterior::bad_below_culprit`]). A result there tells of the culprit only as far as the
//! culprit's place decides where that bug ended: near culprits do, far ones hardly. That is what
//! finds the good stretch between a fixed bug and a new breaker, which the culprit's quantiles
//! alone walk past; in parallel rounds the most telling commit is run too when it tells much more
//! than every cut.

use std::collections::BTreeMap;

use super::history::History;
use super::model::{
    tally, z_channel_capacity, Below, Evidence, FlakeHistory, Model, Observed, Posterior, Tally,
};

/// How a search is tuned.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// The probability that a good commit fails; `None` infers it with the culprit.
    pub flake_rate: Option<f64>,
    /// What earlier runs say of the rate when it is inferred.
    pub flake_history: FlakeHistory,
    /// How sure the conclusion must be (the posterior of the answer).
    pub confidence: f64,
    /// The prior probability that the range has no culprit at all.
    pub prior_no_culprit: f64,
    /// The most runs one search may use; `None` derives it from the range, the flake rate and
    /// `hosts`.
    pub max_executions: Option<usize>,
    /// How many tests usually run at once: parallel rounds use runs less efficiently, so the
    /// derived budget grows with it.
    pub hosts: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            flake_rate: None,
            flake_history: FlakeHistory::default(),
            confidence: 0.99,
            prior_no_culprit: 0.5,
            max_executions: None,
            hosts: 1,
        }
    }
}

/// What the search found.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Found {
    /// This commit is the culprit.
    Culprit { commit: usize, probability: f64 },
    /// Nothing in the range is bad: the tip's failures were flakes.
    NoCulprit { probability: f64 },
    /// The culprit is one of these, which untestable commits make impossible to tell apart.
    OneOf {
        commits: Vec<usize>,
        probability: f64,
    },
    /// The results contradict each other: with flakes ruled out, `bad` failed although
    /// `good` passed, and no hypothesis explains both (today: one commit that did both).
    Inconsistent { bad: usize, good: usize },
    /// The search used its whole budget of runs without reaching the confidence target.
    GaveUp {
        suspect: Option<usize>,
        probability: f64,
    },
}

impl Found {
    /// Whether the answer names exactly one commit with enough confidence.
    pub fn culprit(&self) -> Option<usize> {
        match self {
            Found::Culprit { commit, .. } => Some(*commit),
            _ => None,
        }
    }
}

/// The finder's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Start these commits (repeats allowed: a suspect may need several runs at once).
    Test(Vec<usize>),
    /// Nothing is worth starting until one of the runs in progress ends.
    Wait,
    Done(Found),
}

/// Where the search stands: the most likely culprit and how sure it is.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Standing {
    /// `None` is "no culprit".
    pub suspect: Option<usize>,
    pub probability: f64,
    pub flake_rate: f64,
}

/// One search over one history.
#[derive(Clone, Debug)]
pub struct CulpritFinder<'h> {
    history: &'h History,
    settings: Settings,
    model: Model,
    /// Results of earlier searches of the same commits: evidence, never a confirmation.
    earlier: Vec<(usize, Observed)>,
}

/// A cut whose outcome is this certain tells nothing.
const CERTAIN: f64 = 1e-9;

impl<'h> CulpritFinder<'h> {
    pub fn new(history: &'h History, settings: Settings) -> Self {
        let model = match settings.flake_rate {
            Some(f) => Model::told(f, settings.prior_no_culprit),
            None => Model::inferred(settings.flake_history, settings.prior_no_culprit),
        };
        CulpritFinder {
            history,
            settings,
            model,
            earlier: Vec::new(),
        }
    }

    /// Reuses results of earlier searches (a gate's earlier flights) as evidence, and knows
    /// which commits were blamed then. A culprit is still named only once this search has
    /// itself seen it fail and its parents pass, as OSSTest reproduces in the flight it
    /// reports; and a blamed commit's failures are not taken to reach the tip, since after a
    /// blocked flight a fix on top is the normal case.
    pub fn reusing(mut self, earlier: Vec<(usize, Observed)>, blamed: &[usize]) -> Self {
        self.earlier = earlier;
        let mut marks = vec![false; self.history.len()];
        for &c in blamed {
            if let Some(m) = marks.get_mut(c) {
                *m = true;
            }
        }
        self.model.blamed = marks;
        self
    }

    /// Commits that a blamed commit's failure is known to reach: the tips of the flights that
    /// blamed it, which failed because of it. Whatever fixed it came after them, so the search
    /// looks for the tip's culprit above them, not among the commits that failed then.
    pub fn held_to(mut self, tips: &[usize]) -> Self {
        let mut marks = vec![false; self.history.len()];
        for &c in tips {
            if let Some(m) = marks.get_mut(c) {
                *m = true;
            }
        }
        self.model.held = marks;
        self
    }

    pub fn history(&self) -> &History {
        self.history
    }

    /// The posterior an answer must reach. A search stops as soon as its answer crosses the
    /// line, so answers sit just above it and their error rate is close to `1 - line`; halving
    /// the allowed error keeps the rate over many searches within `1 - confidence`.
    fn stopping_line(&self) -> f64 {
        1.0 - (1.0 - self.settings.confidence) / 2.0
    }

    /// The budget of runs: a few times what the channel capacity says a search needs, on one
    /// host, or a few times the rounds `hosts` hosts need, whichever is more.
    pub fn max_executions(&self, flake_rate: f64) -> usize {
        self.settings.max_executions.unwrap_or_else(|| {
            let n = self.history.len() as f64;
            let bits = (n + 1.0).log2() + (1.0 / (1.0 - self.settings.confidence)).log2();
            let per_run = z_channel_capacity(flake_rate);
            let single = (3.0 * bits / per_run).ceil() as usize + 10;
            let k = self.settings.hosts.max(1);
            let rounds = (3.0 * bits / (per_run * ((k + 1) as f64).log2())).ceil() as usize + 10;
            single.max(k * rounds)
        })
    }

    /// The most likely culprit now, or `None` when the results contradict each other.
    pub fn standing(&self, observations: &[(usize, Observed)]) -> Option<Standing> {
        self.posterior(observations)
            .map(|(post, f)| standing(&post, f))
    }

    /// The standing, and how many answers are still in the running: the fewest that together
    /// hold the confidence target ("no culprit" counts as one), as `git bisect` says how many
    /// revisions are left. Apart from `standing`, which the gate calls per result of a flight
    /// and which need not sort the whole posterior each time.
    pub fn progress(&self, observations: &[(usize, Observed)]) -> Option<(Standing, usize)> {
        let (post, f) = self.posterior(observations)?;
        let left = credible_set(&post, self.settings.confidence);
        Some((standing(&post, f), left))
    }

    fn posterior(&self, observations: &[(usize, Observed)]) -> Option<(Posterior, f64)> {
        let tallies = self.tallies(observations);
        let post = Posterior::compute(self.history, &tallies, &self.model)?;
        let f = post.flake_rate;
        Some((post, f))
    }

    /// The tallies of the earlier results and these.
    fn tallies(&self, observations: &[(usize, Observed)]) -> Vec<Tally> {
        let mut tallies = tally(self.history.len(), &self.earlier);
        for (t, own) in tallies
            .iter_mut()
            .zip(tally(self.history.len(), observations))
        {
            t.passes += own.passes;
            t.fails += own.fails;
            t.untestable += own.untestable;
        }
        tallies
    }

    /// The next commits to test on `free` hosts, given every result so far and the commits
    /// whose runs are still in progress, or the conclusion.
    pub fn next(&self, observations: &[(usize, Observed)], pending: &[usize], free: usize) -> Step {
        let h = self.history;
        let n = h.len();
        let tallies = self.tallies(observations);
        let evidence = Evidence::of(h, &tallies, &self.model);
        let Some(post) = evidence.posterior() else {
            return Step::Done(self.contradiction(&tallies));
        };
        let f = post.flake_rate;
        let classes = Classes::of(h, |c| tallies[c].untestable > 0);
        let (best, mass) = classes.top(&post);
        let unconfirmed = if mass >= self.stopping_line() {
            let missing = self.unconfirmed(
                best.map(|rep| classes.members_of(rep)),
                &tallies,
                observations,
            );
            if missing.is_empty() {
                return Step::Done(classes.found(best, mass));
            }
            missing
        } else {
            Vec::new()
        };
        let give_up = || {
            let (suspect, probability) = post.top();
            Step::Done(Found::GaveUp {
                suspect,
                probability,
            })
        };
        let budget = self
            .max_executions(f)
            .saturating_sub(observations.len() + pending.len());
        if budget == 0 {
            return if pending.is_empty() {
                give_up()
            } else {
                Step::Wait
            };
        }
        if !unconfirmed.is_empty() {
            let mut starting: Vec<usize> = unconfirmed
                .into_iter()
                .filter(|c| !pending.contains(c))
                .collect();
            starting.truncate(free.min(budget));
            return match (starting.is_empty(), pending.is_empty()) {
                (false, _) => Step::Test(starting),
                (true, false) => Step::Wait,
                (true, true) => give_up(),
            };
        }
        let bad = post.bad_probability(h);
        // The chance each commit is bad: from the culprit on, or inside an earlier bug that a
        // later commit fixed (where the chain says that bug ended), or, off the line, when its
        // failures are more likely a bug of its own than flakes.
        let below: Vec<Below> = evidence
            .bad_below_culprit(&post, &bad)
            .into_iter()
            .enumerate()
            .map(|(c, chain)| {
                // A merged commit's own bug, which the line's chain does not weigh: the same
                // whichever commit the culprit is. On the line the chain says it all: a
                // commit whose failures look like a blamed bug is still good when a culprit
                // right above it is (then running it again is what tells the two apart).
                let alone = if evidence.on_line(c) {
                    0.0
                } else {
                    self.model.earlier_bug_share(c, &tallies[c], f)
                };
                match chain {
                    Some(b) if b.own >= alone => b,
                    _ => Below {
                        own: alone,
                        far: 1.0,
                        far_bad: alone,
                    },
                }
            })
            .collect();
        let fails: Vec<f64> = (0..n)
            .map(|c| bad[c] + (1.0 - bad[c]) * below[c].own)
            .collect();
        let eligible: Vec<usize> = (0..n)
            .filter(|&c| {
                tallies[c].untestable == 0 && fails[c] > CERTAIN && fails[c] < 1.0 - CERTAIN
            })
            .collect();
        let flake_entropy = entropy(f);
        let telling: Vec<f64> = (0..n)
            .map(|c| information(bad[c], &below[c], f, flake_entropy))
            .collect();
        let free = free.min(budget);
        let chosen = if pending.is_empty() && free == 1 {
            most_telling(&eligible, &telling).into_iter().collect()
        } else {
            // Cuts go where a result still tells something of the culprit: not to a commit an
            // earlier bug is sure to fail, however the culprit's probability falls around it.
            let most = eligible.iter().map(|&c| telling[c]).fold(0.0, f64::max);
            let worth: Vec<usize> = eligible
                .iter()
                .copied()
                .filter(|&c| telling[c] >= TELLING * most)
                .collect();
            let mut cuts = self.quantile_cuts(&worth, &bad, &telling, pending, free, f);
            // The cuts split the culprit's probability, which is not always where results
            // tell most (a good stretch between an earlier bug and the culprit, say): a commit
            // that tells much more than every cut takes the place of the least telling one.
            let best = most_telling(&worth, &telling).filter(|b| !pending.contains(b));
            let strongest = cuts.iter().map(|&c| telling[c]).fold(0.0, f64::max);
            let weakest =
                (0..cuts.len()).min_by(|&a, &b| telling[cuts[a]].total_cmp(&telling[cuts[b]]));
            if let (Some(b), Some(w)) = (best, weakest) {
                if telling[b] > OUTWEIGHS * strongest {
                    cuts[w] = b;
                }
            }
            cuts
        };
        match (chosen.is_empty(), pending.is_empty()) {
            (false, _) => Step::Test(chosen),
            (true, false) => Step::Wait,
            // Nothing testable can tell the suspects apart any more.
            (true, true) => give_up(),
        }
    }

    /// `free` new cuts that, with the runs in progress, split the culprit's cumulative
    /// probability (`bad`) into parts as equal as possible. Commits where it is the same (no
    /// suspect between them) cut it alike: of those, the one whose result tells most
    /// (`telling`) is taken, not the oldest, which may lie where an earlier bug is sure to
    /// make it fail.
    fn quantile_cuts(
        &self,
        eligible: &[usize],
        bad: &[f64],
        telling: &[f64],
        pending: &[usize],
        free: usize,
        f: f64,
    ) -> Vec<usize> {
        if eligible.is_empty() || free == 0 {
            return Vec::new();
        }
        // Cuts already made by runs in progress; the segments between them get the new cuts,
        // most to the heaviest, so the largest part left is as small as it can be.
        let mut fixed: Vec<f64> = pending
            .iter()
            .filter_map(|&c| bad.get(c).copied())
            .chain([0.0, 1.0])
            .collect();
        fixed.sort_by(f64::total_cmp);
        let segments: Vec<(f64, f64)> = fixed.windows(2).map(|w| (w[0], w[1])).collect();
        let mut cuts_in = vec![0usize; segments.len()];
        for _ in 0..free {
            let heaviest = (0..segments.len()).max_by(|&a, &b| {
                let part = |s: usize| (segments[s].1 - segments[s].0) / (cuts_in[s] + 1) as f64;
                part(a).total_cmp(&part(b)).then(b.cmp(&a))
            });
            if let Some(s) = heaviest {
                cuts_in[s] += 1;
            }
        }
        let mut targets: Vec<f64> = Vec::with_capacity(free);
        for (s, &(lo, hi)) in segments.iter().enumerate() {
            for j in 1..=cuts_in[s] {
                targets.push(lo + (hi - lo) * j as f64 / (cuts_in[s] + 1) as f64);
            }
        }
        // Eligible commits by position, those at one position together, the most informative
        // first; each target takes the nearest position that still has a commit with room. A
        // commit may be run several times at once, as often as a repeat still helps.
        let mut sorted: Vec<(f64, usize)> = eligible.iter().map(|&c| (bad[c], c)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut by_position: Vec<(f64, Vec<usize>)> = Vec::new();
        for (p, c) in sorted {
            match by_position.last_mut() {
                Some((q, members)) if p - *q <= SAME_POSITION => members.push(c),
                _ => by_position.push((p, vec![c])),
            }
        }
        for (_, members) in &mut by_position {
            members.sort_by(|&a, &b| telling[b].total_cmp(&telling[a]).then(a.cmp(&b)));
        }
        let repeats = useful_repeats(f, self.stopping_line());
        let mut in_use: BTreeMap<usize, usize> = BTreeMap::new();
        for &c in pending {
            *in_use.entry(c).or_default() += 1;
        }
        let mut chosen = Vec::new();
        for target in targets {
            let at = by_position.partition_point(|(p, _)| *p < target);
            let (mut lo, mut hi) = (at, at);
            // Widen around the target until a commit with room turns up.
            let pick = loop {
                let below = lo.checked_sub(1).map(|i| (i, target - by_position[i].0));
                let above = (hi < by_position.len()).then(|| (hi, by_position[hi].0 - target));
                let next = match (below, above) {
                    (Some(b), Some(a)) => {
                        if b.1 <= a.1 {
                            lo -= 1;
                            b.0
                        } else {
                            hi += 1;
                            a.0
                        }
                    }
                    (Some(b), None) => {
                        lo -= 1;
                        b.0
                    }
                    (None, Some(a)) => {
                        hi += 1;
                        a.0
                    }
                    (None, None) => break None,
                };
                let room = by_position[next]
                    .1
                    .iter()
                    .copied()
                    .find(|c| in_use.get(c).copied().unwrap_or(0) < repeats);
                if room.is_some() {
                    break room;
                }
            };
            if let Some(c) = pick {
                *in_use.entry(c).or_default() += 1;
                chosen.push(c);
            }
        }
        chosen
    }

    /// What this search must still see itself before it may give this answer: for a culprit
    /// (or a class of commits no test tells apart), a failure of it and a pass of each of its
    /// parents inside the range that can be tested; for "no culprit", a run of the tip.
    /// Earlier searches' results count as evidence but never as these.
    fn unconfirmed(
        &self,
        answer: Option<Vec<usize>>,
        tallies: &[Tally],
        own: &[(usize, Observed)],
    ) -> Vec<usize> {
        let seen = |c: usize, o: Observed| own.iter().any(|&(x, r)| x == c && r == o);
        let Some(members) = answer else {
            let tip = self.history.tip();
            let tested = own
                .iter()
                .any(|&(x, r)| x == tip && r != Observed::Untestable);
            return if tested { Vec::new() } else { vec![tip] };
        };
        let testable = |c: &usize| tallies[*c].untestable == 0;
        let failed = members.iter().any(|&c| seen(c, Observed::Fail));
        let first = members.iter().copied().filter(testable).max();
        let mut missing: Vec<usize> = first.filter(|_| !failed).into_iter().collect();
        for &c in &members {
            for p in self.history.parents(c) {
                if !members.contains(&p) && testable(&p) && !seen(p, Observed::Pass) {
                    missing.push(p);
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Results that no hypothesis explains (a commit both passed and failed with flakes ruled
    /// out): the commit to show.
    fn contradiction(&self, tallies: &[Tally]) -> Found {
        let both = (0..self.history.len())
            .find(|&c| tallies[c].passes > 0 && tallies[c].fails > 0)
            .unwrap_or(self.history.tip());
        Found::Inconsistent {
            bad: both,
            good: both,
        }
    }
}

/// The commits that no test can tell apart from `commit` when the commits marked in
/// `untestable` cannot be tested (`commit` itself included).
pub fn indistinguishable(history: &History, untestable: &[bool], commit: usize) -> Vec<usize> {
    let classes = Classes::of(history, |c| untestable.get(c).copied().unwrap_or(false));
    let rep = classes.of[commit];
    classes
        .members
        .get(&rep)
        .cloned()
        .unwrap_or_else(|| vec![commit])
}

fn standing(post: &Posterior, flake_rate: f64) -> Standing {
    let (suspect, probability) = post.top();
    Standing {
        suspect,
        probability,
        flake_rate,
    }
}

/// The fewest answers (commits, and "no culprit") whose probabilities add up to `confidence`.
fn credible_set(post: &Posterior, confidence: f64) -> usize {
    let mut masses: Vec<f64> = post.mass.iter().copied().chain([post.none]).collect();
    masses.sort_by(|a, b| b.total_cmp(a));
    let mut held = 0.0;
    for (i, m) in masses.iter().enumerate() {
        held += m;
        if held >= confidence {
            return i + 1;
        }
    }
    masses.len()
}

/// The fewest rounds any search with `k` hosts needs for `n` candidates: ceil(log_{k+1} n).
pub fn rounds_bound(n: usize, k: usize) -> usize {
    let (mut r, mut covered) = (0, 1usize);
    while covered < n {
        covered = covered.saturating_mul(k + 1);
        r += 1;
    }
    r
}

/// A commit is cut at in parallel rounds only if its result is expected to tell at least this
/// share of what the most telling commit's would.
const TELLING: f64 = 0.05;

/// A commit whose result tells this many times more than every cut's is run in a parallel
/// round though no cut falls on it.
const OUTWEIGHS: f64 = 2.0;

/// Commits whose cumulative probabilities differ by less than this cut it at one place.
const SAME_POSITION: f64 = 1e-12;

/// What a run of a commit is expected to tell of the culprit: the information its result
/// carries, less what it would still carry were the culprit known. `bad` is the chance the
/// culprit is among its ancestors (then it fails); otherwise it may be bad inside an earlier
/// bug (`below`), which a culprit near it decides (it fails, or it is good and fails only by a
/// flake) and one far from it does not.
fn information(bad: f64, below: &Below, f: f64, flake_entropy: f64) -> f64 {
    let fails = bad + (1.0 - bad) * (below.own + (1.0 - below.own) * f);
    if below.own == 0.0 && below.far_bad == 0.0 {
        // Good unless the culprit is below it (most commits of most searches): one logarithm.
        return entropy(fails) - (1.0 - bad) * flake_entropy;
    }
    let far_fails = below.far_bad + (1.0 - below.far_bad) * f;
    let near_bad = (below.own - below.far * below.far_bad).max(0.0);
    let decided_good = (1.0 - below.far - near_bad).max(0.0);
    entropy(fails) - (1.0 - bad) * (decided_good * flake_entropy + below.far * entropy(far_fails))
}

/// The eligible commit whose result tells most, the oldest of equals.
fn most_telling(eligible: &[usize], telling: &[f64]) -> Option<usize> {
    eligible
        .iter()
        .copied()
        .fold(None, |best: Option<usize>, c| match best {
            Some(b) if telling[b] >= telling[c] => best,
            _ => Some(c),
        })
}

fn entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        0.0
    } else {
        -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
    }
}

/// How many runs of one commit at once are worth making: without flakes one answers for good;
/// with them, as many fails as it takes to be sure a fail is no flake.
fn useful_repeats(f: f64, confidence: f64) -> usize {
    if f <= 0.0 {
        1
    } else {
        ((1.0 - confidence).ln() / f.ln()).ceil().max(1.0) as usize
    }
}

/// Commits that no testable commit can tell apart. A commit found untestable has the same
/// testable descendants as its nearest testable ones; when that is a single commit, the two
/// stand or fall together.
struct Classes {
    /// Class per commit: a representative.
    of: Vec<usize>,
    members: BTreeMap<usize, Vec<usize>>,
}

impl Classes {
    fn of(h: &History, untestable: impl Fn(usize) -> bool) -> Classes {
        let n = h.len();
        let mut keys: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        let mut of: Vec<usize> = (0..n).collect();
        for u in (0..n).filter(|&c| untestable(c)) {
            // The nearest testable descendants, reached through untestable commits only.
            let mut key = Vec::new();
            let mut stack = vec![u];
            let mut seen = vec![u];
            while let Some(c) = stack.pop() {
                for &child in h.children(c) {
                    let child = child as usize;
                    if seen.contains(&child) {
                        continue;
                    }
                    seen.push(child);
                    if untestable(child) {
                        stack.push(child);
                    } else {
                        key.push(child);
                    }
                }
            }
            // Only the minimal ones: a merge below the untestable commit can also be reached
            // through its other parent, which is testable and says more.
            let all = key.clone();
            key.retain(|&t| !all.iter().any(|&a| a != t && h.is_ancestor(a, t)));
            key.sort_unstable();
            keys.entry(key).or_default().push(u);
        }
        let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (key, mut group) in keys {
            let rep = match key.as_slice() {
                [t] => *t,
                _ => group[0],
            };
            if key.len() == 1 {
                group.push(rep);
            }
            group.sort_unstable();
            group.dedup();
            for &c in &group {
                of[c] = rep;
            }
            members.insert(rep, group);
        }
        Classes { of, members }
    }

    /// The commits of the class `rep` stands for.
    fn members_of(&self, rep: usize) -> Vec<usize> {
        self.members.get(&rep).cloned().unwrap_or_else(|| vec![rep])
    }

    /// The most probable class (`None` is "no culprit") and its mass.
    fn top(&self, post: &Posterior) -> (Option<usize>, f64) {
        let mut mass = vec![0.0; post.mass.len()];
        for (c, &m) in post.mass.iter().enumerate() {
            mass[self.of[c]] += m;
        }
        mass.into_iter()
            .enumerate()
            .fold((None, post.none), |best, (rep, m)| {
                if m > best.1 {
                    (Some(rep), m)
                } else {
                    best
                }
            })
    }

    fn found(&self, rep: Option<usize>, probability: f64) -> Found {
        match rep {
            None => Found::NoCulprit { probability },
            Some(rep) => match self.members.get(&rep) {
                Some(group) if group.len() > 1 => Found::OneOf {
                    commits: group.clone(),
                    probability,
                },
                _ => Found::Culprit {
                    commit: rep,
                    probability,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
