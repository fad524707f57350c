//! Composing a flight's mail: the gate report for the list, and the culprit mail for the people
//! whose commit broke the branch.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;

use lettre::message::{header::ContentType, Mailbox, Message};
use serde::Serialize;

use super::envelope::seal;
use super::ReportError;
use crate::config::policy::{Mode, Policy};
use crate::decision::{Blame, Verdict};
use crate::repo::{short, CommitInfo};
use crate::sequence::Sequences;
use crate::store::{BlameRow, Conclusion, FlightRow, NewMail, PushRow, RunRow, StepRow};
use crate::templates::render;

/// Lines of the failing step's log quoted in the culprit mail.
pub(super) const LOG_TAIL_LINES: usize = 30;

/// Everything known about a finished flight that its mail may tell.
pub struct FlightFacts<'a> {
    pub policy: &'a Policy,
    pub flight: &'a FlightRow,
    pub conclusion: &'a Conclusion,
    /// The culprits named, one per regression, oldest first.
    pub culprits: &'a [Blame],
    /// The failing steps the decision is about (`sequence/step`).
    pub steps: &'a BTreeSet<String>,
    /// Steps that failed on the tip and did not gate, and why.
    pub not_gating: &'a [(String, Verdict)],
    /// Culprits earlier flights of the branch named: their authors were mailed then.
    pub blamed_before: &'a [BlameRow],
    /// Earlier flights whose results this flight reused.
    pub reused_from: &'a [i64],
    pub push: Option<&'a PushRow>,
    /// Where a report-only policy would have moved the target.
    pub would_push: Option<&'a str>,
    pub runs: &'a [RunRow],
    pub run_steps: &'a [StepRow],
    /// The culprit finder's results in order, each with the top suspect after it.
    pub finder_log: &'a [crate::decision::FinderStep],
    pub sequences: &'a Sequences,
    pub public_url: &'a str,
    pub from: &'a str,
}

#[derive(Serialize)]
struct Pushed {
    old_short: String,
    new_short: String,
    count: usize,
}

#[derive(Serialize)]
struct RangeCommit<'a> {
    mark: &'static str,
    short: &'a str,
    title: &'a str,
}

/// The step a report shows as the failure, with the end of its log.
#[derive(Serialize)]
pub struct FailingStep {
    pub sequence: String,
    pub name: String,
    pub status: String,
    pub exit_code: Option<i64>,
    pub log_tail: Vec<String>,
    pub url: String,
}

#[derive(Serialize)]
struct Context<'a> {
    headline: String,
    policy: &'a str,
    repository: &'a str,
    staging: &'a str,
    target: &'a str,
    verdict: &'a str,
    reason: &'a str,
    base_short: &'a str,
    tip_short: &'a str,
    commits: Vec<RangeCommit<'a>>,
    pushed: Option<Pushed>,
    would_push: Option<&'a str>,
    culprit: Option<&'a CommitInfo>,
    steps: Vec<&'a str>,
    /// Every regression: its first bad commit and the steps it broke.
    regressions: Vec<Regression<'a>>,
    not_gating: Vec<String>,
    blamed_before: Vec<String>,
    reused_from: String,
    tests: Vec<String>,
    finder_log: Vec<String>,
    failing_step: Option<FailingStep>,
    reproduce: Vec<String>,
    flight_id: i64,
    url: String,
}

#[derive(Serialize, Clone)]
struct Regression<'a> {
    #[serde(skip)]
    blame: &'a Blame,
    commit: &'a CommitInfo,
    steps: Vec<&'a str>,
}

/// The mail a finished flight sends: a gate report, and a culprit mail per regression whose
/// culprit no earlier flight named (its author heard then).
pub fn compose(f: &FlightFacts) -> Result<Vec<NewMail>, ReportError> {
    let flight = f.flight;
    let policy = f.policy;
    let pushed_index = f
        .push
        .and_then(|p| flight.commits.iter().position(|c| c.sha == p.new_sha))
        .map(|i| i + 1);
    let regressions: Vec<Regression> = f
        .culprits
        .iter()
        .filter_map(|b| {
            Some(Regression {
                blame: b,
                commit: flight.commit(b.index)?,
                steps: b.steps.iter().map(String::as_str).collect(),
            })
        })
        .collect();
    let culprit = regressions.first().map(|r| r.commit);
    let headline = headline(f, &regressions);
    let failing = failing_step(f);
    let context = Context {
        headline: headline.clone(),
        policy: &policy.name,
        repository: &policy.repository,
        staging: &policy.staging,
        target: &policy.target,
        verdict: f.conclusion.verdict.as_str(),
        reason: &f.conclusion.reason,
        base_short: short(&flight.base),
        tip_short: short(&flight.tip),
        commits: flight
            .commits
            .iter()
            .enumerate()
            .map(|(i, c)| RangeCommit {
                mark: if f.culprits.iter().any(|b| b.index == i + 1) {
                    "x"
                } else if pushed_index.is_some_and(|p| i < p) {
                    "+"
                } else {
                    " "
                },
                short: short(&c.sha),
                title: &c.title,
            })
            .collect(),
        pushed: f.push.map(|p| Pushed {
            old_short: short(&p.old_sha).to_string(),
            new_short: short(&p.new_sha).to_string(),
            count: pushed_count(flight, p),
        }),
        would_push: f.would_push.map(short),
        culprit,
        steps: f.steps.iter().map(String::as_str).collect(),
        regressions: regressions.clone(),
        not_gating: f
            .not_gating
            .iter()
            .map(|(s, v)| match tip_status(f, s) {
                Some(status) => format!("{s}: {v} ({status} on the tip)"),
                None => format!("{s}: {v}"),
            })
            .collect(),
        blamed_before: blamed_before_lines(f),
        reused_from: f
            .reused_from
            .iter()
            .map(|id| format!("#{id}"))
            .collect::<Vec<_>>()
            .join(", "),
        tests: test_lines(f),
        finder_log: finder_lines(flight, f.finder_log),
        reproduce: failing
            .as_ref()
            .map(|s| reproduce(f, s))
            .unwrap_or_default(),
        failing_step: failing,
        flight_id: flight.id,
        url: format!("{}/flights/{}", f.public_url, flight.id),
    };

    let mut mails = Vec::new();
    let report_to: Vec<Mailbox> = policy
        .mail
        .list
        .iter()
        .filter_map(|l| l.parse().ok())
        .collect();
    let report_cc = range_people(f);
    if !report_to.is_empty() || !report_cc.is_empty() {
        // As OSSTest's `[xen-unstable test] 12345: ...`: the project, then the flight.
        let subject = format!(
            "{} flight {}: {headline}",
            policy.mail.subject_prefix, f.flight.id
        );
        mails.push(build(
            f,
            "gate-report",
            &subject,
            &report_to,
            &report_cc,
            render("gate-report.txt", &context)?,
        )?);
    }
    // A culprit mail per regression whose culprit no earlier flight blamed (its author heard
    // then); the context is the report's, with this culprit's commit, steps and failure.
    let mut context = context;
    let fresh = regressions
        .iter()
        .filter(|_| f.conclusion.verdict == Verdict::Regression)
        .filter(|r| !f.blamed_before.iter().any(|b| b.sha == r.commit.sha));
    for (n, r) in fresh.enumerate() {
        let c = r.commit;
        context.culprit = Some(c);
        context.steps = r.steps.clone();
        context.failing_step = failing_step_at(
            f.runs,
            f.run_steps,
            &r.blame.steps,
            r.blame.index,
            f.public_url,
        );
        context.reproduce = context
            .failing_step
            .as_ref()
            .map(|s| reproduce(f, s))
            .unwrap_or_default();
        let kind = match n {
            0 => "culprit".to_string(),
            n => format!("culprit-{}", n + 1),
        };
        let mut to = Vec::new();
        if policy.mail.authors {
            to.extend(mailbox(&c.author_name, &c.author_email));
        }
        if policy.mail.committers {
            to.extend(mailbox(&c.committer_name, &c.committer_email));
        }
        let to = dedupe(to, &[]);
        let cc = dedupe(report_to.clone(), &to);
        if !to.is_empty() || !cc.is_empty() {
            let subject = format!(
                "{} your commit {} \"{}\" broke {}",
                policy.mail.subject_prefix,
                short(&c.sha),
                c.title,
                context.steps.join(", ")
            );
            mails.push(build(
                f,
                &kind,
                &subject,
                &to,
                &cc,
                render("culprit.txt", &context)?,
            )?);
        }
    }
    Ok(mails)
}

fn pushed_count(flight: &FlightRow, push: &PushRow) -> usize {
    let old = flight
        .commits
        .iter()
        .position(|c| c.sha == push.old_sha)
        .map_or(0, |i| i + 1);
    let new = flight
        .commits
        .iter()
        .position(|c| c.sha == push.new_sha)
        .map_or(0, |i| i + 1);
    new.saturating_sub(old)
}

/// How a step (`sequence/step`) ended on the tip: `fail`, `timeout`, ...
fn tip_status<'a>(f: &'a FlightFacts, step: &str) -> Option<&'a str> {
    let tip = f.flight.commits.len();
    f.runs
        .iter()
        .filter(|r| r.commit_index == tip && r.role == crate::decision::Role::Tip)
        .flat_map(|r| {
            f.run_steps
                .iter()
                .filter(move |s| s.run_id == r.id && format!("{}/{}", r.sequence, s.name) == step)
        })
        .map(|s| s.status.as_str())
        .next_back()
}

/// What became of each commit earlier flights blamed that is still in the range, given this
/// flight's culprits (range indices) and verdict: for the report and the flight's page.
pub fn blamed_before(
    flight: &FlightRow,
    culprits: &[usize],
    verdict: Option<Verdict>,
    before: &[BlameRow],
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut seen = HashSet::new();
    for b in before {
        let Some(at) = flight.commits.iter().position(|c| c.sha == b.sha) else {
            continue;
        };
        if !seen.insert(&b.sha) || culprits.contains(&(at + 1)) {
            continue;
        }
        let c = &flight.commits[at];
        let revert = format!("Revert \"{}\"", c.title);
        let mut fate: Vec<String> = Vec::new();
        if let Some(r) = flight.commits[at + 1..]
            .iter()
            .position(|x| x.title == revert)
        {
            let r = at + 1 + r;
            fate.push(format!(
                "reverted by #{} {}",
                r + 1,
                short(&flight.commits[r].sha)
            ));
        }
        match culprits.iter().min() {
            Some(&now) if now > at + 1 => fate.push(format!(
                "fixed since: the tip's failure began later, at #{now}"
            )),
            None if verdict.is_some_and(|v| v != Verdict::Regression) => {
                fate.push("fixed since: the tip passes".into())
            }
            _ => {}
        }
        if fate.is_empty() {
            fate.push("still in the range".into());
        }
        lines.push(format!(
            "#{} {} {}: blamed by flight {}; {}",
            at + 1,
            short(&c.sha),
            c.title,
            b.flight_id,
            fate.join("; ")
        ));
    }
    lines
}

fn blamed_before_lines(f: &FlightFacts) -> Vec<String> {
    let culprits: Vec<usize> = f.culprits.iter().map(|b| b.index).collect();
    blamed_before(
        f.flight,
        &culprits,
        Some(f.conclusion.verdict),
        f.blamed_before,
    )
}

fn headline(f: &FlightFacts, regressions: &[Regression]) -> String {
    let mut line = headline_of_verdict(f, regressions);
    if !f.not_gating.is_empty() {
        let mut why: Vec<&str> = f.not_gating.iter().map(|(_, v)| v.as_str()).collect();
        why.sort_unstable();
        why.dedup();
        let n = f.not_gating.len();
        line.push_str(&format!(
            "; {n} step{} did not gate ({})",
            if n == 1 { "" } else { "s" },
            why.join(", ")
        ));
    }
    line
}

fn headline_of_verdict(f: &FlightFacts, regressions: &[Regression]) -> String {
    let culprit = regressions.first().map(|r| r.commit);
    let p = f.policy;
    let verdict = f.conclusion.verdict;
    let tail = if matches!(verdict, Verdict::Pass) {
        String::new()
    } else {
        format!(" ({verdict})")
    };
    if let Some(c) = culprit {
        let more = match regressions.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        return format!(
            "blocked: regression in {} \"{}\"{more}",
            short(&c.sha),
            c.title
        );
    }
    if let Some(push) = f.push {
        let n = pushed_count(f.flight, push);
        return format!(
            "pushed {n} commit{} to {}{tail}",
            if n == 1 { "" } else { "s" },
            p.target
        );
    }
    if p.mode == Mode::ReportOnly {
        if let Some(sha) = f.would_push {
            return format!("would push {} to {}{tail}", short(sha), p.target);
        }
    }
    match verdict {
        Verdict::Broken => format!("broken: could not test {}", short(&f.flight.tip)),
        _ => format!("nothing pushed{tail}"),
    }
}

/// One line per run, in the order the runs were made.
/// One line per result of the search: the commit, its result, then the top suspect.
pub fn finder_lines(flight: &FlightRow, log: &[crate::decision::FinderStep]) -> Vec<String> {
    let name = |i: usize| flight.commit(i).map_or("?", |c| short(&c.sha));
    let several = log.iter().any(|s| s.search != log[0].search);
    log.iter()
        .map(|s| {
            let search = if several {
                format!("[{}] ", s.search)
            } else {
                String::new()
            };
            let suspect = match s.suspect {
                Some(c) => format!("#{c} {}", name(c)),
                None => "no culprit".into(),
            };
            format!(
                "{search}#{:<3} {}  {:<4}  top suspect {suspect} ({:.3})",
                s.index,
                name(s.index),
                match s.result {
                    crate::culprit::Observed::Pass => "pass",
                    crate::culprit::Observed::Fail => "fail",
                    crate::culprit::Observed::Untestable => "skip",
                },
                s.probability
            )
        })
        .collect()
}

fn test_lines(f: &FlightFacts) -> Vec<String> {
    let several = f.policy.sequences.len() > 1;
    f.runs
        .iter()
        .map(|r| {
            let title = f
                .flight
                .commit(r.commit_index)
                .map_or("", |c| c.title.as_str());
            let seq = if several {
                format!(" [{}]", r.sequence)
            } else {
                String::new()
            };
            format!(
                "{}  {:<8} attempt {}  {:<7} {}{seq}",
                short(&r.sha),
                r.role.as_str(),
                r.attempt,
                r.state.as_str(),
                title
            )
            .trim_end()
            .to_string()
        })
        .collect()
}

/// The first step of the (oldest) culprit's failing run that is one of its steps.
fn failing_step(f: &FlightFacts) -> Option<FailingStep> {
    let first = f.culprits.first()?;
    failing_step_at(f.runs, f.run_steps, &first.steps, first.index, f.public_url)
}

/// The first failed or timed-out step, among `steps` (`sequence/step`), of the runs of the
/// commit at `index`.
pub fn failing_step_at(
    runs: &[RunRow],
    run_steps: &[StepRow],
    steps: &BTreeSet<String>,
    index: usize,
    public_url: &str,
) -> Option<FailingStep> {
    runs.iter()
        .filter(|r| r.commit_index == index)
        .flat_map(|r| {
            run_steps
                .iter()
                .filter(move |s| s.run_id == r.id)
                .map(move |s| (r, s))
        })
        .find(|(r, s)| {
            matches!(s.status.as_str(), "fail" | "timeout")
                && steps.contains(&format!("{}/{}", r.sequence, s.name))
        })
        .map(|(r, s)| FailingStep {
            sequence: r.sequence.clone(),
            name: s.name.clone(),
            status: if s.status == "timeout" {
                "timed out".into()
            } else {
                "failed".into()
            },
            exit_code: s.exit_code,
            log_tail: s
                .log_path
                .as_deref()
                .map(|p| log_tail(Path::new(p), LOG_TAIL_LINES))
                .unwrap_or_default(),
            url: format!("{public_url}/logs/{}", s.id),
        })
}

/// The last `n` lines of a log, or a note saying why there are none.
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..]
                .iter()
                .map(|l| l.trim_end().to_string())
                .collect()
        }
        Err(e) => vec![format!("(log {} unreadable: {e})", path.display())],
    }
}

/// The commands of the failing sequence up to its failing step.
fn reproduce(f: &FlightFacts, step: &FailingStep) -> Vec<String> {
    let Some(seq) = f.sequences.get(&step.sequence) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in seq.testcases() {
        if let Some(s) = &t.step {
            out.push(match &s.workdir {
                Some(w) => format!("(cd {} && {})", w.display(), s.command),
                None => s.command.clone(),
            });
        }
        if t.name == step.name {
            break;
        }
    }
    out
}

/// Authors and committers of the range, as the policy wants them copied.
fn range_people(f: &FlightFacts) -> Vec<Mailbox> {
    let mut people = Vec::new();
    for c in &f.flight.commits {
        if f.policy.mail.authors {
            people.extend(mailbox(&c.author_name, &c.author_email));
        }
        if f.policy.mail.committers {
            people.extend(mailbox(&c.committer_name, &c.committer_email));
        }
    }
    dedupe(people, &[])
}

fn mailbox(name: &str, email: &str) -> Option<Mailbox> {
    let address = email.parse().ok()?;
    Some(Mailbox::new(
        (!name.is_empty()).then(|| name.to_string()),
        address,
    ))
}

/// Drops repeated addresses (case-insensitively) and those already in `except`.
fn dedupe(people: Vec<Mailbox>, except: &[Mailbox]) -> Vec<Mailbox> {
    let mut seen: HashSet<String> = except
        .iter()
        .map(|m| m.email.to_string().to_lowercase())
        .collect();
    people
        .into_iter()
        .filter(|m| seen.insert(m.email.to_string().to_lowercase()))
        .collect()
}

fn build(
    f: &FlightFacts,
    kind: &str,
    subject: &str,
    to: &[Mailbox],
    cc: &[Mailbox],
    body: String,
) -> Result<NewMail, ReportError> {
    let from: Mailbox = f
        .from
        .parse()
        .map_err(|e| ReportError::Mail(format!("sender `{}`: {e}", f.from)))?;
    let message_id = format!(
        "<pushgate.{}.{}.{}@{}>",
        f.flight.id,
        kind,
        short(&f.flight.tip),
        from.email.domain()
    );
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(message_id.clone()))
        .header(ContentType::TEXT_PLAIN);
    if to.is_empty() {
        // Culprit mail with nobody to address goes to the list only, as To.
        for m in cc {
            builder = builder.to(m.clone());
        }
    } else {
        for m in to {
            builder = builder.to(m.clone());
        }
        for m in dedupe(cc.to_vec(), to) {
            builder = builder.cc(m);
        }
    }
    seal(builder, body, kind, message_id, subject)
}
