//! `rowplay selftest` (stub).
