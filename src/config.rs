//! The TOML configuration file (default `/etc/rowplay/config.toml`).
//!
//! `boards/config.example.toml` is the complete, commented example. Command
//! line flags override what the file says. Unknown keys are errors, so a typo
//! is reported instead of silently ignored.

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// The default config path, used when it exists and `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/rowplay/config.toml";

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to play: a `.rowpack`, or a folder / file to pack on the fly.
    pub library: Option<PathBuf>,
    /// Board profile name (a `boards/*.toml` stem), e.g. `pi-zero`.
    pub board: Option<String>,
    /// Frames per second.
    pub fps: Option<u32>,
    /// Outputs: one as `--output` takes it (`output = "spi"`, `term`,
    /// `null`, `capture:PATH`, `wire:PATH`, with `[led]`/`[spi]`), or a list
    /// of `[[output]]` tables.
    #[serde(default)]
    pub output: Option<OutputField>,
    /// Control socket path.
    pub socket: Option<PathBuf>,
    /// SCHED_FIFO priority of the player (0 = do not ask).
    pub rt_priority: Option<u32>,
    /// Fail instead of warning when realtime set-up is refused.
    pub require_rt: Option<bool>,
    /// Array to start with.
    pub start: Option<String>,
    /// The LED strip (single-output form).
    pub led: Option<LedConfig>,
    /// The SPI bus (single-output form).
    pub spi: Option<SpiConfig>,
    /// The colour pipeline.
    #[serde(default)]
    pub color: ColorConfig,
    /// The playlist.
    pub playlist: Option<PlaylistConfig>,
    /// GPIO buttons.
    #[serde(default, rename = "button")]
    pub buttons: Vec<ButtonConfig>,
    /// The web page and HTTP API.
    #[serde(default)]
    pub http: HttpConfig,
    /// Live network input.
    #[serde(default)]
    pub network: NetworkConfig,
    /// FPP MultiSync.
    #[serde(default)]
    pub multisync: MultisyncConfig,
}

/// `[multisync]`: follow or lead FPP MultiSync (off unless `mode` is set).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MultisyncConfig {
    /// `follow` or `lead`.
    pub mode: Option<String>,
    /// `dark` or `resume`.
    pub after_sync: Option<String>,
    /// ms, positive: this node shows each frame later.
    pub offset: Option<i64>,
    /// Leader: unicast destinations.
    pub to: Option<Vec<String>>,
    /// Follower: listen address; leader: source address.
    pub listen: Option<String>,
    /// Master file name -> array name, for names the rules do not map.
    #[serde(default)]
    pub names: std::collections::BTreeMap<String, String>,
}

/// `[network]`: live input over DDP, E1.31 and Art-Net (off unless
/// `listen` names a protocol). The keys are the flags' names in snake case.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// Protocols, e.g. `["ddp", "e131:5569"]`.
    pub listen: Option<Vec<String>>,
    /// Address to listen on.
    pub listen_addr: Option<String>,
    /// Senders allowed, CIDRs.
    pub allow: Option<Vec<String>>,
    /// First E1.31 universe.
    pub universe: Option<u16>,
    /// First Art-Net Port-Address.
    pub artnet_universe: Option<u16>,
    /// Channels per universe.
    pub channels_per_universe: Option<u16>,
    /// Bytes subtracted from DDP offsets.
    pub ddp_offset: Option<u32>,
    /// `push` or `tick`.
    pub live_output: Option<String>,
    /// e.g. `"5ms"`.
    pub live_min_interval: Option<Duration>,
    /// Seconds, e.g. `2.5`.
    pub live_timeout: Option<Duration>,
    /// `resume`, `restart` or `dark`.
    pub after_live: Option<String>,
    /// `over` or `under`.
    pub live_rank: Option<String>,
    /// Gamma of live data.
    pub live_gamma: Option<f32>,
}

/// A duration in the config: a number of seconds or a string such as
/// `"5ms"` or `"2.5s"`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Duration {
    /// Seconds.
    Seconds(f64),
    /// With a unit.
    Text(String),
}

impl Duration {
    /// The text form the flag takes.
    pub fn as_text(&self) -> String {
        match self {
            Duration::Seconds(s) => s.to_string(),
            Duration::Text(t) => t.clone(),
        }
    }
}

/// `[http]`: the web page and HTTP API (off unless `listen` is set).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `ADDR:PORT`, e.g. `0.0.0.0:80`.
    pub listen: Option<String>,
    /// Token for requests that change something.
    pub token: Option<String>,
    /// File holding the token (mode 0600).
    pub token_file: Option<PathBuf>,
    /// Read-only requests need the token too.
    pub token_read: Option<bool>,
    /// The WLED endpoints need no token.
    pub wled_open: Option<bool>,
    /// Array names offered as WLED presets (default: the first 250).
    pub wled_presets: Option<Vec<String>>,
}

/// The `output` key: the single form or the `[[output]]` list.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputField {
    /// `output = "KIND[:ARG]"`.
    One(String),
    /// `[[output]]` tables, in the order frames are written.
    Many(Vec<OutputConfig>),
}

impl<'de> Deserialize<'de> for OutputField {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `untagged`, so that a typo inside an
        // `[[output]]` table keeps its own message ("unknown field ...").
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OutputField;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string such as \"spi\", or [[output]] tables")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OutputField, E> {
                Ok(OutputField::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OutputField, A::Error> {
                let mut v = Vec::new();
                while let Some(o) = seq.next_element::<OutputConfig>()? {
                    v.push(o);
                }
                Ok(OutputField::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// What an `[[output]]` table drives.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OutputKindName {
    /// A strip on an SPI bus.
    Spi,
    /// A clocked strip (APA102, SK9822, WS2801) bit-banged on two GPIO pins.
    GpioClocked,
    /// One GPIO pin per channel (discrete LEDs, relays).
    Gpio,
    /// The chip's wire bytes to a record file.
    Wire,
    /// Pixels to a record file.
    Capture,
    /// The terminal preview.
    Term,
    /// Nowhere.
    Null,
}

/// `[[output]]`: one output and the slice of the row it shows.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// What it is.
    pub kind: Option<OutputKindName>,
    /// Record file of `wire` and `capture`.
    pub path: Option<PathBuf>,
    /// Also write `wire:` records (pin levels for `gpio`) of what a
    /// hardware output sends.
    pub record: Option<PathBuf>,
    /// LED chip.
    pub chip: Option<crate::output::chip::ChipKind>,
    /// Wire colour order.
    pub color_order: Option<String>,
    /// First LED of the row it shows (default 0).
    pub first: Option<u32>,
    /// LEDs it shows (default: to the end of the strip).
    pub count: Option<u32>,
    /// Show the slice back to front.
    pub reverse: Option<bool>,
    /// SPI bus.
    pub bus: Option<u8>,
    /// SPI chip select.
    pub cs: Option<u8>,
    /// SPI clock (or bit-bang clock of `gpio-clocked`) in Hz.
    pub hz: Option<u32>,
    /// BCM data pin of `gpio-clocked`.
    pub data_pin: Option<u8>,
    /// BCM clock pin of `gpio-clocked`.
    pub clock_pin: Option<u8>,
    /// BCM pins of `gpio`, one per channel.
    pub pins: Option<Vec<u8>>,
    /// `gpio`: a channel at or above this is on (default 128).
    pub threshold: Option<u8>,
    /// `gpio`: software PWM at this rate instead of on/off.
    pub pwm_hz: Option<u32>,
    /// Gamma of this output.
    pub gamma: Option<f32>,
    /// Brightness of this output, 0..1.
    pub brightness: Option<f32>,
    /// Supply budget of this output in mA.
    pub max_current_ma: Option<u32>,
}

/// `[led]`: the strip.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LedConfig {
    /// Chip kind, e.g. `apa102`.
    pub chip: Option<crate::output::chip::ChipKind>,
    /// Number of LEDs on the strip.
    pub count: Option<u32>,
    /// Wire colour order, e.g. `BGR`.
    pub color_order: Option<String>,
    /// APA102/SK9822 5-bit global brightness, 1..31.
    pub global_brightness: Option<u8>,
}

/// `[spi]`: the bus the strip is on.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpiConfig {
    /// SPI bus number (0 = SPI0, the one with DMA).
    pub bus: Option<u8>,
    /// Chip select.
    pub cs: Option<u8>,
    /// Clock in Hz.
    pub hz: Option<u32>,
    /// SPI mode 0..3.
    pub mode: Option<u8>,
}

/// `[color]`: the colour pipeline.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColorConfig {
    /// 0..1.
    pub brightness: Option<f32>,
    /// 1.0 = off; 2.2 by default when a chip is configured.
    pub gamma: Option<f32>,
    /// Per-channel multipliers, `[r, g, b]` or `[r, g, b, w]`.
    pub white_balance: Option<Vec<f32>>,
    /// Supply budget in mA for the current limiter.
    pub max_current_ma: Option<u32>,
    /// mA one channel draws at full.
    pub ma_per_channel: Option<f32>,
    /// mA one LED draws when dark.
    pub idle_ma_per_led: Option<f32>,
}

/// `[playlist]`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PlaylistConfig {
    /// `loop`, `once` or `shuffle`.
    pub order: Option<String>,
    /// The entries, in order.
    #[serde(default)]
    pub entries: Vec<PlaylistEntry>,
}

/// One playlist entry: a name, or a table with a repeat count or duration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PlaylistEntry {
    /// Just the array name: played once through.
    Name(String),
    /// An array with a repeat count or a duration.
    Detailed {
        /// Array name.
        name: String,
        /// Play it this many times through.
        repeat: Option<u32>,
        /// Or for this long (looping as needed), in seconds.
        seconds: Option<f64>,
    },
}

/// `[[button]]`: a GPIO pin that sends a control command when pressed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ButtonConfig {
    /// BCM pin number.
    pub pin: u8,
    /// The command, in the socket's language (`next`, `play NAME`, `brightness +0.1`).
    pub command: String,
    /// `up` (default: button to ground), `down`, or `off`.
    pub pull: Option<String>,
    /// Debounce time in ms (default 30).
    pub debounce_ms: Option<u32>,
}

impl Config {
    /// `[led]`, or its defaults when absent.
    pub fn led(&self) -> LedConfig {
        self.led.clone().unwrap_or_default()
    }

    /// `[spi]`, or its defaults when absent.
    pub fn spi(&self) -> SpiConfig {
        self.spi.clone().unwrap_or_default()
    }
}

/// A config file that could not be read or parsed.
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parse config text. Never panics on any input.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str(text).map_err(|e| {
        // toml's messages span several lines with a source excerpt; keep the
        // first line and the position so the user gets one line.
        let msg = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: {msg}")
            }
            None => msg,
        }
    })
}

/// Read and parse a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    parse(&text).map_err(|message| ConfigError {
        path: path.to_path_buf(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let c = parse(
            r#"
            library = "/srv/patterns.rowpack"
            board = "pi-zero"
            fps = 50
            [led]
            chip = "sk6812-rgbw"
            count = 30
            color_order = "GRBW"
            [spi]
            bus = 0
            hz = 3200000
            [color]
            gamma = 2.2
            max_current_ma = 2000
            [playlist]
            order = "once"
            entries = ["a", { name = "b", repeat = 3 }, { name = "c", seconds = 2.5 }]
            [[button]]
            pin = 17
            command = "next"
            "#,
        )
        .unwrap();
        assert_eq!(
            c.led().chip,
            Some(crate::output::chip::ChipKind::Sk6812Rgbw)
        );
        assert_eq!(c.spi().hz, Some(3_200_000));
        let p = c.playlist.unwrap();
        assert_eq!(p.entries.len(), 3);
        assert_eq!(
            p.entries[1],
            PlaylistEntry::Detailed {
                name: "b".into(),
                repeat: Some(3),
                seconds: None
            }
        );
        assert_eq!(c.buttons[0].pin, 17);
    }

    #[test]
    fn output_is_a_string_or_a_list_of_tables() {
        let c = parse("output = \"spi\"").unwrap();
        assert_eq!(c.output, Some(OutputField::One("spi".into())));
        let c = parse(
            "[[output]]\nkind = \"spi\"\nchip = \"apa102\"\ncount = 10\n[[output]]\nkind = \"gpio-clocked\"\ndata_pin = 5\nclock_pin = 6",
        )
        .unwrap();
        let Some(OutputField::Many(v)) = c.output else {
            panic!("{:?}", c.output)
        };
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].kind, Some(OutputKindName::Spi));
        assert_eq!(v[0].count, Some(10));
        assert_eq!((v[1].data_pin, v[1].clock_pin), (Some(5), Some(6)));
        let e = parse("[[output]]\nkind = \"spi\"\nfrist = 3").unwrap_err();
        assert!(e.contains("frist"), "{e}");
        let e = parse("[[output]]\nkind = \"hdmi\"").unwrap_err();
        assert!(e.contains("hdmi"), "{e}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let e = parse("fps = 50\nfsp = 3\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        assert!(e.contains("fsp"), "{e}");
    }
}
