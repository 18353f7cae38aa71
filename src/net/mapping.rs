//! Where network data lands on the strip.
//!
//! A frame is the strip's pixels in RGB (or RGBW) order,
//! `leds * channels_per_led` bytes. E1.31 universes start at `first_e131`
//! (default 1) and Art-Net Port-Addresses at `first_artnet` (default 0);
//! the universe `k` places after the first holds LEDs `k * L .. (k + 1) * L`
//! with `L = channels_per_universe / channels_per_led` (170 RGB at 510; 127
//! RGBW at 510, 128 at 512): an LED never straddles two universes and the rest
//! of a universe is unused. The strip length decides how many universes
//! there are. DDP offsets are bytes into the frame, minus `ddp_offset`.

use std::fmt;
use std::ops::Range;

/// Default first E1.31 universe.
pub const DEFAULT_FIRST_E131: u16 = 1;
/// Default first Art-Net Port-Address.
pub const DEFAULT_FIRST_ARTNET: u16 = 0;
/// Default channels per universe (170 RGB LEDs, as LedFx and WLED).
pub const DEFAULT_CHANNELS_PER_UNIVERSE: u16 = 510;
/// Largest universe a mapping may span (the receiver's per-source tables
/// are this long): 256 universes of 170 LEDs is 43,520 LEDs.
pub const MAX_UNIVERSES: usize = 256;

/// A mapping that cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MappingError {
    /// Channels per LED not 3 (RGB) or 4 (RGBW).
    ChannelsPerLed(usize),
    /// Channels per universe below one LED or above 512.
    ChannelsPerUniverse(u16),
    /// No LEDs.
    NoLeds,
    /// The strip needs more universes than [`MAX_UNIVERSES`].
    TooManyUniverses(usize),
    /// The E1.31 universes would go past 63999 (or the first is 0).
    E131Range {
        /// First universe.
        first: u16,
        /// Universes needed.
        count: usize,
    },
    /// The Art-Net Port-Addresses would go past 32767.
    ArtnetRange {
        /// First Port-Address.
        first: u16,
        /// Universes needed.
        count: usize,
    },
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::ChannelsPerLed(n) => {
                write!(
                    f,
                    "live input needs 3 (RGB) or 4 (RGBW) channels per LED, not {n}"
                )
            }
            MappingError::ChannelsPerUniverse(n) => write!(
                f,
                "--channels-per-universe {n} must hold at least one LED and be at most 512"
            ),
            MappingError::NoLeds => write!(f, "live input needs a strip of at least one LED"),
            MappingError::TooManyUniverses(n) => write!(
                f,
                "the strip needs {n} universes; at most {MAX_UNIVERSES} are supported"
            ),
            MappingError::E131Range { first, count } => write!(
                f,
                "--universe {first} with {count} universes goes outside E1.31's 1..=63999"
            ),
            MappingError::ArtnetRange { first, count } => write!(
                f,
                "--artnet-universe {first} with {count} universes goes past Port-Address 32767"
            ),
        }
    }
}

impl std::error::Error for MappingError {}

/// The strip's layout in universes and DDP bytes. Built once; pure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    leds: usize,
    channels_per_led: usize,
    channels_per_universe: u16,
    leds_per_universe: usize,
    universes: usize,
    first_e131: u16,
    first_artnet: u16,
    ddp_offset: u32,
}

impl Mapping {
    /// Build and check a mapping.
    pub fn new(
        leds: usize,
        channels_per_led: usize,
        channels_per_universe: u16,
        first_e131: u16,
        first_artnet: u16,
        ddp_offset: u32,
    ) -> Result<Mapping, MappingError> {
        if channels_per_led != 3 && channels_per_led != 4 {
            return Err(MappingError::ChannelsPerLed(channels_per_led));
        }
        if (channels_per_universe as usize) < channels_per_led || channels_per_universe > 512 {
            return Err(MappingError::ChannelsPerUniverse(channels_per_universe));
        }
        if leds == 0 {
            return Err(MappingError::NoLeds);
        }
        let leds_per_universe = channels_per_universe as usize / channels_per_led;
        let universes = leds.div_ceil(leds_per_universe);
        if universes > MAX_UNIVERSES {
            return Err(MappingError::TooManyUniverses(universes));
        }
        if first_e131 == 0 || first_e131 as usize + universes - 1 > 63999 {
            return Err(MappingError::E131Range {
                first: first_e131,
                count: universes,
            });
        }
        if first_artnet as usize + universes - 1 > 0x7FFF {
            return Err(MappingError::ArtnetRange {
                first: first_artnet,
                count: universes,
            });
        }
        Ok(Mapping {
            leds,
            channels_per_led,
            channels_per_universe,
            leds_per_universe,
            universes,
            first_e131,
            first_artnet,
            ddp_offset,
        })
    }

    /// LEDs on the strip.
    pub fn leds(&self) -> usize {
        self.leds
    }
    /// Channels per LED (3 or 4).
    pub fn channels_per_led(&self) -> usize {
        self.channels_per_led
    }
    /// Bytes of a frame.
    pub fn frame_len(&self) -> usize {
        self.leds * self.channels_per_led
    }
    /// Whole LEDs per universe.
    pub fn leds_per_universe(&self) -> usize {
        self.leds_per_universe
    }
    /// Universes the strip spans.
    pub fn universes(&self) -> usize {
        self.universes
    }
    /// First E1.31 universe.
    pub fn first_e131(&self) -> u16 {
        self.first_e131
    }
    /// First Art-Net Port-Address.
    pub fn first_artnet(&self) -> u16 {
        self.first_artnet
    }
    /// Channels per universe.
    pub fn channels_per_universe(&self) -> u16 {
        self.channels_per_universe
    }

    /// Index (0-based) of E1.31 universe `u`, if it is on the strip.
    pub fn e131_index(&self, u: u16) -> Option<usize> {
        let i = u.checked_sub(self.first_e131)? as usize;
        (i < self.universes).then_some(i)
    }

    /// Index (0-based) of Art-Net Port-Address `pa`, if it is on the strip.
    pub fn artnet_index(&self, pa: u16) -> Option<usize> {
        let i = pa.checked_sub(self.first_artnet)? as usize;
        (i < self.universes).then_some(i)
    }

    /// The bytes of the frame universe `index` covers.
    pub fn universe_range(&self, index: usize) -> Range<usize> {
        let per = self.leds_per_universe * self.channels_per_led;
        let start = (index * per).min(self.frame_len());
        start..(start + per).min(self.frame_len())
    }

    /// Copy a universe's slots into `frame`. Slots past the universe's
    /// whole LEDs or the strip's end are ignored; a short universe updates
    /// only what it carries. Returns the bytes copied.
    pub fn apply_universe(&self, frame: &mut [u8], index: usize, slots: &[u8]) -> usize {
        if index >= self.universes {
            return 0;
        }
        let r = self.universe_range(index);
        let n = slots.len().min(r.len());
        match frame.get_mut(r.start..r.start + n) {
            Some(dst) => {
                dst.copy_from_slice(&slots[..n]);
                n
            }
            None => 0,
        }
    }

    /// Copy DDP data at byte `offset` (as sent) into `frame`, after taking
    /// off the configured DDP offset. Data before the offset or past the
    /// strip is ignored. Returns the bytes copied, or `None` when nothing of
    /// the packet lands on the strip (but a packet with no data is fine).
    pub fn apply_ddp(&self, frame: &mut [u8], offset: u32, data: &[u8]) -> Option<usize> {
        if data.is_empty() {
            return Some(0);
        }
        let (skip, dst) = if offset >= self.ddp_offset {
            (0usize, (offset - self.ddp_offset) as usize)
        } else {
            ((self.ddp_offset - offset) as usize, 0usize)
        };
        if skip >= data.len() || dst >= self.frame_len() {
            return None;
        }
        let n = (data.len() - skip).min(self.frame_len() - dst);
        frame
            .get_mut(dst..dst + n)?
            .copy_from_slice(&data[skip..skip + n]);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb(leds: usize) -> Mapping {
        Mapping::new(leds, 3, 510, 1, 0, 0).unwrap()
    }

    #[test]
    fn whole_leds_per_universe() {
        assert_eq!(rgb(680).leds_per_universe(), 170);
        assert_eq!(rgb(680).universes(), 4);
        assert_eq!(rgb(681).universes(), 5);
        assert_eq!(
            Mapping::new(680, 3, 512, 1, 0, 0)
                .unwrap()
                .leds_per_universe(),
            170
        );
        assert_eq!(
            Mapping::new(300, 4, 510, 1, 0, 0)
                .unwrap()
                .leds_per_universe(),
            127
        );
        assert_eq!(
            Mapping::new(300, 4, 512, 1, 0, 0)
                .unwrap()
                .leds_per_universe(),
            128
        );
        assert_eq!(Mapping::new(300, 4, 512, 1, 0, 0).unwrap().universes(), 3);
    }

    #[test]
    fn universe_numbers() {
        let m = Mapping::new(400, 3, 510, 5, 16, 0).unwrap();
        assert_eq!(m.universes(), 3);
        assert_eq!(m.e131_index(4), None);
        assert_eq!(m.e131_index(5), Some(0));
        assert_eq!(m.e131_index(7), Some(2));
        assert_eq!(m.e131_index(8), None);
        assert_eq!(m.artnet_index(15), None);
        assert_eq!(m.artnet_index(16), Some(0));
        assert_eq!(m.artnet_index(18), Some(2));
        assert_eq!(m.artnet_index(19), None);
    }

    #[test]
    fn an_led_never_straddles() {
        // RGBW at 510: 127 LEDs = 508 bytes; slots 509 and 510 are unused.
        let m = Mapping::new(254, 4, 510, 1, 0, 0).unwrap();
        let mut f = vec![0u8; m.frame_len()];
        let slots = vec![7u8; 510];
        assert_eq!(m.apply_universe(&mut f, 0, &slots), 508);
        assert!(f[..508].iter().all(|&b| b == 7));
        assert!(f[508..].iter().all(|&b| b == 0));
        assert_eq!(m.universe_range(1), 508..1016);
        assert_eq!(m.apply_universe(&mut f, 1, &slots), 508);
        assert!(f.iter().all(|&b| b == 7));
    }

    #[test]
    fn last_universe_is_cut_at_the_strip_end() {
        let m = rgb(200); // 170 + 30
        let mut f = vec![0u8; m.frame_len()];
        assert_eq!(m.universe_range(1), 510..600);
        assert_eq!(m.apply_universe(&mut f, 1, &[9u8; 512]), 90);
        assert_eq!(m.apply_universe(&mut f, 2, &[9u8; 512]), 0);
        assert_eq!(m.apply_universe(&mut f, 0, &[1, 2, 3]), 3);
        assert_eq!(&f[..4], &[1, 2, 3, 0]);
    }

    #[test]
    fn ddp_offsets_are_bytes_minus_the_base() {
        let m = Mapping::new(4, 3, 510, 1, 0, 6).unwrap();
        let mut f = vec![0u8; 12];
        // Channels 6.. land at byte 0.
        assert_eq!(m.apply_ddp(&mut f, 6, &[1, 2, 3]), Some(3));
        assert_eq!(&f[..3], &[1, 2, 3]);
        // Data starting before the base: its head is dropped.
        assert_eq!(m.apply_ddp(&mut f, 3, &[0, 0, 0, 4, 5, 6]), Some(3));
        assert_eq!(&f[..3], &[4, 5, 6]);
        // Past the strip's end: cut; wholly past: None.
        assert_eq!(m.apply_ddp(&mut f, 6 + 9, &[7; 10]), Some(3));
        assert_eq!(&f[9..], &[7, 7, 7]);
        assert_eq!(m.apply_ddp(&mut f, 6 + 12, &[7; 3]), None);
        assert_eq!(m.apply_ddp(&mut f, 0, &[7; 3]), None);
        assert_eq!(m.apply_ddp(&mut f, u32::MAX, &[7; 3]), None);
        assert_eq!(m.apply_ddp(&mut f, 100, &[]), Some(0));
    }

    #[test]
    fn bad_mappings() {
        assert_eq!(
            Mapping::new(1, 5, 510, 1, 0, 0),
            Err(MappingError::ChannelsPerLed(5))
        );
        assert_eq!(
            Mapping::new(1, 3, 513, 1, 0, 0),
            Err(MappingError::ChannelsPerUniverse(513))
        );
        assert_eq!(
            Mapping::new(1, 4, 3, 1, 0, 0),
            Err(MappingError::ChannelsPerUniverse(3))
        );
        assert_eq!(Mapping::new(0, 3, 510, 1, 0, 0), Err(MappingError::NoLeds));
        assert_eq!(
            Mapping::new(170 * 257, 3, 510, 1, 0, 0),
            Err(MappingError::TooManyUniverses(257))
        );
        assert_eq!(
            Mapping::new(340, 3, 510, 0, 0, 0),
            Err(MappingError::E131Range { first: 0, count: 2 })
        );
        assert_eq!(
            Mapping::new(340, 3, 510, 63999, 0, 0),
            Err(MappingError::E131Range {
                first: 63999,
                count: 2
            })
        );
        assert!(Mapping::new(340, 3, 510, 63998, 0, 0).is_ok());
        assert_eq!(
            Mapping::new(340, 3, 510, 1, 0x7FFF, 0),
            Err(MappingError::ArtnetRange {
                first: 0x7FFF,
                count: 2
            })
        );
    }
}
