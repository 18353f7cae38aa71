//! The `.rowpack` byte format, specified once.
//!
//! One file, little-endian, made of a header page, the array bodies, and a
//! tail holding the index, the names and the heads:
//!
//! ```text
//! offset            size        what
//! 0                 128         header (below), then zeros up to 4096
//! 4096              ...         bodies: each array's u8 pixels, C order
//!                               [rows][leds][channels], each starting on a
//!                               4096-byte boundary, zero padding between
//! index_offset      E * N       index: one entry per array (below), in
//!                               ascending byte order of the names;
//!                               E = 32 in version 1, 40 in version 2
//! + E * N           names_len   names: UTF-8, back to back, no separators
//! + names_len       heads_len   heads: for each array in index order, its
//!                               first min(rows, K) rows, back to back
//! end of file = index_offset + E * N + names_len + heads_len (exactly)
//! ```
//!
//! Header (128 bytes):
//!
//! ```text
//! 0    8   magic  "ROWPACK\0"
//! 8    4   version: 1, or 2 when any array has a frame period
//! 12   4   endian mark 0x01020304 (bytes 04 03 02 01)
//! 16   4   head_rows K: rows per array kept in the heads (1..=1024)
//! 20   4   flags: bit 0 = arrays stored transposed (--by-column); others 0
//! 24   8   N: number of arrays (<= 16,777,216)
//! 32   8   index_offset: multiple of 8, >= 4096
//! 40   8   names_len (< 4 GiB: name offsets are u32)
//! 48   8   heads_len: sum over arrays of min(rows, K) * leds * channels
//! 56   4   heads_crc: CRC-32 (IEEE) of the heads section
//! 60   4   meta_crc: CRC-32 of header bytes 0..60, then the index, then the names
//! 64   64  reserved, zero
//! ```
//!
//! Index entry (32 bytes):
//!
//! ```text
//! 0    8   body_offset: multiple of 4096, >= 4096
//! 8    4   rows (>= 1)
//! 12   4   leds (>= 1)
//! 16   4   channels: 3 (RGB) or 4 (RGBW)
//! 20   4   body_crc: CRC-32 of the body (rows * leds * channels bytes)
//! 24   4   name_offset: into the names section
//! 28   4   name_len: 1..=1024 bytes, no control characters
//! 32   8   period_ns (version 2 only): the array's frame period in
//!          nanoseconds, 1,000,000..=1,000,000,000 (1000 to 1 fps), or 0
//!          when the array has no rate of its own
//! ```
//!
//! Versions: a pack in which no array has a frame period is written as
//! version 1, byte for byte what earlier releases wrote, so tools that read
//! version 1 keep working; only a pack with rates is version 2, which
//! differs from version 1 in the index entry length alone. Readers open
//! both and refuse a newer version with advice to upgrade rowplay.
//!
//! Invariants a reader checks once, at open ([`parse_header`],
//! [`parse_index`]): every length and offset with checked arithmetic in u64;
//! bodies lie inside `[4096, index_offset)` and do not overlap; names are
//! valid UTF-8, strictly ascending (so lookups can bisect and duplicates are
//! impossible) and lie inside the names section; the file ends exactly where
//! the tail ends. After that, everything can be indexed without checks.
//!
//! Why this shape: the heads are one contiguous read at open, so the first
//! row of every array is in memory without per-array I/O; bodies are
//! page-aligned so each can be read (or mapped) on its own; the tail comes
//! after the bodies so a pack is written in one pass with bounded memory.
//! Nothing in the file depends on time or machine, so packing the same
//! inputs gives the same bytes everywhere.

use std::fmt;

/// File magic.
pub const MAGIC: [u8; 8] = *b"ROWPACK\0";
/// The newest version this build reads and writes (see the module docs).
pub const VERSION: u32 = 2;
/// The version written when no array has a frame period.
pub const VERSION_NO_RATES: u32 = 1;
/// Written as a little-endian u32; a big-endian writer would produce 01 02 03 04.
pub const ENDIAN_MARK: u32 = 0x0102_0304;
/// Header size in bytes.
pub const HEADER_LEN: usize = 128;
/// Bodies are aligned to this (the page size of every Pi kernel).
pub const PAGE: u64 = 4096;
/// Index entry size in bytes, version 1.
pub const ENTRY_LEN: usize = 32;
/// Index entry size in bytes, version 2 (with `period_ns`).
pub const ENTRY_LEN_V2: usize = 40;
/// Shortest frame period an entry may carry: 1 ms (1000 fps).
pub const MIN_PERIOD_NS: u64 = 1_000_000;
/// Longest frame period an entry may carry: 1 s (1 fps).
pub const MAX_PERIOD_NS: u64 = 1_000_000_000;

/// Index entry size for a format version (1 or 2).
pub fn entry_len(version: u32) -> usize {
    if version >= 2 {
        ENTRY_LEN_V2
    } else {
        ENTRY_LEN
    }
}
/// Longest array name in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Largest `head_rows` a pack may declare.
pub const MAX_HEAD_ROWS: u32 = 1024;
/// Most arrays a pack may hold: far beyond any LED library, small enough that
/// the index (32 bytes each, 512 MiB) can never be asked to exceed memory on
/// a 64-bit host, and is refused cleanly on a 32-bit one.
pub const MAX_ARRAYS: u64 = 1 << 24;
/// Flag bit: arrays are stored transposed (played column by column).
pub const FLAG_BY_COLUMN: u32 = 1;
/// Default `head_rows`: 8 rows at 50 Hz give the loader 160 ms to bring a body.
pub const DEFAULT_HEAD_ROWS: u32 = 8;

/// A validated header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version, 1 or 2.
    pub version: u32,
    /// Rows per array kept in the heads.
    pub head_rows: u32,
    /// Flag bits.
    pub flags: u32,
    /// Number of arrays.
    pub count: u64,
    /// Where the index starts.
    pub index_offset: u64,
    /// Size of the names section.
    pub names_len: u64,
    /// Size of the heads section.
    pub heads_len: u64,
    /// CRC-32 of the heads section.
    pub heads_crc: u32,
    /// CRC-32 of header bytes 0..60, index and names.
    pub meta_crc: u32,
}

impl Header {
    /// Size of index + names: the "meta" read at open.
    pub fn meta_len(&self) -> u64 {
        // Cannot overflow: parse_header checked count and names_len.
        self.count * self.entry_len() as u64 + self.names_len
    }
    /// Index entry size of this version.
    pub fn entry_len(&self) -> usize {
        entry_len(self.version)
    }
    /// Offset of the heads section.
    pub fn heads_offset(&self) -> u64 {
        self.index_offset + self.meta_len()
    }
    /// The exact length the file must have.
    pub fn file_len(&self) -> u64 {
        self.heads_offset() + self.heads_len
    }
    /// Whether arrays are stored transposed.
    pub fn by_column(&self) -> bool {
        self.flags & FLAG_BY_COLUMN != 0
    }

    /// The 128 header bytes, with the CRC fields as given.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&ENDIAN_MARK.to_le_bytes());
        b[16..20].copy_from_slice(&self.head_rows.to_le_bytes());
        b[20..24].copy_from_slice(&self.flags.to_le_bytes());
        b[24..32].copy_from_slice(&self.count.to_le_bytes());
        b[32..40].copy_from_slice(&self.index_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.names_len.to_le_bytes());
        b[48..56].copy_from_slice(&self.heads_len.to_le_bytes());
        b[56..60].copy_from_slice(&self.heads_crc.to_le_bytes());
        b[60..64].copy_from_slice(&self.meta_crc.to_le_bytes());
        b
    }
}

/// One index entry, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the body starts.
    pub body_offset: u64,
    /// Rows.
    pub rows: u32,
    /// LEDs per row.
    pub leds: u32,
    /// 3 or 4.
    pub channels: u32,
    /// CRC-32 of the body.
    pub body_crc: u32,
    /// Name position in the names section.
    pub name_offset: u32,
    /// Name length.
    pub name_len: u32,
    /// Frame period in nanoseconds, 0 = none (always 0 in version 1).
    pub period_ns: u64,
}

impl Entry {
    /// Bytes per row. Fits u32 for a validated entry.
    pub fn row_bytes(&self) -> u64 {
        self.leds as u64 * self.channels as u64
    }
    /// Bytes of the whole body.
    pub fn body_len(&self) -> u64 {
        self.rows as u64 * self.row_bytes()
    }
    /// Rows of this array kept in the heads.
    pub fn head_rows(&self, k: u32) -> u32 {
        self.rows.min(k)
    }
    /// The frame period, if the array has one.
    pub fn period(&self) -> Option<u64> {
        (self.period_ns != 0).then_some(self.period_ns)
    }
    /// Append the entry as `version` stores it (32 or 40 bytes).
    pub fn write_to(&self, version: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
        if version >= 2 {
            out.extend_from_slice(&self.period_ns.to_le_bytes());
        }
    }
    /// The 32 index bytes of version 1 (the version 2 entry begins with them).
    pub fn to_bytes(&self) -> [u8; ENTRY_LEN] {
        let mut b = [0u8; ENTRY_LEN];
        b[0..8].copy_from_slice(&self.body_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.rows.to_le_bytes());
        b[12..16].copy_from_slice(&self.leds.to_le_bytes());
        b[16..20].copy_from_slice(&self.channels.to_le_bytes());
        b[20..24].copy_from_slice(&self.body_crc.to_le_bytes());
        b[24..28].copy_from_slice(&self.name_offset.to_le_bytes());
        b[28..32].copy_from_slice(&self.name_len.to_le_bytes());
        b
    }
}

/// What is wrong with a pack's bytes. Small and allocation-free, like the
/// checks that produce it; the library adds the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file is shorter than a header.
    TooShort {
        /// Its length.
        len: u64,
    },
    /// The first 8 bytes are not the magic.
    BadMagic,
    /// A version this build does not read.
    UnsupportedVersion(u32),
    /// The endian mark is wrong.
    BadEndianMark(u32),
    /// `head_rows` outside 1..=1024.
    BadHeadRows(u32),
    /// Unknown flag bits set.
    UnknownFlags(u32),
    /// Reserved header bytes are not zero.
    ReservedNotZero,
    /// More arrays than [`MAX_ARRAYS`], or none.
    BadCount(u64),
    /// The index offset is misaligned or inside the header page.
    BadIndexOffset(u64),
    /// The names section is larger than N names can be.
    BadNamesLen(u64),
    /// The file does not end where the header says.
    WrongFileLength {
        /// What the header implies.
        expected: u64,
        /// What the file has.
        actual: u64,
    },
    /// Header, index or names do not match their CRC.
    MetaCrcMismatch,
    /// The heads section does not match its CRC.
    HeadsCrcMismatch,
    /// An index entry is invalid.
    BadEntry {
        /// Its index.
        index: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// Two bodies overlap.
    OverlappingBodies {
        /// One array.
        a: u64,
        /// The other.
        b: u64,
    },
    /// Names are not strictly ascending (unsorted or duplicate).
    NamesNotAscending {
        /// The entry whose name is not greater than the previous one.
        index: u64,
    },
    /// The heads section has the wrong size.
    WrongHeadsLen {
        /// What the index implies.
        expected: u64,
        /// What the header says.
        actual: u64,
    },
    /// The pack needs more memory than this machine can address.
    TooLargeForThisMachine(u64),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FormatError::*;
        match self {
            TooShort { len } => write!(f, "file of {len} bytes is too short to be a pack"),
            BadMagic => write!(f, "not a rowpack file (bad magic)"),
            UnsupportedVersion(v) if *v > VERSION => write!(
                f,
                "pack format version {v} is newer than this rowplay reads (1..={VERSION}); upgrade rowplay"
            ),
            UnsupportedVersion(v) => write!(
                f,
                "pack format version {v} is not a valid version (1..={VERSION})"
            ),
            BadEndianMark(m) => write!(f, "bad endian mark {m:#010x}"),
            BadHeadRows(k) => write!(f, "head_rows {k} outside 1..={MAX_HEAD_ROWS}"),
            UnknownFlags(x) => write!(f, "unknown flag bits {x:#x}"),
            ReservedNotZero => write!(f, "reserved header bytes are not zero"),
            BadCount(n) => write!(f, "array count {n} outside 1..={MAX_ARRAYS}"),
            BadIndexOffset(o) => write!(f, "index offset {o} is misaligned or inside the header"),
            BadNamesLen(n) => write!(f, "names section of {n} bytes is larger than the names can be"),
            WrongFileLength { expected, actual } => write!(
                f,
                "file is {actual} bytes but its header says {expected} (truncated or overwritten? repack it)"
            ),
            MetaCrcMismatch => write!(f, "header/index CRC mismatch (corrupt pack; repack it)"),
            HeadsCrcMismatch => write!(f, "heads CRC mismatch (corrupt first rows; repack it)"),
            BadEntry { index, what } => write!(f, "index entry {index}: {what}"),
            OverlappingBodies { a, b } => write!(f, "bodies of arrays {a} and {b} overlap"),
            NamesNotAscending { index } => {
                write!(f, "index entry {index}: names not in strictly ascending order")
            }
            WrongHeadsLen { expected, actual } => write!(
                f,
                "heads section is {actual} bytes, the index implies {expected}"
            ),
            TooLargeForThisMachine(n) => {
                write!(f, "pack needs {n} bytes of memory, more than this machine can address")
            }
        }
    }
}

impl std::error::Error for FormatError {}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Validate the header against the real file length. Never panics.
pub fn parse_header(b: &[u8], file_len: u64) -> Result<Header, FormatError> {
    if b.len() < HEADER_LEN || file_len < HEADER_LEN as u64 {
        return Err(FormatError::TooShort {
            len: file_len.min(b.len() as u64),
        });
    }
    if b[0..8] != MAGIC {
        return Err(FormatError::BadMagic);
    }
    let version = u32_at(b, 8);
    if version == 0 || version > VERSION {
        return Err(FormatError::UnsupportedVersion(version));
    }
    let mark = u32_at(b, 12);
    if mark != ENDIAN_MARK {
        return Err(FormatError::BadEndianMark(mark));
    }
    let h = Header {
        version,
        head_rows: u32_at(b, 16),
        flags: u32_at(b, 20),
        count: u64_at(b, 24),
        index_offset: u64_at(b, 32),
        names_len: u64_at(b, 40),
        heads_len: u64_at(b, 48),
        heads_crc: u32_at(b, 56),
        meta_crc: u32_at(b, 60),
    };
    if h.head_rows == 0 || h.head_rows > MAX_HEAD_ROWS {
        return Err(FormatError::BadHeadRows(h.head_rows));
    }
    if h.flags & !FLAG_BY_COLUMN != 0 {
        return Err(FormatError::UnknownFlags(h.flags));
    }
    if b[64..HEADER_LEN].iter().any(|&x| x != 0) {
        return Err(FormatError::ReservedNotZero);
    }
    if h.count == 0 || h.count > MAX_ARRAYS {
        return Err(FormatError::BadCount(h.count));
    }
    if h.index_offset < PAGE || h.index_offset % 8 != 0 {
        return Err(FormatError::BadIndexOffset(h.index_offset));
    }
    // Name offsets are u32, so the names section is at most 4 GiB.
    if h.names_len < h.count
        || h.names_len > h.count * MAX_NAME_LEN as u64
        || h.names_len > u32::MAX as u64
    {
        return Err(FormatError::BadNamesLen(h.names_len));
    }
    // count <= 2^24 and names_len <= 2^34, so meta_len cannot overflow;
    // index_offset and heads_len are arbitrary, so add them checked.
    let expected = h
        .index_offset
        .checked_add(h.meta_len())
        .and_then(|x| x.checked_add(h.heads_len));
    match expected {
        Some(e) if e == file_len => Ok(h),
        _ => Err(FormatError::WrongFileLength {
            expected: expected.unwrap_or(u64::MAX),
            actual: file_len,
        }),
    }
}

/// CRC-32 of header bytes 0..60 followed by `meta` (index + names).
pub fn meta_crc(header: &[u8], meta: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..60]);
    h.update(meta);
    h.finalize()
}

/// Validate the index and names (`meta`, exactly `header.meta_len()` bytes)
/// and return the entries. `header_bytes` are the raw 128 header bytes (for
/// the CRC). Never panics; allocates only the entry vector and a sort
/// buffer, one element per array, and refuses with
/// [`FormatError::TooLargeForThisMachine`] if they do not fit (a sparse file
/// can hold any count the header claims).
pub fn parse_index(
    header: &Header,
    header_bytes: &[u8],
    meta: &[u8],
) -> Result<Vec<Entry>, FormatError> {
    if meta.len() as u64 != header.meta_len() || header_bytes.len() < HEADER_LEN {
        return Err(FormatError::WrongFileLength {
            expected: header.meta_len(),
            actual: meta.len() as u64,
        });
    }
    if meta_crc(header_bytes, meta) != header.meta_crc {
        return Err(FormatError::MetaCrcMismatch);
    }
    let count = header.count as usize; // meta.len() fits usize, so count does
    let elen = header.entry_len();
    let (index, names) = meta.split_at(count * elen);
    let mut entries: Vec<Entry> = Vec::new();
    entries
        .try_reserve_exact(count)
        .map_err(|_| FormatError::TooLargeForThisMachine(header.count * ENTRY_MEM))?;
    let mut heads_len: u64 = 0;
    let mut prev_name: &[u8] = &[];
    for i in 0..count {
        let b = &index[i * elen..(i + 1) * elen];
        let e = Entry {
            body_offset: u64_at(b, 0),
            rows: u32_at(b, 8),
            leds: u32_at(b, 12),
            channels: u32_at(b, 16),
            body_crc: u32_at(b, 20),
            name_offset: u32_at(b, 24),
            name_len: u32_at(b, 28),
            period_ns: if elen == ENTRY_LEN_V2 {
                u64_at(b, 32)
            } else {
                0
            },
        };
        let bad = |what| FormatError::BadEntry {
            index: i as u64,
            what,
        };
        if e.rows == 0 || e.leds == 0 {
            return Err(bad("zero rows or LEDs"));
        }
        if e.channels != 3 && e.channels != 4 {
            return Err(bad("channels is not 3 or 4"));
        }
        if e.row_bytes() > crate::import::MAX_ROW_BYTES as u64 {
            return Err(bad("row larger than the row limit"));
        }
        if e.body_offset < PAGE || e.body_offset % PAGE != 0 {
            return Err(bad("body offset not page-aligned after the header"));
        }
        // rows < 2^32 and row_bytes <= 2^20: body_len < 2^52, no overflow.
        match e.body_offset.checked_add(e.body_len()) {
            Some(end) if end <= header.index_offset => {}
            _ => return Err(bad("body extends past the index")),
        }
        if e.period_ns != 0 && !(MIN_PERIOD_NS..=MAX_PERIOD_NS).contains(&e.period_ns) {
            return Err(bad("frame period outside 1 ms..=1 s"));
        }
        if e.name_len == 0 || e.name_len as usize > MAX_NAME_LEN {
            return Err(bad("name length outside 1..=1024"));
        }
        let start = e.name_offset as u64;
        let end = start + e.name_len as u64;
        if end > names.len() as u64 {
            return Err(bad("name outside the names section"));
        }
        let name = &names[start as usize..end as usize];
        match std::str::from_utf8(name) {
            Ok(s) if !s.chars().any(char::is_control) => {}
            _ => return Err(bad("name is not UTF-8 text")),
        }
        if i > 0 && name <= prev_name {
            return Err(FormatError::NamesNotAscending { index: i as u64 });
        }
        prev_name = name;
        heads_len += e.head_rows(header.head_rows) as u64 * e.row_bytes();
        entries.push(e);
    }
    if heads_len != header.heads_len {
        return Err(FormatError::WrongHeadsLen {
            expected: heads_len,
            actual: header.heads_len,
        });
    }
    // Bodies must not overlap: sort their spans by offset and compare
    // neighbours. Bodies may share nothing, so equal offsets are overlaps too.
    let mut spans: Vec<(u64, u64, u64)> = Vec::new();
    spans
        .try_reserve_exact(count)
        .map_err(|_| FormatError::TooLargeForThisMachine(header.count * SPAN_MEM))?;
    spans.extend(
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.body_offset, e.body_offset + e.body_len(), i as u64)),
    );
    spans.sort_unstable();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return Err(FormatError::OverlappingBodies {
                a: w[0].2.min(w[1].2),
                b: w[0].2.max(w[1].2),
            });
        }
    }
    Ok(entries)
}

/// Bytes of memory per array for the parsed entries and the overlap sort.
const ENTRY_MEM: u64 = std::mem::size_of::<Entry>() as u64;
const SPAN_MEM: u64 = std::mem::size_of::<(u64, u64, u64)>() as u64;

/// Round up to a multiple of [`PAGE`].
pub fn page_align(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            version: 1,
            head_rows: 8,
            flags: 0,
            count: 1,
            index_offset: PAGE * 3,
            names_len: 1,
            heads_len: 8 * 3,
            heads_crc: 0,
            meta_crc: 0,
        }
    }

    #[test]
    fn header_round_trips_and_implies_file_length() {
        let h = header();
        let b = h.to_bytes();
        assert_eq!(&b[..8], b"ROWPACK\0");
        assert_eq!(&b[12..16], &[4, 3, 2, 1]);
        assert_eq!(parse_header(&b, h.file_len()), Ok(h));
        assert_eq!(h.file_len(), 12288 + 32 + 1 + 24);
    }

    #[test]
    fn header_checks_each_field() {
        let h = header();
        let len = h.file_len();
        let mut b = h.to_bytes();
        b[0] = b'X';
        assert_eq!(parse_header(&b, len), Err(FormatError::BadMagic));
        let mut b = h.to_bytes();
        b[8] = 3;
        assert_eq!(
            parse_header(&b, len),
            Err(FormatError::UnsupportedVersion(3))
        );
        assert_eq!(
            FormatError::UnsupportedVersion(3).to_string(),
            "pack format version 3 is newer than this rowplay reads (1..=2); upgrade rowplay"
        );
        let mut b = h.to_bytes();
        b[8] = 0;
        assert_eq!(
            parse_header(&b, len),
            Err(FormatError::UnsupportedVersion(0))
        );
        let mut b = h.to_bytes();
        b[12..16].copy_from_slice(&ENDIAN_MARK.to_be_bytes());
        assert_eq!(
            parse_header(&b, len),
            Err(FormatError::BadEndianMark(0x0403_0201))
        );
        let mut b = h.to_bytes();
        b[100] = 1;
        assert_eq!(parse_header(&b, len), Err(FormatError::ReservedNotZero));
        let b = Header { head_rows: 0, ..h }.to_bytes();
        assert_eq!(parse_header(&b, len), Err(FormatError::BadHeadRows(0)));
        let b = Header { flags: 6, ..h }.to_bytes();
        assert_eq!(parse_header(&b, len), Err(FormatError::UnknownFlags(6)));
        let b = Header { count: 0, ..h }.to_bytes();
        assert_eq!(parse_header(&b, len), Err(FormatError::BadCount(0)));
        let b = Header {
            index_offset: 4100,
            ..h
        }
        .to_bytes();
        assert_eq!(
            parse_header(&b, len),
            Err(FormatError::BadIndexOffset(4100))
        );
        assert_eq!(
            parse_header(&h.to_bytes(), len - 1),
            Err(FormatError::WrongFileLength {
                expected: len,
                actual: len - 1
            })
        );
        assert_eq!(
            parse_header(&h.to_bytes()[..50], len),
            Err(FormatError::TooShort { len: 50 })
        );
    }

    #[test]
    fn header_lengths_that_overflow_u64_are_rejected() {
        let h = Header {
            heads_len: u64::MAX - 10,
            ..header()
        };
        assert!(matches!(
            parse_header(&h.to_bytes(), 12345),
            Err(FormatError::WrongFileLength { .. })
        ));
    }

    fn meta_for(entries: &[Entry], names: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        for e in entries {
            m.extend_from_slice(&e.to_bytes());
        }
        m.extend_from_slice(names);
        m
    }

    fn entry(off: u64, name_offset: u32, name_len: u32) -> Entry {
        Entry {
            body_offset: off,
            rows: 2,
            leds: 1,
            channels: 3,
            body_crc: 0,
            name_offset,
            name_len,
            period_ns: 0,
        }
    }

    fn check(entries: &[Entry], names: &[u8]) -> Result<Vec<Entry>, FormatError> {
        let meta = meta_for(entries, names);
        let mut h = Header {
            count: entries.len() as u64,
            names_len: names.len() as u64,
            heads_len: entries.iter().map(|e| e.rows.min(8) as u64 * 3).sum(),
            ..header()
        };
        let hb = h.to_bytes();
        h.meta_crc = meta_crc(&hb, &meta);
        parse_index(&h, &h.to_bytes(), &meta)
    }

    #[test]
    fn index_accepts_sorted_disjoint_entries() {
        let e = [entry(PAGE, 0, 1), entry(PAGE + 4096, 1, 1)];
        assert_eq!(check(&e, b"ab").unwrap(), e.to_vec());
    }

    #[test]
    fn index_rejects_duplicates_unsorted_and_overlaps() {
        let dup = [entry(PAGE, 0, 1), entry(PAGE + 4096, 1, 1)];
        assert_eq!(
            check(&dup, b"aa"),
            Err(FormatError::NamesNotAscending { index: 1 })
        );
        assert_eq!(
            check(&dup, b"ba"),
            Err(FormatError::NamesNotAscending { index: 1 })
        );
        let overlap = [entry(PAGE, 0, 1), entry(PAGE, 1, 1)];
        assert_eq!(
            check(&overlap, b"ab"),
            Err(FormatError::OverlappingBodies { a: 0, b: 1 })
        );
    }

    #[test]
    fn index_rejects_bad_entries() {
        let bad = |e: Entry, names: &[u8]| match check(&[e], names) {
            Err(FormatError::BadEntry { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bad(entry(PAGE + 1, 0, 1), b"a"),
            "body offset not page-aligned after the header"
        );
        assert_eq!(
            bad(entry(PAGE * 3, 0, 1), b"a"),
            "body extends past the index"
        );
        assert_eq!(
            bad(entry(PAGE, 1, 1), b"a"),
            "name outside the names section"
        );
        assert_eq!(bad(entry(PAGE, 0, 1), &[0xff]), "name is not UTF-8 text");
        assert_eq!(bad(entry(PAGE, 0, 1), b"\n"), "name is not UTF-8 text");
        assert_eq!(
            bad(
                Entry {
                    channels: 5,
                    ..entry(PAGE, 0, 1)
                },
                b"a"
            ),
            "channels is not 3 or 4"
        );
    }

    #[test]
    fn index_checks_the_crc() {
        let e = [entry(PAGE, 0, 1)];
        let meta = meta_for(&e, b"a");
        let h = Header {
            heads_len: 6,
            meta_crc: 1,
            ..header()
        };
        assert_eq!(
            parse_index(&h, &h.to_bytes(), &meta),
            Err(FormatError::MetaCrcMismatch)
        );
    }

    #[test]
    fn version_2_entries_carry_a_period() {
        let e = [
            Entry {
                period_ns: 25_000_000,
                ..entry(PAGE, 0, 1)
            },
            entry(PAGE + 4096, 1, 1),
        ];
        let mut meta = Vec::new();
        for x in &e {
            x.write_to(2, &mut meta);
        }
        assert_eq!(meta.len(), 2 * ENTRY_LEN_V2);
        meta.extend_from_slice(b"ab");
        let mut h = Header {
            version: 2,
            count: 2,
            names_len: 2,
            heads_len: 12,
            ..header()
        };
        assert_eq!(h.meta_len(), 82);
        h.meta_crc = meta_crc(&h.to_bytes(), &meta);
        let got = parse_index(&h, &h.to_bytes(), &meta).unwrap();
        assert_eq!(got, e.to_vec());
        assert_eq!(got[0].period(), Some(25_000_000));
        assert_eq!(got[1].period(), None);
        // The same bytes read as version 1 are misframed and fail.
        let h1 = Header { version: 1, ..h };
        assert!(parse_index(&h1, &h1.to_bytes(), &meta).is_err());
        // A period outside 1 ms..=1 s is refused.
        let mut meta = Vec::new();
        Entry {
            period_ns: 999_999,
            ..entry(PAGE, 0, 1)
        }
        .write_to(2, &mut meta);
        meta.push(b'a');
        let mut h = Header {
            version: 2,
            heads_len: 6,
            ..header()
        };
        h.meta_crc = meta_crc(&h.to_bytes(), &meta);
        assert_eq!(
            parse_index(&h, &h.to_bytes(), &meta),
            Err(FormatError::BadEntry {
                index: 0,
                what: "frame period outside 1 ms..=1 s"
            })
        );
    }
}
