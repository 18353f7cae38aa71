//! DDP (Distributed Display Protocol, 3waylabs), UDP port 4048.
//!
//! | byte  | field                                                        |
//! |-------|--------------------------------------------------------------|
//! | 0     | flags `V V x T S R Q P`: VV = 01 (v1), T 0x10 timecode, S 0x08 storage, R 0x04 reply, Q 0x02 query, P 0x01 push |
//! | 1     | low nibble: sequence 1..15 (0 = unused); not relied upon      |
//! | 2     | data type `C R TTT SSS` (not validated: 0x00, 0x0B, 0x1B, 0x8B, 0x80 are all seen) |
//! | 3     | ID: 1 default output device, 255 all devices, others ignored for data |
//! | 4..8  | data offset in bytes, u32 BE                                 |
//! | 8..10 | data length in bytes, u16 BE                                 |
//! | 10..14| timecode, only when T is set                                 |
//! | 10/14 | data                                                         |
//!
//! A push packet may carry no data at all: xLights' separate push is
//! `41 00 80 01 00 00 00 00 00 00`.

use std::fmt;

/// Header length without timecode.
pub const HEADER_LEN: usize = 10;
/// Largest data a packet may carry that we accept: 1500-byte MTU minus the
/// headers is below this; jumbo frames are refused.
pub const MAX_DATA: usize = 1500;

/// Version bits of byte 0 (`VV`).
pub const FLAG_VERSION_MASK: u8 = 0xC0;
/// Version 1.
pub const FLAG_VERSION_1: u8 = 0x40;
/// A 4-byte timecode follows the header.
pub const FLAG_TIMECODE: u8 = 0x10;
/// Data comes from storage.
pub const FLAG_STORAGE: u8 = 0x08;
/// This is a reply.
pub const FLAG_REPLY: u8 = 0x04;
/// This is a query.
pub const FLAG_QUERY: u8 = 0x02;
/// Display now.
pub const FLAG_PUSH: u8 = 0x01;

/// ID of the default output device.
pub const ID_DEFAULT: u8 = 1;
/// ID addressing all devices.
pub const ID_ALL: u8 = 255;

/// A parsed DDP packet, borrowing its data from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Byte 0.
    pub flags: u8,
    /// Sequence nibble (0 = unused).
    pub sequence: u8,
    /// Data-type byte, as sent.
    pub data_type: u8,
    /// Destination ID.
    pub id: u8,
    /// Data offset in bytes.
    pub offset: u32,
    /// Timecode, when the T flag is set.
    pub timecode: Option<u32>,
    /// The data (`length` bytes; empty for a push-only or query packet).
    pub data: &'a [u8],
}

impl Packet<'_> {
    /// The push flag is set.
    pub fn push(&self) -> bool {
        self.flags & FLAG_PUSH != 0
    }
    /// The query flag is set.
    pub fn query(&self) -> bool {
        self.flags & FLAG_QUERY != 0
    }
    /// The reply flag is set.
    pub fn reply(&self) -> bool {
        self.flags & FLAG_REPLY != 0
    }
    /// The storage flag is set.
    pub fn storage(&self) -> bool {
        self.flags & FLAG_STORAGE != 0
    }
    /// Whether this packet's data is for a display (ID 1 or 255, not a
    /// query or reply, and storage only together with push, as WLED does).
    pub fn is_display_data(&self) -> bool {
        (self.id == ID_DEFAULT || self.id == ID_ALL)
            && !self.query()
            && !self.reply()
            && (!self.storage() || self.push())
    }
}

/// Why a DDP datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the header (and timecode, when flagged).
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header needs.
        need: usize,
    },
    /// Version bits are not 01.
    Version(u8),
    /// The length field says more data than the datagram holds.
    LengthPastEnd {
        /// Length field.
        length: u16,
        /// Data bytes present.
        available: usize,
    },
    /// More data than [`MAX_DATA`].
    TooLong(u16),
    /// offset + length overflows u32.
    OffsetOverflow {
        /// Offset field.
        offset: u32,
        /// Length field.
        length: u16,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { len, need } => {
                write!(
                    f,
                    "DDP packet of {len} bytes is shorter than its {need}-byte header"
                )
            }
            Error::Version(b) => write!(f, "DDP flags byte {b:#04x} is not version 1"),
            Error::LengthPastEnd { length, available } => write!(
                f,
                "DDP length {length} is past the {available} data bytes received"
            ),
            Error::TooLong(l) => write!(f, "DDP length {l} is over the {MAX_DATA}-byte limit"),
            Error::OffsetOverflow { offset, length } => {
                write!(f, "DDP offset {offset} plus length {length} overflows")
            }
        }
    }
}

impl std::error::Error for Error {}

/// Parse one DDP datagram. Never panics, never allocates.
pub fn parse(b: &[u8]) -> Result<Packet<'_>, Error> {
    if b.len() < HEADER_LEN {
        return Err(Error::Truncated {
            len: b.len(),
            need: HEADER_LEN,
        });
    }
    let flags = b[0];
    if flags & FLAG_VERSION_MASK != FLAG_VERSION_1 {
        return Err(Error::Version(flags));
    }
    let offset = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
    let length = u16::from_be_bytes([b[8], b[9]]);
    let (timecode, start) = if flags & FLAG_TIMECODE != 0 {
        let need = HEADER_LEN + 4;
        if b.len() < need {
            return Err(Error::Truncated { len: b.len(), need });
        }
        (Some(u32::from_be_bytes([b[10], b[11], b[12], b[13]])), need)
    } else {
        (None, HEADER_LEN)
    };
    // A query carries no data; its length is the number of bytes to read.
    let data_len = if flags & FLAG_QUERY != 0 {
        0
    } else {
        length as usize
    };
    if data_len > MAX_DATA {
        return Err(Error::TooLong(length));
    }
    let available = b.len() - start;
    if data_len > available {
        return Err(Error::LengthPastEnd { length, available });
    }
    if offset.checked_add(data_len as u32).is_none() {
        return Err(Error::OffsetOverflow { offset, length });
    }
    Ok(Packet {
        flags,
        sequence: b[1] & 0x0F,
        data_type: b[2],
        id: b[3],
        offset,
        timecode,
        data: &b[start..start + data_len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header written out byte by byte from the table in the research notes.
    fn header(flags: u8, seq: u8, ty: u8, id: u8, off: u32, len: u16) -> Vec<u8> {
        let o = off.to_be_bytes();
        let l = len.to_be_bytes();
        vec![flags, seq, ty, id, o[0], o[1], o[2], o[3], l[0], l[1]]
    }

    #[test]
    fn ledfx_style_packet_with_push() {
        let mut p = header(0x41, 0x03, 0x0B, 0x01, 1440, 6);
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        let d = parse(&p).unwrap();
        assert!(d.push() && !d.query() && !d.reply() && !d.storage());
        assert_eq!(
            (d.sequence, d.data_type, d.id, d.offset),
            (3, 0x0B, 1, 1440)
        );
        assert_eq!(d.data, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(d.timecode, None);
        assert!(d.is_display_data());
    }

    #[test]
    fn xlights_separate_push_packet() {
        let p = [0x41, 0x00, 0x80, 0x01, 0, 0, 0, 0, 0, 0];
        let d = parse(&p).unwrap();
        assert!(d.push());
        assert!(d.data.is_empty());
        assert_eq!(d.data_type, 0x80);
    }

    #[test]
    fn data_type_not_validated() {
        for ty in [0x00, 0x0B, 0x1B, 0x8B, 0x80, 0xFF] {
            let mut p = header(0x40, 1, ty, 1, 0, 3);
            p.extend_from_slice(&[9, 9, 9]);
            assert_eq!(parse(&p).unwrap().data_type, ty);
        }
    }

    #[test]
    fn timecode_is_skipped() {
        let mut p = header(0x51, 0, 0x0B, 1, 0, 3);
        p.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF, 7, 8, 9]);
        let d = parse(&p).unwrap();
        assert_eq!(d.timecode, Some(0xDEADBEEF));
        assert_eq!(d.data, &[7, 8, 9]);
        let short = &p[..12];
        assert_eq!(parse(short), Err(Error::Truncated { len: 12, need: 14 }));
    }

    #[test]
    fn ids_other_than_1_and_255_are_not_display_data() {
        for (id, ok) in [
            (0, false),
            (1, true),
            (2, false),
            (246, false),
            (250, false),
            (251, false),
            (255, true),
        ] {
            let p = header(0x41, 0, 0, id, 0, 0);
            assert_eq!(parse(&p).unwrap().is_display_data(), ok, "id {id}");
        }
    }

    #[test]
    fn query_reply_and_storage_rules() {
        let qb = header(0x42, 0, 0, 251, 0, 100);
        let q = parse(&qb).unwrap();
        assert!(q.query() && q.data.is_empty() && !q.is_display_data());
        let display = |flags: u8| {
            parse(&header(flags, 0, 0, 1, 0, 0))
                .unwrap()
                .is_display_data()
        };
        assert!(!display(0x44), "reply");
        assert!(!display(0x48), "storage without push");
        assert!(display(0x49), "storage with push");
    }

    #[test]
    fn every_check_has_its_error() {
        assert_eq!(
            parse(&[0x41; 9]),
            Err(Error::Truncated { len: 9, need: 10 })
        );
        assert_eq!(
            parse(&header(0x81, 0, 0, 1, 0, 0)),
            Err(Error::Version(0x81))
        );
        assert_eq!(
            parse(&header(0x01, 0, 0, 1, 0, 0)),
            Err(Error::Version(0x01))
        );
        let mut p = header(0x41, 0, 0, 1, 0, 4);
        p.extend_from_slice(&[1, 2, 3]);
        assert_eq!(
            parse(&p),
            Err(Error::LengthPastEnd {
                length: 4,
                available: 3
            })
        );
        let mut big = header(0x41, 0, 0, 1, 0, 1501);
        big.resize(10 + 1501, 0);
        assert_eq!(parse(&big), Err(Error::TooLong(1501)));
        let mut of = header(0x41, 0, 0, 1, u32::MAX - 1, 3);
        of.extend_from_slice(&[0, 0, 0]);
        assert_eq!(
            parse(&of),
            Err(Error::OffsetOverflow {
                offset: u32::MAX - 1,
                length: 3
            })
        );
    }

    #[test]
    fn trailing_bytes_past_length_are_ignored() {
        let mut p = header(0x41, 0, 0, 1, 0, 2);
        p.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(parse(&p).unwrap().data, &[1, 2]);
    }
}
