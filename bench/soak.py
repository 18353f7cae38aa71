"""Soak: rowplay plays for a long time at 50 Hz with a random jump every
200 ms, under a stress-ng CPU + IO + memory load, while resident memory and
open file descriptors are sampled every second. Flat RSS and fds, no missed
deadlines and no underruns are the goal.

    bench/run soak                  10 minutes, 10,000 arrays of [500, 30, 3]
    bench/run soak --minutes 240    hours, as on a Pi
    bench/run soak --quick          20 seconds, 200 arrays (CI smoke)
    bench/run soak --same-cpu       the player and cyclictest both on CPU 1, raw
                                    latencies side by side (bench/samecpu.py)
    bench/run soak --same-cpu --front-ends
                                    the same with live input, HTTP and a
                                    MultiSync follower on but idle
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import ktrace  # noqa: E402
import samecpu  # noqa: E402


# Every network front end, on 127.0.0.1 and any free port, nothing sent to
# them; a follower with no master plays its own playlist.
FRONT_ENDS = ["--listen", "ddp:0,e131:0,artnet:0", "--listen-addr", "127.0.0.1",
              "--http", "127.0.0.1:0", "--multisync", "follow", "--after-sync", "resume",
              "--multisync-listen", "127.0.0.1:0"]


def sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def loader_reads(q, underruns):
    """The report's line on the loader's body reads (status `loader_read_ns`)."""
    if not q or not q.get("max"):
        return []
    return [f"Loader body reads (one `pread` of up to 64 KiB each): p50 / p99 / max "
            f"{q['p50'] / 1e6:.2f} / {q['p99'] / 1e6:.2f} / {q['max'] / 1e6:.2f} ms; "
            f"{underruns} underruns.", ""]


def main():
    ap = argparse.ArgumentParser(prog="bench/run soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--arrays", type=int, default=10_000)
    ap.add_argument("--shape", default="500,30,3")
    ap.add_argument("--jump-ms", type=float, default=200.0)
    ap.add_argument("--no-stress", action="store_true", help="without the stress-ng load")
    ap.add_argument("--quick", action="store_true", help="20 s, 200 arrays")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--same-cpu", action="store_true",
                    help="the player and cyclictest both on CPU 1 at SCHED_FIFO 50, under "
                         "stress-ng --cpu 1 --io 1 --vm 1, raw latencies side by side")
    ap.add_argument("--front-ends", action="store_true",
                    help="with the network front ends on but idle: live input (DDP, E1.31, "
                         "Art-Net), the HTTP server and a MultiSync follower, all on "
                         "127.0.0.1, with nothing sent to them")
    a = ap.parse_args()
    if a.quick:
        a.minutes, a.arrays = 20 / 60, 200
    seconds = a.minutes * 60
    os.makedirs(h.OUT, exist_ok=True)
    rowplay = h.find_rowplay()

    d = os.path.join(h.OUT, "data", f"n{a.arrays}_{a.shape.replace(',', 'x')}")
    subprocess.run([h.PY, os.path.join(h.HERE, "make_workload.py"), d, "--arrays", str(a.arrays),
                    "--shape", a.shape], check=True)
    pack = d + ".rowpack"
    subprocess.run([rowplay, "pack", d, "-o", pack], check=True, stdout=subprocess.DEVNULL)
    n = json.loads(subprocess.run([rowplay, "inspect", pack, "--json"], check=True,
                                  capture_output=True, text=True).stdout)["arrays"]
    count = len(n)

    load0 = os.getloadavg()
    stress = None
    if a.same_cpu and not a.no_stress:
        stress = subprocess.Popen(samecpu.stress_cmd(seconds + 5), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    elif not a.no_stress:
        tmp = os.path.join(h.OUT, "stress-tmp")
        os.makedirs(tmp, exist_ok=True)
        stress = subprocess.Popen(h.stress_cmd(seconds + 5, tmp), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)

    # cyclictest at the same priority and period, for the machine's own
    # floor: a wake-up it sees more than 5 ms late would be a miss for the
    # player too.
    trace = ktrace.TimerTrace(seconds, kb_per_s=samecpu.TRACE_KB_PER_S if a.same_cpu else 30)
    trace.start()  # before cyclictest: its first wake-up is its first sample
    # Its output goes to a file, not a pipe read at the end: with every
    # sample printed (-v) a full pipe blocks cyclictest's printing thread,
    # its ring of 16,384 samples wraps, and it prints later samples in
    # the place of the first ones.
    cyc_file = tempfile.TemporaryFile("w+")

    def start_cyclictest(beside_ns=None):
        # Same CPU: started after the player and put beside its frame grid
        # (samecpu.AHEAD_NS says why), up to a second later (the next
        # whole second), so it runs 1.5 s less to end with the player.
        cmd = (samecpu.cyclictest_cmd(seconds - 1.5, beside_ns=beside_ns) if a.same_cpu
               else h.cyclictest_cmd(seconds))
        p = subprocess.Popen(cmd, stdout=cyc_file, stderr=subprocess.STDOUT, text=True)
        time.sleep(0.2)
        return p, set(samecpu.thread_ids(p.pid))

    if not a.same_cpu:
        cyc, cyc_tids = start_cyclictest()

    sock = os.path.join(h.OUT, "soak.sock")
    stats_path = os.path.join(h.OUT, "soak.stats.json")
    wake_path = os.path.join(h.OUT, "soak.wakes.csv")
    for p in (sock, stats_path, wake_path):
        if os.path.exists(p):
            os.remove(p)
    cmd = [rowplay, "play", pack, "--output", "null", "--fps", "50",
           "--rt-priority", "50", "--socket", sock, "--stats-json", stats_path]
    if a.front_ends:
        # On but idle: the loop then waits on the live receivers' futex
        # (not clock_nanosleep), and three more threads sit in recv/poll.
        cmd += FRONT_ENDS
    if a.same_cpu:
        cmd = samecpu.pinned(cmd) + ["--wake-log", wake_path]
    player = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctl = h.Ctl(sock, timeout=30)
    ctl.cmd("status")  # the socket is bound before the player thread starts; served after
    beside = None
    if a.same_cpu:
        beside = samecpu.next_deadline(ctl)
        cyc, cyc_tids = start_cyclictest(beside)
    player_tids = {t for t, n in samecpu.thread_ids(player.pid).items() if n == ktrace.PLAYER}
    trace.focus(player_tids, cyc_tids)
    rng = random.Random(a.seed)
    samples = []
    jumps = errors = 0
    start = time.monotonic()
    next_jump = next_sample = start
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_jump:
            reply = ctl.cmd(f"play #{rng.randrange(count)}")
            jumps += 1
            errors += reply != "ok"
            next_jump += a.jump_ms / 1000
        if now >= next_sample:
            rss, fds = sample(player.pid)
            st = json.loads(ctl.cmd("status"))
            samples.append({"t": round(now - start, 1), "rss": rss, "fds": fds,
                            "misses": st["deadline_misses"], "underruns": st["underruns"],
                            "max_wake_ns": st["wake_latency_ns"]["max"],
                            "max_read_ns": (st.get("loader_read_ns") or {}).get("max")})
            next_sample += 1.0
        time.sleep(max(0.0, min(next_jump, next_sample) - time.monotonic()))
    status = json.loads(ctl.cmd("status"))
    ctl.close()
    player.send_signal(signal.SIGTERM)
    _, err = player.communicate(timeout=60)
    # cyclictest ends by itself (a fixed count of loops); the trace stops
    # after it, so that it holds all its wake-ups.
    cyc.wait(timeout=120)
    cyc_file.seek(0)
    cyc_out = cyc_file.read()
    cyc_file.close()
    tr = trace.stop(save_to=os.path.join(h.OUT, "soak.ktrace.txt"),
                    pids=(cyc_tids | player_tids) or None)
    load1 = os.getloadavg()
    if stress:
        stress.wait(timeout=120)
    stats = json.load(open(stats_path))
    att = ktrace.attribute(tr, stats.get("recent_misses", []), h.PERIOD_NS)
    why = ktrace.summary(att, trace.steal_ms) or trace.why
    cyc_lat = samecpu.cyclictest_ns(cyc_out) if a.same_cpu else h.cyclictest_latencies(cyc_out)
    floor = {**h.quantiles(cyc_lat), "samples": len(cyc_lat),
             "late_over_5ms": sum(1 for x in cyc_lat if x > 5_000_000)}

    warm = [s for s in samples if s["t"] >= min(10.0, seconds / 4)] or samples
    rss = [s["rss"] for s in warm]
    fds = [s["fds"] for s in warm]
    res = {
        "machine": h.machine(), "seconds": seconds, "arrays": count, "jumps": jumps,
        "jump_errors": errors, "load": "none" if a.no_stress else
        ("stress-ng --cpu 1 --io 1 --vm 1 --vm-bytes 256M, player and cyclictest on CPU 1"
         if a.same_cpu else "stress-ng cpu+io+vm+hdd"),
        "frames": stats["frames"], "deadline_misses": stats["deadline_misses"],
        "underruns": stats["underruns"], "wake_latency_ns": stats["wake_latency_ns"],
        "rss_first": rss[0], "rss_last": rss[-1], "rss_min": min(rss), "rss_max": max(rss),
        "fds_min": min(fds), "fds_max": max(fds), "peak_rss_bytes": stats["peak_rss_bytes"],
        "read_errors": status.get("read_errors"), "exit_code": player.returncode,
        "loader_read_ns": status.get("loader_read_ns"),
        "cyclictest": floor, "miss_attribution": att, "miss_attribution_text": why,
        "stderr_tail": err.decode(errors="replace").strip().splitlines()[-3:],
        "samples": samples, "load_before": load0, "load_after": load1,
        # Where each grid lay in the period (ns): the player's as it began,
        # cyclictest's as set (samecpu.AHEAD_NS before it).
        "player_phase_ns": None if beside is None else samecpu.phase_of(beside),
        "cyclictest_phase_ns": None if beside is None else samecpu.cyclictest_phase(beside),
        "front_ends": " ".join(FRONT_ENDS) if a.front_ends else None,
    }
    if a.same_cpu:
        with open(os.path.join(h.OUT, "soak.cyclictest.out"), "w") as f:
            f.write(cyc_out)
        pids = cyc_tids | player_tids
        res["pids"] = sorted(pids)
        res["same_cpu"], att = samecpu.analyse(
            wake_path, os.path.join(h.OUT, "soak.ktrace.txt") if tr else None, cyc_out,
            stats["deadline_misses"], pids or None, tr[2] if tr else 1,
            res["cyclictest_phase_ns"])
        res["miss_attribution"] = att
        res["miss_attribution_text"] = why = ktrace.summary(att, trace.steal_ms) or trace.why
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    md = [
        "# rowplay soak", "",
        "Machine: {cpu}, {cores} cores, Linux {kernel}, preemption {preemption}.".format(
            **res["machine"]), "",
        f"{seconds / 60:.1f} min at 50 Hz, {count} arrays, a random jump every {a.jump_ms:.0f} ms "
        f"({jumps} jumps, {errors} refused), load: {res['load']}", "",
        *([f"Network front ends on but idle: `{res['front_ends']}`.", ""] if a.front_ends else []),
        "| frames | deadline misses | underruns | wake p50 / p99 / max (us) | RSS after warm-up: first / last / min / max (MiB) | open fds min / max |",
        "|---:|---:|---:|---|---|---|",
        f"| {res['frames']} | {res['deadline_misses']} | {res['underruns']} | "
        f"{res['wake_latency_ns']['p50'] / 1000:.0f} / {res['wake_latency_ns']['p99'] / 1000:.0f} / "
        f"{res['wake_latency_ns']['max'] / 1000:.0f} | {mib(res['rss_first'])} / {mib(res['rss_last'])} / "
        f"{mib(res['rss_min'])} / {mib(res['rss_max'])} | {res['fds_min']} / {res['fds_max']} |",
        "",
        *loader_reads(res.get("loader_read_ns"), res["underruns"]),
        f"cyclictest in the same run (priority 50, 20 ms): p50 / p99 / max "
        f"{floor['p50'] / 1000:.0f} / {floor['p99'] / 1000:.0f} / {floor['max'] / 1000:.0f} us over "
        f"{floor['samples']} wake-ups, {floor['late_over_5ms']} of them more than 5 ms late "
        f"(what counts as a deadline miss for the player).",
        "",
    ]
    # When the misses happened: seconds in which the miss count went up.
    bad = [s["t"] for a_, s in zip(samples, samples[1:]) if s["misses"] > a_["misses"]]
    if bad:
        md += [f"Deadline misses happened in {len(bad)} of {len(samples)} one-second samples, "
               f"at t = {', '.join(f'{t:.0f}' for t in bad[:20])}{' ...' if len(bad) > 20 else ''} s.", ""]
    if why:
        md += [f"Why the player was late (bench/ktrace.py): {why}.", ""]
    md += ["Load average (1/5/15 min) before {:.2f}/{:.2f}/{:.2f}, after {:.2f}/{:.2f}/{:.2f}."
           .format(*load0, *load1), ""]
    if a.same_cpu:
        md += samecpu.report(res["same_cpu"], seconds, "Same CPU")
    with open(os.path.join(h.OUT, "soak.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(h.OUT, "soak.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    ok = player.returncode == 0 and errors == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
