//! The socket server: one thread, non-blocking sockets, bounded clients.
//!
//! It never blocks on a client: a client's input is not read while it has a
//! reply (or a `wait`) pending, so a client that never reads costs one reply
//! of memory; lines over [`MAX_LINE`] are answered with an error and
//! discarded; when all [`MAX_CLIENTS`] places are taken the least recently
//! active client is dropped to make room. Each wake-up also does the
//! command path's housekeeping and the systemd watchdog.

use super::notify::Notify;
use super::path::{CommandPath, Reply, Waiter};
use super::protocol::{parse_line, MAX_LINE};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Clients served at once; a new one beyond this replaces the least
/// recently active.
pub const MAX_CLIENTS: usize = 32;
/// How often the server wakes without traffic (signals, watchdog, fds).
const TICK: Duration = Duration::from_millis(100);
/// How often it checks pending `wait`s: often enough that the reply
/// follows the frame closely, rarely enough to cost nothing.
const WAIT_TICK: Duration = Duration::from_millis(2);
/// Work this thread would start less than this before the frame loop's
/// next deadline waits until just past it ([`crate::clock::keep_off`]).
/// On a Pi Zero both share the one core, and on a kernel without full
/// preemption a system call of this thread (a reply, a client's accept,
/// reading `/proc/self/fd`, unmapping a retired array) that is under way
/// at the deadline delays the frame loop's wake-up until it returns (the
/// same-CPU soak's late wake-ups gathered at the ticks after a command
/// and after this thread's idle wake-up; README, "Player and cyclictest
/// on one CPU", says how far this guard goes). A command that comes in
/// this span is taken just after the hand-out, and shown one frame later
/// than it could have been.
const GUARD_NS: u64 = 2_000_000;
/// Wait, if the frame loop's next deadline is less than [`GUARD_NS`] away,
/// until just after it.
fn clear_of_deadline(stats: &crate::stats::Stats) {
    crate::clock::keep_off(stats.next_deadline_ns.load(Relaxed), GUARD_NS);
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: VecDeque<u8>,
    wait: Option<Waiter>,
    discarding: bool,
    last_active: Instant,
    closed: bool,
}

/// One reply line for a request line (without newlines).
fn answer(path: &CommandPath, line: &[u8]) -> Result<String, Waiter> {
    match parse_line(line) {
        Ok(req) => match path.handle(&req) {
            Ok(Reply::Ok) => Ok("ok".into()),
            Ok(Reply::Json(v)) => Ok(v.to_string()),
            Ok(Reply::Wait(w)) => Err(w),
            Err(e) => Ok(format!("error: {e}")),
        },
        Err(e) => Ok(format!("error: {e}")),
    }
}

/// Serve the socket until the player stops.
pub fn serve(listener: Option<UnixListener>, path: &CommandPath) {
    let mut clients: Vec<Client> = Vec::new();
    let mut notify = Notify::from_env();
    notify.send("READY=1");
    let mut last_frames = u64::MAX;
    let mut last_ping = Instant::now();
    while !path.stopping() {
        // poll: the listener, then each client for input (nothing pending),
        // output (a reply pending) or nothing (a wait pending).
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(clients.len() + 1);
        if let Some(l) = &listener {
            fds.push(libc::pollfd {
                fd: l.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for c in &clients {
            let events = if !c.out.is_empty() {
                libc::POLLOUT
            } else if c.wait.is_some() {
                0
            } else {
                libc::POLLIN
            };
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        let tick = if clients.iter().any(|c| c.wait.is_some()) {
            WAIT_TICK
        } else {
            TICK
        };
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                tick.as_millis() as i32,
            )
        };

        clear_of_deadline(path.stats());
        if let Some(l) = &listener {
            // Accept a bounded number per wake-up.
            for _ in 0..MAX_CLIENTS {
                match l.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(true);
                        if clients.len() >= MAX_CLIENTS {
                            if let Some(i) =
                                (0..clients.len()).min_by_key(|&i| clients[i].last_active)
                            {
                                clients.swap_remove(i);
                            }
                        }
                        clients.push(Client {
                            stream,
                            inbuf: Vec::with_capacity(256),
                            out: VecDeque::new(),
                            wait: None,
                            discarding: false,
                            last_active: Instant::now(),
                            closed: false,
                        });
                    }
                    Err(_) => break,
                }
            }
        }
        for c in clients.iter_mut() {
            serve_client(c, path);
        }
        clients.retain(|c| !c.closed);
        path.housekeeping();

        // Watchdog: ping only while the player makes progress, so a hung
        // frame loop gets the service restarted.
        if let Some(interval) = notify.watchdog {
            let frames = path.stats().frames.load(Relaxed);
            if last_ping.elapsed() >= interval / 2 && frames != last_frames {
                notify.send("WATCHDOG=1");
                last_frames = frames;
                last_ping = Instant::now();
            }
        }
    }
    notify.send("STOPPING=1");
}

fn serve_client(c: &mut Client, path: &CommandPath) {
    if let Some(w) = &c.wait {
        match path.poll_wait(w) {
            None => return,
            Some(r) => {
                let line = match r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("error: {e}"),
                };
                c.out.extend(line.as_bytes());
                c.out.push_back(b'\n');
                c.wait = None;
            }
        }
    }
    // Flush a pending reply first; read nothing new until it is gone.
    while !c.out.is_empty() {
        let (a, _) = c.out.as_slices();
        match c.stream.write(a) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
                c.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                c.closed = true;
                return;
            }
        }
    }
    let mut buf = [0u8; 2048];
    loop {
        // Handle complete lines already buffered.
        while let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
            if c.discarding {
                c.discarding = false;
                continue;
            }
            match answer(path, &line[..line.len() - 1]) {
                Ok(reply) => {
                    c.out.extend(reply.as_bytes());
                    c.out.push_back(b'\n');
                }
                Err(w) => c.wait = Some(w),
            }
            // One reply at a time: further lines wait until it is read, so
            // a client that never reads holds one reply, and a flood from
            // one client is served one line per wake-up.
            return;
        }
        if c.inbuf.len() > MAX_LINE {
            c.inbuf.clear();
            if !c.discarding {
                c.discarding = true;
                c.out
                    .extend(format!("error: line longer than {MAX_LINE} bytes\n").as_bytes());
                return;
            }
        }
        match c.stream.read(&mut buf) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                c.inbuf.extend_from_slice(&buf[..n]);
                c.last_active = Instant::now();
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return, // WouldBlock, or an error that the next read reports again
        }
    }
}
