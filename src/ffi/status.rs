//! `fw_status` and `fw_status_str`.

use std::ffi::c_char;
use std::os::raw::c_int;

use crate::error::ErrorKind;

/// Outcome of a call: `FW_OK` (0), other non-error outcomes positive, errors negative.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_status {
    /// Success; for `fw_stream_next` a row was delivered.
    FW_OK = 0,
    /// The stream ended normally; no row delivered.
    FW_DONE = 1,
    /// Non-blocking call: nothing ready yet.
    FW_WOULD_BLOCK = 2,
    /// A blocking call's timeout elapsed; the stream is still usable.
    FW_TIMEOUT = 3,
    /// The stream is paused and its buffer is drained; nothing more until resume.
    FW_PAUSED = 4,
    /// A row callback asked to stop.
    FW_STOPPED = 5,
    FW_E_INVALID_ARGUMENT = -1,
    FW_E_NULL = -2,
    FW_E_CONNECT = -3,
    FW_E_AUTH = -4,
    FW_E_TLS = -5,
    FW_E_SERVER = -6,
    FW_E_PROTOCOL = -7,
    FW_E_SCHEMA = -8,
    FW_E_MEMORY_LIMIT = -9,
    FW_E_CANCELLED = -10,
    FW_E_IO = -11,
    FW_E_STATE = -12,
    FW_E_PANIC = -13,
    FW_E_SHUTDOWN = -14,
}

impl From<ErrorKind> for fw_status {
    fn from(k: ErrorKind) -> fw_status {
        match k {
            ErrorKind::InvalidArgument => fw_status::FW_E_INVALID_ARGUMENT,
            ErrorKind::Null => fw_status::FW_E_NULL,
            ErrorKind::Connect => fw_status::FW_E_CONNECT,
            ErrorKind::Auth => fw_status::FW_E_AUTH,
            ErrorKind::Tls => fw_status::FW_E_TLS,
            ErrorKind::Server => fw_status::FW_E_SERVER,
            ErrorKind::Protocol => fw_status::FW_E_PROTOCOL,
            ErrorKind::Schema => fw_status::FW_E_SCHEMA,
            ErrorKind::MemoryLimit => fw_status::FW_E_MEMORY_LIMIT,
            ErrorKind::Cancelled => fw_status::FW_E_CANCELLED,
            ErrorKind::Io => fw_status::FW_E_IO,
            ErrorKind::State => fw_status::FW_E_STATE,
            ErrorKind::Panic => fw_status::FW_E_PANIC,
            ErrorKind::Shutdown => fw_status::FW_E_SHUTDOWN,
        }
    }
}

fn name(status: c_int) -> &'static [u8] {
    match status {
        0 => b"FW_OK\0",
        1 => b"FW_DONE\0",
        2 => b"FW_WOULD_BLOCK\0",
        3 => b"FW_TIMEOUT\0",
        4 => b"FW_PAUSED\0",
        5 => b"FW_STOPPED\0",
        -1 => b"FW_E_INVALID_ARGUMENT\0",
        -2 => b"FW_E_NULL\0",
        -3 => b"FW_E_CONNECT\0",
        -4 => b"FW_E_AUTH\0",
        -5 => b"FW_E_TLS\0",
        -6 => b"FW_E_SERVER\0",
        -7 => b"FW_E_PROTOCOL\0",
        -8 => b"FW_E_SCHEMA\0",
        -9 => b"FW_E_MEMORY_LIMIT\0",
        -10 => b"FW_E_CANCELLED\0",
        -11 => b"FW_E_IO\0",
        -12 => b"FW_E_STATE\0",
        -13 => b"FW_E_PANIC\0",
        -14 => b"FW_E_SHUTDOWN\0",
        _ => b"FW_UNKNOWN\0",
    }
}

/// The status constant's own name (`"FW_DONE"`, `"FW_E_AUTH"`, ...), a static string;
/// `"FW_UNKNOWN"` for any other value.
///
/// The parameter is an `int` rather than `fw_status` so that any value a C program passes,
/// including ones outside the enum, is handled soundly (as rustls-ffi does); `fw_status`
/// values convert implicitly.
#[no_mangle]
pub extern "C" fn fw_status_str(status: c_int) -> *const c_char {
    name(status).as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn names_match_constants() {
        let s = |v: c_int| {
            // SAFETY: fw_status_str returns static NUL-terminated strings.
            unsafe { CStr::from_ptr(fw_status_str(v)) }
                .to_str()
                .unwrap()
        };
        assert_eq!(s(fw_status::FW_OK as c_int), "FW_OK");
        assert_eq!(s(fw_status::FW_DONE as c_int), "FW_DONE");
        assert_eq!(s(fw_status::FW_E_AUTH as c_int), "FW_E_AUTH");
        assert_eq!(s(fw_status::FW_E_SHUTDOWN as c_int), "FW_E_SHUTDOWN");
        assert_eq!(s(999), "FW_UNKNOWN");
        assert_eq!(s(-15), "FW_UNKNOWN");
        for k in [ErrorKind::Io, ErrorKind::Schema, ErrorKind::MemoryLimit] {
            let st = fw_status::from(k);
            assert!(s(st as c_int).starts_with("FW_E_"));
        }
    }
}
