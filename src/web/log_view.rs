//! Reading a step's log for a page, in bounded memory whatever its size: a window of lines
//! (the last ones, or from a line asked for) with their numbers, and what was added since a
//! byte offset, for the live tail. The raw file is streamed, never read whole.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// At most this many lines on one page of a log.
pub const PAGE_LINES: usize = 2000;
/// A line longer than this (in bytes) is cut on the page; the raw file has it whole.
pub const LINE_BYTES: usize = 4096;
/// At most this much of a log per live-tail answer.
pub const TAIL_BYTES: u64 = 256 * 1024;

/// Lines of a log as a page shows them.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Window {
    /// The number (1-based) of the first line shown.
    pub first: usize,
    pub lines: Vec<String>,
    /// Lines in the file, the last one counted even without its newline.
    pub total_lines: usize,
    /// The file's size when it was read.
    pub bytes: u64,
    /// Where the live tail goes on from: after the last whole line shown.
    pub offset: u64,
}

/// Calls `line` with each line of `reader` (without its newline, cut at [`LINE_BYTES`]) and the
/// byte offset after it, holding at most one line's worth of the file at a time; the last
/// line counts only when `partial_too` (else it may still be being written).
fn each_line(
    mut reader: impl Read,
    partial_too: bool,
    mut line: impl FnMut(&[u8], u64),
) -> std::io::Result<u64> {
    let mut chunk = vec![0u8; 64 * 1024];
    let mut current: Vec<u8> = Vec::new();
    let mut at = 0u64;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &chunk[..n];
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let room = LINE_BYTES.saturating_sub(current.len());
            current.extend_from_slice(&rest[..newline.min(room)]);
            at += newline as u64 + 1;
            line(&current, at);
            current.clear();
            rest = &rest[newline + 1..];
        }
        let room = LINE_BYTES.saturating_sub(current.len());
        current.extend_from_slice(&rest[..rest.len().min(room)]);
        at += rest.len() as u64;
    }
    if partial_too && !current.is_empty() {
        line(&current, at);
    }
    Ok(at)
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .to_string()
}

/// The lines of `path` from line `from` (1-based), or its last [`PAGE_LINES`] lines. A log still
/// being written (`growing`) shows only its whole lines; the tail brings the rest. One pass
/// counts the lines (and keeps the page's, or only where the last page's lines start); the
/// last page is then read from there: no line outside the page is copied.
pub fn window(path: &Path, from: Option<usize>, growing: bool) -> std::io::Result<Window> {
    let mut file = std::fs::File::open(path)?;
    let bytes = file.metadata()?.len();
    let mut kept: Vec<String> = Vec::new();
    // Where each of the last PAGE_LINES lines starts, for the default page.
    let mut starts: VecDeque<u64> = VecDeque::new();
    let mut number = 0usize;
    let mut start = 0u64;
    let mut offset = 0u64;
    each_line((&mut file).take(bytes), !growing, |line, after| {
        number += 1;
        match from {
            Some(from) if number >= from && kept.len() < PAGE_LINES => {
                kept.push(text(line));
                offset = after;
            }
            Some(_) => {}
            None => {
                if starts.len() == PAGE_LINES {
                    starts.pop_front();
                }
                starts.push_back(start);
                offset = after;
            }
        }
        start = after;
    })?;
    let total_lines = number;
    let first = match from {
        Some(from) if !kept.is_empty() => from,
        Some(_) => total_lines + 1,
        None => {
            let Some(&page_start) = starts.front() else {
                return Ok(Window {
                    first: 1,
                    lines: Vec::new(),
                    total_lines,
                    bytes,
                    offset: 0,
                });
            };
            file.seek(SeekFrom::Start(page_start))?;
            let wanted = starts.len();
            each_line(file.take(offset - page_start), true, |line, _| {
                if kept.len() < wanted {
                    kept.push(text(line));
                }
            })?;
            total_lines + 1 - starts.len()
        }
    };
    Ok(Window {
        first,
        lines: kept,
        total_lines,
        bytes,
        offset,
    })
}

/// The last `n` lines of a finished log (`jobs showlog -v`), read in bounded memory.
pub fn last_lines(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let mut kept = VecDeque::with_capacity(n);
    each_line(std::fs::File::open(path)?, true, |line, _| {
        if kept.len() == n {
            kept.pop_front();
        }
        kept.push_back(text(line));
    })?;
    Ok(kept.into())
}

/// What a log holds past `offset`: whole lines only while it grows, at most [`TAIL_BYTES`].
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tail {
    pub lines: Vec<String>,
    /// Where the next call goes on from.
    pub offset: u64,
    /// Whether `offset` is the file's end as it was read.
    pub at_end: bool,
}

pub fn tail(path: &Path, offset: u64, growing: bool) -> std::io::Result<Tail> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if offset >= len {
        return Ok(Tail {
            lines: Vec::new(),
            offset: offset.min(len),
            at_end: true,
        });
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut lines = Vec::new();
    let mut end = offset;
    // The last line of a bounded read may be cut by the bound: only whole lines then.
    let capped = len - offset > TAIL_BYTES;
    each_line(file.take(TAIL_BYTES), !growing && !capped, |line, after| {
        lines.push(text(line));
        end = offset + after;
    })?;
    Ok(Tail {
        lines,
        offset: end,
        at_end: end == len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn a_window_numbers_its_lines_and_knows_where_the_tail_goes_on() {
        let (_d, path) = log("one\ntwo\r\nthree\npart");
        let w = window(&path, None, true).unwrap();
        assert_eq!(
            (w.first, w.lines.clone()),
            (1, vec!["one".into(), "two".into(), "three".into()])
        );
        assert_eq!((w.total_lines, w.offset, w.bytes), (3, 15, 19));
        // Finished: the last line counts though it has no newline.
        let w = window(&path, None, false).unwrap();
        assert_eq!((w.lines.len(), w.total_lines, w.offset), (4, 4, 19));
        let w = window(&path, Some(3), false).unwrap();
        assert_eq!(
            (w.first, w.lines.clone()),
            (3, vec!["three".into(), "part".into()])
        );
        let w = window(&path, Some(9), false).unwrap();
        assert_eq!((w.first, w.lines.len()), (5, 0));
    }

    #[test]
    fn a_big_log_shows_its_last_page_and_cuts_long_lines() {
        let mut text = String::new();
        for i in 1..=PAGE_LINES + 500 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str(&"x".repeat(LINE_BYTES * 3));
        text.push('\n');
        let (_d, path) = log(&text);
        let w = window(&path, None, false).unwrap();
        assert_eq!(w.total_lines, PAGE_LINES + 501);
        assert_eq!(w.lines.len(), PAGE_LINES);
        assert_eq!(w.first, 502);
        assert_eq!(w.lines[0], "line 502");
        assert_eq!(w.lines.last().unwrap().len(), LINE_BYTES);
    }

    #[test]
    fn the_tail_brings_whole_lines_from_an_offset() {
        let (_d, path) = log("a\nb\nc");
        let t = tail(&path, 2, true).unwrap();
        assert_eq!(
            (t.lines.clone(), t.offset, t.at_end),
            (vec!["b".to_string()], 4, false)
        );
        let t = tail(&path, 4, false).unwrap();
        assert_eq!(
            (t.lines.clone(), t.offset, t.at_end),
            (vec!["c".to_string()], 5, true)
        );
        let t = tail(&path, 99, false).unwrap();
        assert_eq!((t.lines.len(), t.offset), (0, 5));
        // A bounded read of a bigger rest: whole lines, and more to come.
        let big = format!("{}\n", "y".repeat(100)).repeat(TAIL_BYTES as usize / 50);
        let (_d2, path) = log(&big);
        let t = tail(&path, 0, false).unwrap();
        assert!(!t.at_end);
        assert_eq!(t.offset % 101, 0);
        assert!(t.lines.iter().all(|l| l.len() == 100));
    }
}
