//! GitHub webhook deliveries: the signature check and the events pushgate acts on. Pure: the
//! handler in `web/github.rs` does the I/O.
//!
//! Only `X-Hub-Signature-256` (HMAC-SHA256 of the raw body with the hook's secret) is
//! accepted: the SHA-1 signature GitHub still sends beside it is not enough on its own.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "no X-Hub-Signature-256 header: the delivery is not signed (set the webhook's secret)"
    )]
    Missing,
    #[error("only an X-Hub-Signature (SHA-1) header: pushgate needs X-Hub-Signature-256")]
    Sha1Only,
    #[error("X-Hub-Signature-256 is not `sha256=` and 64 hex digits")]
    Malformed,
    #[error("X-Hub-Signature-256 does not match the body and the configured secret")]
    Mismatch,
}

/// Checks a delivery's `X-Hub-Signature-256` (`sha256_header`) against its raw body, in
/// constant time. `sha1_present` says whether a SHA-1 signature came instead.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    sha256_header: Option<&str>,
    sha1_present: bool,
) -> Result<(), SignatureError> {
    let header = match (sha256_header, sha1_present) {
        (Some(h), _) => h.trim(),
        (None, true) => return Err(SignatureError::Sha1Only),
        (None, false) => return Err(SignatureError::Missing),
    };
    let hex = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    let mut tag = [0u8; 32];
    for (i, byte) in tag.iter_mut().enumerate() {
        *byte = u8::from_str_radix(
            hex.get(2 * i..2 * i + 2).ok_or(SignatureError::Malformed)?,
            16,
        )
        .map_err(|_| SignatureError::Malformed)?;
    }
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` GitHub sends with `body` under `secret`: what a delivery's
/// sender computes (the intake bench and the tests sign with it).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        crate::digest::hex(ring::hmac::sign(&key, body).as_ref())
    )
}

/// A delivery, as far as pushgate cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Ping {
        zen: Option<String>,
    },
    Push(Push),
    PullRequest(PullRequest),
    /// A comment on a pull request, an issue or a commit: where maintainers give commands.
    Comment(Comment),
    /// An event pushgate does not act on (yet): acknowledged, logged.
    Other {
        event: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// `owner/name`.
    pub repository: String,
    pub git_ref: String,
    pub before: String,
    pub after: String,
    pub forced: bool,
    pub kind: PushKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// A branch moved: what a staging branch does.
    BranchUpdated,
    BranchCreated,
    BranchDeleted,
    /// Any push to `refs/tags/`.
    Tag,
    /// Another namespace (`refs/notes/`, ...).
    OtherRef,
}

impl Push {
    /// The branch name when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub repository: String,
    pub action: String,
    pub number: u64,
    pub head_sha: String,
    pub base_ref: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub repository: String,
    /// `created`, `edited`, `deleted`: only new comments are commands.
    pub action: String,
    /// The commenter's login.
    pub user: String,
    pub body: String,
    pub on: CommentOn,
}

/// Where a comment was made, which is where the answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentOn {
    /// A pull request or an issue, by number.
    Issue(u64),
    Commit(String),
}

#[derive(Deserialize)]
struct IssueCommentJson {
    action: String,
    issue: IssueJson,
    comment: CommentJson,
    repository: RepositoryJson,
}

#[derive(Deserialize)]
struct IssueJson {
    number: u64,
}

#[derive(Deserialize)]
struct CommitCommentJson {
    #[serde(default = "created")]
    action: String,
    comment: CommentJson,
    repository: RepositoryJson,
}

fn created() -> String {
    "created".into()
}

#[derive(Deserialize)]
struct CommentJson {
    body: String,
    user: UserJson,
    #[serde(default)]
    commit_id: Option<String>,
}

#[derive(Deserialize)]
struct UserJson {
    login: String,
}

#[derive(Deserialize)]
struct RepositoryJson {
    full_name: String,
}

#[derive(Deserialize)]
struct PingJson {
    zen: Option<String>,
}

#[derive(Deserialize)]
struct PushJson {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(deserialize_with = "object_id")]
    before: String,
    #[serde(deserialize_with = "object_id")]
    after: String,
    #[serde(default)]
    created: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    forced: bool,
    repository: RepositoryJson,
}

#[derive(Deserialize)]
struct PullRequestJson {
    action: String,
    number: u64,
    pull_request: PullRequestBody,
    repository: RepositoryJson,
}

#[derive(Deserialize)]
struct PullRequestBody {
    head: GitPoint,
    base: GitPoint,
}

#[derive(Deserialize)]
struct GitPoint {
    #[serde(deserialize_with = "object_id")]
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
}

/// A field that names a commit: 40 hex digits (64 in a SHA-256 repository), all zeros for
/// none. Anything else is refused with the delivery, never queued to fail later.
fn object_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    if is_object_id(&text) {
        return Ok(text);
    }
    let shown: String = text.chars().take(50).collect();
    Err(serde::de::Error::custom(format!(
        "`{shown}` is not a commit id (40 or 64 hex digits)"
    )))
}

fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_zero(sha: &str) -> bool {
    !sha.is_empty() && sha.bytes().all(|b| b == b'0')
}

/// Parses a delivery's body for its `X-GitHub-Event`; the error names what is wrong and where.
pub fn parse_event(event: &str, body: &[u8]) -> Result<Event, String> {
    fn json<'a, T: Deserialize<'a>>(event: &str, body: &'a [u8]) -> Result<T, String> {
        serde_json::from_slice(body).map_err(|e| format!("{event} payload: {e}"))
    }
    Ok(match event {
        "ping" => Event::Ping {
            zen: json::<PingJson>(event, body)?.zen,
        },
        "push" => {
            let p: PushJson = json(event, body)?;
            let kind = if p.git_ref.starts_with("refs/tags/") {
                PushKind::Tag
            } else if !p.git_ref.starts_with("refs/heads/") {
                PushKind::OtherRef
            } else if p.deleted || is_zero(&p.after) {
                PushKind::BranchDeleted
            } else if p.created || is_zero(&p.before) {
                PushKind::BranchCreated
            } else {
                PushKind::BranchUpdated
            };
            Event::Push(Push {
                repository: p.repository.full_name,
                git_ref: p.git_ref,
                before: p.before,
                after: p.after,
                forced: p.forced,
                kind,
            })
        }
        "pull_request" => {
            let p: PullRequestJson = json(event, body)?;
            Event::PullRequest(PullRequest {
                repository: p.repository.full_name,
                action: p.action,
                number: p.number,
                head_sha: p.pull_request.head.sha,
                base_ref: p.pull_request.base.git_ref,
            })
        }
        "issue_comment" => {
            let c: IssueCommentJson = json(event, body)?;
            Event::Comment(Comment {
                repository: c.repository.full_name,
                action: c.action,
                user: c.comment.user.login,
                body: c.comment.body,
                on: CommentOn::Issue(c.issue.number),
            })
        }
        "commit_comment" => {
            let c: CommitCommentJson = json(event, body)?;
            let sha = c
                .comment
                .commit_id
                .ok_or_else(|| "commit_comment payload: no comment.commit_id".to_string())?;
            if !is_object_id(&sha) {
                let shown: String = sha.chars().take(50).collect();
                return Err(format!(
                    "commit_comment payload: comment.commit_id `{shown}` is not a commit id \
                     (40 or 64 hex digits)"
                ));
            }
            Event::Comment(Comment {
                repository: c.repository.full_name,
                action: c.action,
                user: c.comment.user.login,
                body: c.comment.body,
                on: CommentOn::Commit(sha),
            })
        }
        other => {
            // Still JSON, or it is not a GitHub delivery at all.
            json::<serde_json::Value>(other, body)?;
            Event::Other {
                event: other.to_string(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_that_name_commits_must_be_commit_ids() {
        let sha = "a".repeat(40);
        let push = |before: &str, after: &str| {
            format!(
                r#"{{"ref":"refs/heads/staging","before":"{before}","after":"{after}","repository":{{"full_name":"o/r"}}}}"#
            )
        };
        assert!(parse_event("push", push(&sha, &"b".repeat(64)).as_bytes()).is_ok());
        assert!(parse_event("push", push(&"0".repeat(40), &sha).as_bytes()).is_ok());
        for (before, after, field) in [
            (sha.as_str(), "HEAD~1; rm -rf /", "after"),
            ("", sha.as_str(), "before"),
            (sha.as_str(), &"a".repeat(39), "after"),
            (sha.as_str(), &"g".repeat(40), "after"),
        ] {
            let e = parse_event("push", push(before, after).as_bytes()).unwrap_err();
            assert!(e.contains("is not a commit id"), "{field}: {e}");
            assert!(e.starts_with("push payload: "), "{e}");
        }
        let pr = format!(
            r#"{{"action":"opened","number":1,"pull_request":{{"head":{{"sha":"main","ref":"x"}},"base":{{"sha":"{sha}","ref":"master"}}}},"repository":{{"full_name":"o/r"}}}}"#
        );
        let e = parse_event("pull_request", pr.as_bytes()).unwrap_err();
        assert!(e.contains("`main` is not a commit id"), "{e}");
        let comment = r#"{"comment":{"body":"@pushgate retry","user":{"login":"u"},"commit_id":"xyz"},"repository":{"full_name":"o/r"}}"#;
        let e = parse_event("commit_comment", comment.as_bytes()).unwrap_err();
        assert!(e.contains("`xyz` is not a commit id"), "{e}");
    }

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const VECTOR: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn githubs_documented_vector() {
        assert_eq!(signature(SECRET, b"Hello, World!"), VECTOR);
        assert_eq!(
            verify_signature(SECRET, b"Hello, World!", Some(VECTOR), true),
            Ok(())
        );
        // One byte changed anywhere fails: body, secret, signature.
        assert_eq!(
            verify_signature(SECRET, b"Hello, World?", Some(VECTOR), false),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(
                b"It's a Secret to Everybodz",
                b"Hello, World!",
                Some(VECTOR),
                false
            ),
            Err(SignatureError::Mismatch)
        );
        let flipped = VECTOR.replace("757107", "757108");
        assert_eq!(
            verify_signature(SECRET, b"Hello, World!", Some(&flipped), false),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(SECRET, b"Hello, World!", None, true),
            Err(SignatureError::Sha1Only)
        );
        assert_eq!(
            verify_signature(SECRET, b"Hello, World!", None, false),
            Err(SignatureError::Missing)
        );
        for bad in [
            "sha1=757107",
            "sha256=xyz",
            "sha256=",
            &VECTOR[..70],
            "sha256=ééé",
        ] {
            assert_eq!(
                verify_signature(SECRET, b"Hello, World!", Some(bad), false),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_recorded_payload_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/github-webhooks/payload-examples/api.github.com");
        let mut pushes = Vec::new();
        let mut seen = 0;
        for dir in std::fs::read_dir(&root)
            .expect("the shared testdata")
            .flatten()
        {
            let event = dir.file_name().to_string_lossy().into_owned();
            for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
                let body = std::fs::read(file.path()).unwrap();
                let parsed = parse_event(&event, &body)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.path().display()));
                seen += 1;
                match (event.as_str(), parsed) {
                    ("push", Event::Push(p)) => pushes.push(p.kind),
                    ("ping", Event::Ping { .. }) | ("pull_request", Event::PullRequest(_)) => {}
                    ("issue_comment", Event::Comment(c)) => {
                        assert_eq!(c.on, CommentOn::Issue(1));
                        assert!(!c.user.is_empty() && !c.body.is_empty());
                    }
                    (_, Event::Other { event: e }) => assert_eq!(e, event),
                    (e, other) => panic!("{e} parsed as {other:?}"),
                }
            }
        }
        assert!(seen >= 70, "{seen} payloads");
        let count = |k| pushes.iter().filter(|p| **p == k).count();
        assert_eq!(count(PushKind::Tag), 4, "{pushes:?}");
        assert_eq!(count(PushKind::BranchCreated), 2, "{pushes:?}");
    }

    #[test]
    fn bad_bodies_say_where() {
        let e = parse_event("push", b"{\"ref\": 3}").unwrap_err();
        assert!(e.starts_with("push payload: invalid type"), "{e}");
        let e = parse_event("push", b"{\n\"ref\": \"refs/heads/x\",\n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
        assert!(parse_event("issues", b"not json").is_err());
        proptest::proptest!(|(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300))| {
            for event in ["push", "ping", "pull_request", "issue_comment", "commit_comment", "check_run"] {
                let _ = parse_event(event, &bytes);
            }
        });
    }

    /// Real payloads, mangled: cut short, bytes changed, values swapped for other types. The
    /// parser answers or refuses; it never panics, and comment commands never either.
    #[test]
    fn mangled_payloads_never_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/testdata/github-webhooks/payload-examples/api.github.com");
        let mut samples = Vec::new();
        for event in ["push", "pull_request", "issue_comment", "ping"] {
            for file in std::fs::read_dir(root.join(event))
                .unwrap()
                .flatten()
                .take(3)
            {
                samples.push((event, std::fs::read(file.path()).unwrap()));
            }
        }
        proptest::proptest!(|(pick in 0..samples.len(), at in 0usize..20_000, len in 0usize..64, byte in proptest::num::u8::ANY)| {
            let (event, body) = &samples[pick];
            let at = at % body.len().max(1);
            let mut cut = body[..at].to_vec();
            let _ = parse_event(event, &cut);
            cut.extend(std::iter::repeat_n(byte, len));
            cut.extend_from_slice(&body[at..]);
            if let Ok(Event::Comment(c)) = parse_event(event, &cut) {
                let _ = crate::intake::github::parse_command(&c.body);
            }
            let _ = parse_event("commit_comment", &cut);
        });
        proptest::proptest!(|(text in "\\PC{0,200}")| {
            let _ = crate::intake::github::parse_command(&format!("@pushgate {text}"));
            let _ = crate::intake::github::parse_command(&text);
        });
    }
}
