//! Built-in board profiles from `boards/*.toml` (stub).
