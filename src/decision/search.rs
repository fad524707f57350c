//! The culprit search of a regressed flight: one search per regression, sharing every test;
//! what may be pushed once they end; the finder's log for the report.

use std::collections::BTreeSet;

use super::{
    concluded, judge, list, triage, Blame, Facts, Judged, Next, Observation, Outcome, Regressed,
    Role, Verdict,
};
use crate::culprit::{CulpritFinder, Found, History, Observed, Settings, Step};

/// One search: the regressed steps whose results agree on every commit tested, and those
/// results (earlier flights' apart, as evidence that never confirms).
struct Search {
    steps: BTreeSet<String>,
    earlier: Vec<(usize, Observed)>,
    own: Vec<(usize, Observed)>,
}

/// The results of one step for the finder (index `i` of the range is `i - 1`). A test whose
/// only failures are old ones (`allowed`) passed; one that failed elsewhere before reaching
/// the step leaves the commit untestable for this step (another regression hides it); a
/// broken test says nothing.
fn step_results(
    observations: &[Observation],
    n: usize,
    step: &str,
    allowed: &BTreeSet<String>,
) -> Vec<(usize, Observed)> {
    observations
        .iter()
        .filter(|o| o.index >= 1 && o.index <= n && o.role != Role::Baseline)
        .filter_map(|o| {
            let result = match &o.outcome {
                Outcome::Pass => Observed::Pass,
                Outcome::Fail { failed, .. } if failed.contains(step) => Observed::Fail,
                Outcome::Fail { passed, .. } if passed.contains(step) => Observed::Pass,
                Outcome::Fail { failed, .. } if failed.is_subset(allowed) => Observed::Pass,
                Outcome::Fail { .. } => Observed::Untestable,
                Outcome::Broken { .. } => return None,
            };
            Some((o.index - 1, result))
        })
        .collect()
}

/// One search per regression: steps that failed and passed on exactly the same tests are one
/// regression (most often, one commit broke them together); any other step gets its own.
fn searches(
    facts: &Facts,
    regressed: &BTreeSet<String>,
    allowed: &BTreeSet<String>,
) -> Vec<Search> {
    let mut out: Vec<Search> = Vec::new();
    for step in regressed {
        let earlier = step_results(facts.earlier, facts.n, step, allowed);
        let own = step_results(facts.observations, facts.n, step, allowed);
        match out
            .iter_mut()
            .find(|s| s.earlier == earlier && s.own == own)
        {
            Some(s) => {
                s.steps.insert(step.clone());
            }
            None => out.push(Search {
                steps: [step.clone()].into(),
                earlier,
                own,
            }),
        }
    }
    out
}

impl Search {
    fn finder<'h>(&self, history: &'h History, facts: &Facts) -> CulpritFinder<'h> {
        let blamed: Vec<usize> = facts
            .blamed
            .iter()
            .filter_map(|i| i.checked_sub(1))
            .collect();
        // The prior of the rate is these steps' own history, not the whole sequence's.
        let mut prior = facts.finder.flake_history;
        for step in &self.steps {
            if let Some(h) = facts.flake_histories.get(step) {
                prior.runs += h.runs;
                prior.fails += h.fails;
            }
        }
        let settings = Settings {
            flake_history: prior,
            ..facts.finder
        };
        let held: Vec<usize> = facts.held.iter().filter_map(|i| i.checked_sub(1)).collect();
        CulpritFinder::new(history, settings)
            .reusing(self.earlier.clone(), &blamed)
            .held_to(&held)
    }
}

/// Searches the range for the culprit of each regression, sharing every test among them.
pub(super) fn search(
    facts: &Facts,
    regressed: BTreeSet<String>,
    allowed: &BTreeSet<String>,
) -> Next {
    let n = facts.n;
    let history = match History::linear(n) {
        Ok(h) => h,
        Err(e) => {
            return concluded(
                Verdict::Broken,
                None,
                Vec::new(),
                regressed,
                format!("the range cannot be searched: {e}"),
            )
        }
    };
    let hosts = facts.finder.hosts.max(1);
    let searches = searches(facts, &regressed, allowed);
    let mut wanted: Vec<Vec<usize>> = Vec::new();
    let mut found: Vec<(BTreeSet<String>, Found)> = Vec::new();
    for s in &searches {
        match s.finder(&history, facts).next(&s.own, &[], hosts) {
            Step::Test(commits) => wanted.push(commits),
            // Nothing is pending between decisions, so the finder never waits; should it, the
            // search has nothing left to run and stops with what it has.
            Step::Wait => found.push((
                s.steps.clone(),
                Found::GaveUp {
                    suspect: None,
                    probability: 0.0,
                },
            )),
            Step::Done(f) => found.push((s.steps.clone(), f)),
        }
    }
    let gates = gating(facts, allowed, &found);
    let pushable = newest_pushable(facts, &gates);
    if wanted.is_empty() {
        if let Some(again) = push_candidate_again(facts, gates.1, pushable) {
            return Next::Test(vec![(again, Role::Bisect)]);
        }
        return conclude_searches(found, n, &regressed, pushable);
    }
    // The searches' wishes in turns, so that each gets its share of the hosts; repeats of one
    // commit wait for the next decision (two tests of one commit at once would share an
    // attempt number).
    let mut tests: Vec<usize> = Vec::new();
    for turn in 0.. {
        let mut any = false;
        for w in &wanted {
            if let Some(&c) = w.get(turn) {
                any = true;
                if tests.len() < hosts && !tests.contains(&c) {
                    tests.push(c);
                }
            }
        }
        if !any || tests.len() >= hosts {
            break;
        }
    }
    // A commit whose tests keep breaking cannot be judged: stop, and push only what is proven
    // good.
    if let Some((i, reason)) =
        tests
            .iter()
            .find_map(|&c| match judge(facts, c + 1, Role::Bisect, allowed) {
                Judged::Broken { reason } => Some((c + 1, reason)),
                _ => None,
            })
    {
        let reason = format!(
            "{} broke, but the search stopped: commit #{i} could not be tested \
             (infrastructure, not the commit): {reason}",
            list(&regressed)
        );
        return concluded(Verdict::Broken, pushable, Vec::new(), regressed, reason);
    }
    let mut tests: Vec<(usize, Role)> = tests.into_iter().map(|c| (c + 1, Role::Bisect)).collect();
    tests.sort_unstable();
    Next::Test(tests)
}

/// The newest commit that may become the target: tested (in this flight or an earlier one)
/// and passing every step that gates, below every culprit named. Steps whose failures the
/// searches found to be flakes do not gate.
fn newest_pushable(facts: &Facts, (ignored, below): &(BTreeSet<String>, usize)) -> Option<usize> {
    let below = *below;
    facts
        .earlier
        .iter()
        .chain(facts.observations)
        .filter(|o| o.index >= 1 && o.index < below && o.role != Role::Baseline)
        .filter(|o| match &o.outcome {
            Outcome::Pass => true,
            Outcome::Fail { failed, .. } => failed.is_subset(ignored),
            Outcome::Broken { .. } => false,
        })
        .map(|o| o.index)
        .max()
}

/// What the searches leave gating: the steps whose failures do not count (old ones, and those
/// found to be flakes), and the oldest culprit's index (`n + 1` for none).
fn gating(
    facts: &Facts,
    allowed: &BTreeSet<String>,
    found: &[(BTreeSet<String>, Found)],
) -> (BTreeSet<String>, usize) {
    let mut ignored = allowed.clone();
    let mut below = facts.n + 1;
    for (steps, f) in found {
        match f {
            Found::NoCulprit { .. } => ignored.extend(steps.iter().cloned()),
            Found::Culprit { commit, .. } => below = below.min(commit + 1),
            Found::OneOf { commits, .. } => {
                below = below.min(commits.iter().min().map_or(below, |c| c + 1))
            }
            Found::Inconsistent { .. } | Found::GaveUp { .. } => {}
        }
    }
    (ignored, below)
}

/// The commit just below the oldest culprit, when master could go there but does not because
/// each of its runs failed some other step, and it has had fewer than twice a failure's runs:
/// below every culprit such a failure is a flake, and it must not hold master back (with two
/// steps flaking at 10%, one run in five of that commit fails one of them).
fn push_candidate_again(facts: &Facts, below: usize, pushable: Option<usize>) -> Option<usize> {
    let candidate = below
        .checked_sub(1)
        .filter(|&c| c >= 1 && below <= facts.n)?;
    if pushable.is_some_and(|p| p >= candidate) {
        return None;
    }
    let runs = facts
        .observations
        .iter()
        .filter(|o| o.index == candidate && o.role == Role::Bisect)
        .count();
    // As the baseline: as many runs again as a failure gets, before master settles lower.
    (runs < 2 * (facts.retries as usize + 1)).then_some(candidate)
}

/// The conclusion once every search has ended.
fn conclude_searches(
    found: Vec<(BTreeSet<String>, Found)>,
    n: usize,
    regressed: &BTreeSet<String>,
    pushable: Option<usize>,
) -> Next {
    let mut culprits: Vec<Blame> = Vec::new();
    let mut sentences: Vec<String> = Vec::new();
    let mut flakes = true;
    for (steps, f) in &found {
        let broke = list(steps);
        flakes &= matches!(f, Found::NoCulprit { .. });
        sentences.push(match f {
            Found::Culprit {
                commit,
                probability,
            } => {
                culprits.push(Blame {
                    index: commit + 1,
                    steps: steps.clone(),
                    probability: *probability,
                });
                format!(
                    "{broke} broke: the first bad commit is #{} of {n} (probability {probability:.3})",
                    commit + 1
                )
            }
            Found::NoCulprit { probability } => format!(
                "the tip's failures of {broke} were flakes: no commit of the range is bad \
                 (probability {probability:.3})"
            ),
            Found::OneOf {
                commits,
                probability,
            } => {
                let names: Vec<String> = commits.iter().map(|c| format!("#{}", c + 1)).collect();
                format!(
                    "{broke} broke: the first bad commit is one of {} (probability {probability:.3})",
                    names.join(", ")
                )
            }
            Found::Inconsistent { bad, .. } => format!(
                "{broke} broke, but the results contradict each other: #{} both passed and \
                 failed although the test is taken not to flake",
                bad + 1
            ),
            Found::GaveUp {
                suspect,
                probability,
            } => match suspect {
                Some(c) => format!(
                    "{broke} broke; the search spent its budget of runs: the top suspect is #{} \
                     (probability {probability:.3})",
                    c + 1
                ),
                None => format!(
                    "{broke} broke; the search spent its budget of runs without a suspect"
                ),
            },
        });
    }
    culprits.sort_by_key(|b| b.index);
    if flakes {
        return concluded(
            Verdict::Flaky,
            Some(n),
            Vec::new(),
            regressed.clone(),
            format!("{}; not blocking", sentences.join("; ")),
        );
    }
    let pushed = match pushable {
        Some(i) => format!("pushed as far as #{i}, the newest commit that passed"),
        None => "nothing pushed: no commit of the range passed".to_string(),
    };
    concluded(
        Verdict::Regression,
        pushable,
        culprits,
        regressed.clone(),
        format!("{}; {pushed}", sentences.join("; ")),
    )
}

/// One line of the finder's log: a result, then the top suspect after it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FinderStep {
    /// The steps the search is for.
    pub search: String,
    /// Index into the range (1..=n).
    pub index: usize,
    pub result: Observed,
    /// Index of the most likely culprit after this result (`None`: no culprit).
    pub suspect: Option<usize>,
    pub probability: f64,
}

/// The finder's log of a flight: per search, this flight's results in order, each with the
/// standing after it.
pub fn finder_log(facts: &Facts) -> Vec<FinderStep> {
    let Ok(history) = History::linear(facts.n) else {
        return Vec::new();
    };
    let Ok(Regressed { steps, allowed, .. }) = triage(facts) else {
        return Vec::new();
    };
    let mut log = Vec::new();
    for s in searches(facts, &steps, &allowed) {
        let finder = s.finder(&history, facts);
        for i in 0..s.own.len() {
            if let Some(standing) = finder.standing(&s.own[..=i]) {
                log.push(FinderStep {
                    search: list(&s.steps),
                    index: s.own[i].0 + 1,
                    result: s.own[i].1,
                    suspect: standing.suspect.map(|c| c + 1),
                    probability: standing.probability,
                });
            }
        }
    }
    log
}
