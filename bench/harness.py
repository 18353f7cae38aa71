"""rowplay benchmark harness: the user's three numpy approaches against rowplay.

Run through bench/run, which prepares the tools and the virtual environment;
`bench/run --help` lists the options. Every contender runs in its own
process; the figures are collected here, printed as a Markdown table and
saved to bench/out/results.md and bench/out/results.json.
"""
import argparse
import bisect
import datetime
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np

import ktrace
import samecpu

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
PY = sys.executable
MB = 1 << 20
PERIOD_NS = 1_000_000_000 // 50  # every player here runs at --fps 50
ALL_OFF = 0xFFFFFFFF


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            if k.strip() in ("model name", "Model", "Hardware") and v.strip():
                cpu = v.strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "ram_bytes": mem,
        "preemption": ktrace.preemption(),
    }


def drop_caches():
    """Drop the page cache; False when the machine does not allow it."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- limits


class PiLimits:
    """Pi Zero-like limits for one child: 1,024 open files and 512 MB.

    The memory cap is a cgroup v2 memory.max when the machine allows one,
    else a cgroup v1 memory.limit_in_bytes, else ulimit -v (address space,
    not RAM) with MALLOC_ARENA_MAX=2 and OPENBLAS_NUM_THREADS=1."""

    def __init__(self, mem_bytes=512 * MB, nofile=1024, mode="auto"):
        self.mem = mem_bytes
        self.nofile = nofile
        self.seq = 0
        self.kind, self.base = self._detect() if mode == "auto" else ("ulimit -v", None)

    def _detect(self):
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
            base = "/sys/fs/cgroup"
            try:
                if "memory" not in open(f"{base}/cgroup.subtree_control").read():
                    with open(f"{base}/cgroup.subtree_control", "w") as f:
                        f.write("+memory")
                if self._probe(base, "memory.max"):
                    return "cgroup v2 memory.max", base
            except OSError:
                pass
        try:
            for line in open("/proc/self/cgroup"):
                _, ctrl, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrl.split(","):
                    base = "/sys/fs/cgroup/memory" + path
                    if self._probe(base, "memory.limit_in_bytes"):
                        return "cgroup v1 memory.limit_in_bytes", base
        except OSError:
            pass
        return "ulimit -v", None

    def _probe(self, base, knob):
        d = os.path.join(base, f"rowplay-bench-probe-{os.getpid()}")
        try:
            os.mkdir(d)
            try:
                with open(os.path.join(d, knob), "w") as f:
                    f.write(str(self.mem))
                return True
            finally:
                os.rmdir(d)
        except OSError:
            return False

    def describe(self):
        return f"ulimit -n {self.nofile}; memory {self.mem // MB} MB by {self.kind}"

    def prepare(self):
        """A fresh cgroup for one run (None for ulimit -v)."""
        if self.base is None:
            return None
        self.seq += 1
        d = os.path.join(self.base, f"rowplay-bench-{os.getpid()}-{self.seq}")
        os.mkdir(d)
        v2 = self.kind.startswith("cgroup v2")

        def put(knob, val):
            p = os.path.join(d, knob)
            if os.path.exists(p):
                with open(p, "w") as f:
                    f.write(str(val))

        if v2:
            put("memory.max", self.mem)
            put("memory.swap.max", 0)
        else:
            put("memory.limit_in_bytes", self.mem)
            put("memory.memsw.limit_in_bytes", self.mem)
        return d

    def env(self):
        e = dict(os.environ)
        if self.base is None:
            e["MALLOC_ARENA_MAX"] = "2"
            e["OPENBLAS_NUM_THREADS"] = "1"
        return e

    def preexec(self, cg):
        def f():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
            if cg is None:
                resource.setrlimit(resource.RLIMIT_AS, (self.mem, self.mem))
            else:
                with open(os.path.join(cg, "cgroup.procs"), "w") as fh:
                    fh.write("0")  # this process
        return f

    def finish(self, cg):
        """OOM kills seen by the cgroup, and remove it."""
        if cg is None:
            return {}
        info = {"oom_kills": 0}
        for name in ("memory.events", "memory.oom_control"):
            p = os.path.join(cg, name)
            if os.path.exists(p):
                for line in open(p):
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        info["oom_kills"] = int(v)
        for name in ("memory.peak", "memory.max_usage_in_bytes"):
            p = os.path.join(cg, name)
            if os.path.exists(p):
                info["cgroup_peak_bytes"] = int(open(p).read().split()[0])
                break
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)
        return info


# ---------------------------------------------------------------- processes


class Child:
    """A child process with its output in files and its rusage on exit."""

    def __init__(self, cmd, name, limits=None, env=None):
        self.name = name
        self.limits = limits
        self.cg = limits.prepare() if limits else None
        self.out_path = os.path.join(OUT, "logs", f"{name}.out")
        self.err_path = os.path.join(OUT, "logs", f"{name}.err")
        kw = {}
        if limits:
            kw["preexec_fn"] = limits.preexec(self.cg)
            env = limits.env() if env is None else env
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            cmd,
            stdout=open(self.out_path, "w"),
            stderr=open(self.err_path, "w"),
            env=env,
            **kw,
        )

    def wait(self, timeout=900):
        timer = threading.Timer(timeout, lambda: self.p.kill())
        timer.start()
        _, status, ru = os.wait4(self.p.pid, 0)
        timer.cancel()
        self.p.returncode = 0  # reaped here, not by Popen
        r = {
            "wall_s": time.monotonic() - self.t0,
            # Includes the harness forked before exec: not a contender figure.
            "ru_maxrss_bytes": ru.ru_maxrss * 1024,
            "stdout": open(self.out_path).read(),
            "stderr": open(self.err_path).read(),
        }
        if os.WIFSIGNALED(status):
            r["signal"] = signal.Signals(os.WTERMSIG(status)).name
            r["rc"] = None
        else:
            r["rc"] = os.WEXITSTATUS(status)
        if self.limits:
            r.update(self.limits.finish(self.cg))
        return r


def run(cmd, name, limits=None, timeout=900):
    return Child(cmd, name, limits).wait(timeout)


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def failure(r):
    """Why a run failed, in a few words, or None when it did not."""
    js = last_json(r["stdout"])
    progress = ""
    for line in r["stderr"].splitlines():
        if line.startswith("progress "):
            progress = line[len("progress "):]
    where = f" (after {progress})" if progress else ""
    if js and js.get("error"):
        return js["error"]
    if r.get("signal"):
        why = "killed by " + r["signal"]
        if r.get("oom_kills"):
            why += " (out of memory: cgroup OOM kill)"
        return why + where
    if r["rc"] != 0:
        lines = [l for l in r["stderr"].strip().splitlines() if l.strip()]
        return (lines[-1] if lines else f"exit status {r['rc']}") + where
    return None


def quantiles(xs):
    if not xs:
        return {"p50": None, "p99": None, "max": None}
    s = sorted(xs)

    def q(p):
        return s[max(0, min(len(s) - 1, int(np.ceil(len(s) * p)) - 1))]

    return {"p50": q(0.5), "p99": q(0.99), "max": s[-1]}


# ---------------------------------------------------------------- rowplay


def find_rowplay():
    exe = os.environ.get("ROWPLAY")
    if exe:
        return os.path.abspath(exe)
    log("building rowplay (cargo build --release)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    return os.path.join(target, "release", "rowplay")


class Ctl:
    """A client of the player's control socket (one line per command)."""

    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.002)
        self.f = self.s.makefile("rb")

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        return self.f.readline().decode().strip()

    def close(self):
        self.s.close()


def read_capture(path):
    """Capture records: (t_ns, array, row, pixel bytes)."""
    data = open(path, "rb").read()
    recs, o = [], 0
    while o + 20 <= len(data):
        t, a, r, n = struct.unpack_from("<QIII", data, o)
        o += 20
        recs.append((t, a, r, data[o:o + n]))
        o += n
    return recs


def check_jumps(recs, jumps, index_of, npy_dir, t_stop):
    """Each jump is on time when the first frame showing its target after
    the command was sent is row 0, and comes no later than the first frame
    after the command was acknowledged (the player may show it before the
    reply reaches us); then rows 1, 2, ... follow until the next command,
    and the pixels equal the .npy."""
    times = [r[0] for r in recs]
    on_time, lat, content_ok, bad = 0, [], 0, []
    acks = [j["t_ack"] - j["t_send"] for j in jumps]
    for k, j in enumerate(jumps):
        target = index_of[j["name"]]
        end = jumps[k + 1]["t_send"] if k + 1 < len(jumps) else t_stop
        i0 = bisect.bisect_right(times, j["t_send"])
        i1 = bisect.bisect_right(times, j["t_ack"])
        if i1 >= len(recs):
            bad.append(f"{j['name']}: no frame after the ack")
            continue
        first = next((i for i in range(i0, i1 + 1) if recs[i][1] == target), None)
        if first is None:
            t, a, row, _ = recs[i1]
            bad.append(f"{j['name']}: frame after ack showed array {a} row {row}")
            lat.append(None)
            continue
        lat.append(recs[first][0] - j["t_send"])
        frames = [rec for rec in recs[first:] if rec[0] < end] or [recs[first]]
        rows = [f[2] if f[1] == target else None for f in frames]
        if rows == list(range(len(frames))):
            on_time += 1
        else:
            bad.append(f"{j['name']}: rows after the jump were {rows[:12]}")
        arr = np.load(os.path.join(npy_dir, j["name"] + ".npy"), mmap_mode="r")
        if all(f[3] == arr[f[2]].tobytes() for f in frames if f[1] == target):
            content_ok += 1
    late = [x for x in lat if x is None]
    q = quantiles([x for x in lat if x is not None])
    if late:  # a jump never shown counts as the worst
        q["max"] = None
    return {
        "jumps": len(jumps),
        "on_time": on_time,
        "content_ok": content_ok,
        "cmd_to_frame_ns": q,
        "cmd_to_ack_ns": quantiles(acks),
        "late": bad[:10],
    }


def play_with_jumps(rowplay, pack, npy_dir, names, index_of, *, name, jumps, interval,
                    limits=None, seconds_after=0.3, seed=None, prefix=(), extra=(),
                    on_ready=None):
    """`rowplay play` with random jumps over the socket, checked on the capture.

    interval: (lo, hi) seconds between jumps, drawn uniformly. prefix: put
    before the command (`taskset -c 1`); extra: more options for play;
    on_ready: called with the player's {tid: thread name} and its control
    connection once it serves."""
    sock = os.path.join(OUT, f"{name}.sock")
    cap = os.path.join(OUT, f"{name}.capture")
    stats = os.path.join(OUT, f"{name}.stats.json")
    for p in (sock, cap, stats):
        if os.path.exists(p):
            os.remove(p)
    rng = random.Random(seed)
    targets = rng.sample(names, min(jumps, len(names)))
    cmd = list(prefix) + [rowplay, "play", pack, "--output", f"capture:{cap}", "--fps", "50",
                          "--seconds", "100000", "--rt-priority", "50", "--socket", sock,
                          "--stats-json", stats, "--gamma", "1", "--brightness", "1"]
    cmd += list(extra)
    child = Child(cmd, name, limits)
    t0 = time.monotonic_ns()
    done = []
    threads = {}
    try:
        ctl = Ctl(sock)
        ctl.cmd("status")
        ready_ns = time.monotonic_ns() - t0
        threads = samecpu.thread_ids(child.p.pid)
        if on_ready:
            on_ready(threads, ctl)
        time.sleep(0.1)
        for n in targets:
            t_send = time.monotonic_ns()
            reply = ctl.cmd(f"play {n}")
            t_ack = time.monotonic_ns()
            if reply != "ok":
                raise RuntimeError(f"play {n}: {reply}")
            done.append({"name": n, "t_send": t_send, "t_ack": t_ack})
            time.sleep(rng.uniform(*interval))
        time.sleep(seconds_after)
        ctl.close()
    except Exception as e:  # the player died: report it below
        ready_ns = None
        err = f"{type(e).__name__}: {e}"
    else:
        err = None
    t_stop = time.monotonic_ns()
    if child.p.poll() is None:
        child.p.send_signal(signal.SIGTERM)
    r = child.wait(60)
    out = {"ready_ns": ready_ns, "peak_rss_bytes": None, "ok": False, "threads": threads}
    why = failure(r) if r.get("signal") or r["rc"] != 0 else None
    if err or why:
        out["error"] = why or err
        return out
    st = json.load(open(stats))
    out["stats"] = st
    out.update(check_jumps(read_capture(cap), done, index_of, npy_dir, t_stop))
    out["open_fds"] = st["max_open_fds"]
    out["peak_rss_bytes"] = st["peak_rss_bytes"]
    out["ok"] = True
    if out["on_time"] == out["jumps"]:
        os.remove(cap)  # else kept next to the logs, to look at
    return out


# ---------------------------------------------------------------- cyclictest


def cyclictest_cmd(seconds):
    return ["cyclictest", "-m", "-q", "-v", "-p", "50", "-i", "20000", "-d", "0",
            "-t", "1", "-l", str(max(1, int(seconds * 50)))]


def cyclictest_latencies(text):
    """Every wake-up latency (ns) in `cyclictest -v` output."""
    lat = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
            lat.append(int(parts[2]) * 1000)  # us -> ns
    return lat


def parse_cyclictest(text):
    lat = cyclictest_latencies(text)
    return {**quantiles(lat), "samples": len(lat)}


def stress_cmd(seconds, tmp):
    return ["stress-ng", "--cpu", "0", "--io", "1", "--vm", "1", "--vm-bytes", "256M",
            "--hdd", "1", "--hdd-bytes", "128M", "--temp-path", tmp,
            "--timeout", f"{int(seconds) + 2}s", "--quiet"]


def realtime_test(rowplay, pack, npy_dir, names, index_of, *, seconds, stress, limits,
                  interval, seed):
    """The player at 50 Hz with a jump every `interval` s, next to cyclictest
    at the same priority and period, optionally under stress-ng."""
    tag = "stress" if stress else "idle"
    st = None
    if stress:
        tmp = os.path.join(OUT, "stress-tmp")
        os.makedirs(tmp, exist_ok=True)
        st = Child(stress_cmd(seconds + 1, tmp), f"stress-ng-{tag}")
        time.sleep(1.0)  # let the load build up
    ct = Child(cyclictest_cmd(seconds), f"cyclictest-{tag}")
    jumps = max(1, int(seconds / interval) - 1)
    trace = ktrace.TimerTrace(seconds)
    trace.start()
    pl = play_with_jumps(rowplay, pack, npy_dir, names, index_of, name=f"realtime-{tag}",
                         jumps=jumps, interval=(interval, interval), limits=limits,
                         seconds_after=max(0.3, seconds - jumps * interval), seed=seed)
    tr = trace.stop(save_to=os.path.join(OUT, "logs", f"ktrace-{tag}.txt"))
    c = ct.wait(seconds + 60)
    res = {"load": "stress-ng cpu+io+vm+hdd" if stress else "idle", "seconds": seconds,
           "player": pl, "cyclictest": parse_cyclictest(c["stdout"])}
    if pl.get("ok"):
        att = ktrace.attribute(tr, pl["stats"].get("recent_misses", []), PERIOD_NS)
        res["miss_attribution"] = att
        res["miss_attribution_text"] = ktrace.summary(att, trace.steal_ms) or trace.why
    if c["rc"] != 0 or res["cyclictest"]["samples"] == 0:
        res["cyclictest_error"] = failure(c) or "no samples"
    if st:
        s = st.wait(seconds + 60)
        if s["rc"] not in (0, None) and s.get("signal") is None:
            res["stress_error"] = failure(s)
    return res


def realtime_same_cpu(rowplay, pack, npy_dir, names, index_of, *, seconds, limits,
                      interval, seed):
    """The player and cyclictest on one CPU at the same priority and period,
    under stress-ng, both with raw latencies (see bench/samecpu.py)."""
    logs = os.path.join(OUT, "logs")
    wake_log = os.path.join(OUT, "realtime-samecpu.wakes.csv")
    if os.path.exists(wake_log):
        os.remove(wake_log)
    st = Child(samecpu.stress_cmd(seconds + 1), "stress-ng-samecpu")
    time.sleep(1.0)  # let the load build up
    trace = ktrace.TimerTrace(seconds, kb_per_s=samecpu.TRACE_KB_PER_S)
    trace.start()  # before cyclictest: its first wake-up is its first sample
    ct, ct_tids, beside = None, set(), None

    def focus(threads, ctl):
        # cyclictest after the player, its grid beside the player's
        # (samecpu.AHEAD_NS), up to a second later: 1.5 s less of it.
        nonlocal ct, ct_tids, beside
        beside = samecpu.next_deadline(ctl)
        ct = Child(samecpu.cyclictest_cmd(seconds - 1.5, beside_ns=beside), "cyclictest-samecpu")
        time.sleep(0.2)
        ct_tids = set(samecpu.thread_ids(ct.p.pid))
        trace.focus({t for t, n in threads.items() if n == ktrace.PLAYER}, ct_tids)
    jumps = max(1, int(seconds / interval) - 1)
    pl = play_with_jumps(rowplay, pack, npy_dir, names, index_of, name="realtime-samecpu",
                         jumps=jumps, interval=(interval, interval), limits=limits,
                         seconds_after=max(0.3, seconds - jumps * interval), seed=seed,
                         prefix=samecpu.pinned([]), extra=["--wake-log", wake_log],
                         on_ready=focus)
    c = (ct.wait(seconds + 60) if ct  # done before the trace stops: all its wake-ups kept
         else {"rc": None, "stdout": "", "signal": None,
               "stderr": "not started: the player never served its socket"})
    pids = ct_tids | {t for t, n in pl.get("threads", {}).items() if n == ktrace.PLAYER}
    tr = trace.stop(save_to=os.path.join(logs, "ktrace-samecpu.txt"), pids=pids or None)
    s = st.wait(seconds + 60)
    res = {"load": "same CPU, stress-ng cpu+io+vm", "seconds": seconds, "player": pl,
           "pids": sorted(pids),
           "player_phase_ns": None if beside is None else samecpu.phase_of(beside),
           "cyclictest_phase_ns": None if beside is None else samecpu.cyclictest_phase(beside)}
    if c["rc"] != 0 or not samecpu.cyclictest_ns(c["stdout"]):
        res["cyclictest_error"] = failure(c) or "no samples"
    if s["rc"] not in (0, None) and s.get("signal") is None:
        res["stress_error"] = failure(s)
    if not pl.get("ok"):
        return res
    res["compare"], att = samecpu.analyse(
        wake_log, os.path.join(logs, "ktrace-samecpu.txt") if tr else None, c["stdout"],
        pl["stats"]["deadline_misses"], pids or None, tr[2] if tr else 1,
        res["cyclictest_phase_ns"])
    res["miss_attribution"] = att
    res["miss_attribution_text"] = ktrace.summary(att, trace.steal_ms) or trace.why
    return res


def same_cpu_main(a, rowplay, limits, seed):
    """`bench/run --same-cpu`: only the same-CPU realtime comparison."""
    n = max(int(x) for x in (a.arrays or ("200" if a.quick else "10000")).split(","))
    seconds = a.rt_seconds or (3.0 if a.quick else 60.0)
    d = os.path.join(OUT, "data", f"n{n}_{a.shape.replace(',', 'x')}")
    subprocess.run([PY, os.path.join(HERE, "make_workload.py"), d, "--arrays", str(n),
                    "--shape", a.shape], check=True)
    pack = d + ".rowpack"
    subprocess.run([rowplay, "pack", d, "-o", pack], check=True, stdout=subprocess.DEVNULL)
    info = json.loads(subprocess.run([rowplay, "inspect", pack, "--json"], check=True,
                                     capture_output=True, text=True).stdout)
    index_of = {x["name"]: x["index"] for x in info["arrays"]}
    load0 = os.getloadavg()
    drop_caches()
    log(f"same-CPU realtime test, {n} arrays, {seconds:.0f} s")
    t = realtime_same_cpu(rowplay, pack, d, sorted(index_of), index_of, seconds=seconds,
                          limits=limits, interval=1.0, seed=seed)
    load1 = os.getloadavg()
    m = machine()
    L = ["# rowplay: player and cyclictest on one CPU", "",
         f"- Machine: {m['cpu']}, {m['cores']} cores, kernel {m['kernel']}, preemption "
         f"{m.get('preemption', 'unknown')}",
         f"- Command: `bench/run {' '.join(sys.argv[1:])}`; {n} arrays, a jump every second",
         f"- Load average (1/5/15 min) before {load0[0]:.2f}/{load0[1]:.2f}/{load0[2]:.2f}, "
         f"after {load1[0]:.2f}/{load1[1]:.2f}/{load1[2]:.2f}", ""]
    if "compare" in t:
        L += samecpu.report(t["compare"], seconds, "Same CPU")
        L += [f"Kernel trace: {t['miss_attribution_text']}", ""]
    else:
        L += [f"FAILED: {t['player'].get('error')} {t.get('cyclictest_error') or ''}", ""]
    t["load_before"], t["load_after"] = load0, load1
    with open(os.path.join(OUT, "samecpu.json"), "w") as f:
        json.dump(t, f, indent=1)
    with open(os.path.join(OUT, "samecpu.md"), "w") as f:
        f.write("\n".join(L))
    print("\n".join(L))


# ---------------------------------------------------------------- report


def ms(ns, digits=3):
    return "-" if ns is None else f"{ns / 1e6:.{digits}f}"


def us(ns):
    return "-" if ns is None else f"{ns / 1e3:.1f}"


def us3(ns):
    """Microseconds to 3 significant digits (0.153, 45.2, 7270)."""
    if ns is None:
        return "-"
    v = ns / 1e3
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def mib(b):
    return "-" if b is None else f"{b / MB:.1f}"


def ratio(a, b):
    return None if not a or not b else a / b


def report(res):
    m = res["machine"]
    L = []
    L.append("# rowplay benchmark")
    L.append("")
    L.append(f"- Machine: {m['cpu']}, {m['cores']} cores, {m['ram_bytes'] / 2**30:.1f} GiB RAM, "
             f"kernel {m['kernel']} ({m['arch']}), preemption "
             f"{m.get('preemption', 'unknown')}")
    L.append(f"- Date: {res['date']}; total wall time {res['wall_s']:.0f} s")
    L.append(f"- Command: `{res['command']}`")
    L.append(f"- Workload: random uint8 arrays of shape {res['shape']}, saved with np.save; "
             f"{res['jumps']} random jumps per contender, each to an array not touched before")
    L.append(f"- Pi Zero-like limits: {res['limits']}")
    L.append("- Page cache: " + ("dropped before every run (`echo 3 > /proc/sys/vm/drop_caches`)"
                                 if res["drop_caches"] else
                                 "NOT dropped (not allowed on this machine): runs start warm"))
    L.append("")
    L.append("## Side by side")
    L.append("")
    L.append("First row = from the jump request to row 0 of the array in hand. numpy rows: "
             "the user's Python code (lookup + copy of row 0). `rowplay` (library API): "
             "`rowplay bench`, lookup by name + copy of row 0 from the locked heads. "
             "`rowplay.open` (Python reader): the user's loop on the Python package, "
             "`rows = iter(lib[name])` and the first `next(rows)` copied into a buffer. "
             "`rowplay play`: from the socket command to the captured frame, which waits "
             "for the next 20 ms tick by design (on time = its first frame after the "
             "command is row 0 and comes no later than the first frame after the reply "
             "`ok`, then rows continue, pixels equal to the .npy).")
    L.append("")
    L.append("| contender | arrays | ready (ms) | first row p50 (us) | p99 (us) | max (us) "
             "| peak RSS (MiB) | open fds | jumps on time | under Pi Zero limits |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in res["contenders"]:
        fr = r.get("first_row_ns") or {}
        lim = r.get("limits") or {}
        lim_s = "survived" if lim.get("ok") else f"FAILED: {lim.get('error')}"
        ontime = f"{r['on_time']}/{r['jumps']}" if "on_time" in r else "n/a"
        if not r.get("ok"):
            L.append(f"| {r['label']} | {r['arrays']} | FAILED: {r.get('error')} | | | | "
                     f"{mib(r.get('peak_rss_bytes'))} | | | {lim_s} |")
            continue
        L.append(f"| {r['label']} | {r['arrays']} | {ms(r.get('ready_ns'), 1)} | {us3(fr.get('p50'))} "
                 f"| {us3(fr.get('p99'))} | {us3(fr.get('max'))} | {mib(r.get('peak_rss_bytes'))} "
                 f"| {r.get('open_fds')} | {ontime} | {lim_s} |")
    L.append("")
    L.append("## Timing floor: player vs cyclictest (same run, same machine)")
    L.append("")
    L.append("cyclictest (`cyclictest -m -p 50 -i 20000`, SCHED_FIFO 50, 50 Hz) runs at the "
             "same time as `rowplay play --rt-priority 50 --fps 50` on the largest pack, with a "
             "random jump every second. Player quantiles are histogram bucket tops (at most "
             "12.5 % above the true value); cyclictest's are in whole microseconds. The "
             "player runs under the Pi Zero-like limits.")
    L.append("")
    L.append("| load | seconds | cyclictest p50/p99/max (us) | player wake p50/p99/max (us) "
             "| p99 ratio | deadline misses | underruns | jumps on time | peak RSS (MiB) | max fds |")
    L.append("|---|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for t in res["realtime"]:
        c, p = t["cyclictest"], t["player"]
        if not p.get("ok"):
            L.append(f"| {t['load']} | {t['seconds']} | {us(c['p50'])}/{us(c['p99'])}/{us(c['max'])} "
                     f"| FAILED: {p.get('error')} | | | | | | |")
            continue
        w = p["stats"]["wake_latency_ns"]
        rt = ratio(w["p99"], c["p99"])
        L.append(f"| {t['load']} | {t['seconds']} | {us(c['p50'])}/{us(c['p99'])}/{us(c['max'])} "
                 f"| {us(w['p50'])}/{us(w['p99'])}/{us(w['max'])} | {'-' if rt is None else f'{rt:.2f}x'} "
                 f"| {p['stats']['deadline_misses']} | {p['stats']['underruns']} "
                 f"| {p['on_time']}/{p['jumps']} | {mib(p['peak_rss_bytes'])} | {p['open_fds']} |")
    L.append("")
    notes = [(t["load"], t.get("miss_attribution_text")) for t in res["realtime"]
             if t.get("miss_attribution_text")]
    if notes:
        L.append("Why the player was late (`bench/ktrace.py`: a kernel trace of timer "
                 "interrupts on CLOCK_MONOTONIC set beside the player's `recent_misses`):")
        L.append("")
        for load, text in notes:
            L.append(f"- {load}: {text}")
        L.append("")
    L.append("## Goals")
    L.append("")
    L.append("| goal | measured | met |")
    L.append("|---|---|---|")
    for g in res["goals"]:
        L.append(f"| {g['goal']} | {g['measured']} | {g['met']} |")
    L.append("")
    return "\n".join(L)


def goals(res):
    G = []

    def add(goal, measured, met):
        G.append({"goal": goal, "measured": measured,
                  "met": "yes" if met else ("n/a" if met is None else "**NO**")})

    by = {(r["kind"], r["arrays"]): r for r in res["contenders"]}
    ns = sorted({r["arrays"] for r in res["contenders"]})
    big = ns[-1]

    def p99(kind, n):
        r = by.get((kind, n))
        return (r.get("first_row_ns") or {}).get("p99") if r and r.get("ok") else None

    for n in ns:
        rp, mm, dc = p99("rowplay", n), p99("memmap", n), p99("dict", n)
        x = ratio(mm, rp)
        add(f"rowplay first-row p99 at least 10x below memmap ({n} arrays)",
            f"rowplay {us3(rp)} us vs memmap {us3(mm)} us: "
            + ("-" if x is None else f"{x:.0f}x below"), None if x is None else x >= 10)
        add(f"rowplay first-row p99 no worse than dict ({n} arrays)",
            f"rowplay {us3(rp)} us vs dict {us3(dc)} us",
            None if rp is None or dc is None else rp <= dc)
    for kind in ("rowplay", "rowplay-play"):
        r = by.get((kind, big))
        rss = r.get("peak_rss_bytes") if r else None
        add(f"{r['label'] if r else kind}: peak RSS under 32 MiB at {big} arrays",
            f"{mib(rss)} MiB (dict: {mib((by.get(('dict', big)) or {}).get('peak_rss_bytes'))} MiB)",
            None if rss is None else rss < 32 * MB)
        fds = [by[(kind, n)].get("open_fds") for n in ns if (kind, n) in by]
        add(f"{r['label'] if r else kind}: open fds constant in N",
            ", ".join(f"{n}: {f}" for n, f in zip(ns, fds)),
            None if None in fds or not fds else len(set(fds)) == 1)
    python_goals(res, add)
    failed = [f"{r['label']} at {r['arrays']}: {r['limits'].get('error')}"
              for r in res["contenders"] if r.get("limits") and not r["limits"].get("ok")]
    rp_failed = [f for f in failed if f.startswith("`rowplay")]
    add("contenders failing under the Pi Zero limits (rowplay must not)",
        "; ".join(failed) or "none", not rp_failed)
    for t in res["realtime"]:
        p, c = t["player"], t["cyclictest"]
        if not p.get("ok"):
            add(f"player test ({t['load']})", f"FAILED: {p.get('error')}", False)
            continue
        w = p["stats"]["wake_latency_ns"]
        x = ratio(w["p99"], c["p99"])
        add(f"player wake p99 within 1.5x of cyclictest ({t['load']})",
            f"{us(w['p99'])} us vs {us(c['p99'])} us: " + ("-" if x is None else f"{x:.2f}x"),
            None if x is None else x <= 1.5)
        s = p["stats"]
        if t["load"] != "idle":
            add(f"player test, {t['seconds']} s under stress: 0 misses, 0 underruns, every jump on "
                "time, peak RSS < 32 MiB, <= 16 fds",
                f"{s['deadline_misses']} misses, {s['underruns']} underruns, "
                f"{p['on_time']}/{p['jumps']} on time, {mib(p['peak_rss_bytes'])} MiB, "
                f"{p['open_fds']} fds",
                s["deadline_misses"] == 0 and s["underruns"] == 0 and p["on_time"] == p["jumps"]
                and p["peak_rss_bytes"] < 32 * MB and p["open_fds"] <= 16)
        att = t.get("miss_attribution")
        if att is not None and s["deadline_misses"] > 0:
            # Every miss the log holds must be one the machine caused: the
            # CPU holding the player's timer did not run until it woke.
            logged = len(att["detail"])
            add(f"player test ({t['load']}): every miss while the player's CPU was not "
                "running (kernel trace)",
                f"{att['cpu-silent']} of {logged} logged misses cpu-silent "
                f"({s['deadline_misses']} in all)",
                logged == min(s["deadline_misses"], ktrace.MISS_LOG_LEN)
                and att["cpu-silent"] == logged)
    return G


# ---------------------------------------------------------------- the Python reader


PY_LABEL = "`rowplay.open` (Python reader)"


def python_reader(d, pack, n, jumps, seed, limits, drop=True):
    """The user's loop on the Python package (python/): `contender.py
    rowplay.open`, measured, then again under the Pi Zero limits."""
    entry = {"kind": "rowplay-py", "label": PY_LABEL, "arrays": n}
    for phase in ("measure", "limits"):
        lim = limits if phase == "limits" else None
        if drop:
            drop_caches()
        log(f"{PY_LABEL}, {n} arrays, {phase}")
        r = run([PY, os.path.join(HERE, "contender.py"), "rowplay.open", d, "--pack", pack,
                 "--jumps", str(jumps), "--seed", str(seed)], f"rowplay-py-{n}-{phase}", lim)
        js = last_json(r["stdout"]) or {}
        why = failure(r)
        if phase == "measure":
            entry.update({"ok": why is None, "error": why,
                          "ready_ns": js.get("ready_ns"),
                          "first_row_ns": quantiles(js.get("first_row_ns") or []),
                          "peak_rss_bytes": js.get("peak_rss_bytes"),
                          "open_fds": js.get("open_fds"),
                          "library_fds": js.get("library_fds")})
        else:
            entry["limits"] = {"ok": why is None, "error": why,
                               "peak_rss_bytes": js.get("peak_rss_bytes"),
                               "cgroup_peak_bytes": r.get("cgroup_peak_bytes")}
    return entry


def python_goals(res, add):
    """Issue 18's acceptance figures for the Python reader."""
    by = {(r["kind"], r["arrays"]): r for r in res["contenders"]}
    ns = sorted({r["arrays"] for r in res["contenders"]})
    if not any(("rowplay-py", n) in by for n in ns):
        return

    def p99(kind, n):
        r = by.get((kind, n))
        return (r.get("first_row_ns") or {}).get("p99") if r and r.get("ok") else None

    for n in ns:
        py, dc, mm = p99("rowplay-py", n), p99("dict", n), p99("memmap", n)
        add(f"Python reader first-row p99 no worse than 2x dict and below memmap ({n} arrays)",
            f"Python reader {us3(py)} us vs dict {us3(dc)} us (2x: {us3(2 * dc if dc else None)}) "
            f"and memmap {us3(mm)} us",
            None if py is None or dc is None or mm is None else py <= 2 * dc and py < mm)
    big = ns[-1]
    r = by.get(("rowplay-py", big)) or {}
    rss = r.get("peak_rss_bytes")
    add(f"Python reader: peak RSS <= 40 MiB at {big} arrays (interpreter and numpy included)",
        f"{mib(rss)} MiB (dict: {mib((by.get(('dict', big)) or {}).get('peak_rss_bytes'))} MiB)",
        None if rss is None else rss <= 40 * MB)
    lfds = [by[("rowplay-py", n)].get("library_fds") for n in ns if ("rowplay-py", n) in by]
    add("Python reader: 1 file descriptor for the library whatever N",
        ", ".join(f"{n}: {f}" for n, f in zip(ns, lfds)),
        None if None in lfds or not lfds else set(lfds) == {1})


def python_only(argv):
    """`harness.py python-reader PACKDIR...`: only the Python reader, on
    workloads already made (DIR and DIR.rowpack); the page cache is left
    alone. Prints its rows of the table and its goals."""
    ap = argparse.ArgumentParser(prog="harness.py python-reader")
    ap.add_argument("dirs", nargs="+", help="workload folders; DIR.rowpack beside each")
    ap.add_argument("--jumps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-limits", action="store_true", help="skip the Pi Zero limits run")
    a = ap.parse_args(argv)
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    limits = PiLimits()
    res = {"contenders": []}
    for d in a.dirs:
        d = d.rstrip("/")
        n = len(os.listdir(d))
        res["contenders"].append(python_reader(d, d + ".rowpack", n, a.jumps, a.seed,
                                               None if a.no_limits else limits, drop=False))
    for r in res["contenders"]:
        fr = r.get("first_row_ns") or {}
        lim = r.get("limits")
        lim_s = ("not run" if lim is None else "survived" if lim.get("ok")
                 else f"FAILED: {lim.get('error')}")
        if not r.get("ok"):
            print(f"| {r['label']} | {r['arrays']} | FAILED: {r.get('error')} |")
            continue
        print(f"| {r['label']} | {r['arrays']} | {ms(r.get('ready_ns'), 1)} | {us3(fr.get('p50'))} "
              f"| {us3(fr.get('p99'))} | {us3(fr.get('max'))} | {mib(r.get('peak_rss_bytes'))} "
              f"| {r.get('open_fds')} | n/a | {lim_s} |")
    print(f"library fds: {[r.get('library_fds') for r in res['contenders']]}; "
          f"limits: {limits.describe() if not a.no_limits else 'not applied'}")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: 200 arrays, 50 jumps, a few seconds of realtime test")
    ap.add_argument("--arrays", default=None,
                    help="comma-separated array counts (default 1000,10000)")
    ap.add_argument("--shape", default="500,30,3", help="array shape (default 500,30,3)")
    ap.add_argument("--jumps", type=int, default=None, help="random jumps (default 1000)")
    ap.add_argument("--rt-seconds", type=float, default=None,
                    help="length of each realtime run, idle and under stress (default 60)")
    ap.add_argument("--head-rows", type=int, default=None, help="passed to rowplay pack")
    ap.add_argument("--seed", type=int, default=None, help="seed of the random jumps")
    ap.add_argument("--memory-cap", choices=["auto", "ulimit"], default="auto",
                    help="auto: a cgroup when the machine allows one, else ulimit -v; "
                         "ulimit: always ulimit -v")
    ap.add_argument("--same-cpu", action="store_true",
                    help="only the realtime test with the player and cyclictest both on "
                         "CPU 1 under stress-ng (bench/samecpu.py); results in "
                         "bench/out/samecpu.md")
    if sys.argv[1:2] == ["python-reader"]:
        return python_only(sys.argv[2:])
    a = ap.parse_args()
    counts = [int(x) for x in (a.arrays or ("200" if a.quick else "1000,10000")).split(",")]
    jumps = a.jumps or (50 if a.quick else 1000)
    rt_seconds = a.rt_seconds or (3.0 if a.quick else 60.0)
    seed = a.seed if a.seed is not None else int(time.time())

    started = time.monotonic()
    os.makedirs(os.path.join(OUT, "logs"), exist_ok=True)
    rowplay = find_rowplay()
    limits = PiLimits(mode=a.memory_cap)
    if a.same_cpu:
        return same_cpu_main(a, rowplay, limits, seed)
    res = {
        "machine": machine(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["bench/run"] + sys.argv[1:]),
        "shape": a.shape,
        "jumps": jumps,
        "seed": seed,
        "limits": limits.describe(),
        "drop_caches": drop_caches(),
        "contenders": [],
        "realtime": [],
    }
    log(f"limits: {res['limits']}; drop caches: {res['drop_caches']}")

    packs = {}
    for n in counts:
        d = os.path.join(OUT, "data", f"n{n}_{a.shape.replace(',', 'x')}")
        log(f"workload: {n} arrays of {a.shape} in {d}")
        subprocess.run([PY, os.path.join(HERE, "make_workload.py"), d, "--arrays", str(n),
                        "--shape", a.shape], check=True)
        pack = d + ".rowpack"
        cmd = [rowplay, "pack", d, "-o", pack]
        if a.head_rows:
            cmd += ["--head-rows", str(a.head_rows)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        info = json.loads(subprocess.run([rowplay, "inspect", pack, "--json"], check=True,
                                         capture_output=True, text=True).stdout)
        index_of = {x["name"]: x["index"] for x in info["arrays"]}
        names = sorted(index_of)
        packs[n] = (d, pack, names, index_of)

        for kind, label in (("np.load", "`np.load` per access"), ("dict", "`dict` cache"),
                            ("memmap", "`memmap` cache")):
            entry = {"kind": kind, "label": label, "arrays": n}
            for phase in ("measure", "limits"):
                lim = limits if phase == "limits" else None
                drop_caches()
                log(f"{label}, {n} arrays, {phase}")
                r = run([PY, os.path.join(HERE, "contender.py"), kind, d, "--jumps", str(jumps),
                         "--seed", str(seed)], f"{kind}-{n}-{phase}", lim)
                js = last_json(r["stdout"]) or {}
                why = failure(r)
                if phase == "measure":
                    entry.update({"ok": why is None, "error": why,
                                  "ready_ns": js.get("ready_ns"),
                                  "first_row_ns": quantiles(js.get("first_row_ns") or []),
                                  "peak_rss_bytes": js.get("peak_rss_bytes"),
                                  "open_fds": js.get("open_fds")})
                else:
                    entry["limits"] = {"ok": why is None, "error": why,
                                       "peak_rss_bytes": js.get("peak_rss_bytes"),
                                       "cgroup_peak_bytes": r.get("cgroup_peak_bytes")}
            res["contenders"].append(entry)

        entry = {"kind": "rowplay", "label": "`rowplay` (library API)", "arrays": n}
        for phase in ("measure", "limits"):
            lim = limits if phase == "limits" else None
            drop_caches()
            log(f"rowplay bench, {n} arrays, {phase}")
            r = run([rowplay, "bench", pack, "--jumps", str(jumps), "--json"],
                    f"rowplay-bench-{n}-{phase}", lim)
            js = last_json(r["stdout"]) or {}
            why = failure(r)
            if phase == "measure":
                entry.update({"ok": why is None, "error": why, "ready_ns": js.get("open_ns"),
                              "first_row_ns": js.get("first_row_ns"),
                              "peak_rss_bytes": js.get("peak_rss_bytes"),
                              "open_fds": js.get("open_fds"), "raw": js})
            else:
                entry["limits"] = {"ok": why is None, "error": why,
                                   "peak_rss_bytes": js.get("peak_rss_bytes")}
        res["contenders"].append(entry)

        entry = python_reader(d, pack, n, jumps, seed, limits)
        res["contenders"].append(entry)

        entry = {"kind": "rowplay-play", "label": "`rowplay play` (command to frame)", "arrays": n}
        for phase in ("measure", "limits"):
            lim = limits if phase == "limits" else None
            drop_caches()
            log(f"rowplay play with {jumps} jumps, {n} arrays, {phase}")
            p = play_with_jumps(rowplay, pack, d, names, index_of, name=f"rowplay-play-{n}-{phase}",
                                jumps=jumps, interval=(0.025, 0.055), limits=lim, seed=seed)
            if phase == "measure":
                entry.update(p)
                entry["first_row_ns"] = p.get("cmd_to_frame_ns")
            else:
                ok = p.get("ok") and p["on_time"] == p["jumps"]
                entry["limits"] = {"ok": bool(ok),
                                   "error": p.get("error") or (None if ok else
                                                               f"{p['on_time']}/{p['jumps']} jumps on time"),
                                   "peak_rss_bytes": p.get("peak_rss_bytes")}
        res["contenders"].append(entry)

    big = max(counts)
    d, pack, names, index_of = packs[big]
    for stress in (False, True):
        drop_caches()
        log(f"realtime test, {big} arrays, {rt_seconds:.0f} s, {'stress' if stress else 'idle'}")
        res["realtime"].append(realtime_test(rowplay, pack, d, names, index_of,
                                             seconds=rt_seconds, stress=stress, limits=limits,
                                             interval=1.0, seed=seed + 1))
    shutil.rmtree(os.path.join(OUT, "stress-tmp"), ignore_errors=True)

    res["wall_s"] = time.monotonic() - started
    res["goals"] = goals(res)
    md = report(res)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(md)
    print(md)
    log(f"done in {res['wall_s']:.0f} s; wrote {OUT}/results.md and results.json")


if __name__ == "__main__":
    main()
