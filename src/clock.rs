//! Absolute-deadline timing for the frame loop, behind a trait so that tests
//! can drive time by hand.
//!
//! The loop keeps absolute deadlines (`next += period`) and sleeps with
//! `clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)`. Sleeping "one period
//! after the work" instead would add the work time and the wake-up latency
//! to every period, and the error would accumulate into drift.

use crate::handoff::WakeWaiter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A monotonic clock the player can sleep on.
pub trait Clock: Send {
    /// Now, in ns on the clock's time base.
    fn now_ns(&self) -> u64;
    /// Sleep until `deadline_ns` (returns at once if it has passed).
    fn sleep_until(&mut self, deadline_ns: u64);
    /// The time capture records are stamped with: the clock's own, except
    /// for a clock that only pretends to drift (records stay on
    /// CLOCK_MONOTONIC, or comparing nodes would measure nothing).
    fn record_ns(&self) -> u64 {
        self.now_ns()
    }
    /// When the last sleep or wait returned, read at its return as
    /// cyclictest reads its clock (None: not kept; the loop's next
    /// `now_ns` stands for it).
    fn returned_ns(&self) -> Option<u64> {
        None
    }
    /// Sleep until `deadline_ns` or until `w` is woken (a live frame is
    /// complete); true when woken. A wake that came before the call is not
    /// lost. Test clocks take a pending wake at once, else sleep to the
    /// deadline.
    fn wait_until(&mut self, deadline_ns: u64, w: &mut WakeWaiter) -> bool {
        if w.take() {
            return true;
        }
        self.sleep_until(deadline_ns);
        false
    }
}

/// A boxed clock is a clock, so the player can be handed either kind.
impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn sleep_until(&mut self, deadline_ns: u64) {
        (**self).sleep_until(deadline_ns)
    }
    fn wait_until(&mut self, deadline_ns: u64, w: &mut WakeWaiter) -> bool {
        (**self).wait_until(deadline_ns, w)
    }
    fn record_ns(&self) -> u64 {
        (**self).record_ns()
    }
    fn returned_ns(&self) -> Option<u64> {
        (**self).returned_ns()
    }
}

/// Past a deadline by this much, its frame is out (see [`keep_off`]).
pub const AFTER_DEADLINE_NS: u64 = 300_000;

/// For a helper thread about to make a system call: if the frame loop's
/// next deadline (`deadline_ns`, CLOCK_MONOTONIC; 0: none) is less than
/// `guard_ns` away, sleep until [`AFTER_DEADLINE_NS`] past it. On a
/// one-core Pi Zero the helpers share the frame loop's CPU, and on a
/// kernel without full preemption a call under way at the deadline delays
/// the loop's wake-up until it returns.
pub fn keep_off(deadline_ns: u64, guard_ns: u64) {
    let pause = keep_off_pause(deadline_ns, monotonic_ns(), guard_ns);
    if pause > 0 {
        std::thread::sleep(std::time::Duration::from_nanos(pause));
    }
}

/// How long [`keep_off`] sleeps at `now_ns` (0: not at all).
pub fn keep_off_pause(deadline_ns: u64, now_ns: u64, guard_ns: u64) -> u64 {
    if deadline_ns > now_ns && deadline_ns - now_ns < guard_ns {
        deadline_ns - now_ns + AFTER_DEADLINE_NS
    } else {
        0
    }
}

/// CLOCK_MONOTONIC, the clock capture records are stamped with.
#[derive(Debug, Default, Clone, Copy)]
pub struct Monotonic;

/// CLOCK_MONOTONIC now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Clock for Monotonic {
    fn now_ns(&self) -> u64 {
        monotonic_ns()
    }
    fn sleep_until(&mut self, deadline_ns: u64) {
        // time_t is 32 bits on the Pi's musl target only before musl 1.2;
        // the conversion below is lossless for any deadline within 68 years
        // of boot.
        let ts = libc::timespec {
            tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (deadline_ns % 1_000_000_000) as _,
        };
        loop {
            // SAFETY: ts is valid; the remaining-time pointer may be null
            // with TIMER_ABSTIME.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
            // Interrupted by a signal: sleep again to the same deadline.
            if rc != libc::EINTR {
                break;
            }
        }
    }
    fn wait_until(&mut self, deadline_ns: u64, w: &mut WakeWaiter) -> bool {
        // One futex with the deadline as its absolute time-out, on the
        // same clock.
        w.wait_until(deadline_ns)
    }
}

/// CLOCK_MONOTONIC running `ppm` parts per million fast (negative: slow)
/// from the moment it is made: a test-only stand-in for a Pi whose crystal
/// drifts (`--clock-drift-ppm`), since the machine's clock cannot be slewed
/// for one process. Records keep the real CLOCK_MONOTONIC.
#[derive(Clone, Copy, Debug)]
pub struct DriftClock {
    base: u64,
    ppm: i64,
}

impl DriftClock {
    /// A clock equal to CLOCK_MONOTONIC now, drifting by `ppm` from here.
    pub fn new(ppm: i64) -> DriftClock {
        DriftClock {
            base: monotonic_ns(),
            ppm,
        }
    }
    /// Drifted time of real time `real`.
    pub fn from_real(&self, real: u64) -> u64 {
        let d = real as i64 - self.base as i64;
        (self.base as i64 + d + d / 1_000_000 * self.ppm) as u64
    }
    /// Real time of drifted time `t`.
    pub fn to_real(&self, t: u64) -> u64 {
        let d = t as i64 - self.base as i64;
        let real = d as i128 * 1_000_000 / (1_000_000 + self.ppm) as i128;
        (self.base as i64 + real as i64) as u64
    }
}

impl Clock for DriftClock {
    fn now_ns(&self) -> u64 {
        self.from_real(monotonic_ns())
    }
    fn sleep_until(&mut self, deadline_ns: u64) {
        Monotonic.sleep_until(self.to_real(deadline_ns))
    }
    fn wait_until(&mut self, deadline_ns: u64, w: &mut WakeWaiter) -> bool {
        w.wait_until(self.to_real(deadline_ns))
    }
    fn record_ns(&self) -> u64 {
        monotonic_ns()
    }
}

/// Deadline arithmetic for a fixed period, anchored to the first deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticker {
    period: u64,
    next: u64,
}

impl Ticker {
    /// Deadlines `first, first + period, ...`.
    pub fn new(first_ns: u64, period_ns: u64) -> Ticker {
        Ticker {
            period: period_ns.max(1),
            next: first_ns,
        }
    }
    /// The upcoming deadline.
    pub fn deadline(&self) -> u64 {
        self.next
    }
    /// The period.
    pub fn period(&self) -> u64 {
        self.period
    }
    /// Move the upcoming deadline to `deadline_ns` (a sync follower's
    /// steered deadline); the grid continues from there.
    pub fn set_next(&mut self, deadline_ns: u64) {
        self.next = deadline_ns;
    }
    /// Use `period_ns` from the next [`Ticker::advance`] on; the upcoming
    /// deadline stays where it is.
    pub fn set_period(&mut self, period_ns: u64) {
        self.period = period_ns.max(1);
    }
    /// Move to the next deadline after a frame finished at `now`. Deadlines
    /// already in the past are skipped (and counted in the return value), so
    /// a late frame never causes a burst of catch-up frames, and the cadence
    /// stays on the original grid.
    pub fn advance(&mut self, now: u64) -> u64 {
        self.next += self.period;
        if now > self.next {
            let behind = (now - self.next).div_ceil(self.period);
            self.next += behind * self.period;
            behind
        } else {
            0
        }
    }
}

/// A clock for tests: time moves only when the player sleeps (to exactly
/// its deadline, plus whatever lateness the test injects). Cloning shares
/// the time.
#[derive(Clone, Debug, Default)]
pub struct MockClock {
    now: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
}

impl MockClock {
    /// A clock at `start` ns.
    pub fn new(start: u64) -> MockClock {
        let c = MockClock::default();
        c.now.store(start, Ordering::SeqCst);
        c
    }
    /// Make the next wake-up this many ns late (once).
    pub fn make_next_wake_late(&self, ns: u64) {
        self.late.store(ns, Ordering::SeqCst);
    }
    /// Move time forward (work that takes time).
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for MockClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep_until(&mut self, deadline_ns: u64) {
        let late = self.late.swap(0, Ordering::SeqCst);
        let now = self.now.load(Ordering::SeqCst);
        self.now
            .store(now.max(deadline_ns) + late, Ordering::SeqCst);
    }
}

/// A clock driven from outside: each sleep waits until the controller
/// grants one more tick, then jumps to the deadline. The binary uses it for
/// `--clock step` so that integration tests decide exactly when each frame
/// happens, with no wall-clock timing at all.
#[derive(Clone, Debug, Default)]
pub struct StepClock {
    now: Arc<AtomicU64>,
    granted: Arc<AtomicU64>,
    taken: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl StepClock {
    /// A new clock at 0 with no ticks granted. A sleep also ends when `stop`
    /// is set, so that a stopping player is not left waiting for a grant.
    pub fn new(stop: Arc<std::sync::atomic::AtomicBool>) -> StepClock {
        StepClock {
            stop,
            ..StepClock::default()
        }
    }
    /// Allow `n` more frames.
    pub fn grant(&self, n: u64) {
        self.granted.fetch_add(n, Ordering::SeqCst);
    }
    /// Frames allowed so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::SeqCst)
    }

    /// Wait for a grant (then jump to the deadline: false) or a wake of
    /// `w` (time stays: true), or a stop.
    fn step_or_wake(&mut self, deadline_ns: u64, mut w: Option<&mut WakeWaiter>) -> bool {
        while self.granted.load(Ordering::SeqCst) <= self.taken {
            if w.as_mut().is_some_and(|w| w.take()) {
                return true;
            }
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.taken += 1;
        let now = self.now.load(Ordering::SeqCst);
        self.now.store(now.max(deadline_ns), Ordering::SeqCst);
        false
    }
}

impl Clock for StepClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn sleep_until(&mut self, deadline_ns: u64) {
        self.step_or_wake(deadline_ns, None);
    }
    fn wait_until(&mut self, deadline_ns: u64, w: &mut WakeWaiter) -> bool {
        self.step_or_wake(deadline_ns, Some(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 20_000_000;

    #[test]
    fn helpers_keep_off_only_the_guard_before_a_deadline() {
        let (d, g) = (100 * P, 2_000_000);
        // inside the guard: until just past the deadline
        assert_eq!(keep_off_pause(d, d - 1, g), 1 + AFTER_DEADLINE_NS);
        assert_eq!(keep_off_pause(d, d - g + 1, g), g - 1 + AFTER_DEADLINE_NS);
        // earlier, at or past the deadline, or no deadline yet: at once
        assert_eq!(keep_off_pause(d, d - g, g), 0);
        assert_eq!(keep_off_pause(d, d, g), 0);
        assert_eq!(keep_off_pause(d, d + 1, g), 0);
        assert_eq!(keep_off_pause(0, d, g), 0);
    }

    #[test]
    fn on_time_frames_keep_the_grid() {
        let mut t = Ticker::new(1_000, P);
        for i in 1..=1000u64 {
            // work finishing anywhere inside the period does not shift it
            let now = t.deadline() + (i * 7919) % P;
            assert_eq!(t.advance(now), 0);
            assert_eq!(t.deadline(), 1_000 + i * P);
        }
    }

    #[test]
    fn a_late_frame_skips_ticks_without_catch_up() {
        let mut t = Ticker::new(0, P);
        // finished 2.5 periods after its deadline: deadlines P and 2P are
        // gone; next is 3P, on the original grid
        assert_eq!(t.advance(5 * P / 2), 2);
        assert_eq!(t.deadline(), 3 * P);
        // finishing exactly at the next deadline is not late
        assert_eq!(t.advance(4 * P), 0);
        assert_eq!(t.deadline(), 4 * P);
    }

    #[test]
    fn mock_clock_sleeps_to_deadline_plus_injected_lateness() {
        let mut c = MockClock::new(100);
        c.sleep_until(50);
        assert_eq!(c.now_ns(), 100, "a past deadline does not move time back");
        c.sleep_until(1_000);
        assert_eq!(c.now_ns(), 1_000);
        c.make_next_wake_late(7);
        c.sleep_until(2_000);
        assert_eq!(c.now_ns(), 2_007);
        c.sleep_until(3_000);
        assert_eq!(c.now_ns(), 3_000, "lateness applies once");
    }

    #[test]
    fn a_drifting_clock_runs_fast_by_its_ppm_and_converts_back() {
        let c = DriftClock::new(200);
        let real = c.base + 10_000_000_000;
        assert_eq!(c.from_real(real), c.base + 10_002_000_000);
        let t = c.from_real(real);
        assert!(c.to_real(t).abs_diff(real) <= 1, "{} {real}", c.to_real(t));
        let slow = DriftClock::new(-200);
        assert_eq!(
            slow.from_real(slow.base + 1_000_000_000),
            slow.base + 999_800_000
        );
    }

    #[test]
    fn monotonic_sleep_reaches_its_deadline() {
        let mut c = Monotonic;
        let d = c.now_ns() + 1_000_000;
        c.sleep_until(d);
        assert!(c.now_ns() >= d);
    }

    #[test]
    fn step_clock_waits_for_grants() {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = StepClock::new(stop.clone());
        let mut p = c.clone();
        let h = std::thread::spawn(move || {
            p.sleep_until(5);
            p.sleep_until(10);
            p.now_ns()
        });
        c.grant(2);
        assert_eq!(h.join().unwrap(), 10);
        // with no grant left, a stop ends the wait
        let mut p = c.clone();
        let h = std::thread::spawn(move || p.sleep_until(20));
        stop.store(true, Ordering::SeqCst);
        h.join().unwrap();
    }
}
