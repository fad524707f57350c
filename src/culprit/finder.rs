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

use std::collections::BTreeMap;

use super::history::History;
use super::model::{tally, z_channel_capacity, FlakeHistory, Model, Observed, Posterior, Tally};

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
        let Some(post) = Posterior::compute(h, &tallies, &self.model) else {
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
        // The chance each commit fails when run again: bad from the culprit on, or bad on its
        // own when its failures are more likely an earlier, fixed bug than flakes, or when it
        // lies where a blamed commit's bug is known to have lasted.
        let held = self.model.held_bug_share(h, &tallies, f);
        let fails: Vec<f64> = (0..n)
            .map(|c| {
                let own = self.model.earlier_bug_share(c, &tallies[c], f).max(held[c]);
                bad[c] + (1.0 - bad[c]) * own
            })
            .collect();
        let eligible: Vec<usize> = (0..n)
            .filter(|&c| {
                tallies[c].untestable == 0 && fails[c] > CERTAIN && fails[c] < 1.0 - CERTAIN
            })
            .collect();
        let free = free.min(budget);
        let chosen = if pending.is_empty() && free == 1 {
            self.most_informative(&eligible, &fails, f)
                .into_iter()
                .collect()
        } else {
            self.quantile_cuts(&eligible, &bad, pending, free, f)
        };
        match (chosen.is_empty(), pending.is_empty()) {
            (false, _) => Step::Test(chosen),
            (true, false) => Step::Wait,
            // Nothing testable can tell the suspects apart any more.
            (true, true) => give_up(),
        }
    }

    /// The commit whose result is expected to tell the most about the culprit.
    fn most_informative(&self, eligible: &[usize], bad: &[f64], f: f64) -> Option<usize> {
        let gain = |b: f64| entropy(b + (1.0 - b) * f) - (1.0 - b) * entropy(f);
        eligible
            .iter()
            .copied()
            .map(|c| (c, gain(bad[c])))
            .fold(None, |best: Option<(usize, f64)>, (c, g)| match best {
                Some((_, bg)) if bg >= g => best,
                _ => Some((c, g)),
            })
            .map(|(c, _)| c)
    }

    /// `free` new cuts that, with the runs in progress, split the culprit's cumulative
    /// probability into parts as equal as possible.
    fn quantile_cuts(
        &self,
        eligible: &[usize],
        bad: &[f64],
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
        // Eligible commits by position; each target takes the nearest commit that still has
        // room. A commit may be run several times at once, as often as a repeat still helps.
        let mut by_position: Vec<(f64, usize)> = eligible.iter().map(|&c| (bad[c], c)).collect();
        by_position.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let repeats = useful_repeats(f, self.stopping_line());
        let mut in_use: BTreeMap<usize, usize> = BTreeMap::new();
        for &c in pending {
            *in_use.entry(c).or_default() += 1;
        }
        let mut chosen = Vec::new();
        for target in targets {
            let at = by_position.partition_point(|&(p, _)| p < target);
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
                let c = by_position[next].1;
                if in_use.get(&c).copied().unwrap_or(0) < repeats {
                    break Some(c);
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
mod tests {
    use super::super::synthetic::{self, Reused, Shape, World};
    use super::*;

    fn exact(f: f64) -> Settings {
        Settings {
            flake_rate: Some(f),
            ..Settings::default()
        }
    }

    fn world(culprit: usize, n: usize) -> World {
        World {
            culprit,
            untestable: vec![false; n],
            flake_rate: 0.0,
            seed: 0,
            fixed: None,
        }
    }

    #[test]
    fn the_candidates_left_shrink_to_one_as_the_search_narrows() {
        let h = History::linear(64).unwrap();
        let finder = CulpritFinder::new(&h, exact(0.0));
        // Only the tip is known bad: any of the 64 commits, or none, is still possible.
        let (_, start) = finder.progress(&[(63, Observed::Fail)]).unwrap();
        assert!(start >= 60, "{start}");
        // Commit 31 passes: the culprit is above it, half the range.
        let (_, half) = finder
            .progress(&[(63, Observed::Fail), (31, Observed::Pass)])
            .unwrap();
        assert!((30..=33).contains(&half), "{half}");
        // 40 fails and 39 passes: only 40 is left.
        let (done, left) = finder
            .progress(&[
                (63, Observed::Fail),
                (39, Observed::Pass),
                (40, Observed::Fail),
            ])
            .unwrap();
        assert_eq!((left, done.suspect), (1, Some(40)));
    }

    #[test]
    fn without_flakes_every_culprit_is_found_in_the_fewest_rounds() {
        for n in 1..=70 {
            let h = History::linear(n).unwrap();
            for k in [1, 2, 4, 16] {
                for culprit in 0..n {
                    let t = synthetic::simulate(&h, &world(culprit, n), exact(0.0), k);
                    assert!(
                        matches!(t.found, Found::Culprit { commit, probability } if commit == culprit && probability > 0.995),
                        "n={n} k={k}: {:?}",
                        t.found
                    );
                    assert!(
                        t.rounds <= rounds_bound(n, k),
                        "n={n} k={k} culprit={culprit}: {} rounds",
                        t.rounds
                    );
                    assert_eq!(t.confirmations, 0);
                }
            }
        }
    }

    #[test]
    fn merge_histories_cost_about_one_more_round_without_flakes() {
        // A merge named the culprit must be seen to fail, and each of its parents to pass,
        // in the search itself: now and then that is one more round.
        for shape in [Shape::MergeTrain, Shape::StaleBase] {
            for n in [8, 30, 64, 200] {
                let h = synthetic::history(shape, n, n as u64).unwrap();
                for k in [1, 4, 16] {
                    let mut rounds = 0;
                    for culprit in 0..n {
                        let t = synthetic::simulate(&h, &world(culprit, n), exact(0.0), k);
                        assert_eq!(t.found.culprit(), Some(culprit), "{shape:?} n={n} k={k}");
                        assert!(
                            t.rounds <= rounds_bound(n, k) + 2,
                            "{shape:?} n={n} k={k} culprit={culprit}: {} rounds",
                            t.rounds
                        );
                        rounds += t.rounds;
                    }
                    let mean = rounds as f64 / n as f64;
                    assert!(
                        mean <= rounds_bound(n, k) as f64 + 0.5,
                        "{shape:?} n={n} k={k}: {mean} rounds on average"
                    );
                }
            }
        }
    }

    #[test]
    fn with_flakes_the_culprit_is_confirmed_not_trusted() {
        let n = 64;
        let h = History::linear(n).unwrap();
        for k in [1, 4] {
            let (mut right, mut wrong) = (0, 0);
            for seed in 0..300 {
                let w = World::new(&h, 0.1, 0.0, seed);
                let t = synthetic::simulate(&h, &w, exact(0.1), k);
                match t.found {
                    Found::Culprit {
                        commit,
                        probability,
                    } => {
                        assert!(probability >= 0.99);
                        if commit == w.culprit {
                            right += 1
                        } else {
                            wrong += 1
                        }
                    }
                    other => panic!("seed {seed}: {other:?}"),
                }
            }
            assert!(
                right >= 294 && wrong <= 6,
                "k={k}: {right} right, {wrong} wrong"
            );
        }
    }

    #[test]
    fn an_untestable_culprit_is_reported_with_the_commit_it_hides_behind() {
        // 0..8 linear; 4 (the culprit) cannot be built, so 4 and 5 cannot be told apart.
        let h = History::linear(8).unwrap();
        let mut w = world(4, 8);
        w.untestable[4] = true;
        for k in [1, 3] {
            let t = synthetic::simulate(&h, &w, exact(0.0), k);
            assert!(
                matches!(&t.found, Found::OneOf { commits, probability } if commits == &[4, 5] && *probability > 0.995),
                "{:?}",
                t.found
            );
        }
        // An untestable commit that does not hide the culprit is stepped around.
        let mut w = world(5, 8);
        w.untestable[3] = true;
        assert_eq!(
            synthetic::simulate(&h, &w, exact(0.0), 1).found.culprit(),
            Some(5)
        );
    }

    #[test]
    fn a_tip_that_passes_on_retry_had_no_culprit() {
        let h = History::linear(10).unwrap();
        let finder = CulpritFinder::new(&h, exact(0.05));
        let obs = [(9, Observed::Fail), (9, Observed::Pass)];
        assert!(
            matches!(finder.next(&obs, &[], 1), Step::Done(Found::NoCulprit { probability }) if probability == 1.0)
        );
    }

    #[test]
    fn a_fix_inside_the_range_sends_the_search_above_it() {
        // 4 failed below 6's pass: an earlier bug fixed since, not where the tip's began.
        let h = History::linear(10).unwrap();
        for f in [0.0, 0.1] {
            let finder = CulpritFinder::new(&h, exact(f));
            let obs = [
                (9, Observed::Fail),
                (4, Observed::Fail),
                (6, Observed::Pass),
            ];
            let Step::Test(next) = finder.next(&obs, &[], 1) else {
                panic!("f={f}")
            };
            assert!(next.iter().all(|&c| c > 6), "f={f}: {next:?}");
        }
    }

    #[test]
    fn a_fixed_earlier_bug_and_a_new_breaker_find_the_new_one() {
        for shape in [Shape::Linear, Shape::MergeTrain] {
            for n in [4, 16, 64] {
                let h = synthetic::history(shape, n, n as u64).unwrap();
                for seed in 0..40 {
                    let Some(w) = World::with_fixed_bug(&h, 0.0, seed) else {
                        continue;
                    };
                    // As a gate's second flight: the earlier bug was blamed then.
                    let reused = Reused::blamed_fix(&h, &w);
                    let t = synthetic::simulate_reusing(&h, &w, exact(0.0), 2, reused);
                    assert_eq!(
                        t.found.culprit(),
                        Some(w.culprit),
                        "{shape:?} n={n} seed={seed} {:?}: {:?}",
                        w.fixed,
                        t.found
                    );
                    // Told nothing, a search that never runs a commit between the two bugs
                    // cannot tell them apart; it names one of the two, never a good commit.
                    let t = synthetic::simulate(&h, &w, exact(0.0), 2);
                    let begun = w.fixed.map(|(b, _)| b);
                    assert!(
                        t.found.culprit() == Some(w.culprit) || t.found.culprit() == begun,
                        "{shape:?} n={n} seed={seed} {:?}: {:?}",
                        w.fixed,
                        t.found
                    );
                }
            }
        }
    }

    #[test]
    fn earlier_results_are_evidence_but_the_culprit_is_seen_again() {
        // An earlier search saw 5 fail and 4 pass; this one has only the tip's failure.
        let h = History::linear(10).unwrap();
        let earlier = vec![
            (5, Observed::Fail),
            (5, Observed::Fail),
            (4, Observed::Pass),
        ];
        let finder = CulpritFinder::new(&h, exact(0.0)).reusing(earlier.clone(), &[]);
        let mut own = vec![(9, Observed::Fail)];
        let Step::Test(first) = finder.next(&own, &[], 2) else {
            panic!()
        };
        assert_eq!(first, vec![4, 5]);
        own.extend([(4, Observed::Pass), (5, Observed::Fail)]);
        assert!(matches!(
            finder.next(&own, &[], 2),
            Step::Done(Found::Culprit { commit: 5, .. })
        ));
        // Blamed before, 5 is not taken to reach the tip: the commits between are tested.
        let blamed = CulpritFinder::new(&h, exact(0.0)).reusing(earlier, &[5]);
        let Step::Test(between) = blamed.next(&own, &[], 1) else {
            panic!()
        };
        assert!(between.iter().all(|&c| (6..9).contains(&c)), "{between:?}");
    }

    #[test]
    fn commits_a_blamed_failure_is_known_to_reach_are_not_searched() {
        // Blamed #3 failed up to the blaming flight's tip #10; #12 fixed it, #15 broke the tip
        // anew. Whatever the flake rate, nothing from #4 to #10 can tell anything: it fails
        // either way. The search looks above, and finds #15.
        for settings in [exact(0.0), exact(0.05), Settings::default()] {
            let h = History::linear(20).unwrap();
            let earlier = vec![
                (3, Observed::Fail),
                (3, Observed::Fail),
                (2, Observed::Pass),
                (10, Observed::Fail),
                (10, Observed::Fail),
            ];
            let bad = |c: usize| (3..12).contains(&c) || c >= 15;
            let finder = CulpritFinder::new(&h, settings)
                .reusing(earlier, &[3])
                .held_to(&[10]);
            let mut own = vec![(19, Observed::Fail)];
            let found = loop {
                match finder.next(&own, &[], 1) {
                    Step::Test(batch) => {
                        for c in batch {
                            assert!(!(4..=10).contains(&c), "ran #{c}: {own:?}");
                            own.push((
                                c,
                                if bad(c) {
                                    Observed::Fail
                                } else {
                                    Observed::Pass
                                },
                            ));
                        }
                    }
                    Step::Done(found) => break found,
                    Step::Wait => panic!("waits on nothing"),
                }
            };
            assert_eq!(found.culprit(), Some(15), "{own:?}");
        }
    }

    #[test]
    fn no_culprit_is_said_only_after_the_tip_was_run() {
        let h = History::linear(10).unwrap();
        let finder = CulpritFinder::new(&h, exact(0.05)).reusing(vec![(9, Observed::Pass)], &[]);
        assert_eq!(finder.next(&[], &[], 1), Step::Test(vec![9]));
    }

    #[test]
    fn the_budget_of_runs_is_a_hard_cap() {
        let h = History::linear(100).unwrap();
        let settings = Settings {
            max_executions: Some(4),
            ..exact(0.2)
        };
        let finder = CulpritFinder::new(&h, settings);
        let mut obs = vec![(99, Observed::Fail)];
        // Every run fails: the finder keeps looking until the cap.
        loop {
            match finder.next(&obs, &[], 1) {
                Step::Test(cs) => obs.extend(cs.into_iter().map(|c| (c, Observed::Fail))),
                Step::Done(Found::GaveUp { .. }) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(obs.len(), 4);
        // With runs still in progress at the cap, it waits for them instead.
        assert_eq!(finder.next(&obs[..3], &[50], 1), Step::Wait);
    }

    #[test]
    fn runs_in_progress_are_not_repeated_needlessly() {
        let h = History::linear(16).unwrap();
        let finder = CulpritFinder::new(&h, exact(0.0));
        let obs = [(15, Observed::Fail)];
        let Step::Test(first) = finder.next(&obs, &[], 1) else {
            panic!()
        };
        let Step::Test(more) = finder.next(&obs, &first, 2) else {
            panic!()
        };
        assert!(
            more.iter().all(|c| !first.contains(c)),
            "{first:?} then {more:?}"
        );
        assert_eq!(more.len(), 2);
        // A pending run whose outcome cannot matter is never duplicated without flakes.
        let Step::Test(batch) = finder.next(&obs, &[], 16) else {
            panic!()
        };
        let mut unique = batch.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), batch.len());
    }

    #[test]
    fn indistinguishable_commits_follow_untestable_runs() {
        // 0 - 1 - 2 - 3 - 4: 1 and 2 untestable hide behind 3.
        let h = History::linear(5).unwrap();
        let u = [false, true, true, false, false];
        assert_eq!(indistinguishable(&h, &u, 2), vec![1, 2, 3]);
        assert_eq!(indistinguishable(&h, &u, 3), vec![1, 2, 3]);
        assert_eq!(indistinguishable(&h, &u, 0), vec![0]);
        // An untestable fork point with two testable children stands alone.
        let d = History::new(vec![vec![], vec![0], vec![0], vec![1, 2]]).unwrap();
        assert_eq!(
            indistinguishable(&d, &[true, false, false, false], 0),
            vec![0]
        );
        // One whose children are a branch and the merge of that branch hides behind the branch.
        let m = History::new(vec![vec![], vec![0], vec![0, 1]]).unwrap();
        assert_eq!(indistinguishable(&m, &[true, false, false], 0), vec![0, 1]);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::super::strategies::dag;
    use super::super::synthetic::{self, World};
    use super::*;

    fn settings(f: f64) -> Settings {
        Settings {
            flake_rate: Some(f),
            ..Settings::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn without_flakes_the_culprit_is_exact(h in dag(2..48), pick in any::<prop::sample::Index>(), k in 1usize..6) {
            let w = World { culprit: pick.index(h.len()), untestable: vec![false; h.len()], flake_rate: 0.0, seed: 0, fixed: None };
            let t = synthetic::simulate(&h, &w, settings(0.0), k);
            prop_assert_eq!(t.found.culprit(), Some(w.culprit));
        }

        #[test]
        fn a_commit_whose_parent_failed_is_never_named(
            h in dag(2..48), pick in any::<prop::sample::Index>(), k in 1usize..6, assumed in prop::sample::select(vec![0.0, 0.01, 0.1]),
        ) {
            // The world has no flakes; the finder may assume some.
            let w = World { culprit: pick.index(h.len()), untestable: vec![false; h.len()], flake_rate: 0.0, seed: 0, fixed: None };
            let finder = CulpritFinder::new(&h, settings(assumed));
            let mut obs = vec![(h.tip(), Observed::Fail)];
            let mut attempts = vec![0u32; h.len()];
            let found = loop {
                match finder.next(&obs, &[], k) {
                    Step::Test(cs) => for c in cs {
                        obs.push((c, w.result(&h, c, attempts[c])));
                        attempts[c] += 1;
                    },
                    Step::Wait => prop_assert!(false, "waited with nothing in progress"),
                    Step::Done(found) => break found,
                }
            };
            if let Found::Culprit { commit, .. } = found {
                for p in h.parents(commit) {
                    prop_assert!(!obs.contains(&(p, Observed::Fail)), "named {commit}, whose parent {p} failed");
                }
            }
        }

        #[test]
        fn every_search_ends_within_its_budget(
            h in dag(2..48), seed in any::<u64>(), k in 1usize..6,
            f in prop::sample::select(vec![0.0, 0.05, 0.1, 0.3]), u in prop::sample::select(vec![0.0, 0.2]),
        ) {
            let w = World::new(&h, f, u, seed);
            let cap = CulpritFinder::new(&h, Settings { hosts: k, ..settings(f) }).max_executions(f);
            let t = synthetic::simulate(&h, &w, settings(f), k);
            prop_assert!(t.executions < cap, "{} runs, cap {cap}", t.executions);
            if f == 0.0 {
                // Untestable commits may widen the answer, never lose the culprit.
                prop_assert!(matches!(w.judge(&t.found), synthetic::Judgement::Exact | synthetic::Judgement::Contains), "{:?} for culprit {}", t.found, w.culprit);
            }
        }
    }
}

#[cfg(test)]
mod debug_fixed {
    use super::*;
    use crate::culprit::synthetic::{Reused, World};

    #[test]
    fn debug_fixed_bug_trials() {
        let history = History::linear(64).unwrap();
        let mut shown = 0;
        for seed in 0..200u64 {
            let Some(w) = World::with_fixed_bug(&history, 0.0, seed) else {
                continue;
            };
            let reused = Reused::blamed_fix(&history, &w);
            let settings = Settings {
                flake_rate: None,
                ..Settings::default()
            };
            let finder = CulpritFinder::new(&history, settings)
                .reusing(reused.earlier.clone(), &reused.blamed)
                .held_to(&reused.held);
            let mut obs = vec![(history.tip(), Observed::Fail)];
            let mut attempts = vec![0u32; history.len()];
            attempts[history.tip()] = 1;
            let mut log = Vec::new();
            let found = loop {
                match finder.next(&obs, &[], 1) {
                    Step::Test(b) => {
                        for c in b {
                            let r = w.result(&history, c, attempts[c]);
                            attempts[c] += 1;
                            log.push((c, r));
                            obs.push((c, r));
                        }
                    }
                    Step::Wait => break None,
                    Step::Done(f) => break Some(f),
                }
            };
            let ok = matches!(&found, Some(Found::Culprit{commit,..}) if *commit == w.culprit);
            if !ok && shown < 3 {
                shown += 1;
                eprintln!(
                    "seed {seed} culprit {} fixed {:?} held {:?} found {:?}",
                    w.culprit, w.fixed, reused.held, found
                );
                eprintln!(
                    "  {:?}",
                    log.iter()
                        .map(|(c, r)| format!(
                            "{c}{}",
                            if *r == Observed::Pass { "+" } else { "-" }
                        ))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
    }
}
