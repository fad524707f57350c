//! `pushgate bench mail`: a list's mail taken in (split, parse, thread and group, store), and a
//! long series applied with git2 beside `git am` on the same series and base.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::{fail, git, BenchError, Report, Stats};
use pushgate::intake::mail::{self, ingest, Mail};
use pushgate::repo::apply::apply_series;
use pushgate::store::Store;

#[derive(Debug, Serialize)]
pub struct MailReport {
    pub messages: usize,
    pub mbox_bytes: usize,
    pub rounds: usize,
    /// mbox split and every mail parsed, alone.
    pub parse: Stats,
    /// Series assembled from the parsed mails.
    pub assemble: Stats,
    /// `ingest_mbox` into a new SQLite store: split and parse a chunk ahead of the store.
    pub ingest: Stats,
    /// Every kept mail read back and parsed again (what the gate does after a restart).
    pub reload: Stats,
    /// Ingest plus assembly, per round.
    pub total: Stats,
    /// Messages per second at the median total.
    pub messages_per_second: f64,
    pub series_found: usize,
    pub patches: usize,
    /// `git am` of the series on its base (a fresh branch each round).
    pub git_am: Stats,
    /// The same series parsed, assembled and applied with git2.
    pub apply_series: Stats,
    /// git am's median over ours: above 1 means faster than git am.
    pub speedup_over_git_am: f64,
}

impl Report for MailReport {
    fn table(&self) -> String {
        let row = |name: &str, s: &Stats| {
            format!(
                "{name:<40} {:>9.1} {:>9.1} {:>9.1} {:>9.1}\n",
                s.median_ms, s.p90_ms, s.min_ms, s.max_ms
            )
        };
        let mut out = format!(
            "{} messages ({:.1} MiB mbox, {} series), {} rounds; ms\n{:<40} {:>9} {:>9} {:>9} {:>9}\n",
            self.messages,
            self.mbox_bytes as f64 / (1024.0 * 1024.0),
            self.series_found,
            self.rounds,
            "",
            "median",
            "p90",
            "min",
            "max"
        );
        out += &row("split + parse (alone)", &self.parse);
        out += &row("assemble series", &self.assemble);
        out += &row("ingest: parse | store (SQLite)", &self.ingest);
        out += &row("ingest + assemble", &self.total);
        out += &row("reload from the store and parse", &self.reload);
        out += &format!("=> {:.0} messages/s\n\n", self.messages_per_second);
        out += &row(&format!("git am, {} patches", self.patches), &self.git_am);
        out += &row(
            &format!("apply_series (git2), {} patches", self.patches),
            &self.apply_series,
        );
        out += &format!("=> {:.2}x git am's speed\n", self.speedup_over_git_am);
        out
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Messages in the generated mbox.
    #[arg(long, default_value_t = 20000)]
    messages: usize,
    /// Patches in the series applied beside git am.
    #[arg(long, default_value_t = 50)]
    patches: usize,
    /// Timed repetitions of each measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn measure(args: &Args) -> Result<MailReport, BenchError> {
    mail(args.messages, args.patches.max(1), args.rounds).await
}

async fn mail(messages: usize, patches: usize, rounds: usize) -> Result<MailReport, BenchError> {
    let rounds = rounds.max(1);
    let mbox = synthetic_list(messages);
    let dir = tempfile::tempdir().map_err(fail)?;

    let (mut parse, mut assemble, mut ingest_ms, mut reload, mut total) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut series_found = 0;
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
    for round in 0..rounds {
        // Parsing alone, and assembly from the parsed mails.
        let t0 = Instant::now();
        let parsed: Vec<Mail> = mail::mbox::split(&mbox)
            .iter()
            .filter_map(|r| Mail::parse(r).ok())
            .collect();
        let t1 = Instant::now();
        let revisions = pushgate::series::assemble(&parsed);
        let t2 = Instant::now();
        if parsed.len() != messages {
            return Err(fail(format!(
                "parsed {} of {messages} messages",
                parsed.len()
            )));
        }
        series_found = revisions.len();

        // The real intake: split and parse on one thread, a chunk ahead of the store.
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(format!("{round}.db")).display()
        );
        let store = Store::open(&url).await.map_err(fail)?;
        let data = mbox.clone();
        let t3 = Instant::now();
        let done = ingest::ingest_mbox(&store, "bench", "bench", data)
            .await
            .map_err(fail)?;
        let t4 = Instant::now();
        if done.added as usize != messages {
            return Err(fail(format!("kept {} of {messages} messages", done.added)));
        }
        let again = ingest::load_list(&store, "bench").await.map_err(fail)?;
        let t5 = Instant::now();
        store.close().await;
        if again.len() != messages {
            return Err(fail("the store gave back another count"));
        }
        parse.push(ms(t0, t1));
        assemble.push(ms(t1, t2));
        ingest_ms.push(ms(t3, t4));
        reload.push(ms(t4, t5));
        total.push(ms(t3, t4) + ms(t1, t2));
    }
    let total = Stats::of(&total);
    let per_second = messages as f64 / (total.median_ms / 1000.0);

    let (git_am, ours) = apply_beside_git_am(dir.path(), patches, rounds)?;
    let speedup = git_am.median_ms / ours.median_ms;
    Ok(MailReport {
        messages,
        mbox_bytes: mbox.len(),
        rounds,
        parse: Stats::of(&parse),
        assemble: Stats::of(&assemble),
        ingest: Stats::of(&ingest_ms),
        reload: Stats::of(&reload),
        total,
        messages_per_second: per_second,
        series_found,
        patches,
        git_am,
        apply_series: ours,
        speedup_over_git_am: speedup,
    })
}

/// A list's worth of mail: series of 1 to 12 patches with cover letters, threaded as git
/// send-email threads them, each patch a few KiB of diff, and review replies.
fn synthetic_list(messages: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages * 3000);
    let mut n = 0;
    let mut series = 0;
    while n < messages {
        series += 1;
        let total = 1 + series % 12;
        let sender = format!("dev{}@example.org", series % 97);
        let cover = format!("s{series}.0@example.org");
        let mut emit = |id: &str, subject: &str, reply: Option<&str>, body: &str| {
            if n >= messages {
                return;
            }
            n += 1;
            out.extend_from_slice(b"From nobody Mon Sep 17 00:00:00 2001\n");
            out.extend_from_slice(
                format!(
                    "From: Dev {series} <{sender}>\nTo: xen-devel@lists.example.org\n\
                     Subject: {subject}\nMessage-ID: <{id}>\n\
                     Date: Mon, 1 Jan 2024 {:02}:{:02}:00 +0000\n",
                    (n / 60) % 24,
                    n % 60
                )
                .as_bytes(),
            );
            if let Some(p) = reply {
                out.extend_from_slice(
                    format!("In-Reply-To: <{p}>\nReferences: <{p}>\n").as_bytes(),
                );
            }
            out.extend_from_slice(
                b"MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n\n",
            );
            out.extend_from_slice(body.as_bytes());
            out.push(b'\n');
        };
        if total > 1 {
            emit(
                &cover,
                &format!("[PATCH v{} 0/{total}] series {series}", 1 + series % 3),
                None,
                "This series does several things.\n\nbase-commit: 0123456789abcdef0123456789abcdef01234567\n",
            );
        }
        for p in 1..=total {
            let id = format!("s{series}.{p}@example.org");
            let subject = format!(
                "[PATCH v{} {p}/{total}] x86/mm: change number {p}",
                1 + series % 3
            );
            let body = patch_body(series, p);
            emit(&id, &subject, (total > 1).then_some(cover.as_str()), &body);
            if p % 3 == 0 {
                emit(
                    &format!("s{series}.{p}.r@example.org"),
                    &format!("Re: {subject}"),
                    Some(&id),
                    "> quoted\n\nReviewed-by: Jan Beulich <jbeulich@suse.com>\n",
                );
            }
        }
    }
    out
}

fn patch_body(series: usize, p: usize) -> String {
    let mut body = format!(
        "Change {p} of series {series}: keep the page tables in step.\n\n\
         Signed-off-by: Dev <dev@example.org>\n---\n xen/arch/x86/mm.c | 40 ++++++++++++++++++++--------------------\n 1 file changed, 20 insertions(+), 20 deletions(-)\n\n\
         diff --git a/xen/arch/x86/mm.c b/xen/arch/x86/mm.c\nindex 1111111..2222222 100644\n--- a/xen/arch/x86/mm.c\n+++ b/xen/arch/x86/mm.c\n@@ -{0},20 +{0},20 @@\n",
        100 + p * 30
    );
    for line in 0..20 {
        body.push_str(&format!(
            "-    old_line({series}, {p}, {line}); /* the way it was done before */\n"
        ));
    }
    for line in 0..20 {
        body.push_str(&format!(
            "+    new_line({series}, {p}, {line}); /* the way it is done now */\n"
        ));
    }
    body.push_str("-- \n2.39.2\n");
    body
}

/// A repository whose history has `patches` commits on a base, the series as git
/// format-patch writes it, and both appliers timed on the same base.
fn apply_beside_git_am(
    dir: &Path,
    patches: usize,
    rounds: usize,
) -> Result<(Stats, Stats), BenchError> {
    let work = dir.join("repo");
    std::fs::create_dir_all(&work).map_err(fail)?;
    let git = |args: &[&str]| {
        let mut all = vec![
            "-c",
            "user.name=Ann Author",
            "-c",
            "user.email=ann@example.org",
        ];
        all.extend_from_slice(args);
        git(&work, &all)
    };
    git(&["init", "-q", "-b", "main"])?;
    let files = 20;
    for f in 0..files {
        let text: String = (0..300)
            .map(|l| format!("line {l} of file {f}\n"))
            .collect();
        std::fs::write(work.join(format!("f{f}.c")), text).map_err(fail)?;
    }
    git(&["add", "."])?;
    git(&["commit", "-q", "-m", "base"])?;
    let base = git(&["rev-parse", "HEAD"])?;
    for p in 0..patches {
        let f = p % files;
        let path = work.join(format!("f{f}.c"));
        let text = std::fs::read_to_string(&path).map_err(fail)?;
        let changed: String = text
            .lines()
            .enumerate()
            .map(|(l, line)| {
                if l % 25 == p % 25 {
                    format!("{line} changed by patch {p}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        std::fs::write(&path, changed).map_err(fail)?;
        git(&[
            "commit",
            "-q",
            "-a",
            "-m",
            &format!("f{f}: change {p}\n\nWhy change {p}."),
        ])?;
    }
    let tip_tree = git(&["rev-parse", "HEAD^{tree}"])?;
    let mbox = git(&[
        "format-patch",
        "--stdout",
        "--thread=shallow",
        &format!("{base}..HEAD"),
    ])? + "\n";
    let mbox_path = dir.join("series.mbox");
    std::fs::write(&mbox_path, &mbox).map_err(fail)?;

    let repo = git2::Repository::open(&work).map_err(fail)?;
    let committer = git2::Signature::now("pushgate", "pushgate@example.org").map_err(fail)?;
    let base_oid = git2::Oid::from_str(&base).map_err(fail)?;
    let (mut am, mut ours) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        git(&["checkout", "-q", "-B", &format!("am{round}"), &base])?;
        let t = Instant::now();
        git(&["am", "-q", mbox_path.to_str().unwrap_or_default()])?;
        am.push(t.elapsed().as_secs_f64() * 1000.0);
        if git(&["rev-parse", "HEAD^{tree}"])? != tip_tree {
            return Err(fail("git am made another tree"));
        }

        let t = Instant::now();
        let (mails, _) = mail::parse_mbox(mbox.as_bytes());
        let revisions = pushgate::series::assemble(&mails);
        let revision = revisions
            .iter()
            .find(|r| r.total as usize == patches && r.is_complete())
            .ok_or_else(|| fail("the series did not assemble"))?;
        let series: Vec<_> = revision
            .patches
            .iter()
            .flatten()
            .map(|&i| pushgate::series::patch(&mails[i]))
            .collect();
        let made = apply_series(&repo, base_oid, &series, &committer).map_err(fail)?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        let last = made.last().ok_or_else(|| fail("nothing applied"))?;
        let tree = repo.find_commit(*last).map_err(fail)?.tree_id().to_string();
        if tree != tip_tree {
            return Err(fail("apply_series made another tree"));
        }
    }
    Ok((Stats::of(&am), Stats::of(&ours)))
}
