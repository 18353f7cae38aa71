//! Live-input settings as plain values, and parsers of their string forms
//! (the application fills [`NetSettings`] from flags and the `[network]`
//! config table).

use super::mapping::{DEFAULT_CHANNELS_PER_UNIVERSE, DEFAULT_FIRST_ARTNET, DEFAULT_FIRST_E131};
use super::Protocol;
use std::fmt;
use std::net::Ipv4Addr;

/// DDP's UDP port.
pub const DDP_PORT: u16 = 4048;
/// E1.31's UDP port.
pub const E131_PORT: u16 = 5568;
/// Art-Net's UDP port.
pub const ARTNET_PORT: u16 = 6454;

/// When a complete live frame goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LiveOutput {
    /// At once, waking the frame loop.
    #[default]
    Push,
    /// Latched at the next tick.
    Tick,
}

/// What playback does when live input ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AfterLive {
    /// The array and row it was on.
    #[default]
    Resume,
    /// The current array from row 0.
    Restart,
    /// All off.
    Dark,
}

/// Live input over or under playback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LiveRank {
    /// Live wins over playback.
    #[default]
    Over,
    /// Live is shown only while playback is stopped.
    Under,
}

/// One protocol to listen for, on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// The protocol.
    pub protocol: Protocol,
    /// UDP port (0 = an ephemeral port, for tests).
    pub port: u16,
}

/// An IPv4 network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub net: Ipv4Addr,
    /// Prefix length 0..32.
    pub prefix: u8,
}

impl Cidr {
    /// Whether `a` is in this network.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let mask = if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix)
        };
        u32::from(a) & mask == u32::from(self.net)
    }
}

/// Every live-input setting, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NetSettings {
    /// `--listen`: protocols and ports; empty = nothing listens.
    pub listen: Vec<Listen>,
    /// `--listen-addr`: 0.0.0.0 = all interfaces.
    pub listen_addr: Ipv4Addr,
    /// `--allow`: empty = any sender.
    pub allow: Vec<Cidr>,
    /// `--universe`: first E1.31 universe.
    pub universe: u16,
    /// `--artnet-universe`: first Art-Net Port-Address.
    pub artnet_universe: u16,
    /// `--channels-per-universe`.
    pub channels_per_universe: u16,
    /// `--ddp-offset`, bytes.
    pub ddp_offset: u32,
    /// `--live-output`.
    pub live_output: LiveOutput,
    /// `--live-min-interval`, ns.
    pub live_min_interval_ns: u64,
    /// `--live-timeout`, ns.
    pub live_timeout_ns: u64,
    /// `--after-live`.
    pub after_live: AfterLive,
    /// `--live-rank`.
    pub live_rank: LiveRank,
    /// `--live-gamma`.
    pub live_gamma: f32,
    /// Join E1.31 multicast groups (one per universe).
    pub multicast: bool,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            listen: Vec::new(),
            listen_addr: Ipv4Addr::UNSPECIFIED,
            allow: Vec::new(),
            universe: DEFAULT_FIRST_E131,
            artnet_universe: DEFAULT_FIRST_ARTNET,
            channels_per_universe: DEFAULT_CHANNELS_PER_UNIVERSE,
            ddp_offset: 0,
            live_output: LiveOutput::Push,
            live_min_interval_ns: 5_000_000,
            live_timeout_ns: 2_500_000_000,
            after_live: AfterLive::Resume,
            live_rank: LiveRank::Over,
            live_gamma: 1.0,
            multicast: true,
        }
    }
}

impl NetSettings {
    /// Whether a sender is allowed.
    pub fn allowed(&self, a: Ipv4Addr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(a))
    }

    /// The port for `p`, if it is listened for.
    pub fn port(&self, p: Protocol) -> Option<u16> {
        self.listen.iter().find(|l| l.protocol == p).map(|l| l.port)
    }
}

/// A setting string that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingError {
    /// Not ddp, e131 or artnet.
    Protocol(String),
    /// A port that is not a number 1..65535.
    Port(String),
    /// A protocol named twice.
    Duplicate(Protocol),
    /// Not an IPv4 address.
    Address(String),
    /// Not ADDR/PREFIX with PREFIX 0..32.
    Cidr(String),
    /// Not a duration (seconds, or with an `ms` / `s` suffix).
    Duration(String),
    /// Not one of the choices.
    Choice {
        /// The option.
        option: &'static str,
        /// What was given.
        value: String,
    },
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingError::Protocol(s) => {
                write!(
                    f,
                    "--listen: {s:?} is not ddp, e131 or artnet (add :PORT for a port)"
                )
            }
            SettingError::Port(s) => write!(
                f,
                "--listen: port {s:?} is not a number 0..65535 (0: any free port)"
            ),
            SettingError::Duplicate(p) => write!(f, "--listen: {} is named twice", p.name()),
            SettingError::Address(s) => write!(f, "--listen-addr: {s:?} is not an IPv4 address"),
            SettingError::Cidr(s) => {
                write!(
                    f,
                    "--allow: {s:?} is not ADDR or ADDR/PREFIX (IPv4, prefix 0..32)"
                )
            }
            SettingError::Duration(s) => {
                write!(f, "{s:?} is not a duration (seconds, or e.g. 5ms, 2.5s)")
            }
            SettingError::Choice { option, value } => {
                write!(f, "--{option}: {value:?} is not allowed")
            }
        }
    }
}

impl std::error::Error for SettingError {}

/// Parse one `--listen` item: `ddp`, `e131:5569`, `artnet:6454`.
pub fn parse_listen_item(s: &str) -> Result<Listen, SettingError> {
    let s = s.trim();
    let (name, port) = match s.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (s, None),
    };
    let protocol = match name.to_ascii_lowercase().as_str() {
        "ddp" => Protocol::Ddp,
        "e131" | "e1.31" | "sacn" => Protocol::E131,
        "artnet" | "art-net" => Protocol::ArtNet,
        _ => return Err(SettingError::Protocol(name.to_string())),
    };
    let port = match port {
        None => default_port(protocol),
        Some(p) => match p.parse::<u16>() {
            // 0 asks for any free port; the one bound is printed at start.
            Ok(n) => n,
            Err(_) => return Err(SettingError::Port(p.to_string())),
        },
    };
    Ok(Listen { protocol, port })
}

/// Parse a `--listen` list, `"ddp,e131:5569"` (or the items of a config
/// array joined).
pub fn parse_listen<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Listen>, SettingError> {
    let mut out: Vec<Listen> = Vec::new();
    for part in items.into_iter().flat_map(|s| s.split(',')) {
        if part.trim().is_empty() {
            continue;
        }
        let l = parse_listen_item(part)?;
        if out.iter().any(|o| o.protocol == l.protocol) {
            return Err(SettingError::Duplicate(l.protocol));
        }
        out.push(l);
    }
    Ok(out)
}

/// The default port of a protocol.
pub fn default_port(p: Protocol) -> u16 {
    match p {
        Protocol::Ddp => DDP_PORT,
        Protocol::E131 => E131_PORT,
        Protocol::ArtNet => ARTNET_PORT,
    }
}

/// Parse `--listen-addr`.
pub fn parse_addr(s: &str) -> Result<Ipv4Addr, SettingError> {
    s.trim()
        .parse()
        .map_err(|_| SettingError::Address(s.to_string()))
}

/// Parse one CIDR (`10.0.0.0/8`; a bare address is /32). Host bits must
/// be clear, so that `10.0.0.1/8` (a likely typo) is refused.
pub fn parse_cidr(s: &str) -> Result<Cidr, SettingError> {
    let bad = || SettingError::Cidr(s.to_string());
    let t = s.trim();
    let (a, p) = match t.split_once('/') {
        Some((a, p)) => (a, p.parse::<u8>().map_err(|_| bad())?),
        None => (t, 32),
    };
    let net: Ipv4Addr = a.parse().map_err(|_| bad())?;
    if p > 32 {
        return Err(bad());
    }
    let c = Cidr { net, prefix: p };
    if !c.contains(net) {
        return Err(bad());
    }
    Ok(c)
}

/// Parse an `--allow` list, `"10.0.0.0/8,192.168.1.7"`.
pub fn parse_allow<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Cidr>, SettingError> {
    items
        .into_iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.trim().is_empty())
        .map(parse_cidr)
        .collect()
}

/// Parse a duration: `2.5` (seconds), `2.5s`, `5ms`. Returns ns.
pub fn parse_duration(s: &str) -> Result<u64, SettingError> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1e9)
    } else {
        (t, 1e9)
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 && v * scale < 1e18 => Ok((v * scale).round() as u64),
        _ => Err(SettingError::Duration(s.to_string())),
    }
}

fn choice<T: Copy>(option: &'static str, s: &str, table: &[(&str, T)]) -> Result<T, SettingError> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s.trim()))
        .map(|(_, v)| *v)
        .ok_or(SettingError::Choice {
            option,
            value: s.to_string(),
        })
}

/// Parse `--live-output push|tick`.
pub fn parse_live_output(s: &str) -> Result<LiveOutput, SettingError> {
    choice(
        "live-output",
        s,
        &[("push", LiveOutput::Push), ("tick", LiveOutput::Tick)],
    )
}

/// Parse `--after-live resume|restart|dark`.
pub fn parse_after_live(s: &str) -> Result<AfterLive, SettingError> {
    choice(
        "after-live",
        s,
        &[
            ("resume", AfterLive::Resume),
            ("restart", AfterLive::Restart),
            ("dark", AfterLive::Dark),
        ],
    )
}

/// Parse `--live-rank over|under`.
pub fn parse_live_rank(s: &str) -> Result<LiveRank, SettingError> {
    choice(
        "live-rank",
        s,
        &[("over", LiveRank::Over), ("under", LiveRank::Under)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_lists() {
        assert_eq!(
            parse_listen(["ddp,e131:5569"]).unwrap(),
            vec![
                Listen {
                    protocol: Protocol::Ddp,
                    port: 4048
                },
                Listen {
                    protocol: Protocol::E131,
                    port: 5569
                }
            ]
        );
        assert_eq!(
            parse_listen(["ddp", "artnet"]).unwrap()[1],
            Listen {
                protocol: Protocol::ArtNet,
                port: 6454
            }
        );
        assert!(parse_listen([""]).unwrap().is_empty());
        assert_eq!(
            parse_listen(["dmx"]),
            Err(SettingError::Protocol("dmx".into()))
        );
        assert_eq!(parse_listen(["ddp:0"]).unwrap()[0].port, 0);
        assert_eq!(parse_listen(["ddp:x"]), Err(SettingError::Port("x".into())));
        assert_eq!(
            parse_listen(["ddp:70000"]),
            Err(SettingError::Port("70000".into()))
        );
        assert_eq!(
            parse_listen(["ddp,ddp:1"]),
            Err(SettingError::Duplicate(Protocol::Ddp))
        );
    }

    #[test]
    fn cidrs() {
        let c = parse_cidr("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(parse_cidr("0.0.0.0/0")
            .unwrap()
            .contains("1.2.3.4".parse().unwrap()));
        assert_eq!(parse_cidr("127.0.0.1").unwrap().prefix, 32);
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "10.0.0/8", "x", "10.0.0.0/"] {
            assert_eq!(
                parse_cidr(bad),
                Err(SettingError::Cidr(bad.into())),
                "{bad}"
            );
        }
        let s = NetSettings {
            allow: parse_allow(["127.0.0.0/8,192.168.1.7"]).unwrap(),
            ..NetSettings::default()
        };
        assert!(s.allowed("127.0.0.9".parse().unwrap()));
        assert!(s.allowed("192.168.1.7".parse().unwrap()));
        assert!(!s.allowed("192.168.1.8".parse().unwrap()));
        assert!(NetSettings::default().allowed("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn durations_and_choices() {
        assert_eq!(parse_duration("2.5"), Ok(2_500_000_000));
        assert_eq!(parse_duration("2.5s"), Ok(2_500_000_000));
        assert_eq!(parse_duration("5ms"), Ok(5_000_000));
        assert_eq!(parse_duration("0"), Ok(0));
        for bad in ["-1", "x", "nan", "inf", "1e30"] {
            assert_eq!(parse_duration(bad), Err(SettingError::Duration(bad.into())));
        }
        assert_eq!(parse_live_output("tick"), Ok(LiveOutput::Tick));
        assert_eq!(parse_after_live("dark"), Ok(AfterLive::Dark));
        assert_eq!(parse_live_rank("under"), Ok(LiveRank::Under));
        assert!(parse_live_rank("sideways").is_err());
        assert_eq!(parse_addr("127.0.0.1"), Ok(Ipv4Addr::LOCALHOST));
        assert!(parse_addr("::1").is_err());
    }
}
