//! `.npy` reading. (Stub: conversion rules documented here once implemented.)

use std::fmt;

/// A malformed or unsupported `.npy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NpyError {
    /// Placeholder.
    Unsupported(&'static str),
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpyError::Unsupported(s) => write!(f, "{s}"),
        }
    }
}

/// Parse a whole `.npy` file held in memory into an [`super::Array`].
pub fn parse(bytes: &[u8], opts: &super::ImportOptions) -> Result<super::Array, NpyError> {
    let _ = (bytes, opts);
    Err(NpyError::Unsupported("not implemented"))
}
