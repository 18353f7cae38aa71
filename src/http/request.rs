//! HTTP/1.x request heads, bodies and query strings, parsed from a byte
//! slice.
//!
//! The head (request line and headers) is parsed by `httparse`; this module
//! adds the limits and the few headers the server acts on. Everything here
//! is a pure function over a slice: it never panics, never allocates (the
//! decoders write into a buffer the caller owns and reuses) and caps every
//! length.
//!
//! Limits: head at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers, body
//! at most [`MAX_BODY`] bytes and only with `Content-Length` (a chunked body
//! is refused with 411, any other transfer coding with 501).

use std::fmt;

/// Longest request line plus headers, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest body, in bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 48;

/// The request methods the server tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: a `GET` without the body.
    Head,
    /// `POST`.
    Post,
    /// `OPTIONS`.
    Options,
    /// Anything else (answered with 405).
    Other,
}

/// A parsed request head. Header values are the raw text the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head<'a> {
    /// The method.
    pub method: Method,
    /// The path without the query (may hold doubled slashes; see [`segments`]).
    pub path: &'a str,
    /// What follows `?` in the target, undecoded (empty when none).
    pub query: &'a str,
    /// HTTP/1.0 (else 1.1).
    pub http10: bool,
    /// Whether the connection may stay open after the response.
    pub keep_alive: bool,
    /// `Host`.
    pub host: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
    /// `Sec-Fetch-Site` (sent by browsers).
    pub fetch_site: Option<&'a str>,
    /// `Authorization`.
    pub authorization: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// Body length from `Content-Length` (0 when absent).
    pub content_length: usize,
    /// Bytes of the head, including the blank line that ends it.
    pub head_len: usize,
}

impl Head<'_> {
    /// Head and body together, in bytes (no overflow: both are capped).
    pub fn total_len(&self) -> usize {
        self.head_len + self.content_length
    }
}

/// Why a request cannot be served; each maps to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The head is longer than [`MAX_HEAD`] (bytes seen so far).
    HeadTooLarge(usize),
    /// More than [`MAX_HEADERS`] headers.
    TooManyHeaders,
    /// Not HTTP/1.x syntax (what `httparse` or this module found wrong).
    Malformed(&'static str),
    /// An HTTP version other than 1.0 and 1.1 (the minor version).
    BadVersion(u8),
    /// `Content-Length` is not a decimal number.
    BadContentLength,
    /// Two `Content-Length` headers that disagree.
    ConflictingContentLength,
    /// The body is longer than [`MAX_BODY`] (its announced length).
    BodyTooLarge(u64),
    /// `Transfer-Encoding: chunked`: send `Content-Length` instead.
    Chunked,
    /// Another transfer coding.
    UnsupportedTransferEncoding,
}

impl RequestError {
    /// The status code that answers this error.
    pub fn status(&self) -> u16 {
        match self {
            RequestError::HeadTooLarge(_) | RequestError::TooManyHeaders => 431,
            RequestError::Malformed(_)
            | RequestError::BadContentLength
            | RequestError::ConflictingContentLength => 400,
            RequestError::BadVersion(_) => 505,
            RequestError::BodyTooLarge(_) => 413,
            RequestError::Chunked => 411,
            RequestError::UnsupportedTransferEncoding => 501,
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::HeadTooLarge(n) => write!(
                f,
                "request head of {n}+ bytes is longer than {MAX_HEAD} bytes"
            ),
            RequestError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} headers"),
            RequestError::Malformed(why) => write!(f, "malformed request: {why}"),
            RequestError::BadVersion(v) => write!(f, "HTTP/1.{v} is not supported; use 1.1"),
            RequestError::BadContentLength => write!(f, "Content-Length is not a number"),
            RequestError::ConflictingContentLength => {
                write!(f, "two Content-Length headers that disagree")
            }
            RequestError::BodyTooLarge(n) => {
                write!(f, "body of {n} bytes is longer than {MAX_BODY} bytes")
            }
            RequestError::Chunked => {
                write!(f, "chunked bodies are not accepted; send Content-Length")
            }
            RequestError::UnsupportedTransferEncoding => {
                write!(f, "transfer codings are not supported; send Content-Length")
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Parse the head at the start of `buf`: `Ok(None)` while it is incomplete
/// (read more), the head once it is whole, or why it cannot be served.
/// The body (if any) is `buf[head_len..head_len + content_length]`.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head<'_>>, RequestError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(RequestError::HeadTooLarge(buf.len()))
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(e) => return Err(RequestError::Malformed(httparse_reason(e))),
    };
    if head_len > MAX_HEAD {
        return Err(RequestError::HeadTooLarge(head_len));
    }
    // A complete parse has all three.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(RequestError::Malformed("incomplete request line"));
    };
    if version > 1 {
        return Err(RequestError::BadVersion(version));
    }
    let http10 = version == 0;
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    // Absolute-form targets ("http://host/path") are allowed by HTTP/1.1;
    // keep the path only.
    let target = strip_absolute(target);
    if !target.starts_with('/') && target != "*" {
        return Err(RequestError::Malformed(
            "request target does not start with /",
        ));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };

    let mut head = Head {
        method,
        path,
        query,
        http10,
        keep_alive: !http10,
        host: None,
        origin: None,
        fetch_site: None,
        authorization: None,
        content_type: None,
        expect_continue: false,
        content_length: 0,
        head_len,
    };
    let mut length: Option<u64> = None;
    for h in req.headers.iter() {
        let Ok(value) = std::str::from_utf8(h.value) else {
            return Err(RequestError::Malformed("header value is not UTF-8"));
        };
        let value = value.trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            head.host = Some(value);
        } else if name.eq_ignore_ascii_case("origin") {
            head.origin = Some(value);
        } else if name.eq_ignore_ascii_case("sec-fetch-site") {
            head.fetch_site = Some(value);
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value);
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value.eq_ignore_ascii_case("100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    head.keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                    head.keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            return Err(if last.eq_ignore_ascii_case("chunked") {
                RequestError::Chunked
            } else {
                RequestError::UnsupportedTransferEncoding
            });
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(value).ok_or(RequestError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(RequestError::ConflictingContentLength);
            }
            length = Some(n);
        }
    }
    if let Some(n) = length {
        if n > MAX_BODY as u64 {
            return Err(RequestError::BodyTooLarge(n));
        }
        head.content_length = n as usize;
    }
    Ok(Some(head))
}

fn httparse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "bad header name",
        httparse::Error::HeaderValue => "bad header value",
        httparse::Error::NewLine => "bad line ending",
        httparse::Error::Status => "bad status",
        httparse::Error::Token => "bad method or token",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "bad HTTP version",
    }
}

/// `http://host:port/p?q` -> `/p?q`; anything else unchanged.
fn strip_absolute(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if target.len() > scheme.len()
            && target.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
        {
            let rest = &target[scheme.len()..];
            return match rest.find(['/', '?']) {
                Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
                Some(i) => &rest[i..], // "?q" without a path: fails the '/' check
                None => "/",
            };
        }
    }
    target
}

/// A decimal number of at most 19 digits (fits u64), nothing else.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The non-empty segments of a path: a doubled slash (`//json/state`, as
/// some clients send it) gives the same segments as a single one.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The `key=value` pairs of a query string or form body (undecoded;
/// a pair without `=` has an empty value; empty pairs are skipped).
pub fn form_pairs(s: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    s.split(|&b| b == b'&').filter(|p| !p.is_empty()).map(|p| {
        match p.iter().position(|&b| b == b'=') {
            Some(i) => (&p[..i], &p[i + 1..]),
            None => (p, &p[p.len()..]),
        }
    })
}

/// Decode one form component (`%XX` and `+` for space) into `out`, which
/// is cleared first. A `%` not followed by two hex digits is kept as it is.
/// `out` never grows beyond `raw.len()`.
pub fn decode_component(raw: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'+' {
            out.push(b' ');
            i += 1;
        } else if b == b'%' {
            match (raw.get(i + 1).and_then(hex), raw.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The decoded value of the first `key` in a query string, written into
/// `out`; false when the key is absent.
pub fn query_value(query: &str, key: &str, out: &mut Vec<u8>) -> bool {
    let mut name = Vec::new();
    for (k, v) in form_pairs(query.as_bytes()) {
        // Keys are short ASCII words; compare decoded only when needed.
        if k == key.as_bytes() || {
            decode_component(k, &mut name);
            name == key.as_bytes()
        } {
            decode_component(v, out);
            return true;
        }
    }
    false
}

/// Whether `ctype` (a `Content-Type` value) is `application/json`.
pub fn is_json(ctype: Option<&str>) -> bool {
    ctype.is_some_and(|c| {
        c.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// The token of an `Authorization: Bearer TOKEN` value.
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Head<'_> {
        parse_head(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn parses_a_get_with_query() {
        let h = head("GET /api/arrays?q=wave&limit=5 HTTP/1.1\r\nHost: pi:8080\r\n\r\n");
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, "/api/arrays");
        assert_eq!(h.query, "q=wave&limit=5");
        assert_eq!(h.host, Some("pi:8080"));
        assert!(h.keep_alive);
        assert_eq!(h.content_length, 0);
        assert_eq!(h.head_len, 58);
    }

    #[test]
    fn incomplete_heads_ask_for_more() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(parse_head(b""), Ok(None));
    }

    #[test]
    fn post_headers_are_read() {
        let h = head(
            "POST /json/state HTTP/1.0\r\nconnection: Keep-Alive\r\nContent-Length: 12\r\n\
             Origin: http://pi\r\nAuthorization: Bearer s3cret\r\nContent-Type: application/json; charset=utf-8\r\n\
             Expect: 100-continue\r\nSec-Fetch-Site: same-origin\r\n\r\n{\"on\":true}",
        );
        assert_eq!(h.method, Method::Post);
        assert!(h.http10 && h.keep_alive && h.expect_continue);
        assert_eq!(h.content_length, 12);
        assert_eq!(h.origin, Some("http://pi"));
        assert_eq!(h.fetch_site, Some("same-origin"));
        assert_eq!(bearer(h.authorization), Some("s3cret"));
        assert!(is_json(h.content_type));
        assert!(!is_json(Some("text/plain")));
    }

    #[test]
    fn connection_close_and_http10_default() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
    }

    #[test]
    fn every_limit_has_its_error() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD));
        assert_eq!(
            parse_head(long.as_bytes()),
            Err(RequestError::HeadTooLarge(long.len()))
        );
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            parse_head(many.as_bytes()),
            Err(RequestError::TooManyHeaders)
        );
        let p = |s: &str| parse_head(s.as_bytes()).unwrap_err();
        assert_eq!(
            p("POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n"),
            RequestError::BodyTooLarge(65537)
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            RequestError::BadContentLength
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            RequestError::BadContentLength
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            RequestError::ConflictingContentLength
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            RequestError::Chunked
        );
        assert_eq!(
            p("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
            RequestError::UnsupportedTransferEncoding
        );
        assert!(matches!(
            p("GET / HTTP/1.1\n\rx"),
            RequestError::Malformed(_)
        ));
        assert!(matches!(
            p("GET foo HTTP/1.1\r\n\r\n"),
            RequestError::Malformed(_)
        ));
        assert_eq!(RequestError::BodyTooLarge(1).status(), 413);
        assert_eq!(RequestError::Chunked.status(), 411);
        assert_eq!(RequestError::UnsupportedTransferEncoding.status(), 501);
        assert_eq!(RequestError::HeadTooLarge(1).status(), 431);
    }

    #[test]
    fn absolute_targets_and_doubled_slashes() {
        let h = head("GET http://pi:80//json//state?x=1 HTTP/1.1\r\n\r\n");
        assert_eq!(h.path, "//json//state");
        assert_eq!(segments(h.path).collect::<Vec<_>>(), ["json", "state"]);
        assert_eq!(head("GET http://pi HTTP/1.1\r\n\r\n").path, "/");
    }

    #[test]
    fn query_and_form_decoding() {
        let mut out = Vec::new();
        decode_component(b"a+b%20c%2Fd%zz%4", &mut out);
        assert_eq!(out, b"a b c/d%zz%4");
        assert!(query_value("x=1&q=wave%5F1+x&q=no", "q", &mut out));
        assert_eq!(out, b"wave_1 x");
        assert!(query_value("%71=encoded", "q", &mut out));
        assert_eq!(out, b"encoded");
        assert!(query_value("flag&q", "q", &mut out));
        assert_eq!(out, b"");
        assert!(!query_value("", "q", &mut out));
        let pairs: Vec<_> = form_pairs(b"on=true&&bri=128&v").collect();
        assert_eq!(
            pairs,
            [
                (&b"on"[..], &b"true"[..]),
                (&b"bri"[..], &b"128"[..]),
                (&b"v"[..], &b""[..])
            ]
        );
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            if let Ok(Some(h)) = parse_head(&bytes) {
                proptest::prop_assert!(h.head_len <= bytes.len());
                proptest::prop_assert!(h.content_length <= MAX_BODY);
            }
            let mut out = Vec::new();
            decode_component(&bytes, &mut out);
            proptest::prop_assert!(out.len() <= bytes.len());
        }
    }
}
