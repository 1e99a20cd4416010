//! The ordered merge of a parallel stream: each part's rows arrive as
//! `[key1, ..., keyN, data]` (see [`crate::query::partition`]); the merge cuts the keys and the
//! row out of that text and compares keys exactly as the server ordered them.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::query::json_filter::cmp_numbers;
use crate::query::partition::KeyType;
use crate::query::SortDir;

/// One ORDER BY term as the merge compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    pub ty: KeyType,
    pub dir: SortDir,
}

/// Split a wrapped row into its keys (decoded JSON strings; `None` for SQL NULL), written to
/// `keys`, and the row's own JSON text, returned. The text is `json_build_array`'s output:
/// `[` the elements joined by `, ` `]`.
pub fn split_wrapped<'a>(
    row: &'a [u8],
    nkeys: usize,
    keys: &mut Vec<Option<Vec<u8>>>,
) -> Result<&'a [u8]> {
    let bad = || Error::protocol("parallel stream: a part sent a row without its sort keys");
    keys.clear();
    let mut p = row.strip_prefix(b"[").ok_or_else(bad)?;
    for _ in 0..nkeys {
        if let Some(rest) = p.strip_prefix(b"null") {
            keys.push(None);
            p = rest;
        } else {
            let (s, rest) = json_string(p).ok_or_else(bad)?;
            keys.push(Some(s));
            p = rest;
        }
        p = p.strip_prefix(b", ").ok_or_else(bad)?;
    }
    p.strip_suffix(b"]").ok_or_else(bad)
}

/// Decode the JSON string at the start of `p`: its bytes and what follows it.
fn json_string(p: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut p = p.strip_prefix(b"\"")?;
    let mut out = Vec::with_capacity(p.len().min(64));
    loop {
        let i = memchr::memchr2(b'"', b'\\', p)?;
        out.extend_from_slice(&p[..i]);
        if p[i] == b'"' {
            return Some((out, &p[i + 1..]));
        }
        let esc = *p.get(i + 1)?;
        p = &p[i + 2..];
        match esc {
            b'"' | b'\\' | b'/' => out.push(esc),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hex = |s: &[u8]| -> Option<u32> {
                    u32::from_str_radix(std::str::from_utf8(s.get(..4)?).ok()?, 16).ok()
                };
                let mut c = hex(p)?;
                p = &p[4..];
                if (0xD800..0xDC00).contains(&c) {
                    let lo = p.strip_prefix(b"\\u").and_then(hex)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return None;
                    }
                    c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                    p = &p[6..];
                }
                let ch = char::from_u32(c)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return None,
        }
    }
}

/// Compare two rows' keys as the server's ORDER BY does: term by term, NULL after every value
/// ascending (PostgreSQL's default NULLS LAST) and so before every value descending.
pub fn compare(specs: &[KeySpec], a: &[Option<Vec<u8>>], b: &[Option<Vec<u8>>]) -> Ordering {
    for (i, spec) in specs.iter().enumerate() {
        let o = match (&a[i], &b[i]) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(x), Some(y)) => compare_values(spec.ty, x, y),
        };
        let o = match spec.dir {
            SortDir::Asc => o,
            SortDir::Desc => o.reverse(),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Compare two non-NULL key texts of type `ty`.
pub fn compare_values(ty: KeyType, a: &[u8], b: &[u8]) -> Ordering {
    let (sa, sb) = (
        std::str::from_utf8(a).unwrap_or(""),
        std::str::from_utf8(b).unwrap_or(""),
    );
    match ty {
        KeyType::Int => match (sa.parse::<i128>(), sb.parse::<i128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
        KeyType::Numeric | KeyType::Time => {
            numeric_rank(sa).cmp(&numeric_rank(sb)).then_with(|| {
                if numeric_rank(sa) == 1 {
                    cmp_numbers(sa, sb)
                } else {
                    Ordering::Equal
                }
            })
        }
        KeyType::Float => {
            let (x, y) = (float(sa), float(sb));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // -0 equals 0, as for the server.
                (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            }
        }
        // `false` < `true` bytewise; text under "C" and uuids (fixed-format lowercase hex)
        // compare as the server's memcmp.
        KeyType::Bool | KeyType::Text | KeyType::Uuid => a.cmp(b),
    }
}

/// A numeric's place among PostgreSQL's special values: -Infinity, finite, Infinity, NaN
/// (NaN sorts above everything and equals itself).
fn numeric_rank(s: &str) -> u8 {
    match s {
        "-Infinity" => 0,
        "Infinity" => 2,
        "NaN" => 3,
        _ => 1,
    }
}

fn float(s: &str) -> f64 {
    match s {
        "Infinity" => f64::INFINITY,
        "-Infinity" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        s => s.parse().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn wrapped_rows_are_split_into_keys_and_the_row() {
        let mut keys = Vec::new();
        let row = br#"["a\"b\\c\u00e9\ud83d\ude00\n", null, "12", {"x": [1, "]"]}]"#;
        let data = split_wrapped(row, 3, &mut keys).unwrap();
        assert_eq!(data, br#"{"x": [1, "]"]}"#);
        assert_eq!(keys[0].as_deref(), Some("a\"b\\cé😀\n".as_bytes()));
        assert_eq!(keys[1], None);
        assert_eq!(keys[2].as_deref(), Some(&b"12"[..]));
        // A json row keeps its text as sent (spaces, key order, duplicates).
        let data = split_wrapped(br#"["1", {"b":1,  "a":2, "a":3} ]"#, 1, &mut keys).unwrap();
        assert_eq!(data, br#"{"b":1,  "a":2, "a":3} "#);
        assert!(split_wrapped(b"{\"a\":1}", 1, &mut keys).is_err());
        assert!(split_wrapped(b"[\"1\" {}]", 1, &mut keys).is_err());
        assert!(split_wrapped(b"[\"\\q\", {}]", 1, &mut keys).is_err());
    }

    #[test]
    fn numbers_compare_by_value_not_text() {
        use KeyType::*;
        assert_eq!(compare_values(Int, b"9", b"10"), Ordering::Less);
        assert_eq!(compare_values(Int, b"-10", b"-9"), Ordering::Less);
        assert_eq!(
            compare_values(Int, b"-9223372036854775808", b"9223372036854775807"),
            Ordering::Less
        );
        assert_eq!(compare_values(Numeric, b"2.50", b"2.5"), Ordering::Equal);
        assert_eq!(
            compare_values(Numeric, b"10.01", b"9.999"),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(
                Numeric,
                b"0.100000000000000000000000000001",
                b"0.1000000000000000000000000000001"
            ),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(Numeric, b"NaN", b"Infinity"),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(Numeric, b"-Infinity", b"-1e300"),
            Ordering::Less
        );
        assert_eq!(compare_values(Numeric, b"NaN", b"NaN"), Ordering::Equal);
        // Epoch seconds with microseconds (timestamps), exactly.
        assert_eq!(
            compare_values(Time, b"1700000000.000001", b"1700000000.000002"),
            Ordering::Less
        );
        assert_eq!(compare_values(Time, b"-1.5", b"-1.25"), Ordering::Less);
        assert_eq!(
            compare_values(Float, b"NaN", b"Infinity"),
            Ordering::Greater
        );
        assert_eq!(compare_values(Float, b"-0", b"0"), Ordering::Equal);
        assert_eq!(compare_values(Float, b"1e-05", b"0.0001"), Ordering::Less);
        assert_eq!(compare_values(Bool, b"false", b"true"), Ordering::Less);
        // Text under "C": bytes, so 'Z' < 'a' < 'é'.
        assert_eq!(compare_values(Text, b"Z", b"a"), Ordering::Less);
        assert_eq!(compare_values(Text, b"a", "é".as_bytes()), Ordering::Less);
        assert_eq!(compare_values(Text, b"ab", b"abc"), Ordering::Less);
    }

    #[test]
    fn nulls_last_ascending_first_descending_and_ties_go_to_the_next_term() {
        let asc = [KeySpec {
            ty: KeyType::Int,
            dir: SortDir::Asc,
        }];
        let desc = [KeySpec {
            ty: KeyType::Int,
            dir: SortDir::Desc,
        }];
        assert_eq!(compare(&asc, &[None], &[k("5")]), Ordering::Greater);
        assert_eq!(compare(&desc, &[None], &[k("5")]), Ordering::Less);
        assert_eq!(compare(&desc, &[k("4")], &[k("5")]), Ordering::Greater);
        let two = [
            KeySpec {
                ty: KeyType::Text,
                dir: SortDir::Asc,
            },
            KeySpec {
                ty: KeyType::Int,
                dir: SortDir::Desc,
            },
        ];
        assert_eq!(
            compare(&two, &[k("a"), k("1")], &[k("a"), k("2")]),
            Ordering::Greater
        );
        assert_eq!(
            compare(&two, &[k("a"), k("1")], &[k("b"), k("2")]),
            Ordering::Less
        );
        assert_eq!(
            compare(&two, &[k("a"), k("1")], &[k("a"), k("1")]),
            Ordering::Equal
        );
    }
}
