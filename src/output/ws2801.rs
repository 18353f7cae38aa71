//! WS2801: clock + data, 3 bytes per LED, MSB first, RGB by default.
//!
//! There is no start or end frame. The chip latches when the clock stays low
//! for at least 500 us (WS2801 datasheet, "Data transmission time": latch
//! after the clock is held low > 500 us). rowplay sends one frame per 20 ms
//! tick and a 300-LED frame takes 7.2 ms at 1 MHz, so the gap between frames
//! is always far more than 500 us: no latch bytes are needed. (Do not run a
//! WS2801 strip so long that one frame takes more than ~19 ms.)

use super::order::{channel, ColorOrder};

/// Bytes per LED.
pub const BYTES_PER_LED: usize = 3;
/// Clock low time that latches the data (datasheet).
pub const LATCH_US: u32 = 500;
/// Default SPI clock: the WS2801 datasheet allows up to 25 MHz, but cheap
/// strips with long wires misbehave above ~1-2 MHz; 1 MHz is the common safe
/// choice and still sends 300 LEDs in 7.2 ms.
pub const DEFAULT_HZ: u32 = 1_000_000;

/// Bytes of one frame of `n` LEDs.
pub fn frame_len(n: usize) -> usize {
    BYTES_PER_LED * n
}

/// Encode one frame of `n` LEDs into `out` ([`frame_len`] bytes).
pub fn encode(pixels: &[u8], n: usize, order: ColorOrder, out: &mut [u8]) {
    for (i, led) in out.chunks_exact_mut(BYTES_PER_LED).take(n).enumerate() {
        for (byte, &src) in led.iter_mut().zip(&order.map) {
            *byte = channel(pixels, 3, i, src);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::chip::{ChipKind, ChipSettings, Encoder};

    #[test]
    fn fixture_default_rgb_and_bgr() {
        let e = Encoder::new(ChipSettings::new(ChipKind::Ws2801), 2);
        assert_eq!(e.frame_len(), 6);
        let mut out = vec![0xAA; 6];
        e.encode(&[1, 2, 3, 4, 5, 6], &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);

        let mut s = ChipSettings::new(ChipKind::Ws2801);
        s.order = Some("BGR".parse().unwrap());
        let e = Encoder::new(s, 3);
        let mut out = vec![0xAA; 9];
        e.encode(&[1, 2, 3, 4, 5, 6], &mut out);
        assert_eq!(out, [3, 2, 1, 6, 5, 4, 0, 0, 0]);
    }

    #[test]
    fn frame_lengths_for_edge_counts() {
        for n in [0, 1, 15, 16, 17, 300] {
            let e = Encoder::new(ChipSettings::new(ChipKind::Ws2801), n);
            assert_eq!(e.frame_len(), 3 * n);
        }
    }
}
