//! `rowplay pack / inspect / verify / export / render`, through the real binary.

use crate::util::*;
use std::os::unix::process::CommandExt;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// One manifest row: an input written by numpy and the bytes numpy's own
/// conversion gives (tests/fixtures/make_fixtures.py).
struct Expected {
    path: String,
    member: Option<String>,
    rows: u32,
    leds: u32,
    channels: u8,
    full: bool,
    bytes: Vec<u8>,
}

fn manifest() -> Vec<Expected> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/expected/manifest.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Expected {
                path: f[0].into(),
                member: (f[1] != "-").then(|| f[1].to_string()),
                rows: f[2].parse().unwrap(),
                leds: f[3].parse().unwrap(),
                channels: f[4].parse().unwrap(),
                full: f[5] == "full",
                bytes: std::fs::read(format!("{FIXTURES}/expected/{}", f[6])).unwrap(),
            }
        })
        .collect()
}

fn inspect_names(lib: &Path) -> Vec<(String, u32, u32, u32)> {
    let o = rowplay(&["inspect", lib.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["arrays"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, a)| {
            assert_eq!(a["index"], i);
            (
                a["name"].as_str().unwrap().to_string(),
                a["rows"].as_u64().unwrap() as u32,
                a["leds"].as_u64().unwrap() as u32,
                a["channels"].as_u64().unwrap() as u32,
            )
        })
        .collect()
}

#[test]
fn every_fixture_packs_and_exports_to_numpys_own_conversion() {
    let dir = tempfile::tempdir().unwrap();
    // Two packs: floats taken as 0..1 (the default) and as 0..255.
    let one = dir.path().join("one.rowpack");
    let full = dir.path().join("full.rowpack");
    let inputs = |full: bool| -> Vec<String> {
        manifest()
            .iter()
            .filter(|e| e.full == full)
            .map(|e| format!("{FIXTURES}/{}", e.path))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    for (out, is_full) in [(&one, false), (&full, true)] {
        let mut args = vec!["pack".to_string()];
        args.extend(inputs(is_full));
        args.extend(["-o".into(), out.to_str().unwrap().into()]);
        if is_full {
            args.extend(["--float-max".into(), "255".into()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = rowplay(&a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let mut checked = 0;
    for e in manifest() {
        let lib = if e.full { &full } else { &one };
        let stem = Path::new(&e.path)
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let name = match &e.member {
            Some(m) => format!("{stem}/{m}"),
            None => stem,
        };
        let names = inspect_names(lib);
        let found = names
            .iter()
            .find(|n| n.0 == name)
            .unwrap_or_else(|| panic!("{name} not in pack"));
        assert_eq!(
            (found.1, found.2, found.3),
            (e.rows, e.leds, e.channels as u32),
            "{name}"
        );
        let npy = dir.path().join("x.npy");
        let o = rowplay(&[
            "export",
            lib.to_str().unwrap(),
            &name,
            "-o",
            npy.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let back = rowplay::import::npy::parse(&std::fs::read(&npy).unwrap(), &Default::default())
            .unwrap();
        assert_eq!(
            (back.rows, back.leds, back.channels),
            (e.rows, e.leds, e.channels),
            "{name}"
        );
        assert_eq!(
            back.data, e.bytes,
            "{name}: bytes differ from numpy's conversion"
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} fixtures checked");
}

#[test]
fn inspect_lists_arrays_in_name_order_whatever_the_input_order() {
    let dir = tempfile::tempdir().unwrap();
    for (i, n) in ["zeta", "alpha", "Mid", "beta"].iter().enumerate() {
        write_npy(
            &dir.path().join(format!("{n}.npy")),
            &array(i as u32, 3, 2, 3),
        );
    }
    // Pack the named inputs, in this order, into `out`.
    let pack = |order: [&str; 4], out: &std::path::Path| {
        let inputs: Vec<String> = order
            .iter()
            .map(|n| dir.path().join(format!("{n}.npy")).display().to_string())
            .collect();
        let mut args: Vec<&str> = vec!["pack"];
        args.extend(inputs.iter().map(String::as_str));
        args.extend(["-o", out.to_str().unwrap()]);
        let o = rowplay(&args);
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let a = dir.path().join("a.rowpack");
    let b = dir.path().join("b.rowpack");
    pack(["zeta", "alpha", "Mid", "beta"], &a);
    pack(["beta", "Mid", "alpha", "zeta"], &b);
    let names: Vec<String> = inspect_names(&a).into_iter().map(|n| n.0).collect();
    // ascending byte order: upper case before lower case
    assert_eq!(names, ["Mid", "alpha", "beta", "zeta"]);
    // Names are sorted, but bodies follow input order, so the bytes differ
    // between these two; the same inputs in the same order are identical.
    let c = dir.path().join("c.rowpack");
    pack(["zeta", "alpha", "Mid", "beta"], &c);
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&c).unwrap(),
        "packing is not deterministic"
    );
}

#[test]
fn folders_are_named_by_relative_path() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("in");
    std::fs::create_dir_all(lib.join("waves/slow")).unwrap();
    write_npy(&lib.join("waves/slow/w1.npy"), &array(1, 2, 2, 3));
    write_npy(&lib.join("top.npy"), &array(2, 2, 2, 3));
    std::fs::write(lib.join("notes.txt"), "ignored").unwrap();
    let out = dir.path().join("p.rowpack");
    let o = rowplay(&["pack", lib.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = inspect_names(&out).into_iter().map(|n| n.0).collect();
    assert_eq!(names, ["top", "waves/slow/w1"]);
}

#[test]
fn verify_names_the_array_whose_body_was_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let arrays = (0..5).map(|i| named(&format!("a{i}"), i, 20, 4)).collect();
    let p = pack(dir.path(), arrays, 8);
    let o = rowplay(&["verify", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Flip one byte in the body of a3, past its head rows.
    let off = {
        let lib = rowplay::library::Library::open(&p, &Default::default()).unwrap();
        let i = lib.find("a3").unwrap();
        lib.entry(i).body_offset + 15 * 12
    };
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[off as usize] ^= 0x40;
    std::fs::write(&p, &bytes).unwrap();
    let o = rowplay(&["verify", p.to_str().unwrap()]);
    assert_clean_error(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("\"a3\" fails its CRC"), "{err}");
    assert_eq!(err.lines().count(), 1, "only a3 is bad: {err}");
    // export refuses the corrupt array too
    let o = rowplay(&[
        "export",
        p.to_str().unwrap(),
        "a3",
        "-o",
        dir.path().join("x.npy").to_str().unwrap(),
    ]);
    assert_clean_error(&o, 1);
    assert!(!dir.path().join("x.npy").exists());
}

#[test]
fn verify_catches_a_corrupt_first_row_through_the_heads_crc() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("only", 1, 4, 2)], 8);
    let mut bytes = std::fs::read(&p).unwrap();
    let last = bytes.len() - 1; // the heads are the end of the file
    bytes[last] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    let o = rowplay(&["verify", p.to_str().unwrap()]);
    assert_clean_error(&o, 1);
    assert!(stderr(&o).contains("heads CRC mismatch"), "{}", stderr(&o));
}

#[test]
fn a_bad_input_fails_the_whole_pack_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_npy(&input.join("good.npy"), &array(1, 2, 2, 3));
    std::fs::copy(
        format!("{FIXTURES}/broken/object.npy"),
        input.join("obj.npy"),
    )
    .unwrap();
    std::fs::copy(
        format!("{FIXTURES}/broken/truncated.npy"),
        input.join("trunc.npy"),
    )
    .unwrap();
    let out = dir.path().join("p.rowpack");
    std::fs::write(&out, b"previous pack").unwrap();
    let o = rowplay(&["pack", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_clean_error(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 2, "one line per bad file: {err}");
    assert!(
        err.contains("obj.npy") && err.contains("trunc.npy"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"previous pack",
        "existing output was touched"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "temporary files left: {leftovers:?}");

    // --skip-bad packs the rest and lists what it skipped.
    let o = rowplay(&[
        "pack",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--skip-bad",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o).matches("skipped:").count(), 2);
    assert_eq!(inspect_names(&out).len(), 1);

    // ... and fails when nothing is left.
    std::fs::remove_file(input.join("good.npy")).unwrap();
    let o = rowplay(&[
        "pack",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--skip-bad",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("nothing left to pack"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn duplicate_names_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    write_npy(&input.join("a.npy"), &array(1, 2, 2, 3));
    std::fs::copy(format!("{FIXTURES}/png/rgb8.png"), input.join("a.png")).unwrap();
    let out = dir.path().join("p.rowpack");
    let o = rowplay(&["pack", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_clean_error(&o, 1);
    assert!(
        stderr(&o).contains("duplicate array name \"a\""),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn by_column_stores_the_transpose() {
    let dir = tempfile::tempdir().unwrap();
    let a = array(9, 5, 3, 3);
    write_npy(&dir.path().join("m.npy"), &a);
    let out = dir.path().join("p.rowpack");
    let o = rowplay(&[
        "pack",
        dir.path().join("m.npy").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--by-column",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let npy = dir.path().join("t.npy");
    assert!(rowplay(&[
        "export",
        out.to_str().unwrap(),
        "m",
        "-o",
        npy.to_str().unwrap()
    ])
    .status
    .success());
    let t =
        rowplay::import::npy::parse(&std::fs::read(&npy).unwrap(), &Default::default()).unwrap();
    assert_eq!((t.rows, t.leds), (3, 5));
    for r in 0..5usize {
        for l in 0..3usize {
            assert_eq!(
                t.data[(l * 5 + r) * 3..(l * 5 + r) * 3 + 3],
                a.data[(r * 3 + l) * 3..(r * 3 + l) * 3 + 3]
            );
        }
    }
}

#[test]
fn render_draws_rows_down_and_leds_across() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("img", 3, 7, 5)], 8);
    let png = dir.path().join("img.png");
    let o = rowplay(&[
        "render",
        p.to_str().unwrap(),
        "img",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let back = rowplay::import::png::parse(&std::fs::read(&png).unwrap()).unwrap();
    assert_eq!((back.rows, back.leds), (7, 5));
    assert_eq!(back.data, array(3, 7, 5, 3).data);
    let o = rowplay(&[
        "render",
        p.to_str().unwrap(),
        "nope",
        "-o",
        png.to_str().unwrap(),
    ]);
    assert_clean_error(&o, 1);
    assert!(stderr(&o).contains("no array named \"nope\""));
}

#[test]
fn usage_errors_exit_2_and_help_lists_every_subcommand() {
    let o = rowplay(&["pack", "x.npy"]);
    assert_eq!(o.status.code(), Some(2));
    let o = rowplay(&["--help"]);
    assert!(o.status.success());
    for sub in [
        "pack", "inspect", "verify", "export", "render", "play", "ctl", "selftest",
    ] {
        assert!(stdout(&o).contains(sub), "--help lacks {sub}");
    }
    let o = rowplay(&["--version"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn ten_thousand_arrays_pack_with_64_open_files() {
    if skip_slow() {
        return; // runs in the host lane
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    for i in 0..10_000u32 {
        let sub = input.join(format!("g{:02}", i % 50));
        if i < 50 {
            std::fs::create_dir_all(&sub).unwrap();
        }
        write_npy(&sub.join(format!("a{i:05}.npy")), &array(i, 2, 2, 3));
    }
    let out = dir.path().join("big.rowpack");
    let o = unsafe {
        std::process::Command::new(bin())
            .args(["pack", input.to_str().unwrap(), "-o", out.to_str().unwrap()])
            // SAFETY: setrlimit is async-signal-safe; no allocation here.
            .pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: 64,
                    rlim_max: 64,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
            .output()
            .unwrap()
    };
    assert!(o.status.success(), "{}", stderr(&o));
    let lib = rowplay::library::Library::open(&out, &Default::default()).unwrap();
    assert_eq!(lib.len(), 10_000);
    let i = lib.find("g07/a05007").unwrap();
    assert_eq!(
        lib.head_row(i, 1).unwrap(),
        &array(5007, 2, 2, 3).data[6..12]
    );
}
