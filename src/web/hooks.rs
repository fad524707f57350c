//! `POST /hooks/git`: a git server's post-receive hook pipes its standard input here
//! (`<old> <new> <ref>` per line) and the policies watching those refs look at once.

use axum::extract::{Query, State};
use axum::http::StatusCode;

use super::{AppState, WebError};

#[derive(serde::Deserialize)]
pub struct HookQuery {
    /// Wake only this policy (when several repositories share a staging branch name).
    policy: Option<String>,
}

/// The refs named in a post-receive body: at least one (an empty body is a hook that sent
/// nothing, not a reason to wake every policy).
pub fn parse_refs(body: &str) -> Result<Vec<&str>, String> {
    let mut refs = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let hex = |s: &str| matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
        match fields.as_slice() {
            [old, new, r] if hex(old) && hex(new) && r.starts_with("refs/") => refs.push(*r),
            _ => {
                return Err(format!(
                "line {}: expected `<old-sha> <new-sha> <ref>` as post-receive prints it, got `{}`",
                n + 1,
                line.chars().take(120).collect::<String>()
            ))
            }
        }
    }
    if refs.is_empty() {
        return Err(
            "the body names no ref: a post-receive hook sends `<old-sha> <new-sha> <ref>` lines \
             on standard input (`curl --data-binary @- ...`)"
                .into(),
        );
    }
    Ok(refs)
}

pub async fn git(
    State(state): State<AppState>,
    Query(query): Query<HookQuery>,
    body: String,
) -> Result<(StatusCode, String), WebError> {
    let refs = parse_refs(&body).map_err(WebError::BadRequest)?;
    let only = query.policy.as_deref();
    if let Some(name) = only {
        if !state.wakers.watches(name) {
            return Err(WebError::NotFound(format!("no policy is named `{name}`\n")));
        }
    }
    let mut woken = Vec::new();
    for r in &refs {
        for name in state.wakers.wake(Some(r), only) {
            if !woken.contains(&name) {
                woken.push(name);
            }
        }
    }
    tracing::info!(
        "post-receive hook for {}: {}",
        refs.join(" "),
        if woken.is_empty() {
            "no policy watches it".to_string()
        } else {
            format!("woke {}", woken.join(", "))
        }
    );
    if woken.is_empty() {
        return Ok((StatusCode::OK, "no policy watches these refs\n".into()));
    }
    Ok((StatusCode::ACCEPTED, format!("woke {}\n", woken.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_receive_lines() {
        let a = "a".repeat(40);
        let b = "0".repeat(40);
        assert_eq!(
            parse_refs(&format!(
                "{a} {b} refs/heads/staging\n{b} {a} refs/tags/v1\n"
            ))
            .unwrap(),
            vec!["refs/heads/staging", "refs/tags/v1"]
        );
        assert!(parse_refs("").is_err());
        assert!(parse_refs("\n \n").is_err());
        let e = parse_refs(&format!("{a} {b} refs/heads/x\nhello\n")).unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(parse_refs(&format!("{a} zz refs/heads/x")).is_err());
    }
}
