//! `fw_stream`: consuming rows, control (pause/resume/cancel), stats, readiness fd.

use std::cell::UnsafeCell;
use std::ffi::{c_char, c_void};
use std::os::raw::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::block::fw_block;
use super::error::fw_error;
use super::{cstr, fw_status, guard, guard_value, null, obj, write_out};
use crate::error::{Error, Result};
use crate::parallel::{ParallelControl, ParallelStream};
use crate::stream::block::{Block, Filled};
use crate::stream::{
    Batch, ForEachEnd, Next, Stream, StreamControl, StreamState, StreamStats, Wait,
};

/// A stream's consumer: a serial stream, or a parallel one (`fw_query_parallel`), which
/// every consuming function dispatches to.
enum Consumer {
    Serial(Stream),
    Parallel(ParallelStream),
}

/// A stream's control, serial or parallel (see [`Consumer`]).
#[derive(Clone)]
enum Control {
    Serial(StreamControl),
    Parallel(ParallelControl),
}

impl Control {
    fn pause(&self, reason: Option<&str>) -> Result<()> {
        match self {
            Control::Serial(c) => c.pause(reason),
            Control::Parallel(c) => c.pause(reason),
        }
    }
    fn resume(&self) -> Result<()> {
        match self {
            Control::Serial(c) => c.resume(),
            Control::Parallel(c) => c.resume(),
        }
    }
    fn set_pause_timeout(&self, t: Option<Duration>) -> Result<()> {
        match self {
            Control::Serial(c) => c.set_pause_timeout(t),
            Control::Parallel(c) => c.set_pause_timeout(t),
        }
    }
    fn cancel(&self) -> Result<()> {
        match self {
            Control::Serial(c) => c.cancel(),
            Control::Parallel(c) => c.cancel(),
        }
    }
    fn state(&self) -> StreamState {
        match self {
            Control::Serial(c) => c.state(),
            Control::Parallel(c) => c.state(),
        }
    }
    fn stats(&self) -> StreamStats {
        match self {
            Control::Serial(c) => c.stats(),
            Control::Parallel(c) => c.stats(),
        }
    }
    fn fd(&self) -> Result<i32> {
        match self {
            Control::Serial(c) => c.fd(),
            Control::Parallel(c) => c.fd(),
        }
    }
    fn terminal_error(&self) -> Option<Error> {
        match self {
            Control::Serial(c) => c.terminal_error(),
            Control::Parallel(c) => c.terminal_error(),
        }
    }
}

impl Consumer {
    fn next(&mut self, wait: Wait) -> Result<Next<'_>> {
        match self {
            Consumer::Serial(s) => s.next(wait),
            Consumer::Parallel(s) => s.next(wait),
        }
    }
    fn next_batch(&mut self, cap: usize, wait: Wait) -> Result<Batch<'_>> {
        match self {
            Consumer::Serial(s) => s.next_batch(cap, wait),
            Consumer::Parallel(s) => s.next_batch(cap, wait),
        }
    }
    fn next_block(
        &mut self,
        block: &mut Block,
        max_rows: usize,
        max_bytes: usize,
        wait: Wait,
    ) -> Result<Filled> {
        match self {
            Consumer::Serial(s) => s.next_block(block, max_rows, max_bytes, wait),
            Consumer::Parallel(s) => s.next_block(block, max_rows, max_bytes, wait),
        }
    }
    fn for_each(&mut self, f: impl FnMut(&[u8]) -> bool) -> Result<ForEachEnd> {
        match self {
            Consumer::Serial(s) => s.for_each(f),
            Consumer::Parallel(s) => s.for_each(f),
        }
    }
}

/// A row: JSON text (NUL-terminated) and its exact length in bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct fw_row {
    pub data: *const c_char,
    pub len: usize,
}

impl fw_row {
    /// The C view of a row borrowed from the stream (valid as long as the row is).
    #[inline]
    fn of(r: &[u8]) -> fw_row {
        fw_row {
            data: r.as_ptr().cast(),
            len: r.len(),
        }
    }
}

/// Copy the rows that are ready without waiting (the rest of the chunk being read) into
/// `rows[from..cap]`; returns the new count.
///
/// # Safety
/// `rows` must have room for `cap` entries.
#[inline]
unsafe fn fill_ready(stream: &mut Stream, rows: *mut fw_row, from: usize, cap: usize) -> usize {
    let mut k = from;
    while k < cap {
        let Some(r) = stream.next_ready() else { break };
        // SAFETY: `k < cap` and the caller guarantees room for `cap` entries.
        unsafe { rows.add(k).write(fw_row::of(r)) };
        k += 1;
    }
    k
}

/// A row callback for `fw_stream_for_each`: return 0 to go on, anything else to stop.
#[allow(non_camel_case_types)]
pub type fw_row_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, json: *const c_char, len: usize) -> c_int>;

/// A stream's life cycle.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_stream_state {
    /// Returned for a NULL stream.
    FW_STATE_INVALID = -1,
    FW_STATE_RUNNING = 0,
    FW_STATE_PAUSED = 1,
    FW_STATE_COMPLETED = 2,
    FW_STATE_FAILED = 3,
    FW_STATE_CANCELLED = 4,
}

impl From<StreamState> for fw_stream_state {
    fn from(s: StreamState) -> fw_stream_state {
        match s {
            StreamState::Running => fw_stream_state::FW_STATE_RUNNING,
            StreamState::Paused => fw_stream_state::FW_STATE_PAUSED,
            StreamState::Completed => fw_stream_state::FW_STATE_COMPLETED,
            StreamState::Failed => fw_stream_state::FW_STATE_FAILED,
            StreamState::Cancelled => fw_stream_state::FW_STATE_CANCELLED,
        }
    }
}

/// A point-in-time snapshot of a stream. Set `struct_size = sizeof(fw_stats)` before calling
/// `fw_stream_stats`; fields beyond `struct_size` are not written (so the struct can grow).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct fw_stats {
    pub struct_size: usize,
    pub state: fw_stream_state,
    /// Rows received and not yet yielded or filtered (channel + chunk being read).
    pub items_buffered: u64,
    /// Bytes of the chunks in the channel and held by the consumer.
    pub bytes_buffered: u64,
    /// All the stream holds: chunks plus the socket read buffer.
    pub estimated_memory: u64,
    pub total_rows_received: u64,
    pub total_rows_yielded: u64,
    pub total_rows_filtered: u64,
    /// Bytes of JSON text received.
    pub total_bytes_received: u64,
    pub current_chunk_size: u64,
    pub pause_count: u64,
    pub paused_ms_total: u64,
    pub time_to_first_row_us: u64,
    pub elapsed_us: u64,
    /// The stream's memory budget in bytes.
    pub memory_limit: u64,
    /// Highest `estimated_memory` seen.
    pub peak_memory: u64,
    /// Times the buffered bytes crossed the warning ratio.
    pub memory_warnings: u64,
    pub chunks_received: u64,
    /// Pauses ended by their timeout.
    pub pause_timeouts: u64,
}

/// Smallest `struct_size` accepted: the fields up to `elapsed_us`.
const FW_STATS_MIN_SIZE: usize = std::mem::offset_of!(fw_stats, elapsed_us) + 8;

/// A running query's rows (opaque). One thread consumes it at a time (`next`, `try_next`,
/// `next_batch`, `for_each`); the control calls (pause, resume, cancel, stats, state, fd)
/// may come from any thread.
#[allow(non_camel_case_types)]
pub struct fw_stream {
    control: Control,
    consumer: UnsafeCell<Consumer>,
    /// The rows of the last `fw_stream_next_block`; touched only by the thread holding `busy`.
    block: UnsafeCell<Block>,
    busy: AtomicBool,
    error: OnceLock<Box<fw_error>>,
}

// SAFETY: `consumer` and `block` are only touched by the thread holding `busy`; everything
// else is thread-safe.
unsafe impl Sync for fw_stream {}

impl fw_stream {
    pub(crate) fn new(stream: Stream) -> fw_stream {
        fw_stream {
            control: Control::Serial(stream.control().clone()),
            consumer: UnsafeCell::new(Consumer::Serial(stream)),
            block: UnsafeCell::new(Block::new()),
            busy: AtomicBool::new(false),
            error: OnceLock::new(),
        }
    }

    pub(crate) fn new_parallel(stream: ParallelStream) -> fw_stream {
        fw_stream {
            control: Control::Parallel(stream.control().clone()),
            consumer: UnsafeCell::new(Consumer::Parallel(stream)),
            block: UnsafeCell::new(Block::new()),
            busy: AtomicBool::new(false),
            error: OnceLock::new(),
        }
    }

    /// Run `f` with exclusive access to the consumer, or `FW_E_STATE` if another thread is
    /// consuming this stream right now.
    fn consume<T>(&self, f: impl FnOnce(&mut Consumer) -> Result<T>) -> Result<T> {
        self.consume_with_block(|stream, _| f(stream))
    }

    /// `consume` with the stream's block as well.
    fn consume_with_block<T>(
        &self,
        f: impl FnOnce(&mut Consumer, &mut Block) -> Result<T>,
    ) -> Result<T> {
        if self.busy.swap(true, Ordering::Acquire) {
            return Err(Error::state(
                "the stream is being consumed by another call (streams are consumed by one thread at a time)",
            ));
        }
        struct Release<'a>(&'a AtomicBool);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _release = Release(&self.busy);
        // SAFETY: `busy` grants this call exclusive access to the consumer.
        let stream = unsafe { &mut *self.consumer.get() };
        // SAFETY: as above, `busy` covers the block too.
        let block = unsafe { &mut *self.block.get() };
        let r = f(stream, block);
        if let Err(e) = &r {
            self.remember(e);
        }
        r
    }

    /// The per-row fast path of `fw_stream_next`: a row of the chunk being read, without the
    /// full call's machinery. `None`: take the full path (which also reports misuse, such as
    /// two threads consuming at once). Nothing here can panic.
    #[inline]
    fn fast_next(&self) -> Option<fw_row> {
        // Log messages are delivered at the end of a full call: when some are waiting, this
        // call takes the full path so that they are not delayed.
        if crate::log::pending() {
            return None;
        }
        if self.busy.swap(true, Ordering::Acquire) {
            return None;
        }
        // SAFETY: `busy` grants this call exclusive access to the consumer.
        let row = match unsafe { &mut *self.consumer.get() } {
            Consumer::Serial(stream) => stream.next_ready().map(fw_row::of),
            // A parallel stream always takes the full path.
            Consumer::Parallel(_) => None,
        };
        self.busy.store(false, Ordering::Release);
        row
    }

    /// Up to `cap` rows of the chunk being read into `rows` (the fast path of
    /// `fw_stream_next_batch`); returns how many. 0: take the full path.
    ///
    /// # Safety
    /// `rows` must have room for `cap` entries.
    #[inline]
    unsafe fn fast_batch(&self, rows: *mut fw_row, cap: usize) -> usize {
        if crate::log::pending() {
            return 0;
        }
        if self.busy.swap(true, Ordering::Acquire) {
            return 0;
        }
        // SAFETY: `busy` grants this call exclusive access to the consumer.
        let n = match unsafe { &mut *self.consumer.get() } {
            // SAFETY: the caller guarantees room for `cap` entries.
            Consumer::Serial(stream) => unsafe { fill_ready(stream, rows, 0, cap) },
            Consumer::Parallel(_) => 0,
        };
        self.busy.store(false, Ordering::Release);
        n
    }

    fn remember(&self, e: &Error) {
        if crate::stream::is_stream_error(e.kind()) {
            let _ = self.error.set(Box::new(fw_error::from_error(e)));
        }
    }
}

fn status_of(n: &Next<'_>) -> fw_status {
    match n {
        Next::Row(_) => fw_status::FW_OK,
        Next::Done => fw_status::FW_DONE,
        Next::WouldBlock => fw_status::FW_WOULD_BLOCK,
        Next::Timeout => fw_status::FW_TIMEOUT,
        Next::Paused => fw_status::FW_PAUSED,
    }
}

fn next_impl(s: *mut fw_stream, out: *mut fw_row, wait: Wait) -> fw_status {
    guard(|| {
        // SAFETY: `s` comes from fw_query_execute; shared access only (consumer via `busy`).
        let s = unsafe { obj(s as *const fw_stream, "stream") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        s.consume(|stream| {
            let n = stream.next(wait)?;
            if let Next::Row(r) = n {
                // SAFETY: `out` checked non-null; the row stays valid until the next call.
                unsafe { write_out(out, fw_row::of(r)) };
            }
            Ok(status_of(&n))
        })
    })
}

/// The next row into `*out`: `FW_OK` with a row, `FW_DONE` at the end, `FW_TIMEOUT` after
/// `timeout_ms` (-1 = wait forever, 0 = do not wait), `FW_PAUSED` when paused and drained,
/// or an error (rows received before a server error are delivered first). The row is valid
/// until the next call on this stream.
#[no_mangle]
pub extern "C" fn fw_stream_next(
    s: *mut fw_stream,
    out: *mut fw_row,
    timeout_ms: i64,
) -> fw_status {
    // Fast path: most calls find their row in the chunk already being read.
    if !out.is_null() {
        // SAFETY: a non-null `s` comes from fw_query_execute (the caller's contract).
        if let Some(st) = unsafe { (s as *const fw_stream).as_ref() } {
            if let Some(row) = st.fast_next() {
                // SAFETY: `out` checked non-null.
                unsafe { out.write(row) };
                return fw_status::FW_OK;
            }
        }
    }
    next_impl(s, out, Wait::from_millis(timeout_ms))
}

/// Like `fw_stream_next` but never blocks: `FW_WOULD_BLOCK` when nothing is ready.
#[no_mangle]
pub extern "C" fn fw_stream_try_next(s: *mut fw_stream, out: *mut fw_row) -> fw_status {
    next_impl(s, out, Wait::NoWait)
}

/// Up to `cap` rows into `rows[0..*n]`; waits (as `timeout_ms` says) only when no row is
/// ready. `FW_OK` with `*n >= 1`, else a status with `*n = 0`. Rows stay valid until the next
/// call on this stream.
#[no_mangle]
pub extern "C" fn fw_stream_next_batch(
    s: *mut fw_stream,
    rows: *mut fw_row,
    cap: usize,
    n: *mut usize,
    timeout_ms: i64,
) -> fw_status {
    // Fast path: the rows of the chunk already being read (fewer than `cap` when it ends).
    if !rows.is_null() && !n.is_null() && cap > 0 {
        // SAFETY: a non-null `s` comes from fw_query_execute (the caller's contract).
        if let Some(st) = unsafe { (s as *const fw_stream).as_ref() } {
            // SAFETY: `rows` has room for `cap` entries (the caller's contract).
            let got = unsafe { st.fast_batch(rows, cap) };
            if got > 0 {
                // SAFETY: `n` checked non-null.
                unsafe { n.write(got) };
                return fw_status::FW_OK;
            }
        }
    }
    guard(|| {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s as *const fw_stream, "stream") }?;
        if rows.is_null() {
            return Err(null("rows"));
        }
        if n.is_null() {
            return Err(null("n"));
        }
        if cap == 0 {
            return Err(Error::invalid("batch capacity must be at least 1"));
        }
        s.consume(|consumer| {
            let filtered = match &*consumer {
                Consumer::Serial(stream) => stream.has_filters(),
                Consumer::Parallel(_) => true,
            };
            if filtered {
                return batch_filtered(consumer, rows, cap, n, timeout_ms);
            }
            let Consumer::Serial(stream) = consumer else {
                unreachable!("parallel streams take the batch path above")
            };
            // The first row as `fw_stream_next` finds it (waiting, taking the next chunk,
            // statuses and errors), then the rest of that chunk up to `cap`: every row of a
            // batch lives in one chunk, which stays alive until the next call.
            match stream.next(Wait::from_millis(timeout_ms))? {
                Next::Row(r) => {
                    // SAFETY: `rows` has room for `cap >= 1` entries (caller's contract).
                    unsafe { rows.write(fw_row::of(r)) };
                    // SAFETY: as above.
                    let k = unsafe { fill_ready(stream, rows, 1, cap) };
                    // SAFETY: `n` checked non-null.
                    unsafe { write_out(n, k) };
                    Ok(fw_status::FW_OK)
                }
                other => {
                    // SAFETY: `n` checked non-null.
                    unsafe { write_out(n, 0) };
                    Ok(status_of(&other))
                }
            }
        })
    })
}

/// The next rows as one block (see `fw_block` for the layout): the first row as
/// `fw_stream_next` finds it (waiting as `timeout_ms` says), then the rows that follow it in
/// the chunk being read, until `max_rows` rows or until the block holds `max_bytes` bytes or
/// more (a block is at most `max_bytes` plus one row; `max_bytes` 0 means no byte limit).
/// `FW_OK` with `*out` filled (`out->n >= 1`); otherwise a status (`FW_DONE`, `FW_TIMEOUT`,
/// `FW_PAUSED`, an error) and `*out` is not written. The block's memory belongs to the
/// stream, is reused by the next call and stays valid until then (or `fw_stream_free`);
/// it is outside the stream's memory budget and holds at most one block. A binding copies
/// `out->data` once per block and cuts its rows from its copy. A row holding a NUL byte
/// (JSON text never does; PostgreSQL cannot send one) is never put in a block: it ends the
/// block before it, and a call that starts with it fails with `FW_E_STATE` without consuming
/// it (`fw_stream_next` returns it).
#[no_mangle]
pub extern "C" fn fw_stream_next_block(
    s: *mut fw_stream,
    out: *mut fw_block,
    max_rows: usize,
    max_bytes: usize,
    timeout_ms: i64,
) -> fw_status {
    guard(|| {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s as *const fw_stream, "stream") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        if max_rows == 0 {
            return Err(Error::invalid("max_rows must be at least 1"));
        }
        let max_bytes = if max_bytes == 0 {
            usize::MAX
        } else {
            max_bytes
        };
        s.consume_with_block(|stream, block| {
            match stream.next_block(block, max_rows, max_bytes, Wait::from_millis(timeout_ms))? {
                Filled::Rows(_) => {
                    // SAFETY: `out` checked non-null; the block lives until the next call.
                    unsafe { write_out(out, fw_block::of(block)) };
                    Ok(fw_status::FW_OK)
                }
                Filled::Status(st) => Ok(status_of(&st)),
            }
        })
    })
}

/// `fw_stream_next_batch` through the stream's own batch (a serial stream with client-side
/// filters, whose rows may span chunks, or a parallel stream).
fn batch_filtered(
    stream: &mut Consumer,
    rows: *mut fw_row,
    cap: usize,
    n: *mut usize,
    timeout_ms: i64,
) -> Result<fw_status> {
    match stream.next_batch(cap, Wait::from_millis(timeout_ms))? {
        Batch::Rows(batch) => {
            for (i, r) in batch.iter().enumerate() {
                // SAFETY: `rows` has room for `cap` entries (caller's contract) and
                // `batch.len() <= cap`.
                unsafe { rows.add(i).write(fw_row::of(r)) };
            }
            // SAFETY: `n` checked non-null.
            unsafe { write_out(n, batch.len()) };
            Ok(fw_status::FW_OK)
        }
        Batch::Status(st) => {
            // SAFETY: `n` checked non-null.
            unsafe { write_out(n, 0) };
            Ok(status_of(&st))
        }
    }
}

/// Deliver every row to `cb` on the calling thread until the end (`FW_DONE`), a non-zero
/// return from `cb` (`FW_STOPPED`), a drained pause (`FW_PAUSED`), or an error. Rows are
/// valid during the callback only. The callback may call the control functions (pause,
/// cancel, stats) on this stream.
#[no_mangle]
pub extern "C" fn fw_stream_for_each(
    s: *mut fw_stream,
    cb: fw_row_callback,
    userdata: *mut c_void,
) -> fw_status {
    guard(|| {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s as *const fw_stream, "stream") }?;
        let cb = cb.ok_or_else(|| null("cb"))?;
        s.consume(|stream| {
            let end = stream.for_each(|row| {
                // SAFETY: the row is NUL-terminated and valid during the call.
                unsafe { cb(userdata, row.as_ptr().cast(), row.len()) == 0 }
            })?;
            Ok(match end {
                ForEachEnd::Done => fw_status::FW_DONE,
                ForEachEnd::Stopped => fw_status::FW_STOPPED,
                ForEachEnd::Paused => fw_status::FW_PAUSED,
            })
        })
    })
}

/// A file descriptor that is readable whenever `fw_stream_next`/`fw_stream_try_next` has
/// something to return (a row, the end, an error). Owned by the stream; do not close it.
/// -1 on error (see `fw_last_error`).
#[no_mangle]
pub extern "C" fn fw_stream_fd(s: *const fw_stream) -> c_int {
    guard_value(-1, || {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s, "stream") }?;
        s.control.fd()
    })
}

fn control(s: *const fw_stream, f: impl FnOnce(&Control) -> Result<()>) -> fw_status {
    guard(|| {
        // SAFETY: see fw_stream_next; control calls take shared access only.
        let s = unsafe { obj(s, "stream") }?;
        f(&s.control)?;
        Ok(fw_status::FW_OK)
    })
}

/// Stop reading the socket (the server blocks in send); buffered rows can still be consumed.
/// Idempotent; `FW_E_STATE` on a completed, failed or cancelled stream.
#[no_mangle]
pub extern "C" fn fw_stream_pause(s: *mut fw_stream) -> fw_status {
    control(s, |c| c.pause(None))
}

/// `fw_stream_pause` with a reason, passed to the log callback at debug level.
#[no_mangle]
pub extern "C" fn fw_stream_pause_with_reason(
    s: *mut fw_stream,
    reason: *const c_char,
) -> fw_status {
    control(s, |c| {
        let reason = if reason.is_null() {
            None
        } else {
            // SAFETY: non-null C string from the caller.
            Some(unsafe { cstr(reason, "reason") }?)
        };
        c.pause(reason)
    })
}

/// Resume reading. Idempotent; `FW_E_STATE` on a completed, failed or cancelled stream.
#[no_mangle]
pub extern "C" fn fw_stream_resume(s: *mut fw_stream) -> fw_status {
    control(s, |c| c.resume())
}

/// A pause longer than `ms` milliseconds resumes by itself (0 = no limit).
#[no_mangle]
pub extern "C" fn fw_stream_set_pause_timeout(s: *mut fw_stream, ms: u64) -> fw_status {
    control(s, |c| {
        c.set_pause_timeout(if ms == 0 {
            None
        } else {
            Some(Duration::from_millis(ms))
        })
    })
}

/// The stream's state now (`FW_STATE_INVALID` for NULL).
#[no_mangle]
pub extern "C" fn fw_stream_state_snapshot(s: *const fw_stream) -> fw_stream_state {
    guard_value(fw_stream_state::FW_STATE_INVALID, || {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s, "stream") }?;
        Ok(s.control.state().into())
    })
}

fn to_c_stats(st: &StreamStats, struct_size: usize) -> fw_stats {
    fw_stats {
        struct_size,
        state: st
            .state
            .map_or(fw_stream_state::FW_STATE_INVALID, Into::into),
        items_buffered: st.items_buffered,
        bytes_buffered: st.bytes_buffered,
        estimated_memory: st.estimated_memory,
        total_rows_received: st.total_rows_received,
        total_rows_yielded: st.total_rows_yielded,
        total_rows_filtered: st.total_rows_filtered,
        total_bytes_received: st.total_bytes_received,
        current_chunk_size: st.current_chunk_size,
        pause_count: st.pause_count,
        paused_ms_total: st.paused_ms_total,
        time_to_first_row_us: st.time_to_first_row_us,
        elapsed_us: st.elapsed_us,
        memory_limit: st.memory_limit,
        peak_memory: st.peak_memory,
        memory_warnings: st.memory_warnings,
        chunks_received: st.chunks_received,
        pause_timeouts: st.pause_timeouts,
    }
}

/// Fill `*out` with a consistent snapshot; callable from any thread while another consumes.
/// `out->struct_size` must be set by the caller (at least the size of the fields up to
/// `elapsed_us`); only that many bytes are written.
#[no_mangle]
pub extern "C" fn fw_stream_stats(s: *const fw_stream, out: *mut fw_stats) -> fw_status {
    guard(|| {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s, "stream") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: `out` is non-null; its first field is the caller-set size.
        let size = unsafe { out.cast::<usize>().read() };
        if size < FW_STATS_MIN_SIZE {
            return Err(Error::invalid(format!(
                "fw_stats.struct_size is {size}; set it to sizeof(fw_stats) (at least {FW_STATS_MIN_SIZE})"
            )));
        }
        let full = to_c_stats(&s.control.stats(), size);
        let n = size.min(std::mem::size_of::<fw_stats>());
        // SAFETY: the caller's struct is at least `size` bytes; we copy at most our own size.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&full as *const fw_stats).cast::<u8>(),
                out.cast::<u8>(),
                n,
            )
        };
        Ok(fw_status::FW_OK)
    })
}

/// Cancel the stream from any thread, without blocking: a CancelRequest is sent (by the
/// library's thread; `fw_shutdown` waits for it) if the query still runs, buffered rows are
/// dropped, and consuming calls return `FW_E_CANCELLED`.
/// No-op on a cancelled stream; `FW_E_STATE` on a completed or failed one.
#[no_mangle]
pub extern "C" fn fw_stream_cancel(s: *mut fw_stream) -> fw_status {
    control(s, |c| c.cancel())
}

/// The error the stream ended with (NULL if none). Valid until `fw_stream_free`.
#[no_mangle]
pub extern "C" fn fw_stream_error(s: *const fw_stream) -> *const fw_error {
    guard_value(std::ptr::null(), || {
        // SAFETY: see fw_stream_next.
        let s = unsafe { obj(s, "stream") }?;
        if s.error.get().is_none() {
            if let Some(e) = s.control.terminal_error() {
                s.remember(&e);
            }
        }
        Ok(s.error
            .get()
            .map_or(std::ptr::null(), |e| &**e as *const fw_error))
    })
}

/// Free a stream; a running query is cancelled. NULL is a no-op. The CancelRequest is sent
/// from the calling thread before this returns (a connect and a 16-byte write: about 0.1 ms
/// over a local socket, one round trip to a remote server, at most 500 ms), so a process that
/// frees its streams and exits leaves no query running on the server.
#[no_mangle]
pub extern "C" fn fw_stream_free(s: *mut fw_stream) {
    if s.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a non-null `s` was created by fw_query_execute and is freed once.
        drop(unsafe { Box::from_raw(s) });
        Ok(fw_status::FW_OK)
    });
}
