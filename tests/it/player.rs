//! The frame loop in-process, on a mock clock.

use crate::util::*;
use rowplay::clock::MockClock;
use rowplay::color::{ColorSettings, Pipeline};
use rowplay::library::Library;
use rowplay::output::chip::{ChipKind, ChipSettings, Encoder};
use rowplay::output::record::{FileSink, Recorder};
use rowplay::output::worker::{Worker, WorkerOptions};
use rowplay::output::{FrameMeta, Output, OutputError, Tee, ALL_OFF};
use rowplay::player::{
    Bundle, Command, CommandQueue, Links, Order, Player, PlayerConfig, PlaylistItem, RetiredQueue,
    Slot,
};
use rowplay::stats::Stats;
use rowplay::wake_log::WakeLog;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::sync::{Arc, Mutex};

const PERIOD: u64 = 20_000_000;

/// Every frame sent, with its pixels.
type Frames = Arc<Mutex<Vec<(FrameMeta, Vec<u8>)>>>;

/// Records every frame sent.
#[derive(Clone, Default)]
struct Cap {
    frames: Frames,
    pending: Vec<u8>,
    fail_every: Option<u64>,
    sent: u64,
}

impl Output for Cap {
    fn prepare(&mut self, pixels: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(pixels);
    }
    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        self.sent += 1;
        self.frames
            .lock()
            .unwrap()
            .push((*meta, self.pending.clone()));
        match self.fail_every {
            Some(n) if self.sent % n == 0 => Err(OutputError::Io(libc::EIO)),
            _ => Ok(()),
        }
    }
}

struct Rig {
    player: Player<MockClock>,
    clock: MockClock,
    cmds: Arc<CommandQueue>,
    retired: Arc<RetiredQueue>,
    stats: Arc<Stats>,
    frames: Frames,
    lib: Arc<Library>,
    _dir: tempfile::TempDir,
}

fn rig(arrays: Vec<rowplay::import::NamedArray>, playlist: &[&str], order: Order, out: Cap) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), arrays, 8);
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let items = playlist
        .iter()
        .map(|n| PlaylistItem::once(lib.find(n).unwrap()))
        .collect();
    let bundle = Box::new(Bundle::new(lib.clone(), items).unwrap());
    let clock = MockClock::new(1_000_000_000);
    let links = Links::new();
    let (cmds, retired, stats) = (
        links.cmds.clone(),
        links.retired.clone(),
        links.stats.clone(),
    );
    let frames = out.frames.clone();
    let leds = lib.max_leds() as usize;
    let player = Player::new(
        bundle,
        clock.clone(),
        Box::new(out),
        Pipeline::new(ColorSettings::default(), 3),
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds,
            order,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 7,
        },
    );
    Rig {
        player,
        clock,
        cmds,
        retired,
        stats,
        frames,
        lib,
        _dir: dir,
    }
}

/// Run frames; between frames give the loader real time, as the 20 ms
/// period would, so that rows beyond the heads are normally ready.
fn run(r: &mut Rig, n: u64) {
    for _ in 0..n {
        r.player.run_frames(1);
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
}

/// (array, row) of each frame after the start-up blank, with repeated
/// frames (counted underruns) collapsed; asserts the repeats were counted.
fn shown(r: &Rig) -> Vec<(u32, u32)> {
    let f = r.frames.lock().unwrap();
    assert_eq!(
        f[0].0.array, ALL_OFF,
        "the strip is blanked before the first frame"
    );
    let mut out: Vec<(u32, u32)> = Vec::new();
    let mut repeats = 0;
    for (m, _) in &f[1..] {
        let x = (m.array, m.row);
        if out.last() == Some(&x) && m.array != ALL_OFF {
            repeats += 1;
        } else {
            out.push(x);
        }
    }
    assert_eq!(
        repeats,
        r.stats.underruns.load(Relaxed),
        "repeated frames are exactly the underruns"
    );
    out
}

fn rows_of(a: u32, n: u32) -> Vec<(u32, u32)> {
    (0..n).map(|r| (a, r)).collect()
}

#[test]
fn a_playlist_plays_every_row_once_in_order_then_goes_dark() {
    let arrays = vec![
        named("a", 1, 30, 4),
        named("b", 2, 5, 4),
        named("c", 3, 12, 4),
    ];
    let mut r = rig(arrays, &["c", "a", "b"], Order::Once, Cap::default());
    r.player.start();
    run(&mut r, 30 + 5 + 12 + 10);
    let (a, b, c) = (
        r.lib.find("a").unwrap(),
        r.lib.find("b").unwrap(),
        r.lib.find("c").unwrap(),
    );
    let mut want = rows_of(c, 12);
    want.extend(rows_of(a, 30));
    want.extend(rows_of(b, 5));
    want.push((ALL_OFF, 0));
    let got = shown(&r);
    // After the last row the strip stays dark (one collapsed entry per dark frame run).
    assert_eq!(&got[..want.len() - 1], &want[..want.len() - 1]);
    assert!(
        got[want.len() - 1..].iter().all(|x| x.0 == ALL_OFF),
        "{:?}",
        &got[want.len() - 1..]
    );
    // The pixels are the array's: frame of (a, 20) carries row 20 of a.
    let f = r.frames.lock().unwrap();
    let (_, px) = f.iter().find(|(m, _)| m.array == a && m.row == 20).unwrap();
    assert_eq!(px[..12], array(1, 30, 4, 3).data[20 * 12..21 * 12]);
}

#[test]
fn without_a_playlist_the_array_loops() {
    let mut r = rig(vec![named("x", 1, 10, 2)], &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 25);
    let got = shown(&r);
    let want: Vec<(u32, u32)> = (0..got.len() as u32).map(|i| (0, i % 10)).collect();
    assert_eq!(got, want);
}

#[test]
fn a_switch_shows_row_0_of_the_target_on_the_next_frame() {
    let arrays = vec![named("a", 1, 40, 3), named("b", 2, 40, 3)];
    let mut r = rig(arrays, &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 5);
    let b = r.lib.find("b").unwrap();
    assert!(r.cmds.enqueue(Command::Play(b)).is_ok());
    run(&mut r, 15);
    let f = r.frames.lock().unwrap();
    // frames 1..=5 are a's rows 0..4; frame 6 is b's row 0, then b continues
    assert_eq!((f[6].0.array, f[6].0.row), (b, 0));
    let after: Vec<u32> = f[6..].iter().map(|x| x.0.row).collect();
    let mut prev = 0;
    for (i, row) in after.iter().enumerate().skip(1) {
        assert!(
            *row == prev + 1 || *row == prev,
            "rows of b jump at {i}: {after:?}"
        );
        prev = *row;
    }
    assert_eq!(r.stats.switches.load(Relaxed), 1);
}

#[test]
fn a_leaders_switch_in_the_tick_of_a_loop_sends_only_the_start_it_shows() {
    use rowplay::sync::lead::{LeadEvent, LeadPublisher, LeadRing};
    let arrays = vec![named("a", 1, 3, 3), named("b", 2, 40, 3)];
    let mut r = rig(arrays, &[], Order::Loop, Cap::default());
    let ring = Arc::new(LeadRing::default());
    r.player.attach_lead(LeadPublisher::new(ring.clone(), None));
    r.player.start();
    // a (3 rows) loops after frames 3 and 6; `play b` is taken just after
    // frame 6's hand-out, the tick a's loop START is made in.
    run(&mut r, 5);
    let b = r.lib.find("b").unwrap();
    assert!(r.cmds.enqueue(Command::Play(b)).is_ok());
    run(&mut r, 3);
    let mut starts = vec![];
    while let Some(e) = ring.pop() {
        if let LeadEvent::Start { array, row0_ns } = e {
            starts.push((array, row0_ns));
        }
    }
    let f = r.frames.lock().unwrap();
    let a = r.lib.find("a").unwrap();
    assert_eq!(
        [
            (f[1].0.array, f[1].0.row),
            (f[4].0.array, f[4].0.row),
            (f[7].0.array, f[7].0.row)
        ],
        [(a, 0), (a, 0), (b, 0)]
    );
    // Each START names a row 0 that was shown, at its hand-out; the loop
    // START that the switch replaced never goes out.
    assert_eq!(
        starts,
        vec![(a, f[1].0.t_ns), (a, f[4].0.t_ns), (b, f[7].0.t_ns)]
    );
}

#[test]
fn play_restarts_the_current_array_at_row_0() {
    let mut r = rig(vec![named("a", 1, 40, 3)], &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 12);
    assert!(r.cmds.enqueue(Command::Play(0)).is_ok());
    run(&mut r, 1);
    let f = r.frames.lock().unwrap();
    assert_eq!(f.last().unwrap().0.row, 0);
}

#[test]
fn stop_goes_dark_pause_holds_resume_continues() {
    let mut r = rig(vec![named("a", 1, 40, 3)], &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 3);
    r.cmds.enqueue(Command::Pause).ok();
    run(&mut r, 4);
    r.cmds.enqueue(Command::Resume).ok();
    run(&mut r, 2);
    r.cmds.enqueue(Command::Stop).ok();
    run(&mut r, 3);
    let f = r.frames.lock().unwrap();
    let rows: Vec<(u32, u32)> = f[1..].iter().map(|x| (x.0.array, x.0.row)).collect();
    // rows 0,1,2; paused on 2 (4 frames); resume: 3, 4; stop: dark
    assert_eq!(
        rows,
        vec![
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 2),
            (0, 2),
            (0, 2),
            (0, 2),
            (0, 3),
            (0, 4),
            (ALL_OFF, 0),
            (ALL_OFF, 0),
            (ALL_OFF, 0)
        ]
    );
    assert!(
        f.last().unwrap().1.iter().all(|&b| b == 0),
        "stop sends all-off pixels"
    );
}

#[test]
fn brightness_scales_the_next_frame() {
    let mut r = rig(vec![named("a", 1, 4, 2)], &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 1);
    r.cmds.enqueue(Command::SetBrightness(0.5)).ok();
    run(&mut r, 1);
    let f = r.frames.lock().unwrap();
    let src = &array(1, 4, 2, 3).data[6..12];
    let got = &f[2].1;
    for (g, s) in got.iter().zip(src) {
        assert!(
            (*g as i32 - (*s as i32 + 1) / 2).abs() <= 1,
            "{got:?} vs {src:?}"
        );
    }
    assert_eq!(r.stats.brightness_milli.load(Relaxed), 500);
}

#[test]
fn a_late_wake_is_a_miss_and_skips_ticks_but_never_rows() {
    let mut r = rig(vec![named("a", 1, 50, 2)], &[], Order::Loop, Cap::default());
    r.player.start();
    run(&mut r, 3);
    // 6 ms late: past a quarter period (5 ms) -> one miss, no tick skipped.
    r.clock.make_next_wake_late(6_000_000);
    run(&mut r, 1);
    assert_eq!(r.stats.deadline_misses.load(Relaxed), 1);
    assert_eq!(r.stats.skipped_ticks.load(Relaxed), 0);
    // 45 ms late: deadlines +20 and +40 ms are gone; the next frame is on
    // the original grid, with the next row.
    r.clock.make_next_wake_late(45_000_000);
    run(&mut r, 2);
    assert_eq!(r.stats.deadline_misses.load(Relaxed), 2);
    assert_eq!(r.stats.skipped_ticks.load(Relaxed), 2);
    run(&mut r, 5);
    let f = r.frames.lock().unwrap();
    let t0 = f[1].0.t_ns;
    let offsets: Vec<u64> = f[1..].iter().map(|x| x.0.t_ns - t0).collect();
    let ms = |k: u64| k * PERIOD;
    assert_eq!(
        offsets,
        vec![
            0,
            ms(1),
            ms(2),
            ms(3) + 6_000_000,
            ms(4) + 45_000_000,
            ms(7),
            ms(8),
            ms(9),
            ms(10),
            ms(11),
            ms(12)
        ],
        "frames stay on the grid; no catch-up burst"
    );
    drop(f);
    // Both misses are logged with their deadline and how late they were.
    let misses: Vec<(u64, u64, u64)> = r
        .stats
        .misses
        .recent()
        .iter()
        .map(|m| (m.deadline_ns - t0, m.woke_ns - t0, m.sent_ns - t0))
        .collect();
    assert_eq!(
        misses,
        vec![
            (ms(3), ms(3) + 6_000_000, ms(3) + 6_000_000),
            (ms(4), ms(4) + 45_000_000, ms(4) + 45_000_000)
        ]
    );
    // Each row once, in order (a row the loader had not brought yet would
    // be a counted repeat, collapsed by `shown`).
    let rows: Vec<u32> = shown(&r).iter().map(|x| x.1).collect();
    assert_eq!(
        rows,
        (0..rows.len() as u32).collect::<Vec<_>>(),
        "rows skipped or out of order"
    );
    assert!(rows.len() >= 8, "the head rows alone are 8");
}

#[test]
fn output_errors_are_counted_and_playback_goes_on() {
    let out = Cap {
        fail_every: Some(3),
        ..Default::default()
    };
    let mut r = rig(vec![named("a", 1, 6, 2)], &[], Order::Loop, out);
    r.player.start();
    run(&mut r, 12);
    assert_eq!(r.stats.output_errors.load(Relaxed), 4); // sends 3, 6, 9, 12 of 13 (the blank is #1)
    assert_eq!(r.stats.frames.load(Relaxed), 12);
    assert_eq!(shown(&r).len(), 12);
}

#[test]
fn reload_swaps_the_library_at_a_frame_boundary() {
    let mut r = rig(
        vec![named("a", 1, 40, 2), named("b", 2, 40, 2)],
        &[],
        Order::Loop,
        Cap::default(),
    );
    r.player.start();
    run(&mut r, 3);
    // A new pack where "a" has different content and another index.
    let dir2 = tempfile::tempdir().unwrap();
    let p2 = pack(
        dir2.path(),
        vec![named("0first", 5, 10, 2), named("a", 9, 40, 2)],
        8,
    );
    let lib2 = Arc::new(Library::open(&p2, &Default::default()).unwrap());
    let b2 = Bundle::new(lib2.clone(), vec![]).unwrap();
    assert!(r.cmds.enqueue(Command::Swap(Box::new(b2))).is_ok());
    run(&mut r, 2);
    let f = r.frames.lock().unwrap();
    // it restarts "a" of the new pack (index 1 there) at row 0
    assert_eq!((f[4].0.array, f[4].0.row), (1, 0));
    assert_eq!(f[4].1[..6], array(9, 40, 2, 3).data[..6]);
    assert_eq!(r.stats.reloads.load(Relaxed), 1);
    // The old bundle came back to be dropped outside the loop.
    assert!(r.retired.dequeue().is_some());
}

// ---- the loop never allocates -------------------------------------------

thread_local! {
    pub(crate) static COUNTING: Cell<bool> = const { Cell::new(false) };
}
pub(crate) static ALLOCS: AtomicU64 = AtomicU64::new(0);
/// Tests that count allocations hold this, so that one's `ALLOCS.store(0)`
/// and counted threads never overlap another's.
pub(crate) static ALLOC_TEST: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Take [`ALLOC_TEST`] (a test that failed while holding it does not stop
/// the others).
pub(crate) fn alloc_test() -> std::sync::MutexGuard<'static, ()> {
    ALLOC_TEST.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts allocations made by a thread that has switched counting on.
struct CountingAlloc;

// SAFETY: defers to the system allocator; counting has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.try_with(|c| c.get()).unwrap_or(false) {
            ALLOCS.fetch_add(1, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn the_frame_loop_never_allocates() {
    let _one_at_a_time = alloc_test();
    // A null output: the test's recording output allocates by design.
    struct Null;
    impl Output for Null {
        fn prepare(&mut self, _: &[u8]) {}
        fn send(&mut self, _: &FrameMeta) -> Result<(), OutputError> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let arrays = (0..6)
        .map(|i| named(&format!("a{i}"), i, 20 + i * 7, 3 + i))
        .collect();
    let p = pack(dir.path(), arrays, 8);
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let items = vec![
        PlaylistItem::once(2),
        PlaylistItem {
            array: 4,
            repeat: 2,
            duration_ns: None,
        },
        PlaylistItem {
            array: 1,
            repeat: 1,
            duration_ns: Some(30 * PERIOD),
        },
    ];
    let links = Links::new();
    let (cmds, retired, stats) = (
        links.cmds.clone(),
        links.retired.clone(),
        links.stats.clone(),
    );
    // Several outputs at once: whole strip, overlapping slices (one
    // reversed, each with its own pipeline), a wire recorder and a recorder
    // teed beside a device, as `record = PATH` builds it.
    let pipe = |gamma: f32, ma: Option<u32>, ch: usize| {
        Pipeline::new(
            ColorSettings {
                gamma,
                max_current_ma: ma,
                ..Default::default()
            },
            ch,
        )
    };
    let enc = |chip: ChipKind, n: usize| Encoder::new(ChipSettings::new(chip), n);
    let wire = |path: &str, e: Encoder| -> Box<dyn Output> {
        let sink = FileSink::create(&dir.path().join(path)).unwrap();
        Box::new(Recorder::start(sink, e.frame_len(), Some(e)).unwrap())
    };
    let outs = vec![
        Slot::new(
            "null",
            Box::new(Null),
            pipe(2.2, Some(100), 4),
            0,
            10,
            false,
        ),
        Slot::new("null", Box::new(Null), pipe(1.0, None, 3), 3, 5, true),
        Slot::new(
            "wire",
            wire("a.wire", enc(ChipKind::Apa102, 6)),
            pipe(2.2, None, 3),
            2,
            6,
            false,
        ),
        Slot::new(
            "spi",
            Box::new(Tee::new(
                Box::new(Null),
                wire("b.wire", enc(ChipKind::Ws2812, 7)),
            )),
            pipe(1.8, Some(50), 3),
            4,
            7,
            true,
        ),
    ];
    // Two outputs behind worker threads, as `play` builds the hardware
    // outputs after the first; each worker thread counts its own
    // allocations from its first frame on.
    let mut outs = outs;
    for (first, count) in [(1, 8), (0, 10)] {
        let inner = Box::new(Tee::new(
            Box::new(CountOnThisThread),
            wire(&format!("w{first}.wire"), enc(ChipKind::Apa102, count)),
        ));
        let w = Worker::spawn(inner, count * 3, WorkerOptions::default()).unwrap();
        let link = w.link();
        let slot = Slot::new("spi", Box::new(w), pipe(2.2, None, 3), first, count, false);
        link.attach(slot.stats(), &stats);
        outs.push(slot);
    }
    let mut pl = Player::with_outputs(
        Box::new(Bundle::new(lib.clone(), items).unwrap()),
        MockClock::new(0),
        outs,
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds: 10,
            order: Order::Shuffle,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 3,
        },
    );
    // The raw wake log is on, as `--wake-log` turns it on.
    pl.log_wakes(WakeLog::new(4096));
    pl.start();
    // Made outside the loop, handed in through the queue.
    let other = Box::new(Bundle::new(lib.clone(), vec![PlaylistItem::once(0)]).unwrap());
    let script: Vec<(u64, Command)> = vec![
        (100, Command::Play(3)),
        (200, Command::Next),
        (300, Command::Prev),
        (400, Command::SetBrightness(0.3)),
        (500, Command::Pause),
        (600, Command::AddBrightness(0.2)),
        (700, Command::Resume),
        (800, Command::Stop),
        (900, Command::Resume),
        (1000, Command::Swap(other)),
        (1500, Command::Play(5)),
    ];
    let mut script = script.into_iter().peekable();
    ALLOCS.store(0, SeqCst);
    for frame in 0..3000u64 {
        // Enqueueing happens here, outside the counted region, as the
        // control thread would do it.
        while script.peek().is_some_and(|(at, _)| *at == frame) {
            let (_, c) = script.next().unwrap();
            assert!(cmds.enqueue(c).is_ok());
        }
        COUNTING.with(|c| c.set(true));
        pl.run_frames(1);
        COUNTING.with(|c| c.set(false));
        if frame % 64 == 0 {
            std::thread::yield_now(); // let the loader work
        }
    }
    assert_eq!(
        ALLOCS.load(SeqCst),
        0,
        "the frame loop allocated or freed memory"
    );
    assert_eq!(stats.frames.load(Relaxed), 3000);
    assert_eq!(stats.commands.load(Relaxed), 11);
    assert!(retired.dequeue().is_some());
    let outs = stats.outputs.get().unwrap().clone();
    assert_eq!(outs.len(), 6);
    for o in &outs {
        assert_eq!(o.frames.load(Relaxed), 3000);
        assert_eq!(o.write_ns.count(), 3000);
    }
    pl.finish();
    assert_eq!(
        ALLOCS.load(SeqCst),
        0,
        "a worker thread allocated or freed memory"
    );
    for o in &outs[4..] {
        // The start frame, the 3000 frames and the final all-off frame:
        // each written or replaced before its worker took it. `dropped`
        // also counts what the wire recorder's own writer dropped after a
        // write (under load), so the sum may exceed 3002, never fall short.
        let written = o.device_ns.count();
        assert!(written > 0 && written <= 3002, "{written}");
        assert!(written + o.dropped.load(Relaxed) >= 3002);
    }
    // Every tick is in it, one period apart, woken and sent at or after
    // its deadline (the mock clock never runs early).
    let log = pl.take_wake_log().unwrap();
    assert_eq!(log.pushed(), 3000);
    let recs: Vec<_> = log.records().copied().collect();
    assert_eq!(recs.len(), 3000);
    for w in recs.windows(2) {
        assert_eq!(w[1].deadline_ns - w[0].deadline_ns, PERIOD);
    }
    assert!(recs
        .iter()
        .all(|r| r.woke_ns >= r.deadline_ns && r.sent_ns >= r.woke_ns));
}

/// Switches allocation counting on for the thread that sends through it
/// (a worker thread), from its first frame on.
struct CountOnThisThread;

impl Output for CountOnThisThread {
    fn prepare(&mut self, _: &[u8]) {
        COUNTING.with(|c| c.set(true));
    }
    fn send(&mut self, _: &FrameMeta) -> Result<(), OutputError> {
        Ok(())
    }
    fn finish(&mut self) {
        COUNTING.with(|c| c.set(false));
    }
}

/// A device that blocks in its write until the test lets it go.
struct Gate {
    entered: std::sync::mpsc::Sender<FrameMeta>,
    go: std::sync::mpsc::Receiver<()>,
}

impl Output for Gate {
    fn prepare(&mut self, _: &[u8]) {}
    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        let _ = self.entered.send(*meta);
        let _ = self.go.recv();
        Ok(())
    }
}

#[test]
fn a_blocked_output_behind_a_worker_never_delays_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 40, 6)], 8);
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let links = Links::new();
    let (cap, after) = (Cap::default(), Cap::default());
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let gate = Gate {
        entered: entered_tx,
        go: go_rx,
    };
    let plain = || Pipeline::new(ColorSettings::default(), 3);
    let w = Worker::spawn(Box::new(gate), 18, WorkerOptions::default()).unwrap();
    let link = w.link();
    let outs = vec![
        Slot::new("spi", Box::new(cap.clone()), plain(), 0, 6, false),
        Slot::new("spi", Box::new(w), plain(), 0, 6, false),
        // An output after the blocked one.
        Slot::new("wire", Box::new(after.clone()), plain(), 0, 6, false),
    ];
    link.attach(outs[1].stats(), &links.stats);
    let mut pl = Player::with_outputs(
        Box::new(Bundle::new(lib.clone(), vec![PlaylistItem::once(0)]).unwrap()),
        MockClock::new(0),
        outs,
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds: 6,
            order: Order::Loop,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 1,
        },
    );
    // Dropped before the player, so that a failed assertion lets a blocked
    // write end instead of hanging the worker's join.
    let go = go;
    pl.start();
    // The worker is inside the write of the start frame and stays there.
    assert_eq!(entered.recv().unwrap().array, ALL_OFF);
    // Ten frames go out to the other outputs meanwhile.
    pl.run_frames(10);
    for c in [&cap, &after] {
        assert_eq!(c.frames.lock().unwrap().len(), 11, "start frame + 10");
    }
    assert_eq!(
        cap.frames.lock().unwrap().clone(),
        after.frames.lock().unwrap().clone()
    );
    let o = links.stats.outputs.get().unwrap()[1].clone();
    // The player counts the frames of the loop (not the start frame).
    assert_eq!(o.frames.load(Relaxed), 10);
    // Frame 1 waits in the slot; frames 2..=10 each replaced the one
    // before.
    assert_eq!(o.dropped.load(Relaxed), 9);
    assert_eq!(links.stats.output_dropped.load(Relaxed), 9);
    assert_eq!(o.device_ns.count(), 0, "still inside the first write");
    // Let the start frame through: the worker takes the newest frame.
    go.send(()).unwrap();
    let last = cap.frames.lock().unwrap()[10].0;
    assert_eq!(entered.recv().unwrap(), last);
    // Then that one and the final all-off frame.
    go.send(()).unwrap();
    go.send(()).unwrap();
    pl.finish();
    assert_eq!(entered.recv().unwrap().array, ALL_OFF);
    assert_eq!(o.device_ns.count(), 3);
    assert_eq!(o.dropped.load(Relaxed), 9);
}

#[test]
fn each_output_gets_its_slice_of_the_row_in_a_fixed_order() {
    let dir = tempfile::tempdir().unwrap();
    let arrays = vec![named("a", 1, 4, 6)];
    let p = pack(dir.path(), arrays.clone(), 8);
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let links = Links::new();
    let caps: Vec<Cap> = (0..3).map(|_| Cap::default()).collect();
    let plain = || Pipeline::new(ColorSettings::default(), 3);
    let half = Pipeline::new(
        ColorSettings {
            brightness: 0.5,
            ..Default::default()
        },
        3,
    );
    let outs = vec![
        Slot::new("a", Box::new(caps[0].clone()), plain(), 0, 6, false),
        // Overlapping, reversed, and running past the row's end.
        Slot::new("b", Box::new(caps[1].clone()), plain(), 4, 4, true),
        Slot::new("c", Box::new(caps[2].clone()), half, 1, 2, false),
    ];
    let mut pl = Player::with_outputs(
        Box::new(Bundle::new(lib.clone(), vec![]).unwrap()),
        MockClock::new(0),
        outs,
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds: 6,
            order: Order::Loop,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 1,
        },
    );
    pl.start();
    pl.run_frames(4);
    let data = &arrays[0].array.data;
    let px = |row: usize, led: usize| -> [u8; 3] {
        if led >= 6 {
            return [0; 3];
        }
        let o = (row * 6 + led) * 3;
        [data[o], data[o + 1], data[o + 2]]
    };
    let f: Vec<_> = caps
        .iter()
        .map(|c| c.frames.lock().unwrap().clone())
        .collect();
    for (i, c) in f.iter().enumerate() {
        assert_eq!(c.len(), 5, "output {i}: blank + 4 frames");
        assert!(c[0].1.iter().all(|v| *v == 0));
    }
    for n in 1..5 {
        let (meta, _) = &f[0][n];
        let row = meta.row as usize;
        // Every output got the same frame, stamped with the same hand-off.
        assert!(f.iter().all(|c| c[n].0 == *meta));
        let want_a: Vec<u8> = (0..6).flat_map(|l| px(row, l)).collect();
        assert_eq!(f[0][n].1, want_a);
        let want_b: Vec<u8> = [7, 6, 5, 4].iter().flat_map(|&l| px(row, l)).collect();
        assert_eq!(f[1][n].1, want_b);
        let want_c: Vec<u8> = (1..3)
            .flat_map(|l| px(row, l))
            .map(|v| (v as f32 * 0.5).round() as u8)
            .collect();
        assert_eq!(f[2][n].1, want_c);
    }
    let outs = links.stats.outputs.get().unwrap();
    let kinds: Vec<_> = outs.iter().map(|o| (o.kind, o.first, o.count)).collect();
    assert_eq!(kinds, [("a", 0, 6), ("b", 4, 4), ("c", 1, 2)]);
    let json = links.stats.counters_json();
    assert_eq!(json["outputs"][1]["frames"], 4);
    assert!(json["outputs"][2]["write_ns"]["max"].is_u64());
}

/// Reads that stall like a slow SD card, or fail.
struct SlowCard {
    lib: Arc<Library>,
    stall: std::time::Duration,
    fail_first: AtomicU64,
}

impl rowplay::loader::BodyReader for SlowCard {
    fn read_body(&self, i: u32, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        std::thread::sleep(self.stall);
        if self.fail_first.load(SeqCst) > 0 {
            self.fail_first.fetch_sub(1, SeqCst);
            return Err(std::io::Error::other("injected"));
        }
        self.lib.read_body(i, offset, buf)
    }
}

#[test]
fn a_stalling_card_gives_counted_underruns_never_a_blocked_loop() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 3), named("b", 2, 40, 3)],
        8,
    );
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let card = Arc::new(SlowCard {
        lib: lib.clone(),
        stall: std::time::Duration::from_millis(200),
        fail_first: AtomicU64::new(1),
    });
    let bundle = Bundle::with_reader(lib.clone(), card, vec![]).unwrap();
    let links = Links::new();
    let stats = links.stats.clone();
    let out = Cap::default();
    let frames = out.frames.clone();
    let mut pl = Player::new(
        Box::new(bundle),
        MockClock::new(0),
        Box::new(out),
        Pipeline::new(ColorSettings::default(), 3),
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds: 3,
            order: Order::Loop,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 1,
        },
    );
    pl.start();
    // 100 frames on the mock clock: if the loop ever waited for the loader,
    // it would wait for 200 ms reads and rows would never be missing.
    pl.run_frames(100);
    assert_eq!(stats.frames.load(Relaxed), 100);
    assert!(
        stats.underruns.load(Relaxed) > 0,
        "rows past the heads cannot be ready yet"
    );
    // Rows are never skipped: after the heads, the same row repeats until it is there.
    let f = frames.lock().unwrap();
    let mut prev: Option<u32> = None;
    for (m, _) in &f[1..] {
        if let Some(p) = prev {
            assert!(
                m.row == p || m.row == p + 1 || m.row == 0,
                "skipped from {p} to {}",
                m.row
            );
        }
        prev = Some(m.row);
    }
}
