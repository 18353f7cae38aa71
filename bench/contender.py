"""One of the user's three numpy approaches, or rowplay's Python reader,
in its own process.

    python contender.py {np.load,dict,memmap} DIR --jumps J [--seed S]
    python contender.py rowplay.open DIR --pack PACK --jumps J [--seed S]

The approaches are the user's own code (see the seed question):

  np.load  array = np.load(path) on every use, no cache
  dict     cache_raw = {i: np.load(i) for i in os.listdir(folder)}
  memmap   cache_memmap = {i: np.load(i, mmap_mode='r') for i in os.listdir(folder)}

and the same loop on the Python package of this repository (python/):

  rowplay.open  lib = rowplay.open(PACK); for row in lib[name]: ...

For it, "ready" is rowplay.open (header, index and all heads read), and a
jump is the user's loop getting its first row: `rows = iter(lib[name])`,
then the first `next(rows)` copied into the buffer. `library_fds` is the
number of descriptors the open library holds.

"Ready" is the time to build the cache (after Python and numpy are imported).
A jump is the user's "first row": look the array up (or load it) and copy row
0 into an output buffer, which is what handing it to an LED strip needs (for
a memmap, the bytes are only read from the file when touched). Each jump goes
to an array not jumped to before. One JSON line goes to stdout; progress of
the cache build goes to stderr, so that a run killed by the kernel still
says how far it got.
"""
import argparse
import json
import os
import random
import sys
import time

import numpy as np


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def peak_rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


cached = 0  # arrays in the cache so far (said when the build fails)


def build_dict(folder, mmap_mode=None):
    # The user's dict comprehension, with os.path.join instead of a
    # working directory and a progress line every 500 arrays.
    global cached
    cache = {}
    for k, i in enumerate(os.listdir(folder), 1):
        cache[i] = np.load(os.path.join(folder, i), mmap_mode=mmap_mode)
        cached = k
        if k % 500 == 0:
            print(f"progress {k} arrays cached", file=sys.stderr, flush=True)
    return cache


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("approach", choices=["np.load", "dict", "memmap", "rowplay.open"])
    ap.add_argument("dir")
    ap.add_argument("--pack", help="the .rowpack of DIR (for rowplay.open)")
    ap.add_argument("--jumps", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    folder = a.dir
    out = {"approach": a.approach, "fds_before": open_fds()}
    names = sorted(os.listdir(folder))
    out["arrays"] = len(names)
    max_fds = open_fds()
    lib = None
    if a.approach == "rowplay.open":
        # The package from this repository, without installing it.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
        import rowplay
    try:
        t0 = time.perf_counter_ns()
        if a.approach == "rowplay.open":
            lib = rowplay.open(a.pack)
            cache = None
        elif a.approach == "dict":
            cache = build_dict(folder)
        elif a.approach == "memmap":
            cache = build_dict(folder, mmap_mode="r")
        else:
            cache = None
        out["ready_ns"] = time.perf_counter_ns() - t0
        max_fds = max(max_fds, open_fds())
        if lib is not None:
            out["library_fds"] = open_fds() - out["fds_before"]
            # The pack's names are the file stems, in the same sorted order.
            names = lib.names
            out["arrays"] = len(names)

        rng = random.Random(a.seed)
        warm, *pool = names
        jumps = rng.sample(pool, min(a.jumps, len(pool)))
        if lib is not None:
            shape = lib[warm].shape
        else:
            shape = np.load(os.path.join(folder, warm), mmap_mode="r").shape
        buf = np.empty(shape[1:], dtype=np.uint8)
        times = []
        # One untimed jump first (to an array left out of the timed ones),
        # so that numpy's first-call set-up is not counted as a jump.
        for k, name in enumerate([warm] + jumps):
            t = time.perf_counter_ns()
            if lib is not None:
                rows = iter(lib[name])
                buf[:] = next(rows)
                if k:
                    times.append(time.perf_counter_ns() - t)
                del rows
                continue
            if cache is None:
                array = np.load(os.path.join(folder, name))
            else:
                array = cache[name]
            buf[:] = array[0]
            if k:
                times.append(time.perf_counter_ns() - t)
            del array
        max_fds = max(max_fds, open_fds())
        out["first_row_ns"] = times
        out["ok"] = True
    except BaseException as e:  # MemoryError, OSError(EMFILE/ENOMEM), ...
        out["ok"] = False
        out["error"] = f"{type(e).__name__}: {e}"
        if cached:
            out["error"] += f" (after {cached} arrays cached)"
        max_fds = max(max_fds, open_fds())
    out["open_fds"] = max_fds
    out["peak_rss_bytes"] = peak_rss_bytes()
    print(json.dumps(out), flush=True)
    sys.exit(0 if out["ok"] else 1)


if __name__ == "__main__":
    main()
