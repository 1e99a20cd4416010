//! A JSON Pointer (RFC 6901) as SQL path expressions over the `data` column.
//!
//! Each reference token becomes one step, its key written as a quoted literal (never spliced
//! unquoted; see [`quote_literal`]):
//!
//! * a token that is an array index in RFC 6901's sense (`0`, or digits without a leading
//!   zero) may name an array element or an object member, which only the document tells:
//!   it becomes `#>'{N}'` (PostgreSQL's path operator does both);
//! * any other token can only name an object member: `->'key'` (which is NULL on an array).
//!
//! The last step is `->>`/`#>>` for the value as text. These are the expressions a user
//! indexes: `/email` is `data->>'email'`, `/address/city` is `data->'address'->>'city'`.
//! The operators exist for both `json` and `jsonb`; where a jsonb-only operator is needed the
//! extracted value is cast, `(data->'tags')::jsonb`, which is no cast at all on a jsonb
//! column (so the same index expressions apply) and converts only that value on a json one.

use super::ident::quote_literal;
use super::json_filter::parse_pointer;
use crate::error::{Error, Result};

/// A parsed pointer, ready to be written as SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    pointer: String,
    tokens: Vec<String>,
}

/// RFC 6901's array index: `0` or a digit string without a leading zero.
fn is_index(token: &str) -> bool {
    token == "0"
        || (token.starts_with(|c: char| matches!(c, '1'..='9'))
            && token.bytes().all(|b| b.is_ascii_digit()))
}

fn step(out: &mut String, token: &str, text: bool) {
    let arrow = if text { ">>" } else { ">" };
    if is_index(token) {
        // Digits only: the array literal needs no quoting inside.
        out.push('#');
        out.push_str(arrow);
        out.push_str(&format!("'{{{token}}}'"));
    } else {
        out.push('-');
        out.push_str(arrow);
        out.push_str(&quote_literal(token));
    }
}

impl JsonPath {
    /// Parse `pointer` (`""` is the whole document, `/a/b` a nested member, `~1` is `/`,
    /// `~0` is `~`).
    pub fn parse(pointer: &str) -> Result<JsonPath> {
        if pointer.contains('\0') {
            return Err(Error::invalid(format!(
                "JSON pointer {pointer:?} contains a NUL byte"
            )));
        }
        Ok(JsonPath {
            pointer: pointer.to_string(),
            tokens: parse_pointer(pointer)?,
        })
    }

    /// The pointer as given.
    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    /// The unescaped reference tokens.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether every token can only be an object key (no array index).
    pub fn keys_only(&self) -> bool {
        !self.tokens.iter().any(|t| is_index(t))
    }

    /// The value at the path, of the column's type (json or jsonb): `data->'a'->'b'`.
    pub fn json(&self) -> String {
        let mut out = String::from("data");
        for t in &self.tokens {
            step(&mut out, t, false);
        }
        out
    }

    /// The value at the path as text (a string unquoted, anything else as JSON text; NULL
    /// for JSON null and for a missing member): `data->'a'->>'b'`.
    pub fn text(&self) -> String {
        let mut out = String::from("data");
        match self.tokens.split_last() {
            None => out.push_str("#>>'{}'"),
            Some((last, init)) => {
                for t in init {
                    step(&mut out, t, false);
                }
                step(&mut out, last, true);
            }
        }
        out
    }

    /// The value at the path as jsonb: `(data->'a')::jsonb`, `data::jsonb` for `""`.
    pub fn jsonb(&self) -> String {
        if self.tokens.is_empty() {
            "data::jsonb".to_string()
        } else {
            format!("({})::jsonb", self.json())
        }
    }

    /// The parent of the value as jsonb, and the last token (`None` for `""`).
    pub fn parent_jsonb(&self) -> Option<(String, &str)> {
        let (last, init) = self.tokens.split_last()?;
        let parent = JsonPath {
            pointer: String::new(),
            tokens: init.to_vec(),
        };
        Some((parent.jsonb(), last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> JsonPath {
        JsonPath::parse(s).unwrap()
    }

    #[test]
    fn keys_become_arrow_steps() {
        assert_eq!(p("/email").text(), "data->>'email'");
        assert_eq!(p("/email").json(), "data->'email'");
        assert_eq!(p("/address/city").text(), "data->'address'->>'city'");
        assert_eq!(
            p("/address/city").jsonb(),
            "(data->'address'->'city')::jsonb"
        );
        assert_eq!(p("").json(), "data");
        assert_eq!(p("").text(), "data#>>'{}'");
        assert_eq!(p("").jsonb(), "data::jsonb");
        assert!(p("/a/b").keys_only());
    }

    #[test]
    fn array_indices_use_path_operators() {
        assert_eq!(p("/tags/0").text(), "data->'tags'#>>'{0}'");
        assert_eq!(p("/m/10/x").text(), "data->'m'#>'{10}'->>'x'");
        assert!(!p("/tags/0").keys_only());
        // not indices in RFC 6901's sense: keys only
        assert_eq!(p("/a/01").text(), "data->'a'->>'01'");
        assert_eq!(p("/a/-").text(), "data->'a'->>'-'");
        assert_eq!(p("/a/-1").text(), "data->'a'->>'-1'");
        assert_eq!(p("/a/1e2").text(), "data->'a'->>'1e2'");
    }

    #[test]
    fn keys_are_unescaped_then_quoted() {
        assert_eq!(p("/a~1b/m~0n").text(), "data->'a/b'->>'m~n'");
        assert_eq!(p("/it's").text(), "data->>'it''s'");
        assert_eq!(p(r"/back\slash").text(), r"data->>E'back\\slash'");
        assert_eq!(p("/$1").text(), "data->>'$1'");
        assert_eq!(p("/").text(), "data->>''");
        assert_eq!(
            p("/x'); DROP TABLE t; --").text(),
            "data->>'x''); DROP TABLE t; --'"
        );
    }

    #[test]
    fn parent_and_last_token() {
        let path = p("/a/b");
        assert_eq!(
            path.parent_jsonb(),
            Some(("(data->'a')::jsonb".to_string(), "b"))
        );
        assert_eq!(
            p("/b").parent_jsonb(),
            Some(("data::jsonb".to_string(), "b"))
        );
        assert_eq!(p("").parent_jsonb(), None);
    }

    #[test]
    fn bad_pointers_are_refused() {
        assert!(JsonPath::parse("email").is_err());
        assert!(JsonPath::parse("/a~2").is_err());
        assert!(JsonPath::parse("/a\0").is_err());
    }
}
