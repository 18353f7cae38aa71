//! Live input in the frame loop, in-process: a mux fed with DDP packets
//! (as the receiver thread would feed it) over a player on a mock clock.
//! Takeover, fall-back and resume, `--after-live`, `--live-rank`, tick
//! latching, live gamma and brightness, and no allocation in either mode.

use crate::util::*;
use rowplay::clock::{Clock, MockClock};
use rowplay::color::{ColorSettings, Pipeline};
use rowplay::library::Library;
use rowplay::net::settings::{AfterLive, LiveOutput, LiveRank};
use rowplay::net::{ddp, live_channel, Mapping, Mux, MuxConfig, LIVE_ARRAY};
use rowplay::output::{FrameMeta, Output, OutputError, ALL_OFF};
use rowplay::player::{Bundle, Command, Links, Order, Player, PlayerConfig, Slot};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering::*;
use std::sync::{Arc, Mutex};

const LEDS: usize = 4;
const MS: u64 = 1_000_000;
const TIMEOUT: u64 = 100 * MS;

type Frames = Arc<Mutex<Vec<(FrameMeta, Vec<u8>)>>>;

/// Records every frame sent, with its pixels.
#[derive(Default)]
struct Cap {
    frames: Frames,
    pending: Vec<u8>,
}

impl Output for Cap {
    fn prepare(&mut self, pixels: &[u8]) {
        self.pending.clear();
        self.pending.extend_from_slice(pixels);
    }
    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        self.frames
            .lock()
            .unwrap()
            .push((*meta, self.pending.clone()));
        Ok(())
    }
}

struct Rig {
    player: Player<MockClock>,
    mux: Mux,
    /// The receiver side's clock (ns), moved by the test.
    now: u64,
    seq: u8,
    frames: Frames,
    links: Links,
    lib: Arc<Library>,
    _dir: tempfile::TempDir,
}

struct Opts {
    output: LiveOutput,
    after: AfterLive,
    rank: LiveRank,
    gamma: f32,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            output: LiveOutput::Push,
            after: AfterLive::Resume,
            rank: LiveRank::Over,
            gamma: 1.0,
        }
    }
}

fn rig(o: Opts) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![
            named("a", 1, 40, LEDS as u32),
            named("b", 2, 40, LEDS as u32),
        ],
        8,
    );
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let links = Links::new();
    let cap = Cap::default();
    let frames = cap.frames.clone();
    let mut player = Player::new(
        Box::new(Bundle::new(lib.clone(), vec![]).unwrap()),
        MockClock::new(1_000_000_000),
        Box::new(cap),
        Pipeline::new(ColorSettings::default(), 3),
        &links,
        PlayerConfig {
            fps: 50,
            force_fps: false,
            leds: LEDS,
            order: Order::Loop,
            max_frames: None,
            max_ns: None,
            start: None,
            seed: 1,
        },
    );
    let map = Mapping::new(LEDS, 3, 510, 1, 0, 0).unwrap();
    let (mux, view) = live_channel(
        map,
        MuxConfig {
            min_interval_ns: 5 * MS,
            timeout_ns: TIMEOUT,
        },
    );
    player.attach_live(rowplay::player::LiveInput {
        view,
        output: o.output,
        after: o.after,
        rank: o.rank,
        gamma: o.gamma,
        channels: 3,
    });
    player.start();
    Rig {
        player,
        mux,
        now: 1_000 * MS,
        seq: 0,
        frames,
        links,
        lib,
        _dir: dir,
    }
}

impl Rig {
    /// Frames after the start-up blank.
    fn sent(&self) -> Vec<(FrameMeta, Vec<u8>)> {
        self.frames.lock().unwrap()[1..].to_vec()
    }

    /// Run `n` ticks, giving the loader time between them.
    fn run(&mut self, n: u64) {
        for _ in 0..n {
            self.player.run_frames(1);
            std::thread::sleep(std::time::Duration::from_micros(300));
        }
    }

    /// A whole frame from one DDP sender: one packet with the push flag.
    fn send(&mut self, pixels: &[u8]) {
        self.now += MS;
        self.seq = self.seq % 15 + 1;
        let mut p = vec![0x41, self.seq, 0x0B, 0x01];
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&(pixels.len() as u16).to_be_bytes());
        p.extend_from_slice(pixels);
        let pkt = ddp::parse(&p).unwrap();
        self.mux.on_ddp(Ipv4Addr::new(10, 0, 0, 9), &pkt, self.now);
    }

    /// Let the receiver side's time pass the source's time-out.
    fn time_out(&mut self) {
        self.now += TIMEOUT + MS;
        self.mux.tick(self.now);
    }

    /// (array, row) of the frames sent from index `from` on.
    fn shown_since(&self, from: usize) -> Vec<(u32, u32)> {
        self.sent()[from..]
            .iter()
            .map(|(m, _)| (m.array, m.row))
            .collect()
    }
}

fn px(v: u8) -> Vec<u8> {
    (0..LEDS * 3).map(|i| v.wrapping_add(i as u8)).collect()
}

#[test]
fn live_takes_over_at_once_and_playback_resumes_at_its_row() {
    let mut r = rig(Opts::default());
    r.run(5);
    assert_eq!(r.shown_since(0), (0..5).map(|i| (0, i)).collect::<Vec<_>>());
    // A complete frame is handed out at once (before the next deadline),
    // marked as live with the live frame counter as row.
    r.send(&px(10));
    r.run(1);
    let s = r.sent();
    assert_eq!(s.len(), 6, "one live frame and no playback frame: {s:?}");
    assert_eq!((s[5].0.array, s[5].0.row), (LIVE_ARRAY, 1));
    assert_eq!(s[5].1, px(10), "live pixels pass unchanged at gamma 1");
    // Push mode: nothing more goes out until the next live frame.
    r.run(3);
    assert_eq!(r.sent().len(), 6);
    r.send(&px(20));
    r.run(1);
    assert_eq!(r.shown_since(6), vec![(LIVE_ARRAY, 2)]);
    assert_eq!(r.sent()[6].1, px(20));
    assert_eq!(r.links.stats.live_frames.load(Relaxed), 2);
    assert_eq!(r.links.stats.showing_live.load(Relaxed), 1);
    // The source times out: the next tick is playback again, at the row
    // after the last one it showed.
    r.time_out();
    r.run(3);
    assert_eq!(r.shown_since(7), vec![(0, 5), (0, 6), (0, 7)]);
    assert_eq!(r.links.stats.showing_live.load(Relaxed), 0);
    // Live frames are not deadline misses; their latency is recorded.
    assert_eq!(r.links.stats.deadline_misses.load(Relaxed), 0);
    assert_eq!(r.links.stats.live_latency.count(), 2);
}

#[test]
fn commands_while_live_take_effect_when_live_ends() {
    let mut r = rig(Opts::default());
    r.run(3);
    r.send(&px(1));
    r.run(1);
    let b = r.lib.find("b").unwrap();
    assert!(r.links.cmds.enqueue(Command::Play(b)).is_ok());
    r.run(2);
    assert_eq!(r.shown_since(3), vec![(LIVE_ARRAY, 1)], "live stays on");
    r.time_out();
    r.run(2);
    assert_eq!(r.shown_since(4), vec![(b, 0), (b, 1)]);
}

#[test]
fn after_live_restart_plays_the_array_from_row_0() {
    let mut r = rig(Opts {
        after: AfterLive::Restart,
        ..Opts::default()
    });
    r.run(7);
    r.send(&px(1));
    r.run(2);
    r.time_out();
    r.run(2);
    assert_eq!(r.shown_since(8), vec![(0, 0), (0, 1)]);
}

#[test]
fn after_live_dark_stays_off_until_resumed() {
    let mut r = rig(Opts {
        after: AfterLive::Dark,
        ..Opts::default()
    });
    r.run(4);
    r.send(&px(1));
    r.run(1);
    r.time_out();
    r.run(3);
    let s = r.sent();
    assert!(
        s[5..]
            .iter()
            .all(|(m, p)| m.array == ALL_OFF && p.iter().all(|&b| b == 0)),
        "{:?}",
        r.shown_since(5)
    );
    assert!(r.links.cmds.enqueue(Command::Resume).is_ok());
    r.run(2);
    assert_eq!(r.shown_since(8), vec![(0, 4), (0, 5)]);
}

#[test]
fn under_playback_live_shows_only_while_playback_is_stopped() {
    let mut r = rig(Opts {
        rank: LiveRank::Under,
        ..Opts::default()
    });
    r.run(3);
    r.send(&px(5));
    r.run(2);
    assert_eq!(r.shown_since(0), (0..5).map(|i| (0, i)).collect::<Vec<_>>());
    // Stopped: the newest live frame goes out at the next tick.
    assert!(r.links.cmds.enqueue(Command::Stop).is_ok());
    r.run(1);
    assert_eq!(r.shown_since(5), vec![(LIVE_ARRAY, 1)]);
    assert_eq!(r.sent()[5].1, px(5));
    r.send(&px(6));
    r.run(1);
    assert_eq!(r.shown_since(6), vec![(LIVE_ARRAY, 2)]);
    // Resumed: playback ranks over live again, from the row it stopped at.
    assert!(r.links.cmds.enqueue(Command::Resume).is_ok());
    r.run(2);
    assert_eq!(r.shown_since(7), vec![(0, 5), (0, 6)]);
}

#[test]
fn tick_mode_latches_the_newest_frame_at_the_tick() {
    let mut r = rig(Opts {
        output: LiveOutput::Tick,
        ..Opts::default()
    });
    r.run(2);
    r.send(&px(1));
    r.send(&px(2)); // overwrites the first before the tick: dropped
    r.run(1);
    assert_eq!(r.shown_since(2), vec![(LIVE_ARRAY, 2)]);
    assert_eq!(r.sent()[2].1, px(2));
    // No new frame: the tick shows the held one again (FPP's bridge does
    // the same), and the cadence holds.
    r.run(1);
    assert_eq!(r.shown_since(3), vec![(LIVE_ARRAY, 2)]);
    let live = r.mux.stats().to_json(r.now);
    assert_eq!(live["sources"][0]["frames_dropped"], 1, "{live}");
    // The held frame's second showing has no packet-to-wire latency.
    assert_eq!(r.links.stats.live_latency.count(), 1);
    r.time_out();
    r.run(1);
    assert_eq!(r.shown_since(4), vec![(0, 2)]);
}

#[test]
fn live_gamma_and_brightness_apply_to_live_frames() {
    let mut r = rig(Opts {
        gamma: 2.0,
        ..Opts::default()
    });
    r.run(1);
    r.send(&[128; LEDS * 3]);
    r.run(1);
    // round(255 * (128/255)^2) = 64
    assert!(
        r.sent()[1].1.iter().all(|&v| v == 64),
        "{:?}",
        r.sent()[1].1
    );
    assert!(r.links.cmds.enqueue(Command::SetBrightness(0.5)).is_ok());
    r.run(1);
    r.send(&[255; LEDS * 3]);
    r.run(1);
    let last = r.sent().last().unwrap().1.clone();
    assert!(last.iter().all(|&v| v == 128), "{last:?}");
}

#[test]
fn the_frame_loop_with_live_input_never_allocates() {
    let _one_at_a_time = crate::player::alloc_test();
    use crate::player::{ALLOCS, COUNTING};
    struct Null;
    impl Output for Null {
        fn prepare(&mut self, _: &[u8]) {}
        fn send(&mut self, _: &FrameMeta) -> Result<(), OutputError> {
            Ok(())
        }
    }
    for output in [LiveOutput::Push, LiveOutput::Tick] {
        let dir = tempfile::tempdir().unwrap();
        let p = pack(dir.path(), vec![named("a", 1, 60, 8)], 8);
        let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
        let links = Links::new();
        let outs = vec![
            Slot::new(
                "null",
                Box::new(Null),
                Pipeline::new(ColorSettings::default(), 3),
                0,
                8,
                false,
            ),
            Slot::new(
                "null",
                Box::new(Null),
                Pipeline::new(ColorSettings::default(), 3),
                2,
                4,
                true,
            ),
        ];
        let mut pl = Player::with_outputs(
            Box::new(Bundle::new(lib, vec![]).unwrap()),
            MockClock::new(0),
            outs,
            &links,
            PlayerConfig {
                fps: 50,
                force_fps: false,
                leds: 8,
                order: Order::Loop,
                max_frames: None,
                max_ns: None,
                start: None,
                seed: 1,
            },
        );
        let map = Mapping::new(8, 3, 510, 1, 0, 0).unwrap();
        let (mut mux, view) = live_channel(map, MuxConfig::default());
        pl.attach_live(rowplay::player::LiveInput {
            view,
            output,
            after: AfterLive::Resume,
            rank: LiveRank::Over,
            gamma: 2.2,
            channels: 3,
        });
        pl.start();
        let pkt: Vec<u8> = [0x41, 1, 0x0B, 0x01, 0, 0, 0, 0, 0, 24]
            .into_iter()
            .chain(0..24u8)
            .collect();
        let from = Ipv4Addr::LOCALHOST;
        pl.run_frames(3);
        ALLOCS.store(0, SeqCst);
        for k in 0..120u64 {
            let now = 10_000 * MS + k * 20 * MS;
            COUNTING.with(|c| c.set(true));
            if k % 40 < 30 {
                mux.on_ddp(from, &ddp::parse(&pkt).unwrap(), now);
            } else {
                mux.tick(now + 3_000 * MS); // lost: playback again
            }
            if k == 50 {
                let _ = links.cmds.enqueue(Command::SetBrightness(0.3));
            }
            pl.run_frames(1);
            COUNTING.with(|c| c.set(false));
        }
        assert_eq!(
            ALLOCS.load(SeqCst),
            0,
            "{output:?}: the loop allocated or freed memory"
        );
        assert!(links.stats.live_frames.load(Relaxed) >= 80);
    }
}

#[test]
fn the_frame_loop_following_and_leading_never_allocates() {
    let _one_at_a_time = crate::player::alloc_test();
    use crate::player::{ALLOCS, COUNTING};
    use rowplay::player::{FollowInput, SyncEvents};
    use rowplay::sync::lead::{LeadPublisher, LeadRing};
    use rowplay::sync::pll::Observation;
    use rowplay::sync::{ObsRing, SyncEvent, SyncStats};
    struct Null;
    impl Output for Null {
        fn prepare(&mut self, _: &[u8]) {}
        fn send(&mut self, _: &FrameMeta) -> Result<(), OutputError> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 60, 8), named("b", 2, 30, 8)],
        8,
    );
    let lib = Arc::new(Library::open(&p, &Default::default()).unwrap());
    let cfg = PlayerConfig {
        fps: 50,
        force_fps: false,
        leds: 8,
        order: Order::Loop,
        max_frames: None,
        max_ns: None,
        start: None,
        seed: 1,
    };
    let mk = |links: &Links, clock: MockClock| {
        Player::with_outputs(
            Box::new(Bundle::new(lib.clone(), vec![]).unwrap()),
            clock,
            vec![Slot::new(
                "null",
                Box::new(Null),
                Pipeline::new(ColorSettings::default(), 3),
                0,
                8,
                false,
            )],
            links,
            cfg,
        )
    };
    // A follower fed SYNCs and events, a leader publishing into a ring.
    let links = Links::new();
    let clock = MockClock::new(1_000_000_000);
    let mut fol = mk(&links, clock.clone());
    let ring = Arc::new(ObsRing::default());
    #[allow(deprecated)]
    let events = Arc::new(SyncEvents::new());
    fol.attach_follow(FollowInput {
        ring: ring.clone(),
        events: events.clone(),
        stats: Arc::new(SyncStats::default()),
        offset_ns: 0,
    });
    fol.wake_on_commands(&links);
    fol.start();
    let lead_links = Links::new();
    let mut lead = mk(&lead_links, MockClock::new(0));
    let lring = Arc::new(LeadRing::default());
    lead.attach_lead(LeadPublisher::new(lring.clone(), None));
    lead.wake_on_commands(&lead_links);
    lead.start();
    fol.run_frames(2);
    lead.run_frames(2);
    ALLOCS.store(0, SeqCst);
    let t0 = clock.now_ns();
    for k in 0..200u64 {
        COUNTING.with(|c| c.set(true));
        if k % 100 == 0 {
            let _ = events.enqueue(SyncEvent::Start {
                array: (k / 100) as u32,
                epoch: 1 + k as u32,
                recv_ns: clock.now_ns(),
            });
        }
        if k % 4 == 0 {
            let f = (k % 100) as u32;
            ring.push(&Observation {
                recv_ns: clock.now_ns(),
                frame: f,
                seconds: f as f32 * 0.02,
                epoch: 1 + (k / 100 * 100) as u32,
            });
        }
        if k == 150 {
            let _ = lead_links.cmds.enqueue(Command::Play(1));
        }
        fol.run_frames(1);
        lead.run_frames(1);
        while lring.pop().is_some() {}
        COUNTING.with(|c| c.set(false));
    }
    assert_eq!(ALLOCS.load(SeqCst), 0, "the loop allocated or freed memory");
    assert!(clock.now_ns() > t0);
    assert_eq!(links.stats.switches.load(Relaxed), 2, "two STARTs followed");
}
