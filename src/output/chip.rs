//! LED chip selection, colour order, and the [`Encoder`] that turns a row of
//! pixels into the bytes for the SPI bus (stub; filled in by the chip work).

use std::fmt;
use std::str::FromStr;

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

/// The order colour bytes go on the wire, e.g. `BGR` sends blue first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorOrder {
    /// For each wire position, the source channel (0 R, 1 G, 2 B, 3 W).
    pub map: [u8; 4],
    /// 3 or 4.
    pub len: u8,
}

/// A colour order that is not a permutation of RGB or RGBW.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadColorOrder(pub String);

impl fmt::Display for BadColorOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad colour order {:?}: use a permutation of RGB (e.g. GRB) or RGBW (e.g. GRBW)",
            self.0
        )
    }
}

impl FromStr for ColorOrder {
    type Err = BadColorOrder;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Err(BadColorOrder(s.to_string()))
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

/// Encodes rows for one chip and strip length, into a caller's buffer.
#[derive(Clone, Debug)]
pub struct Encoder {
    /// The settings it was built from.
    pub settings: ChipSettings,
    /// LEDs on the strip.
    pub leds: usize,
}

impl Encoder {
    /// An encoder for `leds` LEDs.
    pub fn new(settings: ChipSettings, leds: usize) -> Encoder {
        Encoder { settings, leds }
    }
    /// Channels per LED the encoder expects in its input (3, or 4 for RGBW).
    pub fn channels(&self) -> usize {
        3
    }
    /// Bytes of one encoded frame.
    pub fn frame_len(&self) -> usize {
        0
    }
    /// Encode one row (`leds * channels()` bytes) into `out`
    /// (`frame_len()` bytes). Never allocates.
    pub fn encode(&self, pixels: &[u8], out: &mut [u8]) {
        let _ = (pixels, out);
    }
}
