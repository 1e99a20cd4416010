//! Library-wide calls: version, shutdown, fork hooks, string freeing.

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::time::Duration;

use super::{fw_status, guard};
use crate::error::Error;

static VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library version, e.g. `"0.1.0"` (static string; matches the header's
/// `FW_VERSION_STRING`).
#[no_mangle]
pub extern "C" fn fw_version() -> *const c_char {
    VERSION_C.as_ptr().cast()
}

/// Cancel every live stream, send the cancel requests still on their way (of
/// `fw_stream_cancel`), stop the internal runtime (waiting up to `timeout_ms` for the requests
/// and for its threads) and release its resources. Every later call that needs the runtime returns
/// `FW_E_SHUTDOWN`; so does a second `fw_shutdown`. Freeing handles remains allowed.
#[no_mangle]
pub extern "C" fn fw_shutdown(timeout_ms: u64) -> fw_status {
    guard(|| {
        if crate::runtime::shutdown(Duration::from_millis(timeout_ms)) {
            Ok(fw_status::FW_OK)
        } else {
            Err(Error::shutdown())
        }
    })
}

thread_local! {
    static FORK_HELD: RefCell<Option<crate::runtime::ForkGuard>> = const { RefCell::new(None) };
}

/// Call right before fork() (e.g. from pthread_atfork's prepare): holds the library's global
/// lock so the child does not inherit it locked by another thread.
#[no_mangle]
pub extern "C" fn fw_fork_prepare() {
    guard(|| {
        let g = crate::runtime::fork_prepare();
        FORK_HELD.with(|h| *h.borrow_mut() = Some(g));
        Ok(fw_status::FW_OK)
    });
}

/// Call in the parent right after fork().
#[no_mangle]
pub extern "C" fn fw_fork_parent() {
    guard(|| {
        FORK_HELD.with(|h| h.borrow_mut().take());
        Ok(fw_status::FW_OK)
    });
}

/// Call in the child right after fork(): the parent's runtime and connections are abandoned
/// (never used or closed through the shared epoll instance); the child's next call starts a
/// new runtime. Fork is detected without this hook too (by process id).
#[no_mangle]
pub extern "C" fn fw_fork_child() {
    guard(|| {
        let g = FORK_HELD.with(|h| h.borrow_mut().take());
        crate::runtime::fork_child(g);
        Ok(fw_status::FW_OK)
    });
}

/// Free a string returned by the library (e.g. by `fw_metrics_dump`). NULL is a no-op.
#[no_mangle]
pub extern "C" fn fw_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a non-null `s` was returned by this library from CString::into_raw.
        drop(unsafe { CString::from_raw(s) });
        Ok(fw_status::FW_OK)
    });
}
