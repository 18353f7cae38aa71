//! Where the control socket lives, and binding it.
//!
//! The player binds the first usable of: `$RUNTIME_DIRECTORY/rowplay.sock`
//! (systemd's `RuntimeDirectory=`), `/run/rowplay/rowplay.sock` (made as
//! root, mode 0750, when missing), `$XDG_RUNTIME_DIR/rowplay.sock`, and
//! `/tmp/rowplay-$UID/rowplay.sock` (a private folder, mode 0700, made when
//! missing and refused when it exists with another owner or mode, so that
//! nobody else can plant a socket there). `ctl` tries the same places in
//! the same order and uses the first socket it can connect to.

use std::fmt;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket's file name in each default folder.
pub const SOCKET_NAME: &str = "rowplay.sock";

fn uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

/// The private fallback folder, `/tmp/rowplay-$UID`.
pub fn private_dir() -> PathBuf {
    PathBuf::from(format!("/tmp/rowplay-{}", uid()))
}

/// The default socket locations, in the order the player and `ctl` use.
pub fn default_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("RUNTIME_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may list several folders separated by ':'.
        if let Some(first) = d.to_string_lossy().split(':').next() {
            v.push(Path::new(first).join(SOCKET_NAME));
        }
    }
    v.push(Path::new("/run/rowplay").join(SOCKET_NAME));
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        v.push(Path::new(&d).join(SOCKET_NAME));
    }
    v.push(private_dir().join(SOCKET_NAME));
    v
}

/// Why the socket could not be set up.
#[derive(Debug)]
pub enum SocketError {
    /// Another player answers on it.
    InUse(PathBuf),
    /// Creating it failed.
    Io(PathBuf, io::Error),
    /// The private folder exists but is not ours alone.
    UnsafeDir(PathBuf),
    /// No default folder could be used.
    NoFolder(Vec<String>),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::InUse(p) => write!(
                f,
                "{}: another rowplay is running on this socket; stop it or use --socket",
                p.display()
            ),
            SocketError::Io(p, e) => {
                write!(f, "{}: cannot create control socket: {e}", p.display())
            }
            SocketError::UnsafeDir(p) => write!(
                f,
                "{}: exists but is not a folder of this user with mode 0700; remove it or use --socket",
                p.display()
            ),
            SocketError::NoFolder(why) if why.is_empty() => write!(
                f,
                "no usable socket folder ($RUNTIME_DIRECTORY, /run/rowplay, $XDG_RUNTIME_DIR, /tmp/rowplay-$UID); use --socket PATH"
            ),
            SocketError::NoFolder(why) => write!(f, "{}", why.join("; ")),
        }
    }
}

impl std::error::Error for SocketError {}

/// Bind the control socket at `path` (mode 0660). A stale socket file with
/// no listener is replaced; a live one is an error.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    let io = |e| SocketError::Io(path.to_path_buf(), e);
    let l = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(io)?;
    l.set_nonblocking(true).map_err(io)?;
    Ok(l)
}

fn dir_writable(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Make sure the folder of a default location can hold the socket:
/// `/run/rowplay` is made as root, the private folder is made or checked.
fn prepare_dir(dir: &Path) -> Result<bool, SocketError> {
    if dir == Path::new("/run/rowplay") && uid() == 0 && !dir.exists() {
        std::fs::DirBuilder::new()
            .mode(0o750)
            .create(dir)
            .map_err(|e| SocketError::Io(dir.to_path_buf(), e))?;
    }
    if dir == private_dir() {
        match std::fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| SocketError::Io(dir.to_path_buf(), e))?;
            }
            Err(e) => return Err(SocketError::Io(dir.to_path_buf(), e)),
            Ok(m) => {
                if !m.is_dir() || m.uid() != uid() || m.mode() & 0o777 != 0o700 {
                    return Err(SocketError::UnsafeDir(dir.to_path_buf()));
                }
            }
        }
    }
    Ok(dir.is_dir() && dir_writable(dir))
}

/// Bind the first usable default location.
pub fn bind_default() -> Result<(UnixListener, PathBuf), SocketError> {
    let mut why = Vec::new();
    for p in default_candidates() {
        let Some(dir) = p.parent() else { continue };
        match prepare_dir(dir) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                why.push(e.to_string());
                continue;
            }
        }
        match bind(&p) {
            Ok(l) => return Ok((l, p)),
            Err(e @ SocketError::InUse(_)) => return Err(e),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(SocketError::NoFolder(why))
}
