//! The set-up round trips of a parallel stream's connections: the snapshot's transaction on
//! the first one, the snapshot's import on the others (simple query protocol).

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::connection::Connection;
use crate::error::{Error, ErrorKind, Result, ServerError};

/// The result of one statement of a simple query: its column types and rows (text, `None` for
/// NULL).
#[derive(Debug, Default)]
pub struct Answer {
    pub types: Vec<u32>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Run `sql` (one or more statements) with the simple query protocol: one [`Answer`] per
/// statement that returned rows or described columns, or the server's error (after its
/// ReadyForQuery, so the connection is in a known state: inside a failed transaction when the
/// error came after BEGIN).
pub async fn simple(conn: &mut Connection, sql: &str) -> Result<Vec<Answer>> {
    use fallible_iterator::FallibleIterator;
    let mut out = BytesMut::new();
    frontend::query(sql, &mut out).map_err(|e| Error::invalid(format!("invalid query: {e}")))?;
    conn.send(&out).await?;
    let mut answers: Vec<Answer> = Vec::new();
    let mut error: Option<Error> = None;
    loop {
        match conn.read_message().await? {
            Message::RowDescription(body) => {
                let types = body
                    .fields()
                    .map(|f| Ok(f.type_oid()))
                    .collect()
                    .map_err(|e| Error::protocol(format!("malformed RowDescription: {e}")))?;
                answers.push(Answer {
                    types,
                    rows: Vec::new(),
                });
            }
            Message::DataRow(row) => {
                let buf = row.buffer();
                let values: Vec<Option<String>> = row
                    .ranges()
                    .map(|r| Ok(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned())))
                    .collect()
                    .map_err(|e| Error::protocol(format!("malformed DataRow: {e}")))?;
                if let Some(a) = answers.last_mut() {
                    a.rows.push(values);
                }
            }
            Message::ErrorResponse(body) => {
                let se = ServerError::from_fields(&mut body.fields())
                    .map_err(|e| Error::protocol(format!("malformed ErrorResponse: {e}")))?;
                error.get_or_insert(Error::server(ErrorKind::Server, se));
            }
            Message::ReadyForQuery(_) => {
                return match error {
                    Some(e) => Err(e),
                    None => Ok(answers),
                };
            }
            _ => {}
        }
    }
}

/// Quote `s` as an SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
