//! I/O-free checks of what the server sends: the size a message may announce before any of
//! its bytes are buffered, the parts of a result the library relies on (text format, the
//! DataRow field length), and the SCRAM server-first message. Used by the connection's
//! start-up ([`crate::connection`]) and by the stream's reader ([`crate::stream`]); each is
//! unit-tested on byte fixtures below.

use crate::error::{Error, Result};

/// The most bytes a message other than a DataRow may announce once the session is
/// authenticated (an ErrorResponse quoting a large input, a NoticeResponse, a
/// RowDescription...). Such a message is read whole, beyond the stream's memory budget if
/// need be: the stream cannot go on without it. A longer one ends the stream with
/// `FW_E_PROTOCOL` as soon as its header arrives. DataRows are bounded by the stream's budget
/// instead (`FW_E_MEMORY_LIMIT`).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// The most bytes a message of a type that is never long may announce (libpq's limit in
/// `pqParseInput3`: anything but RowDescription, DataRow, CopyData, FunctionCallResponse,
/// ErrorResponse, NoticeResponse and NotificationResponse). A longer one means the client is
/// out of sync with the server, or not talking to PostgreSQL.
pub const SHORT_MESSAGE_LIMIT: usize = 30_000;

/// The most bytes an authentication request (or a NegotiateProtocolVersion) may announce
/// before authentication completes (libpq's limit in `PQconnectPoll`).
pub const AUTH_REQUEST_LIMIT: usize = 2_000;

/// The most bytes any other message may announce before authentication completes (libpq's
/// limit for an ErrorResponse there).
pub const PRE_AUTH_LIMIT: usize = 30_000;

/// Where in the session a message arrives: the limits differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before AuthenticationOk.
    Auth,
    /// From AuthenticationOk on.
    Session,
}

/// The header of a backend message: its type and its size including the type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub tag: u8,
    /// Type byte, length field and body.
    pub total: usize,
}

/// Message types that may be long (libpq's `VALID_LONG_MESSAGE_TYPE`).
fn may_be_long(tag: u8) -> bool {
    matches!(tag, b'T' | b'D' | b'd' | b'V' | b'E' | b'N' | b'A')
}

/// A message type's name for error messages.
pub(crate) fn message_name(tag: u8) -> &'static str {
    match tag {
        b'1' => "ParseComplete",
        b'2' => "BindComplete",
        b'3' => "CloseComplete",
        b'A' => "NotificationResponse",
        b'C' => "CommandComplete",
        b'D' => "DataRow",
        b'E' => "ErrorResponse",
        b'I' => "EmptyQueryResponse",
        b'K' => "BackendKeyData",
        b'N' => "NoticeResponse",
        b'R' => "Authentication",
        b'S' => "ParameterStatus",
        b'T' => "RowDescription",
        b'V' => "FunctionCallResponse",
        b'Z' => "ReadyForQuery",
        b'd' => "CopyData",
        b'n' => "NoData",
        b's' => "PortalSuspended",
        b't' => "ParameterDescription",
        b'v' => "NegotiateProtocolVersion",
        _ => "unknown message type",
    }
}

/// How a message type is written in error messages: `'E' (ErrorResponse)`, or the byte's
/// value when it is not printable.
pub(crate) fn describe_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}' ({})", tag as char, message_name(tag))
    } else {
        format!("byte {tag} ({})", message_name(tag))
    }
}

/// Read the header at the start of `buf` (`None`: fewer than 5 bytes) and check the length
/// it announces against the limits of `phase`, before any more of the message is read:
///
/// * every length is at least 4 (it counts itself);
/// * before authentication: an authentication request at most [`AUTH_REQUEST_LIMIT`], any
///   other message at most [`PRE_AUTH_LIMIT`] (as libpq);
/// * after: a type that is never long at most [`SHORT_MESSAGE_LIMIT`] (as libpq), any other
///   message but a DataRow at most [`MAX_MESSAGE`]. DataRows are left to the caller (the
///   stream's budget bounds them).
pub(crate) fn header(buf: &[u8], phase: Phase) -> Result<Option<Header>> {
    let Some(h) = buf.get(..5) else {
        return Ok(None);
    };
    let tag = h[0];
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len < 4 {
        crate::metrics::protocol_error("bad_length");
        return Err(Error::protocol(format!(
            "the server sent a message {} with an invalid length {len} (less than 4)",
            describe_tag(tag)
        )));
    }
    let limit = match phase {
        Phase::Auth if matches!(tag, b'R' | b'v') => Some((
            AUTH_REQUEST_LIMIT,
            "an authentication request is at most 2000 bytes",
        )),
        Phase::Auth => Some((
            PRE_AUTH_LIMIT,
            "a message before authentication is at most 30000 bytes",
        )),
        Phase::Session if tag == b'D' => None,
        Phase::Session if may_be_long(tag) => Some((
            MAX_MESSAGE,
            "messages other than rows are read up to 67108864 bytes (64 MiB)",
        )),
        Phase::Session => Some((
            SHORT_MESSAGE_LIMIT,
            "a message of this type is at most 30000 bytes",
        )),
    };
    if let Some((limit, rule)) = limit {
        if len > limit {
            crate::metrics::protocol_error("message_too_long");
            let when = match phase {
                Phase::Auth => " before authentication",
                Phase::Session => "",
            };
            return Err(Error::protocol(format!(
                "the server sent a message {} of {len} bytes{when}; {rule} (the connection is \
                 out of sync, or the server is not PostgreSQL)",
                describe_tag(tag)
            )));
        }
    }
    Ok(Some(Header {
        tag,
        total: len + 1,
    }))
}

/// The format code of a result column: the query asks for text (0); anything else would
/// hand the consumer bytes that are not JSON text.
pub(crate) fn check_text_format(format: i16) -> Result<()> {
    if format == 0 {
        return Ok(());
    }
    crate::metrics::protocol_error("row_description");
    Err(Error::protocol(format!(
        "the server described the column in {} (format code {format}); the query asked for \
         text (format code 0)",
        if format == 1 {
            "binary format"
        } else {
            "an unknown format"
        }
    )))
}

/// Check a SCRAM server-first message before any proof is computed from it, as libpq's
/// `read_server_first_message` does: `r=<nonce>,s=<salt>,i=<count>` with an iteration count
/// of at least 1. A count of 0 would make the client send a proof computed without key
/// stretching. Everything else (the nonce, the salt's encoding) is checked by
/// `postgres-protocol` when the proof is computed.
pub(crate) fn check_scram_server_first(message: &[u8]) -> Result<()> {
    let auth = |m: String| Error::new(crate::error::ErrorKind::Auth, m);
    let text = std::str::from_utf8(message)
        .map_err(|_| auth("malformed SCRAM message (not UTF-8)".to_string()))?;
    let count = text
        .split(',')
        .find_map(|attr| attr.strip_prefix("i="))
        .ok_or_else(|| auth("malformed SCRAM message (no iteration count)".to_string()))?;
    match count.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err(auth(format!(
            "malformed SCRAM message (invalid iteration count {count:?}; it must be at least 1)"
        ))),
    }
}

/// The fields of a NoticeResponse. A malformed one (a field without its NUL, bytes after
/// the terminator) is a protocol violation like a malformed ErrorResponse: what follows it
/// cannot be trusted to be framed right (libpq treats it as lost synchronization).
pub(crate) fn notice(
    body: &postgres_protocol::message::backend::NoticeResponseBody,
) -> Result<crate::error::ServerError> {
    crate::error::ServerError::from_fields(&mut body.fields()).map_err(|e| {
        crate::metrics::protocol_error("malformed");
        Error::protocol(format!("malformed NoticeResponse: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn hdr(tag: u8, len: u32) -> Vec<u8> {
        let mut b = vec![tag];
        b.extend_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn a_header_needs_five_bytes() {
        assert_eq!(header(&[], Phase::Session).unwrap(), None);
        assert_eq!(header(&hdr(b'Z', 5)[..4], Phase::Session).unwrap(), None);
        assert_eq!(
            header(&hdr(b'Z', 5), Phase::Session).unwrap(),
            Some(Header {
                tag: b'Z',
                total: 6
            })
        );
    }

    #[test]
    fn lengths_below_four_are_refused() {
        for len in 0..4 {
            for phase in [Phase::Auth, Phase::Session] {
                let e = header(&hdr(b'C', len), phase).unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Protocol);
                assert!(e.message().contains("less than 4"), "{e}");
            }
        }
        assert!(header(&hdr(b'1', 4), Phase::Session).is_ok());
    }

    #[test]
    fn before_authentication_messages_are_small() {
        assert!(header(&hdr(b'R', 2000), Phase::Auth).is_ok());
        let e = header(&hdr(b'R', 2001), Phase::Auth).unwrap_err();
        assert!(e.message().contains("authentication request"), "{e}");
        assert!(header(&hdr(b'E', 30_000), Phase::Auth).is_ok());
        for tag in [b'E', b'N', b'S', b'~'] {
            let e = header(&hdr(tag, 30_001), Phase::Auth).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol);
            assert!(e.message().contains("before authentication"), "{e}");
        }
        // 2 GiB announced: refused at the header, whatever follows.
        assert!(header(&hdr(b'N', i32::MAX as u32), Phase::Auth).is_err());
    }

    #[test]
    fn after_authentication_long_types_are_capped_and_short_ones_small() {
        for tag in [b'E', b'N', b'T', b'A'] {
            assert!(header(&hdr(tag, MAX_MESSAGE as u32), Phase::Session).is_ok());
            let e = header(&hdr(tag, MAX_MESSAGE as u32 + 1), Phase::Session).unwrap_err();
            assert!(e.message().contains("67108864"), "{e}");
        }
        for tag in [b'C', b'S', b'K', b'Z', b'1', b'~'] {
            assert!(header(&hdr(tag, 30_000), Phase::Session).is_ok());
            let e = header(&hdr(tag, 30_001), Phase::Session).unwrap_err();
            assert!(e.message().contains("at most 30000"), "{e}");
        }
        // DataRows are the stream's budget's business.
        assert!(header(&hdr(b'D', u32::MAX), Phase::Session).is_ok());
        let e = header(&hdr(0x7f, 1 << 30), Phase::Session).unwrap_err();
        assert!(
            e.message().contains("byte 127 (unknown message type)"),
            "{e}"
        );
    }

    #[test]
    fn only_text_format_is_accepted() {
        assert!(check_text_format(0).is_ok());
        let e = check_text_format(1).unwrap_err();
        assert!(e.message().contains("binary format (format code 1)"), "{e}");
        assert!(check_text_format(7).is_err());
        assert!(check_text_format(-1).is_err());
    }

    #[test]
    fn scram_iteration_counts_below_one_are_refused() {
        assert!(check_scram_server_first(b"r=abc,s=c2FsdA==,i=4096").is_ok());
        assert!(check_scram_server_first(b"r=abc,s=c2FsdA==,i=1").is_ok());
        for bad in [
            &b"r=abc,s=c2FsdA==,i=0"[..],
            b"r=abc,s=c2FsdA==,i=-1",
            b"r=abc,s=c2FsdA==,i=",
            b"r=abc,s=c2FsdA==,i=x",
            b"r=abc,s=c2FsdA==",
            b"\xff",
        ] {
            let e = check_scram_server_first(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
            assert!(e.message().starts_with("malformed SCRAM message"), "{e}");
        }
        let e = check_scram_server_first(b"r=abc,s=c2FsdA==,i=0").unwrap_err();
        assert!(e.message().contains("iteration count"), "{e}");
    }
}
