#!/usr/bin/env python3
"""Frame-loop time per frame with four outputs of 300 LEDs.

One row of 1200 LEDs is split into four outputs of 300 LEDs each:

  1. spi, APA102, SPI0 CE0  (written by the frame loop itself)
  2. spi, SK9822, SPI0 CE1  (worker thread)
  3. gpio-clocked, APA102 on GPIO5/6    (worker thread, bit-banged)
  4. gpio-clocked, WS2801 on GPIO23/24  (worker thread, bit-banged)

The SPI outputs write to the file-backed stand-in (`--spi-stand-in`), the
gpio-clocked ones to the recording GPIO stand-in (`--gpio-stand-in`), which
bit-bangs for real (the bit clock is kept) and records every edge. rowplay
plays for `--seconds` at 50 fps with `--stats-json` (player at SCHED_FIFO
50 when allowed, workers at 49, as on a Pi); this prints the frame
loop's work per frame (`loop_ns`: wake-up to next sleep, which includes every
output's send and preparing the next frame) as p50/p99/max, and per output
the frame loop's time in send, the worker's device write time and the
frames dropped.

    bench/run outputs                      # host binary (cargo build --release)
    bench/run outputs --bin target-arm/.../rowplay --runner "qemu-arm -cpu arm1176"

Under the emulator the times are the emulator's, not a Pi's: qemu-user
translates every instruction and has its own timer behaviour. Only the
standard library is used (the .npy files are written by hand).
"""

import argparse
import json
import os
import shlex
import struct
import subprocess
import sys
import tempfile

LEDS_PER_OUTPUT = 300
OUTPUTS = 4
ROWS = 200

CONFIG = """
[[output]]
kind = "spi"
chip = "apa102"
bus = 0
cs = 0
first = 0
count = 300
[[output]]
kind = "spi"
chip = "sk9822"
bus = 0
cs = 1
first = 300
count = 300
[[output]]
kind = "gpio-clocked"
chip = "apa102"
data_pin = 5
clock_pin = 6
hz = {hz}
first = 600
count = 300
[[output]]
kind = "gpio-clocked"
chip = "ws2801"
data_pin = 23
clock_pin = 24
hz = {hz}
first = 900
count = 300
"""


def write_npy(path, rows, leds, seed):
    """A (rows, leds, 3) uint8 .npy file (format version 1.0)."""
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, %d, 3), }" % (rows, leds)
    # Magic (6) + version (2) + length (2) + header + newline, padded to 64.
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    data = bytearray(rows * leds * 3)
    for i in range(len(data)):
        data[i] = (i * 7 + seed * 31 + i // 3001) & 0xFF
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode())
        f.write(data)


def host_binary(root):
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=root, check=True)
    return os.path.join(root, "target", "release", "rowplay")


def summary(h):
    return "p50 %7.1f us  p99 %7.1f us  max %7.1f us" % (
        h["p50"] / 1e3,
        h["p99"] / 1e3,
        h["max"] / 1e3,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", help="rowplay binary (default: build the host release binary)")
    ap.add_argument("--runner", default="", help='command to run it with, e.g. "qemu-arm -cpu arm1176"')
    ap.add_argument("--seconds", type=float, default=10.0, help="playback time (default 10)")
    ap.add_argument("--hz", type=int, default=2_000_000, help="gpio-clocked bit clock (default 2 MHz)")
    ap.add_argument("--rt-priority", type=int, default=50,
                    help="player's SCHED_FIFO priority, workers one below (default 50; 0: normal)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = a.bin or host_binary(root)
    runner = shlex.split(a.runner)
    leds = LEDS_PER_OUTPUT * OUTPUTS
    with tempfile.TemporaryDirectory(prefix="rowplay-bench-outputs-") as d:
        src = os.path.join(d, "arrays")
        os.mkdir(src)
        for i in range(2):
            write_npy(os.path.join(src, "a%d.npy" % i), ROWS, leds, i)
        pack = os.path.join(d, "bench.rowpack")
        subprocess.run(runner + [binary, "pack", src, "-o", pack], check=True, stdout=subprocess.DEVNULL)
        cfg = os.path.join(d, "config.toml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(hz=a.hz))
        stats = os.path.join(d, "stats.json")
        cmd = runner + [
            binary, "play", pack,
            "--config", cfg,
            "--leds", str(leds),
            "--seconds", str(a.seconds),
            "--rt-priority", str(a.rt_priority),
            "--socket", os.path.join(d, "s.sock"),
            "--spi-stand-in", d,
            "--gpio-stand-in", d,
            "--stats-json", stats,
        ]  # fmt: skip
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            sys.exit("bench outputs: rowplay failed:\n" + p.stderr)
        with open(stats) as f:
            st = json.load(f)
    where = " ".join(runner) if runner else "host"
    if a.json:
        print(json.dumps({"where": where, "frames": st["frames"], "loop_ns": st["loop_ns"],
                          "deadline_misses": st["deadline_misses"], "outputs": st["outputs"]}))
        return
    print("frame loop, %d outputs x %d LEDs, %d frames (%s):" % (OUTPUTS, LEDS_PER_OUTPUT, st["frames"], where))
    print("  loop per frame      " + summary(st["loop_ns"]))
    print("  deadline misses     %d" % st["deadline_misses"])
    for i, o in enumerate(st["outputs"]):
        how = "worker" if o.get("worker") else "inline"
        print("  %d %-12s %s  send  %s" % (i + 1, o["kind"], how, summary(o["write_ns"])))
        if o.get("worker"):
            print("                       device %s  dropped %d" % (summary(o["device_ns"]), o["dropped"]))
    if runner:
        print("  (emulator times: qemu-user's, not a Pi's)")


if __name__ == "__main__":
    main()
