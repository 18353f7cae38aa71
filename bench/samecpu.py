"""The player against cyclictest on one CPU (`bench/run --same-cpu`,
`bench/run soak --same-cpu`).

Both are pinned to CPU 1 (`taskset -c 1`, the whole player process with
its helper threads, as on a one-core Pi Zero), both at SCHED_FIFO 50 with a
20 ms period, under `stress-ng --cpu 1 --io 1 --vm 1 --vm-bytes 256M`
(not pinned: the scheduler places it). Both keep raw latencies: cyclictest
prints every sample in ns (`-v -N`), the player writes every tick's
deadline, wake-up and hand-out time (`--wake-log`). The kernel trace
(bench/ktrace.py) records both threads' wake-ups, so every player miss can
be set beside what cyclictest saw in its nearest period on the same clock.
"""
import bisect
import math
import os
import sys

CPU = 1
PRIORITY = 50
PERIOD_NS = 20_000_000
LATE_NS = 5_000_000  # a deadline miss for the player (a quarter period)
# Ring size per second of run and CPU: a 10-minute soak under this load on
# a shared machine lost 1.7 million events at ktrace's default of 30 KB/s.
TRACE_KB_PER_S = 150


def pinned(cmd, cpu=CPU):
    return ["taskset", "-c", str(cpu)] + list(cmd)


# Where cyclictest's grid goes: this much before the player's deadlines.
# Identical cyclictest threads on one CPU a few milliseconds apart in the
# same period wake late at very different rates (`bench/run phases`, 20
# threads 1 ms apart: p99 86 to 163 us, and 0.6 to 3.6 % of wake-ups over
# the pooled p99), because what else runs on the machine comes at its own
# times in each period. Beside the player's deadline, cyclictest lands in
# the same moments; ahead of it, in the 4 ms the player's helper threads
# keep clear, not in the work that follows each of the player's frames.
AHEAD_NS = 250_000


def cyclictest_cmd(seconds, cpu=CPU, beside_ns=None):
    """cyclictest on `cpu`, every sample printed in ns. beside_ns: a
    deadline of the player's (CLOCK_MONOTONIC): cyclictest's grid is then
    put AHEAD_NS before the player's (`--secaligned`: whole seconds plus
    an offset, and a second is a whole number of periods)."""
    cmd = ["cyclictest", "-m", "-q", "-N", "-v", "-p", str(PRIORITY), "-i",
           str(PERIOD_NS // 1000), "-d", "0", "-t", "1",
           "-l", str(max(1, int(seconds * 1e9 / PERIOD_NS)))]
    if beside_ns:
        cmd.append(f"--secaligned={cyclictest_phase(beside_ns) // 1000}")
    return pinned(cmd, cpu)


def cyclictest_phase(beside_ns):
    """Where cyclictest's grid goes in the period (ns, whole us: what
    `--secaligned` takes) for a player deadline `beside_ns`."""
    return (beside_ns - AHEAD_NS) % PERIOD_NS // 1000 * 1000


def next_deadline(ctl, tries=100):
    """The player's next deadline from `status` over its control
    connection `ctl` (0 until the frame loop first waits, just after it
    starts)."""
    import json
    import time
    for _ in range(tries):
        d = json.loads(ctl.cmd("status")).get("next_deadline_ns") or 0
        if d:
            return d
        time.sleep(0.05)
    raise RuntimeError("the player reports no next_deadline_ns")


def phase_of(deadline_ns):
    """A deadline's place in the period (ns)."""
    return deadline_ns % PERIOD_NS


def cyclictest_ns(text):
    """Every sample of `cyclictest -v -N` (lines `thread: loop: latency`), ns."""
    lat = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
            lat.append(int(parts[2]))
    return lat


def stress_cmd(seconds):
    return ["stress-ng", "--cpu", "1", "--io", "1", "--vm", "1", "--vm-bytes", "256M",
            "--timeout", f"{int(seconds) + 2}s", "--quiet"]


def read_wake_log(path):
    """(deadline_ns, woke_ns, sent_ns) of every tick in a `--wake-log` CSV."""
    recs = []
    with open(path) as f:
        for line in f:
            if line[:1].isdigit():
                d, w, s = line.split(",")
                recs.append((int(d), int(w), int(s)))
    return recs


def thread_ids(pid):
    """{tid: comm} of every thread of process `pid` (empty when gone)."""
    out = {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    out[int(t)] = f.read().strip()
            except OSError:
                pass
    except OSError:
        pass
    return out


def quantiles(xs):
    if not xs:
        return {"p50": None, "p99": None, "max": None}
    s = sorted(xs)

    def q(p):
        return s[max(0, min(len(s) - 1, math.ceil(len(s) * p) - 1))]

    return {"p50": q(0.5), "p99": q(0.99), "max": s[-1]}


def place_cyclictest(lat, wakes, lost, period=PERIOD_NS, phase_ns=None):
    """Deadline (CLOCK_MONOTONIC ns) of each cyclictest sample, from the
    traced wake-ups of its timed thread, or None when they cannot be placed.

    cyclictest's deadlines are a grid from its first one, t0, and after each
    sample it moves to the next grid point that is still ahead of it (a
    wake-up more than a period late skips the points it passed). So the
    deadlines follow from t0 and the latencies, as cyclictest computes them.
    t0 is the timer wake-up of sample 0 less its latency (the trace starts
    before cyclictest; of the first three traced wake-ups, the one that puts
    most wake-ups on the grid). Accepted when 90 % of all traced wake-ups
    come less than 2 ms after a grid point and there is one per sample (up
    to three more). A trace that lost its oldest events cannot be placed.

    phase_ns: where cyclictest's grid lies in the period when it was set
    (`--secaligned`); t0 is then the grid point nearest the estimate,
    which otherwise comes early by the first sample's time from its timer
    wake-up to its clock read (tens of us)."""
    if not lat or not wakes:
        return None
    wakes = sorted(wakes)
    if lost or len(wakes) < len(lat):
        return place_tail(lat, wakes, period, phase_ns)
    if len(wakes) > len(lat) + 3:
        return None

    def on_grid(t0):
        return sum(1 for w in wakes if (w - t0) % period < 2_000_000)

    t = max((wakes[j] - lat[0] for j in range(min(3, len(wakes)))), key=on_grid)
    if phase_ns is not None:
        t = snap(t, phase_ns, period)
    if on_grid(t) < 0.9 * len(wakes):
        return None
    out = []
    for x in lat:
        out.append(t)
        now = t + x
        t += period
        while now > t:
            t += period
    return out


def confirm_late(lat, deadlines, switches, over=1_000_000):
    """(confirmed, late): of the placed samples more than `over` late, how
    many have a switch-in of cyclictest's timed thread just before the
    time they give for its clock read (deadline + latency, from 300 us
    before to 50 us after). On-time samples cannot check a placement (one
    switch-in comes every period, so a placement a whole period off fits
    them as well); late ones, each late by its own amount, can."""
    sw = sorted(t for t, *_ in switches)
    late = confirmed = 0
    for d, x in zip(deadlines, lat):
        if d is None or x <= over:
            continue
        late += 1
        i = bisect.bisect_left(sw, d + x - 300_000)
        confirmed += i < len(sw) and sw[i] <= d + x + 50_000
    return confirmed, late


def snap(t, phase_ns, period=PERIOD_NS):
    """The time nearest `t` that lies `phase_ns` into a period."""
    return t - ((t - phase_ns + period // 2) % period - period // 2)


def place_tail(lat, wakes, period=PERIOD_NS, phase_ns=None):
    """Placement when the ring lost its oldest events: the trace stops after
    cyclictest exits, so the last wake-ups are its last samples, one each.
    The grid's phase is the median kept wake-up's (a timer wake-up comes a
    few us after its deadline); each kept sample's deadline is the grid
    point at or before its wake-up, or wake - latency when it was more than
    half a period late; earlier samples get None. Accepted when 90 % of the
    kept wake-ups come less than 2 ms after a grid point."""
    m = min(len(lat), len(wakes))
    if m == 0:
        return None
    kept = wakes[-m:]
    off = sorted((w - kept[0] + period // 2) % period - period // 2 for w in kept)
    grid = kept[0] + off[len(off) // 2] - 5_000
    if phase_ns is not None:
        grid = snap(grid, phase_ns, period)
    if sum(1 for w in kept if (w - grid) % period < 2_000_000) < 0.9 * m:
        return None
    out = [None] * (len(lat) - m)
    for w, x in zip(kept, lat[-m:]):
        r = (w - grid) % period
        d = w - r if r < period - 1_000_000 else w - r + period
        out.append(w - x if x > period // 2 else d)
    return out


def poisson_bound(c):
    """Most misses the player may have for the same rate as cyclictest's
    `c` over-5-ms wake-ups: c + 3 sqrt(c) + 3."""
    return c + 3 * math.sqrt(c) + 3


def tail_causes(late, wakes, switches, threshold, slack=50_000):
    """Why the wake-ups later than `threshold` were late: for each (deadline,
    woke) in `late`, `timer late` when the traced timer wake-up came more
    than `slack` after the deadline (the interrupt itself was late), else
    `ran late behind TASK` (woken on time, the CPU was still held by TASK,
    from the switch into the thread), `late after switch-in` (woken and
    switched in on time, its own clock read came more than `slack` after:
    held once on the CPU, with no switch the trace saw), `ran late` without
    a switch record, or `no trace`. Returns {cause: count}."""
    wakes = sorted(wakes)
    st = [x[0] for x in switches]
    out = {}
    for d, w in late:
        if w - d <= threshold:
            continue
        i = bisect.bisect_right(wakes, w + slack) - 1
        if i < 0 or wakes[i] < d - 20 * slack:
            cause = "no trace"
        elif wakes[i] - d > slack:
            cause = "timer late"
        else:
            j = bisect.bisect_right(st, w + slack) - 1
            if j < 0 or st[j] < wakes[i]:
                cause = "ran late"
            elif st[j] - wakes[i] <= slack and w - st[j] > slack:
                cause = "late after switch-in"
            else:
                cause = f"ran late behind {switches[j][2]}"
        out[cause] = out.get(cause, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def compare(ticks, deadline_misses, cyc_lat, cyc_deadlines, att, trace_info, period=PERIOD_NS,
            player_wakes=(), cyc_wakes=(), cyc_switches=(), placed_how=None):
    """Side by side figures and one row per player miss.

    ticks: the player's wake log; cyc_lat: cyclictest's samples (ns);
    cyc_deadlines: their deadlines or None; att: ktrace.attribute of the
    misses (or None); trace_info: (ticks by CPU, comms by CPU, switches into
    the player) from the trace, or None."""
    pw = [w - d for d, w, _ in ticks]
    misses = [(d, w, s) for d, w, s in ticks if s - d > period // 4]
    c_late = sum(1 for x in cyc_lat if x > LATE_NS)
    pq, cq = quantiles(pw), quantiles(cyc_lat)
    res = {
        "player": {**pq, "ticks": len(ticks), "deadline_misses": deadline_misses,
                   "misses_in_log": len(misses),
                   "wake_over_5ms": sum(1 for x in pw if x > LATE_NS),
                   # What a strip sees (deadline to hand-out), and what the
                   # loop took after its wait returned (its work, and any
                   # hold of the thread after the wake-up).
                   "sent": quantiles([s - d for d, _, s in ticks]),
                   "after_wake": quantiles([s - w for _, w, s in ticks])},
        "cyclictest": {**cq, "samples": len(cyc_lat), "over_5ms": c_late},
        "bound": poisson_bound(c_late),
        "p99_ratio": (pq["p99"] / cq["p99"]) if pq["p99"] and cq["p99"] else None,
        "cyclictest_placed": cyc_deadlines is not None,
        "cyclictest_placed_how": placed_how,
        "misses": [],
    }
    res["rate_ok"] = deadline_misses <= res["bound"]
    # How far before the player's deadlines cyclictest's lay in each period
    # (the median over its placed samples): what the comparison is between.
    ahead = sorted((ticks[0][0] - t) % period for t in cyc_deadlines or () if t is not None)
    res["cyclictest_ahead_ns"] = ahead[len(ahead) // 2] if ahead and ticks else None
    # The tail past cyclictest's p99, both sides, by cause (needs the trace).
    # Only over the span the trace kept on every CPU (a full ring drops its
    # oldest events).
    if trace_info and cq["p99"] is not None and ticks:
        thr = cq["p99"]
        kept = max((v[0] for v in trace_info[0].values() if v), default=None)
        start = kept if kept is not None else ticks[-1][0] + 1
        res["tail"] = {
            "threshold_ns": thr,
            "from_s": round(max(0, start - ticks[0][0]) / 1e9, 1),
            "player": tail_causes([(d, w) for d, w, _ in ticks if d >= start], player_wakes,
                                  trace_info[2], thr),
            "cyclictest": (tail_causes([(t, t + x) for t, x in zip(cyc_deadlines, cyc_lat)
                                        if t is not None and t >= start],
                                       cyc_wakes, cyc_switches, thr)
                           if cyc_deadlines else None),
        }
    res["p99_ok"] = res["p99_ratio"] is not None and res["p99_ratio"] <= 1.1
    by_deadline = {r["deadline_ns"]: r for r in (att or {}).get("detail", [])}
    placed = ([(t, x) for t, x in zip(cyc_deadlines, cyc_lat) if t is not None]
              if cyc_deadlines else [])
    ct = [t for t, _ in placed]
    for d, w, s in misses:
        row = {"deadline_ns": d, "t_s": round((d - ticks[0][0]) / 1e9, 2) if ticks else None,
               "woke_late_ms": round((w - d) / 1e6, 2), "sent_late_ms": round((s - d) / 1e6, 2)}
        a = by_deadline.get(d)
        if a:
            row["class"] = a["class"]
            if "held_by" in a:
                row["held_by"] = a["held_by"]
        if ct:
            i = bisect.bisect_left(ct, d)
            near = min((j for j in (i - 1, i) if 0 <= j < len(ct)),
                       key=lambda j: abs(ct[j] - d))
            row["cyclictest_nearest_ms"] = round(placed[near][1] / 1e6, 3)
            row["cyclictest_nearest_offset_ms"] = round((ct[near] - d) / 1e6, 2)
            lo, hi = bisect.bisect_left(ct, d - period), bisect.bisect_right(ct, d + period)
            row["cyclictest_max_within_period_ms"] = round(
                max((x for _, x in placed[lo:hi]), default=0) / 1e6, 3)
        if trace_info:
            cpu_ticks, comms, switches = trace_info
            cpu = a.get("cpu") if a else None
            if cpu is not None and cpu in cpu_ticks:
                lo = bisect.bisect_right(cpu_ticks[cpu], d)
                hi = bisect.bisect_left(cpu_ticks[cpu], w)
                row["on_cpu_between"] = sorted(set(comms[cpu][lo:hi]))
            sw = [x for x in switches if d - period // 20 <= x[0] <= w + 100_000]
            if sw:
                row["switched_in_from"] = f"{sw[-1][2]} ({sw[-1][3]})"
        res["misses"].append(row)
    return res


def us(ns):
    return "-" if ns is None else f"{ns / 1e3:.1f}"


def report(res, seconds, title):
    """Markdown lines of one comparison."""
    p, c = res["player"], res["cyclictest"]
    r = res["p99_ratio"]
    L = [f"### {title}", "",
         f"{seconds:.0f} s, player and cyclictest both on CPU {CPU} (`taskset -c {CPU}`, the "
         f"player's helper threads with it), SCHED_FIFO {PRIORITY}, 20 ms; "
         f"`{' '.join(stress_cmd(seconds)[:-3])}`. Raw latencies of both.", "",
         "| | wake-ups | misses (>5 ms late) | wake p50 / p99 / max (us) |",
         "|---|---:|---:|---|",
         f"| cyclictest | {c['samples']} | {c['over_5ms']} | "
         f"{us(c['p50'])} / {us(c['p99'])} / {us(c['max'])} |",
         f"| player | {p['ticks']} | {p['deadline_misses']} deadline misses "
         f"({p['wake_over_5ms']} wake-ups >5 ms) | {us(p['p50'])} / {us(p['p99'])} / "
         f"{us(p['max'])} |", "",
         f"Player hand-out (deadline to the first output) p50 / p99 / max "
         f"{us(p['sent']['p50'])} / {us(p['sent']['p99'])} / {us(p['sent']['max'])} us; "
         f"from its wake-up (the wait's return) to the hand-out "
         f"{us(p['after_wake']['p50'])} / {us(p['after_wake']['p99'])} / "
         f"{us(p['after_wake']['max'])} us.", "",
         f"- Miss rate: player {p['deadline_misses']} <= cyclictest {c['over_5ms']} + "
         f"3 sqrt({c['over_5ms']}) + 3 = {res['bound']:.1f}: "
         f"{'yes' if res['rate_ok'] else '**NO**'}",
         f"- p99 ratio player / cyclictest: {'-' if r is None else f'{r:.2f}'} (goal <= 1.1): "
         f"{'yes' if res['p99_ok'] else '**NO**'}", ""]
    t = res.get("tail")
    if t:
        def causes(c):
            return "; ".join(f"{k} {v}" for k, v in c.items()) or "none"
        L += [f"Wake-ups later than cyclictest's p99 ({us(t['threshold_ns'])} us) from "
              f"{t['from_s']} s on (what the trace kept), by cause from the trace (`timer late`: the timer interrupt itself came late; "
              "`ran late behind X`: woken on time, X still held the CPU; `late after switch-in`: "
              "woken and switched in on time, its own clock read late):", "",
              f"- player: {causes(t['player'])}",
              f"- cyclictest: {causes(t['cyclictest']) if t['cyclictest'] is not None else '-'}",
              ""]
    if not res["cyclictest_placed"]:
        L += ["cyclictest's samples could not be placed in time (no trace, or its "
              "wake-ups did not match the samples).", ""]
    elif res.get("cyclictest_placed_how"):
        L += [f"cyclictest's samples placed in time: {res['cyclictest_placed_how']}.", ""]
    if res.get("cyclictest_ahead_ns") is not None:
        L += [f"cyclictest's deadlines lay {us(res['cyclictest_ahead_ns'])} us before the "
              "player's in each period (20,000 us: the whole period).", ""]
    if res["misses"]:
        L += ["| t (s) | woke late (ms) | sent late (ms) | trace class | switched in from "
              "| on the CPU meanwhile | cyclictest nearest (ms, offset) | cyclictest max +-1 "
              "period (ms) |", "|---:|---:|---:|---|---|---|---|---:|"]
        for m in res["misses"]:
            L.append(f"| {m['t_s']} | {m['woke_late_ms']} | {m['sent_late_ms']} | "
                     f"{m.get('class', '-')}{' (held by ' + m['held_by'] + ')' if 'held_by' in m else ''} | "
                     f"{m.get('switched_in_from', '-')} | {', '.join(m.get('on_cpu_between', [])) or '-'} | "
                     f"{m.get('cyclictest_nearest_ms', '-')} ({m.get('cyclictest_nearest_offset_ms', '-')}) | "
                     f"{m.get('cyclictest_max_within_period_ms', '-')} |")
        L.append("")
    return L


def analyse(wake_log, trace_file, cyc_text, deadline_misses, pids, lost, cyc_phase_ns=None):
    """The comparison from the files a run leaves: the player's wake log,
    the raw kernel trace saved by ktrace (None without one) and
    cyclictest's output. `pids`: thread ids of the player and cyclictest
    (None: every thread of those names); cyc_phase_ns: where cyclictest's
    grid was set in the period, if it was. Returns (comparison, attribution)."""
    import ktrace
    ticks = read_wake_log(wake_log)
    cyc = cyclictest_ns(cyc_text)
    ev = None
    if trace_file and os.path.exists(trace_file):
        with open(trace_file) as f:
            ev = ktrace.read_events(f, pids)
    misses = [{"deadline_ns": d, "woke_ns": w, "sent_ns": x} for d, w, x in ticks
              if x - d > PERIOD_NS // 4]
    tr = (ev["ticks"], ev["wakes"], lost, ev["comms"]) if ev else None
    att = ktrace.attribute(tr, misses, PERIOD_NS)  # every miss, not the last 64
    placed = place_cyclictest(cyc, ev["cyclic_wakes"], lost, phase_ns=cyc_phase_ns) if ev else None
    how = None
    if placed:
        ok, late = confirm_late(cyc, placed, ev["cyclic_switches"])
        how = (f"{ok} of the {late} samples more than 1 ms late have the switch-in into "
               "cyclictest's thread the placement puts them at")
    info = (ev["ticks"], ev["comms"], ev["switches_in"]) if ev else None
    res = compare(ticks, deadline_misses, cyc, placed, att, info, placed_how=how,
                  player_wakes=[w for w, _ in ev["wakes"]] if ev else (),
                  cyc_wakes=ev["cyclic_wakes"] if ev else (),
                  cyc_switches=ev["cyclic_switches"] if ev else ())
    return res, att


def main():
    """Analyse a finished run again from its files in bench/out:
    `python3 bench/samecpu.py realtime` (after `bench/run --same-cpu`) or
    `python3 bench/samecpu.py soak` (after `bench/run soak --same-cpu`)."""
    import json
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
    kind = sys.argv[1] if len(sys.argv) > 1 else "realtime"
    if kind == "soak":
        js = json.load(open(os.path.join(out, "soak.json")))
        files = ("soak.wakes.csv", "soak.ktrace.txt", "soak.cyclictest.out")
        misses, seconds = js["deadline_misses"], js["seconds"]
    else:
        js = json.load(open(os.path.join(out, "samecpu.json")))
        files = ("realtime-samecpu.wakes.csv", "logs/ktrace-samecpu.txt",
                 "logs/cyclictest-samecpu.out")
        misses, seconds = js["player"]["stats"]["deadline_misses"], js["seconds"]
    pids = set(js.get("pids") or []) or None
    lost = (js.get("miss_attribution") or {}).get("events_lost", 0)
    w, t, c = (os.path.join(out, f) for f in files)
    res, _ = analyse(w, t, open(c).read(), misses, pids, lost,
                     js.get("cyclictest_phase_ns"))
    print("\n".join(report(res, seconds, f"Same CPU ({kind}, analysed again)")))


if __name__ == "__main__":
    main()
