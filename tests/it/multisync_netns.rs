//! MultiSync as it is deployed: one leader and three followers, each in a
//! network namespace of its own on one bridge, the leader multicasting to
//! 239.70.80.80 (no `--multisync-to`), the followers joined on their own
//! interface; then the same over impaired paths, multicast and unicast,
//! each follower behind `bench/udp_relay.py` in its own namespace (0-10 ms
//! of random delay, 5 % dropped, 5 % held back 15 ms), and an
//! xSchedule-style master written from the packet layouts over the same
//! impaired multicast. Needs root and `ip`
//! (CI runs as root); says it skipped otherwise, and in the emulated ARM
//! lane. Asserts the same exact things as `multisync_cli`; nothing leaves
//! the namespaces.

use crate::multisync_cli::{
    follower_addr, follows_in_order, fpp_master_from, player_in, same_rows, same_rows_or_joined,
    shown, term, wait_frames,
};
use crate::util::*;
use std::process::Command;

/// The namespaces and the bridge; removed when dropped, even on failure.
struct Net {
    hub: String,
    nodes: Vec<String>,
}

fn ip(args: &[&str]) {
    let o = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        o.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Net {
    /// `n` nodes 10.77.0.1.. on a bridge in a hub namespace, with the
    /// multicast route on their interface.
    fn new(n: usize) -> Net {
        // One set per test: the tests of this file run at the same time.
        static NETS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let id = format!(
            "{}x{}",
            std::process::id(),
            NETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let hub = format!("rph{id}");
        let net = Net {
            nodes: (1..=n).map(|k| format!("rpn{id}-{k}")).collect(),
            hub: hub.clone(),
        };
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for (k, ns) in net.nodes.iter().enumerate() {
            let port = format!("p{}", k + 1);
            let addr = format!("10.77.0.{}/24", k + 1);
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&[
                "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
                &hub,
            ]);
            ip(&["-n", ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", ns, "link", "set", "eth0", "up"]);
            ip(&["-n", ns, "route", "add", "224.0.0.0/4", "dev", "eth0"]);
            ip(&["-n", &hub, "link", "set", &port, "master", "br0"]);
            ip(&["-n", &hub, "link", "set", &port, "up"]);
        }
        net
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.nodes.iter().chain(std::iter::once(&self.hub)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip_ok = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !ip_ok || std::env::var_os("QEMU_CPU").is_some() {
        eprintln!("skipped: needs root, iproute2 and a real kernel (not the ARM emulator)");
        return false;
    }
    true
}

#[test]
fn a_leader_multicasts_to_three_followers_in_namespaces() {
    if !can_run() {
        return;
    }
    let net = Net::new(4);
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 6), named("b", 2, 40, 6)],
        8,
    );
    let mut followers = Vec::new();
    for k in 2..=4 {
        let listen = format!("10.77.0.{k}");
        let (mut g, _sock, cap) = player_in(
            Some(&net.nodes[k - 1]),
            dir.path(),
            &p,
            &format!("f{k}"),
            &["--multisync", "follow", "--multisync-listen", &listen],
        );
        assert!(follower_addr(g.child()).ends_with(":32320"));
        followers.push((g, cap));
    }
    let (mut lead, sl, cl) = player_in(
        Some(&net.nodes[0]),
        dir.path(),
        &p,
        "lead",
        &["--multisync", "lead", "--multisync-listen", "10.77.0.1"],
    );
    let err = lead.child().stderr.take().unwrap();
    std::thread::spawn(move || std::io::Read::read_to_end(&mut { err }, &mut Vec::new()));
    wait_frames(&sl, 90);
    assert_eq!(ctl(&sl, "play b"), "ok");
    let n = frames(&sl);
    wait_frames(&sl, n + 30);
    term(lead.take());
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut caps = Vec::new();
    for (k, (mut g, cap)) in followers.into_iter().enumerate() {
        term(g.take());
        caps.push((format!("follower {}", k + 2), cap));
    }
    let list: Vec<(&str, &std::path::PathBuf)> =
        caps.iter().map(|(w, c)| (w.as_str(), c)).collect();
    same_rows(&cl, &list);
    drop(net);
}

/// Whether the impairing relay can run: `can_run` and a `python3` (the
/// relay uses its standard library only). Without one it says it skipped,
/// but not in CI, where the peers venv is set and every peer test must run.
fn can_run_relay() -> bool {
    if !can_run() {
        return false;
    }
    let py = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !py {
        assert!(
            std::env::var_os("ROWPLAY_PEERS_VENV").is_none(),
            "python3 is needed for bench/udp_relay.py"
        );
        eprintln!("skipped: needs python3 for bench/udp_relay.py");
    }
    py
}

/// The impairing relay in namespace `ns`: from `listen` (a unicast
/// address, or the multicast group joined on `iface`) to `to`.
fn relay(ns: &str, listen: &str, iface: &str, to: &str, seed: usize) -> Guard {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/udp_relay.py");
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", script, "--listen", listen])
        .args([
            "--iface", iface, "--to", to, "--max-ms", "10", "--drop", "0.05",
        ])
        .args([
            "--reorder",
            "0.05",
            "--reorder-ms",
            "15",
            "--seconds",
            "120",
        ])
        .args(["--seed", &seed.to_string(), "--say-ready"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run python3 bench/udp_relay.py");
    let mut g = Guard(Some(child));
    // Listening (the group joined) before the leader's first START.
    let out = g.child().stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the relay did not start");
    g
}

#[test]
fn impaired_paths_multicast_and_unicast_keep_the_rows_in_step() {
    if !can_run_relay() {
        return;
    }
    let net = Net::new(4);
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 6), named("b", 2, 40, 6)],
        8,
    );
    const RELAY_PORT: u16 = 32330;
    for (round, multicast) in [(1, true), (2, false)] {
        let mut relays = Vec::new();
        let mut followers = Vec::new();
        let mut to = Vec::new();
        for k in 2..=4usize {
            let (ns, me) = (&net.nodes[k - 1], format!("10.77.0.{k}"));
            let listen = match multicast {
                true => format!("239.70.80.80:{RELAY_PORT}"),
                false => format!("{me}:{RELAY_PORT}"),
            };
            to.push(format!("{me}:{RELAY_PORT}"));
            relays.push(relay(
                ns,
                &listen,
                &me,
                &format!("{me}:32320"),
                10 * round + k,
            ));
            let (mut g, sock, cap) = player_in(
                Some(ns),
                dir.path(),
                &p,
                &format!("r{round}f{k}"),
                &["--multisync", "follow", "--multisync-listen", &me],
            );
            assert!(follower_addr(g.child()).ends_with(":32320"));
            followers.push((g, sock, cap));
        }
        let to = match multicast {
            true => format!("239.70.80.80:{RELAY_PORT}"),
            false => to.join(","),
        };
        let (mut lead, sl, cl) = player_in(
            Some(&net.nodes[0]),
            dir.path(),
            &p,
            &format!("r{round}lead"),
            &[
                "--multisync",
                "lead",
                "--multisync-listen",
                "10.77.0.1",
                "--multisync-to",
                &to,
            ],
        );
        let err = lead.child().stderr.take().unwrap();
        std::thread::spawn(move || std::io::Read::read_to_end(&mut { err }, &mut Vec::new()));
        wait_frames(&sl, 90);
        assert_eq!(ctl(&sl, "play b"), "ok");
        let n = frames(&sl);
        wait_frames(&sl, n + 30);
        // The relays did impair the path: packets came behind the
        // followers' estimate.
        let late: u64 = followers
            .iter()
            .map(|(_, s, _)| status(s)["multisync"]["late"].as_u64().unwrap_or(0))
            .sum();
        assert!(late > 0, "round {round}: no packet came late");
        term(lead.take());
        std::thread::sleep(std::time::Duration::from_millis(100));
        let mut caps = Vec::new();
        for (k, (mut g, _, cap)) in followers.into_iter().enumerate() {
            term(g.take());
            caps.push((format!("round {round}, follower {}", k + 2), cap));
        }
        drop(relays);
        let list: Vec<(&str, &std::path::PathBuf)> =
            caps.iter().map(|(w, c)| (w.as_str(), c)).collect();
        // A follower whose START was dropped joins at the row the next
        // SYNC names (frame 4 or 8 at FPP's cadence, a little after).
        let joined = same_rows_or_joined(&cl, &list, 12);
        eprintln!("round {round}: {joined} of 3 followers joined late (START lost)");
    }
    drop(net);
}

/// Run `f` on a thread of its own inside namespace `ns` (a network
/// namespace is per thread: only that thread moves).
fn in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a namespace file descriptor, open for the call.
        assert_eq!(
            unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
            0,
            "setns {path}"
        );
        f()
    })
}

#[test]
fn an_fpp_style_master_over_impaired_multicast() {
    if !can_run_relay() {
        return;
    }
    let net = Net::new(4);
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 6), named("shows/Song", 2, 300, 6)],
        8,
    );
    const RELAY_PORT: u16 = 32331;
    let (mut relays, mut followers) = (Vec::new(), Vec::new());
    for k in 2..=4usize {
        let (ns, me) = (&net.nodes[k - 1], format!("10.77.0.{k}"));
        let group = format!("239.70.80.80:{RELAY_PORT}");
        relays.push(relay(ns, &group, &me, &format!("{me}:32320"), 30 + k));
        let (g, sock, cap) = player_in(
            Some(ns),
            dir.path(),
            &p,
            &format!("x{k}"),
            &["--multisync", "follow", "--multisync-listen", &me],
        );
        followers.push((g, sock, cap));
    }
    // 200 frames (4 s) of "Song.fseq" from START, multicast from node 1.
    let to = format!("239.70.80.80:{RELAY_PORT}");
    in_netns(&net.nodes[0], move || {
        fpp_master_from("10.77.0.1:0", to, b"Song.fseq", 0, 200, false)
    })
    .join()
    .unwrap();
    let late: u64 = followers
        .iter()
        .map(|(_, s, _)| status(s)["multisync"]["late"].as_u64().unwrap_or(0))
        .sum();
    assert!(late > 0, "no packet came late");
    let song = 1; // "shows/Song" sorts after "a"
    for (k, (mut g, _, cap)) in followers.into_iter().enumerate() {
        term(g.take());
        let who = format!("follower {}", k + 2);
        let s: Vec<_> = shown(&cap);
        // Row 0 from START, or (START dropped) the row of the first SYNC
        // that came, frame 4 to 32 at this cadence; then every row once.
        assert!(
            s.first().is_some_and(|&(a, r)| a == song && r <= 36),
            "{who}: {s:?}"
        );
        follows_in_order(&s, song, 300, &who);
    }
    drop(relays);
    drop(net);
}
