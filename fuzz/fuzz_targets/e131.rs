//! E1.31 parser, then the mux: any bytes give a packet or an error, and a
//! parsed packet applied to a strip never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::net::{e131, live_channel, Mapping, MuxConfig};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let map = Mapping::new(400, 4, 512, 1, 0, 0).unwrap();
    let (mut mux, mut view) = live_channel(map, MuxConfig::default());
    match e131::parse(data) {
        Ok(p) => {
            if let e131::Packet::Data(d) = &p {
                assert!(d.slots.len() <= 512 && d.name.len() <= 64);
                assert!(d.priority <= e131::MAX_PRIORITY);
                assert!((1..=e131::MAX_UNIVERSE).contains(&d.universe));
            }
            mux.on_e131(Ipv4Addr::LOCALHOST, &p, 1);
            mux.tick(10_000_000);
            let mut dst = [0u8; 1600];
            let _ = view.latest(&mut dst);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
