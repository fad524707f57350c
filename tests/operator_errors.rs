//! What a cron job and a person are told when pushgate cannot do its work: `gate --once`'s
//! exit code when mail waits, and a full disk, a read-only state directory and an unreachable
//! database each said at once, naming the place.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::*;

fn pushgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(args)
        .current_dir(dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn gate_once_decides_and_exits_75_while_mail_waits_then_0_once_it_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let shas = up.commits(3, None);
    up.push_staging();
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    let port = free_port(); // nothing listens there yet
    let config = sandbox.config(&format!("[mail]\nsmtp = \"smtp://127.0.0.1:{port}\"\n"));
    let args = ["gate", "--once", "--config", "pushgate.toml"];

    let out = pushgate(sandbox.path(), &args);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 mail could not be sent; it stays in the outbox"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        up.head("master"),
        shas[2],
        "the decision is made all the same"
    );
    // The next run, before the mail's retry is due, still says it waits.
    let out = pushgate(sandbox.path(), &args);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));

    // The server is back and the retry due: sent, and all is well.
    let maildir = root.path().join("maildir");
    let _smtp = Smtp::start(port, &maildir);
    execute(
        &config.database_url,
        "UPDATE outbox SET next_attempt_at = 0",
    )
    .await;
    let out = pushgate(sandbox.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids = message_ids(&maildir);
    assert_eq!(ids.len(), 1, "the report mail, once");
    // The mail that finally went is the one queued before the failures: same Message-ID.
    let db = sqlx::SqlitePool::connect(&config.database_url)
        .await
        .unwrap();
    let (queued,): (String,) = sqlx::query_as("SELECT message_id FROM outbox")
        .fetch_one(&db)
        .await
        .unwrap();
    db.close().await;
    assert_eq!(ids[0], queued);

    // The one window README admits: the server took the mail, and pushgate died before it
    // wrote that down. The mail goes again, with the same Message-ID for a list or an MTA to
    // drop the copy by.
    execute(&config.database_url, "UPDATE outbox SET sent_at = NULL").await;
    let out = pushgate(sandbox.path(), &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(message_ids(&maildir), [ids[0].clone(), ids[0].clone()]);
}

/// Runs one SQL statement on the database at `url`.
async fn execute(url: &str, sql: &str) {
    let db = sqlx::SqlitePool::connect(url).await.unwrap();
    sqlx::query(sql).execute(&db).await.unwrap();
    db.close().await;
}

/// The Message-ID of every mail in a Maildir's `new`.
fn message_ids(maildir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .expect("a Message-ID")
                .trim()
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// Runs `gate --once` with `state` on a 1 MiB file system of its own, which `prepare` (a shell
/// snippet run in the mount first) may fill or make read-only.
fn gate_once_on_a_small_disk(sandbox: &Sandbox, prepare: &str) -> Output {
    let script = format!(
        "mount -t tmpfs -o size=1m none state && {prepare} && exec \"$0\" gate --once --config pushgate.toml"
    );
    std::fs::create_dir_all(sandbox.path().join("state")).unwrap();
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .arg(env!("CARGO_BIN_EXE_pushgate"))
        .current_dir(sandbox.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_a_read_only_state_and_an_unreachable_database_are_said_at_once() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = Sandbox::new();
    sandbox.standard_policy(up.bare.to_str().unwrap());
    sandbox.config("");
    let state = sandbox.path().join("state");

    for (prepare, reason) in [
        (
            "cat /dev/zero > state/fill 2>/dev/null; true",
            "the disk is full",
        ),
        ("mount -o remount,ro state", "the file system is read-only"),
    ] {
        let out = gate_once_on_a_small_disk(&sandbox, prepare);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{e}");
        let said = format!("cannot write in {}: {reason}", state.display());
        assert!(e.contains(&said), "{e}");
    }

    // A PostgreSQL where nothing listens: refused, said with the URL (its password hidden).
    let port = free_port();
    std::fs::write(
        sandbox.path().join("pushgate.toml"),
        format!("state_dir = \"state\"\ndatabase_url = \"postgres://gate:secret@127.0.0.1:{port}/gate\"\n"),
    )
    .unwrap();
    let out = pushgate(
        sandbox.path(),
        &["gate", "--once", "--config", "pushgate.toml"],
    );
    let e = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        e.contains(&format!(
            "cannot reach the database postgres://…@127.0.0.1:{port}/gate"
        )),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    assert!(!e.contains("secret"), "{e}");
}
