//! MultiSync as it is deployed: one leader and three followers, each in a
//! network namespace of its own on one bridge, the leader multicasting to
//! 239.70.80.80 (no `--multisync-to`), the followers joined on their own
//! interface. Needs root and `ip` (CI runs as root); says it skipped
//! otherwise, and in the emulated ARM lane. Asserts the same exact things
//! as `multisync_cli`; nothing leaves the namespaces.

use crate::multisync_cli::{follower_addr, player_in, same_rows, term, wait_frames};
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
        let id = std::process::id();
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
