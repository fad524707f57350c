//! TAP (the Test Anything Protocol, versions 12 to 14): `ok`/`not ok` lines with `# SKIP` and
//! `# TODO` directives, a plan, and `Bail out!`. Indented lines (subtests) belong to the test
//! that follows them and are not counted on their own.

use super::{SubResult, SubStatus};

pub fn parse(text: &str) -> Result<Vec<SubResult>, String> {
    let mut out: Vec<SubResult> = Vec::new();
    let mut planned: Option<usize> = None;
    let mut next = 1usize;
    for (i, raw) in text.lines().enumerate() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim_end();
        if let Some(plan) = line.strip_prefix("1..") {
            let count = plan.split_whitespace().next().unwrap_or("");
            planned = Some(
                count
                    .parse()
                    .map_err(|_| format!("line {}: a plan like `1..N`, not `{line}`", i + 1))?,
            );
        } else if let Some(reason) = line.strip_prefix("Bail out!") {
            out.push(SubResult {
                name: "(bail out)".into(),
                status: SubStatus::Error,
                duration: None,
                message: Some(reason.trim().to_string()).filter(|r| !r.is_empty()),
            });
            return Ok(out);
        } else if let Some(rest) = line.strip_prefix("not ok") {
            out.push(test(rest, false, &mut next));
        } else if let Some(rest) = line.strip_prefix("ok") {
            if rest.is_empty() || rest.starts_with([' ', '\t', '#']) {
                out.push(test(rest, true, &mut next));
            }
        }
    }
    if let Some(planned) = planned {
        for n in out.len() + 1..=planned.min(out.len() + 100_000) {
            out.push(SubResult {
                name: format!("test {n}"),
                status: SubStatus::Error,
                duration: None,
                message: Some(format!("planned 1..{planned} but test {n} never reported")),
            });
        }
    }
    Ok(out)
}

/// One `ok` / `not ok` line, after the keyword.
fn test(rest: &str, ok: bool, next: &mut usize) -> SubResult {
    let (body, directive) = match rest.find(" # ").or_else(|| rest.find("\t# ")) {
        Some(i) => (&rest[..i], Some(rest[i + 3..].trim())),
        None => match rest.strip_prefix('#') {
            Some(d) => ("", Some(d.trim())),
            None => (rest, None),
        },
    };
    let body = body.trim();
    let digits = body.chars().take_while(|c| c.is_ascii_digit()).count();
    let number = body[..digits].parse::<usize>().ok().unwrap_or(*next);
    *next = number.saturating_add(1);
    let description = body[digits..].trim().trim_start_matches('-').trim();
    let name = if description.is_empty() {
        format!("test {number}")
    } else {
        description.to_string()
    };
    let upper = directive.map(|d| d.to_ascii_uppercase());
    let (status, message) = match upper.as_deref() {
        Some(d) if d.starts_with("SKIP") => (SubStatus::Skip, directive),
        // A TODO test is expected to fail: it does not count against the commit.
        Some(d) if d.starts_with("TODO") => (SubStatus::Skip, directive),
        _ if ok => (SubStatus::Pass, None),
        _ => (SubStatus::Fail, None),
    };
    SubResult {
        name,
        status,
        duration: None,
        message: message.map(str::to_string),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub const SAMPLE: &str = "TAP version 13\n1..6\nok 1 - boots\nnot ok 2 - pings the gateway\n  ---\n  message: timeout\n  ...\nok 3 - mounts # SKIP no nfs\nnot ok 4 - known bug # TODO fix later\nok 5\n# a comment\nok\n";

    #[test]
    fn reads_statuses_directives_and_the_plan() {
        let r = parse(SAMPLE).unwrap();
        let got: Vec<(&str, SubStatus)> = r.iter().map(|s| (s.name.as_str(), s.status)).collect();
        assert_eq!(
            got,
            [
                ("boots", SubStatus::Pass),
                ("pings the gateway", SubStatus::Fail),
                ("mounts", SubStatus::Skip),
                ("known bug", SubStatus::Skip),
                ("test 5", SubStatus::Pass),
                ("test 6", SubStatus::Pass),
            ]
        );
    }

    #[test]
    fn missing_tests_and_bail_outs_are_errors() {
        let r = parse("1..3\nok 1 a\n").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[2].status, SubStatus::Error);
        let r = parse("1..3\nok 1 a\nBail out! no network\nok 2\n").unwrap();
        assert_eq!(r.last().unwrap().message.as_deref(), Some("no network"));
        assert!(parse("1..x\n").is_err());
    }
}
