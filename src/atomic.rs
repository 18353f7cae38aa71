//! Writing files so that they appear only when complete.
//!
//! [`AtomicFile`] is an unnamed temporary file (`O_TMPFILE`) in the
//! destination's folder, or a hidden named one where the filesystem has no
//! `O_TMPFILE`; [`AtomicFile::commit`] syncs it, gives it a temporary name
//! and renames it over the destination, then syncs the folder. Dropped
//! before that, it leaves nothing behind, and an existing destination is
//! never touched. Packs, exports, renders and statistics are all written
//! this way ([`write_atomically`]).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folder a destination path is in (`.` for a bare file name).
pub fn folder_of(out: &Path) -> PathBuf {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Write `out` atomically through a buffered writer filled by `f`. On any
/// error nothing is left behind; the error names `out`.
pub fn write_atomically(
    out: &Path,
    f: impl FnOnce(&mut io::BufWriter<&mut File>) -> io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let wrap = |e| AtomicWriteError {
        path: out.to_path_buf(),
        error: e,
    };
    let mut tmp = AtomicFile::create(&folder_of(out)).map_err(wrap)?;
    {
        let mut w = io::BufWriter::new(&mut tmp.file);
        f(&mut w).map_err(wrap)?;
        w.flush().map_err(wrap)?;
    }
    tmp.commit(out).map_err(wrap)
}

/// A file that could not be written.
#[derive(Debug)]
pub struct AtomicWriteError {
    /// The destination.
    pub path: PathBuf,
    /// What failed.
    pub error: io::Error,
}

impl std::fmt::Display for AtomicWriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for AtomicWriteError {}

/// An unnamed file in `dir` that disappears when closed: `O_TMPFILE` where
/// the filesystem has it, else a named file unlinked at once.
pub fn anonymous_file(dir: &Path) -> io::Result<File> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o600)
        .open(dir)
    {
        Ok(f) => Ok(f),
        Err(_) => {
            let path = unique_name(dir, ".rowplay-spill");
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(f)
        }
    }
}

fn unique_name(dir: &Path, stem: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{stem}.{}.{n}.tmp", std::process::id()))
}

/// A file being written: invisible until [`AtomicFile::commit`] renames it
/// over its destination, gone if dropped before.
pub struct AtomicFile {
    /// The file to write.
    pub file: File,
    /// Set when the filesystem has no `O_TMPFILE`: a named file removed on drop.
    named: Option<PathBuf>,
    dir: PathBuf,
}

impl AtomicFile {
    /// A new, unnamed file in `dir` (the destination's folder, so the final
    /// rename stays on one filesystem).
    pub fn create(dir: &Path) -> io::Result<AtomicFile> {
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o644)
            .open(dir);
        match unnamed {
            Ok(file) => Ok(AtomicFile {
                file,
                named: None,
                dir: dir.to_path_buf(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("output folder {} does not exist", dir.display()),
            )),
            Err(_) => {
                let path = unique_name(dir, ".rowplay");
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(&path)?;
                Ok(AtomicFile {
                    file,
                    named: Some(path),
                    dir: dir.to_path_buf(),
                })
            }
        }
    }

    /// Sync and move into place.
    pub fn commit(mut self, out: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        let tmp_path = match self.named.take() {
            Some(p) => p,
            None => {
                let p = unique_name(&self.dir, ".rowplay");
                link_unnamed(&self.file, &p)?;
                p
            }
        };
        if let Err(e) = std::fs::rename(&tmp_path, out) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(e);
        }
        // Make the rename itself durable.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(p) = &self.named {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Give an `O_TMPFILE` file a name (through /proc, which needs no privilege).
fn link_unnamed(file: &File, to: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let from = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
    let to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_nothing_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.json");
        std::fs::write(&out, "old").unwrap();
        let e = write_atomically(&out, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk on fire"))
        })
        .unwrap_err();
        assert!(e.to_string().ends_with("x.json: disk on fire"), "{e}");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomically(&out, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
