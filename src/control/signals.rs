//! Signals: SIGINT and SIGTERM end playback; SIGHUP re-opens the pack, or,
//! when the player draws the terminal preview on its controlling terminal,
//! ends it like SIGTERM (the terminal is gone: a closed tmux session or a
//! dropped ssh), so that it does not play on in the background with nothing
//! to draw on. A service has no controlling terminal, so there SIGHUP stays
//! reload.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};

/// What SIGHUP means for this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hangup {
    /// Re-open the pack.
    Reload,
    /// End playback as SIGTERM does.
    Stop,
}

/// Whether the process has a controlling terminal.
pub fn has_controlling_terminal() -> bool {
    std::fs::File::open("/dev/tty").is_ok()
}

/// Install the handlers: SIGINT/SIGTERM set `stop`; SIGHUP sets `hup` or
/// `stop` as `hangup` says. SIGPIPE is ignored (a closed `ctl` connection
/// must not kill the player).
pub fn install(stop: Arc<AtomicBool>, hup: Arc<AtomicBool>, hangup: Hangup) {
    // The handlers only store to atomics, which is async-signal-safe.
    static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    static HUP: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    let _ = STOP.set(stop);
    let _ = HUP.set(hup);
    extern "C" fn on_stop(_: libc::c_int) {
        if let Some(s) = STOP.get() {
            s.store(true, SeqCst);
        }
    }
    extern "C" fn on_hup(_: libc::c_int) {
        if let Some(s) = HUP.get() {
            s.store(true, SeqCst);
        }
    }
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = |h| SigAction::new(SigHandler::Handler(h), SaFlags::SA_RESTART, SigSet::empty());
    let hup_handler = match hangup {
        Hangup::Reload => on_hup,
        Hangup::Stop => on_stop,
    };
    // SAFETY: the handlers are async-signal-safe (atomic stores only).
    unsafe {
        let _ = sigaction(Signal::SIGINT, &action(on_stop));
        let _ = sigaction(Signal::SIGTERM, &action(on_stop));
        let _ = sigaction(Signal::SIGHUP, &action(hup_handler));
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}
