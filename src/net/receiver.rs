//! The sockets and the receiver thread.
//!
//! One UDP socket per protocol, non-blocking, all read by one thread (on a
//! one-core Pi a thread per protocol buys nothing, and one thread keeps the
//! mux single-writer). The thread sleeps in `ppoll` until a socket is
//! readable or the mux has a due time (a frame held by the min-interval, a
//! source timeout), then reads at most [`BATCH`] datagrams per socket into
//! a preallocated buffer: no allocation per packet, and no socket can hold
//! the thread for long.
//!
//! E1.31 multicast: the socket is bound to the wildcard address and the
//! port (a socket bound to a unicast address receives no multicast), with
//! SO_REUSEADDR (OLA binds the port too), joined to 239.255.hi.lo for each
//! universe on the interface that holds `listen_addr`. IP_PKTINFO tells on
//! which interface each datagram arrived; with a specific `listen_addr`,
//! what arrived on another interface is counted and dropped. The kernel
//! caps joins per socket at `/proc/sys/net/ipv4/igmp_max_memberships`;
//! more universes than that are refused at start.
//!
//! Art-Net: an ArtPoll is answered with ArtPollReply packets (four
//! universes each) sent unicast to the address and port that asked.

use super::mapping::Mapping;
use super::mux::{Mux, MuxConfig};
use super::settings::NetSettings;
use super::stats::LiveStats;
use super::{artnet, ddp, e131, live_channel, LiveView, Protocol};
use crate::clock::monotonic_ns;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Datagrams read from one socket per wake-up at most.
pub const BATCH: usize = 64;
/// Receive buffer: larger than any valid packet of the three protocols, so
/// an oversized datagram is seen (and refused) rather than cut.
const BUF: usize = 2048;
/// The receiver checks its stop flag at least this often.
const IDLE_NS: u64 = 100_000_000;
/// Where the kernel's join limit is.
pub const IGMP_LIMIT_FILE: &str = "/proc/sys/net/ipv4/igmp_max_memberships";

/// Why live input could not start.
#[derive(Debug)]
pub enum NetError {
    /// The strip cannot be mapped.
    Mapping(super::MappingError),
    /// A socket could not be made or bound.
    Bind {
        /// Protocol of the socket.
        protocol: Protocol,
        /// Address and port.
        addr: SocketAddrV4,
        /// The OS error.
        err: io::Error,
    },
    /// `listen_addr` is on no interface.
    NoInterface(Ipv4Addr),
    /// More multicast joins than the kernel allows per socket.
    TooManyJoins {
        /// Joins needed (one per universe).
        wanted: usize,
        /// The limit.
        limit: usize,
    },
    /// A multicast join failed.
    Join {
        /// The group.
        group: Ipv4Addr,
        /// The OS error.
        err: io::Error,
    },
    /// The thread could not start.
    Thread(io::Error),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Mapping(e) => write!(f, "{e}"),
            NetError::Bind {
                protocol,
                addr,
                err,
            } => {
                write!(f, "cannot listen for {} on {addr}: {err}", protocol.name())
            }
            NetError::NoInterface(a) => {
                write!(f, "--listen-addr {a} is not an address of any interface")
            }
            NetError::TooManyJoins { wanted, limit } => write!(
                f,
                "E1.31 multicast needs {wanted} group joins but the kernel allows {limit} per \
                 socket ({IGMP_LIMIT_FILE}); raise it, or use fewer universes or unicast"
            ),
            NetError::Join { group, err } => {
                write!(f, "cannot join multicast group {group}: {err}")
            }
            NetError::Thread(e) => write!(f, "cannot start the network receiver thread: {e}"),
        }
    }
}

impl std::error::Error for NetError {}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, v: i32) -> io::Result<()> {
    // SAFETY: v outlives the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A non-blocking UDP socket with IP_PKTINFO, bound to `a`.
fn udp_socket(a: SocketAddrV4, reuse: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if reuse {
        setsockopt_int(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    }
    setsockopt_int(fd.as_raw_fd(), libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
    let sa = sockaddr(a);
    // SAFETY: sa is a valid sockaddr_in of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(errno());
    }
    Ok(fd)
}

fn local_port(fd: RawFd) -> u16 {
    // SAFETY: zeroed sockaddr_in is valid; getsockname writes at most len.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: sa and len are valid out-pointers.
    unsafe { libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len) };
    u16::from_be(sa.sin_port)
}

/// Index of the interface that holds `a`.
fn interface_of(a: Ipv4Addr) -> Option<u32> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head; freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut p = head;
    while !p.is_null() {
        // SAFETY: p is a node of the list getifaddrs returned.
        let ifa = unsafe { &*p };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and points to a sockaddr.
            let fam = unsafe { (*ifa.ifa_addr).sa_family } as i32;
            if fam == libc::AF_INET {
                // SAFETY: family AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                if Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)) == a {
                    // SAFETY: ifa_name is a NUL-terminated name.
                    let idx = unsafe { libc::if_nametoindex(ifa.ifa_name) };
                    if idx != 0 {
                        found = Some(idx);
                        break;
                    }
                }
            }
        }
        p = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs.
    unsafe { libc::freeifaddrs(head) };
    found
}

fn join(fd: RawFd, group: Ipv4Addr, iface_addr: Ipv4Addr, ifindex: u32) -> io::Result<()> {
    let m = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from(group).to_be(),
        },
        imr_address: libc::in_addr {
            s_addr: u32::from(iface_addr).to_be(),
        },
        imr_ifindex: ifindex as i32,
    };
    // SAFETY: m is a valid ip_mreqn of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_ADD_MEMBERSHIP,
            &m as *const libc::ip_mreqn as *const libc::c_void,
            std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The kernel's per-socket join limit, if readable.
pub fn igmp_limit() -> Option<usize> {
    std::fs::read_to_string(IGMP_LIMIT_FILE)
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Check the joins E1.31 multicast needs against the limit.
pub fn check_joins(wanted: usize, limit: Option<usize>) -> Result<(), NetError> {
    match limit {
        Some(limit) if wanted > limit => Err(NetError::TooManyJoins { wanted, limit }),
        _ => Ok(()),
    }
}

struct Sock {
    protocol: Protocol,
    fd: OwnedFd,
}

/// One received datagram's envelope.
struct Meta {
    len: usize,
    from: SocketAddrV4,
    ifindex: u32,
    /// The header's destination address.
    dst: Ipv4Addr,
    /// The local address the kernel would reply from.
    local: Ipv4Addr,
}

/// recvmsg one datagram with its IP_PKTINFO. `None` when nothing is left
/// (EAGAIN) or on an error.
fn recv_one(fd: RawFd, buf: &mut [u8; BUF], cmsg: &mut [u64; 16]) -> Option<Meta> {
    // SAFETY: all-zero is a valid sockaddr_in / msghdr.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: BUF,
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut sa as *mut _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(cmsg) as _;
    // SAFETY: msg points at buffers that live through the call.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_TRUNC) };
    if n < 0 {
        return None;
    }
    let mut meta = Meta {
        // MSG_TRUNC returns the real length; a cut datagram is refused by
        // the length checks of the parsers since len > BUF > any valid.
        len: n as usize,
        from: SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(sa.sin_addr.s_addr)),
            u16::from_be(sa.sin_port),
        ),
        ifindex: 0,
        dst: Ipv4Addr::UNSPECIFIED,
        local: Ipv4Addr::UNSPECIFIED,
    };
    // SAFETY: the CMSG macros walk the control buffer the kernel filled,
    // within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let pi = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in_pktinfo);
                meta.ifindex = pi.ipi_ifindex as u32;
                meta.dst = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr));
                meta.local = Ipv4Addr::from(u32::from_be(pi.ipi_spec_dst.s_addr));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Some(meta)
}

fn send_to(fd: RawFd, data: &[u8], to: SocketAddrV4) {
    let sa = sockaddr(to);
    // SAFETY: data and sa are valid for the lengths passed. A failed reply
    // is not worth more than a lost poll.
    unsafe {
        libc::sendto(
            fd,
            data.as_ptr() as *const libc::c_void,
            data.len(),
            libc::MSG_DONTWAIT,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
    }
}

/// The running receiver. Dropping it stops the thread.
pub struct Receiver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<LiveStats>,
    ports: Vec<(Protocol, u16)>,
}

impl Receiver {
    /// Open the sockets `s.listen` names, join the multicast groups, and
    /// start the receiver thread. Returns the receiver and the player's
    /// view. Everything the thread needs is allocated here.
    pub fn start(s: &NetSettings, map: Mapping) -> Result<(Receiver, LiveView), NetError> {
        let specific = s.listen_addr != Ipv4Addr::UNSPECIFIED;
        let ifindex = if specific {
            Some(interface_of(s.listen_addr).ok_or(NetError::NoInterface(s.listen_addr))?)
        } else {
            None
        };
        let mut socks = Vec::new();
        let mut ports = Vec::new();
        for l in &s.listen {
            let multicast = l.protocol == Protocol::E131 && s.multicast;
            let bind_ip = if multicast {
                Ipv4Addr::UNSPECIFIED
            } else {
                s.listen_addr
            };
            let addr = SocketAddrV4::new(bind_ip, l.port);
            let fd =
                udp_socket(addr, l.protocol == Protocol::E131).map_err(|err| NetError::Bind {
                    protocol: l.protocol,
                    addr,
                    err,
                })?;
            if multicast {
                check_joins(map.universes(), igmp_limit())?;
                for k in 0..map.universes() {
                    let group = e131::multicast_group(map.first_e131() + k as u16);
                    join(fd.as_raw_fd(), group, s.listen_addr, ifindex.unwrap_or(0))
                        .map_err(|err| NetError::Join { group, err })?;
                }
            }
            ports.push((l.protocol, local_port(fd.as_raw_fd())));
            socks.push(Sock {
                protocol: l.protocol,
                fd,
            });
        }
        let cfg = MuxConfig {
            min_interval_ns: s.live_min_interval_ns,
            timeout_ns: s.live_timeout_ns,
        };
        let (mux, view) = live_channel(map, cfg);
        let stats = view.stats().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let mut rx = Rx {
            socks,
            mux,
            settings: s.clone(),
            ifindex,
            stop: stop.clone(),
            buf: Box::new([0; BUF]),
            cmsg: [0; 16],
            reply: [0; artnet::POLL_REPLY_LEN],
            joined_sync: [0; 4],
        };
        let thread = std::thread::Builder::new()
            .name("rowplay-net".into())
            .spawn(move || rx.run())
            .map_err(NetError::Thread)?;
        Ok((
            Receiver {
                stop,
                thread: Some(thread),
                stats,
                ports,
            },
            view,
        ))
    }

    /// The shared counters (for `status` and `--stats-json`).
    pub fn stats(&self) -> &Arc<LiveStats> {
        &self.stats
    }

    /// The local port of a protocol's socket (useful with port 0).
    pub fn port(&self, p: Protocol) -> Option<u16> {
        self.ports.iter().find(|(q, _)| *q == p).map(|(_, n)| *n)
    }

    /// Stop the thread and wait for it.
    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Rx {
    socks: Vec<Sock>,
    mux: Mux,
    settings: NetSettings,
    ifindex: Option<u32>,
    stop: Arc<AtomicBool>,
    buf: Box<[u8; BUF]>,
    cmsg: [u64; 16],
    reply: [u8; artnet::POLL_REPLY_LEN],
    /// Sync universes joined so far (0 = free).
    joined_sync: [u16; 4],
}

impl Rx {
    fn run(&mut self) {
        let mut fds = [libc::pollfd {
            fd: -1,
            events: libc::POLLIN,
            revents: 0,
        }; 3];
        for (i, s) in self.socks.iter().enumerate().take(3) {
            fds[i].fd = s.fd.as_raw_fd();
        }
        let n = self.socks.len().min(3);
        while !self.stop.load(Relaxed) {
            let now = monotonic_ns();
            let next = self.mux.tick(now).unwrap_or(u64::MAX);
            let wait = next.saturating_sub(now).min(IDLE_NS);
            let ts = libc::timespec {
                tv_sec: (wait / 1_000_000_000) as libc::time_t,
                tv_nsec: (wait % 1_000_000_000) as _,
            };
            // SAFETY: fds has n valid entries; ts is valid.
            let r =
                unsafe { libc::ppoll(fds.as_mut_ptr(), n as libc::nfds_t, &ts, std::ptr::null()) };
            if r <= 0 {
                continue;
            }
            for (i, f) in fds.iter().enumerate().take(n) {
                if f.revents & libc::POLLIN != 0 {
                    self.drain(i);
                }
            }
            self.join_sync_group();
        }
    }

    fn drain(&mut self, i: usize) {
        let fd = self.socks[i].fd.as_raw_fd();
        let protocol = self.socks[i].protocol;
        for _ in 0..BATCH {
            let Some(m) = recv_one(fd, &mut self.buf, &mut self.cmsg) else {
                return;
            };
            let now = monotonic_ns();
            let stats = self.mux.stats().clone();
            if let (Some(want), true) = (self.ifindex, m.ifindex != 0) {
                if m.ifindex != want && m.dst != self.settings.listen_addr {
                    stats.wrong_interface.fetch_add(1, Relaxed);
                    continue;
                }
            }
            let from = *m.from.ip();
            if !self.settings.allowed(from) {
                stats.not_allowed.fetch_add(1, Relaxed);
                continue;
            }
            let data = &self.buf[..m.len.min(BUF)];
            let data = if m.len > BUF { &self.buf[..0] } else { data };
            match protocol {
                Protocol::Ddp => match ddp::parse(data) {
                    Ok(p) => self.mux.on_ddp(from, &p, now),
                    Err(_) => self.mux.on_bad(protocol, from),
                },
                Protocol::E131 => match e131::parse(data) {
                    Ok(p) => self.mux.on_e131(from, &p, now),
                    Err(_) => self.mux.on_bad(protocol, from),
                },
                Protocol::ArtNet => match artnet::parse(data) {
                    Ok(p) => {
                        if self.mux.on_artnet(from, &p, now) {
                            self.poll_reply(fd, m.from, m.local);
                        }
                    }
                    Err(_) => self.mux.on_bad(protocol, from),
                },
            }
        }
    }

    fn poll_reply(&mut self, fd: RawFd, to: SocketAddrV4, local: Ipv4Addr) {
        let ip = if self.settings.listen_addr != Ipv4Addr::UNSPECIFIED {
            self.settings.listen_addr
        } else {
            local
        };
        let node = artnet::NodeInfo {
            ip,
            short_name: "rowplay",
            long_name: "rowplay live input",
        };
        let map = self.mux_map();
        let reply = &mut self.reply;
        let mut bind = 1u8;
        artnet::poll_reply_pages(map.first_artnet(), map.universes(), |first, count| {
            let n = artnet::encode_poll_reply(reply, &node, first, count, bind);
            send_to(fd, &reply[..n], to);
            bind = bind.saturating_add(1);
        });
    }

    fn mux_map(&self) -> Mapping {
        self.mux.mapping()
    }

    /// Join the multicast group of an E1.31 sync address seen in data
    /// (sacn sends sync packets only by multicast). Best effort, a few at
    /// most: a failed join leaves the source on the min-interval rule.
    fn join_sync_group(&mut self) {
        let Some(u) = self.mux.take_sync_group() else {
            return;
        };
        if !self.settings.multicast || self.joined_sync.contains(&u) {
            return;
        }
        let Some(slot) = self.joined_sync.iter().position(|&x| x == 0) else {
            return;
        };
        let Some(s) = self.socks.iter().find(|s| s.protocol == Protocol::E131) else {
            return;
        };
        let group = e131::multicast_group(u);
        if join(
            s.fd.as_raw_fd(),
            group,
            self.settings.listen_addr,
            self.ifindex.unwrap_or(0),
        )
        .is_ok()
        {
            self.joined_sync[slot] = u;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_limit_is_refused_with_the_limit_named() {
        assert!(check_joins(20, Some(20)).is_ok());
        assert!(check_joins(21, None).is_ok());
        let e = check_joins(21, Some(20)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("21") && msg.contains("20") && msg.contains(IGMP_LIMIT_FILE),
            "{msg}"
        );
    }

    #[test]
    fn loopback_has_an_interface() {
        assert!(interface_of(Ipv4Addr::LOCALHOST).is_some());
        assert!(interface_of(Ipv4Addr::new(192, 0, 2, 77)).is_none());
    }
}
