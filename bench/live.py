"""Live input: packet-to-wire latency, CPU and the highest packet rate.

    bench/run live            push and tick mode, then the packet-rate ramp
    bench/run live --quick    a few seconds of each (smoke run)
    bench/run live --one-cpu  the player and the sender on one CPU (a Pi Zero has one)

rowplay plays the demo with `--listen e131` on 127.0.0.1 and a capture
output on /dev/shm; `bench/live_send.py` (the PyPI `sacn` package with
manual flush: 4 universes of 170 LEDs plus one E1.31 sync packet a frame)
sends and logs when each frame went out on CLOCK_MONOTONIC, the clock the
capture's t_ns is stamped with. Latency = capture t_ns - the time just
before flush() began (conservative: it includes the sender's own time to
build and send the frame's five packets). A frame is dropped when its
number never shows in the capture. CPU is the player process's utime +
stime over the run, per 1,000 packets received. Results: bench/out/live.md
and bench/out/live.json. The player runs at SCHED_FIFO 50 (`--rt-priority`,
as on a Pi) under the kernel's timer trace (bench/ktrace.py, as root), so
each deadline miss gets a cause.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import ktrace  # noqa: E402

LIVE = 0xFFFFFFFE
# `--one-cpu`: the player (all its threads) and the sender on CPU 1, as
# everything is on a one-core Pi Zero: a packet then wakes the receiver and
# the receiver the player on one CPU, with no wake-up of an idle virtual CPU
# by another in between (which costs milliseconds on this VM at times).
PIN = []
LEDS = 680  # 4 universes x 170 RGB LEDs


def cpu_ns(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def peak_rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def traced(seconds):
    trace = ktrace.TimerTrace(seconds + 15)
    trace.start()
    return trace


def attributed(trace, stats_path, tag):
    """The trace's cause for each miss the player recorded."""
    try:
        misses = json.load(open(stats_path)).get("recent_misses", [])
    except (OSError, ValueError):
        misses = []
    return ktrace.explain(trace, misses, h.PERIOD_NS,
                          save_to=os.path.join(h.OUT, f"live-{tag}.ktrace.txt"))


def run_one(rowplay, mode, fps, frames, tag):
    cap = f"/dev/shm/rowplay-live-{os.getpid()}-{tag}.cap"
    sock = os.path.join(h.OUT, f"live-{tag}.sock")
    stats = os.path.join(h.OUT, f"live-{tag}.stats.json")
    for p in (cap, sock, stats):
        if os.path.exists(p):
            os.remove(p)
    trace = traced(frames / fps)
    player = subprocess.Popen(
        PIN + [rowplay, "play", "--leds", str(LEDS), "--listen", "e131:0", "--listen-addr",
         "127.0.0.1", "--live-output", mode, "--output", f"capture:{cap}", "--socket", sock,
         "--stats-json", stats, "--rt-priority", "50"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = None
    for line in player.stderr:
        m = re.search(r"live input on e131:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        raise SystemExit("bench live: the player did not say where it listens")
    ctl = h.Ctl(sock)
    cpu0 = cpu_ns(player.pid)
    send = subprocess.run(
        PIN + [h.PY, os.path.join(h.HERE, "live_send.py"), "--port", str(port), "--frames",
         str(frames), "--fps", str(fps)], check=True, capture_output=True, text=True)
    sent = json.loads(send.stdout)
    time.sleep(0.2)
    cpu1 = cpu_ns(player.pid)
    st = json.loads(ctl.cmd("status"))
    rss = peak_rss(player.pid)
    ctl.close()
    player.terminate()
    player.wait(timeout=30)
    att, why = attributed(trace, stats, tag)
    recs = [r for r in h.read_capture(cap) if r[1] == LIVE]
    os.remove(cap)
    shown = {}
    for t, _, _, px in recs:
        f = px[0] << 16 | px[1] << 8 | px[2]
        shown.setdefault(f, t)  # the first hand-out of each frame
    lat = [shown[f] - t0 for f, t0, _ in sent["sent"] if f in shown]
    lat_after = [shown[f] - t1 for f, _, t1 in sent["sent"] if f in shown]
    src = (st.get("live") or {}).get("sources") or [{}]
    packets = src[0].get("packets") or sent["packets"]
    return {
        "mode": mode, "fps": fps, "frames_sent": frames,
        "packets_per_s": sent["packets"] / sent["seconds"],
        "frames_shown": len(shown), "frames_dropped": frames - len(shown),
        "missing": sorted(set(range(frames)) - set(shown))[:20],
        "mux_frames_dropped": src[0].get("frames_dropped"),
        "latency_ns": h.quantiles(lat), "latency_after_flush_ns": h.quantiles(lat_after),
        "cpu_ns_per_1000_packets": (cpu1 - cpu0) * 1000 // max(1, packets),
        "peak_rss_bytes": rss, "deadline_misses": st["deadline_misses"],
        "player_live_latency_ns": st.get("live_latency_ns"),
        "miss_attribution": att, "miss_attribution_text": why,
    }


def hostile_packets():
    """Bad and unwanted datagrams of each protocol, as (port key, bytes)."""
    ddp_hdr = bytes([0x41, 1, 0x0B, 0x01])
    e131 = bytearray(638)
    e131[4:16] = b"ASC-E1.17\0\0\0"
    out = [
        ("ddp", ddp_hdr[:3]),                                         # truncated
        ("ddp", ddp_hdr + (10**6).to_bytes(4, "big") + (30).to_bytes(2, "big") + bytes(30)),
        ("ddp", ddp_hdr + bytes(4) + (1400).to_bytes(2, "big") + bytes(20)),  # short
        ("ddp", os.urandom(1472)),                                    # garbage
        ("e131", bytes(e131)),                                        # bad vectors
        ("e131", os.urandom(638)),
        ("e131", bytes(e131[:60])),
        ("artnet", b"Art-Net\0" + bytes([0, 0x50, 0, 14]) + bytes(4)),  # truncated ArtDmx
        ("artnet", b"Art-Net\0" + bytes([0, 0x50, 0, 14, 0, 0, 0x7F, 0x7F, 2, 0]) + bytes(512)),
        ("artnet", os.urandom(530)),
    ]
    # Valid DDP frames too, from each spoofed source: with `--live-rank
    # under` they never reach the strip while playback runs, but they fill
    # the source table (16) and the rest is counted as overflow.
    out.append(("ddp", ddp_hdr + bytes(4) + (30).to_bytes(2, "big") + bytes(range(30))))
    return out


def hostile(rowplay, seconds, rate=10_000, senders=50):
    """Playback at 50 Hz while `rate` datagrams a second arrive from
    `senders` addresses (127.0.0.2 ...): bad packets of every protocol and
    valid DDP from each. Counts misses, bad packets and RSS before/after."""
    import socket
    sock = os.path.join(h.OUT, "live-hostile.sock")
    stats = os.path.join(h.OUT, "live-hostile.stats.json")
    for p in (sock, stats):
        if os.path.exists(p):
            os.remove(p)
    trace = traced(seconds)
    player = subprocess.Popen(
        [rowplay, "play", "--leds", str(LEDS), "--listen", "ddp:0,e131:0,artnet:0",
         "--listen-addr", "127.0.0.1", "--live-rank", "under", "--output", "null",
         "--socket", sock, "--stats-json", stats, "--rt-priority", "50"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ports = None
    for line in player.stderr:
        m = re.search(r"live input on ddp:(\d+), e131:(\d+), artnet:(\d+)", line)
        if m:
            ports = dict(zip(("ddp", "e131", "artnet"), map(int, m.groups())))
            break
    if ports is None:
        raise SystemExit("bench live: the player did not say where it listens")
    ctl = h.Ctl(sock)
    time.sleep(1.0)
    rss0 = peak_rss(player.pid)
    socks = []
    for k in range(senders):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{k + 2}", 0))
        socks.append(s)
    pkts = hostile_packets()
    st0 = json.loads(ctl.cmd("status"))
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        key, data = pkts[n % len(pkts)]
        socks[n % senders].sendto(data, ("127.0.0.1", ports[key]))
        n += 1
        # pace to `rate`: sleep whenever ahead of schedule
        ahead = t0 + n / rate - time.monotonic()
        if ahead > 0.001:
            time.sleep(ahead)
    elapsed = time.monotonic() - t0
    time.sleep(0.3)
    st = json.loads(ctl.cmd("status"))
    rss1 = peak_rss(player.pid)
    ctl.close()
    player.terminate()
    player.wait(timeout=30)
    att, why = attributed(trace, stats, "hostile")
    live = st.get("live") or {}
    srcs = live.get("sources") or []
    return {
        "datagrams": n, "rate": n / elapsed, "senders": senders,
        "frames": st["frames"] - st0["frames"],
        "deadline_misses": st["deadline_misses"] - st0["deadline_misses"],
        "underruns": st["underruns"] - st0["underruns"],
        "sources_listed": len(srcs),
        "bad_packets_on_sources": sum(x["bad_packets"] for x in srcs),
        "showing": st.get("showing"),
        "peak_rss_before": rss0, "peak_rss_after": rss1,
        "alive": player.returncode in (0, -15),
        "miss_attribution": att, "miss_attribution_text": why,
    }


def main():
    ap = argparse.ArgumentParser(prog="bench/run live", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--one-cpu", action="store_true",
                    help="the player and the sender on CPU 1, as everything is on a Pi Zero")
    ap.add_argument("--seconds", type=float, default=20.0, help="per latency run")
    a = ap.parse_args()
    global PIN
    PIN = ["taskset", "-c", "1"] if a.one_cpu else []
    os.makedirs(h.OUT, exist_ok=True)
    rowplay = h.find_rowplay()
    secs = 3.0 if a.quick else a.seconds
    res = {"machine": h.machine(), "runs": []}
    for mode in ("push", "tick"):
        h.log(f"live: {mode} mode, 60 frames/s for {secs:.0f} s")
        res["runs"].append(run_one(rowplay, mode, 60, int(60 * secs), f"{mode}60"))
    ramp = [240, 960] if a.quick else [120, 240, 480, 960, 1920, 3840]
    held = None
    for fps in ramp:
        h.log(f"live: packet-rate ramp, push mode, {fps} frames/s ({fps * 5} packets/s)")
        r = run_one(rowplay, "push", fps, int(fps * min(secs, 5.0)), f"ramp{fps}")
        r["ramp"] = True
        res["runs"].append(r)
        if r["frames_dropped"] == 0:
            held = r
    res["highest_rate_held"] = held and held["packets_per_s"]
    h.log("live: hostile traffic, 10,000 datagrams/s from 50 addresses, during playback")
    res["hostile"] = hostile(rowplay, 3.0 if a.quick else 10.0)
    with open(os.path.join(h.OUT, "live.json"), "w") as f:
        json.dump(res, f, indent=1)
    res["one_cpu"] = a.one_cpu
    lines = ["# Live input (bench/run live)", "",
             f"Machine: {res['machine']}", "",
             "Placement: " + ("the player and the sender on CPU 1 (`--one-cpu`)" if a.one_cpu
                              else "free (the scheduler places every thread)"), "",
             "| mode | frames/s | packets/s | frames shown / sent | latency p50 / p99 / max "
             "(ms) | CPU per 1,000 packets | peak RSS | deadline misses |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        q = r["latency_ns"]
        lat = " / ".join(h.ms(q[k]) if q[k] is not None else "-" for k in ("p50", "p99", "max"))
        lines.append(
            f"| {r['mode']}{' (ramp)' if r.get('ramp') else ''} | {r['fps']} | "
            f"{r['packets_per_s']:.0f} | {r['frames_shown']} / {r['frames_sent']} | {lat} | "
            f"{r['cpu_ns_per_1000_packets'] / 1e6:.1f} ms | {h.mib(r['peak_rss_bytes'])} | "
            f"{r['deadline_misses']} |")
    why = "; ".join(f"{r['mode']} {r['fps']}: {r['miss_attribution_text']}"
                    for r in res["runs"] if r["deadline_misses"])
    lines += ["", "Why the player was late (bench/ktrace.py), per run: "
              + (why or "no deadline misses in any run."), ""]
    lines += ["", f"Highest packet rate held with 0 dropped frames: "
              f"{res['highest_rate_held'] and round(res['highest_rate_held'])} packets/s "
              f"(the last ramp step is the Python sender's own limit if it held).", ""]
    x = res["hostile"]
    lines += [f"Hostile: {x['datagrams']} datagrams at {x['rate']:.0f}/s from {x['senders']} "
              f"addresses (truncated, oversized and garbage packets of each protocol, offsets "
              f"past the strip, and valid DDP from every address) while playback ran with "
              f"`--live-rank under`: {x['frames']} frames, {x['deadline_misses']} deadline "
              f"misses, {x['underruns']} underruns, {x['sources_listed']} sources tracked "
              f"(the table holds 16), peak RSS {h.mib(x['peak_rss_before'])} MiB before and "
              f"{h.mib(x['peak_rss_after'])} MiB after; still playing: {x['showing']}. "
              f"Why the player was late: {x['miss_attribution_text'] or 'no misses'}.", ""]
    md = "\n".join(lines)
    with open(os.path.join(h.OUT, "live.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
