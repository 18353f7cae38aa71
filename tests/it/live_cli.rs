//! Live input through the real binary: `rowplay play --listen ...` on a
//! stepping clock, packets over 127.0.0.1, the capture read back. DDP is
//! sent the way LedFx, WLED and xLights packetise it; E1.31 priorities are
//! checked with two python `sacn` senders when `ROWPLAY_PEERS_VENV` names
//! the peers' venv (else that test says it was skipped).

use crate::util::*;
use rowplay::net::LIVE_ARRAY;
use rowplay::output::record::parse_records;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The port the player printed for `proto` ("rowplay: live input on
/// ddp:PORT, ..."); the rest of its stderr is drained in the background.
fn live_port(child: &mut Child, proto: &str) -> u16 {
    let rest = stderr_line(child, "rowplay: live input on ");
    let at = rest.find(&format!("{proto}:")).unwrap() + proto.len() + 1;
    let digits: String = rest[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap()
}

/// Poll `status` until `f` holds (a hang guard only, not a timing check).
fn wait_status(
    sock: &Path,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let s = status(sock);
        if f(&s) {
            return s;
        }
        assert!(t.elapsed() < DEADLINE, "waited for {what}: {s}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A DDP frame as LedFx, WLED and xLights send it: 480 pixels per packet,
/// the push flag on the last.
fn send_ddp(s: &UdpSocket, port: u16, frame: &[u8], seq: u8) {
    let chunks: Vec<&[u8]> = frame.chunks(1440).collect();
    for (k, c) in chunks.iter().enumerate() {
        let flags = if k + 1 == chunks.len() { 0x41 } else { 0x40 };
        let mut p = vec![flags, seq, 0x0B, 0x01];
        p.extend_from_slice(&((k * 1440) as u32).to_be_bytes());
        p.extend_from_slice(&(c.len() as u16).to_be_bytes());
        p.extend_from_slice(c);
        s.send_to(&p, ("127.0.0.1", port)).unwrap();
    }
}

fn two_arrays(dir: &Path, leds: u32) -> PathBuf {
    pack(
        dir,
        vec![named("a", 1, 50, leds), named("b", 2, 50, leds)],
        8,
    )
}

#[test]
fn ddp_takes_over_and_playback_resumes_at_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let leds = 600; // two packets per frame
    let p = two_arrays(dir.path(), leds);
    let (child, sock, cap) = stepping_player(
        dir.path(),
        &p,
        &[
            "--listen",
            "ddp:0",
            "--listen-addr",
            "127.0.0.1",
            "--live-timeout",
            "0.3",
        ],
    );
    let mut child = Guard(Some(child));
    let port = live_port(child.child(), "ddp");
    let before = status(&sock);
    assert_eq!(
        before["live"]["winner"],
        serde_json::Value::Null,
        "{before}"
    );
    assert_eq!(before["showing"], "playback");
    step(&sock, 3);
    // A live frame is handed out without any grant: push mode.
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frame: Vec<u8> = (0..leds as usize * 3)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    send_ddp(&tx, port, &frame, 1);
    // Until a sender's first push, every packet completes a frame (WLED's
    // rule), so the first packet may show alone before the whole frame, or
    // be overwritten by it unseen (counted as dropped). Wait until both
    // completed frames are accounted for, so none is still on its way.
    let s = wait_status(&sock, "the live frame", |s| {
        let src = &s["live"]["sources"][0];
        let (done, dropped) = (src["frames"].as_u64(), src["frames_dropped"].as_u64());
        let shown = s["live_frames"].as_u64();
        done == Some(2) && shown.zip(dropped).map(|(a, b)| a + b) == Some(2)
    });
    let live_frames = s["live_frames"].as_u64();
    assert_eq!(s["showing"], "live", "{s}");
    let src = &s["live"]["sources"][0];
    assert_eq!(src["protocol"], "ddp", "{s}");
    assert_eq!(src["address"], "127.0.0.1");
    assert_eq!(s["live"]["winner"], src["id"]);
    // A switch while live waits for live to end.
    assert_eq!(ctl(&sock, "play b"), "ok");
    step(&sock, 2);
    let s = status(&sock);
    assert_eq!(
        (s["showing"].as_str(), s["live_frames"].as_u64()),
        (Some("live"), live_frames)
    );
    assert_eq!(s["pending"], "b", "{s}");
    // The source times out (on the receiver's clock); the next tick is
    // playback again, with the switch made while live.
    wait_status(&sock, "the source to time out", |s| {
        s["live"]["winner"].is_null()
    });
    step(&sock, 2);
    let st = stop(child.take(), &sock);
    assert!(st.success(), "{st}");
    let recs = parse_records(&std::fs::read(&cap).unwrap()).unwrap();
    let shown: Vec<(u32, u32)> = recs.iter().map(|r| (r.meta.array, r.meta.row)).collect();
    let first = shown.iter().position(|x| x.0 == LIVE_ARRAY).unwrap();
    let live = shown.iter().rposition(|x| x.0 == LIVE_ARRAY).unwrap();
    assert_eq!(&shown[1..first], &[(0, 0), (0, 1), (0, 2)], "{shown:?}");
    // The live counter (the row) is the frame completed: 2, the whole one.
    assert_eq!(shown[live], (LIVE_ARRAY, 2));
    assert_eq!(
        recs[live].bytes, frame,
        "the captured pixels are the ones sent"
    );
    assert_eq!(shown[live + 1], (1, 0), "{shown:?}");
    assert_eq!(shown[live + 2], (1, 1));
}

#[test]
fn ddp_resume_continues_the_array_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let p = two_arrays(dir.path(), 8);
    let (child, sock, cap) = stepping_player(
        dir.path(),
        &p,
        &[
            "--listen",
            "ddp:0",
            "--listen-addr",
            "127.0.0.1",
            "--live-timeout",
            "0.2",
            "--live-output",
            "tick",
        ],
    );
    let mut child = Guard(Some(child));
    let port = live_port(child.child(), "ddp");
    step(&sock, 4);
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    send_ddp(&tx, port, &[9; 24], 1);
    wait_status(&sock, "the source", |s| !s["live"]["winner"].is_null());
    // Tick mode: the frame waits for the tick.
    assert_eq!(status(&sock)["live_frames"], 0);
    step(&sock, 2);
    wait_status(&sock, "the source to time out", |s| {
        s["live"]["winner"].is_null()
    });
    step(&sock, 2);
    stop(child.take(), &sock);
    let recs = parse_records(&std::fs::read(&cap).unwrap()).unwrap();
    let shown: Vec<(u32, u32)> = recs.iter().map(|r| (r.meta.array, r.meta.row)).collect();
    assert_eq!(
        &shown[1..9],
        &[
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 3),
            (LIVE_ARRAY, 1),
            (LIVE_ARRAY, 1),
            (0, 4),
            (0, 5)
        ],
        "{shown:?}"
    );
    assert_eq!(recs[5].bytes, vec![9; 24]);
}

#[test]
fn sacn_priority_takeover_and_fallback() {
    let Some(venv) = std::env::var_os("ROWPLAY_PEERS_VENV").map(PathBuf::from) else {
        eprintln!("skipped: ROWPLAY_PEERS_VENV is not set (see tests/peers/README.md)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = two_arrays(dir.path(), 340);
    let (child, sock, cap) = stepping_player(
        dir.path(),
        &p,
        &[
            "--leds",
            "340",
            "--listen",
            "e131:0",
            "--listen-addr",
            "127.0.0.1",
            "--live-timeout",
            "0.5",
        ],
    );
    let mut child = Guard(Some(child));
    let port = live_port(child.child(), "e131");
    step(&sock, 2);
    let sender = |name: &str, prio: &str, frames: &str| {
        Command::new(venv.join("bin/python"))
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/sacn_send.py"
            ))
            .args(["--port", &port.to_string(), "--fps", "30"])
            .args(["--name", name, "--priority", prio, "--frames", frames])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start sacn_send.py")
    };
    let winner_name = |s: &serde_json::Value| -> Option<String> {
        let id = s["live"]["winner"].as_u64()?;
        s["live"]["sources"]
            .as_array()?
            .iter()
            .find(|x| x["id"].as_u64() == Some(id))
            .and_then(|x| x["name"].as_str().map(String::from))
    };
    let mut low = sender("low", "100", "150");
    wait_status(&sock, "the first sender", |s| {
        winner_name(s).as_deref() == Some("low")
    });
    let mut high = sender("high", "150", "30");
    let s = wait_status(&sock, "the higher priority", |s| {
        winner_name(s).as_deref() == Some("high")
    });
    assert_eq!(s["showing"], "live");
    assert!(wait_bounded(&mut high).success());
    // Stream_Terminated from the high sender: the low one wins again.
    wait_status(&sock, "the low sender again", |s| {
        winner_name(s).as_deref() == Some("low")
    });
    assert!(wait_bounded(&mut low).success());
    wait_status(&sock, "live to end", |s| s["live"]["winner"].is_null());
    step(&sock, 2);
    stop(child.take(), &sock);
    let recs = parse_records(&std::fs::read(&cap).unwrap()).unwrap();
    let shown: Vec<(u32, u32)> = recs.iter().map(|r| (r.meta.array, r.meta.row)).collect();
    let first_live = shown.iter().position(|x| x.0 == LIVE_ARRAY).unwrap();
    let last_live = shown.iter().rposition(|x| x.0 == LIVE_ARRAY).unwrap();
    assert_eq!(&shown[1..first_live], &[(0, 0), (0, 1)]);
    // Then playback from the row it left (and the stop's blank).
    assert_eq!(
        &shown[last_live + 1..last_live + 3],
        &[(0, 2), (0, 3)],
        "{shown:?}"
    );
    // The live frames are the senders' pattern: channel c of universe k in
    // frame f is (7c + 13k + f) & 0xFF; the last is frame 149 of "low".
    let want: Vec<u8> = (0..2)
        .flat_map(|k| (0..510).map(move |c| ((7 * c + 13 * k + 149) & 0xFF) as u8))
        .collect();
    assert_eq!(recs[last_live].bytes, want);
}
