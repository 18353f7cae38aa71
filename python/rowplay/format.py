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
from array import array

import numpy as np

MAGIC = b"ROWPACK\0"
#: The newest pack format version this package reads.
VERSION = 2
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

# Version 1's index entry, field by field (src/pack/format.rs).
_V1_FIELDS = [
    ("body_offset", "<u8"),
    ("rows", "<u4"),
    ("leds", "<u4"),
    ("channels", "<u4"),
    ("body_crc", "<u4"),
    ("name_offset", "<u4"),
    ("name_len", "<u4"),
]

#: Index entry layout per format version: (entry size, numpy dtype).
#: Version 2 is version 1 plus each array's frame period (0 = none).
ENTRY_LAYOUTS = {
    1: (32, np.dtype(_V1_FIELDS)),
    2: (40, np.dtype(_V1_FIELDS + [("period_ns", "<u8")])),
}
#: Shortest and longest frame period an entry may carry (1 ms, 1 s).
MIN_PERIOD_NS = 1_000_000
MAX_PERIOD_NS = 1_000_000_000

# Entries checked per numpy pass.
_BLOCK = 4096

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
            f"(1..={VERSION}); upgrade rowplay"
        )
    return f"pack format version {v} is not a valid version (1..={VERSION})"


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
    io = np.uint64(header.index_offset)
    names_len = len(names_sec)

    def checks(lo, hi):
        """Masks of each entry check, in the Rust reader's order, for
        entries lo..hi. Each check is only meaningful when the ones before
        it passed for the same entry; a wrapped product on an entry that
        already failed is never reported, because the earliest is."""
        c = e[lo:hi]
        rows = c["rows"].astype(np.uint64)
        leds = c["leds"].astype(np.uint64)
        ch = c["channels"].astype(np.uint64)
        o = c["body_offset"]
        row_bytes = leds * ch
        name_len = c["name_len"].astype(np.uint64)
        yield (rows == 0) | (leds == 0), "zero rows or LEDs"
        yield (ch != 3) & (ch != 4), "channels is not 3 or 4"
        yield row_bytes > MAX_ROW_BYTES, "row larger than the row limit"
        yield (o < PAGE) | (o % np.uint64(PAGE) != 0), "body offset not page-aligned after the header"
        yield (o > io) | (rows * row_bytes > io - np.minimum(o, io)), "body extends past the index"
        if "period_ns" in c.dtype.names:
            p = c["period_ns"]
            yield (p != 0) & ((p < MIN_PERIOD_NS) | (p > MAX_PERIOD_NS)), (
                "frame period outside 1 ms..=1 s"
            )
        yield (name_len == 0) | (name_len > MAX_NAME_LEN), "name length outside 1..=1024"
        yield (
            c["name_offset"].astype(np.uint64) + name_len > names_len,
            "name outside the names section",
        )

    # In blocks, so that the temporaries stay small whatever the count.
    first_bad = n
    for lo in range(0, n, _BLOCK):
        bad = np.zeros(min(n, lo + _BLOCK) - lo, dtype=bool)
        for mask, _ in checks(lo, lo + _BLOCK):
            bad |= mask
        if bad.any():
            first_bad = lo + int(np.argmax(bad))
            break

    names = _names(names_sec, e, first_bad)
    if first_bad < n:
        for mask, what in checks(first_bad, first_bad + 1):
            if mask[0]:
                raise FormatError(f"index entry {first_bad}: {what}")

    k = np.uint64(header.head_rows)
    rows = e["rows"].astype(np.uint64)
    row_bytes = e["leds"].astype(np.uint64) * e["channels"]
    heads_len = int((np.minimum(rows, k) * row_bytes).sum(dtype=np.uint64))
    if heads_len != header.heads_len:
        raise FormatError(
            f"heads section is {header.heads_len} bytes, the index implies {heads_len}"
        )
    # Bodies must not overlap: sort by (start, end, index) and compare
    # neighbours, as the Rust reader does (lexsort is stable, so equal
    # spans stay in index order).
    end = off + rows * row_bytes
    del rows, row_bytes
    order = np.lexsort((end, off))
    s_end = end[order]
    del end
    over = off[order][1:] < s_end[:-1]
    if over.any():
        j = int(np.argmax(over))
        a, b = int(order[j]), int(order[j + 1])
        raise FormatError(f"bodies of arrays {min(a, b)} and {max(a, b)} overlap")
    del order, s_end, over

    ix = Index()
    ix.body_offset = off.copy()
    ix.rows = e["rows"].copy()
    ix.leds = e["leds"].copy()
    ix.channels = e["channels"].copy()
    ix.body_crc = e["body_crc"].copy()
    if "period_ns" in e.dtype.names:
        p = e["period_ns"].astype(np.float64)
        # 0 = no rate of its own: NaN, reported as None by Array.fps.
        with np.errstate(divide="ignore"):
            ix.fps = np.where(p == 0, np.nan, 1e9 / np.where(p == 0, 1, p))
    else:
        ix.fps = None  # version 1 records no per-array frame rate
    ix.names = names
    return ix


def compact(code, a):
    """A numpy integer array as a stdlib ``array`` of type ``code``: 4 or 8
    bytes per element instead of a Python object, and indexing it gives a
    plain int."""
    out = array(code)
    a = np.ascontiguousarray(a, dtype=np.dtype(code).newbyteorder("="))
    out.frombytes(memoryview(a).cast("B"))
    return out


def _names(names_sec, e, upto):
    """Decode and check the names of entries ``0..upto``, all of which
    passed their numeric checks (so their names lie inside the section)."""
    raw = bytes(names_sec)
    # Python ints made one at a time, not a list of them.
    offs = compact("I", e["name_offset"][:upto])
    ends = compact("Q", e["name_offset"][:upto].astype(np.uint64) + e["name_len"][:upto])
    names = []
    bad_text = None
    if raw.isascii() and not _CONTROL.search(raw.decode("ascii")):
        # Every name is valid text; one decode for all of them.
        text = raw.decode("ascii")
        names = [text[o:x] for o, x in zip(offs, ends)]
    else:
        for i, (o, x) in enumerate(zip(offs, ends)):
            try:
                name = raw[o:x].decode("utf-8")
            except UnicodeDecodeError:
                name = None
            if name is None or _CONTROL.search(name):
                bad_text = i
                break
            names.append(name)
    # Entry by entry as the Rust reader: a name that is not text, or not
    # greater than the one before (str order of valid UTF-8 is byte order).
    for i in range(1, len(names)):
        if names[i] <= names[i - 1]:
            raise FormatError(f"index entry {i}: names not in strictly ascending order")
    if bad_text is not None:
        raise FormatError(f"index entry {bad_text}: name is not UTF-8 text")
    return names


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
