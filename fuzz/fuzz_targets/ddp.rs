//! DDP parser, then the mux: any bytes give a packet or an error, and a
//! parsed packet applied to a strip never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::net::{ddp, live_channel, Mapping, MuxConfig};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let map = Mapping::new(500, 3, 510, 1, 0, 6).unwrap();
    let (mut mux, mut view) = live_channel(map, MuxConfig::default());
    match ddp::parse(data) {
        Ok(p) => {
            assert!(p.data.len() <= ddp::MAX_DATA && p.data.len() <= data.len());
            assert!(p.sequence < 16);
            mux.on_ddp(Ipv4Addr::LOCALHOST, &p, 1);
            mux.tick(10_000_000);
            let mut dst = [0u8; 1500];
            let _ = view.latest(&mut dst);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
