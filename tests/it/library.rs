//! pack -> library -> rows, and the loader's slots.

use crate::util::*;
use proptest::prelude::*;
use rowplay::import::NamedArray;
use rowplay::library::{Library, LibraryError, OpenOptions};
use rowplay::loader::{BodyReader, Loader, RowState, Want};
use rowplay::pack::format::{self, Entry, Header};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fetch row `r` of stream `w` through the loader, waiting (bounded) for it.
fn loaded_row(
    side: &mut rowplay::loader::PlayerSide,
    lib: &Library,
    w: Want,
    r: u32,
) -> Result<Vec<u8>, RowState> {
    let e = lib.info(w.array).unwrap();
    let mut out = vec![0u8; (e.leds * e.channels) as usize];
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match side.row(lib, w, r, &mut out) {
            RowState::Ready => return Ok(out),
            RowState::Bad => return Err(RowState::Bad),
            RowState::NotYet if Instant::now() > give_up => return Err(RowState::NotYet),
            RowState::NotYet => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

fn arb_arrays() -> impl Strategy<Value = (Vec<NamedArray>, u32)> {
    let one = (
        1u32..40,
        1u32..12,
        prop_oneof![Just(3u8), Just(4u8)],
        any::<u32>(),
    );
    (
        prop::collection::btree_map("[a-z]{1,6}(/[a-z0-9]{1,4})?", one, 1..8),
        1u32..10,
    )
        .prop_map(|(m, k)| {
            let arrays = m
                .into_iter()
                .map(|(name, (rows, leds, ch, seed))| NamedArray {
                    name,
                    array: array(seed, rows, leds, ch),
                    period_ns: None,
                })
                .collect();
            (arrays, k)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_arrays_round_trip_through_pack_library_and_loader((arrays, k) in arb_arrays()) {
        let dir = tempfile::tempdir().unwrap();
        let p = pack(dir.path(), arrays.clone(), k);
        let lib = Arc::new(Library::open(&p, &OpenOptions::default()).unwrap());
        prop_assert_eq!(lib.len() as usize, arrays.len());
        let (_loader, mut side) = Loader::start(lib.clone(), lib.clone()).unwrap();
        for (gen, a) in arrays.iter().enumerate() {
            let i = lib.find(&a.name).unwrap();
            let e = lib.info(i).unwrap();
            prop_assert_eq!((e.rows, e.leds, e.channels), (a.array.rows, a.array.leds, a.array.channels as u32));
            let rb = (e.leds * e.channels) as usize;
            let w = Want { array: i, gen: gen as u32 };
            side.want(Some(w), None);
            for r in 0..e.rows {
                let want = &a.array.data[r as usize * rb..(r as usize + 1) * rb];
                let got = match lib.head_row(i, r) {
                    Some(h) => h.to_vec(),
                    None => loaded_row(&mut side, &lib, w, r).unwrap(),
                };
                prop_assert_eq!(&got[..], want, "array {} row {}", a.name, r);
            }
            prop_assert_eq!(lib.read_array(i).unwrap().data, a.array.data.clone());
        }
    }
}

#[test]
fn an_array_longer_than_a_slot_streams_through_it_as_a_ring() {
    let dir = tempfile::tempdir().unwrap();
    // 3,000 rows of 200 LEDs = 1.8 MB, more than a 1 MiB slot.
    let big = named("big", 4, 3000, 200);
    let p = pack(dir.path(), vec![big.clone(), named("small", 1, 20, 200)], 8);
    let lib = Arc::new(Library::open(&p, &OpenOptions::default()).unwrap());
    let (loader, mut side) = Loader::start(lib.clone(), lib.clone()).unwrap();
    assert!(loader.shared().slot_bytes_total() <= 4 * (1 << 20) + 4 * 4096);
    let w = Want { array: 0, gen: 1 };
    side.want(Some(w), None);
    for pass in 0..2 {
        let w = Want {
            array: 0,
            gen: 1 + pass,
        };
        side.want(Some(w), None);
        for r in 8..3000u32 {
            let got = loaded_row(&mut side, &lib, w, r).unwrap();
            assert_eq!(
                got[..],
                big.array.data[r as usize * 600..(r as usize + 1) * 600],
                "pass {pass} row {r}"
            );
        }
    }
    assert_eq!(loader.shared().stats.crc_errors.load(Relaxed), 0);
    // Every read is timed: two passes of 2,992 rows of 600 bytes in reads
    // of at most 64 KiB are 56 reads at least.
    assert!(loader.shared().stats.read_ns.count() >= 56);
}

/// A reader that fails, stalls or corrupts on demand.
struct Faulty {
    lib: Arc<Library>,
    fail_next: AtomicU32,
}

impl BodyReader for Faulty {
    fn read_body(&self, i: u32, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if self.fail_next.load(SeqCst) > 0 {
            self.fail_next.fetch_sub(1, SeqCst);
            return Err(std::io::Error::other("injected read error"));
        }
        self.lib.read_body(i, offset, buf)
    }
}

#[test]
fn read_errors_are_retried_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let a = named("a", 1, 50, 5);
    let p = pack(dir.path(), vec![a.clone()], 8);
    let lib = Arc::new(Library::open(&p, &OpenOptions::default()).unwrap());
    let reader = Arc::new(Faulty {
        lib: lib.clone(),
        fail_next: AtomicU32::new(2),
    });
    let (loader, mut side) = Loader::start(lib.clone(), reader).unwrap();
    let w = Want { array: 0, gen: 1 };
    side.want(Some(w), None);
    let got = loaded_row(&mut side, &lib, w, 30).unwrap();
    assert_eq!(got[..], a.array.data[30 * 15..31 * 15]);
    assert_eq!(loader.shared().stats.read_errors.load(Relaxed), 2);
}

#[test]
fn a_body_that_fails_its_crc_is_never_played_and_marked_bad() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 50, 5)], 8);
    let off = Library::open(&p, &OpenOptions::default())
        .unwrap()
        .entry(0)
        .body_offset;
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.write_all_at(&[0xAA], off + 40 * 15).unwrap(); // row 40
    let lib = Arc::new(Library::open(&p, &OpenOptions::default()).unwrap());
    let (loader, mut side) = Loader::start(lib.clone(), lib.clone()).unwrap();
    let w = Want { array: 0, gen: 1 };
    side.want(Some(w), None);
    assert_eq!(loaded_row(&mut side, &lib, w, 9), Err(RowState::Bad));
    assert_eq!(loader.shared().stats.crc_errors.load(Relaxed), 1);
    assert!(loader.shared().is_bad(0));
    // the head rows still play
    assert!(lib.head_row(0, 7).is_some());
}

#[test]
fn a_pack_truncated_while_open_fails_reads_but_never_faults() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        (0..4)
            .map(|i| named(&format!("a{i}"), i, 100, 10))
            .collect(),
        8,
    );
    let lib = Arc::new(Library::open(&p, &OpenOptions::default()).unwrap());
    // A careless `cp` truncates the file in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(5000)
        .unwrap();
    for i in 0..4 {
        assert_eq!(
            lib.head_row(i, 0).unwrap().len(),
            30,
            "heads stay in memory"
        );
    }
    let mut buf = [0u8; 30];
    let e = lib.read_body(2, 30 * 50, &mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    let (loader, mut side) = Loader::start(lib.clone(), lib.clone()).unwrap();
    let w = Want { array: 1, gen: 1 };
    side.want(Some(w), None);
    assert_eq!(loaded_row(&mut side, &lib, w, 20), Err(RowState::Bad));
    assert!(loader.shared().stats.read_errors.load(Relaxed) >= 1);
    // Reopening says what is wrong.
    let err = Library::open(&p, &OpenOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("file is 5000 bytes but its header says"),
        "{err}"
    );
}

#[test]
fn heads_over_budget_suggest_a_smaller_head_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        (0..10)
            .map(|i| named(&format!("a{i}"), i, 100, 10))
            .collect(),
        16,
    );
    // heads: 10 arrays x 16 rows x 30 bytes = 4800 bytes
    let e = Library::open(
        &p,
        &OpenOptions {
            heads_budget: Some(1500),
        },
    )
    .unwrap_err();
    match &e {
        LibraryError::HeadsOverBudget { need, suggest, .. } => {
            assert_eq!(*need, 4800);
            assert_eq!(*suggest, 5); // 5 rows x 300 bytes = 1500
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("--head-rows 5"), "{e}");
}

#[test]
fn lookup_by_name_finds_every_array() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..500)
        .map(|i| format!("set{}/p{:03}", i % 7, i))
        .collect();
    let p = pack(
        dir.path(),
        names
            .iter()
            .enumerate()
            .map(|(i, n)| named(n, i as u32, 2, 1))
            .collect(),
        8,
    );
    let lib = Library::open(&p, &OpenOptions::default()).unwrap();
    for (i, n) in names.iter().enumerate() {
        let idx = lib.find(n).unwrap();
        assert_eq!(lib.name(idx), n);
        assert_eq!(
            lib.head_row(idx, 1).unwrap(),
            &array(i as u32, 2, 1, 3).data[3..6]
        );
    }
    assert_eq!(lib.find("set0/p999"), None);
    assert_eq!(lib.find(""), None);
}

/// Write a valid pack by hand whose one body lies past 4 GiB (a sparse
/// file): offsets must be 64-bit everywhere, also where usize is 32 bits.
#[test]
fn offsets_past_4_gib_work() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("far.rowpack");
    let (rows, leds) = (12u32, 2u32);
    let body: Vec<u8> = array(3, rows, leds, 3).data;
    let body_offset = 5u64 << 30;
    let index_offset = format::page_align(body_offset + body.len() as u64);
    let entry = Entry {
        body_offset,
        rows,
        leds,
        channels: 3,
        body_crc: crc32fast::hash(&body),
        name_offset: 0,
        name_len: 3,
        period_ns: 0,
    };
    let heads = &body[..8 * 6];
    let mut meta = entry.to_bytes().to_vec();
    meta.extend_from_slice(b"far");
    let mut h = Header {
        version: 1,
        head_rows: 8,
        flags: 0,
        count: 1,
        index_offset,
        names_len: 3,
        heads_len: heads.len() as u64,
        heads_crc: crc32fast::hash(heads),
        meta_crc: 0,
    };
    h.meta_crc = format::meta_crc(&h.to_bytes(), &meta);
    let f = std::fs::File::create(&p).unwrap();
    f.write_all_at(&h.to_bytes(), 0).unwrap();
    f.write_all_at(&body, body_offset).unwrap();
    f.write_all_at(&meta, index_offset).unwrap();
    f.write_all_at(heads, h.heads_offset()).unwrap();
    drop(f);
    let lib = Library::open(&p, &OpenOptions::default()).unwrap();
    assert_eq!(lib.head_row(0, 7).unwrap(), &body[42..48]);
    let mut last = [0u8; 6];
    lib.read_body(0, 11 * 6, &mut last).unwrap();
    assert_eq!(last[..], body[66..72]);
    assert!(lib.verify_body(0).unwrap());
}

/// An index entry whose body is larger than 4 GiB: sizes are computed in
/// u64; reading it whole is refused cleanly where usize is 32 bits.
#[test]
fn a_body_larger_than_4_gib_is_handled_without_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("huge.rowpack");
    let (rows, leds) = (2_000_000u32, 1000u32); // 6 GB body
    let row_bytes = leds as u64 * 3;
    let body_len = rows as u64 * row_bytes;
    let heads: Vec<u8> = (0..8 * row_bytes).map(|i| i as u8).collect();
    let body_offset = format::PAGE;
    let index_offset = format::page_align(body_offset + body_len);
    let entry = Entry {
        body_offset,
        rows,
        leds,
        channels: 3,
        body_crc: 0,
        name_offset: 0,
        name_len: 4,
        period_ns: 0,
    };
    let mut meta = entry.to_bytes().to_vec();
    meta.extend_from_slice(b"huge");
    let mut h = Header {
        version: 1,
        head_rows: 8,
        flags: 0,
        count: 1,
        index_offset,
        names_len: 4,
        heads_len: heads.len() as u64,
        heads_crc: crc32fast::hash(&heads),
        meta_crc: 0,
    };
    h.meta_crc = format::meta_crc(&h.to_bytes(), &meta);
    let f = std::fs::File::create(&p).unwrap();
    f.write_all_at(&h.to_bytes(), 0).unwrap();
    f.write_all_at(&heads, body_offset).unwrap();
    f.write_all_at(&meta, index_offset).unwrap();
    f.write_all_at(&heads, h.heads_offset()).unwrap();
    drop(f);
    let lib = Library::open(&p, &OpenOptions::default()).unwrap();
    assert_eq!(lib.entry(0).body_len(), 6_000_000_000);
    assert_eq!(lib.head_row(0, 3).unwrap(), &heads[3 * 3000..4 * 3000]);
    let mut buf = [7u8; 16];
    lib.read_body(0, body_len - 16, &mut buf).unwrap(); // sparse: zeros
    assert_eq!(buf, [0u8; 16]);
    assert!(
        lib.read_body(0, body_len - 15, &mut buf).is_err(),
        "past the body"
    );
    if usize::BITS == 32 {
        let e = lib.read_array(0).unwrap_err();
        assert!(e.to_string().contains("too large for this machine"), "{e}");
    }
}
