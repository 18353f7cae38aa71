//! The real binary: `rowplay play` driven through its socket. Frames are
//! stepped by the test (`--clock step`), so nothing depends on wall-clock
//! timing: a command acknowledged before a frame is granted must show in
//! that frame.

use crate::util::*;
use rowplay::output::record::{parse_records, Record};
use rowplay::output::ALL_OFF;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Playing {
    child: Child,
    sock: PathBuf,
    capture: PathBuf,
    stats: PathBuf,
    dir: tempfile::TempDir,
}

impl Playing {
    fn start(arrays: Vec<rowplay::import::NamedArray>, extra: &[&str]) -> Playing {
        let dir = tempfile::tempdir().unwrap();
        let p = pack(dir.path(), arrays, 8);
        Playing::start_on(dir, &p, extra)
    }

    fn start_on(dir: tempfile::TempDir, p: &Path, extra: &[&str]) -> Playing {
        let sock = dir.path().join("ctl.sock");
        let capture = dir.path().join("cap.bin");
        let stats = dir.path().join("stats.json");
        let mut args: Vec<String> = vec![
            "play".into(),
            p.to_str().unwrap().into(),
            "--clock".into(),
            "step".into(),
            "--rt-priority".into(),
            "0".into(),
            "--socket".into(),
            sock.to_str().unwrap().into(),
            "--output".into(),
            format!("capture:{}", capture.display()),
            "--stats-json".into(),
            stats.to_str().unwrap().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(bin())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "player did not open its socket");
            std::thread::sleep(Duration::from_millis(10));
        }
        Playing {
            child,
            sock,
            capture,
            stats,
            dir,
        }
    }

    fn ctl(&self, line: &str) -> String {
        rowplay::control::ctl(Some(&self.sock), line).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.ctl("status")).unwrap()
    }

    /// Grant `n` frames and wait until they have been played.
    fn step(&self, n: u64) {
        let target = self.status()["frames"].as_u64().unwrap() + n;
        assert_eq!(self.ctl(&format!("step {n}")), "ok");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.status()["frames"].as_u64().unwrap() < target {
            assert!(Instant::now() < deadline, "frames did not advance");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGTERM, wait, return exit status, stderr and the records.
    fn finish(
        mut self,
    ) -> (
        std::process::ExitStatus,
        String,
        Vec<Record>,
        serde_json::Value,
    ) {
        // SAFETY: plain kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // The player finishes the current frame; in step mode, grant one so
        // a sleeping loop wakes up to see the signal.
        let _ = rowplay::control::ctl(Some(&self.sock), "step 1");
        let status = wait_bounded(&mut self.child);
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let recs = parse_records(&std::fs::read(&self.capture).unwrap()).unwrap();
        let stats = serde_json::from_str(&std::fs::read_to_string(&self.stats).unwrap_or_default())
            .unwrap_or_default();
        let _ = &self.dir;
        (status, err, recs, stats)
    }
}

fn meta(r: &Record) -> (u32, u32) {
    (r.meta.array, r.meta.row)
}

#[test]
fn a_jump_shows_row_0_of_the_target_at_the_very_next_frame() {
    let p = Playing::start(vec![named("a", 1, 60, 4), named("b", 2, 60, 4)], &[]);
    p.step(5);
    assert_eq!(p.ctl("play b"), "ok");
    p.step(1);
    assert_eq!(p.status()["array"], "b");
    assert_eq!(p.status()["row"], 0);
    p.step(4);
    // Jumping to the array that is playing restarts it.
    assert_eq!(p.ctl("play #1"), "ok");
    p.step(2);
    let (status, err, recs, stats) = p.finish();
    assert!(status.success(), "{err}");
    let m: Vec<(u32, u32)> = recs.iter().map(meta).collect();
    assert_eq!(m[0], (ALL_OFF, 0), "blank at start");
    assert_eq!(&m[1..6], &[(0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]);
    assert_eq!(
        m[6],
        (1, 0),
        "row 0 of b on the frame right after the command"
    );
    let underruns = stats["underruns"].as_u64().unwrap();
    // b's rows continue (a repeat is an underrun, counted)
    let mut repeats = 0;
    for w in m[6..11].windows(2) {
        if w[1] == w[0] {
            repeats += 1;
        } else {
            assert_eq!(w[1].1, w[0].1 + 1, "{m:?}");
        }
    }
    assert!(repeats <= underruns);
    assert_eq!(m[11], (1, 0), "play of the current array restarts it");
    assert_eq!(
        *m.last().unwrap(),
        (ALL_OFF, 0),
        "SIGTERM ends with an all-off frame"
    );
    assert_eq!(stats["switches"], 2);
}

#[test]
fn every_playlist_row_appears_once_in_order() {
    let arrays = vec![
        named("x", 1, 33, 3),
        named("y", 2, 4, 3),
        named("z", 3, 20, 3),
    ];
    let p = Playing::start(arrays, &["--playlist", "z,x,y", "--order", "once"]);
    for _ in 0..70 {
        p.step(1);
    }
    let (status, err, recs, stats) = p.finish();
    assert!(status.success(), "{err}");
    let mut shown: Vec<(u32, u32)> = Vec::new();
    let mut repeats = 0;
    for r in &recs[1..] {
        if shown.last() == Some(&meta(r)) && r.meta.array != ALL_OFF {
            repeats += 1;
        } else {
            shown.push(meta(r));
        }
    }
    assert_eq!(
        repeats,
        stats["underruns"].as_u64().unwrap(),
        "repeats are counted underruns"
    );
    let mut want: Vec<(u32, u32)> = (0..20).map(|r| (2, r)).collect();
    want.extend((0..33).map(|r| (0, r)));
    want.extend((0..4).map(|r| (1, r)));
    assert_eq!(&shown[..want.len()], &want[..]);
    assert!(
        shown[want.len()..].iter().all(|x| x.0 == ALL_OFF),
        "dark after --order once"
    );
}

#[test]
fn stop_sends_all_off_frames_and_the_player_keeps_running() {
    let p = Playing::start(vec![named("a", 1, 30, 4)], &[]);
    p.step(3);
    assert_eq!(p.ctl("stop"), "ok");
    p.step(3);
    assert_eq!(p.status()["state"], "stopped");
    assert_eq!(p.ctl("resume"), "ok");
    p.step(1);
    let (status, _, recs, _) = p.finish();
    assert!(status.success());
    let m: Vec<(u32, u32)> = recs.iter().map(meta).collect();
    assert_eq!(&m[4..7], &[(ALL_OFF, 0); 3]);
    assert!(recs[4].bytes.iter().all(|&b| b == 0));
    assert_eq!(m[7], (0, 3), "resume continues where it stopped");
}

#[test]
fn bad_socket_input_gets_error_replies_and_playback_continues() {
    let p = Playing::start(vec![named("a", 1, 30, 4)], &[]);
    p.step(2);
    let mut s = UnixStream::connect(&p.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut reply = |s: &mut UnixStream, bytes: &[u8]| {
        s.write_all(bytes).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        line
    };
    assert!(reply(&mut s, b"dance\n").starts_with("error: unknown command"));
    assert!(reply(&mut s, &[0xff, 0x00, 0xfe, b'\n']).starts_with("error: command is not UTF-8"));
    let mut long = vec![b'x'; 5000];
    long.push(b'\n');
    assert_eq!(reply(&mut s, &long), "error: line longer than 1024 bytes\n");
    assert_eq!(
        reply(&mut s, b"play nosuch\n"),
        "error: no array named \"nosuch\"\n"
    );
    assert_eq!(
        reply(&mut s, b"brightness 7\n"),
        "error: brightness 7 outside 0..1\n"
    );
    // The same connection still works.
    assert!(reply(&mut s, b"status\n").starts_with('{'));
    assert_eq!(reply(&mut s, b"next\n"), "ok\n");
    let list: serde_json::Value = serde_json::from_str(&reply(&mut s, b"list\n")).unwrap();
    assert_eq!(list["arrays"][0], "a");
    drop(s);
    p.step(3);
    let (status, _, recs, _) = p.finish();
    assert!(status.success());
    assert!(recs.len() >= 7);
}

#[test]
fn abusive_clients_cannot_stall_the_player_or_lock_out_others() {
    let p = Playing::start(vec![named("a", 1, 30, 4)], &[]);
    p.step(1);
    // Many connections opened and held, one that floods commands and never
    // reads its replies, and one sending a megabyte without a newline.
    let held: Vec<UnixStream> = (0..200)
        .filter_map(|_| UnixStream::connect(&p.sock).ok())
        .collect();
    let mut flood = UnixStream::connect(&p.sock).unwrap();
    flood.set_nonblocking(true).unwrap();
    let burst = "brightness +0.001\n".repeat(10_000);
    let _ = flood.write(burst.as_bytes());
    let mut big = UnixStream::connect(&p.sock).unwrap();
    big.set_nonblocking(true).unwrap();
    let _ = big.write(&vec![b'y'; 1 << 20]);
    // A well-behaved client still gets answers, and frames still advance.
    p.step(5);
    assert_eq!(p.status()["state"], "playing");
    drop(held);
    let (status, err, _, stats) = p.finish();
    assert!(status.success(), "{err}");
    assert!(stats["frames"].as_u64().unwrap() >= 6);
}

#[test]
fn sighup_reloads_a_pack_replaced_by_rowplay_pack() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_npy(&src.join("a.npy"), &array(1, 40, 3, 3));
    let lib = dir.path().join("lib.rowpack");
    pack_folder(&src, &lib);
    let p = Playing::start_on(dir, &lib, &[]);
    p.step(3);
    // Replace the pack (atomic rename): playback goes on with the old one.
    write_npy(&src.join("a.npy"), &array(99, 40, 3, 3));
    pack_folder(&src, &lib);
    p.step(2);
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(p.child.id() as i32, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.status()["reloads"] == 0 {
        p.step(1);
        assert!(Instant::now() < deadline, "no reload");
    }
    p.step(1);
    let (status, _, recs, _) = p.finish();
    assert!(status.success());
    let old = array(1, 40, 3, 3).data;
    let new = array(99, 40, 3, 3).data;
    assert_eq!(recs[1].bytes[..], old[..9]);
    assert_eq!(
        recs[5].bytes[..],
        old[4 * 9..5 * 9],
        "still the old pack after it was replaced"
    );
    let first_new = recs
        .iter()
        .position(|r| r.bytes[..] == new[..9])
        .expect("new pack never played");
    assert!(first_new > 5);
    assert_eq!(recs[first_new].meta.row, 0);
}

#[test]
fn ctl_exit_codes_and_json() {
    let p = Playing::start(vec![named("a", 1, 30, 4)], &[]);
    let sock = p.sock.to_str().unwrap().to_string();
    let o = rowplay(&["ctl", "--socket", &sock, "status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "array",
        "index",
        "row",
        "frames",
        "deadline_misses",
        "underruns",
    ] {
        assert!(v.get(key).is_some(), "status lacks {key}");
    }
    let o = rowplay(&["ctl", "--socket", &sock, "play", "zzz"]);
    assert_clean_error(&o, 1);
    let o = rowplay(&["ctl", "--socket", &sock, "brightness", "-0.5"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "ok");
    // A second player on the same socket is refused.
    let o = rowplay(&[
        "play",
        "--socket",
        &sock,
        "--frames",
        "1",
        "--rt-priority",
        "0",
        "--output",
        "null",
    ]);
    assert_clean_error(&o, 1);
    assert!(
        stderr(&o).contains("another rowplay is running"),
        "{}",
        stderr(&o)
    );
    let (status, _, _, _) = p.finish();
    assert!(status.success());
    // A stale socket file (nobody listening, e.g. after a crash) is replaced.
    let dir = tempfile::tempdir().unwrap();
    let stale = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let o = rowplay(&[
        "play",
        "--socket",
        stale.to_str().unwrap(),
        "--frames",
        "1",
        "--rt-priority",
        "0",
        "--output",
        "null",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn frames_option_stops_and_writes_stats() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 30, 4)], 8);
    let stats = dir.path().join("s.json");
    let sock = dir.path().join("s.sock");
    let before = rowplay::clock::monotonic_ns();
    let o = rowplay(&[
        "play",
        p.to_str().unwrap(),
        "--frames",
        "20",
        "--output",
        "null",
        "--rt-priority",
        "0",
        "--socket",
        sock.to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(v["frames"], 20);
    // The last deadline the loop slept to, on CLOCK_MONOTONIC: after the
    // run began, and passed by the time it ended.
    let deadline = v["next_deadline_ns"].as_u64().unwrap();
    assert!(
        before < deadline && deadline <= rowplay::clock::monotonic_ns(),
        "{v}"
    );
    for key in [
        "deadline_misses",
        "underruns",
        "switches",
        "locked_bytes",
        "peak_rss_bytes",
        "max_open_fds",
    ] {
        assert!(v[key].is_u64(), "stats lack {key}: {v}");
    }
    for q in ["p50", "p99", "p999", "max"] {
        assert!(v["wake_latency_ns"][q].is_u64());
    }
}

/// Run the player without CAP_SYS_NICE / CAP_IPC_LOCK and with
/// RLIMIT_RTPRIO = RLIMIT_MEMLOCK = 0 (limits alone do not bind root, so
/// root drops to nobody through setpriv).
fn unprivileged(args: &[&str]) -> std::process::Output {
    let dir = tempfile::Builder::new().tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 30, 4)], 8);
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    // A copy of the binary the unprivileged user can surely run, wherever
    // the checkout lives.
    let exe = dir.path().join("rowplay");
    std::fs::copy(bin(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sock = dir.path().join("s.sock");
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ]);
        c.arg(&exe);
        c
    } else {
        Command::new(&exe)
    };
    cmd.current_dir(dir.path());
    cmd.args([
        "play",
        p.to_str().unwrap(),
        "--frames",
        "3",
        "--output",
        "null",
        "--socket",
        sock.to_str().unwrap(),
    ]);
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_RTPRIO, &zero);
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &zero);
            Ok(())
        });
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn refused_realtime_warns_and_require_rt_fails() {
    if unsafe { libc::geteuid() } == 0 && Command::new("setpriv").arg("--version").output().is_err()
    {
        panic!("setpriv (util-linux) is needed to test refused realtime as root");
    }
    let o = unprivileged(&[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("warning: memory locking refused"), "{err}");
    assert!(
        err.contains("warning: SCHED_FIFO priority 50 refused"),
        "{err}"
    );
    let o = unprivileged(&["--require-rt"]);
    assert_clean_error(&o, 1);
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
}

#[test]
fn a_pack_truncated_in_place_while_playing_is_survived_and_recovered_by_reload() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        write_npy(&src.join(format!("{n}.npy")), &array(i as u32, 100, 4, 3));
    }
    let lib = dir.path().join("lib.rowpack");
    pack_folder(&src, &lib);
    let p = Playing::start_on(dir, &lib, &[]);
    p.step(3);
    // A careless `cp` truncates the pack in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lib)
        .unwrap()
        .set_len(5000)
        .unwrap();
    assert_eq!(p.ctl("play c"), "ok");
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.status()["skipped_arrays"] == 0 {
        p.step(1);
        assert!(
            Instant::now() < deadline,
            "the unreadable array was never skipped"
        );
    }
    let st = p.status();
    assert!(st["read_errors"].as_u64().unwrap() >= 1, "{st}");
    // The reads before the truncation were timed.
    assert!(st["loader_read_ns"]["max"].as_u64().unwrap() > 0, "{st}");
    assert_eq!(st["state"], "playing");
    // A reload of the broken pack is refused with a reason; playback goes on.
    let r = p.ctl("reload");
    assert!(r.starts_with("error: ") && r.contains("5000 bytes"), "{r}");
    p.step(2);
    // Repacked properly: reload recovers.
    pack_folder(&src, &lib);
    assert_eq!(p.ctl("reload"), "ok");
    p.step(1);
    assert_eq!(p.status()["reloads"], 1);
    assert_eq!(p.ctl("play c"), "ok");
    p.step(30);
    let (status, err, recs, stats) = p.finish();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"));
    // After recovery c plays past its head rows again.
    let last = &recs[recs.len() - 2];
    assert_eq!(last.meta.array, 2);
    assert!(last.meta.row >= 8, "row {}", last.meta.row);
    assert!(stats["frames"].as_u64().unwrap() > 30);
}

#[test]
fn a_config_file_sets_the_playlist_with_repeats_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![named("a", 1, 6, 2), named("b", 2, 30, 2)],
        8,
    );
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
library = "{}"
fps = 50
[playlist]
order = "once"
entries = [{{ name = "a", repeat = 2 }}, {{ name = "b", seconds = 0.1 }}]
"#,
            p.display()
        ),
    )
    .unwrap();
    let cap = dir.path().join("cap.bin");
    let sock = dir.path().join("s.sock");
    let o = rowplay(&[
        "play",
        "--config",
        cfg.to_str().unwrap(),
        "--frames",
        "20",
        "--rt-priority",
        "0",
        "--output",
        &format!("capture:{}", cap.display()),
        "--socket",
        sock.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let recs = parse_records(&std::fs::read(&cap).unwrap()).unwrap();
    let m: Vec<(u32, u32)> = recs[1..recs.len() - 1].iter().map(meta).collect();
    let mut want: Vec<(u32, u32)> = (0..6).chain(0..6).map(|r| (0, r)).collect();
    want.extend((0..5).map(|r| (1, r))); // 0.1 s at 50 fps
    want.extend([(ALL_OFF, 0); 3]);
    // underruns would repeat rows; these arrays are short enough that all
    // rows but b's tail come from the heads, and b stops at row 4
    assert_eq!(m, want);
}

#[test]
fn the_player_tells_systemd_ready_and_pings_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 6, 2)], 8);
    let notify = dir.path().join("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let sock = dir.path().join("s.sock");
    let mut child = Command::new(bin())
        .args([
            "play",
            p.to_str().unwrap(),
            "--seconds",
            "1",
            "--output",
            "null",
            "--rt-priority",
            "0",
        ])
        .args(["--socket", sock.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "100000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = listener.recv(&mut buf) {
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let stopping = msg == "STOPPING=1";
        got.push(msg);
        if stopping {
            break;
        }
    }
    assert!(wait_bounded(&mut child).success());
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    assert!(got.iter().any(|m| m == "WATCHDOG=1"), "{got:?}");
    assert_eq!(got.last().map(String::as_str), Some("STOPPING=1"));
}

#[test]
fn a_folder_is_packed_once_into_the_cache_and_repacked_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("patterns");
    std::fs::create_dir(&src).unwrap();
    write_npy(&src.join("one.npy"), &array(1, 4, 2, 3));
    let cache = dir.path().join("cache");
    let play = || {
        Command::new(bin())
            .args([
                "play",
                src.to_str().unwrap(),
                "--frames",
                "2",
                "--output",
                "null",
                "--rt-priority",
                "0",
            ])
            .args(["--socket", dir.path().join("s.sock").to_str().unwrap()])
            .env("XDG_CACHE_HOME", &cache)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = play();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("packing"), "{}", stderr(&o));
    let o = play();
    assert!(o.status.success());
    assert!(
        !stderr(&o).contains("packing"),
        "the cached pack was not reused: {}",
        stderr(&o)
    );
    // A changed input makes a new pack.
    write_npy(&src.join("two.npy"), &array(2, 4, 2, 3));
    let o = play();
    assert!(
        stderr(&o).contains("packing") && stderr(&o).contains("2 arrays"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_capture_on_a_full_disk_is_counted_and_playback_goes_on() {
    // /dev/full fails every write with ENOSPC, like a full SD card.
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 6, 2)], 8);
    let stats = dir.path().join("s.json");
    let o = rowplay(&[
        "play",
        p.to_str().unwrap(),
        "--frames",
        "25",
        "--output",
        "capture:/dev/full",
        "--rt-priority",
        "0",
        "--socket",
        dir.path().join("s.sock").to_str().unwrap(),
        "--stats-json",
        stats.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(v["frames"], 25, "every frame was played");
    assert!(v["output_write_errors"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["output_errors"], 0, "the loop itself never saw the disk");
}
