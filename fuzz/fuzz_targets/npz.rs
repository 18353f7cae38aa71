//! `.npz` reader (zip container, then each member through the `.npy` reader).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::import::{npz, ImportOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(arrays) = npz::parse(data, "p", &ImportOptions::default()) {
        assert!(!arrays.is_empty());
        for a in &arrays {
            assert!(a.name.starts_with("p/") && a.name.len() > 2);
            let x = &a.array;
            assert_eq!(
                x.data.len() as u64,
                u64::from(x.rows) * u64::from(x.leds) * u64::from(x.channels)
            );
        }
    }
});
