use super::*;

fn post(h: &History, obs: &[(usize, Observed)], f: f64) -> Option<Posterior> {
    Posterior::compute(h, &tally(h.len(), obs), &Model::told(f, 0.5))
}

fn close(a: f64, b: f64, within: f64) -> bool {
    (a - b).abs() < within
}

#[test]
fn a_pass_rules_out_every_ancestor_and_a_fail_without_flakes_all_but_a_fixed_bug() {
    let h = History::linear(8).unwrap();
    let p = post(&h, &[(7, Observed::Fail), (3, Observed::Pass)], 0.0).unwrap();
    assert!(p.mass[..=3].iter().all(|&m| m == 0.0));
    assert!(p.mass[4..].iter().all(|&m| close(m, 0.25, 1e-4)));
    assert_eq!(p.none, 0.0);
    let p = post(&h, &[(7, Observed::Fail), (5, Observed::Fail)], 0.0).unwrap();
    // Above 5, the culprit needs 5's failure to be an earlier bug fixed since: rare.
    assert!(p.mass[6..].iter().all(|&m| m < 1e-4));
    assert!(close(p.mass[0], 1.0 / 6.0, 1e-3));
    // 6's parent failed: without flakes 6 cannot be where the failure began.
    assert_eq!(p.mass[6], 0.0);
}

#[test]
fn with_flakes_a_fail_only_tilts_the_odds() {
    let h = History::linear(4).unwrap();
    let p = post(&h, &[(3, Observed::Fail), (1, Observed::Fail)], 0.1).unwrap();
    // Commits 0 and 1 explain both fails; 2 and 3 need commit 1's fail to be a flake (or an
    // earlier bug); "no culprit" needs both to be flakes.
    let (a, b) = (p.mass[0], p.mass[3]);
    assert!(close(p.mass[1], a, 1e-4 * a));
    assert!(close(b / a, 0.1, 0.01), "{}", b / a);
    assert!(close(p.none / a, 4.0 * 0.01, 0.01));
    assert!(close(p.flake_rate, 0.1, 1e-9));
}

#[test]
fn a_failure_below_a_later_pass_does_not_pull_the_search_down() {
    // 3 broke and 5 fixed it; 8 broke again. Without flakes the old model had no answer.
    let h = History::linear(10).unwrap();
    let obs = [
        (9, Observed::Fail),
        (3, Observed::Fail),
        (4, Observed::Fail),
        (6, Observed::Pass),
    ];
    let p = post(&h, &obs, 0.0).unwrap();
    assert!(p.mass[..=6].iter().all(|&m| m == 0.0));
    assert!(p.mass[7..].iter().all(|&m| close(m, 1.0 / 3.0, 1e-4)));
    // With flakes too, and whatever the rate.
    let inferred = Posterior::compute(
        &h,
        &tally(10, &obs),
        &Model::inferred(FlakeHistory::default(), 0.5),
    )
    .unwrap();
    assert!(inferred.mass[..=6].iter().all(|&m| m == 0.0));
}

#[test]
fn a_commit_blamed_before_does_not_explain_the_tip_by_itself() {
    // Flight 1 saw 2 fail three times and 1 pass; the tip, 12, fails now.
    let h = History::linear(13).unwrap();
    let obs = [
        (1, Observed::Pass),
        (2, Observed::Fail),
        (2, Observed::Fail),
        (2, Observed::Fail),
        (12, Observed::Fail),
    ];
    let plain = Model::told(0.05, 0.5);
    let p = Posterior::compute(&h, &tally(13, &obs), &plain).unwrap();
    assert!(p.mass[2] > 0.99, "{}", p.mass[2]);
    let blamed = Model {
        blamed: (0..13).map(|c| c == 2).collect(),
        ..plain
    };
    let p = Posterior::compute(&h, &tally(13, &obs), &blamed).unwrap();
    assert!(p.mass[2] < 0.8, "{}", p.mass[2]);
    // A pass above it settles that it was fixed.
    let mut more = obs.to_vec();
    more.push((7, Observed::Pass));
    let p = Posterior::compute(&h, &tally(13, &more), &blamed).unwrap();
    assert!(p.mass[..=7].iter().all(|&m| m == 0.0));
}

#[test]
fn merges_make_both_branches_bad() {
    // 0 - 1 - 4 - 5 with 2 - 3 merged at 4.
    let h = History::new(vec![vec![], vec![0], vec![0], vec![2], vec![1, 3], vec![4]]).unwrap();
    let p = post(&h, &[(5, Observed::Fail), (1, Observed::Pass)], 0.0).unwrap();
    assert!(p.mass[0] == 0.0 && p.mass[1] == 0.0);
    assert!(close(p.mass[3], 0.25, 1e-4));
    let bad = p.bad_probability(&h);
    assert!(close(bad[3], 0.5, 1e-4) && close(bad[4], 0.75, 1e-4) && close(bad[5], 1.0, 1e-4));
    assert!(close(bad[1], 0.0, 1e-4));
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
    assert_eq!(p.top().0, Some(4));
    assert!(p.top().1 > 0.999);
    // A merged commit that failed below a pass of the merge is an earlier, fixed bug.
    let p = post(
        &h,
        &[
            (5, Observed::Fail),
            (3, Observed::Fail),
            (4, Observed::Pass),
        ],
        0.0,
    )
    .unwrap();
    assert_eq!(p.top().0, Some(5));
}

#[test]
fn contradictions_without_flakes_have_no_posterior() {
    let h = History::linear(5).unwrap();
    let obs = [
        (4, Observed::Fail),
        (2, Observed::Fail),
        (2, Observed::Pass),
    ];
    assert!(post(&h, &obs, 0.0).is_none());
    assert!(post(&h, &obs, 0.05).is_some());
}

#[test]
fn untestable_results_change_nothing() {
    let h = History::linear(6).unwrap();
    let a = post(&h, &[(5, Observed::Fail)], 0.05).unwrap();
    let b = post(&h, &[(5, Observed::Fail), (2, Observed::Untestable)], 0.05).unwrap();
    assert_eq!(a.mass, b.mass);
}

#[test]
fn the_inferred_rate_follows_the_evidence() {
    let h = History::linear(10).unwrap();
    let weak = Model::inferred(FlakeHistory::default(), 0.5);
    assert!(close(
        weak.rates.iter().map(|r| r.1).sum::<f64>(),
        1.0,
        1e-9
    ));
    // A tip that failed and passed on retry is a flake; 4 passing then failing says the
    // test is flaky at some rate well above nothing.
    let obs = [
        (9, Observed::Fail),
        (4, Observed::Pass),
        (4, Observed::Fail),
        (4, Observed::Fail),
    ];
    let p = Posterior::compute(&h, &tally(10, &obs), &weak).unwrap();
    assert!(p.flake_rate > 0.1, "{}", p.flake_rate);
    // A long history of runs pins the rate.
    let known = Model::inferred(
        FlakeHistory {
            runs: 2000,
            fails: 200,
        },
        0.5,
    );
    let p = Posterior::compute(&h, &tally(10, &[(9, Observed::Fail)]), &known).unwrap();
    assert!(close(p.flake_rate, 0.1, 0.01), "{}", p.flake_rate);
    let clean = Model::inferred(
        FlakeHistory {
            runs: 2000,
            fails: 0,
        },
        0.5,
    );
    let p = Posterior::compute(&h, &tally(10, &[(9, Observed::Fail)]), &clean).unwrap();
    assert!(p.flake_rate < 0.002, "{}", p.flake_rate);
}

#[test]
fn long_ranges_neither_underflow_nor_lose_the_answer() {
    let h = History::linear(4096).unwrap();
    let mut obs = vec![(4095, Observed::Fail), (2000, Observed::Pass)];
    obs.extend([(2001, Observed::Fail); 300]);
    for model in [
        Model::told(0.3, 0.5),
        Model::inferred(FlakeHistory::default(), 0.5),
    ] {
        let p = Posterior::compute(&h, &tally(4096, &obs), &model).unwrap();
        assert_eq!(p.top().0, Some(2001));
        let total: f64 = p.mass.iter().sum::<f64>() + p.none;
        assert!(close(total, 1.0, 1e-9));
    }
}

#[test]
fn capacity_of_the_z_channel() {
    assert_eq!(z_channel_capacity(0.0), 1.0);
    assert!((z_channel_capacity(0.1) - 0.7628).abs() < 1e-3);
    assert!((z_channel_capacity(0.5) - 0.3219).abs() < 1e-3);
}

#[test]
fn a_blamed_bug_ends_most_likely_just_above_the_last_blaming_tip() {
    // Just above the tip, the soon and the late fixes together.
    let first = FIX_SOON_SHARE * FIX_SOON + (1.0 - FIX_SOON_SHARE) * FIX_BLAMED;
    assert!(close(fix_blamed_above(1), first, 1e-12));
    // The chance falls with the distance, to the late fixes' alone, and the chances of ending
    // at each distance are the mixture's: the soon share ends within the first few commits.
    let (mut lasts, mut previous) = (1.0, 1.0);
    for d in 1..=2000 {
        let h = fix_blamed_above(d);
        assert!(h <= previous + 1e-15 && h >= FIX_BLAMED, "d={d}: {h}");
        previous = h;
        lasts *= 1.0 - h;
        let mixture = FIX_SOON_SHARE * (1.0 - FIX_SOON).powi(d as i32)
            + (1.0 - FIX_SOON_SHARE) * (1.0 - FIX_BLAMED).powi(d as i32);
        assert!(
            close(lasts, mixture, 1e-9),
            "d={d}: {lasts} against {mixture}"
        );
    }
    assert!(close(previous, FIX_BLAMED, 1e-9));
}
