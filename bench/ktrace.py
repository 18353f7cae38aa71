"""Why was the player late? A kernel trace of timer interrupts, set beside
the deadline misses the player logs (`recent_misses` in --stats-json).

While the player runs, ftrace records every hrtimer expiry on every CPU
(the scheduler tick and all timers: a busy CPU takes one at least every few
ms) and every wake-up of the player thread, on CLOCK_MONOTONIC, the clock of
the player's own timestamps. Each miss is then put in one of these classes:

- `cpu-silent`: the player's timer fired late, and the CPU it fired on took
  no timer interrupt at all between the deadline and that late wake-up. A
  CPU that takes no interrupt for milliseconds is not running (a virtual CPU
  descheduled by the host) or runs with interrupts off in the kernel;
  nothing a user-space thread can do about either. `all-cpus-silent` when
  every CPU was silent over that span at once (the whole VM stopped).
- `timer-late`: the timer fired late although the CPU took other interrupts.
- `ran-late`: woken on time, but the thread got the CPU late: another task
  kept it, typically inside a system call on a kernel without full
  preemption (see `preemption()`); the report names that task.
- `sent-late`: got the CPU on time, the frame was handed out late (the
  player's own work).
- `no-trace`: the trace does not reach back to it (a full ring drops its
  oldest events) or has no wake-up for it.

The same trace also keeps every wake-up of cyclictest's measuring thread
(`cyclic_wakes`: the realtime `cyclictest` thread, told from its
non-realtime main thread by priority), so that cyclictest's samples can be
placed on the same clock, and every switch to the player thread with the
task it took the CPU from (`switches_in`; `cyclic_switches` for
cyclictest).

Needs root and tracefs; when either is missing the benchmark says so and
goes on without attribution. The kernel has one trace for the whole
machine: run one benchmark at a time.
"""
import bisect
import gzip
import os
import re
import subprocess

PLAYER = "rowplay-player"
MISS_LOG_LEN = 64  # misses the player keeps in `recent_misses` (src/stats.rs)
SWITCH = re.compile(r"prev_comm=(.*?) prev_pid=\d+ prev_prio=\d+ prev_state=(\S+) ==> "
                    r"next_comm=(.*?) next_pid=(\d+)")
PID = re.compile(r"\bpid=(\d+)")
PRIO = re.compile(r"\bprio=(\d+)")
EVENT = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+(\d+)\.(\d+): (\w+): (.*)$")


def _tracefs():
    for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.exists(os.path.join(d, "trace")):
            return d
    try:  # not mounted yet: mount it (root only)
        os.makedirs("/sys/kernel/tracing", exist_ok=True)
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return "/sys/kernel/tracing"
    except OSError:
        pass
    return None


def steal_ticks():
    """Total time the host took the virtual CPUs away (USER_HZ ticks)."""
    try:
        with open("/proc/stat") as f:
            return int(f.readline().split()[8])
    except (OSError, IndexError, ValueError):
        return None


class TimerTrace:
    def __init__(self, seconds, kb_per_s=30):
        self.dir = _tracefs() if os.geteuid() == 0 else None
        self.why = None if self.dir else "no tracefs or not root: misses not attributed"
        # Measured: ~400 events per second per CPU under the stress load,
        # ~40 bytes each in the ring: 30 KB/s per CPU leaves room. Capped at
        # an eighth of RAM over all CPUs (a Pi Zero has 512 MB); a ring
        # that overflows loses its oldest events, and misses from before
        # what it kept are reported as `no-trace` rather than guessed at.
        ram_kb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1024
        cap = max(1024, min(262144, ram_kb // 8 // (os.cpu_count() or 1)))
        self.kb = int(min(cap, max(4096, seconds * kb_per_s)))
        self.saved = {}
        self.steal0 = None
        self.cyclic_wakes = []  # t_ns of each wake-up of cyclictest's timed thread
        self.switches_in = []  # (t_ns, cpu, prev_comm, prev_state) into the player
        self.cyclic_switches = []  # the same, into cyclictest's timed thread

    def _w(self, name, value):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(value)

    def _r(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def start(self):
        self.steal0 = steal_ticks()
        if not self.dir:
            return
        try:
            clock = re.search(r"\[(\w+)\]", self._r("trace_clock"))
            self.saved = {"trace_clock": clock.group(1) if clock else "local",
                          "buffer_size_kb": self._r("buffer_size_kb").split()[0]}
            self._w("tracing_on", "0")
            self._w("set_event", "")
            self._w("trace_clock", "mono")
            self._w("buffer_size_kb", str(self.kb))
            self._w("trace", "")
            # Kernel priorities below 100 are realtime: cyclictest's timed
            # thread, not its main thread.
            self._w("events/sched/sched_waking/filter",
                    f'comm == "{PLAYER}" || (comm == "cyclictest" && prio < 100)')
            self._w("events/sched/sched_waking/enable", "1")
            self._w("events/sched/sched_switch/filter",
                    f'next_comm == "{PLAYER}" || (next_comm == "cyclictest" && next_prio < 100)')
            self._w("events/sched/sched_switch/enable", "1")
            self._w("events/timer/hrtimer_expire_entry/enable", "1")
            self._w("tracing_on", "1")
        except OSError as e:
            self.why = f"tracefs not usable ({e}): misses not attributed"
            self.dir = None

    def focus(self, player, cyclictest=()):
        """From now on record wake-ups and switches of these thread ids only
        (the player's and cyclictest's, once they exist; cyclictest's timed
        thread still told by its realtime priority): other threads of the
        same names on a shared machine would fill the ring."""
        if not self.dir or not (player or cyclictest):
            return
        wake = [f"pid == {t}" for t in sorted(player)]
        switch = [f"next_pid == {t}" for t in sorted(player)]
        if cyclictest:
            wake.append("((" + " || ".join(f"pid == {t}" for t in sorted(cyclictest))
                        + ") && prio < 100)")
            switch.append("((" + " || ".join(f"next_pid == {t}" for t in sorted(cyclictest))
                          + ") && next_prio < 100)")
        try:
            self._w("events/sched/sched_waking/filter", " || ".join(wake))
            self._w("events/sched/sched_switch/filter", " || ".join(switch))
        except OSError as e:
            self.why = f"trace filter not set ({e})"

    def stop(self, save_to=None, pids=None):
        """Stop tracing and read the trace: (per-CPU sorted expiry times,
        player wake-ups as (t_ns, cpu), events lost, per-CPU name of the
        task each expiry interrupted), or None. `save_to`: also keep the raw
        trace there, to look at the CPUs around a miss. `pids`: the thread
        ids of the player and cyclictest under test; wake-ups and switches
        of other threads of the same names (other runs on a shared
        machine) are left out. None keeps them all."""
        steal1 = steal_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        self.steal_ms = (None if self.steal0 is None or steal1 is None
                         else (steal1 - self.steal0) * 1000 // hz)
        if not self.dir:
            return None
        try:
            self._w("tracing_on", "0")
            raw = open(save_to, "w") if save_to else None
            with open(os.path.join(self.dir, "trace")) as f:
                ev = read_events(f, pids, raw)
            if raw:
                raw.close()
            ticks, wakes, comms = ev["ticks"], ev["wakes"], ev["comms"]
            self.cyclic_wakes = ev["cyclic_wakes"]
            self.switches_in = ev["switches_in"]
            self.cyclic_switches = ev["cyclic_switches"]
            lost = 0
            for cpu in ticks:
                try:
                    st = self._r(f"per_cpu/cpu{cpu}/stats")
                    lost += sum(int(x) for x in re.findall(r"(?:overrun|dropped events): (\d+)", st))
                except OSError:
                    pass
            return ticks, wakes, lost, comms
        except OSError as e:
            self.why = f"trace not readable ({e}): misses not attributed"
            return None
        finally:
            self._restore()

    def _restore(self):
        for name, value in (("events/sched/sched_waking/enable", "0"),
                            ("events/sched/sched_switch/enable", "0"),
                            ("events/sched/sched_switch/filter", "0"),
                            ("events/timer/hrtimer_expire_entry/enable", "0"),
                            ("events/sched/sched_waking/filter", "0"),
                            ("trace", ""),
                            ("trace_clock", self.saved.get("trace_clock", "local")),
                            ("buffer_size_kb", self.saved.get("buffer_size_kb", "1408"))):
            try:
                self._w(name, value)
            except OSError:
                pass


def read_events(lines, pids=None, raw=None):
    """The events of a trace (tracefs `trace`, or a copy saved by
    `TimerTrace.stop`): per-CPU expiry times and the tasks they
    interrupted, the player's wake-ups as (t_ns, cpu), cyclictest's timed
    thread's wake-up times, and the switches into each. `pids` as in
    `TimerTrace.stop`; `raw`: a file each line is copied to."""
    ev = {"ticks": {}, "comms": {}, "wakes": [], "cyclic_wakes": [], "switches_in": [],
          "cyclic_switches": []}
    for line in lines:
        if raw:
            raw.write(line)
        m = EVENT.match(line)
        if not m:
            continue
        cpu = int(m.group(3))
        t = int(m.group(4)) * 1_000_000_000 + int(m.group(5).ljust(9, "0")[:9])
        if m.group(6) == "hrtimer_expire_entry":
            ev["ticks"].setdefault(cpu, []).append(t)
            ev["comms"].setdefault(cpu, []).append(m.group(1).strip())
        elif m.group(6) == "sched_waking":
            pid = PID.search(m.group(7))
            if pids is not None and (not pid or int(pid.group(1)) not in pids):
                continue
            if m.group(7).startswith("comm=cyclictest "):
                prio = PRIO.search(m.group(7))
                if prio and int(prio.group(1)) < 100:  # the timed thread
                    ev["cyclic_wakes"].append(t)
            else:
                ev["wakes"].append((t, cpu))
        elif m.group(6) == "sched_switch":
            sw = SWITCH.match(m.group(7))
            if sw and (pids is None or int(sw.group(4)) in pids):
                to = "cyclic_switches" if sw.group(3) == "cyclictest" else "switches_in"
                ev[to].append((t, cpu, sw.group(1), sw.group(2)))
    return ev


def _silent(times, lo, hi):
    """No expiry strictly inside (lo, hi)."""
    i = bisect.bisect_right(times, lo)
    return i >= len(times) or times[i] >= hi


def attribute(trace, misses, period_ns):
    """Classify each logged miss (see the module doc). Returns a dict:
    class -> count, plus `detail` (one entry per miss)."""
    out = {"cpu-silent": 0, "all-cpus-silent": 0, "timer-late": 0, "ran-late": 0,
           "sent-late": 0, "no-trace": 0, "detail": []}
    if trace is None:
        return None
    ticks, wakes, lost, comms = trace
    out["events_lost"] = lost
    wakes.sort()
    wt = [w[0] for w in wakes]
    # A ring that overflowed lost its oldest events: only misses after the
    # first event kept on every CPU can be judged.
    covered = max((v[0] for v in ticks.values() if v), default=None)
    slack = period_ns // 20  # 1 ms at 50 Hz: on time for a wake-up
    for m in misses:
        d, woke, sent = m["deadline_ns"], m["woke_ns"], m["sent_ns"]
        # the last wake-up of the player at or before it woke
        i = bisect.bisect_right(wt, woke + 100_000) - 1
        row = {"deadline_ns": d, "late_ms": round((sent - d) / 1e6, 2)}
        if i < 0 or wt[i] < d - slack or covered is None or d < covered:
            cls = "no-trace"
        else:
            t, cpu = wakes[i]
            row["cpu"] = cpu
            if woke - d <= slack:
                cls = "sent-late"
            elif t - d <= slack:
                cls = "ran-late"
                # The task interrupted by the last tick before the player
                # ran is the one that kept the CPU.
                k = bisect.bisect_left(ticks.get(cpu, []), woke) - 1
                if k >= 0 and ticks[cpu][k] > t:
                    row["held_by"] = comms[cpu][k]
            # A CPU coming back after a silence runs all its expired timers
            # at once, the tick among them: expiries in the last 0.5 ms
            # before the wake-up belong to that same late interrupt.
            elif _silent(ticks.get(cpu, []), d + 50_000, t - 500_000):
                cls = "cpu-silent"
                if all(_silent(v, d + 50_000, t - 500_000) for v in ticks.values()):
                    out["all-cpus-silent"] += 1
                    row["all_cpus"] = True
            else:
                cls = "timer-late"
        row["class"] = cls
        out[cls] += 1
        out["detail"].append(row)
    return out


def summary(att, steal_ms):
    """One sentence for the reports."""
    if att is None:
        return None
    n = len(att["detail"])
    if n == 0:
        s = "no deadline misses to attribute"
    else:
        s = (f"of {n} logged misses: {att['cpu-silent']} while the CPU holding the player's "
             f"timer took no interrupt at all until the late wake-up ({att['all-cpus-silent']} "
             f"with every CPU silent at once), {att['timer-late']} timer late on a running CPU, "
             f"{att['ran-late']} woken on time but run late, {att['sent-late']} sent late "
             f"after an on-time wake-up, {att['no-trace']} not in the trace")
    held = sorted({r["held_by"] for r in att["detail"] if "held_by" in r})
    if held:
        s += f" (the CPU was held by {', '.join(held)})"
    if steal_ms is not None:
        s += f"; steal time reported by the host during the run: {steal_ms} ms"
    return s


def explain(trace, misses, period_ns, save_to=None):
    """Stop `trace` and attribute the player's `misses` (its stats'
    `recent_misses`): (attribution, one sentence for the report)."""
    tr = trace.stop(save_to=save_to)
    att = attribute(tr, misses, period_ns)
    return att, summary(att, trace.steal_ms) or trace.why


def preemption():
    """The kernel's preemption model, as far as it can be read: `full` and
    `rt` let a due SCHED_FIFO thread take the CPU from another task's system
    call at once; `none` and `voluntary` make it wait for that call to reach
    a preemption point."""
    try:
        with open("/sys/kernel/debug/sched/preempt") as f:
            m = re.search(r"\((\w+)\)", f.read())
            if m:
                return m.group(1)
    except OSError:
        pass
    version = os.uname().version
    if "PREEMPT_RT" in version:
        return "rt"
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            cfg = f.read()
    except OSError:
        cfg = ""
    if cfg:
        with open("/proc/cmdline") as f:
            arg = re.search(r"\bpreempt=(\w+)", f.read())
        if "CONFIG_PREEMPT_DYNAMIC=y" in cfg and arg:
            return f"{arg.group(1)} (preempt= on the command line)"
        for opt, name in (("CONFIG_PREEMPT_RT=y", "rt"), ("CONFIG_PREEMPT=y", "full"),
                          ("CONFIG_PREEMPT_LAZY=y", "lazy"),
                          ("CONFIG_PREEMPT_VOLUNTARY=y", "voluntary"),
                          ("CONFIG_PREEMPT_NONE=y", "none")):
            if opt in cfg:
                return name + (" (the build's default)" if "CONFIG_PREEMPT_DYNAMIC=y" in cfg
                               else "")
    if re.search(r"\bPREEMPT\b", version):
        return "full"
    return "unknown (uname -v: " + version + ")"
