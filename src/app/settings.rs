//! Settings resolved once: (command line, config file, board profile,
//! defaults) in, plain values out. Every precedence rule lives here and is
//! tested here: a flag beats the config, the config beats the board, the
//! board beats the built-in default. Nothing here starts a thread or opens a
//! device; [`super::play`] takes the result and wires the parts together.

use crate::board::{self, Board};
use crate::cli::{ClockArg, CtlArgs, PlayArgs, SelftestArgs};
use crate::color::{ColorError, ColorSettings};
use crate::config::{
    ButtonConfig, ColorConfig, Config, OutputConfig, OutputField, OutputKindName, PlaylistEntry,
};
use crate::net::NetSettings;
use crate::output::chip::{ChipError, ChipKind, ChipSettings, ColorOrder};
use crate::playlist::{Order, PlaylistSpec};
use std::fmt;
use std::path::{Path, PathBuf};

/// Frames per second when nothing says otherwise.
pub const DEFAULT_FPS: u32 = 50;
/// SCHED_FIFO priority when neither flag, config nor board says.
pub const DEFAULT_RT_PRIORITY: u32 = 50;
/// The SPI divider's core clock when no board is named (a pinned Pi core).
pub const DEFAULT_CORE_HZ: u32 = 250_000_000;
/// Gamma when a chip is set (LEDs are linear, eyes are not), else off.
pub const CHIP_GAMMA: f32 = 2.2;

/// A setting out of range or unknown.
#[derive(Debug, PartialEq)]
pub enum SettingsError {
    /// `--board` / `board` names no built-in profile.
    UnknownBoard(String),
    /// fps outside 1..=1000.
    Fps(u32),
    /// `--seconds` is negative or not a number.
    Seconds(f64),
    /// `[playlist] order` is not loop, once or shuffle.
    PlaylistOrder(String),
    /// `--output` names no output.
    UnknownOutput(String),
    /// `capture` or `wire` without a path.
    OutputNeedsPath(&'static str),
    /// `wire:` or `spi` without a chip.
    OutputNeedsChip(&'static str),
    /// A bad colour order.
    ColorOrder(String),
    /// A chip setting out of range.
    Chip(ChipError),
    /// A colour setting out of range.
    Color(ColorError),
    /// `selftest` without a chip.
    SelftestNeedsChip,
    /// `--http` / `[http] listen` is not `ADDR:PORT`.
    HttpListen(String),
    /// A live-input setting that does not parse or is out of range (the
    /// message names the option).
    Network(String),
    /// `[[output]]` tables together with the single form's `[led]`/`[spi]`.
    BothOutputForms,
    /// An `[[output]]` table (1-based) without `kind`.
    TableNeedsKind(usize),
    /// An `[[output]]` table lacks a key its kind needs.
    TableNeedsKey {
        /// 1-based table number.
        n: usize,
        /// The kind.
        kind: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// An `[[output]]` table has a key its kind does not use.
    KeyNotForKind {
        /// 1-based table number.
        n: usize,
        /// The kind.
        kind: &'static str,
        /// The key.
        key: &'static str,
    },
    /// `gpio-clocked` with a chip that is not clocked.
    NotClocked(usize, ChipKind),
    /// `record` on an output that is already a record or has no hardware.
    RecordOnHost(usize),
    /// `gpio` with no pins or more pins than channels (4).
    GpioPins(usize, usize),
    /// `pwm_hz` outside 1..=[`MAX_PWM_HZ`].
    PwmHz(usize, u32),
    /// Bit-bang clock outside 1..=[`MAX_BITBANG_HZ`].
    BitbangHz(usize, u32),
    /// A pin the board's header does not have.
    UnknownPin {
        /// BCM pin.
        pin: u8,
        /// Who asked for it.
        by: String,
    },
    /// A pin asked for twice.
    PinTaken {
        /// BCM pin.
        pin: u8,
        /// Who holds it.
        holder: String,
        /// Who asked for it as well.
        by: String,
    },
    /// An SPI bus the board does not have.
    NoSpiBus {
        /// Bus number.
        bus: u8,
        /// Board name.
        board: String,
    },
    /// A chip select the bus does not have.
    NoChipSelect {
        /// Bus number.
        bus: u8,
        /// Chip select.
        cs: u8,
    },
    /// A WS2812-type strip on a bus that another strip uses.
    Ws2812SharesBus {
        /// Bus number.
        bus: u8,
    },
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::UnknownBoard(n) => write!(
                f,
                "unknown board {n:?}: use one of {}",
                board::names().join(", ")
            ),
            SettingsError::Fps(n) => write!(f, "fps {n} outside 1..=1000"),
            SettingsError::Seconds(s) => write!(f, "--seconds {s} is not a duration"),
            SettingsError::PlaylistOrder(o) => write!(
                f,
                "config: bad playlist order {o:?}: use loop, once or shuffle"
            ),
            SettingsError::UnknownOutput(s) => write!(
                f,
                "unknown output {s:?}: use term, null, capture:PATH, wire:PATH or spi"
            ),
            SettingsError::OutputNeedsPath(k) => write!(f, "--output {k} needs a path: {k}:PATH"),
            SettingsError::OutputNeedsChip("wire") => write!(
                f,
                "--output wire: needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
            ),
            SettingsError::OutputNeedsChip(k) => write!(
                f,
                "--output {k} needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
            ),
            SettingsError::ColorOrder(e) => write!(f, "{e}"),
            SettingsError::Chip(e) => write!(f, "{e}"),
            SettingsError::Color(e) => write!(f, "{e}"),
            SettingsError::Network(m) => f.write_str(m),
            SettingsError::HttpListen(a) => write!(
                f,
                "--http {a:?} is not ADDR:PORT (e.g. 0.0.0.0:8080, or 127.0.0.1:0 for any free port)"
            ),
            SettingsError::SelftestNeedsChip => write!(
                f,
                "selftest needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
            ),
            SettingsError::BothOutputForms => write!(
                f,
                "config has [[output]] tables and [led]/[spi]: use one of them (move chip, count and bus into the [[output]] tables)"
            ),
            SettingsError::TableNeedsKind(n) => write!(
                f,
                "[[output]] {n} has no kind: add kind = \"spi\", \"gpio-clocked\", \"gpio\", \"wire\", \"capture\", \"term\" or \"null\""
            ),
            SettingsError::TableNeedsKey { n, kind, key } => {
                write!(f, "[[output]] {n} (kind = \"{kind}\") needs {key}")
            }
            SettingsError::KeyNotForKind { n, kind, key } => write!(
                f,
                "[[output]] {n} (kind = \"{kind}\"): {key} does not apply to a {kind} output (it is for {}): remove it",
                kinds_using(key)
            ),
            SettingsError::NotClocked(n, c) => write!(
                f,
                "[[output]] {n}: gpio-clocked drives apa102, sk9822 or ws2801, not {c}: wire a {c} to SPI MOSI (GPIO10) with kind = \"spi\""
            ),
            SettingsError::RecordOnHost(n) => write!(
                f,
                "[[output]] {n}: record is for spi, gpio-clocked and gpio outputs: use kind = \"wire\" for a record alone"
            ),
            SettingsError::GpioPins(n, p) => write!(
                f,
                "[[output]] {n}: gpio has {p} pins: give 1 to 4 (one per channel, R G B W)"
            ),
            SettingsError::PwmHz(n, hz) => {
                write!(f, "[[output]] {n}: pwm_hz {hz} is outside 1..={MAX_PWM_HZ}")
            }
            SettingsError::BitbangHz(n, hz) => write!(
                f,
                "[[output]] {n}: gpio-clocked hz {hz} is outside 1..={MAX_BITBANG_HZ}"
            ),
            SettingsError::UnknownPin { pin, by } => write!(
                f,
                "GPIO{pin} ({by}) is not on the header: use GPIO2..GPIO27"
            ),
            SettingsError::PinTaken { pin, holder, by } => write!(
                f,
                "GPIO{pin} is wanted by {by} but {holder} holds it: pick another pin"
            ),
            SettingsError::NoSpiBus { bus, board } => {
                write!(f, "board {board} has no SPI bus {bus}")
            }
            SettingsError::NoChipSelect { bus, cs } => {
                write!(f, "SPI{bus} has no chip select CE{cs}")
            }
            SettingsError::Ws2812SharesBus { bus } => write!(
                f,
                "a WS2812/SK6812 strip shares SPI{bus} with another strip: it has no clock line to gate, give it a bus of its own"
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

impl From<ChipError> for SettingsError {
    fn from(e: ChipError) -> Self {
        SettingsError::Chip(e)
    }
}

impl From<ColorError> for SettingsError {
    fn from(e: ColorError) -> Self {
        SettingsError::Color(e)
    }
}

/// Where frames go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputKind {
    /// The terminal preview.
    Term,
    /// Nowhere.
    Null,
    /// Pixels after the colour pipeline, to a record file.
    Capture(PathBuf),
    /// The chip's wire bytes, to a record file.
    Wire(PathBuf),
    /// The strip, on SPI.
    Spi,
    /// A clocked strip bit-banged on two GPIO pins.
    GpioClocked {
        /// BCM data pin.
        data_pin: u8,
        /// BCM clock pin.
        clock_pin: u8,
        /// Bit clock in Hz.
        hz: u32,
    },
    /// One GPIO pin per channel.
    Gpio {
        /// BCM pins, R G B (W) order.
        pins: Vec<u8>,
        /// A channel at or above this is on.
        threshold: u8,
        /// Software PWM rate instead of on/off.
        pwm_hz: Option<u32>,
    },
}

impl OutputKind {
    /// The kind's name, as `[[output]] kind` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            OutputKind::Term => "term",
            OutputKind::Null => "null",
            OutputKind::Capture(_) => "capture",
            OutputKind::Wire(_) => "wire",
            OutputKind::Spi => "spi",
            OutputKind::GpioClocked { .. } => "gpio-clocked",
            OutputKind::Gpio { .. } => "gpio",
        }
    }
}

/// `gpio` pin threshold when none is given.
pub const DEFAULT_THRESHOLD: u8 = 128;
/// Highest software PWM rate accepted: beyond it the PWM thread would eat
/// the Pi Zero's one core.
pub const MAX_PWM_HZ: u32 = 1000;
/// Bit clock of `gpio-clocked` when none is given: a 300-LED APA102 frame
/// (1224 bytes, 9792 bits) takes 4.9 ms at 2 MHz, a quarter of a 50 Hz
/// period.
pub const DEFAULT_BITBANG_HZ: u32 = 2_000_000;
/// Fastest bit clock accepted. rppal's memory-mapped GPIO writes take a few
/// tens of ns on a Pi Zero, so 4 MHz is about what one core can toggle; a
/// 300-LED frame is then 2.5 ms, well inside a 20 ms period.
pub const MAX_BITBANG_HZ: u32 = 4_000_000;

/// One output, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSettings {
    /// What it is.
    pub kind: OutputKind,
    /// First LED of the row it shows.
    pub first: u32,
    /// LEDs it shows; `None` = from `first` to the end of the strip.
    pub count: Option<u32>,
    /// Shown back to front.
    pub reverse: bool,
    /// Its chip (wire, spi, gpio-clocked).
    pub chip: Option<ChipSettings>,
    /// Its colour pipeline.
    pub color: ColorSettings,
    /// Its SPI bus (spi only).
    pub spi: SpiBusSettings,
    /// Records of what a hardware output sends.
    pub record: Option<PathBuf>,
}

/// Parse `--output KIND[:ARG]`.
pub fn parse_output(s: &str) -> Result<OutputKind, SettingsError> {
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
        ("capture", _) => Err(SettingsError::OutputNeedsPath("capture")),
        ("wire", _) => Err(SettingsError::OutputNeedsPath("wire")),
        _ => Err(SettingsError::UnknownOutput(s.to_string())),
    }
}

/// The colour settings from the config's `[color]` table; `default_gamma`
/// where it gives none.
pub fn color_from_config(c: &ColorConfig, default_gamma: f32) -> Result<ColorSettings, ColorError> {
    let mut s = ColorSettings {
        gamma: default_gamma,
        ..ColorSettings::default()
    };
    if let Some(b) = c.brightness {
        s.brightness = b;
    }
    if let Some(g) = c.gamma {
        s.gamma = g;
    }
    if let Some(wb) = &c.white_balance {
        if wb.len() != 3 && wb.len() != 4 {
            return Err(ColorError::WhiteBalanceLen(wb.len()));
        }
        s.white_balance[..wb.len()].copy_from_slice(wb);
    }
    s.max_current_ma = c.max_current_ma;
    if let Some(m) = c.ma_per_channel {
        s.ma_per_channel = m;
    }
    if let Some(m) = c.idle_ma_per_led {
        s.idle_ma_per_led = m;
    }
    s.validate()?;
    Ok(s)
}

/// The chip from the command line over the config, if one is set.
pub fn chip_settings(
    cfg: &Config,
    chip: Option<ChipKind>,
    order: Option<&str>,
    spi_hz: Option<u32>,
) -> Result<Option<ChipSettings>, SettingsError> {
    let Some(kind) = chip.or(cfg.led().chip) else {
        return Ok(None);
    };
    let mut s = ChipSettings::new(kind);
    if let Some(o) = order.or(cfg.led().color_order.as_deref()) {
        s.order = Some(
            o.parse::<ColorOrder>()
                .map_err(|e| SettingsError::ColorOrder(e.to_string()))?,
        );
    }
    s.spi_hz = spi_hz.or(cfg.spi().hz);
    if let Some(g) = cfg.led().global_brightness {
        s.global_brightness = g;
    }
    s.validate()?;
    Ok(Some(s))
}

fn board(flag: Option<&str>, cfg: &Config) -> Result<Option<Board>, SettingsError> {
    match flag.or(cfg.board.as_deref()) {
        Some(n) => board::get(n)
            .map(Some)
            .ok_or_else(|| SettingsError::UnknownBoard(n.to_string())),
        None => Ok(None),
    }
}

/// The SPI bus the strip is on (the clock comes from the chip settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpiBusSettings {
    /// Bus number.
    pub bus: u8,
    /// Chip select.
    pub cs: u8,
    /// SPI mode.
    pub mode: u8,
    /// The core clock the Pi divides down, from the board.
    pub core_hz: u32,
}

fn spi_bus(cfg: &Config, board: Option<&Board>) -> SpiBusSettings {
    SpiBusSettings {
        bus: cfg.spi().bus.unwrap_or(0),
        cs: cfg.spi().cs.unwrap_or(0),
        mode: cfg.spi().mode.unwrap_or(0),
        core_hz: board.map(|b| b.core_hz).unwrap_or(DEFAULT_CORE_HZ),
    }
}

/// What to play from, before the library is open.
#[derive(Clone, Debug, PartialEq)]
pub enum PlaylistChoice {
    /// These entries.
    Entries(Vec<PlaylistSpec>),
    /// Every array of the library in index order (the built-in demo).
    AllArrays,
    /// None: the current array loops.
    None,
}

/// The web page and HTTP API, when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpChoice {
    /// Where to listen.
    pub listen: std::net::SocketAddr,
    /// The token, given directly.
    pub token: Option<String>,
    /// Or the file to read it from (at start).
    pub token_file: Option<PathBuf>,
    /// Reads need the token too.
    pub token_read: bool,
    /// The WLED endpoints need no token.
    pub wled_open: bool,
    /// WLED presets by name.
    pub wled_presets: Vec<String>,
}

fn http(a: &PlayArgs, cfg: &Config) -> Result<Option<HttpChoice>, SettingsError> {
    let Some(listen) = a.http.as_deref().or(cfg.http.listen.as_deref()) else {
        return Ok(None);
    };
    let addr = listen
        .parse()
        .map_err(|_| SettingsError::HttpListen(listen.to_string()))?;
    // A token on the command line beats a token file in the config, and the
    // other way round: the flag level wins as a whole.
    let (token, token_file) = if a.http_token.is_some() || a.http_token_file.is_some() {
        (a.http_token.clone(), a.http_token_file.clone())
    } else {
        (cfg.http.token.clone(), cfg.http.token_file.clone())
    };
    Ok(Some(HttpChoice {
        listen: addr,
        token,
        token_file,
        token_read: a.http_token_read || cfg.http.token_read.unwrap_or(false),
        wled_open: a.wled_open || cfg.http.wled_open.unwrap_or(false),
        wled_presets: cfg.http.wled_presets.clone().unwrap_or_default(),
    }))
}

/// Everything `rowplay play` needs, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct PlaySettings {
    /// The SOURCE (flag, else the config's `library`); `None` = the demo.
    pub source: Option<PathBuf>,
    /// Frames per second of arrays without their own rate (`--fps`, else
    /// the config's `fps`, else 50).
    pub fps: u32,
    /// `--fps` was given: it forces one rate on every array.
    pub force_fps: bool,
    /// Stop after this many frames (`--frames`).
    pub max_frames: Option<u64>,
    /// Stop after this much playback time (`--seconds`), in ns.
    pub max_ns: Option<u64>,
    /// Array to start with.
    pub start: Option<String>,
    /// The playlist.
    pub playlist: PlaylistChoice,
    /// What happens at its end.
    pub order: Order,
    /// Strip length; `None` = the widest array of the library.
    pub leds: Option<u32>,
    /// The chip, if any.
    pub chip: Option<ChipSettings>,
    /// The colour pipeline.
    pub color: ColorSettings,
    /// Where frames go, in the order they are written.
    pub outputs: Vec<OutputSettings>,
    /// `--spi-stand-in DIR`: spidev replaced by wire recorders in DIR.
    pub spi_stand_in: Option<PathBuf>,
    /// `--gpio-stand-in DIR`: the GPIO chip replaced by edge recorders in DIR.
    pub gpio_stand_in: Option<PathBuf>,
    /// The SPI bus.
    pub spi: SpiBusSettings,
    /// The control socket (`None` = a default location).
    pub socket: Option<PathBuf>,
    /// Statistics file written at exit.
    pub stats_json: Option<PathBuf>,
    /// Raw per-tick times written at exit (`--wake-log`).
    pub wake_log: Option<PathBuf>,
    /// SCHED_FIFO priority (0 = do not ask).
    pub rt_priority: u32,
    /// Fail when realtime set-up is refused.
    pub require_rt: bool,
    /// Most bytes the heads may lock.
    pub heads_budget: Option<u64>,
    /// The frame loop's clock.
    pub clock: ClockArg,
    /// GPIO buttons.
    pub buttons: Vec<ButtonConfig>,
    /// The web page and HTTP API, if asked for.
    pub http: Option<HttpChoice>,
    /// Live network input, if `--listen` / `[network] listen` names a
    /// protocol.
    pub network: Option<NetSettings>,
    /// FPP MultiSync, if `--multisync` / `[multisync] mode` is set.
    pub multisync: Option<crate::sync::SyncSettings>,
    /// `--clock-drift-ppm` (tests).
    pub clock_drift_ppm: Option<i64>,
}

/// Resolve `rowplay play`. `stdout_is_terminal` decides the default output.
pub fn play(
    a: &PlayArgs,
    cfg: &Config,
    stdout_is_terminal: bool,
) -> Result<PlaySettings, SettingsError> {
    let board = board(a.board.as_deref(), cfg)?;
    let fps = a.fps.or(cfg.fps).unwrap_or(DEFAULT_FPS);
    if fps == 0 || fps > 1000 {
        return Err(SettingsError::Fps(fps));
    }
    let max_ns = match (a.frames, a.seconds) {
        (None, Some(s)) if s.is_finite() && s >= 0.0 => Some((s * 1e9).round() as u64),
        (None, Some(s)) => return Err(SettingsError::Seconds(s)),
        _ => None,
    };
    let source = a.source.clone().or(cfg.library.clone());
    // The config's playlist names arrays of the config's library: a SOURCE
    // on the command line plays without it.
    let cfg_playlist = cfg.playlist.as_ref().filter(|_| a.source.is_none());
    let order = match (a.order, cfg_playlist.and_then(|p| p.order.as_deref())) {
        (Some(o), _) => o,
        (None, Some(o)) => <Order as clap::ValueEnum>::from_str(o, true)
            .map_err(|_| SettingsError::PlaylistOrder(o.to_string()))?,
        (None, None) => Order::Loop,
    };
    let playlist = if let Some(names) = &a.playlist {
        PlaylistChoice::Entries(
            names
                .iter()
                .filter(|n| !n.is_empty())
                .map(PlaylistSpec::once)
                .collect(),
        )
    } else if let Some(p) = cfg_playlist {
        PlaylistChoice::Entries(
            p.entries
                .iter()
                .map(|e| match e {
                    PlaylistEntry::Name(n) => PlaylistSpec::once(n.clone()),
                    PlaylistEntry::Detailed {
                        name,
                        repeat,
                        seconds,
                    } => PlaylistSpec {
                        name: name.clone(),
                        repeat: repeat.unwrap_or(1),
                        seconds: *seconds,
                    },
                })
                .collect(),
        )
    } else if source.is_none() {
        PlaylistChoice::AllArrays
    } else {
        PlaylistChoice::None
    };
    let chip = chip_settings(cfg, a.chip, a.color_order.as_deref(), a.spi_hz)?;
    let default_gamma = if chip.is_some() { CHIP_GAMMA } else { 1.0 };
    let mut color = color_from_config(&cfg.color, default_gamma)?;
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
    let tables = match &cfg.output {
        Some(OutputField::Many(v)) => Some(v),
        _ => None,
    };
    if tables.is_some() && (cfg.led.is_some() || cfg.spi.is_some()) {
        return Err(SettingsError::BothOutputForms);
    }
    let board_ = board.clone();
    let spi = spi_bus(cfg, board.as_ref());
    let single = |kind: OutputKind| -> Result<OutputSettings, SettingsError> {
        match (&kind, &chip) {
            (OutputKind::Wire(_), None) => return Err(SettingsError::OutputNeedsChip("wire")),
            (OutputKind::Spi, None) => return Err(SettingsError::OutputNeedsChip("spi")),
            _ => {}
        }
        Ok(OutputSettings {
            kind,
            first: 0,
            count: None,
            reverse: false,
            chip,
            color,
            spi,
            record: None,
        })
    };
    let outputs: Vec<OutputSettings> = if !a.output.is_empty() {
        a.output
            .iter()
            .map(|o| single(parse_output(o)?))
            .collect::<Result<_, _>>()?
    } else if let Some(v) = tables {
        v.iter()
            .enumerate()
            .map(|(i, t)| output_table(i + 1, t, cfg, a, board_.as_ref()))
            .collect::<Result<_, _>>()?
    } else {
        vec![single(match &cfg.output {
            Some(OutputField::One(s)) => parse_output(s)?,
            _ if stdout_is_terminal => OutputKind::Term,
            _ => OutputKind::Null,
        })?]
    };
    check_pins(&outputs, &cfg.buttons, board_.as_ref())?;
    Ok(PlaySettings {
        source,
        fps,
        force_fps: a.fps.is_some(),
        max_frames: a.frames,
        max_ns,
        start: a.start.clone().or(cfg.start.clone()),
        playlist,
        order,
        leds: a.leds.or(cfg.led().count),
        chip,
        color,
        outputs,
        spi_stand_in: a.spi_stand_in.clone(),
        gpio_stand_in: a.gpio_stand_in.clone(),
        spi,
        socket: a.socket.clone().or(cfg.socket.clone()),
        stats_json: a.stats_json.clone(),
        wake_log: a.wake_log.clone(),
        rt_priority: a
            .rt_priority
            .or(cfg.rt_priority)
            .or(board.as_ref().map(|b| b.rt_priority))
            .unwrap_or(DEFAULT_RT_PRIORITY)
            .min(99),
        require_rt: a.require_rt || cfg.require_rt.unwrap_or(false),
        heads_budget: a.heads_budget,
        clock: a.clock,
        buttons: cfg.buttons.clone(),
        http: http(a, cfg)?,
        network: network(a, cfg)?,
        multisync: multisync(a, cfg)?,
        clock_drift_ppm: a.clock_drift_ppm,
    })
}

/// Resolve MultiSync: each flag over the same key of `[multisync]`.
fn multisync(
    a: &PlayArgs,
    cfg: &Config,
) -> Result<Option<crate::sync::SyncSettings>, SettingsError> {
    use crate::sync::{self as sy, packet::PORT};
    let m = &cfg.multisync;
    let Some(mode) = a.multisync.as_ref().or(m.mode.as_ref()) else {
        return Ok(None);
    };
    let bad = |e: sy::SettingsError| SettingsError::Network(e.to_string());
    let mut s = sy::SyncSettings {
        mode: sy::parse_mode(mode).map_err(bad)?,
        ..Default::default()
    };
    if let Some(v) = a.after_sync.as_ref().or(m.after_sync.as_ref()) {
        s.after_sync = sy::parse_after_sync(v).map_err(bad)?;
    }
    if let Some(v) = a.multisync_offset.or(m.offset) {
        s.offset_ms = sy::check_offset_ms(v).map_err(bad)?;
    }
    let to = match (&a.multisync_to, &m.to) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(list)) => Some(list.join(",")),
        (None, None) => None,
    };
    if let Some(t) = to {
        s.to = sy::parse_to_list(&t).map_err(bad)?;
    }
    if let Some(l) = a.multisync_listen.as_ref().or(m.listen.as_ref()) {
        s.listen = l
            .parse::<std::net::SocketAddrV4>()
            .or_else(|_| {
                l.parse::<std::net::Ipv4Addr>()
                    .map(|ip| std::net::SocketAddrV4::new(ip, PORT))
            })
            .map_err(|_| {
                SettingsError::Network(format!("--multisync-listen {l:?} is not IP or IP:PORT"))
            })?;
    }
    s.names = m
        .names
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    s.hostname = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "rowplay".into());
    Ok(Some(s))
}

/// Resolve live input: each `--` flag over the same key of `[network]`
/// over the default. `None` when no protocol is named.
fn network(a: &PlayArgs, cfg: &Config) -> Result<Option<NetSettings>, SettingsError> {
    use crate::net::settings as ns;
    let n = &cfg.network;
    let bad = |e: ns::SettingError| SettingsError::Network(e.to_string());
    let listen = if a.listen.is_empty() {
        ns::parse_listen(n.listen.iter().flatten().map(String::as_str))
    } else {
        ns::parse_listen(a.listen.iter().map(String::as_str))
    }
    .map_err(bad)?;
    if listen.is_empty() {
        return Ok(None);
    }
    let mut s = NetSettings {
        listen,
        ..NetSettings::default()
    };
    if let Some(v) = a.listen_addr.as_ref().or(n.listen_addr.as_ref()) {
        s.listen_addr = ns::parse_addr(v).map_err(bad)?;
    }
    s.allow = if a.allow.is_empty() {
        ns::parse_allow(n.allow.iter().flatten().map(String::as_str))
    } else {
        ns::parse_allow(a.allow.iter().map(String::as_str))
    }
    .map_err(bad)?;
    s.universe = a.universe.or(n.universe).unwrap_or(s.universe);
    if !(1..=63999).contains(&s.universe) {
        return Err(SettingsError::Network(format!(
            "--universe {} outside 1..=63999 (E1.31's universes)",
            s.universe
        )));
    }
    s.artnet_universe = a
        .artnet_universe
        .or(n.artnet_universe)
        .unwrap_or(s.artnet_universe);
    if s.artnet_universe > 0x7FFF {
        return Err(SettingsError::Network(format!(
            "--artnet-universe {} outside 0..=32767 (Art-Net's 15-bit Port-Address)",
            s.artnet_universe
        )));
    }
    s.channels_per_universe = a
        .channels_per_universe
        .or(n.channels_per_universe)
        .unwrap_or(s.channels_per_universe);
    if !(4..=512).contains(&s.channels_per_universe) {
        return Err(SettingsError::Network(format!(
            "--channels-per-universe {} outside 4..=512",
            s.channels_per_universe
        )));
    }
    s.ddp_offset = a.ddp_offset.or(n.ddp_offset).unwrap_or(0);
    if let Some(v) = a.live_output.as_ref().or(n.live_output.as_ref()) {
        s.live_output = ns::parse_live_output(v).map_err(bad)?;
    }
    let duration = |option: &str, flag: &Option<String>, key: &Option<crate::config::Duration>| {
        let text = match (flag, key) {
            (Some(f), _) => f.clone(),
            (None, Some(k)) => k.as_text(),
            (None, None) => return Ok(None),
        };
        ns::parse_duration(&text)
            .map(Some)
            .map_err(|e| SettingsError::Network(format!("--{option}: {e}")))
    };
    if let Some(d) = duration(
        "live-min-interval",
        &a.live_min_interval,
        &n.live_min_interval,
    )? {
        s.live_min_interval_ns = d;
    }
    if let Some(d) = duration("live-timeout", &a.live_timeout, &n.live_timeout)? {
        if d == 0 {
            return Err(SettingsError::Network(
                "--live-timeout: must be more than 0".into(),
            ));
        }
        s.live_timeout_ns = d;
    }
    if let Some(v) = a.after_live.as_ref().or(n.after_live.as_ref()) {
        s.after_live = ns::parse_after_live(v).map_err(bad)?;
    }
    if let Some(v) = a.live_rank.as_ref().or(n.live_rank.as_ref()) {
        s.live_rank = ns::parse_live_rank(v).map_err(bad)?;
    }
    s.live_gamma = a.live_gamma.or(n.live_gamma).unwrap_or(1.0);
    if !(s.live_gamma.is_finite() && (0.1..=5.0).contains(&s.live_gamma)) {
        return Err(SettingsError::Network(format!(
            "--live-gamma {} outside 0.1..=5",
            s.live_gamma
        )));
    }
    Ok(Some(s))
}

/// Resolve the `n`th (1-based) `[[output]]` table. Colour: `[color]`, then
/// the table's gamma/brightness/max_current_ma, then the command line's flags.
fn output_table(
    n: usize,
    t: &OutputConfig,
    cfg: &Config,
    a: &PlayArgs,
    board: Option<&Board>,
) -> Result<OutputSettings, SettingsError> {
    let kind_name = t.kind.ok_or(SettingsError::TableNeedsKind(n))?;
    let name = self::kind_name(kind_name);
    let need = |key: &'static str| SettingsError::TableNeedsKey { n, kind: name, key };
    if let Some(key) = stray_key(t, kind_name) {
        return Err(SettingsError::KeyNotForKind { n, kind: name, key });
    }
    let chip = match t.chip {
        Some(k) => {
            let mut c = ChipSettings::new(k);
            if let Some(o) = &t.color_order {
                c.order = Some(
                    o.parse::<ColorOrder>()
                        .map_err(|e| SettingsError::ColorOrder(e.to_string()))?,
                );
            }
            if kind_name == OutputKindName::Spi {
                c.spi_hz = t.hz;
            }
            c.validate()?;
            Some(c)
        }
        None => None,
    };
    let path = || t.path.clone().ok_or_else(|| need("path"));
    let pin = |p: Option<u8>, key| p.ok_or_else(|| need(key));
    let kind = match kind_name {
        OutputKindName::Term => OutputKind::Term,
        OutputKindName::Null => OutputKind::Null,
        OutputKindName::Capture => OutputKind::Capture(path()?),
        OutputKindName::Wire => {
            chip.ok_or_else(|| need("chip"))?;
            OutputKind::Wire(path()?)
        }
        OutputKindName::Spi => {
            chip.ok_or_else(|| need("chip"))?;
            OutputKind::Spi
        }
        OutputKindName::GpioClocked => {
            let c = chip.ok_or_else(|| need("chip"))?;
            if c.kind.ws2812_variant().is_some() {
                return Err(SettingsError::NotClocked(n, c.kind));
            }
            let hz = t.hz.unwrap_or(DEFAULT_BITBANG_HZ);
            if hz == 0 || hz > MAX_BITBANG_HZ {
                return Err(SettingsError::BitbangHz(n, hz));
            }
            OutputKind::GpioClocked {
                data_pin: pin(t.data_pin, "data_pin")?,
                clock_pin: pin(t.clock_pin, "clock_pin")?,
                hz,
            }
        }
        OutputKindName::Gpio => {
            let pins = t.pins.clone().ok_or_else(|| need("pins"))?;
            if pins.is_empty() || pins.len() > 4 {
                return Err(SettingsError::GpioPins(n, pins.len()));
            }
            if let Some(hz) = t.pwm_hz.filter(|h| *h == 0 || *h > MAX_PWM_HZ) {
                return Err(SettingsError::PwmHz(n, hz));
            }
            OutputKind::Gpio {
                pins,
                threshold: t.threshold.unwrap_or(DEFAULT_THRESHOLD),
                pwm_hz: t.pwm_hz,
            }
        }
    };
    let hardware = matches!(
        kind,
        OutputKind::Spi | OutputKind::GpioClocked { .. } | OutputKind::Gpio { .. }
    );
    if t.record.is_some() && !hardware {
        return Err(SettingsError::RecordOnHost(n));
    }
    let default_gamma = if chip.is_some() { CHIP_GAMMA } else { 1.0 };
    let mut color = color_from_config(&cfg.color, default_gamma)?;
    if let Some(g) = a.gamma.or(t.gamma) {
        color.gamma = g;
    }
    if let Some(b) = a.brightness.or(t.brightness) {
        color.brightness = b;
    }
    if let Some(m) = a.max_current.or(t.max_current_ma) {
        color.max_current_ma = Some(m);
    }
    color.validate()?;
    Ok(OutputSettings {
        kind,
        first: t.first.unwrap_or(0),
        count: t.count,
        reverse: t.reverse.unwrap_or(false),
        chip,
        color,
        spi: SpiBusSettings {
            bus: t.bus.unwrap_or(0),
            cs: t.cs.unwrap_or(0),
            mode: 0,
            core_hz: board.map(|b| b.core_hz).unwrap_or(DEFAULT_CORE_HZ),
        },
        record: t.record.clone(),
    })
}

/// The `[[output]]` keys that belong to some kinds only, with the kinds
/// that use them (`kind`, the slice and the colour keys apply to every
/// kind; `record` has its own error, [`SettingsError::RecordOnHost`]).
const KIND_KEYS: [(&str, &[OutputKindName]); 11] = {
    use OutputKindName::*;
    [
        ("path", &[Wire, Capture]),
        ("chip", &[Spi, GpioClocked, Wire]),
        ("color_order", &[Spi, GpioClocked, Wire]),
        ("bus", &[Spi]),
        ("cs", &[Spi]),
        ("hz", &[Spi, GpioClocked]),
        ("data_pin", &[GpioClocked]),
        ("clock_pin", &[GpioClocked]),
        ("pins", &[Gpio]),
        ("threshold", &[Gpio]),
        ("pwm_hz", &[Gpio]),
    ]
};

/// The first key of `t`, in [`KIND_KEYS`] order, that `kind` does not use.
fn stray_key(t: &OutputConfig, kind: OutputKindName) -> Option<&'static str> {
    let set = |key: &str| match key {
        "path" => t.path.is_some(),
        "chip" => t.chip.is_some(),
        "color_order" => t.color_order.is_some(),
        "bus" => t.bus.is_some(),
        "cs" => t.cs.is_some(),
        "hz" => t.hz.is_some(),
        "data_pin" => t.data_pin.is_some(),
        "clock_pin" => t.clock_pin.is_some(),
        "pins" => t.pins.is_some(),
        "threshold" => t.threshold.is_some(),
        "pwm_hz" => t.pwm_hz.is_some(),
        _ => false,
    };
    KIND_KEYS
        .iter()
        .find(|(key, kinds)| set(key) && !kinds.contains(&kind))
        .map(|(key, _)| *key)
}

/// The kinds that use `key`, as a list for a message ("spi, gpio-clocked").
fn kinds_using(key: &str) -> String {
    let kinds = KIND_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(&[][..], |(_, kinds)| *kinds);
    kinds
        .iter()
        .map(|k| kind_name(*k))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A kind as `[[output]] kind` spells it.
fn kind_name(k: OutputKindName) -> &'static str {
    match k {
        OutputKindName::Spi => "spi",
        OutputKindName::GpioClocked => "gpio-clocked",
        OutputKindName::Gpio => "gpio",
        OutputKindName::Wire => "wire",
        OutputKindName::Capture => "capture",
        OutputKindName::Term => "term",
        OutputKindName::Null => "null",
    }
}

/// Check every pin the outputs and buttons use against the board (the
/// pi-zero profile when none is named: every 40-pin Pi has the same header):
/// each pin on the header, held by one user; SPI buses and chip selects the
/// board has; no WS2812-type strip on a bus another strip uses. Strips of
/// clocked chips may share a bus (through a buffer gated by the chip
/// selects, see docs/pi.md).
pub fn check_pins(
    outputs: &[OutputSettings],
    buttons: &[ButtonConfig],
    board: Option<&Board>,
) -> Result<(), SettingsError> {
    let fallback;
    let board = match board {
        Some(b) => b,
        None => {
            fallback = board::get("pi-zero");
            match &fallback {
                Some(b) => b,
                None => return Ok(()),
            }
        }
    };
    let mut holders: Vec<(u8, String)> = Vec::new();
    let mut take = |pin: u8, by: String| -> Result<(), SettingsError> {
        if pin > crate::buttons::MAX_PIN {
            return Err(SettingsError::UnknownPin { pin, by });
        }
        if let Some((_, holder)) = holders.iter().find(|(p, _)| *p == pin) {
            return Err(SettingsError::PinTaken {
                pin,
                holder: holder.clone(),
                by,
            });
        }
        holders.push((pin, by));
        Ok(())
    };
    let mut buses: Vec<u8> = Vec::new();
    for (i, o) in outputs.iter().enumerate() {
        let who = format!("output {} ({})", i + 1, o.kind.name());
        match &o.kind {
            OutputKind::Spi => {
                let bus = o.spi.bus;
                let b = board.spi_bus(bus).ok_or_else(|| SettingsError::NoSpiBus {
                    bus,
                    board: board.name.clone(),
                })?;
                let ce = *b
                    .ce
                    .get(o.spi.cs as usize)
                    .ok_or(SettingsError::NoChipSelect { bus, cs: o.spi.cs })?;
                let bit_encoded =
                    |o: &OutputSettings| o.chip.is_some_and(|c| c.kind.ws2812_variant().is_some());
                let sharing = outputs
                    .iter()
                    .filter(|p| p.kind == OutputKind::Spi && p.spi.bus == bus)
                    .count()
                    > 1;
                if sharing && bit_encoded(o) {
                    return Err(SettingsError::Ws2812SharesBus { bus });
                }
                if !buses.contains(&bus) {
                    buses.push(bus);
                    for (p, what) in [(b.mosi, "MOSI"), (b.miso, "MISO"), (b.sclk, "SCLK")] {
                        take(p, format!("SPI{bus} {what}"))?;
                    }
                }
                take(ce, format!("SPI{bus} CE{} of {who}", o.spi.cs))?;
            }
            OutputKind::GpioClocked {
                data_pin,
                clock_pin,
                ..
            } => {
                take(*data_pin, format!("data_pin of {who}"))?;
                take(*clock_pin, format!("clock_pin of {who}"))?;
            }
            OutputKind::Gpio { pins, .. } => {
                for p in pins {
                    take(*p, format!("pins of {who}"))?;
                }
            }
            _ => {}
        }
    }
    for b in buttons {
        take(b.pin, format!("button {:?}", b.command))?;
    }
    Ok(())
}

/// Everything `rowplay selftest` needs.
#[derive(Clone, Debug, PartialEq)]
pub struct SelftestSettings {
    /// The chip.
    pub chip: ChipSettings,
    /// Strip length (default 30).
    pub leds: usize,
    /// The SPI bus.
    pub spi: SpiBusSettings,
    /// The colour pipeline (gamma 2.2 unless the config says).
    pub color: ColorSettings,
}

/// Resolve `rowplay selftest`.
pub fn selftest(a: &SelftestArgs, cfg: &Config) -> Result<SelftestSettings, SettingsError> {
    let chip =
        chip_settings(cfg, a.chip, None, a.spi_hz)?.ok_or(SettingsError::SelftestNeedsChip)?;
    Ok(SelftestSettings {
        chip,
        leds: a.leds.or(cfg.led().count).unwrap_or(30) as usize,
        spi: spi_bus(cfg, board(None, cfg)?.as_ref()),
        color: color_from_config(&cfg.color, CHIP_GAMMA)?,
    })
}

/// The socket `ctl` talks to: the flag, else the config's, else `None`
/// (the default locations).
pub fn ctl_socket(a: &CtlArgs, cfg: &Config) -> Option<PathBuf> {
    a.socket.clone().or(cfg.socket.clone())
}

/// The config file: `--config`, else the default path when it exists.
pub fn config_path(flag: Option<&Path>) -> Option<PathBuf> {
    match flag {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let d = Path::new(crate::config::DEFAULT_PATH);
            d.exists().then(|| d.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(line: &str) -> PlayArgs {
        let words = std::iter::once("rowplay").chain(line.split_whitespace());
        match Cli::parse_from(words).command {
            Command::Play(a) => *a,
            _ => unreachable!(),
        }
    }

    fn cfg(text: &str) -> Config {
        crate::config::parse(text).unwrap()
    }

    fn resolve(line: &str, text: &str) -> PlaySettings {
        play(&args(line), &cfg(text), false).unwrap()
    }

    fn err(line: &str, text: &str) -> String {
        play(&args(line), &cfg(text), false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn fps_flag_over_config_over_default() {
        assert_eq!(resolve("play", "").fps, 50);
        assert_eq!(resolve("play", "fps = 40").fps, 40);
        assert_eq!(resolve("play --fps 25", "fps = 40").fps, 25);
        assert_eq!(err("play", "fps = 0"), "fps 0 outside 1..=1000");
    }

    #[test]
    fn rt_priority_flag_over_config_over_board_over_default() {
        assert_eq!(resolve("play", "").rt_priority, 50);
        assert_eq!(resolve("play --board pi-zero", "").rt_priority, 80);
        assert_eq!(resolve("play", "board = \"pi-zero\"").rt_priority, 80);
        assert_eq!(
            resolve("play", "board = \"pi-zero\"\nrt_priority = 30").rt_priority,
            30
        );
        assert_eq!(
            resolve(
                "play --rt-priority 0",
                "board = \"pi-zero\"\nrt_priority = 30"
            )
            .rt_priority,
            0
        );
        assert!(err("play --board pi-99", "").starts_with("unknown board \"pi-99\""));
    }

    #[test]
    fn core_clock_comes_from_the_board_else_the_default() {
        assert_eq!(resolve("play", "").spi.core_hz, DEFAULT_CORE_HZ);
        let pi4 = board::get("pi-4").unwrap().core_hz;
        assert_eq!(resolve("play --board pi-4", "").spi.core_hz, pi4);
        let s = resolve("play", "[spi]\nbus = 1\ncs = 2\nmode = 3").spi;
        assert_eq!((s.bus, s.cs, s.mode), (1, 2, 3));
        assert_eq!(resolve("play", "").spi.bus, 0);
    }

    #[test]
    fn require_rt_from_either() {
        assert!(!resolve("play", "").require_rt);
        assert!(resolve("play", "require_rt = true").require_rt);
        assert!(resolve("play --require-rt", "require_rt = false").require_rt);
    }

    #[test]
    fn only_the_command_line_fps_forces_one_rate() {
        assert!(!resolve("play", "fps = 40").force_fps);
        assert!(resolve("play --fps 40", "").force_fps);
    }

    #[test]
    fn frames_count_frames_and_seconds_count_time() {
        let s = resolve("play", "");
        assert_eq!((s.max_frames, s.max_ns), (None, None));
        let s = resolve("play --seconds 2", "fps = 40");
        assert_eq!((s.max_frames, s.max_ns), (None, Some(2_000_000_000)));
        let s = resolve("play --frames 7 --seconds 2", "");
        assert_eq!((s.max_frames, s.max_ns), (Some(7), None));
        assert_eq!(
            err("play --seconds=-1", ""),
            "--seconds -1 is not a duration"
        );
    }

    #[test]
    fn source_start_leds_socket_from_flag_over_config() {
        let c = "library = \"/l.rowpack\"\nstart = \"a\"\nsocket = \"/s\"\n[led]\ncount = 30";
        let s = resolve("play", c);
        assert_eq!(s.source, Some(PathBuf::from("/l.rowpack")));
        assert_eq!(s.start.as_deref(), Some("a"));
        assert_eq!(s.leds, Some(30));
        assert_eq!(s.socket, Some(PathBuf::from("/s")));
        let s = resolve("play /x.rowpack --start b --leds 10 --socket /t", c);
        assert_eq!(s.source, Some(PathBuf::from("/x.rowpack")));
        assert_eq!(s.start.as_deref(), Some("b"));
        assert_eq!(s.leds, Some(10));
        assert_eq!(s.socket, Some(PathBuf::from("/t")));
        let s = resolve("play", "");
        assert_eq!(
            (s.source, s.start, s.leds, s.socket),
            (None, None, None, None)
        );
    }

    #[test]
    fn playlist_flag_over_config_unless_a_source_is_given_else_demo_plays_all() {
        let c = "[playlist]\norder = \"once\"\nentries = [\"a\", { name = \"b\", repeat = 2, seconds = 1.5 }]";
        let s = resolve("play", c);
        assert_eq!(s.order, Order::Once);
        assert_eq!(
            s.playlist,
            PlaylistChoice::Entries(vec![
                PlaylistSpec::once("a"),
                PlaylistSpec {
                    name: "b".into(),
                    repeat: 2,
                    seconds: Some(1.5)
                }
            ])
        );
        let s = resolve("play --playlist x,y --order shuffle", c);
        assert_eq!(s.order, Order::Shuffle);
        assert_eq!(
            s.playlist,
            PlaylistChoice::Entries(vec![PlaylistSpec::once("x"), PlaylistSpec::once("y")])
        );
        // A SOURCE on the command line: the config's playlist is not its.
        let s = resolve("play /other.rowpack", c);
        assert_eq!((s.playlist, s.order), (PlaylistChoice::None, Order::Loop));
        assert_eq!(resolve("play", "").playlist, PlaylistChoice::AllArrays);
        assert_eq!(
            err("play", "[playlist]\norder = \"sideways\""),
            "config: bad playlist order \"sideways\": use loop, once or shuffle"
        );
    }

    #[test]
    fn chip_and_its_settings_from_flag_over_config() {
        assert_eq!(resolve("play", "").chip, None);
        let c = "[led]\nchip = \"ws2812\"\ncolor_order = \"RGB\"\nglobal_brightness = 9\n[spi]\nhz = 3000000";
        let s = resolve("play", c).chip.unwrap();
        assert_eq!(s.kind, ChipKind::Ws2812);
        assert_eq!(s.order.unwrap().to_string(), "RGB");
        assert_eq!((s.spi_hz, s.global_brightness), (Some(3_000_000), 9));
        let s = resolve("play --chip apa102 --color-order BGR --spi-hz 8000000", c)
            .chip
            .unwrap();
        assert_eq!(s.kind, ChipKind::Apa102);
        assert_eq!(s.order.unwrap().to_string(), "BGR");
        assert_eq!(s.spi_hz, Some(8_000_000));
        assert!(play(
            &args("play --chip apa102 --color-order XYZ"),
            &cfg(""),
            false
        )
        .is_err());
    }

    #[test]
    fn colour_flag_over_config_over_chip_default() {
        let s = resolve("play", "");
        assert_eq!((s.color.gamma, s.color.brightness), (1.0, 1.0));
        assert_eq!(s.color.max_current_ma, None);
        assert_eq!(resolve("play --chip apa102", "").color.gamma, CHIP_GAMMA);
        let c = "[color]\ngamma = 1.8\nbrightness = 0.5\nmax_current_ma = 900";
        let s = resolve("play --chip apa102", c).color;
        assert_eq!(
            (s.gamma, s.brightness, s.max_current_ma),
            (1.8, 0.5, Some(900))
        );
        let s = resolve("play --gamma 2.5 --brightness 0.25 --max-current 100", c).color;
        assert_eq!(
            (s.gamma, s.brightness, s.max_current_ma),
            (2.5, 0.25, Some(100))
        );
        assert_eq!(
            err("play --brightness 2", ""),
            "[color] brightness 2 is outside 0..1"
        );
    }

    #[test]
    fn colour_config_is_validated() {
        let bad = |c: &str| color_from_config(&cfg(c).color, 2.2).unwrap_err();
        let ok = color_from_config(
            &cfg("[color]\nbrightness = 0.5\nwhite_balance = [1.0, 0.9, 0.8]").color,
            2.2,
        )
        .unwrap();
        assert_eq!((ok.gamma, ok.white_balance), (2.2, [1.0, 0.9, 0.8, 1.0]));
        assert_eq!(bad("[color]\ngamma = 0.0"), ColorError::Gamma(0.0));
        assert_eq!(
            bad("[color]\nbrightness = 1.5"),
            ColorError::Brightness(1.5)
        );
        assert_eq!(
            bad("[color]\nwhite_balance = [1.0, 1.0]"),
            ColorError::WhiteBalanceLen(2)
        );
        assert_eq!(
            bad("[color]\nwhite_balance = [1.0, 2.0, 1.0]"),
            ColorError::WhiteBalance(2.0)
        );
        assert_eq!(
            bad("[color]\nma_per_channel = 0.0"),
            ColorError::MaPerChannel(0.0)
        );
        assert!(matches!(
            bad("[color]\nidle_ma_per_led = nan"),
            ColorError::IdleMa(_)
        ));
    }

    #[test]
    fn output_flag_over_config_over_terminal_default() {
        assert_eq!(resolve("play", "").outputs[0].kind, OutputKind::Null);
        assert_eq!(
            play(&args("play"), &cfg(""), true).unwrap().outputs[0].kind,
            OutputKind::Term
        );
        assert_eq!(
            resolve("play", "output = \"null\"").outputs[0].kind,
            OutputKind::Null
        );
        assert_eq!(
            resolve("play --output capture:/tmp/a:b", "output = \"term\"").outputs[0].kind,
            OutputKind::Capture(PathBuf::from("/tmp/a:b"))
        );
        assert_eq!(
            err("play --output wire:x", ""),
            "--output wire: needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
        );
        assert_eq!(
            err("play --output spi", ""),
            "--output spi needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
        );
        assert_eq!(
            resolve("play --output wire:x --chip ws2801", "").outputs[0].kind,
            OutputKind::Wire(PathBuf::from("x"))
        );
    }

    const TWO: &str = "[[output]]\nkind = \"spi\"\nchip = \"apa102\"\nfirst = 2\ncount = 5\nreverse = true\ngamma = 1.0\nbrightness = 0.5\nmax_current_ma = 300\n[[output]]\nkind = \"wire\"\nchip = \"ws2801\"\npath = \"/w\"\ncolor_order = \"GRB\"\n";

    #[test]
    fn output_tables_resolve_in_order_with_their_own_slice_chip_and_colour() {
        let s = resolve("play", TWO);
        assert_eq!(s.outputs.len(), 2);
        let (a, b) = (&s.outputs[0], &s.outputs[1]);
        assert_eq!(a.kind, OutputKind::Spi);
        assert_eq!((a.first, a.count, a.reverse), (2, Some(5), true));
        assert_eq!(a.chip.unwrap().kind, ChipKind::Apa102);
        assert_eq!(
            (a.color.gamma, a.color.brightness, a.color.max_current_ma),
            (1.0, 0.5, Some(300))
        );
        assert_eq!(b.kind, OutputKind::Wire(PathBuf::from("/w")));
        assert_eq!((b.first, b.count, b.reverse), (0, None, false));
        assert_eq!(b.chip.unwrap().order.unwrap().to_string(), "GRB");
        // A chip gives gamma 2.2 unless the table or [color] says.
        assert_eq!(b.color.gamma, CHIP_GAMMA);
        // Flags beat the tables.
        let s = resolve("play --brightness 0.25", TWO);
        assert!(s.outputs.iter().all(|o| o.color.brightness == 0.25));
    }

    #[test]
    fn command_line_outputs_replace_the_configs_and_show_the_whole_strip() {
        let s = resolve(
            "play --output wire:/a --output null --chip sk9822 --color-order RGB",
            TWO,
        );
        assert_eq!(s.outputs.len(), 2);
        assert_eq!(s.outputs[0].kind, OutputKind::Wire(PathBuf::from("/a")));
        assert_eq!(s.outputs[1].kind, OutputKind::Null);
        for o in &s.outputs {
            assert_eq!((o.first, o.count, o.reverse), (0, None, false));
            assert_eq!(o.chip.unwrap().kind, ChipKind::Sk9822);
            assert_eq!(o.chip.unwrap().order.unwrap().to_string(), "RGB");
        }
        // The single form is one output.
        let s = resolve("play", "output = \"spi\"\n[led]\nchip = \"ws2812\"");
        assert_eq!(s.outputs.len(), 1);
        assert_eq!(s.outputs[0].chip.unwrap().kind, ChipKind::Ws2812);
    }

    #[test]
    fn tables_and_the_single_form_together_are_refused() {
        for extra in ["[led]\ncount = 3", "[spi]\nbus = 0"] {
            assert_eq!(
                err("play", &format!("{TWO}{extra}")),
                SettingsError::BothOutputForms.to_string()
            );
        }
        assert!(err("play", &format!("{TWO}[led]\ncount = 3")).contains("use one of them"));
    }

    #[test]
    fn a_key_the_kind_does_not_use_is_refused_naming_key_and_kind() {
        let e = |t: &str| err("play", &format!("[[output]]\n{t}"));
        let cases = [
            (
                "kind = \"gpio\"\npins = [5]\nchip = \"apa102\"",
                "gpio",
                "chip",
            ),
            (
                "kind = \"spi\"\nchip = \"apa102\"\npins = [5]",
                "spi",
                "pins",
            ),
            (
                "kind = \"spi\"\nchip = \"apa102\"\ndata_pin = 5",
                "spi",
                "data_pin",
            ),
            (
                "kind = \"spi\"\nchip = \"apa102\"\npath = \"/w\"",
                "spi",
                "path",
            ),
            (
                "kind = \"gpio-clocked\"\nchip = \"apa102\"\ndata_pin = 5\nclock_pin = 6\nbus = 1",
                "gpio-clocked",
                "bus",
            ),
            (
                "kind = \"wire\"\nchip = \"apa102\"\npath = \"/w\"\nhz = 8000000",
                "wire",
                "hz",
            ),
            (
                "kind = \"capture\"\npath = \"/c\"\nchip = \"apa102\"",
                "capture",
                "chip",
            ),
            ("kind = \"term\"\nthreshold = 9", "term", "threshold"),
            ("kind = \"null\"\ncs = 1", "null", "cs"),
            ("kind = \"gpio\"\npins = [5]\nhz = 100", "gpio", "hz"),
        ];
        for (table, kind, key) in cases {
            let msg = e(table);
            assert_eq!(
                msg,
                SettingsError::KeyNotForKind { n: 1, kind, key }.to_string(),
                "{table}"
            );
            assert!(!msg.contains('\n'));
            assert!(msg.contains(&format!("{key} does not apply to a {kind} output")));
        }
        assert_eq!(
            e("kind = \"term\"\npwm_hz = 5"),
            "[[output]] 1 (kind = \"term\"): pwm_hz does not apply to a term output (it is for gpio): remove it"
        );
        // The table number is the table's place in the list.
        let two = "[[output]]\nkind = \"null\"\n[[output]]\nkind = \"term\"\nbus = 0";
        assert!(err("play", two).starts_with("[[output]] 2 (kind = \"term\"): bus"));
        // Keys every kind uses are accepted on every kind.
        let s = resolve(
            "play",
            "[[output]]\nkind = \"term\"\nfirst = 1\ncount = 2\nreverse = true\ngamma = 1.5\nbrightness = 0.5\nmax_current_ma = 100",
        );
        assert_eq!(s.outputs[0].kind, OutputKind::Term);
    }

    #[test]
    fn each_kind_needs_its_keys() {
        let e = |t: &str| err("play", &format!("[[output]]\n{t}"));
        assert_eq!(e("count = 3"), SettingsError::TableNeedsKind(1).to_string());
        assert_eq!(
            e("kind = \"wire\"\nchip = \"apa102\""),
            "[[output]] 1 (kind = \"wire\") needs path"
        );
        assert_eq!(
            e("kind = \"wire\"\npath = \"/w\""),
            "[[output]] 1 (kind = \"wire\") needs chip"
        );
        assert_eq!(
            e("kind = \"spi\""),
            "[[output]] 1 (kind = \"spi\") needs chip"
        );
        assert_eq!(
            e("kind = \"capture\""),
            "[[output]] 1 (kind = \"capture\") needs path"
        );
        assert_eq!(
            e("kind = \"gpio-clocked\"\nchip = \"apa102\"\ndata_pin = 5"),
            "[[output]] 1 (kind = \"gpio-clocked\") needs clock_pin"
        );
        assert_eq!(
            e("kind = \"gpio-clocked\"\nchip = \"ws2812\"\ndata_pin = 5\nclock_pin = 6"),
            SettingsError::NotClocked(1, ChipKind::Ws2812).to_string()
        );
        assert_eq!(
            e("kind = \"gpio-clocked\"\nchip = \"apa102\"\ndata_pin = 5\nclock_pin = 6\nhz = 9000000"),
            SettingsError::BitbangHz(1, 9_000_000).to_string()
        );
        assert_eq!(
            e("kind = \"gpio\""),
            "[[output]] 1 (kind = \"gpio\") needs pins"
        );
        assert_eq!(
            e("kind = \"gpio\"\npins = []"),
            SettingsError::GpioPins(1, 0).to_string()
        );
        assert_eq!(
            e("kind = \"gpio\"\npins = [5]\npwm_hz = 0"),
            SettingsError::PwmHz(1, 0).to_string()
        );
        assert_eq!(
            e("kind = \"wire\"\nchip = \"apa102\"\npath = \"/w\"\nrecord = \"/r\""),
            SettingsError::RecordOnHost(1).to_string()
        );
        let s = resolve("play", "[[output]]\nkind = \"gpio\"\npins = [5, 6, 13]");
        assert_eq!(
            s.outputs[0].kind,
            OutputKind::Gpio {
                pins: vec![5, 6, 13],
                threshold: DEFAULT_THRESHOLD,
                pwm_hz: None
            }
        );
        let s = resolve(
            "play",
            "[[output]]\nkind = \"gpio-clocked\"\nchip = \"ws2801\"\ndata_pin = 5\nclock_pin = 6",
        );
        assert_eq!(
            s.outputs[0].kind,
            OutputKind::GpioClocked {
                data_pin: 5,
                clock_pin: 6,
                hz: DEFAULT_BITBANG_HZ
            }
        );
    }

    #[test]
    fn pins_are_checked_against_the_board_and_each_other() {
        let spi = |bus: u8, cs: u8, chip: &str| {
            format!("[[output]]\nkind = \"spi\"\nchip = \"{chip}\"\nbus = {bus}\ncs = {cs}\n")
        };
        let clocked = |d: u8, c: u8| {
            format!("[[output]]\nkind = \"gpio-clocked\"\nchip = \"apa102\"\ndata_pin = {d}\nclock_pin = {c}\n")
        };
        // Two clocked strips on one bus (through a buffer), and pins apart: fine.
        resolve(
            "play",
            &format!(
                "{}{}{}",
                spi(0, 0, "apa102"),
                spi(0, 1, "sk9822"),
                clocked(5, 6)
            ),
        );
        assert_eq!(
            err("play", &format!("{}{}", spi(0, 0, "apa102"), clocked(10, 6))),
            "GPIO10 is wanted by data_pin of output 2 (gpio-clocked) but SPI0 MOSI holds it: pick another pin"
        );
        assert_eq!(
            err("play", &format!("{}{}", clocked(5, 6), clocked(13, 5))),
            "GPIO5 is wanted by clock_pin of output 2 (gpio-clocked) but data_pin of output 1 (gpio-clocked) holds it: pick another pin"
        );
        assert_eq!(
            err("play", &format!("{}{}", spi(0, 0, "apa102"), spi(0, 0, "apa102"))),
            "GPIO8 is wanted by SPI0 CE0 of output 2 (spi) but SPI0 CE0 of output 1 (spi) holds it: pick another pin"
        );
        assert_eq!(
            err("play", &clocked(5, 40)),
            "GPIO40 (clock_pin of output 1 (gpio-clocked)) is not on the header: use GPIO2..GPIO27"
        );
        assert_eq!(
            err(
                "play",
                &format!("{}{}", spi(0, 0, "ws2812"), spi(0, 1, "apa102"))
            ),
            SettingsError::Ws2812SharesBus { bus: 0 }.to_string()
        );
        // WS2812 alone on its bus is fine.
        resolve(
            "play",
            &format!("{}{}", spi(0, 0, "ws2812"), spi(1, 0, "apa102")),
        );
        assert_eq!(
            err("play --board pi-zero", &spi(3, 0, "apa102")),
            "board pi-zero has no SPI bus 3"
        );
        assert_eq!(
            err("play", &spi(0, 2, "apa102")),
            "SPI0 has no chip select CE2"
        );
        assert_eq!(
            err("play", &format!("{}[[button]]\npin = 6\ncommand = \"next\"", clocked(5, 6))),
            "GPIO6 is wanted by button \"next\" but clock_pin of output 1 (gpio-clocked) holds it: pick another pin"
        );
        assert!(err(
            "play --chip apa102 --output spi",
            "[[button]]\npin = 11\ncommand = \"next\""
        )
        .contains("SPI0 SCLK holds it"));
    }

    #[test]
    fn output_specs() {
        assert_eq!(parse_output("term").unwrap(), OutputKind::Term);
        assert_eq!(parse_output("null").unwrap(), OutputKind::Null);
        assert_eq!(parse_output("spi").unwrap(), OutputKind::Spi);
        assert_eq!(
            parse_output("wire:x").unwrap(),
            OutputKind::Wire(PathBuf::from("x"))
        );
        assert!(parse_output("capture").is_err());
        assert!(parse_output("capture:").is_err());
        assert!(parse_output("hdmi")
            .unwrap_err()
            .to_string()
            .contains("unknown output"));
    }

    #[test]
    fn flags_that_only_the_command_line_has() {
        let s = resolve(
            "play --heads-budget 1000 --stats-json /s.json --wake-log /w.csv --clock step",
            "",
        );
        assert_eq!(s.heads_budget, Some(1000));
        assert_eq!(s.stats_json, Some(PathBuf::from("/s.json")));
        assert_eq!(s.wake_log, Some(PathBuf::from("/w.csv")));
        assert_eq!(resolve("play", "").wake_log, None);
        assert_eq!(s.clock, ClockArg::Step);
        assert_eq!(resolve("play", "").clock, ClockArg::Monotonic);
        let s = resolve("play", "[[button]]\npin = 17\ncommand = \"next\"");
        assert_eq!(s.buttons.len(), 1);
    }

    #[test]
    fn the_example_config_resolves_whole() {
        let c = cfg(include_str!("../../boards/config.example.toml"));
        assert_eq!(c.led().count, Some(300));
        assert_eq!(c.buttons.len(), 2);
        for b in &c.buttons {
            crate::buttons::validate(b).unwrap();
        }
        let s = play(&args("play"), &c, false).unwrap();
        assert_eq!(s.outputs[0].kind, OutputKind::Spi);
        assert_eq!(s.rt_priority, 80);
        assert_eq!(s.socket, None, "the example uses the default place");
        assert!(s.chip.is_some());
        match s.playlist {
            PlaylistChoice::Entries(e) => assert_eq!(e.len(), 3),
            p => panic!("{p:?}"),
        }
    }

    #[test]
    fn the_example_network_keys_uncommented_resolve() {
        let text = include_str!("../../boards/config.example.toml");
        let (_, net) = text.split_once("\n[network]\n").unwrap();
        let net = net.split("\n[").next().unwrap();
        let keys: String = net
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(keys.lines().count(), 13, "{keys}");
        let n = resolve("play", &format!("[network]\n{keys}"))
            .network
            .unwrap();
        assert_eq!(n.listen.len(), 3);
        assert_eq!(n.live_timeout_ns, 2_500_000_000);
    }

    #[test]
    fn http_is_off_unless_asked_and_flags_beat_the_config() {
        assert_eq!(resolve("play", "").http, None);
        let c = "[http]\nlisten = \"0.0.0.0:80\"\ntoken_file = \"/etc/t\"\nwled_open = true\nwled_presets = [\"a\"]";
        let h = resolve("play", c).http.unwrap();
        assert_eq!(h.listen, "0.0.0.0:80".parse().unwrap());
        assert_eq!(
            (h.token, h.token_file),
            (None, Some(PathBuf::from("/etc/t")))
        );
        assert!(h.wled_open && !h.token_read);
        assert_eq!(h.wled_presets, ["a"]);
        let h = resolve(
            "play --http 127.0.0.1:0 --http-token s3 --http-token-read",
            c,
        )
        .http
        .unwrap();
        assert_eq!(h.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!((h.token.as_deref(), h.token_file), (Some("s3"), None));
        assert!(h.token_read);
        assert!(err("play --http 8080", "").starts_with("--http \"8080\" is not ADDR:PORT"));
    }

    #[test]
    fn network_is_off_unless_a_protocol_is_named_and_flags_beat_the_config() {
        use crate::net::settings::{AfterLive, LiveOutput, LiveRank};
        use crate::net::Protocol;
        assert_eq!(resolve("play", "").network, None);
        assert_eq!(resolve("play", "[network]\nlisten = []").network, None);
        let c = r#"[network]
listen = ["ddp", "e131:5569"]
listen_addr = "10.0.0.2"
allow = ["10.0.0.0/8"]
universe = 3
artnet_universe = 16
channels_per_universe = 512
ddp_offset = 3
live_output = "tick"
live_min_interval = "8ms"
live_timeout = 4
after_live = "dark"
live_rank = "under"
live_gamma = 2.2"#;
        let n = resolve("play", c).network.unwrap();
        let ports: Vec<_> = n.listen.iter().map(|l| (l.protocol, l.port)).collect();
        assert_eq!(ports, vec![(Protocol::Ddp, 4048), (Protocol::E131, 5569)]);
        assert_eq!(n.listen_addr, std::net::Ipv4Addr::new(10, 0, 0, 2));
        assert!(n.allowed([10, 1, 2, 3].into()) && !n.allowed([192, 168, 0, 1].into()));
        assert_eq!((n.universe, n.artnet_universe), (3, 16));
        assert_eq!((n.channels_per_universe, n.ddp_offset), (512, 3));
        assert_eq!(n.live_output, LiveOutput::Tick);
        assert_eq!(n.live_min_interval_ns, 8_000_000);
        assert_eq!(n.live_timeout_ns, 4_000_000_000);
        assert_eq!(
            (n.after_live, n.live_rank),
            (AfterLive::Dark, LiveRank::Under)
        );
        assert_eq!(n.live_gamma, 2.2);
        // Each flag beats its key; the rest stays the config's.
        let n = resolve(
            "play --listen artnet --universe 7 --live-timeout 0.5s --after-live restart \
             --live-output push --live-rank over --live-gamma 1.0 --allow 192.168.0.0/16",
            c,
        )
        .network
        .unwrap();
        assert_eq!(n.listen.len(), 1);
        assert_eq!(n.listen[0].protocol, Protocol::ArtNet);
        assert_eq!((n.universe, n.artnet_universe), (7, 16));
        assert_eq!(n.live_timeout_ns, 500_000_000);
        assert_eq!(n.live_min_interval_ns, 8_000_000);
        assert_eq!(
            (n.after_live, n.live_rank),
            (AfterLive::Restart, LiveRank::Over)
        );
        assert_eq!((n.live_output, n.live_gamma), (LiveOutput::Push, 1.0));
        assert!(n.allowed([192, 168, 4, 4].into()) && !n.allowed([10, 1, 2, 3].into()));
        // The defaults of the issue.
        let n = resolve("play --listen ddp,e131,artnet", "")
            .network
            .unwrap();
        assert_eq!(n.listen.len(), 3);
        assert_eq!(n.listen_addr, std::net::Ipv4Addr::UNSPECIFIED);
        assert!(n.allow.is_empty());
        assert_eq!(
            (n.universe, n.artnet_universe, n.channels_per_universe),
            (1, 0, 510)
        );
        assert_eq!(
            (n.live_min_interval_ns, n.live_timeout_ns),
            (5_000_000, 2_500_000_000)
        );
        assert_eq!(n.live_output, LiveOutput::Push);
        assert_eq!(
            (n.after_live, n.live_rank, n.live_gamma),
            (AfterLive::Resume, LiveRank::Over, 1.0)
        );
    }

    #[test]
    fn bad_network_settings_say_which_option() {
        for (line, cfg, starts) in [
            ("play --listen udp", "", "--listen: \"udp\""),
            ("play --listen ddp,ddp", "", "--listen: ddp is named twice"),
            (
                "play --listen ddp --listen-addr pi.local",
                "",
                "--listen-addr:",
            ),
            ("play --listen ddp --allow 10.0.0.1/8", "", "--allow:"),
            ("play --listen ddp --universe 0", "", "--universe 0 outside"),
            (
                "play --listen ddp --artnet-universe 40000",
                "",
                "--artnet-universe 40000",
            ),
            (
                "play --listen ddp --channels-per-universe 513",
                "",
                "--channels-per-universe 513",
            ),
            (
                "play --listen ddp --live-timeout soon",
                "",
                "--live-timeout:",
            ),
            (
                "play --listen ddp --live-timeout 0",
                "",
                "--live-timeout: must be",
            ),
            (
                "play --listen ddp",
                "[network]\nlive_min_interval = \"5 min\"",
                "--live-min-interval:",
            ),
            (
                "play --listen ddp --after-live later",
                "",
                "--after-live: \"later\"",
            ),
            (
                "play --listen ddp --live-rank top",
                "",
                "--live-rank: \"top\"",
            ),
            (
                "play --listen ddp --live-output now",
                "",
                "--live-output: \"now\"",
            ),
            (
                "play --listen ddp --live-gamma 9",
                "",
                "--live-gamma 9 outside",
            ),
        ] {
            let e = err(line, cfg);
            assert!(e.starts_with(starts), "{line}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        assert!(crate::config::parse("[network]\nlisten_port = 1").is_err());
    }

    #[test]
    fn multisync_is_off_unless_a_mode_is_set_and_flags_beat_the_config() {
        use crate::sync::{AfterSync, Mode};
        assert_eq!(resolve("play", "").multisync, None);
        let c = "[multisync]\nmode = \"follow\"\nafter_sync = \"resume\"\noffset = 12\nlisten = \"10.0.0.5\"\n[multisync.names]\n\"Show 1.fseq\" = \"shows/one\"";
        let m = resolve("play", c).multisync.unwrap();
        assert_eq!(
            (m.mode, m.after_sync, m.offset_ms),
            (Mode::Follow, AfterSync::Resume, 12)
        );
        assert_eq!(m.listen, "10.0.0.5:32320".parse().unwrap());
        assert_eq!(
            m.names,
            vec![("Show 1.fseq".to_string(), "shows/one".to_string())]
        );
        let m = resolve(
            "play --multisync lead --multisync-to 10.0.0.7,10.0.0.8:4000 --multisync-offset -5 --after-sync dark",
            c,
        )
        .multisync
        .unwrap();
        assert_eq!(
            (m.mode, m.after_sync, m.offset_ms),
            (Mode::Lead, AfterSync::Dark, -5)
        );
        assert_eq!(
            m.to,
            vec![
                "10.0.0.7:32320".parse().unwrap(),
                "10.0.0.8:4000".parse().unwrap()
            ]
        );
        assert!(err("play --multisync both", "").contains("use follow or lead"));
        assert!(
            err("play --multisync follow --multisync-offset 10000", "").contains("-9999..=9999")
        );
        assert!(err("play --multisync lead --multisync-to pi.local", "").contains("\"pi.local\""));
        assert!(err("play --multisync follow --multisync-listen x", "")
            .starts_with("--multisync-listen"));
    }

    #[test]
    fn ctl_socket_flag_over_config() {
        let ctl = |line: &str| match Cli::parse_from(line.split_whitespace()).command {
            Command::Ctl(a) => a,
            _ => unreachable!(),
        };
        let c = cfg("socket = \"/c.sock\"");
        assert_eq!(
            ctl_socket(&ctl("rowplay ctl status"), &c),
            Some(PathBuf::from("/c.sock"))
        );
        assert_eq!(
            ctl_socket(&ctl("rowplay ctl --socket /f.sock status"), &c),
            Some(PathBuf::from("/f.sock"))
        );
        assert_eq!(ctl_socket(&ctl("rowplay ctl status"), &cfg("")), None);
    }
}
