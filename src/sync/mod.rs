//! Several Pis in step: follow and lead FPP MultiSync (UDP 32320).
//!
//! - [`packet`] parses and encodes the datagrams.
//! - [`names`] maps the master's file name to an array.
//! - [`pll`] is the follower's phase-locked frame clock (pure).
//! - [`follow`] is the listener thread: packets to [`SyncEvent`]s for the
//!   player and [`pll::Observation`]s published through an [`ObsRing`].
//! - [`lead`] is the leader: the player publishes what it shows through a
//!   [`lead::LeadPublisher`], a sender thread sends the packets.
//!
//! Frame rates: SYNC carries seconds and frames, not a rate. A follower
//! places master row `r` at `r x period` on the master's timeline, where
//! `period` is the one the player passes to [`pll::Pll`] (the mapped
//! array's own rate once per-array rates exist, else the player's). When
//! the master and the follower's array have the same rate they show the
//! same row at the same moment; when they differ, both show the row due at
//! the same *time*, so the follower's row numbers differ from the master's
//! and a follower array of another length ends at another moment. From a
//! master that sends frame numbers only (seconds 0), the frame number is
//! read at the follower's period, so the rates must match.
//!
//! Threads: the listener and the sender each run on their own thread; the
//! player thread only touches the lock-free rings, the [`pll::Pll`] it owns
//! and the atomic [`SyncStats`].

pub mod follow;
pub mod lead;
pub mod names;
pub mod packet;
pub mod pll;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU32, AtomicU64};
use std::sync::Mutex;

/// Follow a master or lead followers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Listen and follow.
    Follow,
    /// Send what the player plays.
    Lead,
}

impl Mode {
    /// The name used in the config and the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Follow => "follow",
            Mode::Lead => "lead",
        }
    }
}

/// What a follower does on STOP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSync {
    /// All LEDs off.
    Dark,
    /// Back to the local playlist.
    Resume,
}

/// Resolved MultiSync settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// follow or lead.
    pub mode: Mode,
    /// Follower: where to listen. The unspecified address binds every
    /// interface; a specific one still binds the wildcard (to get broadcast
    /// and multicast) and joins the group on that interface; a loopback
    /// address binds only itself and joins nothing (tests). Leader: the
    /// address to send from.
    pub listen: SocketAddrV4,
    /// Leader: where to send; empty means the multicast group.
    pub to: Vec<SocketAddrV4>,
    /// Per-node offset in ms; positive shows each frame later.
    pub offset_ms: i32,
    /// What STOP does.
    pub after_sync: AfterSync,
    /// `[multisync.names]`: master file name -> array name.
    pub names: Vec<(String, String)>,
    /// Host name for pings.
    pub hostname: String,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            mode: Mode::Follow,
            listen: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, packet::PORT),
            to: Vec::new(),
            offset_ms: 0,
            after_sync: AfterSync::Dark,
            names: Vec::new(),
            hostname: String::from("rowplay"),
        }
    }
}

/// Why a setting is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingsError {
    /// An entry of `--multisync-to` is not `IP` or `IP:PORT`.
    BadAddress(String),
    /// The offset is outside FPP's -9999..=9999 ms.
    OffsetOutOfRange(i64),
    /// The mode is not follow or lead.
    BadMode(String),
    /// after-sync is not dark or resume.
    BadAfterSync(String),
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::BadAddress(a) => {
                write!(f, "multisync address {a:?} is not IP or IP:PORT")
            }
            SettingsError::OffsetOutOfRange(v) => {
                write!(f, "multisync offset {v} ms is outside -9999..=9999")
            }
            SettingsError::BadMode(m) => write!(f, "multisync mode {m:?}: use follow or lead"),
            SettingsError::BadAfterSync(m) => write!(f, "after-sync {m:?}: use dark or resume"),
        }
    }
}

impl std::error::Error for SettingsError {}

/// `follow` / `lead`.
pub fn parse_mode(s: &str) -> Result<Mode, SettingsError> {
    match s {
        "follow" => Ok(Mode::Follow),
        "lead" => Ok(Mode::Lead),
        _ => Err(SettingsError::BadMode(s.to_string())),
    }
}

/// `dark` / `resume`.
pub fn parse_after_sync(s: &str) -> Result<AfterSync, SettingsError> {
    match s {
        "dark" => Ok(AfterSync::Dark),
        "resume" => Ok(AfterSync::Resume),
        _ => Err(SettingsError::BadAfterSync(s.to_string())),
    }
}

/// The offset, checked against FPP's range.
pub fn check_offset_ms(v: i64) -> Result<i32, SettingsError> {
    if (-9999..=9999).contains(&v) {
        Ok(v as i32)
    } else {
        Err(SettingsError::OffsetOutOfRange(v))
    }
}

/// `ADDR[,ADDR...]`, each `IP` (port 32320) or `IP:PORT`.
pub fn parse_to_list(s: &str) -> Result<Vec<SocketAddrV4>, SettingsError> {
    s.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse::<SocketAddrV4>()
                .or_else(|_| {
                    a.parse::<Ipv4Addr>()
                        .map(|ip| SocketAddrV4::new(ip, packet::PORT))
                })
                .map_err(|_| SettingsError::BadAddress(a.to_string()))
        })
        .collect()
}

/// Counters for `status`. Written by the listener/sender thread (packets,
/// unknown names, master, file) and by the player through
/// [`pll::Pll::publish`] (the rest); all relaxed atomics except the file
/// name, which the player never touches.
#[derive(Debug, Default)]
pub struct SyncStats {
    /// Follower: valid packets received. Leader: packets sent.
    pub packets: AtomicU64,
    /// SYNCs missing from the cadence.
    pub lost: AtomicU64,
    /// Late or reordered SYNCs (the clock's count).
    pub late: AtomicU64,
    /// SYNCs sent before a START that came after it (the listener's
    /// count; shown within `late`).
    pub stale: AtomicU64,
    /// Jumps.
    pub jumps: AtomicU64,
    /// Packets naming an unknown or ambiguous file (once per name run).
    pub unknown_names: AtomicU64,
    /// Residual error of the last frame, µs.
    pub error_us: AtomicI64,
    /// Slew of the last frame, ppm.
    pub slew_ppm: AtomicI32,
    /// The clock's drift estimate (master minus this node), ppb.
    pub drift_ppb: AtomicI64,
    /// Whether the clock is locked.
    pub locked: AtomicBool,
    /// The master's IPv4 address (0: none yet).
    pub master: AtomicU32,
    /// Packets that could not be parsed, or sends that failed.
    pub errors: AtomicU64,
    /// Observations dropped because the player did not drain the ring.
    pub dropped: AtomicU64,
    /// The file the master plays (or the leader sends).
    pub file: Mutex<String>,
}

impl SyncStats {
    /// The `multisync` object of `status`.
    pub fn to_json(&self, mode: Mode) -> serde_json::Value {
        let master = self.master.load(Relaxed);
        let file = self.file.lock().map(|f| f.clone()).unwrap_or_default();
        serde_json::json!({
            "mode": mode.as_str(),
            "master": if master == 0 { serde_json::Value::Null } else {
                Ipv4Addr::from(master).to_string().into()
            },
            "file": file,
            "error_ms": self.error_us.load(Relaxed) as f64 / 1000.0,
            "slew_ppm": self.slew_ppm.load(Relaxed),
            "drift_ppm": self.drift_ppb.load(Relaxed) as f64 / 1000.0,
            "packets": self.packets.load(Relaxed),
            "lost": self.lost.load(Relaxed),
            "late": self.late.load(Relaxed) + self.stale.load(Relaxed),
            "jumps": self.jumps.load(Relaxed),
            "unknown_names": self.unknown_names.load(Relaxed),
        })
    }
}

/// What the listener asks of the player. The application maps these onto
/// the command path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncEvent {
    /// OPEN: prefetch this array's body.
    Open {
        /// The array.
        array: u32,
    },
    /// START: show row 0 of `array`. If the player is following and the
    /// clock has a timeline, call `pll.start(epoch, recv_ns, Some(d))` for
    /// the first deadline `d` that `pll.start_due` accepts and show row 0
    /// at it; else
    /// `pll.start(epoch, recv_ns, None)` gives the deadline.
    Start {
        /// The array.
        array: u32,
        /// The new timeline's epoch.
        epoch: u32,
        /// When the packet arrived (player clock).
        recv_ns: u64,
    },
    /// SYNC for an array the player is not following: drain the ring into
    /// the clock, then `pll.join(now + margin, period)` gives the row and
    /// its deadline (late join).
    Join {
        /// The array.
        array: u32,
        /// The new timeline's epoch.
        epoch: u32,
    },
    /// STOP: dark or back to the local playlist; `pll.clear()`.
    Stop {
        /// Which.
        after: AfterSync,
    },
    /// BLANK: all LEDs off.
    Blank,
    /// The master plays a file that maps to no array (counted): go dark.
    Unknown,
}

/// Where the listener delivers events. Called on the listener thread.
pub trait SyncSink: Send {
    /// One event.
    fn event(&mut self, ev: SyncEvent);
}

impl<F: FnMut(SyncEvent) + Send> SyncSink for F {
    fn event(&mut self, ev: SyncEvent) {
        self(ev)
    }
}

/// Slots of the observation ring: SYNCs come at most every 4 frames, so
/// the player drains long before it fills.
pub const OBS_RING: usize = 16;

/// A single-producer single-consumer ring of observations, lock-free and
/// allocation-free on both sides: the listener pushes, the player drains.
#[derive(Debug, Default)]
pub struct ObsRing {
    recv: [AtomicU64; OBS_RING],
    frame: [AtomicU32; OBS_RING],
    seconds: [AtomicU32; OBS_RING],
    epoch: [AtomicU32; OBS_RING],
    head: AtomicU32,
    tail: AtomicU32,
}

impl ObsRing {
    /// Push (listener side); false when full (the observation is dropped).
    pub fn push(&self, o: &pll::Observation) -> bool {
        let h = self.head.load(Relaxed);
        let t = self.tail.load(Acquire);
        if h.wrapping_sub(t) as usize >= OBS_RING {
            return false;
        }
        let i = h as usize % OBS_RING;
        self.recv[i].store(o.recv_ns, Relaxed);
        self.frame[i].store(o.frame, Relaxed);
        self.seconds[i].store(o.seconds.to_bits(), Relaxed);
        self.epoch[i].store(o.epoch, Relaxed);
        // Release: the slot's fields are visible before the new head.
        self.head.store(h.wrapping_add(1), Release);
        true
    }

    /// Drain (player side) in arrival order; returns how many. Never
    /// allocates, never locks.
    pub fn drain(&self, mut f: impl FnMut(&pll::Observation)) -> usize {
        let mut t = self.tail.load(Relaxed);
        let h = self.head.load(Acquire);
        let mut n = 0;
        while t != h {
            let i = t as usize % OBS_RING;
            let o = pll::Observation {
                recv_ns: self.recv[i].load(Relaxed),
                frame: self.frame[i].load(Relaxed),
                seconds: f32::from_bits(self.seconds[i].load(Relaxed)),
                epoch: self.epoch[i].load(Relaxed),
            };
            t = t.wrapping_add(1);
            // Release: the slot is read before the producer may reuse it.
            self.tail.store(t, Release);
            f(&o);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_list_and_checks() {
        assert_eq!(
            parse_to_list("10.0.0.2, 10.0.0.3:4000").unwrap(),
            vec![
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 32320),
                SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 3), 4000)
            ]
        );
        assert_eq!(
            parse_to_list("10.0.0.2,host"),
            Err(SettingsError::BadAddress("host".into()))
        );
        assert_eq!(check_offset_ms(-9999), Ok(-9999));
        assert_eq!(
            check_offset_ms(10_000),
            Err(SettingsError::OffsetOutOfRange(10_000))
        );
        assert_eq!(parse_mode("lead"), Ok(Mode::Lead));
        assert!(parse_mode("x").is_err());
        assert_eq!(parse_after_sync("resume"), Ok(AfterSync::Resume));
        assert!(parse_after_sync("light").is_err());
    }

    #[test]
    fn ring_keeps_order_and_refuses_when_full() {
        let r = ObsRing::default();
        let o = |i: u32| pll::Observation {
            recv_ns: i as u64 * 10,
            frame: i,
            seconds: i as f32 / 2.0,
            epoch: 7,
        };
        for i in 0..OBS_RING as u32 {
            assert!(r.push(&o(i)));
        }
        assert!(!r.push(&o(99)));
        let mut got = vec![];
        assert_eq!(r.drain(|x| got.push(*x)), OBS_RING);
        assert_eq!(got, (0..OBS_RING as u32).map(o).collect::<Vec<_>>());
        assert!(r.push(&o(100)));
        let mut got = vec![];
        r.drain(|x| got.push(x.frame));
        assert_eq!(got, vec![100]);
    }

    #[test]
    fn status_json_has_every_field() {
        let s = SyncStats::default();
        s.packets.store(9, Relaxed);
        s.error_us.store(-250, Relaxed);
        s.drift_ppb.store(-12_500, Relaxed);
        s.master
            .store(u32::from(Ipv4Addr::new(10, 0, 0, 1)), Relaxed);
        *s.file.lock().unwrap() = "Song.fseq".into();
        let j = s.to_json(Mode::Follow);
        assert_eq!(j["mode"], "follow");
        assert_eq!(j["master"], "10.0.0.1");
        assert_eq!(j["file"], "Song.fseq");
        assert_eq!(j["error_ms"], -0.25);
        assert_eq!(j["drift_ppm"], -12.5);
        assert_eq!(j["packets"], 9);
        for k in ["slew_ppm", "lost", "late", "jumps", "unknown_names"] {
            assert_eq!(j[k], 0, "{k}");
        }
    }
}
