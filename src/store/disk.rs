//! Whether pushgate can write where it keeps its state, asked once at start: a full disk
//! showed as "pool timed out" after 30 s, and a read-only one as "unable to open database
//! file", neither naming the directory nor the reason.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// A directory pushgate must write in and cannot.
#[derive(Debug, thiserror::Error)]
#[error("cannot write in {}: {problem}", dir.display())]
pub struct NotWritable {
    pub dir: PathBuf,
    pub problem: String,
}

/// Makes `dir` if needed and writes (and syncs) a block in it, so that a full disk, a read-only
/// file system or a directory pushgate may not write in is said before any work starts.
pub fn check_writable(dir: &Path) -> Result<(), NotWritable> {
    // Named as an absolute path: "cannot write in state" does not say which one.
    let fail = |e: std::io::Error| NotWritable {
        dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        problem: in_words(&e),
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".pushgate-write-check-{}", std::process::id()));
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(fail)
}

/// Whether pushgate could make and write in `dir`, asked without making or writing anything
/// (`pushgate check`): the directory, or the nearest parent that exists, is a directory this
/// process may write in. Says which when not.
pub fn could_write(dir: &Path) -> Result<&'static str, NotWritable> {
    let fail = |problem: String| NotWritable {
        dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        problem,
    };
    let mut at = dir;
    let exists = dir.exists();
    loop {
        match std::fs::metadata(at) {
            Ok(meta) if !meta.is_dir() => {
                return Err(fail(format!("{} is not a directory", at.display())))
            }
            Ok(_) => break,
            Err(_) => match at.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => at = parent,
                _ => break,
            },
        }
    }
    let c_path = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| fail("the path holds a NUL byte".into()))?;
    // SAFETY: access reads the NUL-terminated path it is given and nothing else.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err(fail(in_words(&std::io::Error::last_os_error())));
    }
    Ok(if exists { "exists" } else { "will be made" })
}

fn in_words(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::StorageFull => format!("the disk is full ({e})"),
        ErrorKind::ReadOnlyFilesystem => format!("the file system is read-only ({e})"),
        ErrorKind::PermissionDenied => format!("pushgate may not write there ({e})"),
        ErrorKind::QuotaExceeded => format!("the disk quota is used up ({e})"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_writable_directory_is_made_and_left_clean() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/b");
        check_writable(&state).unwrap();
        assert_eq!(std::fs::read_dir(&state).unwrap().count(), 0);
        // A file where the directory should be: said, with the path.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let e = check_writable(&dir.path().join("file/state")).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "cannot write in {}",
                dir.path().join("file/state").display()
            )),
            "{e}"
        );
    }
}
