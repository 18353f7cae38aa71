//! Importers: `.npy`, `.npz` and `.png` files into u8 arrays.
//!
//! Every importer produces an [`Array`]: C-order `[rows][leds][channels]`
//! bytes, channels 3 (RGB) or 4 (RGBW). The conversion rules to u8 are
//! documented on [`npy`].

use std::fmt;
use std::path::{Path, PathBuf};

pub mod npy;
pub mod npz;
pub mod png;

/// Largest row (leds * channels bytes) rowplay accepts: far beyond any
/// SPI strip, small enough that a row always fits a loader slot.
pub const MAX_ROW_BYTES: usize = 1 << 20;

/// One array ready to be packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Array {
    /// Number of rows (frames).
    pub rows: u32,
    /// LEDs per row.
    pub leds: u32,
    /// 3 (RGB) or 4 (RGBW).
    pub channels: u8,
    /// `rows * leds * channels` bytes, C order.
    pub data: Vec<u8>,
}

/// An array with the name it is packed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedArray {
    /// `/`-separated name, see [`discover`].
    pub name: String,
    /// The pixels.
    pub array: Array,
}

/// How floats are mapped to u8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FloatMax {
    /// Floats are 0..1, scaled by 255 with rounding (the default).
    #[default]
    One,
    /// Floats are already 0..255.
    Full,
}

/// Options shared by all importers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// How floats map to u8.
    pub float_max: FloatMax,
}

/// What kind of input file a [`Source`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A `.npy` file.
    Npy,
    /// A `.npz` archive; each member becomes `name/member`.
    Npz,
    /// A `.png` image.
    Png,
}

/// One input file and the name its array(s) get.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The file.
    pub path: PathBuf,
    /// The array name (for `.npz`, the prefix of its members' names).
    pub name: String,
    /// The importer to use.
    pub kind: SourceKind,
}

/// An import failure: which file, and what is wrong with it.
#[derive(Debug)]
pub struct ImportError {
    /// The file (or folder) that failed.
    pub path: PathBuf,
    /// What failed.
    pub kind: ImportErrorKind,
}

/// What went wrong while importing.
#[derive(Debug)]
pub enum ImportErrorKind {
    /// Reading the file failed.
    Io(std::io::Error),
    /// A `.npy` (or `.npz` member) is malformed or unsupported.
    Npy(npy::NpyError),
    /// A `.npz` archive is malformed.
    Npz(String),
    /// A `.png` is malformed or unsupported.
    Png(String),
    /// An input path is neither a supported file nor a folder.
    Unsupported,
    /// A folder walk found a symlink loop.
    SymlinkLoop,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.kind {
            ImportErrorKind::Io(e) => write!(f, "{e}"),
            ImportErrorKind::Npy(e) => write!(f, "{e}"),
            ImportErrorKind::Npz(e) => write!(f, "bad .npz: {e}"),
            ImportErrorKind::Png(e) => write!(f, "bad .png: {e}"),
            ImportErrorKind::Unsupported => {
                write!(f, "not a .npy, .npz or .png file, nor a folder")
            }
            ImportErrorKind::SymlinkLoop => write!(f, "symlink loop in input folder"),
        }
    }
}

impl std::error::Error for ImportError {}

/// Expand the inputs into the list of files to import, in a deterministic
/// order: folders are walked recursively in sorted order; an array's name is
/// its path relative to the folder given, without extension, with `/`
/// separators; a file given directly is named by its file stem. Files with
/// other extensions inside folders are ignored.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<Source>, ImportError> {
    let _ = inputs;
    unimplemented_stub()
}

/// Read every array of one source (one for `.npy`/`.png`, one per member
/// for `.npz`, named `name/member`).
pub fn load(source: &Source, opts: &ImportOptions) -> Result<Vec<NamedArray>, ImportError> {
    let _ = (source, opts);
    unimplemented_stub()
}

fn unimplemented_stub<T>() -> Result<T, ImportError> {
    Err(ImportError {
        path: Path::new("").into(),
        kind: ImportErrorKind::Unsupported,
    })
}
