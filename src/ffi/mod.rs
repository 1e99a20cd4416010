//! The C boundary. Only translation happens here: pointer and UTF-8 checks, panic catching,
//! status codes, handles. Every exported function is a plain `extern "C" fn` (so cbindgen
//! sees it) whose body runs inside [`guard`].
//!
//! Rules kept by every function: NULL pointers give `FW_E_NULL`; bad UTF-8 gives
//! `FW_E_INVALID_ARGUMENT`; a panic gives `FW_E_PANIC`; out-parameters are written only on
//! success; `*_free(NULL)` is a no-op; failures set the thread's `fw_last_error`.

// The exported functions take raw pointers from C and check them (NULL) before use; they
// are safe to call from C under the documented contracts, so they are not `unsafe fn`.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod block;
pub mod client;
pub mod error;
pub mod log;
pub mod metrics;
pub mod query;
pub mod runtime;
pub mod status;
pub mod stream;

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use crate::error::{Error, ErrorKind, Result};
pub use status::fw_status;

thread_local! {
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
}

/// Keep panics inside the library silent (principle 6: nothing on stderr): the panic is
/// caught and reported as `FW_E_PANIC` with its message. Panics elsewhere in the host go to
/// the previous hook unchanged.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = IN_GUARD.with(|g| g.get())
                || std::thread::current().name() == Some(crate::runtime::THREAD_NAME);
            if ours {
                crate::log::log(crate::log::Level::Error, format!("internal error: {info}"));
            } else {
                previous(info);
            }
        }));
    });
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Run `f`, catching panics and turning errors into status codes and `fw_last_error`.
pub(crate) fn guard(f: impl FnOnce() -> Result<fw_status>) -> fw_status {
    install_panic_hook();
    let was = IN_GUARD.with(|g| g.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    let status = match r {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => fail(&e),
        Err(p) => fail(&Error::new(
            ErrorKind::Panic,
            format!("internal error (please report): {}", panic_message(p)),
        )),
    };
    if !was {
        log::deliver();
    }
    status
}

/// Like [`guard`] for functions that return a value rather than a status.
pub(crate) fn guard_value<T>(default: T, f: impl FnOnce() -> Result<T>) -> T {
    let mut out = None;
    let st = guard(|| {
        out = Some(f()?);
        Ok(fw_status::FW_OK)
    });
    match (st, out) {
        (fw_status::FW_OK, Some(v)) => v,
        _ => default,
    }
}

pub(crate) fn fail(e: &Error) -> fw_status {
    error::set_last_error(e);
    e.kind().into()
}

pub(crate) fn null(what: &str) -> Error {
    Error::new(ErrorKind::Null, format!("{what} is NULL"))
}

/// A shared reference from a C pointer, or `FW_E_NULL`.
///
/// # Safety
/// A non-null `p` must point to a live `T` created by this library.
pub(crate) unsafe fn obj<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: the caller guarantees a non-null pointer is valid.
    unsafe { p.as_ref() }.ok_or_else(|| null(what))
}

/// A mutable reference from a C pointer, or `FW_E_NULL`.
///
/// # Safety
/// A non-null `p` must point to a live `T` created by this library, not used elsewhere now.
pub(crate) unsafe fn obj_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: the caller guarantees a non-null pointer is valid and unaliased.
    unsafe { p.as_mut() }.ok_or_else(|| null(what))
}

/// A `&str` from a C string: `FW_E_NULL` if NULL, `FW_E_INVALID_ARGUMENT` if not UTF-8.
///
/// # Safety
/// A non-null `p` must point to a NUL-terminated string valid for the call.
pub(crate) unsafe fn cstr<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: non-null and NUL-terminated per the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map_err(|_| Error::invalid(format!("{what} is not valid UTF-8")))
}

/// Write an out-parameter (called only on success).
///
/// # Safety
/// `out` must be non-null (checked by the caller) and valid for writes.
pub(crate) unsafe fn write_out<T>(out: *mut T, v: T) {
    // SAFETY: per the caller's contract.
    unsafe { out.write(v) }
}
