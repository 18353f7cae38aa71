#!/usr/bin/env python3
"""E1.31 sender for `bench/run live`: the PyPI `sacn` package (1.11.0) with
manual flush, so each frame is its universes plus one E1.31 sync packet, sent
from this thread. Frame f carries f in the first three channels of the first
universe (big-endian), so a capture record names the frame it shows. Prints
one JSON object: per frame, CLOCK_MONOTONIC ns just before and just after
flush() (the sync packet, the one that completes the frame, goes out last).

  live_send.py --port P --frames N --fps F [--universes 4] [--channels 510]
"""
import argparse
import json
import time

import sacn
from sacn.sending import sender_socket_udp

ap = argparse.ArgumentParser()
ap.add_argument('--port', type=int, required=True)
ap.add_argument('--frames', type=int, default=600)
ap.add_argument('--fps', type=float, default=60)
ap.add_argument('--universes', type=int, default=4)
ap.add_argument('--channels', type=int, default=510)
a = ap.parse_args()

# The library always sends to its DEFAULT_PORT; the benchmark uses another.
sender_socket_udp.DEFAULT_PORT = a.port
# Bound to 127.0.0.1: the sync packet is multicast, and from this source
# address it stays on lo (never out through the default route).
s = sacn.sACNsender(bind_address='127.0.0.1', bind_port=0, source_name='bench',
                    fps=30, universeDiscovery=False)
unis = list(range(1, a.universes + 1))
for u in unis:
    s.activate_output(u)
    s[u].destination = '127.0.0.1'
    s[u].priority = 100
s.manual_flush = True
s.start()

base = [tuple((7 * c + 13 * k) & 0xFF for c in range(a.channels)) for k in range(len(unis))]
sent = []
t_start = time.monotonic()
for f in range(a.frames):
    for k, u in enumerate(unis):
        d = base[k]
        if k == 0:
            d = (f >> 16 & 0xFF, f >> 8 & 0xFF, f & 0xFF) + d[3:]
        s[u].dmx_data = d
    t0 = time.monotonic_ns()
    s.flush()
    t1 = time.monotonic_ns()
    sent.append((f, t0, t1))
    time.sleep(max(0.0, t_start + (f + 1) / a.fps - time.monotonic()))
s.stop()
print(json.dumps({'frames': a.frames, 'packets': a.frames * (len(unis) + 1),
                  'seconds': time.monotonic() - t_start, 'sent': sent}), flush=True)
