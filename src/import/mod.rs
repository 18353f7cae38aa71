//! Importers: `.npy`, `.npz`, `.png` and `.fseq` files into u8 arrays.
//!
//! Every importer produces an [`Array`]: C-order `[rows][leds][channels]`
//! bytes, channels 3 (RGB) or 4 (RGBW). The conversion rules to u8 are
//! documented on [`npy`].

use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub mod fseq;
pub mod npy;
pub mod npz;
pub mod png;

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
    /// Frame period in nanoseconds, if the array has a rate of its own
    /// (a `.fseq` step time, or `--fps` at pack time).
    pub period_ns: Option<u64>,
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
    /// Frame period recorded for `.npy`, `.npz` and `.png` arrays (`.fseq`
    /// files carry their own step time).
    pub period_ns: Option<u64>,
    /// `.fseq`: the channels to take, as (1-based start, count) in the
    /// show's channel numbers; `None` takes every channel the file stores.
    pub fseq_channels: Option<(u32, u32)>,
    /// `.fseq`: 4 channels per LED (RGBW) instead of 3.
    pub rgbw: bool,
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
    /// An xLights / FPP `.fseq` sequence.
    Fseq,
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

/// Largest row accepted, in bytes (`leds * channels`): 1 MiB is about
/// 350,000 RGB LEDs, far beyond any strip a Pi can drive at 50 Hz, and keeps
/// one row's buffers small on a 512 MB Pi Zero.
pub const MAX_ROW_BYTES: usize = 1 << 20;

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
    /// A `.npy` is malformed or unsupported.
    Npy(npy::NpyError),
    /// A `.npz` archive (or one of its members) is malformed.
    Npz(npz::NpzError),
    /// A `.png` is malformed or unsupported.
    Png(png::PngError),
    /// A `.fseq` is malformed, unsupported or too large.
    Fseq(fseq::FseqError),
    /// An input path is neither a supported file nor a folder.
    Unsupported,
    /// A folder walk found a symlink loop.
    SymlinkLoop,
    /// A path under an input folder (or an input file's stem) is not valid
    /// UTF-8, so it cannot become an array name.
    NonUtf8Name,
    /// The file is empty.
    EmptyFile,
    /// The path to load is a directory.
    IsDirectory,
    /// The path to load is not a regular file (a FIFO, socket or device).
    NotAFile,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        match &self.kind {
            ImportErrorKind::Io(e) => write!(f, "{e}"),
            ImportErrorKind::Npy(e) => write!(f, "{e}"),
            ImportErrorKind::Npz(e) => write!(f, "bad .npz: {e}"),
            ImportErrorKind::Png(e) => write!(f, "bad .png: {e}"),
            ImportErrorKind::Fseq(e) => write!(f, "bad .fseq: {e}"),
            ImportErrorKind::Unsupported => {
                write!(f, "not a .npy, .npz, .png or .fseq file, nor a folder")
            }
            ImportErrorKind::SymlinkLoop => write!(
                f,
                "symlink loop in input folder (a link points back to a folder above it); \
                 remove the link"
            ),
            ImportErrorKind::NonUtf8Name => write!(
                f,
                "path is not valid UTF-8, so it cannot be an array name; rename it"
            ),
            ImportErrorKind::EmptyFile => write!(f, "file is empty (0 bytes); re-export it"),
            ImportErrorKind::IsDirectory => {
                write!(
                    f,
                    "is a directory, expected a .npy, .npz, .png or .fseq file"
                )
            }
            ImportErrorKind::NotAFile => write!(
                f,
                "not a regular file (FIFO, socket or device); give a .npy, .npz, .png or .fseq file"
            ),
        }
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ImportErrorKind::Io(e) => Some(e),
            ImportErrorKind::Npy(e) => Some(e),
            ImportErrorKind::Npz(e) => Some(e),
            ImportErrorKind::Png(e) => Some(e),
            ImportErrorKind::Fseq(e) => Some(e),
            _ => None,
        }
    }
}

fn error(path: &Path, kind: ImportErrorKind) -> ImportError {
    ImportError {
        path: path.to_path_buf(),
        kind,
    }
}

/// The importer for a file name, by extension (case-insensitive).
fn kind_of(path: &Path) -> Option<SourceKind> {
    let ext = path.extension()?.to_str()?;
    if ext.eq_ignore_ascii_case("npy") {
        Some(SourceKind::Npy)
    } else if ext.eq_ignore_ascii_case("npz") {
        Some(SourceKind::Npz)
    } else if ext.eq_ignore_ascii_case("png") {
        Some(SourceKind::Png)
    } else if ext.eq_ignore_ascii_case("fseq") {
        Some(SourceKind::Fseq)
    } else {
        None
    }
}

/// Expand the inputs into the list of files to import, in a deterministic
/// order.
///
/// - A file given directly must be `.npy`, `.npz`, `.png` or `.fseq` (extension
///   matched case-insensitively), else [`ImportErrorKind::Unsupported`]; it
///   is named by its file stem.
/// - A folder is walked recursively, following symlinks (a symlink loop is
///   [`ImportErrorKind::SymlinkLoop`]). Hidden entries (name starting with
///   `.`) and files with other extensions are skipped. An array's name is
///   its path relative to the folder given, without extension, with `/`
///   separators. Sources from one folder are sorted by the bytes of their
///   relative path.
/// - Inputs keep the order they were given in.
///
/// Only paths are listed (nothing is read); at most one directory is open
/// at a time. Duplicate names are not detected here.
pub fn discover(inputs: &[PathBuf]) -> Result<Vec<Source>, ImportError> {
    let mut out = Vec::new();
    for input in inputs {
        let meta = fs::metadata(input).map_err(|e| error(input, ImportErrorKind::Io(e)))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let mut ancestors = Vec::new();
            walk(input, input, &mut ancestors, &mut found)?;
            found.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(found.into_iter().map(|(_, source)| source));
        } else {
            let kind = kind_of(input).ok_or_else(|| error(input, ImportErrorKind::Unsupported))?;
            let name = input
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| error(input, ImportErrorKind::NonUtf8Name))?;
            out.push(Source {
                path: input.clone(),
                name: name.to_owned(),
                kind,
            });
        }
    }
    Ok(out)
}

/// Walk `dir` (under `root`), appending `(relative path, source)` pairs.
/// `ancestors` holds the (device, inode) of every directory on the current
/// path, which is how a symlink pointing back up is recognised.
fn walk(
    root: &Path,
    dir: &Path,
    ancestors: &mut Vec<(u64, u64)>,
    found: &mut Vec<(String, Source)>,
) -> Result<(), ImportError> {
    let meta = fs::metadata(dir).map_err(|e| error(dir, ImportErrorKind::Io(e)))?;
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return Err(error(dir, ImportErrorKind::SymlinkLoop));
    }
    // Collect the names first so the directory handle is closed before
    // recursing: open descriptors stay bounded whatever the depth.
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| error(dir, ImportErrorKind::Io(e)))? {
        let entry = entry.map_err(|e| error(dir, ImportErrorKind::Io(e)))?;
        let name = entry.file_name();
        if !name.as_bytes().starts_with(b".") {
            names.push(name);
        }
    }
    ancestors.push(id);
    for name in names {
        let path = dir.join(&name);
        // Follows symlinks: a link to a folder is walked, a link to a file read.
        let meta = fs::metadata(&path).map_err(|e| error(&path, ImportErrorKind::Io(e)))?;
        if meta.is_dir() {
            walk(root, &path, ancestors, found)?;
            continue;
        }
        let Some(kind) = kind_of(&path) else {
            continue;
        };
        let rel = path
            .strip_prefix(root)
            .ok()
            .and_then(|p| p.to_str())
            .ok_or_else(|| error(&path, ImportErrorKind::NonUtf8Name))?
            .to_owned();
        // kind_of matched an ASCII extension, so this cut is on a char
        // boundary; `get` keeps it panic-free regardless.
        let ext_len = path.extension().map_or(0, |e| e.len() + 1);
        let name = rel
            .get(..rel.len().saturating_sub(ext_len))
            .unwrap_or(&rel)
            .to_owned();
        found.push((rel, Source { path, name, kind }));
    }
    ancestors.pop();
    Ok(())
}

/// Read every array of one source (one for `.npy`/`.png`/`.fseq`, one per
/// member for `.npz`, named `name/member`). Problems that do not stop the
/// import (a `.fseq` channel count padded to whole LEDs) are pushed to
/// `warnings`, one line each, naming the file.
pub fn load(
    source: &Source,
    opts: &ImportOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<NamedArray>, ImportError> {
    let path = &source.path;
    let meta = fs::metadata(path).map_err(|e| error(path, ImportErrorKind::Io(e)))?;
    if meta.is_dir() {
        return Err(error(path, ImportErrorKind::IsDirectory));
    }
    if !meta.is_file() {
        return Err(error(path, ImportErrorKind::NotAFile));
    }
    if meta.len() == 0 {
        return Err(error(path, ImportErrorKind::EmptyFile));
    }
    if source.kind == SourceKind::Fseq {
        return load_fseq(source, meta.len(), opts, warnings);
    }
    let bytes = fs::read(path).map_err(|e| error(path, ImportErrorKind::Io(e)))?;
    if bytes.is_empty() {
        return Err(error(path, ImportErrorKind::EmptyFile));
    }
    let named = |array| NamedArray {
        name: source.name.clone(),
        array,
        period_ns: opts.period_ns,
    };
    let with_rate = |mut v: Vec<NamedArray>| {
        for a in &mut v {
            a.period_ns = opts.period_ns;
        }
        v
    };
    match source.kind {
        SourceKind::Fseq => load_fseq(source, meta.len(), opts, warnings),
        SourceKind::Npy => npy::parse(&bytes, opts)
            .map(|a| vec![named(a)])
            .map_err(|e| error(path, ImportErrorKind::Npy(e))),
        SourceKind::Png => png::parse(&bytes)
            .map(|a| vec![named(a)])
            .map_err(|e| error(path, ImportErrorKind::Png(e))),
        SourceKind::Npz => npz::parse(&bytes, &source.name, opts)
            .map(with_rate)
            .map_err(|e| error(path, ImportErrorKind::Npz(e))),
    }
}

/// Read one `.fseq` through the file (never whole: a show can be gigabytes
/// of compressed frames, and only the selected channels are kept).
fn load_fseq(
    source: &Source,
    len: u64,
    opts: &ImportOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<NamedArray>, ImportError> {
    let path = &source.path;
    let file = fs::File::open(path).map_err(|e| error(path, ImportErrorKind::Io(e)))?;
    let fopts = fseq::Options {
        channels: opts.fseq_channels,
        rgbw: opts.rgbw,
        max_bytes: None,
    };
    let seq = fseq::read(&file, len, &fopts).map_err(|e| error(path, ImportErrorKind::Fseq(e)))?;
    if let Some(stored) = seq.padded_from {
        warnings.push(format!(
            "{}: {stored} channels is not a whole number of {}-channel LEDs; padded with {} zero channels",
            path.display(),
            seq.array.channels,
            seq.array.leds * seq.array.channels as u32 - stored
        ));
    }
    Ok(vec![NamedArray {
        name: source.name.clone(),
        array: seq.array,
        period_ns: seq.period_ns,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");

    /// A scratch folder removed on drop (the `TempDir`); `.0` is its path.
    struct Scratch(PathBuf, #[allow(dead_code)] tempfile::TempDir);

    impl Scratch {
        fn new() -> Scratch {
            let t = tempfile::tempdir().unwrap();
            Scratch(t.path().to_path_buf(), t)
        }

        fn file(&self, rel: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            p
        }
    }

    fn names(sources: &[Source]) -> Vec<&str> {
        sources.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every valid fixture, loaded through `discover` + `load`, equals the
    /// bytes numpy computed for it (tests/fixtures/expected/manifest.txt).
    #[test]
    fn fixtures_match_numpy_conversion() {
        let manifest = fs::read_to_string(format!("{FIXTURES}expected/manifest.txt")).unwrap();
        let mut checked = 0;
        for line in manifest.lines().filter(|l| !l.starts_with('#')) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [rel, member, rows, leds, channels, float_max, expected] = f[..] else {
                panic!("bad manifest line {line:?}");
            };
            let opts = ImportOptions {
                float_max: if float_max == "full" {
                    FloatMax::Full
                } else {
                    FloatMax::One
                },
                ..Default::default()
            };
            let sources = discover(&[PathBuf::from(format!("{FIXTURES}{rel}"))]).unwrap();
            let stem = Path::new(rel).file_stem().unwrap().to_str().unwrap();
            assert_eq!(names(&sources), [stem], "{rel}");
            let arrays =
                load(&sources[0], &opts, &mut Vec::new()).unwrap_or_else(|e| panic!("{e}"));
            let want = if member == "-" {
                stem.to_owned()
            } else {
                format!("{stem}/{member}")
            };
            let got = arrays
                .iter()
                .find(|a| a.name == want)
                .unwrap_or_else(|| panic!("{rel}: no array {want}"));
            let a = &got.array;
            let shape = (
                a.rows.to_string(),
                a.leds.to_string(),
                a.channels.to_string(),
            );
            assert_eq!(
                shape,
                (rows.into(), leds.into(), channels.into()),
                "{rel} {member}"
            );
            let expected = fs::read(format!("{FIXTURES}expected/{expected}")).unwrap();
            assert_eq!(a.data, expected, "{rel} {member} {float_max}");
            checked += 1;
        }
        assert!(checked >= 50, "only {checked} fixtures checked");
    }

    #[test]
    fn folders_are_walked_in_byte_order_of_relative_path() {
        let s = Scratch::new();
        for rel in [
            "b.npy",
            "a/x.npy",
            "a.npy",
            "a-b.PNG",
            "sub/deeper/z.npz",
            "notes.txt",
            ".hidden.npy",
            ".git/c.npy",
            "Upper.NPY",
        ] {
            s.file(rel, b"x");
        }
        let sources = discover(std::slice::from_ref(&s.0)).unwrap();
        // 'U' < 'a'; then '-' (0x2d) < '.' (0x2e) < '/' (0x2f).
        assert_eq!(
            names(&sources),
            ["Upper", "a-b", "a", "a/x", "b", "sub/deeper/z"]
        );
        let kinds: Vec<SourceKind> = sources.iter().map(|s| s.kind).collect();
        use SourceKind::*;
        assert_eq!(kinds, [Npy, Png, Npy, Npy, Npy, Npz]);
    }

    #[test]
    fn files_given_directly() {
        let s = Scratch::new();
        let a = s.file("dir/Wave.Npy", b"x");
        let b = s.file("other.txt", b"x");
        let sources = discover(std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            sources,
            [Source {
                path: a,
                name: "Wave".into(),
                kind: SourceKind::Npy
            }]
        );
        let err = discover(std::slice::from_ref(&b)).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::Unsupported));
        assert_eq!(err.path, b);
        let missing = s.0.join("missing.npy");
        let err = discover(std::slice::from_ref(&missing)).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::Io(_)));
        assert_eq!(err.path, missing);
        assert!(err.to_string().contains("missing.npy"));
    }

    #[test]
    fn symlinks_are_followed_and_loops_detected() {
        let s = Scratch::new();
        s.file("real/a.npy", b"x");
        let tree = s.0.join("tree");
        fs::create_dir(&tree).unwrap();
        std::os::unix::fs::symlink(s.0.join("real"), tree.join("link")).unwrap();
        let sources = discover(std::slice::from_ref(&tree)).unwrap();
        assert_eq!(names(&sources), ["link/a"]);

        std::os::unix::fs::symlink(&tree, tree.join("back")).unwrap();
        let err = discover(&[tree]).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::SymlinkLoop), "{err}");
    }

    #[test]
    fn non_utf8_names_are_rejected() {
        use std::ffi::OsStr;
        let s = Scratch::new();
        let bad = s.0.join(OsStr::from_bytes(b"w\xffave.npy"));
        fs::write(&bad, b"x").unwrap();
        let err = discover(std::slice::from_ref(&s.0)).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::NonUtf8Name));
        assert_eq!(err.path, bad);
        let err = discover(&[bad]).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::NonUtf8Name));
    }

    #[test]
    fn load_rejects_directories_and_empty_files() {
        let s = Scratch::new();
        let dir = s.0.join("d.npy");
        fs::create_dir(&dir).unwrap();
        let source = |path: PathBuf| Source {
            path,
            name: "x".into(),
            kind: SourceKind::Npy,
        };
        let err = load(&source(dir), &ImportOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::IsDirectory));
        let empty = s.file("e.npy", b"");
        let err = load(&source(empty), &ImportOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(matches!(err.kind, ImportErrorKind::EmptyFile));
        let junk = s.file("j.npy", b"junk");
        let err = load(&source(junk), &ImportOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(matches!(
            err.kind,
            ImportErrorKind::Npy(npy::NpyError::BadMagic)
        ));
        assert!(err.to_string().contains("j.npy: not a .npy file"), "{err}");
    }
}
