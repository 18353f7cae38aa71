//! Live-input counters, kept in atomics so that `status` and
//! `--stats-json` read them from another thread while the receiver runs,
//! and the `live` JSON object made from them.

use super::mapping::{Mapping, MAX_UNIVERSES};
use super::Protocol;
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};

/// Sources kept at once.
pub const MAX_SOURCES: usize = 16;
/// The priority DDP and Art-Net sources count as.
pub const DEFAULT_PRIORITY: u8 = 100;

/// Counters of one source slot. `id` 0 means the slot is free.
#[derive(Default)]
pub struct SourceStats {
    /// Source id (unique over the run), 0 when free.
    pub id: AtomicU32,
    /// [`Protocol`] as a number.
    pub protocol: AtomicU8,
    /// Sender IPv4 address.
    pub addr: AtomicU32,
    /// Latest priority.
    pub priority: AtomicU8,
    /// E1.31 source name, NUL-padded, 8 bytes per word.
    name: [AtomicU64; 8],
    /// Universe indices seen (bit k = first universe + k).
    universes: [AtomicU64; MAX_UNIVERSES / 64],
    /// Valid packets.
    pub packets: AtomicU64,
    /// Packets refused by a parser, or whose data was outside the strip.
    pub bad_packets: AtomicU64,
    /// Complete frames.
    pub frames: AtomicU64,
    /// Frames the output did not take before the next came.
    pub frames_dropped: AtomicU64,
    /// Packets discarded by the sequence check.
    pub sequence_errors: AtomicU64,
    /// CLOCK_MONOTONIC time of the last packet, ns.
    pub last_ns: AtomicU64,
}

impl SourceStats {
    pub(crate) fn begin(&self, id: u32, p: Protocol, addr: Ipv4Addr, now: u64) {
        self.protocol.store(p as u8, Relaxed);
        self.addr.store(u32::from(addr), Relaxed);
        self.priority.store(DEFAULT_PRIORITY, Relaxed);
        for w in &self.name {
            w.store(0, Relaxed);
        }
        for w in &self.universes {
            w.store(0, Relaxed);
        }
        for c in [
            &self.packets,
            &self.bad_packets,
            &self.frames,
            &self.frames_dropped,
            &self.sequence_errors,
        ] {
            c.store(0, Relaxed);
        }
        self.last_ns.store(now, Relaxed);
        self.id.store(id, Relaxed);
    }

    pub(crate) fn end(&self) {
        self.id.store(0, Relaxed);
    }

    pub(crate) fn set_name(&self, name: &[u8]) {
        let mut b = [0u8; 64];
        let n = name.len().min(64);
        b[..n].copy_from_slice(&name[..n]);
        for (k, w) in self.name.iter().enumerate() {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[k * 8..k * 8 + 8]);
            w.store(u64::from_le_bytes(x), Relaxed);
        }
    }

    pub(crate) fn mark_universe(&self, index: usize) {
        if index < MAX_UNIVERSES {
            self.universes[index / 64].fetch_or(1 << (index % 64), Relaxed);
        }
    }

    fn name(&self) -> String {
        let mut b = [0u8; 64];
        for (k, w) in self.name.iter().enumerate() {
            b[k * 8..k * 8 + 8].copy_from_slice(&w.load(Relaxed).to_le_bytes());
        }
        let n = b.iter().position(|&c| c == 0).unwrap_or(64);
        String::from_utf8_lossy(&b[..n]).into_owned()
    }
}

/// All live-input counters.
pub struct LiveStats {
    /// One per source slot.
    pub sources: [SourceStats; MAX_SOURCES],
    /// Id of the winning source, 0 for none.
    pub winner: AtomicU32,
    /// Packets from addresses outside `allow`.
    pub not_allowed: AtomicU64,
    /// Packets from a source beyond [`MAX_SOURCES`].
    pub sources_overflow: AtomicU64,
    /// Bad packets that could not be put on a source.
    pub bad_packets: AtomicU64,
    /// Datagrams that arrived on another interface than `listen_addr`'s.
    pub wrong_interface: AtomicU64,
    map: Mapping,
}

impl LiveStats {
    /// Fresh counters for a strip mapped by `map`.
    pub fn new(map: Mapping) -> LiveStats {
        LiveStats {
            sources: std::array::from_fn(|_| SourceStats::default()),
            winner: AtomicU32::new(0),
            not_allowed: AtomicU64::new(0),
            sources_overflow: AtomicU64::new(0),
            bad_packets: AtomicU64::new(0),
            wrong_interface: AtomicU64::new(0),
            map,
        }
    }

    /// The `live` object of `status` and `--stats-json`:
    /// `{"winner": id or null, "sources": [{"id", "protocol", "address",
    /// "name", "priority", "universes", "packets", "bad_packets", "frames",
    /// "frames_dropped", "sequence_errors", "ms_since_last"}]}`.
    /// Sources are listed by id; `universes` are protocol numbers (E1.31
    /// universes, Art-Net Port-Addresses; empty for DDP).
    pub fn to_json(&self, now_ns: u64) -> Value {
        let mut list: Vec<(u32, Value)> = Vec::new();
        for s in &self.sources {
            let id = s.id.load(Relaxed);
            if id == 0 {
                continue;
            }
            let proto = Protocol::from_u8(s.protocol.load(Relaxed));
            let first = match proto {
                Protocol::E131 => self.map.first_e131() as usize,
                Protocol::ArtNet => self.map.first_artnet() as usize,
                Protocol::Ddp => 0,
            };
            let mut unis = Vec::new();
            if proto != Protocol::Ddp {
                for (k, w) in s.universes.iter().enumerate() {
                    let w = w.load(Relaxed);
                    for b in 0..64 {
                        if w & (1 << b) != 0 {
                            unis.push(first + k * 64 + b);
                        }
                    }
                }
            }
            let name = match proto {
                Protocol::E131 => Value::String(s.name()),
                _ => Value::Null,
            };
            let last = s.last_ns.load(Relaxed);
            list.push((
                id,
                json!({
                    "id": id,
                    "protocol": proto.name(),
                    "address": Ipv4Addr::from(s.addr.load(Relaxed)).to_string(),
                    "name": name,
                    "priority": s.priority.load(Relaxed),
                    "universes": unis,
                    "packets": s.packets.load(Relaxed),
                    "bad_packets": s.bad_packets.load(Relaxed),
                    "frames": s.frames.load(Relaxed),
                    "frames_dropped": s.frames_dropped.load(Relaxed),
                    "sequence_errors": s.sequence_errors.load(Relaxed),
                    "ms_since_last": now_ns.saturating_sub(last) / 1_000_000,
                }),
            ));
        }
        list.sort_by_key(|(id, _)| *id);
        let winner = match self.winner.load(Relaxed) {
            0 => Value::Null,
            w => json!(w),
        };
        json!({
            "winner": winner,
            "sources": list.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let map = Mapping::new(340, 3, 510, 5, 0, 0).unwrap();
        let st = LiveStats::new(map);
        assert_eq!(st.to_json(0), json!({"winner": null, "sources": []}));
        let s = &st.sources[3];
        s.begin(7, Protocol::E131, Ipv4Addr::new(10, 1, 2, 3), 1_000_000);
        s.set_name(b"xLights 12");
        s.mark_universe(1);
        s.priority.store(150, Relaxed);
        s.packets.store(9, Relaxed);
        s.frames.store(4, Relaxed);
        st.winner.store(7, Relaxed);
        let d = &st.sources[0];
        d.begin(8, Protocol::Ddp, Ipv4Addr::new(10, 1, 2, 4), 0);
        assert_eq!(
            st.to_json(251_000_000),
            json!({"winner": 7, "sources": [
                {"id": 7, "protocol": "e131", "address": "10.1.2.3", "name": "xLights 12",
                 "priority": 150, "universes": [6], "packets": 9, "bad_packets": 0,
                 "frames": 4, "frames_dropped": 0, "sequence_errors": 0, "ms_since_last": 250},
                {"id": 8, "protocol": "ddp", "address": "10.1.2.4", "name": null,
                 "priority": 100, "universes": [], "packets": 0, "bad_packets": 0,
                 "frames": 0, "frames_dropped": 0, "sequence_errors": 0, "ms_since_last": 251}
            ]})
        );
        s.end();
        assert_eq!(st.to_json(0)["sources"].as_array().unwrap().len(), 1);
    }
}
