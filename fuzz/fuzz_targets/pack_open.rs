//! The whole open path, `Library::open`, on a real file: header, index,
//! names, heads and their CRCs; then every head row and every body.
//!
//! Random bytes almost never form a pack of the right length with matching
//! CRCs, so the input is an edit script applied to a valid pack built at
//! start-up:
//!
//! ```text
//! byte 0      bits 0-1: which base pack; bit 2: recompute the heads CRC;
//!             bit 3: recompute the meta CRC; bit 4: resize the file
//! bytes 1-2   if resizing: i16 LE added to the file length
//! then edits  [sel, off lo, off hi, value...]: sel bits 0-1 = value width
//!             1/2/4/8 bytes, bit 2 = offset counts back from the end (to
//!             reach the tail); offset is taken modulo the file length
//! ```
//!
//! The CRCs are recomputed after the edits, from the (edited) header's
//! own offsets, so index and heads checks are reachable past the CRCs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::import::{Array, NamedArray};
use rowplay::library::{Library, OpenOptions};
use rowplay::pack::{pack_arrays, PackOptions};
use std::path::PathBuf;
use std::sync::OnceLock;

fn array(name: &str, rows: u32, leds: u32, channels: u8, seed: u8) -> NamedArray {
    let n = (rows * leds) as usize * channels as usize;
    NamedArray {
        name: name.into(),
        array: Array {
            rows,
            leds,
            channels,
            data: (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect(),
        },
        period_ns: None,
    }
}

fn scratch() -> PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("rowplay-fuzz-{}", std::process::id()))
}

fn bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let dir = scratch();
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("base.rowpack");
        let sets: [(Vec<NamedArray>, u32, bool); 3] = [
            // Rows above, equal to and below head_rows; RGB and RGBW; a
            // multi-byte UTF-8 name.
            (
                vec![
                    array("a", 5, 3, 3, 1),
                    array("b/c", 1, 2, 4, 2),
                    array("\u{e9}t\u{e9}", 2, 1, 3, 3),
                ],
                2,
                false,
            ),
            (vec![array("col", 3, 4, 4, 4)], 8, true),
            (
                vec![array("x", 2, 2, 3, 5), array("y", 4, 1, 3, 6)],
                1,
                false,
            ),
        ];
        sets.into_iter()
            .map(|(arrays, head_rows, by_column)| {
                let opts = PackOptions {
                    head_rows,
                    by_column,
                    ..PackOptions::default()
                };
                pack_arrays(arrays, &out, &opts).unwrap();
                std::fs::read(&out).unwrap()
            })
            .collect()
    })
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The byte range `[start, start + len)` if it lies inside `b`.
fn span(b: &[u8], start: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(len)?;
    if end > b.len() as u64 {
        return None;
    }
    Some(start as usize..end as usize)
}

fn fix_crcs(b: &mut [u8], heads: bool, meta: bool) {
    let (Some(count), Some(index_offset), Some(names_len), Some(heads_len)) =
        (u64_at(b, 24), u64_at(b, 32), u64_at(b, 40), u64_at(b, 48))
    else {
        return;
    };
    // Version 2 entries are 40 bytes (see format.rs).
    let entry_len = if b.get(8) == Some(&2) { 40 } else { 32 };
    let Some(meta_len) = count
        .checked_mul(entry_len)
        .and_then(|x| x.checked_add(names_len))
    else {
        return;
    };
    if heads {
        if let Some(r) = index_offset
            .checked_add(meta_len)
            .and_then(|at| span(b, at, heads_len))
        {
            let crc = crc32fast::hash(&b[r]);
            b[56..60].copy_from_slice(&crc.to_le_bytes());
        }
    }
    if meta {
        if let Some(r) = span(b, index_offset, meta_len) {
            let mut h = crc32fast::Hasher::new();
            h.update(&b[..60]);
            h.update(&b[r]);
            let crc = h.finalize();
            b[60..64].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

fn edit(data: &[u8]) -> Vec<u8> {
    let bases = bases();
    let Some((&ctl, mut rest)) = data.split_first() else {
        return bases[0].clone();
    };
    let mut b = bases[(ctl & 3) as usize % bases.len()].clone();
    let mut resize = None;
    if ctl & 16 != 0 {
        if let Some((d, r)) = rest.split_first_chunk::<2>() {
            resize = Some(i16::from_le_bytes(*d));
            rest = r;
        }
    }
    while let Some((&[sel, lo, hi], r)) = rest.split_first_chunk::<3>() {
        let width = 1usize << (sel & 3);
        if r.len() < width {
            break;
        }
        let (value, r) = r.split_at(width);
        rest = r;
        let off = u16::from_le_bytes([lo, hi]) as usize % b.len();
        let at = if sel & 4 != 0 { b.len() - 1 - off } else { off };
        let n = width.min(b.len() - at);
        b[at..at + n].copy_from_slice(&value[..n]);
    }
    if let Some(d) = resize {
        let len = (b.len() as i64 + i64::from(d)).max(0) as usize;
        b.resize(len, 0);
    }
    if b.len() >= 64 {
        fix_crcs(&mut b, ctl & 4 != 0, ctl & 8 != 0);
    }
    b
}

fuzz_target!(|data: &[u8]| {
    let bytes = edit(data);
    let path = scratch().join("input.rowpack");
    std::fs::write(&path, &bytes).unwrap();
    let Ok(lib) = Library::open(&path, &OpenOptions::default()) else {
        return;
    };
    assert!(!lib.is_empty());
    for i in 0..lib.len() {
        let e = *lib.entry(i);
        let name = lib.name(i);
        assert!(!name.is_empty());
        assert_eq!(lib.find(name), Some(i));
        let k = e.head_rows(lib.head_rows());
        for r in 0..k {
            let row = lib.head_row(i, r).expect("validated head row");
            assert_eq!(row.len() as u64, e.row_bytes());
        }
        assert!(lib.head_row(i, k).is_none());
        // A body whose bytes were edited fails its CRC; it never errors,
        // since the file is exactly as long as the header says.
        lib.verify_body(i).expect("body inside the file");
        let mut one = [0u8; 1];
        assert!(lib.read_body(i, e.body_len(), &mut one).is_err());
    }
    assert!(lib.info(lib.len()).is_none());
});
