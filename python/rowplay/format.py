"""The `.rowpack` header and index, validated as the Rust reader does.

The byte format is specified once, in the repository's
``src/pack/format.rs``; this module reads it with the same limits, the same
checks in the same order, and the same error messages (``FormatError``
carries the text; the library adds the file name), so that one list of
hostile files and their messages (``tests/hostile/expected.tsv``) checks
both readers.

The functions here are pure: they take bytes and return parsed values or
raise ``FormatError``. The index is parsed with numpy, not one Python object
per array, so opening a library of 100,000 arrays stays fast.

Versions: ``VERSION`` is the newest format this package reads. An index
entry's layout is looked up by version in ``ENTRY_LAYOUTS``; a new version
adds its layout there (and its per-array fields, such as a frame rate, to
``Index``).
"""

import re
import struct
import zlib

import numpy as np

MAGIC = b"ROWPACK\0"
#: The newest pack format version this package reads.
VERSION = 1
#: The oldest.
MIN_VERSION = 1
ENDIAN_MARK = 0x01020304
HEADER_LEN = 128
PAGE = 4096
MAX_NAME_LEN = 1024
MAX_HEAD_ROWS = 1024
MAX_ARRAYS = 1 << 24
FLAG_BY_COLUMN = 1
#: The importer's limit on one row (``src/import/mod.rs``: MAX_ROW_BYTES).
MAX_ROW_BYTES = 1 << 20
U32_MAX = (1 << 32) - 1
U64_MAX = (1 << 64) - 1

_HEADER = struct.Struct("<8sIIIIQQQQII")

#: Index entry layout per format version: (entry size, numpy dtype).
ENTRY_LAYOUTS = {
    1: (
        32,
        np.dtype(
            [
                ("body_offset", "<u8"),
                ("rows", "<u4"),
                ("leds", "<u4"),
                ("channels", "<u4"),
                ("body_crc", "<u4"),
                ("name_offset", "<u4"),
                ("name_len", "<u4"),
            ]
        ),
    ),
}

# Rust's char::is_control: general category Cc.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class FormatError(ValueError):
    """The bytes are not a valid pack; the message is the Rust reader's."""


class Header:
    """A validated header."""

    __slots__ = (
        "version",
        "head_rows",
        "flags",
        "count",
        "index_offset",
        "names_len",
        "heads_len",
        "heads_crc",
        "meta_crc",
    )

    def __init__(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)

    @property
    def entry_len(self):
        return ENTRY_LAYOUTS[self.version][0]

    @property
    def meta_len(self):
        """Size of index + names: the "meta" read at open."""
        return self.count * self.entry_len + self.names_len

    @property
    def heads_offset(self):
        return self.index_offset + self.meta_len

    @property
    def by_column(self):
        return bool(self.flags & FLAG_BY_COLUMN)


def unsupported_version(v):
    """The message for a version this package does not read."""
    if v > VERSION:
        return (
            f"pack format version {v} is newer than this rowplay reads "
            f"(reads version {VERSION}); upgrade rowplay"
        )
    return (
        f"pack format version {v} is not supported by this build "
        f"(reads version {VERSION}); repack it"
    )


def parse_header(b, file_len):
    """Validate the header bytes ``b`` against the real file length."""
    if len(b) < HEADER_LEN or file_len < HEADER_LEN:
        raise FormatError(
            f"file of {min(file_len, len(b))} bytes is too short to be a pack"
        )
    (
        magic,
        version,
        mark,
        head_rows,
        flags,
        count,
        index_offset,
        names_len,
        heads_len,
        heads_crc,
        meta_crc,
    ) = _HEADER.unpack_from(b, 0)
    if magic != MAGIC:
        raise FormatError("not a rowpack file (bad magic)")
    if version not in ENTRY_LAYOUTS:
        raise FormatError(unsupported_version(version))
    if mark != ENDIAN_MARK:
        raise FormatError(f"bad endian mark {mark:#010x}")
    if head_rows == 0 or head_rows > MAX_HEAD_ROWS:
        raise FormatError(f"head_rows {head_rows} outside 1..={MAX_HEAD_ROWS}")
    if flags & ~FLAG_BY_COLUMN:
        raise FormatError(f"unknown flag bits {flags:#x}")
    if any(b[64:HEADER_LEN]):
        raise FormatError("reserved header bytes are not zero")
    if count == 0 or count > MAX_ARRAYS:
        raise FormatError(f"array count {count} outside 1..={MAX_ARRAYS}")
    if index_offset < PAGE or index_offset % 8 != 0:
        raise FormatError(
            f"index offset {index_offset} is misaligned or inside the header"
        )
    if names_len < count or names_len > count * MAX_NAME_LEN or names_len > U32_MAX:
        raise FormatError(
            f"names section of {names_len} bytes is larger than the names can be"
        )
    h = Header(
        version=version,
        head_rows=head_rows,
        flags=flags,
        count=count,
        index_offset=index_offset,
        names_len=names_len,
        heads_len=heads_len,
        heads_crc=heads_crc,
        meta_crc=meta_crc,
    )
    # Python integers do not overflow; the Rust reader's checked addition
    # reports u64::MAX as the expected length when the sum overflows u64.
    expected = index_offset + h.meta_len + heads_len
    if expected != file_len:
        if expected > U64_MAX:
            expected = U64_MAX
        raise FormatError(
            f"file is {file_len} bytes but its header says {expected} "
            "(truncated or overwritten? repack it)"
        )
    return h


def meta_crc(header_bytes, meta):
    """CRC-32 of header bytes 0..60 followed by ``meta`` (index + names)."""
    return zlib.crc32(meta, zlib.crc32(header_bytes[:60]))


class Index:
    """The parsed index: one numpy array per field, and the names."""

    __slots__ = (
        "body_offset",
        "rows",
        "leds",
        "channels",
        "body_crc",
        "fps",
        "names",
    )


def parse_index(header, header_bytes, meta):
    """Validate the index and names (``meta``) and return an ``Index``.

    The checks and their order are the Rust reader's: entry by entry, the
    first failing check of the first bad entry is reported; then the heads
    length, then overlapping bodies.
    """
    if len(meta) != header.meta_len or len(header_bytes) < HEADER_LEN:
        raise FormatError(
            f"file is {len(meta)} bytes but its header says {header.meta_len} "
            "(truncated or overwritten? repack it)"
        )
    if meta_crc(header_bytes, meta) != header.meta_crc:
        raise FormatError("header/index CRC mismatch (corrupt pack; repack it)")
    entry_len, dtype = ENTRY_LAYOUTS[header.version]
    n = header.count
    e = np.frombuffer(meta, dtype=dtype, count=n)
    names_sec = memoryview(meta)[n * entry_len :]

    off = e["body_offset"]
    rows = e["rows"].astype(np.uint64)
    leds = e["leds"].astype(np.uint64)
    ch = e["channels"].astype(np.uint64)
    row_bytes = leds * ch
    body_len = rows * row_bytes
    io = np.uint64(header.index_offset)
    name_off = e["name_offset"].astype(np.uint64)
    name_len = e["name_len"].astype(np.uint64)
    # Each check is only meaningful when the ones before it passed for the
    # same entry; a wrapped product on an entry that already failed is never
    # reported, because the earliest failing check is.
    checks = [
        ((rows == 0) | (leds == 0), "zero rows or LEDs"),
        ((ch != 3) & (ch != 4), "channels is not 3 or 4"),
        (row_bytes > MAX_ROW_BYTES, "row larger than the row limit"),
        (
            (off < PAGE) | (off % np.uint64(PAGE) != 0),
            "body offset not page-aligned after the header",
        ),
        (
            (off > io) | (body_len > io - np.minimum(off, io)),
            "body extends past the index",
        ),
        ((name_len == 0) | (name_len > MAX_NAME_LEN), "name length outside 1..=1024"),
        (name_off + name_len > len(names_sec), "name outside the names section"),
    ]
    bad = np.zeros(n, dtype=bool)
    for mask, _ in checks:
        bad |= mask
    first_bad = int(np.argmax(bad)) if bad.any() else n

    names = []
    prev = b""
    offs = e["name_offset"].tolist()
    lens = e["name_len"].tolist()
    for i in range(min(n, first_bad + 1)):
        if i == first_bad:
            for mask, what in checks:
                if mask[i]:
                    raise FormatError(f"index entry {i}: {what}")
        raw = bytes(names_sec[offs[i] : offs[i] + lens[i]])
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            s = None
        if s is None or _CONTROL.search(s):
            raise FormatError(f"index entry {i}: name is not UTF-8 text")
        if i > 0 and raw <= prev:
            raise FormatError(
                f"index entry {i}: names not in strictly ascending order"
            )
        prev = raw
        names.append(s)

    k = np.uint64(header.head_rows)
    heads_len = int((np.minimum(rows, k) * row_bytes).sum(dtype=np.uint64))
    if heads_len != header.heads_len:
        raise FormatError(
            f"heads section is {header.heads_len} bytes, the index implies {heads_len}"
        )
    # Bodies must not overlap: sort (start, end, index) and compare
    # neighbours, exactly as the Rust reader does.
    end = off + body_len
    idx = np.arange(n, dtype=np.uint64)
    order = np.lexsort((idx, end, off))
    s_start, s_end, s_idx = off[order], end[order], idx[order]
    over = s_start[1:] < s_end[:-1]
    if over.any():
        j = int(np.argmax(over))
        a, b = int(s_idx[j]), int(s_idx[j + 1])
        raise FormatError(f"bodies of arrays {min(a, b)} and {max(a, b)} overlap")

    ix = Index()
    ix.body_offset = off.copy()
    ix.rows = e["rows"].copy()
    ix.leds = e["leds"].copy()
    ix.channels = e["channels"].copy()
    ix.body_crc = e["body_crc"].copy()
    ix.fps = None  # version 1 records no per-array frame rate
    ix.names = names
    return ix


def rust_debug_str(s):
    """``s`` quoted as Rust's ``{:?}`` prints a str (for messages)."""
    out = ['"']
    for c in s:
        o = ord(c)
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif o < 0x20 or 0x7F <= o <= 0x9F:
            out.append(f"\\u{{{o:x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)
