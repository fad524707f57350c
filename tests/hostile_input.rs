//! Files made to hurt the reader are refused, each with its file and reason, by a pushgate
//! held to 512 MiB of address space: every one of them once read until memory ran out, or
//! waited for ever.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// What the process may map, all told. The inputs below took gigabytes before they were bounded.
const ADDRESS_SPACE_KIB: u64 = 512 * 1024;
/// Not a measure of speed: the bound past which a run is taken to hang, and killed.
const HANG: Duration = Duration::from_secs(120);

/// Runs pushgate with `args` under the address space limit, in `dir`.
fn pushgate_bounded(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_pushgate"))
        .args(args)
        .current_dir(dir)
        // A backtrace of a debug build reads its debug info, hundreds of MiB: the bound is on
        // what the input costs, not on symbolising.
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG {
            child.kill().unwrap();
            panic!("pushgate {args:?} still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Asserts a run failed, saying `wanted` (and nothing about memory).
fn refused(out: &Output, wanted: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {stderr}");
    for w in wanted {
        assert!(stderr.contains(w), "no `{w}` in: {stderr}");
    }
    assert!(
        !stderr.contains("memory allocation"),
        "ran out of memory: {stderr}"
    );
}

#[test]
fn hostile_sequences_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A sequence file of 100 MB (sparse: nothing is written, the size is what matters).
    std::fs::File::create(d.join("huge.seq"))
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    // 1 KB whose values double at each level: ${A30} would be 64 GiB.
    let mut doubling = String::from("<xenrt>\n<default name=\"A0\" value=\"0123456789abcdef\"/>\n");
    for i in 1..=32 {
        doubling.push_str(&format!(
            "<default name=\"A{i}\" value=\"${{A{p}}}${{A{p}}}\"/>\n",
            p = i - 1
        ));
    }
    doubling
        .push_str("<testsequence><testcase id=\"a.T\" name=\"${A32}\"/></testsequence></xenrt>\n");
    std::fs::write(d.join("doubling.seq"), doubling).unwrap();
    // Four nested loops of 200 rows: 1.6 billion rows.
    let rows = (0..200)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut loops = String::from("<xenrt><testsequence>\n");
    for name in ["A", "B", "C", "D"] {
        loops.push_str(&format!("<for iter=\"{name}\" values=\"{rows}\">\n"));
    }
    loops.push_str("<keep-me/>\n</for></for></for></for></testsequence></xenrt>\n");
    std::fs::write(d.join("loops.seq"), loops).unwrap();
    // Includes of what never ends, and of a file outside the directory.
    let include =
        |file: &str| format!("<xenrt>\n<include filename=\"{file}\"/>\n<testsequence/></xenrt>\n");
    std::fs::write(d.join("zero.seq"), include("/dev/zero")).unwrap();
    std::fs::write(d.join("passwd.seq"), include("../../../../etc/passwd")).unwrap();
    // A FIFO named like a sequence.
    let fifo = d.join("fifo.seq");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    let check = |file: &str| pushgate_bounded(d, &["sequence", "check", file]);
    refused(&check("huge.seq"), &["huge.seq", "larger than 4 MiB"]);
    refused(
        &check("doubling.seq"),
        &["doubling.seq", "more than 16 MiB"],
    );
    refused(&check("loops.seq"), &["loops.seq", "more than 16 MiB"]);
    refused(
        &check("zero.seq"),
        &["zero.seq:2", "outside the sequences directory"],
    );
    refused(
        &check("passwd.seq"),
        &["passwd.seq:2", "outside the sequences directory"],
    );
    refused(&check("fifo.seq"), &["fifo.seq", "not a regular file"]);
}

#[test]
fn a_huge_hosts_file_and_the_configured_limit_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("pushgate.toml"), "hosts = \"hosts.toml\"\n").unwrap();
    std::fs::File::create(d.join("hosts.toml"))
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let out = pushgate_bounded(d, &["hosts", "check", "--config", "pushgate.toml"]);
    refused(&out, &["hosts.toml", "larger than 4 MiB", "max_file_mib"]);

    // The limit is the config's: a 2 MiB policy passes under 4 MiB, not under 1 MiB.
    std::fs::remove_file(d.join("hosts.toml")).unwrap();
    std::fs::create_dir_all(d.join("policies")).unwrap();
    std::fs::create_dir_all(d.join("sequences")).unwrap();
    let mut policy = String::from("repository = \"nowhere\"\nsequences = [\"smoke\"]\n");
    policy.push_str(&"# padding\n".repeat(300_000));
    std::fs::write(d.join("policies/big.toml"), &policy).unwrap();
    assert!(policy.len() > 2 << 20 && policy.len() < 4 << 20);
    std::fs::write(
        d.join("pushgate.toml"),
        "state_dir = \"state\"\n[input]\nmax_file_mib = 1\n",
    )
    .unwrap();
    let out = pushgate_bounded(d, &["gate", "--once", "--config", "pushgate.toml"]);
    refused(&out, &["big.toml", "larger than 1 MiB"]);
    // Under the default limit the same file is read, and what is wrong with it is said.
    std::fs::write(d.join("pushgate.toml"), "state_dir = \"state\"\n").unwrap();
    let out = pushgate_bounded(d, &["gate", "--once", "--config", "pushgate.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("larger than"), "{stderr}");
    refused(&out, &["big.toml", "smoke"]);
}
