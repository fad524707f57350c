//! What to do next with each assembled revision, given what was done already: apply and test
//! a complete one, say what is missing once the wait is over, and drop (cancelling its
//! flights) one that a newer version replaced. Pure, so that the service pass that carries it
//! out stays a thin loop over the store.

use std::collections::HashMap;

use super::assembly::Revision;

/// What the store remembers of a revision (by its root Message-ID).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// "missing 3/5" was said in the thread; still waiting for the rest.
    MissingReported,
    /// Applied onto its base; its flight may still be running.
    Applied,
    /// It did not apply, and the thread was told.
    DoesNotApply,
    /// Its flight concluded and the thread was told.
    Concluded,
    /// A newer version replaced it.
    Superseded,
}

/// One step for the service pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Apply it onto its base and start its flight.
    Apply { root: String },
    /// Tell the thread what is still missing.
    ReportMissing { root: String, missing: Vec<u32> },
    /// Mark it replaced; `cancel` when its flight may still run.
    Supersede {
        root: String,
        by: String,
        cancel: bool,
    },
}

impl Action {
    /// The root Message-ID of the revision it is about.
    pub fn root(&self) -> &str {
        match self {
            Action::Apply { root }
            | Action::ReportMissing { root, .. }
            | Action::Supersede { root, .. } => root,
        }
    }
}

/// The actions for `revisions`, given what was `handled` and the time (`now`, the wait for
/// missing patches and the oldest a revision may be, in the revisions' unit: seconds).
///
/// A revision older than `max_age` that was never handled is left alone: a list's archive
/// read for the first time holds years of series, whose threads must not hear from a bot.
pub fn triage(
    revisions: &[Revision],
    handled: &HashMap<String, Handled>,
    now: i64,
    wait: i64,
    max_age: i64,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for r in revisions {
        let state = handled.get(&r.root).copied();
        if state.is_none() && r.latest.is_some_and(|latest| now - latest > max_age) {
            continue;
        }
        if let Some(by) = &r.superseded_by {
            if state != Some(Handled::Superseded) {
                actions.push(Action::Supersede {
                    root: r.root.clone(),
                    by: by.clone(),
                    cancel: state == Some(Handled::Applied),
                });
            }
            continue;
        }
        match state {
            None | Some(Handled::MissingReported) if r.is_complete() => {
                actions.push(Action::Apply {
                    root: r.root.clone(),
                });
            }
            None => {
                let waited = r.latest.is_none_or(|latest| now - latest >= wait);
                if waited {
                    actions.push(Action::ReportMissing {
                        root: r.root.clone(),
                        missing: r.missing(),
                    });
                }
            }
            _ => {}
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(
        root: &str,
        patches: &[bool],
        latest: i64,
        superseded_by: Option<&str>,
    ) -> Revision {
        Revision {
            series: root.to_string(),
            root: root.to_string(),
            version: 1,
            rfc: false,
            sender: "ann@example.org".into(),
            total: patches.len() as u32,
            cover: None,
            patches: patches
                .iter()
                .enumerate()
                .map(|(i, present)| present.then_some(i))
                .collect(),
            base_commit: None,
            trailers: vec![Vec::new(); patches.len()],
            superseded_by: superseded_by.map(str::to_string),
            rerolls: None,
            latest: Some(latest),
        }
    }

    const AGE: i64 = 14 * 86_400;

    #[test]
    fn an_old_revision_never_handled_is_left_alone() {
        let old = [revision("a", &[true, false], 100, None)];
        assert!(triage(&old, &handled(&[]), 100 + AGE + 1, 3600, AGE).is_empty());
        let complete = [revision("a", &[true, true], 100, None)];
        assert!(triage(&complete, &handled(&[]), 100 + AGE + 1, 3600, AGE).is_empty());
        let v = [revision("v1", &[true], 100, Some("v2"))];
        assert!(triage(&v, &handled(&[]), 100 + AGE + 1, 3600, AGE).is_empty());
        // Once handled, it is followed to its end however old it gets.
        let told = handled(&[("v1", Handled::Applied)]);
        assert_eq!(triage(&v, &told, 100 + AGE + 1, 3600, AGE).len(), 1);
        assert_eq!(
            triage(&complete, &handled(&[]), 100 + AGE, 3600, AGE),
            [Action::Apply { root: "a".into() }]
        );
    }

    fn handled(pairs: &[(&str, Handled)]) -> HashMap<String, Handled> {
        pairs.iter().map(|(r, h)| (r.to_string(), *h)).collect()
    }

    #[test]
    fn a_complete_revision_is_applied_once() {
        let r = [revision("a", &[true, true], 100, None)];
        assert_eq!(
            triage(&r, &handled(&[]), 100, 3600, AGE),
            [Action::Apply { root: "a".into() }]
        );
        for done in [Handled::Applied, Handled::DoesNotApply, Handled::Concluded] {
            assert!(triage(&r, &handled(&[("a", done)]), 100, 3600, AGE).is_empty());
        }
    }

    #[test]
    fn missing_is_said_once_after_the_wait_then_the_rest_is_applied() {
        let r = [revision("a", &[true, false, true], 100, None)];
        assert!(triage(&r, &handled(&[]), 100 + 3599, 3600, AGE).is_empty());
        assert_eq!(
            triage(&r, &handled(&[]), 100 + 3600, 3600, AGE),
            [Action::ReportMissing {
                root: "a".into(),
                missing: vec![2]
            }]
        );
        let told = handled(&[("a", Handled::MissingReported)]);
        assert!(triage(&r, &told, 100 + 99_999, 3600, AGE).is_empty());
        let r = [revision("a", &[true, true, true], 200, None)];
        assert_eq!(
            triage(&r, &told, 300, 3600, AGE),
            [Action::Apply { root: "a".into() }]
        );
    }

    #[test]
    fn a_replaced_revision_is_dropped_and_its_flight_cancelled() {
        let r = [
            revision("v1", &[true, true], 100, Some("v2")),
            revision("v2", &[true, true], 200, None),
        ];
        assert_eq!(
            triage(&r, &handled(&[("v1", Handled::Applied)]), 300, 3600, AGE),
            [
                Action::Supersede {
                    root: "v1".into(),
                    by: "v2".into(),
                    cancel: true
                },
                Action::Apply { root: "v2".into() },
            ]
        );
        // Never applied: dropped without a cancel; and only once.
        assert_eq!(
            triage(&r[..1], &handled(&[]), 300, 3600, AGE),
            [Action::Supersede {
                root: "v1".into(),
                by: "v2".into(),
                cancel: false
            }]
        );
        assert!(triage(
            &r[..1],
            &handled(&[("v1", Handled::Superseded)]),
            300,
            3600,
            AGE
        )
        .is_empty());
    }
}
