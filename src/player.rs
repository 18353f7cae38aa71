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
use crate::output::{FrameMeta, Output, ALL_OFF};
use crate::stats::{Miss, Stats, STATE_FINISHED, STATE_PAUSED, STATE_PLAYING, STATE_STOPPED};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

/// Commands the loop takes per wake-up at most, so a flood of commands
/// cannot delay a frame.
pub const COMMAND_BUDGET: usize = 8;

/// What happens at the end of the playlist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Order {
    /// Start again from the first entry.
    #[default]
    Loop,
    /// Go dark after the last entry and keep running.
    Once,
    /// Play the entries in a new random order on each pass.
    Shuffle,
}

/// One playlist entry, resolved against a library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlaylistItem {
    /// Array index.
    pub array: u32,
    /// Times through the array (>= 1).
    pub repeat: u32,
    /// Or: play (looping) for this many frames.
    pub frames: Option<u64>,
}

impl PlaylistItem {
    /// Play `array` once through.
    pub fn once(array: u32) -> PlaylistItem {
        PlaylistItem {
            array,
            repeat: 1,
            frames: None,
        }
    }
}

/// Everything that depends on the library, swapped as one on reload.
pub struct Bundle {
    /// The library.
    pub lib: Arc<Library>,
    /// Its loader thread (stopped when the bundle is dropped).
    pub loader: Loader,
    /// The player's handle on the loader.
    pub side: PlayerSide,
    /// The playlist, resolved against `lib`.
    pub playlist: Vec<PlaylistItem>,
    /// Play order of the playlist positions (shuffled in place).
    order: Vec<u32>,
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
            order: (0..playlist.len() as u32).collect(),
            playlist,
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
    /// Frames per second.
    pub fps: u32,
    /// LEDs on the strip.
    pub leds: usize,
    /// What happens at the playlist's end.
    pub order: Order,
    /// Stop after this many frames.
    pub max_frames: Option<u64>,
    /// Array to start with (else the first playlist entry, else 0).
    pub start: Option<u32>,
    /// Seed for `--order shuffle`.
    pub seed: u64,
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
    out: Box<dyn Output>,
    pipe: Pipeline,
    cmds: Arc<CommandQueue>,
    retired: Arc<RetiredQueue>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    cfg: PlayerConfig,
    pix: Vec<u8>,
    ticker: Ticker,
    // Position of the upcoming frame.
    array: u32,
    row: u32,
    gen: u32,
    fresh_gen: u32,
    predicted: Option<Want>,
    /// Position in `b.order`, or `None` when playing outside the playlist.
    pl_pos: Option<usize>,
    passes: u32,
    entry_frames: u64,
    upcoming: Upcoming,
    paused: bool,
    stopped: bool,
    finished: bool,
    last: FrameMeta,
    rng: u64,
    frames: u64,
}

impl<C: Clock> Player<C> {
    /// Make a player; every buffer the loop needs is allocated here.
    pub fn new(
        bundle: Box<Bundle>,
        clock: C,
        out: Box<dyn Output>,
        pipe: Pipeline,
        links: &Links,
        cfg: PlayerConfig,
    ) -> Player<C> {
        let Links {
            cmds,
            retired,
            stats,
            stop,
        } = links.clone();
        let period = 1_000_000_000 / cfg.fps.max(1) as u64;
        let pix = vec![0; cfg.leds * pipe.out_channels()];
        stats
            .brightness_milli
            .store((pipe.brightness() * 1000.0).round() as u32, Relaxed);
        Player {
            b: bundle,
            clock,
            out,
            pipe,
            cmds,
            retired,
            stats,
            stop,
            cfg,
            pix,
            ticker: Ticker::new(0, period),
            array: 0,
            row: 0,
            gen: 0,
            fresh_gen: 1,
            predicted: None,
            pl_pos: None,
            passes: 0,
            entry_frames: 0,
            upcoming: Upcoming::Dark,
            paused: false,
            stopped: false,
            finished: false,
            last: FrameMeta {
                t_ns: 0,
                array: ALL_OFF,
                row: 0,
            },
            rng: cfg.seed | 1,
            frames: 0,
        }
    }

    /// Blank the strip, choose the first array and prepare its first frame.
    /// The first deadline is one period from now.
    pub fn start(&mut self) {
        let t = self.send_all_off();
        if self.cfg.order == Order::Shuffle {
            self.shuffle();
        }
        match self.cfg.start {
            Some(i) => self.jump_to(i),
            None if !self.b.playlist.is_empty() => self.enter_entry(0),
            None => self.begin_array(0, None),
        }
        self.ticker = Ticker::new(t + self.ticker.period(), self.ticker.period());
    }

    /// Run until stopped by signal, or `max_frames` frames were sent.
    pub fn run(&mut self) {
        while !self.stop.load(Relaxed) {
            if self.cfg.max_frames.is_some_and(|m| self.frames >= m) {
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

    /// Send one all-off frame and stop the output's writer.
    pub fn finish(&mut self) {
        self.send_all_off();
        self.out.finish();
    }

    /// Send one all-off frame now (outside the cadence); returns its time.
    fn send_all_off(&mut self) -> u64 {
        self.pix.fill(0);
        self.out.prepare(&self.pix);
        let t = self.clock.now_ns();
        let _ = self.out.send(&FrameMeta {
            t_ns: t,
            array: ALL_OFF,
            row: 0,
        });
        t
    }

    /// The output (for its drop and error counters).
    pub fn output(&self) -> &dyn Output {
        &*self.out
    }

    /// The current bundle.
    pub fn bundle(&self) -> &Bundle {
        &self.b
    }

    /// One frame: sleep, commands, send, prepare the next.
    pub fn frame(&mut self) {
        let deadline = self.ticker.deadline();
        self.clock.sleep_until(deadline);
        let woke = self.clock.now_ns();
        self.stats
            .wake_latency
            .record(woke.saturating_sub(deadline));

        for _ in 0..COMMAND_BUDGET {
            match self.cmds.dequeue() {
                Some(c) => {
                    Stats::bump(&self.stats.commands);
                    self.apply(c);
                }
                None => break,
            }
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
        let t = self.clock.now_ns();
        meta.t_ns = t;
        if self.out.send(&meta).is_err() {
            Stats::bump(&self.stats.output_errors);
        }
        self.stats.output_dropped.store(self.out.dropped(), Relaxed);
        self.stats
            .output_write_errors
            .store(self.out.write_errors(), Relaxed);
        if t.saturating_sub(deadline) > self.ticker.period() / 4 {
            Stats::bump(&self.stats.deadline_misses);
            self.stats.misses.record(Miss {
                deadline_ns: deadline,
                woke_ns: woke,
                sent_ns: t,
            });
        }
        self.frames += 1;
        Stats::bump(&self.stats.frames);
        self.stats.array.store(meta.array, Relaxed);
        self.stats.row.store(meta.row, Relaxed);
        self.last = meta;

        if self.upcoming == Upcoming::Row {
            std::mem::swap(&mut self.b.src_next, &mut self.b.src_sent);
            self.entry_frames += 1;
            self.advance();
        }
        let skipped = self.ticker.advance(self.clock.now_ns());
        if skipped > 0 {
            self.stats.skipped_ticks.fetch_add(skipped, Relaxed);
        }
    }

    fn apply(&mut self, c: Command) {
        match c {
            Command::Play(i) => {
                Stats::bump(&self.stats.switches);
                self.stopped = false;
                self.paused = false;
                self.finished = false;
                self.jump_to(i);
            }
            Command::Next | Command::Prev => {
                Stats::bump(&self.stats.switches);
                self.stopped = false;
                self.paused = false;
                self.finished = false;
                let fwd = matches!(c, Command::Next);
                let n = self.b.playlist.len();
                if n > 0 {
                    let pos = match self.pl_pos {
                        Some(p) if fwd => (p + 1) % n,
                        Some(p) => (p + n - 1) % n,
                        None => 0,
                    };
                    self.enter_entry(pos);
                } else {
                    let len = self.b.lib.len();
                    let i = if fwd {
                        (self.array + 1) % len
                    } else {
                        (self.array + len - 1) % len
                    };
                    self.begin_array(i, None);
                }
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
                self.stopped = true;
                self.paused = false;
                self.go_dark();
            }
            Command::SetBrightness(x) => self.set_brightness(x),
            Command::AddBrightness(d) => self.set_brightness(self.pipe.brightness() + d),
            Command::Swap(new) => self.swap(new),
        }
        self.publish_state();
    }

    fn set_brightness(&mut self, x: f32) {
        self.pipe.set_brightness(x);
        self.stats
            .brightness_milli
            .store((self.pipe.brightness() * 1000.0).round() as u32, Relaxed);
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
        self.order_reset();
        let i = found.unwrap_or(0);
        // A held row belonged to the old library: play on from row 0.
        self.paused = false;
        if self.finished || self.stopped {
            self.array = i;
            self.row = 0;
            return;
        }
        self.jump_to(i);
    }

    fn order_reset(&mut self) {
        for (i, o) in self.b.order.iter_mut().enumerate() {
            *o = i as u32;
        }
        if self.cfg.order == Order::Shuffle {
            self.shuffle();
        }
    }

    /// Play array `i` from row 0; stay in the playlist if it is in it.
    fn jump_to(&mut self, i: u32) {
        let i = i.min(self.b.lib.len().saturating_sub(1));
        let pos = self
            .b
            .order
            .iter()
            .position(|&p| self.b.playlist[p as usize].array == i);
        match pos {
            Some(p) => self.enter_entry(p),
            None => self.begin_array(i, None),
        }
    }

    fn enter_entry(&mut self, pos: usize) {
        let item = self.b.playlist[self.b.order[pos] as usize];
        self.begin_array(item.array, Some(pos));
    }

    /// Start array `i` at row 0, as playlist position `pos` (or outside it).
    fn begin_array(&mut self, i: u32, pos: Option<usize>) {
        self.pl_pos = pos;
        self.passes = 0;
        self.entry_frames = 0;
        self.finished = false;
        self.start_pass(i);
    }

    /// Row 0 of array `i`, as a new stream; tell the loader what follows.
    fn start_pass(&mut self, i: u32) {
        self.array = i;
        self.row = 0;
        self.gen = match self.predicted {
            Some(w) if w.array == i => w.gen,
            _ => self.new_gen(),
        };
        let next = self.predict_next();
        self.predicted = next;
        let current = Some(Want {
            array: i,
            gen: self.gen,
        });
        self.b.side.want(current, next);
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

    /// The stream that will follow the current pass, for prefetching.
    fn predict_next(&mut self) -> Option<Want> {
        let array = match self.pl_pos {
            None => Some(self.array),
            Some(p) => {
                let item = self.b.playlist[self.b.order[p] as usize];
                if item.frames.is_some() || self.passes + 1 < item.repeat {
                    Some(item.array)
                } else if p + 1 < self.b.order.len() {
                    Some(self.b.playlist[self.b.order[p + 1] as usize].array)
                } else if self.cfg.order == Order::Loop {
                    Some(self.b.playlist[self.b.order[0] as usize].array)
                } else {
                    None // once: dark next; shuffle: not known yet
                }
            }
        };
        array.map(|a| Want {
            array: a,
            gen: self.new_gen(),
        })
    }

    /// Move past the frame just sent.
    fn advance(&mut self) {
        let rows = self.b.lib.entry(self.array).rows;
        if let Some(p) = self.pl_pos {
            let item = self.b.playlist[self.b.order[p] as usize];
            if item.frames.is_some_and(|f| self.entry_frames >= f) {
                return self.next_entry(p);
            }
        }
        if self.row + 1 < rows {
            self.row += 1;
            self.fetch();
        } else {
            self.end_of_pass();
        }
    }

    fn end_of_pass(&mut self) {
        match self.pl_pos {
            None => self.start_pass(self.array),
            Some(p) => {
                self.passes += 1;
                let item = self.b.playlist[self.b.order[p] as usize];
                if item.frames.is_some() || self.passes < item.repeat {
                    self.start_pass(item.array);
                } else {
                    self.next_entry(p);
                }
            }
        }
    }

    fn next_entry(&mut self, p: usize) {
        if p + 1 < self.b.order.len() {
            return self.enter_entry(p + 1);
        }
        match self.cfg.order {
            Order::Loop => self.enter_entry(0),
            Order::Shuffle => {
                self.shuffle();
                self.enter_entry(0);
            }
            Order::Once => {
                self.finished = true;
                self.b.side.want(None, None);
                self.go_dark();
                self.publish_state();
            }
        }
    }

    fn go_dark(&mut self) {
        self.pix.fill(0);
        self.out.prepare(&self.pix);
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
        let e = *b.lib.entry(self.array);
        let rb = e.row_bytes() as usize;
        let state = match b.lib.head_row(self.array, self.row) {
            Some(row) => {
                b.src_next[..rb].copy_from_slice(row);
                RowState::Ready
            }
            None => {
                let w = Want {
                    array: self.array,
                    gen: self.gen,
                };
                b.side.row(&b.lib, w, self.row, &mut b.src_next[..rb])
            }
        };
        match state {
            RowState::Ready => {
                self.render_next();
                self.upcoming = Upcoming::Row;
            }
            RowState::NotYet => self.upcoming = Upcoming::NotReady,
            RowState::Bad => {
                // The body failed its CRC or cannot be read: skip the array.
                Stats::bump(&self.stats.skipped_arrays);
                self.end_of_array_early();
            }
        }
    }

    fn end_of_array_early(&mut self) {
        match self.pl_pos {
            Some(p) if self.b.playlist.len() > 1 => self.next_entry(p),
            // Nothing else to play: replay its head rows.
            _ => self.start_pass(self.array),
        }
    }

    fn render_next(&mut self) {
        let e = *self.b.lib.entry(self.array);
        let rb = e.row_bytes() as usize;
        self.pipe
            .apply(&self.b.src_next[..rb], e.channels as usize, &mut self.pix);
        self.out.prepare(&self.pix);
    }

    fn render_from_sent(&mut self) {
        if self.last.array == ALL_OFF {
            return;
        }
        let Some(e) = self.b.lib.info(self.last.array) else {
            return;
        };
        let rb = (e.leds * e.channels) as usize;
        self.pipe
            .apply(&self.b.src_sent[..rb], e.channels as usize, &mut self.pix);
        self.out.prepare(&self.pix);
    }

    fn shuffle(&mut self) {
        // Fisher-Yates with xorshift64: in place, no allocation.
        let n = self.b.order.len();
        for i in (1..n).rev() {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = (self.rng % (i as u64 + 1)) as usize;
            self.b.order.swap(i, j);
        }
    }
}
