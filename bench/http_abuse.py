"""HTTP abuse: rowplay plays at 50 Hz with `--http 127.0.0.1:PORT` while, at
the same time, 200 slow clients send one byte a second each, 1,000 requests
a second of `GET /api/status` arrive (a new connection each), and one
client POSTs a 100 MB body. Measured: deadline misses and underruns of the
player, its wake latency (how late each frame's wake-up was: p99, max), the
player's resident memory (the HTTP server is a thread of it) before, during
and after, and what each kind of client was answered.

    bench/run http                  60 s of abuse, 200 arrays of [500, 30, 3]
    bench/run http --seconds 20     shorter

Everything goes to 127.0.0.1. Results: bench/out/http_abuse.{json,md}.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import ktrace  # noqa: E402

SLOW_CLIENTS = 200
STATUS_RATE = 1000
STATUS_THREADS = 8
BIG_BODY = 100 * 1000 * 1000
STATUS_REQ = b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def rss_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status_code(head):
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


class Slow(threading.Thread):
    """200 connections, each sending the next byte of a request once a second;
    a connection the server closes is counted and replaced."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.opened = self.dropped = self.connect_failed = 0
        self.answers = {}
        self.lifetimes = []

    def connect(self):
        s = socket.socket()
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.connect_failed += 1
            return None
        s.setblocking(False)
        self.opened += 1
        return [s, time.monotonic(), 0]

    def run(self):
        conns = [self.connect() for _ in range(SLOW_CLIENTS)]
        while not self.stop.is_set():
            t0 = time.monotonic()
            for i, c in enumerate(conns):
                if self.stop.is_set():
                    break
                alive = c is not None
                if alive:
                    s, born, sent = c
                    try:
                        got = s.recv(4096)
                        # Any answer (a time-out's, or 503 when full) or EOF:
                        # the server has ended this connection.
                        code = status_code(got) if got else "closed"
                        self.answers[code] = self.answers.get(code, 0) + 1
                        alive = False
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.answers["reset"] = self.answers.get("reset", 0) + 1
                        alive = False
                    if alive:
                        try:
                            s.send(STATUS_REQ[sent % len(STATUS_REQ):][:1])
                            c[2] += 1
                        except OSError:
                            alive = False
                    if not alive:
                        self.dropped += 1
                        self.lifetimes.append(time.monotonic() - born)
                        s.close()
                conns[i] = c if alive else self.connect()
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
        for c in conns:
            if c:
                c[0].close()


class Status(threading.Thread):
    """Its share of 1,000 `GET /api/status` a second, one connection each."""

    def __init__(self, port, stop, rate):
        super().__init__(daemon=True)
        self.port, self.stop, self.rate = port, stop, rate
        self.codes, self.errors, self.lat = {}, {}, []
        self.late = 0

    def one(self):
        t0 = time.monotonic()
        s = socket.socket()
        s.settimeout(2.0)
        try:
            s.connect(("127.0.0.1", self.port))
            s.sendall(STATUS_REQ)
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            code = status_code(data)
            self.codes[code] = self.codes.get(code, 0) + 1
            if code == 200:
                self.lat.append(time.monotonic() - t0)
        except OSError as e:
            k = type(e).__name__
            self.errors[k] = self.errors.get(k, 0) + 1
        finally:
            s.close()

    def run(self):
        step = 1.0 / self.rate
        nxt = time.monotonic()
        while not self.stop.is_set():
            self.one()
            nxt += step
            d = nxt - time.monotonic()
            if d > 0:
                time.sleep(d)
            elif d < -1.0:
                # More than a second behind: count what was not sent.
                missed = int(-d / step)
                self.late += missed
                nxt += missed * step


class Big(threading.Thread):
    """One POST /api/command with a 100 MB body, sent as fast as the server
    takes it; records how much went in before the server answered or closed.
    While all connections are taken it is refused with 503 at once: it tries
    again (every 50 ms) until it gets a connection of its own."""

    def __init__(self, port, stop):
        super().__init__(daemon=True)
        self.port, self.stop = port, stop
        self.sent = 0
        self.code = None
        self.outcome = None
        self.seconds = None
        self.refused = 0

    def attempt(self):
        t0 = time.monotonic()
        self.sent, self.code = 0, None
        s = socket.socket()
        s.settimeout(10.0)
        try:
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"POST /api/command HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: %d\r\n\r\n" % BIG_BODY)
            chunk = b"x" * 65536
            while self.sent < BIG_BODY:
                n = s.send(chunk[:BIG_BODY - self.sent])
                self.sent += n
            self.outcome = "whole body sent"
        except OSError as e:
            self.outcome = f"server stopped it: {type(e).__name__} after {self.sent} bytes"
        try:
            s.settimeout(5.0)
            self.code = status_code(s.recv(4096))
        except OSError:
            pass
        s.close()
        self.seconds = time.monotonic() - t0

    def run(self):
        while True:
            self.attempt()
            if self.code != 503 or self.stop.is_set():
                return
            self.refused += 1
            self.stop.wait(0.05)


def main():
    ap = argparse.ArgumentParser(prog="bench/run http", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="abuse time (default 60)")
    ap.add_argument("--arrays", type=int, default=200)
    ap.add_argument("--shape", default="500,30,3")
    a = ap.parse_args()
    os.makedirs(h.OUT, exist_ok=True)
    rowplay = h.find_rowplay()
    d = os.path.join(h.OUT, "data", f"n{a.arrays}_{a.shape.replace(',', 'x')}")
    subprocess.run([h.PY, os.path.join(h.HERE, "make_workload.py"), d, "--arrays", str(a.arrays),
                    "--shape", a.shape], check=True)
    pack = d + ".rowpack"
    subprocess.run([rowplay, "pack", d, "-o", pack], check=True, stdout=subprocess.DEVNULL)

    port = free_port()
    sock = os.path.join(h.OUT, "http_abuse.sock")
    stats_path = os.path.join(h.OUT, "http_abuse.stats.json")
    for p in (sock, stats_path):
        if os.path.exists(p):
            os.remove(p)
    cmd = [rowplay, "play", pack, "--output", "null", "--fps", "50", "--rt-priority", "50",
           "--socket", sock, "--stats-json", stats_path, "--http", f"127.0.0.1:{port}"]
    # The kernel's timer trace, so that each miss gets a cause (bench/ktrace.py).
    trace = ktrace.TimerTrace(a.seconds + 15)
    trace.start()
    player = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ctl = h.Ctl(sock, timeout=30)
    time.sleep(3.0)  # warm-up: library open, first rows out
    before = json.loads(ctl.cmd("status"))
    rss_before = rss_of(player.pid)

    stop = threading.Event()
    slow = Slow(port, stop)
    status = [Status(port, stop, STATUS_RATE / STATUS_THREADS) for _ in range(STATUS_THREADS)]
    big = Big(port, stop)
    t_start = time.monotonic()
    slow.start()
    for t in status:
        t.start()
    big.start()
    rss, ctl_ns = [], []
    while time.monotonic() - t_start < a.seconds:
        rss.append(rss_of(player.pid))
        # The control socket during the abuse: one `status` each round.
        t0 = time.monotonic_ns()
        json.loads(ctl.cmd("status"))
        ctl_ns.append(time.monotonic_ns() - t0)
        time.sleep(0.5)
    stop.set()
    slow.join(timeout=10)
    for t in status:
        t.join(timeout=10)
    big.join(timeout=30)
    elapsed = time.monotonic() - t_start
    time.sleep(2.0)
    after = json.loads(ctl.cmd("status"))
    rss_after = rss_of(player.pid)
    # Still answering once the abuse is over?
    calm = Status(port, threading.Event(), 1)
    calm.one()
    ctl.close()
    player.send_signal(signal.SIGTERM)
    _, err = player.communicate(timeout=60)
    stats = json.load(open(stats_path))
    att, why = ktrace.explain(trace, stats.get("recent_misses", []), h.PERIOD_NS,
                              save_to=os.path.join(h.OUT, "http_abuse.ktrace.txt"))

    codes, errors, lat, late = {}, {}, [], 0
    for t in status:
        for k, v in t.codes.items():
            codes[str(k)] = codes.get(str(k), 0) + v
        for k, v in t.errors.items():
            errors[k] = errors.get(k, 0) + v
        lat += t.lat
        late += t.late
    sent = sum(codes.values()) + sum(errors.values())
    lq = h.quantiles([x * 1e9 for x in lat])
    life = sorted(slow.lifetimes)
    res = {
        "machine": h.machine(), "abuse_seconds": round(elapsed, 1),
        "command": " ".join(os.path.basename(c) if os.path.isabs(c) else c for c in cmd),
        "frames": stats["frames"],
        "deadline_misses": after["deadline_misses"] - before["deadline_misses"],
        "underruns": after["underruns"] - before["underruns"],
        "deadline_misses_total": stats["deadline_misses"], "underruns_total": stats["underruns"],
        "wake_latency_ns": stats["wake_latency_ns"],
        "rss_before": rss_before, "rss_max_during": max(rss), "rss_after": rss_after,
        "ctl_status_during_ns": h.quantiles(ctl_ns),
        "recent_misses": stats.get("recent_misses", []), "miss_attribution": why,
        "peak_rss_bytes": stats["peak_rss_bytes"],
        "status_requests": sent, "status_rate": round(sent / elapsed), "status_codes": codes,
        "status_errors": errors, "status_not_sent_on_time": late,
        "status_latency_ns": lq,
        "slow_connections_opened": slow.opened, "slow_dropped_by_server": slow.dropped,
        "slow_connect_failed": slow.connect_failed,
        "slow_endings": {str(k): v for k, v in slow.answers.items()},
        "slow_lifetime_s": {"min": round(life[0], 1) if life else None,
                            "median": round(life[len(life) // 2], 1) if life else None,
                            "max": round(life[-1], 1) if life else None},
        "big_post": {"bytes_sent": big.sent, "answer": big.code, "outcome": big.outcome,
                     "seconds": round(big.seconds or 0, 2), "refused_503_first": big.refused},
        "answers_after": calm.codes, "exit_code": player.returncode,
        "stderr_tail": err.decode(errors="replace").strip().splitlines()[-3:],
    }
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    us = lambda ns: "-" if ns is None else f"{ns / 1000:.0f}"  # noqa: E731
    w = res["wake_latency_ns"]
    md = [
        "# rowplay HTTP abuse", "",
        "Machine: {cpu}, {cores} cores, Linux {kernel}, preemption {preemption}.".format(
            **res["machine"]), "",
        f"`{res['command']}`, {elapsed:.0f} s of: {SLOW_CLIENTS} slow clients (one byte a second), "
        f"`GET /api/status` at {STATUS_RATE}/s asked ({res['status_rate']}/s sent), one "
        f"{BIG_BODY // 10**6} MB POST body.", "",
        "| deadline misses | underruns | wake p50 / p99 / max (us) | RSS before / max during / after (MiB) |",
        "|---:|---:|---|---|",
        f"| {res['deadline_misses']} | {res['underruns']} | {us(w['p50'])} / {us(w['p99'])} / {us(w['max'])} | "
        f"{mib(rss_before)} / {mib(max(rss))} / {mib(rss_after)} |", "",
        f"`/api/status`: {sent} requests, answers {codes}, errors {errors or 'none'}; "
        f"latency of the 200s p50 / p99 / max {us(lq['p50'])} / {us(lq['p99'])} / {us(lq['max'])} us.", "",
        f"Slow clients: {slow.opened} connections opened, {slow.dropped} dropped by the server "
        f"(lifetime min / median / max {res['slow_lifetime_s']['min']} / {res['slow_lifetime_s']['median']} / "
        f"{res['slow_lifetime_s']['max']} s); how they ended: {res['slow_endings']}.", "",
        f"100 MB POST: refused 503 {big.refused} times (no free connection), then: {big.outcome}; "
        f"answer {big.code}, {big.sent} bytes taken in {res['big_post']['seconds']} s.", "",
        f"Why the player was late (bench/ktrace.py): {why}.", "",
        f"The control socket during the abuse: `status` answered {len(ctl_ns)} times, "
        f"p50 / max {h.us(res['ctl_status_during_ns']['p50'])} / "
        f"{h.us(res['ctl_status_during_ns']['max'])} us.", "",
        f"After the abuse `/api/status` answers {calm.codes}; the player exited {player.returncode}.", "",
    ]
    with open(os.path.join(h.OUT, "http_abuse.json"), "w") as f:
        json.dump(res, f, indent=1)
    with open(os.path.join(h.OUT, "http_abuse.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))
    ok = player.returncode == 0 and calm.codes.get(200) == 1
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
