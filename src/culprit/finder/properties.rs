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
