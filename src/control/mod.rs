//! Control: how the world tells the player what to do.
//!
//! - [`protocol`]: the line protocol, parsed by a pure function.
//! - [`path`]: door 1, the one command path every front end uses.
//! - [`server`]: the Unix socket server; [`client`]: `rowplay ctl`.
//! - [`socket`]: where the socket lives; [`notify`]: systemd notification;
//!   [`signals`]: SIGINT, SIGTERM, SIGHUP.
//!
//! Protocol: one command per line (at most 1 KiB), one reply line each:
//! `ok`, `error: ...`, or one JSON object (`status`, `list`).
//!
//! ```text
//! play NAME        play array NAME from row 0 (also when already playing)
//! play #INDEX      the same, by index
//! next | prev      next / previous playlist entry (or array)
//! wait SWITCH      SWITCH is one of the four above; reply `ok` only once the
//!                  frame with row 0 of the target was handed to the output,
//!                  `error: ...` if that did not happen within 50 frames
//! pause | resume   hold the current row / continue
//! stop             all LEDs off, keep running (resume or play to continue)
//! brightness X     0..1; `+X` / `-X` change it relatively
//! list             JSON: {"arrays": [names in index order]}
//! status           JSON: position, counters, latency; `pending` names an
//!                  accepted switch not on the strip yet, `switch_seq` counts
//!                  accepted switches, `shown_seq` the last one shown
//! reload           re-open the pack (after it was replaced by `rowplay pack`)
//! ```

pub mod client;
pub mod notify;
pub mod path;
pub mod protocol;
pub mod server;
pub mod signals;
pub mod socket;

pub use client::{ctl, ClientError};
pub use path::{CommandError, CommandPath, CurrentLibrary, Reply};
pub use protocol::{parse_line, ProtocolError, Request, Switch, MAX_LINE};
pub use server::{serve, MAX_CLIENTS};
