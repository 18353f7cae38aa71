//! `term`: a live preview on a terminal, one line of 24-bit colour blocks per
//! frame, scrolling, so an array reads like the image it is.
//!
//! Formatting and printing happen on the writer thread (see [`super::record`]);
//! the frame loop only copies pixels. When the terminal is slower than the
//! frame rate, frames are dropped and counted, never waited for.

use super::record::{Rec, Recorder, Sink};
use super::ALL_OFF;
use crate::library::Library;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Columns kept for the label after the colour blocks.
const LABEL_COLS: usize = 28;

/// Prints frames as coloured blocks.
pub struct TermSink {
    channels: usize,
    cols: usize,
    lib: Arc<Mutex<Arc<Library>>>,
    line: String,
    out: io::Stdout,
}

/// Terminal width of stdout, or 80.
pub fn terminal_width() -> usize {
    // SAFETY: winsize is plain data, ioctl writes into it or fails.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ on fd 1 with a valid winsize pointer.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    if rc == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

impl TermSink {
    /// A preview of `channels`-per-LED frames, labelled with names from `lib`.
    pub fn new(channels: usize, lib: Arc<Mutex<Arc<Library>>>) -> TermSink {
        TermSink {
            channels,
            cols: terminal_width().saturating_sub(LABEL_COLS).max(8),
            lib,
            line: String::with_capacity(64 * 1024),
            out: io::stdout(),
        }
    }

    /// Format one frame as a line (without newline) into `self.line`.
    pub fn format(&mut self, rec: &Rec) {
        self.line.clear();
        let px = &rec.buf[..rec.len];
        let leds = px.len() / self.channels.max(1);
        // Wider strips than the terminal: average groups of LEDs per cell.
        let per_cell = leds.div_ceil(self.cols).max(1);
        let cells = leds.div_ceil(per_cell);
        // Narrow strips: two columns per LED, which reads as a square block.
        let block = if cells * 2 <= self.cols { "  " } else { " " };
        for cell in 0..cells {
            let (mut r, mut g, mut b, mut n) = (0u32, 0u32, 0u32, 0u32);
            for led in cell * per_cell..((cell + 1) * per_cell).min(leds) {
                let p = &px[led * self.channels..(led + 1) * self.channels];
                // RGBW: show white added to each colour, as the eye sees it.
                let w = if self.channels == 4 { p[3] as u32 } else { 0 };
                r += (p[0] as u32 + w).min(255);
                g += (p[1] as u32 + w).min(255);
                b += (p[2] as u32 + w).min(255);
                n += 1;
            }
            let n = n.max(1);
            let _ = write!(self.line, "\x1b[48;2;{};{};{}m{block}", r / n, g / n, b / n);
        }
        self.line.push_str("\x1b[0m ");
        if rec.meta.array == ALL_OFF {
            self.line.push_str("(off)");
        } else {
            let lib = self
                .lib
                .lock()
                .map(|l| l.clone())
                .unwrap_or_else(|e| e.into_inner().clone());
            let name = lib.info(rec.meta.array).map(|i| i.name).unwrap_or("?");
            let short: String = name.chars().take(LABEL_COLS - 8).collect();
            let _ = write!(self.line, "{short} {}", rec.meta.row);
        }
    }
}

impl Sink for TermSink {
    fn write(&mut self, rec: &Rec) -> io::Result<()> {
        self.format(rec);
        let mut o = self.out.lock();
        o.write_all(self.line.as_bytes())?;
        o.write_all(b"\n")?;
        o.flush()
    }
    fn close(&mut self) {
        let _ = self.out.lock().write_all(b"\x1b[0m");
    }
}

/// Start a terminal preview output.
pub fn start(channels: usize, leds: usize, lib: Arc<Mutex<Arc<Library>>>) -> io::Result<Recorder> {
    Recorder::start(TermSink::new(channels, lib), leds * channels, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{Array, NamedArray};
    use crate::output::FrameMeta;

    #[test]
    fn a_frame_becomes_coloured_cells_and_a_label() {
        let dir = std::env::temp_dir().join(format!("rowplay-term-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.rowpack");
        let a = NamedArray {
            name: "wave".into(),
            array: Array {
                rows: 1,
                leds: 2,
                channels: 3,
                data: vec![0; 6],
            },
            period_ns: None,
        };
        crate::pack::pack_arrays(vec![a], &p, &Default::default()).unwrap();
        let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
        let mut t = TermSink::new(4, Arc::new(Mutex::new(lib)));
        t.cols = 80;
        let rec = Rec {
            meta: FrameMeta {
                t_ns: 0,
                array: 0,
                row: 7,
            },
            len: 8,
            // RGBW: white is added to each colour for display
            buf: vec![255, 0, 0, 0, 10, 20, 30, 5].into_boxed_slice(),
        };
        t.format(&rec);
        assert_eq!(
            t.line,
            "\x1b[48;2;255;0;0m  \x1b[48;2;15;25;35m  \x1b[0m wave 7"
        );
        let off = Rec {
            meta: FrameMeta {
                t_ns: 0,
                array: ALL_OFF,
                row: 0,
            },
            ..rec
        };
        t.format(&off);
        assert!(t.line.ends_with("(off)"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
