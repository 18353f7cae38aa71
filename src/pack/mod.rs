//! The `.rowpack` format (being written).
