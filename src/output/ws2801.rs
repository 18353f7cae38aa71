//! ws2801 encoding (stub).
