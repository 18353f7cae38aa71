#!/usr/bin/env python3
"""Send frames with PyPI stupidArtnet 1.6.0 to rowplay (see README.md).

  stupidartnet_send.py --port P [--universes 0,1] [--size 510] [--frames 20]
                       [--fps 40] [--artsync none|last]
"""
import argparse
import time

from stupidArtnet import StupidArtnet

ap = argparse.ArgumentParser()
ap.add_argument('--target', default='127.0.0.1')
ap.add_argument('--port', type=int, default=6454)
ap.add_argument('--universes', default='0,1')
ap.add_argument('--size', type=int, default=510)
ap.add_argument('--frames', type=int, default=20)
ap.add_argument('--fps', type=int, default=40)
ap.add_argument('--artsync', default='none', choices=['none', 'last'])
a = ap.parse_args()
unis = [int(u) for u in a.universes.split(',')]

nodes = [StupidArtnet(a.target, u, a.size, a.fps, source_address=('127.0.0.1', 0), port=a.port)
         for u in unis]
t0 = time.monotonic()
for f in range(a.frames):
    for k, n in enumerate(nodes):
        n.set(bytearray(((7 * c + 13 * k + f) & 0xFF) for c in range(n.packet_size)))
        n.show()
    if a.artsync == 'last':
        nodes[-1].send_artsync()
    time.sleep(max(0.0, t0 + (f + 1) / a.fps - time.monotonic()))
for n in nodes:
    n.close()
print(f'sent {a.frames} frames x {len(unis)} universes, artsync={a.artsync}', flush=True)
