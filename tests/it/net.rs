//! The live-input receivers on 127.0.0.1 with ephemeral ports, driven by
//! real UDP packets sent from Rust (bound to 127.0.0.1), read back through
//! the player's side (`LiveView`). Time-outs below only bound how long a
//! failing test waits; nothing asserts on wall-clock durations.

use rowplay::clock::monotonic_ns;
use rowplay::net::settings::{parse_allow, Listen};
use rowplay::net::{LiveView, Mapping, NetSettings, Protocol, Receiver};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

const WAIT_NS: u64 = 5_000_000_000;

fn settings(protocols: &[Protocol]) -> NetSettings {
    NetSettings {
        listen: protocols
            .iter()
            .map(|&protocol| Listen { protocol, port: 0 })
            .collect(),
        listen_addr: Ipv4Addr::LOCALHOST,
        multicast: false,
        ..NetSettings::default()
    }
}

fn start(s: &NetSettings, leds: usize) -> (Receiver, LiveView) {
    let map = Mapping::new(
        leds,
        3,
        s.channels_per_universe,
        s.universe,
        s.artnet_universe,
        s.ddp_offset,
    )
    .unwrap();
    Receiver::start(s, map).unwrap()
}

fn sender() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").unwrap()
}

fn to(rx: &Receiver, p: Protocol) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, rx.port(p).unwrap())
}

/// Read frames until one satisfies `pred` (returns it) or time runs out.
fn frame_where(
    view: &mut LiveView,
    pred: impl Fn(&[u8], &rowplay::net::LiveMeta) -> bool,
) -> Option<(Vec<u8>, rowplay::net::LiveMeta)> {
    let end = monotonic_ns() + WAIT_NS;
    let mut buf = vec![0u8; view.frame_len()];
    while monotonic_ns() < end {
        view.wait_until(end);
        while let Some(m) = view.latest(&mut buf) {
            if pred(&buf, &m) {
                return Some((buf, m));
            }
        }
    }
    None
}

/// The next frame to arrive.
fn next_frame(view: &mut LiveView) -> (Vec<u8>, rowplay::net::LiveMeta) {
    frame_where(view, |_, _| true).expect("a live frame")
}

fn ramp(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn ddp(flags: u8, seq: u8, offset: u32, data: &[u8]) -> Vec<u8> {
    let mut p = vec![flags, seq, 0x0B, 0x01];
    p.extend_from_slice(&offset.to_be_bytes());
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// A frame as LedFx, WLED and xLights packetise it: 480 pixels (1440
/// bytes) per packet, push on the last unless `push` is false.
fn send_ddp_frame(s: &UdpSocket, dst: SocketAddrV4, frame: &[u8], push: bool, seq: u8) {
    let chunks: Vec<&[u8]> = frame.chunks(1440).collect();
    for (k, c) in chunks.iter().enumerate() {
        let last = k + 1 == chunks.len();
        let flags = if last && push { 0x41 } else { 0x40 };
        s.send_to(&ddp(flags, seq, (k * 1440) as u32, c), dst)
            .unwrap();
    }
}

#[test]
fn ddp_480_pixels_per_packet_push_on_the_last() {
    let (rx, mut view) = start(&settings(&[Protocol::Ddp]), 1000);
    let s = sender();
    let dst = to(&rx, Protocol::Ddp);
    let a = ramp(3000, 1);
    send_ddp_frame(&s, dst, &a, true, 1);
    // Before the first push each packet may show; the pushed frame is whole.
    frame_where(&mut view, |f, _| f == &a[..]).expect("frame A");
    // After a push has been seen, only pushes complete: the next frame to
    // arrive is B, whole, never a mix of A and B.
    let b = ramp(3000, 99);
    send_ddp_frame(&s, dst, &b, true, 2);
    let (f, m) = next_frame(&mut view);
    assert_eq!(f, b);
    assert!(view.is_live());
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["winner"], m.source);
    assert_eq!(j["sources"][0]["protocol"], "ddp");
    assert_eq!(j["sources"][0]["address"], "127.0.0.1");
    assert_eq!(j["sources"][0]["packets"], 6);
}

#[test]
fn ddp_xlights_separate_push_packet() {
    let (rx, mut view) = start(&settings(&[Protocol::Ddp]), 1000);
    let s = sender();
    let dst = to(&rx, Protocol::Ddp);
    let push = [0x41, 0x00, 0x80, 0x01, 0, 0, 0, 0, 0, 0];
    let a = ramp(3000, 3);
    send_ddp_frame(&s, dst, &a, false, 1);
    s.send_to(&push, dst).unwrap();
    frame_where(&mut view, |f, _| f == &a[..]).expect("frame A");
    let b = ramp(3000, 77);
    send_ddp_frame(&s, dst, &b, false, 2);
    s.send_to(&push, dst).unwrap();
    assert_eq!(next_frame(&mut view).0, b);
}

fn e131(cid: u8, prio: u8, seq: u8, opts: u8, universe: u16, slots: &[u8]) -> Vec<u8> {
    let len = 126 + slots.len();
    let mut p = vec![0u8; len];
    p[0..2].copy_from_slice(&[0x00, 0x10]);
    p[4..16].copy_from_slice(b"ASC-E1.17\0\0\0");
    p[16..18].copy_from_slice(&(0x7000 | (len - 16) as u16).to_be_bytes());
    p[18..22].copy_from_slice(&[0, 0, 0, 4]);
    p[22..38].copy_from_slice(&[cid; 16]);
    p[38..40].copy_from_slice(&(0x7000 | (len - 38) as u16).to_be_bytes());
    p[40..44].copy_from_slice(&[0, 0, 0, 2]);
    p[44..48].copy_from_slice(b"peer");
    p[108] = prio;
    p[111] = seq;
    p[112] = opts;
    p[113..115].copy_from_slice(&universe.to_be_bytes());
    p[115..117].copy_from_slice(&(0x7000 | (len - 115) as u16).to_be_bytes());
    p[117] = 0x02;
    p[118] = 0xA1;
    p[121..123].copy_from_slice(&[0, 1]);
    p[123..125].copy_from_slice(&((slots.len() + 1) as u16).to_be_bytes());
    p[126..].copy_from_slice(slots);
    p
}

fn send_e131_frame(s: &UdpSocket, dst: SocketAddrV4, cid: u8, prio: u8, seq: u8, frame: &[u8]) {
    for (k, c) in frame.chunks(510).enumerate() {
        let mut slots = c.to_vec();
        // As sacn does: pad to 512 slots.
        slots.resize(512, 0);
        s.send_to(&e131(cid, prio, seq, 0, 1 + k as u16, &slots), dst)
            .unwrap();
    }
}

#[test]
fn e131_two_priorities_and_stream_terminated() {
    let (rx, mut view) = start(&settings(&[Protocol::E131]), 340);
    let (lo, hi) = (sender(), sender());
    let dst = to(&rx, Protocol::E131);
    let a = ramp(1020, 5);
    send_e131_frame(&lo, dst, 0xA, 100, 0, &a);
    let (f, ma) = next_frame(&mut view);
    assert_eq!(f, a);
    // A higher priority takes over on its first complete frame.
    let b = ramp(1020, 50);
    send_e131_frame(&hi, dst, 0xB, 150, 0, &b);
    let (f, mb) = frame_where(&mut view, |_, m| m.source != ma.source).expect("takeover");
    assert_eq!(f, b);
    // The lower one keeps sending; what shows stays the higher one's.
    send_e131_frame(&lo, dst, 0xA, 100, 1, &ramp(1020, 6));
    let b2 = ramp(1020, 51);
    send_e131_frame(&hi, dst, 0xB, 150, 1, &b2);
    let (f, m) = next_frame(&mut view);
    assert_eq!((f, m.source), (b2, mb.source));
    // Stream_Terminated: the lower one takes back at once, with its state.
    for _ in 0..3 {
        hi.send_to(&e131(0xB, 150, 2, 0x40, 1, &[0; 512]), dst)
            .unwrap();
    }
    let (f, m) = frame_where(&mut view, |_, m| m.source == ma.source).expect("fall back");
    assert_eq!(f, ramp(1020, 6));
    assert!(m.frame > mb.frame);
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["winner"], ma.source);
    let srcs = j["sources"].as_array().unwrap();
    assert_eq!(srcs.len(), 1, "the terminated source is gone: {j}");
    assert_eq!(srcs[0]["name"], "peer");
    assert_eq!(srcs[0]["universes"], serde_json::json!([1, 2]));
}

#[test]
fn e131_source_timeout_ends_live() {
    let mut s = settings(&[Protocol::E131]);
    s.live_timeout_ns = 50_000_000;
    let (rx, mut view) = start(&s, 170);
    let tx = sender();
    tx.send_to(&e131(1, 100, 0, 0, 1, &[9; 510]), to(&rx, Protocol::E131))
        .unwrap();
    next_frame(&mut view);
    let end = monotonic_ns() + WAIT_NS;
    while view.is_live() && monotonic_ns() < end {
        view.wait_until(end);
    }
    assert!(!view.is_live());
    assert_eq!(rx.stats().to_json(0)["winner"], serde_json::Value::Null);
}

fn artdmx(seq: u8, port_address: u16, data: &[u8]) -> Vec<u8> {
    let mut p = b"Art-Net\0".to_vec();
    p.extend_from_slice(&[0x00, 0x50, 0x00, 0x0E, seq, 0]);
    p.push((port_address & 0xFF) as u8);
    p.push((port_address >> 8) as u8);
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p
}

#[test]
fn artnet_sequence_zero_and_poll_reply() {
    let mut st = settings(&[Protocol::ArtNet]);
    st.artnet_universe = 300;
    let (rx, mut view) = start(&st, 340);
    // Each universe from its own socket, as stupidArtnet does.
    let (s0, s1) = (sender(), sender());
    let dst = to(&rx, Protocol::ArtNet);
    for k in 0..3u8 {
        let f = ramp(1020, k * 10);
        s0.send_to(&artdmx(0, 300, &f[..510]), dst).unwrap();
        s1.send_to(&artdmx(0, 301, &f[510..]), dst).unwrap();
        frame_where(&mut view, |g, _| g == &f[..]).expect("art-net frame");
    }
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["sources"][0]["sequence_errors"], 0);
    assert_eq!(j["sources"][0]["universes"], serde_json::json!([300, 301]));
    // ArtPoll: one reply, unicast to the asking socket, listing 300 and 301.
    let poll = sender();
    poll.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    poll.send_to(b"Art-Net\0\x00\x20\x00\x0e\x00\x00", dst)
        .unwrap();
    let mut buf = [0u8; 600];
    let (n, from) = poll.recv_from(&mut buf).expect("ArtPollReply");
    assert_eq!(from.port(), dst.port());
    assert_eq!(n, 239);
    assert_eq!(&buf[8..10], &[0x00, 0x21]);
    assert_eq!(&buf[10..14], &[127, 0, 0, 1]);
    // 300 = Net 1, Sub-Net 2, universes 12 and 13.
    assert_eq!((buf[18], buf[19]), (1, 2));
    assert_eq!(&buf[172..174], &[0, 2]);
    assert_eq!(&buf[190..192], &[12, 13]);
}

#[test]
fn allow_list_counts_and_drops_others() {
    let mut s = settings(&[Protocol::Ddp]);
    s.allow = parse_allow(["10.0.0.0/8"]).unwrap();
    let (rx, mut view) = start(&s, 10);
    let tx = sender();
    let dst = to(&rx, Protocol::Ddp);
    tx.send_to(&ddp(0x41, 1, 0, &[1; 30]), dst).unwrap();
    let end = monotonic_ns() + WAIT_NS;
    while rx
        .stats()
        .not_allowed
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
        && monotonic_ns() < end
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        rx.stats()
            .not_allowed
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert!(view.latest(&mut [0u8; 30]).is_none());
    assert!(!view.is_live());
}

#[test]
fn hostile_packets_are_counted_as_bad() {
    let (rx, mut view) = start(
        &settings(&[Protocol::Ddp, Protocol::E131, Protocol::ArtNet]),
        170,
    );
    let tx = sender();
    let garbage: [&[u8]; 5] = [
        b"",
        b"\x41",
        &[0xFF; 700],
        b"Art-Net\0\x00\x50",
        &[0x41; 3000],
    ];
    for p in [Protocol::Ddp, Protocol::E131, Protocol::ArtNet] {
        for g in garbage {
            tx.send_to(g, to(&rx, p)).unwrap();
        }
    }
    // A good DDP packet after the garbage shows the receiver is alive.
    tx.send_to(&ddp(0x41, 1, 0, &[5; 510]), to(&rx, Protocol::Ddp))
        .unwrap();
    let (f, _) = next_frame(&mut view);
    assert!(f.iter().all(|&b| b == 5));
    let st = rx.stats();
    let bad = || -> u64 {
        st.bad_packets.load(std::sync::atomic::Ordering::Relaxed)
            + st.sources
                .iter()
                .map(|s| s.bad_packets.load(std::sync::atomic::Ordering::Relaxed))
                .sum::<u64>()
    };
    // The three sockets are read in turn: the DDP frame can be out before
    // the other sockets' garbage is counted. Wait for the count (a guard
    // against a hang, not a timing assertion).
    let t = std::time::Instant::now();
    while bad() < 15 && t.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Every one of the 15 datagrams is refused by its parser (the 3000-byte
    // one is larger than the receive buffer and refused whole).
    assert_eq!(bad(), 15);
}

#[test]
fn e131_multicast_on_loopback() {
    // qemu-user refuses IP_MULTICAST_IF with an in_addr (the ARMv6 lane sets
    // QEMU_CPU); the sender needs it to keep the datagram on lo.
    if std::env::var_os("QEMU_CPU").is_some() {
        eprintln!("skipped under user-mode emulation: qemu refuses IP_MULTICAST_IF");
        return;
    }
    let mut s = settings(&[Protocol::E131]);
    s.multicast = true;
    let (rx, mut view) = start(&s, 170);
    let tx = sender();
    // Keep the datagram on this host: bound to 127.0.0.1, egress lo, TTL 0.
    tx.set_multicast_ttl_v4(0).unwrap();
    set_multicast_if(&tx, Ipv4Addr::LOCALHOST);
    let group = SocketAddrV4::new(
        Ipv4Addr::new(239, 255, 0, 1),
        rx.port(Protocol::E131).unwrap(),
    );
    let f = ramp(510, 8);
    tx.send_to(&e131(3, 100, 0, 0, 1, &f), group).unwrap();
    assert_eq!(next_frame(&mut view).0, f);
}

fn set_multicast_if(s: &UdpSocket, a: Ipv4Addr) {
    use std::os::fd::AsRawFd;
    let addr = libc::in_addr {
        s_addr: u32::from(a).to_be(),
    };
    // SAFETY: addr is a valid in_addr of the size passed.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &addr as *const libc::in_addr as *const libc::c_void,
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// The per-packet path (parse, mux, hand-off) and the player's calls
/// allocate nothing, counted with the counting allocator of `player`.
#[test]
fn packet_path_and_player_side_never_allocate() {
    let _one_at_a_time = crate::player::alloc_test();
    use crate::player::{ALLOCS, COUNTING};
    use rowplay::net::{artnet, ddp, e131, live_channel, MuxConfig};
    use std::sync::atomic::Ordering::SeqCst;
    let map = Mapping::new(340, 3, 510, 1, 0, 0).unwrap();
    let (mut mux, mut view) = live_channel(map, MuxConfig::default());
    let mut dst = vec![0u8; map.frame_len()];
    let d = ddp(0x41, 1, 0, &ramp(1020, 1));
    let e: Vec<[Vec<u8>; 2]> = (0..200u8)
        .map(|k| {
            [
                e131(1, 150, k, 0, 1, &[3; 512]),
                e131(1, 150, k, 0, 2, &[4; 512]),
            ]
        })
        .collect();
    let a = artdmx(0, 0, &[5; 510]);
    let from = Ipv4Addr::LOCALHOST;
    ALLOCS.store(0, SeqCst);
    let mut shown = 0;
    for k in 0..200u64 {
        let now = k * 10_000_000;
        COUNTING.with(|c| c.set(true));
        mux.on_ddp(from, &ddp::parse(&d).unwrap(), now);
        for p in &e[k as usize] {
            mux.on_e131(from, &e131::parse(p).unwrap(), now + 1);
        }
        mux.on_artnet(from, &artnet::parse(&a).unwrap(), now + 2);
        mux.on_bad(Protocol::Ddp, from);
        mux.tick(now + 3);
        view.wait_until(0);
        if view.latest(&mut dst).is_some() {
            shown += 1;
        }
        let _ = view.is_live();
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(
        ALLOCS.load(SeqCst),
        0,
        "the live path allocated or freed memory"
    );
    assert_eq!(shown, 200);
    // The E1.31 source (priority 150) won.
    assert_eq!(dst[0], 3);
}
