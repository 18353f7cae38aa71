//! Writing a pack: one pass over the inputs, bounded memory, atomic output.
//!
//! Bodies are written as the inputs are read, one array in memory at a time;
//! the heads go to an anonymous spill file; the tail (index, names, heads in
//! name order) is written at the end. The output appears only when complete:
//! it is written to an unnamed temporary file (`O_TMPFILE`) in the output's
//! folder, synced, linked under a temporary name and renamed over the output.
//! An interrupted pack therefore leaves nothing behind, and an existing pack
//! at the output path is untouched until the new one is whole.

use super::format::{self, Entry, Header, MAX_NAME_LEN, PAGE};
use crate::atomic::{anonymous_file, AtomicFile};
use crate::import::{self, Array, ImportOptions, NamedArray, Source};
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How to pack.
#[derive(Clone, Copy, Debug)]
pub struct PackOptions {
    /// Rows per array kept in the heads.
    pub head_rows: u32,
    /// Store arrays transposed, to play column by column.
    pub by_column: bool,
    /// Importer options.
    pub import: ImportOptions,
    /// Pack what is good and list what was skipped, instead of failing.
    pub skip_bad: bool,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            head_rows: format::DEFAULT_HEAD_ROWS,
            by_column: false,
            import: ImportOptions::default(),
            skip_bad: false,
        }
    }
}

/// What a successful pack did.
#[derive(Debug, Default)]
pub struct PackReport {
    /// Arrays packed.
    pub arrays: u64,
    /// One line per input skipped (with `skip_bad`).
    pub skipped: Vec<String>,
    /// Size of the pack.
    pub bytes: u64,
    /// Size of its heads section.
    pub heads_bytes: u64,
    /// Warnings about inputs that were packed anyway (one line each, naming
    /// the file), such as a `.fseq` channel count padded to whole LEDs.
    pub warnings: Vec<String>,
}

/// Why a pack failed. Nothing was written at the output path.
#[derive(Debug)]
pub enum PackError {
    /// An input path could not be listed.
    Discover(import::ImportError),
    /// Some inputs are bad (one line each).
    BadInputs(Vec<String>),
    /// Two inputs give the same array name.
    DuplicateNames(Vec<String>),
    /// No array was left to pack.
    NothingToPack {
        /// How many inputs were skipped as bad.
        skipped: usize,
    },
    /// `head_rows` outside 1..=1024.
    BadHeadRows(u32),
    /// Writing the output failed.
    Output {
        /// The output path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl PackError {
    /// The error as one or more lines, one per problem.
    pub fn lines(&self) -> Vec<String> {
        match self {
            PackError::BadInputs(v) => v.clone(),
            PackError::DuplicateNames(v) => v.clone(),
            other => vec![other.to_string()],
        }
    }
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::Discover(e) => write!(f, "{e}"),
            PackError::BadInputs(v) | PackError::DuplicateNames(v) => write!(f, "{}", v.join("; ")),
            PackError::NothingToPack { skipped: 0 } => write!(f, "no arrays found in the inputs"),
            PackError::NothingToPack { skipped } => {
                write!(f, "nothing left to pack: all {skipped} inputs were bad")
            }
            PackError::BadHeadRows(k) => write!(
                f,
                "--head-rows {k} is outside 1..={}",
                format::MAX_HEAD_ROWS
            ),
            PackError::Output { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for PackError {}

/// Pack `inputs` (files or folders) into `out`. `progress(done, total)` is
/// called after each input file.
pub fn pack(
    inputs: &[PathBuf],
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PackReport, PackError> {
    let sources = import::discover(inputs).map_err(PackError::Discover)?;
    pack_sources(&sources, out, opts, progress)
}

/// One array on its way into the pack.
struct Pending {
    name: String,
    source: usize,
    entry: Entry,
    spill_offset: u64,
    head_len: u64,
}

/// One input file's arrays, or why it is bad.
struct Input {
    /// How to name the input in messages (its path).
    label: String,
    arrays: Result<Vec<NamedArray>, String>,
    /// Warnings the importer gave for this input.
    warnings: Vec<String>,
}

/// Pack already-discovered sources. See [`pack`].
pub fn pack_sources(
    sources: &[Source],
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PackReport, PackError> {
    // Lazy: each file is read only when the writer gets to it, so one
    // input's arrays are in memory at a time.
    let mut inputs = sources.iter().map(|s| {
        let mut warnings = Vec::new();
        let arrays = import::load(s, &opts.import, &mut warnings).map_err(|e| e.to_string());
        Input {
            label: s.path.display().to_string(),
            arrays,
            warnings,
        }
    });
    write_pack(&mut inputs, sources.len(), out, opts, progress)
}

fn write_pack(
    inputs: &mut dyn Iterator<Item = Input>,
    total: usize,
    out: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PackReport, PackError> {
    if opts.head_rows == 0 || opts.head_rows > format::MAX_HEAD_ROWS {
        return Err(PackError::BadHeadRows(opts.head_rows));
    }
    let out_err = |source: io::Error| PackError::Output {
        path: out.to_path_buf(),
        source,
    };
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = AtomicFile::create(&dir).map_err(out_err)?;
    let spill = anonymous_file(&dir).map_err(out_err)?;

    let mut pending: Vec<Pending> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    let mut next_body = PAGE;
    let mut spill_len = 0u64;
    let mut warnings: Vec<String> = Vec::new();
    for (si, input) in inputs.enumerate() {
        progress(si + 1, total);
        warnings.extend(input.warnings);
        let arrays = match input.arrays {
            Ok(a) => a,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        // Check every name of this input before writing any of it, so a
        // skipped input leaves no trace in the pack.
        if let Some(msg) = arrays.iter().find_map(|a| name_problem(&a.name)) {
            bad.push(format!("{}: {msg}", input.label));
            continue;
        }
        labels.push(input.label);
        let si = labels.len() - 1;
        for named in arrays {
            let array = if opts.by_column {
                transpose(&named.array)
            } else {
                named.array
            };
            let entry = Entry {
                body_offset: next_body,
                rows: array.rows,
                leds: array.leds,
                channels: array.channels as u32,
                body_crc: crc32fast::hash(&array.data),
                name_offset: 0,
                name_len: named.name.len() as u32,
                period_ns: named.period_ns.unwrap_or(0),
            };
            tmp.file
                .write_all_at(&array.data, next_body)
                .map_err(out_err)?;
            let head_len = entry.head_rows(opts.head_rows) as u64 * entry.row_bytes();
            spill
                .write_all_at(&array.data[..head_len as usize], spill_len)
                .map_err(out_err)?;
            pending.push(Pending {
                name: named.name,
                source: si,
                entry,
                spill_offset: spill_len,
                head_len,
            });
            spill_len += head_len;
            next_body = format::page_align(next_body + array.data.len() as u64);
        }
    }
    if !bad.is_empty() && !opts.skip_bad {
        return Err(PackError::BadInputs(bad));
    }
    if pending.is_empty() {
        return Err(PackError::NothingToPack { skipped: bad.len() });
    }

    // The index is in ascending byte order of the names, whatever order the
    // inputs came in; equal neighbours are duplicates.
    pending.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let dups: Vec<String> = pending
        .windows(2)
        .filter(|w| w[0].name == w[1].name)
        .map(|w| {
            format!(
                "duplicate array name {:?} from {} and {}; rename one of them",
                w[0].name, labels[w[0].source], labels[w[1].source]
            )
        })
        .collect();
    if !dups.is_empty() {
        return Err(PackError::DuplicateNames(dups));
    }

    let index_offset = next_body; // page-aligned, so also 8-aligned
                                  // Version 1 unless some array has a rate: packs without rates stay
                                  // byte-identical to what earlier releases wrote.
    let version = if pending.iter().any(|p| p.entry.period_ns != 0) {
        format::VERSION
    } else {
        format::VERSION_NO_RATES
    };
    let mut meta = Vec::with_capacity(pending.len() * (format::entry_len(version) + 16));
    let mut names_len = 0u64;
    for p in &mut pending {
        // Name offsets are u32 (see format): 4 GiB of names is millions of
        // arrays with very long names, but say so rather than wrap.
        p.entry.name_offset = u32::try_from(names_len).map_err(|_| {
            out_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "array names add up to more than 4 GiB; split the library",
            ))
        })?;
        names_len += p.name.len() as u64;
        p.entry.write_to(version, &mut meta);
    }
    for p in &pending {
        meta.extend_from_slice(p.name.as_bytes());
    }
    let mut header = Header {
        version,
        head_rows: opts.head_rows,
        flags: if opts.by_column {
            format::FLAG_BY_COLUMN
        } else {
            0
        },
        count: pending.len() as u64,
        index_offset,
        names_len,
        heads_len: spill_len,
        heads_crc: 0,
        meta_crc: 0,
    };
    tmp.file
        .write_all_at(&meta, index_offset)
        .map_err(out_err)?;

    // Copy the heads from the spill in name order, hashing as they go.
    let mut crc = crc32fast::Hasher::new();
    let mut at = header.heads_offset();
    let mut buf = Vec::new();
    for p in &pending {
        buf.resize(p.head_len as usize, 0);
        spill
            .read_exact_at(&mut buf, p.spill_offset)
            .map_err(out_err)?;
        crc.update(&buf);
        tmp.file.write_all_at(&buf, at).map_err(out_err)?;
        at += p.head_len;
    }
    header.heads_crc = crc.finalize();
    header.meta_crc = format::meta_crc(&header.to_bytes(), &meta);
    tmp.file
        .write_all_at(&header.to_bytes(), 0)
        .map_err(out_err)?;
    // Bodies are written with gaps; make the file end exactly at the tail
    // even if the last write was short of it (it is not, but be explicit).
    tmp.file.set_len(header.file_len()).map_err(out_err)?;
    tmp.commit(out).map_err(out_err)?;

    Ok(PackReport {
        arrays: pending.len() as u64,
        skipped: bad,
        bytes: header.file_len(),
        heads_bytes: spill_len,
        warnings,
    })
}

/// Why a name cannot go into a pack, if it cannot.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("empty array name".into())
    } else if name.len() > MAX_NAME_LEN {
        Some(format!(
            "array name of {} bytes is longer than {MAX_NAME_LEN}",
            name.len()
        ))
    } else if name.chars().any(char::is_control) {
        Some(format!("array name {name:?} contains control characters"))
    } else {
        None
    }
}

/// `[rows][leds][ch]` -> `[leds][rows][ch]`, so that playback goes column by column.
pub fn transpose(a: &Array) -> Array {
    let (rows, leds, ch) = (a.rows as usize, a.leds as usize, a.channels as usize);
    let mut data = vec![0u8; a.data.len()];
    for r in 0..rows {
        for l in 0..leds {
            let src = (r * leds + l) * ch;
            let dst = (l * rows + r) * ch;
            data[dst..dst + ch].copy_from_slice(&a.data[src..src + ch]);
        }
    }
    Array {
        rows: a.leds,
        leds: a.rows,
        channels: a.channels,
        data,
    }
}

/// Pack in-memory arrays (the demo library, tests, benchmarks) into `out`,
/// through the same writer as files.
pub fn pack_arrays(
    arrays: Vec<NamedArray>,
    out: &Path,
    opts: &PackOptions,
) -> Result<PackReport, PackError> {
    let total = arrays.len();
    let mut inputs = arrays.into_iter().map(|a| Input {
        label: a.name.clone(),
        arrays: Ok(vec![a]),
        warnings: Vec::new(),
    });
    write_pack(&mut inputs, total, out, opts, &mut |_, _| {})
}
