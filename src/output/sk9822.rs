//! sk9822 encoding (stub).
