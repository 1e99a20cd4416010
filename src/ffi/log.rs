//! `fw_set_log_callback`: the library's messages reach the host on host threads only.

use std::ffi::{c_char, c_void, CString};
use std::sync::Mutex;

use super::{fw_status, guard};
use crate::error::Error;
use crate::log::{self as core_log, Level};

/// Log levels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum fw_log_level {
    FW_LOG_DEBUG = 0,
    FW_LOG_INFO = 1,
    FW_LOG_WARN = 2,
    FW_LOG_ERROR = 3,
}

/// Receives library messages; runs on a thread that called into the library, never on an
/// internal thread. `message` is valid during the call only.
#[allow(non_camel_case_types)]
pub type fw_log_callback = Option<
    unsafe extern "C" fn(userdata: *mut c_void, level: fw_log_level, message: *const c_char),
>;

struct Sink {
    cb: unsafe extern "C" fn(*mut c_void, fw_log_level, *const c_char),
    userdata: *mut c_void,
}

// SAFETY: the callback is only invoked on host threads that call into the library, as the
// host asked when installing it; `userdata` is the host's and never dereferenced here.
unsafe impl Send for Sink {}

static SINK: Mutex<Option<Sink>> = Mutex::new(None);

fn to_c(level: Level) -> fw_log_level {
    match level {
        Level::Debug => fw_log_level::FW_LOG_DEBUG,
        Level::Info => fw_log_level::FW_LOG_INFO,
        Level::Warn => fw_log_level::FW_LOG_WARN,
        Level::Error => fw_log_level::FW_LOG_ERROR,
    }
}

/// Install (or with `cb == NULL` remove) the log callback; messages at `min_level` and above
/// are delivered. Messages produced on internal threads are queued and delivered at the end
/// of the next library call made by any host thread. With no callback nothing is recorded or
/// printed. `min_level` is an int (`fw_log_level` values); anything else is invalid.
#[no_mangle]
pub extern "C" fn fw_set_log_callback(
    min_level: std::os::raw::c_int,
    cb: fw_log_callback,
    userdata: *mut c_void,
) -> fw_status {
    guard(|| {
        let level = match min_level {
            0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            3 => Level::Error,
            l => {
                return Err(Error::invalid(format!(
                    "log level {l} is not an fw_log_level"
                )))
            }
        };
        let mut sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
        match cb {
            Some(cb) => {
                *sink = Some(Sink { cb, userdata });
                core_log::set_min_level(Some(level));
            }
            None => {
                *sink = None;
                core_log::set_min_level(None);
            }
        }
        Ok(fw_status::FW_OK)
    })
}

/// Hand queued messages to the callback (on the calling host thread).
pub(crate) fn deliver() {
    if !core_log::pending() {
        return;
    }
    let msgs = core_log::drain();
    if msgs.is_empty() {
        return;
    }
    let sink = SINK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = sink.as_ref() {
        for (level, msg) in msgs {
            let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            // SAFETY: calling the host's callback with a valid C string, on a host thread.
            unsafe { (s.cb)(s.userdata, to_c(level), c.as_ptr()) };
        }
    }
}
