//! The colour pipeline: gamma, brightness, white balance, current limit.
//!
//! Everything per-value is a lookup table built once: one table per output
//! channel maps a source byte to `round(255 * (v/255)^gamma * brightness *
//! white_balance[c])`. Brightness comes after gamma so that it scales the
//! LED's linear PWM duty, which is what the eye and the supply both see.
//! [`Pipeline::set_brightness`] rebuilds the tables in place from the stored
//! gamma curve: no allocation, cheap enough for a control command.
//!
//! Channel mapping, when the source and the strip differ:
//! - an RGB source on an RGBW strip leaves W off (0): rowplay does not guess
//!   a white extraction, so the strip looks as the RGB array was drawn;
//! - an RGBW source on an RGB strip adds W to each of R, G and B (saturating
//!   at 255), the nearest an RGB LED gets to the white LED.
//!
//! The current limiter (off unless `max_current_ma` is set) estimates the
//! frame's draw as `idle_ma_per_led * leds + ma_per_channel * sum(values) /
//! 255` and, when that is over the budget, scales every value down by the same
//! factor so that the estimate fits. The defaults are 20 mA per channel at
//! full (the common 5050 RGB LED figure, 60 mA per white LED, as Adafruit's
//! NeoPixel guide uses) and 1 mA idle per LED (WLED's automatic brightness
//! limiter counts the same 1 mA per LED for the driver chip).
//!
//! No temporal dithering: at 50 Hz it would show as flicker.

use std::fmt;

/// Smallest and largest gamma accepted: beyond these the curve is useless
/// (everything full, or everything off but the top values).
pub const GAMMA_RANGE: (f32, f32) = (0.1, 5.0);
/// mA one channel draws at 255 by default (see the module docs).
pub const DEFAULT_MA_PER_CHANNEL: f32 = 20.0;
/// mA one dark LED draws by default (see the module docs).
pub const DEFAULT_IDLE_MA_PER_LED: f32 = 1.0;

/// Colour settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ColorSettings {
    /// 0..1.
    pub brightness: f32,
    /// 1.0 = off.
    pub gamma: f32,
    /// Per-channel multipliers R, G, B, W (0..1).
    pub white_balance: [f32; 4],
    /// Supply budget in mA; `None` = no limiter.
    pub max_current_ma: Option<u32>,
    /// mA one channel draws at full (255).
    pub ma_per_channel: f32,
    /// mA one LED draws when dark.
    pub idle_ma_per_led: f32,
}

impl Default for ColorSettings {
    fn default() -> Self {
        ColorSettings {
            brightness: 1.0,
            gamma: 1.0,
            white_balance: [1.0; 4],
            max_current_ma: None,
            ma_per_channel: DEFAULT_MA_PER_CHANNEL,
            idle_ma_per_led: DEFAULT_IDLE_MA_PER_LED,
        }
    }
}

/// A `[color]` value out of range.
#[derive(Clone, Debug, PartialEq)]
pub enum ColorError {
    /// Brightness outside 0..=1.
    Brightness(f32),
    /// Gamma outside [`GAMMA_RANGE`].
    Gamma(f32),
    /// `white_balance` without 3 or 4 values.
    WhiteBalanceLen(usize),
    /// A white balance value outside 0..=1.
    WhiteBalance(f32),
    /// `ma_per_channel` not above 0.
    MaPerChannel(f32),
    /// `idle_ma_per_led` below 0.
    IdleMa(f32),
}

impl fmt::Display for ColorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColorError::Brightness(v) => write!(f, "[color] brightness {v} is outside 0..1"),
            ColorError::Gamma(v) => write!(
                f,
                "[color] gamma {v} is outside {}..{}: use 2.2 for LEDs, 1.0 for off",
                GAMMA_RANGE.0, GAMMA_RANGE.1
            ),
            ColorError::WhiteBalanceLen(n) => write!(
                f,
                "[color] white_balance has {n} values: give [r, g, b] or [r, g, b, w]"
            ),
            ColorError::WhiteBalance(v) => {
                write!(f, "[color] white_balance value {v} is outside 0..1")
            }
            ColorError::MaPerChannel(v) => write!(
                f,
                "[color] ma_per_channel {v} must be above 0 (20 is typical)"
            ),
            ColorError::IdleMa(v) => write!(
                f,
                "[color] idle_ma_per_led {v} must be 0 or more (1 is typical)"
            ),
        }
    }
}

impl std::error::Error for ColorError {}

fn in_unit(v: f32) -> bool {
    (0.0..=1.0).contains(&v)
}

impl ColorSettings {
    /// Check every value is in range (NaN never is).
    pub fn validate(&self) -> Result<(), ColorError> {
        if !in_unit(self.brightness) {
            return Err(ColorError::Brightness(self.brightness));
        }
        if !(GAMMA_RANGE.0..=GAMMA_RANGE.1).contains(&self.gamma) {
            return Err(ColorError::Gamma(self.gamma));
        }
        if let Some(&w) = self.white_balance.iter().find(|w| !in_unit(**w)) {
            return Err(ColorError::WhiteBalance(w));
        }
        if !(self.ma_per_channel > 0.0 && self.ma_per_channel.is_finite()) {
            return Err(ColorError::MaPerChannel(self.ma_per_channel));
        }
        if !(self.idle_ma_per_led >= 0.0 && self.idle_ma_per_led.is_finite()) {
            return Err(ColorError::IdleMa(self.idle_ma_per_led));
        }
        Ok(())
    }

    /// The same settings with every value forced into range (NaN to the
    /// default), so that [`Pipeline::new`] can never build nonsense tables.
    fn sanitized(mut self) -> ColorSettings {
        let d = ColorSettings::default();
        let unit = |v: f32, default: f32| {
            if v.is_nan() {
                default
            } else {
                v.clamp(0.0, 1.0)
            }
        };
        self.brightness = unit(self.brightness, d.brightness);
        self.gamma = if self.gamma.is_nan() {
            d.gamma
        } else {
            self.gamma.clamp(GAMMA_RANGE.0, GAMMA_RANGE.1)
        };
        for w in &mut self.white_balance {
            *w = unit(*w, 1.0);
        }
        if !(self.ma_per_channel > 0.0 && self.ma_per_channel.is_finite()) {
            self.ma_per_channel = d.ma_per_channel;
        }
        if !(self.idle_ma_per_led >= 0.0 && self.idle_ma_per_led.is_finite()) {
            self.idle_ma_per_led = d.idle_ma_per_led;
        }
        self
    }
}

/// Lookup tables built once; applying them never allocates.
#[derive(Clone, Debug)]
pub struct Pipeline {
    settings: ColorSettings,
    out_channels: usize,
    /// `(v/255)^gamma`, kept so brightness changes need no `powf`.
    curve: [f32; 256],
    /// Per output channel: source byte -> output byte.
    lut: [[u8; 256]; 4],
}

impl Pipeline {
    /// Build the tables for a strip with `out_channels` (3 or 4) per LED.
    /// Out-of-range settings are forced into range (check them first with
    /// [`ColorSettings::validate`] to report them); other channel counts
    /// are taken as 3.
    pub fn new(settings: ColorSettings, out_channels: usize) -> Pipeline {
        let settings = settings.sanitized();
        let mut curve = [0f32; 256];
        for (v, c) in curve.iter_mut().enumerate() {
            *c = (v as f32 / 255.0).powf(settings.gamma);
        }
        let mut p = Pipeline {
            settings,
            out_channels: if out_channels == 4 { 4 } else { 3 },
            curve,
            lut: [[0; 256]; 4],
        };
        p.build_luts();
        p
    }

    fn build_luts(&mut self) {
        for (c, lut) in self.lut.iter_mut().enumerate() {
            let scale = 255.0 * self.settings.brightness * self.settings.white_balance[c];
            for (out, &curve) in lut.iter_mut().zip(&self.curve) {
                *out = (curve * scale).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Channels per LED of the output.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The settings in use (after forcing into range).
    pub fn settings(&self) -> &ColorSettings {
        &self.settings
    }

    /// Current brightness.
    pub fn brightness(&self) -> f32 {
        self.settings.brightness
    }

    /// Change brightness (clamped to 0..1; NaN = 0). Rebuilds the tables in
    /// place; no allocation.
    pub fn set_brightness(&mut self, b: f32) {
        self.settings.brightness = if b.is_nan() { 0.0 } else { b.clamp(0.0, 1.0) };
        self.build_luts();
    }

    /// Estimated draw of a pipeline output frame in mA (see the module docs).
    pub fn estimate_ma(&self, out: &[u8]) -> f32 {
        let leds = out.len() / self.out_channels;
        let sum: u64 = out.iter().map(|&v| u64::from(v)).sum();
        self.settings.idle_ma_per_led * leds as f32
            + self.settings.ma_per_channel * sum as f32 / 255.0
    }

    /// Run one row through the pipeline. `src` holds `src_channels` (3 or 4)
    /// per LED; `out` holds `out_channels()` per LED. LEDs missing from `src`
    /// are black, extra ones are cut. Never allocates.
    pub fn apply(&self, src: &[u8], src_channels: usize, out: &mut [u8]) {
        let oc = self.out_channels;
        out.fill(0);
        if src_channels == 0 {
            return;
        }
        let mut sum: u64 = 0;
        for (s, o) in src.chunks_exact(src_channels).zip(out.chunks_exact_mut(oc)) {
            // An RGBW source on an RGB strip folds W into R, G and B.
            let fold = if oc == 3 {
                s.get(3).copied().unwrap_or(0)
            } else {
                0
            };
            for (c, o) in o.iter_mut().enumerate() {
                let v = s.get(c).copied().unwrap_or(0).saturating_add(fold);
                *o = self.lut[c][v as usize];
                sum += u64::from(*o);
            }
        }
        self.limit(sum, out);
    }

    /// Scale `out` (whose values add up to `sum`) into the current budget.
    fn limit(&self, sum: u64, out: &mut [u8]) {
        let Some(budget) = self.settings.max_current_ma else {
            return;
        };
        let leds = (out.len() / self.out_channels) as f64;
        let idle = f64::from(self.settings.idle_ma_per_led) * leds;
        let per_unit = f64::from(self.settings.ma_per_channel) / 255.0;
        // The most value units the budget left after idle draw allows.
        let allowed = ((f64::from(budget) - idle) / per_unit).floor().max(0.0) as u64;
        if sum <= allowed {
            return;
        }
        // Flooring each value keeps the new sum <= sum * allowed / sum.
        for v in out.iter_mut() {
            *v = (u64::from(*v) * allowed / sum) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(p: &Pipeline, src: &[u8], src_ch: usize, leds: usize) -> Vec<u8> {
        let mut out = vec![0xAA; leds * p.out_channels()];
        p.apply(src, src_ch, &mut out);
        out
    }

    #[test]
    fn identity_by_default() {
        let p = Pipeline::new(ColorSettings::default(), 3);
        let src: Vec<u8> = (0..=255).collect::<Vec<u8>>()[..255].to_vec();
        assert_eq!(run(&p, &src, 3, 85), src);
    }

    #[test]
    fn gamma_brightness_and_white_balance_values() {
        // Gamma 2.0: 128 -> 255 * (128/255)^2 = 64.25 -> 64; 255 -> 255.
        // Brightness 0.5 then: 32.1 -> 32, 127.5 -> 128 (round half away).
        // White balance B 0.5 on top: 64.25*0.25 = 16.06 -> 16.
        let s = ColorSettings {
            gamma: 2.0,
            ..ColorSettings::default()
        };
        let mut p = Pipeline::new(s, 3);
        assert_eq!(run(&p, &[128, 255, 0], 3, 1), [64, 255, 0]);
        p.set_brightness(0.5);
        assert_eq!(p.brightness(), 0.5);
        assert_eq!(run(&p, &[128, 255, 0], 3, 1), [32, 128, 0]);
        let s = ColorSettings {
            gamma: 2.0,
            brightness: 0.5,
            white_balance: [1.0, 1.0, 0.5, 1.0],
            ..ColorSettings::default()
        };
        assert_eq!(run(&Pipeline::new(s, 3), &[0, 0, 128], 3, 1), [0, 0, 16]);
    }

    #[test]
    fn set_brightness_clamps_and_rejects_nan() {
        let mut p = Pipeline::new(ColorSettings::default(), 3);
        p.set_brightness(7.0);
        assert_eq!(p.brightness(), 1.0);
        p.set_brightness(f32::NAN);
        assert_eq!(p.brightness(), 0.0);
        assert_eq!(run(&p, &[255, 255, 255], 3, 1), [0, 0, 0]);
    }

    #[test]
    fn missing_leds_are_black_and_extra_ones_cut() {
        let p = Pipeline::new(ColorSettings::default(), 3);
        assert_eq!(run(&p, &[1, 2, 3], 3, 2), [1, 2, 3, 0, 0, 0]);
        assert_eq!(run(&p, &[1, 2, 3, 4, 5, 6, 7], 3, 1), [1, 2, 3]);
        assert_eq!(run(&p, &[1, 2, 3], 0, 1), [0, 0, 0]);
    }

    #[test]
    fn rgb_on_rgbw_leaves_w_off_and_rgbw_on_rgb_adds_w() {
        let rgbw = Pipeline::new(ColorSettings::default(), 4);
        assert_eq!(run(&rgbw, &[1, 2, 3], 3, 1), [1, 2, 3, 0]);
        assert_eq!(run(&rgbw, &[1, 2, 3, 4], 4, 1), [1, 2, 3, 4]);
        let rgb = Pipeline::new(ColorSettings::default(), 3);
        assert_eq!(run(&rgb, &[10, 250, 3, 20], 4, 1), [30, 255, 23]);
    }

    #[test]
    fn limiter_scales_full_white_into_the_budget() {
        let s = ColorSettings {
            max_current_ma: Some(2000),
            ..ColorSettings::default()
        };
        let p = Pipeline::new(s, 3);
        let out = run(&p, &[255; 900], 3, 300);
        // 300 LEDs full white would be 300 * (1 + 3 * 20) = 18300 mA.
        let ma = p.estimate_ma(&out);
        assert!(ma <= 2000.0, "{ma}");
        // Scaled, not blanked: idle 300 mA, so ~1700 mA of colour is left.
        assert!(ma > 1950.0, "{ma}");
        assert!(out.iter().all(|&v| v == out[0]), "scaled evenly");
    }

    #[test]
    fn limiter_leaves_a_dim_frame_alone() {
        let limited = Pipeline::new(
            ColorSettings {
                max_current_ma: Some(2000),
                ..ColorSettings::default()
            },
            3,
        );
        let src: Vec<u8> = (0..900).map(|i| (i % 20) as u8).collect();
        // 300 mA idle + at most 900 * 19 * 20 / 255 = 1341 mA of colour.
        let out = run(&limited, &src, 3, 300);
        assert_eq!(out, src);
    }

    #[test]
    fn limiter_below_idle_draw_blanks() {
        let s = ColorSettings {
            max_current_ma: Some(100),
            ..ColorSettings::default()
        };
        let p = Pipeline::new(s, 4);
        assert!(run(&p, &[255; 1200], 4, 300).iter().all(|&v| v == 0));
    }
}
