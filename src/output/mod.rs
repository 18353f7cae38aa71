//! Outputs: where a frame goes once the colour pipeline has run.
//!
//! An [`Output`] is called by the player in two steps so that the work is
//! done ahead of the deadline: [`Output::prepare`] right after the previous
//! frame went out (encode, copy), and [`Output::send`] at the deadline, which
//! only pushes the prepared bytes. Neither may allocate, lock or log.
//!
//! Hardware: [`spi`] drives the LED chips ([`chip`] dispatches to one module
//! per chip protocol, which share [`order`]). Host outputs make the pipeline visible without hardware:
//! [`term`] (terminal preview), [`record`] (`capture:` pixels and `wire:`
//! encoded bytes, written by a background thread), and [`Null`].
//! [`worker`] gives a hardware output a thread of its own with a one-frame
//! hand-off, so that a slow output cannot delay the others.

pub mod apa102;
pub mod chip;
pub mod decode;
pub mod gpio;
pub mod order;
pub mod record;
pub mod sk9822;
pub mod spi;
pub mod term;
pub mod worker;
pub mod ws2801;
pub mod ws2812;

use std::fmt;

/// The array index recorded for an all-off frame.
pub const ALL_OFF: u32 = u32::MAX;

/// What the player knows about a frame when it sends it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameMeta {
    /// CLOCK_MONOTONIC time the frame was handed to the output, in ns.
    pub t_ns: u64,
    /// Index of the array in the pack, or [`ALL_OFF`].
    pub array: u32,
    /// Row of that array (0 for all-off frames).
    pub row: u32,
}

/// An output failure. Small and allocation-free: it is created inside the
/// frame loop, counted there, and only formatted outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputError {
    /// The device write failed with this errno.
    Io(i32),
    /// The device accepted fewer bytes than the frame has.
    Short {
        /// Bytes written.
        written: usize,
        /// Bytes in the frame.
        expected: usize,
    },
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputError::Io(errno) => {
                write!(f, "{}", std::io::Error::from_raw_os_error(*errno))
            }
            OutputError::Short { written, expected } => {
                write!(f, "short write: {written} of {expected} bytes")
            }
        }
    }
}

impl std::error::Error for OutputError {}

/// Names of arrays by index, for outputs that label frames (the terminal
/// preview). Outputs take pixels and names, never the library itself.
pub trait ArrayNames: Send + Sync {
    /// Call `f` with the name of array `array` (`"?"` when unknown).
    fn with_name(&self, array: u32, f: &mut dyn FnMut(&str));
}

/// A place frames go to. See the module docs for the two-step contract.
pub trait Output: Send {
    /// Take the pixels of the next frame (after the colour pipeline, the
    /// strip's channel count per LED) and get them ready to send. Called
    /// ahead of the deadline. Must not allocate, lock or block.
    fn prepare(&mut self, pixels: &[u8]);

    /// Send the prepared frame now. The only call in the loop that may block
    /// (on the device). Must not allocate or log.
    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError>;

    /// Frames a background writer could not take (its queue was full).
    fn dropped(&self) -> u64 {
        0
    }

    /// Write errors a background writer hit (full disk, closed terminal).
    fn write_errors(&self) -> u64 {
        0
    }

    /// Flush and stop any background writer. Called once, after the loop.
    fn finish(&mut self) {}
}

/// Discards every frame (for benchmarks, and the default when stdout is not
/// a terminal and no hardware is configured).
#[derive(Debug, Default)]
pub struct Null;

impl Output for Null {
    fn prepare(&mut self, _pixels: &[u8]) {}
    fn send(&mut self, _meta: &FrameMeta) -> Result<(), OutputError> {
        Ok(())
    }
}

/// An output that also records: every frame goes to `main`, and the same
/// pixels to `record` (a `wire:` recorder with the same chip), so the record
/// holds exactly what `main` sends. Used by `record = "PATH"` on hardware
/// outputs.
pub struct Tee {
    main: Box<dyn Output>,
    record: Box<dyn Output>,
}

impl Tee {
    /// Send to `main`, record to `record`.
    pub fn new(main: Box<dyn Output>, record: Box<dyn Output>) -> Tee {
        Tee { main, record }
    }
}

impl Output for Tee {
    fn prepare(&mut self, pixels: &[u8]) {
        self.main.prepare(pixels);
        self.record.prepare(pixels);
    }

    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        // The record never blocks (a writer thread); the device goes first.
        let r = self.main.send(meta);
        let _ = self.record.send(meta);
        r
    }

    fn dropped(&self) -> u64 {
        self.main.dropped() + self.record.dropped()
    }

    fn write_errors(&self) -> u64 {
        self.main.write_errors() + self.record.write_errors()
    }

    fn finish(&mut self) {
        self.main.finish();
        self.record.finish();
    }
}
