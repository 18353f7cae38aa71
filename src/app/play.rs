//! `rowplay play`: take the resolved settings, open the pack, build the
//! output, start the player, the socket and the buttons, and wait.

use super::progress::Progress;
use super::settings::{self, OutputKind, OutputSettings, PlaySettings, PlaylistChoice};
use super::{load_config, warn, AppError};
use crate::cli::{ClockArg, PlayArgs};
use crate::clock::{Clock, Monotonic, StepClock};
use crate::color::Pipeline;
use crate::control::signals::{self, Hangup};
use crate::control::{self, socket, CommandPath};
use crate::library::{human_bytes, Library, OpenOptions};
use crate::output::chip::Encoder;
use crate::output::record::{FileSink, Recorder};
use crate::output::worker::{Worker, WorkerOptions};
use crate::output::{self, gpio, spi, Output};
use crate::player::{Bundle, Links, Player, PlayerConfig, Slot};
use crate::playlist::{self, PlaylistSpec};
use crate::stats::{LoopTimer, Stats};
use crate::wake_log::{WakeLog, WAKE_LOG_CAPACITY};
use crate::{atomic, rt, source};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;

/// Resolve the settings and play.
pub fn run(a: PlayArgs) -> Result<(), AppError> {
    let cfg = load_config(a.config.as_deref())?;
    let s = settings::play(&a, &cfg, io::stdout().is_terminal())?;
    play(s)
}

/// Say once how many arrays do not match the strip.
fn note_widths(lib: &Library, leds: usize) {
    let (mut shorter, mut longer) = (0, 0);
    for i in 0..lib.len() {
        let l = lib.entry(i).leds as usize;
        shorter += (l < leds) as u32;
        longer += (l > leds) as u32;
    }
    if shorter > 0 {
        eprintln!("note: {shorter} arrays have fewer than {leds} LEDs and are padded black");
    }
    if longer > 0 {
        eprintln!("note: {longer} arrays have more than {leds} LEDs and are cut to {leds}");
    }
}

fn record_file(p: &std::path::Path) -> Result<FileSink, AppError> {
    FileSink::create(p)
        .map_err(|e| AppError::Io(io::Error::new(e.kind(), format!("{}: {e}", p.display()))))
}

/// The stand-in's record of the level changes of `pins`:
/// `DIR/gpio5-6.edges` (records as `wire:`, one byte per change,
/// `pin << 1 | level`).
fn edges_path(dir: &std::path::Path, pins: &[u8]) -> PathBuf {
    let names: Vec<String> = pins.iter().map(|p| p.to_string()).collect();
    dir.join(format!("gpio{}.edges", names.join("-")))
}

/// A `wire:` recorder of what `enc` would send, into `p`.
fn wire_recorder(p: &std::path::Path, enc: &Encoder) -> Result<Box<dyn Output>, AppError> {
    Ok(Box::new(Recorder::start(
        record_file(p)?,
        enc.frame_len(),
        Some(enc.clone()),
    )?))
}

/// Whether the output at `index` in the list gets a worker thread
/// ([`crate::output::worker`]): every hardware output after the first.
/// The first is written by the frame loop itself, because its hand-off is
/// what a miss is judged by and its timing stays exact; host outputs
/// already hand their frames to writer threads.
fn has_worker(index: usize, kind: &OutputKind) -> bool {
    index > 0
        && matches!(
            kind,
            OutputKind::Spi | OutputKind::GpioClocked { .. } | OutputKind::Gpio { .. }
        )
}

/// Build the output at `index` in the list: its device, its pipeline and
/// its slice of the row; with a worker thread where [`has_worker`] says so,
/// its counters counted into `run` too.
fn open_output(
    s: &PlaySettings,
    o: &OutputSettings,
    index: usize,
    run: &Arc<Stats>,
    leds: usize,
    lib_channels: usize,
    path: &CommandPath,
) -> Result<Slot, AppError> {
    let first = o.first as usize;
    let count = match (o.count, &o.kind) {
        (Some(c), _) => c as usize,
        // One pin per channel value: as many LEDs as the pins cover.
        (None, OutputKind::Gpio { pins, .. }) => pins.len().div_ceil(lib_channels.max(1)),
        (None, _) => leds.saturating_sub(first),
    };
    let encoder = match o.chip {
        Some(c) => Some(Encoder::try_new(c, count)?),
        None => None,
    };
    let channels = encoder
        .as_ref()
        .map(|e| e.channels())
        .unwrap_or(lib_channels);
    let pipe = Pipeline::new(o.color, channels);
    let out: Box<dyn Output> = match (&o.kind, &encoder) {
        (OutputKind::Null, _) => Box::new(output::Null),
        (OutputKind::Term, _) => Box::new(output::term::start(channels, count, path.current())?),
        (OutputKind::Capture(p), _) => {
            Box::new(Recorder::start(record_file(p)?, count * channels, None)?)
        }
        (OutputKind::Wire(p), Some(enc)) => wire_recorder(p, enc)?,
        (OutputKind::Spi, Some(enc)) => match &s.spi_stand_in {
            // Test stand-in: exactly the bytes the device would get.
            Some(dir) => {
                let name = format!("spidev{}.{}.wire", o.spi.bus, o.spi.cs);
                wire_recorder(&dir.join(name), enc)?
            }
            None => {
                let params = spi::SpiParams {
                    bus: o.spi.bus,
                    cs: o.spi.cs,
                    hz: enc.settings.spi_hz(),
                    mode: o.spi.mode,
                };
                let core = o.spi.core_hz;
                let real = spi::real_clock_hz(params.hz, core);
                if real != params.hz {
                    eprintln!(
                        "note: SPI clock {} Hz becomes {real} Hz on this board (core clock {core} Hz / even divider)",
                        params.hz
                    );
                }
                if let Err(e) = enc.settings.kind.timing_check(real) {
                    warn(e);
                }
                Box::new(spi::SpiOutput::open(&params, enc.clone())?)
            }
        },
        (
            OutputKind::GpioClocked {
                data_pin,
                clock_pin,
                hz,
            },
            Some(enc),
        ) => {
            let bcm = [*data_pin, *clock_pin];
            match &s.gpio_stand_in {
                Some(dir) => {
                    let cap = gpio::clocked_log_cap(enc.frame_len());
                    let log = Recorder::start(record_file(&edges_path(dir, &bcm))?, cap, None)?;
                    Box::new(gpio::ClockedOutput::new(
                        gpio::EdgeLog::new(&bcm, cap),
                        enc.clone(),
                        *hz,
                        Some(Box::new(log)),
                    ))
                }
                None => Box::new(gpio::ClockedOutput::new(
                    gpio::RppalPins::open(&bcm)?,
                    enc.clone(),
                    *hz,
                    None,
                )),
            }
        }
        (
            OutputKind::Gpio {
                pins,
                threshold,
                pwm_hz,
            },
            _,
        ) => {
            // A gpio output's record is its pin levels per frame.
            let record = match &o.record {
                Some(p) => Some(
                    Box::new(Recorder::start(record_file(p)?, pins.len(), None)?)
                        as Box<dyn Output>,
                ),
                None => None,
            };
            match &s.gpio_stand_in {
                Some(dir) => {
                    let cap = 2 * pins.len();
                    let log = Recorder::start(record_file(&edges_path(dir, pins))?, cap, None)?;
                    Box::new(gpio::PinsOutput::new(
                        gpio::EdgeLog::new(pins, cap),
                        pins.len(),
                        *threshold,
                        *pwm_hz,
                        Some(Box::new(log)),
                        record,
                    )?)
                }
                None => Box::new(gpio::PinsOutput::new(
                    gpio::RppalPins::open(pins)?,
                    pins.len(),
                    *threshold,
                    *pwm_hz,
                    None,
                    record,
                )?),
            }
        }
        // Settings refuse wire, spi and gpio-clocked without a chip.
        (OutputKind::Wire(_) | OutputKind::Spi | OutputKind::GpioClocked { .. }, None) => {
            Box::new(output::Null)
        }
    };
    let out = match (&o.record, &encoder, &o.kind) {
        (_, _, OutputKind::Gpio { .. }) => out,
        (Some(p), Some(enc), _) => Box::new(output::Tee::new(out, wire_recorder(p, enc)?)),
        _ => out,
    };
    if has_worker(index, &o.kind) {
        let len = count * pipe.out_channels();
        let w = Worker::spawn(out, len, WorkerOptions::below_player(s.rt_priority))?;
        let link = w.link();
        let slot = Slot::new(o.kind.name(), Box::new(w), pipe, first, count, o.reverse);
        link.attach(slot.stats(), run);
        return Ok(slot);
    }
    Ok(Slot::new(o.kind.name(), out, pipe, first, count, o.reverse))
}

/// The MultiSync threads: held, not read, so they run while playing and
/// stop when dropped.
#[allow(dead_code)]
enum SyncThreads {
    Follow(crate::sync::follow::FollowHandle),
    Lead(crate::sync::lead::LeadHandle),
}

/// Start the MultiSync follower's listener or the leader's sender, and say
/// where; fills the player's side.
fn start_multisync(
    ms: &crate::sync::SyncSettings,
    lib: &Arc<Library>,
    path: &Arc<CommandPath>,
    now: Arc<dyn Fn() -> u64 + Send + Sync>,
    follow_in: &mut Option<crate::player::FollowInput>,
    lead_pub: &mut Option<crate::sync::lead::LeadPublisher>,
) -> Result<SyncThreads, AppError> {
    use crate::sync::{follow, lead, names::NameMap, Mode};
    let ctx = |what: &str, e: io::Error| {
        AppError::Io(io::Error::new(e.kind(), format!("multisync: {what}: {e}")))
    };
    match ms.mode {
        Mode::Follow => {
            let sock = follow::bind(ms.listen)
                .map_err(|e| ctx(&format!("cannot listen on {}", ms.listen), e))?;
            // heapless marks the MPMC queue deprecated because an operation
            // can fail while another thread is preempted inside one; a
            // failed enqueue drops one event, which the next SYNC repairs.
            #[allow(deprecated)]
            let events = Arc::new(crate::player::SyncEvents::new());
            let names = NameMap::new(ms.names.clone());
            let lib = lib.clone();
            let resolve = move |file: &str| names.resolve(file, &*lib).ok();
            let (ev, wake) = (events.clone(), path.wake_slot());
            let sink = move |e: crate::sync::SyncEvent| {
                let _ = ev.enqueue(e);
                if let Some(w) = wake.get() {
                    w.wake();
                }
            };
            let h = follow::spawn(sock, ms, now, resolve, sink)
                .map_err(|e| ctx("cannot start the listener", e))?;
            eprintln!("rowplay: multisync follower on {}", h.local_addr);
            let stats = h.stats.clone();
            path.add_status_field("multisync", Box::new(move || stats.to_json(Mode::Follow)));
            *follow_in = Some(crate::player::FollowInput {
                ring: h.ring.clone(),
                events,
                stats: h.stats.clone(),
                offset_ns: ms.offset_ms as i64 * 1_000_000,
            });
            Ok(SyncThreads::Follow(h))
        }
        Mode::Lead => {
            let (sock, to) = lead::bind(ms).map_err(|e| ctx("cannot open the socket", e))?;
            let lib = lib.clone();
            let name_of = move |i: u32, out: &mut String| out.push_str(lib.name(i));
            let dests: Vec<String> = to.iter().map(|a| a.to_string()).collect();
            let h = lead::spawn(sock, to, now, name_of)
                .map_err(|e| ctx("cannot start the sender", e))?;
            eprintln!("rowplay: multisync leader sending to {}", dests.join(", "));
            let stats = h.stats.clone();
            path.add_status_field("multisync", Box::new(move || stats.to_json(Mode::Lead)));
            *lead_pub = Some(h.publisher());
            Ok(SyncThreads::Lead(h))
        }
    }
}

/// Play with resolved settings until stopped.
pub fn play(s: PlaySettings) -> Result<(), AppError> {
    let mut progress = Progress::new();
    let ready = source::prepare(s.source.as_deref(), &mut |d, t| progress.update(d, t))?;

    // Lock code, stack and heap now (heads and slots lock themselves as they
    // are made); a refusal is a warning unless --require-rt.
    if s.rt_priority > 0 {
        if let Err(e) = rt::lock_all() {
            if s.require_rt {
                return Err(e.into());
            }
            warn(&e);
        }
    }
    let open = OpenOptions {
        heads_budget: s.heads_budget,
    };
    let lib = Arc::new(Library::open(&ready.pack, &open)?);
    let specs: Vec<PlaylistSpec> = match &s.playlist {
        PlaylistChoice::Entries(e) => e.clone(),
        PlaylistChoice::AllArrays if ready.demo => (0..lib.len())
            .map(|i| PlaylistSpec::once(lib.name(i)))
            .collect(),
        _ => Vec::new(),
    };
    let items = playlist::resolve(&lib, &specs)?;
    let start = match &s.start {
        Some(n) => Some(lib.find(n).ok_or_else(|| AppError::NoSuchArray {
            pack: ready.pack.display().to_string(),
            name: n.clone(),
        })?),
        None => None,
    };
    let leds = s.leds.unwrap_or_else(|| lib.max_leds()) as usize;
    note_widths(&lib, leds);

    let links = Links::new();
    let bundle = Box::new(Bundle::new(lib.clone(), items)?);
    let step = (s.clock == ClockArg::Step).then(|| StepClock::new(links.stop.clone()));
    let path = Arc::new(CommandPath::new(
        &links,
        lib.clone(),
        bundle.loader.shared().clone(),
        specs,
        s.fps,
        open,
        step.clone(),
    ));
    // A hang-up of the terminal the preview draws on ends playback; as a
    // service (no controlling terminal) SIGHUP means reload.
    let on_terminal = s.outputs.iter().any(|o| o.kind == OutputKind::Term);
    let hangup = if on_terminal && signals::has_controlling_terminal() {
        Hangup::Stop
    } else {
        Hangup::Reload
    };
    signals::install(links.stop.clone(), path.hup.clone(), hangup);
    let outs = s
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let channels = lib.max_channels() as usize;
            open_output(&s, o, i, &links.stats, leds, channels, &path)
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Socket: explicit paths must work; the defaults may be missing.
    let (listener, socket_path): (_, Option<PathBuf>) = match &s.socket {
        Some(p) => (Some(socket::bind(p)?), Some(p.clone())),
        None => match socket::bind_default() {
            Ok((l, p)) => (Some(l), Some(p)),
            Err(e) => {
                warn(format!("running without a control socket: {e}"));
                (None, None)
            }
        },
    };

    // Buttons feed the same command path as the socket.
    let _buttons = {
        let path = path.clone();
        let submit: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |line: &str| {
            let r = control::parse_line(line.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|req| path.handle(&req).map_err(|e| e.to_string()));
            if let Err(e) = r {
                eprintln!("button: {e}");
            }
        });
        crate::buttons::start(&s.buttons, submit)?
    };

    // The web page and HTTP API (door 1 for commands, door 3 for frames).
    let mut publish = None;
    let _http = match &s.http {
        None => None,
        Some(h) => {
            // The preview shows what the first output shows.
            let (count, channels) = outs
                .first()
                .map_or((leds, 3), |o| (o.count(), o.channels()));
            let (writer, reader) = crate::handoff::frame_slot(count * channels);
            publish = Some(writer);
            let mut hs = crate::http::HttpSettings::new(h.listen);
            hs.token = match &h.token_file {
                Some(f) => Some(crate::http::read_token_file(f)?),
                None => h.token.clone(),
            };
            hs.token_read = h.token_read;
            hs.wled_open = h.wled_open;
            hs.wled_presets = h.wled_presets.clone();
            let backend = Arc::new(super::http_backend::PlayerBackend::new(
                path.clone(),
                reader,
                channels,
            ));
            Some(crate::http::start(hs, backend)?)
        }
    };

    // Live network input (door 2), only when asked for.
    let mut live = None;
    let _receiver = match &s.network {
        None => {
            path.add_status_field("live", Box::new(|| serde_json::Value::Null));
            None
        }
        Some(n) => {
            let channels = lib.max_channels().clamp(3, 4) as usize;
            let map = crate::net::Mapping::new(
                leds,
                channels,
                n.channels_per_universe,
                n.universe,
                n.artnet_universe,
                n.ddp_offset,
            )
            .map_err(|e| AppError::Net(crate::net::NetError::Mapping(e)))?;
            let (rx, view) = crate::net::Receiver::start(n, map)?;
            let listening: Vec<String> = n
                .listen
                .iter()
                .map(|l| {
                    let port = rx.port(l.protocol).unwrap_or(l.port);
                    format!("{}:{port}", l.protocol.name())
                })
                .collect();
            eprintln!(
                "rowplay: live input on {} ({}), {} universes from E1.31 {} / Art-Net {}",
                listening.join(", "),
                n.listen_addr,
                map.universes(),
                map.first_e131(),
                map.first_artnet()
            );
            let stats = rx.stats().clone();
            path.add_status_field(
                "live",
                Box::new(move || stats.to_json(crate::clock::monotonic_ns())),
            );
            live = Some(crate::player::LiveInput {
                view,
                output: n.live_output,
                after: n.after_live,
                rank: n.live_rank,
                gamma: n.live_gamma,
                channels,
            });
            Some(rx)
        }
    };

    // FPP MultiSync, only when asked for: its threads time packets on the
    // frame loop's clock.
    let drift = s.clock_drift_ppm.map(crate::clock::DriftClock::new);
    let clock_now: Arc<dyn Fn() -> u64 + Send + Sync> = match (&step, drift) {
        (Some(c), _) => {
            let c = c.clone();
            Arc::new(move || c.now_ns())
        }
        (None, Some(d)) => Arc::new(move || d.now_ns()),
        (None, None) => Arc::new(crate::clock::monotonic_ns),
    };
    let mut follow_in = None;
    let mut lead_pub = None;
    let _sync = match &s.multisync {
        None => {
            path.add_status_field("multisync", Box::new(|| serde_json::Value::Null));
            None
        }
        Some(ms) => Some(start_multisync(
            ms,
            &lib,
            &path,
            clock_now,
            &mut follow_in,
            &mut lead_pub,
        )?),
    };
    // A leader takes commands just after each hand-out (see the player's
    // `end_tick`), so only live input and a follower wait on a futex.
    let wake = live.is_some()
        || s.multisync
            .as_ref()
            .is_some_and(|m| m.mode == crate::sync::Mode::Follow);
    if s.multisync.as_ref().is_some_and(|m| {
        m.mode == crate::sync::Mode::Follow && m.after_sync == crate::sync::AfterSync::Dark
    }) {
        // A follower that goes dark on STOP waits dark for the master too.
        let _ = links.cmds.enqueue(crate::player::Command::Stop);
    }

    let pcfg = PlayerConfig {
        fps: s.fps,
        force_fps: s.force_fps,
        leds,
        order: s.order,
        max_frames: s.max_frames,
        max_ns: s.max_ns,
        start,
        seed: crate::clock::monotonic_ns(),
    };

    // Everything is set up: say what playback pins in memory.
    let slots = bundle.loader.shared().clone();
    eprintln!(
        "rowplay: {} arrays from {}; memory pinned for playback: heads {} + slots {}{}",
        lib.len(),
        ready.pack.display(),
        human_bytes(lib.heads_bytes()),
        human_bytes(slots.slot_bytes_total()),
        if lib.heads_locked() && slots.slots_locked() {
            " (locked)"
        } else {
            " (not locked: mlock refused)"
        }
    );
    let (rt_priority, require_rt) = (s.rt_priority, s.require_rt);
    // The player thread: small prefaulted stack, SCHED_FIFO, minimal slack.
    let (rt_tx, rt_rx) = std::sync::mpsc::channel::<Result<(), rt::RtError>>();
    let player_links = links.clone();
    // `--wake-log`: the player hands its log back here when it stops.
    let (log_tx, log_rx) = std::sync::mpsc::channel::<WakeLog>();
    let want_wake_log = s.wake_log.is_some();
    let player = std::thread::Builder::new()
        .name("rowplay-player".into())
        .stack_size(512 << 10)
        .spawn(move || {
            rt::prefault_stack(256 << 10);
            rt::min_timer_slack();
            let r = if rt_priority > 0 {
                rt::set_fifo(rt_priority)
            } else {
                Ok(())
            };
            let refused = r.is_err();
            let _ = rt_tx.send(r);
            if refused && require_rt {
                return;
            }
            let clock: Box<dyn Clock> = match (step, drift) {
                (Some(c), _) => Box::new(c),
                (None, Some(d)) => Box::new(d),
                (None, None) => Box::new(Monotonic),
            };
            let clock = LoopTimer::new(clock, player_links.stats.clone());
            let mut p = Player::with_outputs(bundle, clock, outs, &player_links, pcfg);
            if let Some(w) = publish {
                p.publish_frames(w);
            }
            if let Some(l) = live {
                p.attach_live(l);
            }
            if let Some(f) = follow_in {
                p.attach_follow(f);
            }
            if let Some(l) = lead_pub {
                p.attach_lead(l);
            }
            if wake {
                p.wake_on_commands(&player_links);
            }
            if want_wake_log {
                p.log_wakes(WakeLog::new(WAKE_LOG_CAPACITY));
            }
            if rt_priority > 0 {
                // Now that the loop's buffers exist, lock them too (a refusal
                // was already reported at start).
                let _ = rt::lock_all();
            }
            p.start();
            p.run();
            p.finish();
            if let Some(l) = p.take_wake_log() {
                let _ = log_tx.send(l);
            }
            player_links.stop.store(true, SeqCst);
        })?;
    match rt_rx.recv() {
        Ok(Err(e)) if require_rt => {
            links.stop.store(true, SeqCst);
            let _ = player.join();
            return Err(e.into());
        }
        Ok(Err(e)) => warn(&e),
        _ => {}
    }
    // The control thread (this one) runs just below the player.
    if rt_priority > 1 {
        let _ = rt::set_fifo(rt_priority - 1);
    }
    path.locked_bytes.store(rt::locked_bytes(), Relaxed);
    control::serve(listener, &path);
    let _ = player.join();
    if let Some(p) = socket_path {
        let _ = std::fs::remove_file(p);
    }

    if let (Some(p), Ok(l)) = (&s.wake_log, log_rx.try_recv()) {
        atomic::write_atomically(p, |w| l.write_csv(w))?;
    }
    if let Some(p) = &s.stats_json {
        let mut v = links.stats.counters_json();
        let extra = serde_json::json!({
            "locked_bytes": path.locked_bytes.load(Relaxed),
            "peak_rss_bytes": rt::peak_rss_bytes(),
            "max_open_fds": path.max_fds.load(Relaxed),
            "arrays": lib.len(),
            "fps": s.fps,
            "recent_misses": links.stats.misses.recent(),
            "live": path.status().get("live").cloned().unwrap_or_default(),
        });
        if let serde_json::Value::Object(extra) = extra {
            v.extend(extra);
        }
        let v = serde_json::Value::Object(v);
        atomic::write_atomically(p, |w| writeln!(w, "{v}"))?;
    }
    Ok(())
}
