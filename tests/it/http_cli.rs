//! The real binary with `--http`: the API drives the player through the
//! same command path as the socket, and the page's live stream shows what
//! the strip shows (door 3). Frames are stepped (`--clock step`).

use crate::util::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One request, the whole response (status line, headers, body).
fn http(addr: &str, req: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    http(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

#[test]
fn the_http_api_drives_the_player_through_the_command_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 6, 2), named("b", 2, 6, 2)],
        8,
    );
    let sock = dir.path().join("s.sock");
    let mut child = Command::new(bin())
        .args([
            "play",
            p.to_str().unwrap(),
            "--clock",
            "step",
            "--rt-priority",
            "0",
            "--fps",
            "30",
        ])
        .args([
            "--output",
            "null",
            "--http",
            "127.0.0.1:0",
            "--http-token",
            "t0k",
        ])
        .arg("--socket")
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The bound address is printed on start-up.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && err.read_line(&mut line).unwrap() > 0 {
        if let Some(a) = line.trim().strip_prefix("rowplay: http listening on ") {
            addr = Some(a.to_string());
        }
        line.clear();
    }
    let addr = addr.expect("no `http listening on` line");
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    let t = Instant::now();
    while UnixStream::connect(&sock).is_err() {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(10));
    }
    let ctl = |l: &str| rowplay::control::ctl(Some(&sock), l).unwrap();
    assert_eq!(ctl("step 2"), "ok");
    // `step` only grants frames: wait until both were played.
    let t = Instant::now();
    while serde_json::from_str::<serde_json::Value>(&ctl("status")).unwrap()["frames"] != 2 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "frames did not advance"
        );
        std::thread::sleep(Duration::from_millis(2));
    }

    // Reads are open; the status is the socket's.
    let (code, body) = get(&addr, "/api/status");
    assert_eq!(code, 200, "{body}");
    let st: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(st["arrays"], 2);
    // Arrays without a rate of their own show the player's default.
    let (code, body) = get(&addr, "/api/arrays");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["arrays"][0]["fps"], 30.0, "{body}");
    assert_eq!(v["arrays"][1]["fps"], 30.0, "{body}");
    // A change without the token is refused and queues nothing.
    let (code, _) = post(&addr, "/api/command", "play b");
    assert_eq!(code, 401);
    let st: serde_json::Value = serde_json::from_str(&ctl("status")).unwrap();
    assert_eq!(st["switch_seq"], 0);
    // With it, the same path as the socket: pending until the next frame.
    let req = format!(
        "POST /api/command HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer t0k\r\nConnection: close\r\nContent-Length: 6\r\n\r\nplay b"
    );
    let (code, body) = http(&addr, &req);
    assert_eq!((code, body.trim()), (200, r#"{"reply":"ok"}"#));
    let st: serde_json::Value = serde_json::from_str(&ctl("status")).unwrap();
    assert_eq!(
        (st["pending"].as_str(), st["switch_seq"].as_u64()),
        (Some("b"), Some(1))
    );
    let req = format!(
        "POST /api/command HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer t0k\r\nConnection: close\r\nContent-Length: 11\r\n\r\nplay nosuch"
    );
    let (code, body) = http(&addr, &req);
    assert_eq!(code, 400);
    assert!(body.contains("no array named"), "{body}");
    assert_eq!(ctl("step 1"), "ok");
    let t = Instant::now();
    loop {
        let st: serde_json::Value = serde_json::from_str(&ctl("status")).unwrap();
        if st["array"] == "b" {
            assert_eq!(st["pending"], serde_json::Value::Null);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "b never shown");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Door 3: the live stream carries the frame the player handed out.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /api/live HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut event = None;
    for _ in 0..50 {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap() == 0 {
            break;
        }
        if let Some(d) = l.strip_prefix("data: ") {
            event = Some(serde_json::from_str::<serde_json::Value>(d.trim()).unwrap());
            break;
        }
    }
    let event = event.expect("no live event");
    assert_eq!(event["leds"], 2);
    // Row 0 of b as the player shows it (gamma 1, brightness 1).
    let want: String = named("b", 2, 6, 2).array.data[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(event["rgb"].as_str(), Some(want.as_str()), "{event}");
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = rowplay::control::ctl(Some(&sock), "step 1");
    assert!(wait_bounded(&mut child).success());
}
