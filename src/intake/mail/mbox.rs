//! Splitting an mbox into messages, as `git mailsplit` does.
//!
//! A message starts at a `From ` line that looks like an mbox separator (an address, then a
//! date with a time and a year), so a body line such as "From here on..." never splits a
//! message; `>From ` lines lose one `>` (mboxrd, and what mboxo writers did to such lines).
//! mail-parser has an mbox reader, but it splits on any line starting with `From `, which
//! cuts real list archives apart.

use std::borrow::Cow;

/// The messages of an mbox, in order, without their `From ` lines.
pub fn split(data: &[u8]) -> Vec<Cow<'_, [u8]>> {
    let mut messages = Vec::new();
    let mut start: Option<usize> = None;
    let mut quoted = false;
    let mut pos = 0;
    while pos < data.len() {
        let end = memchr_newline(&data[pos..]).map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..end];
        if is_from_line(line) {
            if let Some(s) = start {
                messages.push(unquote(&data[s..pos], quoted));
            }
            start = Some(end);
            quoted = false;
        } else if start.is_some() && line.first() == Some(&b'>') {
            quoted |= is_quoted_from(line);
        }
        pos = end;
    }
    if let Some(s) = start {
        messages.push(unquote(&data[s..], quoted));
    } else if data.iter().any(|b| !b.is_ascii_whitespace()) {
        // A lone message without a separator (what an MDA pipe hands over).
        messages.push(Cow::Borrowed(data));
    }
    messages
}

fn memchr_newline(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// git's is_from_line: `From <something> ... hh:mm[:ss] ... year`, the year above 90.
fn is_from_line(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() < 20 || !line.starts_with(b"From ") {
        return false;
    }
    let Some(colon) = line.iter().rposition(|&b| b == b':') else {
        return false;
    };
    if colon < 9 {
        return false;
    }
    let digit = |i: usize| line.get(i).is_some_and(u8::is_ascii_digit);
    if !(digit(colon - 4)
        && digit(colon - 2)
        && digit(colon - 1)
        && digit(colon + 1)
        && digit(colon + 2))
    {
        return false;
    }
    let year: String = line[colon + 3..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    year.parse::<u32>().is_ok_and(|y| y > 90)
}

fn is_quoted_from(line: &[u8]) -> bool {
    let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
    unquoted > 0 && line[unquoted..].starts_with(b"From ")
}

fn unquote(message: &[u8], quoted: bool) -> Cow<'_, [u8]> {
    if !quoted {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len());
    for line in message.split_inclusive(|&b| b == b'\n') {
        if is_quoted_from(line) {
            out.extend_from_slice(&line[1..]);
        } else {
            out.extend_from_slice(line);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_separators_only() {
        let mbox = b"From nobody Mon Sep 17 00:00:00 2001\nSubject: one\n\nFrom here on it is body\n>From quoted\n\nFrom b9704a518e21158433baa2cc2d591fea687967f6 Mon Sep 17 00:00:00 2001\nSubject: two\n\nx\n";
        let parts = split(mbox);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            &*parts[0],
            b"Subject: one\n\nFrom here on it is body\nFrom quoted\n\n"
        );
        assert_eq!(&*parts[1], b"Subject: two\n\nx\n");
    }

    #[test]
    fn a_bare_message_is_one_message() {
        assert_eq!(split(b"Subject: x\n\nbody\n").len(), 1);
        assert!(split(b"\n \n").is_empty());
        assert!(split(b"").is_empty());
    }

    #[test]
    fn from_lines() {
        assert!(is_from_line(b"From nobody Mon Sep 17 00:00:00 2001\n"));
        assert!(is_from_line(
            b"From bda@mnsspb.ru Wed Nov 12 17:54:41 2008\n"
        ));
        assert!(is_from_line(b"From nobody Fri Aug  8 22:24:03 2008"));
        assert!(!is_from_line(b"From: someone <a@b>\n"));
        assert!(!is_from_line(b"From the start at 10:30 it went 1999\n"));
        assert!(!is_from_line(b"From nobody Mon Sep 17 00:00:00 0070\n"));
        assert!(!is_from_line(b"From x 1:2"));
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_split_without_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = split(&data);
        }
    }
}
