//! Outputs that hand frames to a background writer thread: `capture:PATH`
//! (pixels), `wire:PATH` (the exact bytes that would go to the SPI device)
//! and the terminal preview.
//!
//! Record format of `capture:` and `wire:` files (scripts read it): records
//! back to back, little-endian:
//!
//! ```text
//! u64 t_ns    CLOCK_MONOTONIC time the frame was handed to the output
//! u32 array   index in the pack; 0xFFFFFFFF for an all-off frame
//! u32 row     row of that array (0 for all-off frames)
//! u32 n       byte count that follows
//! n bytes     capture: pixels after the colour pipeline, RGB or RGBW per LED
//!             wire: the encoded bytes for the chip
//! ```
//!
//! The frame loop never does file I/O: `send` moves a preallocated buffer
//! through a bounded lock-free queue to the writer thread, which returns it
//! through another. When the writer falls behind, the frame is counted as
//! dropped instead of waiting. A failed write (a full disk) is counted and
//! retried; a record is never left half-written at the end of the file.

use super::chip::{Encoder, WireFrame};
use super::{FrameMeta, Output, OutputError};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use std::sync::Arc;
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

/// Size of a record header.
pub const RECORD_HEADER: usize = 20;
/// Frames that may wait for the writer: 64 frames is 1.3 s at 50 Hz.
const QUEUE: usize = 64;
/// Pause before retrying a failed write.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Attempts at a failing record after the player has stopped.
const STOP_ATTEMPTS: u32 = 5;

/// One frame on its way to the writer.
pub struct Rec {
    /// Frame metadata.
    pub meta: FrameMeta,
    /// Bytes used in `buf`.
    pub len: usize,
    /// The bytes.
    pub buf: Box<[u8]>,
}

impl Rec {
    /// Header and payload as they go in a file.
    pub fn encode_header(&self) -> [u8; RECORD_HEADER] {
        let mut h = [0u8; RECORD_HEADER];
        h[0..8].copy_from_slice(&self.meta.t_ns.to_le_bytes());
        h[8..12].copy_from_slice(&self.meta.array.to_le_bytes());
        h[12..16].copy_from_slice(&self.meta.row.to_le_bytes());
        h[16..20].copy_from_slice(&(self.len as u32).to_le_bytes());
        h
    }
}

type Queue = heapless::mpmc::Queue<Rec, QUEUE>;

struct Shared {
    full: Queue,
    free: Queue,
    stop: AtomicBool,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

/// What the writer thread does with each record.
pub trait Sink: Send + 'static {
    /// Write one record. An error is counted and the same record retried.
    fn write(&mut self, rec: &Rec) -> io::Result<()>;
    /// Called once at the end (after the last record).
    fn close(&mut self) {}
}

/// An [`Output`] backed by a writer thread and a [`Sink`].
pub struct Recorder {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    writer_thread: Thread,
    wire: Option<WireFrame>,
    pending: Box<[u8]>,
    pending_len: usize,
}

impl Recorder {
    /// Start a writer for frames of up to `frame_bytes` bytes. With an
    /// encoder, `prepare` encodes pixels into the chip's wire bytes.
    pub fn start(
        sink: impl Sink,
        frame_bytes: usize,
        encoder: Option<Encoder>,
    ) -> io::Result<Recorder> {
        // heapless marks its MPMC queue deprecated because an operation can
        // fail (not block) while another thread is preempted inside one.
        // Both failures are handled here without waiting: a frame is counted
        // as dropped, the writer retries on its next wake-up.
        #[allow(deprecated)]
        let (full, free) = (Queue::new(), Queue::new());
        let shared = Arc::new(Shared {
            full,
            free,
            stop: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        });
        // One buffer fewer than the queue holds, so enqueue never fails.
        for _ in 0..QUEUE - 1 {
            let rec = Rec {
                meta: FrameMeta::default(),
                len: 0,
                buf: vec![0u8; frame_bytes].into_boxed_slice(),
            };
            if shared.free.enqueue(rec).is_err() {
                break;
            }
        }
        let s2 = shared.clone();
        let writer = thread::Builder::new()
            .name("rowplay-writer".into())
            .stack_size(256 << 10)
            .spawn(move || writer_loop(&s2, sink))?;
        Ok(Recorder {
            shared,
            writer_thread: writer.thread().clone(),
            writer: Some(writer),
            wire: encoder.map(WireFrame::new),
            pending: vec![0u8; frame_bytes].into_boxed_slice(),
            pending_len: 0,
        })
    }
}

impl Output for Recorder {
    fn prepare(&mut self, pixels: &[u8]) {
        match &mut self.wire {
            Some(wire) => {
                let bytes = wire.encode(pixels);
                let n = bytes.len().min(self.pending.len());
                self.pending[..n].copy_from_slice(&bytes[..n]);
                self.pending_len = n;
            }
            None => {
                let n = pixels.len().min(self.pending.len());
                self.pending[..n].copy_from_slice(&pixels[..n]);
                self.pending_len = n;
            }
        }
    }

    fn send(&mut self, meta: &FrameMeta) -> Result<(), OutputError> {
        match self.shared.free.dequeue() {
            Some(mut rec) => {
                rec.meta = *meta;
                rec.len = self.pending_len;
                rec.buf[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
                if let Err(rec) = self.shared.full.enqueue(rec) {
                    // Cannot happen (more slots than buffers); never block.
                    let _ = self.shared.free.enqueue(rec);
                    self.shared.dropped.fetch_add(1, Relaxed);
                }
                self.writer_thread.unpark();
            }
            None => {
                self.shared.dropped.fetch_add(1, Relaxed);
            }
        }
        Ok(())
    }

    fn dropped(&self) -> u64 {
        self.shared.dropped.load(Relaxed)
    }

    fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Relaxed)
    }

    fn finish(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(w) = self.writer.take() {
            w.thread().unpark();
            let _ = w.join();
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish();
    }
}

fn writer_loop(sh: &Shared, mut sink: impl Sink) {
    loop {
        match sh.full.dequeue() {
            Some(rec) => {
                // Retry a failed write until it succeeds; the player
                // meanwhile drops frames, never waits. Once told to stop,
                // give up on a record after a few more attempts.
                let mut attempts_after_stop = 0;
                while let Err(_e) = sink.write(&rec) {
                    sh.write_errors.fetch_add(1, Relaxed);
                    if sh.stop.load(SeqCst) {
                        attempts_after_stop += 1;
                        if attempts_after_stop > STOP_ATTEMPTS {
                            break;
                        }
                    }
                    thread::park_timeout(RETRY_PAUSE);
                }
                let _ = sh.free.enqueue(rec);
            }
            None if sh.stop.load(SeqCst) => {
                // Drain anything enqueued just before the stop flag.
                if sh.full.dequeue().map(|r| sink.write(&r)).is_none() {
                    break;
                }
            }
            None => thread::park_timeout(Duration::from_millis(100)),
        }
    }
    sink.close();
}

/// Records into a file: each record with one positioned write at the end of
/// the last complete record, so a failed write is simply redone there and
/// never leaves a partial record behind.
pub struct FileSink {
    file: File,
    at: u64,
    scratch: Vec<u8>,
}

impl FileSink {
    /// Create (truncate) `path`.
    pub fn create(path: &Path) -> io::Result<FileSink> {
        Ok(FileSink {
            file: File::create(path)?,
            at: 0,
            scratch: Vec::new(),
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, rec: &Rec) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(&rec.encode_header());
        self.scratch.extend_from_slice(&rec.buf[..rec.len]);
        self.file.write_all_at(&self.scratch, self.at)?;
        self.at += self.scratch.len() as u64;
        Ok(())
    }
    fn close(&mut self) {
        // Cut a partial record a failed last write may have left.
        let _ = self.file.set_len(self.at);
        let _ = self.file.sync_all();
    }
}

/// One record read back from a capture or wire file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Frame metadata.
    pub meta: FrameMeta,
    /// The payload.
    pub bytes: Vec<u8>,
}

/// Parse a whole capture/wire file. Errors name the offset of a truncated
/// record.
pub fn parse_records(data: &[u8]) -> Result<Vec<Record>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        if data.len() - at < RECORD_HEADER {
            return Err(format!("truncated record header at byte {at}"));
        }
        let h = &data[at..at + RECORD_HEADER];
        let n = u32::from_le_bytes([h[16], h[17], h[18], h[19]]) as usize;
        let end = at + RECORD_HEADER;
        if data.len() - end < n {
            return Err(format!("truncated record payload at byte {at}"));
        }
        out.push(Record {
            meta: FrameMeta {
                t_ns: u64::from_le_bytes(h[0..8].try_into().unwrap_or([0; 8])),
                array: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
                row: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
            },
            bytes: data[end..end + n].to_vec(),
        });
        at = end + n;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Got = Arc<Mutex<Vec<(u32, Vec<u8>)>>>;

    /// A sink that fails its first `fail` writes, then records.
    struct Flaky {
        fail: u32,
        got: Got,
    }
    impl Sink for Flaky {
        fn write(&mut self, rec: &Rec) -> io::Result<()> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(io::Error::other("disk full"));
            }
            self.got
                .lock()
                .unwrap()
                .push((rec.meta.row, rec.buf[..rec.len].to_vec()));
            Ok(())
        }
    }

    #[test]
    fn failed_writes_are_counted_and_retried_in_order() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut r = Recorder::start(
            Flaky {
                fail: 3,
                got: got.clone(),
            },
            3,
            None,
        )
        .unwrap();
        for row in 0..10u32 {
            r.prepare(&[row as u8, 1, 2]);
            r.send(&FrameMeta {
                t_ns: 0,
                array: 0,
                row,
            })
            .unwrap();
        }
        r.finish();
        let got = got.lock().unwrap();
        assert_eq!(r.write_errors(), 3);
        let rows: Vec<u32> = got.iter().map(|g| g.0).collect();
        assert_eq!(rows, (0..10).collect::<Vec<_>>());
        assert_eq!(got[4].1, vec![4, 1, 2]);
    }

    #[test]
    fn a_full_queue_drops_frames_instead_of_blocking() {
        /// Blocks until released, like a stalled disk.
        struct Stuck(Arc<AtomicBool>);
        impl Sink for Stuck {
            fn write(&mut self, _: &Rec) -> io::Result<()> {
                while !self.0.load(SeqCst) {
                    thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            }
        }
        let release = Arc::new(AtomicBool::new(false));
        let mut r = Recorder::start(Stuck(release.clone()), 3, None).unwrap();
        for row in 0..(QUEUE as u32 * 2) {
            r.prepare(&[0, 0, 0]);
            r.send(&FrameMeta {
                t_ns: 0,
                array: 0,
                row,
            })
            .unwrap();
        }
        // The writer holds at most one record, the queue the rest of the
        // buffers: everything beyond is dropped, none waited.
        assert!(r.dropped() >= QUEUE as u64, "dropped {}", r.dropped());
        release.store(true, SeqCst);
        r.finish();
    }

    #[test]
    fn file_records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.bin");
        let mut r = Recorder::start(FileSink::create(&p).unwrap(), 6, None).unwrap();
        r.prepare(&[1, 2, 3, 4, 5, 6]);
        r.send(&FrameMeta {
            t_ns: 9,
            array: 2,
            row: 5,
        })
        .unwrap();
        r.prepare(&[7, 8, 9]);
        r.send(&FrameMeta {
            t_ns: 10,
            array: u32::MAX,
            row: 0,
        })
        .unwrap();
        r.finish();
        let recs = parse_records(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0].meta,
            FrameMeta {
                t_ns: 9,
                array: 2,
                row: 5
            }
        );
        assert_eq!(recs[0].bytes, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(recs[1].meta.array, u32::MAX);
        assert_eq!(recs[1].bytes, vec![7, 8, 9]);
        assert!(parse_records(&std::fs::read(&p).unwrap()[..30]).is_err());
    }
}
