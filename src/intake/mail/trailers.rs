//! The lines in a mail that say something to a tool: review trailers, `base-commit:`,
//! `prerequisite-patch-id:`, `Based-on:`, and a pull request's "are available in the Git
//! repository at".

use serde::Serialize;

/// A review trailer: `Reviewed-by: Jan Beulich <jbeulich@suse.com>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Trailer {
    /// As written canonically: `Reviewed-by`.
    pub key: String,
    pub value: String,
}

impl std::fmt::Display for Trailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.value)
    }
}

/// The trailers a reviewer gives in a reply and that b4 collects onto the patch.
const REVIEW_KEYS: [&str; 6] = [
    "Reviewed-by",
    "Acked-by",
    "Tested-by",
    "Reported-by",
    "Suggested-by",
    "Release-acked-by",
];

/// Review trailers in `text`, outside quoted (`>`) lines, each once, in order. A trailer needs
/// an address (`Name <a@b>`), which keeps prose like "Acked-by: nobody yet" out.
pub fn review_trailers(text: &str) -> Vec<Trailer> {
    let mut found: Vec<Trailer> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let Some(canonical) = REVIEW_KEYS
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key.trim()))
        else {
            continue;
        };
        let value = value.trim();
        let addressed = value
            .find('<')
            .and_then(|lt| value[lt..].find('>').map(|gt| &value[lt + 1..lt + gt]))
            .is_some_and(|addr| addr.contains('@'));
        if !addressed {
            continue;
        }
        let trailer = Trailer {
            key: canonical.to_string(),
            value: value.to_string(),
        };
        if !found.contains(&trailer) {
            found.push(trailer);
        }
    }
    found
}

/// `base-commit: <hex>` as git format-patch --base writes it.
pub fn base_commit(text: &str) -> Option<String> {
    text.lines().find_map(|l| hex_after(l, "base-commit:"))
}

/// `prerequisite-patch-id: <hex>` lines, in order.
pub fn prerequisite_patch_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| hex_after(l, "prerequisite-patch-id:"))
        .collect()
}

/// `Based-on: <message-id>` (Patchew's way to say a series needs another one first).
pub fn based_on(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = strip_prefix_nocase(l.trim(), "Based-on:")?;
            let id = rest.trim().trim_start_matches('<').trim_end_matches('>');
            (id.contains('@') && !id.contains(char::is_whitespace)).then(|| id.to_string())
        })
        .collect()
}

fn hex_after(line: &str, key: &str) -> Option<String> {
    let rest = strip_prefix_nocase(line.trim(), key)?.trim();
    (rest.len() >= 7 && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| rest.to_ascii_lowercase())
}

fn strip_prefix_nocase<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A pull request mail (git request-pull's text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    /// "The following changes since commit SHA"
    pub base: String,
    pub url: String,
    /// The branch or tag to fetch; None for the remote's HEAD.
    pub rev: Option<String>,
    /// "for you to fetch changes up to SHA"
    pub head: Option<String>,
}

/// Reads git request-pull's text; None when the mail is not one.
pub fn pull_request(text: &str) -> Option<PullRequest> {
    let mut lines = text.lines().map(str::trim);
    let base = lines.by_ref().find_map(|l| {
        let rest = l.strip_prefix("The following changes since commit ")?;
        let sha = rest.trim_end_matches(':').trim();
        (sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then(|| sha.to_string())
    })?;
    lines
        .by_ref()
        .find(|l| l.starts_with("are available in the Git repository at"))?;
    let location = lines.by_ref().find(|l| !l.is_empty())?;
    let mut words = location.split_whitespace();
    let url = words.next()?.to_string();
    let rev = words.next().map(str::to_string);
    let head = lines.find_map(|l| {
        let rest = l.strip_prefix("for you to fetch changes up to ")?;
        let sha = rest.trim_end_matches(':').trim();
        sha.bytes()
            .all(|b| b.is_ascii_hexdigit())
            .then(|| sha.to_string())
    });
    Some(PullRequest {
        base,
        url,
        rev,
        head,
    })
}

/// git stripspace: trailing blanks off every line, runs of empty lines made one, none at either
/// end, a newline at the end.
pub fn stripspace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_blank = false;
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            pending_blank = !out.is_empty();
            continue;
        }
        if pending_blank {
            out.push('\n');
            pending_blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_trailers_need_an_address_and_skip_quotes() {
        let text = "Looks good.\n\nReviewed-by: Jan Beulich <jbeulich@suse.com>\n\
                    > Acked-by: Quoted Person <q@example.org>\n\
                    acked-by: Ann <ann@example.org>\n\
                    Tested-by: nobody yet\n\
                    Reviewed-by: Jan Beulich <jbeulich@suse.com>\n";
        let got: Vec<String> = review_trailers(text)
            .iter()
            .map(|t| t.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "Reviewed-by: Jan Beulich <jbeulich@suse.com>",
                "Acked-by: Ann <ann@example.org>"
            ]
        );
    }

    #[test]
    fn base_and_prerequisites() {
        let text = "-- \n\nbase-commit: 0123456789abcdef0123456789abcdef01234567\n\
                    prerequisite-patch-id: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n\
                    prerequisite-patch-id: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n";
        assert_eq!(
            base_commit(text).as_deref(),
            Some("0123456789abcdef0123456789abcdef01234567")
        );
        assert_eq!(prerequisite_patch_ids(text).len(), 2);
        assert_eq!(base_commit("base-commit: not hex"), None);
        assert_eq!(
            based_on("Based-on: <20240101.1@example.org>\nBased-on: nonsense\n"),
            ["20240101.1@example.org"]
        );
    }

    #[test]
    fn request_pull_text() {
        let text = "Hi Linus,\n\nThe following changes since commit 4cece764965020c22cff7665b18a012006359095:\n\n  Linux 6.9-rc1 (2024-03-24 14:10:05 -0700)\n\nare available in the Git repository at:\n\n  git://git.kernel.org/pub/scm/linux/kernel/git/xen/tip.git for-linus-6.9a-rc2-tag\n\nfor you to fetch changes up to 1234567890abcdef1234567890abcdef12345678:\n\n  xen: fix (2024-03-25)\n";
        let pr = pull_request(text).unwrap();
        assert_eq!(pr.base, "4cece764965020c22cff7665b18a012006359095");
        assert_eq!(
            pr.url,
            "git://git.kernel.org/pub/scm/linux/kernel/git/xen/tip.git"
        );
        assert_eq!(pr.rev.as_deref(), Some("for-linus-6.9a-rc2-tag"));
        assert_eq!(
            pr.head.as_deref(),
            Some("1234567890abcdef1234567890abcdef12345678")
        );
        assert!(pull_request("The following changes since commit zz:\n").is_none());
    }

    #[test]
    fn stripspace_like_git() {
        assert_eq!(stripspace("\n\n a  \n\n\n\nb\t\n\n"), " a\n\nb\n");
        assert_eq!(stripspace("   \n\n"), "");
    }
}
