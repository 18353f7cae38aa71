//! Control-socket line parser: any bytes give a request or a one-line error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::control::{parse_line, Request, Switch, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    // The server never hands over more than one line of MAX_LINE bytes, but
    // the parser is documented to take any bytes; give it a little more.
    let line = &data[..data.len().min(4 * MAX_LINE)];
    match parse_line(line) {
        Ok(Request::SetBrightness(x)) => assert!((0.0..=1.0).contains(&x)),
        Ok(Request::AddBrightness(x)) => assert!(x.is_finite()),
        Ok(Request::Switch(Switch::PlayName(n)) | Request::Wait(Switch::PlayName(n))) => {
            assert!(!n.is_empty())
        }
        Ok(_) => {}
        Err(e) => {
            let e = e.to_string();
            assert!(!e.is_empty() && !e.contains('\n'), "{e:?}")
        }
    }
});
