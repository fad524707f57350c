//! Maintainers' commands in GitHub comments: a line `@pushgate retry`, `@pushgate block
//! <reason>`, `@pushgate unblock` or `@pushgate force [SHA]`. Pure; who may give them is the
//! policy's `maintainers` list, checked by the handler.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Test the staging tip again although it was decided.
    Retry,
    /// Plan and push nothing until unblocked.
    Block {
        reason: String,
    },
    Unblock,
    /// Push this commit (default: the staging tip) although it has not passed.
    Force {
        rev: Option<String>,
    },
}

/// The command a comment gives, if one of its lines is addressed to `@pushgate`. `Err` says
/// what is wrong with a command that is addressed but not understood.
pub fn parse_command(body: &str) -> Option<Result<Command, String>> {
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| l.split_whitespace().next() == Some("@pushgate"))?;
    let mut words = line.split_whitespace().skip(1);
    let verb = words.next().unwrap_or("").to_ascii_lowercase();
    let rest: Vec<&str> = words.collect();
    Some(match verb.as_str() {
        "retry" if rest.is_empty() => Ok(Command::Retry),
        "unblock" if rest.is_empty() => Ok(Command::Unblock),
        "block" if rest.is_empty() => Err("`@pushgate block` needs a reason after it".into()),
        "block" => Ok(Command::Block {
            reason: rest.join(" "),
        }),
        "force" => match rest.as_slice() {
            [] => Ok(Command::Force { rev: None }),
            [rev]
                if rev.len() >= 7
                    && rev.len() <= 40
                    && rev.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Ok(Command::Force {
                    rev: Some(rev.to_ascii_lowercase()),
                })
            }
            _ => Err("`@pushgate force` takes at most a commit id (7 to 40 hex digits)".into()),
        },
        "" => Err("say `@pushgate retry`, `block <reason>`, `unblock` or `force [SHA]`".into()),
        other => Err(format!(
            "`{other}` is not a pushgate command: say `retry`, `block <reason>`, `unblock` \
             or `force [SHA]`"
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse_command("LGTM"), None);
        assert_eq!(parse_command("ping @pushgate retry later"), None);
        assert_eq!(
            parse_command("Flaky runner.\n\n  @pushgate retry\n"),
            Some(Ok(Command::Retry))
        );
        assert_eq!(
            parse_command("@pushgate block the release is frozen"),
            Some(Ok(Command::Block {
                reason: "the release is frozen".into()
            }))
        );
        assert_eq!(
            parse_command("@pushgate unblock"),
            Some(Ok(Command::Unblock))
        );
        assert_eq!(
            parse_command("@pushgate force"),
            Some(Ok(Command::Force { rev: None }))
        );
        assert_eq!(
            parse_command("@pushgate FORCE ABCDEF1"),
            Some(Ok(Command::Force {
                rev: Some("abcdef1".into())
            }))
        );
        assert!(matches!(parse_command("@pushgate block"), Some(Err(_))));
        assert!(matches!(
            parse_command("@pushgate force master~1"),
            Some(Err(_))
        ));
        assert!(matches!(parse_command("@pushgate merge"), Some(Err(e)) if e.contains("merge")));
        assert!(matches!(parse_command("@pushgate"), Some(Err(_))));
        assert!(matches!(parse_command("@pushgate retry now"), Some(Err(_))));
    }

    #[test]
    fn never_panics() {
        for body in [
            "",
            "@pushgate force \u{301}",
            "@pushgate \t\r\n",
            "@pushgate block ü",
        ] {
            let _ = parse_command(body);
        }
    }
}
