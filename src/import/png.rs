//! `.png` reading (stub).
