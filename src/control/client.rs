//! `rowplay ctl`: send one line to a running player, return its reply.

use super::socket::default_candidates;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `ctl` waits for a reply. `wait` answers within 50 frames, so
/// this is far more than any reply takes from a live player.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `ctl` got no reply.
#[derive(Debug)]
pub enum ClientError {
    /// No default socket accepted a connection.
    NoPlayer(Vec<(PathBuf, io::Error)>),
    /// The given socket refused the connection.
    Connect(PathBuf, io::Error),
    /// Sending the line failed.
    Send(PathBuf, io::Error),
    /// Reading the reply failed (or timed out).
    NoReply(PathBuf, io::Error),
    /// The player closed the connection without a reply.
    Closed(PathBuf),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NoPlayer(tried) => {
                write!(f, "no running player found (no socket at $RUNTIME_DIRECTORY/rowplay.sock, /run/rowplay/rowplay.sock, $XDG_RUNTIME_DIR/rowplay.sock or /tmp/rowplay-$UID/rowplay.sock")?;
                // A socket that exists but refused says why (often: permission).
                for (p, e) in tried {
                    write!(f, "; {}: {e}", p.display())?;
                }
                write!(f, "); use --socket PATH")
            }
            ClientError::Connect(p, e) => {
                write!(f, "{}: {e} (is `rowplay play` running?)", p.display())
            }
            ClientError::Send(p, e) => write!(f, "{}: {e}", p.display()),
            ClientError::NoReply(p, e) => write!(f, "{}: no reply: {e}", p.display()),
            ClientError::Closed(p) => {
                write!(f, "{}: the player closed the connection", p.display())
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Connect to `socket`, or to the first default location that accepts.
pub fn connect(socket: Option<&Path>) -> Result<(UnixStream, PathBuf), ClientError> {
    if let Some(p) = socket {
        return UnixStream::connect(p)
            .map(|s| (s, p.to_path_buf()))
            .map_err(|e| ClientError::Connect(p.to_path_buf(), e));
    }
    let mut tried = Vec::new();
    for p in default_candidates() {
        if !p.exists() {
            continue;
        }
        match UnixStream::connect(&p) {
            Ok(s) => return Ok((s, p)),
            Err(e) => tried.push((p, e)),
        }
    }
    Err(ClientError::NoPlayer(tried))
}

/// Send one command line to a running player and return its reply line.
pub fn ctl(socket: Option<&Path>, line: &str) -> Result<String, ClientError> {
    let (mut s, path) = connect(socket)?;
    let _ = s.set_read_timeout(Some(REPLY_TIMEOUT));
    s.write_all(format!("{}\n", line.trim()).as_bytes())
        .map_err(|e| ClientError::Send(path.clone(), e))?;
    let mut reply = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&b[..n]);
                if reply.ends_with(b"\n") {
                    break;
                }
            }
            Err(e) => return Err(ClientError::NoReply(path, e)),
        }
    }
    let text = String::from_utf8_lossy(&reply).trim_end().to_string();
    if text.is_empty() {
        return Err(ClientError::Closed(path));
    }
    Ok(text)
}
