//! The server thread: one `poll` loop over a non-blocking listener and at
//! most `max_connections` non-blocking connections.
//!
//! Bounds, so that no client can hold the thread or grow its memory:
//! - when all `max_connections` places are taken, a new connection takes
//!   the place of the one idle longest (a kept-alive connection with
//!   nothing to send), else of the one that has spent longest, and at least
//!   [`EVICT_AFTER`], without completing its request head (a slow client);
//!   with neither it is answered 503 and closed. So slow clients cannot keep
//!   the page from everyone else;
//! - a request's head must be complete within `timeouts.head` of its first
//!   byte and its body within `timeouts.body` (totals, not per read, so a
//!   client sending a byte a second is dropped), a kept-alive connection
//!   idle for `timeouts.idle` is closed, and a response that makes no
//!   progress for `timeouts.write` is dropped with its connection;
//! - a connection holds at most one head ([`MAX_HEAD`]) plus one body
//!   ([`MAX_BODY`]) of input and one response of output; its input is not
//!   read while a response is pending, so a client that never reads costs
//!   one response;
//! - at most [`MAX_REQUESTS_PER_CONN`] requests per connection, one request
//!   per connection per wake-up;
//! - the live stream sends at most one event per [`LIVE_INTERVAL`] and skips
//!   frames while a client has not taken the previous ones.

use super::request::{parse_head, Head, Method, RequestError, MAX_BODY, MAX_HEAD};
use super::routes::{handle, Ctx, Reply, Response};
use super::{Backend, HttpError, HttpSettings, Timeouts};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Requests served on one connection before it is closed.
pub const MAX_REQUESTS_PER_CONN: u32 = 1000;
/// Shortest time between two live events to one client (25 a second).
pub const LIVE_INTERVAL: Duration = Duration::from_millis(40);
/// Most LEDs in a live event; wider frames are sampled down to this.
pub const LIVE_MAX_LEDS: usize = 300;
/// A live client with more than this pending is skipped until it reads.
const LIVE_BACKLOG: usize = 4 * 1024;
/// A comment line keeps idle live streams open through proxies.
const LIVE_KEEPALIVE: Duration = Duration::from_secs(15);
/// Longest wait in poll, so the stop flag is seen.
const TICK: Duration = Duration::from_millis(200);
/// Connections accepted per wake-up.
const ACCEPT_BATCH: usize = 32;
/// Bytes read per read call.
const READ_CHUNK: usize = 16 * 1024;
/// A connection this long without a complete request head may lose its
/// place to a new one when the server is full.
pub const EVICT_AFTER: Duration = Duration::from_millis(250);

/// Which connection a new one replaces when every place is taken: the one
/// idle longest (nothing to send), else the one longest without a complete
/// head and for at least [`EVICT_AFTER`]. `conns` gives each connection's
/// phase, whether output is pending, and whether its head is complete.
/// Pure, so the rule is tested without sockets or time passing.
fn victim(conns: &[(Phase, bool, bool)], now: Instant) -> Option<usize> {
    let idle = conns
        .iter()
        .enumerate()
        .filter_map(|(i, &(p, pending, _))| match p {
            Phase::Idle(since) if !pending => Some((since, i)),
            _ => None,
        })
        .min();
    if let Some((_, i)) = idle {
        return Some(i);
    }
    conns
        .iter()
        .enumerate()
        .filter_map(|(i, &(p, pending, head_done))| match p {
            Phase::Reading(since)
                if !pending
                    && !head_done
                    && now.saturating_duration_since(since) >= EVICT_AFTER =>
            {
                Some((since, i))
            }
            _ => None,
        })
        .min()
        .map(|(_, i)| i)
}

/// Where a connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request; since when (accept or previous response).
    Idle(Instant),
    /// A request has begun arriving at this time.
    Reading(Instant),
    /// The live stream: next event not before this time.
    Live(Instant),
}

struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// When output last moved (or was queued).
    out_since: Instant,
    phase: Phase,
    requests: u32,
    close_after: bool,
    continue_sent: bool,
    live_frame: Option<u64>,
    live_ping: Instant,
    closed: bool,
}

/// Why a connection is closed for lack of progress, if it is: a pure
/// function of its state and `now`, so the rules are tested without time
/// passing.
fn expired(
    phase: Phase,
    out_pending: bool,
    out_since: Instant,
    head_done: bool,
    now: Instant,
    t: &Timeouts,
) -> Option<&'static str> {
    if out_pending && now.saturating_duration_since(out_since) >= t.write {
        return Some("write");
    }
    match phase {
        Phase::Idle(since) if !out_pending && now.saturating_duration_since(since) >= t.idle => {
            Some("idle")
        }
        Phase::Reading(since) => {
            let limit = if head_done { t.body } else { t.head };
            (now.saturating_duration_since(since) >= limit).then_some(if head_done {
                "body"
            } else {
                "head"
            })
        }
        _ => None,
    }
}

/// The running server. Dropping it stops the thread.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop the thread and wait for it (within one poll tick).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Bind `settings.listen`, print `rowplay: http listening on ADDR:PORT` on
/// stderr and serve on a thread of its own (`rowplay-http`) until the
/// returned server is stopped or dropped.
pub fn start(settings: HttpSettings, backend: Arc<dyn Backend>) -> Result<HttpServer, HttpError> {
    let listener = TcpListener::bind(settings.listen).map_err(|source| HttpError::Bind {
        addr: settings.listen,
        source,
    })?;
    let bind_err = |source| HttpError::Bind {
        addr: settings.listen,
        source,
    };
    listener.set_nonblocking(true).map_err(bind_err)?;
    let addr = listener.local_addr().map_err(bind_err)?;
    eprintln!("rowplay: http listening on {addr}");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("rowplay-http".into())
        .spawn(move || {
            let mut ctx = Ctx::new(backend, settings, super::wled::mac_address());
            serve(&listener, &mut ctx, &stop2);
        })
        .map_err(HttpError::Thread)?;
    Ok(HttpServer {
        addr,
        stop,
        thread: Some(thread),
    })
}

fn serve(listener: &TcpListener, ctx: &mut Ctx, stop: &AtomicBool) {
    let mut conns: Vec<Conn> = Vec::new();
    let mut frame = Vec::new();
    let mut live_line = Vec::new();
    while !stop.load(SeqCst) {
        let mut fds = Vec::with_capacity(conns.len() + 1);
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        let mut live = false;
        for c in &conns {
            let pending = c.out_pos < c.out.len();
            live |= matches!(c.phase, Phase::Live(_));
            fds.push(libc::pollfd {
                fd: c.stream.as_raw_fd(),
                events: if pending {
                    libc::POLLOUT
                } else if matches!(c.phase, Phase::Live(_)) {
                    0
                } else {
                    libc::POLLIN
                },
                revents: 0,
            });
        }
        let wait = if live { LIVE_INTERVAL / 2 } else { TICK };
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                wait.as_millis() as i32,
            )
        };

        accept(listener, &mut conns, ctx.settings.max_connections);
        let now = Instant::now();
        let mut frame_no = None;
        if conns
            .iter()
            .any(|c| matches!(c.phase, Phase::Live(t) if now >= t))
        {
            frame_no = ctx.backend.last_frame(&mut frame);
        }
        for c in conns.iter_mut() {
            if let Phase::Live(_) = c.phase {
                live_step(c, frame_no, &frame, &mut live_line, now);
            } else {
                step(c, ctx, now);
            }
            flush(c, now);
            let head_done = matches!(parse_head(&c.inbuf), Ok(Some(_)));
            if expired(
                c.phase,
                c.out_pos < c.out.len(),
                c.out_since,
                head_done,
                now,
                &ctx.settings.timeouts,
            )
            .is_some()
            {
                c.closed = true;
            }
        }
        conns.retain(|c| !c.closed);
    }
}

fn accept(listener: &TcpListener, conns: &mut Vec<Conn>, max: usize) {
    for _ in 0..ACCEPT_BATCH {
        let (stream, _) = match listener.accept() {
            Ok(s) => s,
            Err(_) => return, // WouldBlock, or EMFILE and the like: try next wake-up
        };
        if stream.set_nonblocking(true).is_err() {
            continue;
        }
        let _ = stream.set_nodelay(true);
        let now = Instant::now();
        if conns.len() >= max {
            let state: Vec<(Phase, bool, bool)> = conns
                .iter()
                .map(|c| {
                    let head = matches!(parse_head(&c.inbuf), Ok(Some(_)));
                    (c.phase, c.out_pos < c.out.len(), head)
                })
                .collect();
            match victim(&state, now) {
                Some(i) => {
                    let old = conns.swap_remove(i);
                    let _ = old.stream.shutdown(Shutdown::Both);
                }
                None => {
                    refuse_busy(stream);
                    continue;
                }
            }
        }
        conns.push(Conn {
            stream,
            inbuf: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            out_since: now,
            // The first request's head is due within `timeouts.head` of
            // the connection, so a silent client does not hold a place long.
            phase: Phase::Reading(now),
            requests: 0,
            close_after: false,
            continue_sent: false,
            live_frame: None,
            live_ping: now,
            closed: false,
        });
    }
}

/// Answer 503 and close, without waiting: the answer fits the socket's
/// send buffer of a fresh connection.
fn refuse_busy(mut stream: TcpStream) {
    let r = Response::error(503, "too many connections; try again").serialize(false, false);
    let mut with_retry = Vec::with_capacity(r.len() + 16);
    // Insert Retry-After before the blank line ending the head.
    if let Some(end) = r.windows(4).position(|w| w == b"\r\n\r\n") {
        with_retry.extend_from_slice(&r[..end + 2]);
        with_retry.extend_from_slice(b"Retry-After: 1\r\n");
        with_retry.extend_from_slice(&r[end + 2..]);
    }
    let _ = stream.write(&with_retry);
    let _ = stream.shutdown(Shutdown::Write);
    // Take what the client already sent, so that closing sends FIN, not
    // a reset that could destroy the answer before it is read.
    let mut sink = [0u8; 1024];
    let _ = stream.read(&mut sink);
}

/// Queue a response.
fn queue(c: &mut Conn, bytes: Vec<u8>, now: Instant) {
    if c.out_pos >= c.out.len() {
        c.out.clear();
        c.out_pos = 0;
        c.out_since = now;
    }
    c.out.extend_from_slice(&bytes);
}

/// Write what is pending, as far as the socket takes it.
fn flush(c: &mut Conn, now: Instant) {
    while c.out_pos < c.out.len() {
        match c.stream.write(&c.out[c.out_pos..]) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                c.out_pos += n;
                c.out_since = now;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.closed = true;
                return;
            }
        }
    }
    // All written.
    c.out.clear();
    c.out_pos = 0;
    if c.close_after {
        let _ = c.stream.shutdown(Shutdown::Write);
        c.closed = true;
    }
}

/// Read and serve at most one request.
fn step(c: &mut Conn, ctx: &mut Ctx, now: Instant) {
    if c.out_pos < c.out.len() || c.close_after {
        return; // one response at a time
    }
    // Serve a request already buffered (pipelined) before reading more.
    if !serve_buffered(c, ctx, now) {
        read_some(c, now);
        serve_buffered(c, ctx, now);
    }
}

/// How many bytes the buffered request still needs, given what is known.
fn want(inbuf: &[u8]) -> usize {
    match parse_head(inbuf) {
        Ok(Some(h)) => h.total_len(),
        _ => MAX_HEAD + 1,
    }
}

fn read_some(c: &mut Conn, now: Instant) {
    let mut buf = [0u8; READ_CHUNK];
    // Bounded: at most a head and a body, in a few reads per wake-up.
    for _ in 0..((MAX_HEAD + MAX_BODY) / READ_CHUNK + 2) {
        let room = want(&c.inbuf).saturating_sub(c.inbuf.len()).min(READ_CHUNK);
        if room == 0 {
            return;
        }
        match c.stream.read(&mut buf[..room]) {
            Ok(0) => {
                c.closed = true;
                return;
            }
            Ok(n) => {
                if let Phase::Idle(_) = c.phase {
                    c.phase = Phase::Reading(now);
                }
                c.inbuf.extend_from_slice(&buf[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                c.closed = true;
                return;
            }
        }
    }
}

/// Serve one complete buffered request; false when none is complete.
fn serve_buffered(c: &mut Conn, ctx: &mut Ctx, now: Instant) -> bool {
    if c.inbuf.is_empty() {
        return false;
    }
    let head: Head<'_> = match parse_head(&c.inbuf) {
        Ok(Some(h)) => h,
        Ok(None) => return false,
        Err(e) => {
            error_and_close(c, &e, now);
            return true;
        }
    };
    if c.inbuf.len() < head.total_len() {
        if head.expect_continue && !c.continue_sent {
            c.continue_sent = true;
            queue(c, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec(), now);
        }
        return false;
    }
    let total = head.total_len();
    let body = &c.inbuf[head.head_len..total];
    c.requests += 1;
    let keep = head.keep_alive && c.requests < MAX_REQUESTS_PER_CONN;
    let head_only = head.method == Method::Head;
    match handle(ctx, &head, body) {
        Reply::Full(r) => {
            let bytes = r.serialize(keep, head_only);
            c.close_after = !keep || r.close;
            queue(c, bytes, now);
        }
        Reply::Live => {
            let start = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n\
X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\nretry: 2000\n\n";
            queue(c, start.to_vec(), now);
            c.phase = Phase::Live(now);
            c.live_ping = now;
            c.inbuf.clear();
            return true;
        }
    }
    c.inbuf.drain(..total);
    c.continue_sent = false;
    c.phase = if c.inbuf.is_empty() {
        Phase::Idle(now)
    } else {
        Phase::Reading(now)
    };
    true
}

fn error_and_close(c: &mut Conn, e: &RequestError, now: Instant) {
    let r = Response::error(e.status(), e.to_string());
    queue(c, r.serialize(false, false), now);
    c.close_after = true;
    c.inbuf.clear();
}

/// One live event, when one is due and the client keeps up.
fn live_step(c: &mut Conn, frame_no: Option<u64>, frame: &[u8], line: &mut Vec<u8>, now: Instant) {
    let Phase::Live(next) = c.phase else { return };
    // Anything the client sends now is ignored, but a closed peer is seen.
    let mut sink = [0u8; 256];
    match c.stream.read(&mut sink) {
        Ok(0) => {
            c.closed = true;
            return;
        }
        Ok(_) => {}
        Err(e)
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
        Err(_) => {
            c.closed = true;
            return;
        }
    }
    if now < next || c.out.len() - c.out_pos > LIVE_BACKLOG {
        return;
    }
    match frame_no {
        Some(n) if c.live_frame != Some(n) => {
            live_event(n, frame, line);
            queue(c, std::mem::take(line), now);
            c.live_frame = Some(n);
            c.phase = Phase::Live(now + LIVE_INTERVAL);
            c.live_ping = now;
        }
        _ if now.saturating_duration_since(c.live_ping) >= LIVE_KEEPALIVE => {
            queue(c, b": ping\n\n".to_vec(), now);
            c.live_ping = now;
        }
        _ => {}
    }
    // A stream's output is always pending or just sent; `out_since` must
    // not make an idle-but-healthy stream look stalled.
    if c.out_pos >= c.out.len() {
        c.out_since = now;
    }
}

/// `data: {"frame":N,"leds":L,"rgb":"rrggbb..."}` for at most
/// [`LIVE_MAX_LEDS`] LEDs sampled evenly from `frame` (RGB).
pub fn live_event(n: u64, frame: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let leds = frame.len() / 3;
    let shown = leds.min(LIVE_MAX_LEDS);
    out.clear();
    out.extend_from_slice(format!("data: {{\"frame\":{n},\"leds\":{leds},\"rgb\":\"").as_bytes());
    for k in 0..shown {
        // k < shown <= leds, so the index is < leds.
        let i = k * leds / shown;
        for &b in &frame[i * 3..i * 3 + 3] {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
    out.extend_from_slice(b"\"}\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_server_makes_room_from_the_idle_then_the_slow() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let now = t0 + ms(3000);
        let reading = |at: u64| Phase::Reading(t0 + ms(at));
        // Fresh, complete or busy connections keep their places.
        let busy = [
            (reading(2900), false, false), // 0.1 s without a head: too soon
            (reading(0), false, true),     // head complete: reading its body
            (reading(0), true, false),     // output pending
            (Phase::Live(t0), false, false),
        ];
        assert_eq!(victim(&busy, now), None);
        // The slowest reader beyond EVICT_AFTER goes.
        let mut v = busy.to_vec();
        v.push((reading(2500), false, false));
        v.push((reading(200), false, false));
        assert_eq!(victim(&v, now), Some(5));
        // An idle kept-alive connection goes before any reader.
        v.push((Phase::Idle(t0 + ms(2900)), false, false));
        v.push((Phase::Idle(t0 + ms(2000)), false, false));
        assert_eq!(victim(&v, now), Some(7));
        // Idle with a response still going out is not idle.
        let w = [(Phase::Idle(t0), true, false)];
        assert_eq!(victim(&w, now), None);
    }

    #[test]
    fn deadlines_are_totals() {
        let t = Timeouts::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // A request that began at t0 and still has no complete head at 5 s
        // is dropped, however recently its last byte came.
        assert_eq!(
            expired(Phase::Reading(t0), false, t0, false, t0 + s(4), &t),
            None
        );
        assert_eq!(
            expired(Phase::Reading(t0), false, t0, false, t0 + s(5), &t),
            Some("head")
        );
        assert_eq!(
            expired(Phase::Reading(t0), false, t0, true, t0 + s(5), &t),
            None
        );
        assert_eq!(
            expired(Phase::Reading(t0), false, t0, true, t0 + s(10), &t),
            Some("body")
        );
        assert_eq!(
            expired(Phase::Idle(t0), false, t0, false, t0 + s(14), &t),
            None
        );
        assert_eq!(
            expired(Phase::Idle(t0), false, t0, false, t0 + s(15), &t),
            Some("idle")
        );
        // A response nobody reads: dropped after the write time-out.
        assert_eq!(
            expired(Phase::Idle(t0), true, t0, false, t0 + s(9), &t),
            None
        );
        assert_eq!(
            expired(Phase::Idle(t0), true, t0, false, t0 + s(10), &t),
            Some("write")
        );
        assert_eq!(
            expired(Phase::Live(t0), false, t0, false, t0 + s(100), &t),
            None
        );
    }

    #[test]
    fn live_events_are_sampled_hex() {
        let mut out = Vec::new();
        live_event(7, &[0x01, 0xab, 0xff, 0, 0, 0], &mut out);
        assert_eq!(
            out,
            b"data: {\"frame\":7,\"leds\":2,\"rgb\":\"01abff000000\"}\n\n"
        );
        let wide: Vec<u8> = (0..1000u32).flat_map(|i| [(i % 256) as u8, 0, 0]).collect();
        live_event(1, &wide, &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(text.trim().strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(json["leds"], 1000);
        assert_eq!(json["rgb"].as_str().unwrap().len(), LIVE_MAX_LEDS * 6);
        // The second LED shown is LED 3 (1000 / 300 = 3.33).
        assert_eq!(&json["rgb"].as_str().unwrap()[6..8], "03");
        live_event(2, &[], &mut out);
        assert!(out.ends_with(b"\"leds\":0,\"rgb\":\"\"}\n\n"));
    }
}
