//! `.fseq` reader: any bytes give a sequence within the limits or an error,
//! with or without a channel selection. The output limit stands in for the
//! machine's memory, so an allocation sized from a header claim beyond it
//! is an error, never an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::import::fseq::{self, Options};
use rowplay::import::MAX_ROW_BYTES;

const LIMIT: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let sel = data.last().map(|&x| (1 + x as u32 % 40, 1 + x as u32 % 13));
    for (channels, rgbw) in [(None, false), (sel, data.len() % 2 == 0)] {
        let opts = Options {
            channels,
            rgbw,
            max_bytes: Some(LIMIT),
        };
        if let Ok(s) = fseq::parse(data, &opts) {
            let a = &s.array;
            let row = a.leds as u64 * a.channels as u64;
            assert!(a.rows >= 1 && a.leds >= 1);
            assert_eq!(a.channels, if rgbw { 4 } else { 3 });
            assert!(row <= MAX_ROW_BYTES as u64);
            assert_eq!(a.data.len() as u64, a.rows as u64 * row);
            assert!(a.data.len() as u64 <= LIMIT);
        }
    }
});
