//! The `.rowpack` file: [`format`] specifies the bytes, [`write`] packs
//! inputs into it. Reading goes through [`crate::library`], which validates
//! with [`format::parse_header`] and [`format::parse_index`].

pub mod format;
pub mod write;

pub use format::{Entry, FormatError, Header};
pub use write::{pack, pack_arrays, pack_sources, PackError, PackOptions, PackReport};
