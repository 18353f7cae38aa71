#!/usr/bin/env python3
"""Compare two rowplay record files (capture: or wire: output), ignoring timestamps.

Record format, records back to back, little-endian:
    u64 t_ns, u32 array, u32 row, u32 n, then n bytes.

Both files must parse exactly to their end. Everything but t_ns must match.
Prints the record count. Exit status: 0 same, 1 different, 2 unreadable/malformed.

usage: compare-records.py A B [--min-records N]
"""
import struct
import sys

HEAD = struct.Struct("<QIII")


class Malformed(Exception):
    pass


def parse(path):
    with open(path, "rb") as f:
        data = f.read()
    records = []
    off = 0
    while off < len(data):
        if len(data) - off < HEAD.size:
            raise Malformed(f"{path}: {len(data) - off} stray bytes at offset {off} (record header is {HEAD.size})")
        t_ns, array, row, n = HEAD.unpack_from(data, off)
        off += HEAD.size
        if n > len(data) - off:
            raise Malformed(f"{path}: record {len(records)} at offset {off - HEAD.size} says n={n}, only {len(data) - off} bytes left")
        records.append((t_ns, array, row, data[off:off + n]))
        off += n
    return records


def describe(rec):
    t_ns, array, row, payload = rec
    shown = payload[:16].hex()
    more = "..." if len(payload) > 16 else ""
    return f"t_ns={t_ns} array={array} row={row} n={len(payload)} bytes={shown}{more}"


def main(argv):
    args = list(argv[1:])
    min_records = 1
    if "--min-records" in args:
        i = args.index("--min-records")
        min_records = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    a_path, b_path = args
    try:
        a = parse(a_path)
        b = parse(b_path)
    except (OSError, Malformed) as e:
        print(f"compare-records: {e}", file=sys.stderr)
        return 2

    ok = True
    if len(a) != len(b):
        print(f"compare-records: record counts differ: {a_path} has {len(a)}, {b_path} has {len(b)}")
        ok = False
    for i, (ra, rb) in enumerate(zip(a, b)):
        if ra[1:] != rb[1:]:
            print(f"compare-records: first difference at record {i}:")
            print(f"  {a_path}: {describe(ra)}")
            print(f"  {b_path}: {describe(rb)}")
            ok = False
            break
    for path, recs in ((a_path, a), (b_path, b)):
        ts = [r[0] for r in recs]
        if any(t1 < t0 for t0, t1 in zip(ts, ts[1:])):
            print(f"compare-records: warning: timestamps in {path} are not monotonic")
    if min(len(a), len(b)) < min_records:
        print(f"compare-records: too few records ({len(a)}, {len(b)}; want at least {min_records})")
        ok = False
    payload = sum(len(r[3]) for r in a)
    status = "identical except t_ns" if ok else "DIFFERENT"
    print(f"compare-records: {len(a)} records, {payload} payload bytes: {status}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
