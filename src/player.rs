//! The frame loop.
//!
//! Each frame: sleep to the absolute deadline; take pending commands (a
//! switch renders row 0 of the new array from the heads right then); hand
//! the prepared frame to the output; then advance and prepare the next
//! frame (fetch the row from the heads or a loader slot, run the colour
//! pipeline, let the output encode it), so that at the next deadline only
//! the write is left.
//!
//! Inside the loop nothing allocates, locks, logs or touches files: every
//! buffer is made in [`Player::new`], commands arrive through a lock-free
//! bounded queue, a reloaded library arrives ready-made and the old one
//! leaves through another queue to be dropped elsewhere. A row that is not
//! loaded in time repeats the previous frame (an underrun); a frame handed
//! out more than a quarter period late is a deadline miss; an output error
//! is counted. None of them stops playback.

use crate::clock::{Clock, Ticker};
use crate::color::Pipeline;
use crate::library::Library;
use crate::loader::{Loader, PlayerSide, RowState, Want};
use crate::net::settings::{AfterLive, LiveOutput, LiveRank};
use crate::net::{LiveMeta, LiveView, LIVE_ARRAY};
use crate::output::{FrameMeta, Output, ALL_OFF};
use crate::playlist::{Cursor, Go};
pub use crate::playlist::{Order, PlaylistItem};
use crate::stats::{
    Miss, OutputStats, Stats, STATE_FINISHED, STATE_PAUSED, STATE_PLAYING, STATE_STOPPED,
};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Commands the loop takes per wake-up at most, so a flood of commands
/// cannot delay a frame.
pub const COMMAND_BUDGET: usize = 8;

/// Everything that depends on the library, swapped as one on reload.
pub struct Bundle {
    /// The library.
    pub lib: Arc<Library>,
    /// Its loader thread (stopped when the bundle is dropped).
    pub loader: Loader,
    /// The player's handle on the loader.
    pub side: PlayerSide,
    /// Where playback is in the playlist, resolved against `lib`.
    pub cursor: Cursor,
    /// Source row for the upcoming frame, and for the frame last sent.
    src_next: Vec<u8>,
    src_sent: Vec<u8>,
}

impl Bundle {
    /// Open a loader on `lib` and make the buffers the loop will need.
    pub fn new(lib: Arc<Library>, playlist: Vec<PlaylistItem>) -> std::io::Result<Bundle> {
        let reader: Arc<dyn crate::loader::BodyReader> = lib.clone();
        Bundle::with_reader(lib, reader, playlist)
    }

    /// Like [`Bundle::new`], reading bodies through `reader` (tests inject
    /// faults this way).
    pub fn with_reader(
        lib: Arc<Library>,
        reader: Arc<dyn crate::loader::BodyReader>,
        playlist: Vec<PlaylistItem>,
    ) -> std::io::Result<Bundle> {
        let (loader, side) = Loader::start(lib.clone(), reader)?;
        let row = lib.max_row_bytes() as usize;
        Ok(Bundle {
            cursor: Cursor::new(playlist, Order::Loop, 0),
            lib,
            loader,
            side,
            src_next: vec![0; row],
            src_sent: vec![0; row],
        })
    }
}

/// A command for the loop. Names are resolved to indices before they get
/// here; a reload arrives as a ready bundle.
pub enum Command {
    /// Play array `i` from row 0 at the next frame.
    Play(u32),
    /// Next playlist entry (or next array).
    Next,
    /// Previous playlist entry (or previous array).
    Prev,
    /// Hold the current row.
    Pause,
    /// Continue after pause or stop.
    Resume,
    /// All LEDs off; keep running.
    Stop,
    /// Set brightness (0..1).
    SetBrightness(f32),
    /// Change brightness by this much.
    AddBrightness(f32),
    /// Switch to a reloaded library.
    Swap(Box<Bundle>),
}

/// The command queue: lock-free, bounded, filled by the control thread and
/// the buttons, drained by the loop.
pub type CommandQueue = heapless::mpmc::Queue<Command, 64>;
/// Bundles the loop has replaced, to be dropped outside it.
pub type RetiredQueue = heapless::mpmc::Queue<Box<Bundle>, 4>;

/// What the player shares with the rest of the program.
#[derive(Clone)]
pub struct Links {
    /// Commands in.
    pub cmds: Arc<CommandQueue>,
    /// Replaced bundles out, to be dropped outside the loop.
    pub retired: Arc<RetiredQueue>,
    /// Counters out.
    pub stats: Arc<Stats>,
    /// Set to stop (signals; the player sets it when it ends by itself).
    pub stop: Arc<AtomicBool>,
    /// Wakes the player when a command is queued, when it waits on a futex
    /// (live input or MultiSync), so a switch is taken at once and shown at
    /// the next deadline; unset: commands wait for the next deadline.
    pub wake: Arc<std::sync::OnceLock<crate::handoff::Waker>>,
}

impl Links {
    /// Fresh, empty queues and counters.
    pub fn new() -> Links {
        // heapless marks its MPMC queue deprecated because an operation can
        // fail (not block) while another thread is preempted inside one.
        // Every failure is handled without waiting: the player takes a
        // command on its next frame, control reports "busy".
        #[allow(deprecated)]
        let (cmds, retired) = (CommandQueue::new(), RetiredQueue::new());
        Links {
            cmds: Arc::new(cmds),
            retired: Arc::new(retired),
            stats: Arc::new(Stats::default()),
            stop: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(std::sync::OnceLock::new()),
        }
    }
}

impl Default for Links {
    fn default() -> Self {
        Links::new()
    }
}

/// Fixed settings of a run.
#[derive(Clone, Copy, Debug)]
pub struct PlayerConfig {
    /// Frames per second of arrays without a rate of their own (the config's
    /// `fps`, else 50), or of every array with `force_fps`.
    pub fps: u32,
    /// `--fps` on the command line: one rate for all arrays.
    pub force_fps: bool,
    /// LEDs on the strip.
    pub leds: usize,
    /// What happens at the playlist's end.
    pub order: Order,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Stop after this much playback time (`--seconds`), in ns.
    pub max_ns: Option<u64>,
    /// Array to start with (else the first playlist entry, else 0).
    pub start: Option<u32>,
    /// Seed for `--order shuffle`.
    pub seed: u64,
}

/// Most colour channels a source LED has (RGBW).
const MAX_SRC_CHANNELS: usize = 4;

/// One output in the player's list: the output, its own colour pipeline, the
/// slice of the row it shows, and its buffers (made here, never in the loop).
pub struct Slot {
    out: Box<dyn Output>,
    pipe: Pipeline,
    first: usize,
    count: usize,
    reverse: bool,
    /// The slice of the source row, in the order the output shows it.
    src: Vec<u8>,
    /// The slice after the colour pipeline.
    pix: Vec<u8>,
    stats: Arc<OutputStats>,
    /// The pipeline for live frames (the live gamma, the same brightness
    /// and current budget), when live input is attached.
    live_pipe: Option<Pipeline>,
}

impl Slot {
    /// An output of `kind` showing `count` LEDs of the row from LED `first`,
    /// back to front when `reverse`, through its own `pipe`.
    pub fn new(
        kind: &'static str,
        out: Box<dyn Output>,
        pipe: Pipeline,
        first: usize,
        count: usize,
        reverse: bool,
    ) -> Slot {
        Slot {
            src: vec![0; count * MAX_SRC_CHANNELS],
            pix: vec![0; count * pipe.out_channels()],
            stats: Arc::new(OutputStats::new(kind, first, count)),
            live_pipe: None,
            out,
            pipe,
            first,
            count,
            reverse,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &Arc<OutputStats> {
        &self.stats
    }

    /// The output.
    pub fn output(&self) -> &dyn Output {
        &*self.out
    }

    /// LEDs it shows.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Channels per LED after its pipeline (3 or 4).
    pub fn channels(&self) -> usize {
        self.pipe.out_channels()
    }

    /// Take this output's slice of `row` (`leds` LEDs of `channels`), run
    /// it through the pipeline and let the output prepare it. LEDs past the
    /// row are black. Never allocates.
    fn render(&mut self, row: &[u8], leds: usize, channels: usize) {
        self.render_with(row, leds, channels, false);
    }

    /// Like [`Slot::render`], through the live pipeline when `live`.
    fn render_with(&mut self, row: &[u8], leds: usize, channels: usize, live: bool) {
        let ch = channels.clamp(1, MAX_SRC_CHANNELS);
        let n = self.count;
        let leds = leds.min(row.len() / ch);
        let src = &mut self.src[..n * ch];
        for (i, d) in src.chunks_exact_mut(ch).enumerate() {
            let led = self.first + if self.reverse { n - 1 - i } else { i };
            match row.get(led * ch..(led + 1) * ch) {
                Some(s) if led < leds => d.copy_from_slice(s),
                _ => d.fill(0),
            }
        }
        let pipe = match (&self.live_pipe, live) {
            (Some(p), true) => p,
            _ => &self.pipe,
        };
        pipe.apply(src, ch, &mut self.pix);
        self.out.prepare(&self.pix);
    }

    fn dark(&mut self) {
        self.pix.fill(0);
        self.out.prepare(&self.pix);
    }

    /// Send the prepared frame, timed and counted; returns the output's
    /// (dropped, write errors) totals.
    fn send_timed<C: Clock>(&mut self, clock: &C, meta: &FrameMeta, run: &Stats) -> (u64, u64) {
        let t0 = clock.now_ns();
        let r = self.out.send(meta);
        self.stats
            .write_ns
            .record(clock.now_ns().saturating_sub(t0));
        Stats::bump(&self.stats.frames);
        if r.is_err() {
            Stats::bump(&self.stats.errors);
            Stats::bump(&run.output_errors);
        }
        let (d, w) = (self.out.dropped(), self.out.write_errors());
        self.stats.dropped.store(d, Relaxed);
        self.stats.write_errors.store(w, Relaxed);
        (d, w)
    }
}

/// Live network input as the frame loop takes it (door 2), with the rules
/// of the mux over playback.
pub struct LiveInput {
    /// The receivers' frames and wake-up.
    pub view: LiveView,
    /// Push (at once) or tick (latched at the next deadline).
    pub output: LiveOutput,
    /// What playback does when live input ends.
    pub after: AfterLive,
    /// Over playback, or under it (shown only while playback is stopped).
    pub rank: LiveRank,
    /// Gamma of live data.
    pub gamma: f32,
    /// Channels per LED of live data (3 RGB, 4 RGBW).
    pub channels: usize,
}

/// Sync events from the MultiSync listener to the frame loop: lock-free,
/// bounded (a full queue drops the event; the next SYNC repairs it).
pub type SyncEvents = heapless::mpmc::Queue<crate::sync::SyncEvent, 16>;

/// A MultiSync follower as the frame loop takes it.
pub struct FollowInput {
    /// Observations (SYNC packets) from the listener.
    pub ring: Arc<crate::sync::ObsRing>,
    /// Events (OPEN, START, SYNC for another file, STOP, BLANK).
    pub events: Arc<SyncEvents>,
    /// Where the clock's counters go.
    pub stats: Arc<crate::sync::SyncStats>,
    /// `--multisync-offset`, ns (positive: show each frame later).
    pub offset_ns: i64,
}

/// The follower's state in the loop.
struct Follow {
    input: FollowInput,
    pll: crate::sync::pll::Pll,
    /// Playback follows the master's timeline now.
    on: bool,
    /// Master row of the upcoming frame.
    row: u64,
    /// A SYNC for a file not followed yet: join after this tick's hand-out.
    join: Option<u32>,
    /// START without a timeline: row 0 was due at this time; the next row
    /// goes one period after it.
    anchor: Option<u64>,
    /// A START that came after this tick's deadline, for the next tick.
    start: Option<crate::sync::SyncEvent>,
}

/// The player's live state: the input and its preallocated frame.
struct Live {
    input: LiveInput,
    /// The newest live frame taken from the slot.
    frame: Vec<u8>,
    /// What it is, once one has arrived.
    meta: Option<LiveMeta>,
    /// `meta` has not been handed out yet.
    unsent: bool,
    /// Live was shown at the last hand-off (so playback must take over
    /// when it is not any more).
    showing: bool,
}

/// What the upcoming frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upcoming {
    /// A row, prepared from `src_next`.
    Row,
    /// The row is not loaded yet; retry at the deadline.
    NotReady,
    /// Paused: the last frame again, prepared from `src_sent`.
    Hold,
    /// All off (stopped, or finished with `--order once`).
    Dark,
}

/// The player.
pub struct Player<C: Clock> {
    b: Box<Bundle>,
    clock: C,
    outs: Vec<Slot>,
    cmds: Arc<CommandQueue>,
    retired: Arc<RetiredQueue>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    cfg: PlayerConfig,
    ticker: Ticker,
    // Position of the upcoming frame.
    array: u32,
    row: u32,
    gen: u32,
    fresh_gen: u32,
    predicted: Option<Want>,
    upcoming: Upcoming,
    paused: bool,
    stopped: bool,
    finished: bool,
    last: FrameMeta,
    /// A switch was applied whose row 0 has not been handed out yet.
    switch_unshown: bool,
    frames: u64,
    /// The period of arrays without a rate of their own.
    default_period: u64,
    /// Door 3: every frame handed out is published here (for the HTTP
    /// preview), without a lock or an allocation.
    publish: Option<crate::handoff::SlotWriter>,
    /// Playback time so far: the sum of the periods of the frames shown.
    played_ns: u64,
    /// Live input, when attached.
    live: Option<Live>,
    /// MultiSync follower, when attached.
    follow: Option<Follow>,
    /// MultiSync leader, when attached.
    lead: Option<crate::sync::lead::LeadPublisher>,
    /// The leader's START for this array waits for its row 0 hand-out.
    lead_start: Option<u32>,
    /// The futex commands wake (a follower without live input).
    waiter: Option<crate::handoff::WakeWaiter>,
    /// Set while moving past a shown frame (a new pass's row 0 is then
    /// due at the next deadline, not this one).
    advancing: bool,
    /// The outputs hold a live frame, not the upcoming playback frame.
    outputs_hold_live: bool,
    /// Every playback tick's times (`--wake-log`), when asked for.
    wake_log: Option<crate::wake_log::WakeLog>,
}

impl<C: Clock> Player<C> {
    /// Make a player with one output showing the whole strip; every buffer
    /// the loop needs is allocated here.
    pub fn new(
        bundle: Box<Bundle>,
        clock: C,
        out: Box<dyn Output>,
        pipe: Pipeline,
        links: &Links,
        cfg: PlayerConfig,
    ) -> Player<C> {
        let slot = Slot::new("output", out, pipe, 0, cfg.leds, false);
        Player::with_outputs(bundle, clock, vec![slot], links, cfg)
    }

    /// Make a player that writes every frame to each of `outs`, in this
    /// order. With none, frames go nowhere.
    pub fn with_outputs(
        bundle: Box<Bundle>,
        clock: C,
        mut outs: Vec<Slot>,
        links: &Links,
        cfg: PlayerConfig,
    ) -> Player<C> {
        if outs.is_empty() {
            let pipe = Pipeline::new(Default::default(), 3);
            outs.push(Slot::new(
                "null",
                Box::new(crate::output::Null),
                pipe,
                0,
                0,
                false,
            ));
        }
        let Links {
            cmds,
            retired,
            stats,
            stop,
            wake: _,
        } = links.clone();
        let period = 1_000_000_000 / cfg.fps.max(1) as u64;
        let mut bundle = bundle;
        bundle.cursor.set_mode(cfg.order, cfg.seed);
        stats
            .brightness_milli
            .store((outs[0].pipe.brightness() * 1000.0).round() as u32, Relaxed);
        // A second player on the same links (tests) keeps the first list.
        let _ = stats
            .outputs
            .set(outs.iter().map(|o| o.stats.clone()).collect());
        Player {
            b: bundle,
            clock,
            outs,
            cmds,
            retired,
            stats,
            stop,
            cfg,
            ticker: Ticker::new(0, period),
            array: 0,
            row: 0,
            gen: 0,
            fresh_gen: 1,
            predicted: None,
            upcoming: Upcoming::Dark,
            paused: false,
            stopped: false,
            finished: false,
            last: FrameMeta {
                t_ns: 0,
                array: ALL_OFF,
                row: 0,
            },
            switch_unshown: false,
            frames: 0,
            default_period: period,
            publish: None,
            played_ns: 0,
            live: None,
            outputs_hold_live: false,
            wake_log: None,
            follow: None,
            lead: None,
            lead_start: None,
            waiter: None,
            advancing: false,
        }
    }

    /// Follow a MultiSync master: its timeline steers the deadlines.
    pub fn attach_follow(&mut self, input: FollowInput) {
        let pll = crate::sync::pll::Pll::new(input.offset_ns);
        self.follow = Some(Follow {
            input,
            pll,
            on: false,
            row: 0,
            join: None,
            anchor: None,
            start: None,
        });
    }

    /// Lead MultiSync followers: what the player shows is published.
    pub fn attach_lead(&mut self, publisher: crate::sync::lead::LeadPublisher) {
        self.lead = Some(publisher);
    }

    /// Wait on a futex that `links.wake` (commands) wakes, so commands are
    /// taken as soon as they come (a leader's START goes out before the
    /// deadline its row 0 is shown at). Live input brings its own futex.
    pub fn wake_on_commands(&mut self, links: &Links) {
        if let Some(l) = &self.live {
            let _ = links.wake.set(l.input.view.waker());
        } else {
            let (waker, waiter) = crate::handoff::wake_pair();
            let _ = links.wake.set(waker);
            self.waiter = Some(waiter);
        }
    }

    /// Take live frames from `input`: each output gets a live pipeline
    /// (its own, with the live gamma) and the frame buffer is made here.
    pub fn attach_live(&mut self, input: LiveInput) {
        for s in &mut self.outs {
            let settings = crate::color::ColorSettings {
                gamma: input.gamma,
                ..*s.pipe.settings()
            };
            let mut p = Pipeline::new(settings, s.pipe.out_channels());
            p.set_brightness(s.pipe.brightness());
            s.live_pipe = Some(p);
        }
        self.live = Some(Live {
            frame: vec![0; input.view.frame_len()],
            input,
            meta: None,
            unsent: false,
            showing: false,
        });
    }

    /// Blank the strip, choose the first array and prepare its first frame.
    /// The first deadline is one period from now.
    pub fn start(&mut self) {
        let t = self.send_all_off();
        // The first deadline first: a leader's START names it.
        self.ticker = Ticker::new(t + self.ticker.period(), self.ticker.period());
        let start = self.cfg.start.map(|i| self.clamp(i));
        let go = self.b.cursor.start(start);
        self.go(go);
    }

    /// Run until stopped by signal, or `max_frames` frames were sent, or
    /// `max_ns` of playback time has passed.
    pub fn run(&mut self) {
        while !self.stop.load(Relaxed) {
            if self.cfg.max_frames.is_some_and(|m| self.frames >= m)
                || self.cfg.max_ns.is_some_and(|m| self.played_ns >= m)
            {
                break;
            }
            self.frame();
        }
    }

    /// Run exactly `n` frames (tests, benchmarks).
    pub fn run_frames(&mut self, n: u64) {
        for _ in 0..n {
            self.frame();
        }
    }

    /// Send one all-off frame and stop the outputs' writers.
    pub fn finish(&mut self) {
        self.send_all_off();
        for s in &mut self.outs {
            s.out.finish();
        }
    }

    /// Send one all-off frame now (outside the cadence); returns its time.
    fn send_all_off(&mut self) -> u64 {
        let t = self.clock.now_ns();
        let meta = FrameMeta {
            t_ns: t,
            array: ALL_OFF,
            row: 0,
        };
        for s in &mut self.outs {
            s.dark();
            let _ = s.out.send(&meta);
        }
        t
    }

    /// Publish every frame handed out into `w` (door 3): the first output's
    /// pixels (its `count x output channels` bytes).
    pub fn publish_frames(&mut self, w: crate::handoff::SlotWriter) {
        self.publish = Some(w);
    }

    /// Record every playback tick's deadline, wake-up and hand-out time in
    /// `log` (made before the loop; filled without allocating).
    pub fn log_wakes(&mut self, log: crate::wake_log::WakeLog) {
        self.wake_log = Some(log);
    }

    /// The wake log handed in by [`Self::log_wakes`], with what it recorded.
    pub fn take_wake_log(&mut self) -> Option<crate::wake_log::WakeLog> {
        self.wake_log.take()
    }

    /// The first output (for its drop and error counters).
    pub fn output(&self) -> &dyn Output {
        &*self.outs[0].out
    }

    /// The outputs, in the order frames are written.
    pub fn outputs(&self) -> &[Slot] {
        &self.outs
    }

    /// The current bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.b
    }

    /// One frame: sleep (handing out live frames as they complete, in push
    /// mode), commands, send, prepare the next.
    pub fn frame(&mut self) {
        let deadline = self.ticker.deadline();
        self.wait_for(deadline);
        // Read even when the return was kept: this first reading after the
        // wait is where the loop's work time (`loop_ns`) starts.
        let now = self.clock.now_ns();
        // The wake-up is when the wait returned, read there as cyclictest
        // reads its clock; what the loop meets after it is in the hand-out.
        let woke = self.clock.returned_ns().unwrap_or(now);
        self.stats
            .wake_latency
            .record(woke.saturating_sub(deadline));

        if self.lead.is_none() {
            self.take_commands();
        }
        self.take_sync(deadline);
        if self.live_tick() {
            // Live is shown: playback holds where it is; the cadence runs on.
            self.frames += 1;
            self.played_ns = self.played_ns.saturating_add(self.ticker.period());
            self.end_tick();
            return;
        }
        if self.upcoming == Upcoming::NotReady {
            self.fetch(); // the loader may have caught up since
        }
        let mut meta = match self.upcoming {
            Upcoming::Row => FrameMeta {
                t_ns: 0,
                array: self.array,
                row: self.row,
            },
            Upcoming::Dark => FrameMeta {
                t_ns: 0,
                array: ALL_OFF,
                row: 0,
            },
            Upcoming::Hold => self.last,
            Upcoming::NotReady => {
                Stats::bump(&self.stats.underruns);
                self.last // the output still holds the previous frame
            }
        };
        // The frame is handed out at `t`: the first output's hand-off is
        // what a miss is judged by; each output's own send is timed.
        let t = self.hand_out(&mut meta);
        // Each frame is held for its own array's period: a switch lands on
        // the next deadline of the old cadence, then the new period applies.
        let period = self.period_of(meta.array);
        self.ticker.set_period(period);
        self.stats.period_ns.store(period, Relaxed);
        self.played_ns = self.played_ns.saturating_add(period);
        self.judge(deadline, woke, t, period);
        self.frames += 1;
        self.stats.array.store(meta.array, Relaxed);
        self.stats.row.store(meta.row, Relaxed);
        self.last = meta;

        if self.upcoming == Upcoming::Row {
            if self.switch_unshown && meta.row == 0 {
                // Row 0 of the latest switch is out: `wait` may answer.
                self.switch_unshown = false;
                self.stats
                    .shown_seq
                    .store(self.stats.switches.load(Relaxed), Relaxed);
            }
            std::mem::swap(&mut self.b.src_next, &mut self.b.src_sent);
            if let Some(l) = &mut self.lead {
                match self.lead_start.take() {
                    Some(i) if i == meta.array && meta.row == 0 => l.start(i, t),
                    _ => l.frame(meta.row),
                }
            }
            self.advancing = true;
            self.advance(period);
            self.advancing = false;
        } else if self.upcoming == Upcoming::NotReady && self.following() {
            // The master's timeline goes on: skip the row that was late.
            self.advance(period);
        }
        if self.follow.as_ref().is_some_and(|f| f.join.is_some()) {
            self.join();
        }
        if self.following() {
            self.steer(period);
            return;
        }
        self.end_tick();
    }

    /// A local switch leaves the master's timeline until its next START.
    fn leave_master(&mut self) {
        if let Some(f) = &mut self.follow {
            f.on = false;
            f.join = None;
            f.anchor = None;
        }
    }

    /// Whether playback follows a MultiSync master now.
    fn following(&self) -> bool {
        self.follow.as_ref().is_some_and(|f| f.on)
    }

    /// Take the follower's observations and events (before the hand-out:
    /// a START that came before this deadline shows row 0 now).
    fn take_sync(&mut self, deadline: u64) {
        let period = match self.following() {
            true => self.period_of(self.array),
            false => self.default_period,
        };
        let Some(f) = &mut self.follow else {
            return;
        };
        let pll = &mut f.pll;
        f.input.ring.drain(|o| pll.observe(o, period));
        if let Some(ev) = f.start.take() {
            self.sync_event(ev, deadline);
        }
        for _ in 0..COMMAND_BUDGET {
            let Some(f) = &mut self.follow else {
                return;
            };
            let Some(ev) = f.input.events.dequeue() else {
                break;
            };
            self.sync_event(ev, deadline);
        }
    }

    fn sync_event(&mut self, ev: crate::sync::SyncEvent, deadline: u64) {
        use crate::sync::{AfterSync, SyncEvent};
        let Some(f) = &mut self.follow else {
            return;
        };
        match ev {
            SyncEvent::Open { array } => {
                if array != self.array {
                    let next = Want {
                        array: self.clamp(array),
                        gen: self.new_gen(),
                    };
                    let current = Want {
                        array: self.array,
                        gen: self.gen,
                    };
                    self.predicted = Some(next);
                    self.b.side.want(Some(current), Some(next));
                }
            }
            SyncEvent::Start {
                array,
                epoch,
                recv_ns,
            } => {
                let period = self.ticker.period();
                if f.on && f.pll.has_timeline() && !f.pll.start_due(recv_ns, deadline, period) {
                    // Row 0 is due at a later deadline (see `start_due`).
                    f.start = Some(ev);
                    return;
                }
                let next = (f.on && f.pll.has_timeline()).then_some(deadline);
                let row0 = f.pll.start(epoch, recv_ns, next);
                f.on = true;
                f.row = 0;
                f.join = None;
                f.anchor = next.is_none().then_some(row0);
                self.follow_switch(array);
            }
            SyncEvent::Join { array, .. } => f.join = Some(array),
            SyncEvent::Stop { after } => {
                f.on = false;
                f.join = None;
                f.pll.clear();
                match after {
                    AfterSync::Dark => self.apply(Command::Stop),
                    AfterSync::Resume => {
                        self.stopped = false;
                        self.paused = false;
                        let go = self.b.cursor.start(None);
                        self.go(go);
                        self.publish_state();
                    }
                }
            }
            SyncEvent::Blank | SyncEvent::Unknown => {
                f.on = false;
                f.join = None;
                // As after a STOP: what comes next is a new timeline, not
                // this one carried over (see `pll::CARRY_NS`).
                f.pll.clear();
                self.apply(Command::Stop);
            }
        }
    }

    /// Show row 0 of `array` at this tick (a START).
    fn follow_switch(&mut self, array: u32) {
        self.switch_applied();
        let go = self.b.cursor.jump(self.clamp(array));
        self.go(go);
        self.publish_state();
    }

    /// Join the master's timeline late: the first master row due after a
    /// short margin, at its deadline.
    fn join(&mut self) {
        let now = self.clock.now_ns();
        let Some(array) = self.follow.as_mut().and_then(|f| f.join.take()) else {
            return;
        };
        let array = self.clamp(array);
        let period = self.period_of(array);
        let Some(f) = &mut self.follow else {
            return;
        };
        let margin = period / 4;
        let Some((row, deadline)) = f.pll.join(now + margin, period) else {
            return;
        };
        f.on = true;
        f.row = row;
        // The steer at the end of this tick puts `row` at `deadline`.
        f.anchor = Some(deadline.saturating_sub(row * period));
        self.follow_switch(array);
        self.follow_row(row);
    }

    /// Make master row `row` the upcoming frame (its array row, looping).
    fn follow_row(&mut self, row: u64) {
        let rows = self.b.lib.entry(self.array).rows.max(1) as u64;
        self.row = (row % rows) as u32;
        if let Some(f) = &mut self.follow {
            f.row = row;
        }
        self.fetch();
    }

    /// The follower's end of a tick: the next deadline comes from the
    /// master's timeline, slewed by at most 1 % of the period.
    fn steer(&mut self, period: u64) {
        Stats::bump(&self.stats.ticks);
        let now = self.clock.now_ns();
        let Some(f) = &mut self.follow else {
            return;
        };
        let nominal = self.ticker.deadline() + period;
        if let Some(row0) = f.anchor.take() {
            // The first START: row 1 one period after row 0 was due.
            self.ticker.set_next((row0 + f.row * period).max(now));
            f.pll.publish(&f.input.stats);
            return;
        }
        let step = f.pll.steer(f.row, nominal, period);
        f.pll.publish(&f.input.stats);
        let (row, mut deadline) = match step {
            crate::sync::pll::Step::Jump { row, deadline } => (row, deadline),
            s => (f.row, s.deadline()),
        };
        let mut row = row;
        if deadline + period / 2 < now {
            // This node stalled (a miss): rejoin the master's timeline by
            // skipping the rows it missed rather than showing them in a
            // burst.
            let k = (now - deadline) / period.max(1) + 1;
            self.stats.skipped_ticks.fetch_add(k, Relaxed);
            row += k;
            deadline += k * period;
        }
        if row != f.row {
            self.follow_row(row);
        }
        self.ticker.set_next(deadline);
    }

    /// Move the ticker past this tick (late ticks are skipped, counted).
    /// A leader takes its commands here, just after the hand-out: a switch
    /// shows row 0 one period later, and its START has that whole period
    /// to reach the followers before their own deadline for it.
    fn end_tick(&mut self) {
        Stats::bump(&self.stats.ticks);
        let skipped = self.ticker.advance(self.clock.now_ns());
        if skipped > 0 {
            self.stats.skipped_ticks.fetch_add(skipped, Relaxed);
            if self.lead.is_some() && self.upcoming == Upcoming::Row {
                // A leader's rows stay on the timeline its followers keep:
                // after a stall it skips the rows it missed (alone, a
                // player keeps every row and lets the deadlines slip).
                for _ in 0..skipped.min(1000) {
                    self.advance(self.ticker.period());
                }
            }
        }
        if self.lead.is_some() {
            self.take_commands();
        }
        // The tick's START (a loop's, or a switch's that replaced it) goes
        // now that no command can replace it.
        if let Some(l) = &mut self.lead {
            l.flush();
        }
    }

    /// Count a deadline miss: handed out more than a quarter period late.
    /// Every tick judged here is also put in the wake log, if there is one.
    fn judge(&mut self, deadline: u64, woke: u64, t: u64, period: u64) {
        if let Some(w) = &mut self.wake_log {
            w.push(deadline, woke, t);
        }
        if t.saturating_sub(deadline) > period / 4 {
            Stats::bump(&self.stats.deadline_misses);
            self.stats.misses.record(Miss {
                deadline_ns: deadline,
                woke_ns: woke,
                sent_ns: t,
            });
        }
    }

    /// Sleep to `deadline`. With live input in push mode, wait on the
    /// receivers' futex instead and hand out each live frame as it
    /// completes; without it, `clock_nanosleep` as always.
    fn wait_for(&mut self, deadline: u64) {
        // On CLOCK_MONOTONIC whatever the player's clock (a drifting test
        // clock runs off it): two vDSO reads, no system call.
        let ahead = deadline.saturating_sub(self.clock.now_ns());
        let d = crate::clock::monotonic_ns() + ahead;
        self.stats.next_deadline_ns.store(d, Relaxed);
        self.b.side.deadline(d);
        let commands = (self.waiter.is_some() || self.follow.is_some()) && self.lead.is_none();
        loop {
            let woken = match (&mut self.live, &mut self.waiter) {
                (Some(l), _) if l.input.output == LiveOutput::Push || commands => {
                    self.clock.wait_until(deadline, l.input.view.waiter())
                }
                (None, Some(w)) if commands => self.clock.wait_until(deadline, w),
                _ => {
                    self.clock.sleep_until(deadline);
                    false
                }
            };
            if !woken || self.stop.load(Relaxed) {
                return;
            }
            if commands {
                // Prepared now, shown at the deadline.
                self.take_commands();
            }
            // Push mode hands a complete frame out now; tick mode (woken
            // here only for commands) leaves it for the tick.
            if self
                .live
                .as_ref()
                .is_some_and(|l| l.input.output == LiveOutput::Push)
            {
                self.take_live();
                if self.live_shown() && self.live.as_ref().is_some_and(|l| l.unsent) {
                    self.send_live();
                }
            }
        }
    }

    /// Apply queued commands, at most [`COMMAND_BUDGET`].
    fn take_commands(&mut self) {
        for _ in 0..COMMAND_BUDGET {
            match self.cmds.dequeue() {
                Some(c) => {
                    Stats::bump(&self.stats.commands);
                    self.apply(c);
                }
                None => break,
            }
        }
    }

    /// Take the newest complete live frame, if there is a new one.
    fn take_live(&mut self) {
        if let Some(l) = &mut self.live {
            if let Some(m) = l.input.view.latest(&mut l.frame) {
                l.meta = Some(m);
                l.unsent = true;
            }
            if !l.input.view.is_live() {
                // No source any more: the next one starts from its own
                // first frame.
                l.meta = None;
                l.unsent = false;
            }
        }
    }

    /// Whether live input is what the outputs show now: a source is
    /// winning, and it ranks over playback or playback is stopped.
    fn live_shown(&self) -> bool {
        let Some(l) = &self.live else {
            return false;
        };
        l.input.view.is_live()
            && l.meta.is_some()
            && (l.input.rank == LiveRank::Over || self.stopped || self.finished)
    }

    /// The live part of a tick. True when live is shown (the tick is done);
    /// false when playback shows, after making its frame ready again if a
    /// live frame was in the outputs.
    fn live_tick(&mut self) -> bool {
        if self.live.is_none() {
            return false;
        }
        self.take_live();
        if self.live_shown() {
            let tick = self
                .live
                .as_ref()
                .is_some_and(|l| l.input.output == LiveOutput::Tick);
            // Push mode sent each frame as it came; a frame still unsent
            // (it came while playback ranked over it) goes now. Tick mode
            // latches the newest frame at every tick.
            if tick || self.live.as_ref().is_some_and(|l| l.unsent) {
                self.send_live();
            }
            if let Some(l) = &mut self.live {
                l.showing = true;
            }
            self.stats.showing_live.store(1, Relaxed);
            return true;
        }
        self.stats.showing_live.store(0, Relaxed);
        let ended = match &mut self.live {
            Some(l) if l.showing => {
                l.showing = false;
                if l.input.view.is_live() {
                    None // playback took over by rank (it plays again)
                } else {
                    Some(l.input.after)
                }
            }
            _ => None,
        };
        match ended {
            Some(AfterLive::Restart) if !self.stopped && !self.finished => {
                let go = self.b.cursor.jump(self.array);
                self.go(go);
            }
            Some(AfterLive::Dark) => {
                self.stopped = true;
                self.paused = false;
                self.go_dark();
                self.publish_state();
            }
            _ => {}
        }
        if self.outputs_hold_live {
            self.refresh_upcoming();
        }
        false
    }

    /// Render the newest live frame into every output and hand it out now.
    fn send_live(&mut self) {
        let Some(l) = &mut self.live else {
            return;
        };
        let Some(m) = l.meta else {
            return;
        };
        // Tick mode shows a held frame again at each tick; only its first
        // hand-out has a packet-to-wire latency.
        let fresh = std::mem::replace(&mut l.unsent, false);
        let ch = l.input.channels;
        let leds = l.frame.len() / ch.max(1);
        for s in &mut self.outs {
            s.render_with(&l.frame, leds, ch, true);
        }
        self.outputs_hold_live = true;
        let mut meta = FrameMeta {
            t_ns: 0,
            array: LIVE_ARRAY,
            row: m.frame as u32,
        };
        self.hand_out(&mut meta);
        self.stats.showing_live.store(1, Relaxed);
        // Completed (receiver, CLOCK_MONOTONIC) to handed out.
        if fresh {
            let now = crate::clock::monotonic_ns();
            self.stats.live_latency.record(now.saturating_sub(m.t_ns));
        }
        Stats::bump(&self.stats.live_frames);
    }

    /// Make the upcoming playback frame ready in the outputs again.
    fn refresh_upcoming(&mut self) {
        self.outputs_hold_live = false;
        match self.upcoming {
            Upcoming::Row => self.render_next(),
            Upcoming::Hold | Upcoming::NotReady => self.render_from_sent(),
            Upcoming::Dark => self.go_dark(),
        }
    }

    /// Send the prepared frame to every output in order, stamped now;
    /// count it and publish it (door 3). Returns the hand-off time.
    fn hand_out(&mut self, meta: &mut FrameMeta) -> u64 {
        let t = self.clock.now_ns();
        meta.t_ns = self.clock.record_ns();
        let (mut dropped, mut write_errors) = (0, 0);
        // Two passes, no allocation: the outputs behind a worker first (a
        // hand-off of a few µs each, so their threads start while the
        // inline outputs write), then the inline ones; each pass in the
        // configured order.
        for pass_workers in [true, false] {
            for s in &mut self.outs {
                if s.stats.worker.load(Relaxed) != pass_workers {
                    continue;
                }
                let (d, w) = s.send_timed(&self.clock, meta, &self.stats);
                dropped += d;
                write_errors += w;
            }
        }
        self.stats.output_dropped.store(dropped, Relaxed);
        self.stats.output_write_errors.store(write_errors, Relaxed);
        Stats::bump(&self.stats.frames);
        if let Some(w) = &mut self.publish {
            // The first output's pixels still hold the frame just handed
            // out (the next one is prepared after this).
            let pix = &self.outs[0].pix;
            let f = w.back();
            let n = pix.len().min(f.pixels.len());
            f.pixels[..n].copy_from_slice(&pix[..n]);
            f.pixels[n..].fill(0);
            f.counter = self.stats.frames.load(Relaxed);
            f.t_ns = t;
            f.source = meta.array;
            w.publish();
        }
        t
    }

    fn apply(&mut self, c: Command) {
        match c {
            Command::Play(i) => {
                self.switch_applied();
                self.leave_master();
                let go = self.b.cursor.jump(self.clamp(i));
                self.go(go);
            }
            Command::Next | Command::Prev => {
                self.switch_applied();
                self.leave_master();
                let fwd = matches!(c, Command::Next);
                let go = self.b.cursor.step(fwd, self.array, self.b.lib.len());
                self.go(go);
            }
            Command::Pause => {
                if !self.stopped && !self.finished && self.last.array != ALL_OFF {
                    self.paused = true;
                    self.render_from_sent();
                    self.upcoming = Upcoming::Hold;
                }
            }
            Command::Resume => {
                let was = self.paused || self.stopped;
                self.paused = false;
                self.stopped = false;
                if was && !self.finished {
                    self.fetch();
                }
            }
            Command::Stop => {
                if let Some(l) = &mut self.lead {
                    l.stop(true);
                }
                self.stopped = true;
                self.paused = false;
                self.go_dark();
            }
            Command::SetBrightness(x) => self.set_brightness(x),
            Command::AddBrightness(d) => self.set_brightness(self.outs[0].pipe.brightness() + d),
            Command::Swap(new) => self.swap(new),
        }
        self.publish_state();
    }

    /// One brightness for every output (each output's own `brightness` is
    /// where it starts).
    fn set_brightness(&mut self, x: f32) {
        for s in &mut self.outs {
            s.pipe.set_brightness(x);
            if let Some(p) = &mut s.live_pipe {
                p.set_brightness(x);
            }
        }
        self.stats.brightness_milli.store(
            (self.outs[0].pipe.brightness() * 1000.0).round() as u32,
            Relaxed,
        );
        match self.upcoming {
            Upcoming::Row => self.render_next(),
            Upcoming::Hold | Upcoming::NotReady => self.render_from_sent(),
            Upcoming::Dark => {}
        }
    }

    fn publish_state(&self) {
        let s = if self.finished {
            STATE_FINISHED
        } else if self.stopped {
            STATE_STOPPED
        } else if self.paused {
            STATE_PAUSED
        } else {
            STATE_PLAYING
        };
        self.stats.state.store(s, Relaxed);
    }

    fn swap(&mut self, mut new: Box<Bundle>) {
        let keep = self.b.lib.name(self.array);
        let found = new.lib.find(keep);
        std::mem::swap(&mut self.b, &mut new);
        // The old bundle (library, loader thread, buffers) is dropped by the
        // control thread; the queue has room because control sends one swap
        // at a time and waits for the old bundle before sending another.
        if let Err(old) = self.retired.enqueue(new) {
            // Unreachable by that protocol; keeping it alive is safer than
            // freeing memory inside the loop.
            std::mem::forget(old);
        }
        Stats::bump(&self.stats.reloads);
        self.predicted = None;
        self.b
            .cursor
            .set_mode(self.cfg.order, self.cfg.seed ^ self.frames);
        let i = found.unwrap_or(0);
        // A held row belonged to the old library: play on from row 0.
        self.paused = false;
        let go = self.b.cursor.jump(i);
        if self.finished || self.stopped {
            // Resume plays it from row 0.
            self.array = i;
            self.row = 0;
            return;
        }
        self.go(go);
    }

    fn switch_applied(&mut self) {
        Stats::bump(&self.stats.switches);
        self.switch_unshown = true;
        self.stopped = false;
        self.paused = false;
        self.finished = false;
    }

    /// An index the library has (the last array for one past the end).
    fn clamp(&self, i: u32) -> u32 {
        i.min(self.b.lib.len().saturating_sub(1))
    }

    /// Do what the cursor decided.
    fn go(&mut self, go: Go) {
        match go {
            Go::Play(i) => {
                self.finished = false;
                self.start_pass(self.clamp(i));
            }
            Go::Dark => {
                if let Some(l) = &mut self.lead {
                    l.stop(false);
                }
                self.finished = true;
                self.b.side.want(None, None);
                self.go_dark();
                self.publish_state();
            }
        }
    }

    /// Row 0 of array `i`, as a new stream; tell the loader what follows.
    fn start_pass(&mut self, i: u32) {
        self.array = i;
        self.row = 0;
        self.gen = match self.predicted {
            Some(w) if w.array == i => w.gen,
            _ => self.new_gen(),
        };
        let next = self.b.cursor.predict(i).map(|a| Want {
            array: a,
            gen: self.new_gen(),
        });
        self.predicted = next;
        let current = Some(Want {
            array: i,
            gen: self.gen,
        });
        self.b.side.want(current, next);
        if let Some(l) = &mut self.lead {
            // Row 0 is due at the next deadline: a leader takes commands
            // just after a hand-out (`end_tick`), and a pass ends in the
            // hand-out of its last row. Followers that follow place an
            // early START on their own cadence, so it goes now, a whole
            // period ahead; to a follower without a timeline START means
            // "row 0 now", so the first one goes when row 0 is handed out.
            let row0 = match self.advancing {
                true => self.ticker.deadline() + self.ticker.period(),
                false => self.ticker.deadline(),
            };
            l.open(i);
            if l.playing() {
                l.start(i, row0);
                self.lead_start = None;
            } else {
                self.lead_start = Some(i);
            }
        }
        if self.stopped {
            self.go_dark();
        } else {
            self.fetch();
        }
    }

    fn new_gen(&mut self) -> u32 {
        self.fresh_gen = self.fresh_gen.wrapping_add(1);
        self.fresh_gen
    }

    /// The period array `array` plays at: one rate for all with `--fps`,
    /// else the array's own rate, else the default.
    fn period_of(&self, array: u32) -> u64 {
        if self.cfg.force_fps || array == ALL_OFF {
            return self.default_period;
        }
        self.b.lib.period_ns(array).unwrap_or(self.default_period)
    }

    /// Move past the frame just sent, which was shown for `period` ns.
    fn advance(&mut self, period: u64) {
        if let Some(f) = &self.follow {
            if f.on {
                return self.follow_row(f.row + 1);
            }
        }
        if let Some(go) = self.b.cursor.frame_shown(period) {
            return self.go(go);
        }
        let rows = self.b.lib.entry(self.array).rows;
        if self.row + 1 < rows {
            self.row += 1;
            self.fetch();
        } else {
            let go = self.b.cursor.end_of_pass(self.array);
            self.go(go);
        }
    }

    fn go_dark(&mut self) {
        for s in &mut self.outs {
            s.dark();
        }
        self.upcoming = Upcoming::Dark;
    }

    /// Fetch the upcoming row into `src_next` and prepare it.
    fn fetch(&mut self) {
        if self.stopped || self.finished {
            return self.go_dark();
        }
        if self.paused {
            return;
        }
        let b = &mut *self.b;
        let rb = b.lib.entry(self.array).row_bytes() as usize;
        let w = Want {
            array: self.array,
            gen: self.gen,
        };
        let state = b.side.row(&b.lib, w, self.row, &mut b.src_next[..rb]);
        match state {
            RowState::Ready => {
                self.render_next();
                self.upcoming = Upcoming::Row;
            }
            RowState::NotYet => self.upcoming = Upcoming::NotReady,
            RowState::Bad => {
                // The body failed its CRC or cannot be read: skip the array.
                Stats::bump(&self.stats.skipped_arrays);
                let go = self.b.cursor.skip(self.array);
                self.go(go);
            }
        }
    }

    fn render_next(&mut self) {
        let e = *self.b.lib.entry(self.array);
        let rb = e.row_bytes() as usize;
        let row = &self.b.src_next[..rb];
        for s in &mut self.outs {
            s.render(row, e.leds as usize, e.channels as usize);
        }
    }

    fn render_from_sent(&mut self) {
        if self.last.array == ALL_OFF {
            return;
        }
        let Some(e) = self.b.lib.info(self.last.array) else {
            return;
        };
        let rb = (e.leds * e.channels) as usize;
        let row = &self.b.src_sent[..rb];
        for s in &mut self.outs {
            s.render(row, e.leds as usize, e.channels as usize);
        }
    }
}
