//! SK9822: an APA102 work-alike with one difference that matters.
//!
//! The SK9822 shows new data only when the *next* start frame arrives (its
//! datasheet's "refresh on the next frame"), where the APA102 shows it as it
//! goes through. So each frame sends, after the LED data, an extra start
//! frame (4 x `0x00`) to latch what was just sent, then the APA102 end frame
//! (zeros, `ceil(n / 16)` bytes) to clock the data through to the last LED:
//!
//! | part          | bytes           | content                            |
//! |---------------|-----------------|------------------------------------|
//! | start frame   | 4               | `0x00`                             |
//! | each LED      | 4               | `0xE0 \| bri5`, then 3 colour bytes |
//! | latch frame   | 4               | `0x00`                             |
//! | end frame     | `ceil(n / 16)`  | `0x00`                             |
//!
//! The end frame must be zeros, not `0xFF`: an SK9822 reads an `0xFF` run as
//! LED data for the LEDs past the strip's end and would light them white.

use super::apa102;
use super::order::ColorOrder;

/// The extra start frame that latches the data just sent.
pub const LATCH_FRAME_LEN: usize = 4;

/// Bytes of one frame of `n` LEDs.
pub fn frame_len(n: usize) -> usize {
    apa102::START_FRAME_LEN + apa102::BYTES_PER_LED * n + LATCH_FRAME_LEN + apa102::end_frame_len(n)
}

/// Encode one frame of `n` LEDs into `out` ([`frame_len`] bytes).
pub fn encode(pixels: &[u8], n: usize, order: ColorOrder, bri5: u8, out: &mut [u8]) {
    // The latch frame and the end frame are both zeros.
    apa102::encode_zero_tail(pixels, n, order, bri5, frame_len(n), out);
}

#[cfg(test)]
mod tests {
    use super::super::chip::{ChipKind, ChipSettings, Encoder};
    use super::*;

    #[test]
    fn frame_lengths_for_edge_counts() {
        // 4 start + 4n + 4 latch + ceil(n/16) end.
        for (n, total) in [(0, 8), (1, 13), (15, 69), (16, 73), (17, 78), (300, 1227)] {
            assert_eq!(frame_len(n), total, "n={n}");
            let e = Encoder::new(ChipSettings::new(ChipKind::Sk9822), n);
            assert_eq!(e.frame_len(), total, "n={n}");
        }
    }

    #[test]
    fn fixture_one_led_then_latch() {
        let e = Encoder::new(ChipSettings::new(ChipKind::Sk9822), 1);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[1, 2, 3], &mut out);
        assert_eq!(out, [0, 0, 0, 0, 0xFF, 3, 2, 1, 0, 0, 0, 0, 0]);
    }
}
