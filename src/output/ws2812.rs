//! ws2812 encoding (stub).
