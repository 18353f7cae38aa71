//! Sources and the mux: the receiver thread's state.
//!
//! A source is (protocol, sender): the E1.31 CID, or the sender's IPv4
//! address for DDP and Art-Net. Each keeps the latest data of every
//! universe (or DDP range) it sent in a preallocated buffer the strip's
//! size; a frame is that whole buffer. A frame is complete:
//! - DDP: on a packet with the push flag; until the first push from that
//!   sender has been seen, on every data packet (WLED's rule);
//! - E1.31 / Art-Net, once the source has sent a sync packet (E1.31
//!   universe sync for its sync address, ArtSync): on the sync packet;
//! - otherwise on a data packet, as soon as every universe of the strip has
//!   arrived since the last frame, or `min_interval` after the first packet
//!   of the frame; never more often than once per `min_interval`, so a
//!   4-universe frame is one hand-off and a sender of changed universes
//!   only (sacn, OLA) still shows.
//!
//! The winner is the source with the highest priority (E1.31's field; DDP
//! and Art-Net count 100), then the one that started first, among the
//! sources with at least one complete frame. Its frames go to the
//! [`slot`](super::slot); a newly elected winner's current state goes at
//! once. A source is lost `timeout` after its last packet, or at once on
//! E1.31 Stream_Terminated. At most [`MAX_SOURCES`] sources are kept; a
//! packet from one more is counted and dropped.
//!
//! Every function takes `now_ns` (CLOCK_MONOTONIC) as a parameter, so the
//! timing rules are tested on made-up times. Nothing here allocates after
//! [`Mux::new`].

use super::mapping::{Mapping, MAX_UNIVERSES};
use super::slot::{SlotWriter, Waker};
use super::stats::{LiveStats, SourceStats};
use super::{artnet, ddp, e131, Protocol};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

pub use super::stats::{DEFAULT_PRIORITY, MAX_SOURCES};
/// Art-Net 4: a node leaves synchronous mode 4 s after the last ArtSync.
pub const ARTSYNC_TIMEOUT_NS: u64 = 4_000_000_000;

const WORDS: usize = MAX_UNIVERSES / 64;

/// Timing settings of the mux.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MuxConfig {
    /// Shortest time between two frames of one source without sync.
    pub min_interval_ns: u64,
    /// A source is lost this long after its last packet.
    pub timeout_ns: u64,
}

impl Default for MuxConfig {
    fn default() -> Self {
        MuxConfig {
            min_interval_ns: 5_000_000,
            timeout_ns: 2_500_000_000,
        }
    }
}

/// Who a source is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Cid([u8; 16]),
    Ip(Ipv4Addr),
}

struct Source {
    active: bool,
    id: u32,
    protocol: Protocol,
    key: Key,
    addr: Ipv4Addr,
    /// Start order (smaller started first).
    order: u64,
    priority: u8,
    buf: Box<[u8]>,
    seq: [u8; MAX_UNIVERSES],
    seq_seen: [u64; WORDS],
    dirty: [u64; WORDS],
    dirty_count: usize,
    pending_since: Option<u64>,
    last_complete: Option<u64>,
    due: Option<u64>,
    last_packet: u64,
    frames: u64,
    ddp_push_seen: bool,
    /// E1.31: the sync address the data carries (0 = none).
    sync_address: u16,
    /// E1.31: a sync packet for `sync_address` has been seen.
    e131_synced: bool,
    /// Art-Net: time of the last ArtSync from this sender.
    artsync_at: Option<u64>,
}

impl Source {
    fn new(len: usize) -> Source {
        Source {
            active: false,
            id: 0,
            protocol: Protocol::Ddp,
            key: Key::Ip(Ipv4Addr::UNSPECIFIED),
            addr: Ipv4Addr::UNSPECIFIED,
            order: 0,
            priority: DEFAULT_PRIORITY,
            buf: vec![0; len].into_boxed_slice(),
            seq: [0; MAX_UNIVERSES],
            seq_seen: [0; WORDS],
            dirty: [0; WORDS],
            dirty_count: 0,
            pending_since: None,
            last_complete: None,
            due: None,
            last_packet: 0,
            frames: 0,
            ddp_push_seen: false,
            sync_address: 0,
            e131_synced: false,
            artsync_at: None,
        }
    }

    fn reset(&mut self, id: u32, protocol: Protocol, key: Key, addr: Ipv4Addr, order: u64) {
        self.active = true;
        self.id = id;
        self.protocol = protocol;
        self.key = key;
        self.addr = addr;
        self.order = order;
        self.priority = DEFAULT_PRIORITY;
        self.buf.fill(0);
        self.seq_seen = [0; WORDS];
        self.dirty = [0; WORDS];
        self.dirty_count = 0;
        self.pending_since = None;
        self.last_complete = None;
        self.due = None;
        self.frames = 0;
        self.ddp_push_seen = false;
        self.sync_address = 0;
        self.e131_synced = false;
        self.artsync_at = None;
    }

    fn mark_dirty(&mut self, index: usize) {
        let (w, b) = (index / 64, 1u64 << (index % 64));
        if self.dirty[w] & b == 0 {
            self.dirty[w] |= b;
            self.dirty_count += 1;
        }
    }

    /// Sequence check for universe `index`; true when the packet is to be
    /// discarded.
    fn stale(&mut self, index: usize, seq: u8, artnet: bool) -> bool {
        let (w, b) = (index / 64, 1u64 << (index % 64));
        let seen = self.seq_seen[w] & b != 0;
        let last = self.seq[index];
        self.seq_seen[w] |= b;
        // Art-Net sequence 0 means "no sequence".
        if artnet && (seq == 0 || last == 0) {
            self.seq[index] = seq;
            return false;
        }
        if seen && e131::out_of_sequence(last, seq) {
            return true;
        }
        self.seq[index] = seq;
        false
    }
}

/// The receiver thread's state: sources, the winner, and the writing half
/// of the frame slot.
pub struct Mux {
    map: Mapping,
    cfg: MuxConfig,
    sources: Box<[Source]>,
    next_id: u32,
    next_order: u64,
    winner: Option<usize>,
    counter: u64,
    slot: SlotWriter,
    waker: Waker,
    stats: Arc<LiveStats>,
    /// A sync address seen in E1.31 data whose group should be joined.
    want_sync_group: Option<u16>,
}

impl Mux {
    /// Make the mux; all per-source buffers are allocated here.
    pub fn new(
        map: Mapping,
        cfg: MuxConfig,
        slot: SlotWriter,
        waker: Waker,
        stats: Arc<LiveStats>,
    ) -> Mux {
        let len = map.frame_len();
        Mux {
            map,
            cfg,
            sources: (0..MAX_SOURCES).map(|_| Source::new(len)).collect(),
            next_id: 1,
            next_order: 0,
            winner: None,
            counter: 0,
            slot,
            waker,
            stats,
            want_sync_group: None,
        }
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<LiveStats> {
        &self.stats
    }

    /// The strip's mapping.
    pub fn mapping(&self) -> Mapping {
        self.map
    }

    /// Id of the winning source, if any.
    pub fn winner(&self) -> Option<u32> {
        self.winner.map(|i| self.sources[i].id)
    }

    /// A new E1.31 sync address seen in data (the receiver joins its
    /// multicast group); taken once.
    pub fn take_sync_group(&mut self) -> Option<u16> {
        self.want_sync_group.take()
    }

    fn st(&self, i: usize) -> &SourceStats {
        &self.stats.sources[i]
    }

    fn find(&self, protocol: Protocol, key: Key) -> Option<usize> {
        self.sources
            .iter()
            .position(|s| s.active && s.protocol == protocol && s.key == key)
    }

    fn find_or_add(
        &mut self,
        protocol: Protocol,
        key: Key,
        addr: Ipv4Addr,
        now: u64,
    ) -> Option<usize> {
        if let Some(i) = self.find(protocol, key) {
            return Some(i);
        }
        let Some(i) = self.sources.iter().position(|s| !s.active) else {
            self.stats.sources_overflow.fetch_add(1, Relaxed);
            return None;
        };
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let order = self.next_order;
        self.next_order += 1;
        self.sources[i].reset(id, protocol, key, addr, order);
        self.sources[i].last_packet = now;
        self.stats.sources[i].begin(id, protocol, addr, now);
        Some(i)
    }

    /// Count a packet that failed to parse, on the source of that protocol
    /// and address if there is one.
    pub fn on_bad(&mut self, protocol: Protocol, from: Ipv4Addr) {
        match self
            .sources
            .iter()
            .position(|s| s.active && s.protocol == protocol && s.addr == from)
        {
            Some(i) => {
                self.st(i).bad_packets.fetch_add(1, Relaxed);
            }
            None => {
                self.stats.bad_packets.fetch_add(1, Relaxed);
            }
        }
    }

    fn touch(&mut self, i: usize, now: u64) {
        self.sources[i].last_packet = now;
        let st = self.st(i);
        st.packets.fetch_add(1, Relaxed);
        st.last_ns.store(now, Relaxed);
    }

    /// A valid DDP packet from `from`.
    pub fn on_ddp(&mut self, from: Ipv4Addr, p: &ddp::Packet<'_>, now: u64) {
        let Some(i) = self.find_or_add(Protocol::Ddp, Key::Ip(from), from, now) else {
            return;
        };
        self.touch(i, now);
        if !p.is_display_data() {
            return;
        }
        let map = self.map;
        if map
            .apply_ddp(&mut self.sources[i].buf, p.offset, p.data)
            .is_none()
        {
            self.st(i).bad_packets.fetch_add(1, Relaxed);
            return;
        }
        if p.push() {
            self.sources[i].ddp_push_seen = true;
            self.complete(i, now);
        } else if !self.sources[i].ddp_push_seen {
            // Every packet is a frame until the sender shows it pushes.
            self.gate(i, now, true);
        }
    }

    /// A valid E1.31 packet from `from`.
    pub fn on_e131(&mut self, from: Ipv4Addr, p: &e131::Packet<'_>, now: u64) {
        match p {
            e131::Packet::Discovery => {}
            e131::Packet::Sync(s) => {
                let Some(i) = self.find(Protocol::E131, Key::Cid(s.cid)) else {
                    return;
                };
                self.touch(i, now);
                if s.sync_address != 0 && s.sync_address == self.sources[i].sync_address {
                    self.sources[i].e131_synced = true;
                    self.complete(i, now);
                }
            }
            e131::Packet::Data(d) => {
                let Some(i) = self.find_or_add(Protocol::E131, Key::Cid(d.cid), from, now) else {
                    return;
                };
                self.touch(i, now);
                self.st(i).set_name(d.name);
                if d.terminated() {
                    self.lose(i, now);
                    return;
                }
                let Some(u) = self.map.e131_index(d.universe) else {
                    return;
                };
                if self.sources[i].stale(u, d.sequence, false) {
                    self.st(i).sequence_errors.fetch_add(1, Relaxed);
                    return;
                }
                if d.preview() {
                    return;
                }
                self.sources[i].priority = d.priority;
                self.st(i).priority.store(d.priority, Relaxed);
                if d.sync_address != self.sources[i].sync_address {
                    self.sources[i].sync_address = d.sync_address;
                    self.sources[i].e131_synced = false;
                    if d.sync_address != 0 {
                        self.want_sync_group = Some(d.sync_address);
                    }
                }
                self.universe_data(i, u, d.slots, now);
                let s = &self.sources[i];
                if !(s.sync_address != 0 && s.e131_synced) {
                    self.gate(i, now, false);
                }
            }
        }
    }

    /// A valid Art-Net packet from `from`. Returns true for an ArtPoll (the
    /// receiver answers it).
    pub fn on_artnet(&mut self, from: Ipv4Addr, p: &artnet::Packet<'_>, now: u64) -> bool {
        match p {
            artnet::Packet::Poll => return true,
            artnet::Packet::Other(_) => {}
            artnet::Packet::Sync => {
                if let Some(i) = self.find(Protocol::ArtNet, Key::Ip(from)) {
                    self.touch(i, now);
                    self.sources[i].artsync_at = Some(now);
                    self.complete(i, now);
                }
            }
            artnet::Packet::Dmx(d) => {
                let Some(i) = self.find_or_add(Protocol::ArtNet, Key::Ip(from), from, now) else {
                    return false;
                };
                self.touch(i, now);
                let Some(u) = self.map.artnet_index(d.port_address) else {
                    return false;
                };
                if self.sources[i].stale(u, d.sequence, true) {
                    self.st(i).sequence_errors.fetch_add(1, Relaxed);
                    return false;
                }
                self.universe_data(i, u, d.slots, now);
                let synced = self.sources[i]
                    .artsync_at
                    .is_some_and(|t| now.saturating_sub(t) < ARTSYNC_TIMEOUT_NS);
                if !synced {
                    self.gate(i, now, false);
                }
            }
        }
        false
    }

    fn universe_data(&mut self, i: usize, u: usize, slots: &[u8], _now: u64) {
        let map = self.map;
        let s = &mut self.sources[i];
        map.apply_universe(&mut s.buf, u, slots);
        s.mark_dirty(u);
        self.stats.sources[i].mark_universe(u);
    }

    /// A frame without sync: complete it now or at its due time.
    fn gate(&mut self, i: usize, now: u64, whole: bool) {
        let min = self.cfg.min_interval_ns;
        let all = whole || self.sources[i].dirty_count >= self.map.universes();
        let s = &mut self.sources[i];
        let since = *s.pending_since.get_or_insert(now);
        let mut due = if all { now } else { since.saturating_add(min) };
        if let Some(t) = s.last_complete {
            due = due.max(t.saturating_add(min));
        }
        if now >= due {
            self.complete(i, now);
        } else {
            s.due = Some(due);
        }
    }

    fn complete(&mut self, i: usize, now: u64) {
        let s = &mut self.sources[i];
        s.dirty = [0; WORDS];
        s.dirty_count = 0;
        s.pending_since = None;
        s.due = None;
        s.last_complete = Some(now);
        s.frames += 1;
        self.stats.sources[i].frames.fetch_add(1, Relaxed);
        let before = self.winner;
        self.elect(now);
        if self.winner == Some(i) && before == Some(i) {
            self.publish(i, now);
        }
    }

    /// Pick the winner; a new winner's state is published at once.
    fn elect(&mut self, now: u64) {
        let mut best: Option<usize> = None;
        for (j, s) in self.sources.iter().enumerate() {
            if !s.active || s.frames == 0 {
                continue;
            }
            best = match best {
                Some(b) => {
                    let o = &self.sources[b];
                    if (s.priority, std::cmp::Reverse(s.order))
                        > (o.priority, std::cmp::Reverse(o.order))
                    {
                        Some(j)
                    } else {
                        Some(b)
                    }
                }
                None => Some(j),
            };
        }
        if best == self.winner {
            return;
        }
        self.winner = best;
        match best {
            Some(j) => {
                self.stats.winner.store(self.sources[j].id, Relaxed);
                self.publish(j, now);
            }
            None => {
                self.stats.winner.store(0, Relaxed);
                // Wake the player so it falls back to playback now.
                self.waker.wake();
            }
        }
    }

    fn publish(&mut self, i: usize, now: u64) {
        self.counter += 1;
        let s = &self.sources[i];
        let f = self.slot.back();
        f.pixels.copy_from_slice(&s.buf);
        f.counter = self.counter;
        f.t_ns = now;
        f.source = s.id;
        if self.slot.publish() {
            self.stats.sources[i].frames_dropped.fetch_add(1, Relaxed);
        }
        self.waker.wake();
    }

    fn lose(&mut self, i: usize, now: u64) {
        self.sources[i].active = false;
        self.stats.sources[i].end();
        if self.winner == Some(i) {
            self.winner = None;
            self.stats.winner.store(0, Relaxed);
        }
        self.elect(now);
        if self.winner.is_none() {
            self.waker.wake();
        }
    }

    /// Expire lost sources and complete frames that are due. Returns the
    /// next time `tick` has work, if any (the receiver's poll time-out).
    pub fn tick(&mut self, now: u64) -> Option<u64> {
        let mut next: Option<u64> = None;
        for i in 0..self.sources.len() {
            if !self.sources[i].active {
                continue;
            }
            let lost_at = self.sources[i]
                .last_packet
                .saturating_add(self.cfg.timeout_ns);
            if now >= lost_at {
                self.lose(i, now);
                continue;
            }
            if let Some(d) = self.sources[i].due {
                if now >= d {
                    self.complete(i, now);
                } else {
                    next = Some(next.map_or(d, |n| n.min(d)));
                }
            }
            next = Some(next.map_or(lost_at, |n| n.min(lost_at)));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::super::slot::{frame_slot, wake_pair, SlotReader, WakeWaiter};
    use super::*;

    const MS: u64 = 1_000_000;

    fn mux(leds: usize) -> (Mux, SlotReader, WakeWaiter) {
        let map = Mapping::new(leds, 3, 510, 1, 0, 0).unwrap();
        let (w, r) = frame_slot(map.frame_len());
        let (k, ww) = wake_pair();
        let stats = Arc::new(LiveStats::new(map));
        (Mux::new(map, MuxConfig::default(), w, k, stats), r, ww)
    }

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    fn e131(cid: u8, prio: u8, seq: u8, opts: u8, uni: u16, slots: &[u8]) -> Vec<u8> {
        e131::tests::data_packet([cid; 16], "src", prio, 0, seq, opts, uni, slots)
    }

    fn feed_e131(m: &mut Mux, from: Ipv4Addr, bytes: &[u8], now: u64) {
        m.on_e131(from, &e131::parse(bytes).unwrap(), now);
    }

    fn ddp_pkt(flags: u8, off: u32, data: &[u8]) -> Vec<u8> {
        let mut p = vec![flags, 0, 0x0B, 1];
        p.extend_from_slice(&off.to_be_bytes());
        p.extend_from_slice(&(data.len() as u16).to_be_bytes());
        p.extend_from_slice(data);
        p
    }

    fn feed_ddp(m: &mut Mux, from: Ipv4Addr, bytes: &[u8], now: u64) {
        m.on_ddp(from, &ddp::parse(bytes).unwrap(), now);
    }

    #[test]
    fn ddp_push_completes_and_before_first_push_every_packet_does() {
        let (mut m, mut r, _) = mux(960);
        // Before any push: each packet is a frame (gated by min-interval).
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x40, 0, &[1; 1440]), 0);
        assert_eq!(r.take().unwrap().pixels[0], 1);
        // A push packet: from now on only pushes complete.
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x41, 1440, &[2; 1440]), 10 * MS);
        assert_eq!(r.take().unwrap().pixels[1440], 2);
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x40, 0, &[3; 1440]), 20 * MS);
        assert!(r.take().is_none());
        assert!(m.tick(30 * MS).is_some());
        assert!(r.take().is_none());
        // xLights' separate push packet completes the frame.
        feed_ddp(
            &mut m,
            ip(1),
            &[0x41, 0, 0x80, 1, 0, 0, 0, 0, 0, 0],
            31 * MS,
        );
        let f = r.take().unwrap();
        assert_eq!((f.pixels[0], f.pixels[1440]), (3, 2));
    }

    #[test]
    fn ddp_past_the_strip_is_bad() {
        let (mut m, _r, _) = mux(10);
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x41, 30, &[1; 3]), 0);
        assert_eq!(m.stats().sources[0].bad_packets.load(Relaxed), 1);
        assert_eq!(m.winner(), None);
    }

    #[test]
    fn four_universes_are_one_hand_off() {
        let (mut m, mut r, _) = mux(680);
        for u in 1..=4u16 {
            feed_e131(
                &mut m,
                ip(1),
                &e131(1, 100, 0, 0, u, &[u as u8; 510]),
                u as u64 * 10_000,
            );
            if u < 4 {
                assert!(r.take().is_none(), "handed off after universe {u}");
            }
        }
        let f = r.take().unwrap();
        assert_eq!((f.pixels[0], f.pixels[510], f.pixels[2039]), (1, 2, 4));
        assert_eq!(m.stats().sources[0].frames.load(Relaxed), 1);
    }

    #[test]
    fn changed_universes_only_show_after_min_interval() {
        let (mut m, mut r, _) = mux(680);
        feed_e131(&mut m, ip(1), &e131(1, 100, 0, 0, 2, &[9; 510]), 100 * MS);
        assert!(r.take().is_none());
        assert_eq!(m.tick(104 * MS), Some(105 * MS));
        assert!(r.take().is_none());
        m.tick(105 * MS);
        assert_eq!(r.take().unwrap().pixels[510], 9);
    }

    #[test]
    fn at_most_once_per_min_interval() {
        let (mut m, mut r, _) = mux(170);
        feed_e131(&mut m, ip(1), &e131(1, 100, 0, 0, 1, &[1; 510]), 0);
        assert!(r.take().is_some());
        feed_e131(&mut m, ip(1), &e131(1, 100, 1, 0, 1, &[2; 510]), 2 * MS);
        assert!(r.take().is_none());
        feed_e131(&mut m, ip(1), &e131(1, 100, 2, 0, 1, &[3; 510]), 4 * MS);
        assert!(r.take().is_none());
        m.tick(5 * MS);
        assert_eq!(r.take().unwrap().pixels[0], 3);
    }

    #[test]
    fn sequence_errors_are_counted_and_discarded() {
        let (mut m, mut r, _) = mux(170);
        feed_e131(&mut m, ip(1), &e131(1, 100, 10, 0, 1, &[1; 3]), 0);
        r.take().unwrap();
        feed_e131(&mut m, ip(1), &e131(1, 100, 9, 0, 1, &[2; 3]), 10 * MS);
        feed_e131(&mut m, ip(1), &e131(1, 100, 10, 0, 1, &[2; 3]), 20 * MS);
        assert!(r.take().is_none());
        assert_eq!(m.stats().sources[0].sequence_errors.load(Relaxed), 2);
        feed_e131(&mut m, ip(1), &e131(1, 100, 11, 0, 1, &[3; 3]), 30 * MS);
        assert_eq!(r.take().unwrap().pixels[0], 3);
    }

    #[test]
    fn higher_priority_takes_over_on_its_first_frame_and_falls_back() {
        let (mut m, mut r, _) = mux(170);
        feed_e131(&mut m, ip(1), &e131(1, 100, 0, 0, 1, &[1; 3]), 0);
        let low = m.winner().unwrap();
        assert_eq!(r.take().unwrap().source, low);
        feed_e131(&mut m, ip(2), &e131(2, 150, 0, 0, 1, &[2; 3]), 10 * MS);
        let high = m.winner().unwrap();
        assert_ne!(high, low);
        assert_eq!(r.take().unwrap().pixels[0], 2);
        // The low one keeps sending; nothing of it is shown.
        feed_e131(&mut m, ip(1), &e131(1, 100, 1, 0, 1, &[1; 3]), 20 * MS);
        assert!(r.take().is_none());
        // The high one stops: Stream_Terminated hands back at once.
        feed_e131(
            &mut m,
            ip(2),
            &e131(2, 150, 1, e131::OPT_TERMINATED, 1, &[2; 3]),
            30 * MS,
        );
        assert_eq!(m.winner(), Some(low));
        let f = r.take().unwrap();
        assert_eq!((f.source, f.pixels[0]), (low, 1));
    }

    #[test]
    fn same_priority_first_started_wins() {
        let (mut m, mut r, _) = mux(170);
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x41, 0, &[1; 3]), 0);
        let first = m.winner().unwrap();
        let mut ap = b"Art-Net\0".to_vec();
        ap.extend_from_slice(&[0x00, 0x50, 0, 14, 0, 0, 0, 0, 0, 3, 5, 5, 5]);
        m.on_artnet(ip(2), &artnet::parse(&ap).unwrap(), MS);
        assert_eq!(m.winner(), Some(first));
        assert_eq!(r.take().unwrap().pixels[0], 1);
        assert!(r.take().is_none());
    }

    #[test]
    fn timeout_loses_the_source_on_a_made_up_clock() {
        let (mut m, mut r, mut w) = mux(170);
        feed_ddp(&mut m, ip(1), &ddp_pkt(0x41, 0, &[1; 3]), 0);
        r.take().unwrap();
        assert!(w.wait_until(0));
        assert_eq!(m.tick(2_499 * MS), Some(2_500 * MS));
        assert!(m.winner().is_some());
        m.tick(2_500 * MS);
        assert_eq!(m.winner(), None);
        assert_eq!(m.stats().winner.load(Relaxed), 0);
        // The player was woken to fall back.
        assert!(w.wait_until(0));
        assert_eq!(m.tick(2_600 * MS), None);
    }

    #[test]
    fn e131_sync_completes_once_seen() {
        let (mut m, mut r, _) = mux(340);
        let cid = [7u8; 16];
        let d = |seq: u8, u: u16, v: u8| {
            e131::tests::data_packet(cid, "s", 100, 63999, seq, 0, u, &[v; 510])
        };
        feed_e131(&mut m, ip(1), &d(0, 1, 1), 0);
        feed_e131(&mut m, ip(1), &d(0, 2, 1), 10);
        assert_eq!(m.take_sync_group(), Some(63999));
        // Before any sync packet: the two universes made a frame.
        assert!(r.take().is_some());
        feed_e131(
            &mut m,
            ip(1),
            &e131::tests::sync_packet(cid, 0, 63999),
            20 * MS,
        );
        assert!(r.take().is_some());
        // Now data waits for sync, however long.
        feed_e131(&mut m, ip(1), &d(1, 1, 5), 40 * MS);
        feed_e131(&mut m, ip(1), &d(1, 2, 5), 40 * MS);
        m.tick(60 * MS);
        assert!(r.take().is_none());
        feed_e131(
            &mut m,
            ip(1),
            &e131::tests::sync_packet(cid, 1, 63999),
            61 * MS,
        );
        let f = r.take().unwrap();
        assert_eq!((f.pixels[0], f.pixels[510], f.t_ns), (5, 5, 61 * MS));
    }

    #[test]
    fn artnet_sequence_zero_is_disabled_and_artsync_completes() {
        let (mut m, mut r, _) = mux(170);
        let dmx = |seq: u8, v: u8| {
            let mut p = b"Art-Net\0".to_vec();
            p.extend_from_slice(&[0x00, 0x50, 0, 14, seq, 0, 0, 0, 0, 3, v, v, v]);
            p
        };
        for (k, t) in [(1u8, 0), (2, 10), (3, 20)] {
            m.on_artnet(ip(1), &artnet::parse(&dmx(0, k)).unwrap(), t * MS);
            assert_eq!(r.take().unwrap().pixels[0], k);
        }
        assert_eq!(m.stats().sources[0].sequence_errors.load(Relaxed), 0);
        let sync = b"Art-Net\0\x00\x52\x00\x0e\x00\x00";
        m.on_artnet(ip(1), &artnet::parse(sync).unwrap(), 30 * MS);
        assert!(r.take().is_some());
        m.on_artnet(ip(1), &artnet::parse(&dmx(0, 9)).unwrap(), 40 * MS);
        m.tick(50 * MS);
        assert!(r.take().is_none());
        m.on_artnet(ip(1), &artnet::parse(sync).unwrap(), 51 * MS);
        assert_eq!(r.take().unwrap().pixels[0], 9);
        let poll = b"Art-Net\0\x00\x20\x00\x0e";
        assert!(m.on_artnet(ip(1), &artnet::parse(poll).unwrap(), 52 * MS));
    }

    #[test]
    fn the_seventeenth_source_is_counted_and_dropped() {
        let (mut m, _r, _) = mux(170);
        for n in 0..17u8 {
            feed_ddp(&mut m, ip(n), &ddp_pkt(0x41, 0, &[n; 3]), n as u64);
        }
        assert_eq!(m.stats().sources_overflow.load(Relaxed), 1);
        assert!(m.stats().sources.iter().all(|s| s.id.load(Relaxed) != 0));
    }

    #[test]
    fn dropped_frames_are_counted_not_queued() {
        let (mut m, mut r, _) = mux(170);
        for k in 0..3u8 {
            feed_ddp(
                &mut m,
                ip(1),
                &ddp_pkt(0x41, 0, &[k; 3]),
                k as u64 * 10 * MS,
            );
        }
        assert_eq!(r.take().unwrap().pixels[0], 2);
        assert_eq!(m.stats().sources[0].frames_dropped.load(Relaxed), 2);
    }
}
