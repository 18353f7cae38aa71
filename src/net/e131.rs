//! E1.31 (sACN, ANSI E1.31-2018), UDP port 5568, multicast 239.255.hi.lo.
//!
//! Data packet (638 bytes with 512 slots):
//!
//! | offset | len | field |
//! |--------|-----|-------|
//! | 0   | 2  | root preamble size 0x0010 |
//! | 2   | 2  | post-amble size 0x0000 |
//! | 4   | 12 | ACN packet identifier "ASC-E1.17\0\0\0" |
//! | 16  | 2  | root flags+length: 0x7000 \| (len - 16) |
//! | 18  | 4  | root vector: 4 data, 8 extended (sync, discovery) |
//! | 22  | 16 | CID (sender UUID) |
//! | 38  | 2  | framing flags+length: 0x7000 \| (len - 38) |
//! | 40  | 4  | framing vector 2 (data) |
//! | 44  | 64 | source name, UTF-8, NUL-terminated |
//! | 108 | 1  | priority 0..200 |
//! | 109 | 2  | synchronization address (0 = none) |
//! | 111 | 1  | sequence number |
//! | 112 | 1  | options: 0x80 Preview_Data, 0x40 Stream_Terminated, 0x20 Force_Synchronization |
//! | 113 | 2  | universe 1..63999 |
//! | 115 | 2  | DMP flags+length: 0x7000 \| (len - 115) |
//! | 117 | 1  | DMP vector 0x02 |
//! | 118 | 1  | address and data type 0xA1 |
//! | 119 | 2  | first property address 0 |
//! | 121 | 2  | address increment 1 |
//! | 123 | 2  | property value count 1 + slots (1..513) |
//! | 125 | 1  | START code (0 = DMX levels; others are not pixel data) |
//! | 126 | ≤512 | slots |
//!
//! Universe synchronization packet (49 bytes): root vector 8, framing
//! flags+length at 38 (0x700B), framing vector 1 at 40, sequence at 44,
//! sync address at 45..47, reserved 47..49. Universe discovery (root vector
//! 8, framing vector 2) is recognised and ignored.

use std::fmt;

/// ACN packet identifier.
pub const ACN_ID: [u8; 12] = *b"ASC-E1.17\0\0\0";
/// Root vector of a data packet.
pub const VECTOR_ROOT_DATA: u32 = 4;
/// Root vector of sync and discovery packets.
pub const VECTOR_ROOT_EXTENDED: u32 = 8;
/// Framing vector of a data packet.
pub const VECTOR_FRAMING_DATA: u32 = 2;
/// Extended framing vector: universe synchronization.
pub const VECTOR_EXTENDED_SYNC: u32 = 1;
/// Extended framing vector: universe discovery.
pub const VECTOR_EXTENDED_DISCOVERY: u32 = 2;
/// DMP vector: set property.
pub const VECTOR_DMP_SET_PROPERTY: u8 = 2;
/// DMP address and data type.
pub const DMP_ADDRESS_TYPE: u8 = 0xA1;
/// Options bit: preview data, not for output.
pub const OPT_PREVIEW: u8 = 0x80;
/// Options bit: the source stops sending.
pub const OPT_TERMINATED: u8 = 0x40;
/// Options bit: force synchronization.
pub const OPT_FORCE_SYNC: u8 = 0x20;
/// Highest priority allowed.
pub const MAX_PRIORITY: u8 = 200;
/// Highest universe number allowed.
pub const MAX_UNIVERSE: u16 = 63999;
/// Offset of the first slot.
pub const DATA_OFFSET: usize = 126;
/// Bytes of a data packet with no slots (START code only).
pub const DATA_MIN_LEN: usize = DATA_OFFSET;
/// Bytes of a data packet with 512 slots.
pub const DATA_MAX_LEN: usize = DATA_OFFSET + 512;
/// Bytes of a sync packet.
pub const SYNC_LEN: usize = 49;
/// Flags nibble every PDU carries.
const PDU_FLAGS: u16 = 0x7000;

/// A data packet, borrowing its name and slots from the datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// Sender CID.
    pub cid: [u8; 16],
    /// Source name bytes up to the first NUL (not checked to be UTF-8).
    pub name: &'a [u8],
    /// Priority 0..200.
    pub priority: u8,
    /// Synchronization address (0 = none).
    pub sync_address: u16,
    /// Sequence number.
    pub sequence: u8,
    /// Options byte.
    pub options: u8,
    /// Universe 1..63999.
    pub universe: u16,
    /// Slot data after the START code (0..512 bytes).
    pub slots: &'a [u8],
}

impl Data<'_> {
    /// Preview_Data: for visualisers, not for output.
    pub fn preview(&self) -> bool {
        self.options & OPT_PREVIEW != 0
    }
    /// Stream_Terminated: the source stops.
    pub fn terminated(&self) -> bool {
        self.options & OPT_TERMINATED != 0
    }
}

/// A universe synchronization packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sync {
    /// Sender CID.
    pub cid: [u8; 16],
    /// Sequence number.
    pub sequence: u8,
    /// The synchronization address it releases.
    pub sync_address: u16,
}

/// What a valid E1.31 datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// DMX data for a universe.
    Data(Data<'a>),
    /// Universe synchronization.
    Sync(Sync),
    /// Universe discovery (ignored).
    Discovery,
}

/// Why an E1.31 datagram was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Too short for the layer being read.
    Truncated(usize),
    /// Longer than a 512-slot data packet.
    TooLong(usize),
    /// Preamble size is not 0x0010.
    Preamble(u16),
    /// Post-amble size is not 0.
    Postamble(u16),
    /// Not "ASC-E1.17".
    AcnId,
    /// Root layer flags+length wrong.
    RootLength(u16),
    /// Root vector not 4 or 8.
    RootVector(u32),
    /// Framing layer flags+length wrong.
    FramingLength(u16),
    /// Framing vector not what the root vector calls for.
    FramingVector(u32),
    /// Priority above 200.
    Priority(u8),
    /// Universe 0 or above 63999.
    Universe(u16),
    /// DMP layer flags+length wrong.
    DmpLength(u16),
    /// DMP vector not 2.
    DmpVector(u8),
    /// Address and data type not 0xA1.
    AddressType(u8),
    /// First property address not 0.
    FirstAddress(u16),
    /// Address increment not 1.
    Increment(u16),
    /// Property value count does not match the packet length.
    PropertyCount(u16),
    /// START code not 0 (not pixel data).
    StartCode(u8),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated(n) => write!(f, "E1.31 packet of {n} bytes is truncated"),
            Error::TooLong(n) => write!(f, "E1.31 packet of {n} bytes is over {DATA_MAX_LEN}"),
            Error::Preamble(v) => write!(f, "E1.31 preamble size {v:#06x} is not 0x0010"),
            Error::Postamble(v) => write!(f, "E1.31 post-amble size {v:#06x} is not 0"),
            Error::AcnId => write!(f, "E1.31 packet identifier is not ASC-E1.17"),
            Error::RootLength(v) => write!(f, "E1.31 root flags+length {v:#06x} is wrong"),
            Error::RootVector(v) => write!(f, "E1.31 root vector {v:#x} is not 4 or 8"),
            Error::FramingLength(v) => write!(f, "E1.31 framing flags+length {v:#06x} is wrong"),
            Error::FramingVector(v) => write!(f, "E1.31 framing vector {v:#x} is unexpected"),
            Error::Priority(p) => write!(f, "E1.31 priority {p} is over {MAX_PRIORITY}"),
            Error::Universe(u) => write!(f, "E1.31 universe {u} is outside 1..={MAX_UNIVERSE}"),
            Error::DmpLength(v) => write!(f, "E1.31 DMP flags+length {v:#06x} is wrong"),
            Error::DmpVector(v) => write!(f, "E1.31 DMP vector {v:#04x} is not 0x02"),
            Error::AddressType(v) => write!(f, "E1.31 address type {v:#04x} is not 0xa1"),
            Error::FirstAddress(v) => write!(f, "E1.31 first property address {v} is not 0"),
            Error::Increment(v) => write!(f, "E1.31 address increment {v} is not 1"),
            Error::PropertyCount(v) => {
                write!(
                    f,
                    "E1.31 property value count {v} does not match the packet length"
                )
            }
            Error::StartCode(v) => write!(f, "E1.31 START code {v:#04x} is not 0 (DMX levels)"),
        }
    }
}

impl std::error::Error for Error {}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}
fn be32(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Check a PDU's flags+length field at `at`: flags 0x7, length from `at`
/// to the end of the datagram.
fn pdu_ok(b: &[u8], at: usize) -> bool {
    let v = be16(b, at);
    v & 0xF000 == PDU_FLAGS && (v & 0x0FFF) as usize == b.len() - at
}

/// Parse one E1.31 datagram. Never panics, never allocates.
pub fn parse(b: &[u8]) -> Result<Packet<'_>, Error> {
    // The smallest valid packet is a sync packet.
    if b.len() < SYNC_LEN {
        return Err(Error::Truncated(b.len()));
    }
    if b.len() > DATA_MAX_LEN {
        return Err(Error::TooLong(b.len()));
    }
    if be16(b, 0) != 0x0010 {
        return Err(Error::Preamble(be16(b, 0)));
    }
    if be16(b, 2) != 0 {
        return Err(Error::Postamble(be16(b, 2)));
    }
    if b[4..16] != ACN_ID {
        return Err(Error::AcnId);
    }
    if !pdu_ok(b, 16) {
        return Err(Error::RootLength(be16(b, 16)));
    }
    let mut cid = [0u8; 16];
    cid.copy_from_slice(&b[22..38]);
    if !pdu_ok(b, 38) {
        return Err(Error::FramingLength(be16(b, 38)));
    }
    let framing_vector = be32(b, 40);
    match be32(b, 18) {
        VECTOR_ROOT_DATA => {}
        VECTOR_ROOT_EXTENDED => {
            return match framing_vector {
                VECTOR_EXTENDED_SYNC => {
                    // Sync is exactly 49 bytes (the length checks above
                    // already tie the fields to the datagram's end).
                    if b.len() != SYNC_LEN {
                        return Err(Error::FramingLength(be16(b, 38)));
                    }
                    Ok(Packet::Sync(Sync {
                        cid,
                        sequence: b[44],
                        sync_address: be16(b, 45),
                    }))
                }
                VECTOR_EXTENDED_DISCOVERY => Ok(Packet::Discovery),
                v => Err(Error::FramingVector(v)),
            };
        }
        v => return Err(Error::RootVector(v)),
    }
    if framing_vector != VECTOR_FRAMING_DATA {
        return Err(Error::FramingVector(framing_vector));
    }
    if b.len() < DATA_MIN_LEN {
        return Err(Error::Truncated(b.len()));
    }
    let name_field = &b[44..108];
    let name_len = name_field.iter().position(|&c| c == 0).unwrap_or(64);
    let priority = b[108];
    if priority > MAX_PRIORITY {
        return Err(Error::Priority(priority));
    }
    let universe = be16(b, 113);
    if universe == 0 || universe > MAX_UNIVERSE {
        return Err(Error::Universe(universe));
    }
    if !pdu_ok(b, 115) {
        return Err(Error::DmpLength(be16(b, 115)));
    }
    if b[117] != VECTOR_DMP_SET_PROPERTY {
        return Err(Error::DmpVector(b[117]));
    }
    if b[118] != DMP_ADDRESS_TYPE {
        return Err(Error::AddressType(b[118]));
    }
    if be16(b, 119) != 0 {
        return Err(Error::FirstAddress(be16(b, 119)));
    }
    if be16(b, 121) != 1 {
        return Err(Error::Increment(be16(b, 121)));
    }
    let count = be16(b, 123);
    if count as usize != b.len() - 125 {
        return Err(Error::PropertyCount(count));
    }
    if b[125] != 0 {
        return Err(Error::StartCode(b[125]));
    }
    Ok(Packet::Data(Data {
        cid,
        name: &name_field[..name_len],
        priority,
        sync_address: be16(b, 109),
        sequence: b[111],
        options: b[112],
        universe,
        slots: &b[DATA_OFFSET..],
    }))
}

/// The E1.31 sequence rule (section 6.7.2): with `last` the previous and
/// `new` the new number, the new packet is out of order when
/// -20 < new - last <= 0 in signed 8-bit arithmetic.
pub fn out_of_sequence(last: u8, new: u8) -> bool {
    let d = new.wrapping_sub(last) as i8;
    d <= 0 && d > -20
}

/// The multicast group of a universe: 239.255.hi.lo.
pub fn multicast_group(universe: u16) -> std::net::Ipv4Addr {
    let [hi, lo] = universe.to_be_bytes();
    std::net::Ipv4Addr::new(239, 255, hi, lo)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A data packet laid out field by field from the table in the research
    /// notes (not from an encoder under test).
    // One argument per header field of the table, on purpose.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn data_packet(
        cid: [u8; 16],
        name: &str,
        priority: u8,
        sync: u16,
        seq: u8,
        options: u8,
        universe: u16,
        slots: &[u8],
    ) -> Vec<u8> {
        let len = 126 + slots.len();
        let mut p = vec![0u8; len];
        p[0..2].copy_from_slice(&[0x00, 0x10]);
        p[4..16].copy_from_slice(b"ASC-E1.17\0\0\0");
        p[16..18].copy_from_slice(&(0x7000 | (len - 16) as u16).to_be_bytes());
        p[18..22].copy_from_slice(&[0, 0, 0, 4]);
        p[22..38].copy_from_slice(&cid);
        p[38..40].copy_from_slice(&(0x7000 | (len - 38) as u16).to_be_bytes());
        p[40..44].copy_from_slice(&[0, 0, 0, 2]);
        p[44..44 + name.len()].copy_from_slice(name.as_bytes());
        p[108] = priority;
        p[109..111].copy_from_slice(&sync.to_be_bytes());
        p[111] = seq;
        p[112] = options;
        p[113..115].copy_from_slice(&universe.to_be_bytes());
        p[115..117].copy_from_slice(&(0x7000 | (len - 115) as u16).to_be_bytes());
        p[117] = 0x02;
        p[118] = 0xA1;
        p[119..121].copy_from_slice(&[0, 0]);
        p[121..123].copy_from_slice(&[0, 1]);
        p[123..125].copy_from_slice(&((slots.len() + 1) as u16).to_be_bytes());
        p[125] = 0;
        p[126..].copy_from_slice(slots);
        p
    }

    /// A sync packet laid out from the table.
    pub(crate) fn sync_packet(cid: [u8; 16], seq: u8, sync: u16) -> Vec<u8> {
        let mut p = vec![0u8; 49];
        p[0..2].copy_from_slice(&[0x00, 0x10]);
        p[4..16].copy_from_slice(b"ASC-E1.17\0\0\0");
        p[16..18].copy_from_slice(&[0x70, 0x21]);
        p[18..22].copy_from_slice(&[0, 0, 0, 8]);
        p[22..38].copy_from_slice(&cid);
        p[38..40].copy_from_slice(&[0x70, 0x0B]);
        p[40..44].copy_from_slice(&[0, 0, 0, 1]);
        p[44] = seq;
        p[45..47].copy_from_slice(&sync.to_be_bytes());
        p
    }

    const CID: [u8; 16] = [
        0xC0, 0xDE, 0, 0x80, 0xC6, 0x9B, 0x11, 0xE0, 0x95, 0x72, 8, 0, 0x20, 0x0C, 0x9A, 0x66,
    ];

    #[test]
    fn full_512_slot_packet() {
        let slots: Vec<u8> = (0..512).map(|i| i as u8).collect();
        let p = data_packet(CID, "xLights 42", 100, 0, 7, 0, 1, &slots);
        assert_eq!(p.len(), 638);
        assert_eq!(&p[16..18], &[0x72, 0x6E]);
        assert_eq!(&p[38..40], &[0x72, 0x58]);
        assert_eq!(&p[115..117], &[0x72, 0x0B]);
        let Packet::Data(d) = parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(d.cid, CID);
        assert_eq!(d.name, b"xLights 42");
        assert_eq!(
            (d.priority, d.sync_address, d.sequence, d.universe),
            (100, 0, 7, 1)
        );
        assert_eq!(d.slots, &slots[..]);
        assert!(!d.preview() && !d.terminated());
    }

    #[test]
    fn variable_slot_counts() {
        for n in [0usize, 3, 6, 510, 512] {
            let slots = vec![0xAB; n];
            let p = data_packet(CID, "ola", 150, 0, 0, 0, 2, &slots);
            let Packet::Data(d) = parse(&p).unwrap() else {
                panic!()
            };
            assert_eq!(d.slots.len(), n);
        }
    }

    #[test]
    fn options_and_sync_address() {
        let p = data_packet(
            CID,
            "s",
            100,
            63999,
            1,
            OPT_TERMINATED | OPT_PREVIEW,
            3,
            &[1, 2, 3],
        );
        let Packet::Data(d) = parse(&p).unwrap() else {
            panic!()
        };
        assert!(d.terminated() && d.preview());
        assert_eq!(d.sync_address, 63999);
    }

    #[test]
    fn name_without_nul_takes_all_64_bytes() {
        let long = "n".repeat(64);
        let p = data_packet(CID, &long, 100, 0, 0, 0, 1, &[]);
        let Packet::Data(d) = parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(d.name.len(), 64);
    }

    #[test]
    fn sync_packet_parses() {
        let p = sync_packet(CID, 9, 63999);
        assert_eq!(
            parse(&p),
            Ok(Packet::Sync(Sync {
                cid: CID,
                sequence: 9,
                sync_address: 63999
            }))
        );
    }

    #[test]
    fn discovery_is_recognised() {
        let mut p = sync_packet(CID, 0, 0);
        p[40..44].copy_from_slice(&[0, 0, 0, 2]);
        assert_eq!(parse(&p), Ok(Packet::Discovery));
    }

    #[test]
    fn every_check_has_its_error() {
        let good = data_packet(CID, "x", 100, 0, 0, 0, 1, &[1, 2, 3]);
        let bad = |i: usize, v: u8| {
            let mut p = good.clone();
            p[i] = v;
            parse(&p).map(|_| ())
        };
        assert_eq!(parse(&good[..48]), Err(Error::Truncated(48)));
        assert_eq!(parse(&vec![0; 639]), Err(Error::TooLong(639)));
        assert_eq!(bad(1, 0x11), Err(Error::Preamble(0x0011)));
        assert_eq!(bad(3, 1), Err(Error::Postamble(1)));
        assert_eq!(bad(5, b'X'), Err(Error::AcnId));
        assert_eq!(bad(17, 0), Err(Error::RootLength(0x7000)));
        assert_eq!(bad(16, 0x60), Err(Error::RootLength(0x6000 | (129 - 16))));
        assert_eq!(bad(21, 5), Err(Error::RootVector(5)));
        assert_eq!(bad(39, 0), Err(Error::FramingLength(0x7000)));
        assert_eq!(bad(43, 3), Err(Error::FramingVector(3)));
        assert_eq!(bad(108, 201), Err(Error::Priority(201)));
        let mut u0 = good.clone();
        u0[113..115].copy_from_slice(&[0, 0]);
        assert_eq!(parse(&u0), Err(Error::Universe(0)));
        let mut u64000 = good.clone();
        u64000[113..115].copy_from_slice(&64000u16.to_be_bytes());
        assert_eq!(parse(&u64000), Err(Error::Universe(64000)));
        assert_eq!(bad(116, 0), Err(Error::DmpLength(0x7000)));
        assert_eq!(bad(117, 1), Err(Error::DmpVector(1)));
        assert_eq!(bad(118, 0xA0), Err(Error::AddressType(0xA0)));
        assert_eq!(bad(120, 1), Err(Error::FirstAddress(1)));
        assert_eq!(bad(122, 2), Err(Error::Increment(2)));
        assert_eq!(bad(124, 3), Err(Error::PropertyCount(3)));
        assert_eq!(bad(125, 0xDD), Err(Error::StartCode(0xDD)));
        // A data packet cut short after the framing layer (lengths fixed up).
        let mut short = good[..100].to_vec();
        short[16..18].copy_from_slice(&(0x7000u16 | 84).to_be_bytes());
        short[38..40].copy_from_slice(&(0x7000u16 | 62).to_be_bytes());
        assert_eq!(parse(&short), Err(Error::Truncated(100)));
    }

    #[test]
    fn sequence_rule() {
        assert!(out_of_sequence(10, 10));
        assert!(out_of_sequence(10, 9));
        assert!(out_of_sequence(10, 247)); // -19
        assert!(!out_of_sequence(10, 11));
        assert!(out_of_sequence(5, 250)); // 250 - 5 = -11
        assert!(!out_of_sequence(250, 5)); // wrapped forward
        assert!(!out_of_sequence(100, 80)); // -20: a restarted sender
        assert!(out_of_sequence(100, 81)); // -19
    }

    #[test]
    fn groups() {
        assert_eq!(multicast_group(1).octets(), [239, 255, 0, 1]);
        assert_eq!(multicast_group(63999).octets(), [239, 255, 249, 255]);
    }
}
