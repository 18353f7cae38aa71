//! `.npy` header and data reader: any bytes give an array or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::import::{npy, FloatMax, ImportOptions, MAX_ROW_BYTES};

fuzz_target!(|data: &[u8]| {
    // The last byte picks the float mapping, so both paths are exercised
    // without changing how the rest of the file is read.
    let float_max = match data.last() {
        Some(b) if b & 1 == 1 => FloatMax::Full,
        _ => FloatMax::One,
    };
    if let Ok(a) = npy::parse(data, &ImportOptions {
        float_max,
        ..ImportOptions::default()
    }) {
        assert!(a.channels == 3 || a.channels == 4);
        assert!(a.rows >= 1 && a.leds >= 1);
        assert!(a.leds as usize * a.channels as usize <= MAX_ROW_BYTES);
        assert_eq!(
            a.data.len() as u64,
            u64::from(a.rows) * u64::from(a.leds) * u64::from(a.channels)
        );
    }
});
