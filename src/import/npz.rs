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
            period_ns: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

    fn parse_file(rel: &str) -> Result<Vec<NamedArray>, NpzError> {
        let bytes = std::fs::read(format!("{FIXTURES}{rel}")).unwrap();
        parse(&bytes, "pre", &ImportOptions::default())
    }

    #[test]
    fn members_are_named_prefix_slash_stem() {
        for rel in ["npz/savez.npz", "npz/compressed.npz"] {
            let arrays = parse_file(rel).unwrap();
            let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
            assert_eq!(names, ["pre/a", "pre/b"], "{rel}");
            let shapes: Vec<_> = arrays
                .iter()
                .map(|a| (a.array.rows, a.array.leds, a.array.channels))
                .collect();
            // b is (3, 4) f4: a 2-D array ending in 4 is one RGBW row.
            assert_eq!(shapes, [(2, 3, 3), (1, 3, 4)], "{rel}");
        }
    }

    #[test]
    fn corrupt_zip() {
        assert!(matches!(
            parse_file("broken/cut.npz"),
            Err(NpzError::Zip(_))
        ));
        assert!(matches!(
            parse_file("broken/truncated.npy"),
            Err(NpzError::Zip(_))
        ));
    }

    #[test]
    fn member_not_npy() {
        match parse_file("broken/not_npy.npz") {
            Err(NpzError::NotNpy(m)) => assert_eq!(m, "readme.txt"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_member_is_named() {
        match parse_file("broken/bad_member.npz") {
            Err(NpzError::Member { member, error }) => {
                assert_eq!(member, "bad.npy");
                assert_eq!(
                    error,
                    NpyError::Truncated {
                        expected: 60,
                        actual: 59
                    }
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lying_size_stops_one_byte_past_the_claim() {
        match parse_file("broken/lying_size.npz") {
            Err(NpzError::SizeMismatch {
                member,
                declared,
                actual,
            }) => {
                assert_eq!(member, "liar.npy");
                assert_eq!((declared, actual), (100, 101));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_archive_has_no_arrays() {
        // The 22-byte end-of-central-directory record alone: an empty zip,
        // what `np.savez(f)` writes with no arrays.
        let mut eocd = b"PK\x05\x06".to_vec();
        eocd.extend_from_slice(&[0; 18]);
        assert!(matches!(
            parse(&eocd, "p", &ImportOptions::default()),
            Err(NpzError::NoArrays)
        ));
    }

    proptest! {
        #[test]
        fn never_panics_on_mutated_archives(
            file in prop::sample::select(vec!["savez.npz", "compressed.npz"]),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = std::fs::read(format!("{FIXTURES}npz/{file}")).unwrap();
            for (at, b) in edits {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
            let _ = parse(&bytes, "p", &ImportOptions::default());
        }
    }
}
