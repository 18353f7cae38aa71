//! Live network input: rowplay as a DDP, E1.31 (sACN) and Art-Net node.
//!
//! The pieces, in the order a packet flows through them:
//!
//! - [`ddp`], [`e131`], [`artnet`]: pure parsers over a datagram (and the
//!   ArtPollReply encoder); they never panic or allocate.
//! - [`settings`]: the resolved settings ([`NetSettings`]) and parsers of
//!   their string forms.
//! - [`mapping`]: where universes and DDP bytes land on the strip.
//! - [`mux`]: per-source frame assembly, frame completion (push, sync,
//!   min-interval), the priority mux and source timeouts, all on a
//!   `now_ns` parameter.
//! - [`slot`]: the lock-free triple buffer that carries the winner's
//!   frames to the player, and the futex the player waits on.
//! - [`stats`]: atomic counters and the `live` JSON object.
//! - [`receiver`]: the sockets and the receiver thread.
//!
//! The frame loop sees only [`LiveView`]: [`LiveView::wait_until`] (sleep
//! to the next deadline or until a live frame is complete),
//! [`LiveView::latest`] (copy the newest complete frame, if there is one)
//! and [`LiveView::is_live`]. None of them allocates or locks.

pub mod artnet;
pub mod ddp;
pub mod e131;
pub mod mapping;
pub mod mux;
pub mod receiver;
pub mod settings;
/// The triple buffer and the futex wake-up (shared with the frame loop).
pub use crate::handoff as slot;
pub mod stats;

pub use mapping::{Mapping, MappingError};
pub use mux::{Mux, MuxConfig};
pub use receiver::{NetError, Receiver};
pub use settings::NetSettings;
pub use slot::Waker;
pub use stats::LiveStats;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// The array index capture and wire records carry for a live frame.
pub const LIVE_ARRAY: u32 = 0xFFFF_FFFE;

/// A network protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Protocol {
    /// DDP.
    Ddp = 0,
    /// E1.31 / sACN.
    E131 = 1,
    /// Art-Net.
    ArtNet = 2,
}

impl Protocol {
    /// The name used in settings and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Ddp => "ddp",
            Protocol::E131 => "e131",
            Protocol::ArtNet => "artnet",
        }
    }

    fn from_u8(v: u8) -> Protocol {
        match v {
            1 => Protocol::E131,
            2 => Protocol::ArtNet,
            _ => Protocol::Ddp,
        }
    }
}

/// What the player learns about a live frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveMeta {
    /// Live frame counter (1, 2, ...): the row of capture and wire records.
    pub frame: u64,
    /// CLOCK_MONOTONIC time the frame was completed, ns (for the
    /// packet-to-wire latency).
    pub t_ns: u64,
    /// Id of the source it came from (as in the `live` JSON).
    pub source: u32,
}

/// The player's side of live input. Owned by the frame loop's thread.
pub struct LiveView {
    reader: slot::SlotReader,
    waiter: slot::WakeWaiter,
    waker: Waker,
    stats: Arc<LiveStats>,
    len: usize,
}

impl LiveView {
    /// Copy the newest complete frame published since the last call into
    /// `dst` (RGB or RGBW bytes, at most the strip's length) and describe
    /// it; `None` when there is no new frame. No allocation, no lock.
    pub fn latest(&mut self, dst: &mut [u8]) -> Option<LiveMeta> {
        let f = self.reader.take()?;
        let n = dst.len().min(f.pixels.len());
        dst[..n].copy_from_slice(&f.pixels[..n]);
        Some(LiveMeta {
            frame: f.counter,
            t_ns: f.t_ns,
            source: f.source,
        })
    }

    /// Sleep until a receiver wakes the player (a complete frame, or live
    /// input ended) or CLOCK_MONOTONIC reaches `deadline_ns`. True when
    /// woken. A wake that came before the call is not lost.
    pub fn wait_until(&mut self, deadline_ns: u64) -> bool {
        self.waiter.wait_until(deadline_ns)
    }

    /// The wake-up the frame loop waits on (through its clock).
    pub fn waiter(&mut self) -> &mut slot::WakeWaiter {
        &mut self.waiter
    }

    /// Whether some live source is winning now (else playback shows).
    pub fn is_live(&self) -> bool {
        self.stats.winner.load(Relaxed) != 0
    }

    /// A waker for this view (other front ends may wake the player too).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// The shared counters.
    pub fn stats(&self) -> &Arc<LiveStats> {
        &self.stats
    }

    /// Bytes of a frame.
    pub fn frame_len(&self) -> usize {
        self.len
    }
}

/// A mux and the view onto its frames, without sockets (the receiver uses
/// this; tests drive the mux directly).
pub fn live_channel(map: Mapping, cfg: MuxConfig) -> (Mux, LiveView) {
    let (w, r) = slot::frame_slot(map.frame_len());
    let (waker, waiter) = slot::wake_pair();
    let stats = Arc::new(LiveStats::new(map));
    let mux = Mux::new(map, cfg, w, waker.clone(), stats.clone());
    (
        mux,
        LiveView {
            reader: r,
            waiter,
            waker,
            stats,
            len: map.frame_len(),
        },
    )
}
