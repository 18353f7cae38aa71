//! Settings resolved once: (command line, config file, board profile,
//! defaults) in, plain values out. Every precedence rule lives here and is
//! tested here: a flag beats the config, the config beats the board, the
//! board beats the built-in default. Nothing here starts a thread or opens a
//! device; [`super::play`] takes the result and wires the parts together.

use crate::board::{self, Board};
use crate::cli::{ClockArg, CtlArgs, PlayArgs, SelftestArgs};
use crate::color::{ColorError, ColorSettings};
use crate::config::{ButtonConfig, ColorConfig, Config, PlaylistEntry};
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
            SettingsError::HttpListen(a) => write!(
                f,
                "--http {a:?} is not ADDR:PORT (e.g. 0.0.0.0:8080, or 127.0.0.1:0 for any free port)"
            ),
            SettingsError::SelftestNeedsChip => write!(
                f,
                "selftest needs a chip: add --chip (e.g. --chip apa102) or [led] chip in the config"
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
    let Some(kind) = chip.or(cfg.led.chip) else {
        return Ok(None);
    };
    let mut s = ChipSettings::new(kind);
    if let Some(o) = order.or(cfg.led.color_order.as_deref()) {
        s.order = Some(
            o.parse::<ColorOrder>()
                .map_err(|e| SettingsError::ColorOrder(e.to_string()))?,
        );
    }
    s.spi_hz = spi_hz.or(cfg.spi.hz);
    if let Some(g) = cfg.led.global_brightness {
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
        bus: cfg.spi.bus.unwrap_or(0),
        cs: cfg.spi.cs.unwrap_or(0),
        mode: cfg.spi.mode.unwrap_or(0),
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
    /// Where frames go.
    pub output: OutputKind,
    /// The SPI bus.
    pub spi: SpiBusSettings,
    /// The control socket (`None` = a default location).
    pub socket: Option<PathBuf>,
    /// Statistics file written at exit.
    pub stats_json: Option<PathBuf>,
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
    let output = match a.output.as_deref().or(cfg.output.as_deref()) {
        Some(s) => parse_output(s)?,
        None if stdout_is_terminal => OutputKind::Term,
        None => OutputKind::Null,
    };
    match (&output, &chip) {
        (OutputKind::Wire(_), None) => return Err(SettingsError::OutputNeedsChip("wire")),
        (OutputKind::Spi, None) => return Err(SettingsError::OutputNeedsChip("spi")),
        _ => {}
    }
    Ok(PlaySettings {
        source,
        fps,
        force_fps: a.fps.is_some(),
        max_frames: a.frames,
        max_ns,
        start: a.start.clone().or(cfg.start.clone()),
        playlist,
        order,
        leds: a.leds.or(cfg.led.count),
        chip,
        color,
        output,
        spi: spi_bus(cfg, board.as_ref()),
        socket: a.socket.clone().or(cfg.socket.clone()),
        stats_json: a.stats_json.clone(),
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
    })
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
        leds: a.leds.or(cfg.led.count).unwrap_or(30) as usize,
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
        assert_eq!(resolve("play", "").output, OutputKind::Null);
        assert_eq!(
            play(&args("play"), &cfg(""), true).unwrap().output,
            OutputKind::Term
        );
        assert_eq!(
            resolve("play", "output = \"null\"").output,
            OutputKind::Null
        );
        assert_eq!(
            resolve("play --output capture:/tmp/a:b", "output = \"term\"").output,
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
            resolve("play --output wire:x --chip ws2801", "").output,
            OutputKind::Wire(PathBuf::from("x"))
        );
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
            "play --heads-budget 1000 --stats-json /s.json --clock step",
            "",
        );
        assert_eq!(s.heads_budget, Some(1000));
        assert_eq!(s.stats_json, Some(PathBuf::from("/s.json")));
        assert_eq!(s.clock, ClockArg::Step);
        assert_eq!(resolve("play", "").clock, ClockArg::Monotonic);
        let s = resolve("play", "[[button]]\npin = 17\ncommand = \"next\"");
        assert_eq!(s.buttons.len(), 1);
    }

    #[test]
    fn the_example_config_resolves_whole() {
        let c = cfg(include_str!("../../boards/config.example.toml"));
        assert_eq!(c.led.count, Some(300));
        assert_eq!(c.buttons.len(), 2);
        for b in &c.buttons {
            crate::buttons::validate(b).unwrap();
        }
        let s = play(&args("play"), &c, false).unwrap();
        assert_eq!(s.output, OutputKind::Spi);
        assert_eq!(s.rt_priority, 80);
        assert_eq!(s.socket, None, "the example uses the default place");
        assert!(s.chip.is_some());
        match s.playlist {
            PlaylistChoice::Entries(e) => assert_eq!(e.len(), 3),
            p => panic!("{p:?}"),
        }
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
