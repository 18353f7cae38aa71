//! Playback statistics: fixed-size atomic counters and a latency histogram,
//! updated by the frame loop without allocating or locking, read by the
//! control thread (`status`) and written to `--stats-json` at exit.

use serde::Serialize;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Sub-buckets per power of two: values are kept to within 1/8 (12.5 %).
const SUB: usize = 8;
/// Buckets for 0..2^40 ns (18 minutes), far past any wake-up latency.
const BUCKETS: usize = 40 * SUB;

/// A log-linear histogram of nanosecond values.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    max: AtomicU64,
    total: AtomicU64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max", &self.max())
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            max: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let log = 63 - v.leading_zeros() as usize; // >= 3
    let sub = ((v >> (log - 3)) & (SUB as u64 - 1)) as usize;
    ((log - 2) * SUB + sub).min(BUCKETS - 1)
}

/// The largest value that lands in bucket `b`.
fn bucket_top(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let log = b / SUB + 2;
    let sub = (b % SUB) as u64;
    ((SUB as u64 + sub + 1) << (log - 3)) - 1
}

impl Histogram {
    /// Count one value.
    pub fn record(&self, v: u64) {
        self.counts[bucket(v)].fetch_add(1, Relaxed);
        self.max.fetch_max(v, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }
    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total.load(Relaxed)
    }
    /// Largest value seen.
    pub fn max(&self) -> u64 {
        self.max.load(Relaxed)
    }
    /// The value at quantile `q` (0..1), as the top of its bucket, capped at
    /// the maximum seen: never below the true quantile, at most 12.5 % above.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c.load(Relaxed);
            if seen >= rank {
                return bucket_top(b).min(self.max());
            }
        }
        self.max()
    }
    /// p50, p99, p999, max.
    pub fn summary(&self) -> LatencySummary {
        LatencySummary {
            p50: self.quantile(0.5),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max(),
        }
    }
}

/// Latency quantiles in ns.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Worst.
    pub max: u64,
}

/// Counters the player updates and everyone else reads.
#[derive(Default)]
pub struct Stats {
    /// Frames handed to the output.
    pub frames: AtomicU64,
    /// Deadlines the loop has passed (a live tick in push mode hands out
    /// nothing, so this can run ahead of `frames`).
    pub ticks: AtomicU64,
    /// Frames handed out more than a quarter period after their deadline.
    pub deadline_misses: AtomicU64,
    /// Frames that repeated the previous one because a row was not loaded.
    pub underruns: AtomicU64,
    /// Array switches by command.
    pub switches: AtomicU64,
    /// Ticks skipped after late frames.
    pub skipped_ticks: AtomicU64,
    /// Output writes that failed.
    pub output_errors: AtomicU64,
    /// Frames the output's background writer could not take.
    pub output_dropped: AtomicU64,
    /// Write errors of the output's background writer (full disk).
    pub output_write_errors: AtomicU64,
    /// Commands applied.
    pub commands: AtomicU64,
    /// Arrays skipped because their body was bad.
    pub skipped_arrays: AtomicU64,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// The value of `switches` when row 0 of the latest switch was handed
    /// out (`switch_seq` on the control side counts the same switches).
    pub shown_seq: AtomicU64,
    /// How late each wake-up was against its deadline.
    pub wake_latency: Histogram,
    /// The frame loop's work per frame: from its wake-up to its next sleep
    /// (commands, every output's send, preparing the next frame). Timed by
    /// a [`LoopTimer`] around the player's clock.
    pub loop_ns: Histogram,
    /// Live frames handed to the outputs.
    pub live_frames: AtomicU64,
    /// Live frames: from the packet that completed one to its hand-off.
    pub live_latency: Histogram,
    /// 1 while live input is shown instead of playback.
    pub showing_live: AtomicU32,
    /// Each output's counters, in the order frames are written (set once,
    /// when the player is made).
    pub outputs: std::sync::OnceLock<Vec<Arc<OutputStats>>>,
    /// When the most recent deadline misses happened.
    pub misses: MissLog,
    /// Array of the last frame (u32::MAX = all-off).
    pub array: AtomicU32,
    /// Row of the last frame.
    pub row: AtomicU32,
    /// The period of the frame last shown, in ns.
    pub period_ns: AtomicU64,
    /// Brightness in thousandths.
    pub brightness_milli: AtomicU32,
    /// One of the `STATE_*` constants.
    pub state: AtomicU32,
    /// The deadline the frame loop sleeps toward, on CLOCK_MONOTONIC (0:
    /// none yet), so that the control thread can keep its own work off
    /// the moment before it (see `control::server`).
    pub next_deadline_ns: AtomicU64,
}

/// How many deadline misses [`MissLog`] remembers.
pub const MISS_LOG_LEN: usize = 64;

/// The times of the most recent deadline misses, so that each one can be
/// set beside what else the machine was doing then (a kernel trace, the
/// system log). Written by the frame loop only (three relaxed stores, no
/// allocation); read after playback, or while it runs, when an entry being
/// written may be seen half-updated.
pub struct MissLog {
    deadline: [AtomicU64; MISS_LOG_LEN],
    woke: [AtomicU64; MISS_LOG_LEN],
    sent: [AtomicU64; MISS_LOG_LEN],
    count: AtomicU64,
}

impl Default for MissLog {
    fn default() -> Self {
        MissLog {
            deadline: std::array::from_fn(|_| AtomicU64::new(0)),
            woke: std::array::from_fn(|_| AtomicU64::new(0)),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
        }
    }
}

/// One deadline miss: the deadline, when the loop woke, when the frame was
/// handed to the output (CLOCK_MONOTONIC ns, like capture records).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Miss {
    pub deadline_ns: u64,
    pub woke_ns: u64,
    pub sent_ns: u64,
}

impl MissLog {
    /// Log one miss (the frame loop is the only writer).
    pub fn record(&self, m: Miss) {
        let n = self.count.load(Relaxed);
        let i = (n % MISS_LOG_LEN as u64) as usize;
        self.deadline[i].store(m.deadline_ns, Relaxed);
        self.woke[i].store(m.woke_ns, Relaxed);
        self.sent[i].store(m.sent_ns, Relaxed);
        self.count.store(n + 1, Relaxed);
    }
    /// The remembered misses, oldest first.
    pub fn recent(&self) -> Vec<Miss> {
        let n = self.count.load(Relaxed);
        let first = n.saturating_sub(MISS_LOG_LEN as u64);
        (first..n)
            .map(|k| {
                let i = (k % MISS_LOG_LEN as u64) as usize;
                Miss {
                    deadline_ns: self.deadline[i].load(Relaxed),
                    woke_ns: self.woke[i].load(Relaxed),
                    sent_ns: self.sent[i].load(Relaxed),
                }
            })
            .collect()
    }
}

/// [`Stats::state`]: playing.
pub const STATE_PLAYING: u32 = 0;
/// [`Stats::state`]: paused (holding a row).
pub const STATE_PAUSED: u32 = 1;
/// [`Stats::state`]: stopped (all off).
pub const STATE_STOPPED: u32 = 2;
/// [`Stats::state`]: finished the playlist with `--order once` (all off).
pub const STATE_FINISHED: u32 = 3;

/// The player's state as a word, for `status`.
pub fn state_name(s: u32) -> &'static str {
    match s {
        STATE_PLAYING => "playing",
        STATE_PAUSED => "paused",
        STATE_STOPPED => "stopped",
        _ => "finished",
    }
}

/// Counters of one output, in the player's list of outputs.
pub struct OutputStats {
    /// Its kind, as `[[output]] kind` spells it.
    pub kind: &'static str,
    /// First LED of the row it shows.
    pub first: usize,
    /// LEDs it shows.
    pub count: usize,
    /// Frames sent to it.
    pub frames: AtomicU64,
    /// Sends that failed.
    pub errors: AtomicU64,
    /// Frames its background writer could not take.
    pub dropped: AtomicU64,
    /// Write errors of its background writer.
    pub write_errors: AtomicU64,
    /// How long each send took (the frame loop's clock). For an output
    /// with a worker thread this is the hand-off, not the device write.
    pub write_ns: Histogram,
    /// Whether a worker thread writes this output (see
    /// [`crate::output::worker`]).
    pub worker: std::sync::atomic::AtomicBool,
    /// How long each device write took on the worker thread (empty for an
    /// output written by the frame loop itself).
    pub device_ns: Histogram,
}

impl OutputStats {
    /// Fresh counters for an output of `kind` showing `count` LEDs from `first`.
    pub fn new(kind: &'static str, first: usize, count: usize) -> OutputStats {
        OutputStats {
            kind,
            first,
            count,
            frames: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            write_ns: Histogram::default(),
            worker: std::sync::atomic::AtomicBool::new(false),
            device_ns: Histogram::default(),
        }
    }

    /// As JSON: kind, first, count, frames, errors, dropped, write_errors,
    /// write_ns {p50, max, ...}, worker, device_ns {p50, max, ...}.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind,
            "first": self.first,
            "count": self.count,
            "frames": self.frames.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "dropped": self.dropped.load(Relaxed),
            "write_errors": self.write_errors.load(Relaxed),
            "write_ns": serde_json::to_value(self.write_ns.summary()).unwrap_or_default(),
            "worker": self.worker.load(Relaxed),
            "device_ns": serde_json::to_value(self.device_ns.summary()).unwrap_or_default(),
        })
    }
}

impl Stats {
    /// The counters as JSON fields, shared by `status` and `--stats-json`.
    pub fn counters_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (k, c) in [
            ("frames", &self.frames),
            ("ticks", &self.ticks),
            ("deadline_misses", &self.deadline_misses),
            ("underruns", &self.underruns),
            ("switches", &self.switches),
            ("skipped_ticks", &self.skipped_ticks),
            ("output_errors", &self.output_errors),
            ("output_dropped", &self.output_dropped),
            ("output_write_errors", &self.output_write_errors),
            ("skipped_arrays", &self.skipped_arrays),
            ("reloads", &self.reloads),
            ("shown_seq", &self.shown_seq),
            ("live_frames", &self.live_frames),
        ] {
            m.insert(k.into(), c.load(Relaxed).into());
        }
        // Where the frame grid lies on CLOCK_MONOTONIC: a benchmark places
        // cyclictest's grid beside it (bench/samecpu.py), and anything
        // else that wants to act between frames can.
        m.insert(
            "next_deadline_ns".into(),
            self.next_deadline_ns.load(Relaxed).into(),
        );
        m.insert(
            "wake_latency_ns".into(),
            serde_json::to_value(self.wake_latency.summary()).unwrap_or_default(),
        );
        m.insert(
            "loop_ns".into(),
            serde_json::to_value(self.loop_ns.summary()).unwrap_or_default(),
        );
        m.insert(
            "live_latency_ns".into(),
            serde_json::to_value(self.live_latency.summary()).unwrap_or_default(),
        );
        m.insert(
            "showing".into(),
            if self.showing_live.load(Relaxed) != 0 {
                "live"
            } else {
                "playback"
            }
            .into(),
        );
        if let Some(outs) = self.outputs.get() {
            m.insert(
                "outputs".into(),
                outs.iter().map(|o| o.json()).collect::<Vec<_>>().into(),
            );
        }
        m
    }

    /// Add one to a counter.
    #[inline]
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }
}

/// A clock around the player's clock that times the frame loop's work
/// into [`Stats::loop_ns`]: from the first reading of the time after a
/// sleep or wait (the loop reads it at once on waking) to the next one. A
/// wait that a command or live frame ends early starts a new sample at the
/// loop's next reading.
///
/// It also reads the clock the moment a sleep or wait returns, where
/// cyclictest reads its own: that is the wake-up the loop reports
/// ([`Clock::returned_ns`](crate::clock::Clock::returned_ns)). Anything
/// between the return and the loop's hand-out (the loop's own work, or
/// a machine that holds the thread while it reads its memory) is in the
/// hand-out time, not in the wake-up latency.
pub struct LoopTimer<C: crate::clock::Clock> {
    inner: C,
    stats: Arc<Stats>,
    /// When the last sleep or wait returned.
    returned: std::cell::Cell<Option<u64>>,
    /// When the loop woke, once it has read the time since its last sleep.
    woke: std::cell::Cell<Option<u64>>,
    /// Whether the loop has slept yet and not read the time since.
    slept: std::cell::Cell<bool>,
}

impl<C: crate::clock::Clock> LoopTimer<C> {
    /// Time the loop that sleeps on `inner`, into `stats`.
    pub fn new(inner: C, stats: Arc<Stats>) -> LoopTimer<C> {
        LoopTimer {
            inner,
            stats,
            returned: std::cell::Cell::new(None),
            woke: std::cell::Cell::new(None),
            slept: std::cell::Cell::new(false),
        }
    }
}

impl<C: crate::clock::Clock> crate::clock::Clock for LoopTimer<C> {
    fn now_ns(&self) -> u64 {
        let t = self.inner.now_ns();
        if self.slept.replace(false) {
            self.woke.set(Some(t));
        }
        t
    }

    fn sleep_until(&mut self, deadline_ns: u64) {
        self.work_done();
        self.inner.sleep_until(deadline_ns);
        self.returned.set(Some(self.inner.now_ns()));
        self.slept.set(true);
    }

    fn wait_until(&mut self, deadline_ns: u64, w: &mut crate::handoff::WakeWaiter) -> bool {
        self.work_done();
        let woken = self.inner.wait_until(deadline_ns, w);
        self.returned.set(Some(self.inner.now_ns()));
        self.slept.set(true);
        woken
    }

    fn record_ns(&self) -> u64 {
        self.inner.record_ns()
    }

    fn returned_ns(&self) -> Option<u64> {
        self.returned.get()
    }
}

impl<C: crate::clock::Clock> LoopTimer<C> {
    /// The loop is about to sleep: count its work since it woke.
    fn work_done(&mut self) {
        if let Some(w) = self.woke.take() {
            let t = self.inner.now_ns();
            self.stats.loop_ns.record(t.saturating_sub(w));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_timer_counts_from_waking_to_the_next_sleep() {
        use crate::clock::{Clock, MockClock};
        let mock = MockClock::new(0);
        let stats = Arc::new(Stats::default());
        let mut c = LoopTimer::new(mock.clone(), stats.clone());
        // Before the first sleep there is no frame to time.
        c.now_ns();
        mock.advance(5);
        c.sleep_until(100);
        assert_eq!(stats.loop_ns.count(), 0);
        for work in [30u64, 70, 10] {
            let woke = c.now_ns(); // the loop reads the time on waking
            mock.advance(work);
            c.now_ns(); // later readings do not move the start
            assert_eq!(c.now_ns(), woke + work);
            c.sleep_until(woke + 1_000);
        }
        assert_eq!(stats.loop_ns.count(), 3);
        assert_eq!(stats.loop_ns.max(), 70);
        // A sleep without a reading in between counts nothing.
        c.sleep_until(10_000);
        assert_eq!(stats.loop_ns.count(), 3);
        // A wait is timed like a sleep, and a wake still ends it.
        let (k, mut w) = crate::handoff::wake_pair();
        let woke = c.now_ns();
        mock.advance(40);
        k.wake();
        assert!(c.wait_until(woke + 1_000, &mut w));
        assert_eq!(stats.loop_ns.count(), 4);
        assert_eq!(stats.loop_ns.max(), 70);
        c.now_ns();
        assert!(!c.wait_until(woke + 1_000, &mut w));
        assert_eq!(stats.loop_ns.count(), 5);
    }

    #[test]
    fn the_loop_timer_keeps_the_moment_a_sleep_returned() {
        use crate::clock::{Clock, MockClock};
        let mock = MockClock::new(0);
        let mut c = LoopTimer::new(mock.clone(), Arc::new(Stats::default()));
        assert_eq!(c.returned_ns(), None);
        mock.make_next_wake_late(7);
        c.sleep_until(100);
        // Held between the return and the loop's first reading: the
        // wake-up stays where the sleep returned.
        mock.advance(50);
        assert_eq!(c.now_ns(), 157);
        assert_eq!(c.returned_ns(), Some(107));
        let (k, mut w) = crate::handoff::wake_pair();
        k.wake();
        assert!(c.wait_until(1_000, &mut w));
        assert_eq!(c.returned_ns(), Some(157));
        assert!(!c.wait_until(1_000, &mut w));
        assert_eq!(c.returned_ns(), Some(1_000));
    }

    #[test]
    fn the_miss_log_keeps_the_most_recent_misses_oldest_first() {
        let log = MissLog::default();
        assert!(log.recent().is_empty());
        let total = MISS_LOG_LEN as u64 + 5;
        for k in 0..total {
            log.record(Miss {
                deadline_ns: k * 10,
                woke_ns: k * 10 + 1,
                sent_ns: k * 10 + 2,
            });
        }
        let r = log.recent();
        assert_eq!(r.len(), MISS_LOG_LEN);
        assert_eq!(r[0].deadline_ns, 50);
        assert_eq!(r[0].woke_ns, 51);
        assert_eq!(r[0].sent_ns, 52);
        assert_eq!(r[MISS_LOG_LEN - 1].deadline_ns, (total - 1) * 10);
        assert!(r.windows(2).all(|w| w[0].deadline_ns < w[1].deadline_ns));
    }

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut prev = 0;
        for v in 0..100_000u64 {
            assert!(bucket(v) >= prev, "bucket of {v} went down");
            prev = bucket(v);
        }
        let edges = (1..40).map(|s| 1u64 << s).flat_map(|x| [x - 1, x, x + 1]);
        for v in (0..100_000u64).chain(edges) {
            let top = bucket_top(bucket(v));
            assert!(top >= v, "top of bucket of {v} is below it");
            assert!(
                top as f64 <= v as f64 * 1.125 + 1.0,
                "bucket of {v} too wide"
            );
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v * 1000); // 1 us .. 1 ms
        }
        let s = h.summary();
        assert_eq!(s.max, 1_000_000);
        assert!(s.p50 >= 500_000 && s.p50 <= 562_500, "{s:?}");
        assert!(s.p99 >= 990_000 && s.p99 <= 1_000_000, "{s:?}");
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
