"""Pack throughput and peak memory for a large zstd .fseq: a 2-hour show
at 40 fps of 300 LEDs (288,000 frames x 900 channels, 259 MB decoded),
written the way xLights writes it (a 10-frame first block at zstd level -5,
then blocks of 80 frames at level 3), packed by `rowplay pack` under
`/usr/bin/time -v`.

    bench/.venv/bin/python bench/fseq_pack.py [--frames N] [--noise 0.1]

Needs the PyPI `zstandard` package (installed into bench/.venv when
missing) and ROWPLAY (default target/release/rowplay).
"""
import argparse
import math
import os
import random
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "out", "fseq")


def write_show(path, frames, channels, noise, seed=1):
    import zstandard

    wave = bytes(int(127.5 + 127.5 * math.sin(i / 37.0) * math.cos(i / 251.0))
                 for i in range(200_000))
    rnd = random.Random(seed)

    def frame(f):
        o = (f * 7) % (len(wave) - channels)
        b = bytearray(wave[o:o + channels])
        for k in rnd.sample(range(channels), int(channels * noise)):
            b[k] = rnd.randrange(256)
        return bytes(b)

    per_block = 80
    sizes = [10] + [per_block] * ((frames - 10) // per_block)
    if frames - sum(sizes):
        sizes.append(frames - sum(sizes))
    nb = len(sizes)
    assert nb < 4096
    blocks, at = [], 0
    for i, n in enumerate(sizes):
        data = b"".join(frame(f) for f in range(at, at + n))
        c = zstandard.ZstdCompressor(level=-5 if i == 0 else 3).compress(data)
        blocks.append((at, c))
        at += n
    index_end = 32 + 8 * nb
    data_offset = (index_end + 3) // 4 * 4
    # v2.2 header (docs: fpp FSEQ_Sequence_File_Format.txt): step 25 ms.
    h = b"PSEQ" + struct.pack("<HBBHIIBBBBBB", data_offset, 2, 2, index_end, channels, frames,
                              25, 0, 1 | ((nb >> 8) << 4), nb & 0xFF, 0, 0) + b"\0" * 8
    for first, c in blocks:
        h += struct.pack("<II", first, len(c))
    h += b"\0" * (data_offset - len(h))
    with open(path, "wb") as f:
        f.write(h)
        for _, c in blocks:
            f.write(c)
    return nb


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=288_000)
    ap.add_argument("--channels", type=int, default=900)
    ap.add_argument("--noise", type=float, default=0.1,
                    help="share of channels set at random in each frame (compressibility)")
    a = ap.parse_args()
    rowplay = os.environ.get("ROWPLAY") or os.path.join(HERE, "..", "target", "release", "rowplay")
    os.makedirs(OUT, exist_ok=True)
    src = os.path.join(OUT, f"show_{a.frames}x{a.channels}.fseq")
    if not os.path.exists(src):
        nb = write_show(src, a.frames, a.channels, a.noise)
        print(f"wrote {src}: {nb} blocks", file=sys.stderr)
    dst = os.path.join(OUT, "show.rowpack")
    r = subprocess.run(["/usr/bin/time", "-f", "%e %M", rowplay, "pack", src, "-o", dst],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(r.stderr)
    wall, kib = r.stderr.strip().splitlines()[-1].split()
    decoded = a.frames * a.channels
    print(f".fseq {os.path.getsize(src) / 1e6:.1f} MB zstd -> {decoded / 1e6:.1f} MB decoded: "
          f"{float(wall):.2f} s, {decoded / 1e6 / float(wall):.0f} MB/s of decoded frames, "
          f"peak RSS {int(kib) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
