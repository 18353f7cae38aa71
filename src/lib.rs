//! rowplay plays pre-rendered pixel arrays row by row onto LED strips at an
//! exact frame rate, from a library of any size.
//!
//! The pieces, in the order data flows through them:
//!
//! - [`import`] reads `.npy`, `.npz`, `.png` and `.fseq` files into u8 arrays.
//! - [`pack`] writes and validates the `.rowpack` file: one file holding
//!   every array, with the first rows of each (the *heads*) stored together.
//! - [`library`] opens a pack: index and heads in locked memory, one file
//!   descriptor, first row of any array without I/O.
//! - [`loader`] streams array bodies into a bounded pool of locked slots.
//! - [`player`] is the realtime frame loop; [`clock`] its absolute deadlines,
//!   [`rt`] its realtime set-up, [`stats`] its allocation-free counters,
//!   [`wake_log`] its raw per-tick timestamps for benchmarks.
//! - [`color`] is the colour pipeline, [`output`] the LED chips and host
//!   outputs (terminal, capture file, wire file).
//! - [`playlist`] decides what plays after what.
//! - [`control`] is how the world steers the player: the line protocol, the
//!   one command path every front end uses, the socket server and client,
//!   signals.
//! - [`config`] is the TOML configuration and [`board`] the built-in board
//!   profiles; [`source`] turns what to play into a pack (on-the-fly packs,
//!   the built-in [`demo`]); [`atomic`] writes files that appear whole.
//! - [`app`] resolves settings and runs the subcommands that [`cli`]
//!   defines.
//! - [`http`] is the web page, the JSON API and the WLED subset; [`net`]
//!   receives live DDP, E1.31 and Art-Net input; [`sync`] follows and leads
//!   FPP MultiSync.

pub mod app;
pub mod atomic;
pub mod board;
pub mod buttons;
pub mod cli;
pub mod clock;
pub mod color;
pub mod config;
pub mod control;
pub mod demo;
pub mod handoff;
pub mod http;
pub mod import;
pub mod library;
pub mod loader;
pub mod net;
pub mod output;
pub mod pack;
pub mod player;
pub mod playlist;
pub mod rt;
pub mod selftest;
pub mod source;
pub mod stats;
pub mod sync;
pub mod wake_log;
