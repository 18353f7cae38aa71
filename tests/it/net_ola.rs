//! The E1.31 receiver driven by OLA's own E1.31 output plugin (`olad` from
//! Debian, frames sent with `ola_streaming_client`). OLA multicasts only,
//! sends only the slots it was given and only on change, and needs a
//! non-loopback interface, so it runs in a network namespace of its own
//! with a veth end holding 127.0.0.2 (tests/peers/README.md, "OLA", says
//! why each step is needed); the receiver is created inside
//! that namespace. Needs root; runs when `ROWPLAY_PEERS_VENV` is set (and
//! must then run), else prints that it was skipped.

use rowplay::clock::monotonic_ns;
use rowplay::net::settings::Listen;
use rowplay::net::{LiveView, Mapping, NetSettings, Protocol, Receiver};
use serde_json::Value;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// LEDs of the strip: 340 RGB LEDs, two universes of 510 channels.
const LEDS: usize = 340;
const CHANNELS: usize = 510;

/// A network namespace with olad running in it, both removed on drop
/// (also when the test fails half way).
struct OlaNs {
    name: String,
    olad: Option<Child>,
    conf: tempfile::TempDir,
}

impl OlaNs {
    /// The namespace: lo, a veth pair with 127.0.0.2/32 on v0,
    /// route_localnet (a 127.x source on a non-loopback device) and the
    /// multicast route through v0. Nothing in it reaches a real interface.
    fn new() -> OlaNs {
        let name = format!("rowplay-ola-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        run("ip", &["netns", "add", &name]);
        let conf = tempfile::tempdir().unwrap();
        // The guard exists from here on: a failure below still cleans up.
        let ns = OlaNs {
            name,
            olad: None,
            conf,
        };
        let n = ns.name.as_str();
        run("ip", &["-n", n, "link", "set", "lo", "up"]);
        run(
            "ip",
            &[
                "-n", n, "link", "add", "v0", "type", "veth", "peer", "name", "v1",
            ],
        );
        run("ip", &["-n", n, "addr", "add", "127.0.0.2/32", "dev", "v0"]);
        run("ip", &["-n", n, "link", "set", "v1", "up"]);
        run("ip", &["-n", n, "link", "set", "v0", "up"]);
        ns.exec(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.route_localnet=1",
            "net.ipv4.conf.v0.route_localnet=1",
        ]);
        run("ip", &["-n", n, "route", "add", "224.0.0.0/4", "dev", "v0"]);
        ns
    }

    /// Run a command inside the namespace, asserting success; its stdout.
    fn exec(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Start olad as Debian's `olad` user (it refuses root) on a fresh copy
    /// of tests/peers/ola/ (every plugin but E1.31 disabled), and wait until
    /// its E1.31 device is up.
    fn start_olad(&mut self) {
        let dir = self.conf.path();
        let template = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/ola");
        for e in std::fs::read_dir(&template).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "conf") {
                std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
            }
        }
        run("chown", &["-R", "olad", dir.to_str().unwrap()]);
        let log = std::fs::File::create(self.log_path()).unwrap();
        // `ip netns exec` and setpriv both exec: the child is olad itself.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args([
                "setpriv",
                "--reuid=olad",
                "--regid=nogroup",
                "--clear-groups",
            ])
            .args(["olad", "-l", "3", "-c", dir.to_str().unwrap()])
            .args(["--no-http", "--no-register-with-dns-sd"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start olad");
        self.olad = Some(child);
        let give_up = monotonic_ns() + 20_000_000_000;
        loop {
            let o = Command::new("ip")
                .args(["netns", "exec", &self.name, "ola_dev_info"])
                .output()
                .unwrap();
            let out = String::from_utf8_lossy(&o.stdout);
            if o.status.success() && out.contains("E1.31") && out.contains("127.0.0.2") {
                break;
            }
            if let Some(st) = self.olad.as_mut().unwrap().try_wait().unwrap() {
                panic!("olad exited ({st}):\n{}", self.log());
            }
            assert!(
                monotonic_ns() < give_up,
                "olad's E1.31 device did not come up:\n{out}\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// SIGTERM olad (it sends Stream_Terminated for each patched universe)
    /// and reap it.
    fn stop_olad(&mut self) {
        let mut c = self.olad.take().expect("olad runs");
        // SAFETY: kill(2) on the pid of a child we have not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let st = c.wait().unwrap();
        assert!(st.success(), "olad on SIGTERM: {st}\n{}", self.log());
    }

    fn log_path(&self) -> PathBuf {
        self.conf.path().join("olad.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Start rowplay's E1.31 receiver inside the namespace, listening on
    /// 127.0.0.2 (v0), multicast joined there. The sockets and the
    /// receiver's thread stay in the namespace: a thread inherits its
    /// creator's, and a socket keeps the one it was made in.
    fn receiver(&self) -> (Receiver, LiveView) {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open the namespace");
            // SAFETY: setns on a valid namespace fd; only this thread moves.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let s = NetSettings {
                listen: vec![Listen {
                    protocol: Protocol::E131,
                    port: 5568,
                }],
                listen_addr: Ipv4Addr::new(127, 0, 0, 2),
                multicast: true,
                universe: 1,
                // OLA sends only on change: no keep-alive to time out on.
                live_timeout_ns: 600_000_000_000,
                ..NetSettings::default()
            };
            let map = Mapping::new(LEDS, 3, CHANNELS as u16, 1, 0, 0).unwrap();
            Receiver::start(&s, map).expect("the receiver beside olad (SO_REUSEADDR)")
        })
        .join()
        .unwrap()
    }
}

impl Drop for OlaNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.olad.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Run a command, asserting success; its stdout.
fn run(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Take frames until the newest one equals `want`; the deadline only
/// guards against a hang.
fn wait_for_frame(view: &mut LiveView, rx: &Receiver, want: &[u8], ns: &OlaNs) {
    let mut buf = vec![0u8; view.frame_len()];
    let mut last: Option<Vec<u8>> = None;
    let give_up = monotonic_ns() + 20_000_000_000;
    loop {
        view.wait_until(monotonic_ns() + 50_000_000);
        while view.latest(&mut buf).is_some() {
            last = Some(buf.clone());
        }
        if last.as_deref() == Some(want) {
            return;
        }
        assert!(
            monotonic_ns() < give_up,
            "no frame equal to what OLA was given (last: {:?})\nreceiver: {}\n{}",
            last.map(|l| l[..12.min(l.len())].to_vec()),
            rx.stats().to_json(monotonic_ns()),
            ns.log()
        );
    }
}

/// `ola_streaming_client` for one universe: one frame per line of its
/// stdin, kept open between frames.
struct Streamer(Child);

impl Streamer {
    fn new(ns: &OlaNs, universe: u16) -> Streamer {
        let c = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ola_streaming_client"])
            .args(["-u", &universe.to_string()])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start ola_streaming_client");
        Streamer(c)
    }

    fn send(&mut self, slots: &[u8]) {
        let line: Vec<String> = slots.iter().map(|b| b.to_string()).collect();
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", line.join(",")).unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        drop(self.0.stdin.take());
        let st = self.0.wait().unwrap();
        assert!(st.success(), "ola_streaming_client: {st}");
    }
}

/// The model of the receiver's frame: each universe's latest data is laid
/// over what it held (OLA sends only the slots it was given).
fn lay(frame: &mut [u8], universe_index: usize, slots: &[u8]) {
    let start = universe_index * CHANNELS;
    frame[start..start + slots.len()].copy_from_slice(slots);
}

fn source(rx: &Receiver) -> Value {
    let j = rx.stats().to_json(monotonic_ns());
    let s = j["sources"].as_array().expect("sources");
    assert_eq!(s.len(), 1, "one source, olad: {j}");
    s[0].clone()
}

fn require_tools() {
    for t in [
        "olad",
        "ola_streaming_client",
        "ola_set_priority",
        "ola_dev_info",
    ] {
        crate::util::require_peer(&Path::new("/usr/bin").join(t), "OLA (apt-get install ola)");
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "ROWPLAY_PEERS_VENV is set but the OLA test needs root (network namespaces)"
    );
}

/// OLA's frames arrive whole (only the slots it was given, on change),
/// with the priority `ola_set_priority` set, and olad's SIGTERM
/// (Stream_Terminated) ends the source at once.
#[test]
fn ola_e131_frames_priority_and_termination() {
    if crate::util::peers_venv("the OLA test").is_none() {
        return;
    }
    require_tools();
    let mut ns = OlaNs::new();
    ns.start_olad();
    // Port 0 of device 1 carries universe 1 (tests/peers/ola/ola-port.conf).
    ns.exec(&["ola_set_priority", "-d", "1", "-p", "0", "-o", "150"]);
    let (rx, mut view) = ns.receiver();
    assert_eq!(view.frame_len(), LEDS * 3);
    let mut want = vec![0u8; LEDS * 3];

    // A stream of whole universes, each frame seen before the next is sent
    // (OLA keeps only the newest data of a universe).
    let mut u1 = Streamer::new(&ns, 1);
    for f in 0..5u32 {
        let slots: Vec<u8> = (0..CHANNELS)
            .map(|c| ((7 * c as u32 + f) & 0xFF) as u8)
            .collect();
        u1.send(&slots);
        lay(&mut want, 0, &slots);
        wait_for_frame(&mut view, &rx, &want, &ns);
    }
    assert!(view.is_live());
    let s = source(&rx);
    assert_eq!(s["protocol"], "e131");
    assert_eq!(s["address"], "127.0.0.2");
    assert_eq!(
        s["priority"], 150,
        "ola_set_priority 150 on universe 1: {s}"
    );
    assert_eq!(s["name"], "rowplay-ola");
    assert_eq!(s["universes"], serde_json::json!([1]));
    assert_eq!(s["sequence_errors"], 0);

    // Short updates: universe 2 gets 3 slots, universe 1 six; the rest of
    // each universe keeps what it had.
    let mut u2 = Streamer::new(&ns, 2);
    u2.send(&[1, 2, 3]);
    lay(&mut want, 1, &[1, 2, 3]);
    wait_for_frame(&mut view, &rx, &want, &ns);
    u1.send(&[255, 0, 0, 0, 255, 0]);
    lay(&mut want, 0, &[255, 0, 0, 0, 255, 0]);
    wait_for_frame(&mut view, &rx, &want, &ns);
    u1.finish();
    u2.finish();
    let s = source(&rx);
    assert_eq!(s["universes"], serde_json::json!([1, 2]));
    assert_eq!(s["sequence_errors"], 0);

    // Stream_Terminated on SIGTERM: live ends without waiting for the
    // (10-minute) time-out.
    ns.stop_olad();
    let give_up = monotonic_ns() + 20_000_000_000;
    while view.is_live() {
        view.wait_until(monotonic_ns() + 50_000_000);
        assert!(
            monotonic_ns() < give_up,
            "olad's Stream_Terminated did not end the source"
        );
    }
    let j = rx.stats().to_json(monotonic_ns());
    assert_eq!(j["winner"], Value::Null);
    drop(rx);
}
