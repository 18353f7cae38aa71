//! Helpers shared by the integration tests.

use rowplay::import::{Array, NamedArray};
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The real binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rowplay"))
}

/// `rowplay ARGS...`, with stdin closed and output captured.
pub fn rowplay(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rowplay")
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert a failure printed only `error:` lines and no panic.
pub fn assert_clean_error(o: &Output, code: i32) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    for line in err.lines() {
        assert!(line.starts_with("error:"), "not an error line: {line:?}");
    }
}

/// A deterministic array whose every byte depends on (seed, row, led, channel).
pub fn array(seed: u32, rows: u32, leds: u32, channels: u8) -> Array {
    let mut data = Vec::with_capacity((rows * leds * channels as u32) as usize);
    for r in 0..rows {
        for l in 0..leds {
            for c in 0..channels as u32 {
                data.push(
                    (seed.wrapping_mul(31)
                        ^ r.wrapping_mul(7)
                        ^ l.wrapping_mul(13)
                        ^ c.wrapping_mul(101)) as u8,
                );
            }
        }
    }
    Array {
        rows,
        leds,
        channels,
        data,
    }
}

/// A named deterministic array.
pub fn named(name: &str, seed: u32, rows: u32, leds: u32) -> NamedArray {
    NamedArray {
        name: name.into(),
        array: array(seed, rows, leds, 3),
        period_ns: None,
    }
}

/// Write `a` as a standard u8 `.npy`.
pub fn write_npy(path: &Path, a: &Array) {
    let mut f = std::fs::File::create(path).unwrap();
    rowplay::import::npy::write_u8(a, &mut f).unwrap();
}

/// Pack in-memory arrays into `dir/name.rowpack` and return its path.
pub fn pack(dir: &Path, arrays: Vec<NamedArray>, head_rows: u32) -> PathBuf {
    let out = dir.join("lib.rowpack");
    let opts = rowplay::pack::PackOptions {
        head_rows,
        ..Default::default()
    };
    rowplay::pack::pack_arrays(arrays, &out, &opts).unwrap();
    out
}

/// Whether slow tests should be skipped (the emulated ARM lane sets this;
/// the host lane runs them).
pub fn skip_slow() -> bool {
    std::env::var_os("ROWPLAY_SKIP_SLOW").is_some()
}

/// The venv of the outside peers (tests/peers/README.md), named by
/// `ROWPLAY_PEERS_VENV`: `None` with a note that `what` was skipped when
/// it is unset, or under the emulated ARM lane (`QEMU_CPU`), whose guest
/// cannot run the host's peers. When it is set, a peer test must run:
/// use [`require_peer`] for everything else it needs.
pub fn peers_venv(what: &str) -> Option<PathBuf> {
    if std::env::var_os("QEMU_CPU").is_some() {
        eprintln!("skipped {what}: the peers do not run under user-mode emulation");
        return None;
    }
    match std::env::var_os("ROWPLAY_PEERS_VENV") {
        Some(v) => {
            let v = PathBuf::from(v);
            require_peer(&v.join("bin/python"), "the peers venv's python");
            Some(v)
        }
        None => {
            eprintln!("skipped {what}: ROWPLAY_PEERS_VENV is not set (see tests/peers/README.md)");
            None
        }
    }
}

/// Fail (never skip) when a peer that `ROWPLAY_PEERS_VENV` promises is
/// missing: CI installs them all, so a missing one is a broken CI.
pub fn require_peer(path: &Path, what: &str) {
    assert!(
        path.exists(),
        "ROWPLAY_PEERS_VENV is set but {what} is missing: {} (.ci/run installs it)",
        path.display()
    );
}

/// `rowplay pack SRC -o OUT`, asserting success.
pub fn pack_folder(src: &Path, out: &Path) {
    let o = rowplay(&["pack", src.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Guard against a hang only; healthy runs take well under a second.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn wait_for_socket(sock: &Path, child: &mut Child) {
    let t = Instant::now();
    while UnixStream::connect(sock).is_err() {
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "player exited ({st}) before opening {}: {err}",
                sock.display()
            );
        }
        assert!(t.elapsed() < DEADLINE, "no socket at {}", sock.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn ctl(sock: &Path, line: &str) -> String {
    rowplay::control::ctl(Some(sock), line).unwrap()
}

pub fn status(sock: &Path) -> serde_json::Value {
    serde_json::from_str(&ctl(sock, "status")).unwrap()
}

pub fn frames(sock: &Path) -> u64 {
    status(sock)["frames"].as_u64().unwrap()
}

/// Grant `n` frames and wait until their ticks have passed.
pub fn step(sock: &Path, n: u64) {
    let ticks = |s: &Path| status(s)["ticks"].as_u64().unwrap();
    let target = ticks(sock) + n;
    assert_eq!(ctl(sock, &format!("step {n}")), "ok");
    let t = Instant::now();
    while ticks(sock) < target {
        assert!(t.elapsed() < DEADLINE, "frames did not advance");
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn stop(mut child: Child, sock: &Path) -> ExitStatus {
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = rowplay::control::ctl(Some(sock), "step 1");
    wait_bounded(&mut child)
}

/// Wait for a child told to end, for [`DEADLINE`] at most: one that does
/// not end fails the test, saying what each of its threads was doing,
/// instead of hanging the whole run.
pub fn wait_bounded(child: &mut Child) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > DEADLINE {
            let threads = threads_of(child.id());
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pid {} did not end within {DEADLINE:?}: {threads}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Each thread of `pid`: name, state, the system call it is in (number
/// and arguments) and where the kernel has it waiting.
fn threads_of(pid: u32) -> String {
    let read = |p: String| std::fs::read_to_string(p).unwrap_or_default();
    let mut out = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
    for t in tasks.into_iter().flatten().flatten() {
        let d = t.path().display().to_string();
        let stat = read(format!("{d}/stat"));
        let state = stat.rsplit(") ").next().unwrap_or("").split(' ').next();
        out.push(format!(
            "[{} {}: {} syscall {} wchan {}]",
            t.file_name().to_string_lossy(),
            read(format!("{d}/comm")).trim(),
            state.unwrap_or("?"),
            read(format!("{d}/syscall")).trim(),
            read(format!("{d}/wchan")).trim()
        ));
    }
    out.join(" ")
}

/// `rowplay play PACK --clock step` with a socket and a capture file in
/// `dir`, plus `extra` arguments; returns once the socket answers.
pub fn stepping_player(dir: &Path, pack: &Path, extra: &[&str]) -> (Child, PathBuf, PathBuf) {
    let sock = dir.join("s.sock");
    let cap = dir.join("cap.bin");
    let mut child = Command::new(bin())
        .args([
            "play",
            pack.to_str().unwrap(),
            "--clock",
            "step",
            "--rt-priority",
            "0",
        ])
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
    (child, sock, cap)
}

/// Kills and reaps a child when dropped, so a failing test leaves no
/// player running behind it.
pub struct Guard(pub Option<Child>);

impl Guard {
    /// The child, running.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("the child was taken")
    }
    /// Take the child out (to stop it the normal way).
    pub fn take(&mut self) -> Child {
        self.0.take().expect("the child was taken")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The rest of the first line of the child's stderr that starts with
/// `prefix` (e.g. where it listens); the rest of its stderr is drained in
/// the background so the child never blocks on a full pipe.
pub fn stderr_line(child: &mut Child, prefix: &str) -> String {
    use std::io::{BufRead, BufReader};
    let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
    let rest = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the player ended before printing {prefix:?}"))
            .unwrap();
        if let Some(rest) = line.strip_prefix(prefix) {
            break rest.to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    rest
}
