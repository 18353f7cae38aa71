//! APA102 / DotStar: two-wire (clock + data) LEDs, 4 bytes per LED.
//!
//! Wire format (APA102 datasheet, "Data transmission method"):
//!
//! | part        | bytes                 | content                              |
//! |-------------|-----------------------|--------------------------------------|
//! | start frame | 4                     | `0x00`                               |
//! | each LED    | 4                     | `0xE0 \| bri5`, then 3 colour bytes   |
//! | end frame   | `ceil(n / 16)`        | `0x00`                               |
//!
//! The colour bytes go in the configured order, BGR by default. Each LED
//! passes the data on delayed by half a clock cycle, so the last of `n` LEDs
//! needs `n / 2` more clock edges after the data: `n / 16` bytes, rounded up.
//! Zeros rather than the datasheet's `0xFF` end frame, so that LEDs past the
//! configured count never read a stray end frame as "full white" (SK9822
//! needs zeros too; see [`super::sk9822`]).
//!
//! `bri5` is the 5-bit global brightness. It stays at 31 by default: the
//! APA102 runs a slow (~580 Hz) current PWM under the fast colour PWM when it
//! is below 31, which shows as flicker on camera; the colour pipeline scales
//! the colour bytes instead.

use super::order::{channel, ColorOrder};

/// Start frame: 32 zero bits (datasheet).
pub const START_FRAME_LEN: usize = 4;
/// Bytes per LED: the brightness byte and three colour bytes.
pub const BYTES_PER_LED: usize = 4;
/// The three high bits of every LED frame's first byte (datasheet: "111").
pub const LED_FRAME_MARKER: u8 = 0xE0;
/// Largest 5-bit global brightness.
pub const MAX_GLOBAL_BRIGHTNESS: u8 = 31;
/// Default SPI clock. The APA102 takes up to ~20 MHz on short wires; 8 MHz
/// is a safe default over a metre or two of strip and keeps a 300-LED frame
/// (1223 bytes) at about 1.2 ms.
pub const DEFAULT_HZ: u32 = 8_000_000;

/// End frame length for `n` LEDs: `n / 2` clock edges, 16 LEDs per byte,
/// rounded up.
pub fn end_frame_len(n: usize) -> usize {
    n.div_ceil(16)
}

/// Bytes of one frame of `n` LEDs.
pub fn frame_len(n: usize) -> usize {
    START_FRAME_LEN + BYTES_PER_LED * n + end_frame_len(n)
}

/// Writes the start frame and `n` LED frames from `pixels` (RGB, 3 per LED;
/// missing LEDs are black) into `out`; returns the bytes written. Shared with
/// SK9822. Stops early, without panicking, if `out` is too short.
pub(crate) fn encode_leds(
    pixels: &[u8],
    n: usize,
    order: ColorOrder,
    bri5: u8,
    out: &mut [u8],
) -> usize {
    let Some(start) = out.get_mut(..START_FRAME_LEN) else {
        return 0;
    };
    start.fill(0);
    let header = LED_FRAME_MARKER | (bri5 & MAX_GLOBAL_BRIGHTNESS);
    let leds = out[START_FRAME_LEN..]
        .chunks_exact_mut(BYTES_PER_LED)
        .take(n);
    let mut written = START_FRAME_LEN;
    for (i, led) in leds.enumerate() {
        led[0] = header;
        for (byte, &src) in led[1..].iter_mut().zip(&order.map) {
            *byte = channel(pixels, 3, i, src);
        }
        written += BYTES_PER_LED;
    }
    written
}

/// Encode one frame of `n` LEDs into `out` ([`frame_len`] bytes).
pub fn encode(pixels: &[u8], n: usize, order: ColorOrder, bri5: u8, out: &mut [u8]) {
    encode_zero_tail(pixels, n, order, bri5, frame_len(n), out);
}

/// Start frame and LED data, then zeros up to `len` bytes: the frame shape
/// shared with the SK9822, which differs only in how many zeros follow.
pub fn encode_zero_tail(
    pixels: &[u8],
    n: usize,
    order: ColorOrder,
    bri5: u8,
    len: usize,
    out: &mut [u8],
) {
    let at = encode_leds(pixels, n, order, bri5, out);
    let end = len.min(out.len());
    if at < end {
        out[at..end].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::chip::{ChipKind, ChipSettings, Encoder};
    use super::*;

    #[test]
    fn end_frame_lengths_for_edge_counts() {
        // n LEDs need n/2 extra edges = n/16 bytes, rounded up.
        for (n, end, total) in [
            (0, 0, 4),
            (1, 1, 9),
            (15, 1, 65),
            (16, 1, 69),
            (17, 2, 74),
            (300, 19, 1223),
        ] {
            assert_eq!(end_frame_len(n), end, "n={n}");
            assert_eq!(frame_len(n), total, "n={n}");
            let e = Encoder::new(ChipSettings::new(ChipKind::Apa102), n);
            assert_eq!(e.frame_len(), total, "n={n}");
        }
    }

    #[test]
    fn fixture_two_leds_default_bgr() {
        // Red and (1,2,3): header 0xE0|31 = 0xFF, then blue, green, red.
        let e = Encoder::new(ChipSettings::new(ChipKind::Apa102), 2);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[255, 0, 0, 1, 2, 3], &mut out);
        assert_eq!(out, [0, 0, 0, 0, 0xFF, 0, 0, 255, 0xFF, 3, 2, 1, 0]);
    }

    #[test]
    fn fixture_global_brightness_and_rgb_order() {
        let mut s = ChipSettings::new(ChipKind::Apa102);
        s.global_brightness = 5;
        s.order = Some("RGB".parse().unwrap());
        let e = Encoder::new(s, 1);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[0x10, 0x20, 0x30], &mut out);
        assert_eq!(out, [0, 0, 0, 0, 0xE5, 0x10, 0x20, 0x30, 0]);
    }

    #[test]
    fn missing_leds_are_black_and_end_is_zero() {
        let e = Encoder::new(ChipSettings::new(ChipKind::Apa102), 17);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[9, 9, 9], &mut out);
        assert_eq!(&out[4..8], &[0xFF, 9, 9, 9]);
        for led in 1..17 {
            let at = 4 + 4 * led;
            assert_eq!(&out[at..at + 4], &[0xFF, 0, 0, 0], "led {led}");
        }
        assert_eq!(&out[72..], &[0, 0]);
    }
}
