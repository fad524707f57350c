//! The gate's flights of mailed series: driven by the same machinery as staging's (baseline,
//! retries, the culprit finder inside the series) but belonging to no staging branch. They
//! never push; they end when a newer revision replaces their series; and their conclusion is a
//! reply in the series' thread rather than a report to the branch's list.

use tracing::Instrument;

use crate::config::policy::Policy;
use crate::decision::{Decision, FinderStep, Verdict};
use crate::gate::{blocking, Driven, Tested};
use crate::gate::{BranchOutcome, Gate, GateError};
use crate::notify;
use crate::repo::{short, Mirror};
use crate::store::{Conclusion, FlightRow, RunRow, StepRow};

impl Gate {
    /// Drives every running flight of `policy`'s mailed series to its conclusion (or its
    /// cancellation, when a newer revision replaced the series). Returns what each came to.
    pub async fn series_pass(&self, policy: &Policy) -> Result<Vec<BranchOutcome>, GateError> {
        let branch = self.store.upsert_branch(policy).await?;
        let mut out = Vec::new();
        for flight in self.store.running_series_flights(branch).await? {
            out.push(self.series_flight(policy, flight).await?);
        }
        Ok(out)
    }

    /// Drives one series flight to its end.
    pub async fn series_flight(
        &self,
        policy: &Policy,
        flight: FlightRow,
    ) -> Result<BranchOutcome, GateError> {
        let span = tracing::info_span!("series", policy = %policy.name, flight = flight.id);
        async {
            let (dir, name, url) = (
                self.settings.mirrors_dir.clone(),
                policy.name.clone(),
                policy.repository.clone(),
            );
            // The series' commits are in the mirror already: no fetch, no credentials.
            let mirror = match blocking(move || Mirror::open(&dir, &name, &url)).await {
                Ok(m) => m,
                Err(e) => {
                    return Ok(BranchOutcome::Error {
                        message: e.to_string(),
                    })
                }
            };
            match self.drive(policy, &mirror, flight, Tested::Series).await? {
                Driven::Done(outcome) => Ok(outcome),
                Driven::Replan => Err(GateError::Internal(
                    "a series flight cannot be re-planned".into(),
                )),
            }
        }
        .instrument(span)
        .await
    }

    /// Why a series flight no longer stands: its revision was replaced by a newer one.
    pub(crate) async fn series_stale(
        &self,
        flight: &FlightRow,
    ) -> Result<Option<String>, GateError> {
        let Some(id) = flight.series_id else {
            return Ok(None);
        };
        Ok(match self.store.series(id).await? {
            None => Some(format!("series {id} is no longer recorded")),
            Some(s) if s.state == "superseded" => Some(format!(
                "superseded by <{}>",
                s.superseded_by.as_deref().unwrap_or("a newer revision")
            )),
            Some(_) => None,
        })
    }

    /// Ends a series flight: no push, whatever the verdict; the thread hears which patch broke
    /// which step (or that all passed, unless the list is quiet on success).
    pub(crate) async fn conclude_series(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        decision: Decision,
        runs: &[RunRow],
        run_steps: &[StepRow],
        finder_log: &[FinderStep],
    ) -> Result<Driven, GateError> {
        let series_id = flight
            .series_id
            .ok_or_else(|| GateError::Internal(format!("flight {} tests no series", flight.id)))?;
        let series = self.store.series(series_id).await?.ok_or_else(|| {
            GateError::Internal(format!(
                "series {series_id} of flight {} is gone",
                flight.id
            ))
        })?;
        let conclusion = Conclusion {
            verdict: decision.verdict,
            culprit: decision.culprit().map(|i| flight.sha(i).to_string()),
            blames: crate::gate::blame_rows(flight, &decision),
            pushed_to: None,
            reason: decision.reason.clone(),
            finder_log: notify::finder_lines(flight, finder_log),
        };
        let reply = self
            .series_reply(policy, flight, &series, &decision, runs, run_steps)
            .await?;
        self.store
            .finish_series_flight(flight, &conclusion, reply.as_ref())
            .await?;
        Ok(self.concluded(policy, flight, conclusion))
    }

    /// The answer to a tested series' thread, or `None` when nothing is to be said (quiet on
    /// success, or the list or its mail is no longer known).
    async fn series_reply(
        &self,
        policy: &Policy,
        flight: &FlightRow,
        series: &crate::store::SeriesRow,
        decision: &Decision,
        runs: &[RunRow],
        run_steps: &[StepRow],
    ) -> Result<Option<crate::store::NewMail>, GateError> {
        let Some(list) = &policy.mailing_list else {
            return Ok(None);
        };
        if decision.verdict == Verdict::Pass && list.quiet_on_success {
            return Ok(None);
        }
        let mail = |id: String| async move {
            let raw = self.store.list_mail_raw(&series.list, &id).await?;
            Ok::<_, GateError>(raw.and_then(|raw| crate::intake::mail::Mail::parse(&raw).ok()))
        };
        let Some(answering) = mail(series.answering.clone().unwrap_or_default()).await? else {
            tracing::warn!(series = series.id, "the mail to answer is gone; no reply");
            return Ok(None);
        };
        let outcome = match decision.verdict {
            Verdict::Pass => notify::SeriesOutcome::Passed {
                sequences: policy.sequences.clone(),
            },
            Verdict::Regression => {
                let at = decision.culprit().unwrap_or(flight.commits.len());
                let step = notify::failing_step_at(
                    runs,
                    run_steps,
                    &decision.steps,
                    at,
                    &self.settings.public_url,
                );
                // Patch i of the series made commit i of the flight.
                let culprit = match decision.culprit() {
                    Some(i) => {
                        let subject = match series.patches.get(i - 1) {
                            Some(id) => mail(id.clone()).await?.map(|m| m.subject_line),
                            None => None,
                        };
                        Some(subject.unwrap_or_else(|| {
                            flight.commit(i).map_or(String::new(), |c| c.title.clone())
                        }))
                    }
                    None => None,
                };
                notify::SeriesOutcome::Failed {
                    culprit,
                    step: step.as_ref().map_or_else(
                        || {
                            decision
                                .steps
                                .iter()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                                + " failed"
                        },
                        |s| format!("{}/{} {}", s.sequence, s.name, s.status),
                    ),
                    log_excerpt: step.map(|s| s.log_tail).unwrap_or_default(),
                }
            }
            other => notify::SeriesOutcome::NotJudged {
                verdict: other.to_string(),
                reason: decision.reason.clone(),
            },
        };
        let base = series
            .base_said
            .clone()
            .unwrap_or_else(|| short(&flight.base).to_string());
        Ok(Some(notify::compose_series_reply(&notify::SeriesReply {
            from: &self.settings.mail_from,
            list: &list.address,
            answering: &answering,
            base: &base,
            outcome,
            link: Some(format!(
                "{}/flights/{}",
                self.settings.public_url, flight.id
            )),
        })?))
    }
}
