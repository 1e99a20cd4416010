//! The statement a query sends: its SQL and the values bound to its parameters, encoded as
//! the extended protocol's Parse/Bind/Describe/Execute/Sync.

use bytes::{BufMut, Bytes, BytesMut};
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;

use super::params::MAX_PARAMS;
use crate::error::{Error, Result};

/// One SQL statement with its parameter values (`$1` first; `None` is SQL NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub params: Vec<Option<String>>,
}

impl Statement {
    /// Encode Parse/Bind/Describe/Execute/Sync as an unnamed statement: the extended protocol
    /// refuses more than one command in a prepared statement, so the statement cannot be
    /// split into two whatever the user's predicate contains. Parameter types are left for
    /// the server to infer (as `PQexecParams` with no types does); values go in text format,
    /// results come in text format (jsonb arrives as JSON text).
    ///
    /// No Flush after Describe: the server keeps the description in its output buffer and
    /// sends it with the first rows, so a small result comes in one packet (a Flush made it
    /// two: one more send for the server and one more wake-up for us, 5-10% of a small query
    /// over TCP). A slow query is then described only when its first rows are ready; how long
    /// `execute` waits for that is [`crate::stream::options::StreamOptions::describe_wait`].
    pub fn encode(&self) -> Result<Bytes> {
        if self.params.len() > MAX_PARAMS {
            return Err(Error::invalid(format!(
                "the query has {} parameters; at most {MAX_PARAMS} can be bound",
                self.params.len()
            )));
        }
        let values_len: usize = self.params.iter().flatten().map(|v| v.len() + 4).sum();
        let mut out = BytesMut::with_capacity(self.sql.len() + values_len + 64);
        let enc = |e: std::io::Error| Error::invalid(format!("could not encode the query: {e}"));
        frontend::parse("", &self.sql, std::iter::empty(), &mut out).map_err(enc)?;
        frontend::bind(
            "",
            "",
            std::iter::empty(), // no formats: every parameter in text format
            self.params.iter(),
            |v, buf| match v {
                Some(text) => {
                    buf.put_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            },
            std::iter::once(0i16), // text results
            &mut out,
        )
        .map_err(|_| Error::invalid("could not encode the query's parameters"))?;
        frontend::describe(b'P', "", &mut out).map_err(enc)?;
        frontend::execute("", 0, &mut out).map_err(enc)?;
        frontend::sync(&mut out);
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split a frontend byte stream into (tag, body) messages.
    fn messages(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize;
            out.push((b[0], b[5..1 + len].to_vec()));
            b = &b[1 + len..];
        }
        out
    }

    #[test]
    fn parameters_are_bound_in_text_format_with_nulls() {
        let s = Statement {
            sql: "SELECT data FROM \"t\" WHERE ($1 = 'x') AND ($2 IS NULL)".into(),
            params: vec![Some("Zoë".into()), None],
        };
        let msgs = messages(&s.encode().unwrap());
        let tags: Vec<u8> = msgs.iter().map(|m| m.0).collect();
        assert_eq!(tags, b"PBDES");
        // Parse: "" name, the SQL, zero parameter types.
        let parse = &msgs[0].1;
        assert!(parse.starts_with(b"\0SELECT data FROM"));
        assert!(parse.ends_with(b"IS NULL)\0\0\0"));
        // Bind: portal "", statement "", 0 formats, 2 values (4-byte length, -1 = NULL),
        // 1 result format (text).
        let mut want = vec![0u8, 0, 0, 0, 0, 2];
        want.extend_from_slice(&4i32.to_be_bytes());
        want.extend_from_slice("Zoë".as_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&[0, 1, 0, 0]);
        assert_eq!(msgs[1].1, want);
    }

    #[test]
    fn no_parameters_is_the_plain_statement() {
        let s = Statement {
            sql: "SELECT data FROM \"t\"".into(),
            params: vec![],
        };
        let msgs = messages(&s.encode().unwrap());
        assert_eq!(msgs[1].1, vec![0u8, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let s = Statement {
            sql: "x".into(),
            params: vec![None; MAX_PARAMS + 1],
        };
        assert!(s.encode().unwrap_err().message().contains("at most 32767"));
    }
}
