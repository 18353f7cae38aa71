//! `rowplay selftest`: check the SPI wiring and the strip on the real Pi.
//!
//! - `selftest spi` ([`spi_loopback`]): with one jumper wire from MOSI to
//!   MISO, sends frames for the configured chip with full-duplex transfers
//!   and checks that what comes back equals the encoder's output byte for
//!   byte, then reports how long a frame write takes.
//! - `selftest leds` ([`leds_walk`]): a slow walk of red, green, blue and
//!   white along the strip, to check chip, colour order and LED count by eye.

use crate::color::Pipeline;
use crate::output::chip::{Encoder, WireFrame};
use crate::output::spi::{self, SpiError, SpiParams};
use crate::output::{FrameMeta, Output, OutputError};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Wiring for the loopback test, printed when it fails.
pub const WIRING: &str = "connect MOSI to MISO with one jumper wire: on SPI0 GPIO10 (physical pin 19) \
to GPIO9 (physical pin 21); on SPI1 GPIO20 (pin 38) to GPIO19 (pin 35); disconnect the strip's data line";

/// The first place the read-back differs from what was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Byte offset in the frame.
    pub offset: usize,
    /// Byte sent there (`None` past the end of what was sent).
    pub sent: Option<u8>,
    /// Byte read back there (`None` past the end of what was read).
    pub received: Option<u8>,
    /// How many bytes differ in all (length difference included).
    pub differing: usize,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |b: Option<u8>| b.map_or("nothing".to_string(), |b| format!("{b:#04x}"));
        write!(
            f,
            "first difference at byte {}: sent {}, read back {} ({} bytes differ)",
            self.offset,
            show(self.sent),
            show(self.received),
            self.differing
        )
    }
}

/// Compare a frame sent with what the loopback read back.
pub fn compare(sent: &[u8], received: &[u8]) -> Option<Mismatch> {
    let common = sent.len().min(received.len());
    let mut differing = sent.len().max(received.len()) - common;
    let mut first = None;
    for (i, (a, b)) in sent.iter().zip(received).enumerate() {
        if a != b {
            differing += 1;
            first.get_or_insert(i);
        }
    }
    let offset = first.or((differing > 0).then_some(common))?;
    Some(Mismatch {
        offset,
        sent: sent.get(offset).copied(),
        received: received.get(offset).copied(),
        differing,
    })
}

/// What a passed loopback measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoopbackReport {
    /// Frames sent and checked.
    pub frames: usize,
    /// Bytes per frame.
    pub frame_len: usize,
    /// Clock requested.
    pub requested_hz: u32,
    /// Fastest frame transfer.
    pub min: Duration,
    /// Mean frame transfer.
    pub avg: Duration,
    /// Slowest frame transfer.
    pub max: Duration,
}

impl fmt::Display for LoopbackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The wire time at the requested clock, to compare the measurement with.
        let wire_us = self.frame_len as f64 * 8.0 * 1e6 / f64::from(self.requested_hz.max(1));
        write!(
            f,
            "{} frames of {} bytes read back intact; write time min {:?} avg {:?} max {:?} \
             (wire time at {} Hz: {:.0} us)",
            self.frames, self.frame_len, self.min, self.avg, self.max, self.requested_hz, wire_us
        )
    }
}

/// A failed self-test.
#[derive(Debug)]
pub enum SelftestError {
    /// The SPI device could not be opened.
    Spi(SpiError),
    /// A transfer failed.
    Transfer(String),
    /// The read-back differed in this frame.
    Mismatch {
        /// Frame number.
        frame: usize,
        /// Where.
        mismatch: Mismatch,
    },
}

impl fmt::Display for SelftestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelftestError::Spi(e) => write!(f, "{e}"),
            SelftestError::Transfer(e) => write!(f, "SPI transfer failed: {e}"),
            SelftestError::Mismatch { frame, mismatch } => {
                write!(f, "loopback frame {frame}: {mismatch}; {WIRING}")
            }
        }
    }
}

impl std::error::Error for SelftestError {}

/// A test row for frame `f`: every byte value turns up within a few frames.
fn test_row(f: usize, out: &mut [u8]) {
    for (i, v) in out.iter_mut().enumerate() {
        *v = (i.wrapping_mul(37).wrapping_add(f.wrapping_mul(11))) as u8;
    }
}

/// The SPI loopback test on `/dev/spidev{bus}.{cs}`. See the module docs.
pub fn spi_loopback(
    params: &SpiParams,
    encoder: &Encoder,
    frames: usize,
) -> Result<LoopbackReport, SelftestError> {
    spi_loopback_at(
        Path::new(spi::DEV_DIR),
        Path::new(spi::BUFSIZ_PATH),
        params,
        encoder,
        frames,
    )
}

/// [`spi_loopback`] with the device directory and `bufsiz` file given.
pub fn spi_loopback_at(
    dev_dir: &Path,
    sysfs_path: &Path,
    params: &SpiParams,
    encoder: &Encoder,
    frames: usize,
) -> Result<LoopbackReport, SelftestError> {
    let len = encoder.frame_len();
    let dev = spi::open_spi(dev_dir, sysfs_path, params, len).map_err(SelftestError::Spi)?;
    let mut row = vec![0; encoder.leds * encoder.channels()];
    let mut wire = WireFrame::new(encoder.clone());
    let mut received = vec![0; len];
    let (mut min, mut max, mut total) = (Duration::MAX, Duration::ZERO, Duration::ZERO);
    for f in 0..frames {
        test_row(f, &mut row);
        let sent = wire.encode(&row);
        received.fill(0);
        let t = Instant::now();
        dev.transfer(&mut received, sent)
            .map_err(|e| SelftestError::Transfer(e.to_string()))?;
        let took = t.elapsed();
        if let Some(mismatch) = compare(sent, &received) {
            return Err(SelftestError::Mismatch { frame: f, mismatch });
        }
        min = min.min(took);
        max = max.max(took);
        total += took;
    }
    Ok(LoopbackReport {
        frames,
        frame_len: len,
        requested_hz: params.hz,
        min: if frames == 0 { Duration::ZERO } else { min },
        avg: total / frames.max(1) as u32,
        max,
    })
}

/// The walk's colours, as RGBW source pixels: the pipeline turns W into R+G+B
/// on an RGB strip and into the W channel on an RGBW one.
pub const WALK_COLORS: [[u8; 4]; 4] = [
    [255, 0, 0, 0],
    [0, 255, 0, 0],
    [0, 0, 255, 0],
    [0, 0, 0, 255],
];

/// Light one LED at a time, `step` apart, in red, then green, blue and
/// white, along `leds` LEDs; then all off. Stops early when `stop` is set.
pub fn leds_walk(
    out: &mut dyn Output,
    pipeline: &Pipeline,
    leds: usize,
    step: Duration,
    stop: &AtomicBool,
) -> Result<(), OutputError> {
    let mut src = vec![0u8; leds * 4];
    let mut px = vec![0u8; leds * pipeline.out_channels()];
    let mut frame = 0u32;
    'walk: for color in WALK_COLORS {
        for i in 0..leds {
            if stop.load(Ordering::Relaxed) {
                break 'walk;
            }
            src.fill(0);
            src[i * 4..i * 4 + 4].copy_from_slice(&color);
            pipeline.apply(&src, 4, &mut px);
            out.prepare(&px);
            out.send(&FrameMeta {
                t_ns: 0,
                array: crate::output::ALL_OFF,
                row: frame,
            })?;
            frame = frame.wrapping_add(1);
            std::thread::sleep(step);
        }
    }
    px.fill(0);
    out.prepare(&px);
    out.send(&FrameMeta {
        t_ns: 0,
        array: crate::output::ALL_OFF,
        row: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::ColorSettings;
    use crate::output::chip::{ChipKind, ChipSettings};

    #[test]
    fn compare_finds_the_first_difference() {
        assert_eq!(compare(&[1, 2, 3], &[1, 2, 3]), None);
        assert_eq!(
            compare(&[1, 2, 3, 4], &[1, 9, 3, 8]),
            Some(Mismatch {
                offset: 1,
                sent: Some(2),
                received: Some(9),
                differing: 2
            })
        );
        // A short read-back: the first missing byte is the difference.
        assert_eq!(
            compare(&[1, 2, 3], &[1]),
            Some(Mismatch {
                offset: 1,
                sent: Some(2),
                received: None,
                differing: 2
            })
        );
        // Nothing connected reads back zeros.
        let m = compare(&[0, 0, 0, 0, 0xFF], &[0; 5]).unwrap();
        assert_eq!((m.offset, m.differing), (4, 1));
    }

    #[test]
    fn mismatch_error_tells_how_to_wire() {
        let e = SelftestError::Mismatch {
            frame: 3,
            mismatch: compare(&[1], &[0]).unwrap(),
        };
        let msg = e.to_string();
        assert!(msg.contains("byte 0: sent 0x01, read back 0x00"), "{msg}");
        assert!(msg.contains("pin 19") && msg.contains("pin 21"), "{msg}");
    }

    #[test]
    fn loopback_without_spi_says_to_enable_it() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let enc = Encoder::new(ChipSettings::new(ChipKind::Apa102), 10);
        let p = SpiParams {
            bus: 0,
            cs: 0,
            hz: 8_000_000,
            mode: 0,
        };
        let e = spi_loopback_at(d, &d.join("bufsiz"), &p, &enc, 5).unwrap_err();
        assert!(
            matches!(e, SelftestError::Spi(SpiError::NoDevice(_))),
            "{e}"
        );
    }

    /// Keeps what it was sent.
    #[derive(Default)]
    struct Keep(Vec<Vec<u8>>, Vec<u8>);
    impl Output for Keep {
        fn prepare(&mut self, pixels: &[u8]) {
            self.1 = pixels.to_vec();
        }
        fn send(&mut self, _meta: &FrameMeta) -> Result<(), OutputError> {
            self.0.push(self.1.clone());
            Ok(())
        }
    }

    #[test]
    fn walk_lights_one_led_per_frame_in_each_colour_then_clears() {
        let mut out = Keep::default();
        let p = Pipeline::new(ColorSettings::default(), 3);
        leds_walk(&mut out, &p, 2, Duration::ZERO, &AtomicBool::new(false)).unwrap();
        let f = &out.0;
        assert_eq!(f.len(), 4 * 2 + 1);
        assert_eq!(f[0], [255, 0, 0, 0, 0, 0]);
        assert_eq!(f[1], [0, 0, 0, 255, 0, 0]);
        assert_eq!(f[3], [0, 0, 0, 0, 255, 0]);
        assert_eq!(f[6], [255, 255, 255, 0, 0, 0]); // W on an RGB strip
        assert_eq!(f[8], [0; 6]);

        let mut out = Keep::default();
        let p = Pipeline::new(ColorSettings::default(), 4);
        leds_walk(&mut out, &p, 1, Duration::ZERO, &AtomicBool::new(true)).unwrap();
        assert_eq!(out.0, [vec![0; 4]], "stopped at once: only the clear");
    }
}
