//! The effective OS user: its name (the default `user`) and home directory
//! (where `~/.pgpass` is looked for when `HOME` is unset).

use std::path::PathBuf;

use super::{err, ConnInfoError};

/// Name and home directory of the effective user, from the password database.
///
/// The lookup stays on libc's `getpwuid_r`: the password database goes through NSS (LDAP,
/// systemd-homed, ...), which only the C library implements; rustix has no equivalent.
/// The home directory is used only when `HOME` is unset, as libpq does (see
/// [`super::ConnConfig::parse`]).
#[cfg(unix)]
pub(super) fn current_user_entry() -> Result<(String, Option<PathBuf>), ConnInfoError> {
    use std::ffi::{CStr, OsStr};
    use std::os::unix::ffi::OsStrExt;

    let uid = rustix::process::geteuid().as_raw();
    let mut buf_len = 1024usize;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; buf_len];
        let mut pwd = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the whole call: `pwd` is writable
        // storage for one `passwd`, `buf` is a writable buffer of exactly
        // `buf.len()` bytes, and `result` is a valid out-pointer. The
        // re-entrant getpwuid_r keeps no reference to them after returning.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                pwd.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < (1 << 20) {
            buf_len *= 4;
            continue;
        }
        if rc != 0 {
            return Err(err(format!(
                "could not look up local user ID {uid}: {}",
                std::io::Error::from_raw_os_error(rc)
            )));
        }
        if result.is_null() {
            return Err(err(format!("local user with ID {uid} does not exist")));
        }
        // SAFETY: getpwuid_r returned 0 with a non-null `result`, so it
        // initialised `*pwd` (result == pwd.as_mut_ptr()); its string fields
        // are null or NUL-terminated strings stored inside `buf`, which is
        // still alive and unmodified here. The data is copied out before `buf`
        // is dropped.
        let (name, home) = unsafe {
            let pwd = pwd.assume_init_ref();
            let name = (!pwd.pw_name.is_null()).then(|| CStr::from_ptr(pwd.pw_name).to_owned());
            let home = (!pwd.pw_dir.is_null()).then(|| CStr::from_ptr(pwd.pw_dir).to_owned());
            (name, home)
        };
        let name = name
            .and_then(|n| n.into_string().ok())
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(format!("local user with ID {uid} has no usable name")))?;
        let home = home
            .filter(|h| !h.as_bytes().is_empty())
            .map(|h| PathBuf::from(OsStr::from_bytes(h.as_bytes())));
        return Ok((name, home));
    }
}

#[cfg(not(unix))]
pub(super) fn current_user_entry() -> Result<(String, Option<PathBuf>), ConnInfoError> {
    Err(err(
        "could not determine the local user name; set user or PGUSER",
    ))
}

pub(super) fn os_user_name() -> Result<String, ConnInfoError> {
    current_user_entry().map(|(name, _)| name)
}
