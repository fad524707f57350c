//! The push gate end to end, in process, against real git repositories.

mod support;

use std::collections::HashSet;

use pushgate::decision::Verdict;
use pushgate::gate::BranchOutcome;
use pushgate::store::{RunState, Store};
use support::*;

fn decided(outcome: &BranchOutcome) -> (Verdict, Option<String>, Option<String>) {
    match outcome {
        BranchOutcome::Decided {
            verdict,
            pushed_to,
            culprit,
            ..
        } => (*verdict, pushed_to.clone(), culprit.clone()),
        other => panic!("expected a decision, got {other:?}"),
    }
}

/// Every value master took was a commit that passed (or the old master).
async fn assert_master_only_moved_to_tested_commits(up: &Upstream, store: &Store, old: &str) {
    let history = up.history("master");
    let mut passed: HashSet<String> = HashSet::new();
    for branch in store.branches().await.unwrap() {
        for flight in store.recent_flights(branch.id, 100).await.unwrap() {
            for run in store.runs(flight.id).await.unwrap() {
                if run.state == RunState::Pass {
                    passed.insert(run.sha.clone());
                }
            }
        }
    }
    for (i, sha) in history.iter().enumerate() {
        assert!(
            sha == old || passed.contains(sha),
            "master moved to {sha}, which never passed"
        );
        if i > 0 {
            // Fast-forward only: each value contains the one before.
            git(
                &up.bare,
                &["merge-base", "--is-ancestor", &history[i - 1], sha],
            );
        }
    }
}

/// Fails when a process whose command line matches `pattern` runs.
fn assert_none_running(pattern: &str) {
    let left = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left behind: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

#[tokio::test]
async fn a_passing_staging_is_pushed_exactly_once() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(3, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let service = open_service(sandbox.config("")).await;

    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, culprit) = decided(outcome);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(pushed.as_deref(), Some(shas[2].as_str()));
    assert_eq!(culprit, None);
    assert_eq!(up.head("master"), shas[2]);
    // The page and /api/branches say where master is now, not where the pass found it.
    let branch = &service.store().branches().await.unwrap()[0];
    assert_eq!(branch.target_head.as_deref(), Some(shas[2].as_str()));

    // A second pass finds nothing to do: no second flight, push or mail.
    let again = &service.gate_once().await.unwrap()[0].1;
    assert!(matches!(again, BranchOutcome::Idle { .. }), "{again:?}");
    let branch = &service.store().branches().await.unwrap()[0];
    assert_eq!(service.store().pushes(branch.id).await.unwrap().len(), 1);
    assert_eq!(
        service
            .store()
            .recent_flights(branch.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(branch.state, "idle");
    let mail = service.deliver_mail().await.unwrap();
    assert_eq!(mail.sent.len(), 1, "one gate report");
    let report = parse_mail(&std::fs::read(&sandbox.outbox()[0]).unwrap());
    assert_eq!(
        report.subject,
        "[project staging] flight 1: pushed 3 commits to master"
    );
    assert_eq!(report.to, vec!["devel@lists.example.org"]);
}

async fn culprit_scenario(database_url: Option<&str>, repository: Option<String>) {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let old_master = up.head("master");
    let shas = up.commits(10, Some(6));
    up.push_staging();
    let sandbox = Sandbox::new();
    let repo = repository.unwrap_or_else(|| up.bare.display().to_string());
    sandbox.standard_policy(&repo);
    let extra = database_url
        .map(|u| format!("database_url = \"{u}\"\n"))
        .unwrap_or_default();
    let service = open_service(sandbox.config(&extra)).await;

    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, culprit) = decided(outcome);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(
        culprit.as_deref(),
        Some(shas[5].as_str()),
        "commit 6 is the culprit"
    );
    assert_eq!(
        pushed.as_deref(),
        Some(shas[4].as_str()),
        "the 5 before it are pushed"
    );
    assert_eq!(up.head("master"), shas[4]);
    assert_eq!(up.head("staging"), shas[9], "staging is left alone");
    assert_master_only_moved_to_tested_commits(&up, service.store(), &old_master).await;

    // The decision stands until staging changes: no re-test, no second mail.
    let again = &service.gate_once().await.unwrap()[0].1;
    assert!(
        matches!(again, BranchOutcome::Idle { message } if message.contains("waiting")),
        "{again:?}"
    );
    let branch = &service.store().branches().await.unwrap()[0];
    assert_eq!(branch.state, "blocked");
    assert!(branch.message.contains("regression"), "{}", branch.message);

    let sent = service.deliver_mail().await.unwrap().sent;
    assert_eq!(sent.len(), 2, "gate report and culprit mail");
    let mails: Vec<Mail> = sandbox
        .outbox()
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .collect();
    let culprit_mail = mails
        .iter()
        .find(|m| m.subject.contains("your commit"))
        .expect("a culprit mail");
    let author = AUTHORS[6 % AUTHORS.len()].1;
    assert!(
        culprit_mail.to.contains(&author.to_string()),
        "{:?}",
        culprit_mail.to
    );
    assert_eq!(culprit_mail.cc, vec!["devel@lists.example.org"]);
    assert!(
        culprit_mail.text.contains(&shas[5]),
        "{}",
        culprit_mail.text
    );
    assert!(
        culprit_mail.text.contains("BROKEN is here"),
        "log tail quoted"
    );
    assert!(
        culprit_mail.text.contains("git checkout"),
        "how to reproduce"
    );

    // A fix on staging is tested and goes through, culprit and all.
    git(&up.work, &["rm", "-q", "BROKEN"]);
    let fix = up.commit("remove BROKEN", AUTHORS[0]);
    up.push_staging();
    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, _) = decided(outcome);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(pushed.as_deref(), Some(fix.as_str()));
    assert_eq!(up.head("master"), fix);
    assert_master_only_moved_to_tested_commits(&up, service.store(), &old_master).await;
    service.store().close().await;
}

#[tokio::test]
async fn the_culprit_is_found_and_the_commits_before_it_pushed() {
    culprit_scenario(None, None).await;
}

#[tokio::test]
async fn the_same_gate_runs_on_postgresql() {
    let pg = Postgres::new();
    culprit_scenario(Some(&pg.url), None).await;
}

#[tokio::test]
async fn the_gate_fetches_and_pushes_over_git_daemon() {
    let root = tempfile::tempdir().unwrap();
    // The daemon serves the directory that culprit_scenario's upstream will be created in is
    // not known ahead, so serve a fixed layout: root/upstream.git.
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(4, Some(3));
    up.push_staging();
    let daemon = GitDaemon::start(root.path());
    let sandbox = Sandbox::new();
    sandbox.standard_policy(&format!("git://127.0.0.1:{}/upstream.git", daemon.port));
    let service = open_service(sandbox.config("")).await;
    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, culprit) = decided(outcome);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(culprit.as_deref(), Some(shas[2].as_str()));
    assert_eq!(pushed.as_deref(), Some(shas[1].as_str()));
    assert_eq!(up.head("master"), shas[1], "pushed through git daemon");
}

#[tokio::test]
async fn a_failure_that_master_shares_does_not_block() {
    let root = tempfile::tempdir().unwrap();
    // `lint` fails on master already; the range does not make it worse.
    let up = Upstream::new(
        root.path(),
        &[("README", "hello\n"), ("LINT_FAILS", "yes\n")],
    );
    let shas = up.commits(3, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.gate_with(
        &up,
        "checks",
        "[[step]]\nname = \"lint\"\ncommand = \"test ! -e LINT_FAILS\"\nblocker = false\n[[step]]\nname = \"test\"\ncommand = \"true\"\n",
        0,
    );
    let service = open_service(sandbox.config("")).await;
    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, culprit) = decided(outcome);
    assert_eq!(
        verdict,
        Verdict::NeverPassed,
        "lint never passed here: {outcome:?}"
    );
    assert_eq!(pushed.as_deref(), Some(shas[2].as_str()));
    assert_eq!(culprit, None);

    // Once lint has passed on this branch, a shared failure is `like-baseline`.
    std::fs::remove_file(up.work.join("LINT_FAILS")).unwrap();
    let fixed = up.commit("fix lint", AUTHORS[0]);
    up.push_staging();
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(
        (verdict, pushed.as_deref()),
        (Verdict::Pass, Some(fixed.as_str()))
    );
    // master is pushed manually to a commit that breaks lint again; staging adds more.
    up.write("LINT_FAILS", "again\n");
    let relapse = up.commit("lint fails again", AUTHORS[1]);
    git(
        &up.work,
        &["push", "-q", "origin", "HEAD:refs/heads/master"],
    );
    let more = up.commits(2, None);
    up.push_staging();
    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, _) = decided(outcome);
    assert_eq!(verdict, Verdict::LikeBaseline, "{outcome:?}");
    assert_eq!(pushed.as_deref(), Some(more[1].as_str()));
    let _ = relapse;
}

#[tokio::test]
async fn a_pass_on_retry_is_flaky_and_pushed() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(2, None);
    up.push_staging();
    let marker = root.path().join("failed-once");
    let sandbox = Sandbox::new();
    sandbox.gate_with(
        &up,
        "flaky",
        &format!(
            "[[step]]\nname = \"test\"\ncommand = \"if [ ! -e {m} ]; then touch {m}; exit 1; fi\"\n",
            m = marker.display()
        ),
        2,
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Flaky);
    assert_eq!(pushed.as_deref(), Some(shas[1].as_str()));
}

#[tokio::test]
async fn a_rewritten_staging_cancels_the_flight_and_replans() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let master = up.head("master");
    // An alternative staging that the first test's step will force in, as a contributor would.
    git(&up.work, &["checkout", "-q", "-b", "alt", &master]);
    up.write("ALT", "the rewritten branch\n");
    let alt = up.commit("the rewritten staging", AUTHORS[2]);
    git(&up.work, &["checkout", "-q", "master"]);
    let first = up.commits(5, Some(5));
    up.push_staging();
    let sandbox = Sandbox::new();
    git(&up.work, &["push", "-q", "origin", "alt"]);
    sandbox.gate_with(
        &up,
        "rewrite",
        &format!(
            "[[step]]\nname = \"test\"\ncommand = \"if [ -e BROKEN ]; then git -C {bare} update-ref refs/heads/staging {alt}; exit 1; fi\"\n",
            bare = up.bare.display()
        ),
        1,
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Pass);
    assert_eq!(pushed.as_deref(), Some(alt.as_str()));
    assert_eq!(up.head("master"), alt);
    let branch = &service.store().branches().await.unwrap()[0];
    let flights = service.store().recent_flights(branch.id, 10).await.unwrap();
    assert_eq!(flights.len(), 2);
    let cancelled = &flights[1];
    assert_eq!(cancelled.tip, first[4]);
    assert_eq!(cancelled.state.as_str(), "cancelled");
    assert!(
        cancelled.reason.contains("rewritten"),
        "{}",
        cancelled.reason
    );
    assert!(!up.history("master").contains(&first[4]));
}

#[tokio::test]
async fn a_hanging_step_is_killed_with_its_process_group_and_never_pushed() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(3, Some(2));
    up.push_staging();
    let sandbox = Sandbox::new();
    // The step leaves a background child behind and hangs; both must die at the timeout.
    sandbox.gate_with(
        &up,
        "hang",
        "[[step]]\nname = \"test\"\ncommand = \"if [ -e BROKEN ]; then sleep 3007 & sleep 3008; fi\"\ntimeout = \"1s\"\n",
        0,
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(culprit.as_deref(), Some(shas[1].as_str()));
    assert_eq!(pushed.as_deref(), Some(shas[0].as_str()));
    assert_none_running("sleep 300[78]");
    service.deliver_mail().await.unwrap();
    let culprit_mail = sandbox
        .outbox()
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .find(|m| m.subject.contains("your commit"))
        .unwrap();
    assert!(
        culprit_mail.text.contains("timed out"),
        "{}",
        culprit_mail.text
    );
}

#[tokio::test]
async fn what_steps_leave_in_the_background_ends_with_the_step_or_with_the_run() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(2, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    // The first step double-forks out of its group and session; the second starts a service
    // the third uses.
    sandbox.gate_with(
        &up,
        "forks",
        r#"
[[step]]
name = "forks"
command = "setsid sleep 3071 >/dev/null 2>&1 & sleep 3072 >/dev/null 2>&1 & true"

[[step]]
name = "service"
command = "setsid sleep 3073 >/dev/null 2>&1 &"
background = "run"

[[step]]
name = "uses"
command = "! pgrep -f 'sleep 307[12]' && pgrep -f 'sleep 307[3]'"
"#,
        0,
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(
        verdict,
        Verdict::Pass,
        "the service ran for the third step, the rest had ended"
    );
    assert_eq!(pushed.as_deref(), Some(shas[1].as_str()));
    assert_none_running("sleep 307[123]");
}

#[tokio::test]
async fn a_missing_repository_or_branch_is_a_clear_error_and_nothing_moves() {
    let root = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new();
    let missing = root.path().join("no-such.git");
    sandbox.standard_policy(missing.to_str().unwrap());
    // Refused at start, naming the policy's file and field.
    let refused = pushgate::service::Service::open(
        sandbox.config(""),
        std::sync::Arc::new(pushgate::gate::LogProgress),
    )
    .await
    .err()
    .expect("a policy whose repository does not exist is refused");
    let said = refused.to_string();
    assert!(
        said.contains("policies/project.toml:1:1: field `repository`"),
        "{said}"
    );
    assert!(said.contains("no-such.git does not exist"), "{said}");

    // One that goes away after the start is an error of its branch, and nothing moves.
    let elsewhere = tempfile::tempdir().unwrap();
    let gone = Upstream::new(elsewhere.path(), &[("README", "x\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(gone.bare.to_str().unwrap());
    let service = open_service(sandbox.config("")).await;
    std::fs::rename(&gone.bare, elsewhere.path().join("moved.git")).unwrap();
    match &service.gate_once().await.unwrap()[0].1 {
        BranchOutcome::Error { message } => {
            assert!(message.contains("upstream.git"), "{message}");
            assert!(
                message.contains("no repository at this path: No such file or directory"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let branch = &service.store().branches().await.unwrap()[0];
    assert_eq!(branch.state, "error");
    assert!(service
        .store()
        .recent_flights(branch.id, 5)
        .await
        .unwrap()
        .is_empty());

    // A repository without the staging branch.
    let up = Upstream::new(root.path(), &[("README", "x\n")]);
    git(&up.bare, &["update-ref", "-d", "refs/heads/staging"]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let service = open_service(sandbox.config("")).await;
    match &service.gate_once().await.unwrap()[0].1 {
        BranchOutcome::Error { message } => {
            assert!(message.contains("no branch `staging`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_staging_that_does_not_contain_master_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "x\n")]);
    up.commits(1, None);
    git(
        &up.work,
        &["push", "-q", "origin", "HEAD:refs/heads/master"],
    );
    git(&up.work, &["reset", "-q", "--hard", "HEAD~1"]);
    up.write("OTHER", "diverged\n");
    up.commit("diverge", AUTHORS[0]);
    git(
        &up.work,
        &["push", "-q", "-f", "origin", "HEAD:refs/heads/staging"],
    );
    let before = up.head("master");
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let service = open_service(sandbox.config("")).await;
    match &service.gate_once().await.unwrap()[0].1 {
        BranchOutcome::Error { message } => assert!(message.contains("diverged"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(up.head("master"), before);
}

#[tokio::test]
async fn a_policy_naming_an_unknown_sequence_is_refused_at_start() {
    let sandbox = Sandbox::new();
    sandbox.sequence("test", TEST_SEQUENCE);
    sandbox.policy(
        "project",
        "repository = \"https://git.example.org/x.git\"\n\nsequences = [\"test\", \"smoke\"]\n",
    );
    let config = sandbox.config("");
    let err =
        pushgate::service::Service::open(config, std::sync::Arc::new(pushgate::gate::LogProgress))
            .await
            .err()
            .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("project.toml:3:22: field `sequences`: no sequence named `smoke`"),
        "{text}"
    );
}

/// A sequence whose test step, on the first commit with BROKEN, moves master upstream (as a
/// maintainer pushing by hand would) and fails.
fn moving_master_sequence(sandbox: &Sandbox, up: &Upstream, to: &str) {
    sandbox.gate_with(
        up,
        "moving",
        &format!(
            "[[step]]\nname = \"test\"\ncommand = \"if [ -e BROKEN ]; then git -C {bare} update-ref refs/heads/master {to}; exit 1; fi\"\n",
            bare = up.bare.display()
        ),
        0,
    );
}

#[tokio::test]
async fn master_moved_within_the_range_still_gets_a_fast_forward() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let old = up.head("master");
    let shas = up.commits(6, Some(5));
    up.push_staging();
    let sandbox = Sandbox::new();
    moving_master_sequence(&sandbox, &up, &shas[1]);
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(culprit.as_deref(), Some(shas[4].as_str()));
    assert_eq!(pushed.as_deref(), Some(shas[3].as_str()));
    assert_eq!(
        up.history("master"),
        vec![old, shas[1].clone(), shas[3].clone()]
    );
    let branch = &service.store().branches().await.unwrap()[0];
    let push = &service.store().pushes(branch.id).await.unwrap()[0];
    assert_eq!(
        (push.old_sha.as_str(), push.new_sha.as_str()),
        (shas[1].as_str(), shas[3].as_str())
    );
}

#[tokio::test]
async fn master_moved_aside_cancels_the_flight_and_pushes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let master = up.head("master");
    git(&up.work, &["checkout", "-q", "-b", "side", &master]);
    up.write("SIDE", "pushed to master by hand\n");
    let side = up.commit("a hand-pushed fix", AUTHORS[1]);
    git(&up.work, &["push", "-q", "origin", "side"]);
    git(&up.work, &["checkout", "-q", "master"]);
    up.commits(4, Some(3));
    up.push_staging();
    let sandbox = Sandbox::new();
    moving_master_sequence(&sandbox, &up, &side);
    let service = open_service(sandbox.config("")).await;
    match &service.gate_once().await.unwrap()[0].1 {
        BranchOutcome::Error { message } => assert!(message.contains("diverged"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        up.head("master"),
        side,
        "nothing pushed over the hand-pushed commit"
    );
    let branch = &service.store().branches().await.unwrap()[0];
    let flight = &service.store().recent_flights(branch.id, 1).await.unwrap()[0];
    assert_eq!(flight.state.as_str(), "cancelled");
    assert!(flight.reason.contains("master moved"), "{}", flight.reason);
}

#[tokio::test]
async fn a_crash_after_the_push_but_before_recording_it_does_not_push_or_mail_twice() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    let shas = up.commits(5, Some(4));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let config = sandbox.config("");
    let service = open_service(config.clone()).await;
    service.gate_once().await.unwrap();
    assert_eq!(up.head("master"), shas[2]);
    service.store().close().await;

    // Roll the store back to the moment after the push and before the conclusion's
    // transaction: the flight running with every run done, no push and no mail recorded.
    let db = sqlx::SqlitePool::connect(&config.database_url)
        .await
        .unwrap();
    for sql in [
        "UPDATE flights SET state = 'running', verdict = NULL, culprit = NULL, pushed_to = NULL, finished_at = NULL",
        "UPDATE candidates SET state = 'testing'",
        "DELETE FROM pushes",
        "DELETE FROM outbox",
    ] {
        sqlx::query(sql).execute(&db).await.unwrap();
    }
    db.close().await;

    let service = open_service(config).await;
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(
        (verdict, pushed.as_deref()),
        (Verdict::Regression, Some(shas[2].as_str()))
    );
    assert_eq!(
        up.history("master"),
        vec![base.clone(), shas[2].clone()],
        "not pushed again"
    );
    let branch = &service.store().branches().await.unwrap()[0];
    let pushes = service.store().pushes(branch.id).await.unwrap();
    assert_eq!(pushes.len(), 1);
    assert_eq!(
        (pushes[0].old_sha.as_str(), pushes[0].new_sha.as_str()),
        (base.as_str(), shas[2].as_str())
    );
    assert_eq!(service.deliver_mail().await.unwrap().sent.len(), 2);
    let runs = service.store().runs(1).await.unwrap();
    assert!(runs
        .iter()
        .all(|r| r.state != RunState::Running && r.state != RunState::Aborted));
}

// Multi-threaded: the job API answers the CLI while the test waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_on_fail_waits_on_its_host_until_jobs_interact_lets_it_go_on() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.write("broken", "yes\n");
    up.commit("break the check", ("Ann Author", "ann@example.org"));
    up.push_staging();
    let sandbox = Sandbox::new();
    let mark = sandbox.path().join("after-ran");
    sandbox.sequence(
        "pausing",
        &format!(
            "[[step]]\nname = \"check\"\ncommand = \"! test -f broken\"\nblocker = false\n[[step]]\nname = \"after\"\ncommand = \"touch {}\"\n",
            mark.display()
        ),
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"pausing\"]\nretries = 0\npause_on_fail = \"check\"\npause_resume_after = \"never\"\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    let token = "a-token-for-the-pause-test";
    let service = std::sync::Arc::new(
        open_service(sandbox.config(&format!("[api]\ntoken = \"{token}\"\n"))).await,
    );
    // The job API, which `jobs interact` talks to, without the gate loops `serve` would add.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let app = pushgate::web::router(service.app_state(Default::default()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gate = {
        let service = service.clone();
        tokio::spawn(async move { service.gate_once().await.map(|_| ()) })
    };
    let store = service.store().clone();
    let mut run_id = None;
    for _ in 0..200 {
        let branch = store.branches().await.unwrap().into_iter().next();
        if let Some(b) = branch {
            for f in store.recent_flights(b.id, 5).await.unwrap() {
                for r in store.runs(f.id).await.unwrap() {
                    if !store.waiting_pauses(r.id).await.unwrap().is_empty() {
                        run_id = Some(r.id);
                    }
                }
            }
        }
        if run_id.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let run_id = run_id.expect("the run paused");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        !mark.exists(),
        "nothing after the failing testcase ran while paused"
    );
    assert!(!gate.is_finished());

    let config = sandbox.path().join("pushgate.toml");
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .args(["--server", &server])
            .output()
            .unwrap()
    };
    let id = run_id.to_string();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args([
            "jobs", "interact", "--run", &id, "--list", "--server", &server,
        ])
        .args(["--token", "not-the-token"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("401"), "{said}");
    let list = cli(&["jobs", "interact", "--run", &id, "--list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("paused after check (goes on when told)")
    );
    let wrong = cli(&["jobs", "interact", "--run", &id, "--continue", "nope"]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("not paused after `nope`"));
    let go = cli(&["jobs", "interact", "--run", &id, "--continue", "check"]);
    assert!(
        go.status.success(),
        "{}",
        String::from_utf8_lossy(&go.stderr)
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !gate.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "the gate never finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // The culprit finder runs the failing commit again to be sure: each failure pauses.
        for r in store.runs(1).await.unwrap() {
            store.continue_pauses(r.id, None, "test").await.unwrap();
        }
    }
    gate.await.unwrap().unwrap();
    assert!(mark.exists(), "the run went on after the pause");
    let mail = service.deliver_mail().await.unwrap();
    assert!(mail.sent.len() >= 2, "the pause mail and the gate report");
    let pause = sandbox
        .outbox()
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .find(|m| m.subject.contains("paused: check failed"))
        .expect("a pause mail");
    assert!(pause.text.contains(&format!(
        "pushgate jobs interact --run {run_id} --continue check"
    )));
    assert!(
        pause
            .to
            .iter()
            .any(|t| t.contains("devel@lists.example.org")),
        "{:?}",
        pause.to
    );
    assert!(
        pause.to.iter().any(|t| t.contains("ann@example.org")),
        "the submitter: {:?}",
        pause.to
    );
}

/// A periodic job that passed on the target branch is the baseline evidence that turns a
/// shared failure from `never-passed` into `like-baseline` (without it, the test above shows
/// `never-passed`).
#[tokio::test]
async fn a_periodic_pass_on_the_target_counts_as_a_baseline() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.sequence(
        "checks",
        "[[step]]\nname = \"lint\"\ncommand = \"test ! -e LINT_FAILS\"\nblocker = false\n[[step]]\nname = \"test\"\ncommand = \"true\"\n",
    );
    // A selector that always asks for `checks`: the schedule still bounds it.
    let selector = sandbox.path().join("policies/select.sh");
    std::fs::create_dir_all(selector.parent().unwrap()).unwrap();
    std::fs::write(&selector, "#!/bin/sh\ncat >/dev/null\necho checks\n").unwrap();
    std::fs::set_permissions(
        &selector,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"checks\"]\nretries = 0\n[periodic]\nevery = \"1h\"\nselector = \"select.sh\"\n",
            up.bare.display()
        ),
    );
    let service = open_service(sandbox.config("")).await;
    let queued = service.jobs.queue_periodic().await.unwrap();
    assert_eq!(queued.len(), 1);
    let job = service.store().job(queued[0]).await.unwrap().unwrap();
    service.jobs.run(job).await.unwrap();
    let job = service.store().job(queued[0]).await.unwrap().unwrap();
    assert_eq!(
        job.state,
        pushgate::store::JobState::Pass,
        "{}",
        job.message
    );
    assert!(
        service.jobs.queue_periodic().await.unwrap().is_empty(),
        "not due again for an hour"
    );

    // master is pushed by hand to a commit that breaks lint; staging adds more.
    up.write("LINT_FAILS", "yes\n");
    up.commit("lint fails", AUTHORS[1]);
    git(
        &up.work,
        &["push", "-q", "origin", "HEAD:refs/heads/master"],
    );
    let more = up.commits(2, None);
    up.push_staging();
    let outcome = &service.gate_once().await.unwrap()[0].1;
    let (verdict, pushed, _) = decided(outcome);
    assert_eq!(verdict, Verdict::LikeBaseline, "{outcome:?}");
    assert_eq!(pushed.as_deref(), Some(more[1].as_str()));
}

/// Flight 1 of ten commits, the sixth (Alice's) broken: it blames commit 6, pushes the five
/// before it and mails. What the flight after it starts from.
struct BlockedOnSix {
    _root: tempfile::TempDir,
    up: Upstream,
    old_master: String,
    shas: Vec<String>,
    sandbox: Sandbox,
    service: pushgate::service::Service,
    first_flight_mail: usize,
}

async fn blocked_on_six() -> BlockedOnSix {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let old_master = up.head("master");
    let shas = up.commits(10, Some(6));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(culprit.as_deref(), Some(shas[5].as_str()));
    assert_eq!(pushed.as_deref(), Some(shas[4].as_str()));
    service.deliver_mail().await.unwrap();
    let first_flight_mail = sandbox.outbox().len();
    BlockedOnSix {
        _root: root,
        up,
        old_master,
        shas,
        sandbox,
        service,
        first_flight_mail,
    }
}

/// Flight 1 blames commit 6 (Alice). Staging then gets a revert of it (by Bob), two good
/// commits, a new breaker (by Carol) and one more commit: flight 2 names Carol's commit, mails
/// only Carol, and pushes every commit up to its parent, the revert included.
#[tokio::test]
async fn after_a_revert_the_new_breaker_is_blamed_and_everything_before_it_pushed() {
    let BlockedOnSix {
        _root,
        up,
        old_master,
        shas,
        sandbox,
        service,
        first_flight_mail,
    } = blocked_on_six().await;

    // The revert, two good commits, a new breaker by someone else, one more on top.
    git(&up.work, &["rm", "-q", "BROKEN"]);
    let revert = up.commit("Revert \"change number 6\"", AUTHORS[1]);
    let good: Vec<String> = (0..2)
        .map(|i| {
            up.write(&format!("GOOD{i}"), "fine\n");
            up.commit(&format!("good change {i}"), AUTHORS[1])
        })
        .collect();
    up.write("BROKEN", "broken again\n");
    let breaker = up.commit("break it anew", AUTHORS[2]);
    up.write("LATER", "later\n");
    let after = up.commit("a later change", AUTHORS[0]);
    up.push_staging();

    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(
        culprit.as_deref(),
        Some(breaker.as_str()),
        "the new breaker"
    );
    assert_eq!(
        pushed.as_deref(),
        Some(good[1].as_str()),
        "everything before it"
    );
    assert_eq!(up.head("master"), good[1]);
    assert_eq!(up.head("staging"), after);
    // Master moved twice, fast-forward, only to tested commits: 5, then past the revert.
    let history = up.history("master");
    assert_eq!(
        history,
        vec![old_master.clone(), shas[4].clone(), good[1].clone()]
    );
    assert_master_only_moved_to_tested_commits(&up, service.store(), &old_master).await;
    git(
        &up.bare,
        &["merge-base", "--is-ancestor", &revert, "master"],
    );

    // Exactly one new culprit mail, to Carol (the list copied); Alice is not mailed again.
    service.deliver_mail().await.unwrap();
    let mails: Vec<Mail> = sandbox.outbox()[first_flight_mail..]
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .collect();
    let culprit_mails: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject.contains("your commit"))
        .collect();
    assert_eq!(
        culprit_mails.len(),
        1,
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    // The author and the committer (the maintainer who applied it).
    assert_eq!(
        culprit_mails[0].to,
        vec![AUTHORS[2].1.to_string(), "mia@example.org".to_string()]
    );
    assert!(mails
        .iter()
        .all(|m| !m.to.contains(&AUTHORS[0].1.to_string())));
    assert_eq!(culprit_mails[0].cc, vec!["devel@lists.example.org"]);
    let report = mails
        .iter()
        .find(|m| !m.subject.contains("your commit"))
        .expect("a report");
    assert!(report.text.contains("blamed by flight"), "{}", report.text);
    assert!(report.text.contains("reverted by"), "{}", report.text);

    // The page says the same, and marks the results taken from flight 1 with its number.
    let branch = &service.store().branches().await.unwrap()[0];
    let second = service.store().recent_flights(branch.id, 1).await.unwrap()[0].id;
    let Ok(view) = pushgate::web::api::flight_view(service.store(), second).await else {
        panic!("flight {second} has no page");
    };
    assert_eq!(view.blamed_before.len(), 1, "{:?}", view.blamed_before);
    assert!(
        view.blamed_before[0].contains("blamed by flight 1; reverted by #6"),
        "{:?}",
        view.blamed_before
    );
    assert!(!view.reused.is_empty() && view.reused.iter().all(|r| r.flight == 1));
    let page = pushgate::templates::render("flight.html", &view).unwrap();
    assert!(
        page.contains("Results reused from earlier flights"),
        "{page}"
    );
    assert!(page.contains("first bad (test&#x2f;test)"), "{page}");
    service.store().close().await;
}

/// The flight after a blocked one, nothing fixed: the blamed commit is the culprit again,
/// found in a few runs (no hunt for a fix in every gap above the last flight's tip), master
/// stays below it, and its author is not mailed a second time.
#[tokio::test]
async fn a_culprit_not_fixed_yet_is_named_again_and_not_mailed_again() {
    let BlockedOnSix {
        _root,
        up,
        old_master,
        shas,
        sandbox,
        service,
        first_flight_mail,
    } = blocked_on_six().await;

    // Three more commits on top, none of them a fix.
    for i in 0..3 {
        up.write(&format!("MORE{i}"), "more\n");
        up.commit(&format!("more change {i}"), AUTHORS[1]);
    }
    up.push_staging();
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(
        culprit.as_deref(),
        Some(shas[5].as_str()),
        "the same culprit"
    );
    assert_eq!(pushed, None, "nothing new passes");
    assert_eq!(
        up.history("master"),
        vec![old_master.clone(), shas[4].clone()]
    );
    assert_master_only_moved_to_tested_commits(&up, service.store(), &old_master).await;

    service.deliver_mail().await.unwrap();
    let mails: Vec<Mail> = sandbox.outbox()[first_flight_mail..]
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .collect();
    assert!(
        mails.iter().all(|m| !m.subject.contains("your commit")),
        "{:?}",
        mails.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    service.store().close().await;
}

/// Two steps, broken by two commits of two authors: two culprits, two culprit mails, and the
/// commits before the older one pushed.
#[tokio::test]
async fn two_regressions_of_two_steps_get_two_culprits_and_two_mails() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let mut shas = up.commits(2, None);
    up.write("BROKEN_A", "a\n");
    shas.push(up.commit("break a", AUTHORS[1]));
    shas.extend(up.commits(2, None));
    up.write("BROKEN_B", "b\n");
    shas.push(up.commit("break b", AUTHORS[2]));
    shas.extend(up.commits(2, None));
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.sequence(
        "two",
        r#"
[[step]]
name = "a"
command = "test ! -e BROKEN_A"
timeout = "1m"
blocker = false

[[step]]
name = "b"
command = "test ! -e BROKEN_B"
timeout = "1m"
"#,
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"two\"]\nretries = 0\nflake_rate = 0.0\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!(verdict, Verdict::Regression);
    assert_eq!(
        culprit.as_deref(),
        Some(shas[2].as_str()),
        "the older culprit"
    );
    assert_eq!(pushed.as_deref(), Some(shas[1].as_str()));
    assert_eq!(up.head("master"), shas[1]);

    service.deliver_mail().await.unwrap();
    let mails: Vec<Mail> = sandbox
        .outbox()
        .iter()
        .map(|p| parse_mail(&std::fs::read(p).unwrap()))
        .collect();
    let mut culprit_mails: Vec<(String, Vec<String>)> = mails
        .iter()
        .filter(|m| m.subject.contains("your commit"))
        .map(|m| (m.subject.clone(), m.to.clone()))
        .collect();
    culprit_mails.sort_by_key(|m| !m.0.contains("break a"));
    let texts: Vec<&String> = mails.iter().map(|m| &m.text).collect();
    assert_eq!(culprit_mails.len(), 2, "{culprit_mails:?} {texts:?}");
    let mia = "mia@example.org".to_string();
    assert!(
        culprit_mails[0].0.contains("break a") && culprit_mails[0].0.ends_with("broke two/a"),
        "{culprit_mails:?}"
    );
    assert_eq!(
        culprit_mails[0].1,
        vec![AUTHORS[1].1.to_string(), mia.clone()]
    );
    assert!(culprit_mails[1].0.contains("break b") && culprit_mails[1].0.ends_with("broke two/b"));
    assert_eq!(culprit_mails[1].1, vec![AUTHORS[2].1.to_string(), mia]);
    let report = mails
        .iter()
        .find(|m| !m.subject.contains("your commit"))
        .unwrap();
    assert!(report.subject.contains("and 1 more"), "{}", report.subject);
    assert!(report.text.contains("2 regressions"), "{}", report.text);
    service.store().close().await;
}

/// A step that times out on the tip and on the baseline never passed here: it is let through
/// and said so, or blocks when the policy says `never_passed = "block"`.
async fn timeout_on_both(
    never_passed: &str,
) -> (Verdict, Option<String>, String, Upstream, String) {
    let root = tempfile::tempdir().unwrap();
    let root = root.keep();
    let up = Upstream::new(&root, &[("README", "hello\n")]);
    let shas = up.commits(2, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.sequence(
        "slow",
        r#"
[[step]]
name = "quick"
command = "true"
timeout = "1m"

[[step]]
name = "hang"
command = "sleep 30"
timeout = "1s"
"#,
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"slow\"]\nretries = 0\n{never_passed}\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, _) = decided(&service.gate_once().await.unwrap()[0].1);
    let branch = &service.store().branches().await.unwrap()[0];
    let flight = &service.store().recent_flights(branch.id, 1).await.unwrap()[0];
    let statuses: Vec<String> = service
        .store()
        .flight_steps(flight.id)
        .await
        .unwrap()
        .iter()
        .filter(|s| s.name == "hang")
        .map(|s| s.status.clone())
        .collect();
    assert!(
        statuses.len() >= 2 && statuses.iter().all(|s| s == "timeout"),
        "{statuses:?}"
    );
    service.deliver_mail().await.unwrap();
    let report = parse_mail(&std::fs::read(&sandbox.outbox()[0]).unwrap());
    service.store().close().await;
    let text = format!("{}\n{}", report.subject, report.text);
    (verdict, pushed, text, up, shas[1].clone())
}

#[tokio::test]
async fn a_step_that_times_out_on_both_is_let_through_and_said_so() {
    let (verdict, pushed, report, up, tip) = timeout_on_both("").await;
    assert_eq!(verdict, Verdict::NeverPassed);
    assert_eq!(pushed.as_deref(), Some(tip.as_str()));
    assert_eq!(up.head("master"), tip);
    assert!(
        report.starts_with("[project staging] flight 1: pushed 2 commits to master (never-passed); 1 step did not gate (never-passed)"),
        "{report}"
    );
    assert!(
        report.contains("slow/hang: never-passed (timeout on the tip)"),
        "{report}"
    );
}

/// A sequence whose first step cannot start (its script is not in the repository, on the tip
/// nor on the baseline) has tested nothing: the flight is broken, master stays, and the report
/// says which step and why, instead of letting the range through as never-passed.
#[tokio::test]
async fn a_sequence_that_cannot_start_is_broken_not_a_pass() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    up.commits(2, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.sequence(
        "smoke",
        "[[step]]\nname = \"build\"\ncommand = \"./scripts/build.sh\"\n[[step]]\nname = \"test\"\ncommand = \"true\"\n",
    );
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"smoke\"]\nretries = 0\n[mail]\nlist = \"devel@lists.example.org\"\n",
            up.bare.display()
        ),
    );
    let service = open_service(sandbox.config("")).await;
    let (verdict, pushed, culprit) = decided(&service.gate_once().await.unwrap()[0].1);
    assert_eq!((verdict, pushed, culprit), (Verdict::Broken, None, None));
    assert_eq!(up.history("master").len(), 1, "master never moved");
    service.deliver_mail().await.unwrap();
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1, "one report, no culprit mail");
    let report = parse_mail(&std::fs::read(&outbox[0]).unwrap());
    let text = format!("{}\n{}", report.subject, report.text);
    assert!(text.contains("smoke/build did not start"), "{text}");
    service.store().close().await;
}

#[tokio::test]
async fn never_passed_block_keeps_master_where_it_is() {
    let (verdict, pushed, report, up, tip) = timeout_on_both("never_passed = \"block\"").await;
    assert_eq!(verdict, Verdict::NeverPassed);
    assert_eq!(pushed, None);
    assert_ne!(up.head("master"), tip);
    assert_eq!(up.history("master").len(), 1, "master never moved");
    assert!(report.contains("never_passed = \"block\""), "{report}");
}
