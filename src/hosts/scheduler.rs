//! Which waiting run gets which free host: pure, so that it is tested exhaustively and timed
//! on its own (`pushgate bench schedule`).
//!
//! Runs are served in priority order (gate flights, then bisections, then periodic flights,
//! then manual jobs), first come first served within a priority. A run takes the host it
//! prefers when that host is free and fits (a bisection's confirmation goes back to the host
//! that saw the failure); otherwise the fitting host with the fewest special properties, so
//! that the hosts with rare tags stay free for the runs that need them.

use super::inventory::{HostSpec, Needs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Gate,
    Bisection,
    Periodic,
    Manual,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Gate => "gate",
            Priority::Bisection => "bisection",
            Priority::Periodic => "periodic",
            Priority::Manual => "manual",
        }
    }
}

/// A run waiting for a host.
#[derive(Clone, Debug)]
pub struct Waiting {
    /// Arrival order: lower came first.
    pub ticket: u64,
    pub priority: Priority,
    pub needs: Needs,
    pub prefer: Option<String>,
}

/// A slot of a host that nobody holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FreeSlot {
    /// Index into the hosts given to [`assign`].
    pub host: usize,
    pub slot: u32,
}

/// Pairs waiting runs with free slots: `(index into waiting, index into free)`.
pub fn assign(hosts: &[HostSpec], free: &[FreeSlot], waiting: &[Waiting]) -> Vec<(usize, usize)> {
    // Free slots per host, as indices into `free`, taken from the back.
    let mut open: Vec<Vec<usize>> = vec![Vec::new(); hosts.len()];
    for (i, f) in free.iter().enumerate().rev() {
        if let Some(v) = open.get_mut(f.host) {
            v.push(i);
        }
    }
    let mut left: usize = open.iter().map(Vec::len).sum();
    // Hosts with a free slot, most ordinary first: the order a run without a preference
    // tries them in.
    let mut order: Vec<usize> = (0..hosts.len()).filter(|&h| !open[h].is_empty()).collect();
    order.sort_by_key(|&h| (specialness(&hosts[h]), hosts[h].name.as_str()));

    let mut queue: Vec<usize> = (0..waiting.len()).collect();
    queue.sort_by_key(|&w| (waiting[w].priority, waiting[w].ticket));

    let mut out = Vec::new();
    for w in queue {
        if left == 0 {
            break;
        }
        let run = &waiting[w];
        let preferred = run.prefer.as_deref().and_then(|p| {
            order.iter().copied().find(|&h| {
                hosts[h].name == p && !open[h].is_empty() && run.needs.matches(&hosts[h])
            })
        });
        let chosen = preferred.or_else(|| {
            order
                .iter()
                .copied()
                .find(|&h| !open[h].is_empty() && run.needs.matches(&hosts[h]))
        });
        if let Some(h) = chosen {
            if let Some(slot) = open[h].pop() {
                out.push((w, slot));
                left -= 1;
            }
        }
    }
    out
}

/// How rare a host is: runs that need nothing in particular should not take it.
fn specialness(host: &HostSpec) -> usize {
    host.properties.tags.len() + usize::from(host.properties.memory_gb.is_some())
}

/// Whether any host of the lab could ever take a run with these needs (busy or not).
pub fn satisfiable(hosts: &[HostSpec], needs: &Needs) -> bool {
    hosts.iter().any(|h| needs.matches(h))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::hosts::inventory::{Properties, ProvisionerSpec};

    fn host(name: &str, slots: u32, tags: &[&str]) -> HostSpec {
        HostSpec {
            name: name.into(),
            slots,
            provisioner: ProvisionerSpec::Local,
            properties: Properties {
                arch: Some("x86_64".into()),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            max_broken: 3,
        }
    }

    fn run(ticket: u64, priority: Priority, tags: &[&str], prefer: Option<&str>) -> Waiting {
        Waiting {
            ticket,
            priority,
            needs: Needs {
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            prefer: prefer.map(str::to_string),
        }
    }

    fn all_free(hosts: &[HostSpec]) -> Vec<FreeSlot> {
        hosts
            .iter()
            .enumerate()
            .flat_map(|(h, spec)| (0..spec.slots).map(move |slot| FreeSlot { host: h, slot }))
            .collect()
    }

    /// Host names given to each waiting run, in waiting order (None: still waiting).
    fn names(hosts: &[HostSpec], free: &[FreeSlot], waiting: &[Waiting]) -> Vec<Option<String>> {
        let got = assign(hosts, free, waiting);
        (0..waiting.len())
            .map(|w| {
                got.iter()
                    .find(|(i, _)| *i == w)
                    .map(|(_, f)| hosts[free[*f].host].name.clone())
            })
            .collect()
    }

    #[test]
    fn priority_then_arrival() {
        let hosts = vec![host("a", 1, &[]), host("b", 1, &[])];
        let waiting = vec![
            run(1, Priority::Manual, &[], None),
            run(2, Priority::Periodic, &[], None),
            run(3, Priority::Gate, &[], None),
            run(4, Priority::Bisection, &[], None),
            run(5, Priority::Gate, &[], None),
        ];
        let got = names(&hosts, &all_free(&hosts), &waiting);
        assert_eq!(
            got,
            vec![None, None, Some("a".into()), None, Some("b".into())]
        );
    }

    #[test]
    fn a_slot_is_given_once() {
        let hosts = vec![host("big", 3, &[]), host("small", 1, &[])];
        let free = all_free(&hosts);
        let waiting: Vec<_> = (0..10).map(|t| run(t, Priority::Gate, &[], None)).collect();
        let got = assign(&hosts, &free, &waiting);
        assert_eq!(got.len(), 4);
        let slots: BTreeSet<usize> = got.iter().map(|(_, f)| *f).collect();
        let runs: BTreeSet<usize> = got.iter().map(|(w, _)| *w).collect();
        assert_eq!((slots.len(), runs.len()), (4, 4));
        assert_eq!(runs, (0..4).collect());
    }

    #[test]
    fn needs_and_rare_hosts() {
        let hosts = vec![host("gpu", 1, &["gpu"]), host("plain", 1, &[])];
        // The plain run arrives first but must not take the only gpu host.
        let waiting = vec![
            run(1, Priority::Gate, &[], None),
            run(2, Priority::Gate, &["gpu"], None),
        ];
        let got = names(&hosts, &all_free(&hosts), &waiting);
        assert_eq!(got, vec![Some("plain".into()), Some("gpu".into())]);
        // A run whose needs no free host meets waits, and does not block the others.
        let waiting = vec![
            run(1, Priority::Gate, &["sriov"], None),
            run(2, Priority::Manual, &[], None),
        ];
        let got = names(&hosts, &all_free(&hosts), &waiting);
        assert_eq!(got, vec![None, Some("plain".into())]);
        assert!(!satisfiable(&hosts, &waiting[0].needs));
        assert!(satisfiable(&hosts, &waiting[1].needs));
    }

    #[test]
    fn preference_wins_when_free() {
        let hosts = vec![host("a", 1, &[]), host("b", 1, &[]), host("c", 1, &[])];
        let waiting = vec![run(1, Priority::Bisection, &[], Some("c"))];
        assert_eq!(
            names(&hosts, &all_free(&hosts), &waiting),
            vec![Some("c".into())]
        );
        // Busy preferred host: any other.
        let free: Vec<_> = all_free(&hosts)
            .into_iter()
            .filter(|f| f.host != 2)
            .collect();
        assert_eq!(names(&hosts, &free, &waiting), vec![Some("a".into())]);
        // A preferred host that does not fit the needs is not taken.
        let waiting = vec![run(1, Priority::Bisection, &["gpu"], Some("c"))];
        assert_eq!(names(&hosts, &all_free(&hosts), &waiting), vec![None]);
    }

    #[test]
    fn nothing_free_nothing_given() {
        let hosts = vec![host("a", 1, &[])];
        let waiting = vec![run(1, Priority::Gate, &[], None)];
        assert!(assign(&hosts, &[], &waiting).is_empty());
        assert!(assign(&hosts, &all_free(&hosts), &[]).is_empty());
    }

    proptest::proptest! {
        /// Whatever the lab and queue: no slot twice, no run twice, every pairing fits, and
        /// no run is left waiting while a fitting slot stays free.
        #[test]
        fn assignments_are_sound(
            lab in proptest::collection::vec((1u32..3, proptest::collection::vec(0u8..3, 0..3)), 1..8),
            queue in proptest::collection::vec((0u8..4, proptest::collection::vec(0u8..3, 0..2), proptest::option::of(0usize..8)), 0..20),
            busy in proptest::collection::vec(proptest::bool::ANY, 24),
        ) {
            let tag = |t: &u8| format!("t{t}");
            let hosts: Vec<HostSpec> = lab.iter().enumerate().map(|(i, (slots, tags))| {
                let tags: Vec<String> = tags.iter().map(tag).collect();
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                host(&format!("h{i}"), *slots, &tags)
            }).collect();
            let free: Vec<FreeSlot> = all_free(&hosts).into_iter().enumerate()
                .filter(|(i, _)| !busy[i % busy.len()]).map(|(_, f)| f).collect();
            let prios = [Priority::Gate, Priority::Bisection, Priority::Periodic, Priority::Manual];
            let waiting: Vec<Waiting> = queue.iter().enumerate().map(|(i, (p, tags, prefer))| {
                let tags: Vec<String> = tags.iter().map(tag).collect();
                let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
                let prefer = prefer.map(|h| format!("h{h}"));
                run(i as u64, prios[*p as usize], &tags, prefer.as_deref())
            }).collect();
            let got = assign(&hosts, &free, &waiting);
            let slots: BTreeSet<usize> = got.iter().map(|(_, f)| *f).collect();
            let runs: BTreeSet<usize> = got.iter().map(|(w, _)| *w).collect();
            proptest::prop_assert_eq!(slots.len(), got.len());
            proptest::prop_assert_eq!(runs.len(), got.len());
            for (w, f) in &got {
                proptest::prop_assert!(waiting[*w].needs.matches(&hosts[free[*f].host]));
            }
            for (w, run) in waiting.iter().enumerate() {
                if runs.contains(&w) { continue; }
                let fitting_free = free.iter().enumerate()
                    .any(|(i, f)| !slots.contains(&i) && run.needs.matches(&hosts[f.host]));
                proptest::prop_assert!(!fitting_free, "run {} waits beside a free fitting slot", w);
            }
        }
    }
}
