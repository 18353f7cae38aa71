//! The subcommands. Each file holds one: [`settings`] resolves what the
//! command line, the config and the board say into plain values, and the
//! command files act on them; [`error`] is the error they return to `main`.

pub mod bench;
pub mod ctl;
pub mod error;
pub mod http_backend;
pub mod pack;
pub mod play;
pub mod progress;
pub mod read;
pub mod selftest;
pub mod settings;

pub use error::AppError;

use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use std::path::Path;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Pack(a) => pack::run(a),
        Command::Inspect(a) => read::inspect(a),
        Command::Verify(a) => read::verify(a),
        Command::Export(a) => read::export(a),
        Command::Render(a) => read::render(a),
        Command::Play(a) => play::run(*a),
        Command::Ctl(a) => ctl::run(a),
        Command::Selftest(a) => selftest::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// The config: `--config`, else the default file when it exists, else
/// empty.
pub fn load_config(flag: Option<&Path>) -> Result<Config, AppError> {
    match settings::config_path(flag) {
        Some(p) => Ok(config::load(&p)?),
        None => Ok(Config::default()),
    }
}

/// A warning line on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    eprintln!("warning: {msg}");
}
