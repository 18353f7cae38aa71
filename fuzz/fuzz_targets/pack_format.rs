//! Pack header and index validation on raw bytes, in memory.
//!
//! A fuzzer that must also guess a CRC-32 never gets past the meta CRC, so
//! when the header is valid the index is checked twice: once as given, and
//! once with the meta CRC recomputed, which lets mutations reach every
//! index check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::pack::format::{self, Entry, Header, HEADER_LEN};

fn check(h: &Header, header_bytes: &[u8], meta: &[u8], data: &[u8]) {
    let Ok(entries) = format::parse_index(h, header_bytes, meta) else {
        return;
    };
    // What parse_index promises the rest of the program.
    assert_eq!(entries.len() as u64, h.count);
    let names = &meta[entries.len() * h.entry_len()..];
    let mut heads = 0u64;
    let mut prev: Option<&str> = None;
    for e in &entries {
        let e: &Entry = e;
        assert!(e.channels == 3 || e.channels == 4);
        assert!(e.body_offset >= format::PAGE && e.body_offset + e.body_len() <= h.index_offset);
        let start = e.name_offset as usize;
        let name = std::str::from_utf8(&names[start..start + e.name_len as usize]).unwrap();
        assert!(prev.is_none_or(|p| p < name));
        prev = Some(name);
        heads += u64::from(e.head_rows(h.head_rows)) * e.row_bytes();
        // Bodies lie inside the file.
        assert!(e.body_offset + e.body_len() <= data.len() as u64);
    }
    assert_eq!(heads, h.heads_len);
}

fuzz_target!(|data: &[u8]| {
    let Ok(h) = format::parse_header(data, data.len() as u64) else {
        return;
    };
    assert_eq!(h.file_len(), data.len() as u64);
    let start = h.index_offset as usize;
    let meta = &data[start..start + h.meta_len() as usize];
    check(&h, &data[..HEADER_LEN], meta, data);

    let mut hb = [0u8; HEADER_LEN];
    hb.copy_from_slice(&data[..HEADER_LEN]);
    let fixed = format::meta_crc(&hb, meta);
    hb[60..64].copy_from_slice(&fixed.to_le_bytes());
    let h = Header {
        meta_crc: fixed,
        ..h
    };
    check(&h, &hb, meta, data);
});
