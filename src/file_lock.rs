//! An exclusive `flock` on a file beside what it guards, for what several pushgate processes
//! share (a mirror, a new SQLite file's schema): the kernel releases it when its holder dies,
//! so a killed process never leaves it held.

use std::path::Path;

/// Held until dropped.
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Waits for the lock on `path`, making the file if needed. Blocks: call it off the async
    /// runtime's threads.
    pub fn take(path: &Path) -> std::io::Result<FileLock> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        // SAFETY: flock on a descriptor owned here; no memory is shared.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(FileLock { _file: file })
    }
}
