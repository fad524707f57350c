//! Mailing-list series: git's own mail corpus read as `git am` reads it, series assembled
//! from real-shaped threads, and the `pushgate mail series` command.

mod support;

use std::path::{Path, PathBuf};

use pushgate::intake::mail::{self, Mail};

fn t5100() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/mailinfo/t/t5100")
}

fn read(name: &str) -> String {
    let path = t5100().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// git's t5100: every message of sample.mbox gives the author, email, subject, date, message
/// and patch that `git mailinfo -u` gives (the files beside it).
#[test]
fn git_mailinfo_corpus_reads_the_same() {
    let data = std::fs::read(t5100().join("sample.mbox")).unwrap();
    let messages = mail::mbox::split(&data);
    assert_eq!(messages.len(), 18, "git mailsplit finds 18");
    for (i, raw) in messages.iter().enumerate() {
        let n = format!("{:04}", i + 1);
        let m = Mail::parse(raw).unwrap_or_else(|e| panic!("message {n}: {e}"));
        let info = read(&format!("info{n}"));
        let field = |name: &str| -> String {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
                .or_else(|| {
                    info.lines()
                        .any(|l| l == format!("{name}:"))
                        .then(String::new)
                })
                .unwrap_or_else(|| panic!("info{n} has no {name}"))
        };
        assert_eq!(m.author.name, field("Author"), "message {n}: author");
        assert_eq!(m.author.email, field("Email"), "message {n}: email");
        assert_eq!(m.commit_subject, field("Subject"), "message {n}: subject");
        // git leaves the newline of an in-body Date: as a trailing space; a commit has no use
        // for it.
        assert_eq!(m.date, field("Date").trim_end(), "message {n}: date");
        assert_eq!(m.message, read(&format!("msg{n}")), "message {n}: message");
        // A multipart mail's blank lines before the boundary are git's, not the patch's.
        // Byte for byte, in the mail's own charset (message 0005's patch is ISO-8859-1).
        let expected = std::fs::read(t5100().join(format!("patch{n}"))).unwrap();
        let trim =
            |b: &[u8]| b[..b.iter().rposition(|&c| c != b'\n').map_or(0, |i| i + 1)].to_vec();
        assert_eq!(
            String::from_utf8_lossy(&trim(&m.patch)),
            String::from_utf8_lossy(&trim(&expected)),
            "message {n}: patch"
        );
        assert_eq!(trim(&m.patch), trim(&expected), "message {n}: patch bytes");
    }
}

/// The RFC 2047 samples: every encoded subject decodes to what git shows.
#[test]
fn rfc2047_samples_decode() {
    let data = std::fs::read(t5100().join("rfc2047-samples.mbox")).unwrap();
    let messages = mail::mbox::split(&data);
    assert!(messages.len() >= 10, "{}", messages.len());
    for (i, raw) in messages.iter().enumerate() {
        let n = format!("{:04}", i + 1);
        let path = t5100().join(format!("rfc2047-info-{n}"));
        let Ok(info) = std::fs::read_to_string(&path) else {
            continue;
        };
        let m = Mail::parse(raw).unwrap_or_else(|e| panic!("sample {n}: {e}"));
        let expect = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap_or("")
                .to_string()
        };
        assert_eq!(m.author.name, expect("Author"), "sample {n}: author");
        assert_eq!(m.author.email, expect("Email"), "sample {n}: email");
        assert_eq!(m.commit_subject, expect("Subject"), "sample {n}: subject");
    }
}

/// mboxrd quoting: `>From ` lines come back as `From `.
#[test]
fn mboxrd_lines_are_unquoted() {
    let data = std::fs::read(t5100().join("sample.mboxrd")).unwrap();
    let messages = mail::mbox::split(&data);
    assert_eq!(messages.len(), 2);
    let first = Mail::parse(&messages[0]).unwrap();
    assert_eq!(
        first.message,
        "From the beginning, mbox should have been mboxrd\n>From escaped\n\
         From not mangled but this line should have been escaped\n\n"
    );
    let second = Mail::parse(&messages[1]).unwrap();
    assert!(second
        .message
        .starts_with(" >From unchanged\n From also unchanged\n"));
    assert!(
        second.message.ends_with("intended:\n>From\n\n"),
        "{:?}",
        second.message
    );
}

const DIFF: &str = "---\n f | 2 +-\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n";

/// A mail to the list `to`, as git send-email writes one.
fn list_mail(to: &str, id: &str, subject: &str, reply_to: Option<&str>, body: &str) -> Vec<u8> {
    let mut raw = format!(
        "From: Ann Author <ann@example.org>\nTo: {to}\nSubject: {subject}\n\
         Message-ID: <{id}>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
    );
    if let Some(p) = reply_to {
        raw.push_str(&format!("In-Reply-To: <{p}>\nReferences: <{p}>\n"));
    }
    raw.push('\n');
    raw.push_str(body);
    raw.into_bytes()
}

/// `git format-patch --stdout --thread=shallow BASE..HEAD` with `extra` options, sent by
/// `sender` (the cover letter is from the committer, as git send-email sends it).
fn format_patch(
    up: &support::Upstream,
    extra: &[&str],
    base: &str,
    sender: (&str, &str),
) -> String {
    let range = format!("{base}..HEAD");
    let mut args = vec!["format-patch", "--stdout", "--thread=shallow"];
    args.extend_from_slice(extra);
    args.push(&range);
    support::git_env(
        &up.work,
        &args,
        &[
            ("GIT_COMMITTER_NAME", sender.0),
            ("GIT_COMMITTER_EMAIL", sender.1),
        ],
    )
}

async fn sqlite_store(dir: &Path) -> pushgate::store::Store {
    let url = format!("sqlite://{}?mode=rwc", dir.join("pushgate.db").display());
    pushgate::store::Store::open(&url).await.unwrap()
}

/// A real public-inbox v2 archive: read whole, then only what is new; the same again reads
/// nothing; the same mail over public-inbox-httpd (mirrored with git) is the same mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_inbox_is_read_incrementally_and_once() {
    use pushgate::intake::mail::ingest;
    let mut inbox = support::public_inbox::PublicInbox::new("xen-devel");
    let to = inbox.address.clone();
    let patch = |n: u32| format!("change {n}\n\nSigned-off-by: Ann <ann@example.org>\n{DIFF}");
    inbox.deliver(&list_mail(
        &to,
        "c@x",
        "[PATCH 0/3] the series",
        None,
        "why\n",
    ));
    inbox.deliver(&list_mail(
        &to,
        "p1@x",
        "[PATCH 1/3] one",
        Some("c@x"),
        &patch(1),
    ));
    inbox.deliver(&list_mail(
        &to,
        "p2@x",
        "[PATCH 2/3] two",
        Some("c@x"),
        &patch(2),
    ));

    let tmp = tempfile::tempdir().unwrap();
    let store = sqlite_store(tmp.path()).await;
    let first = ingest::ingest_inbox(&store, "xen-devel", inbox.path())
        .await
        .unwrap();
    assert_eq!((first.read, first.added), (3, 3), "{first:?}");
    let again = ingest::ingest_inbox(&store, "xen-devel", inbox.path())
        .await
        .unwrap();
    assert_eq!((again.read, again.added), (0, 0), "{again:?}");

    let mails = ingest::load_list(&store, "xen-devel").await.unwrap();
    let revisions = pushgate::series::assemble(&mails);
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].missing(), [3]);

    inbox.deliver(&list_mail(
        &to,
        "p3@x",
        "[PATCH 3/3] three",
        Some("c@x"),
        &patch(3),
    ));
    inbox.deliver(&list_mail(
        &to,
        "r@x",
        "Re: [PATCH 2/3] two",
        Some("p2@x"),
        "> change 2\n\nReviewed-by: Rev Iewer <rev@example.org>\n",
    ));
    let more = ingest::ingest_inbox(&store, "xen-devel", inbox.path())
        .await
        .unwrap();
    assert_eq!((more.read, more.added), (2, 2), "{more:?}");
    let mails = ingest::load_list(&store, "xen-devel").await.unwrap();
    assert_eq!(mails.len(), 5);
    let revisions = pushgate::series::assemble(&mails);
    assert_eq!(revisions.len(), 1);
    assert!(revisions[0].is_complete());
    assert_eq!(
        revisions[0].trailers[1][0].to_string(),
        "Reviewed-by: Rev Iewer <rev@example.org>"
    );

    // Over HTTP: mirrored, then read; the same mail in the same list is not kept twice.
    inbox.serve();
    let cache = tmp.path().join("mirror");
    let remote = ingest::ingest_remote_inbox(&store, "xen-devel", &inbox.url(), &cache)
        .await
        .unwrap();
    assert_eq!((remote.read, remote.added), (5, 0), "{remote:?}");
    let other = ingest::ingest_remote_inbox(&store, "mirror", &inbox.url(), &cache)
        .await
        .unwrap();
    assert_eq!(
        (other.read, other.added),
        (5, 5),
        "another list reads it for itself: {other:?}"
    );
    assert_eq!(store.list_mail_count("xen-devel").await.unwrap(), 5);
}

/// An mbox, a Maildir and an MDA pipe (the pushgate binary reading stdin) keep each mail once,
/// on SQLite and PostgreSQL; unreadable mail is named and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbox_maildir_and_stdin_keep_each_mail_once() {
    use pushgate::intake::mail::ingest;
    let sample = std::fs::read(t5100().join("sample.mbox")).unwrap();
    let pg = support::Postgres::new();
    let tmp = tempfile::tempdir().unwrap();
    for store in [
        sqlite_store(tmp.path()).await,
        pushgate::store::Store::open(&pg.url).await.unwrap(),
    ] {
        let first = ingest::ingest_mbox(&store, "git", "sample.mbox", sample.clone())
            .await
            .unwrap();
        assert_eq!((first.read, first.added), (18, 18), "{first:?}");
        let again = ingest::ingest_mbox(&store, "git", "sample.mbox", sample.clone())
            .await
            .unwrap();
        assert_eq!((again.read, again.added), (18, 0));
        // The same mail on another list is that list's.
        let other = ingest::ingest_mbox(&store, "other", "sample.mbox", sample.clone())
            .await
            .unwrap();
        assert_eq!(other.added, 18);
        let bad = ingest::ingest_mbox(&store, "git", "bad", b"\x00\x01 not mail".to_vec())
            .await
            .unwrap();
        assert_eq!(bad.added, 0);
        assert_eq!(bad.unreadable.len(), 1, "{bad:?}");
        assert!(bad.unreadable[0].starts_with("bad: message 1: "), "{bad:?}");
        assert_eq!(store.list_mail_count("git").await.unwrap(), 18);
    }

    // A Maildir, as an MDA or fetchmail fills one.
    let maildir = tmp.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for (i, raw) in pushgate::intake::mail::mbox::split(&sample)
        .iter()
        .enumerate()
    {
        let sub = if i % 2 == 0 { "new" } else { "cur" };
        std::fs::write(maildir.join(sub).join(format!("{i}.host:2,")), raw).unwrap();
    }
    let store = sqlite_store(tmp.path()).await;
    let got = ingest::ingest_maildir(&store, "maildir", &maildir)
        .await
        .unwrap();
    assert_eq!((got.read, got.added), (18, 18));
    store.close().await;

    // The binary on a pipe, one message at a time, as an MDA runs it.
    let config = tmp.path().join("pushgate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n",
            tmp.path().display(),
            tmp.path().join("pushgate.db").display()
        ),
    )
    .unwrap();
    let raw = list_mail("l@example.org", "piped@x", "[PATCH] piped", None, DIFF);
    for expect in ["1 new", "0 new"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["mail", "ingest", "--list", "piped", "--config"])
            .arg(&config)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&raw).unwrap();
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{said} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains(expect), "{said}");
    }
}

/// `pushgate mail series --json` on an mbox holding every case a list throws at it.
#[test]
fn mail_series_prints_what_a_maintainer_sees() {
    let to = "xen-devel@lists.example.org";
    let patch = |n: u32| format!("change {n}\n{DIFF}");
    let bob = |raw: Vec<u8>| {
        String::from_utf8(raw)
            .unwrap()
            .replace("Ann Author <ann@example.org>", "Bob <bob@example.org>")
            .into_bytes()
    };
    let mails: Vec<Vec<u8>> = vec![
        // Out of order: patches before their cover.
        list_mail(to, "a3@x", "[PATCH 3/3] three", Some("a0@x"), &patch(3)),
        list_mail(to, "a0@x", "[PATCH 0/3] Ann's series", None, "why\n"),
        list_mail(to, "a1@x", "[PATCH 1/3] one", Some("a0@x"), &patch(1)),
        list_mail(to, "a2@x", "[PATCH 2/3] two", Some("a0@x"), &patch(2)),
        list_mail(
            to,
            "r1@x",
            "Re: [PATCH 1/3] one",
            Some("a1@x"),
            "Acked-by: Jan <jan@example.org>\n",
        ),
        // b4's partial reroll of 2/3.
        list_mail(
            to,
            "a2v2@x",
            "[PATCH v2 2/3] two, fixed",
            Some("a2@x"),
            &patch(22),
        ),
        bob(list_mail(
            to,
            "b0@x",
            "[RFC PATCH v2 0/2] Bob's idea",
            None,
            "idea\n\nbase-commit: 1111111111111111111111111111111111111111\n",
        )),
        bob(list_mail(
            to,
            "b2@x",
            "[RFC PATCH v2 2/2] second",
            Some("b0@x"),
            &patch(5),
        )),
    ];
    let mut mbox = Vec::new();
    for m in &mails {
        mbox.extend_from_slice(b"From nobody Mon Sep 17 00:00:00 2001\n");
        mbox.extend_from_slice(m);
        mbox.push(b'\n');
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("list.mbox");
    std::fs::write(&path, &mbox).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["mail", "series", "--json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:#?}");
    let find = |root: &str| {
        all.iter()
            .find(|s| s["root"] == root)
            .unwrap_or_else(|| panic!("{root}: {all:#?}"))
    };

    let v1 = find("a0@x");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["cover"], "[PATCH 0/3] Ann's series");
    assert_eq!(
        v1["patches"],
        serde_json::json!(["[PATCH 1/3] one", "[PATCH 2/3] two", "[PATCH 3/3] three"])
    );
    assert_eq!(v1["complete"], true);
    assert_eq!(v1["missing"], serde_json::json!([]));
    assert_eq!(
        v1["trailers"][0],
        serde_json::json!(["Acked-by: Jan <jan@example.org>"])
    );
    assert_eq!(v1["superseded_by"], "a2v2@x");

    let v2 = find("a2v2@x");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["series"], "a0@x");
    assert_eq!(v2["patches"][1], "[PATCH v2 2/3] two, fixed");
    assert_eq!(v2["patches"][0], "[PATCH 1/3] one");
    assert_eq!(v2["complete"], true);

    let b = find("b0@x");
    assert_eq!(b["version"], 2);
    assert_eq!(b["rfc"], true);
    assert_eq!(b["complete"], false);
    assert_eq!(b["missing"], serde_json::json!([1]));
    assert_eq!(b["base_commit"], "1111111111111111111111111111111111111111");
    assert_eq!(b["cover"], "[RFC PATCH v2 0/2] Bob's idea");

    // The plain form says the same for people.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["mail", "series"])
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("v2 from bob@example.org (missing 1/2)"),
        "{said}"
    );
    assert!(said.contains("  1/2: missing"), "{said}");
    assert!(said.contains("+ Acked-by: Jan <jan@example.org>"), "{said}");
    // A file that is not there is an error naming it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["mail", "series", "/nonexistent.mbox"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.mbox"));
}

/// A series made by git format-patch applies with git2 to the same trees, authors, dates and
/// messages `git am` makes; one that does not apply names the patch and the file.
#[test]
fn a_series_applies_as_git_am_applies_it() {
    use pushgate::repo::apply::{apply_series, ApplyError};
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(
        root.path(),
        &[("README", "hello\n"), ("src/a.c", "int a;\n")],
    );
    let base = up.head("master");
    up.write("src/a.c", "int a;\nint b;\n");
    up.commit(
        "a: add b\n\nBecause b is needed.\n\nSigned-off-by: Ann <ann@example.org>",
        ("Ann Author", "ann@example.org"),
    );
    up.write("README", "hello\nworld\n");
    up.write("docs/new.txt", "new file\n");
    up.commit("docs: say more", ("Jörg Ünicode", "joerg@example.org"));
    up.write("src/a.c", "int a;\nint b;\nint c;\n");
    up.commit("a: add c", ("Ann Author", "ann@example.org"));
    let tip = support::git(&up.work, &["rev-parse", "HEAD"]);
    let mbox = format_patch(
        &up,
        &["--cover-letter", "--base", &base],
        &base,
        ("Ann Author", "ann@example.org"),
    );
    let (mails, errors) = pushgate::intake::mail::parse_mbox(mbox.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let revisions = pushgate::series::assemble(&mails);
    assert_eq!(revisions.len(), 1);
    let r = &revisions[0];
    assert!(r.is_complete() && r.cover.is_some());
    assert_eq!(r.base_commit.as_deref(), Some(base.as_str()));
    let patches: Vec<_> = r
        .patches
        .iter()
        .flatten()
        .map(|&i| pushgate::series::patch(&mails[i]))
        .collect();

    let repo = git2::Repository::open(&up.work).unwrap();
    let committer = git2::Signature::now("pushgate", "pushgate@example.org").unwrap();
    let made = apply_series(
        &repo,
        git2::Oid::from_str(&base).unwrap(),
        &patches,
        &committer,
    )
    .unwrap();
    assert_eq!(made.len(), 3);
    let originals: Vec<String> = support::git(
        &up.work,
        &["rev-list", "--reverse", &format!("{base}..{tip}")],
    )
    .lines()
    .map(str::to_string)
    .collect();
    for (ours, theirs) in made.iter().zip(&originals) {
        let ours = repo.find_commit(*ours).unwrap();
        let theirs = repo
            .find_commit(git2::Oid::from_str(theirs).unwrap())
            .unwrap();
        assert_eq!(ours.tree_id(), theirs.tree_id());
        assert_eq!(ours.message(), theirs.message());
        assert_eq!(ours.author().name(), theirs.author().name());
        assert_eq!(ours.author().email(), theirs.author().email());
        assert_eq!(ours.author().when(), theirs.author().when());
        assert_eq!(ours.committer().name(), Some("pushgate"));
    }
    // git am on the same base agrees.
    support::git(&up.work, &["checkout", "-q", "-b", "am", &base]);
    let mbox_path = root.path().join("series.mbox");
    // (git am stops at a cover letter; it is given the patches alone.)
    let patches_only = support::git(
        &up.work,
        &["format-patch", "--stdout", &format!("{base}..{tip}")],
    );
    std::fs::write(&mbox_path, patches_only + "\n").unwrap();
    support::git(&up.work, &["am", "-q", mbox_path.to_str().unwrap()]);
    let am_tree = support::git(&up.work, &["rev-parse", "HEAD^{tree}"]);
    assert_eq!(
        repo.find_commit(made[2]).unwrap().tree_id().to_string(),
        am_tree
    );

    // On a base where src/a.c moved on, patch 1 fails and says where.
    support::git(&up.work, &["checkout", "-q", "-b", "moved", &base]);
    up.write("src/a.c", "long a;\n");
    let moved = up.commit("a: long", ("Mia Maintainer", "mia@example.org"));
    let err = apply_series(
        &repo,
        git2::Oid::from_str(&moved).unwrap(),
        &patches,
        &committer,
    )
    .unwrap_err();
    match &err {
        ApplyError::DoesNotApply {
            number,
            file,
            subject,
            ..
        } => {
            assert_eq!(*number, 1);
            assert_eq!(file.as_deref(), Some("src/a.c"));
            assert_eq!(subject, "[PATCH 1/3] a: add b");
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string()
            .starts_with("patch 1 ([PATCH 1/3] a: add b) does not apply to src/a.c"),
        "{err}"
    );
}

/// A series that does not apply is answered in its thread, through a real SMTP server: to the
/// sender, Cc the list, In-Reply-To the cover letter, References the thread, `Re:` subject,
/// naming the patch and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_that_does_not_apply_is_answered_in_its_thread() {
    use pushgate::notify::{
        compose_series_reply, deliver_due, SeriesOutcome, SeriesReply, SmtpMailer,
    };
    use pushgate::repo::apply::{apply_series, ApplyError};
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("src/a.c", "int a;\n")]);
    let base = up.head("master");
    up.write("src/a.c", "int a;\nint b;\n");
    up.commit("a: add b", ("Ann Author", "ann@example.org"));
    let mbox = format_patch(
        &up,
        &["--cover-letter", "--to=xen-devel@lists.example.org"],
        &base,
        ("Ann Author", "ann@example.org"),
    );
    let (mails, _) = pushgate::intake::mail::parse_mbox(mbox.as_bytes());
    let revisions = pushgate::series::assemble(&mails);
    let r = &revisions[0];
    let cover = &mails[r.cover.unwrap()];
    let patches: Vec<_> = r
        .patches
        .iter()
        .flatten()
        .map(|&i| pushgate::series::patch(&mails[i]))
        .collect();

    // Master moved on under the series.
    up.write("src/a.c", "long a;\n");
    let moved = up.commit("a: long", ("Mia Maintainer", "mia@example.org"));
    let repo = git2::Repository::open(&up.work).unwrap();
    let committer = git2::Signature::now("pushgate", "pushgate@example.org").unwrap();
    let Err(ApplyError::DoesNotApply {
        subject,
        file,
        reason,
        ..
    }) = apply_series(
        &repo,
        git2::Oid::from_str(&moved).unwrap(),
        &patches,
        &committer,
    )
    else {
        panic!("the series applied on a base it does not fit");
    };
    let reply = compose_series_reply(&SeriesReply {
        from: "pushgate <pushgate@example.org>",
        list: "xen-devel@lists.example.org",
        answering: cover,
        base: &format!("master at {}", &moved[..12]),
        outcome: SeriesOutcome::DoesNotApply {
            patch: subject,
            file,
            reason,
        },
        link: None,
    })
    .unwrap();

    let smtp = support::Smtp::start(support::free_port(), &root.path().join("maildir"));
    let store = sqlite_store(root.path()).await;
    store.enqueue_mail(None, &reply).await.unwrap();
    let mailer = SmtpMailer::new(&smtp.url()).unwrap();
    let sent = deliver_due(
        &store,
        &mailer,
        "pushgate@example.org",
        std::time::Duration::from_secs(1),
    )
    .await
    .unwrap();
    assert_eq!(sent.sent.len(), 1);
    let received = smtp.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, ["ann@example.org"]);
    assert_eq!(received[0].cc, ["xen-devel@lists.example.org"]);
    // Read back as the list's archive would file it.
    let raw = std::fs::read(
        std::fs::read_dir(smtp.maildir.join("new"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let answer = Mail::parse(&raw).unwrap();
    assert_eq!(
        answer.in_reply_to.as_deref(),
        Some(cover.message_id.as_str())
    );
    assert_eq!(answer.references, std::slice::from_ref(&cover.message_id));
    assert_eq!(answer.subject_line, format!("Re: {}", cover.subject_line));
    assert!(
        answer.message.contains("[PATCH 1/1] a: add b"),
        "{}",
        answer.message
    );
    assert!(
        answer.message.contains("fails on src/a.c"),
        "{}",
        answer.message
    );
    // In the thread: assembled with the series, it is a reply, not a patch.
    let mut with_answer = mails.clone();
    with_answer.push(answer);
    let again = pushgate::series::assemble(&with_answer);
    assert_eq!(again.len(), 1);
    assert!(again[0].is_complete());
}

/// The series pass over a policy's list: a series that applies is recorded with its commits,
/// one that does not is answered in its thread, an incomplete one hears what is missing after
/// the wait, and a second pass does nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_series_pass_applies_answers_and_waits() {
    use pushgate::intake::mail::ingest;
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(
        root.path(),
        &[("README", "hello\n"), ("src/a.c", "int a;\n")],
    );
    let base = up.head("master");
    // Ann's series changes README: it applies on master as it will be.
    up.write("README", "hello\nworld\n");
    up.commit("README: say more", ("Ann Author", "ann@example.org"));
    up.write("README", "hello\nworld\nagain\n");
    up.commit("README: and more", ("Ann Author", "ann@example.org"));
    let ann = format_patch(
        &up,
        &["--cover-letter", "--base", &base],
        &base,
        ("Ann Author", "ann@example.org"),
    );
    // Bob's patch changes src/a.c, which master then changes under it.
    support::git(&up.work, &["checkout", "-q", "-B", "bob", &base]);
    up.write("src/a.c", "int a;\nint b;\n");
    up.commit("a: add b", ("Bob Builder", "bob@example.org"));
    let bob = format_patch(&up, &[], &base, ("Bob Builder", "bob@example.org"));
    support::git(&up.work, &["checkout", "-q", "-B", "master", &base]);
    up.write("src/a.c", "long a;\n");
    up.commit("a: long", ("Mia Maintainer", "mia@example.org"));
    support::git(
        &up.work,
        &["push", "-q", "-f", "origin", "HEAD:refs/heads/master"],
    );
    // Cleo's 1/2 came, 2/2 never did (and long ago).
    let cleo = String::from_utf8(list_mail(
        "xen-devel@lists.example.org",
        "cleo1@x",
        "[PATCH 1/2] one",
        None,
        DIFF,
    ))
    .unwrap()
    .replace("Ann Author <ann@example.org>", "Cleo <cleo@example.org>");

    let sandbox = support::Sandbox::new();
    sandbox.sequence("test", "[[step]]\nname = \"t\"\ncommand = \"true\"\n");
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"test\"]\n[mailing_list]\nname = \"xen-devel\"\n\
             address = \"xen-devel@lists.example.org\"\nmissing_after = \"10m\"\n\
             local_hosts = true\nmax_age = \"36500d\"\n",
            up.bare.display()
        ),
    );
    let config = sandbox.config("[mail]\nfrom = \"pushgate <pushgate@example.org>\"\n");
    let store = pushgate::store::Store::open(&config.database_url)
        .await
        .unwrap();
    for (name, mbox) in [
        ("ann", ann),
        ("bob", bob),
        (
            "cleo",
            format!("From nobody Mon Sep 17 00:00:00 2001\n{cleo}"),
        ),
    ] {
        let got = ingest::ingest_mbox(&store, "xen-devel", name, mbox.into_bytes())
            .await
            .unwrap();
        assert!(got.unreadable.is_empty(), "{got:?}");
    }

    let check = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["mail", "check", "--config"])
            .arg(sandbox.path().join("pushgate.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = check();
    let line = |who: &str| {
        said.lines()
            .find(|l| l.contains(who))
            .unwrap_or_else(|| panic!("nothing about {who}: {said}"))
            .to_string()
    };
    assert!(
        line("cover.").contains(&format!(
            "applied on base-commit {}: 2 commit(s)",
            &base[..12]
        )),
        "{said}"
    );
    assert!(line("@x>").contains("missing 2/2"), "{said}");
    let bob_line = said
        .lines()
        .find(|l| l.contains("does not apply"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(bob_line.contains("[PATCH] a: add b (src/a.c)"), "{said}");
    // Ann's series was tested at once: the sequence passes on it.
    assert!(line("project: flight").contains(": pass: "), "{said}");
    assert_eq!(said.lines().count(), 4, "{said}");
    assert_eq!(check().trim(), "nothing new");

    // Three replies were sent, each in its thread.
    let mail: Vec<(Vec<u8>, Mail)> = sandbox
        .outbox()
        .iter()
        .map(|p| {
            let raw = std::fs::read(p).unwrap();
            let parsed = Mail::parse(&raw).unwrap();
            (raw, parsed)
        })
        .collect();
    assert_eq!(mail.len(), 3, "{:#?}", sandbox.outbox());
    let to = |who: &str| {
        &mail
            .iter()
            .find(|(raw, _)| {
                String::from_utf8_lossy(raw)
                    .lines()
                    .any(|l| l.starts_with("To:") && l.contains(who))
            })
            .unwrap_or_else(|| panic!("no mail to {who}"))
            .1
    };
    let parsed = to("bob@example.org");
    assert_eq!(parsed.subject_line, "Re: [PATCH] a: add b");
    assert!(
        parsed.message.contains("does not apply on master at"),
        "{}",
        parsed.message
    );
    let parsed = to("cleo@example.org");
    assert_eq!(parsed.in_reply_to.as_deref(), Some("cleo1@x"));
    assert!(parsed.message.contains("missing 2/2"), "{}", parsed.message);
    let parsed = to("ann@example.org");
    assert!(
        parsed.subject_line.starts_with("Re: [PATCH 0/2]"),
        "{}",
        parsed.subject_line
    );
    assert!(
        parsed.message.contains("passed test") && parsed.message.contains("Tested-by: pushgate"),
        "{}",
        parsed.message
    );

    // The applied series' commits are in the mirror, on the sender's base.
    let ann_root = said.lines().find(|l| l.contains("cover.")).unwrap();
    let ann_root = &ann_root[ann_root.find('<').unwrap() + 1..ann_root.find('>').unwrap()];
    let series = store.series_list(Some("xen-devel")).await.unwrap();
    let ann = series.iter().find(|s| s.root == ann_root).unwrap();
    assert_eq!(ann.base.as_deref(), Some(base.as_str()));
    assert_eq!(
        (ann.state.as_str(), ann.verdict.as_deref()),
        ("concluded", Some("pass"))
    );
    let tip = ann.tip.clone().unwrap();
    let mirror = git2::Repository::open_bare(config.mirrors_dir().join("project.git")).unwrap();
    let tip = mirror
        .find_commit(git2::Oid::from_str(&tip).unwrap())
        .unwrap();
    assert_eq!(tip.summary(), Some("README: and more"));
    assert_eq!(
        tip.parent(0).unwrap().parent_id(0).unwrap().to_string(),
        base
    );
}

/// Ann's five patches on `base`; the third adds BROKEN (the test sequence fails on it) unless
/// `fixed`. Returns their shas.
fn ann_series(up: &support::Upstream, base: &str, fixed: bool) -> Vec<String> {
    support::git(&up.work, &["checkout", "-q", "-B", "ann", base]);
    let ann = ("Ann Author", "ann@example.org");
    (1..=5)
        .map(|i| {
            let name = ["one", "two", "three", "four", "five"][i - 1];
            up.write(&format!("{name}.txt"), &format!("{name}\n"));
            if i == 3 && !fixed {
                up.write("BROKEN", "yes\n");
            }
            up.commit(&format!("p{i}: add {name}"), ann)
        })
        .collect()
}

/// A project on `root` and Ann's broken five-patch series as she mails it, with a cover
/// letter and its base: (upstream, base, mbox).
fn ann_posted(root: &Path) -> (support::Upstream, String, String) {
    let up = support::Upstream::new(root, &[("README", "hello\n")]);
    let base = up.head("master");
    ann_series(&up, &base, false);
    let ann = format_patch(
        &up,
        &["--cover-letter", "--base", &base],
        &base,
        ("Ann Author", "ann@example.org"),
    );
    (up, base, ann)
}

/// A sandbox whose policy runs the test sequence (one retry) on `up` and tests the series of
/// the list `xen-devel`, with `extra` lines in `[mailing_list]`.
fn list_sandbox(up: &support::Upstream, extra: &str) -> support::Sandbox {
    let sandbox = support::Sandbox::new();
    sandbox.sequence("test", support::TEST_SEQUENCE);
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"test\"]\nretries = 1\n[mailing_list]\n\
             name = \"xen-devel\"\naddress = \"xen-devel@lists.example.org\"\n{extra}",
            up.bare.display()
        ),
    );
    sandbox
}

/// The Message-ID of the mail in `mbox` whose subject contains `subject`.
fn id_of(mbox: &str, subject: &str) -> String {
    pushgate::intake::mail::mbox::split(mbox.as_bytes())
        .iter()
        .map(|raw| Mail::parse(raw).unwrap())
        .find(|m| m.subject_line.contains(subject))
        .unwrap_or_else(|| panic!("no `{subject}` in {mbox}"))
        .message_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_series_is_tested_judged_in_its_thread_and_queued_by_a_maintainer() {
    tested_judged_and_queued(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailed_series_is_tested_judged_and_queued_on_postgresql() {
    let pg = support::Postgres::new();
    tested_judged_and_queued(Some(&pg.url)).await;
}

/// The whole life of a mailed series, on SQLite or on the PostgreSQL at `database`.
async fn tested_judged_and_queued(database: Option<&str>) {
    use pushgate::decision::Verdict;
    use pushgate::gate::BranchOutcome;
    use pushgate::intake::mail::ingest;
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    let ann = ("Ann Author", "ann@example.org");
    // git format-patch names mails by time: each version gets ids of its own.
    let posted = |extra: &[&str], version: &str| {
        format_patch(&up, extra, &base, ann).replace(
            ".git.ann@example.org",
            &format!(".{version}.git.ann@example.org"),
        )
    };
    let broken = ann_series(&up, &base, false);
    let v1 = posted(&["--cover-letter", "--base", &base], "v1");
    let v1_cover = id_of(&v1, "0/5");
    let in_reply = format!("--in-reply-to=<{v1_cover}>");
    // (v2 answers v1's cover letter, whose id is v1's already.)
    let v2 = posted(&["--cover-letter", "--base", &base, "-v2", &in_reply], "v2")
        .replace(".v1.v2.git.", ".v1.git.");
    let v2_cover = id_of(&v2, "0/5");
    let v2_third = id_of(&v2, "3/5");
    // b4's partial reroll: only 3/5 again, fixed, in reply to v2's 3/5.
    support::git(&up.work, &["checkout", "-q", "-B", "fix", &broken[1]]);
    support::git(&up.work, &["cherry-pick", "-n", &broken[2]]);
    support::git(&up.work, &["rm", "-q", "-f", "BROKEN"]);
    up.commit("p3: add three", ann);
    let v3 = support::git_env(
        &up.work,
        &[
            "format-patch",
            "--stdout",
            "-1",
            "--subject-prefix=PATCH v3",
            &format!("--in-reply-to=<{v2_third}>"),
        ],
        &[("GIT_COMMITTER_EMAIL", "ann@example.org")],
    )
    .replace("[PATCH v3] p3", "[PATCH v3 3/5] p3");

    let sandbox = list_sandbox(&up, "local_hosts = true\n");
    let database = database
        .map(|url| format!("database_url = \"{url}\"\n"))
        .unwrap_or_default();
    let config = sandbox.config(&format!(
        "{database}[mail]\nfrom = \"pushgate <pushgate@example.org>\"\n"
    ));
    let service = support::open_service(config).await;
    let policy = service.rules.get().policies[0].clone();
    let store = service.store().clone();
    let ingest = |mbox: String| {
        let store = store.clone();
        async move {
            let got = ingest::ingest_mbox(&store, "xen-devel", "post", mbox.into_bytes())
                .await
                .unwrap();
            assert!(got.unreadable.is_empty(), "{got:?}");
        }
    };
    let said = |done: Vec<(String, String)>| {
        done.into_iter()
            .map(|(root, said)| format!("<{root}> {said}\n"))
            .collect::<String>()
    };

    // v1 is applied and its flight planned; v2 arrives before it ran, and replaces it.
    ingest(v1).await;
    let done = said(service.list_pass(&policy).await.unwrap().done);
    assert!(
        done.contains(&format!("<{v1_cover}> applied on base-commit")),
        "{done}"
    );
    ingest(v2).await;
    let done = said(service.list_pass(&policy).await.unwrap().done);
    assert!(
        done.contains(&format!(
            "<{v1_cover}> superseded by <{v2_cover}>; its flight is cancelled"
        )),
        "{done}"
    );
    assert!(done.contains(&format!("<{v2_cover}> applied on")), "{done}");
    let outcomes = service.gate.series_pass(&policy).await.unwrap();
    assert_eq!(outcomes.len(), 2, "{outcomes:#?}");
    assert!(
        matches!(&outcomes[0], BranchOutcome::Idle { message } if message.contains("cancelled: superseded by")),
        "{outcomes:#?}"
    );
    // v2's flight finds the patch that broke the test, inside the series.
    let BranchOutcome::Decided {
        verdict,
        culprit,
        pushed_to,
        ..
    } = &outcomes[1]
    else {
        panic!("{outcomes:#?}")
    };
    assert_eq!((*verdict, pushed_to), (Verdict::Regression, &None));
    let series = store.series_list(Some("xen-devel")).await.unwrap();
    let row = |root: &str| series.iter().find(|s| s.root == root).unwrap().clone();
    let v2_row = row(&v2_cover);
    let mirror =
        git2::Repository::open_bare(service.config.mirrors_dir().join("project.git")).unwrap();
    let tip = mirror
        .find_commit(git2::Oid::from_str(v2_row.tip.as_deref().unwrap()).unwrap())
        .unwrap();
    let third = tip.parent(0).unwrap().parent(0).unwrap();
    assert_eq!(culprit.as_deref(), Some(third.id().to_string().as_str()));
    assert_eq!(third.summary(), Some("p3: add three"));
    assert_eq!(third.author().email(), Some("ann@example.org"));
    assert_eq!(row(&v1_cover).flight_state.as_deref(), Some("cancelled"));
    // Nothing reached staging or master.
    assert_eq!(up.head("staging"), base);
    assert_eq!(up.head("master"), base);

    // The thread hears which patch broke which step, with the end of its log.
    service.deliver_mail().await.unwrap();
    let outbox = sandbox.outbox();
    assert_eq!(outbox.len(), 1, "{outbox:?}");
    let reply = Mail::parse(&std::fs::read(&outbox[0]).unwrap()).unwrap();
    assert_eq!(reply.in_reply_to.as_deref(), Some(v2_cover.as_str()));
    assert!(
        reply.references.contains(&v1_cover),
        "{:?}",
        reply.references
    );
    assert!(
        reply.subject_line.starts_with("Re: [PATCH v2 0/5]"),
        "{}",
        reply.subject_line
    );
    for expected in [
        "[PATCH v2 3/5] p3: add three",
        "but test/test failed.",
        "BROKEN is here",
    ] {
        assert!(
            reply.message.contains(expected),
            "no `{expected}` in:\n{}",
            reply.message
        );
    }

    // A maintainer cannot queue what failed: nothing changes.
    let queue = |id: i64| {
        std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["series", "queue", &id.to_string(), "--config"])
            .arg(sandbox.path().join("pushgate.toml"))
            .output()
            .unwrap()
    };
    let refused = queue(v2_row.id);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("has not passed (its flight decided regression)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(up.head("staging"), base);

    // The partial reroll replaces 3/5 only; the new revision passes.
    ingest(v3).await;
    let done = said(service.list_pass(&policy).await.unwrap().done);
    assert!(done.contains("applied on base-commit"), "{done}");
    let outcomes = service.gate.series_pass(&policy).await.unwrap();
    assert!(
        matches!(
            outcomes.as_slice(),
            [BranchOutcome::Decided {
                verdict: Verdict::Pass,
                ..
            }]
        ),
        "{outcomes:#?}"
    );
    service.deliver_mail().await.unwrap();
    let passed = sandbox
        .outbox()
        .iter()
        .map(|p| Mail::parse(&std::fs::read(p).unwrap()).unwrap())
        .find(|m| m.message.contains("passed test"))
        .expect("a reply saying the series passed");
    assert!(passed
        .message
        .contains("Tested-by: pushgate <pushgate@example.org>"));

    // Queued by a maintainer, the series lands on staging, and the gate takes it to master.
    let v3_row = store
        .series_list(Some("xen-devel"))
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.verdict.as_deref() == Some("pass"))
        .unwrap();
    let queued = queue(v3_row.id);
    assert!(
        queued.status.success(),
        "{}",
        String::from_utf8_lossy(&queued.stderr)
    );
    let staging = up.head("staging");
    assert_ne!(staging, base);
    let subjects = support::git(
        &up.bare,
        &["log", "--format=%s <%ae>", &format!("{base}..staging")],
    );
    assert_eq!(
        subjects.lines().collect::<Vec<_>>(),
        [
            "p5: add five <ann@example.org>",
            "p4: add four <ann@example.org>",
            "p3: add three <ann@example.org>",
            "p2: add two <ann@example.org>",
            "p1: add one <ann@example.org>",
        ]
    );
    assert!(!queue(v3_row.id).status.success(), "queued twice");
    for (_, outcome) in service.gate_once().await.unwrap() {
        assert!(
            matches!(
                outcome,
                BranchOutcome::Decided {
                    verdict: Verdict::Pass,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    assert_eq!(up.head("master"), staging);
}

/// Writes each mail of `mbox` into the Maildir `dir`, as a delivery agent would.
fn deliver_to_maildir(dir: &Path, name: &str, mbox: &str) {
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for (i, raw) in pushgate::intake::mail::mbox::split(mbox.as_bytes())
        .iter()
        .enumerate()
    {
        std::fs::write(dir.join("new").join(format!("{name}.{i}")), raw).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_watches_the_list_and_answers_in_the_thread() {
    let root = tempfile::tempdir().unwrap();
    let (up, base, ann) = ann_posted(root.path());
    // Bob's one patch is fine.
    support::git(&up.work, &["checkout", "-q", "-B", "bob", &base]);
    up.write("bob.txt", "bob\n");
    up.commit("bob: add a file", ("Bob Builder", "bob@example.org"));
    let bob = format_patch(&up, &[], &base, ("Bob Builder", "bob@example.org"));

    let inbound = root.path().join("list-maildir");
    let mut smtp = support::Smtp::start(support::free_port(), &root.path().join("sent"));
    let sandbox = list_sandbox(
        &up,
        &format!(
            "local_hosts = true\nmaildir = \"{}\"\nquiet_on_success = true\n",
            inbound.display()
        ),
    );
    let port = support::free_port();
    let config = sandbox.path().join("pushgate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"state\"\nlisten = \"127.0.0.1:{port}\"\npoll_interval = \"1s\"\n\
             [mail]\nfrom = \"pushgate <pushgate@example.org>\"\nsmtp = \"{}\"\n",
            smtp.url()
        ),
    )
    .unwrap();
    /// Stops the service by its PID however the test ends.
    struct Serving(std::process::Child);
    impl Drop for Serving {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let serve = Serving(
        std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(sandbox.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_for_port(port, "pushgate serve");

    deliver_to_maildir(&inbound, "ann", &ann);
    let reply = support::eventually(120, "the reply to Ann's series", || {
        smtp.messages()
            .into_iter()
            .find(|m| m.to.contains(&"ann@example.org".to_string()))
    });
    assert!(
        reply.subject.starts_with("Re: [PATCH 0/5]"),
        "{}",
        reply.subject
    );
    assert_eq!(reply.cc, ["xen-devel@lists.example.org"]);
    assert!(
        reply.text.contains("[PATCH 3/5] p3: add three"),
        "{}",
        reply.text
    );

    deliver_to_maildir(&inbound, "bob", &bob);
    let list = || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
            .args(["series", "list", "--json", "--config"])
            .arg(&config)
            .current_dir(sandbox.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout).unwrap()
    };
    let flight = support::eventually(120, "Bob's series to pass", || {
        list()
            .into_iter()
            .find(|s| s["root"].as_str().unwrap().contains("bob@") && s["verdict"] == "pass")
            .map(|s| s["flight"].as_i64().unwrap())
    });
    // Its page is the gate's flight page, linked from the replies.
    let (status, page) = support::http(
        "GET",
        format!("127.0.0.1:{port}").parse().unwrap(),
        &format!("/flights/{flight}"),
        "",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("bob: add a file"), "{page}");
    drop(serve);
    // Quiet on success: the flight concluded with no mail of its own.
    let store = pushgate::store::Store::open(&format!(
        "sqlite://{}",
        sandbox.path().join("state/pushgate.db").display()
    ))
    .await
    .unwrap();
    assert!(store.mail_of_flight(flight).await.unwrap().is_empty());
    assert_eq!(list().len(), 2);
    smtp.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_never_run_on_this_machine_unless_the_list_allows_it() {
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    let sandbox = support::Sandbox::new();
    sandbox.sequence("test", support::TEST_SEQUENCE);
    let policy = |extra: &str| {
        sandbox.policy(
            "project",
            &format!(
                "repository = \"{}\"\nsequences = [\"test\"]\n[mailing_list]\n\
                 name = \"l\"\naddress = \"l@example.org\"\n{extra}",
                up.bare.display()
            ),
        )
    };
    // The lab is this machine alone (no hosts.toml): untrusted series have nowhere to run.
    policy("");
    let config = sandbox.config("");
    let Err(e) =
        pushgate::service::Service::open(config, std::sync::Arc::new(pushgate::gate::LogProgress))
            .await
    else {
        panic!("a list whose series can only run on this machine was accepted")
    };
    let e = e.to_string();
    assert!(
        e.contains(
            "series from its mailing list run `test` on a host with a test host (not local)"
        ) && e.contains("local_hosts = true"),
        "{e}"
    );
    policy("local_hosts = true\n");
    let config = sandbox.config("");
    support::open_service(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_runs_on_a_test_host_over_ssh_and_never_here() {
    use pushgate::decision::Verdict;
    use pushgate::gate::BranchOutcome;
    let root = tempfile::tempdir().unwrap();
    let (up, _, ann) = ann_posted(root.path());
    let sshd = support::sshd::Sshd::start();
    let t = sshd.target();
    let sandbox = list_sandbox(&up, "");
    // This machine and one test host: the gate may use both, a series only the test host.
    std::fs::write(
        sandbox.path().join("hosts.toml"),
        format!(
            "[[host]]\nname = \"here\"\nprovisioner = \"local\"\nslots = 4\n\
             [[host]]\nname = \"box\"\naddress = \"127.0.0.1\"\nport = {}\nuser = \"{}\"\n\
             key = \"{}\"\nknown_hosts = \"{}\"\nwork_dir = \"{}\"\nslots = 2\n",
            t.port,
            t.user,
            t.key.display(),
            t.known_hosts.display(),
            t.work_dir
        ),
    )
    .unwrap();
    let service = support::open_service(sandbox.config("")).await;
    let policy = service.rules.get().policies[0].clone();
    pushgate::intake::mail::ingest::ingest_mbox(
        service.store(),
        "xen-devel",
        "ann",
        ann.into_bytes(),
    )
    .await
    .unwrap();
    service.list_pass(&policy).await.unwrap();
    let outcomes = service.gate.series_pass(&policy).await.unwrap();
    let [BranchOutcome::Decided {
        flight,
        verdict: Verdict::Regression,
        culprit: Some(_),
        ..
    }] = outcomes.as_slice()
    else {
        panic!("{outcomes:#?}")
    };
    let runs = service.store().runs(*flight).await.unwrap();
    assert!(runs.len() >= 3, "tip, base and the search: {runs:#?}");
    assert!(
        runs.iter().all(|r| r.host == "box"),
        "{:?}",
        runs.iter().map(|r| &r.host).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_cannot_be_read_does_not_hold_up_stored_mail() {
    let root = tempfile::tempdir().unwrap();
    let up = support::Upstream::new(root.path(), &[("README", "hello\n")]);
    let base = up.head("master");
    up.write("bob.txt", "bob\n");
    up.commit("bob: add a file", ("Bob Builder", "bob@example.org"));
    let bob = format_patch(&up, &[], &base, ("Bob Builder", "bob@example.org"));
    let sandbox = support::Sandbox::new();
    sandbox.sequence("test", support::TEST_SEQUENCE);
    let gone = root.path().join("no-such-inbox");
    sandbox.policy(
        "project",
        &format!(
            "repository = \"{}\"\nsequences = [\"test\"]\n[mailing_list]\nname = \"l\"\n\
             address = \"l@example.org\"\nlocal_hosts = true\ninbox = \"{}\"\n",
            up.bare.display(),
            gone.display()
        ),
    );
    let config = sandbox.config("");
    let store = pushgate::store::Store::open(&config.database_url)
        .await
        .unwrap();
    pushgate::intake::mail::ingest::ingest_mbox(&store, "l", "bob", bob.into_bytes())
        .await
        .unwrap();
    store.close().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushgate"))
        .args(["mail", "check", "--config"])
        .arg(sandbox.path().join("pushgate.toml"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("project: cannot read the list now:"),
        "{said}"
    );
    assert!(said.contains(&gone.display().to_string()), "{said}");
    assert!(said.contains("applied on master at"), "{said}");
    assert!(said.contains(": pass: "), "{said}");
}
