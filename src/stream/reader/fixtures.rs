//! Backend messages as bytes, for the unit tests of the protocol state and the framer:
//! what a PostgreSQL server sends after a query, built by hand (postgres-protocol builds
//! only frontend messages).

/// A message: its tag, its length (itself included), its body.
pub(crate) fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A one-column DataRow (`None`: NULL).
pub(crate) fn data_row(value: Option<&[u8]>) -> Vec<u8> {
    let mut body = 1i16.to_be_bytes().to_vec();
    match value {
        Some(v) => {
            body.extend_from_slice(&(v.len() as i32).to_be_bytes());
            body.extend_from_slice(v);
        }
        None => body.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    message(b'D', &body)
}

/// A RowDescription of `(name, type oid, format code)` columns.
pub(crate) fn row_description(columns: &[(&str, u32, i16)]) -> Vec<u8> {
    let mut body = (columns.len() as i16).to_be_bytes().to_vec();
    for (name, oid, format) in columns {
        body.extend_from_slice(name.as_bytes());
        body.push(0);
        body.extend_from_slice(&0i32.to_be_bytes()); // table oid
        body.extend_from_slice(&0i16.to_be_bytes()); // column number
        body.extend_from_slice(&oid.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes()); // type size
        body.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
        body.extend_from_slice(&format.to_be_bytes());
    }
    message(b'T', &body)
}

/// The `data jsonb` description the stream expects.
pub(crate) fn json_description() -> Vec<u8> {
    row_description(&[("data", 3802, 0)])
}

fn fields(tag: u8, severity: &str, code: &str, text: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, v) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', text),
    ] {
        body.push(t);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(tag, &body)
}

pub(crate) fn error_response(severity: &str, code: &str, text: &str) -> Vec<u8> {
    fields(b'E', severity, code, text)
}

pub(crate) fn notice(text: &str) -> Vec<u8> {
    fields(b'N', "NOTICE", "00000", text)
}

pub(crate) fn command_complete(tag: &str) -> Vec<u8> {
    let mut body = tag.as_bytes().to_vec();
    body.push(0);
    message(b'C', &body)
}

pub(crate) fn ready_for_query() -> Vec<u8> {
    message(b'Z', b"I")
}
