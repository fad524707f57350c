//! `pushgate demo`: README's first command does what it says.

use std::process::Command;

#[test]
fn the_demo_finds_the_culprit_pushes_the_prefix_and_writes_the_mail() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["demo", "--json", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "regression");
    assert_eq!(v["culprit"], v["expected_culprit"]);
    assert_eq!(v["pushed_commits"], 12);
    let pushed = v["pushed_to"].as_str().unwrap();
    let master = Command::new("git")
        .args(["rev-parse", "refs/heads/master"])
        .current_dir(demo_dir.join("upstream.git"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&master.stdout).trim(), pushed);
    let mails = v["mails"].as_array().unwrap();
    assert_eq!(mails.len(), 2);
    for m in mails {
        let text = std::fs::read_to_string(m.as_str().unwrap()).unwrap();
        assert!(text.contains("Subject: [sample staging] "), "{text}");
    }
    // The progress went to stderr, the JSON alone to stdout.
    assert!(String::from_utf8_lossy(&out.stderr).contains("(tip 20/20, smoke)"));

    // A second demo into the same directory is refused, changing nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["demo", "--dir"])
        .arg(&demo_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));
}
