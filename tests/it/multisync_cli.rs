//! MultiSync through the real binary on 127.0.0.1: one `--multisync lead`
//! player and two `--multisync follow` players, each with a capture. What
//! is asserted is exact: every node shows every row once and in order, the
//! followers show the leader's sequence, and a switch on the leader lands
//! on row 0 of the same array everywhere (on the same frame, or the one
//! next to it when the START came within the nodes' residual error of a
//! deadline). Skew in time is the benchmark's (`bench/run sync`).

use crate::util::*;
use rowplay::output::record::parse_records;
use rowplay::output::ALL_OFF;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A real-time player (CLOCK_MONOTONIC) with a socket and a capture.
fn player(dir: &Path, pack: &Path, name: &str, extra: &[&str]) -> (Guard, PathBuf, PathBuf) {
    player_in(None, dir, pack, name, extra)
}

/// The same inside network namespace `netns`, when given.
pub fn player_in(
    netns: Option<&str>,
    dir: &Path,
    pack: &Path,
    name: &str,
    extra: &[&str],
) -> (Guard, PathBuf, PathBuf) {
    let sock = dir.join(format!("{name}.sock"));
    let cap = dir.join(format!("{name}.cap"));
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    let mut child = cmd
        .args(["play", pack.to_str().unwrap(), "--rt-priority", "0"])
        .arg("--socket")
        .arg(&sock)
        .arg("--output")
        .arg(format!("capture:{}", cap.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_socket(&sock, &mut child);
    (Guard(Some(child)), sock, cap)
}

/// The address a follower printed ("rowplay: multisync follower on
/// ADDR"); the rest of its stderr is drained in the background.
pub fn follower_addr(child: &mut Child) -> String {
    stderr_line(child, "rowplay: multisync follower on ")
        .trim()
        .to_string()
}

pub fn wait_frames(sock: &Path, n: u64) {
    let t = Instant::now();
    while frames(sock) < n {
        assert!(t.elapsed() < DEADLINE, "frames did not advance");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn term(mut child: Child) {
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(wait_bounded(&mut child).success());
}

/// (array, row) of the frames shown, without the dark ones.
pub fn shown(cap: &Path) -> Vec<(u32, u32)> {
    parse_records(&std::fs::read(cap).unwrap())
        .unwrap()
        .iter()
        .filter(|r| r.meta.array != ALL_OFF)
        .map(|r| (r.meta.array, r.meta.row))
        .collect()
}

/// Every step is the next row of the same array (40 rows, looping) or
/// row 0 of `b`, once; a node that stalled (a deadline miss on a loaded
/// machine) rejoins the timeline by skipping the rows it missed, which is
/// counted. With `join_up_to`, the switch may land on a later row of `b`,
/// up to that one (a follower whose START was lost joins at the row the
/// next SYNC names). Returns the index of the switch, the rows skipped
/// and the row of `b` it landed on.
fn rows_in_order(s: &[(u32, u32)], b: u32, who: &str, join_up_to: u32) -> (usize, u32, u32) {
    assert!(
        s.first().is_some_and(|&(a, r)| a == 0 && r <= join_up_to),
        "{who} starts at row 0 of a (or joins by row {join_up_to}): {s:?}"
    );
    let (mut switch, mut skipped) = (None, 0);
    for (i, w) in s.windows(2).enumerate() {
        let ((a0, r0), (a1, r1)) = (w[0], w[1]);
        let ahead = (r1 + 40 - r0) % 40;
        if a1 == a0 && ahead == 1 {
            continue;
        }
        if a1 == a0 && (2..=6).contains(&ahead) {
            skipped += ahead - 1;
            continue;
        }
        assert!(
            a1 == b && a0 != b && r1 <= join_up_to && switch.is_none(),
            "{who}: {:?} after {:?} at {i}: {s:?}",
            w[1],
            w[0]
        );
        switch = Some(i + 1);
    }
    let at = switch.unwrap_or_else(|| panic!("{who} never switched to b: {s:?}"));
    assert!(skipped <= 10, "{who} skipped {skipped} rows: {s:?}");
    (at, skipped, s[at].1)
}

#[test]
fn a_leader_and_two_followers_show_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 6), named("b", 2, 40, 6)],
        8,
    );
    let follow = ["--multisync", "follow", "--multisync-listen", "127.0.0.1:0"];
    let (mut f1, s1, c1) = player(dir.path(), &p, "f1", &follow);
    let (mut f2, _s2, c2) = player(dir.path(), &p, "f2", &follow);
    let to = format!(
        "{},{}",
        follower_addr(f1.child()),
        follower_addr(f2.child())
    );
    // Followers wait dark for the master (--after-sync dark, the default).
    let t = Instant::now();
    while status(&s1)["state"] != "stopped" {
        assert!(t.elapsed() < DEADLINE, "the follower did not go dark");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(status(&s1)["multisync"]["mode"], "follow");
    let (mut lead, sl, cl) = player(
        dir.path(),
        &p,
        "lead",
        &[
            "--multisync",
            "lead",
            "--multisync-listen",
            "127.0.0.1",
            "--multisync-to",
            &to,
        ],
    );
    let err = lead.child().stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
    wait_frames(&sl, 90);
    assert_eq!(ctl(&sl, "play b"), "ok");
    let n = frames(&sl);
    wait_frames(&sl, n + 30);
    let st = status(&s1);
    assert_eq!(st["multisync"]["unknown_names"], 0, "{st}");
    assert!(st["multisync"]["packets"].as_u64() > Some(10), "{st}");
    // The leader first, so the followers have seen all it sent.
    term(lead.take());
    std::thread::sleep(Duration::from_millis(100));
    term(f1.take());
    term(f2.take());
    same_rows(&cl, &[("follower 1", &c1), ("follower 2", &c2)]);
}

/// The leader's capture and each follower's: rows in order everywhere, the
/// switch to `b` (index 1) after the same row of `a` (give or take one),
/// the same rows of `b` after it.
pub fn same_rows(cl: &Path, followers: &[(&str, &PathBuf)]) {
    let joined = same_rows_or_joined(cl, followers, 0);
    assert_eq!(joined, 0);
}

/// The same, but a follower may take the switch at a later row of `b`, up
/// to `join_up_to`, having shown `a` until then (its START was lost); its
/// rows of `b` are then the leader's from that row on. Returns how many
/// followers joined so.
pub fn same_rows_or_joined(cl: &Path, followers: &[(&str, &PathBuf)], join_up_to: u32) -> usize {
    let b = 1;
    let l = shown(cl);
    let (ls, lskip, _) = rows_in_order(&l, b, "leader", 0);
    let mut joined = 0;
    for &(who, cap) in followers {
        let f = shown(cap);
        let (fs, fskip, r) = rows_in_order(&f, b, who, join_up_to);
        joined += (r > 0) as usize;
        // The row of a the switch came after is the same (r rows on for a
        // join), give or take the one frame a START within the residual
        // error may move it.
        let (la, fa) = (l[ls - 1].1, f[fs - 1].1);
        let d = (la + r + 40 - fa) % 40;
        assert!(
            d <= 1 || d == 39,
            "{who} left a after row {fa} for row {r} of b, the leader after {la}"
        );
        // After the switch, the same rows of b (but for skipped ones).
        let (lb, fb): (Vec<_>, Vec<_>) = (l[ls + r as usize..].to_vec(), f[fs..].to_vec());
        let n = lb.len().min(fb.len());
        assert!(n >= 20, "{who}: {n} rows of b");
        if lskip == 0 && fskip == 0 {
            assert_eq!(&fb[..n - 1], &lb[..n - 1], "{who}");
        }
    }
    joined
}

/// A SYNC datagram as FPP's and xSchedule's code lay it out, by hand.
fn fpp_sync(sync_type: u8, frame: u32, secs: f32, name: &[u8]) -> Vec<u8> {
    let extra = 11 + name.len();
    let mut v = vec![b'F', b'P', b'P', b'D', 1, extra as u8, (extra >> 8) as u8];
    v.extend_from_slice(&[sync_type, 0]);
    v.extend_from_slice(&frame.to_le_bytes());
    v.extend_from_slice(&secs.to_le_bytes());
    v.extend_from_slice(name);
    v.push(0);
    v
}

/// An xSchedule-style master at 50 fps on its own thread: START (unless
/// `late`), SYNC every 4 frames to 32 then every 16 with the seconds field
/// only, for `frames` frames from `first`, then STOP.
fn fpp_master(to: String, name: &'static [u8], first: u32, frames: u32, late: bool) {
    fpp_master_from("127.0.0.1:0", to, name, first, frames, late)
}

/// The same, sending from `from`.
pub fn fpp_master_from(
    from: &str,
    to: String,
    name: &'static [u8],
    first: u32,
    frames: u32,
    late: bool,
) {
    let tx = std::net::UdpSocket::bind(from).unwrap();
    let t0 = Instant::now() - Duration::from_millis(20 * first as u64);
    if !late {
        tx.send_to(&fpp_sync(0, 0, 0.0, name), &to).unwrap();
    }
    for f in first..first + frames {
        let due = t0 + Duration::from_millis(20 * f as u64);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let dense = f <= 32 && f % 4 == 0;
        if f > 0 && (dense || (f > 32 && (f - 32) % 16 == 0)) {
            let secs = t0.elapsed().as_secs_f32();
            tx.send_to(&fpp_sync(2, 0, secs, name), &to).unwrap();
        }
    }
    let secs = t0.elapsed().as_secs_f32();
    tx.send_to(&fpp_sync(1, 0, secs, name), &to).unwrap();
}

/// Non-dark rows from the first one on: each the next row of `array`.
pub fn follows_in_order(s: &[(u32, u32)], array: u32, rows: u32, who: &str) {
    assert!(s.len() >= 20, "{who}: {s:?}");
    for w in s.windows(2) {
        assert_eq!(w[0].0, array, "{who}: {s:?}");
        assert_eq!(w[1], (array, (w[0].1 + 1) % rows), "{who}: {s:?}");
    }
}

#[test]
fn an_fpp_style_master_start_and_late_join() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 40, 6), named("shows/Song", 2, 300, 6)],
        8,
    );
    let follow = ["--multisync", "follow", "--multisync-listen", "127.0.0.1:0"];
    let (mut f1, s1, c1) = player(dir.path(), &p, "f1", &follow);
    let (mut f2, _s2, c2) = player(dir.path(), &p, "f2", &follow);
    let (to1, to2) = (follower_addr(f1.child()), follower_addr(f2.child()));
    // f1 gets the song from START; f2 only from SYNCs, 2 s into it.
    let m1 = std::thread::spawn(move || fpp_master(to1, b"Song.fseq", 0, 120, false));
    let m2 = std::thread::spawn(move || fpp_master(to2, b"Song.fseq", 100, 120, true));
    m1.join().unwrap();
    m2.join().unwrap();
    // STOP went dark (--after-sync dark): both are stopped again.
    let t = Instant::now();
    while status(&s1)["state"] != "stopped" {
        assert!(t.elapsed() < DEADLINE, "STOP did not stop the follower");
        std::thread::sleep(Duration::from_millis(5));
    }
    term(f1.take());
    term(f2.take());
    let song = 1; // "shows/Song" sorts after "a"
    let s = shown(&c1);
    assert_eq!(s[0], (song, 0), "START shows row 0: {s:?}");
    follows_in_order(&s, song, 300, "from START");
    let s = shown(&c2);
    // A late joiner starts at the master's row (about 100 + the time to
    // lock), then goes row by row.
    assert!(s[0].1 >= 100 && s[0].1 < 140, "joined at {:?}", s[0]);
    follows_in_order(&s, song, 300, "late join");
    // The last frame before STOP is dark after it.
    let last = parse_records(&std::fs::read(&c2).unwrap()).unwrap();
    assert_eq!(last.last().unwrap().meta.array, ALL_OFF);
}
