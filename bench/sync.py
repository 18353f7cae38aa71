"""MultiSync: skew between nodes, time to lock, and a jump, over an
impaired path.

    bench/run sync            30 s per scenario
    bench/run sync --quick    8 s per scenario (smoke run)
    bench/run sync --scenario 0-4ms+200ppm --seconds 600   one, 10 minutes

One `--multisync lead` player and three `--multisync follow` players on
127.0.0.1, all on the machine's one CLOCK_MONOTONIC, each with a capture on
/dev/shm. Each follower is reached through its own `bench/udp_relay.py`,
which delays every datagram by a uniformly random time and drops some (the
kernel here has no netem). Halfway through, the leader is told `play b`.
Skew of two nodes = the difference of the hand-out times (capture t_ns) of
the same array and row. "After lock" is from 2 s after the follower's
first frame. Scenarios: no impairment; 0-4 ms; 0-10 ms with 5 % loss; and
0-4 ms with one follower's clock running 200 ppm fast (`--clock-drift-ppm`,
the records stay on the real clock). Results: bench/out/sync.md and .json.
"""

import argparse
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ALL_OFF = 0xFFFFFFFF
ROWS = 200
P = 20_000_000


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_pack(rowplay):
    d = os.path.join(h.OUT, "sync-arrays")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    for name in ("a", "b"):
        np.save(os.path.join(d, f"{name}.npy"),
                rng.integers(0, 256, (ROWS, 50, 3), dtype=np.uint8))
    pack = d + ".rowpack"
    subprocess.run([rowplay, "pack", d, "-o", pack], check=True, stdout=subprocess.DEVNULL)
    return pack


def start(rowplay, pack, name, extra):
    cap = f"/dev/shm/rowplay-sync-{os.getpid()}-{name}.cap"
    sock = os.path.join(h.OUT, f"sync-{name}.sock")
    for p in (cap, sock):
        if os.path.exists(p):
            os.remove(p)
    pr = subprocess.Popen([rowplay, "play", pack, "--output", f"capture:{cap}",
                           "--socket", sock] + extra,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return pr, sock, cap


def shown(cap):
    return [(t, a, r) for t, a, r, _ in h.read_capture(cap) if a != ALL_OFF]


def align(lead, other):
    """For each record of `other`, the leader's record of the same array
    and row nearest in time: (t_other, t_lead, array, row)."""
    by = {}
    for t, a, r in lead:
        by.setdefault((a, r), []).append(t)
    out = []
    for t, a, r in other:
        ts = by.get((a, r))
        if ts:
            i = np.searchsorted(ts, t)
            cands = [ts[j] for j in (i - 1, i) if 0 <= j < len(ts)]
            tl = min(cands, key=lambda x: abs(x - t))
            if abs(tl - t) < ROWS * P // 2:
                out.append((t, tl, a, r))
    return out


def any_two(skews):
    """|skew| of any two nodes: leader-follower and follower-follower."""
    out = [abs(x) for s in skews for x in s.values()]
    for i, j in itertools.combinations(range(len(skews)), 2):
        common = skews[i].keys() & skews[j].keys()
        out += [abs(skews[i][c] - skews[j][c]) for c in common]
    return out


def scenario(rowplay, pack, name, seconds, max_ms, drop, drift):
    procs, relays = [], []
    try:
        fports = [free_port() for _ in range(3)]
        rports = [free_port() for _ in range(3)]
        followers = []
        for k in range(3):
            extra = ["--multisync", "follow", "--multisync-listen", f"127.0.0.1:{fports[k]}"]
            if drift and k == 2:
                extra += ["--clock-drift-ppm", str(drift)]
            followers.append(start(rowplay, pack, f"{name}-f{k}", extra))
            procs.append(followers[-1][0])
            relays.append(subprocess.Popen(
                [h.PY, os.path.join(h.HERE, "udp_relay.py"), "--listen",
                 f"127.0.0.1:{rports[k]}", "--to", f"127.0.0.1:{fports[k]}",
                 "--min-ms", "0", "--max-ms", str(max_ms), "--drop", str(drop),
                 "--seconds", str(seconds + 10), "--seed", str(k + 1)],
                stdout=subprocess.PIPE, text=True))
        time.sleep(1.0)
        to = ",".join(f"127.0.0.1:{p}" for p in rports)
        lead = start(rowplay, pack, f"{name}-lead",
                     ["--multisync", "lead", "--multisync-listen", "127.0.0.1",
                      "--multisync-to", to])
        procs.append(lead[0])
        time.sleep(0.5)
        ctl = h.Ctl(lead[1])
        time.sleep(seconds / 2)
        t_jump = time.monotonic_ns()
        assert ctl.cmd("play b") == "ok"
        time.sleep(seconds / 2)
        fstats = []
        for _, sock, _ in followers:
            c = h.Ctl(sock)
            fstats.append(json.loads(c.cmd("status")))
            c.close()
        ctl.close()
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        for r in relays:
            r.terminate()
            r.wait(timeout=30)
    lead_recs = shown(lead[2])
    res = {"scenario": name, "max_ms": max_ms, "drop": drop, "drift_ppm": drift,
           "followers": []}
    skews, skews10 = [], []
    for k, (_, _, cap) in enumerate(followers):
        f = shown(cap)
        pairs = align(lead_recs, f)
        t0 = f[0][0] if f else 0
        after = [(t - tl) for t, tl, _, _ in pairs if t - t0 > 2_000_000_000]
        skews.append({(a, r, tl): t - tl for t, tl, a, r in pairs if t - t0 > 2_000_000_000})
        skews10.append({(a, r, tl): t - tl for t, tl, a, r in pairs if t - t0 > 10_000_000_000})
        lock = None
        for i, (t, tl, _, _) in enumerate(pairs):
            if all(abs(x[0] - x[1]) < 1_000_000 for x in pairs[i:i + 50]) and len(pairs) > i + 50:
                lock = (t - t0) / 1e9
                break
        # the jump: row 0 of b on this follower vs on the leader
        lb = [t for t, a, r in lead_recs if (a, r) == (1, 0) and t > t_jump]
        fb = [t for t, a, r in f if (a, r) == (1, 0) and t > t_jump - P]
        jump = (fb[0] - lb[0]) / 1e6 if lb and fb else None
        # rows in order: every step the next row, or row 0 (loop, switch)
        bad = sum(1 for x, y in zip(f, f[1:])
                  if not ((y[1] == x[1] and y[2] == (x[2] + 1) % ROWS) or y[2] == 0))
        ms = fstats[k].get("multisync") or {}
        res["followers"].append({
            "skew_ns": h.quantiles([abs(x) for x in after]), "lock_s": lock,
            "jump_skew_ms": jump, "out_of_order_steps": bad,
            "jumps": ms.get("jumps"), "lost": ms.get("lost"), "late": ms.get("late"),
            "underruns": fstats[k].get("underruns"), "drift": bool(drift and k == 2),
            "skipped_ticks": fstats[k].get("skipped_ticks"), "drift_ppm": ms.get("drift_ppm"),
        })
    pair_skew = any_two(skews)
    res["any_two_ns"] = h.quantiles(pair_skew)
    res["any_two_after_10s_ns"] = h.quantiles(any_two(skews10))
    for _, _, cap in followers + [lead]:
        os.remove(cap)
    return res


def main():
    ap = argparse.ArgumentParser(prog="bench/run sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--scenario", action="append",
                    help="run only these (none, 0-4ms, 0-10ms+5%%loss, 0-4ms+200ppm)")
    a = ap.parse_args()
    os.makedirs(h.OUT, exist_ok=True)
    rowplay = h.find_rowplay()
    pack = make_pack(rowplay)
    secs = 8.0 if a.quick else a.seconds
    runs = []
    for name, max_ms, drop, drift in [("none", 0, 0.0, 0), ("0-4ms", 4, 0.0, 0),
                                      ("0-10ms+5%loss", 10, 0.05, 0),
                                      ("0-4ms+200ppm", 4, 0.0, 200)]:
        if a.scenario and name not in a.scenario:
            continue
        h.log(f"sync: {name}, {secs:.0f} s")
        runs.append(scenario(rowplay, pack, name, secs, max_ms, drop, drift))
    res = {"machine": h.machine(), "seconds": secs, "runs": runs}
    with open(os.path.join(h.OUT, "sync.json"), "w") as f:
        json.dump(res, f, indent=1)
    lines = ["# MultiSync (bench/run sync)", "",
             "| impairment | any two nodes p50 / p99 / max (ms) | the same from 10 s | "
             "lock (s, per follower) | jump: follower row 0 minus leader's (ms) | "
             "out-of-order rows | rows skipped (stalls) | pll jumps |",
             "|---|---|---|---|---|---|---|---|"]
    def each(fs, key, fmt):
        return ", ".join("-" if f[key] is None else fmt.format(f[key]) for f in fs)

    for r in runs:
        q, q10 = r["any_two_ns"], r["any_two_after_10s_ns"]
        fs = r["followers"]
        lines.append(
            f"| {r['scenario']} | {h.ms(q['p50'])} / {h.ms(q['p99'])} / {h.ms(q['max'])} | "
            f"{h.ms(q10['p50'])} / {h.ms(q10['p99'])} / {h.ms(q10['max'])} | "
            f"{each(fs, 'lock_s', '{:.2f}')} | {each(fs, 'jump_skew_ms', '{:.2f}')} | "
            f"{sum(f['out_of_order_steps'] for f in fs)} | "
            f"{sum(f['skipped_ticks'] or 0 for f in fs)} | {sum(f['jumps'] or 0 for f in fs)} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(h.OUT, "sync.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
