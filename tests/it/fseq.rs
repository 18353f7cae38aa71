//! `.fseq` through the real binary: every fixture written by the independent
//! writer (tests/fixtures/make_fseq.py) packs to the bytes it computed,
//! with its step time as the array's rate; export to `.fseq` and pack again
//! gives the same array; packs with and without rates.

use crate::util::*;
use std::path::Path;

const FSEQ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fseq");

struct Case {
    file: String,
    opts: Vec<String>,
    rows: u32,
    leds: u32,
    channels: u32,
    step_ms: u32,
    bytes: Vec<u8>,
}

fn manifest() -> Vec<Case> {
    let text = std::fs::read_to_string(format!("{FSEQ}/expected/manifest.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let opts = if f[1] == "-" {
                Vec::new()
            } else {
                f[1].split(',')
                    .flat_map(|o| match o.split_once('=') {
                        Some((k, v)) => vec![format!("--{k}"), v.to_string()],
                        None => vec![format!("--{o}")],
                    })
                    .collect()
            };
            Case {
                file: f[0].into(),
                opts,
                rows: f[2].parse().unwrap(),
                leds: f[3].parse().unwrap(),
                channels: f[4].parse().unwrap(),
                step_ms: f[5].parse().unwrap(),
                bytes: std::fs::read(format!("{FSEQ}/expected/{}", f[6])).unwrap(),
            }
        })
        .collect()
}

fn pack(inputs: &[&Path], extra: &[&str], out: &Path) -> std::process::Output {
    let mut args: Vec<&str> = vec!["pack"];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    args.extend_from_slice(extra);
    args.extend(["-o", out.to_str().unwrap()]);
    rowplay(&args)
}

fn inspect(lib: &Path) -> serde_json::Value {
    let o = rowplay(&["inspect", lib.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn open(lib: &Path) -> rowplay::library::Library {
    rowplay::library::Library::open(lib, &Default::default()).unwrap()
}

#[test]
fn every_fixture_packs_to_the_writers_bytes_and_its_step_time() {
    let dir = tempfile::tempdir().unwrap();
    let cases = manifest();
    assert!(cases.len() >= 14, "manifest has {} cases", cases.len());
    for c in &cases {
        let input = Path::new(FSEQ).join(&c.file);
        let out = dir.path().join("x.rowpack");
        let opts: Vec<&str> = c.opts.iter().map(String::as_str).collect();
        let o = pack(&[&input], &opts, &out);
        assert!(
            o.status.success(),
            "{} {:?}: {}",
            c.file,
            c.opts,
            stderr(&o)
        );
        let name = c.file.trim_end_matches(".fseq");
        let v = inspect(&out);
        let a = &v["arrays"][0];
        assert_eq!(a["name"], name);
        assert_eq!(
            (
                a["rows"].as_u64(),
                a["leds"].as_u64(),
                a["channels"].as_u64()
            ),
            (
                Some(c.rows as u64),
                Some(c.leds as u64),
                Some(c.channels as u64)
            ),
            "{} {:?}",
            c.file,
            c.opts
        );
        let fps = a["fps"].as_f64().unwrap();
        assert!((fps - 1000.0 / c.step_ms as f64).abs() < 1e-9, "{fps}");
        let lib = open(&out);
        assert_eq!(lib.period_ns(0), Some(c.step_ms as u64 * 1_000_000));
        assert_eq!(lib.version(), 2);
        let got = lib.read_array(0).unwrap();
        assert_eq!(got.data, c.bytes, "{} {:?}: bytes differ", c.file, c.opts);
        // The padded file says so, once, as a warning.
        let warned = stderr(&o).contains("warning:");
        assert_eq!(
            warned,
            c.file == "v2_pad.fseq",
            "{}: {}",
            c.file,
            stderr(&o)
        );
    }
}

#[test]
fn padding_warning_names_the_file_and_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = Path::new(FSEQ).join("v2_pad.fseq");
    let out = dir.path().join("x.rowpack");
    let o = pack(&[&input], &[], &out);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "warning: {}: 10 channels is not a whole number of 3-channel LEDs; padded with 2 zero channels\n",
            input.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn export_to_fseq_and_pack_again_gives_the_same_array_and_rate() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.rowpack");
    let inputs: Vec<_> = ["v2_faststart.fseq", "v2_sparse.fseq", "v1.fseq"]
        .iter()
        .map(|f| Path::new(FSEQ).join(f))
        .collect();
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    assert!(pack(&refs, &[], &first).status.success());
    let lib = open(&first);
    for i in 0..lib.len() {
        let name = lib.name(i).to_string();
        let fseq = dir.path().join(format!("{name}.fseq"));
        let o = rowplay(&[
            "export",
            first.to_str().unwrap(),
            &name,
            "-o",
            fseq.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let bytes = std::fs::read(&fseq).unwrap();
        assert_eq!(&bytes[..4], b"PSEQ");
        assert_eq!((bytes[7], bytes[6]), (2, 0), "v2.0");
        assert_eq!(bytes[20] & 0x0f, 0, "uncompressed");
        let again = dir.path().join("again.rowpack");
        assert!(pack(&[&fseq], &[], &again).status.success());
        let back = open(&again);
        assert_eq!(back.name(0), name);
        assert_eq!(back.read_array(0).unwrap(), lib.read_array(i).unwrap());
        assert_eq!(back.period_ns(0), lib.period_ns(i));
    }
}

#[test]
fn an_array_without_a_rate_exports_at_20_ms() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("plain.npy");
    write_npy(&npy, &array(4, 6, 5, 3));
    let lib = dir.path().join("p.rowpack");
    assert!(pack(&[&npy], &[], &lib).status.success());
    let fseq = dir.path().join("plain.fseq");
    let o = rowplay(&[
        "export",
        lib.to_str().unwrap(),
        "plain",
        "-o",
        fseq.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&fseq).unwrap();
    assert_eq!(bytes[18], 20);
    assert_eq!(u32::from_le_bytes(bytes[10..14].try_into().unwrap()), 15);
    assert_eq!(u32::from_le_bytes(bytes[14..18].try_into().unwrap()), 6);
    assert_eq!(&bytes[32..], &array(4, 6, 5, 3).data[..]);
}

#[test]
fn a_pack_without_rates_is_version_1_and_fps_is_null() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("a.npy");
    write_npy(&npy, &array(1, 4, 3, 3));
    let lib = dir.path().join("a.rowpack");
    assert!(pack(&[&npy], &[], &lib).status.success());
    let bytes = std::fs::read(&lib).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let v = inspect(&lib);
    assert!(v["arrays"][0]["fps"].is_null());
    let text = stdout(&rowplay(&["inspect", lib.to_str().unwrap()]));
    assert!(text.contains("    fps  name"), "{text}");
    assert!(text.contains("        -  a\n"), "{text}");

    // --fps records a rate for .npy inputs: version 2, 40-byte entries.
    let lib2 = dir.path().join("b.rowpack");
    assert!(pack(&[&npy], &["--fps", "29.97"], &lib2).status.success());
    let bytes = std::fs::read(&lib2).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let l = open(&lib2);
    assert_eq!(l.period_ns(0), Some(33_366_700));
    let v = inspect(&lib2);
    assert!((v["arrays"][0]["fps"].as_f64().unwrap() - 29.97).abs() < 1e-4);
    let text = stdout(&rowplay(&["inspect", lib2.to_str().unwrap()]));
    assert!(text.contains("  29.97  a\n"), "{text}");
}

#[test]
fn mixed_rates_in_one_pack() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("plain.npy");
    write_npy(&npy, &array(2, 3, 2, 3));
    let zstd = Path::new(FSEQ).join("v2_zstd.fseq");
    let lib = dir.path().join("m.rowpack");
    assert!(pack(&[&npy, &zstd], &[], &lib).status.success());
    let l = open(&lib);
    let (p, z) = (l.find("plain").unwrap(), l.find("v2_zstd").unwrap());
    assert_eq!(l.fps(p), None);
    assert_eq!(l.fps(z), Some(40.0));
    assert_eq!(l.read_array(p).unwrap(), array(2, 3, 2, 3));
}

#[test]
fn channel_selections_outside_the_file_are_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.rowpack");
    for (file, sel, msg) in [
        (
            "v2_zstd.fseq",
            "25:9",
            "channel 31 is past the file's 30 channels; check --channels",
        ),
        (
            "v2_sparse.fseq",
            "19:3",
            "channel 19 is not in the file's sparse ranges; check --channels",
        ),
        (
            "v2_sparse.fseq",
            "104:5",
            "channel 107 is not in the file's sparse ranges; check --channels",
        ),
    ] {
        let input = Path::new(FSEQ).join(file);
        let o = pack(&[&input], &["--channels", sel], &out);
        assert_clean_error(&o, 1);
        assert_eq!(
            stderr(&o),
            format!("error: {}: bad .fseq: {msg}\n", input.display())
        );
        assert!(!out.exists());
    }
    let o = pack(
        &[Path::new(FSEQ).join("v1.fseq").as_path()],
        &["--channels", "0:3"],
        &out,
    );
    assert_eq!(o.status.code(), Some(2), "usage error");
}
