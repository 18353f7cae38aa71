"""Write N random uint8 arrays of one shape as .npy files (the workload).

    python make_workload.py DIR --arrays N --shape 500,30,3 [--seed S]

Files are named a00000.npy, a00001.npy, ... and saved with np.save, as
the user did. Existing folders with the right count and shape are reused.
"""
import argparse
import os

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--arrays", type=int, required=True)
    ap.add_argument("--shape", default="500,30,3")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    shape = tuple(int(x) for x in a.shape.split(","))
    os.makedirs(a.dir, exist_ok=True)
    stamp = a.dir.rstrip("/") + ".done"  # beside it: the seed lists the folder
    want = f"{a.arrays} {shape} {a.seed}\n"
    if os.path.exists(stamp) and open(stamp).read() == want:
        return
    for f in os.listdir(a.dir):
        os.remove(os.path.join(a.dir, f))
    rng = np.random.default_rng(a.seed)
    for i in range(a.arrays):
        arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
        np.save(os.path.join(a.dir, f"a{i:05d}.npy"), arr)
    with open(stamp, "w") as f:
        f.write(want)


if __name__ == "__main__":
    main()
