//! `.npz` reading: archives written by `np.savez` (stored members) and
//! `np.savez_compressed` (deflated members).
//!
//! Every member `x.npy` becomes an array named `<source name>/x`; a member
//! whose name does not end in `.npy` is an error (`np.savez` never writes
//! one, so the archive was made some other way).
//!
//! Zip sizes are claims, not facts: each member is read through
//! `Read::take(declared + 1)`, so a member that decompresses to more than it
//! declared is caught after one extra byte, and all members together may
//! not declare or produce more than [`MAX_NPZ_BYTES`]. A zip bomb or a lying
//! header therefore cannot make the importer allocate without bound.

use std::fmt;
use std::io::{Cursor, Read};

use super::npy::{self, NpyError};
use super::{ImportOptions, NamedArray};

/// Most uncompressed bytes read from one `.npz`, over all its members:
/// 1 GiB is twice the RAM of a Pi Zero, and a library of that size is far
/// better split into several files.
pub const MAX_NPZ_BYTES: u64 = 1 << 30;

/// A malformed `.npz`.
#[derive(Debug)]
pub enum NpzError {
    /// The zip structure is corrupt or unsupported (message from the zip
    /// reader).
    Zip(String),
    /// The archive holds no members.
    NoArrays,
    /// A member whose name does not end in `.npy`.
    NotNpy(String),
    /// A member decompressed to a different size than its header declared.
    SizeMismatch {
        /// Member name.
        member: String,
        /// Size the zip header declared.
        declared: u64,
        /// Bytes actually read (at most `declared + 1`).
        actual: u64,
    },
    /// The members together exceed [`MAX_NPZ_BYTES`] uncompressed.
    TooLarge {
        /// The member at which the limit was crossed.
        member: String,
    },
    /// Reading a member failed (bad deflate data, CRC mismatch).
    Read {
        /// Member name.
        member: String,
        /// What the zip reader reported.
        message: String,
    },
    /// A member is not a valid `.npy`.
    Member {
        /// Member name.
        member: String,
        /// What is wrong with it.
        error: NpyError,
    },
}

impl fmt::Display for NpzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NpzError::Zip(m) => write!(f, "corrupt zip archive ({m}); re-save it with np.savez"),
            NpzError::NoArrays => write!(f, "archive holds no arrays"),
            NpzError::NotNpy(m) => write!(
                f,
                "member {m:?} is not a .npy; an .npz from np.savez holds only .npy members"
            ),
            NpzError::SizeMismatch {
                member,
                declared,
                actual,
            } => write!(
                f,
                "member {member:?} declares {declared} bytes but holds {actual}{}; \
                 the archive is corrupt",
                if actual > declared { " or more" } else { "" }
            ),
            NpzError::TooLarge { member } => write!(
                f,
                "members up to {member:?} exceed {MAX_NPZ_BYTES} bytes uncompressed; \
                 split the archive"
            ),
            NpzError::Read { member, message } => {
                write!(
                    f,
                    "member {member:?} cannot be read ({message}); the archive is corrupt"
                )
            }
            NpzError::Member { member, error } => write!(f, "member {member:?}: {error}"),
        }
    }
}

impl std::error::Error for NpzError {}

/// Parse a whole `.npz` held in memory; each member `x.npy` becomes an
/// array named `<prefix>/x`, in archive order.
pub fn parse(
    bytes: &[u8],
    prefix: &str,
    opts: &ImportOptions,
) -> Result<Vec<NamedArray>, NpzError> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| NpzError::Zip(e.to_string()))?;
    if archive.is_empty() {
        return Err(NpzError::NoArrays);
    }
    let mut budget = MAX_NPZ_BYTES;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive
            .by_index(i)
            .map_err(|e| NpzError::Zip(e.to_string()))?;
        let member = file.name().to_owned();
        let stem = match member.strip_suffix(".npy") {
            Some(stem) if !stem.is_empty() => stem.to_owned(),
            _ => return Err(NpzError::NotNpy(member)),
        };
        let declared = file.size();
        if declared > budget {
            return Err(NpzError::TooLarge { member });
        }
        // No preallocation from the declared size: the buffer grows only
        // as real bytes arrive, and stops one byte past the claim.
        let mut data = Vec::new();
        file.take(declared + 1)
            .read_to_end(&mut data)
            .map_err(|e| NpzError::Read {
                member: member.clone(),
                message: e.to_string(),
            })?;
        let actual = data.len() as u64;
        if actual != declared {
            return Err(NpzError::SizeMismatch {
                member,
                declared,
                actual,
            });
        }
        budget -= declared;
        let array = npy::parse(&data, opts).map_err(|error| NpzError::Member {
            member: member.clone(),
            error,
        })?;
        out.push(NamedArray {
            name: format!("{prefix}/{stem}"),
            array,
        });
    }
    Ok(out)
}
