//! systemd service notification (`$NOTIFY_SOCKET`): READY, STOPPING and the
//! watchdog ping.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// The notification socket, if the service manager gave one.
pub struct Notify {
    sock: Option<(UnixDatagram, PathBuf)>,
    /// `WatchdogSec=` as systemd passes it, if set.
    pub watchdog: Option<Duration>,
}

impl Notify {
    /// From `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`.
    pub fn from_env() -> Notify {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|p| {
            let p = PathBuf::from(p);
            // Abstract sockets ('@...') are not supported by std; systemd
            // uses a path under /run for system services.
            if p.as_os_str().as_encoded_bytes().first() == Some(&b'@') {
                return None;
            }
            UnixDatagram::unbound().ok().map(|s| (s, p))
        });
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_micros);
        Notify { sock, watchdog }
    }

    /// Send one message (`READY=1`, `WATCHDOG=1`, ...); failures are ignored.
    pub fn send(&mut self, msg: &str) {
        if let Some((s, p)) = &self.sock {
            let _ = s.send_to(msg.as_bytes(), p);
        }
    }
}
