//! The HTTP front end: a web page, a JSON API and the core of WLED's JSON
//! API, served by one thread of its own, off unless `--http ADDR:PORT`.
//!
//! - [`request`] parses request heads, bodies and query strings (pure).
//! - [`server`] is the bounded non-blocking server: connections, time-outs,
//!   the live preview stream.
//! - [`routes`] answers requests: the page, `/api/*`, the access rules.
//! - [`wled`] is the WLED JSON subset (`/json/*`, `/presets.json`).
//! - [`thumb`] renders and caches array thumbnails.
//!
//! The server talks to the player only through a [`Backend`], so it knows
//! nothing of the frame loop: every action is one control line, the same
//! language as the Unix socket.
//!
//! Access: with a token, every request that changes something needs
//! `Authorization: Bearer TOKEN` (reads too with `token_read`; the WLED
//! endpoints are exempt with `wled_open`). Changes are POST only and are
//! refused when they carry an `Origin` (or `Sec-Fetch-Site`) from another
//! site, whatever their content type. No response ever carries
//! `Access-Control-Allow-*`, so no page elsewhere can read the answers.

pub mod context;
pub mod request;
pub mod routes;
pub mod server;
pub mod thumb;
pub mod wled;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use server::{start, HttpServer};

/// What the HTTP server needs from the player. Called from the HTTP thread
/// only; each call must be short (no waiting on the frame loop), since the
/// server serves every client from that one thread.
pub trait Backend: Send + Sync + 'static {
    /// Run one control line exactly as the Unix socket takes it
    /// (`play wave_17`, `play #3`, `brightness 0.5`, `next`, `stop`, ...):
    /// `Ok(reply line)` (e.g. `ok`) or `Err(message)` without the
    /// `error: ` prefix.
    fn command(&self, line: &str) -> Result<String, String>;
    /// The same object as `rowplay ctl status --json`. Read here: `state`
    /// ("playing", "paused", "stopped", "finished"), `index` (or null),
    /// `array`, `brightness` (0..1) and `fps`.
    fn status(&self) -> serde_json::Value;
    /// The library the player is on now.
    fn library(&self) -> Arc<crate::library::Library>;
    /// Copy the last frame shown (RGB, 3 bytes per LED, after brightness)
    /// into `dst` (cleared first) and return its frame counter, or `None`
    /// when nothing has been shown yet.
    fn last_frame(&self, dst: &mut Vec<u8>) -> Option<u64>;
    /// The player's default frame rate (`--fps`, config `fps`): the rate of
    /// an array without one of its own, shown as its `fps` in
    /// `/api/arrays`. `None` (the default) when the backend does not know
    /// it; such arrays then show `null`.
    fn default_fps(&self) -> Option<f64> {
        None
    }
}

/// Time limits per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From a request's first byte (or the connection's start) to its
    /// complete head: a total, so a client sending a byte a second is
    /// dropped all the same.
    pub head: Duration,
    /// From a request's first byte to its complete body.
    pub body: Duration,
    /// Between requests on a kept-alive connection.
    pub idle: Duration,
    /// Without any progress while a response waits to be written.
    pub write: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            head: Duration::from_secs(5),
            body: Duration::from_secs(10),
            idle: Duration::from_secs(15),
            write: Duration::from_secs(10),
        }
    }
}

/// Default for [`HttpSettings::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
/// Most presets `/presets.json` lists (WLED's own limit).
pub const MAX_PRESETS: usize = 250;

/// Resolved settings (command line over config over defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct HttpSettings {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Token for changes (and reads with `token_read`).
    pub token: Option<String>,
    /// Reads need the token too.
    pub token_read: bool,
    /// The WLED endpoints need no token.
    pub wled_open: bool,
    /// Array names offered as WLED presets, in order (empty: the first 250).
    pub wled_presets: Vec<String>,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Per-connection time limits.
    pub timeouts: Timeouts,
}

impl HttpSettings {
    /// Defaults for `listen`: no token, 16 connections.
    pub fn new(listen: SocketAddr) -> HttpSettings {
        HttpSettings {
            listen,
            token: None,
            token_read: false,
            wled_open: false,
            wled_presets: Vec::new(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            timeouts: Timeouts::default(),
        }
    }
}

/// Why the HTTP server could not start.
#[derive(Debug)]
pub enum HttpError {
    /// Binding the listen address failed.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The token file cannot be read.
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The token file holds no token.
    TokenFileEmpty(PathBuf),
    /// The token file can be read by every user.
    TokenFileWorldReadable(PathBuf),
    /// The server thread could not be started.
    Thread(io::Error),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Bind { addr, source }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                write!(
                    f,
                    "http: cannot listen on {addr}: {source} (ports below 1024 need CAP_NET_BIND_SERVICE)"
                )
            }
            HttpError::Bind { addr, source } => {
                write!(f, "http: cannot listen on {addr}: {source}")
            }
            HttpError::TokenFile { path, source } => {
                write!(
                    f,
                    "{}: cannot read the http token: {source}",
                    path.display()
                )
            }
            HttpError::TokenFileEmpty(p) => {
                write!(f, "{}: the http token file is empty", p.display())
            }
            HttpError::TokenFileWorldReadable(p) => write!(
                f,
                "{}: the http token file is readable by every user; chmod 600 it",
                p.display()
            ),
            HttpError::Thread(e) => write!(f, "http: cannot start the server thread: {e}"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Read a token from a file (`--http-token-file`): its first line, trimmed.
/// A file every user may read is refused, since the token would be no secret.
pub fn read_token_file(path: &Path) -> Result<String, HttpError> {
    let err = |source| HttpError::TokenFile {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(HttpError::TokenFileWorldReadable(path.to_path_buf()));
    }
    let text = std::fs::read_to_string(path).map_err(err)?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(HttpError::TokenFileEmpty(path.to_path_buf()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_rules() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "  s3cret \nsecond line\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&p).unwrap(), "s3cret");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(HttpError::TokenFileWorldReadable(_))
        ));
        std::fs::write(&p, "\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_token_file(&p),
            Err(HttpError::TokenFileEmpty(_))
        ));
        assert!(matches!(
            read_token_file(&dir.path().join("none")),
            Err(HttpError::TokenFile { .. })
        ));
    }
}
