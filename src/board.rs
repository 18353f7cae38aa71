//! Built-in board profiles from `boards/*.toml`, compiled into the binary.
//!
//! A profile holds what rowplay needs to know about a Pi model: the Rust
//! target to build for, the SPI buses and their pins, which bus has DMA, the
//! core clock the SPI divider works from (see
//! [`crate::output::spi::real_clock_hz`]) and the default realtime priority.

use serde::Deserialize;

/// One SPI bus on the header.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SpiBus {
    /// Bus number, as in `/dev/spidevB.C`.
    pub bus: u8,
    /// BCM pin numbers.
    pub mosi: u8,
    /// BCM pin numbers.
    pub miso: u8,
    /// BCM pin numbers.
    pub sclk: u8,
    /// Chip select pins, CE0 first.
    pub ce: Vec<u8>,
    /// Whether large transfers go by DMA (gap-free).
    pub dma: bool,
    /// The `/boot/config.txt` line that enables it.
    pub enable: String,
}

/// A Pi model.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Profile name, e.g. `pi-zero`.
    pub name: String,
    /// Models it covers.
    pub model: String,
    /// System on chip.
    pub soc: String,
    /// CPU cores and clock.
    pub cpu: String,
    /// Recommended Rust target triple.
    pub rust_target: String,
    /// Alternatives to it.
    pub rust_target_notes: String,
    /// Core clock the SPI divider works from, in Hz, when pinned as the notes say.
    pub core_hz: u32,
    /// How to pin it.
    pub core_clock_notes: String,
    /// Default SCHED_FIFO priority of the player.
    pub rt_priority: u32,
    /// SPI buses.
    pub spi: Vec<SpiBus>,
}

/// The built-in profiles, name and TOML text.
const BUILT_IN: [(&str, &str); 4] = [
    ("pi-zero", include_str!("../boards/pi-zero.toml")),
    ("pi-zero-2-w", include_str!("../boards/pi-zero-2-w.toml")),
    ("pi-3", include_str!("../boards/pi-3.toml")),
    ("pi-4", include_str!("../boards/pi-4.toml")),
];

const NAMES: [&str; 4] = [BUILT_IN[0].0, BUILT_IN[1].0, BUILT_IN[2].0, BUILT_IN[3].0];

/// Names of the built-in boards.
pub fn names() -> &'static [&'static str] {
    &NAMES
}

/// The built-in board called `name`, or `None`.
pub fn get(name: &str) -> Option<Board> {
    let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == name)?;
    // Every built-in profile parses (tested below); a broken one reads as absent.
    toml::from_str(text).ok()
}

impl Board {
    /// The bus `bus`, if the board has it.
    pub fn spi_bus(&self, bus: u8) -> Option<&SpiBus> {
        self.spi.iter().find(|b| b.bus == bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_board_parses_and_matches_its_name() {
        for (name, text) in BUILT_IN {
            let b: Board = toml::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(b.name, name);
            assert_eq!(get(name), Some(b.clone()));
            let spi0 = b.spi_bus(0).unwrap();
            assert_eq!((spi0.mosi, spi0.miso, spi0.sclk), (10, 9, 11), "{name}");
            assert!(spi0.dma && !b.spi_bus(1).unwrap().dma, "{name}");
            assert!(b.core_hz >= 250_000_000, "{name}");
        }
        assert_eq!(names(), ["pi-zero", "pi-zero-2-w", "pi-3", "pi-4"]);
        assert_eq!(get("pi-5"), None);
    }

    #[test]
    fn targets_per_board() {
        let t = |n: &str| get(n).unwrap().rust_target;
        assert_eq!(t("pi-zero"), "arm-unknown-linux-musleabihf");
        assert_eq!(t("pi-zero-2-w"), "armv7-unknown-linux-musleabihf");
        assert_eq!(get("pi-4").unwrap().core_hz, 500_000_000);
    }
}
