//! Per-array frame rates through the real binary on a stepping clock: the
//! capture's `t_ns` are the deadlines, so the spacing of the records is the
//! period each row was held for.

use crate::util::*;
use rowplay::output::record::{parse_records, Record};
use rowplay::output::ALL_OFF;
use std::path::{Path, PathBuf};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packs");

/// A pack with `a` at 40 fps (through a real `.fseq` round trip) and `b`
/// with no rate of its own.
fn two_rates(dir: &Path) -> PathBuf {
    let one = dir.join("one");
    std::fs::create_dir_all(&one).unwrap();
    write_npy(&one.join("a.npy"), &array(1, 5, 3, 3));
    let p40 = dir.join("a40.rowpack");
    let o = rowplay(&[
        "pack",
        one.to_str().unwrap(),
        "-o",
        p40.to_str().unwrap(),
        "--fps",
        "40",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let two = dir.join("two");
    std::fs::create_dir_all(&two).unwrap();
    let fseq = two.join("a.fseq");
    let o = rowplay(&[
        "export",
        p40.to_str().unwrap(),
        "a",
        "-o",
        fseq.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    write_npy(&two.join("b.npy"), &array(2, 4, 3, 3));
    let p = dir.join("p.rowpack");
    let o = rowplay(&["pack", two.to_str().unwrap(), "-o", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

fn play_steps(dir: &Path, pack: &Path, extra: &[&str], steps: u64) -> Vec<Record> {
    let (child, sock, cap) = stepping_player(dir, pack, extra);
    step(&sock, steps);
    assert!(stop(child, &sock).success());
    parse_records(&std::fs::read(cap).unwrap())
        .unwrap()
        .into_iter()
        .filter(|r| r.meta.array != ALL_OFF)
        // The frames granted; SIGTERM may finish one more at the same time.
        .take(steps as usize)
        .collect()
}

/// (array, row, ns until the next record) for each record but the last.
fn spacing(recs: &[Record]) -> Vec<(u32, u32, u64)> {
    recs.windows(2)
        .map(|w| {
            (
                w[0].meta.array,
                w[0].meta.row,
                w[1].meta.t_ns - w[0].meta.t_ns,
            )
        })
        .collect()
}

#[test]
fn each_array_plays_at_its_own_rate_and_a_switch_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = two_rates(dir.path());
    let o = rowplay(&["inspect", p.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["arrays"][0]["fps"], 40.0);
    assert_eq!(v["arrays"][1]["fps"], serde_json::Value::Null);

    let recs = play_steps(dir.path(), &p, &["--playlist", "a,b"], 20);
    let got = spacing(&recs);
    // a (index 0): 5 rows, each held 25 ms; its last row too (the switch
    // lands on the next deadline of a's cadence); then b's 4 rows at the
    // default 20 ms; then a again.
    let mut want = Vec::new();
    for r in 0..5 {
        want.push((0, r, 25_000_000));
    }
    for r in 0..4 {
        want.push((1, r, 20_000_000));
    }
    for r in 0..5 {
        want.push((0, r, 25_000_000));
    }
    assert_eq!(&got[..want.len()], &want[..]);

    // The config's fps is the default for arrays without a rate; --fps on
    // the command line forces one rate on all.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "fps = 25\n").unwrap();
    let recs = play_steps(
        dir.path(),
        &p,
        &["--playlist", "a,b", "--config", cfg.to_str().unwrap()],
        10,
    );
    let got = spacing(&recs);
    assert_eq!(got[4], (0, 4, 25_000_000));
    assert_eq!(got[5], (1, 0, 40_000_000), "b at the config's 25 fps");
    let recs = play_steps(dir.path(), &p, &["--playlist", "a,b", "--fps", "50"], 10);
    let s = spacing(&recs);
    assert!(s.iter().all(|&(_, _, d)| d == 20_000_000), "{s:?}");
}

#[test]
fn a_jump_between_rates_lands_on_the_old_cadence_then_takes_the_new_period() {
    let dir = tempfile::tempdir().unwrap();
    let p = two_rates(dir.path());
    let (child, sock, cap) = stepping_player(dir.path(), &p, &["--start", "a"]);
    step(&sock, 2);
    assert_eq!(ctl(&sock, "play b"), "ok");
    step(&sock, 3);
    let st = status(&sock);
    assert_eq!(st["fps"], 50.0, "status shows the rate that plays");
    assert_eq!(ctl(&sock, "play a"), "ok");
    step(&sock, 2);
    assert_eq!(status(&sock)["fps"], 40.0);
    assert!(stop(child, &sock).success());
    let recs: Vec<Record> = parse_records(&std::fs::read(cap).unwrap())
        .unwrap()
        .into_iter()
        .filter(|r| r.meta.array != ALL_OFF)
        .collect();
    let got: Vec<(u32, u32, u64)> = spacing(&recs);
    assert_eq!(
        &got[..6],
        &[
            (0, 0, 25_000_000),
            (0, 1, 25_000_000),
            (1, 0, 20_000_000),
            (1, 1, 20_000_000),
            (1, 2, 20_000_000),
            (0, 0, 25_000_000),
        ]
    );
}

#[test]
fn a_pack_written_by_the_release_before_rates_plays_as_before() {
    let p = Path::new(FIXTURES).join("release-0.1.0.rowpack");
    let o = rowplay(&["inspect", p.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["arrays"][0]["name"], "sunrise");
    assert_eq!(v["arrays"][0]["fps"], serde_json::Value::Null);
    let o = rowplay(&["verify", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.npy");
    let o = rowplay(&[
        "export",
        p.to_str().unwrap(),
        "sunrise",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let old = std::fs::read(Path::new(FIXTURES).join("release-0.1.0-sunrise.npy")).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), old, "export unchanged");
    let recs = play_steps(dir.path(), &p, &["--start", "sunrise"], 13);
    let data = &old[old.len() - 12 * 15..];
    for (r, rec) in recs.iter().take(12).enumerate() {
        assert_eq!((rec.meta.array, rec.meta.row), (0, r as u32));
        assert_eq!(rec.bytes, &data[r * 15..(r + 1) * 15]);
    }
    assert!(spacing(&recs).iter().all(|&(_, _, d)| d == 20_000_000));
}
