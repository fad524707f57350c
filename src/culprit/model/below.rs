//! Where an earlier, fixed bug lasts: the line's chain run forward from the base and backward
//! from the tip, for a search choosing what to run next.

use super::{apply, line_weights, transition, Evidence, Posterior, State, FIX_BLAMED, START};

/// How likely a commit is bad although the culprit is not among its ancestors, as
/// [`Evidence::bad_below_culprit`] works it out, all given that.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Below {
    /// The chance it is bad: inside an earlier bug that a later commit fixed.
    pub own: f64,
    /// The chance the culprit (or none) lies beyond the next commit of the line with runs
    /// above it: then whether it is bad hardly depends on which commit the culprit is...
    pub far: f64,
    /// ...and this is the chance it is bad then. Nearer culprits, or merged ones, decide it.
    pub far_bad: f64,
}

impl Evidence<'_> {
    /// For each commit, how likely it is bad although the culprit is not among its ancestors
    /// (it lies inside an earlier bug that a later commit fixed), given every result: the chain
    /// run forward from the base to it and backward from the tip (forward-backward), over the
    /// hypotheses that put the culprit above it or find none; and how much of that depends on
    /// which commit the culprit is (see [`Below`]). A merged commit shares the state of the
    /// line commit it forked from. Under a merged culprit (which the chain does not weigh
    /// here) a commit that shares its parents' state is good, any other is as under the
    /// line's culprits.
    /// `None` for one forked below the range.
    ///
    /// A search asks this of commits it could run next: how likely one fails again depends on
    /// where the earlier bug ended, which the posterior over culprits alone does not say. It
    /// only steers the search, so it is worked out at one flake rate (the posterior's mean),
    /// not mixed over all of them as the stated probabilities are; and culprits on merged
    /// branches are left out of the backward sum (they weigh the line below them as a line
    /// culprit at their merge would).
    ///
    /// `post` is this evidence's posterior and `bad` its [`Posterior::bad_probability`], which
    /// the search has worked out already.
    pub fn bad_below_culprit(&self, post: &Posterior, bad: &[f64]) -> Vec<Option<Below>> {
        let (history, tallies, model) = (self.history, self.tallies, self.model);
        let (layout, plan) = (&self.layout, &self.plan);
        let f = post.flake_rate;
        let n = history.len();
        let line = layout.main.len();
        if line == 0 {
            return vec![None; n];
        }
        // Most positions share one of four transitions, made once: the range may be long, and
        // only the few commits just above a blaming flight's tip have one of their own.
        let kinds =
            [false, true].map(|blamed| [0.0, FIX_BLAMED].map(|fix| transition(blamed, fix)));
        let transition_at = |i: usize| {
            let (blamed, fix) = (layout.blamed_line[i], layout.fix_blamed(i));
            if fix == FIX_BLAMED {
                kinds[usize::from(blamed)][1]
            } else if fix == 0.0 {
                kinds[usize::from(blamed)][0]
            } else {
                transition(blamed, fix)
            }
        };
        // What each position's runs weigh in the good and the bad state (1 where none ran).
        let mut weights = vec![(1.0, 1.0); line];
        for &i in &plan.runs {
            let (good, bad) = line_weights(layout, tallies, layout.main[i], f);
            weights[i] = (good.linear(), bad.linear());
        }
        // A line culprit at position i needs no pass at or above it.
        let first_possible = layout.pass_reaches.map_or(0, |p| layout.line_index[p] + 1);
        let culprit_prior = model.culprit_prior(n);
        // Forward: the state of each position given the results up to it, scaled to 1.
        let mut forward = Vec::with_capacity(line);
        let mut state = START;
        for (i, &(good, bad)) in weights.iter().enumerate() {
            let s = apply(&transition_at(i), state);
            let s = [s[0] * good, s[1] * bad, s[2] * bad];
            let total = s[0] + s[1] + s[2];
            state = if total > 0.0 {
                s.map(|x| x / total)
            } else {
                [0.0; 3]
            };
            forward.push(state);
        }
        // Backward: the weight of the results above a position and of the hypotheses there (a
        // culprit above, or none), per state of the position, in units of `exp(scale)`; the
        // scale moves only when the weights leave a safe range, so few logarithms are taken.
        let mut backward = vec![[0.0; 3]; line];
        let none = model.prior_none / plan.prior_good_end;
        let (mut scale, mut unit) = (0.0f64, 1.0f64);
        if none > 0.0 {
            backward[line - 1] = [1.0, 0.0, 0.0];
            scale = none.ln();
            unit = (-scale).exp();
        }
        for i in (0..line - 1).rev() {
            let above = backward[i + 1];
            let (good, bad) = weights[i + 1];
            let v = [above[0] * good, above[1] * bad, above[2] * bad];
            let t = transition_at(i + 1);
            let mut next = [0, 1, 2].map(|s| (0..3).map(|to| t[to][s] * v[to]).sum::<f64>());
            if i + 1 >= first_possible {
                next[0] += culprit_prior[layout.main[i + 1]] / plan.prior_good[i + 1] * unit;
            }
            let total: f64 = next.iter().sum();
            if total > 0.0 && !(1e-100..=1e100).contains(&total) {
                next = next.map(|x| x / total);
                scale += total.ln();
                unit = (-scale).exp();
            }
            backward[i] = next;
        }
        // The same message without the culprits up to the next position with runs: what the
        // results and hypotheses beyond it say, carried down through the commits nobody ran.
        let mut beyond = vec![[0.0; 3]; line];
        let mut next_run = vec![None; line];
        for i in (0..line - 1).rev() {
            let above = i + 1;
            let ran = plan.runs.binary_search(&above).is_ok();
            let v = if ran {
                let (good, bad) = weights[above];
                let b = backward[above];
                next_run[i] = Some(above);
                [b[0] * good, b[1] * bad, b[2] * bad]
            } else {
                next_run[i] = next_run[above];
                beyond[above]
            };
            let t = transition_at(above);
            let carried = [0, 1, 2].map(|s| (0..3).map(|to| t[to][s] * v[to]).sum::<f64>());
            let total: f64 = carried.iter().sum();
            if total > 0.0 {
                beyond[i] = carried.map(|x| x / total);
            }
        }
        let share_bad = |a: State, b: [f64; 3]| {
            let bad = a[1] * b[1] + a[2] * b[2];
            let whole = bad + a[0] * b[0];
            if whole > 0.0 {
                bad / whole
            } else {
                0.0
            }
        };
        // The mass of the line's culprits above each position, and of none.
        let mut line_above = vec![post.none; line];
        for i in (0..line - 1).rev() {
            line_above[i] = line_above[i + 1] + post.mass[layout.main[i + 1]];
        }
        // Under a merged culprit its parents are good, and with them the state of the line
        // commits they share: per line commit, the mass of the merged culprits that say so.
        let mut forced_good = vec![0.0; n];
        for c in (0..n).filter(|&c| !layout.on_main[c] && post.mass[c] > 0.0) {
            let mut forks: Vec<usize> = history.parents(c).filter_map(|p| layout.fork[p]).collect();
            forks.sort_unstable();
            forks.dedup();
            for m in forks {
                forced_good[m] += post.mass[c];
            }
        }
        (0..n)
            .map(|x| {
                let i = layout.line_index[layout.fork[x]?];
                let not_culprit = 1.0 - bad[x];
                if not_culprit <= 0.0 {
                    return Some(Below::default());
                }
                let share = |mass: f64| (mass / not_culprit).min(1.0);
                let good = share(forced_good[layout.main[i]]);
                let far = next_run[i].map_or(0.0, |r| share(line_above[r]));
                Some(Below {
                    own: share_bad(forward[i], backward[i]) * (1.0 - good),
                    far,
                    far_bad: share_bad(forward[i], beyond[i]),
                })
            })
            .collect()
    }
}
