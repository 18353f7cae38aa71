//! `rowplay pack`.

use super::progress::Progress;
use super::AppError;
use crate::cli::{FloatMaxArg, PackArgs};
use crate::import::{FloatMax, ImportOptions};
use crate::library::human_bytes;
use crate::pack::{self, PackOptions};

/// Pack the inputs and say what was packed.
pub fn run(a: PackArgs) -> Result<(), AppError> {
    let opts = PackOptions {
        head_rows: a.head_rows,
        by_column: a.by_column,
        import: ImportOptions {
            float_max: match a.float_max {
                FloatMaxArg::One => FloatMax::One,
                FloatMaxArg::Full => FloatMax::Full,
            },
            period_ns: a.fps.map(|f| (1e9 / f).round() as u64),
            fseq_channels: a.channels,
            rgbw: a.rgbw,
        },
        skip_bad: a.skip_bad,
    };
    let mut progress = Progress::new();
    let report = pack::pack(&a.inputs, &a.output, &opts, &mut |d, t| {
        progress.update(d, t)
    })?;
    for w in &report.warnings {
        super::warn(w);
    }
    for s in &report.skipped {
        eprintln!("skipped: {s}");
    }
    println!(
        "packed {} arrays into {} ({}, heads {}{})",
        report.arrays,
        a.output.display(),
        human_bytes(report.bytes),
        human_bytes(report.heads_bytes),
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} inputs skipped", report.skipped.len())
        }
    );
    Ok(())
}
