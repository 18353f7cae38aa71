//! `rowplay bench`: library open time and first-row latency of a pack.

use super::AppError;
use crate::cli::BenchArgs;
use crate::library::{human_bytes, Library, OpenOptions};
use crate::rt;
use std::time::Instant;

/// Measure and print.
pub fn run(a: BenchArgs) -> Result<(), AppError> {
    let t0 = Instant::now();
    let lib = Library::open(&a.lib, &OpenOptions::default())?;
    let open_ns = t0.elapsed().as_nanos() as u64;
    let rss = rt::rss_bytes();
    let fds = rt::open_fds();
    // Random arrays by name (what a user's `play NAME` costs: lookup and
    // the first row from the heads), timed one by one. Each array is jumped
    // to at most once while there are enough of them (a partial
    // Fisher-Yates shuffle), so no jump finds an array touched before.
    let mut rng = fastrand::Rng::with_seed(crate::clock::monotonic_ns());
    let mut row = vec![0u8; lib.max_row_bytes() as usize];
    let mut times = Vec::with_capacity(a.jumps);
    let n_arrays = lib.len() as usize;
    let mut order: Vec<u32> = (0..lib.len()).collect();
    let jumps = if n_arrays == 0 { 0 } else { a.jumps };
    let names: Vec<String> = (0..jumps)
        .map(|j| {
            let i = if j < n_arrays {
                let k = rng.usize(j..n_arrays);
                order.swap(j, k);
                order[j]
            } else {
                rng.u32(..lib.len())
            };
            lib.name(i).to_string()
        })
        .collect();
    drop(order);
    for n in &names {
        let t = crate::clock::monotonic_ns();
        let i = lib.find(n).unwrap_or(0);
        if let Some(r) = lib.head_row(i, 0) {
            row[..r.len()].copy_from_slice(r);
        }
        times.push(crate::clock::monotonic_ns() - t);
        std::hint::black_box(&row);
    }
    times.sort_unstable();
    let q = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0)
    };
    let v = serde_json::json!({
        "arrays": lib.len(),
        "open_ns": open_ns,
        "first_row_ns": { "p50": q(0.5), "p99": q(0.99), "max": q(1.0) },
        "jumps": a.jumps,
        "rss_bytes": rss,
        "peak_rss_bytes": rt::peak_rss_bytes(),
        "open_fds": fds,
        "heads_bytes": lib.heads_bytes(),
    });
    if a.json {
        println!("{v}");
    } else {
        println!(
            "{} arrays: open {:.2} ms; first row of a random array p50 {} ns, p99 {} ns, max {} ns; RSS {}; {} open fds",
            lib.len(),
            open_ns as f64 / 1e6,
            q(0.5),
            q(0.99),
            q(1.0),
            human_bytes(rss),
            fds
        );
    }
    Ok(())
}
