//! Series assembly: which mails make up which revision of which patch series.
//!
//! Maintainers (and b4, Patchew, patchwork) read a list this way, and so does this module:
//! - a revision is a cover letter (`0/N`, or an unnumbered posting that patches answer) and
//!   patches `1..N`, found through the thread (`In-Reply-To`, `References`), by the same
//!   sender, version and count; where threading is missing, by sender, version, count and
//!   the thread they point at;
//! - it is complete when every number is in, whatever order they came in; a second copy of a
//!   number (a resend) replaces the first and never adds a patch;
//! - `[PATCH v2 3/5]` sent in reply to v1's 3/5 is b4's partial reroll: v1 with only that patch
//!   replaced, as version 2;
//! - revisions of one series are tied together by the thread (v2 sent in reply to v1) or by the
//!   same sender and title, and the newest supersedes the older ones;
//! - review trailers in replies are collected onto the patch they answer (onto every patch when
//!   they answer the cover letter).
//!
//! Everything here is a pure function of the mails given, so the gate can re-assemble from
//! the store after a restart and get the same answer whatever order mails arrived in.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::intake::mail::message::Mail;
use crate::intake::mail::trailers::Trailer;

/// One revision of a series, as assembled; the `usize`s index the mails given to [`assemble`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revision {
    /// The series it belongs to: the root of its oldest revision here.
    pub series: String,
    /// This revision's own root: its cover letter, else its lowest patch (for a partial
    /// reroll, its first rerolled patch).
    pub root: String,
    pub version: u32,
    pub rfc: bool,
    /// The sender's address.
    pub sender: String,
    pub total: u32,
    pub cover: Option<usize>,
    /// Position `n - 1` holds patch `n`.
    pub patches: Vec<Option<usize>>,
    pub base_commit: Option<String>,
    /// Trailers collected from replies, per patch position.
    pub trailers: Vec<Vec<Trailer>>,
    /// The root of the revision that replaced this one.
    pub superseded_by: Option<String>,
    /// For a partial reroll: the root of the revision it changes.
    pub rerolls: Option<String>,
    /// The newest mail's date.
    pub latest: Option<i64>,
}

impl Revision {
    /// Numbers not yet received.
    pub fn missing(&self) -> Vec<u32> {
        (1..=self.total)
            .filter(|n| self.patches[*n as usize - 1].is_none())
            .collect()
    }

    pub fn is_complete(&self) -> bool {
        self.patches.iter().all(Option::is_some)
    }

    /// Every mail of the revision: cover first, then patches in order.
    pub fn mails(&self) -> impl Iterator<Item = usize> + '_ {
        self.cover
            .into_iter()
            .chain(self.patches.iter().flatten().copied())
    }
}

/// What one mail is to assembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A numbered or single patch.
    Patch { number: u32, total: u32 },
    /// `0/N`, or an unnumbered posting without a diff (a cover if patches answer it).
    Cover { total: Option<u32> },
    /// A reply or anything else.
    Other,
}

fn kind(mail: &Mail) -> Kind {
    let s = &mail.subject;
    if s.reply || s.pull {
        return Kind::Other;
    }
    let diff = mail.has_patch();
    match s.counter {
        Some(c) if c.number == 0 => Kind::Cover {
            total: Some(c.total),
        },
        Some(c) if diff || s.patch => Kind::Patch {
            number: c.number,
            total: c.total,
        },
        None if diff => Kind::Patch {
            number: 1,
            total: 1,
        },
        None if s.patch => Kind::Cover { total: None },
        _ => Kind::Other,
    }
}

/// The key a revision is grouped by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum GroupKey {
    /// Found through the thread: the root mail.
    Thread(usize),
    /// No thread to follow: sender, version, count and the thread id the patch points at.
    Loose {
        sender: String,
        version: u32,
        total: u32,
        thread: String,
    },
    /// A partial reroll of the revision rooted at the mail, to this version.
    Reroll { of: usize, version: u32 },
}

#[derive(Default)]
struct Group {
    patches: BTreeMap<u32, usize>,
    total: u32,
    version: u32,
    rfc: bool,
    sender: String,
}

/// A list's mails as assembly looks them up: each Message-ID once (the first), each mail's
/// kind, and its ancestors in the thread.
struct Thread<'a> {
    mails: &'a [Mail],
    by_id: HashMap<&'a str, usize>,
    kinds: Vec<Kind>,
}

impl<'a> Thread<'a> {
    fn new(mails: &'a [Mail]) -> Thread<'a> {
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(mails.len());
        for (i, m) in mails.iter().enumerate() {
            by_id.entry(m.message_id.as_str()).or_insert(i);
        }
        Thread {
            mails,
            by_id,
            kinds: mails.iter().map(kind).collect(),
        }
    }

    /// Whether mail `i` is the first with its Message-ID.
    fn unique(&self, i: usize) -> bool {
        self.by_id.get(self.mails[i].message_id.as_str()) == Some(&i)
    }

    /// Ancestors nearest first: In-Reply-To, then References from the end.
    fn ancestors(&self, i: usize) -> Vec<usize> {
        let m = &self.mails[i];
        let mut out: Vec<usize> = Vec::new();
        for id in m.in_reply_to.iter().chain(m.references.iter().rev()) {
            if let Some(&a) = self.by_id.get(id.as_str()) {
                if a != i && !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }

    /// Which group patch `i` (`number` of `total`) belongs to.
    fn group_key(&self, i: usize, number: u32, total: u32) -> GroupKey {
        let (mails, kinds) = (self.mails, &self.kinds);
        let m = &mails[i];
        let same_author = |a: usize| mails[a].sender.email == m.sender.email;
        // b4's partial reroll: a newer version of one patch, in reply to that patch.
        let rerolled = m
            .in_reply_to
            .as_deref()
            .and_then(|id| self.by_id.get(id))
            .copied()
            .filter(|&p| {
                matches!(kinds[p], Kind::Patch { number: n, total: t } if n == number && t == total)
                    && same_author(p)
                    && mails[p].subject.version < m.subject.version
            });
        if let Some(p) = rerolled {
            return GroupKey::Reroll {
                of: p,
                version: m.subject.version,
            };
        }
        // The oldest ancestor that belongs to the same revision is its root; followed
        // from ancestor to ancestor, since a mail may name only its parent.
        // Not by sender: git format-patch writes each commit's author in From:, so a
        // series with two authors has two senders in one thread.
        let belongs = |a: usize| {
            mails[a].subject.version == m.subject.version
                && match kinds[a] {
                    Kind::Patch { total: t, .. } => t == total,
                    Kind::Cover { total: t } => t.is_none_or(|t| t == total),
                    Kind::Other => false,
                }
        };
        let mut root = None;
        let mut seen = vec![i];
        while let Some(a) = self
            .ancestors(seen[seen.len() - 1])
            .into_iter()
            .rfind(|&a| belongs(a))
        {
            if seen.contains(&a) {
                break; // a loop of In-Reply-To headers
            }
            root = Some(a);
            seen.push(a);
        }
        match root {
            Some(r) => GroupKey::Thread(r),
            None if number == 1 => GroupKey::Thread(i),
            None => GroupKey::Loose {
                sender: m.sender.email.clone(),
                version: m.subject.version,
                total,
                thread: m
                    .references
                    .first()
                    .cloned()
                    .or(m.in_reply_to.clone())
                    .unwrap_or_default(),
            },
        }
    }
}

/// Where a mail went: the revision, and its patch number (`None` for a cover letter).
type Places = HashMap<usize, (usize, Option<u32>)>;

/// Assembles every revision the mails hold. Mails with the same Message-ID count once (the
/// first); replies and discussion feed trailers only.
pub fn assemble(mails: &[Mail]) -> Vec<Revision> {
    let thread = Thread::new(mails);
    let mut groups = group_patches(&thread);
    // A patch 1 whose own group is rooted at itself may still have a loose sibling group
    // (patches 2..N that lost their thread): they are the same revision.
    merge_loose_into_threads(mails, &mut groups);
    add_covers(&thread, &mut groups);
    // Partial rerolls are built after the revisions they change.
    let (rerolls, plain): (Vec<_>, Vec<_>) = groups
        .into_iter()
        .partition(|(k, _)| matches!(k, GroupKey::Reroll { .. }));
    let mut revisions = revisions_of(&thread, plain);
    let mut place = places(&revisions);
    add_rerolls(mails, rerolls, &mut revisions, &mut place);

    let ancestors = |i: usize| thread.ancestors(i);
    collect_trailers(mails, &thread.kinds, &ancestors, &place, &mut revisions);
    for r in &mut revisions {
        let base_commit = r.mails().find_map(|i| mails[i].base_commit());
        let latest = r.mails().filter_map(|i| mails[i].timestamp).max();
        r.base_commit = base_commit;
        r.latest = latest;
    }
    link_versions(mails, &ancestors, &place, &mut revisions);
    revisions.sort_by(|a, b| {
        let first = |r: &Revision| r.mails().filter_map(|i| mails[i].timestamp).min();
        (first(a), &a.root).cmp(&(first(b), &b.root))
    });
    revisions
}

/// Every patch into its group; of two copies of one patch number the newer wins.
fn group_patches(thread: &Thread) -> BTreeMap<GroupKey, Group> {
    let mails = thread.mails;
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for i in (0..mails.len()).filter(|&i| thread.unique(i)) {
        let Kind::Patch { number, total } = thread.kinds[i] else {
            continue;
        };
        let m = &mails[i];
        let group = groups
            .entry(thread.group_key(i, number, total))
            .or_default();
        group.total = total;
        group.version = m.subject.version;
        group.rfc |= m.subject.rfc;
        group.sender = m.sender.email.clone();
        let newer = |old: usize| {
            mails[i].timestamp.unwrap_or(i64::MIN) >= mails[old].timestamp.unwrap_or(i64::MIN)
        };
        match group.patches.get(&number) {
            Some(&old) if !newer(old) => {}
            _ => {
                group.patches.insert(number, i);
            }
        }
    }
    groups
}

/// Numbered covers: attach to the group rooted at them, or make one for a cover that has no
/// patch yet (so "missing 1/3, 2/3, 3/3" can be said).
fn add_covers(thread: &Thread, groups: &mut BTreeMap<GroupKey, Group>) {
    let mails = thread.mails;
    for i in (0..mails.len()).filter(|&i| thread.unique(i)) {
        if let Kind::Cover { total: Some(total) } = thread.kinds[i] {
            groups.entry(GroupKey::Thread(i)).or_insert_with(|| Group {
                total,
                version: mails[i].subject.version,
                rfc: mails[i].subject.rfc,
                sender: mails[i].sender.email.clone(),
                ..Group::default()
            });
        }
    }
}

/// A revision per group that is not a partial reroll, rooted at its cover or first patch.
fn revisions_of(thread: &Thread, plain: Vec<(GroupKey, Group)>) -> Vec<Revision> {
    let mails = thread.mails;
    let mut revisions = Vec::new();
    for (key, group) in plain {
        let cover = match key {
            GroupKey::Thread(r) if matches!(thread.kinds[r], Kind::Cover { .. }) => Some(r),
            _ => None,
        };
        let mut patches = vec![None; group.total as usize];
        for (n, i) in &group.patches {
            patches[*n as usize - 1] = Some(*i);
        }
        let root = cover.or_else(|| group.patches.values().next().copied());
        let Some(root) = root else { continue };
        revisions.push(Revision {
            series: String::new(),
            root: mails[root].message_id.clone(),
            version: group.version,
            rfc: group.rfc,
            sender: mails[root].sender.email.clone(),
            total: group.total,
            cover,
            patches,
            base_commit: None,
            trailers: vec![Vec::new(); group.total as usize],
            superseded_by: None,
            rerolls: None,
            latest: None,
        });
    }
    revisions
}

/// Where each mail of the revisions went.
fn places(revisions: &[Revision]) -> Places {
    let mut place = Places::new();
    for (index, r) in revisions.iter().enumerate() {
        if let Some(c) = r.cover {
            place.insert(c, (index, None));
        }
        for (n, p) in r.patches.iter().enumerate() {
            if let Some(p) = p {
                place.insert(*p, (index, Some(n as u32 + 1)));
            }
        }
    }
    place
}

/// A partial reroll is the revision it changes with its new patches in their places.
fn add_rerolls(
    mails: &[Mail],
    rerolls: Vec<(GroupKey, Group)>,
    revisions: &mut Vec<Revision>,
    place: &mut Places,
) {
    for (key, group) in rerolls {
        let GroupKey::Reroll { of, version } = key else {
            continue;
        };
        let Some(&(base, _)) = place.get(&of) else {
            continue;
        };
        let mut revision = revisions[base].clone();
        for (n, i) in &group.patches {
            if let Some(slot) = revision.patches.get_mut(*n as usize - 1) {
                *slot = Some(*i);
            }
        }
        let Some(first) = group.patches.values().next() else {
            continue;
        };
        revision.root = mails[*first].message_id.clone();
        revision.version = version;
        revision.rerolls = Some(revisions[base].root.clone());
        revision.trailers = vec![Vec::new(); revision.total as usize];
        let index = revisions.len();
        for (n, i) in &group.patches {
            place.insert(*i, (index, Some(*n)));
        }
        revisions.push(revision);
    }
}

/// Patches 2..N that lost their thread (their cover never came, deep threading broke) form a
/// loose group; when patch 1 of the same sender, version and count roots a group, and the
/// loose patches point at the same thread, they belong to it.
fn merge_loose_into_threads(mails: &[Mail], groups: &mut BTreeMap<GroupKey, Group>) {
    let loose: Vec<GroupKey> = groups
        .keys()
        .filter(|k| matches!(k, GroupKey::Loose { .. }))
        .cloned()
        .collect();
    for key in loose {
        let GroupKey::Loose {
            sender,
            version,
            total,
            thread,
        } = &key
        else {
            continue;
        };
        let home = groups.iter().find_map(|(k, g)| {
            let GroupKey::Thread(root) = k else {
                return None;
            };
            let root_mail = &mails[*root];
            let root_thread = root_mail
                .references
                .first()
                .or(root_mail.in_reply_to.as_ref())
                .cloned()
                .unwrap_or_default();
            (g.sender == *sender
                && g.version == *version
                && g.total == *total
                && (root_thread == *thread || root_mail.message_id == *thread))
                .then(|| k.clone())
        });
        let Some(home) = home else { continue };
        let Some(moved) = groups.remove(&key) else {
            continue;
        };
        if let Some(target) = groups.get_mut(&home) {
            for (n, i) in moved.patches {
                target.patches.entry(n).or_insert(i);
            }
        }
    }
}

/// Review trailers from replies go onto the patch they answer, or every patch of the revision
/// whose cover letter they answer.
fn collect_trailers(
    mails: &[Mail],
    kinds: &[Kind],
    ancestors: &dyn Fn(usize) -> Vec<usize>,
    place: &Places,
    revisions: &mut [Revision],
) {
    for (i, m) in mails.iter().enumerate() {
        if kinds[i] != Kind::Other || place.contains_key(&i) {
            continue;
        }
        let trailers = m.review_trailers();
        if trailers.is_empty() {
            continue;
        }
        let Some(&(revision, number)) = ancestors(i).iter().find_map(|a| place.get(a)) else {
            continue;
        };
        let r = &mut revisions[revision];
        let targets: Vec<usize> = match number {
            Some(n) => vec![n as usize - 1],
            None => (0..r.trailers.len()).collect(),
        };
        for t in targets {
            for trailer in &trailers {
                if !r.trailers[t].contains(trailer) {
                    r.trailers[t].push(trailer.clone());
                }
            }
        }
    }
}

/// Ties revisions of one series together and marks the superseded ones.
fn link_versions(
    mails: &[Mail],
    ancestors: &dyn Fn(usize) -> Vec<usize>,
    place: &Places,
    revisions: &mut [Revision],
) {
    let title = |r: &Revision| -> Option<String> {
        let i = r.cover.or(r.patches.first().copied().flatten())?;
        Some(mails[i].subject.title.to_lowercase())
    };
    // Union-find over revision indexes.
    let mut parent: Vec<usize> = (0..revisions.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    let by_root: HashMap<String, usize> = revisions
        .iter()
        .enumerate()
        .map(|(i, r)| (r.root.clone(), i))
        .collect();
    let mut by_title: HashMap<(String, String), usize> = HashMap::new();
    for (i, r) in revisions.iter().enumerate() {
        let mut joins: Vec<usize> = Vec::new();
        if let Some(of) = r.rerolls.as_ref().and_then(|root| by_root.get(root)) {
            joins.push(*of);
        }
        // v2 sent in reply to anything of v1.
        if let Some(first) = r.mails().next() {
            for a in ancestors(first) {
                if let Some(&(other, _)) = place.get(&a) {
                    if other != i && revisions[other].sender == r.sender {
                        joins.push(other);
                    }
                }
            }
        }
        if let Some(t) = title(r) {
            match by_title.get(&(r.sender.clone(), t.clone())) {
                Some(&other) => joins.push(other),
                None => {
                    by_title.insert((r.sender.clone(), t), i);
                }
            }
        }
        for j in joins {
            let (a, b) = (find(&mut parent, i), find(&mut parent, j));
            parent[a] = b;
        }
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..revisions.len() {
        let root = find(&mut parent, i);
        members.entry(root).or_default().push(i);
    }
    for list in members.values() {
        // Oldest first: by version, then by the newest mail's date (a resend comes later).
        let mut ordered = list.clone();
        ordered.sort_by_key(|&i| (revisions[i].version, revisions[i].latest, i));
        let series = revisions[ordered[0]].root.clone();
        for w in ordered.windows(2) {
            let newer = revisions[w[1]].root.clone();
            revisions[w[0]].superseded_by = Some(newer);
        }
        for &i in &ordered {
            revisions[i].series = series.clone();
        }
    }
}

/// A revision as `pushgate mail series --json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct RevisionSummary {
    pub series: String,
    pub root: String,
    pub version: u32,
    pub rfc: bool,
    pub sender: String,
    pub cover: Option<String>,
    pub patches: Vec<String>,
    pub complete: bool,
    pub missing: Vec<u32>,
    pub base_commit: Option<String>,
    /// Per patch, in order: the trailers collected from replies.
    pub trailers: Vec<Vec<String>>,
    pub superseded_by: Option<String>,
    pub rerolls: Option<String>,
}

impl RevisionSummary {
    pub fn new(r: &Revision, mails: &[Mail]) -> RevisionSummary {
        RevisionSummary {
            series: r.series.clone(),
            root: r.root.clone(),
            version: r.version,
            rfc: r.rfc,
            sender: r.sender.clone(),
            cover: r.cover.map(|i| mails[i].listing()),
            patches: r
                .patches
                .iter()
                .flatten()
                .map(|&i| mails[i].listing())
                .collect(),
            complete: r.is_complete(),
            missing: r.missing(),
            base_commit: r.base_commit.clone(),
            trailers: r
                .trailers
                .iter()
                .map(|ts| ts.iter().map(Trailer::to_string).collect())
                .collect(),
            superseded_by: r.superseded_by.clone(),
            rerolls: r.rerolls.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str =
        "---\n f | 2 +-\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n";

    /// A mail as a list delivers it; `minute` orders them in time.
    struct Post<'a> {
        id: &'a str,
        from: &'a str,
        subject: &'a str,
        reply_to: Option<&'a str>,
        references: Vec<&'a str>,
        minute: u32,
        body: String,
    }

    fn post<'a>(id: &'a str, subject: &'a str, minute: u32) -> Post<'a> {
        let patch = !subject.contains(" 0/") && !subject.starts_with("Re:");
        Post {
            id,
            from: "Ann Author <ann@example.org>",
            subject,
            reply_to: None,
            references: Vec::new(),
            minute,
            body: if patch {
                format!("a change\n\nSigned-off-by: Ann\n{DIFF}")
            } else {
                "words\n".into()
            },
        }
    }

    impl<'a> Post<'a> {
        fn replying(mut self, parent: &'a str, thread: &[&'a str]) -> Self {
            self.reply_to = Some(parent);
            self.references = thread.to_vec();
            self
        }
        fn from(mut self, from: &'a str) -> Self {
            self.from = from;
            self
        }
        fn body(mut self, body: &str) -> Self {
            self.body = body.to_string();
            self
        }
        fn mail(&self) -> Mail {
            let mut raw = format!(
                "From: {}\nSubject: {}\nMessage-ID: <{}>\nDate: Mon, 1 Jan 2024 10:{:02}:00 +0000\n",
                self.from, self.subject, self.id, self.minute
            );
            if let Some(p) = self.reply_to {
                raw.push_str(&format!("In-Reply-To: <{p}>\n"));
            }
            if !self.references.is_empty() {
                let refs: Vec<String> = self.references.iter().map(|r| format!("<{r}>")).collect();
                raw.push_str(&format!("References: {}\n", refs.join(" ")));
            }
            raw.push('\n');
            raw.push_str(&self.body);
            Mail::parse(raw.as_bytes()).unwrap()
        }
    }

    fn build(posts: &[Post<'_>]) -> (Vec<Mail>, Vec<Revision>) {
        let mails: Vec<Mail> = posts.iter().map(Post::mail).collect();
        let revisions = assemble(&mails);
        (mails, revisions)
    }

    fn ids(mails: &[Mail], r: &Revision) -> Vec<String> {
        r.patches
            .iter()
            .map(|p| p.map_or("-".to_string(), |i| mails[i].message_id.clone()))
            .collect()
    }

    fn three_with_cover() -> Vec<Post<'static>> {
        vec![
            post("c", "[PATCH 0/3] the series", 0),
            post("p1", "[PATCH 1/3] one", 1).replying("c", &["c"]),
            post("p2", "[PATCH 2/3] two", 2).replying("c", &["c"]),
            post("p3", "[PATCH 3/3] three", 3).replying("c", &["c"]),
        ]
    }

    #[test]
    fn cover_and_patches_in_any_order() {
        let mut posts = three_with_cover();
        posts.reverse();
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1, "{revisions:?}");
        let r = &revisions[0];
        assert_eq!(r.root, "c");
        assert_eq!(r.series, "c");
        assert_eq!(mails[r.cover.unwrap()].message_id, "c");
        assert_eq!(ids(&mails, r), ["p1", "p2", "p3"]);
        assert!(r.is_complete());
        assert_eq!(r.version, 1);
    }

    #[test]
    fn a_missing_patch_leaves_it_incomplete_until_it_comes() {
        let mut posts = three_with_cover();
        let late = posts.remove(2);
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1);
        assert_eq!(revisions[0].missing(), [2]);
        assert_eq!(ids(&mails, &revisions[0]), ["p1", "-", "p3"]);
        posts.push(late);
        let (_, revisions) = build(&posts);
        assert!(revisions[0].is_complete());
    }

    #[test]
    fn a_cover_alone_says_what_is_missing() {
        let (_, revisions) = build(&[post("c", "[PATCH 0/3] the series", 0)]);
        assert_eq!(revisions.len(), 1);
        assert_eq!(revisions[0].missing(), [1, 2, 3]);
    }

    #[test]
    fn deep_threading_with_parents_only() {
        let posts = vec![
            post("p1", "[PATCH 1/3] one", 1),
            post("p3", "[PATCH 3/3] three", 3).replying("p2", &[]),
            post("p2", "[PATCH 2/3] two", 2).replying("p1", &[]),
        ];
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1, "{revisions:?}");
        assert_eq!(revisions[0].root, "p1");
        assert_eq!(ids(&mails, &revisions[0]), ["p1", "p2", "p3"]);
        assert!(revisions[0].cover.is_none());
    }

    #[test]
    fn no_threading_groups_by_sender_version_and_count() {
        let posts = vec![
            post("a2", "[PATCH 2/2] a two", 2),
            post("b1", "[PATCH 1/2] b one", 3).from("Bob <bob@example.org>"),
            post("a1", "[PATCH 1/2] a one", 1),
            post("b2", "[PATCH 2/2] b two", 4).from("Bob <bob@example.org>"),
            post("c1", "[PATCH v2 1/2] a one", 5),
        ];
        let (mails, revisions) = build(&posts);
        let by_root: BTreeMap<&str, Vec<String>> = revisions
            .iter()
            .map(|r| (r.root.as_str(), ids(&mails, r)))
            .collect();
        assert_eq!(by_root["a1"], ["a1", "a2"]);
        assert_eq!(by_root["b1"], ["b1", "b2"]);
        assert_eq!(by_root["c1"], ["c1", "-"]);
        assert_eq!(revisions.len(), 3);
    }

    #[test]
    fn a_resend_replaces_and_never_adds() {
        let mut posts = three_with_cover();
        posts.push(post("p2b", "[PATCH 2/3] two, again", 9).replying("c", &["c"]));
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1);
        assert_eq!(ids(&mails, &revisions[0]), ["p1", "p2b", "p3"]);
        // The same message twice (two archives) counts once.
        let mut posts = three_with_cover();
        posts.push(post("p2", "[PATCH 2/3] two", 2).replying("c", &["c"]));
        let (_, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1);
        assert!(revisions[0].is_complete());
    }

    #[test]
    fn v2_in_reply_to_v1_supersedes_it() {
        let mut posts = three_with_cover();
        posts.extend([
            post("c2", "[PATCH v2 0/2] the series, smaller", 10).replying("c", &["c"]),
            post("q1", "[PATCH v2 1/2] one", 11).replying("c2", &["c", "c2"]),
            post("q2", "[PATCH v2 2/2] two", 12).replying("c2", &["c", "c2"]),
        ]);
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 2, "{revisions:?}");
        let (v1, v2) = (&revisions[0], &revisions[1]);
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(ids(&mails, v2), ["q1", "q2"]);
        assert_eq!(v1.superseded_by.as_deref(), Some("c2"));
        assert_eq!(v2.superseded_by, None);
        assert_eq!((v1.series.as_str(), v2.series.as_str()), ("c", "c"));
    }

    #[test]
    fn v2_in_a_new_thread_is_tied_by_its_title() {
        let mut posts = three_with_cover();
        posts.extend([
            post("c2", "[PATCH v2 0/3] The Series", 10),
            post("q1", "[PATCH v2 1/3] one", 11).replying("c2", &["c2"]),
        ]);
        let (_, revisions) = build(&posts);
        assert_eq!(revisions.len(), 2);
        assert_eq!(revisions[0].superseded_by.as_deref(), Some("c2"));
        assert_eq!(revisions[1].series, "c");
        assert_eq!(revisions[1].missing(), [2, 3]);
        // Someone else's series with the same title is another series.
        let mut posts = three_with_cover();
        posts.push(post("x", "[PATCH v2 0/3] the series", 10).from("Eve <eve@example.org>"));
        let (_, revisions) = build(&posts);
        assert!(revisions.iter().all(|r| r.superseded_by.is_none()));
    }

    #[test]
    fn partial_reroll_replaces_one_patch() {
        let mut posts = three_with_cover();
        posts.push(post("p2v2", "[PATCH v2 2/3] two, fixed", 10).replying("p2", &["c", "p2"]));
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 2, "{revisions:?}");
        let v2 = revisions.iter().find(|r| r.version == 2).unwrap();
        assert_eq!(ids(&mails, v2), ["p1", "p2v2", "p3"]);
        assert_eq!(v2.rerolls.as_deref(), Some("c"));
        assert_eq!(v2.root, "p2v2");
        assert!(v2.is_complete());
        let v1 = revisions.iter().find(|r| r.version == 1).unwrap();
        assert_eq!(v1.superseded_by.as_deref(), Some("p2v2"));
        assert_eq!(
            ids(&mails, v1),
            ["p1", "p2", "p3"],
            "v1 itself is untouched"
        );
    }

    #[test]
    fn trailers_from_replies_land_on_their_patches() {
        let mut posts = three_with_cover();
        posts.extend([
            post("r1", "Re: [PATCH 2/3] two", 5)
                .replying("p2", &["c", "p2"])
                .body("> quoted\n> Acked-by: Not Me <no@example.org>\n\nReviewed-by: Rev Iewer <rev@example.org>\n"),
            post("r2", "Re: [PATCH 0/3] the series", 6)
                .replying("c", &["c"])
                .body("For the series:\nAcked-by: Main Tainer <mt@example.org>\n"),
            post("r3", "Re: Re: [PATCH 2/3] two", 7)
                .replying("r1", &["c", "p2", "r1"])
                .body("Tested-by: Tess <tess@example.org>\n"),
        ]);
        let (_, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1);
        let t: Vec<Vec<String>> = revisions[0]
            .trailers
            .iter()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect())
            .collect();
        assert_eq!(t[0], ["Acked-by: Main Tainer <mt@example.org>"]);
        assert_eq!(
            t[1],
            [
                "Reviewed-by: Rev Iewer <rev@example.org>",
                "Acked-by: Main Tainer <mt@example.org>",
                "Tested-by: Tess <tess@example.org>",
            ]
        );
    }

    #[test]
    fn an_unnumbered_cover_that_patches_answer() {
        let posts = vec![
            post("c", "[PATCH v2] a small series", 0).body("why\n"),
            post("p1", "[PATCH v2 1/2] one", 1).replying("c", &["c"]),
            post("p2", "[PATCH v2 2/2] two", 2).replying("c", &["c"]),
        ];
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1, "{revisions:?}");
        assert_eq!(revisions[0].root, "c");
        assert_eq!(mails[revisions[0].cover.unwrap()].message_id, "c");
        assert_eq!(revisions[0].version, 2);
    }

    #[test]
    fn singles_replies_and_base_commits() {
        let posts = vec![
            post("s", "[PATCH] single", 0),
            post("r", "Re: [PATCH] single", 1)
                .replying("s", &["s"])
                .body(&format!("try this\n{DIFF}")),
            post("q", "a question", 2).body("no patch\n"),
            post("b", "[PATCH] based", 3).body(&format!(
                "x\n{DIFF}-- \nbase-commit: 0123456789abcdef0123456789abcdef01234567\n"
            )),
        ];
        let (_, revisions) = build(&posts);
        assert_eq!(revisions.len(), 2, "{revisions:?}");
        assert!(revisions.iter().all(|r| r.total == 1 && r.is_complete()));
        assert_eq!(
            revisions[1].base_commit.as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
    }

    #[test]
    fn patches_whose_cover_has_not_come_stay_together() {
        let posts = vec![
            post("p2", "[PATCH 2/2] two", 2).replying("c", &["c"]),
            post("p1", "[PATCH 1/2] one", 1).replying("c", &["c"]),
        ];
        let (mails, revisions) = build(&posts);
        assert_eq!(revisions.len(), 1, "{revisions:?}");
        assert_eq!(ids(&mails, &revisions[0]), ["p1", "p2"]);
    }

    proptest::proptest! {
        /// Whatever order a thread arrives in, the same revisions come out.
        #[test]
        fn arrival_order_does_not_matter(seed in proptest::collection::vec(0usize..100, 8)) {
            let mut posts = three_with_cover();
            posts.extend([
                post("p2v2", "[PATCH v2 2/3] two, fixed", 10).replying("p2", &["c", "p2"]),
                post("r1", "Re: [PATCH 1/3] one", 11).replying("p1", &["c", "p1"]).body("Reviewed-by: R <r@example.org>\n"),
                post("x1", "[PATCH 1/2] other", 12).from("Bob <bob@example.org>"),
                post("x2", "[PATCH 2/2] other", 13).from("Bob <bob@example.org>"),
            ]);
            let summary = |posts: &[Post<'_>]| {
                let (mails, revisions) = build(posts);
                let mut out: Vec<String> = revisions
                    .iter()
                    .map(|r| format!("{}:{}:{:?}:{:?}:{:?}", r.series, r.root, ids(&mails, r), r.superseded_by, r.trailers))
                    .collect();
                out.sort();
                out
            };
            let expected = summary(&posts);
            let n = posts.len();
            for (i, s) in seed.iter().enumerate() {
                posts.swap(i % n, s % n);
            }
            proptest::prop_assert_eq!(summary(&posts), expected);
        }
    }
}
