//! What pushgate tells the forge about each tested commit, from a flight and its conclusion.
//! Pure: the gate queues what this returns in the store, and `deliver_due_reports` posts it.

use crate::decision::Verdict;
use crate::repo::short;
use crate::store::{FlightRow, NewReport, ReportKind};

/// Where and how a policy reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportTarget {
    /// `owner/name`.
    pub repository: String,
    /// Commit statuses or check runs.
    pub kind: ReportKind,
    /// The status context or check name (`pushgate/<policy>`).
    pub context: String,
    /// The branch passing commits go to, for the text.
    pub target_branch: String,
}

/// How one flight ended, as reports need it.
#[derive(Clone, Debug)]
pub struct Outcome<'a> {
    pub verdict: Verdict,
    pub reason: &'a str,
    /// The last commit (1-based) that went, or would go in report-only mode, to the target.
    pub passed_up_to: Option<usize>,
    /// Whether that was only what would have been pushed.
    pub report_only: bool,
    pub culprit: Option<usize>,
}

fn flight_url(public_url: &str, flight: &FlightRow) -> String {
    format!("{public_url}/flights/{}", flight.id)
}

/// One report on `sha`: `phase` keeps its key apart from the flight's other reports on it.
fn report(
    target: &ReportTarget,
    flight: &FlightRow,
    public_url: &str,
    sha: &str,
    phase: &str,
    state: &str,
    (title, body): (String, String),
) -> NewReport {
    NewReport {
        key: format!(
            "{}:{}:flight-{}:{phase}:{sha}",
            target.kind.as_str(),
            target.context,
            flight.id
        ),
        repository: target.repository.clone(),
        kind: target.kind,
        sha: Some(sha.to_string()),
        issue: None,
        context: target.context.clone(),
        state: state.to_string(),
        title,
        body,
        target_url: Some(flight_url(public_url, flight)),
        flight_id: Some(flight.id),
    }
}

/// `pending` on every commit of a flight that has just been planned.
pub fn pending(target: &ReportTarget, flight: &FlightRow, public_url: &str) -> Vec<NewReport> {
    let n = flight.commits.len();
    flight
        .commits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let title = format!("queued: flight {}, commit {} of {n}", flight.id, i + 1);
            let body = format!(
                "pushgate is testing {n} commit{} up to {} for {}.",
                if n == 1 { "" } else { "s" },
                short(&flight.tip),
                target.target_branch
            );
            report(
                target,
                flight,
                public_url,
                &c.sha,
                "queued",
                "pending",
                (title, body),
            )
        })
        .collect()
}

/// The verdict on every commit of a concluded flight.
pub fn concluded(
    target: &ReportTarget,
    flight: &FlightRow,
    outcome: &Outcome,
    public_url: &str,
) -> Vec<NewReport> {
    let url = flight_url(public_url, flight);
    let verdict = outcome.verdict.as_str();
    flight
        .commits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let index = i + 1;
            let (state, title) = if outcome.culprit == Some(index) {
                ("failure", format!("{verdict}: first bad commit"))
            } else if let Some(culprit) = outcome.culprit.filter(|&k| index > k) {
                (
                    "failure",
                    format!(
                        "{verdict}: follows the first bad commit {}",
                        short(flight.sha(culprit))
                    ),
                )
            } else if outcome.passed_up_to.is_some_and(|p| index <= p) {
                let went = if outcome.report_only {
                    format!("would go to {} (report-only)", target.target_branch)
                } else {
                    format!("pushed to {}", target.target_branch)
                };
                ("success", format!("{verdict}: {went}"))
            } else {
                ("neutral", format!("{verdict}: not pushed"))
            };
            let mut body = outcome.reason.to_string();
            if outcome.culprit == Some(index) {
                body.push_str(&format!(
                    "\n\nThe bisection log is on the flight page: {url}#finder"
                ));
            }
            report(
                target,
                flight,
                public_url,
                &c.sha,
                "verdict",
                state,
                (title, body),
            )
        })
        .collect()
}

/// `cancelled` on every commit of a flight that no longer stands.
pub fn cancelled(
    target: &ReportTarget,
    flight: &FlightRow,
    reason: &str,
    public_url: &str,
) -> Vec<NewReport> {
    flight
        .commits
        .iter()
        .map(|c| {
            let title = format!("cancelled: flight {}", flight.id);
            let text = (title, reason.to_string());
            report(
                target,
                flight,
                public_url,
                &c.sha,
                "cancelled",
                "cancelled",
                text,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::CommitInfo;
    use crate::store::FlightState;

    fn flight(n: usize) -> FlightRow {
        FlightRow {
            id: 7,
            branch_id: 1,
            candidate_id: 1,
            base: "b".repeat(40),
            tip: format!("{:040}", n),
            commits: (1..=n)
                .map(|i| CommitInfo {
                    sha: format!("{i:040}"),
                    title: format!("commit {i}"),
                    author_name: "A".into(),
                    author_email: "a@example.org".into(),
                    committer_name: "A".into(),
                    committer_email: "a@example.org".into(),
                })
                .collect(),
            state: FlightState::Running,
            verdict: None,
            culprit: None,
            pushed_to: None,
            reason: String::new(),
            created_at: 0,
            finished_at: None,
            finder_log: Vec::new(),
            series_id: None,
        }
    }

    fn target(kind: ReportKind) -> ReportTarget {
        ReportTarget {
            repository: "o/r".into(),
            kind,
            context: "pushgate/p".into(),
            target_branch: "master".into(),
        }
    }

    fn states(reports: &[NewReport]) -> Vec<&str> {
        reports.iter().map(|r| r.state.as_str()).collect()
    }

    #[test]
    fn pending_on_every_commit_with_a_stable_key() {
        let f = flight(3);
        let p = pending(&target(ReportKind::Status), &f, "http://x");
        assert_eq!(states(&p), ["pending"; 3]);
        assert_eq!(p[2].sha.as_deref(), Some(f.tip.as_str()));
        assert_eq!(p[0].target_url.as_deref(), Some("http://x/flights/7"));
        assert_eq!(p, pending(&target(ReportKind::Status), &f, "http://x"));
        let keys: std::collections::BTreeSet<_> = p.iter().map(|r| &r.key).collect();
        assert_eq!(keys.len(), 3);
    }

    #[test]
    fn a_regression_passes_what_came_before_and_fails_the_rest() {
        let f = flight(5);
        let out = Outcome {
            verdict: Verdict::Regression,
            reason: "step `boot` fails from commit 3",
            passed_up_to: Some(2),
            report_only: false,
            culprit: Some(3),
        };
        let r = concluded(&target(ReportKind::Check), &f, &out, "http://x");
        assert_eq!(
            states(&r),
            ["success", "success", "failure", "failure", "failure"]
        );
        assert_eq!(r[0].title, "regression: pushed to master");
        assert_eq!(r[2].title, "regression: first bad commit");
        assert!(r[2].body.contains("http://x/flights/7#finder"));
        assert!(r[3].title.ends_with(&f.sha(3)[..12]), "{}", r[3].title);
        assert!(!r[1].body.contains("bisection"));
    }

    #[test]
    fn every_verdict_maps_each_commit_to_one_state() {
        let f = flight(4);
        for verdict in Verdict::ALL {
            for passed in [None, Some(2), Some(4)] {
                for report_only in [false, true] {
                    let out = Outcome {
                        verdict,
                        reason: "r",
                        passed_up_to: passed,
                        report_only,
                        culprit: (verdict == Verdict::Regression).then_some(3),
                    };
                    let r = concluded(&target(ReportKind::Status), &f, &out, "u");
                    assert_eq!(r.len(), 4);
                    for (i, rep) in r.iter().enumerate() {
                        let index = i + 1;
                        let want = match out.culprit {
                            Some(k) if index >= k => "failure",
                            _ if passed.is_some_and(|p| index <= p) => "success",
                            _ => "neutral",
                        };
                        assert_eq!(rep.state, want, "{verdict:?} {passed:?} {index}");
                        assert!(rep.title.starts_with(verdict.as_str()));
                        assert_eq!(
                            rep.title.contains("report-only"),
                            report_only && want == "success"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn cancelled_names_the_flight() {
        let f = flight(2);
        let r = cancelled(
            &target(ReportKind::Status),
            &f,
            "staging was rewritten",
            "u",
        );
        assert_eq!(states(&r), ["cancelled"; 2]);
        assert_eq!(r[0].body, "staging was rewritten");
        assert_ne!(
            r[0].key,
            pending(&target(ReportKind::Status), &f, "u")[0].key
        );
    }
}
