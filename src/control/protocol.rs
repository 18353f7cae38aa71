//! The socket's line protocol: one request per line, parsed by a pure
//! function that never panics on any bytes (fuzzed by `control_line`).

use std::fmt;

/// Longest command line, in bytes.
pub const MAX_LINE: usize = 1024;

/// A switch that `wait` can wait for.
#[derive(Clone, Debug, PartialEq)]
pub enum Switch {
    /// `play NAME`.
    PlayName(String),
    /// `play #INDEX`.
    PlayIndex(u32),
    /// `next`.
    Next,
    /// `prev`.
    Prev,
}

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `play NAME`, `play #INDEX`, `next`, `prev`.
    Switch(Switch),
    /// `wait play NAME` etc.: reply once row 0 of the target was handed out.
    Wait(Switch),
    /// `pause`.
    Pause,
    /// `resume`.
    Resume,
    /// `stop`.
    Stop,
    /// `brightness X`.
    SetBrightness(f32),
    /// `brightness +X` / `-X`.
    AddBrightness(f32),
    /// `list`.
    List,
    /// `status`.
    Status,
    /// `reload`.
    Reload,
    /// `step N`: grant N frames to a `--clock step` player (tests).
    Step(u64),
}

/// A line that is not a request.
#[derive(Clone, Debug, PartialEq)]
pub enum ProtocolError {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// Nothing but white space.
    Empty,
    /// `play` without a name.
    PlayWithoutName,
    /// `play #x` with x not a number.
    BadIndex(String),
    /// A command that takes no argument got one.
    NoArgument(String),
    /// `brightness` with something that is not a number.
    BadBrightness(String),
    /// `brightness X` with X outside 0..1.
    BrightnessRange(f32),
    /// `step` with something that is not a count.
    BadStep(String),
    /// `wait` followed by something that is not a switch.
    BadWait(String),
    /// An unknown first word (at most 40 characters of it).
    Unknown(String),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::NotUtf8 => write!(f, "command is not UTF-8 text"),
            ProtocolError::Empty => write!(f, "empty command"),
            ProtocolError::PlayWithoutName => write!(f, "play needs an array name or #INDEX"),
            ProtocolError::BadIndex(n) => write!(f, "bad index {n:?}"),
            ProtocolError::NoArgument(w) => write!(f, "{w} takes no argument"),
            ProtocolError::BadBrightness(r) => {
                write!(f, "bad brightness {r:?}: use 0..1, +X or -X")
            }
            ProtocolError::BrightnessRange(x) => write!(f, "brightness {x} outside 0..1"),
            ProtocolError::BadStep(r) => write!(f, "bad step count {r:?}"),
            ProtocolError::BadWait(r) => write!(
                f,
                "wait takes play NAME, play #INDEX, next or prev, not {:?}",
                truncate(r, 40)
            ),
            ProtocolError::Unknown(w) => write!(
                f,
                "unknown command {w:?} (play, next, prev, pause, resume, stop, brightness, list, status, reload, wait)"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// At most `n` characters of `s`.
pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parse one line (without its newline). Never panics on any bytes.
pub fn parse_line(line: &[u8]) -> Result<Request, ProtocolError> {
    let line = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
    let line = line.trim_end_matches('\r').trim();
    let (word, rest) = split_word(line);
    if word == "wait" {
        if rest.is_empty() {
            return Err(ProtocolError::BadWait(String::new()));
        }
        return match parse_words(split_word(rest))? {
            Request::Switch(s) => Ok(Request::Wait(s)),
            _ => Err(ProtocolError::BadWait(rest.to_string())),
        };
    }
    parse_words((word, rest))
}

fn split_word(line: &str) -> (&str, &str) {
    match line.split_once(char::is_whitespace) {
        Some((w, r)) => (w, r.trim()),
        None => (line, ""),
    }
}

fn parse_words((word, rest): (&str, &str)) -> Result<Request, ProtocolError> {
    let no_arg = |r: Request| {
        if rest.is_empty() {
            Ok(r)
        } else {
            Err(ProtocolError::NoArgument(word.to_string()))
        }
    };
    match word {
        "play" if rest.is_empty() => Err(ProtocolError::PlayWithoutName),
        "play" => match rest.strip_prefix('#') {
            Some(n) => n
                .parse()
                .map(|i| Request::Switch(Switch::PlayIndex(i)))
                .map_err(|_| ProtocolError::BadIndex(n.to_string())),
            None => Ok(Request::Switch(Switch::PlayName(rest.to_string()))),
        },
        "next" => no_arg(Request::Switch(Switch::Next)),
        "prev" => no_arg(Request::Switch(Switch::Prev)),
        "pause" => no_arg(Request::Pause),
        "resume" => no_arg(Request::Resume),
        "stop" => no_arg(Request::Stop),
        "list" => no_arg(Request::List),
        "status" => no_arg(Request::Status),
        "reload" => no_arg(Request::Reload),
        "brightness" => {
            let rel = matches!(rest.as_bytes().first(), Some(b'+') | Some(b'-'));
            let x: f32 = rest
                .parse()
                .ok()
                .filter(|x: &f32| x.is_finite())
                .ok_or_else(|| ProtocolError::BadBrightness(rest.to_string()))?;
            if rel {
                Ok(Request::AddBrightness(x))
            } else if (0.0..=1.0).contains(&x) {
                Ok(Request::SetBrightness(x))
            } else {
                Err(ProtocolError::BrightnessRange(x))
            }
        }
        "step" => rest
            .parse()
            .map(Request::Step)
            .map_err(|_| ProtocolError::BadStep(rest.to_string())),
        "" => Err(ProtocolError::Empty),
        other => Err(ProtocolError::Unknown(truncate(other, 40).to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let p = |s: &str| parse_line(s.as_bytes());
        let sw = |s| Ok(Request::Switch(s));
        assert_eq!(p("play wave_17"), sw(Switch::PlayName("wave_17".into())));
        assert_eq!(p("play  a b \r"), sw(Switch::PlayName("a b".into())));
        assert_eq!(p("play #12"), sw(Switch::PlayIndex(12)));
        assert_eq!(p("next"), sw(Switch::Next));
        assert_eq!(p("prev"), sw(Switch::Prev));
        assert_eq!(p("pause"), Ok(Request::Pause));
        assert_eq!(p("resume"), Ok(Request::Resume));
        assert_eq!(p("stop"), Ok(Request::Stop));
        assert_eq!(p("list"), Ok(Request::List));
        assert_eq!(p("status"), Ok(Request::Status));
        assert_eq!(p("reload"), Ok(Request::Reload));
        assert_eq!(p("brightness 0.5"), Ok(Request::SetBrightness(0.5)));
        assert_eq!(p("brightness +0.1"), Ok(Request::AddBrightness(0.1)));
        assert_eq!(p("brightness -0.25"), Ok(Request::AddBrightness(-0.25)));
        assert_eq!(p("step 3"), Ok(Request::Step(3)));
        assert_eq!(
            p("wait play wave_17"),
            Ok(Request::Wait(Switch::PlayName("wave_17".into())))
        );
        assert_eq!(p("wait play #3"), Ok(Request::Wait(Switch::PlayIndex(3))));
        assert_eq!(p("wait  next"), Ok(Request::Wait(Switch::Next)));
        assert_eq!(p("wait prev"), Ok(Request::Wait(Switch::Prev)));
    }

    #[test]
    fn bad_lines_get_errors() {
        let p = |s: &[u8]| parse_line(s).unwrap_err().to_string();
        assert_eq!(p(b"play"), "play needs an array name or #INDEX");
        assert_eq!(p(b"play #x"), "bad index \"x\"");
        assert_eq!(p(b"next 3"), "next takes no argument");
        assert_eq!(p(b"brightness 2"), "brightness 2 outside 0..1");
        assert_eq!(
            p(b"brightness NaN"),
            "bad brightness \"NaN\": use 0..1, +X or -X"
        );
        assert_eq!(p(b""), "empty command");
        assert_eq!(p(&[0xff, 0xfe]), "command is not UTF-8 text");
        assert!(p(b"dance").starts_with("unknown command \"dance\""));
        assert!(p(b"wait stop").starts_with("wait takes play NAME"));
        assert!(p(b"wait").starts_with("wait takes play NAME"));
        assert_eq!(p(b"wait play"), "play needs an array name or #INDEX");
    }
}
