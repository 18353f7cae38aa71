#!/usr/bin/env python3
"""A user-space UDP relay that impairs a path: delay, drop, reorder.

The netns benchmark of MultiSync needs impaired links, and this kernel has
no netem qdisc. The relay listens on one address:port and forwards every
datagram to another, each after a uniformly random delay in
[--min-ms, --max-ms], dropping a fraction --drop of them; --reorder holds a
fraction of datagrams back by an extra --reorder-ms so they arrive after
later ones. Random choices come from --seed, so a run is repeatable up to
scheduling. It stops after --seconds (always bounded) and prints counts as
one JSON line.

    bench/udp_relay.py --listen 10.0.0.1:32320 --to 10.0.1.2:32320 \\
        --max-ms 4 --drop 0.05 --seconds 60 --seed 1

--listen may be a multicast group (then --iface is the interface address to
join it on); --to may be unicast or multicast (--iface is then the source).
Standard library only.
"""

import argparse
import heapq
import json
import random
import select
import socket
import struct
import sys
import time


def addr(s):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not HOST:PORT")
    return host, int(port)


def is_multicast(ip):
    return 224 <= int(ip.split(".")[0]) <= 239


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=addr, required=True)
    ap.add_argument("--to", type=addr, required=True)
    ap.add_argument("--iface", default="0.0.0.0", help="interface address for multicast")
    ap.add_argument("--min-ms", type=float, default=0.0)
    ap.add_argument("--max-ms", type=float, default=4.0)
    ap.add_argument("--drop", type=float, default=0.0, help="fraction dropped, 0..1")
    ap.add_argument("--reorder", type=float, default=0.0, help="fraction held back, 0..1")
    ap.add_argument("--reorder-ms", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, required=True, help="stop after this long")
    ap.add_argument("--say-ready", action="store_true",
                    help="print one line 'ready' once listening (for callers that must wait)")
    a = ap.parse_args(argv)
    if not (0 <= a.min_ms <= a.max_ms) or not (0 <= a.drop <= 1) or not (0 <= a.reorder <= 1):
        ap.error("need 0 <= min-ms <= max-ms and fractions in 0..1")
    if a.seconds <= 0 or a.seconds > 24 * 3600:
        ap.error("--seconds must be in (0, 86400]")

    rng = random.Random(a.seed)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lhost, lport = a.listen
    if is_multicast(lhost):
        rx.bind(("0.0.0.0", lport))
        mreq = struct.pack("4s4s", socket.inet_aton(lhost), socket.inet_aton(a.iface))
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    else:
        rx.bind((lhost, lport))
    rx.setblocking(False)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # Never send from an unbound socket: bind to the interface given.
    tx.bind((a.iface, 0))
    if is_multicast(a.to[0]):
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(a.iface))
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)

    if a.say_ready:
        print("ready", flush=True)
    end = time.monotonic() + a.seconds
    queue = []  # (due, seq, datagram)
    seq = received = dropped = held = sent = 0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while queue and queue[0][0] <= now:
            _, _, d = heapq.heappop(queue)
            try:
                tx.sendto(d, a.to)
                sent += 1
            except OSError:
                pass
        timeout = end - now
        if queue:
            timeout = min(timeout, max(0.0, queue[0][0] - now))
        r, _, _ = select.select([rx], [], [], timeout)
        if not r:
            continue
        # Bounded batch, so a flood cannot starve the sends.
        for _ in range(64):
            try:
                d, _ = rx.recvfrom(65535)
            except BlockingIOError:
                break
            received += 1
            if rng.random() < a.drop:
                dropped += 1
                continue
            delay = rng.uniform(a.min_ms, a.max_ms) / 1000.0
            if rng.random() < a.reorder:
                held += 1
                delay += a.reorder_ms / 1000.0
            seq += 1
            heapq.heappush(queue, (time.monotonic() + delay, seq, d))
    print(json.dumps({"received": received, "dropped": dropped, "held": held,
                      "sent": sent, "unsent": len(queue)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
