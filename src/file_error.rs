//! Errors in the files people write (policies, sequences, hosts, the service config), located
//! by file, line and field so that whoever wrote the file can fix it without reading the code.
//! Below every reader of such a file, so that none imports another for its error.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;

/// A mistake in a file a person wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FileError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole (it cannot be read, say).
    pub line: usize,
    /// 1-based column, where the file format gives one (XML does); 0 otherwise.
    pub column: usize,
    /// The field at fault, dotted (`mail.to`), or empty when none applies.
    pub field: String,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        if !self.field.is_empty() {
            write!(f, ": field `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every mistake found in the files read together (a file, a directory of them, a whole
/// configuration), so that whoever wrote them fixes them all in one go rather than one per try.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileErrors(pub Vec<FileError>);

impl FileErrors {
    /// The value of `result`, or `None` with its errors kept.
    pub fn take<T, E: Into<FileErrors>>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.into().0);
                None
            }
        }
    }

    pub fn push(&mut self, e: FileError) {
        self.0.push(e);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was wrong, else every error.
    pub fn or<T>(self, value: impl FnOnce() -> T) -> Result<T, FileErrors> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl From<FileError> for FileErrors {
    fn from(e: FileError) -> FileErrors {
        FileErrors(vec![e])
    }
}

/// One error per line, as a compiler lists them.
impl fmt::Display for FileErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FileErrors {}

/// A TOML file's text, kept to turn byte offsets into lines.
pub struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl<'a> Source<'a> {
    /// The text of a file a person wrote, read as [`read_text`] reads it.
    pub fn read(path: &Path) -> Result<String, FileError> {
        read_text(path).map_err(|message| FileError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message,
        })
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// 1-based column (in characters) of a byte offset.
    pub fn column_of(&self, offset: usize) -> usize {
        let mut end = offset.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let start = self.text[..end].rfind('\n').map_or(0, |i| i + 1);
        self.text[start..end].chars().count() + 1
    }

    /// An error at a span of the file, about `field`. A span that is empty (a default put in
    /// by serde, not written in the file) has no place: the error is about the field alone.
    pub fn error(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> FileError {
        if span.is_empty() && span.start == 0 {
            return self.whole(field, message);
        }
        FileError {
            file: self.path.to_path_buf(),
            line: self.line_of(span.start),
            column: self.column_of(span.start),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole, or a field that is missing from it.
    pub fn whole(&self, field: &str, message: impl Into<String>) -> FileError {
        FileError {
            file: self.path.to_path_buf(),
            line: 0,
            column: 0,
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// Parses the file, turning TOML and type errors into a located [`FileError`].
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(self.text).map_err(|e| {
            let message = e.message();
            let (line, column, field) = if let Some(field) = quoted_after(message, "missing field ")
            {
                // The span of a missing field is the table that lacks it: no line helps.
                (0, 0, field)
            } else {
                match e.span() {
                    Some(span) => (
                        self.line_of(span.start),
                        self.column_of(span.start),
                        self.key_at(span.start),
                    ),
                    None => (0, 0, String::new()),
                }
            };
            FileError {
                file: self.path.to_path_buf(),
                line,
                column,
                field,
                // One line, as every other error: the TOML parser's own runs over two.
                message: message.split_whitespace().collect::<Vec<_>>().join(" "),
            }
        })
    }

    /// Where a top-level `key = ...` is written (the file's start when it is not).
    pub fn span_of_key(&self, key: &str) -> Range<usize> {
        let mut at = 0;
        for line in self.text.split_inclusive('\n') {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return at..at + line.len();
                }
            }
            at += line.len();
        }
        0..0
    }

    /// The key written on the line holding `offset` (`key = ...`), or the table header there.
    fn key_at(&self, offset: usize) -> String {
        let start = self.text[..offset.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[start..].lines().next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[') {
            return header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        }
        match line.split_once('=') {
            Some((key, _)) => key.trim().trim_matches('"').to_string(),
            None => String::new(),
        }
    }
}

/// The most pushgate reads of a file a person wrote (a policy, a sequence, the config, a
/// secret) unless the config says otherwise: more is a mistake (a log or an image named
/// `.toml`), not a configuration.
pub const DEFAULT_MAX_FILE_SIZE: u64 = 4 << 20;

/// The limit in force. Process-wide, like a resource limit: the config sets it once at start
/// (`[input] max_file_mib`), and every reader of every file below obeys it without each
/// loader's callers passing it down.
static MAX_FILE_SIZE: AtomicU64 = AtomicU64::new(DEFAULT_MAX_FILE_SIZE);

/// Makes `bytes` the most [`read_text`] reads of a file from now on.
pub fn set_max_file_size(bytes: u64) {
    MAX_FILE_SIZE.store(bytes, Ordering::Relaxed);
}

/// The most [`read_text`] reads of a file.
pub fn max_file_size() -> u64 {
    MAX_FILE_SIZE.load(Ordering::Relaxed)
}

/// Reads a file a person wrote as UTF-8 text, only when it is a regular file (a link to one is
/// fine) of at most [`max_file_size`] bytes. A FIFO would block the reader until something
/// writes to it, and `/dev/zero` never ends: both are refused before a byte is read, and the
/// read stops at the limit whatever the file grows to meanwhile. The error says what is wrong,
/// without the path (the caller names the file).
pub fn read_text(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let limit = max_file_size();
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Opening a FIFO waits for a writer unless it is non-blocking; what was opened is
        // looked at before a byte is read.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options
        .open(path)
        .map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        };
        return Err(format!("cannot read: not a regular file but {kind}"));
    }
    let too_big = || {
        format!(
            "cannot read: larger than {}, the most pushgate reads of a file it is given \
             (`[input] max_file_mib` in pushgate.toml)",
            size_in_words(limit)
        )
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "cannot read: not UTF-8 text (byte {} is not)",
            e.utf8_error().valid_up_to() + 1
        )
    })
}

/// `4 MiB`, `512 KiB`, `100 bytes`: a limit as people say it.
fn size_in_words(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// The `*.toml` files of a directory, sorted so that errors come in a stable order.
pub fn toml_files(dir: &Path, what: &str) -> Result<Vec<PathBuf>, FileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FileError {
        file: dir.to_path_buf(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the {what} directory: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The name quoted in backticks right after `prefix` in a serde message.
fn quoted_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.split(prefix).nth(1)?.strip_prefix('`')?;
    Some(rest.split('`').next()?.to_string())
}

/// Parses a duration as people write it in config files: `90s`, `5m`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like `30s`, `5m` or `1h`: {e}"))
}

/// Makes a FIFO at `path`, for tests of readers that must not wait on one.
#[cfg(test)]
pub(crate) fn make_fifo(path: &Path) {
    let made = std::process::Command::new("mkfifo").arg(path).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", path.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().unwrap();
        // A link to /dev/zero, which never ends, and a FIFO, which blocks until written to:
        // both refused before a byte is read.
        let zero = dir.path().join("zero.toml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let fifo = dir.path().join("fifo.toml");
        make_fifo(&fifo);
        for (path, kind) in [
            (&zero, "a device, FIFO or socket"),
            (&fifo, "a device, FIFO or socket"),
            (&dir.path().to_path_buf(), "a directory"),
        ] {
            let e = read_text(path).unwrap_err();
            assert_eq!(e, format!("cannot read: not a regular file but {kind}"));
        }
        // Up to the limit is read; a byte more is refused, saying the limit.
        let big = dir.path().join("big.toml");
        let limit = DEFAULT_MAX_FILE_SIZE as usize;
        std::fs::write(&big, "#".repeat(limit)).unwrap();
        assert_eq!(read_text(&big).unwrap().len(), limit);
        std::fs::write(&big, "#".repeat(limit + 1)).unwrap();
        let e = read_text(&big).unwrap_err();
        assert!(e.contains("larger than 4 MiB"), "{e}");
        assert!(e.contains("max_file_mib"), "{e}");
        // Not text: the first bad byte, counted from 1.
        let bin = dir.path().join("bin.toml");
        std::fs::write(&bin, b"ab\xffcd").unwrap();
        assert_eq!(
            read_text(&bin).unwrap_err(),
            "cannot read: not UTF-8 text (byte 3 is not)"
        );
        // Through Source, the error names the file.
        let e = Source::read(&zero).unwrap_err();
        assert_eq!(e.file, zero);
        assert!(e
            .to_string()
            .starts_with(&format!("{}: cannot read", zero.display())));
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        retries: u32,
    }

    fn parse(text: &str) -> Result<Sample, FileError> {
        Source {
            path: Path::new("p.toml"),
            text,
        }
        .parse()
    }

    #[test]
    fn a_type_error_names_line_and_field() {
        let e = parse("name = \"x\"\nretries = \"two\"\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (2, "retries"));
        assert!(
            e.to_string().starts_with("p.toml:2:11: field `retries`: "),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_field_is_named() {
        let e = parse("name = \"x\"\nretries = 1\nretires = 2\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (3, "retires"));
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn a_missing_field_is_named() {
        let e = parse("name = \"x\"\n").unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (0, "retries"));
        assert_eq!(
            e.to_string(),
            "p.toml: field `retries`: missing field `retries`"
        );
    }

    #[test]
    fn a_syntax_error_has_a_line() {
        let e = parse("name = \"x\nretries = 1\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("1h 30m").unwrap().as_secs(), 5400);
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
    }
}
