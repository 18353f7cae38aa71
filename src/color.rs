//! The colour pipeline (stub): brightness, gamma, white balance, current limit.

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
            ma_per_channel: 20.0,
            idle_ma_per_led: 1.0,
        }
    }
}

/// Lookup tables built once; applying them never allocates.
#[derive(Clone, Debug)]
pub struct Pipeline {
    settings: ColorSettings,
    out_channels: usize,
}

impl Pipeline {
    /// Build the tables for a strip with `out_channels` (3 or 4) per LED.
    pub fn new(settings: ColorSettings, out_channels: usize) -> Pipeline {
        Pipeline {
            settings,
            out_channels,
        }
    }
    /// Channels per LED of the output.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }
    /// Current brightness.
    pub fn brightness(&self) -> f32 {
        self.settings.brightness
    }
    /// Change brightness (clamped to 0..1). Rebuilds the tables in place; no allocation.
    pub fn set_brightness(&mut self, b: f32) {
        self.settings.brightness = b.clamp(0.0, 1.0);
    }
    /// Run one row through the pipeline. `src` holds `src_channels` (3 or 4)
    /// per LED; `out` holds `out_channels()` per LED. LEDs missing from `src`
    /// are black, extra ones are cut. Never allocates.
    pub fn apply(&self, src: &[u8], src_channels: usize, out: &mut [u8]) {
        out.fill(0);
        let n = (src.len() / src_channels).min(out.len() / self.out_channels);
        for i in 0..n {
            for c in 0..3 {
                out[i * self.out_channels + c] = src[i * src_channels + c];
            }
        }
    }
}
