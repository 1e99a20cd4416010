//! `fw_client`: connection settings plus a pool of connections.

use std::ffi::c_char;

use super::{cstr, fw_status, guard, null, write_out};
use crate::client::Client;

/// A thread-safe client (opaque).
#[allow(non_camel_case_types)]
pub struct fw_client {
    pub(crate) inner: Client,
}

/// Parse `conninfo` (libpq URI or key=value form, PG* environment variables as defaults),
/// connect once to check it, and return a client holding that connection in `*out`.
#[no_mangle]
pub extern "C" fn fw_client_new(conninfo: *const c_char, out: *mut *mut fw_client) -> fw_status {
    guard(|| {
        // SAFETY: `conninfo` is a C string from the caller (checked for NULL and UTF-8).
        let conninfo = unsafe { cstr(conninfo, "conninfo") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        let client = Client::connect(conninfo)?;
        let p = Box::into_raw(Box::new(fw_client { inner: client }));
        // SAFETY: `out` is non-null (checked above) and points to a writable pointer.
        unsafe { write_out(out, p) };
        Ok(fw_status::FW_OK)
    })
}

/// Free a client and close its idle connections. Streams still open keep working until
/// they are freed. NULL is a no-op.
#[no_mangle]
pub extern "C" fn fw_client_free(client: *mut fw_client) {
    if client.is_null() {
        return;
    }
    guard(|| {
        // SAFETY: a non-null `client` was created by fw_client_new and is freed once.
        let client = unsafe { Box::from_raw(client) };
        close_idle_after_shutdown(&client.inner);
        drop(client);
        Ok(fw_status::FW_OK)
    });
}

/// After `fw_shutdown`, close `client`'s idle connections here, on the host thread, before
/// the last handle goes. The pool's own cleanup abandons connections once the runtime is shut
/// down, which leaks their buffers and I/O registrations (found by the C suite under ASan and
/// valgrind). Dropping a socket after the runtime stopped is safe: its registration keeps its
/// own handle to the I/O driver. Connections inherited across fork() are still abandoned, by
/// `Pool::take`. Draining while other handles share the pool is harmless: after shutdown
/// nothing can use it.
pub(crate) fn close_idle_after_shutdown(client: &Client) {
    if crate::runtime::is_shut_down() {
        while let Some(conn) = client.pool().take() {
            drop(conn);
        }
    }
}
