//! The protocol state of one query's answer, without I/O: the messages before the result is
//! described (ParseComplete, BindComplete, the RowDescription and its shape, NoData), the
//! DataRow checks (written once, for the framer's fast path and its message-by-message path),
//! ErrorResponse and NoticeResponse, CommandComplete and ReadyForQuery, and the outcome the
//! stream ends with.

use postgres_protocol::message::backend::Message;

use super::plan::TABLE_SLACK;
use crate::error::{Error, ErrorKind, Result, ServerError};
use crate::metrics;

const JSON_OID: u32 = 114;
const JSONB_OID: u32 = 3802;

fn server_error(body: postgres_protocol::message::backend::ErrorResponseBody) -> Error {
    match ServerError::from_fields(&mut body.fields()) {
        // Also 57014 (query_canceled): the caller's own cancel has already ended the stream
        // as `Cancelled` when the server's answer comes; a 57014 without it is the server's
        // doing (`statement_timeout`, `pg_cancel_backend`), a server error like any other.
        Ok(se) => Error::server(ErrorKind::Server, se),
        Err(e) => Error::protocol(format!("malformed ErrorResponse: {e}")),
    }
}

/// Check the RowDescription: exactly one column named `data` of type json or jsonb.
fn check_schema(body: &postgres_protocol::message::backend::RowDescriptionBody) -> Result<()> {
    use fallible_iterator::FallibleIterator;
    let fields: Vec<(String, u32, i16)> = body
        .fields()
        .map(|f| Ok((f.name().to_string(), f.type_oid(), f.format())))
        .collect()
        .map_err(|e| Error::protocol(format!("malformed RowDescription: {e}")))?;
    // The query asks for text results: a column in another format is a protocol violation.
    for (_, _, format) in &fields {
        crate::protocol::check_text_format(*format)?;
    }
    let fields: Vec<(String, u32)> = fields.into_iter().map(|(n, oid, _)| (n, oid)).collect();
    if let [(name, oid)] = fields.as_slice() {
        if name == "data" && (*oid == JSON_OID || *oid == JSONB_OID) {
            return Ok(());
        }
    }
    let described: Vec<String> = fields
        .iter()
        .map(|(n, oid)| format!("{n} ({})", type_name(*oid)))
        .collect();
    Err(Error::new(
        ErrorKind::Schema,
        format!(
            "the result must be exactly one column named \"data\" of type json or jsonb; got {} column(s): {}",
            fields.len(),
            if described.is_empty() { "none".to_string() } else { described.join(", ") }
        ),
    ))
}

pub(crate) fn no_columns() -> Error {
    Error::new(
        ErrorKind::Schema,
        "the statement returns no rows description (no columns)",
    )
}

fn type_name(oid: u32) -> String {
    match oid {
        JSON_OID => "json".into(),
        JSONB_OID => "jsonb".into(),
        16 => "bool".into(),
        20 => "int8".into(),
        21 => "int2".into(),
        23 => "int4".into(),
        25 => "text".into(),
        700 => "float4".into(),
        701 => "float8".into(),
        1043 => "varchar".into(),
        1700 => "numeric".into(),
        other => format!("type oid {other}"),
    }
}

/// The message of a row over the stream's row limit, stating the rule applied: the smaller of
/// `fail_ratio x budget` and the budget less one row-table entry's room (`TABLE_SLACK`).
pub(crate) fn row_limit_message(
    total: usize,
    max_row: usize,
    m: &crate::stream::options::MemoryLimits,
) -> String {
    let by_ratio = m.max_row_bytes();
    let rule = if max_row < by_ratio {
        format!(
            "the budget of {} bytes less {TABLE_SLACK} bytes for the row's table entry",
            m.bytes
        )
    } else {
        format!("{} bytes x fail ratio {}", m.bytes, m.fail_ratio)
    };
    format!("a row of {total} bytes exceeds the stream's row limit of {max_row} bytes ({rule})")
}

/// What [`ProtocolState::before_description`] made of a message.
pub(crate) enum Undescribed {
    /// The result is described now, with the right shape.
    Described,
    /// An acknowledgement (ParseComplete, BindComplete).
    Skipped,
    /// Any other message, for the caller.
    Other(Message),
}

/// Why the beginning of a DataRow is not a one-column row of the announced length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RowFault {
    /// A column count other than 1 (or a message too short to hold one column).
    ColumnCount,
    /// A negative field length other than -1 (NULL).
    NegativeLength(i32),
    /// The field length does not match the message length.
    LengthMismatch,
}

/// Bytes of a DataRow's beginning that [`data_row_column`] reads: tag, length, column count,
/// the column's length.
pub(crate) const DATA_ROW_HEAD: usize = 11;

/// The one column of the DataRow whose first [`DATA_ROW_HEAD`] bytes are `h` (its tag
/// already known to be `D`): `Some(length)` of its value, `None` for NULL. Both of the
/// framer's paths decide with this, so a row is accepted or refused the same way whichever
/// path sees it.
#[inline(always)]
pub(crate) fn data_row_column(
    h: &[u8; DATA_ROW_HEAD],
) -> std::result::Result<Option<u32>, RowFault> {
    let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    if len < 10 || h[5] != 0 || h[6] != 1 {
        return Err(RowFault::ColumnCount);
    }
    match i32::from_be_bytes([h[7], h[8], h[9], h[10]]) {
        -1 if len == 10 => Ok(None),
        n if n >= 0 && n as usize + 10 == len => Ok(Some(n as u32)),
        n if n < -1 => Err(RowFault::NegativeLength(n)),
        _ => Err(RowFault::LengthMismatch),
    }
}

/// The error for a [`RowFault`] (counted as a protocol error).
pub(crate) fn row_fault_error(fault: RowFault) -> Error {
    metrics::protocol_error("data_row");
    Error::protocol(match fault {
        RowFault::ColumnCount => {
            "DataRow with a column count other than 1 after a one-column description".to_string()
        }
        RowFault::NegativeLength(n) => {
            format!("DataRow with a field length of {n} (only -1, NULL, may be negative)")
        }
        RowFault::LengthMismatch => {
            "DataRow column length does not match the message length".to_string()
        }
    })
}

/// What the answer to the query said so far, apart from its rows.
#[derive(Debug, Default)]
pub(crate) struct ProtocolState {
    /// The RowDescription was received and checked. A stream handed over before (see
    /// [`StreamOptions::describe_wait`]) gets it while streaming.
    ///
    /// [`StreamOptions::describe_wait`]: crate::stream::options::StreamOptions::describe_wait
    pub(crate) described: bool,
    pub(crate) command_complete: bool,
    /// The first ErrorResponse while streaming: reported after the rows before it, once
    /// ReadyForQuery comes.
    pub(crate) error: Option<Error>,
    /// The last ReadyForQuery said the session is inside a transaction (a part of a
    /// parallel stream whose statement failed before its COMMIT): such a connection is
    /// never returned to the pool.
    pub(crate) in_transaction: bool,
}

impl ProtocolState {
    /// A message of the answer before the result is described, at the start and for a
    /// stream handed over undescribed: the acknowledgements of Parse and Bind are skipped,
    /// the RowDescription is checked (see `check_schema`), NoData means no column. Anything
    /// else is the caller's to handle.
    pub(crate) fn before_description(&mut self, msg: Message) -> Result<Undescribed> {
        match msg {
            Message::ParseComplete | Message::BindComplete => Ok(Undescribed::Skipped),
            Message::RowDescription(body) => {
                check_schema(&body)?;
                self.described = true;
                Ok(Undescribed::Described)
            }
            Message::NoData => Err(no_columns()),
            other => Ok(Undescribed::Other(other)),
        }
    }

    /// One message of the answer at the start, up to the RowDescription: `Ok(true)` once
    /// the result is described (and has the right shape), `Ok(false)` for the next one.
    pub(crate) fn at_start(&mut self, msg: Message) -> Result<bool> {
        let msg = match self.before_description(msg)? {
            Undescribed::Described => return Ok(true),
            Undescribed::Skipped => return Ok(false),
            Undescribed::Other(msg) => msg,
        };
        match msg {
            Message::NoticeResponse(body) => {
                crate::protocol::notice(&body)?;
                Ok(false)
            }
            Message::ParameterStatus(_) => Ok(false),
            Message::ErrorResponse(body) => Err(server_error(body)),
            _ => {
                metrics::protocol_error("unexpected_before_rows");
                Err(Error::protocol(
                    "unexpected message from the server before the result description",
                ))
            }
        }
    }

    /// A DataRow can only come after the description.
    pub(crate) fn check_row_allowed(&self) -> Result<()> {
        if self.described {
            return Ok(());
        }
        metrics::protocol_error("unexpected_before_rows");
        Err(Error::protocol("DataRow before the result description"))
    }

    /// A message other than a DataRow while streaming: `Ok(true)` at ReadyForQuery (the
    /// query is over), `Ok(false)` to go on.
    pub(crate) fn in_rows(&mut self, msg: Message) -> Result<bool> {
        // A stream handed over before it was described first sees the start of the answer.
        let msg = if self.described {
            msg
        } else {
            match self.before_description(msg)? {
                Undescribed::Other(msg) => msg,
                Undescribed::Described | Undescribed::Skipped => return Ok(false),
            }
        };
        match msg {
            Message::CommandComplete(_) => self.command_complete = true,
            Message::ErrorResponse(body) => {
                let e = server_error(body);
                if e.kind() == ErrorKind::Protocol {
                    // Malformed: what follows cannot be trusted; end here.
                    return Err(e);
                }
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
            Message::ReadyForQuery(body) => {
                self.in_transaction = body.status() != b'I';
                return Ok(true);
            }
            // The acknowledgements of a statement after the query's own (the COMMIT that
            // ends a parallel stream part's transaction).
            Message::ParseComplete | Message::BindComplete => {}
            Message::NoticeResponse(body) => {
                let se = crate::protocol::notice(&body)?;
                crate::log::debug(format!("server notice: {}", se.message));
            }
            Message::ParameterStatus(_) | Message::NotificationResponse(_) => {}
            Message::EmptyQueryResponse | Message::PortalSuspended => {}
            _ => {
                metrics::protocol_error("unexpected_in_rows");
                return Err(Error::protocol(
                    "unexpected message from the server while streaming rows",
                ));
            }
        }
        Ok(false)
    }

    /// The outcome the stream ends with, from how its reading ended (`outcome`) and what
    /// the server said.
    pub(crate) fn outcome(&mut self, outcome: Result<()>) -> Result<()> {
        match (outcome, self.error.take()) {
            // The server said why before closing (e.g. FATAL 57P01 when the backend is
            // terminated): the connection is broken (Io), but keep the server's reason.
            (Err(e), Some(se))
                if e.kind() == ErrorKind::Io
                    && se
                        .server_error()
                        .is_some_and(|s| s.severity == "FATAL" || s.severity == "PANIC") =>
            {
                let fields = se.server_error().cloned().unwrap_or_default();
                Err(Error::server(ErrorKind::Io, fields).context(e.message()))
            }
            (Err(e), _) => Err(e),
            (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) if self.command_complete => Ok(()),
            (Ok(()), None) => {
                metrics::protocol_error("missing_command_complete");
                Err(Error::protocol(
                    "the server ended the query without CommandComplete",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// The one message in `bytes`, parsed.
    fn parse(bytes: Vec<u8>) -> Message {
        let mut b = bytes::BytesMut::from(&bytes[..]);
        let m = Message::parse(&mut b).unwrap().expect("a whole message");
        assert!(b.is_empty());
        m
    }

    fn head(bytes: &[u8]) -> [u8; DATA_ROW_HEAD] {
        bytes[..DATA_ROW_HEAD].try_into().unwrap()
    }

    #[test]
    fn the_row_limit_message_states_the_rule_applied() {
        let m = crate::stream::options::MemoryLimits::new(MIB, 0.8, 1.0).unwrap();
        let max = m.max_row_bytes().min(m.bytes - TABLE_SLACK);
        let msg = row_limit_message(2 * MIB, max, &m);
        assert!(
            msg.contains(&format!("row limit of {} bytes", MIB - TABLE_SLACK)),
            "{msg}"
        );
        assert!(
            msg.contains("less 32 bytes for the row's table entry"),
            "{msg}"
        );
        assert!(!msg.contains("fail ratio"), "{msg}");
        let m = crate::stream::options::MemoryLimits::new(MIB, 0.5, 0.5).unwrap();
        let max = m.max_row_bytes().min(m.bytes - TABLE_SLACK);
        let msg = row_limit_message(MIB, max, &m);
        assert!(
            msg.contains("row limit of 524288 bytes (1048576 bytes x fail ratio 0.5)"),
            "{msg}"
        );
    }

    #[test]
    fn a_data_row_is_one_column_of_the_announced_length() {
        assert_eq!(data_row_column(&head(&data_row(Some(b"{}")))), Ok(Some(2)));
        assert_eq!(data_row_column(&head(&data_row(Some(b"")))), Ok(Some(0)));
        assert_eq!(data_row_column(&head(&data_row(None))), Ok(None));
        // Two columns.
        let two = message(b'D', &[0, 2, 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'2']);
        assert_eq!(data_row_column(&head(&two)), Err(RowFault::ColumnCount));
        // A field length of -2.
        for bad in [-2, -100, i32::MIN] {
            let mut body = vec![0, 1];
            body.extend_from_slice(&bad.to_be_bytes());
            let row = message(b'D', &body);
            assert_eq!(
                data_row_column(&head(&row)),
                Err(RowFault::NegativeLength(bad))
            );
        }
        // The field says 5 bytes, the message holds 2.
        let mut short = data_row(Some(b"{}"));
        short[10] = 5;
        assert_eq!(
            data_row_column(&head(&short)),
            Err(RowFault::LengthMismatch)
        );
        // NULL in a message with bytes after it.
        let mut null = data_row(None);
        null.push(0);
        null[4] += 1;
        assert_eq!(data_row_column(&head(&null)), Err(RowFault::LengthMismatch));
        let e = row_fault_error(RowFault::NegativeLength(-2));
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(
            e.message().contains("field length of -2"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn the_description_must_be_one_json_column_named_data() {
        for oid in [114, 3802] {
            let mut p = ProtocolState::default();
            let m = parse(row_description(&[("data", oid, 0)]));
            assert!(matches!(
                p.before_description(m),
                Ok(Undescribed::Described)
            ));
            assert!(p.described);
        }
        let mut p = ProtocolState::default();
        let e = match p
            .before_description(parse(row_description(&[("id", 23, 0), ("data", 3802, 0)])))
        {
            Err(e) => e,
            Ok(_) => panic!("two columns accepted"),
        };
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert!(
            e.message()
                .contains("got 2 column(s): id (int4), data (jsonb)"),
            "{}",
            e.message()
        );
        assert!(!p.described);
        let e = p
            .before_description(parse(row_description(&[("data", 25, 0)])))
            .err()
            .unwrap();
        assert!(e.message().contains("data (text)"), "{}", e.message());
        // Binary format: a protocol violation (the query asked for text).
        let e = p
            .before_description(parse(row_description(&[("data", 3802, 1)])))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        let e = p
            .before_description(parse(message(b'n', &[])))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Schema);
        assert!(matches!(
            p.before_description(parse(message(b'1', &[]))),
            Ok(Undescribed::Skipped)
        ));
    }

    #[test]
    fn at_the_start_errors_and_stray_messages_end_the_query() {
        let mut p = ProtocolState::default();
        assert!(!p.at_start(parse(message(b'2', &[]))).unwrap());
        assert!(!p.at_start(parse(notice("just saying"))).unwrap());
        let e = p
            .at_start(parse(error_response(
                "ERROR",
                "42P01",
                "relation \"nope\" does not exist",
            )))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Server);
        assert_eq!(e.sqlstate(), Some("42P01"));
        let e = p.at_start(parse(data_row(Some(b"{}")))).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(p.check_row_allowed().is_err());
        assert!(p
            .at_start(parse(row_description(&[("data", 114, 0)])))
            .unwrap());
        assert!(p.check_row_allowed().is_ok());
    }

    #[test]
    fn the_outcome_needs_command_complete_and_reports_the_server_error() {
        let mut p = ProtocolState {
            described: true,
            ..Default::default()
        };
        assert!(!p.in_rows(parse(notice("n"))).unwrap());
        assert!(!p.in_rows(parse(command_complete("SELECT 2"))).unwrap());
        assert!(p.in_rows(parse(ready_for_query())).unwrap());
        assert!(!p.in_transaction);
        assert!(p.outcome(Ok(())).is_ok());
        // A session left inside a transaction (status 'T' or 'E') is marked, never pooled.
        for status in [b'T', b'E'] {
            let mut p = ProtocolState {
                described: true,
                ..Default::default()
            };
            assert!(p.in_rows(parse(message(b'Z', &[status]))).unwrap());
            assert!(p.in_transaction);
        }
        // ReadyForQuery without CommandComplete.
        let mut p = ProtocolState {
            described: true,
            ..Default::default()
        };
        assert!(p.in_rows(parse(ready_for_query())).unwrap());
        let e = p.outcome(Ok(())).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("without CommandComplete"));
        // An error while streaming is kept (the first one) and reported at the end.
        let mut p = ProtocolState {
            described: true,
            ..Default::default()
        };
        assert!(!p
            .in_rows(parse(error_response("ERROR", "22012", "division by zero")))
            .unwrap());
        assert!(!p
            .in_rows(parse(error_response("ERROR", "XX000", "second")))
            .unwrap());
        assert!(p.in_rows(parse(ready_for_query())).unwrap());
        let e = p.outcome(Ok(())).err().unwrap();
        assert_eq!(e.sqlstate(), Some("22012"));
        // A FATAL error before the connection ends: an Io error with the server's reason.
        let mut p = ProtocolState {
            described: true,
            ..Default::default()
        };
        p.in_rows(parse(error_response(
            "FATAL",
            "57P01",
            "terminating connection",
        )))
        .unwrap();
        let e = p
            .outcome(Err(Error::new(
                ErrorKind::Io,
                "the server closed the connection",
            )))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert_eq!(e.sqlstate(), Some("57P01"));
        // Anything else while streaming is a protocol error (CopyDone here); the
        // acknowledgements of a statement after the query's own (a parallel part's COMMIT)
        // are skipped.
        let mut p = ProtocolState {
            described: true,
            ..Default::default()
        };
        assert!(!p.in_rows(parse(message(b'1', &[]))).unwrap());
        assert!(!p.in_rows(parse(message(b'2', &[]))).unwrap());
        let e = p.in_rows(parse(message(b'c', &[]))).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        // Undescribed (handed over before the description): the description comes first.
        let mut p = ProtocolState::default();
        assert!(!p.in_rows(parse(message(b'2', &[]))).unwrap());
        assert!(!p
            .in_rows(parse(row_description(&[("data", 3802, 0)])))
            .unwrap());
        assert!(p.described);
    }
}
