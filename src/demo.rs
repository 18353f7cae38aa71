//! The built-in demo library: a few animated patterns generated in-process,
//! so `rowplay play` with no arguments shows something on any machine.

use crate::import::{Array, NamedArray};

/// LEDs in each demo pattern.
pub const LEDS: u32 = 60;
/// Rows in each demo pattern: 4 s at 50 Hz.
pub const ROWS: u32 = 200;

/// The demo patterns, in playlist order.
pub fn arrays() -> Vec<NamedArray> {
    vec![
        make("rainbow", rainbow),
        make("comet", comet),
        make("breathing", breathing),
        make("fire", fire()),
        make("plasma", plasma),
    ]
}

fn make(name: &str, mut f: impl FnMut(u32, u32) -> [u8; 3]) -> NamedArray {
    let mut data = Vec::with_capacity((ROWS * LEDS * 3) as usize);
    for r in 0..ROWS {
        for l in 0..LEDS {
            data.extend_from_slice(&f(r, l));
        }
    }
    NamedArray {
        name: format!("demo/{name}"),
        array: Array {
            rows: ROWS,
            leds: LEDS,
            channels: 3,
            data,
        },
        period_ns: None,
    }
}

/// HSV (all 0..1) to RGB bytes.
pub fn hsv(h: f32, s: f32, v: f32) -> [u8; 3] {
    let h = h.rem_euclid(1.0) * 6.0;
    let i = h.floor();
    let f = h - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match i as u32 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [
        (r * 255.0).round() as u8,
        (g * 255.0).round() as u8,
        (b * 255.0).round() as u8,
    ]
}

fn rainbow(r: u32, l: u32) -> [u8; 3] {
    hsv(l as f32 / LEDS as f32 + r as f32 / ROWS as f32, 1.0, 1.0)
}

fn comet(r: u32, l: u32) -> [u8; 3] {
    // The head sweeps the strip twice per pattern; the tail fades behind it.
    let span = 2 * LEDS as i32;
    let head = (r as i32 * span * 2 / ROWS as i32) % span;
    let dist = (head - l as i32).rem_euclid(span);
    if dist > 20 {
        return [0, 0, 0];
    }
    let v = (1.0 - dist as f32 / 20.0).powi(2);
    hsv(
        0.55 + r as f32 / ROWS as f32 * 0.3,
        0.6 * (1.0 - v) + 0.2,
        v,
    )
}

fn breathing(r: u32, l: u32) -> [u8; 3] {
    let phase = r as f32 / ROWS as f32 * 2.0 * std::f32::consts::TAU;
    let v = 0.08 + 0.92 * (0.5 - 0.5 * phase.cos());
    hsv(0.8 + l as f32 / LEDS as f32 * 0.1, 0.7, v)
}

/// A classic fire simulation (heat cools, rises and sparks), with a fixed
/// seed so the demo is the same on every run.
fn fire() -> impl FnMut(u32, u32) -> [u8; 3] {
    let n = LEDS as usize;
    let mut heat = vec![0u8; n];
    let mut rng = fastrand::Rng::with_seed(0x2545_f491);
    let mut rnd = move |m: u32| rng.u32(..m.max(1));
    let mut last_row = u32::MAX;
    move |r, l| {
        if r != last_row {
            last_row = r;
            for h in heat.iter_mut() {
                *h = h.saturating_sub(rnd(12) as u8);
            }
            for k in (2..n).rev() {
                heat[k] = ((heat[k - 1] as u32 + 2 * heat[k - 2] as u32) / 3) as u8;
            }
            if rnd(255) < 140 {
                let y = rnd(7) as usize;
                heat[y] = heat[y].saturating_add(160 + rnd(95) as u8);
            }
        }
        let t = heat[l as usize] as u32 * 191 / 255;
        let ramp = ((t & 63) << 2) as u8;
        match t {
            0..=63 => [ramp, 0, 0],
            64..=127 => [255, ramp, 0],
            _ => [255, 255, ramp],
        }
    }
}

fn plasma(r: u32, l: u32) -> [u8; 3] {
    let x = l as f32 / LEDS as f32 * std::f32::consts::TAU;
    let t = r as f32 / ROWS as f32 * std::f32::consts::TAU;
    let v = (x * 2.0 + t).sin() + (x * 3.0 - t * 2.0).sin() + (x + t * 3.0).cos();
    hsv(v / 6.0 + 0.5 + t / 6.0, 0.9, 0.9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_arrays_are_full_and_distinct() {
        let a = arrays();
        assert_eq!(a.len(), 5);
        for x in &a {
            assert_eq!(x.array.data.len(), (ROWS * LEDS * 3) as usize);
            assert!(x.array.data.iter().any(|&b| b > 0), "{} is dark", x.name);
            // animated: the first row and the one a quarter in differ
            let row = (LEDS * 3) as usize;
            let mid = (ROWS / 4) as usize * row;
            assert_ne!(
                x.array.data[..row],
                x.array.data[mid..mid + row],
                "{}",
                x.name
            );
        }
    }

    #[test]
    fn hsv_primaries() {
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv(2.0 / 3.0, 1.0, 1.0), [0, 0, 255]);
        assert_eq!(hsv(0.5, 0.0, 0.5), [128, 128, 128]);
    }
}
