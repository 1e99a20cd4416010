//! The built-in JSON predicate: compare the value at an RFC 6901 JSON Pointer with a constant,
//! inside the library, with no host callback. It runs in the reader task, before rows reach
//! the channel (see `docs/streaming.md` for the user-facing semantics).
//!
//! Parsing is done with `serde_json` without building a document tree: at each pointer step
//! the current value is scanned once, members that do not match are skipped (syntax-checked,
//! not materialised), and the matching member is kept as a borrowed [`RawValue`] slice of the
//! row. Only the value finally compared is decoded, with strings borrowed from the row unless
//! they contain escapes. Numbers are never converted to binary: they are compared as exact
//! decimals from their text, so `123456789012345678901234567890.1` and `1e400` compare
//! correctly (PostgreSQL's `numeric` inside jsonb has that range).
//!
//! Semantics:
//! * the pointer is resolved per RFC 6901 (`""` is the whole row, `~1` is `/`, `~0` is `~`;
//!   an array step must be `0` or a number without leading zeros; `-` never resolves). When a
//!   key appears twice in an object the last occurrence wins (as in jsonb);
//! * a pointer that does not resolve makes every operator false except nothing: `exists` is
//!   false, and so are `eq`, `ne`, ... (SQL-like: `data->'x' <> 1` is not true for a missing x);
//! * `eq` / `ne`: JSON equality: same type and value; numbers by exact decimal value (`1`,
//!   `1.0` and `10e-1` are equal), strings by their decoded text, arrays element-wise,
//!   objects as key sets (order does not matter). `ne` is "resolves and is not equal";
//! * `lt`, `le`, `gt`, `ge`: numbers numerically, strings by Unicode code point; any other
//!   combination of types is false;
//! * `exists`: the pointer resolves (also to `null`); the constant is ignored;
//! * `contains`: a string contains the constant string as a substring; an array contains an
//!   element equal to the constant; an object contains the constant string as a key. Anything
//!   else is false.
//!
//! A row that is not valid JSON (or nests deeper than [`MAX_DEPTH`] in the compared value)
//! cannot satisfy a predicate: it is rejected and reported as a parse failure.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Deepest nesting decoded for a compared value (the rest of a row is only scanned).
pub const MAX_DEPTH: usize = 128;

/// Comparison operators of the built-in predicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Exists,
    Contains,
}

/// Why a row could not be evaluated (the `reason` label of the failure metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseFailure {
    InvalidUtf8,
    InvalidJson,
    TooDeep,
}

impl ParseFailure {
    pub fn reason(self) -> &'static str {
        match self {
            ParseFailure::InvalidUtf8 => "invalid_utf8",
            ParseFailure::InvalidJson => "invalid_json",
            ParseFailure::TooDeep => "too_deep",
        }
    }
}

/// A decoded JSON value borrowing from the row where it can.
#[derive(Clone, Debug)]
pub enum Val<'a> {
    Null,
    Bool(bool),
    /// The number's JSON text, exactly as written.
    Num(Cow<'a, str>),
    Str(Cow<'a, str>),
    Arr(Vec<Val<'a>>),
    Obj(Vec<(Cow<'a, str>, Val<'a>)>),
}

impl Val<'_> {
    fn into_owned(self) -> Val<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        match self {
            Val::Null => Val::Null,
            Val::Bool(b) => Val::Bool(b),
            Val::Num(n) => Val::Num(own(n)),
            Val::Str(s) => Val::Str(own(s)),
            Val::Arr(a) => Val::Arr(a.into_iter().map(Val::into_owned).collect()),
            Val::Obj(o) => Val::Obj(
                o.into_iter()
                    .map(|(k, v)| (own(k), v.into_owned()))
                    .collect(),
            ),
        }
    }
}

/// The built-in predicate: `value at pointer <op> constant`.
#[derive(Clone, Debug)]
pub struct JsonFilter {
    pointer: String,
    tokens: Vec<String>,
    op: JsonOp,
    operand: Option<Val<'static>>,
}

/// Parse an RFC 6901 pointer into its unescaped reference tokens.
pub(crate) fn parse_pointer(p: &str) -> Result<Vec<String>> {
    if p.is_empty() {
        return Ok(Vec::new());
    }
    let rest = p.strip_prefix('/').ok_or_else(|| {
        Error::invalid(format!(
            "JSON pointer {p:?} must be empty or start with '/' (RFC 6901)"
        ))
    })?;
    rest.split('/')
        .map(|tok| {
            let mut out = String::with_capacity(tok.len());
            let mut chars = tok.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(Error::invalid(format!(
                                "JSON pointer {p:?}: '~' must be followed by 0 or 1"
                            )))
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

impl JsonFilter {
    /// A predicate on the value at `pointer`. `value_json` is the constant as JSON text;
    /// it is required except for [`JsonOp::Exists`] (where it is ignored).
    pub fn new(pointer: &str, op: JsonOp, value_json: Option<&str>) -> Result<JsonFilter> {
        let tokens = parse_pointer(pointer)?;
        let operand = match (op, value_json) {
            (JsonOp::Exists, _) => None,
            (_, None) => {
                return Err(Error::invalid(format!(
                    "the JSON predicate {op:?} needs a value"
                )))
            }
            (_, Some(text)) => {
                let v = decode_document(text).map_err(|f| {
                    Error::invalid(format!(
                        "the predicate value {text:?} is not valid JSON ({})",
                        f.reason()
                    ))
                })?;
                Some(v.into_owned())
            }
        };
        if let (JsonOp::Lt | JsonOp::Le | JsonOp::Gt | JsonOp::Ge, Some(v)) = (op, &operand) {
            if !matches!(v, Val::Num(_) | Val::Str(_)) {
                return Err(Error::invalid(format!(
                    "the JSON predicate {op:?} compares numbers or strings; got {}",
                    value_json.unwrap_or_default()
                )));
            }
        }
        Ok(JsonFilter {
            pointer: pointer.to_string(),
            tokens,
            op,
            operand,
        })
    }

    pub fn pointer(&self) -> &str {
        &self.pointer
    }

    pub fn op(&self) -> JsonOp {
        self.op
    }

    /// Evaluate on one row's JSON text: `Ok(true)` keeps the row.
    pub fn eval(&self, row: &[u8]) -> std::result::Result<bool, ParseFailure> {
        let text = std::str::from_utf8(row).map_err(|_| ParseFailure::InvalidUtf8)?;
        let Some(target) = resolve(text, &self.tokens)? else {
            return Ok(false);
        };
        let operand = match (&self.operand, self.op) {
            (_, JsonOp::Exists) => return Ok(true),
            (Some(v), _) => v,
            (None, _) => return Ok(false),
        };
        let first = first_byte(target);
        Ok(match self.op {
            JsonOp::Exists => true,
            JsonOp::Eq => equals_raw(target, operand)?,
            JsonOp::Ne => !equals_raw(target, operand)?,
            JsonOp::Lt | JsonOp::Le | JsonOp::Gt | JsonOp::Ge => {
                let ord = match (first, operand) {
                    (b'"', Val::Str(b)) => Some(decode_str(target)?.as_ref().cmp(b.as_ref())),
                    (b'-' | b'0'..=b'9', Val::Num(b)) => Some(cmp_numbers(target, b)),
                    _ => None,
                };
                match (ord, self.op) {
                    (Some(o), JsonOp::Lt) => o == Ordering::Less,
                    (Some(o), JsonOp::Le) => o != Ordering::Greater,
                    (Some(o), JsonOp::Gt) => o == Ordering::Greater,
                    (Some(o), JsonOp::Ge) => o != Ordering::Less,
                    _ => false,
                }
            }
            JsonOp::Contains => match (first, operand) {
                (b'"', Val::Str(needle)) => decode_str(target)?.contains(needle.as_ref()),
                (b'[', _) => match decode(target, 0)? {
                    Val::Arr(items) => items.iter().any(|v| val_eq(v, operand)),
                    _ => false,
                },
                (b'{', Val::Str(key)) => {
                    let mut de = serde_json::Deserializer::from_str(target);
                    let found = de
                        .deserialize_map(Step::Key(key))
                        .map_err(|_| ParseFailure::InvalidJson)?;
                    found.is_some()
                }
                _ => false,
            },
        })
    }
}

fn first_byte(raw: &str) -> u8 {
    raw.bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .unwrap_or(0)
}

/// Walk `tokens` from the row's top level; `None` when a step does not resolve. The whole row
/// is syntax-checked on the way (the first step scans all of it).
fn resolve<'a>(
    text: &'a str,
    tokens: &[String],
) -> std::result::Result<Option<&'a str>, ParseFailure> {
    if tokens.is_empty() {
        let raw: &RawValue = serde_json::from_str(text).map_err(|_| ParseFailure::InvalidJson)?;
        return Ok(Some(raw.get()));
    }
    let mut cur: &'a str = text;
    for (i, tok) in tokens.iter().enumerate() {
        let mut de = serde_json::Deserializer::from_str(cur);
        let step = match first_byte(cur) {
            b'{' => de.deserialize_map(Step::Key(tok)),
            b'[' => de.deserialize_seq(Step::Index(array_index(tok))),
            _ => {
                if i == 0 {
                    // Check the row is valid JSON all the same.
                    let _: &RawValue =
                        serde_json::from_str(cur).map_err(|_| ParseFailure::InvalidJson)?;
                }
                return Ok(None);
            }
        };
        let found = step.map_err(|_| ParseFailure::InvalidJson)?;
        de.end().map_err(|_| ParseFailure::InvalidJson)?;
        match found {
            Some(raw) => cur = raw.get(),
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// An RFC 6901 array index: `0` or digits without a leading zero.
fn array_index(tok: &str) -> Option<usize> {
    if tok.is_empty()
        || !tok.bytes().all(|b| b.is_ascii_digit())
        || (tok.len() > 1 && tok.starts_with('0'))
    {
        return None;
    }
    tok.parse().ok()
}

/// One pointer step over an object (by key) or an array (by index). Every member is read so
/// that the value is syntax-checked; only the match is kept, as a borrowed raw slice.
enum Step<'t> {
    Key(&'t str),
    Index(Option<usize>),
}

struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<bool, E> {
        Ok(v == self.0)
    }
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let Step::Key(key) = self else {
            return Err(de::Error::custom("not an object step"));
        };
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(key))? {
            if hit {
                // Last occurrence wins.
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let Step::Index(want) = self else {
            return Err(de::Error::custom("not an array step"));
        };
        let mut found = None;
        let mut i = 0usize;
        loop {
            if Some(i) == want {
                match seq.next_element::<&'de RawValue>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

/// Decode a whole JSON text (the predicate's constant).
fn decode_document(text: &str) -> std::result::Result<Val<'_>, ParseFailure> {
    let raw: &RawValue = serde_json::from_str(text).map_err(|_| ParseFailure::InvalidJson)?;
    decode(raw.get(), 0)
}

fn decode_str(raw: &str) -> std::result::Result<Cow<'_, str>, ParseFailure> {
    struct S;
    impl<'de> Visitor<'de> for S {
        type Value = Cow<'de, str>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_str<E: de::Error>(
            self,
            v: &'de str,
        ) -> std::result::Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_owned()))
        }
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    de.deserialize_str(S).map_err(|_| ParseFailure::InvalidJson)
}

/// Decode a raw (already syntax-checked) value, borrowing strings and number texts.
fn decode(raw: &str, depth: usize) -> std::result::Result<Val<'_>, ParseFailure> {
    if depth >= MAX_DEPTH {
        return Err(ParseFailure::TooDeep);
    }
    let raw = raw.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
    match raw.as_bytes().first() {
        Some(b'{') => {
            struct O;
            impl<'de> Visitor<'de> for O {
                type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> std::result::Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                        out.push((k, map.next_value::<&'de RawValue>()?));
                    }
                    Ok(out)
                }
            }
            let mut de = serde_json::Deserializer::from_str(raw);
            let members = de
                .deserialize_map(O)
                .map_err(|_| ParseFailure::InvalidJson)?;
            let mut out = Vec::with_capacity(members.len());
            for (k, v) in members {
                out.push((k, decode(v.get(), depth + 1)?));
            }
            Ok(Val::Obj(out))
        }
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_str(raw);
            let items: Vec<&RawValue> =
                serde::Deserialize::deserialize(&mut de).map_err(|_| ParseFailure::InvalidJson)?;
            let mut out = Vec::with_capacity(items.len());
            for v in items {
                out.push(decode(v.get(), depth + 1)?);
            }
            Ok(Val::Arr(out))
        }
        Some(b'"') => Ok(Val::Str(decode_str(raw)?)),
        Some(b't') => Ok(Val::Bool(true)),
        Some(b'f') => Ok(Val::Bool(false)),
        Some(b'n') => Ok(Val::Null),
        Some(b'-' | b'0'..=b'9') => Ok(Val::Num(Cow::Borrowed(raw))),
        _ => Err(ParseFailure::InvalidJson),
    }
}

/// `raw == operand` without decoding more of `raw` than needed.
fn equals_raw(raw: &str, operand: &Val<'_>) -> std::result::Result<bool, ParseFailure> {
    let first = first_byte(raw);
    Ok(match (first, operand) {
        (b'n', Val::Null) => true,
        (b't', Val::Bool(b)) => *b,
        (b'f', Val::Bool(b)) => !*b,
        (b'-' | b'0'..=b'9', Val::Num(n)) => cmp_numbers(raw, n) == Ordering::Equal,
        (b'"', Val::Str(s)) => decode_str(raw)? == *s,
        (b'[', Val::Arr(_)) | (b'{', Val::Obj(_)) => val_eq(&decode(raw, 0)?, operand),
        _ => false,
    })
}

/// The last value of `key` in an object's members.
fn member<'v, 'a>(members: &'v [(Cow<'a, str>, Val<'a>)], key: &str) -> Option<&'v Val<'a>> {
    members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// JSON equality (see the module docs).
pub fn val_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Num(x), Val::Num(y)) => cmp_numbers(x, y) == Ordering::Equal,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Arr(x), Val::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| val_eq(p, q))
        }
        (Val::Obj(x), Val::Obj(y)) => {
            x.iter().all(|(k, _)| match (member(x, k), member(y, k)) {
                (Some(p), Some(q)) => val_eq(p, q),
                _ => false,
            }) && y.iter().all(|(k, _)| member(x, k).is_some())
        }
        _ => false,
    }
}

/// A JSON number's text split into sign, integer digits, fraction digits and exponent.
struct Decimal<'a> {
    neg: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

impl<'a> Decimal<'a> {
    /// `s` is a syntactically valid JSON number (checked by the parser).
    fn parse(s: &'a str) -> Decimal<'a> {
        let b = s.as_bytes();
        let (neg, b) = match b.first() {
            Some(b'-') => (true, &b[1..]),
            _ => (false, b),
        };
        let int_end = b
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(b.len());
        let int = &b[..int_end];
        let mut rest = &b[int_end..];
        let mut frac: &[u8] = &[];
        if rest.first() == Some(&b'.') {
            let f = &rest[1..];
            let end = f
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(f.len());
            frac = &f[..end];
            rest = &f[end..];
        }
        let mut exp: i64 = 0;
        if matches!(rest.first(), Some(b'e' | b'E')) {
            let mut e = &rest[1..];
            let eneg = match e.first() {
                Some(b'-') => {
                    e = &e[1..];
                    true
                }
                Some(b'+') => {
                    e = &e[1..];
                    false
                }
                _ => false,
            };
            // Saturate absurd exponents: |exp| beyond 10^15 compares as that bound.
            for &c in e.iter().take_while(|c| c.is_ascii_digit()) {
                exp = (exp * 10 + i64::from(c - b'0')).min(1_000_000_000_000_000);
            }
            if eneg {
                exp = -exp;
            }
        }
        Decimal {
            neg,
            int,
            frac,
            exp,
        }
    }

    fn digit(&self, i: usize) -> u8 {
        if i < self.int.len() {
            self.int[i]
        } else {
            self.frac[i - self.int.len()]
        }
    }

    /// Significant digits as `[start, end)` over `int ++ frac`, and the decimal exponent `e`
    /// with value = 0.d1d2... x 10^e. `None` for zero.
    fn normalized(&self) -> Option<(usize, usize, i64)> {
        let n = self.int.len() + self.frac.len();
        let start = (0..n).find(|&i| self.digit(i) != b'0')?;
        let end = (0..n)
            .rev()
            .find(|&i| self.digit(i) != b'0')
            .map_or(n, |i| i + 1);
        let e = (self.int.len() as i64 - start as i64).saturating_add(self.exp);
        Some((start, end, e))
    }
}

/// Compare two JSON number texts by exact decimal value.
pub fn cmp_numbers(a: &str, b: &str) -> Ordering {
    let (x, y) = (Decimal::parse(a.trim()), Decimal::parse(b.trim()));
    let (nx, ny) = (x.normalized(), y.normalized());
    let sign = |d: &Decimal, n: &Option<(usize, usize, i64)>| match n {
        None => 0i8,
        Some(_) if d.neg => -1,
        Some(_) => 1,
    };
    let (sx, sy) = (sign(&x, &nx), sign(&y, &ny));
    if sx != sy {
        return sx.cmp(&sy);
    }
    let (Some((xs, xe, xexp)), Some((ys, ye, yexp))) = (nx, ny) else {
        return Ordering::Equal; // both zero
    };
    let magnitude = xexp.cmp(&yexp).then_with(|| {
        let (lx, ly) = (xe - xs, ye - ys);
        for k in 0..lx.min(ly) {
            let o = x.digit(xs + k).cmp(&y.digit(ys + k));
            if o != Ordering::Equal {
                return o;
            }
        }
        lx.cmp(&ly)
    });
    if sx < 0 {
        magnitude.reverse()
    } else {
        magnitude
    }
}

impl crate::stream::RowPredicate for JsonFilter {
    fn accepts(&self, row: &[u8]) -> std::result::Result<bool, &'static str> {
        self.eval(row).map_err(ParseFailure::reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ptr: &str, op: JsonOp, v: &str) -> JsonFilter {
        JsonFilter::new(ptr, op, Some(v)).unwrap()
    }

    fn keep(filter: &JsonFilter, row: &str) -> bool {
        filter.eval(row.as_bytes()).unwrap()
    }

    #[test]
    fn pointer_parsing() {
        assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_pointer("/").unwrap(), vec![""]);
        assert_eq!(
            parse_pointer("/a~1b/c~0d/0").unwrap(),
            vec!["a/b", "c~d", "0"]
        );
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a~").is_err());
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("12"), Some(12));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("-"), None);
        assert_eq!(array_index(""), None);
    }

    #[test]
    fn rfc6901_examples() {
        let doc = r#"{"foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4,
                     "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8}"#;
        let cases = [
            ("/foo/0", "\"bar\""),
            ("/foo/1", "\"baz\""),
            ("/", "0"),
            ("/a~1b", "1"),
            ("/c%d", "2"),
            ("/e^f", "3"),
            ("/g|h", "4"),
            ("/i\\j", "5"),
            ("/k\"l", "6"),
            ("/ ", "7"),
            ("/m~0n", "8"),
            (
                "",
                r#"{"": 0, "foo": ["bar", "baz"], "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8}"#,
            ),
            ("/foo", r#"["bar","baz"]"#),
        ];
        for (p, v) in cases {
            assert!(keep(&f(p, JsonOp::Eq, v), doc), "{p} == {v}");
            assert!(!keep(&f(p, JsonOp::Ne, v), doc), "{p} != {v}");
        }
        assert!(!keep(
            &JsonFilter::new("/foo/2", JsonOp::Exists, None).unwrap(),
            doc
        ));
        assert!(!keep(
            &JsonFilter::new("/foo/-", JsonOp::Exists, None).unwrap(),
            doc
        ));
        assert!(!keep(
            &JsonFilter::new("/foo/01", JsonOp::Exists, None).unwrap(),
            doc
        ));
        assert!(!keep(
            &JsonFilter::new("/foo/0/x", JsonOp::Exists, None).unwrap(),
            doc
        ));
        assert!(!keep(
            &JsonFilter::new("/nope", JsonOp::Exists, None).unwrap(),
            doc
        ));
    }

    #[test]
    fn numbers_compare_exactly() {
        use Ordering::*;
        let cases = [
            ("1", "1.0", Equal),
            ("1", "10e-1", Equal),
            ("0", "-0.0e5", Equal),
            ("-1", "1", Less),
            ("-2", "-1", Less),
            ("0.5", "0.49999999999999999999999", Greater),
            (
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.12345679",
                Less,
            ),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567891",
                Less,
            ),
            // Not distinguishable as f64:
            ("9007199254740993", "9007199254740992", Greater),
            ("1e400", "1e399", Greater),
            ("-1e400", "1e-400", Less),
            ("1E+2", "100", Equal),
            ("0.000000000000000000000000000001", "1e-30", Equal),
            ("100", "99.999", Greater),
            ("0", "1e-999999999999999999999", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp_numbers(a, b), want, "{a} vs {b}");
            assert_eq!(cmp_numbers(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn ordering_ops() {
        let row = r#"{"n": 10, "s": "b\u00e9", "t": true}"#;
        assert!(keep(&f("/n", JsonOp::Lt, "10.5"), row));
        assert!(keep(&f("/n", JsonOp::Le, "10"), row));
        assert!(!keep(&f("/n", JsonOp::Gt, "10"), row));
        assert!(keep(&f("/n", JsonOp::Ge, "1e1"), row));
        assert!(keep(&f("/s", JsonOp::Gt, "\"b\""), row));
        assert!(keep(&f("/s", JsonOp::Lt, "\"c\""), row));
        assert!(keep(&f("/s", JsonOp::Eq, "\"bé\""), row));
        // By code point: U+00E9 sorts after 'z'.
        assert!(keep(&f("/s", JsonOp::Gt, "\"bz\""), row));
        // Mixed types are never ordered.
        assert!(!keep(&f("/n", JsonOp::Lt, "\"11\""), row));
        assert!(!keep(&f("/s", JsonOp::Gt, "1"), row));
        assert!(!keep(&f("/t", JsonOp::Ge, "1"), row));
        assert!(JsonFilter::new("/n", JsonOp::Lt, Some("true")).is_err());
        assert!(JsonFilter::new("/n", JsonOp::Lt, Some("[1]")).is_err());
        assert!(JsonFilter::new("/n", JsonOp::Eq, None).is_err());
        assert!(JsonFilter::new("/n", JsonOp::Eq, Some("{")).is_err());
    }

    #[test]
    fn equality_is_structural() {
        let row = r#"{"o": {"a": [1, {"b": null}], "c": "x"}, "dup": 1, "dup": 2, "t": true}"#;
        assert!(keep(
            &f("/o", JsonOp::Eq, r#"{"c": "x", "a": [1.0, {"b": null}]}"#),
            row
        ));
        assert!(!keep(&f("/o", JsonOp::Eq, r#"{"c": "x"}"#), row));
        assert!(!keep(
            &f("/o", JsonOp::Eq, r#"{"c": "x", "a": [{"b": null}, 1]}"#),
            row
        ));
        assert!(keep(&f("/dup", JsonOp::Eq, "2"), row), "last key wins");
        assert!(keep(&f("/t", JsonOp::Eq, "true"), row));
        assert!(keep(&f("/t", JsonOp::Ne, "false"), row));
        assert!(keep(&f("/t", JsonOp::Ne, "1"), row));
        assert!(
            !keep(&f("/missing", JsonOp::Ne, "1"), row),
            "missing is never ne"
        );
        assert!(keep(&f("/o/a/1/b", JsonOp::Eq, "null"), row));
        assert!(keep(
            &JsonFilter::new("/o/a/1/b", JsonOp::Exists, None).unwrap(),
            row
        ));
    }

    #[test]
    fn contains() {
        let row =
            r#"{"s": "hello w\u00f6rld", "a": [1, "x", {"k": [2]}], "o": {"k1": 1, "k\/2": 2}}"#;
        assert!(keep(&f("/s", JsonOp::Contains, "\"wörl\""), row));
        assert!(!keep(&f("/s", JsonOp::Contains, "\"World\""), row));
        assert!(keep(&f("/a", JsonOp::Contains, "1.0"), row));
        assert!(keep(&f("/a", JsonOp::Contains, "\"x\""), row));
        assert!(keep(&f("/a", JsonOp::Contains, r#"{"k": [2]}"#), row));
        assert!(!keep(&f("/a", JsonOp::Contains, "2"), row), "not recursive");
        assert!(keep(&f("/o", JsonOp::Contains, "\"k/2\""), row));
        assert!(!keep(&f("/o", JsonOp::Contains, "\"k3\""), row));
        assert!(!keep(&f("/o", JsonOp::Contains, "1"), row));
        assert!(!keep(&f("/a/0", JsonOp::Contains, "1"), row));
    }

    #[test]
    fn invalid_rows_are_failures() {
        let p = f("/a", JsonOp::Eq, "1");
        assert_eq!(p.eval(b"{\"a\": 1"), Err(ParseFailure::InvalidJson));
        assert_eq!(p.eval(b"{\"a\": 1} x"), Err(ParseFailure::InvalidJson));
        assert_eq!(
            p.eval(b"{\"b\": [1,], \"a\": 1}"),
            Err(ParseFailure::InvalidJson)
        );
        assert_eq!(p.eval(b"{\"a\": \xff}"), Err(ParseFailure::InvalidUtf8));
        assert_eq!(p.eval(b""), Err(ParseFailure::InvalidJson));
        assert_eq!(p.eval(b"nul"), Err(ParseFailure::InvalidJson));
        assert_eq!(p.eval(b"null"), Ok(false));
        assert_eq!(p.eval(b" {\"a\" : 1 } "), Ok(true));
        // Deep nesting is only scanned, unless it is the compared value.
        let deep = format!(
            "{{\"a\": 1, \"d\": {}{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        );
        assert_eq!(p.eval(deep.as_bytes()), Ok(true));
        let q = f("/d", JsonOp::Eq, "[]");
        assert_eq!(q.eval(deep.as_bytes()), Err(ParseFailure::TooDeep));
        // Huge numbers are fine.
        let big = format!("{{\"a\": 1{}}}", "0".repeat(500));
        assert_eq!(f("/a", JsonOp::Gt, "1e499").eval(big.as_bytes()), Ok(true));
        assert_eq!(f("/a", JsonOp::Eq, "1e500").eval(big.as_bytes()), Ok(true));
    }
}
