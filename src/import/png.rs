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
    let mut data = Vec::with_capacity(leds * height as usize * RGB);
    for row in frame.chunks_exact(line).take(height as usize) {
        for px in row[..leds * samples].chunks_exact(samples) {
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
