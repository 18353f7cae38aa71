//! Realtime set-up: SCHED_FIFO, locked memory, timer slack, prefaulted stack.
//!
//! Each step can be refused (no CAP_SYS_NICE / CAP_IPC_LOCK, RLIMIT_RTPRIO or
//! RLIMIT_MEMLOCK at 0). The caller decides whether a refusal is a warning
//! or, with `--require-rt`, an error. On a Pi the systemd unit grants both
//! (`AmbientCapabilities=CAP_SYS_NICE CAP_IPC_LOCK`, `LimitRTPRIO`,
//! `LimitMEMLOCK`); the default RLIMIT_MEMLOCK is 8 MiB (64 KiB before
//! Linux 5.16).

use memmap2::MmapMut;
use std::fmt;
use std::io;

/// A buffer of anonymous memory that is locked into RAM when allowed.
///
/// Anonymous memory (not a file mapping) is what the player may touch: a
/// pack truncated in place could make a file mapping raise SIGBUS, this
/// memory cannot.
pub struct LockedBuf {
    map: MmapMut,
    len: usize,
    locked: bool,
}

impl LockedBuf {
    /// `len` zeroed bytes; locks them if the kernel allows (see [`Self::is_locked`]).
    pub fn new(len: usize) -> io::Result<LockedBuf> {
        // A zero-length anonymous mapping is an error; keep one page instead.
        let map = MmapMut::map_anon(len.max(1))?;
        let locked = map.lock().is_ok();
        Ok(LockedBuf { map, len, locked })
    }
    /// Whether mlock succeeded.
    pub fn is_locked(&self) -> bool {
        self.locked
    }
    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.map[..self.len]
    }
    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.map[..self.len]
    }
    /// Raw pointer to the first byte, for the loader's shared slots.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.map.as_mut_ptr()
    }
}

impl fmt::Debug for LockedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockedBuf")
            .field("len", &self.len)
            .field("locked", &self.locked)
            .finish()
    }
}

/// A realtime set-up step the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtError {
    /// SCHED_FIFO was refused.
    Priority {
        /// The priority asked for.
        priority: u32,
        /// errno.
        errno: i32,
    },
    /// mlockall was refused.
    Lock {
        /// errno.
        errno: i32,
    },
}

impl fmt::Display for RtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtError::Priority { priority, errno } => write!(
                f,
                "SCHED_FIFO priority {priority} refused ({}); run as root, or grant CAP_SYS_NICE and LimitRTPRIO (see boards/rowplay.service)",
                io::Error::from_raw_os_error(*errno)
            ),
            RtError::Lock { errno } => write!(
                f,
                "memory locking refused ({}); grant CAP_IPC_LOCK or raise LimitMEMLOCK (see boards/rowplay.service)",
                io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for RtError {}

/// Lock every page the process has mapped now: code, stacks, heap.
///
/// Called twice by `play`: at start, and again on the player thread once
/// every buffer the loop uses exists. Not `MCL_FUTURE`: that would also lock
/// every later mapping (allocator arenas, thread stack reserves) against
/// RLIMIT_MEMLOCK, where a refusal makes the allocation itself fail. Heads
/// and slots are locked one by one as they are made (see [`LockedBuf`]).
pub fn lock_all() -> Result<(), RtError> {
    one_malloc_arena();
    // SAFETY: mlockall has no memory-safety preconditions.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT) };
    if rc == 0 {
        Ok(())
    } else {
        Err(RtError::Lock {
            errno: io::Error::last_os_error().raw_os_error().unwrap_or(0),
        })
    }
}

/// glibc gives each thread that allocates its own malloc arena, reserving
/// 64 MiB of address space apiece; locked, those reserves count against
/// RLIMIT_MEMLOCK. rowplay's threads allocate little, so one arena serves.
/// (musl, the Pi build's libc, has no per-thread arenas.)
fn one_malloc_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; M_ARENA_MAX is -8 in glibc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Put the calling thread on SCHED_FIFO at `priority` (1..=99).
///
/// Through `pthread_setschedparam`, not `sched_setscheduler`: musl's
/// `sched_setscheduler` always fails with ENOSYS.
pub fn set_fifo(priority: u32) -> Result<(), RtError> {
    // SAFETY: sched_param is plain data; on musl it has extra fields, so it
    // is zeroed rather than built with a literal.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = priority.min(99) as libc::c_int;
    // SAFETY: pthread_self() is always a valid handle for the caller.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(RtError::Priority {
            priority,
            errno: rc,
        })
    }
}

/// The calling thread's scheduling policy and priority.
pub fn current_sched() -> (i32, i32) {
    let mut policy = 0;
    // SAFETY: as in set_fifo.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    // SAFETY: valid handle and out-pointers.
    unsafe { libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param) };
    (policy, param.sched_priority)
}

/// Set the calling thread's timer slack to 1 ns, so the kernel does not
/// coalesce its wake-ups (the default slack is 50 us).
pub fn min_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer; no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// Touch `bytes` of stack now so that the frame loop never page-faults on it.
#[inline(never)]
pub fn prefault_stack(bytes: usize) {
    const CHUNK: usize = 4096;
    let buf = [0u8; CHUNK];
    std::hint::black_box(&buf);
    if bytes > CHUNK {
        prefault_stack(bytes - CHUNK);
    }
}

/// Physical RAM in bytes (0 if unknown).
pub fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        0
    }
}

/// Peak resident set size of this process, in bytes (VmHWM).
pub fn peak_rss_bytes() -> u64 {
    proc_status_kb("VmHWM:") * 1024
}

/// Memory locked in RAM by this process, in bytes (VmLck).
pub fn locked_bytes() -> u64 {
    proc_status_kb("VmLck:") * 1024
}

/// Current resident set size, in bytes (VmRSS).
pub fn rss_bytes() -> u64 {
    proc_status_kb("VmRSS:") * 1024
}

fn proc_status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count().saturating_sub(1) as u64) // minus read_dir's own
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_buf_is_zeroed_and_writable() {
        let mut b = LockedBuf::new(10_000).unwrap();
        assert_eq!(b.len(), 10_000);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        b.as_mut_slice()[9_999] = 7;
        assert_eq!(b.as_slice()[9_999], 7);
        let e = LockedBuf::new(0).unwrap();
        assert!(e.is_empty());
        assert_eq!(e.as_slice(), &[] as &[u8]);
    }

    #[test]
    fn process_figures_are_plausible() {
        assert!(physical_memory() > 1 << 20);
        assert!(peak_rss_bytes() >= rss_bytes() / 2 && rss_bytes() > 0);
        // Other tests open files concurrently, so only a lower bound holds.
        let f = std::fs::File::open("/proc/self/status").unwrap();
        assert!(open_fds() >= 1);
        drop(f);
    }
}
