//! A worker thread per hardware output, with a one-frame hand-off, so that
//! a slow or failing output never delays the others past the frame.
//!
//! The frame loop writes its outputs one after the other. An SPI write
//! blocks until the kernel has clocked the bytes out, and a bit-banged
//! `gpio-clocked` frame spins for its whole length (2.5 ms for 300 APA102
//! LEDs at 4 MHz): written in line, each delays every output after it. A
//! [`Worker`] wraps such an output and is itself an [`Output`]:
//!
//! - [`Output::prepare`] (frame loop) copies the slice's pixels into a
//!   buffer made at start. The wrapped output encodes them on the worker
//!   thread: it owns both its encoder and its device, and the copy of at
//!   most a few kilobytes costs the loop less than the encoding would.
//! - [`Output::send`] (frame loop) puts the pixels and the frame's
//!   [`FrameMeta`] into the back frame of a triple buffer
//!   ([`crate::handoff::frame_slot`]), publishes it in one atomic exchange
//!   and wakes the worker through a futex ([`crate::handoff::wake_pair`]).
//!   It never waits: no lock, no allocation, one `FUTEX_WAKE`.
//! - The worker thread takes the newest frame, lets the wrapped output
//!   encode and write it, and measures the write. A frame published while
//!   the worker is still writing the previous one waits in the slot; if the
//!   next frame arrives before the worker took it, it replaces it and the
//!   replaced frame is counted as dropped. Frames are never queued, so a
//!   slow output shows the newest frame and never falls behind.
//!
//! Counters: replaced frames and the wrapped output's own background-writer
//! drops are [`Output::dropped`]; its background-writer errors are
//! [`Output::write_errors`]. Once [`WorkerLink::attach`] has joined the
//! worker to the output's [`OutputStats`], each device write's duration goes
//! to `device_ns` and each failed write to `errors` (and the run's
//! `output_errors`), exactly where a failed write in line would be counted;
//! `write_ns` then shows what the frame loop spent: the hand-off.
//!
//! Priority: the worker runs at SCHED_FIFO one below the player when the
//! player is realtime (so it cannot delay the frame loop, and nothing
//! lower can delay it), else at normal priority. [`Output::finish`] lets the
//! worker write the last frame published (the player's final all-off
//! frame); the worker then finishes the wrapped output on its own thread
//! and ends, and is joined.

use super::{FrameMeta, Output, OutputError};
use crate::handoff::{frame_slot, wake_pair, SlotReader, SlotWriter, WakeWaiter, Waker};
use crate::stats::{OutputStats, Stats};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

/// How long the worker sleeps at most between checks of its stop flag (a
/// wake-up is never lost; this only bounds a sleep through a missed one).
const IDLE_NS: u64 = 1_000_000_000;

/// Stack of a worker thread: the wrapped output's send is shallow (an
/// ioctl, pin writes, a queue push).
const STACK_BYTES: usize = 128 << 10;

/// How a worker thread is started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerOptions {
    /// SCHED_FIFO priority of the worker thread, or `None` for normal
    /// priority. A refusal leaves it at normal priority (the player's own
    /// refusal is what gets reported).
    pub fifo_priority: Option<u32>,
}

impl WorkerOptions {
    /// Workers one below a player at `player_priority` (0: not realtime,
    /// and a player at 1 leaves no room below it).
    pub fn below_player(player_priority: u32) -> WorkerOptions {
        WorkerOptions {
            fifo_priority: (player_priority > 1).then(|| player_priority - 1),
        }
    }
}

/// What the frame loop's side and the worker thread share.
struct Shared {
    stop: AtomicBool,
    /// Frames replaced in the slot before the worker took them.
    replaced: AtomicU64,
    /// Device writes that failed.
    errors: AtomicU64,
    /// Frames the worker wrote.
    written: AtomicU64,
    /// The wrapped output's own counters, as the worker last read them.
    inner_dropped: AtomicU64,
    inner_write_errors: AtomicU64,
    /// The output's counters and the run's, once attached.
    stats: OnceLock<(Arc<OutputStats>, Arc<Stats>)>,
}

/// An output written by a thread of its own. See the module docs.
pub struct Worker {
    /// The pixels of the upcoming frame, as `prepare` got them.
    staged: Box<[u8]>,
    slot: SlotWriter,
    wake: Waker,
    sh: Arc<Shared>,
    /// The worker thread; it hands the wrapped output back when it ends.
    thread: Option<JoinHandle<Box<dyn Output>>>,
    /// The wrapped output after [`Output::finish`].
    finished: Option<Box<dyn Output>>,
}

/// Joins a worker to the output's counters, after the player made them.
pub struct WorkerLink {
    sh: Arc<Shared>,
}

impl WorkerLink {
    /// Count device write times and failed writes into `out` (the output's
    /// counters) and failed writes into `run`'s `output_errors` too. Only
    /// the first call counts.
    pub fn attach(&self, out: &Arc<OutputStats>, run: &Arc<Stats>) {
        out.worker.store(true, Ordering::Relaxed);
        let _ = self.sh.stats.set((out.clone(), run.clone()));
    }
}

impl Worker {
    /// Start a worker thread that writes `inner`, an output that takes
    /// `pixel_len` bytes of pixels per frame. Every buffer is made here.
    pub fn spawn(
        inner: Box<dyn Output>,
        pixel_len: usize,
        opts: WorkerOptions,
    ) -> std::io::Result<Worker> {
        let (slot, reader) = frame_slot(pixel_len);
        let (wake, waiter) = wake_pair();
        let sh = Arc::new(Shared {
            stop: AtomicBool::new(false),
            replaced: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            written: AtomicU64::new(0),
            inner_dropped: AtomicU64::new(0),
            inner_write_errors: AtomicU64::new(0),
            stats: OnceLock::new(),
        });
        let sh2 = sh.clone();
        let thread = std::thread::Builder::new()
            .name("rowplay-out".into())
            .stack_size(STACK_BYTES)
            .spawn(move || {
                if let Some(p) = opts.fifo_priority {
                    let _ = crate::rt::set_fifo(p);
                }
                work(inner, reader, waiter, &sh2)
            })?;
        Ok(Worker {
            staged: vec![0; pixel_len].into_boxed_slice(),
            slot,
            wake,
            sh,
            thread: Some(thread),
            finished: None,
        })
    }

    /// A link to join the worker to the output's counters later.
    pub fn link(&self) -> WorkerLink {
        WorkerLink {
            sh: self.sh.clone(),
        }
    }

    /// Frames the worker thread has written so far.
    pub fn written(&self) -> u64 {
        self.sh.written.load(Ordering::Acquire)
    }

    /// Frames replaced before the worker took them.
    pub fn replaced(&self) -> u64 {
        self.sh.replaced.load(Ordering::Relaxed)
    }

    /// Device writes that failed on the worker thread.
    pub fn device_errors(&self) -> u64 {
        self.sh.errors.load(Ordering::Relaxed)
    }
}

/// The worker thread: write the newest frame each time one is handed over,
/// until stopped; then finish the output and hand it back.
fn work(
    mut out: Box<dyn Output>,
    mut slot: SlotReader,
    mut waiter: WakeWaiter,
    sh: &Shared,
) -> Box<dyn Output> {
    loop {
        // Read the flag before taking: a frame published before the stop
        // is then still taken below.
        let stopping = sh.stop.load(Ordering::Acquire);
        while let Some(f) = slot.take() {
            let meta = FrameMeta {
                t_ns: f.t_ns,
                array: f.source,
                row: f.counter as u32,
            };
            out.prepare(&f.pixels);
            let t0 = crate::clock::monotonic_ns();
            let r = out.send(&meta);
            let took = crate::clock::monotonic_ns().saturating_sub(t0);
            let stats = sh.stats.get();
            if let Some((o, _)) = stats {
                o.device_ns.record(took);
            }
            if r.is_err() {
                Stats::bump(&sh.errors);
                if let Some((o, run)) = stats {
                    Stats::bump(&o.errors);
                    Stats::bump(&run.output_errors);
                }
            }
            sh.inner_dropped.store(out.dropped(), Ordering::Relaxed);
            sh.inner_write_errors
                .store(out.write_errors(), Ordering::Relaxed);
            sh.written.fetch_add(1, Ordering::Release);
        }
        if stopping {
            // Finished on the thread it was written from.
            out.finish();
            return out;
        }
        waiter.wait_until(crate::clock::monotonic_ns().saturating_add(IDLE_NS));
    }
}

impl Output for Worker {
    fn prepare(&mut self, pixels: &[u8]) {
        let n = pixels.len().min(self.staged.len());
        self.staged[..n].copy_from_slice(&pixels[..n]);
        self.staged[n..].fill(0);
    }

    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        if self.thread.is_none() {
            return Ok(()); // finished: nothing writes any more
        }
        let f = self.slot.back();
        f.pixels.copy_from_slice(&self.staged);
        // The slot's frame fields carry the FrameMeta across.
        f.t_ns = meta.t_ns;
        f.source = meta.array;
        f.counter = u64::from(meta.row);
        if self.slot.publish() {
            self.sh.replaced.fetch_add(1, Ordering::Relaxed);
        }
        self.wake.wake();
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.replaced() + self.sh.inner_dropped.load(Ordering::Relaxed)
    }

    fn write_errors(&self) -> u64 {
        self.sh.inner_write_errors.load(Ordering::Relaxed)
    }

    fn finish(&mut self) {
        let Some(t) = self.thread.take() else {
            return;
        };
        self.sh.stop.store(true, Ordering::Release);
        self.wake.wake();
        if let Ok(out) = t.join() {
            self.sh
                .inner_dropped
                .store(out.dropped(), Ordering::Relaxed);
            self.sh
                .inner_write_errors
                .store(out.write_errors(), Ordering::Relaxed);
            self.finished = Some(out);
        }
        // The frame loop stores these per frame; the last frames (the final
        // all-off) came after its last store.
        if let Some((o, _)) = self.sh.stats.get() {
            o.dropped.store(self.dropped(), Ordering::Relaxed);
            o.write_errors.store(self.write_errors(), Ordering::Relaxed);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<(FrameMeta, Vec<u8>)>>>;

    /// An output whose every send says it has begun, then waits for a
    /// token from the test: a device that blocks for as long as the test
    /// wants.
    struct Gate {
        pending: Vec<u8>,
        log: Log,
        entered: Sender<u32>,
        go: Receiver<()>,
        fail_odd_rows: bool,
        finished: Arc<AtomicBool>,
    }

    impl Output for Gate {
        fn prepare(&mut self, pixels: &[u8]) {
            self.pending.clear();
            self.pending.extend_from_slice(pixels);
        }
        fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
            let _ = self.entered.send(meta.row);
            let _ = self.go.recv();
            self.log.lock().unwrap().push((*meta, self.pending.clone()));
            if self.fail_odd_rows && meta.row % 2 == 1 {
                return Err(OutputError::Io(libc::EIO));
            }
            Ok(())
        }
        fn finish(&mut self) {
            self.finished.store(true, Ordering::SeqCst);
        }
    }

    /// Fields drop in order: `go` first, so that a failed assertion ends a
    /// blocked write instead of hanging the worker's join.
    struct Rig {
        go: Sender<()>,
        w: Worker,
        log: Log,
        entered: Receiver<u32>,
        finished: Arc<AtomicBool>,
    }

    fn rig(fail_odd_rows: bool) -> Rig {
        let (entered_tx, entered) = channel();
        let (go, go_rx) = channel();
        let log = Log::default();
        let finished = Arc::new(AtomicBool::new(false));
        let gate = Gate {
            pending: Vec::new(),
            log: log.clone(),
            entered: entered_tx,
            go: go_rx,
            fail_odd_rows,
            finished: finished.clone(),
        };
        let w = Worker::spawn(Box::new(gate), 3, WorkerOptions::default()).unwrap();
        Rig {
            w,
            log,
            entered,
            go,
            finished,
        }
    }

    fn frame(w: &mut Worker, row: u32) {
        w.prepare(&[row as u8; 3]);
        let meta = FrameMeta {
            t_ns: u64::from(row) * 10,
            array: 7,
            row,
        };
        assert_eq!(w.send(&meta), Ok(()));
    }

    #[test]
    fn a_blocked_device_never_blocks_the_send_and_replaced_frames_are_dropped() {
        let mut r = rig(false);
        frame(&mut r.w, 1);
        // The worker is inside the device write of row 1, and stays there
        // until the test lets it go.
        assert_eq!(r.entered.recv().unwrap(), 1);
        // Four more frames are handed over meanwhile, each send returning
        // at once: row 2 waits in the slot, 3 replaces it, 4 replaces 3,
        // 5 replaces 4.
        for row in 2..=5 {
            frame(&mut r.w, row);
        }
        assert_eq!(r.w.dropped(), 3);
        assert_eq!(r.w.replaced(), 3);
        assert_eq!(r.w.written(), 0);
        // Let both writes through; finish writes the newest frame.
        r.go.send(()).unwrap();
        assert_eq!(r.entered.recv().unwrap(), 5);
        r.go.send(()).unwrap();
        r.w.finish();
        let log: Vec<(u32, Vec<u8>)> = r
            .log
            .lock()
            .unwrap()
            .iter()
            .map(|(m, p)| (m.row, p.clone()))
            .collect();
        assert_eq!(log, vec![(1, vec![1; 3]), (5, vec![5; 3])]);
        assert_eq!(r.w.written(), 2);
        assert_eq!(r.w.dropped(), 3);
        assert!(r.finished.load(Ordering::SeqCst));
        // After finish nothing is handed over.
        frame(&mut r.w, 6);
        assert_eq!(r.w.written(), 2);
    }

    #[test]
    fn failed_writes_and_write_times_are_counted_into_the_outputs_counters() {
        let mut r = rig(true);
        let out = Arc::new(OutputStats::new("spi", 0, 1));
        let run = Arc::new(Stats::default());
        r.w.link().attach(&out, &run);
        assert!(out.worker.load(Ordering::Relaxed));
        for row in 1..=6 {
            frame(&mut r.w, row);
            assert_eq!(r.entered.recv().unwrap(), row);
            r.go.send(()).unwrap();
            // One frame at a time: none is replaced.
            while r.w.written() < u64::from(row) {
                std::thread::yield_now();
            }
        }
        r.w.finish();
        // Rows 1, 3 and 5 failed.
        assert_eq!(r.w.device_errors(), 3);
        assert_eq!(out.errors.load(Ordering::Relaxed), 3);
        assert_eq!(run.output_errors.load(Ordering::Relaxed), 3);
        assert_eq!(out.device_ns.count(), 6);
        assert_eq!(r.w.dropped(), 0);
        assert_eq!(out.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(r.log.lock().unwrap().len(), 6);
    }

    #[test]
    fn the_pixels_and_meta_of_each_frame_cross_intact() {
        let mut r = rig(false);
        r.w.prepare(&[9, 8]); // shorter than the slice: the rest is black
        r.w.send(&FrameMeta {
            t_ns: 123,
            array: 4,
            row: 77,
        })
        .unwrap();
        assert_eq!(r.entered.recv().unwrap(), 77);
        r.go.send(()).unwrap();
        r.w.finish();
        let meta = FrameMeta {
            t_ns: 123,
            array: 4,
            row: 77,
        };
        assert_eq!(r.log.lock().unwrap().clone(), vec![(meta, vec![9, 8, 0])]);
    }

    #[test]
    fn priority_is_one_below_a_realtime_player() {
        assert_eq!(WorkerOptions::below_player(0).fifo_priority, None);
        assert_eq!(WorkerOptions::below_player(1).fifo_priority, None);
        assert_eq!(WorkerOptions::below_player(80).fifo_priority, Some(79));
    }
}
