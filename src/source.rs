//! What to play: a `.rowpack` as it is, a folder or `.npy`/`.npz`/`.png`
//! packed on the fly into the cache (reused while the inputs are
//! unchanged), or the built-in demo, packed once.

use crate::import::{self, ImportError};
use crate::library::{Library, OpenOptions};
use crate::pack::{self, PackError, PackOptions};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why the source could not be made ready.
#[derive(Debug)]
pub enum SourceError {
    /// SOURCE does not exist.
    NoSuch(PathBuf),
    /// Its inputs could not be listed or read.
    Import(ImportError),
    /// Packing them failed.
    Pack(PackError),
    /// The cache could not be used.
    Cache(PathBuf, io::Error),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::NoSuch(p) => write!(f, "{}: no such file or folder", p.display()),
            SourceError::Import(e) => write!(f, "{e}"),
            SourceError::Pack(e) => write!(f, "{}", e.lines().join("; ")),
            SourceError::Cache(p, e) => write!(f, "{}: {e}", p.display()),
        }
    }
}

impl std::error::Error for SourceError {}

/// A pack ready to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The `.rowpack` to open.
    pub pack: PathBuf,
    /// Whether it is the built-in demo.
    pub demo: bool,
}

/// Where on-the-fly packs are cached: `$XDG_CACHE_HOME/rowplay`, else
/// `~/.cache/rowplay`, else a per-user folder in the temp dir.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Path::new(&d).join("rowplay");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Path::new(&h).join(".cache/rowplay");
    }
    // SAFETY: getuid cannot fail.
    std::env::temp_dir().join(format!("rowplay-cache-{}", unsafe { libc::getuid() }))
}

/// Whether `p` starts with the pack magic.
pub fn is_pack_file(p: &Path) -> bool {
    let mut magic = [0u8; 8];
    std::fs::File::open(p)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == crate::pack::format::MAGIC
}

/// Make `source` (or the demo, for `None`) ready to open. `progress` is
/// told (done, total) while packing.
pub fn prepare(
    source: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Ready, SourceError> {
    let pack = match source {
        None => {
            return Ok(Ready {
                pack: demo_pack()?,
                demo: true,
            })
        }
        Some(p) if is_pack_file(p) => p.to_path_buf(),
        Some(p) if !p.exists() => return Err(SourceError::NoSuch(p.to_path_buf())),
        Some(p) => cached_pack(p, progress)?,
    };
    Ok(Ready { pack, demo: false })
}

fn cache() -> Result<PathBuf, SourceError> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|e| SourceError::Cache(dir.clone(), e))?;
    Ok(dir)
}

/// Pack folders/files on the fly into the cache, reusing the pack while the
/// inputs are unchanged (same paths, sizes and modification times).
pub fn cached_pack(
    source: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<PathBuf, SourceError> {
    use std::os::unix::fs::MetadataExt;
    let sources = import::discover(&[source.to_path_buf()]).map_err(SourceError::Import)?;
    // FNV-1a over everything that decides the pack's content.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= x as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(env!("CARGO_PKG_VERSION").as_bytes());
    eat(std::fs::canonicalize(source)
        .unwrap_or_else(|_| source.to_path_buf())
        .as_os_str()
        .as_encoded_bytes());
    for s in &sources {
        let m = std::fs::metadata(&s.path).map_err(|e| SourceError::Cache(s.path.clone(), e))?;
        eat(s.path.as_os_str().as_encoded_bytes());
        eat(&m.len().to_le_bytes());
        eat(&m.mtime().to_le_bytes());
        eat(&m.mtime_nsec().to_le_bytes());
    }
    let out = cache()?.join(format!("{h:016x}.rowpack"));
    if !out.exists() {
        eprintln!("packing {} into {}", source.display(), out.display());
        pack::pack_sources(&sources, &out, &PackOptions::default(), progress)
            .map_err(SourceError::Pack)?;
    }
    Ok(out)
}

/// The demo library, packed once into the cache.
pub fn demo_pack() -> Result<PathBuf, SourceError> {
    let out = cache()?.join(format!("demo-{}.rowpack", env!("CARGO_PKG_VERSION")));
    if !out.exists() || Library::open(&out, &OpenOptions::default()).is_err() {
        pack::pack_arrays(crate::demo::arrays(), &out, &PackOptions::default())
            .map_err(SourceError::Pack)?;
    }
    Ok(out)
}
