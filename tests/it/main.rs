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
//! - `fseq`: `.fseq` fixtures packed to the independent writer's bytes,
//!   export to `.fseq` and back, per-array rates in packs and `inspect`.
//! - `multisync`: the MultiSync listener fed by the leader and by an
//!   FPP-style sender over loopback: events, observations, pings.
//! - `multisync_cli`: a leader and two followers (real binaries, loopback):
//!   the same rows everywhere, a switch on row 0 of the same array; an
//!   xSchedule-style master by hand: START, late join, STOP.
//! - `multisync_netns`: a leader multicasting to three followers, each in
//!   its own network namespace on one bridge (root); then multicast and
//!   unicast through an impairing relay per follower (delay, loss,
//!   reordering).
//! - `rates`: per-array frame rates on a stepping clock; a pack of the
//!   release before rates plays as before.
//! - `hostile`: adversarial files (tests/hostile/), each with its exact error.
//! - `live`: live input in the frame loop on a mock clock: takeover,
//!   fall-back, after-live, rank, tick latching, no allocation.
//! - `live_cli`: the real binary with `--listen`: DDP takeover and resume,
//!   tick mode, E1.31 priorities with two sacn senders (peers venv).
//! - `net`: the live-input receivers on 127.0.0.1, driven by real packets.
//! - `net_peers`: the same driven by python sacn and stupidArtnet
//!   (needs `ROWPLAY_PEERS_VENV`, else skipped).
//! - `net_ola`: the E1.31 receiver fed by OLA's olad in a namespace of its
//!   own (root, `ROWPLAY_PEERS_VENV`, else skipped).
//! - `http_cli`: the real binary with `--http`: commands, tokens, the live stream.
//! - `http`: the HTTP server over a fake player: routes, limits, tokens, WLED.

mod control_cli;
mod fseq;
mod hostile;
mod http;
mod http_cli;
mod library;
mod live;
mod live_cli;
mod multisync;
pub mod multisync_cli;
mod multisync_netns;
mod net;
mod net_ola;
mod net_peers;
mod outputs;
mod pack_cli;
mod play_cli;
mod player;
mod rates;
mod util;
mod wire;
