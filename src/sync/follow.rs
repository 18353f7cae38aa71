//! The follower's listener thread: MultiSync datagrams in, [`SyncEvent`]s
//! for the player and clock [`Observation`]s out.
//!
//! It binds UDP 32320 on the wildcard address (so unicast, broadcast and
//! the multicast group 239.70.80.80 all arrive) and joins the group on the
//! interface of the configured listen address. It reads in bounded batches
//! and yields between them, answers discover pings with its own ping
//! (unicast to the asker), and never blocks the player: observations go
//! through the lock-free [`ObsRing`].

use crate::sync::names::strip_fseq;
use crate::sync::packet::{self, FileType, Packet, PingInfo, SyncType, PING_V3_LEN};
use crate::sync::pll::{Observation, SECONDS_EPSILON};
use crate::sync::{AfterSync, ObsRing, SyncEvent, SyncSettings, SyncSink, SyncStats};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Datagrams read before the thread yields.
pub const BATCH: usize = 32;
/// How often the thread checks its stop flag when nothing arrives.
pub const POLL: Duration = Duration::from_millis(50);

/// The follower socket. A loopback listen address is bound as it is (no
/// multicast: tests); any other binds `0.0.0.0:port` with SO_REUSEADDR and
/// joins the group on the listen address's interface (any interface for
/// the unspecified address).
pub fn bind(listen: SocketAddrV4) -> io::Result<UdpSocket> {
    if listen.ip().is_loopback() {
        return UdpSocket::bind(listen);
    }
    use nix::sys::socket::{self as s, sockopt};
    let fd: OwnedFd = s::socket(
        s::AddressFamily::Inet,
        s::SockType::Datagram,
        s::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    s::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: listen.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::UNSPECIFIED).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: fd is an open socket; sa is a valid sockaddr_in of the
    // length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let sock = UdpSocket::from(fd);
    sock.join_multicast_v4(&packet::MULTICAST_GROUP, listen.ip())?;
    Ok(sock)
}

/// The packet logic of the follower, without a socket: testable alone.
pub struct Follower<R, S> {
    resolve: R,
    sink: S,
    ring: Arc<ObsRing>,
    stats: Arc<SyncStats>,
    after: AfterSync,
    hostname: String,
    addr: Ipv4Addr,
    epoch: u32,
    /// The file followed now (the name as sent), and its array.
    current: Option<(String, u32)>,
    /// The last file that mapped to nothing, so it is counted once.
    unknown: Option<String>,
    /// When the latest START came, and the file it replaced: a SYNC sent
    /// before that START can arrive after it (a leader sends START and a
    /// SYNC in one tick, and the network may swap them).
    started: Option<(u64, Option<String>)>,
}

/// A SYNC of the file a START replaced, this soon after the START, was
/// sent before it.
pub const STALE_NS: u64 = 1_000_000_000;
/// A SYNC of the file started whose seconds are this far beyond the time
/// since its START is from the pass before it.
pub const AHEAD_NS: u64 = 250_000_000;

impl<R, S> Follower<R, S>
where
    R: FnMut(&str) -> Option<u32>,
    S: SyncSink,
{
    /// A follower resolving names with `resolve` and delivering to `sink`.
    pub fn new(settings: &SyncSettings, resolve: R, sink: S) -> Follower<R, S> {
        Follower {
            resolve,
            sink,
            ring: Arc::new(ObsRing::default()),
            stats: Arc::new(SyncStats::default()),
            after: settings.after_sync,
            hostname: settings.hostname.clone(),
            addr: *settings.listen.ip(),
            epoch: 0,
            current: None,
            unknown: None,
            started: None,
        }
    }
    /// The ring the player drains.
    pub fn ring(&self) -> Arc<ObsRing> {
        self.ring.clone()
    }
    /// The status counters.
    pub fn stats(&self) -> Arc<SyncStats> {
        self.stats.clone()
    }

    /// Our ping (mode remote), in `out`.
    pub fn ping(&self, out: &mut [u8; PING_V3_LEN]) {
        let (major, minor) = (
            env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
            env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
        );
        packet::encode_ping(
            out,
            false,
            &PingInfo {
                system_type: packet::SYSTEM_TYPE_OTHER,
                major,
                minor,
                mode: packet::MODE_REMOTE,
                addr: self.addr,
                hostname: &self.hostname,
                version: env!("CARGO_PKG_VERSION"),
                model: "rowplay",
                ranges: "",
            },
        );
    }

    fn resolve_file(&mut self, file: &str) -> Option<u32> {
        if let Some((f, a)) = &self.current {
            if f == file {
                return Some(*a);
            }
        }
        match (self.resolve)(file) {
            Some(a) => {
                self.unknown = None;
                Some(a)
            }
            None => {
                if self.unknown.as_deref() != Some(file) {
                    self.stats.unknown_names.fetch_add(1, Relaxed);
                    self.unknown = Some(file.to_string());
                    self.sink.event(SyncEvent::Unknown);
                }
                None
            }
        }
    }

    fn follow(&mut self, file: &str, array: u32) {
        self.epoch = self.epoch.wrapping_add(1);
        self.current = Some((file.to_string(), array));
        if let Ok(mut f) = self.stats.file.lock() {
            f.clear();
            f.push_str(file);
        }
    }

    /// Handle one datagram received at `recv_ns` from `from`. Returns the
    /// length of a reply to send to `from` (written into `reply`), if any.
    pub fn handle(
        &mut self,
        buf: &[u8],
        from: SocketAddr,
        recv_ns: u64,
        reply: &mut [u8; PING_V3_LEN],
    ) -> Option<usize> {
        let p = match packet::parse(buf) {
            Ok(p) => p,
            Err(_) => {
                self.stats.errors.fetch_add(1, Relaxed);
                return None;
            }
        };
        self.stats.packets.fetch_add(1, Relaxed);
        match p {
            Packet::Sync(s) if s.file_type == FileType::Sequence => {
                if let SocketAddr::V4(a) = from {
                    self.stats.master.store(u32::from(*a.ip()), Relaxed);
                }
                self.sync(s.sync_type, s.file, s.frame, s.seconds, recv_ns);
                None
            }
            Packet::Sync(_) | Packet::Ignored(_) => None,
            Packet::Blank => {
                self.current = None;
                self.epoch = self.epoch.wrapping_add(1);
                self.sink.event(SyncEvent::Blank);
                None
            }
            Packet::Ping(p) if p.discover => {
                self.ping(reply);
                Some(PING_V3_LEN)
            }
            Packet::Ping(_) => None,
        }
    }

    fn sync(&mut self, st: SyncType, file: &str, frame: u32, seconds: f32, recv_ns: u64) {
        match st {
            SyncType::Open => {
                if let Some(array) = self.resolve_file(file) {
                    self.sink.event(SyncEvent::Open { array });
                }
            }
            SyncType::Start => {
                if let Some(array) = self.resolve_file(file) {
                    let replaced = self.current.take().map(|(f, _)| f).filter(|f| f != file);
                    self.started = Some((recv_ns, replaced));
                    self.follow(file, array);
                    self.sink.event(SyncEvent::Start {
                        array,
                        epoch: self.epoch,
                        recv_ns,
                    });
                } else {
                    self.current = None;
                }
            }
            SyncType::Sync => {
                let following = matches!(&self.current, Some((f, _)) if f == file);
                if self.stale(following, file, seconds, recv_ns) {
                    self.stats.stale.fetch_add(1, Relaxed);
                    return;
                }
                if !following {
                    let Some(array) = self.resolve_file(file) else {
                        self.current = None;
                        return;
                    };
                    self.follow(file, array);
                    // The observation goes first, so the player has it when
                    // it handles the join.
                    self.publish(frame, seconds, recv_ns);
                    self.sink.event(SyncEvent::Join {
                        array,
                        epoch: self.epoch,
                    });
                } else {
                    self.publish(frame, seconds, recv_ns);
                }
            }
            SyncType::Stop => {
                // A STOP for another file than the one followed is stale.
                let ours = match &self.current {
                    Some((f, _)) => f == file || strip_fseq(f) == strip_fseq(file),
                    None => true,
                };
                if ours {
                    self.current = None;
                    self.epoch = self.epoch.wrapping_add(1);
                    self.sink.event(SyncEvent::Stop { after: self.after });
                }
            }
        }
    }

    /// Whether a SYNC that came less than [`STALE_NS`] after the latest
    /// START was sent before it: of the file that START replaced, or of
    /// the file started with seconds more than [`AHEAD_NS`] beyond the
    /// time since (a SYNC of the pass before a loop; a frames-only master
    /// gives nothing to tell by). Later, a SYNC far ahead is the master
    /// seeking, which the clock follows.
    fn stale(&self, following: bool, file: &str, seconds: f32, recv_ns: u64) -> bool {
        let Some((t0, replaced)) = &self.started else {
            return false;
        };
        let since = recv_ns.saturating_sub(*t0);
        if since >= STALE_NS {
            return false;
        }
        if following {
            seconds > SECONDS_EPSILON && (seconds as f64 * 1e9) as u64 > since + AHEAD_NS
        } else {
            replaced.as_deref() == Some(file)
        }
    }

    fn publish(&mut self, frame: u32, seconds: f32, recv_ns: u64) {
        let o = Observation {
            recv_ns,
            frame,
            seconds,
            epoch: self.epoch,
        };
        if !self.ring.push(&o) {
            self.stats.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// A running listener thread.
pub struct FollowHandle {
    /// The ring the player drains.
    pub ring: Arc<ObsRing>,
    /// The status counters.
    pub stats: Arc<SyncStats>,
    /// Where the socket is bound.
    pub local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl FollowHandle {
    /// Stop the thread and wait for it (within one POLL).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

impl Drop for FollowHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Ask the kernel to stamp each datagram with the time it arrived
/// (SO_TIMESTAMPNS). Without it, [`recv_stamped`] reports an age of 0.
/// Refused by qemu-arm's user mode (ENOPROTOOPT). The kernel turns
/// stamping on a moment after the first socket asks; packets before that
/// are stamped when read (age about 0, as without it).
pub fn stamp_arrivals(socket: &UdpSocket) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One datagram, its sender and its age: how long ago the kernel took it
/// in, from the SO_TIMESTAMPNS stamp (CLOCK_REALTIME, so the age is taken
/// on that clock just after the read; a packet without a stamp, or one
/// the clock was stepped under, has age 0, and no age exceeds a second).
pub fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, u64)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
    use nix::sys::time::TimeSpec;
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let mut stamp = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                stamp = Some(ts);
            }
        }
    }
    let from = msg
        .address
        .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
        .ok_or_else(|| io::Error::other("datagram without a sender"))?;
    let age = stamp.map_or(0, |ts| {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map_or(0, |n| {
            n.tv_sec() as i128 * 1_000_000_000 + n.tv_nsec() as i128
        });
        let at = ts.tv_sec() as i128 * 1_000_000_000 + ts.tv_nsec() as i128;
        let age = now - at;
        if (0..1_000_000_000).contains(&age) {
            age as u64
        } else {
            0
        }
    });
    Ok((msg.bytes, from, age))
}

/// Start the listener on `socket`. `now` is the player's clock (receive
/// times must be on the time base of the deadlines); `resolve` maps a
/// master file name to an array (see [`crate::sync::names::NameMap`]).
pub fn spawn<R, S>(
    socket: UdpSocket,
    settings: &SyncSettings,
    now: Arc<dyn Fn() -> u64 + Send + Sync>,
    resolve: R,
    sink: S,
) -> io::Result<FollowHandle>
where
    R: FnMut(&str) -> Option<u32> + Send + 'static,
    S: SyncSink + 'static,
{
    socket.set_read_timeout(Some(POLL))?;
    // Best effort: without the stamps (an emulator, an old kernel) a
    // packet is timed when the thread reads it, as before.
    let _ = stamp_arrivals(&socket);
    let local_addr = socket.local_addr()?;
    let mut f = Follower::new(settings, resolve, sink);
    let (ring, stats) = (f.ring(), f.stats());
    let thread_stats = stats.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let join = std::thread::Builder::new()
        .name("multisync-in".into())
        .spawn(move || {
            let mut buf = [0u8; 1500];
            let mut reply = [0u8; PING_V3_LEN];
            while !stop2.load(Ordering::SeqCst) {
                for _ in 0..BATCH {
                    match recv_stamped(&socket, &mut buf) {
                        Ok((n, from, age)) => {
                            // When the packet came, not when this thread
                            // got to it: the thread's own wake-up is not
                            // network delay, and the soonest-packet filter
                            // cannot take it out if it is always there.
                            let t = now().saturating_sub(age);
                            if let Some(len) = f.handle(&buf[..n], from, t, &mut reply) {
                                if socket.send_to(&reply[..len], from).is_err() {
                                    thread_stats.errors.fetch_add(1, Relaxed);
                                }
                            }
                        }
                        Err(_) => break,
                    }
                }
                std::thread::yield_now();
            }
        })?;
    Ok(FollowHandle {
        ring,
        stats,
        local_addr,
        stop,
        join: Some(join),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn sync_pkt(st: SyncType, frame: u32, secs: f32, name: &str) -> Vec<u8> {
        let mut b = [0u8; packet::MAX_SYNC_LEN];
        let n = packet::encode_sync(&mut b, st, FileType::Sequence, frame, secs, name, "").unwrap();
        b[..n].to_vec()
    }

    type Events = Arc<Mutex<Vec<SyncEvent>>>;

    /// A follower of arrays named `names`, and the events it gives.
    fn follower(
        names: &'static [&'static str],
    ) -> (
        Follower<impl FnMut(&str) -> Option<u32>, impl SyncSink>,
        Events,
    ) {
        let events = Events::default();
        let ev = events.clone();
        let f = Follower::new(
            &SyncSettings::default(),
            move |n: &str| {
                crate::sync::names::NameMap::default()
                    .resolve(n, names)
                    .ok()
            },
            move |e| ev.lock().unwrap().push(e),
        );
        (f, events)
    }

    /// One datagram from a master at 10.0.0.9, received at `t`.
    fn feed<R, S>(f: &mut Follower<R, S>, p: Vec<u8>, t: u64) -> Option<usize>
    where
        R: FnMut(&str) -> Option<u32>,
        S: SyncSink,
    {
        let from: SocketAddr = "10.0.0.9:32320".parse().unwrap();
        f.handle(&p, from, t, &mut [0u8; PING_V3_LEN])
    }

    #[test]
    fn packets_become_events_and_observations() {
        let (mut f, events) = follower(&["A", "shows/B"]);
        assert_eq!(
            feed(&mut f, sync_pkt(SyncType::Open, 0, 0.0, "B.fseq"), 1),
            None
        );
        feed(&mut f, sync_pkt(SyncType::Start, 0, 0.0, "B.fseq"), 2);
        feed(&mut f, sync_pkt(SyncType::Sync, 4, 0.08, "B.fseq"), 3);
        // a SYNC for another file: late join
        feed(&mut f, sync_pkt(SyncType::Sync, 100, 2.0, "A.fseq"), 4);
        feed(&mut f, sync_pkt(SyncType::Sync, 110, 2.2, "Nope.fseq"), 5);
        feed(&mut f, sync_pkt(SyncType::Sync, 120, 2.4, "Nope.fseq"), 6);
        feed(&mut f, sync_pkt(SyncType::Stop, 0, 0.0, "Nope.fseq"), 7);
        feed(&mut f, b"FPPD\x03\x00\x00".to_vec(), 8);
        assert_eq!(
            *events.lock().unwrap(),
            vec![
                SyncEvent::Open { array: 1 },
                SyncEvent::Start {
                    array: 1,
                    epoch: 1,
                    recv_ns: 2
                },
                SyncEvent::Join { array: 0, epoch: 2 },
                SyncEvent::Unknown,
                SyncEvent::Stop {
                    after: AfterSync::Dark
                },
                SyncEvent::Blank,
            ]
        );
        let mut obs = vec![];
        f.ring().drain(|o| obs.push((o.frame, o.epoch, o.recv_ns)));
        assert_eq!(obs, vec![(4, 1, 3), (100, 2, 4)]);
        let s = f.stats();
        assert_eq!(s.unknown_names.load(Relaxed), 1, "counted once per name");
        assert_eq!(s.packets.load(Relaxed), 8);
        assert_eq!(
            s.master.load(Relaxed),
            u32::from(Ipv4Addr::new(10, 0, 0, 9))
        );
    }

    #[test]
    fn syncs_sent_before_a_start_that_come_after_it_are_stale() {
        let (mut f, events) = follower(&["A", "B"]);
        const S: u64 = 1_000_000_000;
        feed(&mut f, sync_pkt(SyncType::Start, 0, 0.0, "A.fseq"), S);
        feed(&mut f, sync_pkt(SyncType::Sync, 40, 0.8, "A.fseq"), 2 * S);
        // The switch: START B, then A's SYNC of the same tick overtaken.
        feed(&mut f, sync_pkt(SyncType::Start, 0, 0.0, "B.fseq"), 3 * S);
        feed(
            &mut f,
            sync_pkt(SyncType::Sync, 90, 1.8, "A.fseq"),
            3 * S + 3_000_000,
        );
        // The loop of B: START again, then the pass before's SYNC.
        feed(&mut f, sync_pkt(SyncType::Start, 0, 0.0, "B.fseq"), 7 * S);
        feed(
            &mut f,
            sync_pkt(SyncType::Sync, 192, 3.84, "B.fseq"),
            7 * S + 2_000_000,
        );
        feed(
            &mut f,
            sync_pkt(SyncType::Sync, 4, 0.08, "B.fseq"),
            7 * S + 80_000_000,
        );
        // A second on: a master that seeks ahead, and then plays A again,
        // are followed.
        feed(
            &mut f,
            sync_pkt(SyncType::Sync, 1000, 20.0, "B.fseq"),
            9 * S,
        );
        feed(&mut f, sync_pkt(SyncType::Sync, 50, 1.0, "A.fseq"), 10 * S);
        let kinds: Vec<_> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                SyncEvent::Start { array, .. } => format!("start {array}"),
                SyncEvent::Join { array, .. } => format!("join {array}"),
                e => format!("{e:?}"),
            })
            .collect();
        assert_eq!(kinds, ["start 0", "start 1", "start 1", "join 0"]);
        let mut frames = vec![];
        f.ring().drain(|o| frames.push(o.frame));
        assert_eq!(frames, [40, 4, 1000, 50]);
        assert_eq!(f.stats().stale.load(Relaxed), 2);
        assert_eq!(f.stats().to_json(crate::sync::Mode::Follow)["late"], 2);
    }

    #[test]
    fn discover_gets_our_ping_and_garbage_is_counted() {
        let mut f = Follower::new(&SyncSettings::default(), |_: &str| None, |_| {});
        let from: SocketAddr = "10.0.0.9:32320".parse().unwrap();
        let mut r = [0u8; PING_V3_LEN];
        assert_eq!(f.handle(b"FPPD\x04\x02\x00\x03\x00", from, 0, &mut r), None);
        assert_eq!(
            f.handle(b"FPPD\x04\x02\x00\x03\x01", from, 0, &mut r),
            Some(PING_V3_LEN)
        );
        let Ok(Packet::Ping(p)) = packet::parse(&r) else {
            panic!()
        };
        let i = p.info.unwrap();
        assert!(!p.discover);
        assert_eq!((i.system_type, i.mode), (0xC0, packet::MODE_REMOTE));
        assert_eq!(i.hostname, "rowplay");
        assert_eq!(f.handle(b"junk", from, 0, &mut r), None);
        assert_eq!(f.stats().errors.load(Relaxed), 1);
    }

    #[test]
    fn a_datagram_read_late_is_aged_from_its_arrival() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 16];
        // Without the option there is no stamp: age 0.
        tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
        let (n, from, age) = recv_stamped(&rx, &mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from, age),
            (&b"one"[..], tx.local_addr().unwrap(), 0)
        );
        // With it, a datagram that waited 30 ms in the socket is at least
        // that old when read (a lower bound: the kernel took it in before
        // the sleep began). Where the option is refused (qemu-arm's user
        // mode refuses it), reading still works, with age 0.
        // The kernel turns stamping on for the machine a moment later
        // (deferred work); until then a datagram is stamped when read. So
        // up to 20 tries, one of which must show the wait.
        let stamped = stamp_arrivals(&rx).is_ok();
        let mut ages = vec![];
        for _ in 0..20 {
            tx.send_to(b"two", rx.local_addr().unwrap()).unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let (n, _, age) = recv_stamped(&rx, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"two");
            ages.push(age);
            if age >= 30_000_000 {
                break;
            }
        }
        if stamped {
            assert!(ages.iter().any(|&a| a >= 30_000_000), "ages {ages:?}");
        } else {
            assert!(ages.iter().all(|&a| a == 0), "ages {ages:?}");
        }
    }
}
