//! The raw wake-up log: every tick's deadline, wake-up and hand-out time,
//! kept exactly (the [`crate::stats`] histogram keeps values to within
//! 12.5 %), so a benchmark can set the player's wake-ups beside
//! cyclictest's sample by sample.
//!
//! A test and benchmark aid (`rowplay play --wake-log PATH`, hidden). The
//! buffer is made and written to before the loop starts, owned by the
//! player, and filled by the frame loop with plain stores: no allocation,
//! lock, system call or page fault per tick. When full it keeps the newest
//! entries and counts the ones it overwrote.

use std::io::{self, Write};

/// Entries kept by `--wake-log`: 21.8 minutes at 50 Hz (a 10-minute soak
/// is 30,000 ticks), 1.5 MiB.
pub const WAKE_LOG_CAPACITY: usize = 1 << 16;

/// One tick: its deadline, when the loop woke, when the frame was handed to
/// the first output (CLOCK_MONOTONIC ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WakeRecord {
    /// The tick's deadline.
    pub deadline_ns: u64,
    /// When the frame loop woke for it (its wait returned).
    pub woke_ns: u64,
    /// When the frame was handed out.
    pub sent_ns: u64,
}

/// A fixed-capacity ring of [`WakeRecord`]s.
#[derive(Debug)]
pub struct WakeLog {
    buf: Vec<WakeRecord>,
    /// Records pushed in all (the next one goes to `pushed % capacity`).
    pushed: u64,
}

impl WakeLog {
    /// A log of `capacity` entries (at least one), allocated and written
    /// here so that no page of it is first touched inside the loop.
    pub fn new(capacity: usize) -> WakeLog {
        // A non-zero fill: an all-zero `vec!` would come from calloc as
        // untouched pages that fault on their first write in the loop.
        let fill = WakeRecord {
            deadline_ns: u64::MAX,
            woke_ns: u64::MAX,
            sent_ns: u64::MAX,
        };
        WakeLog {
            buf: vec![fill; capacity.max(1)],
            pushed: 0,
        }
    }

    /// Entries it holds at most.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Record one tick (three stores; never allocates).
    pub fn push(&mut self, deadline_ns: u64, woke_ns: u64, sent_ns: u64) {
        let i = (self.pushed % self.buf.len() as u64) as usize;
        self.buf[i] = WakeRecord {
            deadline_ns,
            woke_ns,
            sent_ns,
        };
        self.pushed += 1;
    }

    /// Ticks recorded in all, kept or not.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Oldest ticks overwritten because the log was full.
    pub fn overwritten(&self) -> u64 {
        self.pushed.saturating_sub(self.buf.len() as u64)
    }

    /// The kept records, oldest first.
    pub fn records(&self) -> impl Iterator<Item = &WakeRecord> {
        let cap = self.buf.len();
        let kept = self.pushed.min(cap as u64) as usize;
        let start = if self.pushed > cap as u64 {
            (self.pushed % cap as u64) as usize
        } else {
            0
        };
        (0..kept).map(move |k| &self.buf[(start + k) % cap])
    }

    /// Write the kept records as CSV: a header line
    /// `deadline_ns,woke_ns,sent_ns`, then one line per tick, oldest first.
    /// A comment line first says how many older ticks were overwritten,
    /// when any were.
    pub fn write_csv(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.overwritten() > 0 {
            writeln!(w, "# {} older ticks overwritten", self.overwritten())?;
        }
        writeln!(w, "deadline_ns,woke_ns,sent_ns")?;
        for r in self.records() {
            writeln!(w, "{},{},{}", r.deadline_ns, r.woke_ns, r.sent_ns)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(l: &WakeLog) -> String {
        let mut v = Vec::new();
        l.write_csv(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn keeps_every_tick_in_order_until_full() {
        let mut l = WakeLog::new(4);
        l.push(20, 25, 30);
        l.push(40, 41, 47);
        assert_eq!(l.pushed(), 2);
        assert_eq!(l.overwritten(), 0);
        assert_eq!(
            l.records().copied().collect::<Vec<_>>(),
            vec![
                WakeRecord {
                    deadline_ns: 20,
                    woke_ns: 25,
                    sent_ns: 30
                },
                WakeRecord {
                    deadline_ns: 40,
                    woke_ns: 41,
                    sent_ns: 47
                },
            ]
        );
        assert_eq!(csv(&l), "deadline_ns,woke_ns,sent_ns\n20,25,30\n40,41,47\n");
    }

    #[test]
    fn a_full_log_keeps_the_newest_and_counts_the_rest() {
        let mut l = WakeLog::new(3);
        for k in 1..=7u64 {
            l.push(k * 10, k * 10 + 1, k * 10 + 2);
        }
        assert_eq!(l.capacity(), 3);
        assert_eq!(l.pushed(), 7);
        assert_eq!(l.overwritten(), 4);
        let d: Vec<u64> = l.records().map(|r| r.deadline_ns).collect();
        assert_eq!(d, vec![50, 60, 70]);
        assert_eq!(
            csv(&l),
            "# 4 older ticks overwritten\ndeadline_ns,woke_ns,sent_ns\n50,51,52\n60,61,62\n70,71,72\n"
        );
    }

    #[test]
    fn a_zero_capacity_holds_one() {
        let mut l = WakeLog::new(0);
        l.push(1, 2, 3);
        l.push(4, 5, 6);
        assert_eq!(l.records().count(), 1);
        assert_eq!(l.records().next().unwrap().deadline_ns, 4);
    }
}
