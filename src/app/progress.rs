//! A progress line on stderr while packing.

use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

/// A progress bar, drawn only on a terminal, at most 10 times a second.
pub struct Progress {
    on: bool,
    last: Option<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// A bar on stderr, if stderr is a terminal.
    pub fn new() -> Progress {
        Progress {
            on: io::stderr().is_terminal(),
            last: None,
        }
    }

    /// `done` of `total` inputs are packed.
    pub fn update(&mut self, done: usize, total: usize) {
        if !self.on || total < 50 {
            return;
        }
        let now = Instant::now();
        if done < total
            && self
                .last
                .is_some_and(|t| now - t < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\rpacking [{}{}] {done}/{total}",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if done == total {
            eprintln!();
        }
    }
}
