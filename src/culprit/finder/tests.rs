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
                // As a gate's second flight: the earlier bug was blamed then, by a flight
                // just before the fix or long before it, on one host or several.
                for reused in [
                    Reused::blamed_fix(&h, &w),
                    Reused::blamed_long_before_fix(&h, &w),
                ] {
                    for k in [1, 2] {
                        let t = synthetic::simulate_reusing(&h, &w, exact(0.0), k, reused.clone());
                        assert_eq!(
                            t.found.culprit(),
                            Some(w.culprit),
                            "{shape:?} n={n} k={k} seed={seed} {:?} held {:?}: {:?}",
                            w.fixed,
                            reused.held,
                            t.found
                        );
                    }
                }
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
fn a_blamed_culprit_not_fixed_yet_is_named_again() {
    // The flight after a blocked one, nothing fixed: its culprit is the blamed commit, and
    // the search must not run out of runs looking for a fix in every gap above it. (A gate
    // searches its first-parent line.)
    for shape in [Shape::Linear] {
        for n in [16, 64, 256] {
            let h = synthetic::history(shape, n, n as u64).unwrap();
            for seed in 0..30 {
                let w = World::new(&h, 0.0, 0.0, seed);
                let reused = Reused::still_broken(&h, &w);
                for (k, f) in [(1, None), (2, Some(0.0)), (1, Some(0.1))] {
                    let settings = Settings {
                        flake_rate: f,
                        ..Settings::default()
                    };
                    let t = synthetic::simulate_reusing(&h, &w, settings, k, reused.clone());
                    assert_eq!(
                        t.found.culprit(),
                        Some(w.culprit),
                        "{shape:?} n={n} k={k} f={f:?} seed={seed} held {:?}: {:?}",
                        reused.held,
                        t.found
                    );
                }
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

/// Runs a search on one host from the tip's failure to its end, `result(commit, results so far)`
/// giving each run's result; the answer and this search's results.
fn search_one_at_a_time(
    finder: &CulpritFinder,
    mut result: impl FnMut(usize, &[(usize, Observed)]) -> Observed,
) -> (Found, Vec<(usize, Observed)>) {
    let mut own = vec![(finder.history().tip(), Observed::Fail)];
    loop {
        match finder.next(&own, &[], 1) {
            Step::Test(batch) => {
                for c in batch {
                    let r = result(c, &own);
                    own.push((c, r));
                }
            }
            Step::Done(found) => return (found, own),
            Step::Wait => panic!("waits on nothing: {own:?}"),
        }
    }
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
        let (found, own) = search_one_at_a_time(&finder, |c, own| {
            assert!(!(4..=10).contains(&c), "ran #{c}: {own:?}");
            if bad(c) {
                Observed::Fail
            } else {
                Observed::Pass
            }
        });
        assert_eq!(found.culprit(), Some(15), "{own:?}");
    }
}

#[test]
fn a_fix_just_above_the_blaming_tip_is_found_though_it_flaked() {
    // Blamed #0 failed up to the blaming flight's tip, #0 itself; #1 reverted it, #2 broke
    // the tip anew. #1's first run flaked. Where the blaming flight's tip is known, a fix
    // most often comes just above it: a uniform chance of a fix anywhere above made every
    // other gap as likely, and the search spent its whole budget on them and gave up.
    for settings in [exact(0.05), exact(0.1), Settings::default()] {
        let h = History::linear(64).unwrap();
        let earlier = vec![(0, Observed::Fail), (0, Observed::Fail)];
        let finder = CulpritFinder::new(&h, settings)
            .reusing(earlier, &[0])
            .held_to(&[0]);
        let (found, own) = search_one_at_a_time(&finder, |c, own| {
            let first_of_the_fix = c == 1 && !own.iter().any(|&(x, _)| x == 1);
            if c >= 2 || first_of_the_fix {
                Observed::Fail
            } else {
                Observed::Pass
            }
        });
        assert_eq!(found.culprit(), Some(2), "{settings:?}: {own:?}");
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
