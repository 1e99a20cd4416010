//! Library log messages. Nothing is printed: messages are queued and handed to the host's log
//! callback on the next call into the library from a host thread, never on a runtime thread
//! (API principle 1). The callback itself is installed through the FFI layer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Severity, most verbose first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Most messages kept while nobody drains them; older ones are dropped first.
const MAX_QUEUED: usize = 1024;

/// Lowest level that is recorded; `i32::MAX` = none (no callback installed).
static MIN_LEVEL: AtomicI32 = AtomicI32::new(i32::MAX);
static QUEUE: Mutex<VecDeque<(Level, String)>> = Mutex::new(VecDeque::new());
/// Messages in `QUEUE` (changed under its lock): lets every library call see without the lock
/// that there is nothing to deliver, so that `fw_stream_next` keeps its per-row fast path
/// with a log callback installed.
static PENDING: AtomicUsize = AtomicUsize::new(0);

/// Record messages at `level` and above from now on (`None`: record nothing and clear).
pub fn set_min_level(level: Option<Level>) {
    MIN_LEVEL.store(level.map_or(i32::MAX, |l| l as i32), Ordering::Relaxed);
    if level.is_none() {
        let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        q.clear();
        PENDING.store(0, Ordering::Relaxed);
    }
}

pub fn enabled(level: Level) -> bool {
    (level as i32) >= MIN_LEVEL.load(Ordering::Relaxed)
}

pub fn log(level: Level, msg: String) {
    if !enabled(level) {
        return;
    }
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    if q.len() >= MAX_QUEUED {
        q.pop_front();
    }
    q.push_back((level, msg));
    PENDING.store(q.len(), Ordering::Relaxed);
}

/// Whether messages wait for delivery (a hint read without the lock; a message logged by
/// another thread meanwhile is delivered by the next call that sees it).
#[inline]
pub fn pending() -> bool {
    PENDING.load(Ordering::Relaxed) > 0
}

pub fn debug(msg: String) {
    log(Level::Debug, msg)
}
pub fn warn(msg: String) {
    log(Level::Warn, msg)
}

/// Take the queued messages (called on a host thread, which then runs the callback).
pub fn drain() -> Vec<(Level, String)> {
    if MIN_LEVEL.load(Ordering::Relaxed) == i32::MAX || !pending() {
        return Vec::new();
    }
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    PENDING.store(0, Ordering::Relaxed);
    q.drain(..).collect()
}
