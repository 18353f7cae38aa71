//! The leader: the player publishes what it shows, a sender thread sends
//! OPEN, START, SYNC, STOP and BLANK.
//!
//! The player side ([`LeadPublisher`]) only pushes small events into a
//! lock-free ring and unparks the sender, so no socket call ever happens in
//! the frame loop. The sender stamps each SYNC with the seconds elapsed on
//! the leader's timeline at the moment it sends (not at the frame's
//! deadline), so a follower's offset estimate sees only the network delay.
//!
//! Cadence (FPP's): START at frame 0 (again each time an array loops, and
//! on a switch as soon as it is accepted), SYNC every 4 frames up to frame
//! 32 and every 10 after, STOP at the end, BLANK after a STOP from `stop`.

use crate::sync::packet::{self, FileType, SyncType, MAX_SYNC_LEN};
use crate::sync::{SyncSettings, SyncStats};
use std::io;
use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// Events the ring holds; a full ring drops (and counts) the newest.
pub const LEAD_RING: usize = 32;

/// Whether frame `f` (frames since START) gets a SYNC.
pub fn sync_due(f: u32) -> bool {
    if f == 0 {
        false
    } else if f <= 32 {
        f % 4 == 0
    } else {
        (f - 32) % 10 == 0
    }
}

/// What the sender is asked to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeadEvent {
    /// OPEN `array`.
    Open {
        /// The array.
        array: u32,
    },
    /// START `array`; its row 0 is (or was) due at `row0_ns`.
    Start {
        /// The array.
        array: u32,
        /// Row 0's deadline, leader clock.
        row0_ns: u64,
    },
    /// SYNC at `frame` of the current array.
    Sync {
        /// Frames since START.
        frame: u32,
    },
    /// STOP the current array; then BLANK when `blank`.
    Stop {
        /// Also send BLANK.
        blank: bool,
    },
}

impl LeadEvent {
    fn encode(self) -> (u64, u64) {
        match self {
            LeadEvent::Open { array } => (array as u64, 0),
            LeadEvent::Start { array, row0_ns } => (1 << 32 | array as u64, row0_ns),
            LeadEvent::Sync { frame } => (2 << 32 | frame as u64, 0),
            LeadEvent::Stop { blank } => (3 << 32 | blank as u64, 0),
        }
    }
    fn decode(a: u64, b: u64) -> LeadEvent {
        let v = a as u32;
        match a >> 32 {
            0 => LeadEvent::Open { array: v },
            1 => LeadEvent::Start {
                array: v,
                row0_ns: b,
            },
            2 => LeadEvent::Sync { frame: v },
            _ => LeadEvent::Stop { blank: v != 0 },
        }
    }
}

/// Single-producer single-consumer ring of [`LeadEvent`]s.
#[derive(Debug, Default)]
pub struct LeadRing {
    a: [AtomicU64; LEAD_RING],
    b: [AtomicU64; LEAD_RING],
    head: AtomicU32,
    tail: AtomicU32,
    /// Events dropped because the ring was full.
    pub dropped: AtomicU64,
}

impl LeadRing {
    /// Push (player side); never allocates or locks.
    pub fn push(&self, e: LeadEvent) -> bool {
        let h = self.head.load(Relaxed);
        if h.wrapping_sub(self.tail.load(Acquire)) as usize >= LEAD_RING {
            self.dropped.fetch_add(1, Relaxed);
            return false;
        }
        let (a, b) = e.encode();
        let i = h as usize % LEAD_RING;
        self.a[i].store(a, Relaxed);
        self.b[i].store(b, Relaxed);
        self.head.store(h.wrapping_add(1), Release);
        true
    }
    /// Pop (sender side).
    pub fn pop(&self) -> Option<LeadEvent> {
        let t = self.tail.load(Relaxed);
        if t == self.head.load(Acquire) {
            return None;
        }
        let i = t as usize % LEAD_RING;
        let e = LeadEvent::decode(self.a[i].load(Relaxed), self.b[i].load(Relaxed));
        self.tail.store(t.wrapping_add(1), Release);
        Some(e)
    }
}

/// The player's side of the leader. Every method is allocation-free and
/// lock-free (a push and an unpark).
pub struct LeadPublisher {
    ring: Arc<LeadRing>,
    sender: Option<Thread>,
    playing: bool,
    /// A START not yet pushed: see [`LeadPublisher::start`].
    pending: Option<LeadEvent>,
}

impl LeadPublisher {
    /// A publisher into `ring` that wakes `sender` (None: tests drain the
    /// ring themselves).
    pub fn new(ring: Arc<LeadRing>, sender: Option<Thread>) -> LeadPublisher {
        LeadPublisher {
            ring,
            sender,
            playing: false,
            pending: None,
        }
    }
    fn push(&mut self, e: LeadEvent) {
        self.ring.push(e);
        if let Some(t) = &self.sender {
            t.unpark();
        }
    }
    /// Whether a START was sent and no STOP since (followers have a
    /// timeline).
    pub fn playing(&self) -> bool {
        self.playing
    }
    /// An array was loaded or is about to be shown.
    pub fn open(&mut self, array: u32) {
        self.push(LeadEvent::Open { array });
    }
    /// Row 0 of `array` will be (or was) shown at `row0_ns`: on a switch
    /// call this as soon as the switch is accepted; on a loop at the
    /// deadline of the new row 0. The START is held until [`Self::flush`]
    /// (or the next frame), and a later START replaces it: a loop and a
    /// switch accepted in the same tick name the same row 0, and two
    /// STARTs sent microseconds apart reach a follower in either order on
    /// a path with jitter, so only the one that is shown may go.
    pub fn start(&mut self, array: u32, row0_ns: u64) {
        self.playing = true;
        self.pending = Some(LeadEvent::Start { array, row0_ns });
    }
    /// Send the START held by [`Self::start`], if any: the player calls
    /// this once the tick's commands are taken.
    pub fn flush(&mut self) {
        if let Some(e) = self.pending.take() {
            self.push(e);
        }
    }
    /// Frame `frame` (frames since the last start) was shown; sends a SYNC
    /// when the cadence says so.
    pub fn frame(&mut self, frame: u32) {
        self.flush();
        if self.playing && sync_due(frame) {
            self.push(LeadEvent::Sync { frame });
        }
    }
    /// The array ended (`blank`: the player went dark by `stop`, so BLANK
    /// follows the STOP). A START still held is dropped: its row 0 is
    /// never shown.
    pub fn stop(&mut self, blank: bool) {
        self.pending = None;
        if self.playing || blank {
            self.playing = false;
            self.push(LeadEvent::Stop { blank });
        }
    }
}

/// The packets for one event, given the current array's name and row 0,
/// and the sender's clock `now`. Pure: the sender thread and the tests
/// both use it. Calls `send` once per datagram.
pub struct LeadState {
    name: String,
    array: Option<u32>,
    row0_ns: u64,
    last_frame: u32,
    buf: [u8; MAX_SYNC_LEN],
}

impl Default for LeadState {
    fn default() -> Self {
        LeadState {
            name: String::new(),
            array: None,
            row0_ns: 0,
            last_frame: 0,
            buf: [0; MAX_SYNC_LEN],
        }
    }
}

impl LeadState {
    /// Turn `e` into datagrams. `name_of` gives an array's name.
    pub fn packets(
        &mut self,
        e: LeadEvent,
        now_ns: u64,
        name_of: &mut dyn FnMut(u32, &mut String),
        send: &mut dyn FnMut(&[u8]),
    ) {
        let mut sync = |me: &mut LeadState, st: SyncType, frame: u32, secs: f32| {
            if let Ok(n) = packet::encode_sync(
                &mut me.buf,
                st,
                FileType::Sequence,
                frame,
                secs,
                &me.name,
                ".fseq",
            ) {
                send(&me.buf[..n]);
            }
        };
        match e {
            LeadEvent::Open { array } => {
                self.name.clear();
                name_of(array, &mut self.name);
                // OPEN names a file; keep the current one's name for SYNCs.
                sync(self, SyncType::Open, 0, 0.0);
                if let Some(a) = self.array {
                    self.name.clear();
                    name_of(a, &mut self.name);
                }
            }
            LeadEvent::Start { array, row0_ns } => {
                self.array = Some(array);
                self.row0_ns = row0_ns;
                self.last_frame = 0;
                self.name.clear();
                name_of(array, &mut self.name);
                sync(self, SyncType::Start, 0, 0.0);
            }
            LeadEvent::Sync { frame } => {
                if self.array.is_some() {
                    self.last_frame = frame;
                    let secs = now_ns.saturating_sub(self.row0_ns) as f64 / 1e9;
                    sync(self, SyncType::Sync, frame, secs as f32);
                }
            }
            LeadEvent::Stop { blank } => {
                if self.array.take().is_some() {
                    let secs = now_ns.saturating_sub(self.row0_ns) as f64 / 1e9;
                    sync(self, SyncType::Stop, self.last_frame, secs as f32);
                }
                if blank {
                    let n = packet::encode_blank(&mut self.buf).unwrap_or(0);
                    send(&self.buf[..n]);
                }
            }
        }
    }
}

/// The leader's socket: bound to the listen address (port 0 picks one),
/// with the multicast interface set to it; SO_BROADCAST only when a
/// destination is a broadcast address.
pub fn bind(settings: &SyncSettings) -> io::Result<(UdpSocket, Vec<SocketAddrV4>)> {
    let from = SocketAddrV4::new(*settings.listen.ip(), 0);
    let sock = UdpSocket::bind(from)?;
    let to = if settings.to.is_empty() {
        vec![SocketAddrV4::new(packet::MULTICAST_GROUP, packet::PORT)]
    } else {
        settings.to.clone()
    };
    if to
        .iter()
        .any(|a| a.ip().is_broadcast() || a.ip().octets()[3] == 255)
    {
        sock.set_broadcast(true)?;
    }
    if to.iter().any(|a| a.ip().is_multicast()) {
        set_multicast_if(&sock, *settings.listen.ip())?;
        sock.set_multicast_ttl_v4(1)?;
    }
    Ok((sock, to))
}

fn set_multicast_if(sock: &UdpSocket, ip: std::net::Ipv4Addr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let a = libc::in_addr {
        s_addr: u32::from(ip).to_be(),
    };
    // SAFETY: the fd is an open socket; a is a valid in_addr of that size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            &a as *const libc::in_addr as *const libc::c_void,
            std::mem::size_of::<libc::in_addr>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A running sender thread.
pub struct LeadHandle {
    /// The player's side.
    pub ring: Arc<LeadRing>,
    /// The status counters (packets sent, send errors, file).
    pub stats: Arc<SyncStats>,
    thread: Thread,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl LeadHandle {
    /// A publisher for the player thread.
    pub fn publisher(&self) -> LeadPublisher {
        LeadPublisher::new(self.ring.clone(), Some(self.thread.clone()))
    }
    /// Send what is queued, then stop the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Start the sender on `socket`, sending to every address of `to`. `now`
/// is the player's clock; `name_of` writes an array's name.
pub fn spawn(
    socket: UdpSocket,
    to: Vec<SocketAddrV4>,
    now: Arc<dyn Fn() -> u64 + Send + Sync>,
    mut name_of: impl FnMut(u32, &mut String) + Send + 'static,
) -> io::Result<LeadHandle> {
    let ring = Arc::new(LeadRing::default());
    let stats = Arc::new(SyncStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (r, s, st) = (ring.clone(), stats.clone(), stop.clone());
    let join = std::thread::Builder::new()
        .name("multisync-out".into())
        .spawn(move || {
            let mut state = LeadState::default();
            loop {
                while let Some(e) = r.pop() {
                    let t = now();
                    state.packets(e, t, &mut name_of, &mut |d: &[u8]| {
                        for a in &to {
                            match socket.send_to(d, a) {
                                Ok(_) => s.packets.fetch_add(1, Relaxed),
                                Err(_) => s.errors.fetch_add(1, Relaxed),
                            };
                        }
                    });
                    if let Ok(mut f) = s.file.lock() {
                        if f.as_str() != state.name {
                            f.clear();
                            f.push_str(&state.name);
                        }
                    }
                }
                if st.load(Ordering::SeqCst) {
                    break;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
        })?;
    Ok(LeadHandle {
        ring,
        stats,
        thread: join.thread().clone(),
        stop,
        join: Some(join),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::packet::{parse, Packet};

    #[test]
    fn cadence_is_fpps() {
        let due: Vec<u32> = (0..80).filter(|&f| sync_due(f)).collect();
        assert_eq!(due, vec![4, 8, 12, 16, 20, 24, 28, 32, 42, 52, 62, 72]);
    }

    #[test]
    fn events_become_packets_with_send_time_seconds() {
        let ring = Arc::new(LeadRing::default());
        let mut p = LeadPublisher::new(ring.clone(), None);
        p.frame(4); // not playing: nothing
        p.open(1);
        p.start(1, 1_000_000_000);
        for f in 1..=12 {
            p.frame(f);
        }
        p.stop(true);
        let mut st = LeadState::default();
        let mut out: Vec<(String, u32, f32, Option<SyncType>)> = vec![];
        let mut names = |i: u32, s: &mut String| s.push_str(["A", "shows/B"][i as usize]);
        let mut now = 1_000_000_000u64;
        while let Some(e) = ring.pop() {
            now += 10_000_000;
            st.packets(
                e,
                now,
                &mut names,
                &mut |d: &[u8]| match parse(d).unwrap() {
                    Packet::Sync(s) => {
                        out.push((s.file.into(), s.frame, s.seconds, Some(s.sync_type)))
                    }
                    Packet::Blank => out.push((String::new(), 0, 0.0, None)),
                    _ => panic!(),
                },
            );
        }
        let kinds: Vec<_> = out.iter().map(|o| (o.0.as_str(), o.1, o.3)).collect();
        assert_eq!(
            kinds,
            vec![
                ("shows/B.fseq", 0, Some(SyncType::Open)),
                ("shows/B.fseq", 0, Some(SyncType::Start)),
                ("shows/B.fseq", 4, Some(SyncType::Sync)),
                ("shows/B.fseq", 8, Some(SyncType::Sync)),
                ("shows/B.fseq", 12, Some(SyncType::Sync)),
                ("shows/B.fseq", 12, Some(SyncType::Stop)),
                ("", 0, None),
            ]
        );
        // the first SYNC popped 30 ms after row 0: seconds = 0.03
        assert!((out[2].2 - 0.03).abs() < 1e-6, "{}", out[2].2);
    }

    #[test]
    fn a_held_start_is_replaced_by_a_later_one_and_dropped_by_stop() {
        let ring = Arc::new(LeadRing::default());
        let mut p = LeadPublisher::new(ring.clone(), None);
        p.start(0, 100);
        p.start(1, 100);
        assert!(ring.pop().is_none(), "held until flush");
        p.flush();
        p.flush();
        assert_eq!(
            ring.pop(),
            Some(LeadEvent::Start {
                array: 1,
                row0_ns: 100
            })
        );
        assert!(ring.pop().is_none());
        p.start(0, 200);
        p.stop(false);
        assert_eq!(ring.pop(), Some(LeadEvent::Stop { blank: false }));
        assert!(ring.pop().is_none(), "the START held at the stop is gone");
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let ring = LeadRing::default();
        for i in 0..LEAD_RING as u32 {
            assert!(ring.push(LeadEvent::Sync { frame: i }));
        }
        assert!(!ring.push(LeadEvent::Open { array: 0 }));
        assert_eq!(ring.dropped.load(Relaxed), 1);
        assert_eq!(ring.pop(), Some(LeadEvent::Sync { frame: 0 }));
        let e = LeadEvent::Start {
            array: 7,
            row0_ns: u64::MAX,
        };
        let (a, b) = e.encode();
        assert_eq!(LeadEvent::decode(a, b), e);
    }
}
