//! The commands that read a pack: `inspect`, `verify`, `export`, `render`.

use super::AppError;
use crate::atomic::write_atomically;
use crate::cli::{ExportArgs, InspectArgs, RenderArgs, VerifyArgs};
use crate::import;
use crate::library::{human_bytes, Library, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

fn open(path: &Path) -> Result<Library, AppError> {
    Ok(Library::open(path, &OpenOptions::default())?)
}

/// The index of array `name`, or an error naming the pack.
fn find(lib: &Library, path: &Path, name: &str) -> Result<u32, AppError> {
    lib.find(name).ok_or_else(|| AppError::NoSuchArray {
        pack: path.display().to_string(),
        name: name.to_string(),
    })
}

/// `rowplay inspect`: the arrays in a pack, as a table or JSON.
pub fn inspect(a: InspectArgs) -> Result<(), AppError> {
    let lib = open(&a.lib)?;
    let out = io::stdout();
    let mut o = io::BufWriter::new(out.lock());
    if a.json {
        let arrays: Vec<serde_json::Value> = (0..lib.len())
            .filter_map(|i| lib.info(i))
            .map(|x| {
                serde_json::json!({
                    "index": x.index, "name": x.name, "rows": x.rows,
                    "leds": x.leds, "channels": x.channels,
                    "fps": lib.fps(x.index),
                })
            })
            .collect();
        let v = serde_json::json!({
            "head_rows": lib.head_rows(),
            "by_column": lib.by_column(),
            "heads_bytes": lib.heads_bytes(),
            "arrays": arrays,
        });
        writeln!(o, "{v}")?;
    } else {
        writeln!(
            o,
            "{}: {} arrays, first {} rows of each in memory ({}){}",
            a.lib.display(),
            lib.len(),
            lib.head_rows(),
            human_bytes(lib.heads_bytes()),
            if lib.by_column() {
                ", stored by column"
            } else {
                ""
            }
        )?;
        writeln!(
            o,
            "{:>7}  {:>7}  {:>6}  {:>2}  {:>7}  name",
            "index", "rows", "leds", "ch", "fps"
        )?;
        for i in 0..lib.len() {
            if let Some(x) = lib.info(i) {
                writeln!(
                    o,
                    "{:>7}  {:>7}  {:>6}  {:>2}  {:>7}  {}",
                    x.index,
                    x.rows,
                    x.leds,
                    x.channels,
                    lib.fps(x.index).map_or("-".into(), fmt_fps),
                    x.name
                )?;
            }
        }
    }
    o.flush()?;
    Ok(())
}

/// A frame rate for people: `40`, `29.97`.
fn fmt_fps(f: f64) -> String {
    let s = format!("{f:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `rowplay verify`: every CRC; names each bad array.
pub fn verify(a: VerifyArgs) -> Result<(), AppError> {
    // Opening checks the header, index and heads CRCs.
    let lib = open(&a.lib)?;
    let mut bad = Vec::new();
    for i in 0..lib.len() {
        match lib.verify_body(i) {
            Ok(true) => {}
            Ok(false) => bad.push(format!(
                "{}: array {:?} fails its CRC (corrupt body; repack it)",
                a.lib.display(),
                lib.name(i)
            )),
            Err(e) => bad.push(format!(
                "{}: array {:?} cannot be read: {e}",
                a.lib.display(),
                lib.name(i)
            )),
        }
    }
    if !bad.is_empty() {
        return Err(AppError::Verify(bad));
    }
    println!("ok: {} arrays in {} verified", lib.len(), a.lib.display());
    Ok(())
}

/// Array `name` of the pack at `a`, and its frame period.
fn read_array(a: &Path, name: &str) -> Result<(import::Array, Option<u64>), AppError> {
    let lib = open(a)?;
    let i = find(&lib, a, name)?;
    let array = lib
        .read_array(i)
        .map_err(|e| AppError::Io(io::Error::new(e.kind(), format!("{}: {e}", a.display()))))?;
    Ok((array, lib.period_ns(i)))
}

/// `rowplay export`: one array as a standard `.npy`, or as an uncompressed
/// v2 `.fseq` when the output's name ends in `.fseq`.
pub fn export(a: ExportArgs) -> Result<(), AppError> {
    let (array, period) = read_array(&a.lib, &a.name)?;
    let is_fseq = a
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("fseq"));
    if is_fseq {
        let step = import::fseq::step_ms(period);
        return Ok(write_atomically(&a.output, |w| {
            import::fseq::write_v2(&array, step, w)
        })?);
    }
    Ok(write_atomically(&a.output, |w| {
        import::npy::write_u8(&array, w)
    })?)
}

/// `rowplay render`: one array as a PNG, rows down.
pub fn render(a: RenderArgs) -> Result<(), AppError> {
    let (array, _) = read_array(&a.lib, &a.name)?;
    Ok(write_atomically(&a.output, |w| {
        import::png::write_rgb(&array, w)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    })?)
}
