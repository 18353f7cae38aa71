//! FPP MultiSync packets (UDP 32320): parse and encode, pure.
//!
//! Every packet starts with a 7-byte `ControlPkt`:
//!
//! | offset | field        | value                                        |
//! |--------|--------------|----------------------------------------------|
//! | 0..4   | magic        | `FPPD`                                       |
//! | 4      | pktType      | 1 SYNC, 3 BLANK, 4 PING (0, 2, 5, 6 ignored) |
//! | 5..7   | extraDataLen | u16 little-endian, bytes after the header    |
//!
//! SYNC (`extraDataLen = 11 + strlen(name)`, the NUL counted in the 11):
//!
//! | offset | field          | value                                 |
//! |--------|----------------|---------------------------------------|
//! | 7      | sync type      | 0 START, 1 STOP, 2 SYNC, 3 OPEN       |
//! | 8      | file type      | 0 sequence (.fseq), 1 media           |
//! | 9..13  | frameNumber    | u32 LE                                |
//! | 13..17 | secondsElapsed | f32 LE                                |
//! | 17..   | file name      | basename, NUL-terminated              |
//!
//! PING v3 (`extraDataLen = 294`, 301 bytes): 7 version, 8 subtype
//! (0 ping, 1 discover), 9 system type, 10..12 major and 12..14 minor
//! version (big-endian), 14 mode, 15..19 IPv4 address, then NUL-padded
//! strings: 19 hostname (65), 84 version (41), 125 model (41), 166 channel
//! ranges (121).
//!
//! Layouts from FPP's `src/MultiSync.h`. The parser reads only the
//! `extraDataLen` bytes the header declares and ignores trailing bytes (some
//! senders pad datagrams). It never panics and never allocates: the names
//! it returns borrow the datagram.

use std::fmt;
use std::net::Ipv4Addr;

/// The MultiSync UDP port.
pub const PORT: u16 = 32320;
/// FPP's default multicast group, "239.F.P.P".
pub const MULTICAST_GROUP: Ipv4Addr = Ipv4Addr::new(239, 70, 80, 80);
/// Every packet starts with this.
pub const MAGIC: [u8; 4] = *b"FPPD";
/// Bytes of the `ControlPkt` header.
pub const HEADER_LEN: usize = 7;
/// Bytes of a SYNC payload before the file name.
pub const SYNC_FIXED_LEN: usize = 10;
/// Longest file name accepted or sent (FPP keeps names in 256-byte buffers).
pub const MAX_NAME: usize = 255;
/// Largest SYNC datagram: header, fixed part, name, NUL.
pub const MAX_SYNC_LEN: usize = HEADER_LEN + SYNC_FIXED_LEN + MAX_NAME + 1;
/// Payload bytes of a v3 ping.
pub const PING_V3_EXTRA: usize = 294;
/// Bytes of a whole v3 ping.
pub const PING_V3_LEN: usize = HEADER_LEN + PING_V3_EXTRA;
/// Largest `secondsElapsed` accepted: about 115 days. Beyond that f32 has
/// less than one frame of precision at 50 Hz anyway.
pub const MAX_SECONDS: f32 = 1.0e7;

/// `pktType` values.
pub mod kind {
    /// Deprecated command packet.
    pub const CMD: u8 = 0;
    /// Sequence and media sync.
    pub const SYNC: u8 = 1;
    /// Deprecated event packet.
    pub const EVENT: u8 = 2;
    /// Blank the outputs.
    pub const BLANK: u8 = 3;
    /// Ping or discover.
    pub const PING: u8 = 4;
    /// Plugin packet.
    pub const PLUGIN: u8 = 5;
    /// FPP command packet.
    pub const FPPCOMMAND: u8 = 6;
}

/// System type "other" (`kSysTypeOtherSystem`): what rowplay pings as.
pub const SYSTEM_TYPE_OTHER: u8 = 0xC0;
/// Ping mode bit: plays its own sequences.
pub const MODE_PLAYER: u8 = 0x02;
/// Ping mode bit: sends MultiSync.
pub const MODE_MULTISYNC: u8 = 0x04;
/// Ping mode: follows a master.
pub const MODE_REMOTE: u8 = 0x08;

// Ping v3 field offsets and sizes, from the start of the packet.
const PING_HOSTNAME: (usize, usize) = (19, 65);
const PING_VERSION: (usize, usize) = (84, 41);
const PING_MODEL: (usize, usize) = (125, 41);
const PING_RANGES: (usize, usize) = (166, 121);

/// The sync type of a SYNC packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncType {
    /// Start at frame 0.
    Start,
    /// Stop.
    Stop,
    /// Where the master is now.
    Sync,
    /// Load (prefetch) the file.
    Open,
}

impl SyncType {
    fn from_u8(v: u8) -> Option<SyncType> {
        Some(match v {
            0 => SyncType::Start,
            1 => SyncType::Stop,
            2 => SyncType::Sync,
            3 => SyncType::Open,
            _ => return None,
        })
    }
    fn to_u8(self) -> u8 {
        match self {
            SyncType::Start => 0,
            SyncType::Stop => 1,
            SyncType::Sync => 2,
            SyncType::Open => 3,
        }
    }
}

/// What a SYNC packet is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A `.fseq` sequence: what rowplay follows.
    Sequence,
    /// A media file (audio/video): ignored by rowplay.
    Media,
}

/// A parsed SYNC packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sync<'a> {
    /// START, STOP, SYNC or OPEN.
    pub sync_type: SyncType,
    /// Sequence or media.
    pub file_type: FileType,
    /// Frames shown on the master.
    pub frame: u32,
    /// Seconds elapsed on the master (finite, 0 ..= [`MAX_SECONDS`]).
    pub seconds: f32,
    /// The file name, without its NUL.
    pub file: &'a str,
}

/// The v3 body of a ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PingInfo<'a> {
    /// System type (0xC0 "other" for rowplay).
    pub system_type: u8,
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
    /// Mode bits ([`MODE_PLAYER`], [`MODE_REMOTE`], [`MODE_MULTISYNC`]).
    pub mode: u8,
    /// The sender's IPv4 address as it states it.
    pub addr: Ipv4Addr,
    /// Host name.
    pub hostname: &'a str,
    /// Version string.
    pub version: &'a str,
    /// Model or type string.
    pub model: &'a str,
    /// Channel ranges (e.g. `1-900`).
    pub ranges: &'a str,
}

/// A parsed ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping<'a> {
    /// Ping version (3 today).
    pub version: u8,
    /// A discover asks everyone to ping back.
    pub discover: bool,
    /// The v3 body, when the packet carries one.
    pub info: Option<PingInfo<'a>>,
}

/// A parsed MultiSync packet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Packet<'a> {
    /// Sequence or media sync.
    Sync(Sync<'a>),
    /// Blank the outputs.
    Blank,
    /// Ping or discover.
    Ping(Ping<'a>),
    /// A valid header of a type rowplay does not act on (CMD, EVENT,
    /// PLUGIN, FPPCOMMAND).
    Ignored(u8),
}

/// Why bytes are not a MultiSync packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 7-byte header.
    TooShort(usize),
    /// The first four bytes are not `FPPD`.
    BadMagic([u8; 4]),
    /// `pktType` is not one FPP defines.
    UnknownType(u8),
    /// The header declares more bytes than the datagram has.
    Truncated {
        /// extraDataLen.
        declared: usize,
        /// Bytes after the header.
        available: usize,
    },
    /// A SYNC payload shorter than its fixed part plus the NUL.
    SyncTooShort(usize),
    /// The sync type byte.
    BadSyncType(u8),
    /// The file type byte.
    BadFileType(u8),
    /// secondsElapsed is NaN, infinite, negative or above MAX_SECONDS (raw bits).
    BadSeconds(u32),
    /// No NUL ends the file name within the payload.
    NameNotTerminated,
    /// The file name is longer than MAX_NAME.
    NameTooLong(usize),
    /// The file name is empty.
    NameEmpty,
    /// The file name is not UTF-8.
    NameNotUtf8,
    /// A ping payload shorter than its version and subtype.
    PingTooShort(usize),
    /// The ping subtype is neither 0 (ping) nor 1 (discover).
    BadPingSubtype(u8),
    /// A ping string field is not UTF-8 (the field's offset).
    PingStringNotUtf8(usize),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort(n) => write!(f, "{n} bytes: shorter than the 7-byte header"),
            ParseError::BadMagic(m) => write!(f, "magic {m:02x?} is not \"FPPD\""),
            ParseError::UnknownType(t) => write!(f, "unknown packet type {t}"),
            ParseError::Truncated {
                declared,
                available,
            } => write!(f, "header declares {declared} bytes, {available} follow"),
            ParseError::SyncTooShort(n) => write!(f, "SYNC payload of {n} bytes, need 11"),
            ParseError::BadSyncType(t) => write!(f, "unknown sync type {t}"),
            ParseError::BadFileType(t) => write!(f, "unknown file type {t}"),
            ParseError::BadSeconds(b) => write!(
                f,
                "secondsElapsed {} is not in 0..={MAX_SECONDS}",
                f32::from_bits(*b)
            ),
            ParseError::NameNotTerminated => write!(f, "file name has no NUL"),
            ParseError::NameTooLong(n) => write!(f, "file name of {n} bytes, at most {MAX_NAME}"),
            ParseError::NameEmpty => write!(f, "empty file name"),
            ParseError::NameNotUtf8 => write!(f, "file name is not UTF-8"),
            ParseError::PingTooShort(n) => write!(f, "ping payload of {n} bytes, need 2"),
            ParseError::BadPingSubtype(t) => write!(f, "unknown ping subtype {t}"),
            ParseError::PingStringNotUtf8(o) => write!(f, "ping string at byte {o} is not UTF-8"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parse one datagram. Pure; never panics; never allocates.
pub fn parse(buf: &[u8]) -> Result<Packet<'_>, ParseError> {
    if buf.len() < HEADER_LEN {
        return Err(ParseError::TooShort(buf.len()));
    }
    let magic = [buf[0], buf[1], buf[2], buf[3]];
    if magic != MAGIC {
        return Err(ParseError::BadMagic(magic));
    }
    let ty = buf[4];
    let declared = u16::from_le_bytes([buf[5], buf[6]]) as usize;
    let rest = &buf[HEADER_LEN..];
    if declared > rest.len() {
        return Err(ParseError::Truncated {
            declared,
            available: rest.len(),
        });
    }
    let body = &rest[..declared];
    match ty {
        kind::SYNC => parse_sync(body).map(Packet::Sync),
        kind::BLANK => Ok(Packet::Blank),
        kind::PING => parse_ping(body).map(Packet::Ping),
        kind::CMD | kind::EVENT | kind::PLUGIN | kind::FPPCOMMAND => Ok(Packet::Ignored(ty)),
        t => Err(ParseError::UnknownType(t)),
    }
}

fn parse_sync(body: &[u8]) -> Result<Sync<'_>, ParseError> {
    if body.len() < SYNC_FIXED_LEN + 1 {
        return Err(ParseError::SyncTooShort(body.len()));
    }
    let sync_type = SyncType::from_u8(body[0]).ok_or(ParseError::BadSyncType(body[0]))?;
    let file_type = match body[1] {
        0 => FileType::Sequence,
        1 => FileType::Media,
        t => return Err(ParseError::BadFileType(t)),
    };
    let frame = u32::from_le_bytes([body[2], body[3], body[4], body[5]]);
    let bits = u32::from_le_bytes([body[6], body[7], body[8], body[9]]);
    let seconds = f32::from_bits(bits);
    // NaN is in no range, so this also refuses NaN.
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(ParseError::BadSeconds(bits));
    }
    let name = &body[SYNC_FIXED_LEN..];
    let end = name
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::NameNotTerminated)?;
    if end > MAX_NAME {
        return Err(ParseError::NameTooLong(end));
    }
    if end == 0 {
        return Err(ParseError::NameEmpty);
    }
    let file = std::str::from_utf8(&name[..end]).map_err(|_| ParseError::NameNotUtf8)?;
    Ok(Sync {
        sync_type,
        file_type,
        frame,
        seconds,
        file,
    })
}

/// A NUL-padded string field at packet offset `at` of `len` bytes.
fn ping_str(body: &[u8], (at, len): (usize, usize)) -> Result<&str, ParseError> {
    let start = at - HEADER_LEN;
    let field = &body[start..start + len];
    let end = field.iter().position(|&b| b == 0).unwrap_or(len);
    std::str::from_utf8(&field[..end]).map_err(|_| ParseError::PingStringNotUtf8(at))
}

fn parse_ping(body: &[u8]) -> Result<Ping<'_>, ParseError> {
    if body.len() < 2 {
        return Err(ParseError::PingTooShort(body.len()));
    }
    let version = body[0];
    let discover = match body[1] {
        0 => false,
        1 => true,
        t => return Err(ParseError::BadPingSubtype(t)),
    };
    // Older pings (v1, v2) and short ones keep only the discover flag,
    // which is all a follower needs to answer.
    let info = if version >= 3 && body.len() >= PING_V3_EXTRA {
        Some(PingInfo {
            system_type: body[2],
            major: u16::from_be_bytes([body[3], body[4]]),
            minor: u16::from_be_bytes([body[5], body[6]]),
            mode: body[7],
            addr: Ipv4Addr::new(body[8], body[9], body[10], body[11]),
            hostname: ping_str(body, PING_HOSTNAME)?,
            version: ping_str(body, PING_VERSION)?,
            model: ping_str(body, PING_MODEL)?,
            ranges: ping_str(body, PING_RANGES)?,
        })
    } else {
        None
    };
    Ok(Ping {
        version,
        discover,
        info,
    })
}

/// Why a packet could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The output buffer is smaller than the packet (bytes needed).
    BufferTooSmall(usize),
    /// The file name is empty.
    NameEmpty,
    /// The file name is longer than MAX_NAME.
    NameTooLong(usize),
    /// The file name contains a NUL byte.
    NameHasNul,
    /// secondsElapsed is not in 0..=MAX_SECONDS (raw bits).
    BadSeconds(u32),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BufferTooSmall(n) => write!(f, "buffer too small, need {n} bytes"),
            EncodeError::NameEmpty => write!(f, "empty file name"),
            EncodeError::NameTooLong(n) => write!(f, "file name of {n} bytes, at most {MAX_NAME}"),
            EncodeError::NameHasNul => write!(f, "file name contains a NUL byte"),
            EncodeError::BadSeconds(b) => write!(
                f,
                "seconds {} is not in 0..={MAX_SECONDS}",
                f32::from_bits(*b)
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

fn header(out: &mut [u8], ty: u8, extra: usize) {
    out[..4].copy_from_slice(&MAGIC);
    out[4] = ty;
    out[5..7].copy_from_slice(&(extra as u16).to_le_bytes());
}

/// Encode a SYNC packet whose name is `stem` followed by `suffix` (the
/// leader sends `NAME` + `.fseq` without building a string). Returns the
/// datagram length.
pub fn encode_sync(
    out: &mut [u8],
    sync_type: SyncType,
    file_type: FileType,
    frame: u32,
    seconds: f32,
    stem: &str,
    suffix: &str,
) -> Result<usize, EncodeError> {
    let name_len = stem.len() + suffix.len();
    if name_len == 0 {
        return Err(EncodeError::NameEmpty);
    }
    if name_len > MAX_NAME {
        return Err(EncodeError::NameTooLong(name_len));
    }
    if stem.bytes().chain(suffix.bytes()).any(|b| b == 0) {
        return Err(EncodeError::NameHasNul);
    }
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(EncodeError::BadSeconds(seconds.to_bits()));
    }
    let extra = SYNC_FIXED_LEN + name_len + 1;
    let total = HEADER_LEN + extra;
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall(total));
    }
    header(out, kind::SYNC, extra);
    out[7] = sync_type.to_u8();
    out[8] = match file_type {
        FileType::Sequence => 0,
        FileType::Media => 1,
    };
    out[9..13].copy_from_slice(&frame.to_le_bytes());
    out[13..17].copy_from_slice(&seconds.to_le_bytes());
    let n = 17 + stem.len();
    out[17..n].copy_from_slice(stem.as_bytes());
    out[n..n + suffix.len()].copy_from_slice(suffix.as_bytes());
    out[total - 1] = 0;
    Ok(total)
}

/// Encode a BLANK packet (7 bytes). Returns the datagram length.
pub fn encode_blank(out: &mut [u8]) -> Result<usize, EncodeError> {
    if out.len() < HEADER_LEN {
        return Err(EncodeError::BufferTooSmall(HEADER_LEN));
    }
    header(out, kind::BLANK, 0);
    Ok(HEADER_LEN)
}

/// Copy `s` into a NUL-padded field, cut to leave room for one NUL.
fn put_str(out: &mut [u8], (at, len): (usize, usize), s: &str) {
    let field = &mut out[at..at + len];
    field.fill(0);
    let mut n = s.len().min(len - 1);
    // Cut on a character boundary so the field stays UTF-8.
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
}

/// Encode a v3 ping (always [`PING_V3_LEN`] bytes). Strings longer than
/// their field are cut.
pub fn encode_ping(out: &mut [u8; PING_V3_LEN], discover: bool, info: &PingInfo<'_>) {
    out.fill(0);
    header(out, kind::PING, PING_V3_EXTRA);
    out[7] = 3;
    out[8] = discover as u8;
    out[9] = info.system_type;
    out[10..12].copy_from_slice(&info.major.to_be_bytes());
    out[12..14].copy_from_slice(&info.minor.to_be_bytes());
    out[14] = info.mode;
    out[15..19].copy_from_slice(&info.addr.octets());
    put_str(out, PING_HOSTNAME, info.hostname);
    put_str(out, PING_VERSION, info.version);
    put_str(out, PING_MODEL, info.model);
    put_str(out, PING_RANGES, info.ranges);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYNC datagram written byte by byte from the layout table.
    fn sync_fixture(st: u8, ft: u8, frame: u32, secs: f32, name: &[u8]) -> Vec<u8> {
        let extra = 11 + name.len();
        let mut v = vec![b'F', b'P', b'P', b'D', 1, extra as u8, (extra >> 8) as u8];
        v.push(st);
        v.push(ft);
        v.extend_from_slice(&frame.to_le_bytes());
        v.extend_from_slice(&secs.to_le_bytes());
        v.extend_from_slice(name);
        v.push(0);
        v
    }

    #[test]
    fn sync_fixture_of_every_type() {
        for (b, t) in [
            (0, SyncType::Start),
            (1, SyncType::Stop),
            (2, SyncType::Sync),
            (3, SyncType::Open),
        ] {
            let v = sync_fixture(b, 0, 1234, 24.68, b"Song.fseq");
            assert_eq!(v.len(), 7 + 11 + 9);
            let Ok(Packet::Sync(s)) = parse(&v) else {
                panic!("{:?}", parse(&v))
            };
            assert_eq!(s.sync_type, t);
            assert_eq!(s.file_type, FileType::Sequence);
            assert_eq!(s.frame, 1234);
            assert_eq!(s.seconds, 24.68);
            assert_eq!(s.file, "Song.fseq");
        }
    }

    #[test]
    fn sync_hand_written_bytes() {
        // SYNC, media, frame 0x01020304, 1.5 s (0x3fc00000), "a.mp3"
        let v = [
            0x46, 0x50, 0x50, 0x44, 0x01, 0x10, 0x00, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01, 0x00,
            0x00, 0xc0, 0x3f, b'a', b'.', b'm', b'p', b'3', 0x00,
        ];
        let Ok(Packet::Sync(s)) = parse(&v) else {
            panic!()
        };
        assert_eq!(s.sync_type, SyncType::Sync);
        assert_eq!(s.file_type, FileType::Media);
        assert_eq!(s.frame, 0x0102_0304);
        assert_eq!(s.seconds, 1.5);
        assert_eq!(s.file, "a.mp3");
    }

    #[test]
    fn encoder_matches_the_table() {
        let mut out = [0u8; MAX_SYNC_LEN];
        let n = encode_sync(
            &mut out,
            SyncType::Sync,
            FileType::Sequence,
            1234,
            24.68,
            "Song",
            ".fseq",
        )
        .unwrap();
        assert_eq!(
            &out[..n],
            &sync_fixture(2, 0, 1234, 24.68, b"Song.fseq")[..]
        );
    }

    #[test]
    fn blank_and_ignored_types() {
        assert_eq!(parse(b"FPPD\x03\x00\x00"), Ok(Packet::Blank));
        let mut out = [0u8; 7];
        assert_eq!(encode_blank(&mut out), Ok(7));
        assert_eq!(&out, b"FPPD\x03\x00\x00");
        for t in [0u8, 2, 5, 6] {
            assert_eq!(
                parse(&[b'F', b'P', b'P', b'D', t, 0, 0]),
                Ok(Packet::Ignored(t))
            );
        }
        assert_eq!(parse(b"FPPD\x07\x00\x00"), Err(ParseError::UnknownType(7)));
    }

    #[test]
    fn each_bad_sync_gives_its_error() {
        assert_eq!(parse(b"FPP"), Err(ParseError::TooShort(3)));
        assert_eq!(
            parse(b"FPPX\x01\x00\x00"),
            Err(ParseError::BadMagic(*b"FPPX"))
        );
        let good = sync_fixture(2, 0, 1, 0.5, b"x.fseq");
        assert_eq!(
            parse(&good[..good.len() - 1]),
            Err(ParseError::Truncated {
                declared: 17,
                available: 16
            })
        );
        let mut v = good.clone();
        v[7] = 4;
        assert_eq!(parse(&v), Err(ParseError::BadSyncType(4)));
        let mut v = good.clone();
        v[8] = 2;
        assert_eq!(parse(&v), Err(ParseError::BadFileType(2)));
        for bad in [f32::NAN, f32::INFINITY, -1.0, 2.0e7] {
            let v = sync_fixture(2, 0, 1, bad, b"x");
            assert_eq!(parse(&v), Err(ParseError::BadSeconds(bad.to_bits())));
        }
        let mut v = good.clone();
        let last = v.len() - 1;
        v[last] = b'q';
        assert_eq!(parse(&v), Err(ParseError::NameNotTerminated));
        assert_eq!(
            parse(&sync_fixture(2, 0, 1, 0.5, b"")),
            Err(ParseError::NameEmpty)
        );
        assert_eq!(
            parse(&sync_fixture(2, 0, 1, 0.5, b"\xff\xfe")),
            Err(ParseError::NameNotUtf8)
        );
        assert_eq!(
            parse(&sync_fixture(2, 0, 1, 0.5, &[b'a'; 256])),
            Err(ParseError::NameTooLong(256))
        );
        assert_eq!(
            parse(b"FPPD\x01\x03\x00\x02\x00\x00"),
            Err(ParseError::SyncTooShort(3))
        );
    }

    #[test]
    fn trailing_bytes_after_the_declared_length_are_ignored() {
        let mut v = sync_fixture(0, 0, 0, 0.0, b"A.fseq");
        v.extend_from_slice(&[0xAA; 9]);
        assert!(matches!(parse(&v), Ok(Packet::Sync(s)) if s.file == "A.fseq"));
    }

    /// A v3 ping laid out from the byte table, as FPP sends it.
    fn ping_fixture(subtype: u8) -> Vec<u8> {
        let mut v = vec![0u8; 301];
        v[..7].copy_from_slice(&[b'F', b'P', b'P', b'D', 4, 0x26, 0x01]); // 294 LE
        v[7] = 3;
        v[8] = subtype;
        v[9] = 0x0B; // Pi Zero W
        v[10..12].copy_from_slice(&[0, 8]); // 8.5, big-endian
        v[12..14].copy_from_slice(&[0, 5]);
        v[14] = 0x06; // player + multisync
        v[15..19].copy_from_slice(&[192, 168, 1, 20]);
        v[19..22].copy_from_slice(b"fpp");
        v[84..87].copy_from_slice(b"8.5");
        v[125..136].copy_from_slice(b"Pi Zero W 1");
        v[166..171].copy_from_slice(b"1-900");
        v
    }

    #[test]
    fn ping_fixture_parses() {
        let v = ping_fixture(1);
        let Ok(Packet::Ping(p)) = parse(&v) else {
            panic!("{:?}", parse(&v))
        };
        assert_eq!(p.version, 3);
        assert!(p.discover);
        let i = p.info.unwrap();
        assert_eq!(i.system_type, 0x0B);
        assert_eq!((i.major, i.minor), (8, 5));
        assert_eq!(i.mode, MODE_PLAYER | MODE_MULTISYNC);
        assert_eq!(i.addr, Ipv4Addr::new(192, 168, 1, 20));
        assert_eq!(
            (i.hostname, i.version, i.model, i.ranges),
            ("fpp", "8.5", "Pi Zero W 1", "1-900")
        );
        let v0 = ping_fixture(0);
        let Ok(Packet::Ping(p)) = parse(&v0) else {
            panic!()
        };
        assert!(!p.discover);
        let mut v = ping_fixture(0);
        v[8] = 2;
        assert_eq!(parse(&v), Err(ParseError::BadPingSubtype(2)));
        let mut v = ping_fixture(0);
        v[19] = 0xff;
        assert_eq!(parse(&v), Err(ParseError::PingStringNotUtf8(19)));
        // a short (old) discover still gives the flag
        assert_eq!(
            parse(b"FPPD\x04\x02\x00\x02\x01"),
            Ok(Packet::Ping(Ping {
                version: 2,
                discover: true,
                info: None
            }))
        );
        assert_eq!(
            parse(b"FPPD\x04\x01\x00\x03"),
            Err(ParseError::PingTooShort(1))
        );
    }

    #[test]
    fn our_ping_has_the_table_layout() {
        let mut out = [0u8; PING_V3_LEN];
        let long = "h".repeat(100);
        encode_ping(
            &mut out,
            false,
            &PingInfo {
                system_type: SYSTEM_TYPE_OTHER,
                major: 0,
                minor: 1,
                mode: MODE_REMOTE,
                addr: Ipv4Addr::new(10, 0, 0, 2),
                hostname: &long,
                version: "0.1.0",
                model: "rowplay",
                ranges: "",
            },
        );
        assert_eq!(&out[..9], &[b'F', b'P', b'P', b'D', 4, 0x26, 0x01, 3, 0]);
        assert_eq!(out[9], 0xC0);
        assert_eq!(&out[10..15], &[0, 0, 0, 1, 0x08]);
        assert_eq!(&out[15..19], &[10, 0, 0, 2]);
        assert_eq!(&out[19..19 + 64], &long.as_bytes()[..64]);
        assert_eq!(out[19 + 64], 0, "hostname keeps its NUL");
        assert_eq!(&out[84..90], b"0.1.0\0");
        assert_eq!(&out[125..133], b"rowplay\0");
        let Ok(Packet::Ping(p)) = parse(&out) else {
            panic!()
        };
        assert_eq!(p.info.unwrap().hostname.len(), 64);
    }

    #[test]
    fn encode_errors() {
        let mut out = [0u8; 20];
        let s = |o: &mut [u8], stem: &str, secs: f32| {
            encode_sync(o, SyncType::Sync, FileType::Sequence, 0, secs, stem, "")
        };
        assert_eq!(s(&mut out, "", 0.0), Err(EncodeError::NameEmpty));
        assert_eq!(s(&mut out, "a\0", 0.0), Err(EncodeError::NameHasNul));
        assert_eq!(
            s(&mut out, "abcdefghij", 0.0),
            Err(EncodeError::BufferTooSmall(28))
        );
        assert_eq!(
            s(&mut out, "a", -1.0),
            Err(EncodeError::BadSeconds((-1.0f32).to_bits()))
        );
        let mut big = [0u8; 600];
        assert_eq!(
            s(&mut big, &"a".repeat(256), 0.0),
            Err(EncodeError::NameTooLong(256))
        );
        assert_eq!(
            encode_blank(&mut out[..6]),
            Err(EncodeError::BufferTooSmall(7))
        );
    }
}
