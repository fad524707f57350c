//! Snapshots of every mail pushgate sends, as a reader sees it: the headers but the date, then
//! the body decoded. A change to a template or a composer shows here as a diff to review
//! (`cargo insta review`), instead of slipping past a `contains` check.

use std::collections::BTreeSet;

use super::*;
use crate::culprit::Observed;
use crate::decision::{FinderStep, Role, Verdict};
use crate::fixtures::{commit, flight, policy_in, run, step, ANN, BOB};
use crate::intake::mail::Mail;
use crate::store::{Conclusion, HealthRow, JobRow, JobState, NewMail, PushRow, RunState};

/// The mail as its reader gets it, less the one header that changes by the second.
fn shown(mail: &NewMail) -> String {
    let (head, _) = mail
        .message
        .split_once("\r\n\r\n")
        .expect("a header and a body");
    let parsed = mail_parser::MessageParser::default()
        .parse(mail.message.as_bytes())
        .expect("a message");
    let mut out = format!(
        "kind: {}\nenvelope: {}\n\n",
        mail.kind,
        mail.recipients.join(", ")
    );
    for line in head.split("\r\n") {
        if !line.starts_with("Date:") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push('\n');
    out.push_str(&parsed.body_text(0).expect("a text body"));
    out
}

#[test]
fn a_regression_sends_a_gate_report_and_a_culprit_mail() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, sequences) = policy_in(dir.path());
    let log = dir.path().join("test.log");
    std::fs::write(
        &log,
        "make check\nCC greet.o\nFAIL: greet prints 'Hello Xen'\n",
    )
    .unwrap();
    let commits = vec![
        commit(1, "docs: say what it is for", ANN),
        commit(2, "x86/mm: tidy the page walk", BOB),
        commit(
            3,
            "greet: simplify the greeting",
            ("Carol Coder", "carol@example.org"),
        ),
        commit(4, "docs: list the authors", ANN),
    ];
    let flight = flight(commits, Verdict::Regression, Some(3));
    let sha = |i: usize| flight.commits[i - 1].sha.clone();
    let runs = vec![
        run(1, 4, &sha(4), Role::Tip, 1, RunState::Fail),
        run(2, 4, &sha(4), Role::Tip, 2, RunState::Fail),
        run(3, 0, &flight.base, Role::Baseline, 1, RunState::Pass),
        run(4, 2, &sha(2), Role::Bisect, 1, RunState::Pass),
        run(5, 3, &sha(3), Role::Bisect, 1, RunState::Fail),
    ];
    let run_steps = vec![
        step(11, 1, "build", "pass", None),
        step(12, 1, "test", "fail", Some(&log)),
        step(51, 5, "build", "pass", None),
        step(52, 5, "test", "fail", Some(&log)),
    ];
    let push = PushRow {
        flight_id: 7,
        target: "master".into(),
        old_sha: flight.base.clone(),
        new_sha: sha(2),
        pushed_at: 0,
    };
    let finder_log = [
        FinderStep {
            search: "smoke/test".into(),
            index: 2,
            result: Observed::Pass,
            suspect: Some(3),
            probability: 0.6,
        },
        FinderStep {
            search: "smoke/test".into(),
            index: 3,
            result: Observed::Fail,
            suspect: Some(3),
            probability: 0.995,
        },
    ];
    let steps: BTreeSet<String> = ["smoke/test".to_string()].into();
    let conclusion = Conclusion {
        verdict: Verdict::Regression,
        culprit: Some(sha(3)),
        blames: Vec::new(),
        pushed_to: Some(sha(2)),
        reason: "smoke/test broke: the first bad commit is #3 of 4".into(),
        finder_log: Vec::new(),
    };
    let mails = compose(&FlightFacts {
        policy: &policy,
        flight: &flight,
        conclusion: &conclusion,
        culprits: &[crate::decision::Blame {
            index: 3,
            steps: ["smoke/test".to_string()].into(),
            probability: 0.999,
        }],
        not_gating: &[],
        blamed_before: &[],
        reused_from: &[],
        steps: &steps,
        push: Some(&push),
        would_push: None,
        runs: &runs,
        run_steps: &run_steps,
        finder_log: &finder_log,
        sequences: &sequences,
        public_url: "https://gate.example.org",
        from: "pushgate <gate@example.org>",
    })
    .unwrap();
    assert_eq!(mails.len(), 2);
    insta::assert_snapshot!("gate_report_regression", shown(&mails[0]));
    insta::assert_snapshot!("culprit", shown(&mails[1]));
}

#[test]
fn a_pass_sends_a_gate_report_only() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, sequences) = policy_in(dir.path());
    let commits = vec![
        commit(1, "docs: say what it is for", ANN),
        commit(2, "x86/mm: tidy the page walk", BOB),
    ];
    let flight = flight(commits, Verdict::Pass, None);
    let runs = vec![run(1, 2, &flight.tip, Role::Tip, 1, RunState::Pass)];
    let run_steps = vec![
        step(11, 1, "build", "pass", None),
        step(12, 1, "test", "pass", None),
    ];
    let push = PushRow {
        flight_id: 7,
        target: "master".into(),
        old_sha: flight.base.clone(),
        new_sha: flight.tip.clone(),
        pushed_at: 0,
    };
    let conclusion = Conclusion {
        verdict: Verdict::Pass,
        culprit: None,
        blames: Vec::new(),
        pushed_to: Some(flight.tip.clone()),
        reason: "every sequence passed on the tip".into(),
        finder_log: Vec::new(),
    };
    let mails = compose(&FlightFacts {
        policy: &policy,
        flight: &flight,
        conclusion: &conclusion,
        culprits: &[],
        not_gating: &[],
        blamed_before: &[],
        reused_from: &[],
        steps: &BTreeSet::new(),
        push: Some(&push),
        would_push: None,
        runs: &runs,
        run_steps: &run_steps,
        finder_log: &[],
        sequences: &sequences,
        public_url: "https://gate.example.org",
        from: "pushgate <gate@example.org>",
    })
    .unwrap();
    assert_eq!(mails.len(), 1);
    insta::assert_snapshot!("gate_report_pass", shown(&mails[0]));
}

#[test]
fn a_paused_run_tells_its_submitter_how_to_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("boot.log");
    std::fs::write(
        &log,
        "xl create guest.cfg\nguest did not answer on its console\n",
    )
    .unwrap();
    let mail = compose_pause(&PauseFacts {
        from: "pushgate <gate@example.org>",
        to: vec![
            "Ann Author <ann@example.org>".into(),
            "xen-devel@lists.example.org".into(),
        ],
        run_id: 42,
        testcase: "TC-8005 boot",
        sha: &"1a2b".repeat(10),
        subject_prefix: "[xen staging]",
        host: "dom0-a",
        log: &log,
        resumes: Some("at 2026-12-02 09:00 UTC".into()),
        public_url: "https://gate.example.org",
    })
    .unwrap()
    .unwrap();
    insta::assert_snapshot!("pause", shown(&mail));
}

fn cover() -> Mail {
    Mail::parse(
        b"From: Ann Author <ann@example.org>\nTo: xen-devel@lists.example.org\n\
          Subject: [PATCH v2 0/3] x86: the series\nMessage-ID: <c@example.org>\n\
          Date: Tue, 01 Dec 2026 09:00:00 +0000\n\
          In-Reply-To: <v1@example.org>\nReferences: <v1@example.org>\n\nwhy\n",
    )
    .unwrap()
}

fn reply(outcome: SeriesOutcome) -> String {
    let answering = cover();
    shown(
        &compose_series_reply(&SeriesReply {
            from: "pushgate <gate@example.org>",
            list: "xen-devel@lists.example.org",
            answering: &answering,
            base: "base-commit 1a2b3c4d",
            outcome,
            link: Some("https://gate.example.org/flights/9".into()),
        })
        .unwrap(),
    )
}

#[test]
fn series_replies_say_what_came_of_the_series() {
    insta::assert_snapshot!(
        "series_does_not_apply",
        reply(SeriesOutcome::DoesNotApply {
            patch: "[PATCH v2 2/3] x86/mm: two".into(),
            file: Some("xen/arch/x86/mm.c".into()),
            reason: "hunk at line 3 did not apply".into(),
        })
    );
    insta::assert_snapshot!(
        "series_passed",
        reply(SeriesOutcome::Passed {
            sequences: vec!["smoke".into(), "bvt".into()],
        })
    );
    insta::assert_snapshot!(
        "series_failed",
        reply(SeriesOutcome::Failed {
            culprit: Some("[PATCH v2 3/3] x86/mm: three".into()),
            step: "smoke/boot timed out".into(),
            log_excerpt: vec!["booting guest".into(), "no answer in 600s".into()],
        })
    );
    insta::assert_snapshot!(
        "series_incomplete",
        reply(SeriesOutcome::Incomplete {
            missing: vec![2, 3],
            total: 3,
        })
    );
    insta::assert_snapshot!(
        "series_not_judged",
        reply(SeriesOutcome::NotJudged {
            verdict: "like-baseline".into(),
            reason: "smoke/test fails on the base as well".into(),
        })
    );
}

#[test]
fn a_job_mails_its_runs_and_steps() {
    let job = JobRow {
        id: 12,
        kind: "manual".into(),
        branch_id: None,
        sequence: "smoke".into(),
        repository: "https://xenbits.example.org/xen.git".into(),
        rev: "staging".into(),
        sha: Some("1a2b".repeat(10)),
        host: None,
        pause_on_fail: None,
        email: Some("ann@example.org".into()),
        submitter: "ann".into(),
        state: JobState::Fail,
        message: String::new(),
        created_at: 0,
        started_at: Some(0),
        finished_at: Some(0),
    };
    let mut r = run(30, 0, &"1a2b".repeat(10), Role::Tip, 1, RunState::Fail);
    r.flight_id = None;
    r.job_id = Some(12);
    r.host = "dom0-a".into();
    let runs = vec![(
        r,
        vec![
            step(301, 30, "build", "pass", None),
            step(302, 30, "test", "fail", None),
        ],
    )];
    let mail = compose_job_result(&JobFacts {
        from: "pushgate <gate@example.org>",
        to: "ann@example.org",
        job: &job,
        state: JobState::Fail,
        message: "run 30 failed: smoke/test",
        sha: &"1a2b".repeat(10),
        runs: &runs,
        public_url: "https://gate.example.org",
    })
    .unwrap()
    .unwrap();
    insta::assert_snapshot!("job_result", shown(&mail));
}

#[test]
fn a_host_out_of_service_is_told_to_the_admin() {
    let health = HealthRow {
        host: "dom0-a".into(),
        broken_streak: 3,
        state: "out-of-service".into(),
        reason: "3 broken runs in a row, the last: ssh: no route to host".into(),
        updated_at: 1_764_579_600_000,
    };
    let mail = compose_out_of_service("pushgate <gate@example.org>", "lab@example.org", &health)
        .unwrap()
        .unwrap();
    insta::assert_snapshot!("host_out_of_service", shown(&mail));
}

#[test]
fn a_forced_push_is_told_to_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let (policy, _) = policy_in(dir.path());
    let force = crate::store::OverrideRow {
        id: 5,
        branch_id: 1,
        action: "force".into(),
        rev: Some("1a2b3c4d".into()),
        who: "mia".into(),
        why: "the security fix cannot wait for the flaky boot test".into(),
        created_at: 0,
        done_at: None,
        outcome: None,
    };
    let mail = compose_force(
        "pushgate <gate@example.org>",
        &policy,
        &force,
        "pushed 1a2b3c4d to master (was 00000000) without testing",
        "https://gate.example.org",
    )
    .unwrap()
    .unwrap();
    insta::assert_snapshot!("force", shown(&mail));
}
