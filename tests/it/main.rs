//! Integration tests, compiled into one test binary.
//!
//! - `util`: temp dirs, running the real `rowplay` binary, record parsing.
//! - `pack_cli`: `pack`, `inspect`, `verify`, `export`, `render` end to end.
//! - `library`: pack -> library -> rows round trips, the loader's slots.
//! - `player`: the frame loop in-process on a mock clock: order, jumps,
//!   underruns, timing accounting, faults, and that it never allocates.
//! - `play_cli`: the real binary with `--clock step` and the socket: jumps,
//!   stop, signals, abuse, refused realtime.
//! - `wire`: `wire:` records decoded back to pixels for every chip.
//! - `outputs`: several `[[output]]`s (SPI and GPIO stand-ins), each record
//!   decoded to its slice; pin conflicts refused.
//! - `control_cli`: `pending`/`wait`, default socket places, `ctl` and the
//!   config, SIGHUP with and without a terminal.
//! - `hostile`: adversarial files (tests/hostile/), each with its exact error.

mod control_cli;
mod hostile;
mod library;
mod outputs;
mod pack_cli;
mod play_cli;
mod player;
mod util;
mod wire;
