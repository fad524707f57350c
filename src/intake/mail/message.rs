//! One mail as `git am` reads it: who wrote the change, its subject, message and patch.
//!
//! The rules are git's `mailinfo` (builtin/mailinfo.c), because a series applied by pushgate
//! must become the same commits a maintainer's `git am` would make: in-body `From:`,
//! `Subject:` and `Date:` lines (and a leading `[PATCH] subject` line) override the mail's
//! headers, but only when the mail carries a patch; the message ends at the first line that
//! starts a patch (`---`, `diff -`, `Index: `); the author is picked out of the From line the
//! way git does it, comments and all. mail-parser does the MIME work: transfer encodings,
//! charsets, RFC 2047 words, attachments.

use std::borrow::Cow;

use mail_parser::parsers::MessageStream;
use mail_parser::{HeaderValue, MessageParser, PartType};
use serde::Serialize;

use super::subject::{squeeze_space, Subject};
use super::trailers::{self, Trailer};
use super::UnreadableMail;

/// A person as a commit records one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Person {
    pub name: String,
    pub email: String,
}

/// One parsed mail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mail {
    /// Without the angle brackets. A mail without one gets `<hash>@pushgate.invalid`, from its
    /// bytes, so that the same mail is still stored once.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    /// Oldest first, as the header lists them.
    pub references: Vec<String>,
    /// The mail's From header.
    pub sender: Person,
    /// The commit's author: an in-body `From:` when the mail carries a patch, else the sender.
    pub author: Person,
    /// The commit's date as the mail wrote it (git takes the string as it is).
    pub date: String,
    /// The Date header in seconds since the epoch, for ordering; None when unreadable.
    pub timestamp: Option<i64>,
    /// The header subject: series position, version, reply marker.
    pub subject: Subject,
    /// The Subject header as written (decoded), for a reply's `Re:`.
    pub subject_line: String,
    /// The commit's subject line (`git mailinfo`'s Subject).
    pub commit_subject: String,
    /// The commit message body before stripspace, as `git mailinfo` writes its msg file.
    pub message: String,
    /// From the first patch line to the end, as `git mailinfo` writes its patch file: in the
    /// mail's own charset, not converted.
    #[serde(skip)]
    pub patch: Vec<u8>,
    /// Every text line of the body outside the patch, for trailers and reviews.
    #[serde(skip)]
    pub body: String,
}

impl Mail {
    /// Parses one message (no mbox `From ` line in front).
    pub fn parse(raw: &[u8]) -> Result<Mail, UnreadableMail> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(UnreadableMail::Empty);
        }
        let parsed = MessageParser::default()
            .parse(raw)
            .ok_or(UnreadableMail::Unparseable)?;
        // A mail names at least its sender, subject, id or date; bytes that name none of
        // them are not a mail, whatever a lenient parser made of them.
        let known = ["From", "Subject", "Message-ID", "Date"];
        let has_header = parsed.parts.first().is_some_and(|p| {
            p.headers.iter().any(|h| {
                known
                    .iter()
                    .any(|k| h.name.as_str().eq_ignore_ascii_case(k))
            })
        });
        if !has_header {
            return Err(UnreadableMail::NoHeaders);
        }

        let header = |name: &str| raw_header(&parsed, name).map(decode_header);
        let message_id = parsed
            .message_id()
            .map(clean_id)
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| synthetic_id(raw));
        let in_reply_to = ids(parsed.in_reply_to()).into_iter().next_back();
        let references = ids(parsed.references());
        let header_from = header("From").unwrap_or_default();
        let header_subject = header("Subject").unwrap_or_default();
        let header_date = header("Date")
            .map(|d| squeeze_space(&d))
            .unwrap_or_default();
        let timestamp = parsed.date().map(|d| d.to_timestamp());

        let body = body_text(&parsed);
        let split = split_body(&body.text);
        let patch = patch_bytes(&body, &split);

        let patch_seen = !split.patch.is_empty();
        let pick = |inbody: &Option<String>, header: &str| -> String {
            match inbody {
                Some(v) if patch_seen => v.clone(),
                _ => header.to_string(),
            }
        };
        let author = parse_person(&pick(&split.from, &header_from));
        let commit_subject = Subject::parse(&pick(&split.subject, &header_subject)).title;
        let date = squeeze_space(&pick(&split.date, &header_date));

        Ok(Mail {
            message_id,
            in_reply_to,
            references,
            sender: parse_person(&header_from),
            author,
            date,
            timestamp,
            subject: Subject::parse(&header_subject),
            subject_line: squeeze_space(&header_subject),
            commit_subject,
            message: split.message,
            patch,
            body: split.text,
        })
    }

    /// The commit message `git am` makes: subject, blank line, message, cleaned as git's
    /// stripspace cleans it.
    pub fn commit_message(&self) -> String {
        trailers::stripspace(&format!("{}\n\n{}", self.commit_subject, self.message))
    }

    /// The author's date as git am takes it: the mail's date in its own time zone (the Date
    /// header's when the in-body one is unreadable), as seconds since the epoch and minutes
    /// east of UTC.
    pub fn author_date(&self) -> (i64, i32) {
        mail_parser::DateTime::parse_rfc822(&self.date)
            .filter(|d| d.is_valid())
            .map(|d| {
                let offset = (d.tz_hour as i32 * 60 + d.tz_minute as i32)
                    * if d.tz_before_gmt { -1 } else { 1 };
                (d.to_timestamp(), offset)
            })
            .or_else(|| self.timestamp.map(|t| (t, 0)))
            .unwrap_or((0, 0))
    }

    /// The author's name as git am writes it: the address when the mail gives no name.
    pub fn author_name(&self) -> &str {
        if self.author.name.is_empty() {
            &self.author.email
        } else {
            &self.author.name
        }
    }

    /// The subject as a list of patches shows it; a mail whose header says nothing but a tag
    /// (`[PATCH]`) is shown with its in-body subject.
    pub fn listing(&self) -> String {
        if self.subject.title.is_empty() {
            let mut s = self.subject.clone();
            s.title = self.commit_subject.clone();
            return s.display();
        }
        self.subject.display()
    }

    /// Whether the mail carries a change to apply.
    pub fn has_patch(&self) -> bool {
        self.patch
            .split(|&b| b == b'\n')
            .any(|l| l.starts_with(b"@@") || l.starts_with(b"GIT binary patch"))
    }

    /// Review trailers (`Reviewed-by:`, `Acked-by:` ...) written in this mail, outside quotes.
    pub fn review_trailers(&self) -> Vec<Trailer> {
        trailers::review_trailers(&self.body)
    }

    /// `base-commit: SHA` (git format-patch --base), anywhere in the mail.
    pub fn base_commit(&self) -> Option<String> {
        trailers::base_commit(&self.body)
            .or_else(|| trailers::base_commit(&String::from_utf8_lossy(&self.patch)))
    }
}

/// What a body holds once it is cut as git cuts it.
#[derive(Default)]
struct SplitBody {
    from: Option<String>,
    subject: Option<String>,
    date: Option<String>,
    message: String,
    patch: String,
    /// The non-patch text (message with the in-body headers), for trailers.
    text: String,
}

/// The in-body header names git honours, compared without case.
const INBODY: [&str; 3] = ["From", "Subject", "Date"];

/// Walks the body a line at a time, as mailinfo's handle_commit_msg does.
fn split_body(body: &str) -> SplitBody {
    let mut out = SplitBody::default();
    let mut header_stage = true;
    let mut in_patch = false;
    let mut accum = String::new();
    for line in body.split_inclusive('\n') {
        if in_patch {
            out.patch.push_str(line);
            continue;
        }
        out.text.push_str(line);
        if header_stage {
            if line == "\n" {
                if !accum.is_empty() {
                    flush_inbody(&mut out, &mut accum);
                    header_stage = false;
                }
                continue;
            }
            header_stage = inbody_header(&mut out, &mut accum, line);
            if header_stage {
                continue;
            }
        }
        if starts_patch(line) {
            in_patch = true;
            out.text.truncate(out.text.len() - line.len());
            out.patch.push_str(line);
            continue;
        }
        out.message.push_str(line);
    }
    if !accum.is_empty() {
        flush_inbody(&mut out, &mut accum);
    }
    out
}

/// The patch as the sender's charset wrote it: the same lines of the unconverted bytes. A
/// charset that is not ASCII-compatible (UTF-16) keeps no line count; the text is used then.
fn patch_bytes(body: &Body, split: &SplitBody) -> Vec<u8> {
    let Some(bytes) = &body.bytes else {
        return split.patch.clone().into_bytes();
    };
    if split.patch.is_empty() {
        return Vec::new();
    }
    let lines_before = body.text[..body.text.len() - split.patch.len()]
        .matches('\n')
        .count();
    let mut seen = 0;
    let mut start = None;
    if lines_before == 0 {
        start = Some(0);
    } else {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                seen += 1;
                if seen == lines_before {
                    start = Some(i + 1);
                    break;
                }
            }
        }
    }
    match start {
        Some(at)
            if bytes.get(at..).is_some_and(|p| {
                p.starts_with(&split.patch.as_bytes()[..split.patch.len().min(3)])
            }) =>
        {
            bytes[at..].to_vec()
        }
        _ => split.patch.clone().into_bytes(),
    }
}

/// Whether `line` is (part of) an in-body header; mailinfo's check_inbody_header.
fn inbody_header(out: &mut SplitBody, accum: &mut String, line: &str) -> bool {
    if !accum.is_empty() && line.starts_with([' ', '\t']) {
        if accum.ends_with('\n') {
            accum.pop();
        }
        accum.push_str(line);
        return true;
    }
    flush_inbody(out, accum);
    if let Some(rest) = line.strip_prefix(">From") {
        if rest.starts_with(char::is_whitespace) {
            return is_format_patch_separator(&line[1..]);
        }
    }
    if let Some(rest) = line.strip_prefix("[PATCH]") {
        if rest.starts_with(char::is_whitespace) {
            out.subject = Some(line.to_string());
            return true;
        }
    }
    let taken = [&out.from, &out.subject, &out.date];
    if INBODY
        .iter()
        .zip(taken)
        .any(|(name, taken)| taken.is_none() && header_value(line, name).is_some())
    {
        accum.push_str(line);
        return true;
    }
    false
}

fn flush_inbody(out: &mut SplitBody, accum: &mut String) {
    let line = std::mem::take(accum);
    for (i, name) in INBODY.iter().enumerate() {
        if let Some(value) = header_value(&line, name) {
            let value = decode_header(value.as_bytes());
            let slot = match i {
                0 => &mut out.from,
                1 => &mut out.subject,
                _ => &mut out.date,
            };
            *slot = Some(value);
            return;
        }
    }
}

/// `Name: value` with the name compared without case; the value with leading space skipped.
fn header_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let head = line.get(..name.len())?;
    if !head.eq_ignore_ascii_case(name) {
        return None;
    }
    line[name.len()..].strip_prefix(':').map(|v| v.trim_start())
}

/// `From <40 hex> Mon Sep 17 00:00:00 2001`, the line git format-patch starts a mail with.
fn is_format_patch_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("From ") else {
        return false;
    };
    let (hash, tail) = rest.split_at_checked(40).unwrap_or(("", ""));
    hash.len() == 40
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && tail.trim_end() == " Mon Sep 17 00:00:00 2001"
}

/// Mailinfo's patchbreak: where the message ends and the patch begins.
fn starts_patch(line: &str) -> bool {
    if line.starts_with("diff -") || line.starts_with("Index: ") {
        return true;
    }
    let Some(rest) = line.strip_prefix("---") else {
        return false;
    };
    if line.len() < 4 {
        return false;
    }
    // `--- filename` starts a patch without a git header.
    if rest.starts_with(' ') && !rest[1..].starts_with(char::is_whitespace) && rest.len() > 1 {
        return true;
    }
    // `---` alone (or followed by blanks) is format-patch's separator.
    for c in rest.chars() {
        if c == '\n' {
            return true;
        }
        if !c.is_whitespace() {
            return false;
        }
    }
    false
}

/// A body twice: as text (converted to UTF-8, for the message and headers) and as the bytes
/// the sender's charset wrote (transfer encoding undone, charset kept), because a patch must
/// apply to files in their own encoding, as git am applies it.
struct Body {
    text: String,
    /// None when every part was in UTF-8 already: the bytes are the text's then.
    bytes: Option<Vec<u8>>,
}

/// Every plain-text part in order (inline or a patch attached as text), line ends made `\n`.
/// HTML alternatives are left out, as git does.
fn body_text(message: &mail_parser::Message<'_>) -> Body {
    // A message/rfc822 part is one part here (mail-parser keeps its insides to itself), so
    // a forwarded mail's text never mixes in.
    let mut parts: Vec<(Cow<'_, str>, Option<Vec<u8>>)> = Vec::new();
    for part in &message.parts {
        let chunk: Option<Cow<'_, str>> = match &part.body {
            PartType::Text(t) => Some(Cow::Borrowed(t.as_ref())),
            PartType::Binary(b) | PartType::InlineBinary(b) if is_patch_attachment(part) => {
                Some(String::from_utf8_lossy(b))
            }
            _ => None,
        };
        if let Some(chunk) = chunk {
            let raw = written_bytes(message, part);
            parts.push((chunk, raw));
        }
    }
    let own_charset = parts.iter().any(|(_, raw)| raw.is_some());
    let mut body = Body {
        text: String::new(),
        bytes: own_charset.then(Vec::new),
    };
    for (chunk, raw) in &parts {
        if !body.text.is_empty() && !body.text.ends_with('\n') {
            body.text.push('\n');
            if let Some(bytes) = &mut body.bytes {
                bytes.push(b'\n');
            }
        }
        if chunk.contains('\r') {
            body.text.push_str(&chunk.replace("\r\n", "\n"));
        } else {
            body.text.push_str(chunk);
        }
        if let Some(bytes) = &mut body.bytes {
            let raw = raw.as_deref().unwrap_or(chunk.as_bytes());
            for line in raw.split_inclusive(|&b| b == b'\n') {
                match line.strip_suffix(b"\r\n") {
                    Some(l) => {
                        bytes.extend_from_slice(l);
                        bytes.push(b'\n');
                    }
                    None => bytes.extend_from_slice(line),
                }
            }
        }
    }
    body
}

/// A part's bytes in its own charset, when that is not UTF-8 already (None: use the text).
fn written_bytes(
    message: &mail_parser::Message<'_>,
    part: &mail_parser::MessagePart<'_>,
) -> Option<Vec<u8>> {
    use mail_parser::{Encoding, MimeHeaders};
    let charset = part
        .content_type()
        .and_then(|ct| ct.attribute("charset"))
        .unwrap_or("us-ascii")
        .to_ascii_lowercase();
    if matches!(charset.as_str(), "utf-8" | "utf8" | "us-ascii" | "ascii") {
        return None;
    }
    let raw = message
        .raw_message()
        .get(part.offset_body as usize..part.offset_end as usize)?;
    match part.encoding {
        Encoding::QuotedPrintable => {
            mail_parser::decoders::quoted_printable::quoted_printable_decode(raw)
        }
        Encoding::Base64 => mail_parser::decoders::base64::base64_decode(raw),
        Encoding::None => Some(raw.to_vec()),
    }
}

fn is_patch_attachment(part: &mail_parser::MessagePart<'_>) -> bool {
    use mail_parser::MimeHeaders;
    let by_name = part
        .attachment_name()
        .is_some_and(|n| n.ends_with(".patch") || n.ends_with(".diff"));
    let by_type = part.content_type().is_some_and(|ct| {
        ct.c_subtype
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("x-patch") || s.eq_ignore_ascii_case("x-diff"))
    });
    by_name || by_type
}

/// The raw bytes of the first header called `name`.
fn raw_header<'a>(message: &'a mail_parser::Message<'_>, name: &str) -> Option<&'a [u8]> {
    let raw = message.raw_message();
    message.parts[0]
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| raw.get(h.offset_start as usize..h.offset_end as usize))
}

/// A raw header value with its folds joined (line breaks dropped, the indent kept, as git
/// does) and RFC 2047 words decoded; white space between two encoded words goes, everything
/// else stays as written.
fn decode_header(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blanks = String::new();
    let mut last_encoded = false;
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' | b'\n' => i += 1,
            b' ' | b'\t' => {
                blanks.push(raw[i] as char);
                i += 1;
            }
            b'=' if raw.get(i + 1) == Some(&b'?') => {
                let mut stream = MessageStream::new(&raw[i + 1..]);
                match stream.decode_rfc2047() {
                    Some(word) => {
                        if !last_encoded {
                            out.push_str(&blanks);
                        }
                        blanks.clear();
                        out.push_str(&word);
                        i += 1 + stream.offset();
                        last_encoded = true;
                    }
                    None => {
                        out.push_str(&blanks);
                        blanks.clear();
                        out.push('=');
                        i += 1;
                        last_encoded = false;
                    }
                }
            }
            _ => {
                out.push_str(&blanks);
                blanks.clear();
                let start = i;
                i += 1; // this byte is text whatever it is (a lone `=` too)
                while i < raw.len() && !matches!(raw[i], b'\r' | b'\n' | b' ' | b'\t' | b'=') {
                    i += 1;
                }
                out.push_str(&String::from_utf8_lossy(&raw[start..i]));
                last_encoded = false;
            }
        }
    }
    out.push_str(&blanks);
    out
}

fn clean_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![clean_id(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

/// An id for a mail that has none: the same bytes give the same id.
fn synthetic_id(raw: &[u8]) -> String {
    format!("{}@pushgate.invalid", crate::digest::short_digest(raw, 16))
}

/// The author in a From line, by mailinfo's handle_from: the word around the `@` (maybe in
/// `<>`) is the address, what is left is the name, and a name that is empty, too long or looks
/// like an address is replaced by the address.
pub fn parse_person(from: &str) -> Person {
    let f = unquote_quoted_pair(&squeeze_space(from));
    let Some(at) = f.find('@') else {
        return parse_bogus_from(&f);
    };
    let bytes = f.as_bytes();
    let mut start = at;
    let mut bracket = None;
    while start > 0 {
        let c = bytes[start - 1];
        if c.is_ascii_whitespace() {
            break;
        }
        if c == b'<' {
            bracket = Some(start - 1);
            break;
        }
        start -= 1;
    }
    let len = f[start..]
        .find([' ', '\n', '\t', '\r', '\x0b', '\x0c', '>'])
        .unwrap_or(f.len() - start);
    let email = f[start..start + len].to_string();
    let mut end = start + len;
    if end < f.len() {
        end += 1; // the delimiter after the address goes too
    }
    let mut rest = String::with_capacity(f.len());
    rest.push_str(&f[..bracket.unwrap_or(start)]);
    if bracket.is_some() {
        rest.push(' ');
    }
    rest.push_str(&f[end..]);
    let mut name = squeeze_space(&rest);
    if name.starts_with('(') && name.ends_with(')') && name.len() >= 2 {
        name = name[1..name.len() - 1].to_string();
    }
    sane_name(name, email)
}

fn parse_bogus_from(line: &str) -> Person {
    let Some(bra) = line.find('<') else {
        return Person::default();
    };
    let Some(ket) = line[bra..].find('>') else {
        return Person::default();
    };
    let email = line[bra + 1..bra + ket].to_string();
    sane_name(line[..bra].trim().to_string(), email)
}

fn sane_name(name: String, email: String) -> Person {
    if name.is_empty() || name.chars().count() > 60 || name.contains(['@', '<', '>']) {
        Person {
            name: email.clone(),
            email,
        }
    } else {
        Person { name, email }
    }
}

/// Drops the quotes around quoted strings and the backslashes of quoted pairs; comments keep
/// their parentheses (git shows them in the name).
fn unquote_quoted_pair(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        c => out.push(c),
                    }
                }
            }
            '(' => {
                out.push('(');
                let mut depth = 1;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => out.extend(chars.next()),
                        '(' => {
                            depth += 1;
                            out.push('(');
                        }
                        ')' => {
                            out.push(')');
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        c => out.push(c),
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(from: &str) -> (String, String) {
        let p = parse_person(from);
        (p.name, p.email)
    }

    #[test]
    fn authors_the_way_git_reads_them() {
        let both = |n: &str, e: &str| (n.to_string(), e.to_string());
        assert_eq!(
            person("A U Thor <a@example.com>"),
            both("A U Thor", "a@example.com")
        );
        assert_eq!(
            person("a@example.com (A U Thor)"),
            both("A U Thor", "a@example.com")
        );
        assert_eq!(
            person("<a@example.com> (A U Thor)"),
            both("A U Thor", "a@example.com")
        );
        assert_eq!(
            person("A (zzz) U Thor <a@example.com> (Comment)"),
            both("A (zzz) U Thor (Comment)", "a@example.com")
        );
        assert_eq!(
            person("\"Thor, A U\" <a@example.com>"),
            both("Thor, A U", "a@example.com")
        );
        assert_eq!(
            person("a@example.com"),
            both("a@example.com", "a@example.com")
        );
        assert_eq!(person("bogosity - a list"), both("", ""));
        assert_eq!(person("Jo <jo>"), both("Jo", "jo"));
        assert_eq!(person(""), both("", ""));
    }

    #[test]
    fn patch_breaks() {
        for yes in [
            "---\n",
            "--- \n",
            "--- a/foo\n",
            "diff --git a/x b/x\n",
            "Index: foo\n",
        ] {
            assert!(starts_patch(yes), "{yes:?}");
        }
        for no in [
            "--\n", "---x\n", "----\n", "-- \n", "---  x\n", "text\n", "---",
        ] {
            assert!(!starts_patch(no), "{no:?}");
        }
    }

    #[test]
    fn in_body_headers_count_only_with_a_patch() {
        let mail = b"From: Junio <j@example.org>\nSubject: re: [PATCH] x\nDate: Fri, 9 Jun 2006 00:44:16 -0700\n\nFrom: A U Thor <a@example.com>\nSubject: [PATCH] y\n\nno patch here\n";
        let m = Mail::parse(mail).unwrap();
        assert_eq!(m.author.email, "j@example.org");
        assert_eq!(m.commit_subject, "x");
        assert!(m.subject.reply);
        let with_patch = [&mail[..], b"---\ndiff --git a/f b/f\n@@ -1 +1 @@\n"].concat();
        let m = Mail::parse(&with_patch).unwrap();
        assert_eq!(m.author.email, "a@example.com");
        assert_eq!(m.commit_subject, "y");
        assert_eq!(m.message, "no patch here\n");
    }

    #[test]
    fn commit_message_is_stripped_like_git_am() {
        let m = Mail::parse(
            b"From: A <a@x>\nSubject: [PATCH 1/2] title\n\n\nbody line   \n\n\n\nSigned-off-by: A <a@x>\n\n---\n",
        )
        .unwrap();
        assert_eq!(
            m.commit_message(),
            "title\n\nbody line\n\nSigned-off-by: A <a@x>\n"
        );
    }

    #[test]
    fn a_mail_without_id_gets_a_stable_one() {
        let raw = b"From: A <a@x>\nSubject: s\n\nbody\n";
        let a = Mail::parse(raw).unwrap();
        assert!(a.message_id.ends_with("@pushgate.invalid"));
        assert_eq!(a.message_id, Mail::parse(raw).unwrap().message_id);
    }

    #[test]
    fn a_patch_keeps_the_senders_charset_while_the_message_is_utf8() {
        let raw = b"From: A <a@x>\nSubject: [PATCH] caf\xe9\nMIME-Version: 1.0\n\
                    Content-Type: text/plain; charset=ISO-8859-1\n\
                    Content-Transfer-Encoding: quoted-printable\n\n\
                    Fix the caf=E9 sign.\n---\ndiff --git a/m b/m\n--- a/m\n+++ b/m\n\
                    @@ -1 +1 @@\n-cafe\n+caf=E9\n";
        let m = Mail::parse(raw).unwrap();
        assert_eq!(m.message, "Fix the caf\u{e9} sign.\n");
        assert!(
            m.patch.ends_with(b"+caf\xe9\n"),
            "{:?}",
            String::from_utf8_lossy(&m.patch)
        );
        assert!(m.has_patch());
    }

    #[test]
    fn header_words() {
        assert_eq!(decode_header(b"a = b =?x"), "a = b =?x");
        assert_eq!(
            decode_header(b"=?UTF-8?q?caf=C3=A9?= =?UTF-8?q?_bar?="),
            "caf\u{e9} bar"
        );
        assert_eq!(decode_header(b"(=?ISO-8859-1?Q?a?=)"), "(a)");
        assert_eq!(decode_header(b"one\n\ttwo"), "one\ttwo");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(Mail::parse(b""), Err(UnreadableMail::Empty)));
        assert!(Mail::parse(b"\n\n").is_err());
        assert_eq!(
            Mail::parse(b"\x00\x01 not mail"),
            Err(UnreadableMail::NoHeaders)
        );
        assert_eq!(
            Mail::parse(b"X-Only: this\n\nbody"),
            Err(UnreadableMail::NoHeaders)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(raw in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = Mail::parse(&raw);
        }

        #[test]
        fn any_mail_shaped_text_parses(
            from in "\\PC{0,40}",
            subject in "\\PC{0,60}",
            body in "(\\PC{0,30}\n){0,12}",
        ) {
            let raw = format!("From: {from}\nSubject: {subject}\n\n{body}");
            let _ = Mail::parse(raw.as_bytes());
        }
    }
}
