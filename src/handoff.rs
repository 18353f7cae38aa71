//! Hand-overs that never block either side: a lock-free single-writer,
//! single-reader triple buffer of frames (door 2: a live receiver to the
//! frame loop; door 3: the frame loop's last frame to the HTTP preview),
//! and a futex the player sleeps on with an absolute deadline.
//!
//! Triple buffer: three preallocated frames. The writer owns one (back),
//! the reader owns one (front), the third sits in the middle. Publishing
//! swaps back and middle in one atomic exchange and sets a NEW bit;
//! taking swaps front and middle when NEW is set. The three indices are
//! always a permutation of 0, 1, 2, so writer and reader never touch the
//! same frame, and a frame the reader holds is never written: no torn
//! frames by construction. A publish that finds NEW still set has
//! overwritten a frame nobody took: that frame is dropped (counted).

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

/// One frame as it crosses the slot.
#[derive(Debug)]
pub struct Frame {
    /// Pixels in RGB or RGBW order, the strip's length.
    pub pixels: Box<[u8]>,
    /// Live frame counter (1, 2, ...), across sources.
    pub counter: u64,
    /// CLOCK_MONOTONIC time the frame was completed, in ns.
    pub t_ns: u64,
    /// Id of the source it came from.
    pub source: u32,
}

const NEW: u8 = 0b100;
const INDEX: u8 = 0b011;

struct Shared {
    bufs: [UnsafeCell<Frame>; 3],
    /// Index of the middle frame, plus NEW when it was published and not
    /// yet taken.
    state: AtomicU8,
}

// SAFETY: the frames are only reached through SlotWriter (bufs[back]) and
// SlotReader (bufs[front]); there is one of each (neither is Clone), and
// the exchange on `state` keeps back, front and middle distinct, so no
// frame is ever accessed from two threads at once. The AcqRel exchange
// orders the writer's writes before the reader's reads.
unsafe impl Sync for Shared {}
// SAFETY: Frame is Send (plain owned data).
unsafe impl Send for Shared {}

/// The writing half (receiver thread).
pub struct SlotWriter {
    sh: Arc<Shared>,
    back: u8,
}

/// The reading half (player thread).
pub struct SlotReader {
    sh: Arc<Shared>,
    front: u8,
}

/// Make a slot for frames of `len` bytes. All memory is allocated here.
pub fn frame_slot(len: usize) -> (SlotWriter, SlotReader) {
    let f = || {
        UnsafeCell::new(Frame {
            pixels: vec![0; len].into_boxed_slice(),
            counter: 0,
            t_ns: 0,
            source: 0,
        })
    };
    let sh = Arc::new(Shared {
        bufs: [f(), f(), f()],
        state: AtomicU8::new(1),
    });
    (
        SlotWriter {
            sh: sh.clone(),
            back: 0,
        },
        SlotReader { sh, front: 2 },
    )
}

impl SlotWriter {
    /// The frame being written.
    pub fn back(&mut self) -> &mut Frame {
        // SAFETY: bufs[back] is owned by this writer until `publish` hands
        // it over (see the Sync contract on Shared); &mut self prevents a
        // second live borrow.
        unsafe { &mut *self.sh.bufs[self.back as usize].get() }
    }

    /// Hand the back frame to the reader. Returns true when the frame
    /// published before it was never taken (it is dropped).
    pub fn publish(&mut self) -> bool {
        let old = self.sh.state.swap(self.back | NEW, Ordering::AcqRel);
        self.back = old & INDEX;
        old & NEW != 0
    }
}

impl SlotReader {
    /// The newest frame published since the last call, or `None`.
    pub fn take(&mut self) -> Option<&Frame> {
        if self.sh.state.load(Ordering::Relaxed) & NEW == 0 {
            return None;
        }
        let old = self.sh.state.swap(self.front, Ordering::AcqRel);
        self.front = old & INDEX;
        // SAFETY: bufs[front] now belongs to this reader (Sync contract on
        // Shared); the Acquire half of the swap made the writer's writes
        // visible.
        Some(unsafe { &*self.sh.bufs[self.front as usize].get() })
    }
}

/// Wakes the player (receivers on a complete frame; any other front end
/// may hold a clone too).
#[derive(Clone)]
pub struct Waker {
    word: Arc<AtomicU32>,
}

/// The player's side of the wake-up.
pub struct WakeWaiter {
    word: Arc<AtomicU32>,
    seen: u32,
}

/// A connected waker and waiter.
pub fn wake_pair() -> (Waker, WakeWaiter) {
    let word = Arc::new(AtomicU32::new(0));
    (Waker { word: word.clone() }, WakeWaiter { word, seen: 0 })
}

impl Waker {
    /// Wake the waiter (or make its next wait return at once).
    pub fn wake(&self) {
        self.word.fetch_add(1, Ordering::Release);
        futex_wake(&self.word);
    }
}

impl WakeWaiter {
    /// Sleep until woken or until CLOCK_MONOTONIC reaches `deadline_ns`.
    /// Returns true when woken (a wake since the last call counts, so none
    /// is lost), false at the deadline. No allocation, no lock.
    pub fn wait_until(&mut self, deadline_ns: u64) -> bool {
        loop {
            let v = self.word.load(Ordering::Acquire);
            if v != self.seen {
                self.seen = v;
                return true;
            }
            if crate::clock::monotonic_ns() >= deadline_ns {
                return false;
            }
            futex_wait_until(&self.word, v, deadline_ns);
        }
    }

    /// Whether a wake is pending, without sleeping (and without using it).
    pub fn pending(&self) -> bool {
        self.word.load(Ordering::Acquire) != self.seen
    }

    /// Use a pending wake, without sleeping: true when there was one.
    pub fn take(&mut self) -> bool {
        let v = self.word.load(Ordering::Acquire);
        if v == self.seen {
            return false;
        }
        self.seen = v;
        true
    }
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE on a valid, aligned u32 that lives as long as the
    // Arc; no memory is written by the kernel.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// Sleep while `*word == v`, until the absolute CLOCK_MONOTONIC deadline
/// (FUTEX_WAIT_BITSET takes an absolute time-out on CLOCK_MONOTONIC).
/// Returns on wake, time-out, signal or a changed value; callers loop.
fn futex_wait_until(word: &AtomicU32, v: u32, deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as _,
    };
    // SAFETY: word is a valid aligned u32; ts is a valid timespec that
    // outlives the call; the kernel only reads both.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT_BITSET | libc::FUTEX_PRIVATE_FLAG,
            v,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            libc::FUTEX_BITSET_MATCH_ANY,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn take_sees_only_new_frames_and_drops_are_reported() {
        let (mut w, mut r) = frame_slot(3);
        assert!(r.take().is_none());
        w.back().pixels.copy_from_slice(&[1, 1, 1]);
        w.back().counter = 1;
        assert!(!w.publish());
        w.back().counter = 2;
        w.back().pixels.copy_from_slice(&[2, 2, 2]);
        // Frame 1 was never taken.
        assert!(w.publish());
        let f = r.take().unwrap();
        assert_eq!((f.counter, &f.pixels[..]), (2, &[2u8, 2, 2][..]));
        assert!(r.take().is_none());
        w.back().counter = 3;
        assert!(!w.publish());
        assert_eq!(r.take().unwrap().counter, 3);
    }

    #[test]
    fn a_reader_never_sees_a_torn_frame() {
        const LEN: usize = 4096;
        let (mut w, mut r) = frame_slot(LEN);
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut n: u64 = 0;
            while !s2.load(Ordering::Relaxed) {
                n += 1;
                let f = w.back();
                f.pixels.fill(n as u8);
                f.counter = n;
                w.publish();
            }
            n
        });
        let mut seen = 0u64;
        let mut last = 0u64;
        while seen < 20_000 {
            if let Some(f) = r.take() {
                let b = f.counter as u8;
                assert!(f.pixels.iter().all(|&p| p == b), "torn frame {}", f.counter);
                assert!(f.counter > last, "went back: {} after {last}", f.counter);
                last = f.counter;
                seen += 1;
            } else {
                std::hint::spin_loop();
            }
        }
        stop.store(true, Ordering::Relaxed);
        assert!(writer.join().unwrap() >= last);
    }

    #[test]
    fn waiter_times_out_at_a_past_deadline_and_wakes_on_wake() {
        let (k, mut w) = wake_pair();
        assert!(!w.wait_until(0));
        k.wake();
        assert!(w.pending());
        assert!(w.wait_until(0));
        assert!(!w.pending());
        // A wake from another thread ends a wait with a far deadline.
        let far = crate::clock::monotonic_ns() + 3_600_000_000_000;
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            k.wake();
        });
        assert!(w.wait_until(far));
        t.join().unwrap();
    }
}
