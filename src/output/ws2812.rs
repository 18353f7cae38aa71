//! WS2812B, SK6812 and SK6812-RGBW through SPI bit-encoding.
//!
//! These chips take one data wire with pulse-width coded bits: a short high
//! pulse (T0H) is a 0, a long one (T1H) is a 1, each bit lasts about 1.25 us,
//! and a long low time latches the frame. The SPI bus has no such mode, so
//! each data bit becomes a *symbol* of 3 or 4 SPI bits, sent MSB first, whose
//! leading ones make the high pulse. The SPI clock sets the length of one
//! SPI bit and so the pulse widths.
//!
//! Frame layout:
//!
//! | part        | bytes                                   | content            |
//! |-------------|-----------------------------------------|--------------------|
//! | lead-in     | 1                                       | `0x00`             |
//! | each LED    | `channels * symbol_bits` (9, 12 or 16)  | symbols, MSB first |
//! | reset       | [`reset_len`] (>= 300 us at the clock)  | `0x00`             |
//!
//! The lead-in byte holds the line low before the first symbol, so that a
//! MOSI line that idled high (or a slow first clock edge) cannot stretch the
//! first pulse. The reset is >= [`RESET_US`] = 300 us: new WS2812B parts need
//! 280 us of low to latch, old ones 50 us; SK6812 needs 80 us.
//!
//! Colour order: GRB by default, GRBW for SK6812-RGBW (datasheets).

use super::order::{channel, ColorOrder};
use std::fmt;

/// The bit-encoded chips this module drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// WS2812 / WS2812B.
    Ws2812,
    /// SK6812 RGB.
    Sk6812,
    /// SK6812 RGBW.
    Sk6812Rgbw,
}

impl Variant {
    /// Colour channels per LED.
    pub fn channels(self) -> usize {
        match self {
            Variant::Sk6812Rgbw => 4,
            _ => 3,
        }
    }
    /// The name used in the config and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Ws2812 => "ws2812",
            Variant::Sk6812 => "sk6812",
            Variant::Sk6812Rgbw => "sk6812-rgbw",
        }
    }
    /// The SPI clock used when none is configured.
    pub fn default_hz(self) -> u32 {
        match self {
            Variant::Ws2812 => WS2812_DEFAULT_HZ,
            _ => SK6812_DEFAULT_HZ,
        }
    }
}

/// Datasheet pulse timings in ns, each with its tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// High time of a 0 bit.
    pub t0h_ns: u32,
    /// High time of a 1 bit.
    pub t1h_ns: u32,
    /// +- tolerance on T0H and T1H.
    pub th_tol_ns: u32,
    /// Bit period (high + low).
    pub period_ns: u32,
    /// +- tolerance on the period.
    pub period_tol_ns: u32,
}

/// WS2812B datasheet (Worldsemi, rev. 2018): T0H 0.40 us, T1H 0.80 us, each
/// +-150 ns; TH + TL = 1.25 us +-600 ns.
pub const WS2812B_TIMING: Timing = Timing {
    t0h_ns: 400,
    t1h_ns: 800,
    th_tol_ns: 150,
    period_ns: 1250,
    period_tol_ns: 600,
};

/// SK6812 / SK6812-RGBW datasheets (Opsco): T0H 0.30 us, T1H 0.60 us, each
/// +-150 ns; bit period 1.25 us +-600 ns.
pub const SK6812_TIMING: Timing = Timing {
    t0h_ns: 300,
    t1h_ns: 600,
    th_tol_ns: 150,
    period_ns: 1250,
    period_tol_ns: 600,
};

/// One data bit as SPI bits: `bits` long, MSB first, in the low bits of
/// `zero` and `one`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbols {
    /// SPI bits per data bit: 3 or 4.
    pub bits: u32,
    /// The pattern for a 0.
    pub zero: u8,
    /// The pattern for a 1.
    pub one: u8,
}

impl Symbols {
    /// SPI bytes per colour byte (8 data bits x `bits` SPI bits / 8).
    pub const fn bytes_per_color(self) -> usize {
        self.bits as usize
    }
    /// Leading ones of a pattern, i.e. its high time in SPI bits.
    const fn high_bits(self, pattern: u8) -> u32 {
        (pattern << (8 - self.bits)).leading_ones()
    }
}

/// WS2812B at 2.4 MHz (417 ns per SPI bit): `100` = T0H 417 ns (250..550),
/// `110` = T1H 833 ns (650..950), period 1250 ns. At the real clock of
/// 250 MHz / 106 = 2.358 MHz: 424 / 848 / 1272 ns, still inside.
pub const WS2812_3BIT: Symbols = Symbols {
    bits: 3,
    zero: 0b100,
    one: 0b110,
};

/// WS2812B at 3.2 MHz (312.5 ns per SPI bit): `1000` = T0H 312 ns,
/// `1110` = T1H 937 ns (the obvious `1100` gives 625 ns, outside 650..950),
/// period 1250 ns. Tight: at 250 MHz / 80 = 3.125 MHz T1H is 960 ns, out of
/// tolerance, which [`timing_check`] reports. Used when the clock is above
/// [`WS2812_4BIT_ABOVE_HZ`].
pub const WS2812_4BIT: Symbols = Symbols {
    bits: 4,
    zero: 0b1000,
    one: 0b1110,
};

/// SK6812 at 3.2 MHz (312.5 ns per SPI bit): `1000` = T0H 312 ns (150..450),
/// `1100` = T1H 625 ns (450..750), period 1250 ns. (The WS2812B's `110` at
/// 2.4 MHz gives T1H 833 ns, outside the SK6812's 450..750.) At 250 MHz / 80
/// = 3.125 MHz: 320 / 640 / 1280 ns, inside.
pub const SK6812_4BIT: Symbols = Symbols {
    bits: 4,
    zero: 0b1000,
    one: 0b1100,
};

/// Default WS2812 clock: 2.4 MHz with [`WS2812_3BIT`] (9 bytes per LED).
pub const WS2812_DEFAULT_HZ: u32 = 2_400_000;
/// WS2812 clocks above this use [`WS2812_4BIT`], below it [`WS2812_3BIT`]:
/// midway between the 2.4 and 3.2 MHz design points.
pub const WS2812_4BIT_ABOVE_HZ: u32 = 2_800_000;
/// Default SK6812 clock: 3.2 MHz with [`SK6812_4BIT`].
pub const SK6812_DEFAULT_HZ: u32 = 3_200_000;
/// Low time that latches a frame: new WS2812B parts need 280 us (old ones
/// 50 us, SK6812 80 us); 300 us covers all with margin.
pub const RESET_US: u64 = 300;
/// The `0x00` byte before the data.
pub const LEAD_IN_LEN: usize = 1;

/// The datasheet timing of a bit-encoded chip.
pub fn timing(kind: Variant) -> Timing {
    match kind {
        Variant::Ws2812 => WS2812B_TIMING,
        Variant::Sk6812 | Variant::Sk6812Rgbw => SK6812_TIMING,
    }
}

/// The symbols used for `kind` at clock `hz`.
pub fn symbols(kind: Variant, hz: u32) -> Symbols {
    match kind {
        Variant::Sk6812 | Variant::Sk6812Rgbw => SK6812_4BIT,
        _ if hz > WS2812_4BIT_ABOVE_HZ => WS2812_4BIT,
        _ => WS2812_3BIT,
    }
}

/// Zero bytes of reset at `hz`: `RESET_US` x hz / 8 bits, rounded up, e.g.
/// 300 us at 2.4 MHz = 90 bytes, at 3.2 MHz = 120 bytes. Computed from the
/// requested clock; the Pi's real clock is never faster (see
/// [`super::spi::real_clock_hz`]), so the real reset is never shorter.
pub fn reset_len(hz: u32) -> usize {
    (u64::from(hz) * RESET_US).div_ceil(8 * 1_000_000) as usize
}

/// Bytes of one frame of `n` LEDs of `kind` at `hz`.
pub fn frame_len(kind: Variant, n: usize, hz: u32) -> usize {
    LEAD_IN_LEN + n * kind.channels() * symbols(kind, hz).bytes_per_color() + reset_len(hz)
}

/// The symbols of every byte value, MSB first, right-aligned in a u32
/// (24 bits for 3-bit symbols, 32 for 4-bit ones).
const fn build_table(s: Symbols) -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut v = 0;
    while v < 256 {
        let mut word = 0u32;
        let mut bit = 0;
        while bit < 8 {
            let set = (v >> (7 - bit)) & 1 == 1;
            word = (word << s.bits) | if set { s.one as u32 } else { s.zero as u32 };
            bit += 1;
        }
        table[v] = word;
        v += 1;
    }
    table
}

static WS2812_3BIT_TABLE: [u32; 256] = build_table(WS2812_3BIT);
static WS2812_4BIT_TABLE: [u32; 256] = build_table(WS2812_4BIT);
static SK6812_4BIT_TABLE: [u32; 256] = build_table(SK6812_4BIT);

fn table(s: Symbols) -> &'static [u32; 256] {
    if s == WS2812_3BIT {
        &WS2812_3BIT_TABLE
    } else if s == WS2812_4BIT {
        &WS2812_4BIT_TABLE
    } else {
        &SK6812_4BIT_TABLE
    }
}

/// Encode one frame of `n` LEDs into `out` ([`frame_len`] bytes).
/// `order.channels()` must equal `kind.channels()` (the encoder ensures it).
pub fn encode(kind: Variant, hz: u32, pixels: &[u8], n: usize, order: ColorOrder, out: &mut [u8]) {
    let s = symbols(kind, hz);
    let table = table(s);
    let ch = order.channels();
    let bpc = s.bytes_per_color();
    let total = frame_len(kind, n, hz).min(out.len());
    let out = &mut out[..total];
    let Some((lead, rest)) = out.split_first_mut() else {
        return;
    };
    *lead = 0;
    let mut at = 0;
    for i in 0..n {
        for k in 0..ch {
            let Some(dst) = rest.get_mut(at..at + bpc) else {
                return;
            };
            let word = table[channel(pixels, ch, i, order.map[k]) as usize];
            // Big-endian keeps the MSB-first bit order; a 3-bit symbol word
            // uses the low 3 of its 4 bytes.
            dst.copy_from_slice(&word.to_be_bytes()[4 - bpc..]);
            at += bpc;
        }
    }
    rest[at..].fill(0);
}

/// A clock that puts a pulse width outside the chip's datasheet tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimingError {
    /// The chip.
    pub kind: Variant,
    /// The real SPI clock.
    pub real_hz: u32,
    /// Which width: `T0H`, `T1H` or `bit period`.
    pub what: &'static str,
    /// What that clock gives.
    pub got_ns: u32,
    /// Allowed range.
    pub min_ns: u32,
    /// Allowed range.
    pub max_ns: u32,
}

impl fmt::Display for TimingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at a real SPI clock of {} Hz: {} is {} ns, outside {}..{} ns; \
             set [spi] hz to the default {} and pin the core clock (core_freq=250)",
            self.kind.name(),
            self.real_hz,
            self.what,
            self.got_ns,
            self.min_ns,
            self.max_ns,
            self.kind.default_hz()
        )
    }
}

impl std::error::Error for TimingError {}

/// Check the pulse widths `kind` gets at `real_hz` (what the Pi really
/// produces; see [`super::spi::real_clock_hz`]) against its datasheet, with
/// the symbols chosen for `requested_hz`.
pub fn check_timing(kind: Variant, requested_hz: u32, real_hz: u32) -> Result<(), TimingError> {
    let t = timing(kind);
    let s = symbols(kind, requested_hz);
    let ns = |spi_bits: u32| -> u32 {
        if real_hz == 0 {
            return u32::MAX;
        }
        ((u64::from(spi_bits) * 1_000_000_000 + u64::from(real_hz) / 2) / u64::from(real_hz))
            .min(u64::from(u32::MAX)) as u32
    };
    let checks = [
        ("T0H", ns(s.high_bits(s.zero)), t.t0h_ns, t.th_tol_ns),
        ("T1H", ns(s.high_bits(s.one)), t.t1h_ns, t.th_tol_ns),
        ("bit period", ns(s.bits), t.period_ns, t.period_tol_ns),
    ];
    for (what, got_ns, want, tol) in checks {
        let (min_ns, max_ns) = (want - tol, want + tol);
        if got_ns < min_ns || got_ns > max_ns {
            return Err(TimingError {
                kind,
                real_hz,
                what,
                got_ns,
                min_ns,
                max_ns,
            });
        }
    }
    Ok(())
}

/// [`check_timing`] when the requested and real clock choose the same
/// symbols (always, unless a clock straddles [`WS2812_4BIT_ABOVE_HZ`]).
pub fn timing_check(kind: Variant, real_hz: u32) -> Result<(), TimingError> {
    check_timing(kind, real_hz, real_hz)
}

#[cfg(test)]
mod tests {
    use super::super::chip::{ChipKind, ChipSettings, Encoder};
    use super::*;

    #[test]
    fn reset_lengths() {
        // 300 us x 2.4 MHz = 720 bits = 90 bytes; x 3.2 MHz = 960 bits = 120.
        assert_eq!(reset_len(2_400_000), 90);
        assert_eq!(reset_len(3_200_000), 120);
        assert_eq!(reset_len(3_000_000), 113); // 112.5 rounded up
    }

    #[test]
    fn frame_lengths_for_edge_counts() {
        for n in [0, 1, 15, 16, 17, 300] {
            let e = |k| Encoder::new(ChipSettings::new(k), n).frame_len();
            assert_eq!(e(ChipKind::Ws2812), 1 + 9 * n + 90, "n={n}");
            assert_eq!(e(ChipKind::Sk6812), 1 + 12 * n + 120, "n={n}");
            assert_eq!(e(ChipKind::Sk6812Rgbw), 1 + 16 * n + 120, "n={n}");
        }
    }

    #[test]
    fn fixture_ws2812_one_led() {
        // GRB = (0x00, 0xFF, 0x80) from RGB (0xFF, 0x00, 0x80).
        // 0x00 -> 100 100 100 100 100 100 100 100 = 1001_0010 0100_1001 0010_0100
        // 0xFF -> 110 x 8                         = 1101_1011 0110_1101 1011_0110
        // 0x80 -> 110 100 x 7                     = 1101_0010 0100_1001 0010_0100
        let e = Encoder::new(ChipSettings::new(ChipKind::Ws2812), 1);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[0xFF, 0x00, 0x80], &mut out);
        assert_eq!(
            &out[..10],
            &[0x00, 0x92, 0x49, 0x24, 0xDB, 0x6D, 0xB6, 0xD2, 0x49, 0x24]
        );
        assert!(out[10..].iter().all(|&b| b == 0));
        assert_eq!(out.len(), 10 + 90);
    }

    #[test]
    fn fixture_sk6812_rgbw_one_led() {
        // GRBW from RGBW (0x01, 0xF0, 0x00, 0xA5), nibbles 1000 = 8, 1100 = C.
        // G 0xF0 = 1111 0000 -> C C C C 8 8 8 8
        // R 0x01 = 0000 0001 -> 8 8 8 8 8 8 8 C
        // B 0x00              -> 8 x 8
        // W 0xA5 = 1010 0101 -> C 8 C 8 8 C 8 C
        let e = Encoder::new(ChipSettings::new(ChipKind::Sk6812Rgbw), 1);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[0x01, 0xF0, 0x00, 0xA5], &mut out);
        assert_eq!(
            &out[..17],
            &[
                0x00, 0xCC, 0xCC, 0x88, 0x88, 0x88, 0x88, 0x88, 0x8C, 0x88, 0x88, 0x88, 0x88, 0xC8,
                0xC8, 0x8C, 0x8C
            ]
        );
        assert!(out[17..].iter().all(|&b| b == 0));
    }

    #[test]
    fn fixture_ws2812_at_3_2_mhz_uses_4bit_symbols() {
        // 1000 = 8, 1110 = E. GRB of (0x0F, 0x00, 0x00): G 0 R 0x0F B 0.
        let mut s = ChipSettings::new(ChipKind::Ws2812);
        s.spi_hz = Some(3_200_000);
        let e = Encoder::new(s, 1);
        assert_eq!(e.frame_len(), 1 + 12 + 120);
        let mut out = vec![0xAA; e.frame_len()];
        e.encode(&[0x0F, 0, 0], &mut out);
        assert_eq!(
            &out[..13],
            &[0, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0xEE, 0xEE, 0x88, 0x88, 0x88, 0x88]
        );
    }

    #[test]
    fn timing_at_real_pi_clocks() {
        // 250 MHz core: 2.4 MHz -> /106 = 2358490 Hz; 3.2 MHz -> /80 = 3125000.
        assert_eq!(timing_check(Variant::Ws2812, 2_358_490), Ok(()));
        assert_eq!(timing_check(Variant::Sk6812, 3_125_000), Ok(()));
        assert_eq!(timing_check(Variant::Sk6812Rgbw, 3_200_000), Ok(()));
        assert_eq!(timing_check(Variant::Ws2812, 3_200_000), Ok(()));
        // WS2812 4-bit at 3.125 MHz: T1H = 3 x 320 = 960 ns > 950.
        let e = timing_check(Variant::Ws2812, 3_125_000).unwrap_err();
        assert_eq!((e.what, e.got_ns, e.max_ns), ("T1H", 960, 950));
        // SK6812 with 4-bit symbols at 2.4 MHz: T1H = 2 x 417 = 833 ns > 750.
        let e = check_timing(Variant::Sk6812, 2_400_000, 2_400_000).unwrap_err();
        assert_eq!((e.what, e.got_ns), ("T1H", 833));
        // A clock far too slow fails, and 0 Hz does not divide by zero.
        assert!(timing_check(Variant::Ws2812, 1_000_000).is_err());
        assert!(timing_check(Variant::Ws2812, 0).is_err());
        // Clocked chips have no pulse timing.
        assert_eq!(ChipKind::Apa102.timing_check(1), Ok(()));
        assert!(ChipKind::Ws2812.timing_check(1_000_000).is_err());
    }
}
