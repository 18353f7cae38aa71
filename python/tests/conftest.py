"""Shared fixtures: the real `rowplay` binary and packs it writes.

The binary is $ROWPLAY_BIN, else target/release/rowplay or
target/debug/rowplay of the repository (whichever is newer). A missing
binary fails the tests: it never turns them into skips.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
HOSTILE = os.path.join(REPO, "tests", "hostile")

# Run against the source tree when the package is not installed.
try:
    import rowplay  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.join(REPO, "python"))


def find_bin():
    env = os.environ.get("ROWPLAY_BIN")
    if env:
        return env
    found = [
        os.path.join(REPO, "target", p, "rowplay")
        for p in ("release", "debug")
        if os.access(os.path.join(REPO, "target", p, "rowplay"), os.X_OK)
    ]
    if not found:
        return None
    return max(found, key=os.path.getmtime)


@pytest.fixture(scope="session")
def rowplay_bin():
    b = find_bin()
    if not b or not os.access(b, os.X_OK):
        pytest.fail(
            f"no rowplay binary ({b or 'target/{release,debug}/rowplay'}); "
            "run `cargo build` or set ROWPLAY_BIN"
        )
    return b


def run(bin_, *args, check=True, timeout=120):
    """`rowplay ARGS`, output captured."""
    r = subprocess.run(
        [bin_, *map(str, args)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"rowplay {args} failed ({r.returncode}): {r.stderr}")
    return r


@pytest.fixture
def pack(rowplay_bin, tmp_path):
    """pack({name: ndarray}, *options) -> path of a .rowpack written by
    `rowplay pack` from those arrays saved with np.save."""
    counter = [0]

    def make(arrays, *opts):
        counter[0] += 1
        src = tmp_path / f"src{counter[0]}"
        for name, a in arrays.items():
            p = src / (name + ".npy")
            p.parent.mkdir(parents=True, exist_ok=True)
            np.save(p, a)
        out = tmp_path / f"lib{counter[0]}.rowpack"
        run(rowplay_bin, "pack", src, "-o", out, *opts)
        return out

    return make


def read_expected():
    """Rows of tests/hostile/expected.tsv: (file, command, result)."""
    rows = []
    with open(os.path.join(HOSTILE, "expected.tsv"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split("\t")
            assert len(fields) == 3, f"expected.tsv: not 3 fields: {line!r}"
            rows.append(tuple(fields))
    return rows
