//! Helpers shared by the integration tests.

use rowplay::import::{Array, NamedArray};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rowplay"))
}

/// `rowplay ARGS...`, with stdin closed and output captured.
pub fn rowplay(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rowplay")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert a failure printed only `error:` lines and no panic.
pub fn assert_clean_error(o: &Output, code: i32) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    for line in err.lines() {
        assert!(line.starts_with("error:"), "not an error line: {line:?}");
    }
}

/// A deterministic array whose every byte depends on (seed, row, led, channel).
pub fn array(seed: u32, rows: u32, leds: u32, channels: u8) -> Array {
    let mut data = Vec::with_capacity((rows * leds * channels as u32) as usize);
    for r in 0..rows {
        for l in 0..leds {
            for c in 0..channels as u32 {
                data.push(
                    (seed.wrapping_mul(31)
                        ^ r.wrapping_mul(7)
                        ^ l.wrapping_mul(13)
                        ^ c.wrapping_mul(101)) as u8,
                );
            }
        }
    }
    Array {
        rows,
        leds,
        channels,
        data,
    }
}

/// A named deterministic array.
pub fn named(name: &str, seed: u32, rows: u32, leds: u32) -> NamedArray {
    NamedArray {
        name: name.into(),
        array: array(seed, rows, leds, 3),
        period_ns: None,
    }
}

/// Write `a` as a standard u8 `.npy`.
pub fn write_npy(path: &Path, a: &Array) {
    let mut f = std::fs::File::create(path).unwrap();
    rowplay::import::npy::write_u8(a, &mut f).unwrap();
}

/// Pack in-memory arrays into `dir/name.rowpack` and return its path.
pub fn pack(dir: &Path, arrays: Vec<NamedArray>, head_rows: u32) -> PathBuf {
    let out = dir.join("lib.rowpack");
    let opts = rowplay::pack::PackOptions {
        head_rows,
        ..Default::default()
    };
    rowplay::pack::pack_arrays(arrays, &out, &opts).unwrap();
    out
}

/// Whether slow tests should be skipped (the emulated ARM lane sets this;
/// the host lane runs them).
pub fn skip_slow() -> bool {
    std::env::var_os("ROWPLAY_SKIP_SLOW").is_some()
}

/// `rowplay pack SRC -o OUT`, asserting success.
pub fn pack_folder(src: &Path, out: &Path) {
    let o = rowplay(&["pack", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}
