//! rowplay plays pre-rendered pixel arrays row by row onto LED strips at an
//! exact frame rate, from a library of any size.
//!
//! The pieces, in the order data flows through them:
//!
//! - [`import`] reads `.npy`, `.npz` and `.png` files into u8 arrays.
//! - [`pack`] writes and validates the `.rowpack` file: one file holding
//!   every array, with the first rows of each (the *heads*) stored together.
//! - [`library`] opens a pack: index and heads in locked memory, one file
//!   descriptor, first row of any array without I/O.
//! - [`loader`] streams array bodies into a bounded pool of locked slots.
//! - [`player`] is the realtime frame loop; [`clock`] its absolute deadlines,
//!   [`rt`] its realtime set-up, [`stats`] its allocation-free counters.
//! - [`color`] is the colour pipeline, [`output`] the LED chips and host
//!   outputs (terminal, capture file, wire file).
//! - [`control`] is the socket protocol and command queue, [`config`] the
//!   TOML configuration and [`board`] the built-in board profiles.
//! - [`http`] is the web page, the JSON API and the WLED subset.
//! - [`demo`] generates the built-in demo library; [`app`] runs the
//!   subcommands that [`cli`] defines.

pub mod app;
pub mod board;
pub mod buttons;
pub mod cli;
pub mod clock;
pub mod color;
pub mod config;
pub mod control;
pub mod demo;
pub mod http;
pub mod import;
pub mod library;
pub mod loader;
pub mod output;
pub mod pack;
pub mod player;
pub mod rt;
pub mod selftest;
pub mod stats;
