//! `pushgate bisect` on a real generated repository with merges, side by side with
//! `git bisect run` on the same repository and the same test script.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{git, git_env};

/// Fixed dates make the shas, and so the flaky commits below, the same on every run.
const DATES: &[(&str, &str)] = &[
    ("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z"),
    ("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z"),
];

/// A repository whose history has feature branches merged into master (`--no-ff`), with the
/// commit titled `culprit` adding the file `bug`. Returns (dir, base sha, culprit sha).
fn repository(root: &Path) -> (PathBuf, String, String) {
    let dir = root.join("repo");
    std::fs::create_dir_all(&dir).unwrap();
    git(&dir, &["init", "-q"]);
    git(&dir, &["config", "user.email", "dev@example.org"]);
    git(&dir, &["config", "user.name", "Dev"]);
    let commit = |title: &str, bug: bool| {
        std::fs::write(dir.join("log"), format!("{title}\n")).unwrap();
        if bug {
            std::fs::write(dir.join("bug"), "").unwrap();
        }
        git(&dir, &["add", "-A"]);
        git_env(&dir, &["commit", "-q", "-m", title], DATES);
    };
    commit("base", false);
    let base = git(&dir, &["rev-parse", "HEAD"]);
    let mut n = 0;
    for round in 0..24 {
        if round % 3 == 0 {
            n += 1;
            commit(&format!("direct {n}"), false);
            continue;
        }
        let branch = format!("topic-{round}");
        git(&dir, &["checkout", "-q", "-b", &branch]);
        for _ in 0..(round % 4 + 1) {
            n += 1;
            let culprit = n == 30;
            let title = if culprit {
                "culprit".to_string()
            } else {
                format!("work {n}")
            };
            commit(&title, culprit);
        }
        git(&dir, &["checkout", "-q", "master"]);
        git_env(
            &dir,
            &[
                "merge",
                "-q",
                "--no-ff",
                "-m",
                &format!("merge {branch}"),
                &branch,
            ],
            DATES,
        );
    }
    let culprit = git(&dir, &["log", "--format=%H", "--grep=^culprit$", "master"]);
    assert_eq!(culprit.lines().count(), 1, "the culprit is in the history");
    (dir, base, culprit)
}

/// A test script: counts its runs in `runs`, then fails where `bug` exists.
fn script(root: &Path, body: &str) -> PathBuf {
    let path = root.join("test.sh");
    let runs = root.join("runs");
    std::fs::write(&path, format!("echo x >> '{}'\n{body}\n", runs.display())).unwrap();
    path
}

fn runs(root: &Path) -> usize {
    let n = std::fs::read_to_string(root.join("runs"))
        .unwrap_or_default()
        .lines()
        .count();
    let _ = std::fs::remove_file(root.join("runs"));
    n
}

fn pushgate_bisect(dir: &Path, args: &[&str], script: &Path) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .arg("bisect")
        .args(args)
        .arg("--json")
        .arg("--")
        .arg("sh")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn git_bisect_run(dir: &Path, base: &str, script: &Path) -> String {
    git(dir, &["bisect", "start", "master", base]);
    let out = git(dir, &["bisect", "run", "sh", &script.to_string_lossy()]);
    git(dir, &["bisect", "reset"]);
    out.lines()
        .find(|l| l.ends_with(" is the first bad commit"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("")
        .to_string()
}

fn worktrees(dir: &Path) -> usize {
    git(dir, &["worktree", "list"]).lines().count()
}

#[test]
fn names_the_same_culprit_as_git_bisect_run_in_fewer_rounds() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, culprit) = repository(root.path());
    let test = script(root.path(), "test ! -f bug");

    let by_git = git_bisect_run(&dir, &base, &test);
    let git_runs = runs(root.path());
    assert_eq!(by_git, culprit);

    let (code, one, err) = pushgate_bisect(
        &dir,
        &["--good", &base, "--bad", "master", "--flake-rate", "0"],
        &test,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(one["culprit"]["sha"], culprit.as_str());
    // Told the test never flakes, only an earlier bug fixed inside the range (rare) is left.
    assert!(
        one["probability"].as_f64().unwrap() > 0.9999,
        "{}",
        one["probability"]
    );
    assert_eq!(
        one["executions"].as_u64().unwrap() as usize,
        runs(root.path())
    );

    let (code, four, err) = pushgate_bisect(
        &dir,
        &[
            "--good",
            &base,
            "--bad",
            "master",
            "--flake-rate",
            "0",
            "--jobs",
            "4",
        ],
        &test,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(four["culprit"]["sha"], culprit.as_str());
    let rounds = four["rounds"].as_u64().unwrap() as usize;
    assert!(
        rounds < git_runs,
        "--jobs 4 took {rounds} rounds, git bisect run {git_runs} runs"
    );
    assert!(one["rounds"].as_u64().unwrap() as usize <= git_runs + 1);
    assert_eq!(worktrees(&dir), 1, "the throwaway worktrees are gone");
}

#[test]
fn a_flaky_test_does_not_mislead_it() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, culprit) = repository(root.path());
    // About one good commit in five (by its sha) fails its first run, then passes.
    let seen = root.path().join("seen");
    std::fs::create_dir(&seen).unwrap();
    let test = script(
        root.path(),
        &format!(
            "test -f bug && exit 1\nid=$(git rev-parse HEAD)\n\
             case $id in [012]*) if [ ! -e '{seen}/'$id ]; then touch '{seen}/'$id; exit 1; fi;; esac\nexit 0",
            seen = seen.display()
        ),
    );
    let (code, out, err) = pushgate_bisect(
        &dir,
        &[
            "--good",
            &base,
            "--bad",
            "master",
            "--flake-rate",
            "0.2",
            "--jobs",
            "2",
        ],
        &test,
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert_eq!(out["culprit"]["sha"], culprit.as_str());
    assert!(out["probability"].as_f64().unwrap() >= 0.99);
}

#[test]
fn an_untestable_culprit_gives_the_set_that_holds_it() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, culprit) = repository(root.path());
    let test = script(
        root.path(),
        &format!("[ $(git rev-parse HEAD) = {culprit} ] && exit 125\ntest ! -f bug"),
    );
    let (code, out, err) = pushgate_bisect(
        &dir,
        &["--good", &base, "--bad", "master", "--flake-rate", "0"],
        &test,
    );
    assert_eq!(code, 3, "{err}\n{out}");
    let candidates: Vec<&str> = out["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap())
        .collect();
    assert!(candidates.contains(&culprit.as_str()), "{candidates:?}");
    assert!(candidates.len() >= 2);
    assert_eq!(out["found"]["kind"], "one-of");
}

#[test]
fn exit_128_aborts_and_misuse_exits_2() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, _) = repository(root.path());
    let test = script(root.path(), "exit 200");
    let (code, _, err) = pushgate_bisect(
        &dir,
        &["--good", &base, "--bad", "master", "-j", "3"],
        &test,
    );
    assert_eq!(code, 1);
    assert!(err.contains("exited with 200"), "{err}");
    assert_eq!(worktrees(&dir), 1, "aborting leaves no worktree behind");

    let (code, _, err) =
        pushgate_bisect(&dir, &["--good", "no-such-rev", "--bad", "master"], &test);
    assert_eq!(code, 2);
    assert!(err.contains("no-such-rev"), "{err}");
    let (code, _, err) = pushgate_bisect(&dir, &["--good", "master", "--bad", &base], &test);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = pushgate_bisect(
        &dir,
        &["--good", &base, "--bad", "master", "--flake-rate", "2"],
        &test,
    );
    assert_eq!(code, 2);
}

#[test]
fn with_json_stdout_is_the_object_and_the_commands_output_goes_to_stderr_by_commit() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, culprit) = repository(root.path());
    let test = script(
        root.path(),
        "echo \"out of $(git rev-parse HEAD)\"\necho \"err of $(git rev-parse HEAD)\" >&2\n\
         test ! -e bug",
    );
    // No --bad: HEAD (master here) is the bad commit.
    let (code, out, err) = pushgate_bisect(&dir, &["--good", &base, "-j", "2"], &test);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out["culprit"]["sha"],
        culprit.as_str(),
        "stdout is one JSON object"
    );
    let tested: Vec<&str> = err
        .lines()
        .filter_map(|l| l.split_once(" | out of "))
        .map(|(label, sha)| {
            assert!(sha.starts_with(label), "{label} labels a run of {sha}");
            label
        })
        .collect();
    assert!(tested.len() >= 3, "{err}");
    assert!(
        err.contains(&format!("{} | err of {culprit}", &culprit[..12])),
        "{err}"
    );
}

#[test]
fn sigterm_and_sighup_stop_the_search_its_commands_and_their_children() {
    let root = tempfile::tempdir().unwrap();
    let (dir, base, _) = repository(root.path());
    let pids = root.path().join("pids");
    // Each run leaves a child in the background and then hangs.
    let test = script(
        root.path(),
        &format!(
            "sleep 300 &\necho $! >> '{p}'\necho $$ >> '{p}'\nsleep 300",
            p = pids.display()
        ),
    );
    for signal in ["TERM", "HUP"] {
        let _ = std::fs::remove_file(&pids);
        let child = Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["bisect", "--good", &base, "-j", "2", "--json", "--"])
            .arg("sh")
            .arg(&test)
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::fs::read_to_string(&pids)
            .unwrap_or_default()
            .lines()
            .count()
            < 4
        {
            assert!(started.elapsed().as_secs() < 60, "the runs never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let kill = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(kill.success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "SIG{signal}: {err}");
        assert!(err.contains("search aborted"), "SIG{signal}: {err}");
        assert_eq!(worktrees(&dir), 1, "SIG{signal} leaves no worktree behind");
        // A killed process stays a zombie until its new parent reaps it: that is dead too.
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let state = stat.rsplit_once(") ")?.1.chars().next()?;
                    Some(state != 'Z' && state != 'X')
                })
                .unwrap_or(false)
        };
        let all = std::fs::read_to_string(&pids).unwrap();
        let mut leftovers: Vec<&str> = all.lines().filter(|p| alive(p)).collect();
        for _ in 0..100 {
            if leftovers.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            leftovers.retain(|p| alive(p));
        }
        assert!(
            leftovers.is_empty(),
            "SIG{signal} left processes running: {leftovers:?}"
        );
    }
}
