//! The loader: brings array bodies into a bounded pool of locked slots,
//! ahead of the player, and streams arrays longer than a slot through it as
//! a ring.
//!
//! The player plays rows `0..K` of any array from the heads. Meanwhile the
//! loader thread reads rows `K..` of the *current* array (and then of the
//! predicted *next* one) into slots. Pinned memory is the heads plus
//! `SLOTS` slots, whatever the number or length of arrays.
//!
//! The player and the loader share only atomics (no locks):
//!
//! - the player publishes what it wants ([`Want`]: array + stream
//!   generation, for the current and the next array), the slot it is reading
//!   (`pinned`), and per slot how far it has read (`consumed`);
//! - the loader publishes per slot which stream it holds and how many rows
//!   are ready (`ready`).
//!
//! A slot whose whole tail fits holds it for good once loaded and
//! CRC-checked: replaying that array reads the same bytes again. A longer
//! array is a *ring*: row `r` sits at position `(r - K) % cap_rows`, the
//! loader writes a row only after the player has consumed the row that was
//! there, and a replay is a new stream (new generation) filled afresh while
//! the heads play. A ring's CRC can only be checked after its rows played;
//! a mismatch marks the array bad for later plays.

use crate::library::Library;
use crate::rt::LockedBuf;
use std::cell::UnsafeCell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

/// Number of slots: current, next, one spare so that the loader can start
/// on a new next while the old current is still pinned, and one more for a
/// jump that lands while both are busy.
pub const SLOTS: usize = 4;
/// Largest slot: arrays whose tail is longer stream through it as a ring.
pub const MAX_SLOT_BYTES: u64 = 1 << 20;
/// Bytes read per `pread`: small enough that a request for a new current
/// array is noticed within one read, large enough for SD card throughput.
const READ_CHUNK: usize = 64 << 10;
/// Attempts at a failing read before the array is marked bad for this stream.
const READ_ATTEMPTS: u32 = 3;
/// How long the loader sleeps when it has nothing to do (it is woken early
/// by the player whenever the player changes what it wants).
const IDLE_PARK: Duration = Duration::from_millis(50);
/// Wait between attempts at a failing read.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// A read is not started less than this before the frame loop's next
/// deadline (see [`crate::clock::keep_off`]): the same-CPU soak saw one
/// read hold the player's CPU inside the kernel for 2.5 ms across a
/// deadline under memory pressure, where this kernel does not preempt it.
/// A 20 ms period leaves the loader the other 16 ms.
const READ_GUARD_NS: u64 = 4_000_000;

const NONE: u32 = u32::MAX;

/// A stream the player wants: an array, and a generation that changes each
/// time the player starts that array from row 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Want {
    /// Array index.
    pub array: u32,
    /// Stream generation.
    pub gen: u32,
}

impl Want {
    fn pack(w: Option<Want>) -> u64 {
        match w {
            Some(w) => ((w.gen as u64) << 32) | w.array as u64,
            None => u64::MAX,
        }
    }
    fn unpack(x: u64) -> Option<Want> {
        if x == u64::MAX {
            None
        } else {
            Some(Want {
                array: x as u32,
                gen: (x >> 32) as u32,
            })
        }
    }
}

/// Where the data source for bodies comes from; a trait so that tests can
/// inject read errors, short reads and stalls.
pub trait BodyReader: Send + Sync {
    /// Read `buf.len()` bytes of array `i`'s body at `offset`.
    fn read_body(&self, i: u32, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl BodyReader for Library {
    fn read_body(&self, i: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        Library::read_body(self, i, offset, buf)
    }
}

struct Slot {
    mem: UnsafeCell<LockedBuf>,
    ptr: *mut u8,
    /// Array held, or NONE while being (re)assigned.
    array: AtomicU32,
    /// Generation of the stream held (meaningful for rings).
    gen: AtomicU32,
    /// Rows `K..ready` are in the slot (for a ring: the newest written + 1).
    ready: AtomicU32,
    /// Player: rows below this are done with (rings only).
    consumed: AtomicU32,
}

// SAFETY: the slot's bytes are written only by the loader thread and read
// only by the player, and never the same bytes at the same time: the loader
// writes row positions the player has released (`consumed`) or that it has
// not yet published (`ready`), and publishes with Release stores that the
// player reads with Acquire before touching the bytes. A slot is reassigned
// only when the player has not pinned it (checked with SeqCst on both sides).
unsafe impl Sync for Slot {}
// SAFETY: as above; the raw pointer points into the slot's own mapping.
unsafe impl Send for Slot {}

/// Loader statistics, readable from any thread.
#[derive(Debug, Default)]
pub struct LoaderStats {
    /// Body reads that failed (then retried).
    pub read_errors: AtomicU64,
    /// Bodies that failed their CRC.
    pub crc_errors: AtomicU64,
    /// Bodies loaded completely.
    pub bodies_loaded: AtomicU64,
    /// Time of each body read that succeeded (one `pread` of up to
    /// `READ_CHUNK`), in ns: a card or disk slower than the head rows
    /// allow for shows here before it shows as underruns.
    pub read_ns: crate::stats::Histogram,
}

/// What the player and the loader share.
pub struct Shared {
    slots: Box<[Slot]>,
    slot_bytes: usize,
    head_rows: u32,
    current: AtomicU64,
    next: AtomicU64,
    pinned: AtomicU32,
    /// One bit per array: its body failed (CRC or unreadable).
    bad: Box<[AtomicU32]>,
    stop: AtomicBool,
    /// The frame loop's next deadline, CLOCK_MONOTONIC (0: none yet).
    deadline_ns: AtomicU64,
    /// Counters.
    pub stats: LoaderStats,
}

/// Result of asking for a row beyond the heads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowState {
    /// The row was copied.
    Ready,
    /// Not loaded yet: an underrun if it was needed now.
    NotYet,
    /// The array's body is bad; skip the array.
    Bad,
}

impl Shared {
    fn new(lib: &Library) -> io::Result<Shared> {
        let tail = lib.max_tail_bytes().min(MAX_SLOT_BYTES);
        // A slot must hold at least two rows so a ring can fill one while the
        // other is read.
        let slot_bytes =
            crate::pack::format::page_align(tail.max(2 * lib.max_row_bytes()).max(1)) as usize;
        let mut slots = Vec::with_capacity(SLOTS);
        for _ in 0..SLOTS {
            let mut mem = LockedBuf::new(slot_bytes)?;
            let ptr = mem.as_mut_ptr();
            slots.push(Slot {
                mem: UnsafeCell::new(mem),
                ptr,
                array: AtomicU32::new(NONE),
                gen: AtomicU32::new(0),
                ready: AtomicU32::new(0),
                consumed: AtomicU32::new(0),
            });
        }
        let words = (lib.len() as usize).div_ceil(32);
        Ok(Shared {
            slots: slots.into_boxed_slice(),
            slot_bytes,
            head_rows: lib.head_rows(),
            current: AtomicU64::new(u64::MAX),
            next: AtomicU64::new(u64::MAX),
            pinned: AtomicU32::new(NONE),
            bad: (0..words).map(|_| AtomicU32::new(0)).collect(),
            stop: AtomicBool::new(false),
            deadline_ns: AtomicU64::new(0),
            stats: LoaderStats::default(),
        })
    }

    /// Bytes of locked slot memory.
    pub fn slot_bytes_total(&self) -> u64 {
        (self.slot_bytes * self.slots.len()) as u64
    }

    /// Whether the slots are locked in RAM.
    pub fn slots_locked(&self) -> bool {
        // SAFETY: only reads the lock flag, which nobody writes after creation.
        self.slots
            .iter()
            .all(|s| unsafe { (*s.mem.get()).is_locked() })
    }

    /// Whether array `i`'s body is known bad.
    pub fn is_bad(&self, i: u32) -> bool {
        self.bad
            .get(i as usize / 32)
            .is_some_and(|w| w.load(Relaxed) & (1 << (i % 32)) != 0)
    }

    fn mark_bad(&self, i: u32) {
        if let Some(w) = self.bad.get(i as usize / 32) {
            w.fetch_or(1 << (i % 32), Relaxed);
        }
    }

    fn cap_rows(&self, row_bytes: usize) -> u32 {
        (self.slot_bytes / row_bytes.max(1)) as u32
    }
}

/// The player's side: publish wants, fetch rows. Never allocates, locks or
/// blocks; every call is a few atomic operations and at most one row copy.
pub struct PlayerSide {
    shared: Arc<Shared>,
    loader: Thread,
    pinned: Option<usize>,
}

impl PlayerSide {
    /// Tell the loader what is playing and what is likely next. Wakes it.
    pub fn want(&mut self, current: Option<Want>, next: Option<Want>) {
        self.shared.current.store(Want::pack(current), SeqCst);
        self.shared.next.store(Want::pack(next), SeqCst);
        self.unpin();
        self.loader.unpark();
    }

    /// The frame loop sleeps toward `deadline_ns` (CLOCK_MONOTONIC): the
    /// loader starts no read just before it. One relaxed store.
    pub fn deadline(&self, deadline_ns: u64) {
        self.shared.deadline_ns.store(deadline_ns, Relaxed);
    }

    fn unpin(&mut self) {
        if self.pinned.take().is_some() {
            self.shared.pinned.store(NONE, SeqCst);
        }
    }

    /// Copy row `r` of stream `w` into `out` (`row_bytes` long) from
    /// wherever it is: the heads for the first K rows, else the slot the
    /// loader filled. The one door for rows: the player does not choose.
    pub fn row(&mut self, lib: &Library, w: Want, r: u32, out: &mut [u8]) -> RowState {
        if let Some(h) = lib.head_row(w.array, r) {
            if h.len() != out.len() {
                return RowState::Bad;
            }
            out.copy_from_slice(h);
            return RowState::Ready;
        }
        if self.shared.is_bad(w.array) {
            return RowState::Bad;
        }
        let Some(e) = lib.info(w.array) else {
            return RowState::Bad;
        };
        let row_bytes = (e.leds * e.channels) as usize;
        let k = self.shared.head_rows;
        let ring = self.is_ring(e.rows, row_bytes);
        let s = match self.pinned {
            Some(s) if self.holds(s, w, ring) => s,
            _ => {
                self.unpin();
                let Some(s) = (0..self.shared.slots.len()).find(|&s| self.holds(s, w, ring)) else {
                    self.loader.unpark();
                    return RowState::NotYet;
                };
                // Pin, then check again: the loader clears `array` before it
                // checks `pinned`, so one of the two sides sees the other.
                self.shared.pinned.store(s as u32, SeqCst);
                if !self.holds(s, w, ring) {
                    self.shared.pinned.store(NONE, SeqCst);
                    return RowState::NotYet;
                }
                self.pinned = Some(s);
                s
            }
        };
        let slot = &self.shared.slots[s];
        if r < k || r >= slot.ready.load(Acquire) || out.len() != row_bytes {
            return RowState::NotYet;
        }
        let pos = if ring {
            ((r - k) % self.shared.cap_rows(row_bytes)) as usize
        } else {
            (r - k) as usize
        };
        // SAFETY: row r is published (r < ready, Acquire) and, for a ring,
        // not overwritten until `consumed` passes it, which happens below,
        // after the copy. The range is inside the slot (pos < cap_rows).
        unsafe {
            std::ptr::copy_nonoverlapping(
                slot.ptr.add(pos * row_bytes),
                out.as_mut_ptr(),
                row_bytes,
            );
        }
        if ring {
            slot.consumed.store(r + 1, Release);
            self.loader.unpark();
        }
        RowState::Ready
    }

    fn is_ring(&self, rows: u32, row_bytes: usize) -> bool {
        rows.saturating_sub(self.shared.head_rows) > self.shared.cap_rows(row_bytes)
    }

    fn holds(&self, s: usize, w: Want, ring: bool) -> bool {
        let slot = &self.shared.slots[s];
        slot.array.load(SeqCst) == w.array && (!ring || slot.gen.load(SeqCst) == w.gen)
    }

    /// The shared state (for statistics).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

/// A running loader thread.
pub struct Loader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Loader {
    /// Start a loader for `lib`, reading bodies through `reader` (the
    /// library itself, or a fault injector in tests).
    pub fn start(
        lib: Arc<Library>,
        reader: Arc<dyn BodyReader>,
    ) -> io::Result<(Loader, PlayerSide)> {
        let shared = Arc::new(Shared::new(&lib)?);
        let s2 = shared.clone();
        let thread = thread::Builder::new()
            .name("rowplay-loader".into())
            .stack_size(256 << 10)
            .spawn(move || run(&lib, &*reader, &s2))?;
        let player = PlayerSide {
            shared: shared.clone(),
            loader: thread.thread().clone(),
            pinned: None,
        };
        Ok((
            Loader {
                shared,
                thread: Some(thread),
            },
            player,
        ))
    }

    /// The shared state (for statistics).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Loader-private progress for one slot.
#[derive(Clone)]
struct Fill {
    /// Next row to read.
    next_row: u32,
    /// CRC of rows read so far (starting with the head rows).
    crc: crc32fast::Hasher,
    /// Whether the body is complete and checked.
    done: bool,
    /// Last use, for choosing a slot to reuse.
    used: u64,
}

fn run(lib: &Library, reader: &dyn BodyReader, sh: &Shared) {
    let mut fills: Vec<Fill> = vec![
        Fill {
            next_row: 0,
            crc: crc32fast::Hasher::new(),
            done: false,
            used: 0
        };
        sh.slots.len()
    ];
    let mut clock = 0u64;
    let mut chunk = vec![0u8; READ_CHUNK.max(lib.max_row_bytes() as usize)];
    while !sh.stop.load(SeqCst) {
        let cur = Want::unpack(sh.current.load(SeqCst));
        let next = Want::unpack(sh.next.load(SeqCst));
        let mut worked = false;
        for w in [cur, next].into_iter().flatten() {
            clock += 1;
            match step(lib, reader, sh, &mut fills, &mut chunk, w, cur, next, clock) {
                Step::Worked => {
                    worked = true;
                    break; // re-read the wants after every chunk: current first
                }
                Step::Waiting => break, // current not complete: do not start next
                Step::Complete => continue,
            }
        }
        if !worked {
            thread::park_timeout(IDLE_PARK);
        }
    }
}

enum Step {
    Worked,
    Waiting,
    Complete,
}

#[allow(clippy::too_many_arguments)]
fn step(
    lib: &Library,
    reader: &dyn BodyReader,
    sh: &Shared,
    fills: &mut [Fill],
    chunk: &mut [u8],
    w: Want,
    cur: Option<Want>,
    next: Option<Want>,
    clock: u64,
) -> Step {
    let Some(e) = lib.info(w.array) else {
        return Step::Complete;
    };
    let k = sh.head_rows;
    if e.rows <= k || sh.is_bad(w.array) {
        return Step::Complete; // all in the heads, or nothing to do
    }
    let row_bytes = (e.leds * e.channels) as usize;
    let cap = sh.cap_rows(row_bytes);
    let ring = e.rows - k > cap;
    let holds = |s: usize| {
        let slot = &sh.slots[s];
        slot.array.load(SeqCst) == w.array && (!ring || slot.gen.load(SeqCst) == w.gen)
    };
    let s = match (0..sh.slots.len()).find(|&s| holds(s)) {
        Some(s) => s,
        None => match claim(sh, fills, w, cur, next, lib) {
            Some(s) => s,
            None => return Step::Waiting,
        },
    };
    fills[s].used = clock;
    if fills[s].done {
        return Step::Complete;
    }
    let slot = &sh.slots[s];
    let f = &mut fills[s];
    // How many rows may be written now: all remaining for a plain slot; for a
    // ring, only into positions the player has released.
    let limit = if ring {
        let consumed = slot.consumed.load(Acquire).max(k);
        (consumed + cap).min(e.rows)
    } else {
        e.rows
    };
    if f.next_row >= limit {
        return Step::Waiting; // ring full: wait for the player
    }
    let max_rows = (chunk.len() / row_bytes).max(1) as u32;
    let mut n = (limit - f.next_row).min(max_rows);
    if ring {
        // Do not wrap inside one read.
        let pos = (f.next_row - k) % cap;
        n = n.min(cap - pos);
    }
    let bytes = n as usize * row_bytes;
    let buf = &mut chunk[..bytes];
    let mut attempt = 0;
    loop {
        crate::clock::keep_off(sh.deadline_ns.load(Relaxed), READ_GUARD_NS);
        let t0 = crate::clock::monotonic_ns();
        match reader.read_body(w.array, f.next_row as u64 * row_bytes as u64, buf) {
            Ok(()) => {
                let took = crate::clock::monotonic_ns().saturating_sub(t0);
                sh.stats.read_ns.record(took);
                break;
            }
            Err(_) => {
                sh.stats.read_errors.fetch_add(1, Relaxed);
                attempt += 1;
                if attempt >= READ_ATTEMPTS {
                    sh.mark_bad(w.array);
                    return Step::Complete;
                }
                thread::sleep(RETRY_PAUSE);
                if sh.stop.load(SeqCst) {
                    return Step::Complete;
                }
            }
        }
    }
    let pos = if ring {
        (f.next_row - k) % cap
    } else {
        f.next_row - k
    } as usize;
    // SAFETY: these row positions are not readable by the player: for a
    // plain slot they are at or past `ready`, for a ring they were consumed
    // (next_row < consumed + cap). The range is inside the slot.
    unsafe {
        std::ptr::copy_nonoverlapping(buf.as_ptr(), slot.ptr.add(pos * row_bytes), bytes);
    }
    f.crc.update(buf);
    f.next_row += n;
    if ring {
        slot.ready.store(f.next_row, Release);
    }
    if f.next_row == e.rows {
        f.done = true;
        let ok = f.crc.clone().finalize() == lib.entry(w.array).body_crc;
        if ok {
            sh.stats.bodies_loaded.fetch_add(1, Relaxed);
            if !ring {
                // A plain slot is published only once its CRC checks out,
                // so a corrupt body never plays beyond its head rows.
                slot.ready.store(e.rows, Release);
            }
        } else {
            sh.stats.crc_errors.fetch_add(1, Relaxed);
            sh.mark_bad(w.array);
        }
    }
    Step::Worked
}

/// Assign a slot to stream `w`: one not holding a wanted stream and not
/// pinned by the player, least recently used first.
fn claim(
    sh: &Shared,
    fills: &mut [Fill],
    w: Want,
    cur: Option<Want>,
    next: Option<Want>,
    lib: &Library,
) -> Option<usize> {
    let wanted = |s: usize| {
        let a = sh.slots[s].array.load(SeqCst);
        [cur, next].into_iter().flatten().any(|x| x.array == a)
    };
    let mut order: [usize; SLOTS] = std::array::from_fn(|i| i);
    order.sort_by_key(|&s| fills[s].used);
    for s in order {
        if s >= sh.slots.len() || wanted(s) {
            continue;
        }
        let slot = &sh.slots[s];
        let old = slot.array.swap(NONE, SeqCst);
        if sh.pinned.load(SeqCst) == s as u32 {
            slot.array.store(old, SeqCst); // the player is reading it
            continue;
        }
        let k = sh.head_rows;
        slot.ready.store(k, SeqCst);
        slot.consumed.store(k, SeqCst);
        slot.gen.store(w.gen, SeqCst);
        let mut crc = crc32fast::Hasher::new();
        // The body CRC covers the head rows too; they are in memory.
        let e = lib.info(w.array)?;
        for r in 0..k.min(e.rows) {
            if let Some(row) = lib.head_row(w.array, r) {
                crc.update(row);
            }
        }
        fills[s] = Fill {
            next_row: k,
            crc,
            done: false,
            used: fills[s].used,
        };
        slot.array.store(w.array, SeqCst);
        return Some(s);
    }
    None
}
