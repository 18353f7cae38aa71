//! An open pack: validated index, names and heads in locked memory, one file
//! descriptor for its whole life.
//!
//! Opening reads three things, each with one positioned read: the header,
//! the index + names, and the heads. It validates everything then, so the
//! rest of the program indexes without checks. Nothing is mapped from the
//! file: a pack truncated or overwritten in place while it plays can make
//! later reads fail (which the loader counts), never fault the process.
//! Bodies are read with `pread` by the [`crate::loader`].

use crate::import::Array;
use crate::pack::format::{self, Entry, FormatError, Header, HEADER_LEN};
use crate::rt::LockedBuf;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How to open a library.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenOptions {
    /// Most bytes the heads may take; `None` = a quarter of physical RAM.
    pub heads_budget: Option<u64>,
}

/// Why a library could not be opened.
#[derive(Debug)]
pub enum LibraryError {
    /// Reading the file failed.
    Io {
        /// The pack.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The bytes are not a valid pack.
    Format {
        /// The pack.
        path: PathBuf,
        /// What is wrong.
        source: FormatError,
    },
    /// The heads would take more memory than allowed.
    HeadsOverBudget {
        /// The pack.
        path: PathBuf,
        /// Bytes the heads need.
        need: u64,
        /// The budget.
        budget: u64,
        /// `head_rows` the pack has.
        head_rows: u32,
        /// A `--head-rows` that would fit.
        suggest: u32,
    },
}

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LibraryError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            LibraryError::Format { path, source } => write!(f, "{}: {source}", path.display()),
            LibraryError::HeadsOverBudget {
                path,
                need,
                budget,
                head_rows,
                suggest,
            } => write!(
                f,
                "{}: the first {head_rows} rows of every array need {} of locked memory, over the budget of {}; repack with --head-rows {suggest} or raise --heads-budget",
                path.display(),
                human_bytes(*need),
                human_bytes(*budget)
            ),
        }
    }
}

impl std::error::Error for LibraryError {}

/// `12.3 MB`-style size for messages.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

/// What the rest of the program needs to know about one array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArrayInfo<'a> {
    /// Position in the index.
    pub index: u32,
    /// Name.
    pub name: &'a str,
    /// Rows.
    pub rows: u32,
    /// LEDs per row.
    pub leds: u32,
    /// 3 or 4.
    pub channels: u32,
}

/// An open pack.
pub struct Library {
    path: PathBuf,
    file: File,
    header: Header,
    entries: Vec<Entry>,
    /// Start of each array's head inside `heads`.
    head_start: Vec<usize>,
    /// Index + names as read (names are sliced from it).
    meta: Vec<u8>,
    heads: LockedBuf,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Library")
            .field("path", &self.path)
            .field("arrays", &self.entries.len())
            .field("head_rows", &self.header.head_rows)
            .finish()
    }
}

impl Library {
    /// Open and validate a pack. Never panics on any file content.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Library, LibraryError> {
        let io_err = |source| LibraryError::Io {
            path: path.to_path_buf(),
            source,
        };
        let fmt_err = |source| LibraryError::Format {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta_data = file.metadata().map_err(io_err)?;
        if meta_data.is_dir() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a folder, not a pack (pack it with `rowplay pack`)",
            )));
        }
        let file_len = meta_data.len();
        let mut hb = [0u8; HEADER_LEN];
        let got = read_up_to(&file, &mut hb, 0).map_err(io_err)?;
        let header = format::parse_header(&hb[..got], file_len).map_err(fmt_err)?;

        let budget = opts
            .heads_budget
            .unwrap_or_else(|| crate::rt::physical_memory() / 4);
        if header.heads_len > budget {
            // Heads scale linearly with head_rows (short arrays cost less);
            // suggest the largest K that fits if every array were long.
            let per_row = header.heads_len / header.head_rows as u64;
            let suggest = (budget / per_row.max(1)).clamp(1, header.head_rows as u64) as u32;
            return Err(LibraryError::HeadsOverBudget {
                path: path.to_path_buf(),
                need: header.heads_len,
                budget,
                head_rows: header.head_rows,
                suggest,
            });
        }
        let meta_len = usize::try_from(header.meta_len())
            .map_err(|_| fmt_err(FormatError::TooLargeForThisMachine(header.meta_len())))?;
        let heads_len = usize::try_from(header.heads_len)
            .map_err(|_| fmt_err(FormatError::TooLargeForThisMachine(header.heads_len)))?;

        // A sparse file can be as long as any header claims, so the length
        // check does not bound this: allocate fallibly, and a claim beyond
        // memory is an error rather than an abort.
        let too_large = |n: u64| fmt_err(FormatError::TooLargeForThisMachine(n));
        let mut meta = Vec::new();
        meta.try_reserve_exact(meta_len)
            .map_err(|_| too_large(header.meta_len()))?;
        meta.resize(meta_len, 0);
        file.read_exact_at(&mut meta, header.index_offset)
            .map_err(io_err)?;
        let entries = format::parse_index(&header, &hb, &meta).map_err(fmt_err)?;

        let mut heads = LockedBuf::new(heads_len).map_err(io_err)?;
        file.read_exact_at(heads.as_mut_slice(), header.heads_offset())
            .map_err(io_err)?;
        if crc32fast::hash(heads.as_slice()) != header.heads_crc {
            return Err(fmt_err(FormatError::HeadsCrcMismatch));
        }
        let mut head_start = Vec::new();
        head_start
            .try_reserve_exact(entries.len())
            .map_err(|_| too_large(entries.len() as u64 * std::mem::size_of::<usize>() as u64))?;
        let mut at = 0usize;
        for e in &entries {
            head_start.push(at);
            // Bounded by heads_len, which fits usize.
            at += (e.head_rows(header.head_rows) as u64 * e.row_bytes()) as usize;
        }
        Ok(Library {
            path: path.to_path_buf(),
            file,
            header,
            entries,
            head_start,
            meta,
            heads,
        })
    }

    /// The pack's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
    /// Number of arrays.
    pub fn len(&self) -> u32 {
        self.entries.len() as u32
    }
    /// Whether the library is empty (a valid pack never is).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Rows per array kept in the heads.
    pub fn head_rows(&self) -> u32 {
        self.header.head_rows
    }
    /// Whether arrays are stored transposed (`--by-column`).
    pub fn by_column(&self) -> bool {
        self.header.by_column()
    }
    /// Bytes of the heads section.
    pub fn heads_bytes(&self) -> u64 {
        self.heads.len() as u64
    }
    /// Whether the heads are locked in RAM.
    pub fn heads_locked(&self) -> bool {
        self.heads.is_locked()
    }
    /// Bytes this library keeps in memory: heads, index and names.
    pub fn resident_bytes(&self) -> u64 {
        (self.heads.len() + self.meta.len() + self.entries.len() * std::mem::size_of::<Entry>())
            as u64
    }

    /// The index entry of array `i`. Panics if `i >= len()`.
    pub fn entry(&self, i: u32) -> &Entry {
        &self.entries[i as usize]
    }

    /// The name of array `i`. Panics if `i >= len()`.
    pub fn name(&self, i: u32) -> &str {
        let e = &self.entries[i as usize];
        let names = &self.meta[self.entries.len() * self.header.entry_len()..];
        let start = e.name_offset as usize;
        let s = &names[start..start + e.name_len as usize];
        // Validated as UTF-8 at open; a failure here would be a bug, and an
        // empty name is a visible, harmless answer to it.
        std::str::from_utf8(s).unwrap_or("")
    }

    /// Everything about array `i`, or `None` if there is no such array.
    pub fn info(&self, i: u32) -> Option<ArrayInfo<'_>> {
        let e = self.entries.get(i as usize)?;
        Some(ArrayInfo {
            index: i,
            name: self.name(i),
            rows: e.rows,
            leds: e.leds,
            channels: e.channels,
        })
    }

    /// Array `i`'s own frame period in nanoseconds (a `.fseq` step time or
    /// `pack --fps`), or `None` when it has none (and for no such array).
    /// The period is what the pack stores; [`Library::fps`] is its inverse.
    pub fn period_ns(&self, i: u32) -> Option<u64> {
        self.entries.get(i as usize)?.period()
    }

    /// Array `i`'s own frame rate in frames per second (`1e9 / period`),
    /// or `None` when it has none.
    pub fn fps(&self, i: u32) -> Option<f64> {
        self.period_ns(i).map(|p| 1e9 / p as f64)
    }

    /// The pack's format version (1 without rates, 2 with).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Find an array by name: a binary search, since names are sorted.
    pub fn find(&self, name: &str) -> Option<u32> {
        let (mut lo, mut hi) = (0u32, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.name(mid).as_bytes().cmp(name.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Row `r` of array `i` from the heads, with no I/O; `None` unless
    /// `r < min(rows, head_rows)`.
    #[inline]
    pub fn head_row(&self, i: u32, r: u32) -> Option<&[u8]> {
        let e = self.entries.get(i as usize)?;
        if r >= e.head_rows(self.header.head_rows) {
            return None;
        }
        let rb = e.row_bytes() as usize;
        let start = self.head_start[i as usize] + r as usize * rb;
        self.heads.as_slice().get(start..start + rb)
    }

    /// Read `buf.len()` bytes of array `i`'s body starting `offset` bytes
    /// into it. A read past the end of the body is refused; a file that
    /// became shorter gives `UnexpectedEof`.
    pub fn read_body(&self, i: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let e = self
            .entries
            .get(i as usize)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no such array"))?;
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= e.body_len() => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "read past the end of the body",
                ))
            }
        }
        self.file.read_exact_at(buf, e.body_offset + offset)
    }

    /// Check array `i`'s body against its CRC, reading it in chunks.
    pub fn verify_body(&self, i: u32) -> io::Result<bool> {
        let e = *self.entry(i);
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; (1 << 16).min(e.body_len() as usize).max(1)];
        let mut at = 0u64;
        while at < e.body_len() {
            let n = (e.body_len() - at).min(buf.len() as u64) as usize;
            self.read_body(i, at, &mut buf[..n])?;
            h.update(&buf[..n]);
            at += n as u64;
        }
        Ok(h.finalize() == e.body_crc)
    }

    /// Read array `i` whole (for `export` and `render`), CRC-checked.
    pub fn read_array(&self, i: u32) -> io::Result<Array> {
        let e = *self.entry(i);
        let len = usize::try_from(e.body_len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "array too large for this machine",
            )
        })?;
        let mut data = vec![0u8; len];
        self.read_body(i, 0, &mut data)?;
        if crc32fast::hash(&data) != e.body_crc {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "array {:?} fails its CRC (corrupt body; repack)",
                    self.name(i)
                ),
            ));
        }
        Ok(Array {
            rows: e.rows,
            leds: e.leds,
            channels: e.channels as u8,
            data,
        })
    }

    /// The widest array, in LEDs.
    pub fn max_leds(&self) -> u32 {
        self.entries.iter().map(|e| e.leds).max().unwrap_or(0)
    }
    /// The most channels any array has (3 or 4).
    pub fn max_channels(&self) -> u32 {
        self.entries.iter().map(|e| e.channels).max().unwrap_or(3)
    }
    /// The longest row in bytes.
    pub fn max_row_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| e.row_bytes())
            .max()
            .unwrap_or(0)
    }
    /// The largest body minus its head rows: what a loader slot must hold
    /// for that array to avoid streaming through a ring.
    pub fn max_tail_bytes(&self) -> u64 {
        let k = self.header.head_rows;
        self.entries
            .iter()
            .map(|e| (e.rows - e.head_rows(k)) as u64 * e.row_bytes())
            .max()
            .unwrap_or(0)
    }
}

/// Positioned read of up to `buf.len()` bytes; returns how many were read.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
