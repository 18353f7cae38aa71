//! Control: the socket's line protocol, the socket server, `rowplay ctl`,
//! signals and the systemd watchdog.
//!
//! Protocol: one command per line (at most 1 KiB), one reply line each:
//! `ok`, `error: ...`, or one JSON object (`status`, `list`).
//!
//! ```text
//! play NAME        play array NAME from row 0 (also when already playing)
//! play #INDEX      the same, by index
//! next | prev      next / previous playlist entry (or array)
//! pause | resume   hold the current row / continue
//! stop             all LEDs off, keep running (resume or play to continue)
//! brightness X     0..1; `+X` / `-X` change it relatively
//! list             JSON: {"arrays": [names in index order]}
//! status           JSON: position, counters, latency
//! reload           re-open the pack (after it was replaced by `rowplay pack`)
//! ```
//!
//! The server thread never blocks on a client: sockets are non-blocking, a
//! client's input is not read while it has a reply pending (so a client
//! that never reads costs one reply of memory), lines over 1 KiB are
//! answered with an error and discarded, and when all client places are
//! taken the least recently active client is dropped to make room.

use crate::library::{Library, OpenOptions};
use crate::loader::Shared as LoaderShared;
use crate::player::{Bundle, Command, CommandQueue, Links, PlaylistItem, RetiredQueue};
use crate::stats::{state_name, Stats};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest command line, in bytes.
pub const MAX_LINE: usize = 1024;
/// Clients served at once; a new one beyond this replaces the least
/// recently active.
pub const MAX_CLIENTS: usize = 32;
/// How often the server wakes without traffic (signals, watchdog, fds).
const TICK: Duration = Duration::from_millis(100);

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `play NAME`.
    PlayName(String),
    /// `play #INDEX`.
    PlayIndex(u32),
    /// `next`.
    Next,
    /// `prev`.
    Prev,
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `stop`.
    Stop,
    /// `brightness X`.
    SetBrightness(f32),
    /// `brightness +X` / `-X`.
    AddBrightness(f32),
    /// `list`.
    List,
    /// `status`.
    Status,
    /// `reload`.
    Reload,
    /// `step N`: grant N frames to a `--clock step` player (tests).
    Step(u64),
}

/// Parse one line (without its newline). Never panics on any bytes.
pub fn parse_line(line: &[u8]) -> Result<Request, String> {
    let line = std::str::from_utf8(line).map_err(|_| "command is not UTF-8 text".to_string())?;
    let line = line.trim_end_matches('\r').trim();
    let (word, rest) = match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    };
    let no_arg = |r: Request| {
        if rest.is_empty() {
            Ok(r)
        } else {
            Err(format!("{word} takes no argument"))
        }
    };
    match word {
        "play" if rest.is_empty() => Err("play needs an array name or #INDEX".into()),
        "play" => match rest.strip_prefix('#') {
            Some(n) => n
                .parse()
                .map(Request::PlayIndex)
                .map_err(|_| format!("bad index {n:?}")),
            None => Ok(Request::PlayName(rest.to_string())),
        },
        "next" => no_arg(Request::Next),
        "prev" => no_arg(Request::Prev),
        "pause" => no_arg(Request::Pause),
        "resume" => no_arg(Request::Resume),
        "stop" => no_arg(Request::Stop),
        "list" => no_arg(Request::List),
        "status" => no_arg(Request::Status),
        "reload" => no_arg(Request::Reload),
        "brightness" => {
            let (rel, num) = match rest.as_bytes().first() {
                Some(b'+') | Some(b'-') => (true, rest),
                _ => (false, rest),
            };
            let x: f32 = num
                .parse()
                .ok()
                .filter(|x: &f32| x.is_finite())
                .ok_or_else(|| format!("bad brightness {rest:?}: use 0..1, +X or -X"))?;
            if rel {
                Ok(Request::AddBrightness(x))
            } else if (0.0..=1.0).contains(&x) {
                Ok(Request::SetBrightness(x))
            } else {
                Err(format!("brightness {x} outside 0..1"))
            }
        }
        "step" => rest
            .parse()
            .map(Request::Step)
            .map_err(|_| format!("bad step count {rest:?}")),
        "" => Err("empty command".into()),
        other => Err(format!(
            "unknown command {:?} (play, next, prev, pause, resume, stop, brightness, list, status, reload)",
            truncate(other, 40)
        )),
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A playlist entry by name, as the config or `--playlist` gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaylistSpec {
    /// Array name.
    pub name: String,
    /// Times through.
    pub repeat: u32,
    /// Or for this long.
    pub seconds: Option<f64>,
}

/// Resolve playlist names against a library.
pub fn resolve_playlist(
    lib: &Library,
    spec: &[PlaylistSpec],
    fps: u32,
) -> Result<Vec<PlaylistItem>, String> {
    spec.iter()
        .map(|s| {
            let array = lib.find(&s.name).ok_or_else(|| {
                format!(
                    "playlist array {:?} is not in {} (see `rowplay inspect`)",
                    s.name,
                    lib.path().display()
                )
            })?;
            Ok(PlaylistItem {
                array,
                repeat: s.repeat.max(1),
                frames: s.seconds.map(|x| (x * fps as f64).round().max(1.0) as u64),
            })
        })
        .collect()
}

/// Everything the control thread needs.
pub struct Control {
    /// Commands to the player.
    pub cmds: Arc<CommandQueue>,
    /// Bundles the player replaced, dropped here.
    pub retired: Arc<RetiredQueue>,
    /// Player counters.
    pub stats: Arc<Stats>,
    /// The library the player is on (shared with the terminal preview).
    pub lib: Arc<Mutex<Arc<Library>>>,
    /// The loader's counters for that library.
    pub loader: Arc<Mutex<Arc<LoaderShared>>>,
    /// Playlist by name, re-resolved on reload.
    pub playlist: Vec<PlaylistSpec>,
    /// Frames per second.
    pub fps: u32,
    /// Options to reopen the pack with.
    pub open: OpenOptions,
    /// Set by SIGINT/SIGTERM (and read by the player).
    pub stop: Arc<AtomicBool>,
    /// Set by SIGHUP.
    pub hup: Arc<AtomicBool>,
    /// Grants frames to a `--clock step` player.
    pub step: Option<crate::clock::StepClock>,
    /// Highest number of open fds seen.
    pub max_fds: Arc<AtomicU64>,
    /// Locked bytes at start.
    pub locked_bytes: u64,
    /// Reload in flight: the old bundle has not come back yet.
    reload_pending: bool,
    last_error: Option<String>,
}

impl Control {
    /// Put the parts together.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        links: &Links,
        lib: Arc<Library>,
        loader: Arc<LoaderShared>,
        playlist: Vec<PlaylistSpec>,
        fps: u32,
        open: OpenOptions,
        hup: Arc<AtomicBool>,
        step: Option<crate::clock::StepClock>,
    ) -> Control {
        Control {
            cmds: links.cmds.clone(),
            retired: links.retired.clone(),
            stats: links.stats.clone(),
            lib: Arc::new(Mutex::new(lib)),
            loader: Arc::new(Mutex::new(loader)),
            playlist,
            fps,
            open,
            stop: links.stop.clone(),
            hup,
            step,
            max_fds: Arc::new(AtomicU64::new(0)),
            locked_bytes: 0,
            reload_pending: false,
            last_error: None,
        }
    }

    fn current_lib(&self) -> Arc<Library> {
        self.lib
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn push(&self, c: Command) -> String {
        match self.cmds.enqueue(c) {
            Ok(()) => "ok".into(),
            Err(_) => "error: busy, too many commands queued; try again".into(),
        }
    }

    /// Answer one request with one line (no newline).
    pub fn handle(&mut self, req: Request) -> String {
        match req {
            Request::PlayName(name) => match self.current_lib().find(&name) {
                Some(i) => self.push(Command::Play(i)),
                None => format!("error: no array named {:?}", truncate(&name, 200)),
            },
            Request::PlayIndex(i) => {
                let n = self.current_lib().len();
                if i < n {
                    self.push(Command::Play(i))
                } else {
                    format!("error: index {i} out of range (0..{n})")
                }
            }
            Request::Next => self.push(Command::Next),
            Request::Prev => self.push(Command::Prev),
            Request::Pause => self.push(Command::Pause),
            Request::Resume => self.push(Command::Resume),
            Request::Stop => self.push(Command::Stop),
            Request::SetBrightness(x) => self.push(Command::SetBrightness(x)),
            Request::AddBrightness(x) => self.push(Command::AddBrightness(x)),
            Request::List => {
                let lib = self.current_lib();
                let names: Vec<&str> = (0..lib.len()).map(|i| lib.name(i)).collect();
                serde_json::json!({ "arrays": names }).to_string()
            }
            Request::Status => self.status().to_string(),
            Request::Reload => match self.reload() {
                Ok(()) => "ok".into(),
                Err(e) => format!("error: {e}"),
            },
            Request::Step(n) => match &self.step {
                Some(s) => {
                    s.grant(n);
                    "ok".into()
                }
                None => "error: step works only with --clock step".into(),
            },
        }
    }

    /// The `status` object.
    pub fn status(&self) -> serde_json::Value {
        let lib = self.current_lib();
        let loader = self
            .loader
            .lock()
            .map(|l| l.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let s = &self.stats;
        let idx = s.array.load(Relaxed);
        let name = if idx == crate::output::ALL_OFF {
            serde_json::Value::Null
        } else {
            lib.info(idx)
                .map(|i| i.name.into())
                .unwrap_or(serde_json::Value::Null)
        };
        let mut v = s.counters_json();
        let extra = serde_json::json!({
            "state": state_name(s.state.load(Relaxed)),
            "array": name,
            "index": if idx == crate::output::ALL_OFF { serde_json::Value::Null } else { idx.into() },
            "row": s.row.load(Relaxed),
            "read_errors": loader.stats.read_errors.load(Relaxed),
            "crc_errors": loader.stats.crc_errors.load(Relaxed),
            "last_error": self.last_error,
            "brightness": s.brightness_milli.load(Relaxed) as f64 / 1000.0,
            "fps": self.fps,
            "arrays": lib.len(),
            "pack": lib.path().display().to_string(),
            "locked_bytes": self.locked_bytes,
        });
        if let serde_json::Value::Object(extra) = extra {
            v.extend(extra);
        }
        serde_json::Value::Object(v)
    }

    /// Re-open the pack and hand the new bundle to the player.
    pub fn reload(&mut self) -> Result<(), String> {
        self.collect_retired();
        if self.reload_pending {
            return Err("a reload is already in progress".into());
        }
        let path = self.current_lib().path().to_path_buf();
        let result = (|| {
            let lib = Arc::new(Library::open(&path, &self.open).map_err(|e| e.to_string())?);
            let playlist = resolve_playlist(&lib, &self.playlist, self.fps)?;
            let bundle = Bundle::new(lib.clone(), playlist).map_err(|e| e.to_string())?;
            let loader = bundle.loader.shared().clone();
            match self.cmds.enqueue(Command::Swap(Box::new(bundle))) {
                Ok(()) => {
                    *self.lib.lock().unwrap_or_else(|e| e.into_inner()) = lib;
                    *self.loader.lock().unwrap_or_else(|e| e.into_inner()) = loader;
                    self.reload_pending = true;
                    Ok(())
                }
                Err(_) => Err("busy, too many commands queued; try again".to_string()),
            }
        })();
        if let Err(e) = &result {
            self.last_error = Some(format!("reload: {e}"));
        }
        result
    }

    /// Drop bundles the player has let go of (outside the frame loop).
    fn collect_retired(&mut self) {
        while let Some(old) = self.retired.dequeue() {
            drop(old);
            self.reload_pending = false;
        }
    }

    /// Work done on every wake-up: signals, retired bundles, fd sampling.
    pub fn housekeeping(&mut self) {
        self.collect_retired();
        if self.hup.swap(false, SeqCst) {
            match self.reload() {
                Ok(()) => eprintln!("rowplay: SIGHUP: reloaded"),
                Err(e) => eprintln!("rowplay: SIGHUP: reload failed: {e}"),
            }
        }
        self.max_fds.fetch_max(crate::rt::open_fds(), Relaxed);
    }
}

/// Push a command from a button (or any source without a reply channel):
/// the socket's language, minus the commands that only make sense with a
/// reply (`list`, `status`) or with the control thread (`reload`, `step`).
pub fn submit_simple(line: &str, cmds: &CommandQueue, lib: &Library) -> Result<(), String> {
    let c = match parse_line(line.as_bytes())? {
        Request::PlayName(n) => Command::Play(
            lib.find(&n)
                .ok_or_else(|| format!("no array named {n:?}"))?,
        ),
        Request::PlayIndex(i) if i < lib.len() => Command::Play(i),
        Request::PlayIndex(i) => return Err(format!("index {i} out of range")),
        Request::Next => Command::Next,
        Request::Prev => Command::Prev,
        Request::Pause => Command::Pause,
        Request::Resume => Command::Resume,
        Request::Stop => Command::Stop,
        Request::SetBrightness(x) => Command::SetBrightness(x),
        Request::AddBrightness(x) => Command::AddBrightness(x),
        other => return Err(format!("{other:?} is not available from a button")),
    };
    cmds.enqueue(c)
        .map_err(|_| "busy, too many commands queued".to_string())
}

/// Where the socket goes: `$RUNTIME_DIRECTORY/rowplay.sock` (systemd),
/// `/run/rowplay/rowplay.sock`, `$XDG_RUNTIME_DIR/rowplay.sock`, in that
/// order; the first whose folder exists and is writable. `ctl` looks in
/// the same order for one that exists.
pub fn default_socket_candidates() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd may list several folders separated by ':'.
        if let Some(first) = d.to_string_lossy().split(':').next() {
            v.push(Path::new(first).join("rowplay.sock"));
        }
    }
    v.push(PathBuf::from("/run/rowplay/rowplay.sock"));
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        v.push(Path::new(&d).join("rowplay.sock"));
    }
    v
}

fn dir_writable(p: &Path) -> bool {
    let Some(dir) = p.parent() else { return false };
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) == 0 }
}

/// Why the socket could not be set up.
#[derive(Debug)]
pub enum SocketError {
    /// Another player answers on it.
    InUse(PathBuf),
    /// Creating it failed.
    Io(PathBuf, io::Error),
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
    let l = UnixListener::bind(path).map_err(|e| SocketError::Io(path.to_path_buf(), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| SocketError::Io(path.to_path_buf(), e))?;
    l.set_nonblocking(true)
        .map_err(|e| SocketError::Io(path.to_path_buf(), e))?;
    Ok(l)
}

/// Bind the first usable default location, or `None` (with the reason for
/// the warning) when none is.
pub fn bind_default() -> Result<(UnixListener, PathBuf), String> {
    let mut why = Vec::new();
    for p in default_socket_candidates() {
        if !dir_writable(&p) {
            continue;
        }
        match bind(&p) {
            Ok(l) => return Ok((l, p)),
            Err(e @ SocketError::InUse(_)) => return Err(e.to_string()),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(if why.is_empty() {
        "no usable socket folder ($RUNTIME_DIRECTORY, /run/rowplay, $XDG_RUNTIME_DIR); use --socket PATH".into()
    } else {
        why.join("; ")
    })
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    discarding: bool,
    last_active: Instant,
    closed: bool,
}

/// Serve the socket until `stop` is set. Also does housekeeping and the
/// systemd watchdog.
pub fn serve(listener: Option<UnixListener>, ctl: &mut Control) {
    let mut clients: Vec<Client> = Vec::new();
    let mut notify = Notify::from_env();
    notify.send("READY=1");
    let mut last_frames = u64::MAX;
    let mut last_ping = Instant::now();
    while !ctl.stop.load(SeqCst) {
        // poll: the listener, then each client for input (if no reply is
        // pending) or output (if one is).
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(clients.len() + 1);
        if let Some(l) = &listener {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &clients {
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if c.out.is_empty() {
                    libc::POLLIN
                } else {
                    libc::POLLOUT
                },
                revents: 0,
            });
        }
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                TICK.as_millis() as i32,
            )
        };

        if let Some(l) = &listener {
            // Accept a bounded number per wake-up.
            for _ in 0..MAX_CLIENTS {
                match l.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(true);
                        if clients.len() >= MAX_CLIENTS {
                            // Drop the least recently active client.
                            if let Some(i) =
                                (0..clients.len()).min_by_key(|&i| clients[i].last_active)
                            {
                                clients.swap_remove(i);
                            }
                        }
                        clients.push(Client {
                            stream,
                            inbuf: Vec::with_capacity(256),
                            out: VecDeque::new(),
                            discarding: false,
                            last_active: Instant::now(),
                            closed: false,
                        });
                    }
                    Err(_) => break,
                }
            }
        }
        for c in clients.iter_mut() {
            serve_client(c, ctl);
        }
        clients.retain(|c| !c.closed);
        ctl.housekeeping();

        // Watchdog: ping only while the player makes progress, so a hung
        // frame loop gets the service restarted.
        if let Some(interval) = notify.watchdog {
            let frames = ctl.stats.frames.load(Relaxed);
            if last_ping.elapsed() >= interval / 2 && frames != last_frames {
                notify.send("WATCHDOG=1");
                last_frames = frames;
                last_ping = Instant::now();
            }
        }
    }
    notify.send("STOPPING=1");
}

fn serve_client(c: &mut Client, ctl: &mut Control) {
    // Flush a pending reply first; read nothing new until it is gone.
    while !c.out.is_empty() {
        let (a, _) = c.out.as_slices();
        match c.stream.write(a) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
                c.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.closed = true;
                return;
            }
        }
    }
    let mut buf = [0u8; 2048];
    loop {
        // Handle complete lines already buffered.
        while let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
            if c.discarding {
                c.discarding = false;
                continue;
            }
            let reply = match parse_line(&line[..line.len() - 1]) {
                Ok(req) => ctl.handle(req),
                Err(e) => format!("error: {e}"),
            };
            c.out.extend(reply.as_bytes());
            c.out.push_back(b'\n');
            // One reply at a time: further lines wait until it is read, so
            // a client that never reads holds one reply, and a flood from
            // one client is served one line per wake-up.
            return;
        }
        if c.inbuf.len() > MAX_LINE {
            c.inbuf.clear();
            if !c.discarding {
                c.discarding = true;
                c.out
                    .extend(format!("error: line longer than {MAX_LINE} bytes\n").as_bytes());
                return;
            }
        }
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                c.inbuf.extend_from_slice(&buf[..n]);
                c.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return, // WouldBlock, or an error that the next read reports again
        }
    }
}

/// systemd notification socket (`$NOTIFY_SOCKET`), if any.
struct Notify {
    sock: Option<(std::os::unix::net::UnixDatagram, PathBuf)>,
    watchdog: Option<Duration>,
}

impl Notify {
    fn from_env() -> Notify {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = PathBuf::from(p);
            // Abstract sockets ('@...') are not supported by std; systemd
            // uses a path under /run for system services.
            if p.as_os_str().as_encoded_bytes().first() == Some(&b'@') {
                return None;
            }
            std::os::unix::net::UnixDatagram::unbound()
                .ok()
                .map(|s| (s, p))
        });
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_micros);
        Notify { sock, watchdog }
    }
    fn send(&mut self, msg: &str) {
        if let Some((s, p)) = &self.sock {
            let _ = s.send_to(msg.as_bytes(), p);
        }
    }
}

/// Send one command line to a running player and return its reply line.
pub fn ctl(socket: Option<&Path>, line: &str) -> Result<String, String> {
    let candidates = match socket {
        Some(p) => vec![p.to_path_buf()],
        None => default_socket_candidates()
            .into_iter()
            .filter(|p| p.exists())
            .collect(),
    };
    let Some(path) = candidates.first() else {
        return Err("no running player found (no socket at $RUNTIME_DIRECTORY/rowplay.sock, /run/rowplay/rowplay.sock or $XDG_RUNTIME_DIR/rowplay.sock); use --socket PATH".into());
    };
    let mut s = UnixStream::connect(path)
        .map_err(|e| format!("{}: {e} (is `rowplay play` running?)", path.display()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(format!("{}\n", line.trim()).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
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
            Err(e) => return Err(format!("{}: no reply: {e}", path.display())),
        }
    }
    let text = String::from_utf8_lossy(&reply).trim_end().to_string();
    if text.is_empty() {
        return Err(format!(
            "{}: the player closed the connection",
            path.display()
        ));
    }
    Ok(text)
}

/// Install SIGINT/SIGTERM (set `stop`) and SIGHUP (set `hup`) handlers.
pub fn install_signals(stop: Arc<AtomicBool>, hup: Arc<AtomicBool>) {
    // The handlers only store to atomics, which is async-signal-safe.
    static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    static HUP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    let _ = STOP.set(stop);
    let _ = HUP.set(hup);
    extern "C" fn on_stop(_: libc::c_int) {
        if let Some(s) = STOP.get() {
            s.store(true, SeqCst);
        }
    }
    extern "C" fn on_hup(_: libc::c_int) {
        if let Some(s) = HUP.get() {
            s.store(true, SeqCst);
        }
    }
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let stop_action = SigAction::new(
        SigHandler::Handler(on_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    let hup_action = SigAction::new(
        SigHandler::Handler(on_hup),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handlers are async-signal-safe (atomic stores only).
    unsafe {
        let _ = sigaction(Signal::SIGINT, &stop_action);
        let _ = sigaction(Signal::SIGTERM, &stop_action);
        let _ = sigaction(Signal::SIGHUP, &hup_action);
        // A closed ctl connection must not kill the player.
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let p = |s: &str| parse_line(s.as_bytes());
        assert_eq!(p("play wave_17"), Ok(Request::PlayName("wave_17".into())));
        assert_eq!(p("play  a b \r"), Ok(Request::PlayName("a b".into())));
        assert_eq!(p("play #12"), Ok(Request::PlayIndex(12)));
        assert_eq!(p("next"), Ok(Request::Next));
        assert_eq!(p("prev"), Ok(Request::Prev));
        assert_eq!(p("pause"), Ok(Request::Pause));
        assert_eq!(p("resume"), Ok(Request::Resume));
        assert_eq!(p("stop"), Ok(Request::Stop));
        assert_eq!(p("list"), Ok(Request::List));
        assert_eq!(p("status"), Ok(Request::Status));
        assert_eq!(p("reload"), Ok(Request::Reload));
        assert_eq!(p("brightness 0.5"), Ok(Request::SetBrightness(0.5)));
        assert_eq!(p("brightness +0.1"), Ok(Request::AddBrightness(0.1)));
        assert_eq!(p("brightness -0.25"), Ok(Request::AddBrightness(-0.25)));
        assert_eq!(p("step 3"), Ok(Request::Step(3)));
    }

    #[test]
    fn bad_lines_get_errors() {
        let p = |s: &[u8]| parse_line(s).unwrap_err();
        assert_eq!(p(b"play"), "play needs an array name or #INDEX");
        assert_eq!(p(b"play #x"), "bad index \"x\"");
        assert_eq!(p(b"next 3"), "next takes no argument");
        assert_eq!(p(b"brightness 2"), "brightness 2 outside 0..1");
        assert_eq!(
            p(b"brightness NaN"),
            "bad brightness \"NaN\": use 0..1, +X or -X"
        );
        assert_eq!(p(b""), "empty command");
        assert_eq!(p(&[0xff, 0xfe]), "command is not UTF-8 text");
        assert!(p(b"dance").starts_with("unknown command \"dance\""));
    }
}
