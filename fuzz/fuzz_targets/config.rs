//! Config parser: any text gives a config or a one-line error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = config::parse(text) {
        assert!(!e.contains('\n'), "{e:?}");
    }
});
