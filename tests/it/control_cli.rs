//! `ctl` and the socket as a newcomer meets them: `pending` and `wait`
//! (with `--clock step`, so nothing depends on wall-clock timing), the
//! default socket places as root and as another user, `ctl` reading the
//! config, and what SIGHUP means with and without a terminal.

use crate::util::*;
use rowplay::output::record::parse_records;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A raw client that sends one line and does not read yet.
fn send(sock: &Path, line: &str) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(sock).unwrap();
    s.write_all(format!("{line}\n").as_bytes()).unwrap();
    BufReader::new(s)
}

/// No reply arrives while no frame is granted. With `--clock step`
/// nothing can happen meanwhile, so the short look proves absence.
fn no_reply_yet(r: &mut BufReader<UnixStream>) {
    r.get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut line = String::new();
    match r.read_line(&mut line) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("early reply ({n} bytes): {line:?}"),
    }
    r.get_ref().set_read_timeout(Some(DEADLINE)).unwrap();
}

fn reply(r: &mut BufReader<UnixStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn an_accepted_switch_is_pending_until_its_row_0_is_out_and_wait_answers_then() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(
        dir.path(),
        vec![
            named("a", 1, 20, 2),
            named("b", 2, 20, 2),
            named("c", 3, 20, 2),
        ],
        8,
    );
    let (child, sock, cap) = stepping_player(dir.path(), &p, &[]);
    step(&sock, 3);
    let st = status(&sock);
    assert_eq!(st["pending"], serde_json::Value::Null);
    assert_eq!(st["switch_seq"], 0);

    // `play b` is acknowledged at once; it is not on the strip yet.
    assert_eq!(ctl(&sock, "play b"), "ok");
    let st = status(&sock);
    assert_eq!(st["array"], "a", "no frame was granted since");
    assert_eq!(st["pending"], "b");
    assert_eq!(st["switch_seq"], 1);
    assert_eq!(st["shown_seq"], 0);
    step(&sock, 1);
    let st = status(&sock);
    assert_eq!(
        (st["array"].as_str(), st["row"].as_u64()),
        (Some("b"), Some(0))
    );
    assert_eq!(st["pending"], serde_json::Value::Null);
    assert_eq!(st["shown_seq"], 1);

    // `wait play c` answers only after the frame with row 0 of c.
    let mut w = send(&sock, "wait play c");
    no_reply_yet(&mut w);
    assert_eq!(status(&sock)["pending"], "c");
    let before = frames(&sock);
    assert_eq!(ctl(&sock, "step 1"), "ok");
    assert_eq!(reply(&mut w), "ok");
    assert!(frames(&sock) > before);
    let st = status(&sock);
    assert_eq!(
        (st["array"].as_str(), st["row"].as_u64()),
        (Some("c"), Some(0))
    );

    // `ctl next --wait` sends the same verb and returns after the frame.
    let waiting = Command::new(bin())
        .args(["ctl", "--socket", sock.to_str().unwrap(), "next", "--wait"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while status(&sock)["pending"] != "next" {
        assert!(t.elapsed() < DEADLINE, "ctl --wait did not arrive");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ctl(&sock, "step 1"), "ok");
    let o = waiting.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "ok");
    assert_eq!(status(&sock)["pending"], serde_json::Value::Null);

    // A switch undone before its frame (stop) is never shown: after 50
    // frames `wait` says so.
    let mut w = send(&sock, "wait play a");
    no_reply_yet(&mut w);
    assert_eq!(ctl(&sock, "stop"), "ok");
    step(&sock, 51);
    assert_eq!(
        reply(&mut w),
        "error: a was accepted but its row 0 was not shown within 50 frames"
    );
    assert!(stop(child, &sock).success());
    let recs = parse_records(&std::fs::read(&cap).unwrap()).unwrap();
    let firsts: Vec<u32> = recs
        .iter()
        .filter(|r| r.meta.row == 0)
        .map(|r| r.meta.array)
        .collect();
    assert!(firsts.contains(&1) && firsts.contains(&2), "{firsts:?}");
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A folder and a binary copy that user `nobody` can use.
fn shared_dir() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let exe = dir.path().join("rowplay");
    std::fs::copy(bin(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, exe)
}

/// `exe ARGS` with no socket folder in the environment, as `uid` (root
/// drops to it through setpriv) or as ourselves.
fn without_runtime_dirs(exe: &Path, uid: Option<u32>, args: &[&str]) -> Command {
    let mut c = match uid {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={u}"))
                .arg(format!("--regid={u}"))
                .args(["--clear-groups", "--"])
                .arg(exe);
            c
        }
        None => Command::new(exe),
    };
    c.args(args)
        .env_remove("RUNTIME_DIRECTORY")
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(Stdio::null());
    c
}

/// Start a stepping player with no `--socket`, reach it with plain `ctl`
/// (same environment, same user) and check it is this player.
fn reach_default_socket(exe: &Path, uid: Option<u32>, pack: &Path, expect: &Path) {
    let mut child = without_runtime_dirs(
        exe,
        uid,
        &[
            "play",
            pack.to_str().unwrap(),
            "--clock",
            "step",
            "--rt-priority",
            "0",
            "--output",
            "null",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for_socket(expect, &mut child);
    let o = without_runtime_dirs(exe, uid, &["ctl", "status", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "ctl: {}", stderr(&o));
    let st: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(st["pack"], pack.display().to_string());
    assert!(stop(child, expect).success());
    assert!(!expect.exists(), "the socket is removed at exit");
}

#[test]
fn without_runtime_folders_the_player_makes_one_and_ctl_finds_it() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        // As another user: the private folder in /tmp.
        let dir = tempfile::tempdir().unwrap();
        let p = pack(dir.path(), vec![named("a", 1, 4, 2)], 8);
        // SAFETY: getuid cannot fail.
        let me = unsafe { libc::getuid() };
        let sock = PathBuf::from(format!("/tmp/rowplay-{me}/rowplay.sock"));
        reach_default_socket(&bin(), None, &p, &sock);
        return;
    }
    assert!(
        Command::new("setpriv").arg("--version").output().is_ok(),
        "setpriv (util-linux) is needed to run this test as root"
    );
    let (dir, exe) = shared_dir();
    let p = pack(dir.path(), vec![named("a", 1, 4, 2)], 8);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();

    // Root: /run/rowplay is made (mode 0750) when missing.
    let run = Path::new("/run/rowplay");
    let made = !run.exists();
    reach_default_socket(&exe, None, &p, &run.join("rowplay.sock"));
    if made {
        assert_eq!(std::fs::metadata(run).unwrap().mode() & 0o777, 0o750);
    }

    // Another user: /tmp/rowplay-65534, private.
    let private = Path::new("/tmp/rowplay-65534");
    let _ = std::fs::remove_dir_all(private);
    reach_default_socket(&exe, Some(65534), &p, &private.join("rowplay.sock"));
    let m = std::fs::metadata(private).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o777), (65534, 0o700));

    // A private folder that is not private is refused, with the reason.
    std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = without_runtime_dirs(
        &exe,
        Some(65534),
        &[
            "play",
            p.to_str().unwrap(),
            "--frames",
            "2",
            "--rt-priority",
            "0",
            "--output",
            "null",
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: running without a control socket: /tmp/rowplay-65534: exists but is not a folder of this user with mode 0700"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_dir_all(private).unwrap();
}

#[test]
fn ctl_takes_its_socket_from_the_config_like_play() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 4, 2)], 8);
    let (child, sock, _cap) = stepping_player(dir.path(), &p, &[]);
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, format!("socket = {:?}\n", sock.display().to_string())).unwrap();
    let o = rowplay(&["ctl", "--config", cfg.to_str().unwrap(), "status", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let st: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(st["pack"], p.display().to_string());
    assert!(stop(child, &sock).success());
}

/// Open a pseudo-terminal: (master fd, slave path).
fn pty() -> (std::fs::File, PathBuf) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain libc calls; the fd is owned by the File from here on.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(m, name.as_mut_ptr(), name.len()), 0);
        let slave = std::ffi::CStr::from_ptr(name.as_ptr())
            .to_string_lossy()
            .into_owned();
        (std::fs::File::from_raw_fd(m), PathBuf::from(slave))
    }
}

#[test]
fn a_hangup_of_the_terminal_the_preview_draws_on_ends_playback_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let p = pack(dir.path(), vec![named("a", 1, 4, 2)], 8);
    let stats = dir.path().join("stats.json");
    let sock = dir.path().join("s.sock");
    let (mut master, slave) = pty();
    let slave_c = std::ffi::CString::new(slave.to_str().unwrap()).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args([
        "play",
        p.to_str().unwrap(),
        "--rt-priority",
        "0",
        "--clock",
        "step",
    ])
    .arg("--socket")
    .arg(&sock)
    .arg("--stats-json")
    .arg(&stats)
    .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec: a new
    // session whose controlling terminal is the pty, on fds 0, 1 and 2.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let fd = libc::open(slave_c.as_ptr(), libc::O_RDWR);
            if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for t in 0..3 {
                libc::dup2(fd, t);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    // Read the terminal so the preview never blocks on it.
    let drawn = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut b = [0u8; 4096];
        while let Ok(n) = master.read(&mut b) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    wait_for_socket(&sock, &mut child);
    step(&sock, 3);
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    let _ = rowplay::control::ctl(Some(&sock), "step 1");
    // A player that took the hang-up for a reload would play on: give up
    // (and fail) rather than wait for ever.
    let t = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("SIGHUP did not end a player drawing on its terminal");
        }
        let _ = rowplay::control::ctl(Some(&sock), "step 1");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(st.success(), "{st}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert!(s["frames"].as_u64().unwrap() >= 3);
    let text = drawn.join().unwrap();
    // Frame lines end in a label: the array and row, or "(off)".
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|l| l.rsplit_once("\x1b[0m ").map(|(_, label)| label.trim()))
        .collect();
    assert_eq!(
        labels.first(),
        Some(&"(off)"),
        "blanked at start: {labels:?}"
    );
    assert!(labels.contains(&"a 0"), "{labels:?}");
    assert_eq!(
        labels.last(),
        Some(&"(off)"),
        "all off at the end: {labels:?}"
    );
}
