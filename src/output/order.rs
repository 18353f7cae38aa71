//! The order colour bytes go on the wire, and reading one channel of a
//! pixel. Shared by every chip encoder; depends on nothing else.

use std::fmt;
use std::str::FromStr;

/// The order colour bytes go on the wire, e.g. `BGR` sends blue first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColorOrder {
    /// For each wire position, the source channel (0 R, 1 G, 2 B, 3 W).
    pub map: [u8; 4],
    /// 3 or 4.
    pub len: u8,
}

impl ColorOrder {
    /// Red, green, blue.
    pub const RGB: ColorOrder = ColorOrder {
        map: [0, 1, 2, 3],
        len: 3,
    };
    /// Blue, green, red (APA102, SK9822).
    pub const BGR: ColorOrder = ColorOrder {
        map: [2, 1, 0, 3],
        len: 3,
    };
    /// Green, red, blue (WS2812, SK6812).
    pub const GRB: ColorOrder = ColorOrder {
        map: [1, 0, 2, 3],
        len: 3,
    };
    /// Green, red, blue, white (SK6812-RGBW).
    pub const GRBW: ColorOrder = ColorOrder {
        map: [1, 0, 2, 3],
        len: 4,
    };

    /// Channels per LED: 3 or 4.
    pub fn channels(self) -> usize {
        self.len as usize
    }
}

impl fmt::Display for ColorOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &c in &self.map[..self.channels()] {
            let letter = match c {
                0 => 'R',
                1 => 'G',
                2 => 'B',
                _ => 'W',
            };
            write!(f, "{letter}")?;
        }
        Ok(())
    }
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

impl std::error::Error for BadColorOrder {}

impl FromStr for ColorOrder {
    type Err = BadColorOrder;
    /// Parses `RGB`, `grb`, `GRBW`, ...: three letters (a permutation of RGB)
    /// or four (a permutation of RGBW), any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadColorOrder(s.to_string());
        let len = s.chars().count();
        if len != 3 && len != 4 {
            return Err(bad());
        }
        let mut map = [0, 1, 2, 3];
        let mut seen = [false; 4];
        for (i, ch) in s.chars().enumerate() {
            let c = match ch.to_ascii_uppercase() {
                'R' => 0,
                'G' => 1,
                'B' => 2,
                'W' if len == 4 => 3,
                _ => return Err(bad()),
            };
            if seen[c as usize] {
                return Err(bad());
            }
            seen[c as usize] = true;
            map[i] = c;
        }
        Ok(ColorOrder {
            map,
            len: len as u8,
        })
    }
}

/// Pixel `i` of `pixels` (`order.channels()` per LED, in R G B (W) order),
/// channel `src` (0 R, 1 G, 2 B, 3 W), or 0 past the end. Shared by the
/// encoders so that a short row is black, never a panic.
#[inline]
pub fn channel(pixels: &[u8], channels: usize, i: usize, src: u8) -> u8 {
    pixels
        .get(i * channels + src as usize)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_permutation_in_any_case() {
        for (s, map, len) in [
            ("RGB", [0, 1, 2, 3], 3),
            ("rbg", [0, 2, 1, 3], 3),
            ("GRB", [1, 0, 2, 3], 3),
            ("gbr", [1, 2, 0, 3], 3),
            ("BRG", [2, 0, 1, 3], 3),
            ("Bgr", [2, 1, 0, 3], 3),
            ("GRBW", [1, 0, 2, 3], 4),
            ("wrgb", [3, 0, 1, 2], 4),
        ] {
            let o: ColorOrder = s.parse().unwrap();
            assert_eq!((o.map, o.len), (map, len), "{s}");
            assert_eq!(o.to_string(), s.to_ascii_uppercase());
        }
    }

    #[test]
    fn rejects_non_permutations() {
        for s in ["", "RG", "RGBX", "RRB", "RGW", "RGBWW", "GRBB", "R G"] {
            let e = s.parse::<ColorOrder>().unwrap_err();
            assert_eq!(e, BadColorOrder(s.to_string()));
        }
    }
}
