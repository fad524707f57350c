use super::*;

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn fail(failed: &[&str], passed: &[&str]) -> Outcome {
    Outcome::Fail {
        failed: set(failed),
        passed: set(passed),
        not_started: BTreeSet::new(),
    }
}

/// Commit `i`'s result when each step breaks from its commit on.
fn broken_from(i: usize, steps: &[(&str, usize)]) -> Outcome {
    let (failed, passed): (Vec<_>, Vec<_>) = steps.iter().partition(|(_, from)| i >= *from);
    let names = |v: Vec<&(&str, usize)>| v.into_iter().map(|(s, _)| s.to_string()).collect();
    Outcome::of(names(failed), names(passed), BTreeSet::new())
}

/// A failure whose first step of `not_started` did not start.
fn not_started(failed: &[&str], not_started: &[&str]) -> Outcome {
    Outcome::Fail {
        failed: set(failed),
        passed: BTreeSet::new(),
        not_started: set(not_started),
    }
}

/// Drives `decide` to a conclusion, answering each test with `answer`, and returns the
/// decision and the tests made, in order. The finder trusts results (no flakes).
fn run(
    n: usize,
    retries: u32,
    ever_passed: &[&str],
    answer: impl FnMut(usize, Role, usize) -> Outcome,
) -> (Decision, Vec<(usize, Role)>) {
    run_with(n, retries, ever_passed, 0.0, 1, answer)
}

fn run_with(
    n: usize,
    retries: u32,
    ever_passed: &[&str],
    flake_rate: f64,
    hosts: usize,
    answer: impl FnMut(usize, Role, usize) -> Outcome,
) -> (Decision, Vec<(usize, Role)>) {
    run_after(
        n,
        retries,
        ever_passed,
        flake_rate,
        hosts,
        &Told::default(),
        answer,
    )
}

/// What earlier flights and the policy tell a flight.
#[derive(Default)]
struct Told {
    earlier: Vec<Observation>,
    blamed: Vec<usize>,
    never_passed_blocks: bool,
    flake_histories: BTreeMap<String, FlakeHistory>,
}

fn run_after(
    n: usize,
    retries: u32,
    ever_passed: &[&str],
    flake_rate: f64,
    hosts: usize,
    told: &Told,
    mut answer: impl FnMut(usize, Role, usize) -> Outcome,
) -> (Decision, Vec<(usize, Role)>) {
    let ever = set(ever_passed);
    let mut obs: Vec<Observation> = Vec::new();
    loop {
        let facts = Facts {
            n,
            retries,
            observations: &obs,
            ever_passed: &ever,
            earlier: &told.earlier,
            blamed: &told.blamed,
            held: &[],
            never_passed_blocks: told.never_passed_blocks,
            flake_histories: &told.flake_histories,
            finder: Settings {
                flake_rate: Some(flake_rate),
                hosts,
                ..Settings::default()
            },
        };
        match decide(&facts) {
            Next::Test(tests) => {
                assert!(!tests.is_empty() && tests.len() <= hosts);
                for (index, role) in tests {
                    let attempt = obs
                        .iter()
                        .filter(|o| o.index == index && o.role == role)
                        .count();
                    assert!(obs.len() < 200, "no conclusion after 200 tests");
                    obs.push(Observation {
                        index,
                        role,
                        outcome: answer(index, role, attempt),
                    });
                }
            }
            Next::Conclude(d) => return (d, obs.iter().map(|o| (o.index, o.role)).collect()),
        }
    }
}

/// A range whose commit `culprit` breaks step `smoke/test`.
fn broken_at(culprit: usize) -> impl FnMut(usize, Role, usize) -> Outcome {
    move |i, _, _| {
        if i >= culprit {
            fail(&["smoke/test"], &["smoke/build"])
        } else {
            Outcome::Pass
        }
    }
}

#[test]
fn a_passing_tip_is_pushed_after_one_test() {
    let (d, tests) = run(20, 1, &[], |_, _, _| Outcome::Pass);
    assert_eq!(d.verdict, Verdict::Pass);
    assert_eq!(d.push_to, Some(20));
    assert_eq!(tests, vec![(20, Role::Tip)]);
}

#[test]
fn every_culprit_is_found_and_the_prefix_before_it_pushed() {
    for n in 1..=40 {
        for culprit in 1..=n {
            for retries in 0..=2 {
                let (d, tests) = run(n, retries, &[], broken_at(culprit));
                assert_eq!(d.verdict, Verdict::Regression, "n={n} c={culprit}");
                assert_eq!(d.culprit(), Some(culprit));
                let expect_push = (culprit > 1).then_some(culprit - 1);
                assert_eq!(d.push_to, expect_push, "n={n} c={culprit}");
                assert_eq!(d.steps, set(&["smoke/test"]));
                // The tip is retried; the search trusts its results (no flakes here), so it
                // needs no more probes than a binary search.
                let bisect_runs = tests.iter().filter(|t| t.1 == Role::Bisect).count() as u32;
                let bound = usize::BITS - (n - 1).leading_zeros();
                assert!(
                    bisect_runs <= bound,
                    "n={n} c={culprit}: {bisect_runs} > {bound}"
                );
                assert_eq!(
                    tests.iter().filter(|t| t.1 == Role::Tip).count() as u32,
                    retries + 1
                );
            }
        }
    }
}

#[test]
fn a_pass_on_retry_is_flaky_and_pushes() {
    let (d, tests) = run(5, 2, &[], |_, _, attempt| {
        if attempt == 0 {
            fail(&["smoke/test"], &[])
        } else {
            Outcome::Pass
        }
    });
    assert_eq!(d.verdict, Verdict::Flaky);
    assert_eq!(d.push_to, Some(5));
    assert_eq!(tests.len(), 2);
}

#[test]
fn a_failure_the_baseline_shares_does_not_block() {
    let (d, tests) = run(7, 1, &["smoke/test"], |_, _, _| {
        fail(&["smoke/test"], &["smoke/build"])
    });
    assert_eq!(d.verdict, Verdict::LikeBaseline);
    assert_eq!(d.push_to, Some(7));
    assert!(tests.iter().all(|t| t.1 != Role::Bisect));
    assert!(d.reason.contains("smoke/test"), "{}", d.reason);
}

#[test]
fn a_shared_failure_of_a_step_that_never_passed_is_never_passed() {
    let (d, _) = run(7, 0, &[], |_, _, _| fail(&["smoke/test"], &["smoke/build"]));
    assert_eq!(d.verdict, Verdict::NeverPassed);
    assert_eq!(d.push_to, Some(7));
}

#[test]
fn a_step_the_baseline_never_reached_and_that_never_passed_is_never_passed() {
    let (d, _) = run(3, 0, &[], |_, role, _| match role {
        Role::Baseline => fail(&["smoke/build"], &[]),
        _ => fail(&["smoke/test"], &["smoke/build"]),
    });
    assert_eq!(d.verdict, Verdict::NeverPassed);
    assert_eq!(d.push_to, Some(3));
}

#[test]
fn a_step_the_baseline_never_reached_but_that_passed_before_is_a_regression() {
    let (d, _) = run(3, 0, &["smoke/test"], |i, role, _| match (i, role) {
        (_, Role::Baseline) => fail(&["smoke/build"], &[]),
        (1, _) => fail(&["smoke/build"], &[]),
        _ => fail(&["smoke/test"], &["smoke/build"]),
    });
    assert_eq!(d.verdict, Verdict::Regression);
    // Commit 1 only shows the baseline's old failure, so it is good; 2 is the culprit.
    assert_eq!(d.culprit(), Some(2));
    assert_eq!(d.push_to, Some(1));
}

#[test]
fn old_failures_inside_the_range_do_not_hide_the_regression() {
    // The baseline fails `lint`; commit 4 breaks `test`. Commits that only fail lint are good.
    let (d, _) = run(9, 0, &[], |i, _, _| {
        if i >= 4 {
            fail(&["smoke/lint", "smoke/test"], &["smoke/build"])
        } else {
            fail(&["smoke/lint"], &["smoke/build", "smoke/test"])
        }
    });
    assert_eq!(d.verdict, Verdict::Regression);
    assert_eq!(d.culprit(), Some(4));
    assert_eq!(d.steps, set(&["smoke/test"]));
}

#[test]
fn a_broken_tip_is_never_blamed_and_never_pushed() {
    let (d, tests) = run(4, 1, &[], |_, _, _| Outcome::Broken {
        reason: "host down".into(),
    });
    assert_eq!(d.verdict, Verdict::Broken);
    assert_eq!(d.push_to, None);
    assert_eq!(d.culprit(), None);
    assert_eq!(tests.len(), 2);
    assert!(d.reason.contains("host down"));
}

#[test]
fn broken_then_pass_is_a_plain_pass() {
    let (d, _) = run(4, 1, &[], |_, _, attempt| {
        if attempt == 0 {
            Outcome::Broken {
                reason: "timeout connecting".into(),
            }
        } else {
            Outcome::Pass
        }
    });
    assert_eq!(d.verdict, Verdict::Pass);
}

#[test]
fn a_broken_bisection_pushes_only_what_it_proved_good() {
    // Culprit 12 of 16; the probes are 8 (good), then 12, which cannot be tested.
    let (d, _) = run(16, 0, &[], |i, role, _| {
        if role == Role::Bisect && i == 12 {
            Outcome::Broken {
                reason: "disk full".into(),
            }
        } else {
            broken_at(12)(i, role, 0)
        }
    });
    assert_eq!(d.verdict, Verdict::Broken);
    assert_eq!(d.culprit(), None);
    assert_eq!(d.push_to, Some(8));
}

#[test]
fn a_broken_baseline_blocks_without_blame() {
    let (d, _) = run(4, 0, &[], |_, role, _| match role {
        Role::Baseline => Outcome::Broken {
            reason: "no host".into(),
        },
        _ => fail(&["smoke/test"], &[]),
    });
    assert_eq!(d.verdict, Verdict::Broken);
    assert_eq!((d.push_to, d.culprit()), (None, None));
}

#[test]
fn a_sequence_whose_first_step_starts_on_neither_side_is_broken_not_let_through() {
    let (d, tests) = run(4, 0, &[], |_, _, _| {
        not_started(&["smoke/build", "smoke/test"], &["smoke/build"])
    });
    assert_eq!(
        (d.verdict, d.push_to, d.culprit()),
        (Verdict::Broken, None, None)
    );
    assert!(
        d.reason.contains("smoke/build did not start"),
        "{}",
        d.reason
    );
    assert_eq!(tests, vec![(4, Role::Tip), (0, Role::Baseline)]);
    // Even where the policy lets never-passed steps through, and the step passed before.
    let (d, _) = run(4, 0, &["smoke/build"], |_, _, _| {
        not_started(&["smoke/build"], &["smoke/build"])
    });
    assert_eq!(d.verdict, Verdict::Broken);
}

#[test]
fn a_first_step_that_stops_starting_in_the_range_is_a_regression() {
    // Commit 3 removed the script the sequence runs: the commit's fault, bisected as any.
    let (d, _) = run(4, 0, &[], |i, _, _| {
        if i >= 3 {
            not_started(&["smoke/build"], &["smoke/build"])
        } else {
            Outcome::Pass
        }
    });
    assert_eq!(
        (d.verdict, d.culprit(), d.push_to),
        (Verdict::Regression, Some(3), Some(2))
    );
    // A first step that did not start on the tip only, while the baseline fails it in
    // earnest, is an old failure as before.
    let (d, _) = run(4, 0, &[], |i, _, _| match i {
        0 => fail(&["smoke/build"], &[]),
        _ => not_started(&["smoke/build"], &["smoke/build"]),
    });
    assert_eq!(d.verdict, Verdict::NeverPassed);
}

#[test]
fn a_flaky_commit_in_the_range_is_judged_good() {
    // Commit 10 fails once, then passes: good. Culprit 15. The finder knows the test flakes.
    let (d, _) = run_with(20, 1, &[], 0.1, 1, |i, role, attempt| {
        if role == Role::Bisect && i == 10 && attempt == 0 {
            fail(&["smoke/test"], &[])
        } else {
            broken_at(15)(i, role, attempt)
        }
    });
    assert_eq!(d.culprit(), Some(15));
    assert_eq!(d.push_to, Some(14));
}

#[test]
fn several_hosts_search_at_once_and_earlier_flights_count() {
    let (d, tests) = run_with(64, 0, &[], 0.0, 4, broken_at(40));
    assert_eq!(d.culprit(), Some(40));
    let bisect = tests.iter().filter(|t| t.1 == Role::Bisect).count();
    assert!(bisect > 3, "{bisect} tests");

    // Results of an earlier flight at the same commits leave nothing to search but the
    // culprit and its parent, seen again in this flight.
    let ever = BTreeSet::new();
    let fail = fail(&["smoke/test"], &[]);
    let earlier: Vec<Observation> = [(39, Outcome::Pass), (40, fail.clone())]
        .into_iter()
        .map(|(index, outcome)| Observation {
            index,
            role: Role::Bisect,
            outcome,
        })
        .collect();
    let obs = vec![
        Observation {
            index: 64,
            role: Role::Tip,
            outcome: fail.clone(),
        },
        Observation {
            index: 0,
            role: Role::Baseline,
            outcome: Outcome::Pass,
        },
    ];
    let mut obs = obs;
    let settings = Settings {
        flake_rate: Some(0.0),
        hosts: 2,
        ..Settings::default()
    };
    static NONE: BTreeMap<String, FlakeHistory> = BTreeMap::new();
    fn facts<'a>(
        obs: &'a [Observation],
        ever: &'a BTreeSet<String>,
        earlier: &'a [Observation],
        finder: Settings,
    ) -> Facts<'a> {
        Facts {
            n: 64,
            retries: 0,
            observations: obs,
            ever_passed: ever,
            earlier,
            blamed: &[],
            held: &[],
            never_passed_blocks: false,
            flake_histories: &NONE,
            finder,
        }
    }
    match decide(&facts(&obs, &ever, &earlier, settings)) {
        Next::Test(t) => assert_eq!(t, vec![(39, Role::Bisect), (40, Role::Bisect)]),
        other => panic!("{other:?}"),
    }
    obs.extend([
        Observation {
            index: 39,
            role: Role::Bisect,
            outcome: Outcome::Pass,
        },
        Observation {
            index: 40,
            role: Role::Bisect,
            outcome: fail,
        },
    ]);
    match decide(&facts(&obs, &ever, &earlier, settings)) {
        Next::Conclude(d) => assert_eq!((d.culprit(), d.push_to), (Some(40), Some(39))),
        other => panic!("{other:?}"),
    }
    // The log shows this flight's results only, each with the standing after it.
    let log = finder_log(&facts(&obs, &ever, &earlier, settings));
    assert_eq!(log.len(), 3);
    assert_eq!((log[0].index, log[0].suspect), (64, Some(40)));
}

#[test]
fn after_a_revert_the_new_breaker_is_found_and_everything_before_it_pushed() {
    // Flight 1 blamed #3 (it failed, #2 passed). #5 reverted it; #9 broke the test anew.
    let bad = |i: usize| (3..5).contains(&i) || i >= 9;
    let answer = move |i: usize, _: Role, _: usize| {
        if bad(i) {
            fail(&["smoke/test"], &["smoke/build"])
        } else {
            Outcome::Pass
        }
    };
    let told = Told {
        earlier: [
            (2, Outcome::Pass),
            (3, fail(&["smoke/test"], &["smoke/build"])),
        ]
        .into_iter()
        .map(|(index, outcome)| Observation {
            index,
            role: Role::Bisect,
            outcome,
        })
        .collect(),
        blamed: vec![3],
        ..Told::default()
    };
    for hosts in [1, 4] {
        for f in [0.0, 0.05] {
            let (d, tests) = run_after(12, 0, &[], f, hosts, &told, answer);
            assert_eq!(d.verdict, Verdict::Regression, "{}", d.reason);
            assert_eq!(d.culprit(), Some(9), "hosts={hosts} f={f}: {}", d.reason);
            assert_eq!(d.push_to, Some(8), "{}", d.reason);
            // Named only after this flight saw #9 fail and #8 pass.
            assert!(tests.contains(&(8, Role::Bisect)) && tests.contains(&(9, Role::Bisect)));
        }
    }
}

#[test]
fn a_baseline_that_fails_a_step_that_passed_before_is_run_again_before_it_counts_as_old() {
    // #6 breaks smoke/a; the baseline's first two runs flake it. Without more runs of the
    // baseline the failure would be like-baseline, and #6 would go to master.
    let answer = |i: usize, role: Role, attempt: usize| match (role, attempt) {
        (Role::Baseline, 0 | 1) => fail(&["smoke/a"], &["smoke/b"]),
        _ => broken_from(i, &[("smoke/a", 6)]),
    };
    let (d, tests) = run(10, 1, &["smoke/a"], answer);
    assert_eq!(
        (d.verdict, d.culprit(), d.push_to),
        (Verdict::Regression, Some(6), Some(5))
    );
    let baselines = tests.iter().filter(|t| t.1 == Role::Baseline).count();
    assert_eq!(baselines, 3, "{tests:?}");
    // A baseline that keeps failing it, four runs in all, is an old failure as before.
    let (d, tests) = run(10, 1, &["smoke/a"], |i, role, _| match role {
        Role::Baseline => fail(&["smoke/a"], &[]),
        _ => broken_from(i, &[("smoke/a", 1)]),
    });
    assert_eq!(d.verdict, Verdict::LikeBaseline);
    assert_eq!(tests.iter().filter(|t| t.1 == Role::Baseline).count(), 4);
    // A step that never passed here is not doubted: two runs, as before.
    let (d, tests) = run(10, 1, &[], |i, role, _| match role {
        Role::Baseline => fail(&["smoke/a"], &[]),
        _ => broken_from(i, &[("smoke/a", 1)]),
    });
    assert_eq!(d.verdict, Verdict::NeverPassed);
    assert_eq!(tests.iter().filter(|t| t.1 == Role::Baseline).count(), 2);
}

#[test]
fn a_flake_of_another_step_below_the_culprits_is_run_again_before_master_stops_short() {
    // #10 breaks smoke/a, #20 smoke/b; #9's first run flakes smoke/b. Master belongs at #9.
    let answer = |i: usize, role: Role, attempt: usize| {
        if role == Role::Bisect && i == 9 && attempt == 0 {
            return fail(&["smoke/b"], &["smoke/a"]);
        }
        broken_from(i, &[("smoke/a", 10), ("smoke/b", 20)])
    };
    let (d, tests) = run_with(30, 1, &[], 0.05, 1, answer);
    let culprits: Vec<usize> = d.culprits.iter().map(|b| b.index).collect();
    assert_eq!((culprits, d.push_to), (vec![10, 20], Some(9)));
    let runs_of_9 = tests.iter().filter(|t| **t == (9, Role::Bisect)).count();
    assert!(runs_of_9 >= 2, "{tests:?}");
    // Twice a failure's runs at most: with no retries, a second flake keeps master below.
    let twice = |i: usize, role: Role, attempt: usize| {
        if role == Role::Bisect && i == 9 && attempt <= 1 {
            return fail(&["smoke/b"], &["smoke/a"]);
        }
        answer(i, role, attempt)
    };
    let (d, _) = run_with(30, 0, &[], 0.05, 1, twice);
    assert!(d.push_to < Some(9), "{:?}", d.push_to);
}

#[test]
fn two_steps_broken_by_two_commits_get_two_culprits() {
    // #4 breaks smoke/a, #7 breaks smoke/b; both steps run on every commit.
    let answer = |i: usize, _: Role, _: usize| broken_from(i, &[("smoke/a", 4), ("smoke/b", 7)]);
    for hosts in [1, 3] {
        let (d, _) = run_with(10, 0, &[], 0.0, hosts, answer);
        let found: Vec<(usize, Vec<String>)> = d
            .culprits
            .iter()
            .map(|b| (b.index, b.steps.iter().cloned().collect()))
            .collect();
        assert_eq!(
            found,
            vec![
                (4, vec!["smoke/a".to_string()]),
                (7, vec!["smoke/b".to_string()])
            ],
            "{}",
            d.reason
        );
        assert_eq!(d.push_to, Some(3));
    }
    // Steps that broke together are one regression.
    let (d, _) = run(10, 0, &[], |i, _, _| {
        if i >= 6 {
            fail(&["smoke/a", "smoke/b"], &[])
        } else {
            Outcome::Pass
        }
    });
    assert_eq!(d.culprits.len(), 1);
    assert_eq!(d.culprits[0].steps, set(&["smoke/a", "smoke/b"]));
}

#[test]
fn a_regression_hidden_behind_another_does_not_loop() {
    // #3 breaks smoke/a, and the sequence stops there, so smoke/b (broken by #6) is
    // never reached on #3..: its search cannot look there, and stops.
    let (d, tests) = run(10, 0, &["smoke/b"], |i, role, _| match (i, role) {
        (_, Role::Baseline) => Outcome::Pass,
        (i, _) if i >= 3 => fail(&["smoke/a"], &[]),
        _ => Outcome::Pass,
    });
    assert_eq!(d.culprit(), Some(3), "{}", d.reason);
    assert!(tests.len() < 20, "{tests:?}");
}

#[test]
fn never_passed_steps_are_let_through_and_counted_or_block_when_told() {
    let answer = |_: usize, _: Role, _: usize| fail(&["smoke/new"], &["smoke/build"]);
    let (d, _) = run(5, 0, &[], answer);
    assert_eq!((d.verdict, d.push_to), (Verdict::NeverPassed, Some(5)));
    assert_eq!(
        d.not_gating,
        vec![("smoke/new".to_string(), Verdict::NeverPassed)]
    );
    let told = Told {
        never_passed_blocks: true,
        ..Told::default()
    };
    let (d, _) = run_after(5, 0, &[], 0.0, 1, &told, answer);
    assert_eq!((d.verdict, d.push_to), (Verdict::NeverPassed, None));
    assert!(
        d.reason.contains("never_passed = \"block\""),
        "{}",
        d.reason
    );
    // A like-baseline step is let through either way, and said so.
    let (d, _) = run_after(5, 0, &["smoke/new"], 0.0, 1, &told, answer);
    assert_eq!((d.verdict, d.push_to), (Verdict::LikeBaseline, Some(5)));
    assert_eq!(
        d.not_gating,
        vec![("smoke/new".to_string(), Verdict::LikeBaseline)]
    );
}

#[test]
fn names_round_trip() {
    for r in Role::ALL {
        assert_eq!(Role::parse(r.as_str()), Some(r));
    }
    for v in Verdict::ALL {
        assert_eq!(Verdict::parse(v.as_str()), Some(v));
    }
    // Names are what the store holds: they must stay distinct.
    let names: std::collections::HashSet<_> = Verdict::ALL.iter().map(|v| v.as_str()).collect();
    assert_eq!(names.len(), Verdict::ALL.len());
    assert_eq!(Role::parse("nope"), None);
}
