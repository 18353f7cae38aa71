//! Array thumbnails: at most [`THUMB_ROWS`] rows by [`THUMB_LEDS`] LEDs,
//! sampled evenly from the pack (rows down, LEDs across, as `rowplay
//! render` draws the whole array), encoded as PNG and kept in a small cache.
//!
//! Only the sampled rows are read (from the heads when they are there, else
//! one positioned read each; a very wide row is read pixel by pixel), so a
//! thumbnail of a long array costs at most 64 small reads. Bodies are not
//! CRC-checked here: that would mean reading the whole array.

use crate::import::png::write_rgb;
use crate::import::Array;
use crate::library::Library;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

/// Most rows in a thumbnail.
pub const THUMB_ROWS: u32 = 64;
/// Most LEDs across a thumbnail.
pub const THUMB_LEDS: u32 = 64;
/// Thumbnails kept (a few KiB each at most).
pub const CACHE_LEN: usize = 512;
/// Rows up to this many bytes are read whole; wider ones pixel by pixel.
const WHOLE_ROW_BYTES: u64 = 16 * 1024;

/// `n` indices spread evenly over `0..len` (n <= len).
fn sample(len: u32, n: u32, k: u32) -> u32 {
    // k < n <= len, so the result is < len; u64 avoids overflow.
    (k as u64 * len as u64 / n as u64) as u32
}

/// Render the thumbnail of array `i` as PNG bytes.
pub fn render(lib: &Library, i: u32) -> Result<Vec<u8>, String> {
    let info = lib.info(i).ok_or_else(|| format!("no array {i}"))?;
    let ch = info.channels as usize;
    let rows = info.rows.min(THUMB_ROWS);
    let leds = info.leds.min(THUMB_LEDS);
    let row_bytes = info.leds as u64 * ch as u64;
    let mut data = Vec::with_capacity(rows as usize * leds as usize * ch);
    let mut row = Vec::new();
    for k in 0..rows {
        let r = sample(info.rows, rows, k);
        let src: &[u8] = match lib.head_row(i, r) {
            Some(h) => h,
            None if row_bytes <= WHOLE_ROW_BYTES => {
                row.resize(row_bytes as usize, 0);
                lib.read_body(i, r as u64 * row_bytes, &mut row)
                    .map_err(|e| format!("array {:?}: {e}", info.name))?;
                &row
            }
            None => {
                // Only the sampled pixels, in place of a row of up to 1 MiB.
                row.resize(leds as usize * ch, 0);
                for l in 0..leds {
                    let at = r as u64 * row_bytes + sample(info.leds, leds, l) as u64 * ch as u64;
                    let dst = &mut row[l as usize * ch..(l as usize + 1) * ch];
                    lib.read_body(i, at, dst)
                        .map_err(|e| format!("array {:?}: {e}", info.name))?;
                }
                data.extend_from_slice(&row);
                continue;
            }
        };
        for l in 0..leds {
            let at = sample(info.leds, leds, l) as usize * ch;
            data.extend_from_slice(src.get(at..at + ch).unwrap_or(&[0, 0, 0, 0][..ch]));
        }
    }
    let small = Array {
        rows,
        leds,
        channels: info.channels as u8,
        data,
    };
    let mut png = Vec::new();
    write_rgb(&small, &mut png).map_err(|e| e.to_string())?;
    Ok(png)
}

/// Thumbnails of the current library, least recently used dropped first.
/// A new library (after `reload`) empties it.
#[derive(Default)]
pub struct ThumbCache {
    /// The library the entries belong to. A `Weak` keeps its allocation
    /// alive, so a later library cannot be mistaken for it by address.
    lib: Option<Weak<Library>>,
    entries: VecDeque<(u32, Arc<[u8]>)>,
}

impl ThumbCache {
    /// The thumbnail of array `i`, rendered on a miss.
    pub fn get(&mut self, lib: &Arc<Library>, i: u32) -> Result<Arc<[u8]>, String> {
        let same = self
            .lib
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(lib)));
        if !same {
            self.entries.clear();
            self.lib = Some(Arc::downgrade(lib));
        }
        let hit = self.entries.iter().position(|(k, _)| *k == i);
        if let Some(e) = hit.and_then(|pos| self.entries.remove(pos)) {
            let png = e.1.clone();
            self.entries.push_back(e);
            return Ok(png);
        }
        let png: Arc<[u8]> = render(lib, i)?.into();
        if self.entries.len() >= CACHE_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back((i, png.clone()));
        Ok(png)
    }

    /// Thumbnails held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_over_the_range() {
        let v: Vec<u32> = (0..4).map(|k| sample(10, 4, k)).collect();
        assert_eq!(v, [0, 2, 5, 7]);
        let all: Vec<u32> = (0..3).map(|k| sample(3, 3, k)).collect();
        assert_eq!(all, [0, 1, 2]);
        assert_eq!(sample(u32::MAX, 64, 63), (63 * u32::MAX as u64 / 64) as u32);
    }
}
