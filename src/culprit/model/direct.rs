//! The direct computation of the posterior, one rate at a time and one commit at a time, that
//! the fast one in `model.rs` must agree with: the tests' reference, nothing else uses it.

use super::*;

/// The state of the first-parent line at one commit: good, inside an earlier bug begun at an
/// ordinary commit, or inside one begun at a blamed commit (fixed at its own, slower rate).
#[derive(Clone, Copy, Debug)]
struct Chain {
    good: f64,
    bad: f64,
    bad_blamed: f64,
}

impl Chain {
    /// Below the range: the base is good.
    fn start() -> Chain {
        Chain {
            good: 1.0,
            bad: 0.0,
            bad_blamed: 0.0,
        }
    }

    /// Onto the next line commit, weighing its runs (in the good and the bad state; `Some`
    /// in `only_good` rules the bad state out), kept scaled to 1 with the log in `scale`.
    fn forward(
        self,
        scale: f64,
        (blamed, fix_blamed): (bool, f64),
        weights: Option<(Lik, Lik)>,
        only_good: Option<()>,
    ) -> (Chain, f64) {
        let mut next = self.step(blamed, fix_blamed);
        if only_good.is_some() {
            next.bad = 0.0;
            next.bad_blamed = 0.0;
        }
        let Some((good, bad)) = weights else {
            return (next, scale);
        };
        next.good *= good.linear();
        next.bad *= bad.linear();
        next.bad_blamed *= bad.linear();
        let total = next.good + next.bad + next.bad_blamed;
        if total > 0.0 {
            next.good /= total;
            next.bad /= total;
            next.bad_blamed /= total;
            (next, scale + total.ln())
        } else {
            (next, scale)
        }
    }

    /// Onto the next commit of the line.
    fn step(self, blamed: bool, fix_blamed: f64) -> Chain {
        let onset_blamed = if blamed { ONSET_BLAMED } else { 0.0 };
        Chain {
            good: self.good * (1.0 - ONSET - onset_blamed)
                + self.bad * FIX
                + self.bad_blamed * fix_blamed,
            bad: self.good * ONSET + self.bad * (1.0 - FIX),
            bad_blamed: self.good * onset_blamed + self.bad_blamed * (1.0 - fix_blamed),
        }
    }
}

/// The likelihood of every hypothesis (each commit as the culprit, then "no culprit") at one
/// flake rate, each as a `Lik` times a factor of about 1 (the chain's share), so that
/// hypotheses between two run commits share their `Lik` and cost no logarithm.
///
/// Along the first-parent line the commits below the culprit follow the chain (good, or inside
/// an earlier bug that a later commit fixed); a merged commit shares the state of the line
/// commit it forked from, and may besides be bad on its own (rarely; often, above a blamed
/// commit).
pub(super) fn likelihoods(
    history: &History,
    layout: &Layout,
    tallies: &[Tally],
    f: f64,
) -> Vec<(Lik, f64)> {
    let n = history.len();
    let own_onset = |x: usize| {
        if layout.blamed_below[x] {
            ONSET_BLAMED
        } else {
            ONSET
        }
    };
    // A merged commit whose line state is good: good, or bad on its own.
    let good_or_own_bug = |x: usize| {
        let onset = own_onset(x);
        Lik::of_linear(
            (1.0 - onset) * if_good(&tallies[x], f).linear() + onset * if_bad(&tallies[x]).linear(),
        )
    };
    let base = layout
        .forked_at_base
        .iter()
        .fold(Lik::default(), |acc, &x| acc + good_or_own_bug(x));
    // What the runs at each line commit weigh in the chain's good and bad states (a merged
    // commit shares the state of the line commit it forked from).
    let line = &layout.main;
    let weights: Vec<Option<(Lik, Lik)>> = line
        .iter()
        .map(|&m| {
            let runs = &layout.forked_at[m];
            if tallies[m].passes + tallies[m].fails == 0 && runs.is_empty() {
                return None;
            }
            let mut good = if_good(&tallies[m], f);
            let mut bad = if_bad(&tallies[m]);
            for &x in runs {
                good = good + good_or_own_bug(x);
                bad = bad + if_bad(&tallies[x]);
            }
            Some((good, bad))
        })
        .collect();
    // The chain's forward pass. The hypothesis says the first parent is good, so what is kept
    // is the likelihood given that (divided by the chain's prior of it): otherwise older
    // culprits would gain merely from having fewer commits below them where an earlier bug
    // could hide. The chain's mass is kept scaled to 1 and its log carried apart, so long
    // ranges neither underflow nor pay a logarithm per commit.
    let mut after: Vec<(Chain, f64)> = Vec::with_capacity(line.len());
    let mut prior_good: Vec<f64> = Vec::with_capacity(line.len() + 1);
    let (mut chain, mut scale) = (Chain::start(), 0.0);
    let mut prior = Chain::start();
    for (i, &weight) in weights.iter().enumerate() {
        let mark = (layout.blamed_line[i], layout.fix_blamed(i));
        prior_good.push(prior.good);
        prior = prior.step(mark.0, mark.1);
        (chain, scale) = chain.forward(scale, mark, weight, None);
        after.push((chain, scale));
    }
    prior_good.push(prior.good);
    // Below line position i, with its first parent good: (log, share).
    let below = |i: usize| {
        let (chain, scale) = i.checked_sub(1).map_or((Chain::start(), 0.0), |j| after[j]);
        (scale, chain.good / prior_good[i])
    };
    let none = {
        let (chain, scale) = after[line.len() - 1];
        (scale, chain.good / prior_good[line.len()])
    };
    let scaled = |(log, share): (f64, f64)| (base + Lik { zeros: 0, log }, share);
    let mut out: Vec<(Lik, f64)> = (0..n)
        .map(|c| {
            let m = layout.merged_at[c];
            let i = layout.line_index[m];
            if layout.on_main[c] {
                let (mut l, share) = scaled(below(i));
                if layout.pass_reaches.is_some_and(|p| p >= m) {
                    l.zeros += 1;
                }
                return (l, share);
            }
            // A merged commit: its descendants that forked below the merge are bad, and its
            // merged parents good, where the chain weighed them as neither; run the chain
            // again from the first such line commit to the merge.
            let mut changes: Vec<(usize, Lik, bool)> = Vec::new();
            let mut at_base = Lik::default();
            let mut change = |fork: Option<usize>, by: Lik, must_be_good: bool| match fork {
                // The base is good.
                None => at_base = at_base + by,
                Some(at) => changes.push((layout.line_index[at], by, must_be_good)),
            };
            for &x in &layout.early_descendants[c] {
                change(
                    layout.fork[x],
                    if_bad(&tallies[x]) - good_or_own_bug(x),
                    false,
                );
            }
            for p in history.parents(c).filter(|&p| !layout.on_main[p]) {
                if tallies[p].passes + tallies[p].fails > 0 && layout.fork[p] < Some(m) {
                    change(
                        layout.fork[p],
                        if_good(&tallies[p], f) - good_or_own_bug(p),
                        true,
                    );
                }
            }
            changes.sort_by_key(|c| c.0);
            let (mut l, share) = match changes.first() {
                None => scaled(below(i)),
                Some(&(from, _, _)) => {
                    let (mut chain, mut scale) = from
                        .checked_sub(1)
                        .map_or((Chain::start(), 0.0), |j| after[j]);
                    let mut pending = changes.iter().peekable();
                    for (j, weight) in weights.iter().enumerate().take(i).skip(from) {
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
                        let weight = weight.map(|(g, b)| (g + by, b));
                        let weight = weight.or(Some((by, Lik::default())));
                        (chain, scale) = chain.forward(
                            scale,
                            (layout.blamed_line[j], layout.fix_blamed(j)),
                            weight,
                            must_be_good.then_some(()),
                        );
                    }
                    scaled((scale, chain.good / prior_good[i]))
                }
            };
            l = l + at_base;
            if layout.pass_reaches.is_some_and(|p| p >= m) {
                l.zeros += 1;
            }
            (l, share)
        })
        .collect();
    out.push(scaled(none));
    out
}

pub(super) fn compute(history: &History, tallies: &[Tally], model: &Model) -> Option<Posterior> {
    let n = history.len();
    let culprit_prior = model.culprit_prior(n);
    let none_prior = model.prior_none.ln();
    let mut per_rate: Vec<(f64, Vec<(Lik, f64)>)> = Vec::with_capacity(model.rates.len());
    // The largest log: shares stay within a few times 1, so every weight stays in range.
    let mut top = f64::NEG_INFINITY;
    let layout = Layout::of(history, tallies, model);
    for &(f, w) in &model.rates {
        let mut liks = likelihoods(history, &layout, tallies, f);
        for (h, (l, share)) in liks.iter_mut().enumerate() {
            l.log += w.ln()
                + if h < n {
                    culprit_prior[h].ln()
                } else {
                    none_prior
                };
            if l.zeros == 0 && *share > 0.0 && l.log.is_finite() {
                top = top.max(l.log);
            }
        }
        per_rate.push((f, liks));
    }
    if !top.is_finite() {
        return None;
    }
    let weigh = |exact: bool, top: f64| {
        let mut weights = vec![0.0; n + 1];
        let mut rate_sum = 0.0;
        for (f, liks) in &per_rate {
            let mut last = (f64::NAN, 0.0);
            for (h, (l, share)) in liks.iter().enumerate() {
                if l.zeros > 0 || *share <= 0.0 {
                    continue;
                }
                let w = if exact {
                    // Tiny shares everywhere: fold each into its log before scaling.
                    (l.log + share.ln() - top).exp()
                } else if l.log == last.0 {
                    last.1 * share
                } else {
                    last = (l.log, (l.log - top).exp());
                    last.1 * share
                };
                weights[h] += w;
                rate_sum += f * w;
            }
        }
        (weights, rate_sum)
    };
    let (mut weights, mut rate_sum) = weigh(false, top);
    let total: f64 = weights.iter().sum();
    if total.is_nan() || total <= 1e-250 {
        let best = per_rate
            .iter()
            .flat_map(|(_, liks)| liks.iter())
            .filter(|(l, share)| l.zeros == 0 && *share > 0.0)
            .map(|(l, share)| l.log + share.ln())
            .fold(f64::NEG_INFINITY, f64::max);
        if !best.is_finite() {
            return None;
        }
        (weights, rate_sum) = weigh(true, best);
    }
    Posterior::normalized(&weights, rate_sum)
}

/// The chance each commit of a linear history is bad, by enumerating every hypothesis (each
/// commit as the culprit, or none) with every sequence of the line's states below it: what
/// the culprit's posterior and `Evidence::bad_below_culprit` together must give. Only for a
/// handful of commits (`3^n` sequences).
pub(super) fn bad_by_enumeration(
    history: &History,
    tallies: &[Tally],
    model: &Model,
    f: f64,
) -> Vec<f64> {
    let n = history.len();
    let layout = Layout::of(history, tallies, model);
    let t: Vec<Mat> = (0..n)
        .map(|i| transition(layout.blamed_line[i], layout.fix_blamed(i)))
        .collect();
    let good: Vec<f64> = (0..n).map(|i| if_good(&tallies[i], f).linear()).collect();
    let bad: Vec<f64> = (0..n).map(|i| if_bad(&tallies[i]).linear()).collect();
    let culprit_prior = model.culprit_prior(n);
    // The chain's prior chance that position i is good, and below position 0 (the base).
    let mut prior = START;
    let mut prior_good = Vec::with_capacity(n);
    for m in &t {
        prior = apply(m, prior);
        prior_good.push(prior[0]);
    }
    let (mut total, mut bad_weight) = (0.0, vec![0.0; n]);
    // The hypothesis: the culprit at `j` (`n` for none).
    for j in 0..=n {
        let below = j.min(n);
        for code in 0..3usize.pow(below as u32) {
            let states: Vec<usize> = (0..below)
                .map(|i| code / 3usize.pow(i as u32) % 3)
                .collect();
            let (mut w, mut last) = (1.0, 0);
            for (i, &s) in states.iter().enumerate() {
                w *= t[i][s][last] * if s == 0 { good[i] } else { bad[i] };
                last = s;
            }
            // The culprit's parent, or the tip when there is none, is good.
            if below > 0 && last != 0 {
                continue;
            }
            w *= if j == n {
                model.prior_none / prior_good[n - 1]
            } else if j == 0 {
                culprit_prior[j]
            } else {
                culprit_prior[j] / prior_good[j - 1]
            };
            w *= (j..n).map(|i| bad[i]).product::<f64>();
            total += w;
            for x in 0..n {
                if x >= j || states[x] != 0 {
                    bad_weight[x] += w;
                }
            }
        }
    }
    bad_weight.iter().map(|b| b / total).collect()
}

mod agreement {
    use proptest::prelude::*;

    use super::super::super::strategies::dag;
    use super::super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The fast computation (commits nobody ran weighed for all rates at once) gives what
        /// the direct one (every rate, every commit) gives.
        #[test]
        fn the_fast_posterior_is_the_direct_one(
            h in dag(2..41),
            runs in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![Observed::Pass, Observed::Fail, Observed::Fail, Observed::Untestable])), 0..30),
            blamed in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
            held in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
            told in prop::sample::select(vec![None, Some(0.0), Some(0.1)]),
        ) {
            let n = h.len();
            let mut obs: Vec<(usize, Observed)> = vec![(h.tip(), Observed::Fail)];
            obs.extend(runs.iter().map(|(c, o)| (c.index(n), *o)));
            let tallies = tally(n, &obs);
            let mut model = match told {
                Some(f) => Model::told(f, 0.5),
                None => Model::inferred(FlakeHistory::default(), 0.5),
            };
            model.blamed = (0..n).map(|c| blamed.iter().any(|b| b.index(n) == c)).collect();
            model.held = (0..n).map(|c| held.iter().any(|b| b.index(n) == c)).collect();
            let fast = Posterior::compute(&h, &tallies, &model);
            let slow = super::compute(&h, &tallies, &model);
            match (fast, slow) {
                (None, None) => {}
                (Some(a), Some(b)) => {
                    for (x, y) in a.mass.iter().chain([&a.none]).zip(b.mass.iter().chain([&b.none])) {
                        prop_assert!((x - y).abs() < 1e-6, "{:?}\n{:?}", a, b);
                    }
                    prop_assert!((a.flake_rate - b.flake_rate).abs() < 1e-6);
                }
                (a, b) => prop_assert!(false, "fast {:?}, direct {:?}", a, b),
            }
        }

        /// On a short line, the chance a commit is bad from the culprit's posterior and the
        /// chain's forward-backward is what enumerating every hypothesis gives.
        #[test]
        fn the_chance_a_commit_is_bad_is_the_enumerated_one(
            n in 1usize..7,
            runs in proptest::collection::vec((any::<prop::sample::Index>(), prop::sample::select(vec![Observed::Pass, Observed::Fail, Observed::Fail])), 0..10),
            blamed in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
            held in proptest::collection::vec(any::<prop::sample::Index>(), 0..2),
            f in prop::sample::select(vec![0.0, 0.1, 0.3]),
        ) {
            let h = History::linear(n).unwrap();
            let mut obs: Vec<(usize, Observed)> = vec![(h.tip(), Observed::Fail)];
            obs.extend(runs.iter().map(|(c, o)| (c.index(n), *o)));
            let tallies = tally(n, &obs);
            let mut model = Model::told(f, 0.5);
            model.blamed = (0..n).map(|c| blamed.iter().any(|b| b.index(n) == c)).collect();
            model.held = (0..n).map(|c| held.iter().any(|b| b.index(n) == c)).collect();
            let Some(post) = Posterior::compute(&h, &tallies, &model) else {
                return Ok(());
            };
            let culprit = post.bad_probability(&h);
            let own = Evidence::of(&h, &tallies, &model).bad_below_culprit(&post, &culprit);
            let want = super::bad_by_enumeration(&h, &tallies, &model, f);
            for x in 0..n {
                let got = culprit[x] + (1.0 - culprit[x]) * own[x].map_or(f64::NAN, |b| b.own);
                prop_assert!((got - want[x]).abs() < 1e-9, "commit {x}: {got} against {want:?}");
            }
        }
    }
}
