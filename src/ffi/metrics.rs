//! Metrics: the Prometheus text dump and the optional `/metrics` HTTP endpoint.

use std::ffi::{c_char, CString};

use super::{cstr, fw_status, guard, null, write_out};
use crate::error::Error;

/// The library's metrics in the Prometheus text exposition format (version 0.0.4):
/// `*out` receives a NUL-terminated string to free with `fw_string_free`, `*len` its length
/// in bytes (without the NUL). `len` may be NULL. Only metrics that have a series are listed
/// (see docs/metrics.md for when each appears).
#[no_mangle]
pub extern "C" fn fw_metrics_dump(out: *mut *mut c_char, len: *mut usize) -> fw_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let text = crate::metrics::render();
        let n = text.len();
        let c =
            CString::new(text).map_err(|_| Error::invalid("a metric label contains a NUL byte"))?;
        // SAFETY: `out` is non-null (checked above) and valid for writes per the contract;
        // `len` is written only when non-null.
        unsafe {
            write_out(out, c.into_raw());
            if !len.is_null() {
                write_out(len, n);
            }
        }
        Ok(fw_status::FW_OK)
    })
}

/// Serve `GET /metrics` over HTTP/1.1 on `addr` (`"host:port"`, e.g. `"127.0.0.1:9187"`;
/// port 0 picks a free port, see `fw_metrics_port`) from the library's internal runtime.
/// `FW_E_STATE` if already serving (or if the library was built without the `metrics-http`
/// feature), `FW_E_INVALID_ARGUMENT` for an address that does not resolve, `FW_E_IO` if it
/// cannot be bound.
#[no_mangle]
pub extern "C" fn fw_metrics_serve(addr: *const c_char) -> fw_status {
    guard(|| {
        // SAFETY: `addr` is NULL or a NUL-terminated string per the contract.
        let addr = unsafe { cstr(addr, "addr") }?;
        serve(addr)?;
        Ok(fw_status::FW_OK)
    })
}

/// Stop the `/metrics` endpoint; its port is closed when this returns. `FW_OK` also when it
/// was not running.
#[no_mangle]
pub extern "C" fn fw_metrics_stop() -> fw_status {
    guard(|| {
        stop()?;
        Ok(fw_status::FW_OK)
    })
}

/// The TCP port the `/metrics` endpoint listens on, 0 when it is not running.
#[no_mangle]
pub extern "C" fn fw_metrics_port() -> u16 {
    let mut port = 0;
    guard(|| {
        port = local_port();
        Ok(fw_status::FW_OK)
    });
    port
}

#[cfg(feature = "metrics-http")]
fn serve(addr: &str) -> crate::Result<()> {
    crate::metrics::http::serve(addr).map(|_| ())
}

#[cfg(feature = "metrics-http")]
fn stop() -> crate::Result<()> {
    crate::metrics::http::stop().map(|_| ())
}

#[cfg(feature = "metrics-http")]
fn local_port() -> u16 {
    crate::metrics::http::local_addr()
        .map(|a| a.port())
        .unwrap_or(0)
}

#[cfg(not(feature = "metrics-http"))]
fn serve(_addr: &str) -> crate::Result<()> {
    Err(Error::state(
        "this build of the library has no HTTP endpoint (cargo feature metrics-http)",
    ))
}

#[cfg(not(feature = "metrics-http"))]
fn stop() -> crate::Result<()> {
    Ok(())
}

#[cfg(not(feature = "metrics-http"))]
fn local_port() -> u16 {
    0
}
