//! Typed predicates: `value at a JSON pointer <op> a JSON constant`, compiled to SQL that
//! the server evaluates, with the constant always a bound parameter (see `docs/filtering.md`
//! for the SQL of each operator and the index that serves it).
//!
//! The path is written with [`JsonPath`] (keys as quoted literals, the form an expression
//! index is created on). The constant is checked against the operator when the predicate is
//! built: a wrong JSON type is an error naming the operator and the type.

use serde_json::value::RawValue;

use super::params::Fragment;
use super::path::JsonPath;
use crate::error::{Error, Result};

/// The operators of a typed predicate (`fw_op` in C, same order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Like,
    ILike,
    StartsWith,
    EndsWith,
    ContainsText,
    IContainsText,
    Exists,
    NotExists,
    JsonContains,
    ArrayOverlaps,
    ArrayLengthEq,
    ArrayLengthGt,
    ArrayLengthLt,
    Matches,
}

/// Every operator, in the order of their C values (`FW_OP_EQ` = 0, ...).
pub(crate) const ALL_OPS: [Op; 22] = [
    Op::Eq,
    Op::Ne,
    Op::Lt,
    Op::Le,
    Op::Gt,
    Op::Ge,
    Op::In,
    Op::NotIn,
    Op::Like,
    Op::ILike,
    Op::StartsWith,
    Op::EndsWith,
    Op::ContainsText,
    Op::IContainsText,
    Op::Exists,
    Op::NotExists,
    Op::JsonContains,
    Op::ArrayOverlaps,
    Op::ArrayLengthEq,
    Op::ArrayLengthGt,
    Op::ArrayLengthLt,
    Op::Matches,
];

impl Op {
    /// The operator's name as in the C constant without its `FW_OP_` prefix (`EQ`,
    /// `STARTS_WITH`, ...), used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "EQ",
            Op::Ne => "NE",
            Op::Lt => "LT",
            Op::Le => "LE",
            Op::Gt => "GT",
            Op::Ge => "GE",
            Op::In => "IN",
            Op::NotIn => "NOT_IN",
            Op::Like => "LIKE",
            Op::ILike => "ILIKE",
            Op::StartsWith => "STARTS_WITH",
            Op::EndsWith => "ENDS_WITH",
            Op::ContainsText => "CONTAINS_TEXT",
            Op::IContainsText => "ICONTAINS_TEXT",
            Op::Exists => "EXISTS",
            Op::NotExists => "NOT_EXISTS",
            Op::JsonContains => "JSON_CONTAINS",
            Op::ArrayOverlaps => "ARRAY_OVERLAPS",
            Op::ArrayLengthEq => "ARRAY_LENGTH_EQ",
            Op::ArrayLengthGt => "ARRAY_LENGTH_GT",
            Op::ArrayLengthLt => "ARRAY_LENGTH_LT",
            Op::Matches => "MATCHES",
        }
    }

    /// The SQL comparison operator of EQ..GE, and of the array-length comparisons.
    fn comparison(self) -> &'static str {
        match self {
            Op::Eq | Op::ArrayLengthEq => "=",
            Op::Ne => "<>",
            Op::Lt | Op::ArrayLengthLt => "<",
            Op::Le => "<=",
            Op::Gt | Op::ArrayLengthGt => ">",
            Op::Ge => ">=",
            _ => unreachable!("{self:?} is not a comparison"),
        }
    }
}

/// The text search configuration of [`Op::Matches`] (explicit, so that an index on the same
/// expression can serve it; `simple` neither stems nor drops stop words).
pub const MATCHES_CONFIG: &str = "simple";

/// A JSON constant's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
    Null,
    Array,
    Object,
}

impl Kind {
    fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Boolean,
            Some(b'n') => Kind::Null,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Number => "a number",
            Kind::Boolean => "a boolean",
            Kind::Null => "null",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// A value for the error messages: short, on one line.
fn shown(raw: &str) -> String {
    const MAX: usize = 60;
    let one_line: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() > MAX {
        format!("{}...", one_line.chars().take(MAX).collect::<String>())
    } else {
        one_line
    }
}

fn wrong_type(op: Op, wants: &str, raw: &RawValue) -> Error {
    Error::invalid(format!(
        "operator {} takes {wants}; got {} ({})",
        op.name(),
        Kind::of(raw).article(),
        shown(raw.get())
    ))
}

/// A JSON string's decoded text, refused if it holds U+0000 (PostgreSQL text cannot).
fn string_of(op: Op, raw: &RawValue) -> Result<String> {
    let s: String = serde_json::from_str(raw.get())
        .map_err(|e| Error::invalid(format!("operator {}: bad string: {e}", op.name())))?;
    if s.contains('\0') {
        return Err(Error::invalid(format!(
            "operator {}: the string {} contains U+0000, which PostgreSQL text cannot hold",
            op.name(),
            shown(raw.get())
        )));
    }
    Ok(s)
}

/// Escape LIKE's metacharacters (`%`, `_` and the escape character `\`).
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A PostgreSQL array literal (`{"a","b\"c"}`) of the given element texts.
fn array_literal<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in item.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// `{"k1":{"k2":value}}`: the value nested under the path's keys, for containment tested on
/// the whole document (which a GIN index on `data` serves).
fn nest_under(keys: &[String], value: &str) -> String {
    let mut out = String::new();
    for k in keys {
        out.push('{');
        out.push_str(&serde_json::to_string(k).expect("a string serializes"));
        out.push(':');
    }
    out.push_str(value);
    for _ in keys {
        out.push('}');
    }
    out
}

/// The SQL type and text of each scalar of an IN list; all of one type.
fn scalar_list(op: Op, raw: &RawValue) -> Result<(&'static str, Vec<String>)> {
    let items: Vec<&RawValue> = serde_json::from_str(raw.get())
        .map_err(|_| wrong_type(op, "an array of strings, numbers or booleans", raw))?;
    let mut kind = None;
    let mut texts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let k = Kind::of(item);
        let text = match k {
            Kind::String => string_of(op, item)?,
            Kind::Number | Kind::Boolean => item.get().to_string(),
            _ => {
                return Err(Error::invalid(format!(
                    "operator {} takes an array of strings, numbers or booleans; element {i} is {} ({})",
                    op.name(),
                    k.article(),
                    shown(item.get())
                )))
            }
        };
        match kind {
            None => kind = Some(k),
            Some(first) if first != k => {
                return Err(Error::invalid(format!(
                    "operator {} takes an array of one type; element {i} is {} after {}",
                    op.name(),
                    k.article(),
                    first.article()
                )))
            }
            _ => {}
        }
        texts.push(text);
    }
    let ty = match kind {
        Some(Kind::Number) => "numeric",
        Some(Kind::Boolean) => "boolean",
        _ => "text",
    };
    Ok((ty, texts))
}

/// The path's text cast for a comparison with a constant of this kind.
fn typed_text(path: &JsonPath, kind: Kind) -> (String, &'static str) {
    match kind {
        Kind::Number => (format!("({})::numeric", path.text()), "numeric"),
        Kind::Boolean => (format!("({})::boolean", path.text()), "boolean"),
        _ => (format!("({})", path.text()), "text"),
    }
}

/// Compile `value at pointer <op> value_json` into a fragment (`$1..$n` its own).
/// `value_json` is required except for EXISTS / NOT_EXISTS, which take none.
pub fn compile(pointer: &str, op: Op, value_json: Option<&str>) -> Result<Fragment> {
    let path = JsonPath::parse(pointer)?;
    let raw = match (op, value_json) {
        (Op::Exists | Op::NotExists, None) => None,
        (Op::Exists | Op::NotExists, Some(v)) => {
            return Err(Error::invalid(format!(
                "operator {} takes no value (pass NULL); got {}",
                op.name(),
                shown(v)
            )))
        }
        (_, None) => {
            return Err(Error::invalid(format!(
                "operator {} needs a value (JSON text)",
                op.name()
            )))
        }
        (_, Some(text)) => Some(serde_json::from_str::<&RawValue>(text).map_err(|e| {
            Error::invalid(format!(
                "operator {}: the value {} is not valid JSON ({e})",
                op.name(),
                shown(text)
            ))
        })?),
    };
    let (sql, params) = match raw {
        None => exists_sql(&path, op),
        Some(raw) => value_sql(&path, op, raw)?,
    };
    Fragment::generated(sql, params.into_iter().map(Some).collect())
}

fn exists_sql(path: &JsonPath, op: Op) -> (String, Vec<String>) {
    let sql = match (op, path.parent_jsonb()) {
        // A key: `?` on the parent, which a GIN index on it (on `data` for a top-level key)
        // serves; `?` also matches array elements and a string scalar, hence the type check.
        (Op::Exists, Some((parent, last))) if path.keys_only() => format!(
            "({parent} ? {} AND jsonb_typeof({parent}) = 'object')",
            super::ident::quote_literal(last)
        ),
        (Op::Exists, _) => format!("(({}) IS NOT NULL)", path.json()),
        _ => format!("(({}) IS NULL)", path.json()),
    };
    (sql, Vec::new())
}

fn value_sql(path: &JsonPath, op: Op, raw: &RawValue) -> Result<(String, Vec<String>)> {
    let kind = Kind::of(raw);
    let text_path = || format!("({})", path.text());
    Ok(match op {
        Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge => {
            match kind {
                Kind::Null if op == Op::Eq => (format!("{} IS NULL", text_path()), vec![]),
                Kind::Null if op == Op::Ne => (format!("{} IS NOT NULL", text_path()), vec![]),
                Kind::String | Kind::Number | Kind::Boolean => {
                    let (lhs, ty) = typed_text(path, kind);
                    let value = match kind {
                        Kind::String => string_of(op, raw)?,
                        _ => raw.get().to_string(),
                    };
                    (format!("{lhs} {} $1::{ty}", op.comparison()), vec![value])
                }
                _ if matches!(op, Op::Eq | Op::Ne) => return Err(wrong_type(
                    op,
                    "a string, number, boolean or null (JSON_CONTAINS compares arrays and objects)",
                    raw,
                )),
                _ => return Err(wrong_type(op, "a string, number or boolean", raw)),
            }
        }
        Op::In | Op::NotIn => {
            if kind != Kind::Array {
                return Err(wrong_type(
                    op,
                    "an array of strings, numbers or booleans",
                    raw,
                ));
            }
            let (ty, items) = scalar_list(op, raw)?;
            if items.is_empty() {
                // Nothing is in the empty set; everything is outside it.
                let all = if op == Op::In { "false" } else { "true" };
                return Ok((all.to_string(), vec![]));
            }
            let lhs = match ty {
                "text" => text_path(),
                _ => format!("({})::{ty}", path.text()),
            };
            let test = if op == Op::In { "= ANY" } else { "<> ALL" };
            (
                format!("{lhs} {test}($1::{ty}[])"),
                vec![array_literal(items.iter().map(String::as_str))],
            )
        }
        Op::Like
        | Op::ILike
        | Op::StartsWith
        | Op::EndsWith
        | Op::ContainsText
        | Op::IContainsText => {
            if kind != Kind::String {
                return Err(wrong_type(op, "a string", raw));
            }
            let s = string_of(op, raw)?;
            let (like, pattern) = match op {
                Op::Like => ("LIKE", s),
                Op::ILike => ("ILIKE", s),
                Op::StartsWith => ("LIKE", format!("{}%", like_escape(&s))),
                Op::EndsWith => ("LIKE", format!("%{}", like_escape(&s))),
                Op::ContainsText => ("LIKE", format!("%{}%", like_escape(&s))),
                _ => ("ILIKE", format!("%{}%", like_escape(&s))),
            };
            // LIKE's default escape character is the backslash, which like_escape uses.
            (format!("{} {like} $1::text", text_path()), vec![pattern])
        }
        Op::JsonContains => {
            let value = raw.get();
            if path.keys_only() && !path.tokens().is_empty() {
                // On the whole document, so that a GIN index on `data` serves it. A scalar
                // at the path is also contained in an array there (as `@>` does at the top
                // level but not when nested), hence the second test.
                let whole = nest_under(path.tokens(), value);
                if matches!(kind, Kind::Array | Kind::Object) {
                    ("(data::jsonb @> $1::jsonb)".to_string(), vec![whole])
                } else {
                    let in_array = nest_under(path.tokens(), &format!("[{value}]"));
                    (
                        "(data::jsonb @> $1::jsonb OR data::jsonb @> $2::jsonb)".to_string(),
                        vec![whole, in_array],
                    )
                }
            } else {
                (
                    format!("({} @> $1::jsonb)", path.jsonb()),
                    vec![value.to_string()],
                )
            }
        }
        Op::ArrayOverlaps => {
            let items: Vec<&RawValue> = match kind {
                Kind::Array => {
                    serde_json::from_str(raw.get()).map_err(|_| wrong_type(op, "an array", raw))?
                }
                _ => return Err(wrong_type(op, "an array", raw)),
            };
            if items.is_empty() {
                return Ok(("false".to_string(), vec![]));
            }
            let jb = path.jsonb();
            if items.iter().all(|i| Kind::of(i) == Kind::String) {
                let strings = items
                    .iter()
                    .map(|i| string_of(op, i))
                    .collect::<Result<Vec<_>>>()?;
                (
                    format!("({jb} ?| $1::text[] AND jsonb_typeof({jb}) = 'array')"),
                    vec![array_literal(strings.iter().map(String::as_str))],
                )
            } else {
                // Any element type: the array contains `[element]` for some element.
                let wrapped: Vec<String> = items.iter().map(|i| format!("[{}]", i.get())).collect();
                (
                    format!("({jb} @> ANY($1::jsonb[]))"),
                    vec![array_literal(wrapped.iter().map(String::as_str))],
                )
            }
        }
        Op::ArrayLengthEq | Op::ArrayLengthGt | Op::ArrayLengthLt => {
            let n: i32 = match kind {
                Kind::Number => raw
                    .get()
                    .parse()
                    .map_err(|_| wrong_type(op, "an integer (a number of elements)", raw))?,
                _ => return Err(wrong_type(op, "an integer (a number of elements)", raw)),
            };
            let jb = path.jsonb();
            (
                format!(
                    "(CASE WHEN jsonb_typeof({jb}) = 'array' THEN jsonb_array_length({jb}) END) {} $1::integer",
                    op.comparison()
                ),
                vec![n.to_string()],
            )
        }
        Op::Matches => {
            if kind != Kind::String {
                return Err(wrong_type(
                    op,
                    "a string (a websearch_to_tsquery query)",
                    raw,
                ));
            }
            let s = string_of(op, raw)?;
            (
                format!(
                    "to_tsvector('{MATCHES_CONFIG}', {}) @@ websearch_to_tsquery('{MATCHES_CONFIG}', $1::text)",
                    path.text()
                ),
                vec![s],
            )
        }
        Op::Exists | Op::NotExists => unreachable!("handled by exists_sql"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(pointer: &str, op: Op, value: Option<&str>) -> (String, Vec<Option<String>>) {
        let f = compile(pointer, op, value).unwrap_or_else(|e| panic!("{op:?} {value:?}: {e}"));
        (f.text().to_string(), f.params().to_vec())
    }

    fn p(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    fn err(pointer: &str, op: Op, value: Option<&str>) -> String {
        let e = compile(pointer, op, value).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        e.message().to_string()
    }

    #[test]
    fn comparisons_pick_the_type_from_the_value() {
        assert_eq!(
            sql("/email", Op::Eq, Some(r#""a@b.c""#)),
            ("(data->>'email') = $1::text".into(), p(&["a@b.c"]))
        );
        assert_eq!(
            sql("/n", Op::Ge, Some("123456789012345678901234567890.5")),
            (
                "(data->>'n')::numeric >= $1::numeric".into(),
                p(&["123456789012345678901234567890.5"])
            )
        );
        assert_eq!(
            sql("/a/ok", Op::Ne, Some("true")),
            (
                "(data->'a'->>'ok')::boolean <> $1::boolean".into(),
                p(&["true"])
            )
        );
        assert_eq!(
            sql("/x", Op::Eq, Some("null")),
            ("(data->>'x') IS NULL".into(), vec![])
        );
        assert_eq!(
            sql("/x", Op::Ne, Some(" null ")),
            ("(data->>'x') IS NOT NULL".into(), vec![])
        );
        assert_eq!(sql("/x", Op::Lt, Some("1e3")).1, p(&["1e3"]));
    }

    #[test]
    fn in_lists_are_one_array_parameter() {
        assert_eq!(
            sql("/s", Op::In, Some(r#"["a", "b\"c", "d\\e", "NULL"]"#)),
            (
                "(data->>'s') = ANY($1::text[])".into(),
                p(&[r#"{"a","b\"c","d\\e","NULL"}"#])
            )
        );
        assert_eq!(
            sql("/n", Op::NotIn, Some("[1, 2.5, -3e2]")),
            (
                "(data->>'n')::numeric <> ALL($1::numeric[])".into(),
                p(&[r#"{"1","2.5","-3e2"}"#])
            )
        );
        assert_eq!(sql("/n", Op::In, Some("[]")), ("false".into(), vec![]));
        assert_eq!(sql("/n", Op::NotIn, Some("[]")), ("true".into(), vec![]));
        assert!(
            err("/n", Op::In, Some(r#"[1, "a"]"#)).contains("element 1 is a string after a number")
        );
        assert!(err("/n", Op::In, Some("[1, null]")).contains("element 1 is null"));
        assert!(err("/n", Op::In, Some("1")).contains("operator IN takes an array"));
    }

    #[test]
    fn text_operators_escape_like_metacharacters() {
        assert_eq!(
            sql("/name", Op::StartsWith, Some(r#""50%_a\\b""#)),
            ("(data->>'name') LIKE $1::text".into(), p(&[r"50\%\_a\\b%"]))
        );
        assert_eq!(sql("/name", Op::EndsWith, Some(r#""x_""#)).1, p(&[r"%x\_"]));
        assert_eq!(
            sql("/name", Op::ContainsText, Some(r#""%""#)).1,
            p(&[r"%\%%"])
        );
        assert_eq!(
            sql("/name", Op::IContainsText, Some(r#""Zoë""#)),
            ("(data->>'name') ILIKE $1::text".into(), p(&["%Zoë%"]))
        );
        // LIKE and ILIKE take the pattern as given
        assert_eq!(sql("/name", Op::Like, Some(r#""a%_""#)).1, p(&["a%_"]));
        assert_eq!(
            sql("/name", Op::ILike, Some(r#""A%""#)).0,
            "(data->>'name') ILIKE $1::text"
        );
        assert!(err("/name", Op::Like, Some("5"))
            .contains("operator LIKE takes a string; got a number (5)"));
    }

    #[test]
    fn exists_uses_the_key_operator_where_it_can() {
        assert_eq!(
            sql("/email", Op::Exists, None).0,
            "(data::jsonb ? 'email' AND jsonb_typeof(data::jsonb) = 'object')"
        );
        assert_eq!(
            sql("/a/b", Op::Exists, None).0,
            "((data->'a')::jsonb ? 'b' AND jsonb_typeof((data->'a')::jsonb) = 'object')"
        );
        assert_eq!(
            sql("/tags/0", Op::Exists, None).0,
            "((data->'tags'#>'{0}') IS NOT NULL)"
        );
        assert_eq!(
            sql("/a/b", Op::NotExists, None).0,
            "((data->'a'->'b') IS NULL)"
        );
        assert!(err("/a", Op::Exists, Some("1")).contains("operator EXISTS takes no value"));
        assert!(err("/a", Op::Eq, None).contains("operator EQ needs a value"));
    }

    #[test]
    fn containment_is_tested_on_the_document_when_the_path_has_only_keys() {
        assert_eq!(
            sql("/address", Op::JsonContains, Some(r#"{"city": "Zürich"}"#)),
            (
                "(data::jsonb @> $1::jsonb)".into(),
                p(&[r#"{"address":{"city": "Zürich"}}"#])
            )
        );
        assert_eq!(
            sql("/a/b", Op::JsonContains, Some(r#""x""#)),
            (
                "(data::jsonb @> $1::jsonb OR data::jsonb @> $2::jsonb)".into(),
                p(&[r#"{"a":{"b":"x"}}"#, r#"{"a":{"b":["x"]}}"#])
            )
        );
        assert_eq!(
            sql("/m/0", Op::JsonContains, Some("[1]")),
            (
                "((data->'m'#>'{0}')::jsonb @> $1::jsonb)".into(),
                p(&["[1]"])
            )
        );
        assert_eq!(
            sql("", Op::JsonContains, Some(r#"{"a":1}"#)),
            ("(data::jsonb @> $1::jsonb)".into(), p(&[r#"{"a":1}"#]))
        );
        // keys are JSON-escaped
        assert_eq!(
            sql("/a\"b", Op::JsonContains, Some("[]")).1,
            p(&[r#"{"a\"b":[]}"#])
        );
    }

    #[test]
    fn overlaps_lengths_and_matches() {
        assert_eq!(
            sql("/tags", Op::ArrayOverlaps, Some(r#"["a", "b"]"#)),
            (
                "((data->'tags')::jsonb ?| $1::text[] AND jsonb_typeof((data->'tags')::jsonb) = 'array')".into(),
                p(&[r#"{"a","b"}"#])
            )
        );
        assert_eq!(
            sql("/nums", Op::ArrayOverlaps, Some(r#"[1, "a", {"k": 2}]"#)),
            (
                "((data->'nums')::jsonb @> ANY($1::jsonb[]))".into(),
                p(&[r#"{"[1]","[\"a\"]","[{\"k\": 2}]"}"#])
            )
        );
        assert_eq!(sql("/t", Op::ArrayOverlaps, Some("[]")).0, "false");
        assert!(
            err("/t", Op::ArrayOverlaps, Some(r#""a""#)).contains("takes an array; got a string")
        );
        assert_eq!(
            sql("/tags", Op::ArrayLengthGt, Some("2")),
            (
                "(CASE WHEN jsonb_typeof((data->'tags')::jsonb) = 'array' THEN jsonb_array_length((data->'tags')::jsonb) END) > $1::integer".into(),
                p(&["2"])
            )
        );
        assert!(err("/t", Op::ArrayLengthEq, Some("2.5")).contains("an integer"));
        assert!(err("/t", Op::ArrayLengthLt, Some("99999999999")).contains("an integer"));
        assert_eq!(
            sql("/body", Op::Matches, Some(r#""quick -slow""#)),
            (
                "to_tsvector('simple', data->>'body') @@ websearch_to_tsquery('simple', $1::text)"
                    .into(),
                p(&["quick -slow"])
            )
        );
    }

    #[test]
    fn wrong_value_types_name_the_operator_and_the_type() {
        assert!(err("/a", Op::Eq, Some("[1]"))
            .contains("operator EQ takes a string, number, boolean or null"));
        assert!(err("/a", Op::Eq, Some("[1]")).contains("got an array ([1])"));
        assert!(err("/a", Op::Gt, Some("null"))
            .contains("operator GT takes a string, number or boolean; got null"));
        assert!(err("/a", Op::Lt, Some(r#"{"a":1}"#)).contains("got an object"));
        assert!(err("/a", Op::Matches, Some("true")).contains("operator MATCHES takes a string"));
        assert!(err("/a", Op::Eq, Some("{bad")).contains("not valid JSON"));
        assert!(err("/a", Op::Eq, Some(r#""\u0000""#)).contains("U+0000"));
        assert!(err("a", Op::Eq, Some("1")).contains("JSON pointer"));
    }

    #[test]
    fn pointers_and_values_never_reach_the_sql_unquoted() {
        let (text, params) = sql(
            "/x'); DROP TABLE t; --",
            Op::Eq,
            Some(r#""'); DROP TABLE t; --""#),
        );
        assert_eq!(text, "(data->>'x''); DROP TABLE t; --') = $1::text");
        assert_eq!(params, p(&["'); DROP TABLE t; --"]));
        // `$1` in a key stays text: the fragment still has exactly one parameter
        let (text, params) = sql("/$1", Op::Eq, Some(r#""v""#));
        assert_eq!(text, "(data->>'$1') = $1::text");
        assert_eq!(params.len(), 1);
    }

    #[test]
    fn every_operator_has_a_distinct_name() {
        let names: std::collections::HashSet<_> = ALL_OPS.iter().map(|o| o.name()).collect();
        assert_eq!(names.len(), ALL_OPS.len());
    }
}
