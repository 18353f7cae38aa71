//! Hostile inputs, through the real binary: each must give one `error:`
//! line naming the file and the problem, exit code 1, no panic, no hang,
//! and no allocation beyond a bounded address space.
//!
//! The files in `tests/hostile/` are made by [`generate`] below, from packs
//! written by rowplay itself and `.npy` headers written here;
//! `generator_reproduces_committed_files` checks the committed bytes match,
//! and rewrites them when run with `ROWPLAY_WRITE_HOSTILE=1`. Cases that git
//! cannot hold (symlink loops, FIFOs, empty folders, non-UTF-8 names, a
//! sparse multi-gigabyte pack) are made in a scratch folder at run time.

use rowplay::import::{Array, NamedArray};
use rowplay::pack::{pack_arrays, PackOptions};
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Address-space limit for the child: far more than any of these inputs
/// legitimately needs, far less than what their headers claim.
const CHILD_AS_LIMIT: u64 = 1 << 30;
/// Only a guard against a hang; a healthy run takes well under a second.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

/// A scratch folder, removed on drop.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.0.path().join(rel)
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Run the binary with a bounded address space and a deadline.
fn rowplay(args: &[&Path]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rowplay"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Under user-mode emulation (the ARMv6 lane sets QEMU_CPU for qemu-arm)
    // the child is qemu itself, which reserves the whole 32-bit guest
    // address space up front; the bound is checked by the host lane.
    let emulated = std::env::var_os("QEMU_CPU").is_some();
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; setrlimit is one, and nothing here allocates or locks.
    if !emulated {
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: CHILD_AS_LIMIT as libc::rlim_t,
                    rlim_max: CHILD_AS_LIMIT as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().expect("run rowplay");
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rowplay {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let o = Outcome {
        code: status.code(),
        stdout: t_out.join().unwrap().unwrap(),
        stderr: t_err.join().unwrap().unwrap(),
    };
    assert!(
        !o.stderr.contains("panicked") && !o.stderr.contains("internal error"),
        "rowplay {args:?} panicked: {}",
        o.stderr
    );
    assert!(
        o.code.is_some(),
        "rowplay {args:?} was killed by a signal (abort on allocation failure?): {status:?} {}",
        o.stderr
    );
    o
}

/// Assert a clean failure: exit 1 and exactly these `error:` lines.
fn assert_fails(o: &Outcome, lines: &[String]) {
    let want: String = lines.iter().map(|l| format!("error: {l}\n")).collect();
    assert_eq!(o.stderr, want);
    assert_eq!(o.code, Some(1), "stderr: {}", o.stderr);
}

fn hostile(name: &str) -> PathBuf {
    Path::new(HOSTILE).join(name)
}

/// `rowplay pack FILE -o OUT` fails with `FILE: msg`, and writes nothing.
fn pack_fails(input: &Path, msg: &str) {
    let s = Scratch::new();
    let out = s.path("out.rowpack");
    let o = rowplay(&[Path::new("pack"), input, Path::new("-o"), &out]);
    assert_fails(&o, &[format!("{}: {msg}", input.display())]);
    assert!(!out.exists());
}

/// `rowplay CMD PACK` fails with `PACK: msg`.
fn open_fails(cmd: &str, pack: &Path, msg: &str) {
    let o = rowplay(&[Path::new(cmd), pack]);
    assert_fails(&o, &[format!("{}: {msg}", pack.display())]);
}

/// The list of hostile packs and their expected results, shared with the
/// Python reader's tests (`python/tests/`).
const EXPECTED: &str = "expected.tsv";

/// Arrays in every pack derived from [`base_pack`].
const BASE_ARRAYS: u32 = 2;

/// One row of [`EXPECTED`].
struct Expected {
    file: String,
    command: String,
    /// `ok`, or the message after `PATH: `.
    result: String,
}

/// The rows of [`EXPECTED`]: `file<TAB>command<TAB>result`, `#` comments.
fn expected_list() -> Vec<Expected> {
    let text = fs::read_to_string(hostile(EXPECTED)).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{EXPECTED}: not 3 tab-separated fields: {l:?}");
            Expected {
                file: f[0].into(),
                command: f[1].into(),
                result: f[2].into(),
            }
        })
        .collect()
}

/// The listed result of `command` on `file`.
fn result_of(file: &str, command: &str) -> String {
    expected_list()
        .into_iter()
        .find(|r| r.file == file && r.command == command)
        .map(|r| r.result)
        .unwrap_or_else(|| panic!("{file} {command}: not in {EXPECTED}"))
}

/// Run the rows of the list for `file`, which must be one per command of
/// `commands`, in that order, through the binary: `ok` is exit 0 with
/// nothing on stderr (and `verify`'s summary line), anything else is the
/// exact `error: PATH: message` line and exit 1.
fn listed(file: &str, commands: &[&str]) {
    let rows: Vec<Expected> = expected_list()
        .into_iter()
        .filter(|r| r.file == file)
        .collect();
    let got: Vec<&str> = rows.iter().map(|r| r.command.as_str()).collect();
    assert_eq!(got, commands, "{file}: rows in {EXPECTED}");
    for r in rows {
        let pack = hostile(&r.file);
        if r.result == "ok" {
            let o = rowplay(&[Path::new(&r.command), &pack]);
            assert_eq!((o.code, o.stderr.as_str()), (Some(0), ""), "{file}");
            if r.command == "verify" {
                assert_eq!(
                    o.stdout,
                    format!("ok: {BASE_ARRAYS} arrays in {} verified\n", pack.display())
                );
            }
        } else {
            open_fails(&r.command, &pack, &r.result);
        }
    }
}

// ---------------------------------------------------------------------------
// The generator.

/// A version 1.0 `.npy` with this header dict and data, padded like numpy.
fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.to_string();
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn array(name: &str, rows: u32, leds: u32, channels: u8, seed: u8) -> NamedArray {
    let n = (rows * leds) as usize * channels as usize;
    NamedArray {
        name: name.into(),
        array: Array {
            rows,
            leds,
            channels,
            data: (0..n as u8).map(|i| i.wrapping_mul(37) ^ seed).collect(),
        },
        period_ns: None,
    }
}

/// A valid two-array pack, as rowplay writes it:
///
/// ```text
/// 4096   body of "a" (2 rows x 1 LED x 3 = 6 bytes)
/// 8192   body of "b" (3 rows x 2 LEDs x 4 = 24 bytes)
/// 12288  index entry 0 ("a"), 12320 index entry 1 ("b")
/// 12352  names "ab"
/// 12354  heads (6 + 24 bytes), end of file at 12384
/// ```
fn base_pack() -> Vec<u8> {
    let s = Scratch::new();
    let out = s.path("base.rowpack");
    let arrays = vec![array("a", 2, 1, 3, 1), array("b", 3, 2, 4, 2)];
    pack_arrays(arrays, &out, &PackOptions::default()).unwrap();
    let b = fs::read(&out).unwrap();
    assert_eq!(
        b.len(),
        12384,
        "base pack layout changed; update the offsets"
    );
    b
}

const ENTRY0: usize = 12288;
const ENTRY1: usize = 12320;
const NAMES: usize = 12352;

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Recompute the meta CRC from the header's own offsets, so the edit is
/// caught by the check it targets rather than by the CRC.
fn fix_meta_crc(b: &mut [u8]) {
    let (count, index_offset, names_len) = (u64_at(b, 24), u64_at(b, 32), u64_at(b, 40));
    let start = index_offset as usize;
    let end = start + count as usize * 32 + names_len as usize;
    let crc = rowplay::pack::format::meta_crc(&b[..128], &b[start..end]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// A PNG made of these chunks, with their CRCs.
fn png(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in chunks {
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        b.extend_from_slice(*kind);
        b.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(*kind);
        crc.update(data);
        b.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    b
}

/// A 5x3 palette image whose PLTE is 14 bytes, not whole RGB entries.
fn png_palette_14_bytes() -> Vec<u8> {
    use std::io::Write;
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&5u32.to_be_bytes());
    ihdr.extend_from_slice(&3u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]); // 8-bit palette, not interlaced
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..3 {
        z.write_all(&[0, 0, 1, 2, 3, 4]).unwrap(); // filter 0, five indices
    }
    png(&[
        (b"IHDR", ihdr),
        (b"PLTE", (0..14).collect()),
        (b"IDAT", z.finish().unwrap()),
        (b"IEND", Vec::new()),
    ])
}

/// A v2.2 `.fseq`: 32-byte header, block index, then `tail` from
/// `data_offset` on. `comp` is header byte 20 (compression and the top of
/// the block count), `nblocks` byte 21; `index` the entries written.
fn fseq(
    channels: u32,
    frames: u32,
    comp: u8,
    nblocks: u8,
    index: &[(u32, u32)],
    data_offset: u16,
    tail: &[u8],
) -> Vec<u8> {
    let mut b = b"PSEQ".to_vec();
    b.extend_from_slice(&data_offset.to_le_bytes());
    b.extend_from_slice(&[2, 2]); // v2.2
    b.extend_from_slice(&((32 + 8 * index.len()) as u16).to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&frames.to_le_bytes());
    b.extend_from_slice(&[25, 0, comp, nblocks, 0, 0]);
    b.extend_from_slice(&[0; 8]);
    for (first, len) in index {
        b.extend_from_slice(&first.to_le_bytes());
        b.extend_from_slice(&len.to_le_bytes());
    }
    b.resize(data_offset as usize, 0);
    b.extend_from_slice(tail);
    b
}

/// A zstd frame made of raw (stored) blocks: real zstd without an encoder.
fn zstd_raw(data: &[u8]) -> Vec<u8> {
    let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // no checksum, 128 KiB window
    let header = ((data.len() as u32) << 3) | 1; // raw block, last
    z.extend_from_slice(&header.to_le_bytes()[..3]);
    z.extend_from_slice(data);
    z
}

/// A zstd frame of `blocks` RLE blocks of 128 KiB each: 4 bytes per block
/// decode to 131,072, so a 4 KB frame inflates to 128 MiB.
fn zstd_bomb(blocks: u32) -> Vec<u8> {
    let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38];
    for i in 0..blocks {
        let last = (i + 1 == blocks) as u32;
        let header = (131_072u32 << 3) | (1 << 1) | last; // RLE block
        z.extend_from_slice(&header.to_le_bytes()[..3]);
        z.push(0xaa);
    }
    z
}

/// Every committed hostile file, by name.
fn generate() -> Vec<(&'static str, Vec<u8>)> {
    let base = base_pack();
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        f(&mut b);
        b
    };
    vec![
        // 10^6 rows of 333,333 RGB LEDs: 999,999,000,000 bytes claimed, none present.
        (
            "npy_claims_1e12_bytes.npy",
            npy(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 333333, 3), }",
                &[],
            ),
        ),
        (
            "npy_rows_over_u32.npy",
            npy(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 1, 3), }",
                &[0; 12],
            ),
        ),
        (
            "npy_dim_over_u64.npy",
            npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551616, 3), }",
                &[],
            ),
        ),
        (
            "npy_row_too_wide.npy",
            npy(
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 18446744073709551615, 4), }",
                &[],
            ),
        ),
        // Version 2.0: a u32 header length of 4 GiB - 1 in a 12-byte file.
        ("npy_header_past_end.npy", {
            let mut b = b"\x93NUMPY\x02\x00".to_vec();
            b.extend_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        (
            "npy_deep_nesting.npy",
            npy(&format!("{{'descr': {}", "[".repeat(1000)), &[]),
        ),
        (
            "npy_one_byte_short.npy",
            npy(
                "{'descr': '<u2', 'fortran_order': False, 'shape': (2, 1, 3), }",
                &[7; 11],
            ),
        ),
        ("png_palette_14_bytes.png", png_palette_14_bytes()),
        // One zstd block whose index length runs 1000 bytes past a small file.
        (
            "fseq_block_past_end.fseq",
            fseq(6, 2, 1, 1, &[(0, 1000)], 40, &zstd_raw(&[1; 12])),
        ),
        // Three blocks of 4 GiB - 1 each: the offsets overflow 32 bits.
        (
            "fseq_block_lengths_overflow.fseq",
            fseq(
                3,
                3,
                1,
                3,
                &[(0, u32::MAX), (1, u32::MAX), (2, u32::MAX)],
                56,
                &[0; 8],
            ),
        ),
        // 4095 blocks claimed (v2.1+ 12-bit count) in a 72-byte file.
        (
            "fseq_4095_blocks.fseq",
            fseq(3, 1, 0xf1, 0xff, &[(0, 9)], 40, &[0; 32]),
        ),
        // 1000 RLE blocks: 4 KB that inflate to 128 MiB, for 2 frames of 3.
        ("fseq_zstd_bomb.fseq", {
            let bomb = zstd_bomb(1000);
            fseq(3, 2, 1, 1, &[(0, bomb.len() as u32)], 40, &bomb)
        }),
        // The header says 10 frames of 6 channels; the block holds 4.
        ("fseq_frames_disagree.fseq", {
            let z = zstd_raw(&[7; 24]);
            fseq(6, 10, 1, 1, &[(0, z.len() as u32)], 40, &z)
        }),
        // Uncompressed: 10 frames of 9 channels claimed, 40 bytes present.
        (
            "fseq_raw_cut_short.fseq",
            fseq(9, 10, 0, 0, &[], 32, &[5; 40]),
        ),
        // 4,294,967,295 frames of 3 channels: 12.9 GB claimed by 64 bytes.
        ("fseq_claims_4e9_frames.fseq", {
            let z = zstd_raw(&[1; 12]);
            fseq(3, u32::MAX, 1, 1, &[(0, z.len() as u32)], 40, &z)
        }),
        ("pack_empty.rowpack", Vec::new()),
        ("pack_truncated.rowpack", base[..base.len() - 10].to_vec()),
        // The header puts the index a terabyte into a 12 KiB file.
        (
            "pack_index_past_end.rowpack",
            edit(&|b| set_u64(b, 32, 1 << 40)),
        ),
        // The header claims 10^12 bytes of heads.
        (
            "pack_heads_1e12.rowpack",
            edit(&|b| set_u64(b, 48, 1_000_000_000_000)),
        ),
        (
            "pack_body_past_index.rowpack",
            edit(&|b| {
                set_u64(b, ENTRY1, 1 << 40);
                fix_meta_crc(b);
            }),
        ),
        (
            "pack_overlapping_bodies.rowpack",
            edit(&|b| {
                set_u64(b, ENTRY1, 4096);
                fix_meta_crc(b);
            }),
        ),
        // Bodies in the opposite order to the index: allowed, and verifies.
        (
            "pack_bodies_out_of_order.rowpack",
            edit(&|b| {
                let (first, second) = b[4096..12288].split_at_mut(4096);
                first.swap_with_slice(second);
                set_u64(b, ENTRY0, 8192);
                set_u64(b, ENTRY1, 4096);
                fix_meta_crc(b);
            }),
        ),
        (
            "pack_unsorted_names.rowpack",
            edit(&|b| {
                b[NAMES..NAMES + 2].copy_from_slice(b"ba");
                fix_meta_crc(b);
            }),
        ),
        (
            "pack_duplicate_names.rowpack",
            edit(&|b| {
                b[NAMES..NAMES + 2].copy_from_slice(b"aa");
                fix_meta_crc(b);
            }),
        ),
        (
            "pack_non_utf8_name.rowpack",
            edit(&|b| {
                b[NAMES] = 0xff;
                fix_meta_crc(b);
            }),
        ),
        (
            "pack_flipped_index_byte.rowpack",
            edit(&|b| b[ENTRY1 + 8] ^= 1),
        ),
        (
            "pack_flipped_heads_byte.rowpack",
            edit(&|b| *b.last_mut().unwrap() ^= 1),
        ),
        (
            "pack_flipped_body_byte.rowpack",
            edit(&|b| b[8192 + 5] ^= 0x10),
        ),
    ]
}

#[test]
fn generator_reproduces_committed_files() {
    let write = std::env::var_os("ROWPLAY_WRITE_HOSTILE").is_some();
    let files = generate();
    for (name, bytes) in &files {
        let path = hostile(name);
        if write {
            fs::write(&path, bytes).unwrap();
        }
        let committed = fs::read(&path)
            .unwrap_or_else(|e| panic!("{name}: {e} (ROWPLAY_WRITE_HOSTILE=1 writes it)"));
        assert!(committed == *bytes, "{name} differs from the generator");
    }
    // Every file in the folder is generated and has a test below.
    let mut on_disk: Vec<String> = fs::read_dir(HOSTILE)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != EXPECTED)
        .collect();
    on_disk.sort();
    let mut generated: Vec<String> = files.iter().map(|f| f.0.to_string()).collect();
    generated.sort();
    assert_eq!(on_disk, generated);
}

// ---------------------------------------------------------------------------
// One test per committed file.

#[test]
fn npy_claiming_1e12_bytes_is_refused_before_allocating() {
    // Where usize is 32 bits the size itself cannot be addressed; elsewhere
    // the check that the data is really there comes first.
    let want = if usize::BITS == 32 {
        "array of 999999000000 bytes is too large for this machine; split it"
    } else {
        "data is 0 bytes but the header says 999999000000; the file is cut short"
    };
    pack_fails(&hostile("npy_claims_1e12_bytes.npy"), want);
}

#[test]
fn npy_with_rows_over_u32() {
    pack_fails(
        &hostile("npy_rows_over_u32.npy"),
        "4294967296 rows is too many (at most 4294967295); split the array",
    );
}

#[test]
fn npy_with_a_dimension_over_u64() {
    pack_fails(
        &hostile("npy_dim_over_u64.npy"),
        "header is not a Python dict literal: expected an integer that fits 64 bits at header byte 71",
    );
}

#[test]
fn npy_with_a_row_wider_than_the_limit() {
    pack_fails(
        &hostile("npy_row_too_wide.npy"),
        "one row is 18446744073709551615 bytes, more than the 1048576-byte limit; use fewer LEDs per array",
    );
}

#[test]
fn npy_header_length_past_the_end() {
    pack_fails(
        &hostile("npy_header_past_end.npy"),
        "header of 4294967295 bytes runs past the end of the 12-byte file; the file is cut short",
    );
}

#[test]
fn npy_header_nested_a_thousand_deep() {
    pack_fails(
        &hostile("npy_deep_nesting.npy"),
        "header is not a Python dict literal: expected less deeply nested value at header byte 26",
    );
}

#[test]
fn npy_data_one_byte_short() {
    pack_fails(
        &hostile("npy_one_byte_short.npy"),
        "data is 11 bytes but the header says 12; the file is cut short",
    );
}

/// png 0.17 panicked on this (found by fuzzing); the importer now checks
/// the palette first.
#[test]
fn png_with_a_palette_that_is_not_whole_rgb_entries() {
    pack_fails(
        &hostile("png_palette_14_bytes.png"),
        "bad .png: cannot decode PNG (PLTE chunk of 14 bytes is not 1 to 256 RGB entries); \
         re-export the image",
    );
}

#[test]
fn pack_of_zero_bytes() {
    listed("pack_empty.rowpack", &["inspect"]);
}

#[test]
fn pack_truncated() {
    listed("pack_truncated.rowpack", &["verify"]);
}

#[test]
fn pack_whose_index_is_outside_the_file() {
    listed("pack_index_past_end.rowpack", &["inspect"]);
}

#[test]
fn pack_claiming_1e12_bytes_of_heads() {
    listed("pack_heads_1e12.rowpack", &["inspect"]);
}

#[test]
fn pack_with_a_body_past_the_index() {
    listed("pack_body_past_index.rowpack", &["inspect"]);
}

#[test]
fn pack_with_overlapping_bodies() {
    listed("pack_overlapping_bodies.rowpack", &["verify"]);
}

/// The format asks bodies not to overlap, not to follow index order.
#[test]
fn pack_with_bodies_out_of_order_is_valid() {
    listed("pack_bodies_out_of_order.rowpack", &["verify"]);
    assert_eq!(
        result_of("pack_bodies_out_of_order.rowpack", "verify"),
        "ok"
    );
}

#[test]
fn pack_with_unsorted_names() {
    listed("pack_unsorted_names.rowpack", &["inspect"]);
}

#[test]
fn pack_with_duplicate_names() {
    listed("pack_duplicate_names.rowpack", &["inspect"]);
}

#[test]
fn pack_with_a_non_utf8_name() {
    listed("pack_non_utf8_name.rowpack", &["inspect"]);
}

#[test]
fn pack_with_a_flipped_index_byte() {
    listed("pack_flipped_index_byte.rowpack", &["inspect"]);
}

#[test]
fn pack_with_a_flipped_heads_byte() {
    listed("pack_flipped_heads_byte.rowpack", &["inspect"]);
}

/// Opening reads only the heads, so `inspect` succeeds; `verify` reads the
/// bodies and names the corrupt one (both rows are in the list).
#[test]
fn pack_with_a_flipped_body_byte() {
    listed("pack_flipped_body_byte.rowpack", &["inspect", "verify"]);
    assert_eq!(result_of("pack_flipped_body_byte.rowpack", "inspect"), "ok");
    assert_ne!(result_of("pack_flipped_body_byte.rowpack", "verify"), "ok");
}

/// The list and the folder agree: every committed pack has at least one
/// row, every row names a committed pack and a known command.
#[test]
fn every_committed_pack_is_listed_with_its_expected_result() {
    let rows = expected_list();
    let mut listed_files: Vec<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    listed_files.sort();
    listed_files.dedup();
    let mut packs: Vec<String> = fs::read_dir(HOSTILE)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".rowpack"))
        .collect();
    packs.sort();
    assert_eq!(listed_files, packs);
    for r in &rows {
        assert!(
            r.command == "inspect" || r.command == "verify",
            "{}: unknown command {:?}",
            r.file,
            r.command
        );
    }
}

// ---------------------------------------------------------------------------
// Made at run time.

#[test]
fn pack_that_is_a_directory() {
    let s = Scratch::new();
    let dir = s.path("lib.rowpack");
    fs::create_dir(&dir).unwrap();
    open_fails(
        "verify",
        &dir,
        "is a folder, not a pack (pack it with `rowplay pack`)",
    );
}

#[test]
fn npy_input_of_zero_bytes() {
    let s = Scratch::new();
    let f = s.path("empty.npy");
    fs::write(&f, b"").unwrap();
    pack_fails(&f, "file is empty (0 bytes); re-export it");
}

#[test]
fn npy_input_that_is_a_fifo() {
    let s = Scratch::new();
    let f = s.path("pipe.npy");
    nix::unistd::mkfifo(&f, nix::sys::stat::Mode::S_IRWXU).unwrap();
    pack_fails(
        &f,
        "not a regular file (FIFO, socket or device); give a .npy, .npz, .png or .fseq file",
    );
}

#[test]
fn input_folder_with_a_symlink_loop() {
    let s = Scratch::new();
    let tree = s.path("tree");
    fs::create_dir_all(tree.join("sub")).unwrap();
    fs::copy(format!("{FIXTURES}/npy/u1.npy"), tree.join("sub/a.npy")).unwrap();
    std::os::unix::fs::symlink(&tree, tree.join("sub/back")).unwrap();
    let out = s.path("out.rowpack");
    let o = rowplay(&[Path::new("pack"), &tree, Path::new("-o"), &out]);
    assert_fails(
        &o,
        &[format!(
            "{}: symlink loop in input folder (a link points back to a folder above it); remove the link",
            tree.join("sub/back").display()
        )],
    );
    assert!(!out.exists());
}

#[test]
fn input_folder_with_a_non_utf8_file_name() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new();
    let tree = s.path("tree");
    fs::create_dir(&tree).unwrap();
    let bad = tree.join(std::ffi::OsStr::from_bytes(b"w\xffave.npy"));
    fs::copy(format!("{FIXTURES}/npy/u1.npy"), &bad).unwrap();
    let out = s.path("out.rowpack");
    let o = rowplay(&[Path::new("pack"), &tree, Path::new("-o"), &out]);
    assert_fails(
        &o,
        &[format!(
            "{}: path is not valid UTF-8, so it cannot be an array name; rename it",
            bad.display()
        )],
    );
}

/// `a.npy` and `a.png` in one folder both want the name `a`.
#[test]
fn duplicate_array_names_across_inputs() {
    let s = Scratch::new();
    let tree = s.path("tree");
    fs::create_dir(&tree).unwrap();
    fs::copy(format!("{FIXTURES}/npy/u1.npy"), tree.join("a.npy")).unwrap();
    fs::copy(format!("{FIXTURES}/png/rgb8.png"), tree.join("a.png")).unwrap();
    let out = s.path("out.rowpack");
    let o = rowplay(&[Path::new("pack"), &tree, Path::new("-o"), &out]);
    assert_fails(
        &o,
        &[format!(
            "duplicate array name \"a\" from {} and {}; rename one of them",
            tree.join("a.npy").display(),
            tree.join("a.png").display()
        )],
    );
    assert!(!out.exists());
}

/// A folder whose only entry is an empty folder named like an input file.
#[test]
fn input_folder_holding_only_a_folder_named_like_a_file() {
    let s = Scratch::new();
    let tree = s.path("tree");
    fs::create_dir_all(tree.join("d.npy")).unwrap();
    let out = s.path("out.rowpack");
    let o = rowplay(&[Path::new("pack"), &tree, Path::new("-o"), &out]);
    assert_fails(&o, &["no arrays found in the inputs".to_string()]);
}

/// A sparse file as long as its header says, with an index and names
/// section of 16 GiB: refused before anything is allocated (names are
/// capped at 4 GiB; the child runs with a 1 GiB address space).
#[test]
fn sparse_pack_claiming_16_gib_of_names() {
    let s = Scratch::new();
    let pack = s.path("sparse.rowpack");
    let mut b = base_pack();
    let count: u64 = 1 << 24;
    let names_len: u64 = count * 1024;
    set_u64(&mut b, 24, count);
    set_u64(&mut b, 32, 4096);
    set_u64(&mut b, 40, names_len);
    set_u64(&mut b, 48, 0);
    let f = fs::File::create(&pack).unwrap();
    let len = 4096 + count * 32 + names_len;
    f.set_len(len).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &b[..128], 0).unwrap();
    drop(f);
    open_fails(
        "inspect",
        &pack,
        &format!("names section of {names_len} bytes is larger than the names can be"),
    );
}

/// A sparse pack of 2^24 arrays whose index and names (528 MiB of zeros)
/// match their CRC, so the reader gets as far as parsing the index: the
/// entry vector (40 bytes per array, 640 MiB) no longer fits the child's
/// 1 GiB address space beside the 544 MiB index it was read from, which
/// must be an error, not an abort.
#[test]
fn sparse_pack_of_16_million_arrays_with_a_valid_meta_crc() {
    // Needs the address-space limit, which emulation cannot apply (above),
    // and hashes 544 MiB: the host lane runs it.
    if crate::util::skip_slow() {
        return;
    }
    let s = Scratch::new();
    let pack = s.path("sparse.rowpack");
    let mut b = base_pack();
    let count: u64 = 1 << 24;
    let names_len = count;
    let meta_len = count * 32 + names_len;
    set_u64(&mut b, 24, count);
    set_u64(&mut b, 32, 4096);
    set_u64(&mut b, 40, names_len);
    set_u64(&mut b, 48, 0);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[..60]);
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..meta_len >> 20 {
        crc.update(&zeros);
    }
    crc.update(&zeros[..(meta_len & ((1 << 20) - 1)) as usize]);
    b[60..64].copy_from_slice(&crc.finalize().to_le_bytes());
    let f = fs::File::create(&pack).unwrap();
    f.set_len(4096 + meta_len).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &b[..128], 0).unwrap();
    drop(f);
    open_fails(
        "inspect",
        &pack,
        &format!(
            "pack needs {} bytes of memory, more than this machine can address",
            count * std::mem::size_of::<rowplay::pack::Entry>() as u64
        ),
    );
}

// ---------------------------------------------------------------------------
// .fseq

#[test]
fn fseq_block_past_the_end_of_the_file() {
    pack_fails(
        &hostile("fseq_block_past_end.fseq"),
        "bad .fseq: block 0 ends at byte 1040, past the end of the 61-byte file; the file is cut short",
    );
}

#[test]
fn fseq_block_lengths_that_overflow_32_bits() {
    pack_fails(
        &hostile("fseq_block_lengths_overflow.fseq"),
        "bad .fseq: block 0 ends at byte 4294967351, past the end of the 64-byte file; the file is cut short",
    );
}

#[test]
fn fseq_4095_blocks_claimed_in_a_small_file() {
    pack_fails(
        &hostile("fseq_4095_blocks.fseq"),
        "bad .fseq: 4095 blocks and 0 sparse ranges need 32792 header bytes, but the channel data starts at 40",
    );
}

#[test]
fn fseq_zstd_bomb_stops_one_byte_past_the_claim() {
    pack_fails(
        &hostile("fseq_zstd_bomb.fseq"),
        "bad .fseq: block 0 decodes to more than the 6 bytes its 2 frames need",
    );
}

#[test]
fn fseq_frame_count_that_disagrees_with_the_data() {
    pack_fails(
        &hostile("fseq_frames_disagree.fseq"),
        "bad .fseq: block 0 decodes to 24 bytes, but its 10 frames need 60",
    );
}

#[test]
fn fseq_raw_frames_cut_short() {
    pack_fails(
        &hostile("fseq_raw_cut_short.fseq"),
        "bad .fseq: frame data is 40 bytes but the header's frames need 90; the file is cut short",
    );
}

#[test]
fn fseq_claiming_4e9_frames_is_refused_before_decoding() {
    pack_fails(
        &hostile("fseq_claims_4e9_frames.fseq"),
        "bad .fseq: sequence of 12884901885 bytes is too large for this machine; take fewer channels with --channels or split it",
    );
}
