//! `.png` reading and writing.
//!
//! A PNG is one array: rows = image height (top row plays first), leds =
//! image width. Whatever the PNG colour type, the array is RGB (3
//! channels): palette and grey images are expanded to RGB, alpha is
//! dropped (an LED has nothing to blend with), and 16-bit samples keep
//! their high byte (PNG samples are full-scale, so that is the 8-bit value).
//!
//! [`write_rgb`] does the reverse for `rowplay render`: a picture of an
//! array, rows down and LEDs across.

use std::fmt;
use std::io::{Cursor, Write};

use ::png::{BitDepth, ColorType, Decoder, Encoder, Transformations};

use super::{Array, MAX_ROW_BYTES};

/// Largest decoded image accepted, in bytes. A PNG compresses a flat image
/// about 1000:1, so the header's size claim is checked against this before
/// the frame buffer is allocated; 64 MiB is also the png crate's own default
/// allocation limit, and is hours of playback for a typical strip.
pub const MAX_PNG_BYTES: u64 = 64 << 20;

/// Channels of every array read from a PNG (RGB).
const RGB: usize = 3;

/// A malformed or unsupported `.png`, or an array that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PngError {
    /// The PNG decoder rejected the file.
    Decode(String),
    /// One row (`width * 3` bytes) exceeds [`MAX_ROW_BYTES`].
    TooWide {
        /// Image width in pixels.
        width: u32,
    },
    /// The decoded image would exceed [`MAX_PNG_BYTES`].
    TooLarge {
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
    },
    /// An array to write has no pixels, or data of the wrong length.
    BadArray {
        /// Rows of the array.
        rows: u32,
        /// LEDs per row.
        leds: u32,
        /// Channels.
        channels: u8,
        /// Length of its data.
        len: usize,
    },
    /// The PNG encoder or the writer failed.
    Encode(String),
}

impl fmt::Display for PngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PngError::Decode(m) => write!(f, "cannot decode PNG ({m}); re-export the image"),
            PngError::TooWide { width } => write!(
                f,
                "image is {width} pixels wide, more than {} LEDs per row; use a narrower image",
                MAX_ROW_BYTES / RGB
            ),
            PngError::TooLarge { width, height } => write!(
                f,
                "image {width}x{height} is larger than {MAX_PNG_BYTES} bytes decoded; \
                 split it into several images"
            ),
            PngError::BadArray {
                rows,
                leds,
                channels,
                len,
            } => write!(
                f,
                "cannot draw a {rows}x{leds}x{channels} array from {len} bytes \
                 (needs at least one row and one LED, channels 3 or 4)"
            ),
            PngError::Encode(m) => write!(f, "cannot write PNG: {m}"),
        }
    }
}

impl std::error::Error for PngError {}

/// Decode a whole `.png` held in memory into an RGB [`Array`].
pub fn parse(bytes: &[u8]) -> Result<Array, PngError> {
    let decode = |e: ::png::DecodingError| PngError::Decode(e.to_string());
    let mut decoder = Decoder::new(Cursor::new(bytes));
    // EXPAND: palette -> RGB(A), grey < 8 bits -> 8 bits, tRNS -> alpha.
    // STRIP_16: 16-bit samples -> their high byte.
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(decode)?;
    // png 0.17 panics expanding a palette that is not whole RGB entries;
    // PNG requires 1..=256 entries of 3 bytes, so refuse anything else here.
    if let Some(p) = &reader.info().palette {
        if p.is_empty() || p.len() % 3 != 0 || p.len() > 256 * 3 {
            return Err(PngError::Decode(format!(
                "PLTE chunk of {} bytes is not 1 to 256 RGB entries",
                p.len()
            )));
        }
    }
    let (width, height) = (reader.info().width, reader.info().height);
    if u64::from(width) * RGB as u64 > MAX_ROW_BYTES as u64 {
        return Err(PngError::TooWide { width });
    }
    let (color, depth) = reader.output_color_type();
    let samples = match color {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        // EXPAND always turns palette images into RGB or RGBA.
        ColorType::Indexed => return Err(PngError::Decode("palette was not expanded".to_owned())),
    };
    if depth != BitDepth::Eight {
        return Err(PngError::Decode(format!("unexpected {depth:?} output")));
    }
    // Check the header's size claim before allocating the frame.
    let frame_bytes = u64::from(width) * u64::from(height) * samples as u64;
    if frame_bytes > MAX_PNG_BYTES {
        return Err(PngError::TooLarge { width, height });
    }
    let mut frame = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut frame).map_err(decode)?;
    let line = info.line_size;
    let leds = width as usize;
    let pixels_len = leds * samples;
    // The decoder promises line >= pixels_len; checked so a decoder bug
    // becomes an error rather than a panic.
    if line < pixels_len || line == 0 {
        return Err(PngError::Decode(format!(
            "row of {line} bytes is too short"
        )));
    }
    let mut data = Vec::with_capacity(leds * height as usize * RGB);
    for row in frame.chunks_exact(line).take(height as usize) {
        for px in row[..pixels_len].chunks_exact(samples) {
            match samples {
                1 | 2 => data.extend_from_slice(&[px[0]; RGB]),
                _ => data.extend_from_slice(&px[..RGB]),
            }
        }
    }
    Ok(Array {
        rows: height,
        leds: width,
        channels: RGB as u8,
        data,
    })
}

/// Write a picture of `array` as an 8-bit RGB PNG: rows down, LEDs
/// across. For RGBW arrays the white channel is added to R, G and B
/// (saturating), which is roughly what the eye sees.
pub fn write_rgb(array: &Array, w: impl Write) -> Result<(), PngError> {
    let channels = usize::from(array.channels);
    let expected = u64::from(array.rows) * u64::from(array.leds) * channels as u64;
    if array.rows == 0
        || array.leds == 0
        || !matches!(channels, 3 | 4)
        || array.data.len() as u64 != expected
    {
        return Err(PngError::BadArray {
            rows: array.rows,
            leds: array.leds,
            channels: array.channels,
            len: array.data.len(),
        });
    }
    let rgb: Vec<u8> = if channels == RGB {
        array.data.clone()
    } else {
        array
            .data
            .chunks_exact(channels)
            .flat_map(|p| {
                [
                    p[0].saturating_add(p[3]),
                    p[1].saturating_add(p[3]),
                    p[2].saturating_add(p[3]),
                ]
            })
            .collect()
    };
    let encode = |e: ::png::EncodingError| PngError::Encode(e.to_string());
    let mut encoder = Encoder::new(w, array.leds, array.rows);
    encoder.set_color(ColorType::Rgb);
    encoder.set_depth(BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(encode)?;
    writer.write_image_data(&rgb).map_err(encode)?;
    writer.finish().map_err(encode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

    fn parse_file(rel: &str) -> Result<Array, PngError> {
        parse(&std::fs::read(format!("{FIXTURES}{rel}")).unwrap())
    }

    /// Found by the png fuzz target: a 14-byte PLTE made png 0.17 panic
    /// (slice index out of range) while expanding the palette. This is the
    /// fuzzer's input with valid chunk CRCs (fuzz builds skip them) and a
    /// whole, non-interlaced 5x3 image.
    #[test]
    fn palette_that_is_not_whole_rgb_entries() {
        const CRASH: &[u8] = &[
            0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
            0x44, 0x52, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x03, 0x08, 0x03, 0x00, 0x00,
            0x00, 0x6c, 0xe8, 0x35, 0xca, 0x00, 0x00, 0x00, 0x0e, 0x50, 0x4c, 0x54, 0x45, 0xf0,
            0x0d, 0x2b, 0xec, 0x30, 0x16, 0x99, 0x9e, 0x82, 0xbc, 0x3b, 0xbc, 0x3b, 0xc4, 0x41,
            0x48, 0x07, 0x31, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x63,
            0x60, 0x60, 0x64, 0x62, 0x66, 0x61, 0x40, 0x22, 0x01, 0x01, 0x02, 0x00, 0x1f, 0xd4,
            0x50, 0x5c, 0xf9, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60,
            0x82,
        ];
        assert_eq!(
            parse(CRASH),
            Err(PngError::Decode(
                "PLTE chunk of 14 bytes is not 1 to 256 RGB entries".into()
            ))
        );
    }

    #[test]
    fn broken_pngs() {
        assert!(matches!(
            parse_file("broken/bad.png"),
            Err(PngError::Decode(_))
        ));
        assert!(matches!(
            parse_file("broken/cut.png"),
            Err(PngError::Decode(_))
        ));
        assert!(matches!(
            parse_file("broken/empty.npy"),
            Err(PngError::Decode(_))
        ));
    }

    fn chunk(png: &mut Vec<u8>, tag: &[u8; 4], data: &[u8]) {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = tag.to_vec();
        body.extend_from_slice(data);
        png.extend_from_slice(&body);
        png.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    }

    /// A PNG claiming a `width` x `height` 8-bit RGB image, with almost no
    /// pixel data: what a decompression bomb or a lying header looks like.
    fn ihdr_only(width: u32, height: u32) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        chunk(&mut png, b"IHDR", &ihdr);
        chunk(&mut png, b"IDAT", &[0x78, 0x9c, 0x03, 0x00]);
        chunk(&mut png, b"IEND", &[]);
        png
    }

    #[test]
    fn size_claims_are_checked_before_allocating() {
        let wide = (MAX_ROW_BYTES / RGB) as u32 + 1;
        assert_eq!(
            parse(&ihdr_only(wide, 1)),
            Err(PngError::TooWide { width: wide })
        );
        assert_eq!(
            parse(&ihdr_only(1000, 1_000_000)),
            Err(PngError::TooLarge {
                width: 1000,
                height: 1_000_000
            })
        );
    }

    #[test]
    fn write_then_read_round_trip() {
        let array = Array {
            rows: 3,
            leds: 5,
            channels: 3,
            data: (0..45).map(|i| (i * 5) as u8).collect(),
        };
        let mut out = Vec::new();
        write_rgb(&array, &mut out).unwrap();
        assert_eq!(parse(&out).unwrap(), array);
    }

    #[test]
    fn rgbw_adds_white_saturating() {
        let array = Array {
            rows: 1,
            leds: 2,
            channels: 4,
            data: vec![10, 20, 30, 5, 250, 0, 100, 10],
        };
        let mut out = Vec::new();
        write_rgb(&array, &mut out).unwrap();
        let back = parse(&out).unwrap();
        assert_eq!((back.rows, back.leds, back.channels), (1, 2, 3));
        assert_eq!(back.data, [15, 25, 35, 255, 10, 110]);
    }

    #[test]
    fn write_rejects_inconsistent_arrays() {
        for (rows, leds, channels, len) in [(0, 3, 3, 0), (1, 2, 3, 5), (1, 2, 2, 4)] {
            let array = Array {
                rows,
                leds,
                channels,
                data: vec![0; len],
            };
            assert_eq!(
                write_rgb(&array, Vec::new()),
                Err(PngError::BadArray {
                    rows,
                    leds,
                    channels,
                    len
                })
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_mutated_pngs(
            file in prop::sample::select(vec!["rgb8.png", "palette.png", "rgb16.png", "grey1.png"]),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = std::fs::read(format!("{FIXTURES}png/{file}")).unwrap();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let _ = parse(&bytes);
        }
    }
}
