//! Validation and quoting of the query source (`[schema.]identifier`) and of collation names.

use crate::error::{Error, Result};

/// A validated, possibly schema-qualified relation name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    schema: Option<String>,
    name: String,
    /// The source as the user gave it; used as the `entity` metric label.
    original: String,
}

/// PostgreSQL's identifier length limit (NAMEDATALEN - 1).
const MAX_IDENT_BYTES: usize = 63;

fn check_ident(part: &str, whole: &str) -> Result<()> {
    let mut chars = part.chars();
    let first = chars.next().ok_or_else(|| {
        Error::invalid(format!(
            "invalid source {whole:?}: empty identifier (expected [schema.]name)"
        ))
    })?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(Error::invalid(format!(
            "invalid source {whole:?}: identifier {part:?} must start with a letter or underscore"
        )));
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '$')) {
        return Err(Error::invalid(format!(
            "invalid source {whole:?}: character {bad:?} is not allowed (letters, digits, _ and $ only)"
        )));
    }
    if part.len() > MAX_IDENT_BYTES {
        return Err(Error::invalid(format!(
            "invalid source {whole:?}: identifier {part:?} is longer than {MAX_IDENT_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Source {
    /// Parse `name` or `schema.name`. Identifiers are plain SQL identifiers (letters, digits,
    /// `_`, `$`, not starting with a digit); they are quoted in generated SQL, so their case is
    /// kept as given.
    pub fn parse(s: &str) -> Result<Source> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [name] => {
                check_ident(name, s)?;
                Ok(Source {
                    schema: None,
                    name: name.to_string(),
                    original: s.to_string(),
                })
            }
            [schema, name] => {
                check_ident(schema, s)?;
                check_ident(name, s)?;
                Ok(Source {
                    schema: Some(schema.to_string()),
                    name: name.to_string(),
                    original: s.to_string(),
                })
            }
            _ => Err(Error::invalid(format!(
                "invalid source {s:?}: expected [schema.]name with at most one dot"
            ))),
        }
    }

    /// The source as given by the user (`v_user`, `app.tv_order`).
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// The quoted SQL form: `"v_user"` or `"app"."tv_order"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

/// Quote an identifier for SQL: wrap in double quotes, doubling embedded quotes
/// (`postgres-protocol`'s port of libpq's `PQescapeIdentifier`). Callers validate first.
pub fn quote_ident(s: &str) -> String {
    postgres_protocol::escape::escape_identifier(s)
}

/// Quote a string as an SQL literal, as PostgreSQL's `quote_literal` does: `'...'` with
/// quotes doubled, or `E'...'` with backslashes doubled too when it holds a backslash. The
/// result means the same whatever the connection's `standard_conforming_strings`. `s` must
/// not contain NUL (checked by the callers: PostgreSQL text cannot hold it).
///
/// Not `postgres_protocol::escape::escape_literal`: like libpq's `PQescapeLiteral` it writes
/// ` E'...'` with a leading space for a string holding a backslash, and this text is the
/// SQL the statement shows (`Statement`, logs), written as PostgreSQL's own `quote_literal`
/// writes it.
pub fn quote_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 3);
    if s.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// Validate and quote a collation name (`C`, `en_US`, `und-x-icu`, `pg_catalog."default"` is
/// not accepted: give the bare name). Any character but NUL is allowed since it is quoted.
pub fn quote_collation(s: &str) -> Result<String> {
    if s.is_empty() {
        return Err(Error::invalid("collation name is empty"));
    }
    if s.contains('\0') {
        return Err(Error::invalid("collation name contains a NUL byte"));
    }
    Ok(quote_ident(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_qualified_sources_are_quoted() {
        assert_eq!(Source::parse("v_user").unwrap().quoted(), "\"v_user\"");
        let s = Source::parse("app.tv_order").unwrap();
        assert_eq!(s.quoted(), "\"app\".\"tv_order\"");
        assert_eq!(s.as_str(), "app.tv_order");
        assert_eq!(Source::parse("V$x_1").unwrap().quoted(), "\"V$x_1\"");
    }

    #[test]
    fn bad_sources_are_rejected_with_a_reason() {
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1abc",
            "v user",
            "v;drop",
            "v\"x",
            "v-x",
            "t); DROP TABLE t; --",
            "é",
        ] {
            let e = Source::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.message().contains("invalid source"), "{}", e.message());
        }
        let long = "a".repeat(64);
        assert!(Source::parse(&long)
            .unwrap_err()
            .message()
            .contains("longer"));
        assert!(Source::parse(&"a".repeat(63)).is_ok());
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_collation("C").unwrap(), "\"C\"");
        assert_eq!(quote_collation("x\"y").unwrap(), "\"x\"\"y\"");
        assert!(quote_collation("").is_err());
    }

    #[test]
    fn literals_are_quoted_like_quote_literal() {
        assert_eq!(quote_literal("email"), "'email'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal(r"a\b'c"), r"E'a\\b''c'");
        assert_eq!(quote_literal("$1 東京"), "'$1 東京'");
        assert_eq!(quote_literal(""), "''");
    }
}
