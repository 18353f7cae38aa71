"""An open pack: index and heads in memory, one file descriptor.

Opening reads three things with positioned reads, as the Rust reader does:
the header, the index + names, and the heads (the first ``head_rows`` rows
of every array, back to back), into ONE numpy array. So the first rows of
every array are in memory at once, whatever the library size, and nothing
else is: bodies are read with ``os.pread`` when asked for. Nothing is
memory-mapped, so a pack replaced or truncated while open makes later reads
fail instead of crashing the process.
"""

import os
import stat
import zlib

import numpy as np

from . import format as fmt
from .format import FormatError, compact, rust_debug_str

#: Body bytes read per ``os.pread`` when iterating or verifying.
CHUNK = 1 << 16


class PackError(ValueError):
    """A file that is not a valid pack, or an array that fails its CRC.

    ``str(e)`` is the Rust reader's message, ``PATH: what``; ``e.path`` is
    the file and ``e.reason`` the part after the path.
    """

    def __init__(self, path, reason):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def human_bytes(n):
    """``12.3 MiB``-style size, as the Rust messages print it."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / 1024:.1f} KiB"
    return f"{n} B"


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 0


def _pread_into(fd, buf, offset):
    """Fill the writable buffer ``buf`` from ``offset``; return bytes read."""
    mv = memoryview(buf).cast("B")
    got = 0
    while got < len(mv):
        n = os.preadv(fd, [mv[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


class Library:
    """An open ``.rowpack``. Use ``rowplay.open(path)``."""

    def __init__(self, path, heads_budget=None):
        self.path = os.fspath(path)
        shown = os.fsdecode(self.path)
        # O_NONBLOCK: opening a FIFO named like a pack must not wait for a
        # writer; it has no effect on reads of a regular file.
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        self._fd = fd
        try:
            self._load(shown, heads_budget)
        except BaseException:
            self.close()
            raise

    def _load(self, shown, heads_budget):
        fd = self._fd
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise PackError(
                shown, "is a folder, not a pack (pack it with `rowplay pack`)"
            )
        file_len = st.st_size if stat.S_ISREG(st.st_mode) else 0
        try:
            hb = os.pread(fd, fmt.HEADER_LEN, 0) if file_len else b""
            h = fmt.parse_header(hb, file_len)
            budget = _physical_memory() // 4 if heads_budget is None else heads_budget
            if h.heads_len > budget:
                per_row = h.heads_len // h.head_rows
                suggest = min(max(budget // max(per_row, 1), 1), h.head_rows)
                raise PackError(
                    shown,
                    f"the first {h.head_rows} rows of every array need "
                    f"{human_bytes(h.heads_len)} of locked memory, over the budget of "
                    f"{human_bytes(budget)}; repack with --head-rows {suggest} or raise "
                    "--heads-budget",
                )
            meta = np.empty(h.meta_len, dtype=np.uint8)
            if _pread_into(fd, meta, h.index_offset) != h.meta_len:
                raise OSError(f"{shown}: failed to fill whole buffer")
            ix = fmt.parse_index(h, hb, meta.data)
            del meta
            heads = np.empty(h.heads_len, dtype=np.uint8)
            if _pread_into(fd, heads, h.heads_offset) != h.heads_len:
                raise OSError(f"{shown}: failed to fill whole buffer")
            if zlib.crc32(heads) != h.heads_crc:
                raise FormatError("heads CRC mismatch (corrupt first rows; repack it)")
        except FormatError as e:
            raise PackError(shown, str(e)) from None
        heads.flags.writeable = False
        self._shown = shown
        self._header = h
        self._heads = heads
        self._names = ix.names
        self._find = {name: i for i, name in enumerate(ix.names)}
        # Per-array fields as compact arrays (8 or 4 bytes each, not a
        # Python object each): memory per array stays near the pack's own.
        self._body_offset = compact("Q", ix.body_offset)
        self._rows = compact("I", ix.rows)
        self._leds = compact("I", ix.leds)
        self._channels = compact("I", ix.channels)
        self._crc = compact("I", ix.body_crc)
        self._fps = None if ix.fps is None else compact("d", ix.fps)
        k = h.head_rows
        row_bytes = ix.leds.astype(np.uint64) * ix.channels
        sizes = np.minimum(ix.rows, k).astype(np.uint64) * row_bytes
        starts = np.zeros(len(sizes), dtype=np.uint64)
        np.cumsum(sizes[:-1], out=starts[1:])
        self._head_start = compact("Q", starts)
        # When every array has the same row layout (the usual library), the
        # heads are also one [rows, leds, channels] array, and a head row is
        # a single index into it: the fastest first row numpy can give.
        self._heads3 = None
        if (ix.leds == ix.leds[0]).all() and (ix.channels == ix.channels[0]).all():
            self._heads3 = heads.reshape(-1, int(ix.leds[0]), int(ix.channels[0]))
            self._head_row = compact("Q", starts // row_bytes[0])

    # ------------------------------------------------------------ the library

    def close(self):
        """Close the file descriptor (arrays read after this fail)."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_fd", -1) >= 0:
            self.close()

    def __len__(self):
        return len(self._names)

    def __contains__(self, name):
        return name in self._find

    def __iter__(self):
        """The arrays, in index (name) order."""
        return (Array(self, i) for i in range(len(self._names)))

    def __getitem__(self, key):
        """``lib["name"]`` or ``lib[index]`` -> ``Array``."""
        i = self._find.get(key)  # names are str, so an int is never found
        if i is not None:
            return Array(self, i)
        if isinstance(key, str):
            raise KeyError(key)
        i = key.__index__()
        n = len(self._names)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"array index {key} out of range (0..{n})")
        return Array(self, i)

    def __repr__(self):
        return f"<rowplay.Library {self._shown!r}: {len(self)} arrays>"

    @property
    def names(self):
        """Array names in index order (ascending by UTF-8 bytes)."""
        return list(self._names)

    @property
    def version(self):
        """The pack's format version."""
        return self._header.version

    @property
    def head_rows(self):
        """Rows of every array kept in memory (``--head-rows``)."""
        return self._header.head_rows

    @property
    def by_column(self):
        """Whether arrays are stored transposed (``--by-column``)."""
        return self._header.by_column

    @property
    def heads_bytes(self):
        """Bytes of the in-memory heads."""
        return self._heads.nbytes

    def fileno(self):
        return self._fd

    def verify(self):
        """Check every body against its CRC, like ``rowplay verify``.

        Returns the number of arrays checked; raises ``PackError`` with one
        line per bad array (the lines ``rowplay verify`` prints) otherwise.
        """
        buf = bytearray(CHUNK)
        bad = []
        for i, name in enumerate(self._names):
            try:
                ok = self._body_crc(i, buf) == self._crc[i]
            except OSError as e:
                bad.append(f"array {rust_debug_str(name)} cannot be read: {e}")
                continue
            if not ok:
                bad.append(
                    f"array {rust_debug_str(name)} fails its CRC (corrupt body; repack it)"
                )
        if bad:
            raise PackError(self._shown, f"\n{self._shown}: ".join(bad))
        return len(self._names)

    # ------------------------------------------------------------ bodies

    def _body_len(self, i):
        return self._rows[i] * self._leds[i] * self._channels[i]

    def _read(self, i, offset, n):
        """``n`` bytes of body ``i`` from ``offset`` into it, as bytes."""
        b = os.pread(self._fd, n, self._body_offset[i] + offset)
        while len(b) < n:
            more = os.pread(self._fd, n - len(b), self._body_offset[i] + offset + len(b))
            if not more:
                raise OSError(
                    f"{self._shown}: array {rust_debug_str(self._names[i])}: "
                    "the file ends inside its body (truncated while open?)"
                )
            b += more
        return b

    def _body_crc(self, i, buf):
        mv = memoryview(buf)
        total = self._body_len(i)
        crc, at = 0, 0
        while at < total:
            n = min(total - at, len(mv))
            got = _pread_into(self._fd, mv[:n], self._body_offset[i] + at)
            if got != n:
                raise OSError("failed to fill whole buffer")
            crc = zlib.crc32(mv[:n], crc)
            at += n
        return crc

    def _crc_error(self, i):
        # The message `rowplay export` gives for a corrupt body.
        return PackError(
            self._shown,
            f"array {rust_debug_str(self._names[i])} fails its CRC (corrupt body; repack)",
        )


class Array:
    """One array of a library: a handle, nothing is read until asked."""

    __slots__ = ("_lib", "index")

    def __init__(self, lib, i):
        self._lib = lib
        #: Position in the index.
        self.index = i

    @property
    def name(self):
        return self._lib._names[self.index]

    @property
    def rows(self):
        return self._lib._rows[self.index]

    @property
    def leds(self):
        return self._lib._leds[self.index]

    @property
    def channels(self):
        return self._lib._channels[self.index]

    @property
    def shape(self):
        """``(rows, leds, channels)``."""
        lib, i = self._lib, self.index
        return (lib._rows[i], lib._leds[i], lib._channels[i])

    @property
    def fps(self):
        """The array's own frame rate, if the pack records one, else None."""
        f = self._lib._fps
        if f is None:
            return None
        v = f[self.index]
        return None if v != v else float(v)  # NaN: no rate of its own

    def __len__(self):
        return self.rows

    def __repr__(self):
        return f"<rowplay.Array {self.name!r} {self.shape}>"

    def _head(self, r):
        """Head row ``r`` (``r < min(rows, head_rows)``), a view."""
        lib = self._lib
        i = self.index
        h3 = lib._heads3
        if h3 is not None:
            return h3[lib._head_row[i] + r]
        leds, ch = lib._leds[i], lib._channels[i]
        rb = leds * ch
        s = lib._head_start[i] + r * rb
        return lib._heads[s : s + rb].reshape(leds, ch)

    def row(self, r):
        """Row ``r`` as a read-only numpy uint8 array ``[leds, channels]``.

        Rows below ``head_rows`` are views of the in-memory heads (no I/O);
        the others are one ``os.pread`` each.
        """
        lib = self._lib
        i = self.index
        rows = lib._rows[i]
        if r < 0:
            r += rows
        if not 0 <= r < rows:
            raise IndexError(f"row {r} out of range (0..{rows})")
        if r < lib._header.head_rows:
            return self._head(r)
        leds, ch = lib._leds[i], lib._channels[i]
        rb = leds * ch
        b = lib._read(i, r * rb, rb)
        return np.frombuffer(b, dtype=np.uint8).reshape(leds, ch)

    __getitem__ = row

    def __iter__(self):
        """Rows in order: the head rows from memory at once, then the body.

        The body is read with ``os.pread`` in chunks of about 64 KiB, and the
        kernel is asked (``posix_fadvise WILLNEED``) to bring in the next
        chunk while this one is played: a read-ahead of one chunk, whatever
        the array's length. The rows yielded are checked against the body's
        CRC at the end; a mismatch raises ``PackError`` after the last row.
        """
        lib = self._lib
        h3 = lib._heads3
        if h3 is not None:
            # Row 0 with the least work: one index into the heads. The rest
            # is another generator, so that this one stays small and quick
            # to create and to start.
            yield h3[lib._head_row[self.index]]
        else:
            yield self._head(0)
        yield from _rows_after_0(self)

    def read(self):
        """The whole array, ``[rows, leds, channels]`` uint8 (a new,
        writable array), CRC-checked like ``rowplay export``."""
        lib = self._lib
        i = self.index
        out = np.empty(self.shape, dtype=np.uint8)
        n = out.nbytes
        if _pread_into(lib._fd, out, lib._body_offset[i]) != n:
            raise OSError(
                f"{lib._shown}: array {rust_debug_str(lib._names[i])}: "
                "the file ends inside its body (truncated while open?)"
            )
        if zlib.crc32(out) != lib._crc[i]:
            raise lib._crc_error(i)
        return out


def _willneed(lib, i, first, n):
    """Ask the kernel to start reading rows ``first..first+n`` of body ``i``."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None and n > 0:
        rb = lib._leds[i] * lib._channels[i]
        try:
            advise(lib._fd, lib._body_offset[i] + first * rb, n * rb, os.POSIX_FADV_WILLNEED)
        except OSError:
            pass


def _rows_after_0(arr):
    """Rows 1.. of ``arr`` (see ``Array.__iter__``)."""
    lib = arr._lib
    i = arr.index
    leds, ch, rows = lib._leds[i], lib._channels[i], lib._rows[i]
    rb = leds * ch
    k = min(rows, lib._header.head_rows)
    chunk_rows = max(1, CHUNK // rb)
    # Row 0 is out; now start the disk while the head rows play.
    _willneed(lib, i, k, min(chunk_rows, rows - k))
    s = lib._head_start[i]
    crc = zlib.crc32(lib._heads[s : s + k * rb])
    for r in range(1, k):
        yield arr._head(r)
    r = k
    while r < rows:
        n = min(chunk_rows, rows - r)
        b = lib._read(i, r * rb, n * rb)
        _willneed(lib, i, r + n, min(chunk_rows, rows - r - n))
        crc = zlib.crc32(b, crc)
        block = np.frombuffer(b, dtype=np.uint8).reshape(n, leds, ch)
        for j in range(n):
            yield block[j]
        r += n
    if crc != lib._crc[i]:
        raise lib._crc_error(i)


def open(path, heads_budget=None):  # noqa: A001 - the package's entry point
    """Open and validate a ``.rowpack``; returns a ``Library``.

    Raises ``PackError`` (a ``ValueError``) with the Rust reader's message
    for a file that is not a valid pack, ``OSError`` when it cannot be read.
    ``heads_budget``: most bytes the heads may take (default a quarter of
    physical memory, as ``rowplay play``).
    """
    return Library(path, heads_budget)
