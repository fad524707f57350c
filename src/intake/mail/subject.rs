//! What a patch mail's subject says: `[RFC PATCH net-next v2 03/10] title`.
//!
//! Senders write the tag every which way (`[PATCH 3/3 v2]`, `[PATCHv2 1/3]`, `[RFC][PATCH]`,
//! Mercurial's `[PATCH 1 of 3]`, a list's own `[Xen-devel]` in front), so the parse is a
//! tolerant word scan of every bracket at the front, never an error. The title left over is
//! the commit subject exactly as `git mailinfo` makes it (brackets and `Re:` stripped from the
//! front, runs of white space squeezed to one space).

use serde::Serialize;

/// The parsed subject of one mail.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// `Re:`, `Fwd:` (or a localised `AW:`/`SV:`) in front: an answer, not a posting.
    pub reply: bool,
    /// A bracket with `PATCH`, `RFC`, `PULL`, a version or a counter was seen.
    pub patch: bool,
    pub rfc: bool,
    pub resend: bool,
    /// `[GIT PULL]`, `[PULL]`: a pull request rather than patches.
    pub pull: bool,
    /// `v2` in the tag; 1 when none is given.
    pub version: u32,
    /// `3/10` or `3 of 10`.
    pub counter: Option<Counter>,
    /// Other words of the patch tag, in order (`net-next`, `xen-4.19`).
    pub prefixes: Vec<String>,
    /// What remains: the commit subject.
    pub title: String,
}

/// A patch's place in its series: `number` of `total`; 0 is the cover letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counter {
    pub number: u32,
    pub total: u32,
}

/// The reply markers mail clients put in front, compared without case.
const REPLY_MARKERS: [&str; 6] = ["re:", "fwd:", "fw:", "aw:", "sv:", "antw:"];

impl Subject {
    /// Parses an already decoded subject line (RFC 2047 words resolved, folds joined).
    pub fn parse(line: &str) -> Subject {
        let mut subject = Subject {
            version: 1,
            ..Subject::default()
        };
        let mut rest = line;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ':');
            if let Some(after) = strip_reply_marker(rest) {
                subject.reply = true;
                rest = after;
                continue;
            }
            if let Some(inner_end) = rest.strip_prefix('[').and_then(|r| r.find(']')) {
                let inner = &rest[1..1 + inner_end];
                subject.read_tag(inner);
                rest = &rest[inner_end + 2..];
                continue;
            }
            break;
        }
        subject.title = squeeze_space(rest);
        subject
    }

    /// The subject as a maintainer reads it in a list of patches: `[PATCH v2 3/5] title`.
    pub fn display(&self) -> String {
        if !self.patch {
            return self.title.clone();
        }
        let mut tag = Vec::new();
        if self.rfc {
            tag.push("RFC".to_string());
        }
        tag.push(if self.pull { "PULL" } else { "PATCH" }.to_string());
        if self.resend {
            tag.push("RESEND".to_string());
        }
        tag.extend(self.prefixes.iter().cloned());
        if self.version > 1 {
            tag.push(format!("v{}", self.version));
        }
        if let Some(c) = self.counter {
            let width = c.total.to_string().len();
            tag.push(format!("{:0width$}/{}", c.number, c.total));
        }
        format!("[{}] {}", tag.join(" "), self.title)
    }

    /// Reads one bracket's words; a bracket with no patch word in it (`[Xen-devel]`, a list's
    /// tag) changes nothing.
    fn read_tag(&mut self, inner: &str) {
        let words: Vec<&str> = inner
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .collect();
        let is_patch_word = |w: &str| {
            let upper = w.to_ascii_uppercase();
            upper.starts_with("PATCH")
                || upper == "RFC"
                || upper == "PULL"
                || upper == "RESEND"
                || parse_version(w).is_some()
                || parse_slash_counter(w).is_some()
        };
        if !words.iter().any(|w| is_patch_word(w)) {
            return;
        }
        self.patch = true;
        let mut prefixes = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let word = words[i];
            let upper = word.to_ascii_uppercase();
            if let Some(after) = upper.strip_prefix("PATCH") {
                // `PATCHv2` glues the version on.
                if let Some(v) = parse_version(after) {
                    self.version = v;
                } else if !after.is_empty() {
                    prefixes.push(word.to_string());
                }
            } else if upper == "RFC" {
                self.rfc = true;
            } else if upper == "RESEND" {
                self.resend = true;
            } else if upper == "PULL" {
                self.pull = true;
            } else if upper == "GIT"
                && words
                    .get(i + 1)
                    .is_some_and(|w| w.eq_ignore_ascii_case("pull"))
            {
                // `[GIT PULL]`: the PULL word follows.
            } else if let Some(v) = parse_version(word) {
                self.version = v;
            } else if let Some(c) = parse_slash_counter(word) {
                self.counter = Some(c);
            } else if let (Ok(number), Some(of), Some(total)) =
                (word.parse::<u32>(), words.get(i + 1), words.get(i + 2))
            {
                // Mercurial's `[PATCH 1 of 3]`.
                match (of.eq_ignore_ascii_case("of"), total.parse::<u32>()) {
                    (true, Ok(total)) if number <= total => {
                        self.counter = Some(Counter { number, total });
                        i += 2;
                    }
                    _ => prefixes.push(word.to_string()),
                }
            } else {
                prefixes.push(word.to_string());
            }
            i += 1;
        }
        self.prefixes.extend(prefixes);
    }
}

fn strip_reply_marker(s: &str) -> Option<&str> {
    REPLY_MARKERS.iter().find_map(|marker| {
        let head = s.get(..marker.len())?;
        head.eq_ignore_ascii_case(marker)
            .then(|| &s[marker.len()..])
    })
}

/// `v2`, `V10` (not `v0`).
fn parse_version(word: &str) -> Option<u32> {
    let digits = word.strip_prefix(['v', 'V'])?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|v| *v >= 1)
}

/// `3/10`, `03/10`; the number may not exceed the total.
fn parse_slash_counter(word: &str) -> Option<Counter> {
    let (number, total) = word.split_once('/')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(number) || !all_digits(total) {
        return None;
    }
    let (number, total) = (number.parse().ok()?, total.parse().ok()?);
    (number <= total && total >= 1).then_some(Counter { number, total })
}

/// Every run of white space becomes one space, and none at either end (git's cleanup_space).
pub fn squeeze_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(number: u32, total: u32) -> Option<Counter> {
        Some(Counter { number, total })
    }

    #[test]
    fn the_usual_shapes() {
        let s = Subject::parse("[PATCH] a commit.");
        assert!(s.patch && !s.reply && !s.rfc);
        assert_eq!(
            (s.version, s.counter, s.title.as_str()),
            (1, None, "a commit.")
        );

        let s = Subject::parse("[PATCH v3 2/7] xen/arm: fix the thing");
        assert_eq!((s.version, s.counter), (3, counter(2, 7)));
        assert_eq!(s.title, "xen/arm: fix the thing");

        let s = Subject::parse("[RFC PATCH 0/3] a cover");
        assert!(s.rfc);
        assert_eq!(s.counter, counter(0, 3));

        let s = Subject::parse("[PATCH net-next v2 01/10] net: one");
        assert_eq!((s.version, s.counter), (2, counter(1, 10)));
        assert_eq!(s.prefixes, ["net-next"]);
        assert_eq!(s.title, "net: one");

        let s = Subject::parse("[PATCH 1 of 3] hg style");
        assert_eq!(s.counter, counter(1, 3));
        assert_eq!(s.title, "hg style");
    }

    #[test]
    fn odd_orders_and_glued_words() {
        let s = Subject::parse("[PATCH 3/3 v2] Xyzzy");
        assert_eq!(
            (s.version, s.counter, s.title.as_str()),
            (2, counter(3, 3), "Xyzzy")
        );
        let s = Subject::parse("[PATCHv4 1/2] glued");
        assert_eq!((s.version, s.counter), (4, counter(1, 2)));
        let s = Subject::parse("[RFC][PATCH v2 1/2] two brackets");
        assert!(s.rfc);
        assert_eq!((s.version, s.counter), (2, counter(1, 2)));
        let s = Subject::parse("[PATCH RESEND, v2 2/2] commas");
        assert!(s.resend);
        assert_eq!((s.version, s.counter), (2, counter(2, 2)));
    }

    #[test]
    fn replies_and_list_tags() {
        let s = Subject::parse("Re: [PATCH v2 3/5] foo");
        assert!(s.reply && s.patch);
        assert_eq!(s.counter, counter(3, 5));
        let s = Subject::parse("re: [PATCH] another patch");
        assert!(s.reply);
        assert_eq!(s.title, "another patch");
        let s = Subject::parse("Fwd: RE: Re: [Xen-devel] [PATCH 2/4] x86: y");
        assert!(s.reply && s.patch);
        assert!(s.prefixes.is_empty(), "{:?}", s.prefixes);
        assert_eq!(s.title, "x86: y");
        let s = Subject::parse("[Xen-devel] a question");
        assert!(!s.patch);
        assert_eq!(s.title, "a question");
        let s = Subject::parse("Why doesn't git-am like it?");
        assert!(!s.patch && !s.reply);
        assert_eq!(s.title, "Why doesn't git-am like it?");
    }

    #[test]
    fn pull_requests() {
        let s = Subject::parse("[GIT PULL] xen: fixes for 6.9-rc1");
        assert!(s.pull && s.patch);
        assert_eq!(s.title, "xen: fixes for 6.9-rc1");
        let s = Subject::parse("[PULL 0/2] Migration patches");
        assert!(s.pull);
        assert_eq!(s.counter, counter(0, 2));
    }

    #[test]
    fn nonsense_is_kept_as_a_title() {
        for line in [
            "",
            "[",
            "[]",
            "[PATCH",
            "]]",
            "[PATCH 9/3] x",
            "[PATCH v0] x",
            "[1 of x]",
        ] {
            let s = Subject::parse(line);
            assert!(s.counter.is_none(), "{line}: {s:?}");
            assert_eq!(s.version, 1, "{line}");
        }
        assert_eq!(Subject::parse("[PATCH").title, "[PATCH");
        assert_eq!(Subject::parse("  a \t b\n c ").title, "a b c");
    }

    #[test]
    fn display_is_what_a_maintainer_reads() {
        assert_eq!(
            Subject::parse("[PATCH v2 03/10] x").display(),
            "[PATCH v2 03/10] x"
        );
        assert_eq!(Subject::parse("[RFC PATCH] y").display(), "[RFC PATCH] y");
    }

    proptest::proptest! {
        #[test]
        fn any_line_parses(line in "\\PC{0,80}") {
            let s = Subject::parse(&line);
            proptest::prop_assert!(s.version >= 1);
            if let Some(c) = s.counter {
                proptest::prop_assert!(c.number <= c.total);
            }
        }
    }
}
