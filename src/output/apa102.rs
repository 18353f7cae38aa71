//! apa102 encoding (stub).
