//! `.png` reader: any bytes give an RGB array or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::import::png;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = png::parse(data) {
        assert_eq!(a.channels, 3);
        assert_eq!(
            a.data.len() as u64,
            u64::from(a.rows) * u64::from(a.leds) * 3
        );
    }
});
