//! `.fseq` reading and writing: the sequences xLights saves and FPP plays.
//!
//! A sequence is one array: rows = frames, LEDs = channels / 3 (or / 4 with
//! RGBW), frame period = the file's step time. What is read:
//!
//! - v1 (`PSEQ`, 28-byte header, frames stored raw) and v2.0-2.2 (`PSEQ` or
//!   `FSEQ`, 32-byte header); `ESEQ` effect sequences are refused.
//! - v2 compression none (frames raw after the header), zstd and zlib. A
//!   compressed file holds blocks listed in the block index (u32 first
//!   frame, u32 compressed length); entries of length 0 are unused slots
//!   and skipped; block *i* starts where the used blocks before it end, and
//!   the last one ends where the data ends (the end sentinel), or at the
//!   `ED` extended data that follows the frames. A zstd block may hold
//!   several concatenated frames; a zlib block is one RFC 1950 stream.
//! - sparse ranges (u24 start, u24 count): the file stores only these
//!   channels of the show, back to back; channel numbers given to
//!   [`Options::channels`] are the show's, as xLights shows them.
//! - variable headers (u16 length including the 4-byte head, 2-byte code,
//!   data) up to the channel data; only `ED` changes what is read.
//!
//! Memory: the header area (at most 64 KiB), one frame of the file, the
//! decoder's window, and the output array, whose size is checked before it
//! is reserved. Every block must decode to exactly its frames times the
//! file's channels: one byte more is an error found by reading one byte
//! past the limit, so a small block that inflates far beyond its claim
//! (a "zstd bomb") costs one frame of work, not its inflated size.
//!
//! [`write_v2`] writes an uncompressed v2.0 file for `rowplay export`.

use std::fmt;
use std::io::{self, Read, Write};

use super::{Array, MAX_ROW_BYTES};

/// Longest header area: the channel data offset is a u16.
pub const MAX_HEADER_LEN: usize = 65535;
/// Most blocks a v2.1+ index can list (12 bits).
pub const MAX_BLOCKS: usize = 4095;
/// Most channels per frame a file may store: the show channel space of the
/// sparse ranges (24 bits). Bounds the one-frame buffer before decoding.
pub const MAX_FILE_CHANNELS: u32 = 1 << 24;
/// Step time written by [`write_v2`] for an array without a rate: 20 ms.
pub const DEFAULT_STEP_MS: u8 = 20;

const V1_HEADER: usize = 28;
const V2_HEADER: usize = 32;
const BLOCK_ENTRY: usize = 8;
const RANGE_ENTRY: usize = 6;

/// Positioned reads from a file or a slice, so the reader works on both.
pub trait ReadAt {
    /// Read up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
}

/// What to take from a sequence.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// (1-based start, count) in the show's channel numbers; `None` takes
    /// every channel the file stores, in file order.
    pub channels: Option<(u32, u32)>,
    /// 4 channels per LED instead of 3.
    pub rgbw: bool,
    /// Most output bytes accepted; `None` = as much as can be reserved.
    pub max_bytes: Option<u64>,
}

/// A decoded sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The frames, as an array.
    pub array: Array,
    /// The step time, in nanoseconds.
    pub period_ns: Option<u64>,
    /// When the channel count was not a whole number of LEDs: the channel
    /// count before zero padding.
    pub padded_from: Option<u32>,
}

/// Compression of a v2 file's channel data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Frames stored raw.
    None,
    /// zstd blocks.
    Zstd,
    /// zlib blocks.
    Zlib,
}

/// One used block of the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// First frame in the block.
    pub first_frame: u32,
    /// Where its compressed bytes start in the file.
    pub offset: u64,
    /// Compressed length (after the `ED` cap for the last block).
    pub len: u64,
}

/// One sparse range: show channels `start..start + count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First show channel, 0-based.
    pub start: u32,
    /// Number of channels.
    pub count: u32,
}

/// Everything the header area says, validated against the file length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Major version, 1 or 2.
    pub major: u8,
    /// Minor version.
    pub minor: u8,
    /// Where the channel data starts.
    pub data_offset: u64,
    /// Channels per frame stored in the file.
    pub channels: u32,
    /// Frames.
    pub frames: u32,
    /// Step time in ms.
    pub step_ms: u8,
    /// Compression (v1 is always none).
    pub compression: Compression,
    /// The used blocks, in file order (empty when uncompressed).
    pub blocks: Vec<Block>,
    /// Sparse ranges (empty: the file stores channels `0..channels`).
    pub ranges: Vec<Range>,
    /// Where `ED` extended data starts, if any.
    pub extended_at: Option<u64>,
}

/// A malformed, unsupported or too large `.fseq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FseqError {
    /// Shorter than a header.
    TooShort {
        /// File length.
        len: u64,
    },
    /// The first four bytes are not `PSEQ` or `FSEQ`.
    BadMagic([u8; 4]),
    /// An `ESEQ` effect sequence.
    EffectSequence,
    /// A version other than 1.x and 2.0-2.2.
    UnsupportedVersion {
        /// Major.
        major: u8,
        /// Minor.
        minor: u8,
    },
    /// The channel data offset is inside the fixed header or past the end.
    BadDataOffset {
        /// The offset.
        offset: u64,
        /// File length.
        file_len: u64,
    },
    /// Block index and sparse ranges do not fit before the channel data.
    IndexPastHeader {
        /// Blocks claimed.
        blocks: usize,
        /// Ranges claimed.
        ranges: usize,
        /// Bytes they need from the file start.
        need: u64,
        /// The channel data offset.
        data_offset: u64,
    },
    /// Channels per frame is 0.
    NoChannels,
    /// Channels per frame is more than [`MAX_FILE_CHANNELS`].
    TooManyChannels(u32),
    /// Frame count is 0.
    NoFrames,
    /// Step time is 0 ms.
    NoStepTime,
    /// Compression code other than 0, 1, 2.
    UnknownCompression(u8),
    /// Compressed, but no used block in the index.
    NoBlocks,
    /// The first used block does not start at frame 0.
    FirstBlockNotAtZero {
        /// Its first frame.
        first: u32,
    },
    /// A block's first frame is not after the previous block's, or past
    /// the frame count.
    BlockOutOfOrder {
        /// The block (among used blocks).
        block: usize,
        /// Its first frame.
        first: u32,
    },
    /// A block runs past the end of the file.
    BlockPastEnd {
        /// The block.
        block: usize,
        /// Where it ends.
        end: u64,
        /// File length.
        file_len: u64,
    },
    /// A variable header runs past the channel data offset.
    VarHeaderPastData {
        /// Where it starts.
        at: u64,
        /// Its length.
        len: u16,
        /// The channel data offset.
        data_offset: u64,
    },
    /// An `ED` header is not 18 bytes, or its data lies outside the file or
    /// inside the header.
    BadExtendedData {
        /// Where the extended data claims to start.
        offset: u64,
        /// Its length.
        len: u64,
        /// File length.
        file_len: u64,
    },
    /// Sparse ranges overlap, are empty, or do not add up to the channels.
    BadSparseRanges {
        /// Sum of the range lengths.
        sum: u64,
        /// Channels per frame.
        channels: u32,
    },
    /// `--channels` takes 0 channels or starts at 0.
    BadSelection {
        /// Start (1-based).
        start: u32,
        /// Count.
        count: u32,
    },
    /// A selected channel is not stored in the file.
    ChannelNotStored {
        /// The channel, 1-based.
        channel: u64,
        /// The file's channels (or the sum of its sparse ranges).
        channels: u32,
        /// Whether the file has sparse ranges.
        sparse: bool,
    },
    /// One frame of the output is larger than [`MAX_ROW_BYTES`].
    RowTooWide {
        /// Bytes per output frame.
        bytes: u64,
    },
    /// The output does not fit the limit or this machine.
    TooLarge {
        /// Bytes it needs.
        bytes: u64,
    },
    /// Raw frame data is shorter than the frames need.
    DataShort {
        /// Bytes present.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
    /// A block decodes to fewer bytes than its frames need.
    BlockShort {
        /// The block.
        block: usize,
        /// Its frames.
        frames: u32,
        /// Bytes it decoded to.
        got: u64,
        /// Bytes its frames need.
        want: u64,
    },
    /// A block decodes to more bytes than its frames need.
    BlockLong {
        /// The block.
        block: usize,
        /// Its frames.
        frames: u32,
        /// Bytes its frames need.
        want: u64,
    },
    /// The zstd or zlib decoder failed on a block.
    Decode {
        /// The block.
        block: usize,
        /// What the decoder said.
        what: String,
    },
    /// Reading the file failed.
    Io(String),
}

impl fmt::Display for FseqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FseqError::*;
        match self {
            TooShort { len } => write!(f, "file of {len} bytes is too short for a header"),
            BadMagic(m) => write!(
                f,
                "not a .fseq file (starts with {:?}, not \"PSEQ\" or \"FSEQ\")",
                String::from_utf8_lossy(m)
            ),
            EffectSequence => write!(f, "an effect sequence (ESEQ); only full sequences can be packed"),
            UnsupportedVersion { major, minor } => write!(
                f,
                "version {major}.{minor} is not supported (1.x and 2.0-2.2 are)"
            ),
            BadDataOffset { offset, file_len } => write!(
                f,
                "channel data offset {offset} is inside the fixed header or past the end of the {file_len}-byte file"
            ),
            IndexPastHeader { blocks, ranges, need, data_offset } => write!(
                f,
                "{blocks} blocks and {ranges} sparse ranges need {need} header bytes, but the channel data starts at {data_offset}"
            ),
            NoChannels => write!(f, "0 channels per frame"),
            TooManyChannels(n) => write!(
                f,
                "{n} channels per frame is more than a show can have ({MAX_FILE_CHANNELS})"
            ),
            NoFrames => write!(f, "0 frames"),
            NoStepTime => write!(f, "step time is 0 ms"),
            UnknownCompression(c) => write!(f, "unknown compression type {c} (0 none, 1 zstd, 2 zlib)"),
            NoBlocks => write!(f, "compressed, but the block index lists no data"),
            FirstBlockNotAtZero { first } => {
                write!(f, "the first block starts at frame {first}, not 0")
            }
            BlockOutOfOrder { block, first } => write!(
                f,
                "block {block} starts at frame {first}, not after the previous block and before the last frame"
            ),
            BlockPastEnd { block, end, file_len } => write!(
                f,
                "block {block} ends at byte {end}, past the end of the {file_len}-byte file; the file is cut short"
            ),
            VarHeaderPastData { at, len, data_offset } => write!(
                f,
                "variable header at byte {at} of {len} bytes runs past the channel data at {data_offset}"
            ),
            BadExtendedData { offset, len, file_len } => write!(
                f,
                "extended data (ED) of {len} bytes at byte {offset} is not inside the {file_len}-byte file after the header"
            ),
            BadSparseRanges { sum, channels } => write!(
                f,
                "sparse ranges are empty, overlap, or add up to {sum} channels, not the file's {channels}"
            ),
            BadSelection { start, count } => write!(
                f,
                "--channels {start}:{count} selects nothing (the start counts from 1, the count from 1)"
            ),
            ChannelNotStored { channel, channels, sparse: false } => write!(
                f,
                "channel {channel} is past the file's {channels} channels; check --channels"
            ),
            ChannelNotStored { channel, sparse: true, .. } => write!(
                f,
                "channel {channel} is not in the file's sparse ranges; check --channels"
            ),
            RowTooWide { bytes } => write!(
                f,
                "one frame is {bytes} bytes, more than the {MAX_ROW_BYTES}-byte row limit; take one model with --channels START:COUNT"
            ),
            TooLarge { bytes } => write!(
                f,
                "sequence of {bytes} bytes is too large for this machine; take fewer channels with --channels or split it"
            ),
            DataShort { have, need } => write!(
                f,
                "frame data is {have} bytes but the header's frames need {need}; the file is cut short"
            ),
            BlockShort { block, frames, got, want } => write!(
                f,
                "block {block} decodes to {got} bytes, but its {frames} frames need {want}"
            ),
            BlockLong { block, frames, want } => write!(
                f,
                "block {block} decodes to more than the {want} bytes its {frames} frames need"
            ),
            Decode { block, what } => write!(f, "block {block} does not decode: {what}"),
            Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FseqError {}

fn u16_at(b: &[u8], at: usize) -> u16 {
    match b.get(at..at + 2) {
        Some(x) => u16::from_le_bytes([x[0], x[1]]),
        None => 0,
    }
}

fn u24_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 3) {
        Some(x) => u32::from_le_bytes([x[0], x[1], x[2], 0]),
        None => 0,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(x) => u32::from_le_bytes([x[0], x[1], x[2], x[3]]),
        None => 0,
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    match b.get(at..at + 8) {
        Some(x) => u64::from_le_bytes([x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]]),
        None => 0,
    }
}

/// Validate the header area. `b` is the start of the file, at least up to
/// the channel data offset (or the whole file if shorter); `file_len` the
/// file's length. Never panics; allocates at most 4095 blocks and 255
/// ranges.
pub fn parse_layout(b: &[u8], file_len: u64) -> Result<Layout, FseqError> {
    if b.len() < 8 || file_len < 8 {
        return Err(FseqError::TooShort { len: file_len });
    }
    let magic = [b[0], b[1], b[2], b[3]];
    match &magic {
        b"PSEQ" | b"FSEQ" => {}
        b"ESEQ" => return Err(FseqError::EffectSequence),
        _ => return Err(FseqError::BadMagic(magic)),
    }
    let (minor, major) = (b[6], b[7]);
    let fixed = match (major, minor) {
        (1, _) => V1_HEADER,
        (2, 0..=2) => V2_HEADER,
        _ => return Err(FseqError::UnsupportedVersion { major, minor }),
    };
    if b.len() < fixed {
        return Err(FseqError::TooShort { len: file_len });
    }
    let data_offset = u16_at(b, 4) as u64;
    if data_offset < fixed as u64 || data_offset > file_len || data_offset > b.len() as u64 {
        return Err(FseqError::BadDataOffset {
            offset: data_offset,
            file_len,
        });
    }
    let header = &b[..data_offset as usize];
    let channels = u32_at(b, 10);
    let frames = u32_at(b, 14);
    let step_ms = b[18];
    if channels == 0 {
        return Err(FseqError::NoChannels);
    }
    if channels > MAX_FILE_CHANNELS {
        return Err(FseqError::TooManyChannels(channels));
    }
    if frames == 0 {
        return Err(FseqError::NoFrames);
    }
    if step_ms == 0 {
        return Err(FseqError::NoStepTime);
    }
    let mut layout = Layout {
        major,
        minor,
        data_offset,
        channels,
        frames,
        step_ms,
        compression: Compression::None,
        blocks: Vec::new(),
        ranges: Vec::new(),
        extended_at: None,
    };
    if major == 1 {
        // Variable headers follow the fixed header; none changes a v1 read.
        return Ok(layout);
    }
    layout.compression = match b[20] & 0x0f {
        0 => Compression::None,
        1 => Compression::Zstd,
        2 => Compression::Zlib,
        c => return Err(FseqError::UnknownCompression(c)),
    };
    // v2.0 has an 8-bit block count; v2.1+ keeps 4 more bits in byte 20.
    let nblocks = if minor >= 1 {
        ((b[20] as usize >> 4) << 8) | b[21] as usize
    } else {
        b[21] as usize
    };
    let nranges = b[22] as usize;
    let need = V2_HEADER + nblocks * BLOCK_ENTRY + nranges * RANGE_ENTRY;
    if need as u64 > data_offset {
        return Err(FseqError::IndexPastHeader {
            blocks: nblocks,
            ranges: nranges,
            need: need as u64,
            data_offset,
        });
    }

    // Variable headers: from the header length field (or the end of the
    // ranges, if the field is short of it) to the channel data.
    let field = u16_at(b, 8) as usize;
    let mut at = if field >= need { field } else { need };
    let mut extended: Option<(u64, u64)> = None;
    while at + 4 <= header.len() {
        let len = u16_at(header, at);
        if len < 4 {
            break; // zero padding up to the data offset
        }
        let end = at + len as usize;
        if end > header.len() {
            return Err(FseqError::VarHeaderPastData {
                at: at as u64,
                len,
                data_offset,
            });
        }
        if &header[at + 2..at + 4] == b"ED" {
            let (offset, elen) = (u64_at(header, at + 6), u32_at(header, at + 14) as u64);
            let inside = offset
                .checked_add(elen)
                .is_some_and(|e| e <= file_len && offset >= data_offset);
            if len != 18 || !inside {
                return Err(FseqError::BadExtendedData {
                    offset,
                    len: elen,
                    file_len,
                });
            }
            extended = Some(match extended {
                Some((o, l)) if o <= offset => (o, l),
                _ => (offset, elen),
            });
        }
        at = end;
    }
    layout.extended_at = extended.map(|e| e.0);

    // Sparse ranges, stored after the block index.
    let mut sum = 0u64;
    let ranges_at = V2_HEADER + nblocks * BLOCK_ENTRY;
    for r in 0..nranges {
        let e = ranges_at + r * RANGE_ENTRY;
        let range = Range {
            start: u24_at(header, e),
            count: u24_at(header, e + 3),
        };
        if range.count == 0 {
            return Err(FseqError::BadSparseRanges { sum, channels });
        }
        sum += range.count as u64;
        layout.ranges.push(range);
    }
    if nranges > 0 {
        let mut sorted = layout.ranges.clone();
        sorted.sort_unstable_by_key(|r| r.start);
        let overlap = sorted
            .windows(2)
            .any(|w| w[0].start as u64 + w[0].count as u64 > w[1].start as u64);
        if overlap || sum != channels as u64 {
            return Err(FseqError::BadSparseRanges { sum, channels });
        }
    }

    if layout.compression == Compression::None {
        return Ok(layout);
    }
    // Used blocks: a length-0 entry is an unused, preallocated slot.
    let mut offset = data_offset;
    for x in 0..nblocks {
        let e = V2_HEADER + x * BLOCK_ENTRY;
        let (first, len) = (u32_at(header, e), u32_at(header, e + 4) as u64);
        if len == 0 {
            continue;
        }
        let block = layout.blocks.len();
        match layout.blocks.last() {
            None if first != 0 => return Err(FseqError::FirstBlockNotAtZero { first }),
            Some(prev) if first <= prev.first_frame => {
                return Err(FseqError::BlockOutOfOrder { block, first })
            }
            _ if first >= frames => return Err(FseqError::BlockOutOfOrder { block, first }),
            _ => {}
        }
        layout.blocks.push(Block {
            first_frame: first,
            offset,
            len,
        });
        // At most 4095 u32 lengths after a u16 offset: no overflow in u64.
        offset += len;
    }
    let Some(last) = layout.blocks.last_mut() else {
        return Err(FseqError::NoBlocks);
    };
    // Extended data after the frames ends the last block, whatever its
    // index length says.
    if let Some(ed) = layout.extended_at {
        if ed > last.offset && ed < last.offset + last.len {
            last.len = ed - last.offset;
        }
    }
    for (i, blk) in layout.blocks.iter().enumerate() {
        let end = blk.offset + blk.len;
        if end > file_len {
            return Err(FseqError::BlockPastEnd {
                block: i,
                end,
                file_len,
            });
        }
    }
    Ok(layout)
}

impl Layout {
    /// Frames in used block `i`: up to the next block's first frame, the
    /// last one up to the frame count.
    pub fn block_frames(&self, i: usize) -> u32 {
        let first = self.blocks.get(i).map_or(0, |b| b.first_frame);
        let next = self
            .blocks
            .get(i + 1)
            .map_or(self.frames, |b| b.first_frame);
        next.saturating_sub(first)
    }

    /// Copy plan for a selection: `(file offset, output offset, length)` in
    /// channels of one frame, and the number of output channels.
    pub fn plan(&self, sel: Option<(u32, u32)>) -> Result<(Vec<Segment>, u32), FseqError> {
        let Some((start, count)) = sel else {
            return Ok((vec![(0, 0, self.channels)], self.channels));
        };
        if start == 0 || count == 0 {
            return Err(FseqError::BadSelection { start, count });
        }
        let lo = start as u64 - 1;
        let hi = lo + count as u64;
        let whole = [Range {
            start: 0,
            count: self.channels,
        }];
        let ranges: &[Range] = if self.ranges.is_empty() {
            &whole
        } else {
            &self.ranges
        };
        let mut segs = Vec::new();
        let mut file_at = 0u64;
        let mut covered = 0u64;
        for r in ranges {
            let (rs, re) = (r.start as u64, r.start as u64 + r.count as u64);
            let (s, e) = (rs.max(lo), re.min(hi));
            if s < e {
                // All fit u32: within the file's channels and the selection.
                segs.push(((file_at + s - rs) as u32, (s - lo) as u32, (e - s) as u32));
                covered += e - s;
            }
            file_at += r.count as u64;
        }
        if covered != count as u64 {
            // Name the first selected channel no range holds.
            segs.sort_unstable_by_key(|s| s.1);
            let mut next = 0u64;
            for s in &segs {
                if s.1 as u64 != next {
                    break;
                }
                next += s.2 as u64;
            }
            return Err(FseqError::ChannelNotStored {
                channel: lo + next + 1,
                channels: self.channels,
                sparse: !self.ranges.is_empty(),
            });
        }
        Ok((segs, count))
    }
}

/// One copy of a frame's channels: (file offset, output offset, length).
pub type Segment = (u32, u32, u32);

/// A [`Read`] over `start..end` of a [`ReadAt`].
struct Span<'a, R: ?Sized> {
    src: &'a R,
    pos: u64,
    end: u64,
}

impl<R: ReadAt + ?Sized> Read for Span<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.end - self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.src.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

/// Read `buf` fully from `r`; `Ok(n < len)` at the end of the data.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Read a whole sequence from `src` (`len` bytes long).
pub fn read<R: ReadAt + ?Sized>(src: &R, len: u64, opts: &Options) -> Result<Sequence, FseqError> {
    let io_err = |e: io::Error| FseqError::Io(e.to_string());
    let head_len = len.min(MAX_HEADER_LEN as u64 + 1) as usize;
    let mut head = vec![0u8; head_len];
    let got = read_full(
        &mut Span {
            src,
            pos: 0,
            end: head_len as u64,
        },
        &mut head,
    )
    .map_err(io_err)?;
    head.truncate(got);
    let layout = parse_layout(&head, len)?;
    drop(head);

    let (segs, out_channels) = layout.plan(opts.channels)?;
    let per_led: u32 = if opts.rgbw { 4 } else { 3 };
    let leds = out_channels.div_ceil(per_led);
    let row = leds as u64 * per_led as u64;
    if row > MAX_ROW_BYTES as u64 {
        return Err(FseqError::RowTooWide { bytes: row });
    }
    let total = row * layout.frames as u64;
    let fchan = layout.channels as u64;
    if layout.compression == Compression::None {
        // Raw frames must all be there before anything is reserved.
        let need = fchan * layout.frames as u64;
        let have = len - layout.data_offset;
        if have < need {
            return Err(FseqError::DataShort { have, need });
        }
    }
    if opts.max_bytes.is_some_and(|m| total > m) {
        return Err(FseqError::TooLarge { bytes: total });
    }
    let total_usize = usize::try_from(total).map_err(|_| FseqError::TooLarge { bytes: total })?;
    let mut data: Vec<u8> = Vec::new();
    data.try_reserve_exact(total_usize)
        .map_err(|_| FseqError::TooLarge { bytes: total })?;

    // One frame of the file at a time.
    let mut frame = vec![0u8; layout.channels as usize];
    let push = |frame: &[u8], data: &mut Vec<u8>| {
        let at = data.len();
        data.resize(at + row as usize, 0);
        for &(from, to, n) in &segs {
            let (from, to, n) = (from as usize, to as usize, n as usize);
            data[at + to..at + to + n].copy_from_slice(&frame[from..from + n]);
        }
    };
    match layout.compression {
        Compression::None => {
            let mut span = Span {
                src,
                pos: layout.data_offset,
                end: len,
            };
            for _ in 0..layout.frames {
                let got = read_full(&mut span, &mut frame).map_err(io_err)?;
                if got < frame.len() {
                    return Err(FseqError::DataShort {
                        have: span.pos - layout.data_offset,
                        need: fchan * layout.frames as u64,
                    });
                }
                push(&frame, &mut data);
            }
        }
        Compression::Zstd | Compression::Zlib => {
            for (i, blk) in layout.blocks.iter().enumerate() {
                let frames = layout.block_frames(i);
                let want = frames as u64 * fchan;
                let mut span = Span {
                    src,
                    pos: blk.offset,
                    end: blk.offset + blk.len,
                };
                let decode_err = |e: io::Error| FseqError::Decode {
                    block: i,
                    what: e.to_string(),
                };
                let mut reader: Box<dyn Read + '_> = if layout.compression == Compression::Zlib {
                    Box::new(flate2::read::ZlibDecoder::new(&mut span))
                } else {
                    Box::new(ZstdFrames {
                        span: &mut span,
                        dec: None,
                    })
                };
                for f in 0..frames {
                    let got = read_full(&mut reader, &mut frame).map_err(decode_err)?;
                    if got < frame.len() {
                        return Err(FseqError::BlockShort {
                            block: i,
                            frames,
                            got: f as u64 * fchan + got as u64,
                            want,
                        });
                    }
                    push(&frame, &mut data);
                }
                // One byte past the limit is the check that the block is
                // not longer than its frames.
                let mut extra = [0u8; 1];
                if read_full(&mut reader, &mut extra).map_err(decode_err)? != 0 {
                    return Err(FseqError::BlockLong {
                        block: i,
                        frames,
                        want,
                    });
                }
            }
        }
    }
    let padded_from = (out_channels as u64 != row).then_some(out_channels);
    Ok(Sequence {
        array: Array {
            rows: layout.frames,
            leds,
            channels: per_led as u8,
            data,
        },
        period_ns: Some(layout.step_ms as u64 * 1_000_000),
        padded_from,
    })
}

/// Decoded bytes of one zstd block: its frames one after another (a block
/// may hold several concatenated zstd frames).
struct ZstdFrames<'s, 'a, R: ?Sized> {
    span: &'s mut Span<'a, R>,
    dec: Option<ruzstd::decoding::FrameDecoder>,
}

impl<R: ReadAt + ?Sized> Read for ZstdFrames<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(dec) = &mut self.dec {
                // Decode only what this read needs: at most one zstd block
                // beyond it is held, whatever the frame claims.
                while dec.can_collect() < buf.len() && !dec.is_finished() {
                    let need = buf.len() - dec.can_collect();
                    dec.decode_blocks(&mut *self.span, BlockDecodingStrategy::UptoBytes(need))
                        .map_err(io::Error::other)?;
                }
                let n = dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
            }
            // This frame is done; another may follow in the same block.
            if self.span.pos >= self.span.end {
                return Ok(0);
            }
            let dec = self.dec.get_or_insert_with(FrameDecoder::new);
            dec.reset(&mut *self.span).map_err(io::Error::other)?;
        }
    }
}

/// Parse a whole `.fseq` held in memory.
pub fn parse(bytes: &[u8], opts: &Options) -> Result<Sequence, FseqError> {
    read(bytes, bytes.len() as u64, opts)
}

/// Write `a` as an uncompressed v2.0 `.fseq`: one frame per row, the row's
/// bytes as channels, step time `step_ms`.
pub fn write_v2(a: &Array, step_ms: u8, w: &mut dyn Write) -> io::Result<()> {
    let channels = a.leds as u64 * a.channels as u64;
    let channels = u32::try_from(channels)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many channels"))?;
    let mut h = [0u8; V2_HEADER];
    h[0..4].copy_from_slice(b"PSEQ");
    h[4..6].copy_from_slice(&(V2_HEADER as u16).to_le_bytes());
    h[6] = 0; // minor
    h[7] = 2; // major
    h[8..10].copy_from_slice(&(V2_HEADER as u16).to_le_bytes());
    h[10..14].copy_from_slice(&channels.to_le_bytes());
    h[14..18].copy_from_slice(&a.rows.to_le_bytes());
    h[18] = step_ms;
    // 19 flags, 20 compression none and 0 blocks, 22 no ranges, 23 flags,
    // 24..32 unique id: all zero, so the same array gives the same bytes.
    w.write_all(&h)?;
    w.write_all(&a.data)
}

/// The step time for a frame period: whole milliseconds, 1..=255; 20 ms
/// (50 fps) for an array without a rate.
pub fn step_ms(period_ns: Option<u64>) -> u8 {
    match period_ns {
        Some(p) => ((p + 500_000) / 1_000_000).clamp(1, 255) as u8,
        None => DEFAULT_STEP_MS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fseq/");

    /// A v2 header area: fixed header, `index`, `ranges`, `var`, padding to
    /// `data_offset` (or to a multiple of 4 after them when 0).
    fn v2(
        minor: u8,
        comp: u8,
        channels: u32,
        frames: u32,
        index: &[(u32, u32)],
        ranges: &[(u32, u32)],
        var: &[u8],
    ) -> Vec<u8> {
        let n = index.len();
        let end = V2_HEADER + n * 8 + ranges.len() * 6;
        let data_offset = (end + var.len()).next_multiple_of(4);
        let mut b = b"PSEQ".to_vec();
        b.extend_from_slice(&(data_offset as u16).to_le_bytes());
        b.extend_from_slice(&[minor, 2]);
        b.extend_from_slice(&(end as u16).to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&frames.to_le_bytes());
        b.extend_from_slice(&[50, 0, comp | ((n >> 8) as u8) << 4, n as u8]);
        b.extend_from_slice(&[ranges.len() as u8, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for (f, l) in index {
            b.extend_from_slice(&f.to_le_bytes());
            b.extend_from_slice(&l.to_le_bytes());
        }
        for (s, c) in ranges {
            b.extend_from_slice(&s.to_le_bytes()[..3]);
            b.extend_from_slice(&c.to_le_bytes()[..3]);
        }
        b.extend_from_slice(var);
        b.resize(data_offset, 0);
        b
    }

    fn ed(offset: u64, len: u32) -> Vec<u8> {
        let mut v = vec![18, 0, b'E', b'D', b'x', b'N'];
        v.extend_from_slice(&offset.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    #[test]
    fn v1_header() {
        let mut b = b"PSEQ".to_vec();
        b.extend_from_slice(&32u16.to_le_bytes());
        b.extend_from_slice(&[0, 1, 28, 0]);
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[25, 0, 1, 0, 6, 0, 1, 0, 0, 0]);
        b.extend_from_slice(&[4, 0, b'x', b'x']); // a variable header
        b.extend_from_slice(&[9; 12]);
        let l = parse_layout(&b, b.len() as u64).unwrap();
        assert_eq!(
            (l.major, l.data_offset, l.channels, l.frames, l.step_ms),
            (1, 32, 6, 2, 25)
        );
        assert_eq!(l.compression, Compression::None);
        let s = parse(&b, &Options::default()).unwrap();
        assert_eq!((s.array.rows, s.array.leds), (2, 2));
        assert_eq!(s.array.data, [9; 12]);
        assert_eq!(s.period_ns, Some(25_000_000));
    }

    #[test]
    fn magic_and_version() {
        let mut b = v2(2, 0, 3, 1, &[], &[], &[]);
        b.extend_from_slice(&[0; 3]);
        assert!(parse_layout(&b, b.len() as u64).is_ok());
        b[0] = b'F';
        assert!(parse_layout(&b, b.len() as u64).is_ok(), "FSEQ magic");
        b[0] = b'E';
        assert_eq!(
            parse_layout(&b, b.len() as u64),
            Err(FseqError::EffectSequence)
        );
        b[0] = b'X';
        assert_eq!(
            parse_layout(&b, b.len() as u64),
            Err(FseqError::BadMagic(*b"XSEQ"))
        );
        let mut b = v2(3, 0, 3, 1, &[], &[], &[]);
        b.extend_from_slice(&[0; 3]);
        assert_eq!(
            parse_layout(&b, b.len() as u64),
            Err(FseqError::UnsupportedVersion { major: 2, minor: 3 })
        );
        assert_eq!(
            parse_layout(&b[..5], 5),
            Err(FseqError::TooShort { len: 5 })
        );
    }

    #[test]
    fn block_index_skips_unused_slots_and_ends_at_the_data() {
        let index = [(0, 10), (0, 0), (10, 20), (0, 0), (0, 0)];
        let mut b = v2(2, 1, 3, 30, &index, &[], &[]);
        let data_offset = b.len() as u64;
        b.resize(b.len() + 30, 0);
        let l = parse_layout(&b, b.len() as u64).unwrap();
        assert_eq!(
            l.blocks,
            [
                Block {
                    first_frame: 0,
                    offset: data_offset,
                    len: 10
                },
                Block {
                    first_frame: 10,
                    offset: data_offset + 10,
                    len: 20
                }
            ]
        );
        assert_eq!((l.block_frames(0), l.block_frames(1)), (10, 20));
        // One byte short of the last block's end.
        let short = b.len() as u64 - 1;
        assert_eq!(
            parse_layout(&b, short),
            Err(FseqError::BlockPastEnd {
                block: 1,
                end: short + 1,
                file_len: short
            })
        );
    }

    #[test]
    fn a_12_bit_block_count_needs_v2_1() {
        let index: Vec<(u32, u32)> = (0..300).map(|i| (i, 1)).collect();
        let mut b = v2(1, 1, 3, 300, &index, &[], &[]);
        b.resize(b.len() + 300, 0);
        assert_eq!(parse_layout(&b, b.len() as u64).unwrap().blocks.len(), 300);
        // In v2.0 byte 20's top bits are not part of the count: 44 blocks
        // are read, the rest of the index is taken as variable headers.
        b[6] = 0;
        assert_eq!(parse_layout(&b, b.len() as u64).unwrap().blocks.len(), 44);
    }

    #[test]
    fn block_order_is_checked() {
        let check = |index: &[(u32, u32)]| {
            let mut b = v2(2, 1, 3, 30, index, &[], &[]);
            b.resize(b.len() + 100, 0);
            parse_layout(&b, b.len() as u64)
        };
        assert_eq!(
            check(&[(1, 5)]),
            Err(FseqError::FirstBlockNotAtZero { first: 1 })
        );
        assert_eq!(
            check(&[(0, 5), (10, 5), (10, 5)]),
            Err(FseqError::BlockOutOfOrder {
                block: 2,
                first: 10
            })
        );
        assert_eq!(
            check(&[(0, 5), (30, 5)]),
            Err(FseqError::BlockOutOfOrder {
                block: 1,
                first: 30
            })
        );
        assert_eq!(check(&[(0, 0), (0, 0)]), Err(FseqError::NoBlocks));
    }

    #[test]
    fn extended_data_caps_the_last_block() {
        // The last block's index length (50) runs over 20 bytes of ED data.
        let probe = v2(2, 1, 3, 20, &[(0, 10), (10, 50)], &[], &ed(0, 0));
        let data_offset = probe.len() as u64;
        let ed_at = data_offset + 40;
        let mut b = v2(2, 1, 3, 20, &[(0, 10), (10, 50)], &[], &ed(ed_at, 20));
        b.resize(b.len() + 60, 0);
        let l = parse_layout(&b, b.len() as u64).unwrap();
        assert_eq!(l.extended_at, Some(ed_at));
        assert_eq!(l.blocks[1].len, 30);
        // ED data past the end of the file.
        let mut b = v2(2, 1, 3, 20, &[(0, 10), (10, 50)], &[], &ed(ed_at, 21));
        b.resize(b.len() + 60, 0);
        assert_eq!(
            parse_layout(&b, b.len() as u64),
            Err(FseqError::BadExtendedData {
                offset: ed_at,
                len: 21,
                file_len: b.len() as u64
            })
        );
    }

    #[test]
    fn variable_headers_must_end_before_the_data() {
        let mut var = vec![40, 0, b's', b'p'];
        var.extend_from_slice(b"x\0\0\0");
        let mut b = v2(2, 0, 3, 1, &[], &[], &var);
        b.extend_from_slice(&[0; 3]);
        assert_eq!(
            parse_layout(&b, b.len() as u64),
            Err(FseqError::VarHeaderPastData {
                at: 32,
                len: 40,
                data_offset: 40
            })
        );
        // A well-formed one is skipped.
        let var = [8, 0, b's', b'p', b'x', 0, 0, 0];
        let mut b = v2(2, 0, 3, 1, &[], &[], &var);
        b.extend_from_slice(&[0; 3]);
        assert!(parse_layout(&b, b.len() as u64).is_ok());
    }

    #[test]
    fn sparse_ranges_map_show_channels_to_file_channels() {
        // The file stores show channels 100..106, then 20..29.
        let ranges = [(100, 6), (20, 9)];
        let mut b = v2(2, 0, 15, 1, &[], &ranges, &[]);
        b.extend((0..15).map(|x| x as u8));
        let l = parse_layout(&b, b.len() as u64).unwrap();
        assert_eq!(l.plan(Some((21, 9))).unwrap(), (vec![(6, 0, 9)], 9));
        assert_eq!(l.plan(Some((103, 2))).unwrap(), (vec![(2, 0, 2)], 2));
        assert_eq!(
            l.plan(Some((28, 4))),
            Err(FseqError::ChannelNotStored {
                channel: 30,
                channels: 15,
                sparse: true
            })
        );
        let s = parse(
            &b,
            &Options {
                channels: Some((101, 6)),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(s.array.data, [0, 1, 2, 3, 4, 5]);
        // Adjacent show ranges stored in either order join up.
        let ranges = [(3, 3), (0, 3)];
        let mut b = v2(2, 0, 6, 1, &[], &ranges, &[]);
        b.extend([10, 11, 12, 0, 1, 2]);
        let s = parse(
            &b,
            &Options {
                channels: Some((2, 4)),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(s.array.data, [1, 2, 10, 11, 0, 0]);
        assert_eq!(s.padded_from, Some(4));
    }

    #[test]
    fn sparse_ranges_must_add_up_and_not_overlap() {
        for ranges in [&[(0, 3), (2, 3)][..], &[(0, 3), (10, 2)], &[(0, 0), (0, 6)]] {
            let mut b = v2(2, 0, 6, 1, &[], ranges, &[]);
            b.extend([0; 6]);
            assert!(
                matches!(
                    parse_layout(&b, b.len() as u64),
                    Err(FseqError::BadSparseRanges { .. })
                ),
                "{ranges:?}"
            );
        }
    }

    #[test]
    fn rows_beyond_the_limit_are_refused() {
        let mut b = v2(2, 1, MAX_FILE_CHANNELS, 1, &[(0, 4)], &[], &[]);
        b.extend([0; 4]);
        assert_eq!(
            parse(&b, &Options::default()),
            Err(FseqError::RowTooWide {
                bytes: MAX_FILE_CHANNELS as u64 + 2
            })
        );
        b[10..14].copy_from_slice(&(MAX_FILE_CHANNELS + 1).to_le_bytes());
        assert_eq!(
            parse(&b, &Options::default()),
            Err(FseqError::TooManyChannels(MAX_FILE_CHANNELS + 1))
        );
    }

    #[test]
    fn write_v2_reads_back() {
        let a = Array {
            rows: 3,
            leds: 2,
            channels: 4,
            data: (0..24).collect(),
        };
        let mut out = Vec::new();
        write_v2(&a, step_ms(Some(25_000_000)), &mut out).unwrap();
        assert_eq!(out.len(), 32 + 24);
        let s = parse(
            &out,
            &Options {
                rgbw: true,
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(s.array, a);
        assert_eq!(s.period_ns, Some(25_000_000));
        assert_eq!(step_ms(None), 20);
        assert_eq!(step_ms(Some(33_366_700)), 33);
        assert_eq!(step_ms(Some(1_000_000_000)), 255);
    }

    #[test]
    fn the_ed_fixture_needs_the_cap() {
        let b = std::fs::read(format!("{FIXTURES}v2_ed.fseq")).unwrap();
        let want = std::fs::read(format!("{FIXTURES}expected/v2_ed.u8")).unwrap();
        assert_eq!(parse(&b, &Options::default()).unwrap().array.data, want);
        // Without its ED header the last block runs into the extended data,
        // which is not zstd.
        let l = parse_layout(&b, b.len() as u64).unwrap();
        let at = b.windows(4).position(|w| w == [18, 0, b'E', b'D']).unwrap();
        let mut no_ed = b.clone();
        no_ed[at + 2..at + 4].copy_from_slice(b"zz");
        let l2 = parse_layout(&no_ed, no_ed.len() as u64).unwrap();
        assert!(l2.blocks[1].len > l.blocks[1].len);
        assert!(matches!(
            parse(&no_ed, &Options::default()),
            Err(FseqError::Decode { block: 1, .. })
        ));
    }

    #[test]
    fn the_output_limit_is_checked_before_reserving() {
        let b = std::fs::read(format!("{FIXTURES}v2_faststart.fseq")).unwrap();
        let opts = Options {
            max_bytes: Some(2399),
            ..Options::default()
        };
        assert_eq!(parse(&b, &opts), Err(FseqError::TooLarge { bytes: 2400 }));
    }
}
