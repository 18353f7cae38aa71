//! What every route shares: the response type and the server's context.

use super::thumb::ThumbCache;
use super::{Backend, HttpSettings};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

/// A complete response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Cow<'static, [u8]>,
    /// Further headers (name, value).
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    /// Close the connection after it.
    pub close: bool,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, v: &Value) -> Response {
        Response::bytes(status, "application/json", v.to_string().into_bytes())
    }

    /// `{"error": msg}` with `status`.
    pub fn error(status: u16, msg: impl Into<String>) -> Response {
        Response::json(status, &json!({ "error": msg.into() }))
    }

    pub(crate) fn bytes(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
            close: false,
        }
    }

    pub(crate) fn with(
        mut self,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The response as bytes on the wire (no body for `HEAD`).
    pub fn serialize(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        use std::io::Write;
        let mut out = Vec::with_capacity(256 + self.body.len());
        let _ = write!(
            out,
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\
             X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive && !self.close {
                "keep-alive"
            } else {
                "close"
            },
        );
        if !self.headers.iter().any(|(n, _)| *n == "Cache-Control") {
            out.extend_from_slice(b"Cache-Control: no-store\r\n");
        }
        for (n, v) in &self.headers {
            let _ = write!(out, "{n}: {v}\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What the server does with a request.
#[derive(Debug)]
pub enum Reply {
    /// Send this.
    Full(Response),
    /// Start the live stream on this connection.
    Live,
}

/// State shared by all requests (on the server thread).
pub struct Ctx {
    /// The player.
    pub backend: Arc<dyn Backend>,
    /// Settings.
    pub settings: HttpSettings,
    /// Thumbnails.
    pub thumbs: ThumbCache,
    /// When the server started (WLED `uptime`).
    pub started: Instant,
    /// WLED `mac`: the first network interface's address, hex.
    pub mac: String,
    pub(crate) scratch: Vec<u8>,
}

impl Ctx {
    /// A context for `backend`; `mac` is what WLED's `info.mac` says.
    pub fn new(backend: Arc<dyn Backend>, settings: HttpSettings, mac: String) -> Ctx {
        Ctx {
            backend,
            settings,
            thumbs: ThumbCache::default(),
            started: Instant::now(),
            mac,
            scratch: Vec::new(),
        }
    }
}
