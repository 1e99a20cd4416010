//! Backend message encoding (the few messages the fake server sends).

pub fn msg(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(body);
}

pub fn cstr(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(s.as_bytes());
    b.push(0);
}

pub fn auth_ok(out: &mut Vec<u8>) {
    msg(out, b'R', &0u32.to_be_bytes());
}

pub fn auth_cleartext(out: &mut Vec<u8>) {
    msg(out, b'R', &3u32.to_be_bytes());
}

pub fn parameter_status(out: &mut Vec<u8>, k: &str, v: &str) {
    let mut b = Vec::new();
    cstr(&mut b, k);
    cstr(&mut b, v);
    msg(out, b'S', &b);
}

pub fn backend_key(out: &mut Vec<u8>, pid: i32, secret: i32) {
    let mut b = Vec::new();
    b.extend_from_slice(&pid.to_be_bytes());
    b.extend_from_slice(&secret.to_be_bytes());
    msg(out, b'K', &b);
}

pub fn ready(out: &mut Vec<u8>, status: u8) {
    msg(out, b'Z', &[status]);
}

pub fn command_complete(out: &mut Vec<u8>, tag: &str) {
    let mut b = Vec::new();
    cstr(&mut b, tag);
    msg(out, b'C', &b);
}

/// RowDescription of text-format columns `(name, type oid)`.
pub fn row_description(out: &mut Vec<u8>, cols: &[(&str, u32)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&(cols.len() as u16).to_be_bytes());
    for (name, oid) in cols {
        cstr(&mut b, name);
        b.extend_from_slice(&0u32.to_be_bytes()); // table oid
        b.extend_from_slice(&0u16.to_be_bytes()); // attnum
        b.extend_from_slice(&oid.to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes()); // typlen
        b.extend_from_slice(&(-1i32).to_be_bytes()); // typmod
        b.extend_from_slice(&0u16.to_be_bytes()); // text format
    }
    msg(out, b'T', &b);
}

/// An ErrorResponse (or NoticeResponse with `tag = b'N'`).
pub fn error_fields(out: &mut Vec<u8>, tag: u8, severity: &str, code: &str, message: &str) {
    let mut b = Vec::new();
    b.push(b'S');
    cstr(&mut b, severity);
    b.push(b'V');
    cstr(&mut b, severity);
    b.push(b'C');
    cstr(&mut b, code);
    b.push(b'M');
    cstr(&mut b, message);
    b.push(0);
    msg(out, tag, &b);
}

pub fn error(out: &mut Vec<u8>, code: &str, message: &str) {
    error_fields(out, b'E', "ERROR", code, message);
}

/// A DataRow with the given column values (None = NULL).
pub fn data_row(out: &mut Vec<u8>, cols: &[Option<&[u8]>]) {
    let len: usize = 4
        + 2
        + cols
            .iter()
            .map(|c| 4 + c.map_or(0, |d| d.len()))
            .sum::<usize>();
    out.push(b'D');
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&(cols.len() as u16).to_be_bytes());
    for c in cols {
        match c {
            Some(d) => {
                out.extend_from_slice(&(d.len() as u32).to_be_bytes());
                out.extend_from_slice(d);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
}
