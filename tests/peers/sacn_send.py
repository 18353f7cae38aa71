#!/usr/bin/env python3
"""Send frames with the PyPI `sacn` 1.11.0 sender to rowplay (see README.md).

  sacn_send.py --port P [--universes 1,2] [--channels 510] [--frames 30]
               [--fps 60] [--priority 100] [--name rowplay-peer] [--sync]
"""
import argparse
import time

import sacn
from sacn.sending import sender_socket_udp

ap = argparse.ArgumentParser()
ap.add_argument('--dest', default='127.0.0.1')
ap.add_argument('--port', type=int, default=5568)
ap.add_argument('--universes', default='1,2')
ap.add_argument('--channels', type=int, default=510)
ap.add_argument('--frames', type=int, default=30)
ap.add_argument('--fps', type=int, default=60)
ap.add_argument('--priority', type=int, default=100)
ap.add_argument('--name', default='rowplay-peer')
ap.add_argument('--sync', action='store_true')
a = ap.parse_args()
unis = [int(u) for u in a.universes.split(',')]

# The library always sends to its DEFAULT_PORT; tests use other ports.
sender_socket_udp.DEFAULT_PORT = a.port

sender = sacn.sACNsender(bind_address='127.0.0.1', bind_port=0, source_name=a.name,
                         fps=a.fps, universeDiscovery=False)
for u in unis:
    sender.activate_output(u)
    sender[u].priority = a.priority
    sender[u].destination = a.dest
    sender[u].dmx_data = tuple([0] * a.channels)
sender.manual_flush = a.sync
sender.start()


def frame(f, k):
    return tuple(((7 * c + 13 * k + f) & 0xFF) for c in range(a.channels))


t0 = time.monotonic()
for f in range(a.frames):
    for k, u in enumerate(unis):
        sender[u].dmx_data = frame(f, k)
    if a.sync:
        sender.flush()
    time.sleep(max(0.0, t0 + (f + 1) / a.fps - time.monotonic()))
# Let the sender thread put the last frame on the wire before terminating.
time.sleep(5.0 / a.fps)
if a.sync:
    sender.flush()
    time.sleep(2.0 / a.fps)
for u in unis:
    sender.deactivate_output(u)
sender.stop()
print(f'sent {a.frames} frames x {len(unis)} universes, then terminated', flush=True)
