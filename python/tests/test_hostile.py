"""Hostile packs: the Python reader refuses each one with the message the
binary prints (the shared list tests/hostile/expected.tsv), and never hangs."""

import contextlib
import os
import signal
import struct
import zlib

import pytest

import rowplay
from conftest import HOSTILE, read_expected, run

ROWS = read_expected()


@contextlib.contextmanager
def deadline(seconds=30):
    """Fail instead of hanging (SIGALRM interrupts a blocked read)."""

    def on_alarm(*_):
        raise TimeoutError(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def attempt(path, command):
    """'ok', or the ValueError's message."""
    with deadline():
        try:
            with rowplay.open(path) as lib:
                if command == "verify":
                    assert lib.verify() == len(lib)
            return "ok"
        except ValueError as e:
            return str(e)


def test_every_committed_pack_is_listed():
    packs = sorted(f for f in os.listdir(HOSTILE) if f.endswith(".rowpack"))
    assert sorted({r[0] for r in ROWS}) == packs
    assert {r[1] for r in ROWS} <= {"inspect", "verify"}


@pytest.mark.parametrize("file,command,result", ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_listed_pack(file, command, result):
    path = os.path.join(HOSTILE, file)
    want = "ok" if result == "ok" else f"{path}: {result}"
    assert attempt(path, command) == want


def test_an_error_is_a_value_error_with_its_parts():
    path = os.path.join(HOSTILE, "pack_unsorted_names.rowpack")
    with pytest.raises(rowplay.PackError) as e:
        rowplay.open(path)
    assert isinstance(e.value, ValueError)
    assert e.value.path == path
    assert e.value.reason == "index entry 1: names not in strictly ascending order"


def agree(rowplay_bin, path, message):
    """Python raises `PATH: message`, and the binary prints that line."""
    assert attempt(path, "inspect") == f"{path}: {message}"
    r = run(rowplay_bin, "inspect", path, check=False)
    assert (r.returncode, r.stderr) == (1, f"error: {path}: {message}\n")


def edited(tmp_path, edit, fix_crc=False):
    """A copy of a valid hostile-folder pack with `edit(bytearray)` applied."""
    b = bytearray(open(os.path.join(HOSTILE, "pack_bodies_out_of_order.rowpack"), "rb").read())
    edit(b)
    if fix_crc:
        count, io, names_len = struct.unpack_from("<QQQ", b, 24)
        meta = bytes(b[io : io + count * 32 + names_len])
        b[60:64] = struct.pack("<I", zlib.crc32(meta, zlib.crc32(bytes(b[:60]))))
    p = tmp_path / "edited.rowpack"
    p.write_bytes(bytes(b))
    return str(p)


def test_a_newer_version_says_to_upgrade(tmp_path):
    p = edited(tmp_path, lambda b: b.__setitem__(slice(8, 12), struct.pack("<I", 3)))
    assert attempt(p, "inspect") == (
        f"{p}: pack format version 3 is newer than this rowplay reads "
        "(1..=2); upgrade rowplay"
    )


def test_version_0_is_refused(tmp_path):
    p = edited(tmp_path, lambda b: b.__setitem__(slice(8, 12), bytes(4)))
    assert attempt(p, "inspect") == (
        f"{p}: pack format version 0 is not a valid version (1..=2)"
    )


@pytest.mark.parametrize(
    "at,value,message",
    [
        (0, b"X", "not a rowpack file (bad magic)"),
        (12, struct.pack(">I", 0x01020304), "bad endian mark 0x04030201"),
        (16, struct.pack("<I", 0), "head_rows 0 outside 1..=1024"),
        (16, struct.pack("<I", 1025), "head_rows 1025 outside 1..=1024"),
        (20, struct.pack("<I", 6), "unknown flag bits 0x6"),
        (100, b"\x01", "reserved header bytes are not zero"),
        (24, struct.pack("<Q", 0), "array count 0 outside 1..=16777216"),
        (24, struct.pack("<Q", (1 << 24) + 1), "array count 16777217 outside 1..=16777216"),
        (32, struct.pack("<Q", 4100), "index offset 4100 is misaligned or inside the header"),
        (40, struct.pack("<Q", 1), "names section of 1 bytes is larger than the names can be"),
        (
            48,
            struct.pack("<Q", (1 << 64) - 1),
            "file is 12384 bytes but its header says 18446744073709551615 "
            "(truncated or overwritten? repack it)",
        ),
    ],
)
def test_each_header_check(rowplay_bin, tmp_path, at, value, message):
    p = edited(tmp_path, lambda b: b.__setitem__(slice(at, at + len(value)), value))
    agree(rowplay_bin, p, message)


ENTRY1 = 12320


@pytest.mark.parametrize(
    "field,value,message",
    [
        (8, struct.pack("<I", 0), "zero rows or LEDs"),
        (12, struct.pack("<I", 0), "zero rows or LEDs"),
        (16, struct.pack("<I", 5), "channels is not 3 or 4"),
        (12, struct.pack("<I", 1 << 19), "row larger than the row limit"),
        (0, struct.pack("<Q", 4097), "body offset not page-aligned after the header"),
        (0, struct.pack("<Q", (1 << 64) - 4096), "body extends past the index"),
        (28, struct.pack("<I", 0), "name length outside 1..=1024"),
        (28, struct.pack("<I", 1025), "name length outside 1..=1024"),
        (24, struct.pack("<I", 2), "name outside the names section"),
    ],
)
def test_each_entry_check(rowplay_bin, tmp_path, field, value, message):
    def edit(b):
        b[ENTRY1 + field : ENTRY1 + field + len(value)] = value

    p = edited(tmp_path, edit, fix_crc=True)
    agree(rowplay_bin, p, f"index entry 1: {message}")


def test_wrong_heads_length(rowplay_bin, tmp_path):
    # Array 1 gets 2 rows instead of 3: its head (and the heads) shrink by
    # one row of 8 bytes, which the header does not say.
    p = edited(tmp_path, lambda b: b.__setitem__(slice(ENTRY1 + 8, ENTRY1 + 12), struct.pack("<I", 2)), fix_crc=True)
    agree(rowplay_bin, p, "heads section is 30 bytes, the index implies 22")


def test_a_control_character_in_a_name(rowplay_bin, tmp_path):
    p = edited(tmp_path, lambda b: b.__setitem__(12353, 0x7F), fix_crc=True)
    agree(rowplay_bin, p, "index entry 1: name is not UTF-8 text")


def test_a_folder(tmp_path):
    d = tmp_path / "lib.rowpack"
    d.mkdir()
    assert attempt(str(d), "verify") == (
        f"{d}: is a folder, not a pack (pack it with `rowplay pack`)"
    )


def test_a_fifo_does_not_hang(tmp_path):
    f = tmp_path / "pipe.rowpack"
    os.mkfifo(f)
    assert attempt(str(f), "inspect") == f"{f}: file of 0 bytes is too short to be a pack"


def test_a_sparse_pack_claiming_16_gib_of_names(rowplay_bin, tmp_path):
    count = 1 << 24
    names_len = count * 1024
    src = bytearray(open(os.path.join(HOSTILE, "pack_bodies_out_of_order.rowpack"), "rb").read())
    hdr = src[:128]
    struct.pack_into("<QQQQ", hdr, 24, count, 4096, names_len, 0)
    p = tmp_path / "sparse.rowpack"
    with open(p, "wb") as f:
        f.truncate(4096 + count * 32 + names_len)
        f.write(hdr)
    agree(rowplay_bin, str(p), f"names section of {names_len} bytes is larger than the names can be")
