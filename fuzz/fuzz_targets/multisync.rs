//! MultiSync datagram parser: any bytes give a packet or a typed error,
//! and a parsed SYNC encodes back to the same bytes it was read from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::sync::packet::{encode_sync, parse, Packet, MAX_NAME, MAX_SECONDS, MAX_SYNC_LEN};

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(2048)];
    match parse(data) {
        Ok(Packet::Sync(s)) => {
            assert!(!s.file.is_empty() && s.file.len() <= MAX_NAME);
            assert!(s.seconds >= 0.0 && s.seconds <= MAX_SECONDS);
            let mut out = [0u8; MAX_SYNC_LEN];
            let n = encode_sync(&mut out, s.sync_type, s.file_type, s.frame, s.seconds, s.file, "")
                .expect("a parsed SYNC encodes");
            assert_eq!(parse(&out[..n]), Ok(Packet::Sync(s)));
        }
        Ok(_) => {}
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
});
