//! The application's error: every module's error, carried up typed to
//! `main`, which prints one `error:` line each and picks the exit code.

use crate::atomic::AtomicWriteError;
use crate::buttons::ButtonError;
use crate::config::ConfigError;
use crate::control::socket::SocketError;
use crate::control::ClientError;
use crate::http::HttpError;
use crate::import::ImportError;
use crate::library::LibraryError;
use crate::output::chip::ChipError;
use crate::output::spi::SpiError;
use crate::output::OutputError;
use crate::pack::PackError;
use crate::playlist::UnknownEntry;
use crate::rt::RtError;
use crate::selftest::SelftestError;
use crate::source::SourceError;
use std::fmt;
use std::io;

use super::settings::SettingsError;

/// Why a subcommand failed.
#[derive(Debug)]
pub enum AppError {
    /// Reading or writing stdout, stderr or a file.
    Io(io::Error),
    /// A bad config file.
    Config(ConfigError),
    /// A setting out of range.
    Settings(SettingsError),
    /// A pack that cannot be opened.
    Library(LibraryError),
    /// Packing failed (one line per bad input).
    Pack(PackError),
    /// An input that cannot be read.
    Import(ImportError),
    /// What to play could not be prepared.
    Source(SourceError),
    /// A file that could not be written.
    Write(AtomicWriteError),
    /// A playlist name that is not in the pack.
    Playlist(UnknownEntry),
    /// The control socket could not be set up.
    Socket(SocketError),
    /// `ctl` could not reach the player.
    Client(ClientError),
    /// The player answered `error: ...` (the text after it).
    Refused(String),
    /// A bad chip setting.
    Chip(ChipError),
    /// The SPI device could not be used.
    Spi(SpiError),
    /// Realtime set-up refused (with `--require-rt`).
    Rt(RtError),
    /// GPIO output pins could not be claimed.
    Gpio(crate::output::gpio::GpioError),
    /// GPIO buttons could not be set up.
    Buttons(ButtonError),
    /// A self-test failed.
    Selftest(SelftestError),
    /// Writing to the LEDs failed.
    Output(OutputError),
    /// No array of that name in the pack.
    NoSuchArray {
        /// The pack.
        pack: String,
        /// The name asked for.
        name: String,
    },
    /// The HTTP server could not start.
    Http(HttpError),
    /// Live network input could not start.
    Net(crate::net::NetError),
    /// `verify` found bad arrays (one line each).
    Verify(Vec<String>),
}

impl AppError {
    /// The lines to print, each after `error: `.
    pub fn lines(&self) -> Vec<String> {
        match self {
            AppError::Pack(e) => e.lines(),
            AppError::Verify(lines) => lines.clone(),
            e => vec![e.to_string()],
        }
    }

    /// Whether this is a closed pipe (e.g. `rowplay inspect x | head`),
    /// which is not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, AppError::Io(e) if e.kind() == io::ErrorKind::BrokenPipe)
            || matches!(self, AppError::Write(e) if e.error.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Io(e) => write!(f, "{e}"),
            AppError::Config(e) => write!(f, "{e}"),
            AppError::Settings(e) => write!(f, "{e}"),
            AppError::Library(e) => write!(f, "{e}"),
            AppError::Pack(e) => write!(f, "{}", e.lines().join("; ")),
            AppError::Import(e) => write!(f, "{e}"),
            AppError::Source(e) => write!(f, "{e}"),
            AppError::Write(e) => write!(f, "{e}"),
            AppError::Playlist(e) => write!(f, "{e}"),
            AppError::Socket(e) => write!(f, "{e}"),
            AppError::Client(e) => write!(f, "{e}"),
            AppError::Refused(e) => write!(f, "{e}"),
            AppError::Chip(e) => write!(f, "{e}"),
            AppError::Spi(e) => write!(f, "{e}"),
            AppError::Rt(e) => write!(f, "{e}"),
            AppError::Buttons(e) => write!(f, "{e}"),
            AppError::Gpio(e) => write!(f, "{e}"),
            AppError::Selftest(e) => write!(f, "{e}"),
            AppError::Output(e) => write!(f, "{e}"),
            AppError::NoSuchArray { pack, name } => write!(
                f,
                "{pack}: no array named {name:?} (see `rowplay inspect {pack}`)"
            ),
            AppError::Http(e) => write!(f, "{e}"),
            AppError::Net(e) => write!(f, "{e}"),
            AppError::Verify(lines) => write!(f, "{}", lines.join("; ")),
        }
    }
}

impl std::error::Error for AppError {}

macro_rules! from {
    ($($t:ty => $v:ident),* $(,)?) => {
        $(impl From<$t> for AppError {
            fn from(e: $t) -> AppError {
                AppError::$v(e)
            }
        })*
    };
}

from!(
    io::Error => Io,
    ConfigError => Config,
    SettingsError => Settings,
    LibraryError => Library,
    PackError => Pack,
    ImportError => Import,
    SourceError => Source,
    AtomicWriteError => Write,
    UnknownEntry => Playlist,
    SocketError => Socket,
    ClientError => Client,
    ChipError => Chip,
    SpiError => Spi,
    RtError => Rt,
    ButtonError => Buttons,
    crate::output::gpio::GpioError => Gpio,
    SelftestError => Selftest,
    OutputError => Output,
    HttpError => Http,
    crate::net::NetError => Net,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipe_is_known_by_its_kind_not_its_text() {
        let pipe = AppError::Io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.is_broken_pipe());
        let text_only = AppError::Refused("Broken pipe".into());
        assert!(!text_only.is_broken_pipe());
        assert!(!AppError::Io(io::Error::from(io::ErrorKind::NotFound)).is_broken_pipe());
    }
}
