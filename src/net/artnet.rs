//! Art-Net 4, UDP port 6454 (0x1936): ArtDmx, ArtSync, ArtPoll in, and
//! ArtPollReply out.
//!
//! ArtDmx:
//!
//! | offset | field |
//! |--------|-------|
//! | 0..8   | "Art-Net\0" |
//! | 8..10  | OpCode, little-endian: 0x5000 OpDmx, 0x5200 OpSync, 0x2000 OpPoll, 0x2100 OpPollReply |
//! | 10..12 | ProtVer, big-endian, 14 |
//! | 12     | sequence (0 = disabled, else 1..255) |
//! | 13     | physical input port (informational) |
//! | 14     | SubUni: low 8 bits of the 15-bit Port-Address |
//! | 15     | Net: bits 14..8 of the Port-Address (masked with 0x7F) |
//! | 16..18 | length, big-endian, 1..512 (spec: even, 2..512) |
//! | 18..   | slot data (no START code) |
//!
//! ArtSync is 14 bytes: ID, OpCode 0x5200, ProtVer, Aux1, Aux2. ArtPoll is
//! at least 12 bytes (ID, OpCode 0x2000, ProtVer; newer senders add flags).

use std::fmt;
use std::net::Ipv4Addr;

/// Packet identifier.
pub const ID: [u8; 8] = *b"Art-Net\0";
/// OpDmx.
pub const OP_DMX: u16 = 0x5000;
/// OpSync.
pub const OP_SYNC: u16 = 0x5200;
/// OpPoll.
pub const OP_POLL: u16 = 0x2000;
/// OpPollReply.
pub const OP_POLL_REPLY: u16 = 0x2100;
/// The protocol version we speak; older ones are refused.
pub const PROT_VER: u16 = 14;
/// Art-Net's UDP port.
pub const PORT: u16 = 0x1936;
/// Header bytes of ArtDmx.
pub const DMX_HEADER: usize = 18;
/// Slots an ArtDmx may carry.
pub const MAX_SLOTS: usize = 512;
/// Bytes of the ArtPollReply we send (Art-Net 4 layout).
pub const POLL_REPLY_LEN: usize = 239;
/// Universes one ArtPollReply can list.
pub const PORTS_PER_REPLY: usize = 4;

/// An ArtDmx packet, borrowing its slots from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dmx<'a> {
    /// Sequence (0 = disabled).
    pub sequence: u8,
    /// Physical input port.
    pub physical: u8,
    /// 15-bit Port-Address (Net:SubNet:Universe).
    pub port_address: u16,
    /// Slot data (`length` bytes).
    pub slots: &'a [u8],
}

/// A valid Art-Net datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// DMX data for one Port-Address.
    Dmx(Dmx<'a>),
    /// Show the data received so far.
    Sync,
    /// A controller asks who is there.
    Poll,
    /// Another opcode (ArtPollReply from other nodes, ArtAddress, ...).
    Other(u16),
}

/// Why an Art-Net datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the opcode's header.
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// Not "Art-Net\0".
    Id,
    /// ProtVer below 14.
    ProtVer(u16),
    /// ArtDmx length 0 or above 512.
    Length(u16),
    /// ArtDmx length past the datagram's end.
    LengthPastEnd {
        /// Length field.
        length: u16,
        /// Data bytes present.
        available: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated { len, need } => {
                write!(f, "Art-Net packet of {len} bytes is shorter than {need}")
            }
            Error::Id => write!(f, "Art-Net packet does not start with Art-Net\\0"),
            Error::ProtVer(v) => write!(f, "Art-Net protocol version {v} is below {PROT_VER}"),
            Error::Length(l) => write!(f, "ArtDmx length {l} is outside 1..={MAX_SLOTS}"),
            Error::LengthPastEnd { length, available } => write!(
                f,
                "ArtDmx length {length} is past the {available} data bytes received"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Parse one Art-Net datagram. Never panics, never allocates.
pub fn parse(b: &[u8]) -> Result<Packet<'_>, Error> {
    if b.len() < 10 {
        return Err(Error::Truncated {
            len: b.len(),
            need: 10,
        });
    }
    if b[..8] != ID {
        return Err(Error::Id);
    }
    let op = u16::from_le_bytes([b[8], b[9]]);
    let need = match op {
        OP_DMX => DMX_HEADER,
        OP_SYNC => 14,
        OP_POLL => 12,
        _ => return Ok(Packet::Other(op)),
    };
    if b.len() < need {
        return Err(Error::Truncated { len: b.len(), need });
    }
    let ver = u16::from_be_bytes([b[10], b[11]]);
    if ver < PROT_VER {
        return Err(Error::ProtVer(ver));
    }
    match op {
        OP_SYNC => Ok(Packet::Sync),
        OP_POLL => Ok(Packet::Poll),
        _ => {
            let length = u16::from_be_bytes([b[16], b[17]]);
            // Odd lengths break the spec but are common (3 channels).
            if length == 0 || length as usize > MAX_SLOTS {
                return Err(Error::Length(length));
            }
            let available = b.len() - DMX_HEADER;
            if length as usize > available {
                return Err(Error::LengthPastEnd { length, available });
            }
            Ok(Packet::Dmx(Dmx {
                sequence: b[12],
                physical: b[13],
                port_address: (((b[15] & 0x7F) as u16) << 8) | b[14] as u16,
                slots: &b[DMX_HEADER..DMX_HEADER + length as usize],
            }))
        }
    }
}

/// What an ArtPollReply says about this node.
#[derive(Clone, Copy, Debug)]
pub struct NodeInfo<'a> {
    /// The node's IPv4 address (the one the poll reached).
    pub ip: Ipv4Addr,
    /// Short name (at most 17 bytes are sent).
    pub short_name: &'a str,
    /// Long name (at most 63 bytes are sent).
    pub long_name: &'a str,
}

/// Write an ArtPollReply listing up to four output universes into `out`:
/// the Port-Addresses `first .. first + count`, which must share their top
/// 11 bits (Net and Sub-Net). `bind_index` numbers the replies of a node
/// with more ports (1, 2, ...). Returns the bytes written.
///
/// Layout (Art-Net 4): 0 ID, 8 OpCode, 10 IP, 14 port LE, 16 VersInfo,
/// 18 NetSwitch, 19 SubSwitch, 20 Oem, 22 Ubea, 23 Status1, 24 EstaMan,
/// 26 ShortName[18], 44 LongName[64], 108 NodeReport[64], 172 NumPorts,
/// 174 PortTypes[4], 178 GoodInput[4], 182 GoodOutputA[4], 186 SwIn[4],
/// 190 SwOut[4], 194 AcnPriority, 195 SwMacro, 196 SwRemote, 197 spare[3],
/// 200 Style, 201 MAC[6], 207 BindIp[4], 211 BindIndex, 212 Status2,
/// 213 GoodOutputB[4], 217 Status3, 218 DefaultRespUID[6], 224 User,
/// 226 RefreshRate, 228 filler[11].
pub fn encode_poll_reply(
    out: &mut [u8; POLL_REPLY_LEN],
    node: &NodeInfo<'_>,
    first: u16,
    count: usize,
    bind_index: u8,
) -> usize {
    let count = count.min(PORTS_PER_REPLY);
    *out = [0; POLL_REPLY_LEN];
    out[..8].copy_from_slice(&ID);
    out[8..10].copy_from_slice(&OP_POLL_REPLY.to_le_bytes());
    out[10..14].copy_from_slice(&node.ip.octets());
    out[14..16].copy_from_slice(&PORT.to_le_bytes());
    out[18] = ((first >> 8) & 0x7F) as u8;
    out[19] = ((first >> 4) & 0x0F) as u8;
    // Status1: indicators normal, port-address set by front panel (local).
    out[23] = 0xD0;
    copy_name(&mut out[26..44], node.short_name);
    copy_name(&mut out[44..108], node.long_name);
    copy_name(&mut out[108..172], "#0001 [0000] rowplay live input");
    out[172..174].copy_from_slice(&(count as u16).to_be_bytes());
    for i in 0..count {
        // Output from Art-Net, DMX512 protocol.
        out[174 + i] = 0x80;
        // GoodOutputA: data is being transmitted.
        out[182 + i] = 0x80;
        out[190 + i] = ((first as usize + i) & 0x0F) as u8;
    }
    // Style: StNode.
    out[200] = 0x00;
    out[207..211].copy_from_slice(&node.ip.octets());
    out[211] = bind_index;
    // Status2: supports 15-bit Port-Address (bit 3).
    out[212] = 0x08;
    POLL_REPLY_LEN
}

/// Copy `s` into a NUL-terminated fixed field, cut to fit.
fn copy_name(field: &mut [u8], s: &str) {
    let n = s.len().min(field.len() - 1);
    field[..n].copy_from_slice(&s.as_bytes()[..n]);
    field[n] = 0;
}

/// Split `count` universes from Port-Address `first` into ArtPollReply
/// pages: each page holds at most four universes with the same Net and
/// Sub-Net. Calls `f(first_of_page, count_in_page)` per page.
pub fn poll_reply_pages(first: u16, count: usize, mut f: impl FnMut(u16, usize)) {
    let mut pa = first as usize;
    let end = (first as usize + count).min(0x8000);
    while pa < end {
        let group_end = ((pa | 0x0F) + 1).min(end);
        let n = (group_end - pa).min(PORTS_PER_REPLY);
        f(pa as u16, n);
        pa += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ArtDmx laid out from the research notes' table.
    pub(crate) fn dmx(seq: u8, sub: u8, net: u8, data: &[u8]) -> Vec<u8> {
        let mut p = b"Art-Net\0".to_vec();
        p.extend_from_slice(&[0x00, 0x50, 0x00, 0x0E, seq, 0, sub, net]);
        p.extend_from_slice(&(data.len() as u16).to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    #[test]
    fn artdmx_as_stupidartnet_sends_it() {
        let data: Vec<u8> = (0..510).map(|i| i as u8).collect();
        let p = dmx(0, 44, 1, &data);
        let Packet::Dmx(d) = parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(d.sequence, 0);
        assert_eq!(d.port_address, 300);
        assert_eq!(d.slots, &data[..]);
    }

    #[test]
    fn net_is_masked_to_seven_bits() {
        let p = dmx(3, 0xFF, 0xFF, &[1, 2]);
        let Packet::Dmx(d) = parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(d.port_address, 0x7FFF);
    }

    #[test]
    fn artsync_and_artpoll() {
        let sync = [
            0x41, 0x72, 0x74, 0x2d, 0x4e, 0x65, 0x74, 0x00, 0x00, 0x52, 0x00, 0x0e, 0x00, 0x00,
        ];
        assert_eq!(parse(&sync), Ok(Packet::Sync));
        let mut poll = b"Art-Net\0".to_vec();
        poll.extend_from_slice(&[0x00, 0x20, 0x00, 0x0E, 0x02, 0x00]);
        assert_eq!(parse(&poll), Ok(Packet::Poll));
        assert_eq!(parse(&poll[..12]), Ok(Packet::Poll));
        let mut other = b"Art-Net\0".to_vec();
        other.extend_from_slice(&[0x00, 0x21]);
        assert_eq!(parse(&other), Ok(Packet::Other(0x2100)));
    }

    #[test]
    fn every_check_has_its_error() {
        assert_eq!(
            parse(b"Art-Net\0\x00"),
            Err(Error::Truncated { len: 9, need: 10 })
        );
        assert_eq!(parse(b"Art-Nex\0\x00\x50"), Err(Error::Id));
        let p = dmx(0, 0, 0, &[1, 2, 3]);
        assert_eq!(parse(&p[..17]), Err(Error::Truncated { len: 17, need: 18 }));
        let sync = b"Art-Net\0\x00\x52\x00\x0e\x00";
        assert_eq!(parse(sync), Err(Error::Truncated { len: 13, need: 14 }));
        let mut old = p.clone();
        old[11] = 13;
        assert_eq!(parse(&old), Err(Error::ProtVer(13)));
        let mut zero = p.clone();
        zero[16..18].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&zero), Err(Error::Length(0)));
        let mut big = dmx(0, 0, 0, &[0; 513]);
        big[16..18].copy_from_slice(&513u16.to_be_bytes());
        assert_eq!(parse(&big), Err(Error::Length(513)));
        let mut past = p.clone();
        past[16..18].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            parse(&past),
            Err(Error::LengthPastEnd {
                length: 4,
                available: 3
            })
        );
    }

    #[test]
    fn poll_reply_fields() {
        let mut out = [0u8; POLL_REPLY_LEN];
        let node = NodeInfo {
            ip: Ipv4Addr::new(127, 0, 0, 1),
            short_name: "rowplay",
            long_name: "rowplay LED player",
        };
        let n = encode_poll_reply(&mut out, &node, 0x0123, 4, 1);
        assert_eq!(n, 239);
        assert_eq!(&out[..8], b"Art-Net\0");
        assert_eq!(&out[8..10], &[0x00, 0x21]);
        assert_eq!(&out[10..14], &[127, 0, 0, 1]);
        assert_eq!(&out[14..16], &[0x36, 0x19]);
        assert_eq!((out[18], out[19]), (0x01, 0x02));
        assert_eq!(&out[26..34], b"rowplay\0");
        assert_eq!(&out[172..174], &[0, 4]);
        assert_eq!(&out[174..178], &[0x80; 4]);
        assert_eq!(&out[190..194], &[3, 4, 5, 6]);
        assert_eq!(out[211], 1);
        // Long names are cut and stay NUL-terminated.
        let long = "x".repeat(100);
        let node = NodeInfo {
            long_name: &long,
            ..node
        };
        encode_poll_reply(&mut out, &node, 0, 1, 1);
        assert_eq!(out[44 + 63], 0);
        assert_eq!(out[44 + 62], b'x');
    }

    #[test]
    fn pages_keep_net_and_subnet() {
        let mut pages = vec![];
        poll_reply_pages(14, 7, |f, n| pages.push((f, n)));
        assert_eq!(pages, vec![(14, 2), (16, 4), (20, 1)]);
        let mut pages = vec![];
        poll_reply_pages(0x7FFE, 5, |f, n| pages.push((f, n)));
        assert_eq!(pages, vec![(0x7FFE, 2)]);
    }
}
