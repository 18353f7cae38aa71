//! The live-input receivers driven by independent senders (python `sacn`
//! 1.11.0, stupidArtnet 1.6.0) from the venv named by
//! `ROWPLAY_PEERS_VENV`; skipped with a note when it is unset (or under
//! the emulated ARM lane), and then they must run. The
//! scripts are in tests/peers/ and send only to 127.0.0.1.

use rowplay::clock::monotonic_ns;
use rowplay::net::settings::Listen;
use rowplay::net::{LiveView, Mapping, NetSettings, Protocol, Receiver};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn venv() -> Option<PathBuf> {
    crate::util::peers_venv("this peer test")
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The pattern the scripts send: universe index k, channel c, frame f.
fn expected(frame: u32, universes: usize, channels: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for k in 0..universes {
        for c in 0..channels {
            v.push(((7 * c + 13 * k + frame as usize) & 0xFF) as u8);
        }
    }
    v
}

/// Run the sender to its end while taking frames; returns the last frame
/// seen and how many there were.
fn run_and_watch(view: &mut LiveView, cmd: &mut Command) -> (Vec<u8>, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the peer sender");
    let mut buf = vec![0u8; view.frame_len()];
    let mut last = Vec::new();
    let mut frames = 0;
    let give_up = monotonic_ns() + 60_000_000_000;
    loop {
        view.wait_until(monotonic_ns() + 50_000_000);
        while view.latest(&mut buf).is_some() {
            last = buf.clone();
            frames += 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "peer sender failed: {status}");
            break;
        }
        assert!(monotonic_ns() < give_up, "peer sender did not finish");
    }
    (last, frames)
}

fn start(p: Protocol, port: u16, multicast: bool, first: u16) -> (Receiver, LiveView) {
    let s = NetSettings {
        listen: vec![Listen { protocol: p, port }],
        listen_addr: Ipv4Addr::LOCALHOST,
        multicast,
        universe: first.max(1),
        artnet_universe: first,
        ..NetSettings::default()
    };
    let map = Mapping::new(340, 3, 510, s.universe, s.artnet_universe, 0).unwrap();
    Receiver::start(&s, map).unwrap()
}

/// A port nobody is likely to use, different per test.
fn port(k: u16) -> u16 {
    20_000 + (std::process::id() as u16 % 20_000) + k
}

#[test]
fn sacn_unicast_frames_and_termination() {
    let Some(v) = venv() else { return };
    let p = port(1);
    let (rx, mut view) = start(Protocol::E131, p, false, 1);
    let (last, frames) = run_and_watch(
        &mut view,
        Command::new(v.join("bin/python"))
            .arg(script("sacn_send.py"))
            .args([
                "--port",
                &p.to_string(),
                "--frames",
                "30",
                "--priority",
                "150",
            ]),
    );
    assert!(frames > 0);
    assert_eq!(last, expected(29, 2, 510));
    // deactivate_output sent Stream_Terminated: live has ended.
    assert!(!view.is_live());
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["winner"], serde_json::Value::Null);
}

#[test]
fn sacn_with_sync_packets() {
    let Some(v) = venv() else { return };
    let p = port(2);
    let (rx, mut view) = start(Protocol::E131, p, true, 1);
    let (last, frames) = run_and_watch(
        &mut view,
        Command::new(v.join("bin/python"))
            .arg(script("sacn_send.py"))
            .args(["--port", &p.to_string(), "--frames", "30", "--sync"]),
    );
    assert!(frames > 0);
    assert_eq!(last, expected(29, 2, 510));
    drop(rx);
}

#[test]
fn stupidartnet_sequence_zero() {
    let Some(v) = venv() else { return };
    let p = port(3);
    let (rx, mut view) = start(Protocol::ArtNet, p, false, 0);
    let (last, frames) = run_and_watch(
        &mut view,
        Command::new(v.join("bin/python"))
            .arg(script("stupidartnet_send.py"))
            .args([
                "--port",
                &p.to_string(),
                "--frames",
                "20",
                "--artsync",
                "last",
            ]),
    );
    assert!(frames > 0);
    assert_eq!(last, expected(19, 2, 510));
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["sources"][0]["sequence_errors"], 0);
    assert_eq!(j["sources"][0]["universes"], serde_json::json!([0, 1]));
}
