//! `fw_error`: structured error details, per thread (`fw_last_error`) and per stream.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use super::status::fw_status;
use crate::error::Error;

/// Details of a failure: status code, message, and for server errors SQLSTATE, detail, hint
/// and position. Opaque; read it with the `fw_error_*` accessors.
#[allow(non_camel_case_types)]
pub struct fw_error {
    code: fw_status,
    message: CString,
    sqlstate: Option<CString>,
    detail: Option<CString>,
    hint: Option<CString>,
    position: Option<CString>,
}

fn c(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_default()
}

impl fw_error {
    pub(crate) fn from_error(e: &Error) -> fw_error {
        let se = e.server_error();
        fw_error {
            code: e.kind().into(),
            message: c(&e.to_string()),
            sqlstate: se.map(|s| c(&s.sqlstate)).filter(|s| !s.is_empty()),
            detail: se.and_then(|s| s.detail.as_deref()).map(c),
            hint: se.and_then(|s| s.hint.as_deref()).map(c),
            position: se.and_then(|s| s.position.as_deref()).map(c),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<Box<fw_error>>> = const { RefCell::new(None) };
}

pub(crate) fn set_last_error(e: &Error) {
    let boxed = Box::new(fw_error::from_error(e));
    LAST_ERROR.with(|l| *l.borrow_mut() = Some(boxed));
}

/// The detail of the last failed call on the calling thread, or NULL. Valid until the next
/// failing call on this thread.
#[no_mangle]
pub extern "C" fn fw_last_error() -> *const fw_error {
    LAST_ERROR.with(|l| {
        l.borrow()
            .as_deref()
            .map_or(std::ptr::null(), |e| e as *const fw_error)
    })
}

fn with_err<T>(e: *const fw_error, f: impl FnOnce(&fw_error) -> T, default: T) -> T {
    // SAFETY: a non-null `e` must come from fw_last_error/fw_stream_error and still be valid
    // (documented lifetime); null is checked here.
    match unsafe { e.as_ref() } {
        Some(e) => f(e),
        None => default,
    }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// The error's status code (`FW_E_NULL` for a NULL error).
#[no_mangle]
pub extern "C" fn fw_error_code(e: *const fw_error) -> fw_status {
    with_err(e, |e| e.code, fw_status::FW_E_NULL)
}

/// A message for people (never contains a password). NULL for a NULL error.
#[no_mangle]
pub extern "C" fn fw_error_message(e: *const fw_error) -> *const c_char {
    with_err(e, |e| e.message.as_ptr(), std::ptr::null())
}

/// The server's SQLSTATE (e.g. `"28P01"`), or NULL when the server did not send one.
#[no_mangle]
pub extern "C" fn fw_error_sqlstate(e: *const fw_error) -> *const c_char {
    with_err(e, |e| opt_ptr(&e.sqlstate), std::ptr::null())
}

/// The server's DETAIL field, or NULL.
#[no_mangle]
pub extern "C" fn fw_error_detail(e: *const fw_error) -> *const c_char {
    with_err(e, |e| opt_ptr(&e.detail), std::ptr::null())
}

/// The server's HINT field, or NULL.
#[no_mangle]
pub extern "C" fn fw_error_hint(e: *const fw_error) -> *const c_char {
    with_err(e, |e| opt_ptr(&e.hint), std::ptr::null())
}

/// The server's error position (a 1-based character index into the SQL, as text), or NULL.
#[no_mangle]
pub extern "C" fn fw_error_position(e: *const fw_error) -> *const c_char {
    with_err(e, |e| opt_ptr(&e.position), std::ptr::null())
}
