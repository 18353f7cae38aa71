//! LED chip selection and the [`Encoder`] that turns a row of pixels into
//! the bytes for the SPI bus (the one encoding path: the SPI output, the
//! `wire:` records and the self-test all call [`Encoder::encode`]).
//!
//! Each protocol lives in its own module ([`super::apa102`],
//! [`super::sk9822`], [`super::ws2801`], [`super::ws2812`]); the encoder only
//! dispatches. Everything is sized once in [`Encoder::try_new`], so
//! [`Encoder::encode`] is a pure function into the caller's buffer that never
//! allocates.

pub use super::order::{BadColorOrder, ColorOrder};
use super::ws2812::{self, Variant};
use super::{apa102, sk9822, ws2801};
use std::fmt;

/// The most LEDs one encoder accepts. Far beyond what one SPI bus can refresh
/// at 50 Hz (the largest frame, SK6812-RGBW, is 16 bytes per LED: 1 MiB here),
/// and small enough that no frame length can overflow a 32-bit `usize`.
pub const MAX_LEDS: usize = 65_536;

/// The LED chips rowplay can drive over SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ChipKind {
    /// APA102 / DotStar.
    Apa102,
    /// SK9822 (APA102-like, latches on the next start frame).
    Sk9822,
    /// WS2801.
    Ws2801,
    /// WS2812 / WS2812B / NeoPixel, SPI bit-encoded.
    Ws2812,
    /// SK6812 RGB, SPI bit-encoded.
    Sk6812,
    /// SK6812 RGBW, SPI bit-encoded.
    #[value(name = "sk6812-rgbw")]
    #[serde(rename = "sk6812-rgbw")]
    Sk6812Rgbw,
}

impl ChipKind {
    /// Every chip, for listings and tests.
    pub const ALL: [ChipKind; 6] = [
        ChipKind::Apa102,
        ChipKind::Sk9822,
        ChipKind::Ws2801,
        ChipKind::Ws2812,
        ChipKind::Sk6812,
        ChipKind::Sk6812Rgbw,
    ];

    /// The name used in the config file and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ChipKind::Apa102 => "apa102",
            ChipKind::Sk9822 => "sk9822",
            ChipKind::Ws2801 => "ws2801",
            ChipKind::Ws2812 => "ws2812",
            ChipKind::Sk6812 => "sk6812",
            ChipKind::Sk6812Rgbw => "sk6812-rgbw",
        }
    }

    /// Colour channels per LED: 4 for SK6812-RGBW, else 3.
    pub fn channels(self) -> usize {
        match self {
            ChipKind::Sk6812Rgbw => 4,
            _ => 3,
        }
    }

    /// The wire order the chip uses when none is configured: BGR for
    /// APA102/SK9822, RGB for WS2801, GRB for WS2812/SK6812, GRBW for
    /// SK6812-RGBW (each chip's datasheet data format).
    pub fn default_order(self) -> ColorOrder {
        match self {
            ChipKind::Apa102 | ChipKind::Sk9822 => ColorOrder::BGR,
            ChipKind::Ws2801 => ColorOrder::RGB,
            ChipKind::Ws2812 | ChipKind::Sk6812 => ColorOrder::GRB,
            ChipKind::Sk6812Rgbw => ColorOrder::GRBW,
        }
    }

    /// The SPI clock used when none is configured.
    ///
    /// - APA102/SK9822: [`apa102::DEFAULT_HZ`] (8 MHz; fine on short wires,
    ///   lower it on long runs).
    /// - WS2801: [`ws2801::DEFAULT_HZ`] (1 MHz).
    /// - WS2812: [`ws2812::WS2812_DEFAULT_HZ`] (2.4 MHz, 3-bit symbols).
    /// - SK6812: [`ws2812::SK6812_DEFAULT_HZ`] (3.2 MHz, 4-bit symbols).
    pub fn default_spi_hz(self) -> u32 {
        match self {
            ChipKind::Apa102 | ChipKind::Sk9822 => apa102::DEFAULT_HZ,
            ChipKind::Ws2801 => ws2801::DEFAULT_HZ,
            ChipKind::Ws2812 => ws2812::WS2812_DEFAULT_HZ,
            ChipKind::Sk6812 | ChipKind::Sk6812Rgbw => ws2812::SK6812_DEFAULT_HZ,
        }
    }
}

impl ChipKind {
    /// The bit-encoded variant, for WS2812 and SK6812 (the clocked chips
    /// have none).
    pub fn ws2812_variant(self) -> Option<Variant> {
        match self {
            ChipKind::Ws2812 => Some(Variant::Ws2812),
            ChipKind::Sk6812 => Some(Variant::Sk6812),
            ChipKind::Sk6812Rgbw => Some(Variant::Sk6812Rgbw),
            _ => None,
        }
    }

    /// Whether the pulse widths this chip gets at `real_hz` (what the Pi
    /// really produces) are inside its datasheet tolerance. Clocked chips
    /// always pass.
    pub fn timing_check(self, real_hz: u32) -> Result<(), ws2812::TimingError> {
        match self.ws2812_variant() {
            Some(v) => ws2812::timing_check(v, real_hz),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ChipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Chip settings, from the command line or the config's `[led]` table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChipSettings {
    /// Which chip.
    pub kind: ChipKind,
    /// Wire colour order; `None` = the chip's default.
    pub order: Option<ColorOrder>,
    /// SPI clock; `None` = the chip's default.
    pub spi_hz: Option<u32>,
    /// APA102/SK9822 5-bit global brightness (31 = full, the default).
    pub global_brightness: u8,
}

impl ChipSettings {
    /// The chip's defaults: its colour order and clock, global brightness 31.
    pub fn new(kind: ChipKind) -> ChipSettings {
        ChipSettings {
            kind,
            order: None,
            spi_hz: None,
            global_brightness: apa102::MAX_GLOBAL_BRIGHTNESS,
        }
    }

    /// The configured colour order, or the chip's default.
    pub fn order(&self) -> ColorOrder {
        self.order.unwrap_or(self.kind.default_order())
    }

    /// The configured SPI clock, or the chip's default.
    pub fn spi_hz(&self) -> u32 {
        self.spi_hz.unwrap_or(self.kind.default_spi_hz())
    }

    /// Check the settings against the chip.
    pub fn validate(&self) -> Result<(), ChipError> {
        let order = self.order();
        if order.channels() != self.kind.channels() {
            return Err(ChipError::OrderChannels {
                order,
                chip: self.kind,
            });
        }
        if self.global_brightness == 0 || self.global_brightness > apa102::MAX_GLOBAL_BRIGHTNESS {
            return Err(ChipError::GlobalBrightness(self.global_brightness));
        }
        if self.spi_hz == Some(0) {
            return Err(ChipError::ZeroClock);
        }
        Ok(())
    }
}

/// Chip settings that do not fit the chip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChipError {
    /// A 3-letter order on an RGBW chip, or a 4-letter one on an RGB chip.
    OrderChannels {
        /// The order given.
        order: ColorOrder,
        /// The chip.
        chip: ChipKind,
    },
    /// Global brightness outside 1..=31.
    GlobalBrightness(u8),
    /// More LEDs than [`MAX_LEDS`].
    TooManyLeds(usize),
    /// An SPI clock of 0 Hz.
    ZeroClock,
}

impl fmt::Display for ChipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChipError::OrderChannels { order, chip } => write!(
                f,
                "colour order {order} has {} channels but {chip} has {}: use e.g. {}",
                order.channels(),
                chip.channels(),
                chip.default_order()
            ),
            ChipError::GlobalBrightness(b) => {
                write!(f, "global brightness {b} is outside 1..=31: use 31 and dim with [color] brightness")
            }
            ChipError::TooManyLeds(n) => {
                write!(
                    f,
                    "{n} LEDs is more than one strip can take: use at most {MAX_LEDS}"
                )
            }
            ChipError::ZeroClock => {
                write!(f, "SPI clock of 0 Hz: leave it out for the chip's default")
            }
        }
    }
}

impl std::error::Error for ChipError {}

/// Encodes rows for one chip and strip length, into a caller's buffer.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// The settings it was built from.
    pub settings: ChipSettings,
    /// LEDs on the strip.
    pub leds: usize,
}

impl Encoder {
    /// An encoder for `leds` LEDs. Settings that do not fit the chip are
    /// replaced by the chip's defaults (a wrong-length colour order, a global
    /// brightness outside 1..=31) and `leds` is capped at [`MAX_LEDS`]; use
    /// [`Encoder::try_new`] to get those as errors.
    pub fn new(mut settings: ChipSettings, leds: usize) -> Encoder {
        if settings.order().channels() != settings.kind.channels() {
            settings.order = None;
        }
        if settings.global_brightness == 0
            || settings.global_brightness > apa102::MAX_GLOBAL_BRIGHTNESS
        {
            settings.global_brightness = apa102::MAX_GLOBAL_BRIGHTNESS;
        }
        if settings.spi_hz == Some(0) {
            settings.spi_hz = None;
        }
        Encoder {
            settings,
            leds: leds.min(MAX_LEDS),
        }
    }

    /// An encoder for `leds` LEDs, or why the settings do not fit.
    pub fn try_new(settings: ChipSettings, leds: usize) -> Result<Encoder, ChipError> {
        settings.validate()?;
        if leds > MAX_LEDS {
            return Err(ChipError::TooManyLeds(leds));
        }
        Ok(Encoder::new(settings, leds))
    }

    /// Channels per LED the encoder expects in its input (3, or 4 for RGBW).
    pub fn channels(&self) -> usize {
        self.settings.kind.channels()
    }

    /// Bytes of one encoded frame.
    pub fn frame_len(&self) -> usize {
        let n = self.leds;
        match self.settings.kind {
            ChipKind::Apa102 => apa102::frame_len(n),
            ChipKind::Sk9822 => sk9822::frame_len(n),
            ChipKind::Ws2801 => ws2801::frame_len(n),
            ChipKind::Ws2812 => ws2812::frame_len(Variant::Ws2812, n, self.settings.spi_hz()),
            ChipKind::Sk6812 => ws2812::frame_len(Variant::Sk6812, n, self.settings.spi_hz()),
            ChipKind::Sk6812Rgbw => {
                ws2812::frame_len(Variant::Sk6812Rgbw, n, self.settings.spi_hz())
            }
        }
    }

    /// Encode one row (`leds * channels()` bytes) into `out`
    /// (`frame_len()` bytes). Never allocates.
    ///
    /// LEDs missing from `pixels` are sent black; extra pixels, and bytes of
    /// `out` past `frame_len()`, are left alone. If `out` is shorter than
    /// `frame_len()` only the LEDs that fit whole are written (the caller
    /// sized it wrong; this must not panic in the frame loop).
    pub fn encode(&self, pixels: &[u8], out: &mut [u8]) {
        let order = self.settings.order();
        let n = self.leds;
        match self.settings.kind {
            ChipKind::Apa102 => {
                apa102::encode(pixels, n, order, self.settings.global_brightness, out)
            }
            ChipKind::Sk9822 => {
                sk9822::encode(pixels, n, order, self.settings.global_brightness, out)
            }
            ChipKind::Ws2801 => ws2801::encode(pixels, n, order, out),
            ChipKind::Ws2812 | ChipKind::Sk6812 | ChipKind::Sk6812Rgbw => ws2812::encode(
                self.settings
                    .kind
                    .ws2812_variant()
                    .unwrap_or(Variant::Ws2812),
                self.settings.spi_hz(),
                pixels,
                n,
                order,
                out,
            ),
        }
    }
}

/// An encoder with its frame buffer: the one place pixels become wire
/// bytes. The SPI output, the `wire:` records and the self-test all encode
/// through it, so what `wire:` records is what SPI sends, by construction.
#[derive(Clone, Debug)]
pub struct WireFrame {
    encoder: Encoder,
    bytes: Box<[u8]>,
}

impl WireFrame {
    /// A buffer of one frame for `encoder`, holding the all-off frame.
    pub fn new(encoder: Encoder) -> WireFrame {
        let mut f = WireFrame {
            bytes: vec![0; encoder.frame_len()].into_boxed_slice(),
            encoder,
        };
        f.encode(&[]);
        f
    }

    /// Encode `pixels` (missing LEDs black) and return the frame's bytes.
    /// Never allocates.
    pub fn encode(&mut self, pixels: &[u8]) -> &[u8] {
        self.encoder.encode(pixels, &mut self.bytes);
        &self.bytes
    }

    /// The last encoded frame.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoder.
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_per_chip() {
        let d = |k: ChipKind| k.default_order().to_string();
        assert_eq!(d(ChipKind::Apa102), "BGR");
        assert_eq!(d(ChipKind::Sk9822), "BGR");
        assert_eq!(d(ChipKind::Ws2801), "RGB");
        assert_eq!(d(ChipKind::Ws2812), "GRB");
        assert_eq!(d(ChipKind::Sk6812), "GRB");
        assert_eq!(d(ChipKind::Sk6812Rgbw), "GRBW");
        for k in ChipKind::ALL {
            assert_eq!(ChipSettings::new(k).validate(), Ok(()), "{k}");
        }
    }

    #[test]
    fn order_length_must_match_the_chip() {
        let mut s = ChipSettings::new(ChipKind::Sk6812Rgbw);
        s.order = Some(ColorOrder::GRB);
        assert_eq!(
            s.validate(),
            Err(ChipError::OrderChannels {
                order: ColorOrder::GRB,
                chip: ChipKind::Sk6812Rgbw
            })
        );
        let mut s = ChipSettings::new(ChipKind::Apa102);
        s.order = Some(ColorOrder::GRBW);
        assert!(Encoder::try_new(s, 10).is_err());
        // The infallible constructor falls back to the chip's default.
        assert_eq!(Encoder::new(s, 10).settings.order(), ColorOrder::BGR);
    }

    #[test]
    fn global_brightness_and_led_count_are_checked() {
        let mut s = ChipSettings::new(ChipKind::Apa102);
        s.global_brightness = 32;
        assert_eq!(s.validate(), Err(ChipError::GlobalBrightness(32)));
        s.global_brightness = 0;
        assert_eq!(s.validate(), Err(ChipError::GlobalBrightness(0)));
        let s = ChipSettings::new(ChipKind::Ws2812);
        assert_eq!(
            Encoder::try_new(s, MAX_LEDS + 1).unwrap_err(),
            ChipError::TooManyLeds(MAX_LEDS + 1)
        );
        assert_eq!(Encoder::new(s, usize::MAX).leds, MAX_LEDS);
    }

    #[test]
    fn encode_never_panics_on_wrong_sizes() {
        for k in ChipKind::ALL {
            let e = Encoder::new(ChipSettings::new(k), 17);
            let mut out = vec![0xAA; e.frame_len() + 3];
            e.encode(&[7; 5], &mut out);
            e.encode(&[7; 1000], &mut out[..3]);
            e.encode(&[], &mut []);
        }
    }
}
