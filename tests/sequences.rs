//! Every XenRT sequence file of the shared test data loads, and `pushgate sequence check`
//! reports each one's testcases; bad files exit 1 with `file:line:col: message`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/xenrt-seqs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seq"))
        .collect();
    files.sort();
    files
}

fn pushgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_xenrt_sample_loads_and_check_counts_its_testcases() {
    let files = samples();
    assert_eq!(files.len(), 41);
    let mut args = vec!["sequence", "check", "--json"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let out = pushgate(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plans: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plans.len(), 41);
    for (file, plan) in files.iter().zip(&plans) {
        let text = std::fs::read_to_string(file).unwrap();
        // Testcases as written: those with an id (perfcheck limits name testcases too), not
        // commented out.
        let written = text
            .lines()
            .filter(|l| !l.contains("<!--"))
            .filter(|l| {
                (l.contains("<testcase") && l.contains(" id=")) || l.contains("<marvintests")
            })
            .count();
        let count = plan["testcases"].as_u64().unwrap() as usize;
        // Files without loops, includes or conditions run exactly the testcases they write.
        let dynamic = ["<for", "<include", "<ifeq", "<ifnoteq", "<ifin", "<ifnotin"]
            .iter()
            .any(|t| text.contains(t));
        if !dynamic {
            assert_eq!(count, written, "{}", file.display());
        }
    }
    let by_name = |n: &str| {
        plans
            .iter()
            .find(|p| p["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    // 4 host pairs x 3 guests x (7 Linux + 8 Windows testcases, finally included).
    assert_eq!(by_name("bostontc12689")["testcases"], 180);
    // 2 before the loop, 12 live migrations.
    assert_eq!(by_name("dundee-sxm-host-traversal")["testcases"], 14);
    assert_eq!(by_name("dundee-sxm-host-traversal")["hosts"], 4);

    let text = pushgate(&["sequence", "check", &names[0], &names[1]]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.contains("2 files, all good"), "{stdout}");
}

#[test]
fn a_bad_file_names_file_line_and_column_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.seq");
    std::fs::write(
        &bad,
        "<xenrt>\n  <testsequence>\n    <testcase id=\"a\" blocker=\"perhaps\"/>\n  </testsequence>\n</xenrt>\n",
    )
    .unwrap();
    let good = samples()[0].display().to_string();
    let out = pushgate(&["sequence", "check", &good, &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("{}:3:5: field `blocker`", bad.display())),
        "{stderr}"
    );
}

#[test]
fn bindings_beside_the_file_bind_its_testcases() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("testcases.toml"),
        "[[testcase]]\nid = \"xenserver.tc.*\"\ncommand = \"./tc {{ name }} {{ args }}\"\ntimeout = \"10m\"\n",
    )
    .unwrap();
    let seq = dir.path().join("s.seq");
    std::fs::write(
        &seq,
        "<xenrt><testsequence><testcase id=\"xenserver.tc.A\"><arg>x y</arg></testcase><testcase id=\"other.B\"/></testsequence></xenrt>",
    )
    .unwrap();
    let out = pushgate(&["sequence", "check", &seq.display().to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("A [xenserver.tc.A]: `./tc A 'x y'` (timeout 10m)"),
        "{stdout}"
    );
    assert!(stdout.contains("B [other.B]: UNBOUND"), "{stdout}");
    assert!(stdout.contains("1 unbound"), "{stdout}");
}
