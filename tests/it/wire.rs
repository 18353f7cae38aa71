//! `wire:` records for every chip, decoded back to the pixels that were played.

use crate::util::*;
use rowplay::output::chip::{ChipKind, ChipSettings, Encoder};
use rowplay::output::decode::decode;
use rowplay::output::record::parse_records;
use rowplay::output::ALL_OFF;

#[test]
fn every_chip_plays_rows_that_decode_to_the_arrays_pixels() {
    let dir = tempfile::tempdir().unwrap();
    // Two arrays of different widths: the narrow one is padded black.
    let arrays = vec![named("wide", 1, 12, 17), named("narrow", 2, 12, 9)];
    let p = pack(dir.path(), arrays.clone(), 8);
    for chip in ChipKind::ALL {
        let wire = dir.path().join(format!("{}.wire", chip.name()));
        let sock = dir.path().join(format!("{}.sock", chip.name()));
        let o = rowplay(&[
            "play",
            p.to_str().unwrap(),
            "--output",
            &format!("wire:{}", wire.display()),
            "--chip",
            chip.name(),
            "--gamma",
            "1",
            "--frames",
            "30",
            "--rt-priority",
            "0",
            "--socket",
            sock.to_str().unwrap(),
            "--playlist",
            "wide,narrow",
        ]);
        assert!(o.status.success(), "{}: {}", chip.name(), stderr(&o));
        let recs = parse_records(&std::fs::read(&wire).unwrap()).unwrap();
        assert_eq!(
            recs.len(),
            32,
            "{}: blank + 30 frames + final blank",
            chip.name()
        );
        let enc = Encoder::new(ChipSettings::new(chip), 17);
        let ch = chip.channels();
        for rec in &recs {
            let px = decode(&enc, &rec.bytes).unwrap_or_else(|e| panic!("{}: {e}", chip.name()));
            let mut want = vec![0u8; 17 * ch];
            if rec.meta.array != ALL_OFF {
                let a = &arrays[if rec.meta.array == 1 { 0 } else { 1 }]; // "narrow" < "wide"
                let leds = a.array.leds as usize;
                let row = &a.array.data[rec.meta.row as usize * leds * 3..][..leds * 3];
                for l in 0..leds {
                    want[l * ch..l * ch + 3].copy_from_slice(&row[l * 3..l * 3 + 3]);
                }
            }
            assert_eq!(
                px,
                want,
                "{} array {} row {}",
                chip.name(),
                rec.meta.array,
                rec.meta.row
            );
        }
    }
}

#[test]
fn wire_without_a_chip_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 2, 2)], 8);
    let o = rowplay(&[
        "play",
        p.to_str().unwrap(),
        "--output",
        "wire:/dev/null",
        "--frames",
        "1",
        "--rt-priority",
        "0",
    ]);
    assert_clean_error(&o, 1);
    assert!(stderr(&o).contains("needs a chip"), "{}", stderr(&o));
}
