//! Decoders: SPI wire bytes back to pixels, one per protocol.
//!
//! For tests and inspection only (they allocate; never use them in the frame
//! loop). Each decoder checks the framing its encoder writes (start, latch
//! and end frames, LED headers, reset zeros, valid symbols) and returns the
//! pixels in R G B (W) order, whatever the wire order. The property tests
//! below run random rows through the colour pipeline and every encoder and
//! require the decoder to give back exactly the pipeline's output; a `wire:`
//! capture can be checked the same way with [`decode`].

use super::apa102;
use super::chip::{ChipKind, ColorOrder, Encoder, MAX_LEDS};
use super::sk9822;
use super::ws2801;
use super::ws2812;
use std::fmt;

/// Wire bytes that are not what the encoder would write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame is not the length `leds` LEDs take.
    Length {
        /// Bytes the protocol needs.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// A framing byte (start, latch, end, reset, LED header) is wrong.
    Framing {
        /// Offset in the frame.
        offset: usize,
        /// The byte found.
        byte: u8,
        /// The byte expected there.
        expected: u8,
    },
    /// A bit-encoded symbol that is neither the 0 nor the 1 pattern.
    Symbol {
        /// Byte offset of the colour byte's symbols in the frame.
        offset: usize,
        /// The pattern found.
        pattern: u8,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Length { expected, got } => {
                write!(f, "frame is {got} bytes, the strip takes {expected}: check chip and LED count")
            }
            DecodeError::Framing {
                offset,
                byte,
                expected,
            } => write!(f, "byte {offset} is {byte:#04x}, expected {expected:#04x}: not this chip's framing"),
            DecodeError::Symbol { offset, pattern } => write!(
                f,
                "bit symbol {pattern:#b} in the colour byte at {offset} is neither 0 nor 1: wrong chip or clock"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

fn check_len(wire: &[u8], expected: usize) -> Result<(), DecodeError> {
    if wire.len() == expected {
        Ok(())
    } else {
        Err(DecodeError::Length {
            expected,
            got: wire.len(),
        })
    }
}

fn check_zeros(wire: &[u8], from: usize) -> Result<(), DecodeError> {
    match wire[from..].iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(DecodeError::Framing {
            offset: from + i,
            byte: wire[from + i],
            expected: 0,
        }),
    }
}

/// Put one LED's wire-order channels back in R G B (W) order.
fn unorder(wire_led: &[u8], order: ColorOrder, out: &mut [u8]) {
    for (k, &v) in wire_led.iter().enumerate() {
        out[order.map[k] as usize] = v;
    }
}

/// The APA102/SK9822 LED frames after the start frame.
fn apa102_leds(
    wire: &[u8],
    leds: usize,
    order: ColorOrder,
    bri5: u8,
) -> Result<Vec<u8>, DecodeError> {
    check_zeros(&wire[..apa102::START_FRAME_LEN], 0)?;
    let header = apa102::LED_FRAME_MARKER | (bri5 & apa102::MAX_GLOBAL_BRIGHTNESS);
    let mut pixels = vec![0; leds * 3];
    for i in 0..leds {
        let at = apa102::START_FRAME_LEN + i * apa102::BYTES_PER_LED;
        if wire[at] != header {
            return Err(DecodeError::Framing {
                offset: at,
                byte: wire[at],
                expected: header,
            });
        }
        unorder(&wire[at + 1..at + 4], order, &mut pixels[i * 3..i * 3 + 3]);
    }
    Ok(pixels)
}

/// APA102: start frame, `leds` LED frames with header `0xE0 | bri5`, zero
/// end frame.
pub fn apa102(
    wire: &[u8],
    leds: usize,
    order: ColorOrder,
    bri5: u8,
) -> Result<Vec<u8>, DecodeError> {
    check_len(wire, apa102::frame_len(leds))?;
    let pixels = apa102_leds(wire, leds, order, bri5)?;
    check_zeros(wire, apa102::START_FRAME_LEN + apa102::BYTES_PER_LED * leds)?;
    Ok(pixels)
}

/// SK9822: as APA102, then the latch frame and the end frame, all zeros.
pub fn sk9822(
    wire: &[u8],
    leds: usize,
    order: ColorOrder,
    bri5: u8,
) -> Result<Vec<u8>, DecodeError> {
    check_len(wire, sk9822::frame_len(leds))?;
    let pixels = apa102_leds(wire, leds, order, bri5)?;
    check_zeros(wire, apa102::START_FRAME_LEN + apa102::BYTES_PER_LED * leds)?;
    Ok(pixels)
}

/// WS2801: 3 bytes per LED, nothing else.
pub fn ws2801(wire: &[u8], leds: usize, order: ColorOrder) -> Result<Vec<u8>, DecodeError> {
    check_len(wire, ws2801::frame_len(leds))?;
    let mut pixels = vec![0; leds * 3];
    for (led, px) in wire.chunks_exact(3).zip(pixels.chunks_exact_mut(3)) {
        unorder(led, order, px);
    }
    Ok(pixels)
}

/// WS2812/SK6812 bit-encoded at `hz` (which picks the symbols): lead-in
/// zero, symbols, reset zeros. `order.channels()` must be `kind.channels()`.
pub fn ws2812(
    kind: ws2812::Variant,
    hz: u32,
    wire: &[u8],
    leds: usize,
    order: ColorOrder,
) -> Result<Vec<u8>, DecodeError> {
    check_len(wire, ws2812::frame_len(kind, leds, hz))?;
    check_zeros(&wire[..ws2812::LEAD_IN_LEN], 0)?;
    let s = ws2812::symbols(kind, hz);
    let bpc = s.bytes_per_color();
    let ch = order.channels();
    let mask = (1u32 << s.bits) - 1;
    let mut pixels = vec![0; leds * ch];
    let mut wire_led = [0u8; 4];
    for i in 0..leds {
        for (k, slot) in wire_led.iter_mut().enumerate().take(ch) {
            let at = ws2812::LEAD_IN_LEN + (i * ch + k) * bpc;
            let mut word = [0u8; 4];
            word[4 - bpc..].copy_from_slice(&wire[at..at + bpc]);
            let word = u32::from_be_bytes(word);
            let mut value = 0u8;
            for bit in 0..8 {
                let pattern = ((word >> ((7 - bit) * s.bits)) & mask) as u8;
                let one = if pattern == s.one {
                    1
                } else if pattern == s.zero {
                    0
                } else {
                    return Err(DecodeError::Symbol {
                        offset: at,
                        pattern,
                    });
                };
                value = (value << 1) | one;
            }
            *slot = value;
        }
        unorder(&wire_led[..ch], order, &mut pixels[i * ch..(i + 1) * ch]);
    }
    check_zeros(wire, ws2812::LEAD_IN_LEN + leds * ch * bpc)?;
    Ok(pixels)
}

/// Decode a frame `encoder` wrote, with its settings (order, brightness,
/// clock, LED count).
pub fn decode(encoder: &Encoder, wire: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let s = &encoder.settings;
    let (n, order) = (encoder.leds, s.order());
    match s.kind {
        ChipKind::Apa102 => apa102(wire, n, order, s.global_brightness),
        ChipKind::Sk9822 => sk9822(wire, n, order, s.global_brightness),
        ChipKind::Ws2801 => ws2801(wire, n, order),
        ChipKind::Ws2812 | ChipKind::Sk6812 | ChipKind::Sk6812Rgbw => ws2812(
            s.kind.ws2812_variant().unwrap_or(ws2812::Variant::Ws2812),
            s.spi_hz(),
            wire,
            n,
            order,
        ),
    }
}

/// The LED count whose frame is `len` bytes with `encoder`'s settings, if
/// any (for reading a `wire:` capture whose LED count is not recorded).
pub fn leds_for_len(encoder: &Encoder, len: usize) -> Option<usize> {
    (0..=MAX_LEDS).find(|&n| Encoder::new(encoder.settings, n).frame_len() == len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color::{ColorSettings, Pipeline};
    use crate::output::chip::ChipSettings;
    use proptest::prelude::*;

    fn orders(channels: usize) -> Vec<ColorOrder> {
        let three = ["RGB", "RBG", "GRB", "GBR", "BRG", "BGR"];
        let four = ["RGBW", "GRBW", "WRGB", "BGRW", "WBGR"];
        let list: &[&str] = if channels == 3 { &three } else { &four };
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn decodes_a_hand_made_apa102_frame() {
        let wire = [0, 0, 0, 0, 0xFF, 3, 2, 1, 0];
        assert_eq!(apa102(&wire, 1, ColorOrder::BGR, 31), Ok(vec![1, 2, 3]));
        assert_eq!(
            apa102(&wire, 1, ColorOrder::BGR, 30),
            Err(DecodeError::Framing {
                offset: 4,
                byte: 0xFF,
                expected: 0xFE
            })
        );
        assert_eq!(
            apa102(&wire[..8], 1, ColorOrder::BGR, 31),
            Err(DecodeError::Length {
                expected: 9,
                got: 8
            })
        );
    }

    #[test]
    fn rejects_a_bad_symbol_and_a_dirty_reset() {
        let e = Encoder::new(ChipSettings::new(ChipKind::Ws2812), 1);
        let mut wire = vec![0; e.frame_len()];
        e.encode(&[1, 2, 3], &mut wire);
        let mut bad = wire.clone();
        bad[1] = 0xFF; // 111 is no symbol
        assert!(matches!(
            decode(&e, &bad),
            Err(DecodeError::Symbol { offset: 1, .. })
        ));
        let mut bad = wire.clone();
        let last = bad.len() - 1;
        bad[last] = 1;
        assert!(matches!(decode(&e, &bad), Err(DecodeError::Framing { .. })));
        assert_eq!(decode(&e, &wire), Ok(vec![1, 2, 3]));
    }

    #[test]
    fn finds_the_led_count_from_the_length() {
        for k in ChipKind::ALL {
            let e = Encoder::new(ChipSettings::new(k), 0);
            for n in [0, 1, 17, 300] {
                let len = Encoder::new(e.settings, n).frame_len();
                assert_eq!(leds_for_len(&e, len), Some(n), "{k} n={n}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random rows -> pipeline -> encode -> decode == pipeline output,
        /// for every chip, colour order, clock choice and source width.
        #[test]
        fn round_trip_through_pipeline_and_every_encoder(
            chip in 0..ChipKind::ALL.len(),
            order_pick in 0usize..6,
            fast_clock in any::<bool>(),
            src_channels in 3usize..=4,
            leds in 0usize..40,
            src in proptest::collection::vec(any::<u8>(), 0..200),
            gamma in prop_oneof![Just(1.0f32), Just(2.2f32), 1.0f32..3.0],
            brightness in 0.0f32..=1.0,
            bri5 in 1u8..=31,
            max_current_ma in proptest::option::of(0u32..3000),
        ) {
            let kind = ChipKind::ALL[chip];
            let orders = orders(kind.channels());
            let mut s = ChipSettings::new(kind);
            s.order = Some(orders[order_pick % orders.len()]);
            s.global_brightness = bri5;
            if fast_clock {
                s.spi_hz = Some(3_200_000);
            }
            let enc = Encoder::try_new(s, leds).unwrap();
            let p = Pipeline::new(
                ColorSettings { gamma, brightness, max_current_ma, ..ColorSettings::default() },
                enc.channels(),
            );
            let mut px = vec![0; leds * enc.channels()];
            p.apply(&src, src_channels, &mut px);
            let mut wire = vec![0xAA; enc.frame_len()];
            enc.encode(&px, &mut wire);
            prop_assert_eq!(decode(&enc, &wire), Ok(px));
        }
    }
}
