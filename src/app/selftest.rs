//! `rowplay selftest spi|leds`.

use super::{load_config, settings, AppError};
use crate::cli::{SelftestArgs, SelftestKind};
use crate::color::Pipeline;
use crate::control::signals::{self, Hangup};
use crate::output::chip::Encoder;
use crate::output::spi::{self, SpiParams};
use crate::selftest;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Run the self-test the arguments name.
pub fn run(a: SelftestArgs) -> Result<(), AppError> {
    let cfg = load_config(a.config.as_deref())?;
    let s = settings::selftest(&a, &cfg)?;
    let encoder = Encoder::try_new(s.chip, s.leds)?;
    let params = SpiParams {
        bus: s.spi.bus,
        cs: s.spi.cs,
        hz: s.chip.spi_hz(),
        mode: s.spi.mode,
    };
    match a.what {
        SelftestKind::Spi => {
            let report = selftest::spi_loopback(&params, &encoder, a.frames)?;
            println!("ok: {report}");
        }
        SelftestKind::Leds => {
            let pipe = Pipeline::new(s.color, encoder.channels());
            let mut out = spi::SpiOutput::open(&params, encoder)?;
            let stop = Arc::new(AtomicBool::new(false));
            signals::install(stop.clone(), stop.clone(), Hangup::Stop);
            println!(
                "walking red, green, blue and white along {} LEDs (Ctrl-C to stop)",
                s.leds
            );
            selftest::leds_walk(
                &mut out,
                &pipe,
                s.leds,
                std::time::Duration::from_millis(50),
                &stop,
            )?;
        }
    }
    Ok(())
}
