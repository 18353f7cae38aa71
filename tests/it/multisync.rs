//! MultiSync over real sockets on 127.0.0.1: a leader and an FPP-style
//! sender drive the follower's listener; the events and clock observations
//! it delivers are checked, never wall-clock times.

use rowplay::clock::monotonic_ns;
use rowplay::sync::names::NameMap;
use rowplay::sync::packet::{self, FileType, Packet, SyncType};
use rowplay::sync::pll::Observation;
use rowplay::sync::{follow, lead, AfterSync, SyncEvent, SyncSettings};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NAMES: [&str; 3] = ["Intro", "shows/Song", "other/Tune"];

fn loopback() -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)
}

/// A follower on an ephemeral loopback port, its events collected.
fn follower() -> (follow::FollowHandle, Arc<Mutex<Vec<SyncEvent>>>) {
    let settings = SyncSettings {
        listen: loopback(),
        after_sync: AfterSync::Resume,
        ..SyncSettings::default()
    };
    let sock = follow::bind(settings.listen).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let map = NameMap::new([("Opening.fseq".to_string(), "Intro".to_string())]);
    let h = follow::spawn(
        sock,
        &settings,
        Arc::new(monotonic_ns),
        move |f: &str| map.resolve(f, &NAMES[..]).ok(),
        move |e| ev.lock().unwrap().push(e),
    )
    .unwrap();
    (h, events)
}

/// Wait (bounded) until `done` holds: a liveness bound, not a timing
/// assertion.
fn wait_for(mut done: impl FnMut() -> bool) {
    let t = Instant::now();
    while !done() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn drain(h: &follow::FollowHandle, into: &mut Vec<Observation>) {
    h.ring.drain(|o| into.push(*o));
}

#[test]
fn leader_to_follower_unicast() {
    let (f, events) = follower();
    let SocketAddr::V4(to) = f.local_addr else {
        panic!()
    };
    let settings = SyncSettings {
        listen: loopback(),
        to: vec![to],
        ..SyncSettings::default()
    };
    let (sock, dests) = lead::bind(&settings).unwrap();
    assert_eq!(dests, vec![to]);
    let l = lead::spawn(sock, dests, Arc::new(monotonic_ns), |i, s: &mut String| {
        s.push_str(NAMES[i as usize])
    })
    .unwrap();
    let mut p = l.publisher();
    let mut obs = vec![];
    // Song: 60 frames, then a switch to Intro for 12, then stop. Waiting
    // for each SYNC keeps the ring from overflowing; it is not timing.
    p.open(1);
    p.start(1, monotonic_ns());
    let mut seen = 0;
    for fr in 1..=60 {
        p.frame(fr);
        if lead::sync_due(fr) {
            seen += 1;
            wait_for(|| {
                drain(&f, &mut obs);
                obs.len() == seen
            });
        }
    }
    p.start(0, monotonic_ns());
    for fr in 1..=12 {
        p.frame(fr);
    }
    p.stop(true);
    wait_for(|| events.lock().unwrap().len() >= 5);
    drain(&f, &mut obs);
    l.stop();
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev[0], SyncEvent::Open { array: 1 });
    assert!(matches!(
        ev[1],
        SyncEvent::Start {
            array: 1,
            epoch: 1,
            ..
        }
    ));
    assert!(matches!(
        ev[2],
        SyncEvent::Start {
            array: 0,
            epoch: 2,
            ..
        }
    ));
    assert_eq!(
        ev[3],
        SyncEvent::Stop {
            after: AfterSync::Resume
        }
    );
    assert_eq!(ev[4], SyncEvent::Blank);
    let frames: Vec<(u32, u32)> = obs.iter().map(|o| (o.epoch, o.frame)).collect();
    let mut want: Vec<(u32, u32)> = (1..=60)
        .filter(|&x| lead::sync_due(x))
        .map(|x| (1, x))
        .collect();
    want.extend([(2, 4), (2, 8), (2, 12)]);
    assert_eq!(frames, want);
    // seconds grow with the frames, and are stamped at send time
    for w in obs.windows(2).filter(|w| w[0].epoch == w[1].epoch) {
        assert!(w[1].seconds > w[0].seconds);
        assert!(w[1].recv_ns > w[0].recv_ns);
    }
    assert_eq!(f.stats.lost.load(Relaxed), 0);
    assert!(l_stats_file_ok(&f));
    f.stop();
}

fn l_stats_file_ok(f: &follow::FollowHandle) -> bool {
    f.stats.file.lock().unwrap().as_str() == "Intro.fseq"
}

/// Packets as FPP's and xSchedule's code lays them out, sent by hand:
/// SYNC every 16 frames after the first 32, seconds field only (frame 0).
#[test]
fn fpp_style_sender_late_join_ping_and_unknown() {
    let (f, events) = follower();
    let tx = UdpSocket::bind(loopback()).unwrap();
    tx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = f.local_addr;
    let sync = |st: u8, frame: u32, secs: f32, name: &[u8]| {
        let extra = 11 + name.len();
        let mut v = vec![
            b'F',
            b'P',
            b'P',
            b'D',
            1,
            extra as u8,
            (extra >> 8) as u8,
            st,
            0,
        ];
        v.extend_from_slice(&frame.to_le_bytes());
        v.extend_from_slice(&secs.to_le_bytes());
        v.extend_from_slice(name);
        v.push(0);
        v
    };
    // a follower that comes in mid-song: first a SYNC (late join)
    let mut obs = vec![];
    for (n, k) in (1..).zip(0..6u32) {
        let frame = 48 + 16 * k;
        tx.send_to(&sync(2, 0, frame as f32 * 0.025, b"Song.fseq"), to)
            .unwrap();
        wait_for(|| {
            drain(&f, &mut obs);
            obs.len() == n
        });
    }
    // the override table maps a name no array has
    tx.send_to(&sync(0, 0, 0.0, b"Opening.fseq"), to).unwrap();
    // unknown twice: counted once
    tx.send_to(&sync(2, 0, 1.0, b"Nothing.fseq"), to).unwrap();
    tx.send_to(&sync(2, 0, 1.2, b"Nothing.fseq"), to).unwrap();
    // media sync is ignored; garbage is counted, not fatal
    let mut media = sync(2, 0, 1.0, b"a.mp3");
    media[8] = 1;
    tx.send_to(&media, to).unwrap();
    tx.send_to(b"FPPD\x01\x02\x00", to).unwrap();
    // a discover ping gets our ping back, unicast
    let mut ping = vec![0u8; 301];
    ping[..9].copy_from_slice(&[b'F', b'P', b'P', b'D', 4, 0x26, 0x01, 3, 1]);
    tx.send_to(&ping, to).unwrap();
    let mut buf = [0u8; 512];
    let (len, from) = tx.recv_from(&mut buf).unwrap();
    assert_eq!(from, to);
    let Ok(Packet::Ping(p)) = packet::parse(&buf[..len]) else {
        panic!("{:?}", packet::parse(&buf[..len]))
    };
    assert!(!p.discover);
    let info = p.info.unwrap();
    assert_eq!((info.system_type, info.mode), (0xC0, packet::MODE_REMOTE));
    // STOP for the song (after the unknown, nothing is followed: a stop
    // still goes through)
    let mut b = [0u8; 64];
    let n = packet::encode_sync(
        &mut b,
        SyncType::Stop,
        FileType::Sequence,
        0,
        9.0,
        "Song",
        ".fseq",
    )
    .unwrap();
    tx.send_to(&b[..n], to).unwrap();
    wait_for(|| f.stats.errors.load(Relaxed) == 1 && events.lock().unwrap().len() >= 4);
    let ev = events.lock().unwrap().clone();
    assert_eq!(ev[0], SyncEvent::Join { array: 1, epoch: 1 });
    assert!(matches!(
        ev[1],
        SyncEvent::Start {
            array: 0,
            epoch: 2,
            ..
        }
    ));
    assert_eq!(ev[2], SyncEvent::Unknown);
    assert_eq!(
        ev[3],
        SyncEvent::Stop {
            after: AfterSync::Resume
        }
    );
    assert_eq!(ev.len(), 4);
    assert_eq!(f.stats.unknown_names.load(Relaxed), 1);
    // the observations carry the seconds only, frame 0, in order
    assert!(obs.iter().all(|o| o.frame == 0 && o.epoch == 1));
    let secs: Vec<f32> = obs.iter().map(|o| o.seconds).collect();
    assert_eq!(
        secs,
        (0..6)
            .map(|k| (48 + 16 * k) as f32 * 0.025)
            .collect::<Vec<_>>()
    );
    f.stop();
}

/// The player's side of sync (draining observations, the clock's steps,
/// publishing counters, the leader's publisher) never allocates.
#[test]
fn the_player_side_never_allocates() {
    use crate::player::{ALLOCS, COUNTING};
    let _one_at_a_time = crate::player::alloc_test();
    use rowplay::sync::pll::{Pll, Step};
    use rowplay::sync::{ObsRing, SyncStats};
    const P: u64 = 20_000_000;
    let ring = ObsRing::default();
    let stats = SyncStats::default();
    let lead_ring = Arc::new(lead::LeadRing::default());
    let mut publisher = lead::LeadPublisher::new(lead_ring.clone(), None);
    let mut pll = Pll::new(5_000_000);
    let (mut row, mut deadline) = (0u64, 1_000_000_000u64);
    COUNTING.with(|c| c.set(true));
    let before = ALLOCS.load(Relaxed);
    publisher.start(0, deadline);
    for f in 0..3000u64 {
        if f % 10 == 0 {
            ring.push(&Observation {
                recv_ns: deadline - 300_000,
                frame: 0,
                seconds: (f * P) as f32 / 1e9,
                epoch: 0,
            });
        }
        ring.drain(|o| pll.observe(o, P));
        match pll.steer(row + 1, deadline + P, P) {
            Step::Jump {
                row: r,
                deadline: d,
            } => (row, deadline) = (r, d),
            s => (row, deadline) = (row + 1, s.deadline()),
        }
        pll.publish(&stats);
        publisher.frame(row as u32);
        while lead_ring.pop().is_some() {}
    }
    publisher.stop(true);
    let after = ALLOCS.load(Relaxed);
    COUNTING.with(|c| c.set(false));
    assert_eq!(after - before, 0);
    assert!(pll.taken >= 300, "the clock did take the observations");
}
