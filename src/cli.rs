//! Command-line definitions (clap). Raw arguments only: settings are
//! resolved against the config file in [`crate::app`].

use crate::output::chip::ChipKind;
use crate::playlist::Order;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Play pre-rendered pixel arrays row by row onto LED strips at an exact
/// frame rate, from a library of any size.
#[derive(Parser, Debug)]
#[command(name = "rowplay", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pack .npy/.npz/.png/.fseq files and folders into one .rowpack.
    Pack(PackArgs),
    /// List the arrays in a pack.
    Inspect(InspectArgs),
    /// Check every CRC in a pack.
    Verify(VerifyArgs),
    /// Write one array back as a standard .npy, or as a .fseq.
    Export(ExportArgs),
    /// Draw one array as a PNG (rows down, LEDs across).
    Render(RenderArgs),
    /// Play a pack (or folder/files, packed on the fly; or the built-in demo).
    Play(Box<PlayArgs>),
    /// Send a command to a running player.
    Ctl(CtlArgs),
    /// Hardware checks on the Pi.
    Selftest(SelftestArgs),
    /// Measure library open time and first-row latency of a pack.
    Bench(BenchArgs),
}

/// `--float-max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloatMaxArg {
    /// Floats are 0..1.
    #[value(name = "1")]
    One,
    /// Floats are 0..255.
    #[value(name = "255")]
    Full,
}

/// `rowplay pack`.
#[derive(Args, Debug)]
pub struct PackArgs {
    /// Files (.npy, .npz, .png, .fseq) or folders (walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// The pack to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.rowpack")]
    pub output: PathBuf,
    /// Rows of every array kept in memory for instant start.
    #[arg(long, default_value_t = crate::pack::format::DEFAULT_HEAD_ROWS, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub head_rows: u32,
    /// Store arrays transposed, to play column by column.
    #[arg(long)]
    pub by_column: bool,
    /// What float arrays' full scale is.
    #[arg(long, value_enum, default_value = "1")]
    pub float_max: FloatMaxArg,
    /// Pack the good inputs and list the bad ones instead of failing.
    #[arg(long)]
    pub skip_bad: bool,
    /// .fseq: take channels START..START+COUNT-1 (START counts from 1, as
    /// xLights shows it; with sparse ranges, the show's channel number).
    #[arg(long, value_name = "START:COUNT", value_parser = parse_channels)]
    pub channels: Option<(u32, u32)>,
    /// .fseq: 4 channels per LED (RGBW) instead of 3.
    #[arg(long)]
    pub rgbw: bool,
    /// Frame rate recorded for .npy, .npz and .png arrays (a .fseq carries
    /// its own step time). Default: none, so the player's rate applies.
    #[arg(long, value_name = "N", value_parser = parse_fps)]
    pub fps: Option<f64>,
}

/// `--channels START:COUNT`, both at least 1.
fn parse_channels(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not START:COUNT"))?;
    let start: u32 = a
        .parse()
        .map_err(|_| format!("start {a:?} is not a number"))?;
    let count: u32 = b
        .parse()
        .map_err(|_| format!("count {b:?} is not a number"))?;
    if start == 0 || count == 0 {
        return Err("START and COUNT count from 1".into());
    }
    Ok((start, count))
}

/// `--fps N` for `pack`: 1..=1000, fractions allowed.
fn parse_fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (1.0..=1000.0).contains(&x) => Ok(x),
        _ => Err(format!("{s:?} is not a frame rate in 1..=1000")),
    }
}

/// `rowplay inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The pack.
    pub lib: PathBuf,
    /// One JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `rowplay verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The pack.
    pub lib: PathBuf,
}

/// `rowplay export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The pack.
    pub lib: PathBuf,
    /// Array name.
    pub name: String,
    /// The file to write: a .npy, or with a .fseq extension an
    /// uncompressed v2 .fseq whose step time is the array's rate rounded
    /// to whole milliseconds (20 ms, 50 fps, for an array without one).
    #[arg(short = 'o', long = "output", value_name = "OUT.npy|OUT.fseq")]
    pub output: PathBuf,
}

/// `rowplay render`.
#[derive(Args, Debug)]
pub struct RenderArgs {
    /// The pack.
    pub lib: PathBuf,
    /// Array name.
    pub name: String,
    /// The .png to write.
    #[arg(short = 'o', long = "output", value_name = "OUT.png")]
    pub output: PathBuf,
}

/// Which clock the player runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    /// CLOCK_MONOTONIC with absolute deadlines.
    Monotonic,
    /// Frames advance only on `step N` socket commands (for tests).
    Step,
}

/// `rowplay play`.
#[derive(Args, Debug)]
pub struct PlayArgs {
    /// A .rowpack, or a folder / .npy / .npz / .png packed on the fly.
    /// Default: the config's `library`, else the built-in demo.
    pub source: Option<PathBuf>,
    /// Frames per second.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub fps: Option<u32>,
    /// Stop after this many frames.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Array to start with.
    #[arg(long, value_name = "NAME")]
    pub start: Option<String>,
    /// Arrays to play in order.
    #[arg(long, value_name = "NAME[,NAME...]", value_delimiter = ',')]
    pub playlist: Option<Vec<String>>,
    /// What happens at the end of the playlist.
    #[arg(long, value_enum)]
    pub order: Option<Order>,
    /// Strip length (default: config, else the widest array).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub leds: Option<u32>,
    /// Brightness 0..1.
    #[arg(long)]
    pub brightness: Option<f32>,
    /// Gamma (1.0 = off; 2.2 by default when a chip is configured).
    #[arg(long)]
    pub gamma: Option<f32>,
    /// term, null, capture:PATH, wire:PATH or spi; may be given more than
    /// once (each shows the whole strip; they replace the config's outputs).
    #[arg(long, value_name = "KIND[:ARG]")]
    pub output: Vec<String>,
    /// Control socket path.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Write statistics as JSON here at exit.
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// SCHED_FIFO priority of the frame loop (0 = do not ask).
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=99))]
    pub rt_priority: Option<u32>,
    /// Fail instead of warning when SCHED_FIFO or mlock is refused.
    #[arg(long)]
    pub require_rt: bool,
    /// TOML config (default /etc/rowplay/config.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Board profile (see boards/), e.g. pi-zero.
    #[arg(long, value_name = "NAME")]
    pub board: Option<String>,
    /// LED chip.
    #[arg(long, value_enum)]
    pub chip: Option<ChipKind>,
    /// Order the colour bytes go on the wire, e.g. GRB.
    #[arg(long, value_name = "ORDER")]
    pub color_order: Option<String>,
    /// SPI clock in Hz.
    #[arg(long, value_name = "HZ")]
    pub spi_hz: Option<u32>,
    /// Supply budget in mA for the current limiter.
    #[arg(long, value_name = "MA")]
    pub max_current: Option<u32>,
    /// Most bytes the heads may lock (default: a quarter of RAM).
    #[arg(long, value_name = "BYTES")]
    pub heads_budget: Option<u64>,
    /// Serve the web page and HTTP API here, e.g. 0.0.0.0:8080 (off unless
    /// given).
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<String>,
    /// Requests that change something need `Authorization: Bearer TOKEN`.
    #[arg(long, value_name = "TOKEN")]
    pub http_token: Option<String>,
    /// Read the token from this file (mode 0600), so it shows neither in
    /// `ps` nor in the config.
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Read-only requests need the token too.
    #[arg(long)]
    pub http_token_read: bool,
    /// The WLED JSON endpoints need no token (for clients that cannot send
    /// one, such as Home Assistant's).
    #[arg(long)]
    pub wled_open: bool,
    /// Receive live frames over the network: any of ddp, e131, artnet
    /// (`e131:5569` for another port). Nothing listens unless asked.
    #[arg(long, value_name = "PROTO[:PORT],...", value_delimiter = ',')]
    pub listen: Vec<String>,
    /// Address to listen on (default: all interfaces); E1.31 multicast is
    /// joined on this address's interface.
    #[arg(long, value_name = "ADDR")]
    pub listen_addr: Option<String>,
    /// Senders allowed (default: any); packets from elsewhere are counted
    /// and dropped.
    #[arg(long, value_name = "CIDR[,CIDR...]", value_delimiter = ',')]
    pub allow: Vec<String>,
    /// First E1.31 universe (default 1).
    #[arg(long, value_name = "N")]
    pub universe: Option<u16>,
    /// First Art-Net Port-Address (default 0).
    #[arg(long, value_name = "N")]
    pub artnet_universe: Option<u16>,
    /// Channels each universe carries (default 510; 512 accepted).
    #[arg(long, value_name = "N")]
    pub channels_per_universe: Option<u16>,
    /// Subtract this many bytes from DDP offsets (default 0).
    #[arg(long, value_name = "N")]
    pub ddp_offset: Option<u32>,
    /// push: a complete live frame goes out at once; tick: at the next tick.
    #[arg(long, value_name = "push|tick")]
    pub live_output: Option<String>,
    /// Without sync packets, at most one frame per source this often
    /// (default 5ms).
    #[arg(long, value_name = "DURATION")]
    pub live_min_interval: Option<String>,
    /// A source is lost this long after its last packet (default 2.5 s).
    #[arg(long, value_name = "S")]
    pub live_timeout: Option<String>,
    /// When live input ends: resume (the array and row it was on), restart
    /// (that array from row 0) or dark.
    #[arg(long, value_name = "resume|restart|dark")]
    pub after_live: Option<String>,
    /// Live input over playback, or under it (shown only while playback is
    /// stopped).
    #[arg(long, value_name = "over|under")]
    pub live_rank: Option<String>,
    /// Gamma for live data (default 1.0: it arrives gamma-corrected).
    #[arg(long, value_name = "G")]
    pub live_gamma: Option<f32>,
    /// Write every tick's deadline, wake-up and hand-out time (ns) here as
    /// CSV at exit (tests and benchmarks).
    #[arg(long, hide = true, value_name = "PATH")]
    pub wake_log: Option<PathBuf>,
    /// Keep several Pis in step over FPP MultiSync (UDP 32320): follow a
    /// master (FPP, xSchedule, another rowplay) or lead followers.
    #[arg(long, value_name = "follow|lead")]
    pub multisync: Option<String>,
    /// Follower, on the master's STOP: go dark, or resume the local
    /// playlist (default dark).
    #[arg(long, value_name = "dark|resume")]
    pub after_sync: Option<String>,
    /// Follower: show each frame this many ms later (negative: earlier),
    /// for a node whose strip is further away or slower.
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    pub multisync_offset: Option<i64>,
    /// Leader: send to these addresses (unicast: best over WiFi) instead of
    /// the multicast group 239.70.80.80.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    pub multisync_to: Option<String>,
    /// Follower: listen here (default 0.0.0.0:32320, with the multicast
    /// group joined); leader: send from this address.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub multisync_listen: Option<String>,
    /// Let the frame loop's clock run this many ppm fast (tests of sync
    /// against a drifting crystal; records stay on CLOCK_MONOTONIC).
    #[arg(long, hide = true, value_name = "PPM", allow_hyphen_values = true)]
    pub clock_drift_ppm: Option<i64>,
    /// Clock for the frame loop (`step` is for tests).
    #[arg(long, value_enum, default_value = "monotonic", hide = true)]
    pub clock: ClockArg,
    /// Replace the spidev devices by recorders of the exact wire bytes
    /// (tests: SPI outputs run without SPI hardware).
    #[arg(long, hide = true, value_name = "DIR")]
    pub spi_stand_in: Option<PathBuf>,
    /// Replace the GPIO chip by recorders of every level change of every
    /// pin (tests: gpio and gpio-clocked outputs run without a Pi).
    #[arg(long, hide = true, value_name = "DIR")]
    pub gpio_stand_in: Option<PathBuf>,
}

/// `rowplay ctl`.
#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Control socket path (default: the config's `socket`, else the
    /// player's default locations).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// TOML config to take the socket from (default /etc/rowplay/config.toml
    /// when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print `status` as JSON.
    #[arg(long)]
    pub json: bool,
    /// With play, next or prev: reply only once row 0 of the target is on
    /// the strip.
    #[arg(long)]
    pub wait: bool,
    /// The command, e.g. `play wave_17`, `next`, `status`.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `rowplay selftest`.
#[derive(Args, Debug)]
pub struct SelftestArgs {
    /// `spi` (MOSI-MISO loopback) or `leds` (a slow colour walk).
    #[arg(value_enum)]
    pub what: SelftestKind,
    /// TOML config (default /etc/rowplay/config.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// LED chip.
    #[arg(long, value_enum)]
    pub chip: Option<ChipKind>,
    /// Strip length.
    #[arg(long)]
    pub leds: Option<u32>,
    /// SPI clock in Hz.
    #[arg(long, value_name = "HZ")]
    pub spi_hz: Option<u32>,
    /// Frames to send for the loopback test.
    #[arg(long, default_value_t = 100)]
    pub frames: usize,
}

/// What `selftest` checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SelftestKind {
    /// Loopback through a MOSI-MISO jumper.
    Spi,
    /// A slow walk of R, G, B and white along the strip.
    Leds,
}

/// `rowplay bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The pack.
    pub lib: PathBuf,
    /// Random jumps to measure.
    #[arg(long, default_value_t = 1000)]
    pub jumps: usize,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}
