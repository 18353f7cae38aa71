"""The reader against packs written by the real `rowplay pack`: every row of
every kind of array equals the .npy after rowplay's documented conversion
(src/import/npy.rs), and equals what `rowplay export` gives back."""

import os

import numpy as np
import pytest

import rowplay
from conftest import run

RNG = np.random.default_rng(18)


def converted(a, float_max=1):
    """rowplay's conversion to u8, [rows, leds, channels] (src/import/npy.rs)."""
    a = np.asarray(a)
    if a.dtype == np.bool_:
        u = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.integer):
        u = np.clip(a.astype(np.int64) if a.dtype != np.uint64 else a, 0, 255).astype(np.uint8)
    else:
        f = a.astype(np.float64)
        if float_max == 1:
            f = f * 255.0
        u = np.clip(np.round(f), 0, 255).astype(np.uint8)
    if u.ndim == 2 and u.shape[1] in (3, 4):
        u = u[None]  # one row of leds pixels
    elif u.ndim == 2:
        u = np.repeat(u[:, :, None], 3, axis=2)  # grey
    return u


def kinds():
    """name -> array: every input kind rowplay accepts."""
    k = {
        "u8_rgb": RNG.integers(0, 256, (40, 7, 3), dtype=np.uint8),
        "u8_rgbw": RNG.integers(0, 256, (9, 5, 4), dtype=np.uint8),
        "one_row": RNG.integers(0, 256, (11, 3), dtype=np.uint8),
        "one_row_rgbw": RNG.integers(0, 256, (6, 4), dtype=np.uint8),
        "grey": RNG.integers(0, 256, (13, 6), dtype=np.uint8),
        "grey_bool": RNG.integers(0, 2, (5, 8)).astype(bool),
        "bool_rgb": RNG.integers(0, 2, (4, 3, 3)).astype(bool),
        "i8": RNG.integers(-128, 128, (10, 4, 3), dtype=np.int8),
        "i16_be": RNG.integers(-1000, 1000, (10, 4, 3)).astype(">i2"),
        "u16": RNG.integers(0, 1000, (10, 4, 3)).astype("<u2"),
        "i32": RNG.integers(-(1 << 31), (1 << 31) - 1, (10, 4, 3)).astype(np.int32),
        "u32_be": RNG.integers(0, 1 << 32, (3, 4, 3)).astype(">u4"),
        "i64": RNG.integers(-(1 << 62), 1 << 62, (3, 4, 3)).astype(np.int64),
        "u64": RNG.integers(0, 1 << 63, (3, 4, 3), dtype=np.uint64),
        "f16": RNG.random((12, 5, 3)).astype(np.float16),
        "f32": (RNG.random((12, 5, 3)) * 1.4 - 0.2).astype(np.float32),
        "f64_be": RNG.random((12, 5, 4)).astype(">f8"),
        "f64_inf": np.array([[[np.inf, -np.inf, 0.5]]]),
        "fortran_u8": np.asfortranarray(RNG.integers(0, 256, (17, 6, 3), dtype=np.uint8)),
        "fortran_f32_rgbw": np.asfortranarray(RNG.random((7, 3, 4)).astype(np.float32)),
        "fortran_grey": np.asfortranarray(RNG.integers(0, 256, (9, 4), dtype=np.uint8)),
        "single_row_3d": RNG.integers(0, 256, (1, 10, 3), dtype=np.uint8),
        "long": RNG.integers(0, 256, (3000, 30, 3), dtype=np.uint8),
        "sub/dir/nested": RNG.integers(0, 256, (20, 2, 3), dtype=np.uint8),
    }
    return k


def check_array(arr, want, head_rows):
    assert arr.shape == want.shape
    assert (arr.rows, arr.leds, arr.channels) == want.shape
    assert len(arr) == want.shape[0]
    assert arr.fps is None
    for r in range(arr.rows):
        row = arr.row(r)
        assert row.dtype == np.uint8 and row.shape == want.shape[1:]
        np.testing.assert_array_equal(row, want[r])
    rows = list(arr)
    assert len(rows) == arr.rows
    for r, row in enumerate(rows):
        assert row.dtype == np.uint8 and row.shape == want.shape[1:]
        np.testing.assert_array_equal(row, want[r])
    whole = arr.read()
    assert whole.dtype == np.uint8 and whole.flags.writeable and whole.flags.c_contiguous
    np.testing.assert_array_equal(whole, want)
    np.testing.assert_array_equal(arr.row(-1), want[-1])


@pytest.mark.parametrize("head_rows", [1, 8, 64])
@pytest.mark.parametrize("by_column", [False, True])
def test_every_kind_round_trips(pack, rowplay_bin, tmp_path, head_rows, by_column):
    arrays = kinds()
    opts = ["--head-rows", head_rows] + (["--by-column"] if by_column else [])
    p = pack(arrays, *opts)
    with rowplay.open(p) as lib:
        assert len(lib) == len(arrays)
        assert lib.names == sorted(arrays, key=lambda n: n.encode())
        assert lib.head_rows == head_rows and lib.by_column == by_column
        assert lib.verify() == len(arrays)
        for name, a in arrays.items():
            want = converted(a)
            if by_column:
                want = np.ascontiguousarray(want.transpose(1, 0, 2))
            arr = lib[name]
            check_array(arr, want, head_rows)
            # What the binary gives back is the same array.
            out = tmp_path / "export.npy"
            run(rowplay_bin, "export", p, name, "-o", out)
            np.testing.assert_array_equal(np.load(out), arr.read())


def test_float_max_255(pack):
    a = RNG.random((6, 4, 3)) * 300 - 20
    p = pack({"f": a}, "--float-max", "255")
    with rowplay.open(p) as lib:
        check_array(lib["f"], converted(a, float_max=255), 8)


def test_the_committed_numpy_fixtures(rowplay_bin, tmp_path):
    """The fixtures numpy wrote (tests/fixtures/npy), against the expected
    bytes committed beside them."""
    from conftest import REPO

    fx = os.path.join(REPO, "tests", "fixtures")
    manifest = os.path.join(fx, "expected", "manifest.txt")
    checked = 0
    for line in open(manifest):
        if line.startswith("#") or not line.strip():
            continue
        path, name, rows, leds, ch, float_max, expected = line.split()
        if not path.startswith("npy/"):
            continue
        out = tmp_path / f"{checked}.rowpack"
        opts = ["--float-max", "255"] if float_max == "full" else []
        run(rowplay_bin, "pack", os.path.join(fx, path), "-o", out, *opts)
        want = np.fromfile(os.path.join(fx, "expected", expected), dtype=np.uint8)
        want = want.reshape(int(rows), int(leds), int(ch))
        with rowplay.open(out) as lib:
            (arr,) = [lib[0]]
            np.testing.assert_array_equal(arr.read(), want)
            np.testing.assert_array_equal(np.stack(list(arr)), want)
        checked += 1
    assert checked >= 20


def test_lookup_and_container_behaviour(pack):
    arrays = {n: RNG.integers(0, 256, (3, 2, 3), dtype=np.uint8) for n in ("b", "a", "é", "c/d")}
    p = pack(arrays)
    with rowplay.open(p) as lib:
        assert lib.names == ["a", "b", "c/d", "é"]
        assert "a" in lib and "zz" not in lib
        assert lib[1].name == "b" and lib[-1].name == "é" and lib["c/d"].index == 2
        assert [a.name for a in lib] == lib.names
        with pytest.raises(KeyError):
            lib["zz"]
        with pytest.raises(IndexError):
            lib[4]
        with pytest.raises(IndexError):
            lib["a"].row(3)
        assert lib["a"].row(0).flags.writeable is False  # a view of the heads


def test_one_file_descriptor_whatever_the_size(pack):
    def fds():
        return len(os.listdir("/proc/self/fd"))

    small = pack({"a": np.zeros((2, 1, 3), np.uint8)})
    big = pack({f"w{i:04d}": np.full((20, 3, 3), i % 256, np.uint8) for i in range(500)})
    for p in (small, big):
        before = fds()
        lib = rowplay.open(p)
        for arr in lib:
            arr.row(0)
            list(arr)
            arr.read()
        assert fds() == before + 1
        lib.close()
        assert fds() == before
    before = fds()
    with rowplay.open(big) as lib:
        fd = lib.fileno()
        assert fds() == before + 1
    assert fds() == before
    with pytest.raises(OSError):
        os.fstat(fd)


def test_iteration_yields_head_rows_without_io_then_bounded_reads(pack, monkeypatch):
    a = RNG.integers(0, 256, (5000, 30, 3), dtype=np.uint8)
    p = pack({"w": a}, "--head-rows", "8")
    lib = rowplay.open(p)
    reads = []
    real = os.pread

    def pread(fd, n, off):
        reads.append(n)
        return real(fd, n, off)

    monkeypatch.setattr(rowplay.library.os, "pread", pread)
    it = iter(lib["w"])
    for r in range(8):
        np.testing.assert_array_equal(next(it), a[r])
    assert reads == [], "head rows need no read"
    np.testing.assert_array_equal(next(it), a[8])
    assert len(reads) == 1 and reads[0] <= rowplay.library.CHUNK
    rest = list(it)
    assert len(rest) == 5000 - 9
    np.testing.assert_array_equal(np.stack(rest), a[9:])
    assert max(reads) <= rowplay.library.CHUNK
    assert sum(reads) == (5000 - 8) * 90
    lib.close()


def test_a_corrupt_body_is_named(pack, tmp_path):
    a = RNG.integers(0, 256, (50, 4, 3), dtype=np.uint8)
    p = pack({"x": a, "y": a})
    b = bytearray(p.read_bytes())
    with rowplay.open(p) as lib:
        off = lib._body_offset[1]
    b[off + 40 * 12] ^= 1  # a row past the heads of "y"
    p.write_bytes(bytes(b))
    with rowplay.open(p) as lib:
        with pytest.raises(rowplay.PackError) as e:
            lib.verify()
        assert str(e.value) == f'{p}: array "y" fails its CRC (corrupt body; repack it)'
        with pytest.raises(rowplay.PackError) as e:
            lib["y"].read()
        assert str(e.value) == f'{p}: array "y" fails its CRC (corrupt body; repack)'
        rows = []
        with pytest.raises(rowplay.PackError):
            for row in lib["y"]:
                rows.append(row)
        assert len(rows) == 50, "every row is yielded, then the CRC is checked"
        np.testing.assert_array_equal(lib["x"].read(), a)


def test_a_pack_truncated_while_open(pack):
    a = RNG.integers(0, 256, (400, 30, 3), dtype=np.uint8)
    p = pack({"x": a})
    with rowplay.open(p) as lib:
        os.truncate(p, 8192)
        np.testing.assert_array_equal(lib["x"].row(0), a[0])  # from memory
        with pytest.raises(OSError):
            lib["x"].read()
        with pytest.raises(OSError):
            lib["x"].row(399)


def test_heads_over_budget(pack, rowplay_bin):
    p = pack({"x": np.zeros((100, 30, 3), np.uint8)}, "--head-rows", "100")
    with pytest.raises(rowplay.PackError) as e:
        rowplay.open(p, heads_budget=1000)
    assert e.value.reason == (
        "the first 100 rows of every array need 8.8 KiB of locked memory, over the "
        "budget of 1000 B; repack with --head-rows 11 or raise --heads-budget"
    )
    r = run(rowplay_bin, "play", p, "--heads-budget", 1000, "--output", "null",
            "--frames", 1, "--rt-priority", 0, check=False)
    assert (r.returncode, r.stderr) == (1, f"error: {e.value}\n")


def test_version_2_packs_carry_each_arrays_rate(tmp_path, rowplay_bin):
    """`rowplay pack --fps` and `.fseq` step times are read back as `.fps`,
    rows as the binary exports them."""
    d = tmp_path / "in"
    d.mkdir()
    a = RNG.integers(0, 256, (30, 4, 3), dtype=np.uint8)
    np.save(d / "a.npy", a)
    pack = tmp_path / "p.rowpack"
    run(rowplay_bin, "pack", d, "-o", pack, "--fps", "29.97")
    with rowplay.open(str(pack)) as lib:
        assert lib.version == 2
        assert lib["a"].fps == pytest.approx(29.97, rel=1e-6)
        np.testing.assert_array_equal(lib["a"].read(), a)
    fseq = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "fseq")
    src = sorted(f for f in os.listdir(fseq) if f.endswith(".fseq"))[0]
    pack = tmp_path / "f.rowpack"
    run(rowplay_bin, "pack", os.path.join(fseq, src), "-o", pack)
    exported = tmp_path / "f.npy"
    with rowplay.open(str(pack)) as lib:
        arr = lib[0]
        assert arr.fps is not None and arr.fps > 0
        run(rowplay_bin, "export", pack, arr.name, "-o", exported)
        np.testing.assert_array_equal(arr.read(), np.load(exported))
    # Version 1 (no rates) still reads, with fps None.
    pack = tmp_path / "v1.rowpack"
    run(rowplay_bin, "pack", d, "-o", pack)
    with rowplay.open(str(pack)) as lib:
        assert lib.version == 1 and lib["a"].fps is None
