//! The core of WLED's JSON API, so Home Assistant (the `wled` Python
//! client) and the WLED app can drive rowplay.
//!
//! ```text
//! GET  /json             {"state","info","effects","palettes"}
//! GET  /json/state       the state; POST applies on, bri, ps, pl (JSON or form body)
//! GET  /json/info        what rowplay is: brand "rowplay", ver "0.15.0" (the API level)
//! GET  /json/si          {"state","info"}
//! GET  /json/effects     (/json/eff) ["Array"]
//! GET  /json/palettes    (/json/pal) ["Default"]
//! GET  /json/fxdata      [""]
//! GET  /presets.json     the arrays as presets, id = index + 1
//! ```
//!
//! A POST maps onto control lines: `on` -> `resume` / `stop` (`"t"`
//! toggles), `bri` 0-255 -> `brightness X`, `ps` / `pl` N -> `play #N-1`.
//! Everything else is accepted and ignored. With `"v": true` the answer is
//! the full state, as WLED answers (the `wled` client needs it). There is no
//! `/ws`, so `info.ws` is -1 ("unsupported").

use super::context::{Ctx, Response};
use super::request::{decode_component, form_pairs, Head};
use super::MAX_PRESETS;
use serde_json::{json, Map, Value};

/// The WLED API level this subset follows. The `wled` client refuses
/// anything below 0.14.0 or not of the form x.y.z.
pub const WLED_VERSION: &str = "0.15.0";

/// The one effect and palette rowplay has: the arrays are the presets.
const EFFECTS: [&str; 1] = ["Array"];
const PALETTES: [&str; 1] = ["Default"];

/// The MAC address of the first wireless or wired interface, as 12 hex
/// digits (the `wled` client and Home Assistant key devices by it).
pub fn mac_address() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    // wlan0 before eth0 on a Pi Zero W; otherwise in name order.
    names.sort_by_key(|n| (!n.starts_with("wlan"), !n.starts_with("eth"), n.clone()));
    for n in names {
        if let Ok(a) = std::fs::read_to_string(format!("/sys/class/net/{n}/address")) {
            let hex: String = a.trim().chars().filter(|c| *c != ':').collect();
            if hex.len() == 12 && hex != "000000000000" {
                return hex.to_ascii_lowercase();
            }
        }
    }
    "000000000000".into()
}

/// The parts of the player's status the WLED view needs.
struct View {
    on: bool,
    bri: u8,
    index: Option<u32>,
    name: Option<String>,
    fps: u64,
}

fn view(ctx: &Ctx) -> View {
    let s = ctx.backend.status();
    let brightness = s.get("brightness").and_then(Value::as_f64).unwrap_or(1.0);
    View {
        on: s.get("state").and_then(Value::as_str) != Some("stopped"),
        bri: (brightness.clamp(0.0, 1.0) * 255.0).round() as u8,
        index: s
            .get("index")
            .and_then(Value::as_u64)
            .and_then(|i| u32::try_from(i).ok()),
        name: s.get("array").and_then(Value::as_str).map(str::to_string),
        fps: s.get("fps").and_then(Value::as_u64).unwrap_or(0),
    }
}

/// The widest array's LED count: it stays the same from array to array,
/// as a strip's length does (a change makes WLED clients fetch everything
/// again).
fn led_count(ctx: &Ctx, _v: &View) -> u32 {
    ctx.backend.library().max_leds()
}

fn state(ctx: &Ctx, v: &View) -> Value {
    let n = led_count(ctx, v);
    json!({
        "on": v.on,
        "bri": v.bri,
        "transition": 0,
        "ps": v.index.map(|i| i as i64 + 1).unwrap_or(-1),
        "pl": -1,
        "nl": {"on": false, "dur": 60, "mode": 1, "tbri": 0, "rem": -1},
        "udpn": {"send": false, "recv": false, "sgrp": 0, "rgrp": 0},
        "lor": 0,
        "mainseg": 0,
        "seg": [{
            "id": 0, "start": 0, "stop": n, "len": n, "grp": 1, "spc": 0, "of": 0,
            "on": v.on, "frz": false, "bri": 255, "cct": 127, "set": 0,
            "n": v.name.clone().unwrap_or_default(),
            "col": [[255, 255, 255], [0, 0, 0], [0, 0, 0]],
            "fx": 0, "sx": 128, "ix": 128, "pal": 0, "c1": 128, "c2": 128, "c3": 16,
            "sel": true, "rev": false, "mi": false, "o1": false, "o2": false, "o3": false,
            "si": 0, "m12": 0
        }]
    })
}

fn info(ctx: &Ctx, v: &View) -> Value {
    let n = led_count(ctx, v);
    json!({
        "ver": WLED_VERSION,
        "vid": 0,
        "name": "rowplay",
        "brand": "rowplay",
        "product": concat!("rowplay ", env!("CARGO_PKG_VERSION")),
        "arch": std::env::consts::ARCH,
        "core": "",
        "mac": ctx.mac,
        "leds": {
            "count": n, "pwr": 0, "fps": v.fps, "maxpwr": 0, "maxseg": 1,
            "lc": 1, "seglc": [1], "rgbw": false, "wv": false, "cct": false
        },
        "str": false,
        "live": false,
        "liveseg": -1,
        "lm": "",
        "lip": "",
        "ws": -1,
        "fxcount": EFFECTS.len(),
        "palcount": PALETTES.len(),
        "cpalcount": 0,
        "udpport": 0,
        "uptime": ctx.started.elapsed().as_secs(),
        "freeheap": 0,
        "fs": {"u": 0, "t": 0, "pmt": 0},
        "ndc": 0,
        "ip": "",
    })
}

/// The ids and names `/presets.json` lists: the configured names that the
/// library has, else the first 250 arrays.
pub fn presets(ctx: &Ctx) -> Vec<(u32, String)> {
    let lib = ctx.backend.library();
    if ctx.settings.wled_presets.is_empty() {
        (0..lib.len().min(MAX_PRESETS as u32))
            .map(|i| (i + 1, lib.name(i).to_string()))
            .collect()
    } else {
        ctx.settings
            .wled_presets
            .iter()
            .filter_map(|n| lib.find(n).map(|i| (i + 1, n.clone())))
            .take(MAX_PRESETS)
            .collect()
    }
}

/// Answer a WLED path (`seg` are its segments, doubled slashes removed).
pub fn handle(
    ctx: &mut Ctx,
    seg: &[&str],
    is_post: bool,
    head: &Head<'_>,
    body: &[u8],
) -> Response {
    if is_post {
        return post_state(ctx, head, body);
    }
    let v = view(ctx);
    let r = match seg {
        ["json"] => json!({
            "state": state(ctx, &v),
            "info": info(ctx, &v),
            "effects": EFFECTS,
            "palettes": PALETTES,
        }),
        ["json", "state"] => state(ctx, &v),
        ["json", "info"] => info(ctx, &v),
        ["json", "si"] => json!({ "state": state(ctx, &v), "info": info(ctx, &v) }),
        ["json", "effects"] | ["json", "eff"] => json!(EFFECTS),
        ["json", "palettes"] | ["json", "pal"] => json!(PALETTES),
        ["json", "fxdata"] => json!([""]),
        ["presets.json"] => {
            let mut m = Map::new();
            m.insert("0".into(), json!({}));
            for (id, name) in presets(ctx) {
                m.insert(id.to_string(), json!({ "n": name, "on": true, "bri": 0 }));
            }
            Value::Object(m)
        }
        _ => return Response::error(404, "no such WLED endpoint"),
    };
    Response::json(200, &r)
}

/// A POST body as a JSON object: JSON whatever the content type, else a
/// form (`on=true&bri=128`, values read as JSON where they parse, or a
/// single form key that is itself a JSON object).
pub fn body_object(body: &[u8]) -> Option<Map<String, Value>> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Some(Map::new());
    }
    if let Ok(v) = serde_json::from_slice::<Value>(trimmed) {
        return match v {
            Value::Object(m) => Some(m),
            _ => None,
        };
    }
    let mut m = Map::new();
    let (mut k, mut val) = (Vec::new(), Vec::new());
    for (rk, rv) in form_pairs(trimmed) {
        decode_component(rk, &mut k);
        decode_component(rv, &mut val);
        if val.is_empty() {
            if let Ok(Value::Object(inner)) = serde_json::from_slice::<Value>(&k) {
                m.extend(inner);
                continue;
            }
        }
        let key = String::from_utf8_lossy(&k).into_owned();
        let value = serde_json::from_slice::<Value>(&val)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&val).into_owned()));
        m.insert(key, value);
    }
    Some(m)
}

/// The control lines a state change maps onto, in the order they run
/// (preset first, so that `on` and `bri` apply to the new array).
pub fn lines_for(change: &Map<String, Value>, currently_on: bool) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for key in ["ps", "pl"] {
        // Strings ("1~5~" cycles) and other forms are accepted and ignored.
        if let Some(Value::Number(n)) = change.get(key) {
            match n.as_i64() {
                Some(id) if id >= 1 && id <= u32::MAX as i64 => {
                    lines.push(format!("play #{}", id - 1));
                    break;
                }
                // -1 (none) and 0 (WLED's "no preset") select nothing.
                Some(id) if id <= 0 => {}
                _ => return Err(format!("{key} {n} is not a preset id")),
            }
        }
    }
    if let Some(Value::Number(n)) = change.get("bri") {
        match n.as_f64() {
            Some(b) if (0.0..=255.0).contains(&b) => {
                lines.push(format!("brightness {:.4}", b / 255.0));
            }
            _ => return Err(format!("bri {n} outside 0..255")),
        }
    }
    let on = match change.get("on") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(t)) if t == "t" => Some(!currently_on),
        _ => None,
    };
    match on {
        Some(true) => lines.push("resume".into()),
        Some(false) => lines.push("stop".into()),
        None => {}
    }
    Ok(lines)
}

fn post_state(ctx: &mut Ctx, _head: &Head<'_>, body: &[u8]) -> Response {
    let Some(change) = body_object(body) else {
        return Response::error(400, "the body is neither a JSON object nor a form");
    };
    let mut v = view(ctx);
    let lines = match lines_for(&change, v.on) {
        Ok(l) => l,
        Err(e) => return Response::error(400, e),
    };
    for line in &lines {
        if let Err(e) = ctx.backend.command(line) {
            return Response::error(400, e);
        }
    }
    if change.get("v").and_then(Value::as_bool) != Some(true) {
        return Response::json(200, &json!({ "success": true }));
    }
    // The player applies commands at its next frame; answer with what was
    // asked for, which is what the state will be.
    for line in &lines {
        if let Some(i) = line.strip_prefix("play #").and_then(|n| n.parse().ok()) {
            v.index = Some(i);
            v.name = ctx.backend.library().info(i).map(|a| a.name.to_string());
        } else if let Some(b) = line
            .strip_prefix("brightness ")
            .and_then(|b| b.parse::<f64>().ok())
        {
            v.bri = (b * 255.0).round() as u8;
        } else if line == "resume" {
            v.on = true;
        } else if line == "stop" {
            v.on = false;
        }
    }
    Response::json(200, &state(ctx, &v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(s: &str) -> Map<String, Value> {
        body_object(s.as_bytes()).unwrap()
    }

    #[test]
    fn bodies_as_json_or_form() {
        assert_eq!(obj(r#"{"on":true,"bri":128}"#)["bri"], 128);
        let f = obj("on=true&bri=128&name=a+b");
        assert_eq!(f["on"], true);
        assert_eq!(f["bri"], 128);
        assert_eq!(f["name"], "a b");
        let k = obj("%7B%22on%22%3Afalse%7D");
        assert_eq!(k["on"], false);
        assert!(obj("").is_empty());
        assert_eq!(body_object(b"[1,2]"), None);
    }

    #[test]
    fn changes_become_control_lines() {
        let l = |s: &str, on| lines_for(&obj(s), on);
        assert_eq!(
            l(r#"{"bri":128,"on":true,"v":true}"#, false).unwrap(),
            ["brightness 0.5020", "resume"]
        );
        assert_eq!(l(r#"{"ps":2,"v":true}"#, true).unwrap(), ["play #1"]);
        assert_eq!(l(r#"{"pl":5}"#, true).unwrap(), ["play #4"]);
        assert_eq!(
            l(r#"{"ps":-1,"pl":-1}"#, true).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(l(r#"{"on":"t"}"#, true).unwrap(), ["stop"]);
        assert_eq!(l(r#"{"on":"t"}"#, false).unwrap(), ["resume"]);
        assert_eq!(
            l(r#"{"on":false,"bri":0}"#, true).unwrap(),
            ["brightness 0.0000", "stop"]
        );
        assert_eq!(
            l(r#"{"seg":[{"fx":3}],"tt":4,"nl":{"on":true}}"#, true).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            l(r#"{"bri":300}"#, true).unwrap_err(),
            "bri 300 outside 0..255"
        );
        assert_eq!(
            l(r#"{"ps":1.5}"#, true).unwrap_err(),
            "ps 1.5 is not a preset id"
        );
    }
}
