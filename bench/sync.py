"""MultiSync: skew between nodes, time to lock, and a jump, over an
impaired path.

    bench/run sync            30 s per scenario
    bench/run sync --quick    8 s per scenario (smoke run)
    bench/run sync --scenario 0-4ms+200ppm --seconds 600   one, 10 minutes
    bench/run sync --scenario 0-10ms+5%loss --runs 10 --seconds 15
                              lock times over 30 followers' own draws
    bench/run sync ... --keep every node's capture and wake log kept in
                              bench/out/sync-caps/seedB/, to look at one frame

One `--multisync lead` player and three `--multisync follow` players on
127.0.0.1, all on the machine's one CLOCK_MONOTONIC, each with a capture on
/dev/shm. Each follower is reached through its own `bench/udp_relay.py`,
which delays every datagram by a uniformly random time and drops some (the
kernel here has no netem); without impairment the leader sends to the
followers directly. Halfway through, the leader is told `play b`.
Skew of two nodes = the difference of the hand-out times (capture t_ns) of
the same array and row, from 2 s after each follower's first frame;
beside it the same from each follower's own lock (50 frames in a row
within 1 ms of the leader; a pair of followers once both have locked)
and from 10 s. Scenarios: no impairment; 0-4 ms; 0-10 ms with 5 % loss; and
0-4 ms with one follower's clock running 200 ppm fast (`--clock-drift-ppm`,
the records stay on the real clock). Results: bench/out/sync.md and .json.

The relays' random draws are seeded (`--seed B`: followers B*3-2..B*3), so
a run repeats its delays; `--runs N` runs each scenario N times with seeds
B..B+N-1 and adds, per scenario, how many of the 3N followers locked
within 2 s: one run's lock times are three draws, not a rate.

A hand-out time is the deadline the node's clock chose plus how late the
node woke and handed the frame out, and the second part is this machine's
scheduler, not the clock. So every node also keeps its `--wake-log`, and
the same skew is reported between the deadlines ("clock skew"), beside
each node's hand-out lateness (hand-out minus deadline).
"""

import argparse
import bisect
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import samecpu  # noqa: E402

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
    wakes = cap[:-4] + ".wakes.csv"
    for p in (cap, sock, wakes):
        if os.path.exists(p):
            os.remove(p)
    pr = subprocess.Popen([rowplay, "play", pack, "--output", f"capture:{cap}",
                           "--socket", sock, "--wake-log", wakes] + extra,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return pr, sock, cap


def wake_log(cap):
    """(deadline, woke, sent) of every tick of a node's `--wake-log`."""
    return samecpu.read_wake_log(cap[:-4] + ".wakes.csv")


def shown(cap, ppm=0):
    """(t, array, row, late) of every frame shown: t the hand-out time on
    the real clock, late = hand-out minus the tick's deadline, from the
    wake log (None for a frame no tick matches).

    A tick's hand-out time in the wake log is read on the node's own clock
    just before the capture's stamp on the real one: on a node whose clock
    runs `ppm` fast the two part by ppm x the time since it started. The
    last hand-out is a tick's (the capture's own records after it, the
    frame blanked at exit, are dark), which fixes the offset; each frame
    then takes the tick whose hand-out is within 50 us of its own."""
    recs = h.read_capture(cap)
    log = wake_log(cap)
    shows = [i for i, (_, a, _, _) in enumerate(recs) if a != ALL_OFF]
    late = {}
    if log and shows:
        sent = [x for _, _, x in log]
        t_last = recs[shows[-1]][0]
        # The clock started drifting about when the node's first record
        # was made (to within 0.2 ms at 200 ppm); the last tick may be a
        # dark one after the last row shown, a period or more away.
        expect = (t_last - recs[0][0]) * ppm // 1_000_000
        j = min(range(max(0, len(log) - 4), len(log)),
                key=lambda j: abs(sent[j] - t_last - expect))
        off_last = sent[j] - t_last if abs(sent[j] - t_last - expect) < 5_000_000 else None
        if off_last is not None:
            for i in shows:
                t = recs[i][0]
                want = t + off_last + (t - t_last) * ppm // 1_000_000
                k = bisect.bisect_left(sent, want)
                for j in (k - 1, k):
                    if 0 <= j < len(sent) and abs(sent[j] - want) < 50_000:
                        late[i] = sent[j] - log[j][0]
    return [(recs[i][0], recs[i][1], recs[i][2], late.get(i)) for i in shows]


def align(lead, other):
    """For each record of `other`, the leader's record of the same array
    and row nearest in time: (t_other, t_lead, array, row)."""
    by, late = {}, {}
    for t, a, r, x in lead:
        by.setdefault((a, r), []).append(t)
        late[t] = x
    out = []
    for t, a, r, x in other:
        ts = by.get((a, r))
        if ts:
            i = np.searchsorted(ts, t)
            cands = [ts[j] for j in (i - 1, i) if 0 <= j < len(ts)]
            tl = min(cands, key=lambda y: abs(y - t))
            if abs(tl - t) < ROWS * P // 2:
                out.append((t, tl, a, r, x, late[tl]))
    return out


def series(skew, t0, width=5_000_000_000):
    """[t_s, p50, min, max] of the signed skews (ms) in each `width` of
    the leader's time from `t0`."""
    bins = {}
    for (_, _, tl), v in skew.items():
        bins.setdefault((tl - t0) // width, []).append(v)
    out = []
    for b in sorted(bins):
        v = sorted(bins[b])
        out.append([b * width / 1e9, round(v[len(v) // 2] / 1e6, 3), round(v[0] / 1e6, 3),
                    round(v[-1] / 1e6, 3)])
    return out


def clock_skew(t, tl, x, xl):
    """The skew of the two nodes' deadlines (hand-outs less lateness)."""
    return None if x is None or xl is None else (t - x) - (tl - xl)


def any_two(skews):
    """|skew| of any two nodes: leader-follower and follower-follower."""
    out = [abs(x) for s in skews for x in s.values()]
    for i, j in itertools.combinations(range(len(skews)), 2):
        common = skews[i].keys() & skews[j].keys()
        out += [abs(skews[i][c] - skews[j][c]) for c in common]
    return out


def scenario(rowplay, pack, name, seconds, max_ms, drop, drift, seed=1, keep=False):
    procs, relays = [], []
    try:
        fports = [free_port() for _ in range(3)]
        rports = [free_port() for _ in range(3)]
        followers = []
        # Unimpaired means no relay: even at zero delay the Python relay
        # adds 0.2-0.3 ms of its own (its wake-up on an idle CPU), a delay
        # no one-way protocol can see.
        direct = max_ms == 0 and drop == 0
        for k in range(3):
            extra = ["--multisync", "follow", "--multisync-listen", f"127.0.0.1:{fports[k]}"]
            if drift and k == 2:
                extra += ["--clock-drift-ppm", str(drift)]
            followers.append(start(rowplay, pack, f"{name}-f{k}", extra))
            procs.append(followers[-1][0])
            if direct:
                continue
            relays.append(subprocess.Popen(
                [h.PY, os.path.join(h.HERE, "udp_relay.py"), "--listen",
                 f"127.0.0.1:{rports[k]}", "--to", f"127.0.0.1:{fports[k]}",
                 "--min-ms", "0", "--max-ms", str(max_ms), "--drop", str(drop),
                 "--seconds", str(seconds + 10), "--seed", str(3 * (seed - 1) + k + 1)],
                stdout=subprocess.PIPE, text=True))
        time.sleep(1.0)
        to = ",".join(f"127.0.0.1:{p}" for p in (fports if direct else rports))
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
    res = {"scenario": name, "seed": seed, "max_ms": max_ms, "drop": drop, "drift_ppm": drift,
           "followers": [], "lead_late_ns": h.quantiles([x for *_, x in lead_recs
                                                          if x is not None])}
    skews, skews10, skews_lock, cskews, t0s = [], [], [], [], []
    for k, (_, _, cap) in enumerate(followers):
        f = shown(cap, drift if (drift and k == 2) else 0)
        pairs = align(lead_recs, f)
        t0 = f[0][0] if f else 0
        t0s.append(t0)
        late = [p for p in pairs if p[0] - t0 > 2_000_000_000]
        after = [t - tl for t, tl, *_ in late]
        skews.append({(a, r, tl): t - tl for t, tl, a, r, _, _ in late})
        skews10.append({(a, r, tl): t - tl for t, tl, a, r, _, _ in late
                        if t - t0 > 10_000_000_000})
        cs = {(a, r, tl): clock_skew(t, tl, x, xl) for t, tl, a, r, x, xl in late}
        cskews.append({key: v for key, v in cs.items() if v is not None})

        def lock_at(skew):
            for i in range(len(pairs) - 50):
                w = [skew(p) for p in pairs[i:i + 50]]
                if all(v is not None and abs(v) < 1_000_000 for v in w):
                    return (pairs[i][0] - t0) / 1e9
            return None
        # after this follower's own lock (the "after lock"); a
        # pair of followers counts once both have locked
        lk = lock_at(lambda p: p[0] - p[1])
        skews_lock.append({} if lk is None else {
            (a, r, tl): t - tl for t, tl, a, r, _, _ in pairs if t - t0 >= lk * 1e9})
        # the switch: this follower's first frame of b against the same
        # row on the leader. Row 0 when the START came; a follower whose
        # START was lost joins at the row the next SYNC names.
        fb = [(t, r) for t, a, r, _ in f if a == 1 and t > t_jump - P]
        lb = [t for t, a, r, _ in lead_recs
              if fb and (a, r) == (1, fb[0][1]) and t > t_jump]
        jump = (fb[0][0] - lb[0]) / 1e6 if lb and fb else None
        jump_row = fb[0][1] if fb else None
        # rows in order: every step the next row, or row 0 (a loop); the
        # step to another array is the switch, judged above
        bad = sum(1 for x, y in zip(f, f[1:])
                  if y[1] == x[1] and not (y[2] == (x[2] + 1) % ROWS or y[2] == 0))
        ms = fstats[k].get("multisync") or {}
        res["followers"].append({
            "skew_ns": h.quantiles([abs(x) for x in after]),
            "clock_skew_ns": h.quantiles([abs(x) for x in cskews[-1].values()]),
            "clock_skew_after_10s_ns": h.quantiles(
                [abs(v) for (_, _, tl), v in cskews[-1].items() if tl - t0 > 10_000_000_000]),
            # signed (follower later: positive) p50 / min / max per 5 s
            "clock_series_ms": series(cskews[-1], t0),
            "late_ns": h.quantiles([x for *_, x in f if x is not None]),
            "lock_s": lk,
            "clock_lock_s": lock_at(lambda p: clock_skew(*p[:2], *p[4:])),
            "jump_skew_ms": jump, "jump_row": jump_row, "out_of_order_steps": bad,
            "jumps": ms.get("jumps"), "lost": ms.get("lost"), "late": ms.get("late"),
            "underruns": fstats[k].get("underruns"), "drift": bool(drift and k == 2),
            "skipped_ticks": fstats[k].get("skipped_ticks"), "drift_ppm": ms.get("drift_ppm"),
        })
    res["any_two_ns"] = h.quantiles(any_two(skews))
    res["any_two_after_10s_ns"] = h.quantiles(any_two(skews10))
    res["any_two_after_lock_ns"] = h.quantiles(any_two(skews_lock))
    res["clock_any_two_ns"] = h.quantiles(any_two(cskews))
    res["clock_any_two_after_10s_ns"] = h.quantiles(any_two(
        [{k: v for k, v in c.items() if k[2] - t0s[i] > 10_000_000_000}
         for i, c in enumerate(cskews)]))
    for _, _, cap in followers + [lead]:
        for f in (cap, cap[:-4] + ".wakes.csv"):
            if keep:
                d = os.path.join(h.OUT, "sync-caps", f"seed{seed}")
                os.makedirs(d, exist_ok=True)
                shutil.move(f, os.path.join(d, os.path.basename(f)))
            else:
                os.remove(f)
    return res


def main():
    ap = argparse.ArgumentParser(prog="bench/run sync", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--scenario", action="append",
                    help="run only these (none, 0-4ms, 0-10ms+5%%loss, 0-4ms+200ppm)")
    ap.add_argument("--seed", type=int, default=1, help="relay seeds: followers 3B-2..3B")
    ap.add_argument("--runs", type=int, default=1, help="each scenario N times, seeds B..B+N-1")
    ap.add_argument("--keep", action="store_true",
                    help="keep every node's capture and wake log in bench/out/sync-caps/")
    a = ap.parse_args()
    if a.runs < 1 or a.seed < 1:
        ap.error("--runs and --seed must be at least 1")
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
        for b in range(a.seed, a.seed + a.runs):
            h.log(f"sync: {name}, {secs:.0f} s, seed {b}")
            runs.append(scenario(rowplay, pack, name, secs, max_ms, drop, drift, b, a.keep))
    res = {"machine": h.machine(), "seconds": secs, "runs": runs}
    with open(os.path.join(h.OUT, "sync.json"), "w") as f:
        json.dump(res, f, indent=1)
    lines = ["# MultiSync (bench/run sync)", "",
             "| impairment | any two nodes p50 / p99 / max (ms) | the same after each "
             "follower's lock | the same from 10 s | "
             "clock skew: deadlines p50 / p99 / max (ms) | hand-out lateness p99 / max, "
             "worst node (ms) | lock (s, per follower; clock) | "
             "the switch: follower's first row of b minus leader's (ms; "
             "[row N]: START lost, joined at row N) | "
             "out-of-order rows | rows skipped (stalls) | pll jumps |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    def each(fs, key, fmt):
        return ", ".join("-" if f[key] is None else fmt.format(f[key]) for f in fs)

    def switch(fs):
        return ", ".join("-" if f["jump_skew_ms"] is None else
                         f"{f['jump_skew_ms']:.2f}" + ("" if f["jump_row"] == 0
                                                       else f" [row {f['jump_row']}]")
                         for f in fs)

    def worst(r, q):
        xs = [f["late_ns"][q] for f in r["followers"]] + [r["lead_late_ns"][q]]
        return max((x for x in xs if x is not None), default=None)

    def label(r):
        return r["scenario"] if a.runs == 1 else f"{r['scenario']}, seed {r['seed']}"

    for r in runs:
        q, q10, c = r["any_two_ns"], r["any_two_after_10s_ns"], r["clock_any_two_ns"]
        ql = r["any_two_after_lock_ns"]
        fs = r["followers"]
        lines.append(
            f"| {label(r)} | {h.ms(q['p50'])} / {h.ms(q['p99'])} / {h.ms(q['max'])} | "
            f"{h.ms(ql['p50'])} / {h.ms(ql['p99'])} / {h.ms(ql['max'])} | "
            f"{h.ms(q10['p50'])} / {h.ms(q10['p99'])} / {h.ms(q10['max'])} | "
            f"{h.ms(c['p50'])} / {h.ms(c['p99'])} / {h.ms(c['max'])} | "
            f"{h.ms(worst(r, 'p99'))} / {h.ms(worst(r, 'max'))} | "
            f"{each(fs, 'lock_s', '{:.2f}')}; {each(fs, 'clock_lock_s', '{:.2f}')} | "
            f"{switch(fs)} | "
            f"{sum(f['out_of_order_steps'] for f in fs)} | "
            f"{sum(f['skipped_ticks'] or 0 for f in fs)} | {sum(f['jumps'] or 0 for f in fs)} |")
    if a.runs > 1:
        lines += ["", f"Lock over {a.runs} runs (seeds {a.seed}..{a.seed + a.runs - 1}), "
                  "per scenario: followers locked within 2 s of their first frame, "
                  "and every follower's lock time (s), sorted (-: no lock)", "",
                  "| impairment | within 2 s: hand-out | within 2 s: clock | hand-out lock times | "
                  "clock lock times |", "|---|---:|---:|---|---|"]
        for name in dict.fromkeys(r["scenario"] for r in runs):
            fs = [f for r in runs if r["scenario"] == name for f in r["followers"]]

            def within(key):
                return sum(1 for f in fs if f[key] is not None and f[key] <= 2.0)

            def times(key):
                v = sorted(fs, key=lambda f: (f[key] is None, f[key] or 0))
                return ", ".join("-" if f[key] is None else f"{f[key]:.2f}" for f in v)
            lines.append(f"| {name} | {within('lock_s')} of {len(fs)} | "
                         f"{within('clock_lock_s')} of {len(fs)} | {times('lock_s')} | "
                         f"{times('clock_lock_s')} |")
    md = "\n".join(lines) + "\n"
    with open(os.path.join(h.OUT, "sync.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
