"""Identical wake-ups at different moments of the period (`bench/run phases`).

Twenty cyclictest threads on CPU 1 at SCHED_FIFO 50 with a 20 ms period,
thread k's deadlines k ms into the period (`-t 20 -A 1000`), under the
same-CPU load of bench/samecpu.py. The threads are the same program doing
the same thing; only the moment of the period differs. Where their p99s
and their shares of late wake-ups differ, that moment is what differs:
whatever else runs on the machine comes at its own times in each period.
This is why the player-against-cyclictest comparison on one CPU puts
cyclictest's grid beside the player's (samecpu.AHEAD_NS) rather than
wherever it happens to start.

With `--touch-pages N` it runs bench/touch.c instead (built with cc):
eight threads 0.5 ms apart, the odd ones reading one byte of each of N
resident, locked pages of their own after each wake-up, the even ones
nothing, each timing that from its first clock read to the next; how often
that takes over 50 and 100 us says whether reading memory that is already
there is what holds a thread up once it runs.

Results: bench/out/phases.md and .json (phases-touch.md / .json).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import samecpu  # noqa: E402


def per_thread(text):
    """{thread: [latency ns, ...]} from `cyclictest -v -N` output."""
    out = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) != 3:
            continue
        try:
            t, _, x = (int(p) for p in parts)
        except ValueError:
            continue
        out.setdefault(t, []).append(x)
    return out


def spread(lat, step_ns):
    """Per thread: phase, p50/p99/max, and the share of its wake-ups over
    the pooled p99 of all threads (1 % when the moment makes no
    difference)."""
    thr = samecpu.quantiles([x for xs in lat.values() for x in xs])["p99"]
    if thr is None:
        return None
    rows = []
    for t in sorted(lat):
        q = samecpu.quantiles(lat[t])
        rows.append({"thread": t, "phase_ms": t * step_ns / 1e6, **q,
                     "samples": len(lat[t]),
                     "over_pooled_p99": sum(1 for x in lat[t] if x > thr) / len(lat[t])})
    p99 = [r["p99"] for r in rows]
    share = [r["over_pooled_p99"] for r in rows]
    return {"pooled_p99_ns": thr, "threads": rows, "p99_min_ns": min(p99),
            "p99_max_ns": max(p99), "share_min": min(share), "share_max": max(share)}


def report(res):
    s = res["spread"]
    L = ["# Identical wake-ups, different moments of the period", "",
         f"{res['seconds']:.0f} s, {res['threads']} cyclictest threads on CPU {samecpu.CPU}, "
         f"SCHED_FIFO {samecpu.PRIORITY}, 20 ms, thread k at k x {res['step_us']} us into "
         f"the period; `{' '.join(samecpu.stress_cmd(res['seconds'])[:-3])}`.", "",
         f"Pooled p99 of all threads: {s['pooled_p99_ns'] / 1e3:.1f} us. Per thread p99 "
         f"{s['p99_min_ns'] / 1e3:.1f} to {s['p99_max_ns'] / 1e3:.1f} us; wake-ups over the "
         f"pooled p99 {100 * s['share_min']:.1f} to {100 * s['share_max']:.1f} % "
         "(1 % if the moment made no difference).", "",
         "| phase (ms) | p50 / p99 / max (us) | over pooled p99 |", "|---:|---|---:|"]
    for r in s["threads"]:
        L.append(f"| {r['phase_ms']:.1f} | {r['p50'] / 1e3:.1f} / {r['p99'] / 1e3:.1f} / "
                 f"{r['max'] / 1e3:.1f} | {100 * r['over_pooled_p99']:.1f} % |")
    return L + [""]


def parse_touch(text):
    """The per-thread lines of bench/touch.c."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 14 and f[0] == "thread":
            rows.append({f[i]: int(f[i + 1]) for i in range(0, 14, 2)})
    return rows


def touch_report(res):
    L = ["# Memory read after a wake-up", "",
         f"{res['seconds']:.0f} s, bench/touch.c on CPU {samecpu.CPU}: 8 threads, SCHED_FIFO "
         f"{samecpu.PRIORITY}, 20 ms, 0.5 ms apart; odd threads read one byte of each of "
         f"{res['pages']} resident, locked pages after each wake-up; "
         f"`{' '.join(samecpu.stress_cmd(res['seconds'])[:-3])}`.", "",
         "| thread | phase (us) | pages read | from first clock read to the next: over 50 us | "
         "over 100 us | wake-ups over 100 us late | samples |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        L.append(f"| {r['thread']} | {r['phase_us']} | {r['pages']} | {r['over50']} | "
                 f"{r['over100']} | {r['wake_over100']} | {r['samples']} |")
    return L + [""]


def run_touch(a, h, stress):
    exe = os.path.join(h.OUT, "touch")
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "touch.c")
    subprocess.run(["cc", "-O2", "-o", exe, src, "-lpthread"], check=True)
    loops = max(100, int(a.seconds * 1e9 / samecpu.PERIOD_NS))
    r = subprocess.run(samecpu.pinned([exe, str(loops), str(a.touch_pages)]),
                       capture_output=True, text=True)
    if stress:
        stress.wait(timeout=60)
    rows = parse_touch(r.stdout)
    if r.returncode != 0 or not rows:
        sys.exit(f"phases: touch failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    res = {"machine": h.machine(), "seconds": a.seconds, "pages": a.touch_pages, "rows": rows}
    with open(os.path.join(h.OUT, "phases-touch.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = touch_report(res)
    with open(os.path.join(h.OUT, "phases-touch.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--no-stress", action="store_true")
    ap.add_argument("--touch-pages", type=int, default=0,
                    help="run bench/touch.c instead: odd threads read this many pages "
                         "after each wake-up")
    a = ap.parse_args()
    import harness as h  # numpy: the bench's venv, not needed by the tests
    if a.threads < 1 or a.threads * 1000 > samecpu.PERIOD_NS // 1000:
        ap.error("--threads must be 1 to 20 (1 ms apart in a 20 ms period)")
    os.makedirs(h.OUT, exist_ok=True)
    step_us = samecpu.PERIOD_NS // 1000 // a.threads
    stress = None
    if not a.no_stress:
        stress = subprocess.Popen(samecpu.stress_cmd(a.seconds + 3), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    if a.touch_pages:
        return run_touch(a, h, stress)
    loops = max(1, int(a.seconds * 1e9 / samecpu.PERIOD_NS))
    cmd = samecpu.pinned(["cyclictest", "-m", "-q", "-N", "-v", "-p", str(samecpu.PRIORITY),
                          "-i", str(samecpu.PERIOD_NS // 1000), "-d", "0",
                          "-t", str(a.threads), "-A", str(step_us), "-l", str(loops)])
    # To a file: a full pipe would block cyclictest's printing thread.
    with tempfile.TemporaryFile("w+") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        f.seek(0)
        text = f.read()
    if stress:
        stress.wait(timeout=60)
    lat = per_thread(text)
    if rc != 0 or not lat:
        sys.exit(f"phases: cyclictest failed (exit {rc}): {text.strip()[-300:]}")
    res = {"machine": h.machine(), "seconds": a.seconds, "threads": a.threads,
           "step_us": step_us, "load": "none" if a.no_stress else " ".join(
               samecpu.stress_cmd(a.seconds)[:-3]), "spread": spread(lat, step_us * 1000)}
    with open(os.path.join(h.OUT, "phases.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = report(res)
    with open(os.path.join(h.OUT, "phases.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
