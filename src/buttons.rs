//! GPIO buttons (stub).
