//! The belief about where the culprit is: a posterior over "commit c is the culprit" for every
//! candidate, plus "there is no culprit" (the failures were flakes).
//!
//! Results go through a flaky-fail channel: a bad commit always fails; a good commit fails with
//! probability `f`. So a pass proves every ancestor good, and a fail is weak evidence when `f` is
//! large. Likelihoods are kept as (number of zero factors, log of the rest), so that `f = 0` is
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

/// The posterior after a set of results.
#[derive(Clone, Debug)]
pub struct Posterior {
    /// Probability that each commit is the culprit; these and `none` sum to 1.
    pub mass: Vec<f64>,
    /// Probability that there is no culprit: every failure was a flake.
    pub none: f64,
}

impl Posterior {
    /// Computes the posterior, or `None` when no hypothesis explains the results at all (a
    /// commit passed although an ancestor failed, and flakes are ruled out).
    ///
    /// `prior_none` is the prior probability that the range has no culprit, before any result
    /// (the tip's failure included); the rest is spread evenly over the commits.
    pub fn compute(
        history: &History,
        tallies: &[Tally],
        flake_rate: f64,
        prior_none: f64,
    ) -> Option<Posterior> {
        let n = history.len();
        let observed: Vec<usize> = (0..n)
            .filter(|&c| tallies[c].passes + tallies[c].fails > 0)
            .collect();
        // The likelihood of everything if all commits are good, and per observed commit the
        // change if it is bad instead.
        let mut all_good = Lik::default();
        let mut delta = vec![Lik::default(); n];
        for &x in &observed {
            let good = if_good(&tallies[x], flake_rate);
            all_good = all_good + good;
            delta[x] = if_bad(&tallies[x]) - good;
        }
        // Hypothesis c makes exactly c's descendants bad: its likelihood is `all_good` plus the
        // deltas of its observed descendants. Walk from the tip down; a commit with one child
        // adds its own delta to the child's sum, a fork point sums its descendants directly.
        let mut sum = vec![Lik::default(); n];
        for c in (0..n).rev() {
            sum[c] = match history.children(c) {
                [] => delta[c],
                [only] => sum[*only as usize] + delta[c],
                _ => observed
                    .iter()
                    .filter(|&&x| history.is_ancestor(c, x))
                    .fold(Lik::default(), |acc, &x| acc + delta[x]),
            };
        }
        let per_commit = ((1.0 - prior_none) / n as f64).ln();
        let none_prior = prior_none.ln();
        let hyp = |c: Option<usize>| -> Lik {
            let (lik, prior) = match c {
                Some(c) => (all_good + sum[c], per_commit),
                None => (all_good, none_prior),
            };
            Lik {
                zeros: lik.zeros,
                log: lik.log + prior,
            }
        };
        let all: Vec<Lik> = (0..n).map(Some).chain([None]).map(hyp).collect();
        let best_zeros = all.iter().map(|l| l.zeros).min()?;
        if best_zeros > 0 {
            return None;
        }
        let top = all
            .iter()
            .filter(|l| l.zeros == 0 && l.log.is_finite())
            .map(|l| l.log)
            .fold(f64::NEG_INFINITY, f64::max);
        if !top.is_finite() {
            return None;
        }
        let weights: Vec<f64> = all
            .iter()
            .map(|l| {
                if l.zeros == 0 {
                    (l.log - top).exp()
                } else {
                    0.0
                }
            })
            .collect();
        let total: f64 = weights.iter().sum();
        let mut mass: Vec<f64> = weights.iter().map(|w| w / total).collect();
        let none = mass.pop().unwrap_or(0.0);
        Some(Posterior { mass, none })
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

/// A flake rate from results: among runs of commits known to be good (they, or a descendant,
/// passed), the share that failed, pulled towards a prior of 1% so that a handful of runs
/// neither proves the test perfect nor condemns it.
pub fn estimate_flake_rate(history: &History, tallies: &[Tally]) -> f64 {
    let passed: Vec<usize> = (0..history.len())
        .filter(|&c| tallies[c].passes > 0)
        .collect();
    let (mut runs, mut fails) = (0u64, 0u64);
    for (c, t) in tallies.iter().enumerate() {
        if passed.iter().any(|&p| history.is_ancestor(c, p)) {
            runs += u64::from(t.passes + t.fails);
            fails += u64::from(t.fails);
        }
    }
    flake_rate_from_counts(runs, fails)
}

/// The smoothed estimate from runs of known-good commits and how many of them failed.
pub fn flake_rate_from_counts(runs: u64, fails: u64) -> f64 {
    const PRIOR_FAILS: f64 = 1.0;
    const PRIOR_RUNS: f64 = 100.0;
    ((fails as f64 + PRIOR_FAILS) / (runs as f64 + PRIOR_RUNS)).clamp(1e-4, MAX_FLAKE_RATE)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn post(h: &History, obs: &[(usize, Observed)], f: f64) -> Option<Posterior> {
        Posterior::compute(h, &tally(h.len(), obs), f, 0.5)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_pass_rules_out_every_ancestor_and_a_fail_without_flakes_everything_else() {
        let h = History::linear(8).unwrap();
        let p = post(&h, &[(7, Observed::Fail), (3, Observed::Pass)], 0.0).unwrap();
        assert!(p.mass[..=3].iter().all(|&m| m == 0.0));
        assert!(p.mass[4..].iter().all(|&m| close(m, 0.25)));
        assert_eq!(p.none, 0.0);
        let p = post(&h, &[(7, Observed::Fail), (5, Observed::Fail)], 0.0).unwrap();
        assert!(p.mass[6..].iter().all(|&m| m == 0.0));
        assert!(close(p.mass[0], 1.0 / 6.0));
    }

    #[test]
    fn with_flakes_a_fail_only_tilts_the_odds() {
        let h = History::linear(4).unwrap();
        let p = post(&h, &[(3, Observed::Fail), (1, Observed::Fail)], 0.1).unwrap();
        // Commits 0 and 1 explain both fails; 2 and 3 need commit 1's fail to be a flake; "no
        // culprit" needs both to be flakes.
        let (a, b) = (p.mass[0], p.mass[2]);
        assert!(close(p.mass[1], a) && close(p.mass[3], b));
        assert!(close(b / a, 0.1));
        assert!(close(p.none / a, 4.0 * 0.01));
    }

    #[test]
    fn merges_make_both_branches_bad() {
        // 0 - 1 - 4 - 5 with 2 - 3 merged at 4.
        let h = History::new(vec![vec![], vec![0], vec![0], vec![2], vec![1, 3], vec![4]]).unwrap();
        let p = post(&h, &[(5, Observed::Fail), (1, Observed::Pass)], 0.0).unwrap();
        assert!(p.mass[0] == 0.0 && p.mass[1] == 0.0);
        assert!(close(p.mass[3], 0.25));
        let bad = p.bad_probability(&h);
        assert!(close(bad[3], 0.5) && close(bad[4], 0.75) && close(bad[5], 1.0));
        assert!(close(bad[1], 0.0));
        // Passes on both sides and a fail at the merge leave the merge itself.
        let p = post(
            &h,
            &[
                (5, Observed::Fail),
                (1, Observed::Pass),
                (3, Observed::Pass),
                (4, Observed::Fail),
            ],
            0.0,
        )
        .unwrap();
        assert_eq!(p.top(), (Some(4), 1.0));
    }

    #[test]
    fn contradictions_without_flakes_have_no_posterior() {
        let h = History::linear(5).unwrap();
        assert!(post(
            &h,
            &[
                (4, Observed::Fail),
                (2, Observed::Fail),
                (3, Observed::Pass)
            ],
            0.0
        )
        .is_none());
        assert!(post(
            &h,
            &[
                (4, Observed::Fail),
                (2, Observed::Fail),
                (3, Observed::Pass)
            ],
            0.05
        )
        .is_some());
    }

    #[test]
    fn untestable_results_change_nothing() {
        let h = History::linear(6).unwrap();
        let a = post(&h, &[(5, Observed::Fail)], 0.05).unwrap();
        let b = post(&h, &[(5, Observed::Fail), (2, Observed::Untestable)], 0.05).unwrap();
        assert_eq!(a.mass, b.mass);
    }

    #[test]
    fn flake_rate_estimate_counts_only_known_good_commits() {
        let h = History::linear(10).unwrap();
        let t = tally(
            10,
            &[
                (4, Observed::Pass),
                (4, Observed::Fail),
                (2, Observed::Fail),
                (9, Observed::Fail),
                (9, Observed::Fail),
            ],
        );
        // Known good: 0..=4 (4 passed). Runs there: 3, fails 2. Commit 9 does not count.
        assert!(close(estimate_flake_rate(&h, &t), 3.0 / 103.0));
        assert!(close(flake_rate_from_counts(0, 0), 0.01));
    }

    #[test]
    fn capacity_of_the_z_channel() {
        assert_eq!(z_channel_capacity(0.0), 1.0);
        assert!((z_channel_capacity(0.1) - 0.7628).abs() < 1e-3);
        assert!((z_channel_capacity(0.5) - 0.3219).abs() < 1e-3);
    }
}
