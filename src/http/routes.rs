//! What each request gets: the access rules, the page and `/api/*`; the
//! WLED paths are handed to [`super::wled`].
//!
//! ```text
//! GET  /                          the page (also /app.js, /style.css)
//! GET  /api/status                the `ctl status --json` object
//! GET  /api/arrays?q=&offset=&limit=
//!                                 {"total","offset","arrays":[{"index","name","rows","leds","channels","fps"}]}
//!                                 (fps: the array's own rate, else the player's
//!                                 default, null when unknown)
//! GET  /api/arrays/INDEX/thumb.png
//! POST /api/command               body: one control line -> {"reply":"ok"} or 400 {"error":"..."}
//! GET  /api/live                  Server-Sent Events: {"frame","leds","rgb"} per frame shown
//! ```

pub use super::context::{reason, Ctx, Reply, Response};
use super::request::{self, bearer, segments, Head, Method};
use super::wled;
use serde_json::{json, Value};

/// Most arrays one `/api/arrays` page lists.
pub const MAX_LIMIT: usize = 200;
/// Arrays per page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 50;

const PAGE_HTML: &[u8] = include_bytes!("page/index.html");
const PAGE_JS: &[u8] = include_bytes!("page/app.js");
const PAGE_CSS: &[u8] = include_bytes!("page/style.css");

/// Which rules a route falls under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Static files: always open (the page must load to ask for a token).
    Page,
    /// Reads: open unless `token_read`.
    Read,
    /// Changes: POST, token when set, same origin.
    Change,
    /// WLED reads.
    WledRead,
    /// WLED changes.
    WledChange,
}

/// Whether `origin` (an `Origin` value) names the same host and port as
/// `host` (the `Host` value). `null` and anything unparsable do not.
pub fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match authority {
        Some(a) => {
            let a = a.trim_end_matches('/');
            // Default ports may be spelled or not on either side.
            let strip = |s: &str| -> String {
                let s = s.to_ascii_lowercase();
                s.strip_suffix(":80").map(str::to_string).unwrap_or(s)
            };
            !a.is_empty() && strip(a) == strip(host)
        }
        None => false,
    }
}

/// Compare without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).unwrap_or(&0) ^ b.get(i).unwrap_or(&0);
    }
    diff == 0
}

/// Check the access rules; `Some(response)` refuses the request.
fn check_access(ctx: &mut Ctx, head: &Head<'_>, kind: Kind) -> Option<Response> {
    let s = &ctx.settings;
    let change = matches!(kind, Kind::Change | Kind::WledChange);
    if change {
        if let Some(origin) = head.origin {
            if !same_origin(origin, head.host) {
                return Some(Response::error(
                    403,
                    format!("cross-site request refused (Origin {origin:?} is not this server)"),
                ));
            }
        }
        if let Some(site) = head.fetch_site {
            if !(site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")) {
                return Some(Response::error(
                    403,
                    format!("cross-site request refused (Sec-Fetch-Site: {site})"),
                ));
            }
        }
    }
    let token = s.token.as_deref()?;
    let needs = match kind {
        Kind::Page => false,
        Kind::Read => s.token_read,
        Kind::Change => true,
        Kind::WledRead => s.token_read && !s.wled_open,
        Kind::WledChange => !s.wled_open,
    };
    if !needs {
        return None;
    }
    let mut given = bearer(head.authorization).map(str::to_string);
    // EventSource and <img> cannot send headers: reads may carry the token
    // in the query instead. Changes never may (it would end up in logs and
    // history, and a header cannot be forged by another site).
    if given.is_none() && !change && request::query_value(head.query, "token", &mut ctx.scratch) {
        given = Some(String::from_utf8_lossy(&ctx.scratch).into_owned());
    }
    match given {
        Some(g) if token_eq(&g, token) => None,
        Some(_) => Some(
            Response::error(401, "wrong token")
                .with("WWW-Authenticate", "Bearer realm=\"rowplay\""),
        ),
        None => Some(
            Response::error(401, "this request needs Authorization: Bearer TOKEN")
                .with("WWW-Authenticate", "Bearer realm=\"rowplay\""),
        ),
    }
}

/// Answer one request.
pub fn handle(ctx: &mut Ctx, head: &Head<'_>, body: &[u8]) -> Reply {
    let mut seg = [""; 4];
    let mut n = 0;
    for s in segments(head.path) {
        if n == seg.len() {
            return Reply::Full(Response::error(404, "no such page"));
        }
        seg[n] = s;
        n += 1;
    }
    let seg = &seg[..n];
    let (kind, allow) = match seg {
        [] | ["app.js"] | ["style.css"] => (Kind::Page, "GET, HEAD"),
        ["api", "command"] => (Kind::Change, "POST"),
        ["api", "status"]
        | ["api", "arrays"]
        | ["api", "live"]
        | ["api", "arrays", _, "thumb.png"] => (Kind::Read, "GET, HEAD"),
        ["json"] | ["json", "state"] => (Kind::WledChange, "GET, HEAD, POST"),
        ["json", _] | ["presets.json"] => (Kind::WledRead, "GET, HEAD"),
        _ => return Reply::Full(Response::error(404, "no such page")),
    };
    let is_post = head.method == Method::Post;
    let method_ok = match head.method {
        Method::Get | Method::Head => allow.contains("GET"),
        Method::Post => allow.contains("POST"),
        Method::Options => {
            // An answer with no Access-Control-Allow-* headers: the browser
            // refuses the cross-site request it asked about.
            return Reply::Full(Response::bytes(204, "text/plain", &b""[..]).with("Allow", allow));
        }
        Method::Other => false,
    };
    if !method_ok {
        return Reply::Full(Response::error(405, format!("use {allow} here")).with("Allow", allow));
    }
    // GET /json and /json/state are reads; POST to them are changes.
    let kind = match kind {
        Kind::WledChange if !is_post => Kind::WledRead,
        k => k,
    };
    if let Some(refused) = check_access(ctx, head, kind) {
        return Reply::Full(refused);
    }
    let r = match seg {
        [] => page(PAGE_HTML, "text/html; charset=utf-8"),
        ["app.js"] => page(PAGE_JS, "text/javascript; charset=utf-8"),
        ["style.css"] => page(PAGE_CSS, "text/css; charset=utf-8"),
        ["api", "status"] => Response::json(200, &ctx.backend.status()),
        ["api", "arrays"] => arrays(ctx, head.query),
        ["api", "arrays", index, "thumb.png"] => thumb(ctx, index),
        ["api", "command"] => command(ctx, body),
        ["api", "live"] => return Reply::Live,
        _ => wled::handle(ctx, seg, is_post, head, body),
    };
    Reply::Full(r)
}

fn page(body: &'static [u8], ctype: &'static str) -> Response {
    Response::bytes(200, ctype, body)
        .with(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'",
        )
        .with("X-Frame-Options", "DENY")
        .with("Cache-Control", "no-cache")
}

/// A query value parsed as a number, `default` when absent.
fn query_num(ctx: &mut Ctx, query: &str, key: &str, default: usize) -> Result<usize, Response> {
    if !request::query_value(query, key, &mut ctx.scratch) || ctx.scratch.is_empty() {
        return Ok(default);
    }
    std::str::from_utf8(&ctx.scratch)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            Response::error(
                400,
                format!(
                    "{key} must be a whole number, not {:?}",
                    String::from_utf8_lossy(&ctx.scratch)
                ),
            )
        })
}

/// Case-insensitive substring match. ASCII needles compare bytes without
/// allocating; others compare lower-cased text.
pub fn name_matches(name: &str, needle_lower: &str) -> bool {
    if needle_lower.is_empty() {
        return true;
    }
    if needle_lower.is_ascii() {
        let (h, n) = (name.as_bytes(), needle_lower.as_bytes());
        h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
    } else {
        name.to_lowercase().contains(needle_lower)
    }
}

fn arrays(ctx: &mut Ctx, query: &str) -> Response {
    let offset = match query_num(ctx, query, "offset", 0) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let limit = match query_num(ctx, query, "limit", DEFAULT_LIMIT) {
        Ok(v) => v.min(MAX_LIMIT),
        Err(r) => return r,
    };
    let q = if request::query_value(query, "q", &mut ctx.scratch) {
        String::from_utf8_lossy(&ctx.scratch).trim().to_lowercase()
    } else {
        String::new()
    };
    let lib = ctx.backend.library();
    let default_fps = ctx.backend.default_fps();
    let mut total = 0usize;
    let mut page = Vec::with_capacity(limit);
    for i in 0..lib.len() {
        let Some(info) = lib.info(i) else { continue };
        if !name_matches(info.name, &q) {
            continue;
        }
        if total >= offset && page.len() < limit {
            page.push(json!({
                "index": info.index,
                "name": info.name,
                "rows": info.rows,
                "leds": info.leds,
                "channels": info.channels,
                // The array's own rate (pack format 2), else the one it
                // would play at; null when neither is known.
                "fps": lib.fps(info.index).or(default_fps),
            }));
        }
        total += 1;
    }
    Response::json(
        200,
        &json!({ "total": total, "offset": offset, "arrays": page }),
    )
}

fn thumb(ctx: &mut Ctx, index: &str) -> Response {
    let lib = ctx.backend.library();
    let Some(i) = index.parse::<u32>().ok().filter(|&i| i < lib.len()) else {
        return Response::error(
            404,
            format!("no array with index {index:?} (0..{})", lib.len()),
        );
    };
    match ctx.thumbs.get(&lib, i) {
        Ok(png) => Response::bytes(200, "image/png", png.to_vec())
            .with("Cache-Control", "private, max-age=60"),
        Err(e) => Response::error(500, e),
    }
}

fn command(ctx: &mut Ctx, body: &[u8]) -> Response {
    let Ok(text) = std::str::from_utf8(body) else {
        return Response::error(400, "the command is not UTF-8 text");
    };
    let line = text.trim();
    if line.contains('\n') {
        return Response::error(400, "one command per request");
    }
    if line.len() > crate::control::MAX_LINE {
        return Response::error(
            400,
            format!("command longer than {} bytes", crate::control::MAX_LINE),
        );
    }
    match ctx.backend.command(line) {
        Ok(reply) => match serde_json::from_str::<Value>(&reply) {
            // `status` and `list` answer JSON: pass it on as JSON.
            Ok(v @ Value::Object(_)) => Response::json(200, &json!({ "reply": v })),
            _ => Response::json(200, &json!({ "reply": reply })),
        },
        Err(e) => Response::error(400, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert!(same_origin("http://pi:8080", Some("pi:8080")));
        assert!(same_origin("http://PI", Some("pi:80")));
        assert!(same_origin("https://pi.local", Some("pi.local")));
        assert!(!same_origin("http://evil:8080", Some("pi:8080")));
        assert!(!same_origin("http://pi:8081", Some("pi:8080")));
        assert!(!same_origin("null", Some("pi")));
        assert!(!same_origin("http://pi", None));
        assert!(!same_origin("http://", Some("")));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(token_eq("abc", "abc"));
        assert!(!token_eq("abc", "abd"));
        assert!(!token_eq("abc", "abcd"));
        assert!(!token_eq("", "a"));
    }

    #[test]
    fn names_match_without_case() {
        assert!(name_matches("Wave_17", "wave"));
        assert!(name_matches("wave_17", ""));
        assert!(!name_matches("wa", "wave"));
        assert!(name_matches("ÄRGER", "ärg"));
        assert!(!name_matches("fire", "ärg"));
    }

    #[test]
    fn responses_serialize() {
        let r = Response::error(404, "x").with("Allow", "GET");
        let s = String::from_utf8(r.serialize(true, false)).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(s.contains("Content-Length: 13\r\n"));
        assert!(s.contains("Connection: keep-alive\r\n"));
        assert!(s.contains("Allow: GET\r\n"));
        assert!(s.ends_with("\r\n\r\n{\"error\":\"x\"}"));
        let h = String::from_utf8(r.serialize(false, true)).unwrap();
        assert!(h.ends_with("\r\n\r\n") && h.contains("Connection: close"));
        assert!(!s.to_ascii_lowercase().contains("access-control"));
    }
}
