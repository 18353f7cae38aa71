//! The subcommands: resolve settings (command line over config file over
//! defaults), then run. `main` only parses and maps errors to exit codes.

use crate::cli::{self, Cli, Command};
use crate::clock::{Clock, Monotonic, StepClock};
use crate::color::{ColorSettings, Pipeline};
use crate::config::{self, Config};
use crate::control::{self, Control, PlaylistSpec};
use crate::import::{self, FloatMax, ImportOptions};
use crate::library::{human_bytes, Library, OpenOptions};
use crate::output::chip::{ChipSettings, ColorOrder, Encoder};
use crate::output::record::{FileSink, Recorder};
use crate::output::{self, spi, Output};
use crate::pack::{self, PackOptions};
use crate::player::{Bundle, Links, Order, Player, PlayerConfig};
use crate::{rt, selftest};
use std::fmt;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::*};
use std::sync::Arc;
use std::time::Instant;

/// A failure to report: one or more `error:` lines, exit code 1.
#[derive(Debug)]
pub struct Fail(pub Vec<String>);

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.join("\n"))
    }
}

impl<E: std::error::Error> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(vec![e.to_string()])
    }
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(vec![msg.into()]))
}

fn warn(msg: impl fmt::Display) {
    eprintln!("warning: {msg}");
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), Fail> {
    match cli.command {
        Command::Pack(a) => cmd_pack(a),
        Command::Inspect(a) => cmd_inspect(a),
        Command::Verify(a) => cmd_verify(a),
        Command::Export(a) => cmd_export(a),
        Command::Render(a) => cmd_render(a),
        Command::Play(a) => cmd_play(*a),
        Command::Ctl(a) => cmd_ctl(a),
        Command::Selftest(a) => cmd_selftest(a),
        Command::Bench(a) => cmd_bench(a),
    }
}

/// A progress line on stderr, only on a terminal, at most 10 times a second.
struct Progress {
    on: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            on: io::stderr().is_terminal(),
            last: None,
        }
    }
    fn update(&mut self, done: usize, total: usize) {
        if !self.on || total < 50 {
            return;
        }
        let now = Instant::now();
        if done < total
            && self
                .last
                .is_some_and(|t| now - t < std::time::Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let width = 30;
        let filled = done * width / total.max(1);
        eprint!(
            "\rpacking [{}{}] {done}/{total}",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        if done == total {
            eprintln!();
        }
    }
}

fn cmd_pack(a: cli::PackArgs) -> Result<(), Fail> {
    let opts = PackOptions {
        head_rows: a.head_rows,
        by_column: a.by_column,
        import: ImportOptions {
            float_max: match a.float_max {
                cli::FloatMaxArg::One => FloatMax::One,
                cli::FloatMaxArg::Full => FloatMax::Full,
            },
            period_ns: a.fps.map(|f| (1e9 / f).round() as u64),
            fseq_channels: a.channels,
            rgbw: a.rgbw,
        },
        skip_bad: a.skip_bad,
    };
    let mut progress = Progress::new();
    let report = pack::pack(&a.inputs, &a.output, &opts, &mut |d, t| {
        progress.update(d, t)
    })
    .map_err(|e| Fail(e.lines()))?;
    for w in &report.warnings {
        warn(w);
    }
    for s in &report.skipped {
        eprintln!("skipped: {s}");
    }
    println!(
        "packed {} arrays into {} ({}, heads {}{})",
        report.arrays,
        a.output.display(),
        human_bytes(report.bytes),
        human_bytes(report.heads_bytes),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} inputs skipped", report.skipped.len())
        }
    );
    Ok(())
}

fn open_lib(path: &Path) -> Result<Library, Fail> {
    Ok(Library::open(path, &OpenOptions::default())?)
}

fn cmd_inspect(a: cli::InspectArgs) -> Result<(), Fail> {
    let lib = open_lib(&a.lib)?;
    let out = io::stdout();
    let mut o = io::BufWriter::new(out.lock());
    if a.json {
        let arrays: Vec<serde_json::Value> = (0..lib.len())
            .filter_map(|i| lib.info(i))
            .map(|x| {
                serde_json::json!({
                    "index": x.index, "name": x.name, "rows": x.rows,
                    "leds": x.leds, "channels": x.channels,
                    "fps": lib.fps(x.index),
                })
            })
            .collect();
        let v = serde_json::json!({
            "head_rows": lib.head_rows(),
            "by_column": lib.by_column(),
            "heads_bytes": lib.heads_bytes(),
            "arrays": arrays,
        });
        writeln!(o, "{v}")?;
    } else {
        writeln!(
            o,
            "{}: {} arrays, first {} rows of each in memory ({}){}",
            a.lib.display(),
            lib.len(),
            lib.head_rows(),
            human_bytes(lib.heads_bytes()),
            if lib.by_column() {
                ", stored by column"
            } else {
                ""
            }
        )?;
        writeln!(
            o,
            "{:>7}  {:>7}  {:>6}  {:>2}  {:>7}  name",
            "index", "rows", "leds", "ch", "fps"
        )?;
        for i in 0..lib.len() {
            if let Some(x) = lib.info(i) {
                writeln!(
                    o,
                    "{:>7}  {:>7}  {:>6}  {:>2}  {:>7}  {}",
                    x.index,
                    x.rows,
                    x.leds,
                    x.channels,
                    lib.fps(x.index).map_or("-".into(), fmt_fps),
                    x.name
                )?;
            }
        }
    }
    o.flush()?;
    Ok(())
}

/// A frame rate for people: `40`, `29.97`.
fn fmt_fps(f: f64) -> String {
    let s = format!("{f:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn cmd_verify(a: cli::VerifyArgs) -> Result<(), Fail> {
    // Opening checks the header, index and heads CRCs.
    let lib = open_lib(&a.lib)?;
    let mut bad = Vec::new();
    for i in 0..lib.len() {
        match lib.verify_body(i) {
            Ok(true) => {}
            Ok(false) => bad.push(format!(
                "{}: array {:?} fails its CRC (corrupt body; repack it)",
                a.lib.display(),
                lib.name(i)
            )),
            Err(e) => bad.push(format!(
                "{}: array {:?} cannot be read: {e}",
                a.lib.display(),
                lib.name(i)
            )),
        }
    }
    if !bad.is_empty() {
        return Err(Fail(bad));
    }
    println!("ok: {} arrays in {} verified", lib.len(), a.lib.display());
    Ok(())
}

fn find(lib: &Library, path: &Path, name: &str) -> Result<u32, Fail> {
    lib.find(name).map_or_else(
        || {
            fail(format!(
                "{}: no array named {name:?} (see `rowplay inspect {}`)",
                path.display(),
                path.display()
            ))
        },
        Ok,
    )
}

/// Write `out` atomically: a temporary file beside it, renamed into place
/// only when complete, removed on failure.
pub fn write_atomically(
    out: &Path,
    f: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> Result<(), Fail> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = io::BufWriter::new(file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!("{}: {e}", out.display()));
    }
    Ok(())
}

fn cmd_export(a: cli::ExportArgs) -> Result<(), Fail> {
    let lib = open_lib(&a.lib)?;
    let i = find(&lib, &a.lib, &a.name)?;
    let array = lib
        .read_array(i)
        .map_err(|e| Fail(vec![format!("{}: {e}", a.lib.display())]))?;
    let is_fseq = a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fseq"));
    if is_fseq {
        let step = import::fseq::step_ms(lib.period_ns(i));
        return write_atomically(&a.output, |w| import::fseq::write_v2(&array, step, w));
    }
    write_atomically(&a.output, |w| import::npy::write_u8(&array, w))
}

fn cmd_render(a: cli::RenderArgs) -> Result<(), Fail> {
    let lib = open_lib(&a.lib)?;
    let i = find(&lib, &a.lib, &a.name)?;
    let array = lib
        .read_array(i)
        .map_err(|e| Fail(vec![format!("{}: {e}", a.lib.display())]))?;
    write_atomically(&a.output, |w| {
        import::png::write_rgb(&array, w)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    })
}

fn cmd_ctl(mut a: cli::CtlArgs) -> Result<(), Fail> {
    // `ctl status --json`: the flag may come after the command words, which
    // clap hands over as part of the command.
    if let Some(i) = a.command.iter().position(|w| w == "--json") {
        a.command.remove(i);
        a.json = true;
    }
    let line = a.command.join(" ");
    let reply = control::ctl(a.socket.as_deref(), &line).map_err(|e| Fail(vec![e]))?;
    if let Some(e) = reply.strip_prefix("error: ") {
        return fail(e.to_string());
    }
    let is_status = a.command.first().map(String::as_str) == Some("status");
    if is_status && !a.json {
        // A readable form of the JSON object.
        match serde_json::from_str::<serde_json::Value>(&reply) {
            Ok(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    println!("{k}: {v}");
                }
            }
            _ => println!("{reply}"),
        }
    } else {
        println!("{reply}");
    }
    Ok(())
}

fn load_config(path: Option<&Path>) -> Result<Config, Fail> {
    match path {
        Some(p) => Ok(config::load(p)?),
        None if Path::new(config::DEFAULT_PATH).exists() => {
            Ok(config::load(Path::new(config::DEFAULT_PATH))?)
        }
        None => Ok(Config::default()),
    }
}

/// The chip settings from the command line over the config, if a chip is set.
fn chip_settings(
    cfg: &Config,
    chip: Option<crate::output::chip::ChipKind>,
    order: Option<&str>,
    spi_hz: Option<u32>,
) -> Result<Option<ChipSettings>, Fail> {
    let Some(kind) = chip.or(cfg.led.chip) else {
        return Ok(None);
    };
    let mut s = ChipSettings::new(kind);
    if let Some(o) = order.or(cfg.led.color_order.as_deref()) {
        s.order = Some(
            o.parse::<ColorOrder>()
                .map_err(|e| Fail(vec![e.to_string()]))?,
        );
    }
    s.spi_hz = spi_hz.or(cfg.spi.hz);
    if let Some(g) = cfg.led.global_brightness {
        s.global_brightness = g;
    }
    s.validate()?;
    Ok(Some(s))
}

/// Where on-the-fly packs are cached.
fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("rowplay");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Path::new(&h).join(".cache/rowplay");
    }
    // SAFETY: getuid cannot fail.
    std::env::temp_dir().join(format!("rowplay-cache-{}", unsafe { libc::getuid() }))
}

fn is_pack_file(p: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == crate::pack::format::MAGIC
}

/// Pack folders/files on the fly into the cache, reusing the pack while the
/// inputs are unchanged (same paths, sizes and modification times).
pub fn cached_pack(source: &Path) -> Result<PathBuf, Fail> {
    use std::os::unix::fs::MetadataExt;
    let sources = import::discover(&[source.to_path_buf()])?;
    // FNV-1a over everything that decides the pack's content.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION").as_bytes());
    eat(std::fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .as_os_str()
        .as_encoded_bytes());
    for s in &sources {
        let m = std::fs::metadata(&s.path)?;
        eat(s.path.as_os_str().as_encoded_bytes());
        eat(&m.len().to_le_bytes());
        eat(&m.mtime().to_le_bytes());
        eat(&m.mtime_nsec().to_le_bytes());
    }
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Fail(vec![format!("{}: {e}", dir.display())]))?;
    let out = dir.join(format!("{h:016x}.rowpack"));
    if !out.exists() {
        eprintln!("packing {} into {}", source.display(), out.display());
        let mut progress = Progress::new();
        pack::pack_sources(&sources, &out, &PackOptions::default(), &mut |d, t| {
            progress.update(d, t)
        })
        .map_err(|e| Fail(e.lines()))?;
    }
    Ok(out)
}

/// The demo library, packed once into the cache.
fn demo_pack() -> Result<PathBuf, Fail> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| Fail(vec![format!("{}: {e}", dir.display())]))?;
    let out = dir.join(format!("demo-{}.rowpack", env!("CARGO_PKG_VERSION")));
    if !out.exists() || Library::open(&out, &OpenOptions::default()).is_err() {
        pack::pack_arrays(crate::demo::arrays(), &out, &PackOptions::default())
            .map_err(|e| Fail(e.lines()))?;
    }
    Ok(out)
}

/// Parse `--output KIND[:ARG]`.
#[derive(Debug, PartialEq, Eq)]
enum OutputKind {
    Term,
    Null,
    Capture(PathBuf),
    Wire(PathBuf),
    Spi,
}

fn parse_output(s: &str) -> Result<OutputKind, Fail> {
    let (kind, arg) = match s.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (s, None),
    };
    match (kind, arg) {
        ("term", None) => Ok(OutputKind::Term),
        ("null", None) => Ok(OutputKind::Null),
        ("spi", None) => Ok(OutputKind::Spi),
        ("capture", Some(p)) if !p.is_empty() => Ok(OutputKind::Capture(PathBuf::from(p))),
        ("wire", Some(p)) if !p.is_empty() => Ok(OutputKind::Wire(PathBuf::from(p))),
        ("capture" | "wire", _) => fail(format!("--output {kind} needs a path: {kind}:PATH")),
        _ => fail(format!(
            "unknown output {s:?}: use term, null, capture:PATH, wire:PATH or spi"
        )),
    }
}

fn cmd_play(a: cli::PlayArgs) -> Result<(), Fail> {
    let cfg = load_config(a.config.as_deref())?;
    let board_name = a.board.clone().or(cfg.board.clone());
    let board = match &board_name {
        Some(n) => Some(crate::board::get(n).ok_or_else(|| {
            Fail(vec![format!(
                "unknown board {n:?}: use one of {}",
                crate::board::names().join(", ")
            )])
        })?),
        None => None,
    };
    let fps = a.fps.or(cfg.fps).unwrap_or(50);
    if fps == 0 || fps > 1000 {
        return fail(format!("fps {fps} outside 1..=1000"));
    }
    let rt_priority = a
        .rt_priority
        .or(cfg.rt_priority)
        .or(board.as_ref().map(|b| b.rt_priority))
        .unwrap_or(50)
        .min(99);
    let require_rt = a.require_rt || cfg.require_rt.unwrap_or(false);
    let chip = chip_settings(&cfg, a.chip, a.color_order.as_deref(), a.spi_hz)?;

    // What to play.
    let source = a.source.clone().or(cfg.library.clone());
    let demo = source.is_none();
    let pack_path = match &source {
        None => demo_pack()?,
        Some(p) if is_pack_file(p) => p.clone(),
        Some(p) if !p.exists() => return fail(format!("{}: no such file or folder", p.display())),
        Some(p) => cached_pack(p)?,
    };

    // Lock code, stack and heap now (heads and slots lock themselves as they
    // are made); a refusal is a warning unless --require-rt.
    if rt_priority > 0 {
        if let Err(e) = rt::lock_all() {
            if require_rt {
                return Err(e.into());
            }
            warn(&e);
        }
    }
    let open = OpenOptions {
        heads_budget: a.heads_budget,
    };
    let lib = Arc::new(Library::open(&pack_path, &open)?);

    // Playlist: --playlist, else the config's, else the demo's.
    let mut order = a.order.unwrap_or(Order::Loop);
    let playlist: Vec<PlaylistSpec> = if let Some(names) = &a.playlist {
        names
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| PlaylistSpec {
                name: n.clone(),
                repeat: 1,
                seconds: None,
            })
            .collect()
    } else if let Some(p) = cfg.playlist.as_ref().filter(|_| a.source.is_none()) {
        if a.order.is_none() {
            if let Some(o) = &p.order {
                order = <Order as clap::ValueEnum>::from_str(o, true).map_err(|_| {
                    Fail(vec![format!(
                        "config: bad playlist order {o:?}: use loop, once or shuffle"
                    )])
                })?;
            }
        }
        p.entries
            .iter()
            .map(|e| match e {
                config::PlaylistEntry::Name(n) => PlaylistSpec {
                    name: n.clone(),
                    repeat: 1,
                    seconds: None,
                },
                config::PlaylistEntry::Detailed {
                    name,
                    repeat,
                    seconds,
                } => PlaylistSpec {
                    name: name.clone(),
                    repeat: repeat.unwrap_or(1),
                    seconds: *seconds,
                },
            })
            .collect()
    } else if demo {
        (0..lib.len())
            .map(|i| PlaylistSpec {
                name: lib.name(i).to_string(),
                repeat: 1,
                seconds: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    let items = control::resolve_playlist(&lib, &playlist, fps).map_err(|e| Fail(vec![e]))?;
    let start = match a.start.as_ref().or(cfg.start.as_ref()) {
        Some(n) => Some(find(&lib, &pack_path, n)?),
        None => None,
    };

    // Strip length, and a note for arrays that do not match it.
    let leds = a.leds.or(cfg.led.count).unwrap_or_else(|| lib.max_leds()) as usize;
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

    // Colour pipeline and output.
    let default_gamma = if chip.is_some() { 2.2 } else { 1.0 };
    let mut color = ColorSettings::from_config(&cfg.color, default_gamma)?;
    if let Some(b) = a.brightness {
        color.brightness = b;
    }
    if let Some(g) = a.gamma {
        color.gamma = g;
    }
    if let Some(m) = a.max_current {
        color.max_current_ma = Some(m);
    }
    color.validate()?;
    let encoder = match chip {
        Some(s) => Some(Encoder::try_new(s, leds)?),
        None => None,
    };
    let out_channels = encoder
        .as_ref()
        .map(|e| e.channels())
        .unwrap_or(lib.max_channels() as usize);
    let pipe = Pipeline::new(color, out_channels);

    let links = Links::new();
    let hup = Arc::new(AtomicBool::new(false));
    control::install_signals(links.stop.clone(), hup.clone());
    let bundle = Box::new(Bundle::new(lib.clone(), items)?);
    let step = (a.clock == cli::ClockArg::Step).then(|| StepClock::new(links.stop.clone()));
    let mut ctl = Control::new(
        &links,
        lib.clone(),
        bundle.loader.shared().clone(),
        playlist,
        fps,
        open,
        hup,
        step.clone(),
    );

    let output_spec = match a.output.clone().or(cfg.output.clone()) {
        Some(s) => parse_output(&s)?,
        None if io::stdout().is_terminal() => OutputKind::Term,
        None => OutputKind::Null,
    };
    let out: Box<dyn Output> = match output_spec {
        OutputKind::Null => Box::new(output::Null),
        OutputKind::Term => Box::new(output::term::start(out_channels, leds, ctl.lib.clone())?),
        OutputKind::Capture(p) => Box::new(Recorder::start(
            FileSink::create(&p).map_err(|e| Fail(vec![format!("{}: {e}", p.display())]))?,
            leds * out_channels,
            None,
        )?),
        OutputKind::Wire(p) => {
            let Some(enc) = encoder.clone() else {
                return fail("--output wire: needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config");
            };
            let len = enc.frame_len();
            Box::new(Recorder::start(
                FileSink::create(&p).map_err(|e| Fail(vec![format!("{}: {e}", p.display())]))?,
                len,
                Some(enc),
            )?)
        }
        OutputKind::Spi => {
            let Some(enc) = encoder.clone() else {
                return fail("--output spi needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config");
            };
            let params = spi::SpiParams {
                bus: cfg.spi.bus.unwrap_or(0),
                cs: cfg.spi.cs.unwrap_or(0),
                hz: enc.settings.spi_hz(),
                mode: cfg.spi.mode.unwrap_or(0),
            };
            let core = board.as_ref().map(|b| b.core_hz).unwrap_or(250_000_000);
            let real = spi::real_clock_hz(params.hz, core);
            if real != params.hz {
                eprintln!(
                    "note: SPI clock {} Hz becomes {real} Hz on this board (core clock {core} Hz / even divider)",
                    params.hz
                );
            }
            if let Err(e) = crate::output::ws2812::timing_check(enc.settings.kind, real) {
                warn(e);
            }
            Box::new(spi::SpiOutput::open(&params, enc)?)
        }
    };

    // Socket: explicit paths must work; the defaults may be missing.
    let (listener, socket_path) = match a.socket.as_ref().or(cfg.socket.as_ref()) {
        Some(p) => (Some(control::bind(p)?), Some(p.clone())),
        None => match control::bind_default() {
            Ok((l, p)) => (Some(l), Some(p)),
            Err(e) => {
                warn(format!("running without a control socket: {e}"));
                (None, None)
            }
        },
    };

    // Buttons feed the same command queue as the socket.
    let _buttons = {
        let cmds = links.cmds.clone();
        let lib = ctl.lib.clone();
        let submit: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |line: &str| {
            let lib = lib
                .lock()
                .map(|l| l.clone())
                .unwrap_or_else(|e| e.into_inner().clone());
            if let Err(e) = control::submit_simple(line, &cmds, &lib) {
                eprintln!("button: {e}");
            }
        });
        crate::buttons::start(&cfg.buttons, submit)?
    };

    let max_frames = match (a.frames, a.seconds) {
        (Some(f), _) => Some(f),
        (None, Some(s)) if s.is_finite() && s >= 0.0 => Some((s * fps as f64).round() as u64),
        (None, Some(s)) => return fail(format!("--seconds {s} is not a duration")),
        (None, None) => None,
    };
    let pcfg = PlayerConfig {
        fps,
        leds,
        order,
        max_frames,
        start,
        seed: crate::clock::monotonic_ns(),
    };

    // Everything is set up: say what playback pins in memory.
    let slots = bundle.loader.shared().clone();
    eprintln!(
        "rowplay: {} arrays from {}; memory pinned for playback: heads {} + slots {}{}",
        lib.len(),
        pack_path.display(),
        human_bytes(lib.heads_bytes()),
        human_bytes(slots.slot_bytes_total()),
        if lib.heads_locked() && slots.slots_locked() {
            " (locked)"
        } else {
            " (not locked: mlock refused)"
        }
    );
    // The player thread: small prefaulted stack, SCHED_FIFO, minimal slack.
    let (rt_tx, rt_rx) = std::sync::mpsc::channel::<Result<(), rt::RtError>>();
    let player_links = links.clone();
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
            let clock: Box<dyn Clock> = match step {
                Some(c) => Box::new(c),
                None => Box::new(Monotonic),
            };
            let lock = rt_priority > 0;
            play_on(clock, bundle, out, pipe, &player_links, pcfg, lock);
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
    ctl.locked_bytes = rt::locked_bytes();
    control::serve(listener, &mut ctl);
    let _ = player.join();
    if let Some(p) = socket_path {
        let _ = std::fs::remove_file(p);
    }

    if let Some(p) = &a.stats_json {
        let mut v = links.stats.counters_json();
        let extra = serde_json::json!({
            "locked_bytes": ctl.locked_bytes,
            "peak_rss_bytes": rt::peak_rss_bytes(),
            "max_open_fds": ctl.max_fds.load(Relaxed),
            "arrays": lib.len(),
            "fps": fps,
            "recent_misses": links.stats.misses.recent(),
        });
        if let serde_json::Value::Object(extra) = extra {
            v.extend(extra);
        }
        let v = serde_json::Value::Object(v);
        write_atomically(p, |w| writeln!(w, "{v}"))?;
    }
    Ok(())
}

fn play_on(
    clock: Box<dyn Clock>,
    bundle: Box<Bundle>,
    out: Box<dyn Output>,
    pipe: Pipeline,
    links: &Links,
    cfg: PlayerConfig,
    lock: bool,
) {
    let mut p = Player::new(bundle, clock, out, pipe, links, cfg);
    if lock {
        // Now that the loop's buffers exist, lock them too (a refusal was
        // already reported at start).
        let _ = rt::lock_all();
    }
    p.start();
    p.run();
    p.finish();
}

fn cmd_selftest(a: cli::SelftestArgs) -> Result<(), Fail> {
    let cfg = load_config(a.config.as_deref())?;
    let Some(chip) = chip_settings(&cfg, a.chip, None, a.spi_hz)? else {
        return fail(
            "selftest needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config",
        );
    };
    let leds = a.leds.or(cfg.led.count).unwrap_or(30) as usize;
    let encoder = Encoder::try_new(chip, leds)?;
    let params = spi::SpiParams {
        bus: cfg.spi.bus.unwrap_or(0),
        cs: cfg.spi.cs.unwrap_or(0),
        hz: chip.spi_hz(),
        mode: cfg.spi.mode.unwrap_or(0),
    };
    match a.what {
        cli::SelftestKind::Spi => {
            let report = selftest::spi_loopback(&params, &encoder, a.frames)?;
            println!("ok: {report}");
        }
        cli::SelftestKind::Leds => {
            let color = ColorSettings::from_config(&cfg.color, 2.2)?;
            let pipe = Pipeline::new(color, encoder.channels());
            let mut out = spi::SpiOutput::open(&params, encoder)?;
            let stop = Arc::new(AtomicBool::new(false));
            control::install_signals(stop.clone(), Arc::new(AtomicBool::new(false)));
            println!("walking red, green, blue and white along {leds} LEDs (Ctrl-C to stop)");
            selftest::leds_walk(
                &mut out,
                &pipe,
                leds,
                std::time::Duration::from_millis(50),
                &stop,
            )?;
        }
    }
    Ok(())
}

fn cmd_bench(a: cli::BenchArgs) -> Result<(), Fail> {
    let t0 = Instant::now();
    let lib = open_lib(&a.lib)?;
    let open_ns = t0.elapsed().as_nanos() as u64;
    let rss = rt::rss_bytes();
    let fds = rt::open_fds();
    // Random arrays by name (what a user's `play NAME` costs: lookup and
    // the first row from the heads), timed one by one. Each array is jumped
    // to at most once while there are enough of them (a partial
    // Fisher-Yates shuffle), so no jump finds an array touched before.
    let mut seed = crate::clock::monotonic_ns() | 1;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut row = vec![0u8; lib.max_row_bytes() as usize];
    let mut times = Vec::with_capacity(a.jumps);
    let n_arrays = lib.len() as u64;
    let mut order: Vec<u32> = (0..lib.len()).collect();
    let jumps = if n_arrays == 0 { 0 } else { a.jumps };
    let names: Vec<String> = (0..jumps)
        .map(|j| {
            let i = if (j as u64) < n_arrays {
                let k = j + (rnd() % (n_arrays - j as u64)) as usize;
                order.swap(j, k);
                order[j]
            } else {
                (rnd() % n_arrays) as u32
            };
            lib.name(i).to_string()
        })
        .collect();
    drop(order);
    for n in &names {
        let t = crate::clock::monotonic_ns();
        let i = lib.find(n).unwrap_or(0);
        if let Some(r) = lib.head_row(i, 0) {
            row[..r.len()].copy_from_slice(r);
        }
        times.push(crate::clock::monotonic_ns() - t);
        std::hint::black_box(&row);
    }
    times.sort_unstable();
    let q = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    let v = serde_json::json!({
        "arrays": lib.len(),
        "open_ns": open_ns,
        "first_row_ns": { "p50": q(0.5), "p99": q(0.99), "max": q(1.0) },
        "jumps": a.jumps,
        "rss_bytes": rss,
        "peak_rss_bytes": rt::peak_rss_bytes(),
        "open_fds": fds,
        "heads_bytes": lib.heads_bytes(),
    });
    if a.json {
        println!("{v}");
    } else {
        println!(
            "{} arrays: open {:.2} ms; first row of a random array p50 {} ns, p99 {} ns, max {} ns; RSS {}; {} open fds",
            lib.len(),
            open_ns as f64 / 1e6,
            q(0.5),
            q(0.99),
            q(1.0),
            human_bytes(rss),
            fds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_specs() {
        assert_eq!(parse_output("term").unwrap(), OutputKind::Term);
        assert_eq!(parse_output("null").unwrap(), OutputKind::Null);
        assert_eq!(parse_output("spi").unwrap(), OutputKind::Spi);
        assert_eq!(
            parse_output("capture:/tmp/a:b").unwrap(),
            OutputKind::Capture(PathBuf::from("/tmp/a:b"))
        );
        assert_eq!(
            parse_output("wire:x").unwrap(),
            OutputKind::Wire(PathBuf::from("x"))
        );
        assert!(parse_output("capture").is_err());
        assert!(parse_output("capture:").is_err());
        assert!(parse_output("hdmi").unwrap_err().0[0].contains("unknown output"));
    }
}
