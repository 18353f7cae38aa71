//! HTTP request heads, query strings and form bodies: any bytes give a
//! head, "need more", or an error with a status code; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rowplay::http::request::{
    bearer, decode_component, form_pairs, parse_head, query_value, segments, MAX_BODY, MAX_HEAD,
};

fuzz_target!(|data: &[u8]| {
    // The server never holds more than a head and a body.
    let data = &data[..data.len().min(MAX_HEAD + MAX_BODY + 1)];
    let mut out = Vec::new();
    match parse_head(data) {
        Ok(Some(h)) => {
            assert!(h.head_len <= data.len() && h.head_len <= MAX_HEAD);
            assert!(h.content_length <= MAX_BODY);
            assert!(h.path.starts_with('/') || h.path == "*");
            for s in segments(h.path) {
                assert!(!s.is_empty() && !s.contains('/'));
            }
            let _ = query_value(h.query, "q", &mut out);
            assert!(out.len() <= h.query.len());
            let _ = bearer(h.authorization);
        }
        Ok(None) => assert!(data.len() <= MAX_HEAD),
        Err(e) => assert!((400..600).contains(&e.status())),
    }
    // The same bytes as a form body.
    for (k, v) in form_pairs(data) {
        decode_component(k, &mut out);
        assert!(out.len() <= k.len());
        decode_component(v, &mut out);
        assert!(out.len() <= v.len());
    }
});
