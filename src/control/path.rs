//! Door 1: the one command path.
//!
//! Every front end (the Unix socket, GPIO buttons, signals, and later the
//! HTTP API and the sync listener) hands a parsed [`Request`] to
//! [`CommandPath::handle`]: it validates the request against the library
//! the player is on, turns it into the player's [`Command`] and pushes it
//! on the bounded lock-free queue. Front ends never build commands
//! themselves. The path is `Send + Sync`: several threads may call it at
//! once. Its locks are held for a few instructions and never by the frame
//! loop, which only sees the queue.
//!
//! Switches (`play`, `next`, `prev`) are numbered as they are accepted
//! (`switch_seq`); the player publishes the number of the last switch whose
//! row 0 it has handed out (`shown_seq`), so `status` can say what is
//! pending and `wait` can answer when the switch is on the strip.

use super::protocol::{truncate, Request, Switch};
use crate::clock::StepClock;
use crate::library::{Library, LibraryError, OpenOptions};
use crate::loader::Shared as LoaderShared;
use crate::output::ALL_OFF;
use crate::player::{Bundle, Command, Links};
use crate::playlist::{self, PlaylistSpec};
use crate::stats::state_name;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex, MutexGuard};

/// Frames a `wait` waits for row 0 of its target before it gives up.
/// Frames, not seconds, so that `--clock step` and the emulated ARM lane
/// behave as a real player does.
pub const WAIT_FRAMES: u64 = 50;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these values half-written (each is
    // replaced whole), so a poisoned lock is still good to use.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The library the player is on now, shared by everyone who names arrays
/// (status, the terminal preview, HTTP). Replaced whole on reload.
#[derive(Debug)]
pub struct CurrentLibrary(Mutex<Arc<Library>>);

impl CurrentLibrary {
    /// Start with `lib`.
    pub fn new(lib: Arc<Library>) -> CurrentLibrary {
        CurrentLibrary(Mutex::new(lib))
    }
    /// The library now.
    pub fn get(&self) -> Arc<Library> {
        lock(&self.0).clone()
    }
    fn set(&self, lib: Arc<Library>) {
        *lock(&self.0) = lib;
    }
}

impl crate::output::ArrayNames for CurrentLibrary {
    fn with_name(&self, array: u32, f: &mut dyn FnMut(&str)) {
        let lib = self.get();
        f(lib.info(array).map(|i| i.name).unwrap_or("?"));
    }
}

/// What a request answers.
#[derive(Debug)]
pub enum Reply {
    /// Done (or queued for the next frame).
    Ok,
    /// A JSON object (`status`, `list`).
    Json(serde_json::Value),
    /// Queued; answer when [`CommandPath::poll_wait`] says so.
    Wait(Waiter),
}

/// A `wait` in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiter {
    seq: u64,
    since_frame: u64,
    target: String,
}

/// A request the path refused.
#[derive(Clone, Debug, PartialEq)]
pub enum CommandError {
    /// `play NAME` with a name the library does not have.
    NoSuchArray(String),
    /// `play #INDEX` past the end.
    IndexOutOfRange {
        /// The index asked for.
        index: u32,
        /// Arrays in the library.
        len: u32,
    },
    /// The queue to the player is full.
    Busy,
    /// `step` without `--clock step`.
    NotStepping,
    /// A reload is still waiting for the player to let go of the old pack.
    ReloadInProgress,
    /// The pack could not be re-opened.
    Reload(String),
    /// `wait` gave up.
    NotShown {
        /// What was waited for.
        target: String,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NoSuchArray(n) => write!(f, "no array named {:?}", truncate(n, 200)),
            CommandError::IndexOutOfRange { index, len } => {
                write!(f, "index {index} out of range (0..{len})")
            }
            CommandError::Busy => write!(f, "busy, too many commands queued; try again"),
            CommandError::NotStepping => write!(f, "step works only with --clock step"),
            CommandError::ReloadInProgress => write!(f, "a reload is already in progress"),
            CommandError::Reload(e) => write!(f, "{e}"),
            CommandError::NotShown { target } => write!(
                f,
                "{target} was accepted but its row 0 was not shown within {WAIT_FRAMES} frames"
            ),
        }
    }
}

impl std::error::Error for CommandError {}

/// Everything a reload needs, and its state.
struct ReloadState {
    playlist: Vec<PlaylistSpec>,
    open: OpenOptions,
    pending: bool,
    last_error: Option<String>,
}

/// The switches accepted so far, and the label of the latest.
struct Switches {
    seq: u64,
    label: String,
}

/// Adds fields to `status` (live input, sync). Called outside the loop.
pub type StatusField = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Door 1. See the module docs.
pub struct CommandPath {
    links: Links,
    lib: Arc<CurrentLibrary>,
    loader: Mutex<Arc<LoaderShared>>,
    reload: Mutex<ReloadState>,
    switches: Mutex<Switches>,
    step: Option<StepClock>,
    fields: Mutex<Vec<(&'static str, StatusField)>>,
    fps: u32,
    /// Bytes locked at start (reported by `status`).
    pub locked_bytes: AtomicU64,
    /// Highest number of open fds seen (sampled by the control thread).
    pub max_fds: AtomicU64,
    /// Set when a reload was asked for by a signal (SIGHUP).
    pub hup: Arc<AtomicBool>,
}

impl CommandPath {
    /// The default frame rate (`--fps`, config `fps`): what an array
    /// without a rate of its own plays at.
    pub fn default_fps(&self) -> u32 {
        self.fps
    }

    /// A path to the player behind `links`, which plays `lib` with the
    /// loader `loader`. `playlist` and `open` are kept to re-open the pack.
    pub fn new(
        links: &Links,
        lib: Arc<Library>,
        loader: Arc<LoaderShared>,
        playlist: Vec<PlaylistSpec>,
        fps: u32,
        open: OpenOptions,
        step: Option<StepClock>,
    ) -> CommandPath {
        CommandPath {
            links: links.clone(),
            lib: Arc::new(CurrentLibrary::new(lib)),
            loader: Mutex::new(loader),
            reload: Mutex::new(ReloadState {
                playlist,
                open,
                pending: false,
                last_error: None,
            }),
            switches: Mutex::new(Switches {
                seq: 0,
                label: String::new(),
            }),
            step,
            fields: Mutex::new(Vec::new()),
            fps,
            locked_bytes: AtomicU64::new(0),
            max_fds: AtomicU64::new(0),
            hup: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The library the player is on.
    pub fn library(&self) -> Arc<Library> {
        self.lib.get()
    }

    /// The shared handle on that library (for outputs that name arrays).
    pub fn current(&self) -> Arc<CurrentLibrary> {
        self.lib.clone()
    }

    /// Whether the player has been told to stop.
    pub fn stopping(&self) -> bool {
        self.links.stop.load(SeqCst)
    }

    /// The waker commands use (set when the player waits on a futex);
    /// other front ends that hand the player work wake it with it too.
    pub fn wake_slot(&self) -> Arc<std::sync::OnceLock<crate::handoff::Waker>> {
        self.links.wake.clone()
    }

    /// The player's counters.
    pub fn stats(&self) -> &crate::stats::Stats {
        &self.links.stats
    }

    /// Add a field to `status` (e.g. `live`, `multisync`).
    pub fn add_status_field(&self, name: &'static str, f: StatusField) {
        lock(&self.fields).push((name, f));
    }

    fn push(&self, c: Command) -> Result<(), CommandError> {
        self.links.cmds.enqueue(c).map_err(|_| CommandError::Busy)?;
        if let Some(w) = self.links.wake.get() {
            w.wake();
        }
        Ok(())
    }

    /// Validate a switch against the library and push it, numbered.
    fn switch(&self, s: &Switch) -> Result<Waiter, CommandError> {
        let lib = self.lib.get();
        let (cmd, label) = match s {
            Switch::PlayName(name) => match lib.find(name) {
                Some(i) => (Command::Play(i), name.clone()),
                None => return Err(CommandError::NoSuchArray(name.clone())),
            },
            Switch::PlayIndex(i) if *i < lib.len() => (Command::Play(*i), lib.name(*i).to_string()),
            Switch::PlayIndex(i) => {
                return Err(CommandError::IndexOutOfRange {
                    index: *i,
                    len: lib.len(),
                })
            }
            Switch::Next => (Command::Next, "next".to_string()),
            Switch::Prev => (Command::Prev, "prev".to_string()),
        };
        // Numbered and queued under one lock, so that the numbers follow the
        // queue's order whichever thread pushes.
        let mut sw = lock(&self.switches);
        self.push(cmd)?;
        sw.seq += 1;
        sw.label = label.clone();
        Ok(Waiter {
            seq: sw.seq,
            since_frame: self.links.stats.frames.load(SeqCst),
            target: label,
        })
    }

    /// Answer one request.
    pub fn handle(&self, req: &Request) -> Result<Reply, CommandError> {
        match req {
            Request::Switch(s) => self.switch(s).map(|_| Reply::Ok),
            Request::Wait(s) => self.switch(s).map(Reply::Wait),
            Request::Pause => self.push(Command::Pause).map(|_| Reply::Ok),
            Request::Resume => self.push(Command::Resume).map(|_| Reply::Ok),
            Request::Stop => self.push(Command::Stop).map(|_| Reply::Ok),
            Request::SetBrightness(x) => self.push(Command::SetBrightness(*x)).map(|_| Reply::Ok),
            Request::AddBrightness(x) => self.push(Command::AddBrightness(*x)).map(|_| Reply::Ok),
            Request::List => {
                let lib = self.lib.get();
                let names: Vec<&str> = (0..lib.len()).map(|i| lib.name(i)).collect();
                Ok(Reply::Json(serde_json::json!({ "arrays": names })))
            }
            Request::Status => Ok(Reply::Json(self.status())),
            Request::Reload => self.reload().map(|_| Reply::Ok),
            Request::Step(n) => match &self.step {
                Some(s) => {
                    s.grant(*n);
                    Ok(Reply::Ok)
                }
                None => Err(CommandError::NotStepping),
            },
        }
    }

    /// Whether a `wait` is over: `None` while row 0 of its target is still
    /// to come, else its answer.
    pub fn poll_wait(&self, w: &Waiter) -> Option<Result<(), CommandError>> {
        let stats = &self.links.stats;
        if stats.shown_seq.load(SeqCst) >= w.seq {
            return Some(Ok(()));
        }
        let frames = stats.frames.load(SeqCst);
        if frames.saturating_sub(w.since_frame) > WAIT_FRAMES || self.stopping() {
            return Some(Err(CommandError::NotShown {
                target: w.target.clone(),
            }));
        }
        None
    }

    /// The `status` object.
    pub fn status(&self) -> serde_json::Value {
        let lib = self.lib.get();
        let loader = lock(&self.loader).clone();
        let s = &self.links.stats;
        let idx = s.array.load(Relaxed);
        let name = if idx == ALL_OFF {
            serde_json::Value::Null
        } else {
            lib.info(idx)
                .map(|i| i.name.into())
                .unwrap_or(serde_json::Value::Null)
        };
        let (switch_seq, label) = {
            let sw = lock(&self.switches);
            (sw.seq, sw.label.clone())
        };
        let shown_seq = s.shown_seq.load(Relaxed);
        let pending = if switch_seq > shown_seq {
            serde_json::Value::from(label)
        } else {
            serde_json::Value::Null
        };
        let last_error = lock(&self.reload).last_error.clone();
        let mut v = s.counters_json();
        let extra = serde_json::json!({
            "state": state_name(s.state.load(Relaxed)),
            "array": name,
            "index": if idx == ALL_OFF { serde_json::Value::Null } else { idx.into() },
            "row": s.row.load(Relaxed),
            "pending": pending,
            "switch_seq": switch_seq,
            "read_errors": loader.stats.read_errors.load(Relaxed),
            "crc_errors": loader.stats.crc_errors.load(Relaxed),
            "loader_read_ns": loader.stats.read_ns.summary(),
            "last_error": last_error,
            "brightness": s.brightness_milli.load(Relaxed) as f64 / 1000.0,
            "fps": match s.period_ns.load(Relaxed) {
                0 => self.fps as f64,
                p => 1e9 / p as f64,
            },
            "arrays": lib.len(),
            "pack": lib.path().display().to_string(),
            "locked_bytes": self.locked_bytes.load(Relaxed),
        });
        if let serde_json::Value::Object(extra) = extra {
            v.extend(extra);
        }
        for (k, f) in lock(&self.fields).iter() {
            v.insert((*k).into(), f());
        }
        serde_json::Value::Object(v)
    }

    /// Re-open the pack and hand the new bundle to the player.
    pub fn reload(&self) -> Result<(), CommandError> {
        self.collect_retired();
        let mut st = lock(&self.reload);
        if st.pending {
            return Err(CommandError::ReloadInProgress);
        }
        let path = self.lib.get().path().to_path_buf();
        let result = (|| {
            let lib =
                Arc::new(Library::open(&path, &st.open).map_err(|e: LibraryError| e.to_string())?);
            let items = playlist::resolve(&lib, &st.playlist).map_err(|e| e.to_string())?;
            let bundle = Bundle::new(lib.clone(), items).map_err(|e| e.to_string())?;
            let loader = bundle.loader.shared().clone();
            match self.links.cmds.enqueue(Command::Swap(Box::new(bundle))) {
                Ok(()) => {
                    self.lib.set(lib);
                    *lock(&self.loader) = loader;
                    Ok(())
                }
                Err(_) => Err(CommandError::Busy.to_string()),
            }
        })();
        match result {
            Ok(()) => {
                st.pending = true;
                Ok(())
            }
            Err(e) => {
                st.last_error = Some(format!("reload: {e}"));
                Err(CommandError::Reload(e))
            }
        }
    }

    /// Drop bundles the player has let go of (outside the frame loop).
    pub fn collect_retired(&self) {
        while let Some(old) = self.links.retired.dequeue() {
            drop(old);
            lock(&self.reload).pending = false;
        }
    }

    /// Work for the control thread's every wake-up: retired bundles, a
    /// reload asked for by SIGHUP, fd sampling.
    pub fn housekeeping(&self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::parse_line;
    use crate::import::{Array, NamedArray};
    use crate::player::Command;

    fn lib(dir: &std::path::Path) -> Arc<Library> {
        let arrays = ["a", "b", "c"].map(|n| NamedArray {
            name: n.into(),
            array: Array {
                rows: 2,
                leds: 1,
                channels: 3,
                data: vec![1; 6],
            },
            period_ns: None,
        });
        let p = dir.join("t.rowpack");
        crate::pack::pack_arrays(arrays.to_vec(), &p, &Default::default()).unwrap();
        Arc::new(Library::open(&p, &Default::default()).unwrap())
    }

    fn path(links: &Links, lib: Arc<Library>) -> CommandPath {
        let bundle = Bundle::new(lib.clone(), Vec::new()).unwrap();
        CommandPath::new(
            links,
            lib,
            bundle.loader.shared().clone(),
            Vec::new(),
            50,
            OpenOptions::default(),
            None,
        )
    }

    fn drain(links: &Links) -> Vec<String> {
        let mut v = Vec::new();
        while let Some(c) = links.cmds.dequeue() {
            v.push(match c {
                Command::Play(i) => format!("play {i}"),
                Command::Next => "next".into(),
                Command::Prev => "prev".into(),
                Command::Pause => "pause".into(),
                Command::Resume => "resume".into(),
                Command::Stop => "stop".into(),
                Command::SetBrightness(x) => format!("set {x}"),
                Command::AddBrightness(x) => format!("add {x}"),
                Command::Swap(_) => "swap".into(),
            });
        }
        v
    }

    #[test]
    fn every_request_maps_to_one_command_or_one_answer() {
        let dir = tempfile::tempdir().unwrap();
        let links = Links::new();
        let p = path(&links, lib(dir.path()));
        let h = |line: &str| p.handle(&parse_line(line.as_bytes()).unwrap());
        for line in [
            "play b",
            "play #2",
            "next",
            "prev",
            "pause",
            "resume",
            "stop",
            "brightness 0.5",
            "brightness -0.25",
        ] {
            assert!(matches!(h(line), Ok(Reply::Ok)), "{line}");
        }
        assert_eq!(
            drain(&links),
            [
                "play 1",
                "play 2",
                "next",
                "prev",
                "pause",
                "resume",
                "stop",
                "set 0.5",
                "add -0.25"
            ]
        );
        assert_eq!(
            h("play nosuch").unwrap_err().to_string(),
            "no array named \"nosuch\""
        );
        assert_eq!(
            h("play #3").unwrap_err(),
            CommandError::IndexOutOfRange { index: 3, len: 3 }
        );
        assert_eq!(h("step 2").unwrap_err(), CommandError::NotStepping);
        match h("list").unwrap() {
            Reply::Json(v) => assert_eq!(v["arrays"], serde_json::json!(["a", "b", "c"])),
            r => panic!("{r:?}"),
        }
        assert!(
            drain(&links).is_empty(),
            "refused and read-only requests queue nothing"
        );
    }

    #[test]
    fn a_full_queue_is_busy_and_numbers_only_what_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let links = Links::new();
        let p = path(&links, lib(dir.path()));
        let req = parse_line(b"next").unwrap();
        let mut ok = 0;
        while p.handle(&req).is_ok() {
            ok += 1;
        }
        assert_eq!(ok, 64);
        assert_eq!(p.handle(&req).unwrap_err(), CommandError::Busy);
        assert_eq!(p.status()["switch_seq"], 64);
    }

    #[test]
    fn a_switch_is_pending_until_the_player_shows_its_row_0() {
        let dir = tempfile::tempdir().unwrap();
        let links = Links::new();
        let p = path(&links, lib(dir.path()));
        assert_eq!(p.status()["pending"], serde_json::Value::Null);
        let w = match p.handle(&parse_line(b"wait play c").unwrap()).unwrap() {
            Reply::Wait(w) => w,
            r => panic!("{r:?}"),
        };
        let st = p.status();
        assert_eq!(st["pending"], "c");
        assert_eq!(st["switch_seq"], 1);
        assert_eq!(st["shown_seq"], 0);
        assert_eq!(p.poll_wait(&w), None);
        // The player handed out row 0 of that switch.
        links.stats.shown_seq.store(1, SeqCst);
        assert_eq!(p.poll_wait(&w), Some(Ok(())));
        assert_eq!(p.status()["pending"], serde_json::Value::Null);
        // A wait that sees 51 frames without its row 0 gives up.
        let w = match p.handle(&parse_line(b"wait next").unwrap()).unwrap() {
            Reply::Wait(w) => w,
            r => panic!("{r:?}"),
        };
        assert_eq!(p.status()["pending"], "next");
        links.stats.frames.fetch_add(WAIT_FRAMES, SeqCst);
        assert_eq!(p.poll_wait(&w), None);
        links.stats.frames.fetch_add(1, SeqCst);
        assert_eq!(
            p.poll_wait(&w).unwrap().unwrap_err().to_string(),
            "next was accepted but its row 0 was not shown within 50 frames"
        );
    }

    #[test]
    fn the_path_is_shared_by_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CommandPath>();
    }
}
