//! `.npy` reading and writing.
//!
//! # What is accepted
//!
//! Everything real numpy writes with `np.save` / `np.lib.format.write_array`:
//!
//! - format versions 1.0, 2.0 and 3.0 (3.0 has a UTF-8 header), with any
//!   header length (numpy < 1.14 did not pad the header to 64 bytes);
//! - `descr` of `|b1` (bool), `u1`/`i1`, `u2`/`i2`/`u4`/`i4`/`u8`/`i8` and
//!   `f2`/`f4`/`f8`, little (`<`) or big (`>`) endian (`|` for one-byte
//!   types; `=` and no prefix mean native order);
//! - `fortran_order` True or False (Fortran order is converted to C order);
//! - shapes `[rows, leds, 3]` (RGB), `[rows, leds, 4]` (RGBW), `[leds, 3]`
//!   and `[leds, 4]` (any 2-D array whose last dimension is 3 or 4 is ONE row
//!   of `leds` pixels), and any other 2-D `[rows, leds]`, which is grey and
//!   is replicated to R, G and B.
//!
//! Object, string, complex, datetime and structured dtypes, other ranks and
//! zero-sized dimensions are rejected with an error that names them.
//!
//! # Conversion to u8
//!
//! - integers are clamped to 0..=255 (negative values become 0);
//! - bool is 0 or 255;
//! - floats are taken as 0..1 and multiplied by 255 (in f64), unless
//!   [`FloatMax::Full`] (`--float-max 255`) says they already are 0..255;
//!   then they are rounded half to even (exactly like `np.round`) and
//!   clamped to 0..=255. +inf becomes 255 and -inf 0; NaN is an error that
//!   names the C-order flat index of the first NaN.
//!
//! # Limits
//!
//! Sizes are computed with checked arithmetic in u64 and then checked to fit
//! `usize`, so a header claiming a huge array fails cleanly on a 32-bit Pi
//! ([`NpyError::TooLarge`]) and as [`NpyError::Truncated`] on 64-bit hosts;
//! nothing is allocated from a header claim before the data is known to be
//! present. `rows` must fit u32 and one output row (`leds * channels`
//! bytes) must be at most [`MAX_ROW_BYTES`].

use std::fmt;
use std::io::{self, Write};

use super::{Array, FloatMax, ImportOptions, MAX_ROW_BYTES};

/// The 6 magic bytes every `.npy` starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Magic + major + minor version bytes.
const PREAMBLE_LEN: usize = 8;
/// numpy >= 1.14 pads the header so the data starts at a multiple of this.
const DATA_ALIGN: usize = 64;
/// Nesting limit for the header parser: real headers nest at most 3 deep
/// (a structured descr: list of tuples of tuples). The limit keeps a
/// hostile `((((...` from overflowing the stack.
const MAX_NESTING: usize = 16;

/// A malformed or unsupported `.npy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpyError {
    /// The file is empty.
    Empty,
    /// The file does not start with `\x93NUMPY`.
    BadMagic,
    /// The file ends inside the fixed-size preamble.
    TooShort {
        /// Length of the file.
        file_len: u64,
    },
    /// A format version other than 1.0, 2.0 or 3.0.
    UnsupportedVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The header length field points past the end of the file.
    HeaderPastEnd {
        /// Claimed header length.
        header_len: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A version 3.0 header that is not valid UTF-8.
    HeaderNotUtf8,
    /// The header is not a Python dict literal; carries what was expected
    /// and the byte offset (within the header) where it was not found.
    HeaderNotDict {
        /// What the parser expected.
        expected: &'static str,
        /// Byte offset inside the header text.
        offset: usize,
    },
    /// A required key (`descr`, `fortran_order`, `shape`) is missing.
    MissingKey(&'static str),
    /// A key other than the three numpy writes, or one given twice.
    UnexpectedKey(String),
    /// `descr` is not a dtype string this reader understands.
    BadDescr(String),
    /// `descr` is a real numpy dtype that cannot be pixels (object, string,
    /// complex, datetime, structured, ...).
    UnsupportedDtype(String),
    /// `fortran_order` is not `True` or `False`.
    BadFortranOrder(String),
    /// `shape` is not a tuple of non-negative integers.
    BadShapeValue(String),
    /// The shape is not one of the accepted shapes, or has a zero dimension.
    BadShape(Vec<u64>),
    /// More rows than fit u32.
    TooManyRows(u64),
    /// One output row (`leds * channels` bytes) exceeds [`MAX_ROW_BYTES`].
    RowTooLarge {
        /// Bytes in one output row.
        bytes: u64,
    },
    /// The array does not fit this machine's address space.
    TooLarge {
        /// Size of the array in bytes.
        bytes: u64,
    },
    /// The data is shorter than the header says.
    Truncated {
        /// Data bytes the header implies.
        expected: u64,
        /// Data bytes present.
        actual: u64,
    },
    /// There are bytes after the data the header describes.
    TrailingBytes {
        /// Data bytes the header implies.
        expected: u64,
        /// Data bytes present.
        actual: u64,
    },
    /// A float element is NaN.
    Nan {
        /// C-order flat index of the first NaN.
        index: u64,
    },
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHAPES: &str = "accepted shapes: [rows, leds, 3], [rows, leds, 4], \
                              [leds, 3], [leds, 4], [rows, leds] (grey)";
        match self {
            NpyError::Empty => write!(f, "file is empty; re-save it with np.save"),
            NpyError::BadMagic => write!(
                f,
                "not a .npy file (does not start with \\x93NUMPY); save it with np.save"
            ),
            NpyError::TooShort { file_len } => write!(
                f,
                "file of {file_len} bytes ends inside the .npy preamble; the file is cut short"
            ),
            NpyError::UnsupportedVersion { major, minor } => write!(
                f,
                ".npy format version {major}.{minor} is not supported (1.0, 2.0, 3.0 are)"
            ),
            NpyError::HeaderPastEnd {
                header_len,
                file_len,
            } => write!(
                f,
                "header of {header_len} bytes runs past the end of the {file_len}-byte file; \
                 the file is cut short"
            ),
            NpyError::HeaderNotUtf8 => write!(f, "version 3.0 header is not valid UTF-8"),
            NpyError::HeaderNotDict { expected, offset } => write!(
                f,
                "header is not a Python dict literal: expected {expected} at header byte {offset}"
            ),
            NpyError::MissingKey(k) => write!(f, "header has no '{k}' key"),
            NpyError::UnexpectedKey(k) => write!(
                f,
                "header has unexpected or repeated key {k:?} (only 'descr', \
                 'fortran_order', 'shape' are allowed)"
            ),
            NpyError::BadDescr(d) => write!(f, "unknown dtype descr {d:?}"),
            NpyError::UnsupportedDtype(d) => write!(
                f,
                "dtype {d} cannot be pixels; convert the array to uint8, an integer, \
                 bool or float type"
            ),
            NpyError::BadFortranOrder(v) => {
                write!(f, "'fortran_order' is {v}, expected True or False")
            }
            NpyError::BadShapeValue(v) => write!(
                f,
                "'shape' is {v}, expected a tuple of non-negative integers"
            ),
            NpyError::BadShape(s) => write!(f, "shape {s:?} is not supported; {SHAPES}"),
            NpyError::TooManyRows(r) => {
                write!(
                    f,
                    "{r} rows is too many (at most {}); split the array",
                    u32::MAX
                )
            }
            NpyError::RowTooLarge { bytes } => write!(
                f,
                "one row is {bytes} bytes, more than the {MAX_ROW_BYTES}-byte limit; \
                 use fewer LEDs per array"
            ),
            NpyError::TooLarge { bytes } => write!(
                f,
                "array of {bytes} bytes is too large for this machine; split it"
            ),
            NpyError::Truncated { expected, actual } => write!(
                f,
                "data is {actual} bytes but the header says {expected}; the file is cut short"
            ),
            NpyError::TrailingBytes { expected, actual } => write!(
                f,
                "data is {actual} bytes but the header says {expected}; extra bytes at the end"
            ),
            NpyError::Nan { index } => write!(
                f,
                "element {index} (C-order flat index) is NaN; replace NaNs, e.g. np.nan_to_num"
            ),
        }
    }
}

impl std::error::Error for NpyError {}

/// Element type of the stored data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Uint,
    Int,
    Float,
}

/// A supported dtype: kind, item size in bytes, byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

/// Parse a whole `.npy` file held in memory into an [`Array`].
///
/// Never panics, whatever the bytes; allocates only the output, and only
/// after checking that the data it describes is present.
pub fn parse(bytes: &[u8], opts: &ImportOptions) -> Result<Array, NpyError> {
    let (header, data) = split_header(bytes)?;
    let fields = parse_header(&header)?;
    let dtype = parse_descr(&fields.descr)?;
    let layout = Layout::new(&fields.shape)?;
    convert(data, dtype, fields.fortran_order, &layout, opts.float_max)
}

/// Check magic and version; return the header text and the data bytes.
fn split_header(bytes: &[u8]) -> Result<(String, &[u8]), NpyError> {
    if bytes.is_empty() {
        return Err(NpyError::Empty);
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(NpyError::BadMagic);
    }
    let file_len = bytes.len() as u64;
    let too_short = NpyError::TooShort { file_len };
    let (major, minor) = match bytes.get(MAGIC.len()..PREAMBLE_LEN) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err(too_short),
    };
    // Version 1.0 has a u16 header length, 2.0 and 3.0 a u32 (both LE).
    let (len_field, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(NpyError::UnsupportedVersion { major, minor }),
    };
    let header_start = PREAMBLE_LEN + len_field;
    let len_bytes = bytes.get(PREAMBLE_LEN..header_start).ok_or(too_short)?;
    let header_len = len_bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let past_end = NpyError::HeaderPastEnd {
        header_len,
        file_len,
    };
    let header_end = usize::try_from(header_len)
        .ok()
        .and_then(|l| header_start.checked_add(l))
        .ok_or(past_end.clone())?;
    let raw = bytes.get(header_start..header_end).ok_or(past_end)?;
    let header = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| NpyError::HeaderNotUtf8)?
            .to_owned()
    } else {
        // Versions 1.0 and 2.0 are latin-1, where every byte is a char.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    Ok((header, &bytes[header_end..]))
}

/// The three header fields.
struct Header {
    /// Raw source text of the descr value (for error messages), and its
    /// string value if it is a string.
    descr: Descr,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// The `descr` value: a plain string, or anything else (structured dtypes
/// are lists), kept as source text.
enum Descr {
    Str(String),
    Other(String),
}

/// A Python literal as found in numpy headers.
#[derive(Debug, PartialEq)]
enum Value {
    Str(String),
    Int { negative: bool, magnitude: u64 },
    Bool(bool),
    None,
    Seq(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

/// Recursive-descent parser over the header's chars. Every failure is a
/// [`NpyError::HeaderNotDict`] carrying what was expected and where.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, expected: &'static str) -> NpyError {
        NpyError::HeaderNotDict {
            expected,
            offset: self.pos,
        }
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &'static str) -> Result<(), NpyError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(what))
        }
    }

    /// Parse one value; returns it with its source text.
    fn value(&mut self, depth: usize) -> Result<(Value, &'a str), NpyError> {
        if depth > MAX_NESTING {
            return Err(self.err("less deeply nested value"));
        }
        self.skip_ws();
        let start = self.pos;
        let v = match self.peek() {
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                self.string(q)?
            }
            Some('(') => {
                self.pos += 1;
                Value::Seq(self.seq(')', depth)?)
            }
            Some('[') => {
                self.pos += 1;
                Value::Seq(self.seq(']', depth)?)
            }
            Some('{') => {
                self.pos += 1;
                Value::Dict(self.dict(depth)?)
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.int()?,
            Some(c) if c.is_ascii_alphabetic() => {
                let word = self.word();
                match word {
                    "True" => Value::Bool(true),
                    "False" => Value::Bool(false),
                    "None" => Value::None,
                    _ => {
                        self.pos = start;
                        return Err(self.err("a Python literal"));
                    }
                }
            }
            _ => return Err(self.err("a Python literal")),
        };
        Ok((v, &self.text[start..self.pos]))
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn string(&mut self, quote: char) -> Result<Value, NpyError> {
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err("closing quote")),
                Some(c) if c == quote => return Ok(Value::Str(s)),
                // Escapes do not occur in numpy's descr strings; keeping
                // the escaped char is enough to find the closing quote.
                Some('\\') => match self.bump() {
                    Some(c) => s.push(c),
                    None => return Err(self.err("closing quote")),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn int(&mut self) -> Result<Value, NpyError> {
        let negative = self.peek() == Some('-');
        if negative {
            self.pos += 1;
        }
        let digits = self.word();
        // Python 2 numpy wrote longs with an `L` suffix, e.g. `(500L, 30L, 3L)`.
        let digits = digits.strip_suffix(['L', 'l']).unwrap_or(digits);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.err("an integer"));
        }
        let magnitude = digits
            .parse::<u64>()
            .map_err(|_| self.err("an integer that fits 64 bits"))?;
        Ok(Value::Int {
            negative,
            magnitude,
        })
    }

    /// Elements up to `close`, commas between, optional trailing comma.
    fn seq(&mut self, close: char, depth: usize) -> Result<Vec<Value>, NpyError> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.value(depth + 1)?.0);
            if !self.eat(',') {
                self.expect(close, "',' or closing bracket")?;
                return Ok(items);
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Vec<(Value, Value)>, NpyError> {
        let mut items = Vec::new();
        loop {
            if self.eat('}') {
                return Ok(items);
            }
            let key = self.value(depth + 1)?.0;
            self.expect(':', "':'")?;
            let value = self.value(depth + 1)?.0;
            items.push((key, value));
            if !self.eat(',') {
                self.expect('}', "',' or '}'")?;
                return Ok(items);
            }
        }
    }
}

/// Parse the header dict and pick out its three fields.
fn parse_header(text: &str) -> Result<Header, NpyError> {
    let mut p = Parser { text, pos: 0 };
    p.skip_ws();
    if p.peek() != Some('{') {
        return Err(p.err("'{'"));
    }
    p.pos += 1;
    // The dict is parsed key by key here (not via `Value::Dict`) to keep
    // the descr value's source text for error messages.
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    loop {
        if p.eat('}') {
            break;
        }
        let (key, key_text) = p.value(1)?;
        p.expect(':', "':'")?;
        let (value, value_text) = p.value(1)?;
        let key_name = match &key {
            Value::Str(s) => s.as_str(),
            _ => "",
        };
        match key_name {
            "descr" if descr.is_none() => {
                descr = Some(match value {
                    Value::Str(s) => Descr::Str(s),
                    _ => Descr::Other(value_text.to_owned()),
                })
            }
            "fortran_order" if fortran_order.is_none() => {
                fortran_order = Some(match value {
                    Value::Bool(b) => b,
                    _ => return Err(NpyError::BadFortranOrder(value_text.to_owned())),
                })
            }
            "shape" if shape.is_none() => {
                shape =
                    Some(shape_of(&value).ok_or(NpyError::BadShapeValue(value_text.to_owned()))?)
            }
            _ => return Err(NpyError::UnexpectedKey(key_text.to_owned())),
        }
        if !p.eat(',') {
            p.expect('}', "',' or '}'")?;
            break;
        }
    }
    // numpy pads with spaces and ends with '\n'; anything else is garbage.
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.err("end of header (only padding after the dict)"));
    }
    Ok(Header {
        descr: descr.ok_or(NpyError::MissingKey("descr"))?,
        fortran_order: fortran_order.ok_or(NpyError::MissingKey("fortran_order"))?,
        shape: shape.ok_or(NpyError::MissingKey("shape"))?,
    })
}

fn shape_of(v: &Value) -> Option<Vec<u64>> {
    let Value::Seq(items) = v else { return None };
    items
        .iter()
        .map(|item| match item {
            Value::Int {
                negative: false,
                magnitude,
            } => Some(*magnitude),
            // `-0` is still zero; any other negative is invalid.
            Value::Int {
                negative: true,
                magnitude: 0,
            } => Some(0),
            _ => None,
        })
        .collect()
}

/// Turn a descr string such as `<u2` into a [`Dtype`].
fn parse_descr(descr: &Descr) -> Result<Dtype, NpyError> {
    let s = match descr {
        Descr::Str(s) => s,
        // A list is a structured (record) dtype.
        Descr::Other(text) => return Err(NpyError::UnsupportedDtype(text.clone())),
    };
    let bad = || NpyError::BadDescr(s.clone());
    let unsupported = || NpyError::UnsupportedDtype(format!("{s:?}"));
    let (order, rest) = match s.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (Some(c), &s[1..]),
        _ => (None, s.as_str()),
    };
    let mut chars = rest.chars();
    let code = chars.next().ok_or_else(bad)?;
    let size_text = chars.as_str();
    let kind = match code {
        'b' => Kind::Bool,
        'u' => Kind::Uint,
        'i' => Kind::Int,
        'f' => Kind::Float,
        // Object, bytes, str, unicode, complex, datetime, timedelta, void.
        'O' | 'S' | 'a' | 'U' | 'c' | 'M' | 'm' | 'V' => return Err(unsupported()),
        _ => return Err(bad()),
    };
    let size: usize = if size_text.bytes().all(|b| b.is_ascii_digit()) {
        size_text.parse().map_err(|_| bad())?
    } else {
        // e.g. datetime units `<M8[ns]` never get here; anything else is junk.
        return Err(bad());
    };
    let valid = match kind {
        Kind::Bool => size == 1,
        Kind::Uint | Kind::Int => matches!(size, 1 | 2 | 4 | 8),
        // f16/f12 are numpy's longdouble, which has no portable layout.
        Kind::Float if matches!(size, 12 | 16) => return Err(unsupported()),
        Kind::Float => matches!(size, 2 | 4 | 8),
    };
    if !valid {
        return Err(bad());
    }
    // numpy writes `|` only for one-byte types, where order is meaningless.
    if order == Some('|') && size != 1 {
        return Err(bad());
    }
    let big_endian = match order {
        Some('>') => true,
        Some('<') => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// Validated shape: how stored elements map to output pixels.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    /// The stored shape padded to 3 dims (a trailing 1 for 2-D shapes).
    dims: [u64; 3],
    rows: u32,
    leds: u32,
    channels: u8,
    /// Grey input: each element is written to R, G and B.
    grey: bool,
}

impl Layout {
    fn new(shape: &[u64]) -> Result<Layout, NpyError> {
        let bad = || NpyError::BadShape(shape.to_vec());
        if shape.contains(&0) {
            return Err(bad());
        }
        let (dims, rows, leds, channels, grey) = match *shape {
            [rows, leds, c @ (3 | 4)] => ([rows, leds, c], rows, leds, c, false),
            [leds, c @ (3 | 4)] => ([leds, c, 1], 1, leds, c, false),
            [rows, leds] => ([rows, leds, 1], rows, leds, 3, true),
            _ => return Err(bad()),
        };
        let rows = u32::try_from(rows).map_err(|_| NpyError::TooManyRows(rows))?;
        // u128: leds < 2^64 times channels <= 4 cannot overflow.
        let row_bytes = u128::from(leds) * u128::from(channels);
        if row_bytes > MAX_ROW_BYTES as u128 {
            return Err(NpyError::RowTooLarge {
                bytes: u64::try_from(row_bytes).unwrap_or(u64::MAX),
            });
        }
        Ok(Layout {
            dims,
            rows,
            // row_bytes <= MAX_ROW_BYTES, so leds fits u32.
            leds: u32::try_from(leds).map_err(|_| bad())?,
            channels: channels as u8,
            grey,
        })
    }
}

/// Convert the stored elements to the output array.
fn convert(
    data: &[u8],
    dtype: Dtype,
    fortran_order: bool,
    layout: &Layout,
    float_max: FloatMax,
) -> Result<Array, NpyError> {
    let [d0, d1, d2] = layout.dims;
    // Layout::new bounds rows below 2^32 and a row below 2^20 elements, so
    // these products stay below 2^55; checked anyway, as a second guard.
    let count = d0
        .checked_mul(d1)
        .and_then(|n| n.checked_mul(d2))
        .ok_or(NpyError::TooLarge { bytes: u64::MAX })?;
    let in_bytes = count
        .checked_mul(dtype.size as u64)
        .ok_or(NpyError::TooLarge { bytes: u64::MAX })?;
    let out_bytes = u64::from(layout.rows) * u64::from(layout.leds) * u64::from(layout.channels);
    if usize::try_from(in_bytes).is_err() {
        return Err(NpyError::TooLarge { bytes: in_bytes });
    }
    let actual = data.len() as u64;
    if actual < in_bytes {
        return Err(NpyError::Truncated {
            expected: in_bytes,
            actual,
        });
    }
    if actual > in_bytes {
        return Err(NpyError::TrailingBytes {
            expected: in_bytes,
            actual,
        });
    }
    let out_len =
        usize::try_from(out_bytes).map_err(|_| NpyError::TooLarge { bytes: out_bytes })?;
    // All dims now multiply to a usize (the data is that long), so these
    // conversions and the index arithmetic below cannot overflow.
    let (d0, d1, d2) = (d0 as usize, d1 as usize, d2 as usize);
    let strides = if fortran_order {
        [1, d0, d0 * d1]
    } else {
        [d1 * d2, d2, 1]
    };
    let mut out = Vec::with_capacity(out_len);
    let size = dtype.size;
    let mut flat: u64 = 0;
    for i in 0..d0 {
        for j in 0..d1 {
            for k in 0..d2 {
                let at = (i * strides[0] + j * strides[1] + k * strides[2]) * size;
                let item = &data[at..at + size];
                let v =
                    element_to_u8(item, dtype, float_max).ok_or(NpyError::Nan { index: flat })?;
                out.push(v);
                if layout.grey {
                    out.push(v);
                    out.push(v);
                }
                flat += 1;
            }
        }
    }
    Ok(Array {
        rows: layout.rows,
        leds: layout.leds,
        channels: layout.channels,
        data: out,
    })
}

/// Convert one stored element; `None` for NaN.
fn element_to_u8(item: &[u8], dtype: Dtype, float_max: FloatMax) -> Option<u8> {
    let bits = if dtype.big_endian {
        item.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    } else {
        item.iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
    };
    let width = 8 * dtype.size as u32;
    Some(match dtype.kind {
        Kind::Bool => {
            if bits != 0 {
                u8::MAX
            } else {
                0
            }
        }
        Kind::Uint => bits.min(255) as u8,
        Kind::Int => {
            // Sign-extend from `width` bits.
            let shift = 64 - width;
            let v = ((bits << shift) as i64) >> shift;
            v.clamp(0, 255) as u8
        }
        Kind::Float => {
            let v = match dtype.size {
                2 => f16_to_f64(bits as u16),
                4 => f64::from(f32::from_bits(bits as u32)),
                _ => f64::from_bits(bits),
            };
            if v.is_nan() {
                return None;
            }
            let scaled = match float_max {
                FloatMax::One => v * 255.0,
                FloatMax::Full => v,
            };
            // `as` saturates, and the clamp handles +-inf.
            scaled.round_ties_even().clamp(0.0, 255.0) as u8
        }
    })
}

/// IEEE 754 half precision to f64 (exact: every f16 is an f64).
fn f16_to_f64(h: u16) -> f64 {
    const EXP_BIAS: i32 = 15;
    const MANT_BITS: i32 = 10;
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let mant = f64::from(h & 0x3ff);
    let magnitude = match exp {
        // Subnormal: no implicit leading 1, fixed exponent 1 - bias.
        0 => mant * 2f64.powi(1 - EXP_BIAS - MANT_BITS),
        0x1f if mant == 0.0 => f64::INFINITY,
        0x1f => f64::NAN,
        _ => (1.0 + mant / 1024.0) * 2f64.powi(exp - EXP_BIAS),
    };
    sign * magnitude
}

/// Write `array` as a standard version 1.0 `.npy` of dtype `|u1` and shape
/// `(rows, leds, channels)`, with the header padded so the data starts at a
/// multiple of 64 bytes (what numpy >= 1.14 writes).
pub fn write_u8(array: &Array, w: &mut impl Write) -> io::Result<()> {
    let expected = u64::from(array.rows) * u64::from(array.leds) * u64::from(array.channels);
    if array.data.len() as u64 != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "array data is {} bytes, expected rows*leds*channels = {expected}",
                array.data.len()
            ),
        ));
    }
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}), }}",
        array.rows, array.leds, array.channels
    );
    // Preamble, u16 length, dict, then spaces and a final '\n' up to the
    // next multiple of DATA_ALIGN.
    let unpadded = PREAMBLE_LEN + 2 + dict.len() + 1;
    let total = unpadded.div_ceil(DATA_ALIGN) * DATA_ALIGN;
    let header_len = total - PREAMBLE_LEN - 2;
    // The dict above is under 100 bytes, so this always fits.
    let header_len_u16 = u16::try_from(header_len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy header too long"))?;
    let mut header = Vec::with_capacity(total);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&[1, 0]);
    header.extend_from_slice(&header_len_u16.to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header.resize(total - 1, b' ');
    header.push(b'\n');
    w.write_all(&header)?;
    w.write_all(&array.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const BROKEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/broken/");
    const NPY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/npy/");

    fn read(dir: &str, name: &str) -> Vec<u8> {
        std::fs::read(format!("{dir}{name}")).expect("fixture present")
    }

    fn parse_file(dir: &str, name: &str) -> Result<Array, NpyError> {
        parse(&read(dir, name), &ImportOptions::default())
    }

    /// A well-formed file around `dict` and `data`, header padded to 64.
    fn npy_with(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        let mut h = dict.as_bytes().to_vec();
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(b' ');
        }
        h.push(b'\n');
        v.extend_from_slice(&(h.len() as u16).to_le_bytes());
        v.extend_from_slice(&h);
        v.extend_from_slice(data);
        v
    }

    fn dict(descr: &str, shape: &str) -> String {
        format!("{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}")
    }

    #[test]
    fn empty_file() {
        assert_eq!(parse_file(BROKEN, "empty.npy"), Err(NpyError::Empty));
    }

    #[test]
    fn truncated_data() {
        assert_eq!(
            parse_file(BROKEN, "truncated.npy"),
            Err(NpyError::Truncated {
                expected: 60,
                actual: 53
            })
        );
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(
            parse_file(BROKEN, "trailing.npy"),
            Err(NpyError::TrailingBytes {
                expected: 60,
                actual: 63
            })
        );
    }

    #[test]
    fn header_past_end() {
        assert_eq!(
            parse_file(BROKEN, "header_past_end.npy"),
            Err(NpyError::HeaderPastEnd {
                header_len: 1000,
                file_len: 18
            })
        );
    }

    #[test]
    fn bad_magic() {
        assert_eq!(parse_file(BROKEN, "bad_magic.npy"), Err(NpyError::BadMagic));
    }

    #[test]
    fn unsupported_version() {
        assert_eq!(
            parse_file(BROKEN, "version4.npy"),
            Err(NpyError::UnsupportedVersion { major: 4, minor: 0 })
        );
    }

    #[test]
    fn header_not_dict() {
        assert_eq!(
            parse_file(BROKEN, "not_dict.npy"),
            Err(NpyError::HeaderNotDict {
                expected: "'{'",
                offset: 0
            })
        );
    }

    #[test]
    fn v3_header_not_utf8() {
        assert_eq!(
            parse_file(BROKEN, "v3_not_utf8.npy"),
            Err(NpyError::HeaderNotUtf8)
        );
    }

    #[test]
    fn missing_shape() {
        assert_eq!(
            parse_file(BROKEN, "missing_shape.npy"),
            Err(NpyError::MissingKey("shape"))
        );
    }

    #[test]
    fn rejected_shapes() {
        assert_eq!(
            parse_file(BROKEN, "rank4.npy"),
            Err(NpyError::BadShape(vec![1, 2, 3, 3]))
        );
        assert_eq!(
            parse_file(BROKEN, "rank1.npy"),
            Err(NpyError::BadShape(vec![6]))
        );
        assert_eq!(
            parse_file(BROKEN, "zero_dim.npy"),
            Err(NpyError::BadShape(vec![0, 5, 3]))
        );
        // Rank 3 needs 3 or 4 channels.
        let f = npy_with(&dict("'|u1'", "(1, 2, 5)"), &[0; 10]);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::BadShape(vec![1, 2, 5]))
        );
        let msg = NpyError::BadShape(vec![6]).to_string();
        assert!(
            msg.contains("[6]") && msg.contains("[rows, leds, 3]"),
            "{msg}"
        );
    }

    #[test]
    fn huge_shape_is_too_large_or_truncated() {
        let bytes = 70_000u64 * 70_000 * 3;
        let expected = if usize::BITS < 64 {
            NpyError::TooLarge { bytes }
        } else {
            NpyError::Truncated {
                expected: bytes,
                actual: 10,
            }
        };
        assert_eq!(parse_file(BROKEN, "huge_shape.npy"), Err(expected));
        assert_eq!(
            NpyError::TooLarge { bytes }.to_string(),
            "array of 14700000000 bytes is too large for this machine; split it"
        );
    }

    #[test]
    fn unsupported_dtypes_are_named() {
        for (file, descr) in [
            ("object.npy", "\"|O\""),
            ("unicode.npy", "\"<U3\""),
            ("complex.npy", "\"<c8\""),
            ("datetime.npy", "\"<M8[ns]\""),
        ] {
            assert_eq!(
                parse_file(BROKEN, file),
                Err(NpyError::UnsupportedDtype(descr.to_owned())),
                "{file}"
            );
        }
        match parse_file(BROKEN, "structured.npy") {
            Err(NpyError::UnsupportedDtype(d)) => assert!(d.starts_with("[("), "{d}"),
            other => panic!("structured: {other:?}"),
        }
    }

    #[test]
    fn nan_names_first_flat_index() {
        assert_eq!(
            parse_file(BROKEN, "nan.npy"),
            Err(NpyError::Nan { index: 7 })
        );
    }

    #[test]
    fn nan_index_is_c_order_for_fortran_arrays() {
        // Shape (2, 2) f8 in Fortran order: storage [a00, a10, a01, a11].
        // A NaN stored second is a10, which is C-order flat index 2.
        let mut data = Vec::new();
        for v in [0.0f64, f64::NAN, 0.0, 0.0] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let d = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }";
        let f = npy_with(d, &data);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::Nan { index: 2 })
        );
    }

    #[test]
    fn bad_descrs() {
        for descr in ["'<u3'", "'<x4'", "'|u2'", "'b2'", "''", "'<f'", "'<f4x'"] {
            let f = npy_with(&dict(descr, "(1, 3)"), &[0; 64]);
            let got = parse(&f, &ImportOptions::default());
            assert!(
                matches!(got, Err(NpyError::BadDescr(_))),
                "{descr}: {got:?}"
            );
        }
        let f = npy_with(&dict("'<f16'", "(1, 3)"), &[0; 48]);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::UnsupportedDtype("\"<f16\"".to_owned()))
        );
    }

    #[test]
    fn header_quirks() {
        let ok = |d: &str| parse(&npy_with(d, &[1, 2, 3]), &ImportOptions::default());
        // Double quotes, no trailing comma, other key order, native order.
        let a = ok("{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": \"u1\"}").unwrap();
        assert_eq!(
            (a.rows, a.leds, a.channels, a.data),
            (1, 1, 3, vec![1, 2, 3])
        );
        assert_eq!(
            ok("{'descr': '|u1', 'fortran_order': 0, 'shape': (1, 3), }"),
            Err(NpyError::BadFortranOrder("0".to_owned()))
        );
        assert_eq!(
            ok("{'descr': '|u1', 'fortran_order': False, 'shape': (1, -3), }"),
            Err(NpyError::BadShapeValue("(1, -3)".to_owned()))
        );
        assert_eq!(
            ok("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3), 'x': 1}"),
            Err(NpyError::UnexpectedKey("'x'".to_owned()))
        );
        assert_eq!(
            ok("{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (1, 3)}"),
            Err(NpyError::UnexpectedKey("'descr'".to_owned()))
        );
        assert!(matches!(
            ok("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 3)} junk"),
            Err(NpyError::HeaderNotDict { .. })
        ));
        assert!(matches!(
            ok(&format!("{{'descr': {}", "(".repeat(100))),
            Err(NpyError::HeaderNotDict { .. })
        ));
    }

    #[test]
    fn limits() {
        let f = npy_with(&dict("'|u1'", "(4294967296, 1, 3)"), &[]);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::TooManyRows(1 << 32))
        );
        let leds = MAX_ROW_BYTES as u64 / 3 + 1;
        let f = npy_with(&dict("'|u1'", &format!("(1, {leds}, 3)")), &[]);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::RowTooLarge { bytes: leds * 3 })
        );
        let f = npy_with(&dict("'|u1'", "(1, 18446744073709551615, 4)"), &[]);
        assert_eq!(
            parse(&f, &ImportOptions::default()),
            Err(NpyError::RowTooLarge { bytes: u64::MAX })
        );
    }

    #[test]
    fn short_preambles() {
        let o = ImportOptions::default();
        assert_eq!(parse(b"\x93NUM", &o), Err(NpyError::BadMagic));
        assert_eq!(
            parse(b"\x93NUMPY\x01", &o),
            Err(NpyError::TooShort { file_len: 7 })
        );
        assert_eq!(
            parse(b"\x93NUMPY\x02\x00\x01\x00", &o),
            Err(NpyError::TooShort { file_len: 10 })
        );
    }

    #[test]
    fn f16_conversion() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
        assert_eq!(f16_to_f64(0x7bff), 65504.0);
        assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
        assert!(f16_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn fortran_order_is_transposed_to_c() {
        // Shape (2, 5) grey in Fortran order: storage column by column.
        let d = "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 5), }";
        let stored = [1, 6, 2, 7, 3, 8, 4, 9, 5, 10];
        let a = parse(&npy_with(d, &stored), &ImportOptions::default()).unwrap();
        assert!(a.data.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        let grey: Vec<u8> = a.data.chunks(3).map(|p| p[0]).collect();
        assert_eq!((a.rows, a.leds, grey), (2, 5, (1..=10).collect()));
    }

    #[test]
    fn write_u8_layout_and_round_trip() {
        let array = Array {
            rows: 2,
            leds: 3,
            channels: 4,
            data: (0..24).collect(),
        };
        let mut out = Vec::new();
        write_u8(&array, &mut out).unwrap();
        let data_start = out.len() - array.data.len();
        assert_eq!(data_start % DATA_ALIGN, 0);
        assert_eq!(&out[..8], b"\x93NUMPY\x01\x00");
        assert_eq!(out[data_start - 1], b'\n');
        let header = std::str::from_utf8(&out[10..data_start]).unwrap();
        assert!(
            header.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), }")
        );
        assert_eq!(parse(&out, &ImportOptions::default()).unwrap(), array);
        // Matches, byte for byte, what numpy writes for the same array.
        let numpy = read(NPY, "shape_rgb.npy");
        let a = parse(&numpy, &ImportOptions::default()).unwrap();
        let mut ours = Vec::new();
        write_u8(&a, &mut ours).unwrap();
        assert_eq!(ours, numpy);
    }

    #[test]
    fn write_u8_rejects_inconsistent_array() {
        let array = Array {
            rows: 2,
            leds: 3,
            channels: 3,
            data: vec![0; 5],
        };
        let err = write_u8(&array, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes, &ImportOptions::default());
        }

        #[test]
        fn never_panics_on_arbitrary_headers(header in "[{}()\\[\\]'\":, 0-9a-zA-Z<>|_\\-\\\\]{0,120}") {
            let _ = parse(&npy_with(&header, &[0; 12]), &ImportOptions::default());
        }

        #[test]
        fn write_u8_round_trips(
            rows in 1u32..5, leds in 1u32..7, rgbw in any::<bool>(), seed in any::<u64>()
        ) {
            let channels = if rgbw { 4 } else { 3 };
            let len = (rows * leds * u32::from(channels)) as usize;
            let data = (0..len).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 7) as u8).collect();
            let array = Array { rows, leds, channels, data };
            let mut out = Vec::new();
            write_u8(&array, &mut out).unwrap();
            prop_assert_eq!((out.len() - array.data.len()) % DATA_ALIGN, 0);
            prop_assert_eq!(parse(&out, &ImportOptions::default()).unwrap(), array);
        }

        #[test]
        fn never_panics_on_mutated_files(
            file in prop::sample::select(vec!["u1.npy", "f4_le.npy", "v3.npy", "fortran_grey.npy", "pre114.npy"]),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut bytes = read(NPY, file);
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            for float_max in [FloatMax::One, FloatMax::Full] {
                let _ = parse(&bytes, &ImportOptions { float_max, ..Default::default() });
            }
        }
    }
}
