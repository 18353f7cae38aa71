//! Art-Net parser, then the mux: any bytes give a packet or an error, and
//! a parsed packet applied to a strip never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::net::{artnet, live_channel, Mapping, MuxConfig};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let map = Mapping::new(400, 3, 510, 1, 0, 0).unwrap();
    let (mut mux, mut view) = live_channel(map, MuxConfig::default());
    match artnet::parse(data) {
        Ok(p) => {
            if let artnet::Packet::Dmx(d) = &p {
                assert!(!d.slots.is_empty() && d.slots.len() <= artnet::MAX_SLOTS);
                assert!(d.port_address <= 0x7FFF);
            }
            mux.on_artnet(Ipv4Addr::LOCALHOST, &p, 1);
            mux.tick(10_000_000);
            let mut dst = [0u8; 1200];
            let _ = view.latest(&mut dst);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
