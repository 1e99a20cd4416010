//! Parallel partitioned streams, the SQL side: how one query is split into `k` disjoint parts
//! and what each part sends (see docs/parallel.md).
//!
//! * A plain table (or materialized view) is split by block ranges: part `i` reads the blocks
//!   `[pages * i / k, pages * (i + 1) / k)` with a TID range condition (`ctid >= '(a,0)'::tid
//!   AND ctid < '(b,0)'::tid`, a TID Range Scan since PostgreSQL 14). The first part has no
//!   lower bound and the last no upper bound, so every row is in exactly one part whatever
//!   the table's size.
//! * Any other source is split by the caller's integer expression. When the server can find
//!   the expression's least and greatest values without reading the source (an index on it,
//!   which the planner reaches through a view: `EXPLAIN` says so, [`ranges_are_cheap`]),
//!   by ranges of its values: part `i` reads `expr >= b_i AND expr < b_(i+1)`, the first
//!   part with no lower bound (and the NULLs, if any), the last with no upper bound, so that
//!   each backend reads only its share through the index. Otherwise by modulo:
//!   `coalesce(abs((expr) % k), 0) = i` (NULL goes to part 0), where every backend reads the
//!   whole source and keeps its share.
//!
//! With ORDER BY, each part also returns its sort keys, as text the merge compares exactly
//! ([`KeyType`]), wrapped with the row in one json value: `json_build_array(key1, ..., data)`.
//! `json_build_array` copies a `json` value's text as it is and prints a `jsonb` value as
//! `jsonb` output does, so the row the merge cuts out of it is the row the serial query sends.
//!
//! Every part runs inside a REPEATABLE READ transaction sharing one snapshot; its statement
//! ends the transaction itself (`COMMIT` before `Sync`), so that the connection is idle
//! again when the part ends normally.

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::frontend;

use super::{Query, SortDir, Statement};
use crate::error::{Error, Result};

/// The most parts a parallel stream may have.
pub const MAX_PARTITIONS: u32 = 64;

/// How a parallel stream's result is split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// A plain table of `pages` blocks (from the snapshot's connection): TID ranges.
    Blocks { pages: u64 },
    /// The partition expression's SQL: `coalesce(abs((expr) % k), 0) = i`.
    Modulo(String),
    /// The partition expression's SQL and the `k - 1` inner bounds of its value ranges
    /// ([`value_bounds`]); `nulls`: some rows have a NULL value (they go to the first part).
    Ranges {
        expr: String,
        bounds: Vec<i64>,
        nulls: bool,
    },
}

/// The `k - 1` inner bounds splitting the values `lo..=hi` into `k` nearly equal ranges:
/// part `i` takes `[b_(i-1), b_i)`, the first part everything below `b_0` and the last
/// everything from `b_(k-2)` on (the bounds do not decrease; with fewer values than parts,
/// some ranges are empty).
pub fn value_bounds(lo: i64, hi: i64, k: u32) -> Vec<i64> {
    let (lo, hi) = (i128::from(lo.min(hi)), i128::from(lo.max(hi)));
    let span = hi - lo + 1;
    let k = i128::from(k.max(1));
    // Each bound lies in (lo, hi + 1], inside i64 except hi + 1 when hi is i64::MAX.
    (1..k)
        .map(|i| (lo + span * i / k).min(i128::from(i64::MAX)) as i64)
        .collect()
}

/// The statements (run with EXPLAIN) that tell whether a range split is cheap: finding the
/// expression's least and greatest values and whether it is ever NULL, against reading the
/// source. `expr` is the partition expression's SQL, `src` the quoted source.
pub fn range_probe_sql(expr: &str, src: &str) -> (String, String) {
    (
        format!("EXPLAIN {}", range_bounds_sql(expr, src)),
        format!("EXPLAIN SELECT 1 FROM {src}"),
    )
}

/// The statement returning the expression's least and greatest values as text, and whether
/// some row has it NULL.
pub fn range_bounds_sql(expr: &str, src: &str) -> String {
    format!(
        "SELECT (SELECT min(({expr})) FROM {src})::text, (SELECT max(({expr})) FROM {src})::text, \
         EXISTS (SELECT 1 FROM {src} WHERE ({expr}) IS NULL)"
    )
}

/// The total cost of a plan's top node, from the first line of EXPLAIN's text output
/// (`Result  (cost=0.91..0.92 rows=1 width=17)`).
pub fn plan_cost(first_line: &str) -> Option<f64> {
    let after = &first_line[first_line.find("cost=")? + 5..];
    let total = after.split("..").nth(1)?;
    total.split_whitespace().next()?.parse().ok()
}

/// Whether the range probe (its plan's total cost) is cheap against reading the source (the
/// scan's): under a tenth of it, which an index on the expression gives (a few pages against
/// the whole relation) and a scan of the source never does.
pub fn ranges_are_cheap(probe_cost: f64, scan_cost: f64) -> bool {
    probe_cost.is_finite() && scan_cost.is_finite() && probe_cost * 10.0 < scan_cost
}

/// The block range `[start, end)` of each of `k` parts of a table of `pages` blocks: `None`
/// is unbounded (the first part's start, the last part's end).
pub fn block_ranges(pages: u64, k: u32) -> Vec<(Option<u64>, Option<u64>)> {
    let k = u64::from(k.max(1));
    let bound = |i: u64| (u128::from(pages) * u128::from(i) / u128::from(k)) as u64;
    (0..k)
        .map(|i| {
            let start = (i > 0).then(|| bound(i));
            let end = (i + 1 < k).then(|| bound(i + 1));
            (start, end)
        })
        .collect()
}

/// The condition selecting part `i` of `k`.
pub fn part_condition(split: &Split, i: u32, k: u32) -> String {
    match split {
        Split::Blocks { pages } => {
            let (start, end) = block_ranges(*pages, k)[i as usize];
            match (start, end) {
                (None, None) => "true".into(),
                (Some(a), None) => format!("ctid >= '({a},0)'::tid"),
                (None, Some(b)) => format!("ctid < '({b},0)'::tid"),
                (Some(a), Some(b)) => format!("ctid >= '({a},0)'::tid AND ctid < '({b},0)'::tid"),
            }
        }
        Split::Modulo(expr) => format!("coalesce(abs(({expr}) % {k}), 0) = {i}"),
        Split::Ranges {
            expr,
            bounds,
            nulls,
        } => {
            let i = i as usize;
            let lower = i.checked_sub(1).and_then(|j| bounds.get(j));
            let upper = bounds.get(i);
            let range = match (lower, upper) {
                (None, None) => "true".to_string(),
                (Some(a), None) => format!("({expr}) >= {a}"),
                (None, Some(b)) => format!("({expr}) < {b}"),
                (Some(a), Some(b)) => format!("({expr}) >= {a} AND ({expr}) < {b}"),
            };
            if i == 0 && *nulls && upper.is_some() {
                format!("({range} OR ({expr}) IS NULL)")
            } else {
                range
            }
        }
    }
}

/// The sort-key types a parallel stream's merge compares exactly as the server orders them.
/// Each key travels as text: integers and numerics as their decimal text, floats as float8
/// text (shortest exact form), dates and timestamps as their epoch in seconds (a numeric, exact
/// to the microsecond since PostgreSQL 14), booleans as `true`/`false`, text and uuids as
/// their bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Int,
    Numeric,
    Float,
    Time,
    Bool,
    /// Text ordered bytewise: only under the "C" (or "POSIX") collation.
    Text,
    Uuid,
}

/// Collations under which text compares bytewise (as `memcmp`), as quoted by the builder.
const BYTEWISE_COLLATIONS: [&str; 2] = ["\"C\"", "\"POSIX\""];

impl KeyType {
    /// The key type of ORDER BY term `term` (1-based), whose expression `expr` the server
    /// described as type `oid`, ordered with `collation` (quoted; `None`: the expression's
    /// own). An `InvalidArgument` error says what to change when the merge cannot compare
    /// the key exactly.
    pub fn of(oid: u32, term: usize, expr: &str, collation: Option<&str>) -> Result<KeyType> {
        let t = match oid {
            20 | 21 | 23 | 26 => KeyType::Int,
            1700 => KeyType::Numeric,
            700 | 701 => KeyType::Float,
            1082 | 1114 | 1184 => KeyType::Time,
            16 => KeyType::Bool,
            2950 => KeyType::Uuid,
            25 | 1043 | 19 => KeyType::Text,
            1042 => {
                return Err(Error::invalid(format!(
                    "parallel stream: ORDER BY term {term} ({expr}) is of type character(n), \
                     whose comparison ignores trailing spaces; the merge of the parts cannot \
                     reproduce it: order by ({expr})::text COLLATE \"C\" instead, or run the \
                     query serially"
                )))
            }
            other => {
                return Err(Error::invalid(format!(
                    "parallel stream: ORDER BY term {term} ({expr}) is of type {}, which the \
                     merge of the parts cannot compare exactly as the server does; order by an \
                     integer, numeric, float, date/timestamp, boolean, uuid or text (with \
                     COLLATE \"C\") expression, or run the query serially",
                    type_label(other)
                )))
            }
        };
        if t == KeyType::Text && !collation.is_some_and(|c| BYTEWISE_COLLATIONS.contains(&c)) {
            return Err(Error::invalid(format!(
                "parallel stream: ORDER BY term {term} ({expr}) is text ordered by {}, which the \
                 merge of the parts cannot reproduce exactly; give the term COLLATE \"C\" \
                 (fw_query_order_by(q, expr, \"C\", dir)), which orders text bytewise, or run \
                 the query serially",
                match collation {
                    Some(c) => format!("collation {c}"),
                    None => "the column's or database's collation".into(),
                }
            )));
        }
        Ok(t)
    }

    /// The SQL of the key's text as a part sends it.
    pub fn select_sql(self, expr: &str) -> String {
        match self {
            KeyType::Float => format!("(({expr}))::float8::text"),
            KeyType::Time => format!("extract(epoch FROM ({expr}))::text"),
            _ => format!("(({expr}))::text"),
        }
    }
}

fn type_label(oid: u32) -> String {
    match oid {
        114 => "json".into(),
        3802 => "jsonb".into(),
        1083 => "time".into(),
        1266 => "timetz".into(),
        1186 => "interval".into(),
        17 => "bytea".into(),
        other => format!("oid {other}"),
    }
}

/// The probe run on the snapshot's connection to learn the ORDER BY keys' types: the keys
/// as columns of a query returning no row.
pub fn key_probe_sql(q: &Query) -> Option<String> {
    let exprs: Vec<String> = q.order_terms().map(|(e, _, _)| format!("({e})")).collect();
    if exprs.is_empty() {
        return None;
    }
    Some(format!(
        "SELECT {} FROM {} WHERE false",
        exprs.join(", "),
        q.source().quoted()
    ))
}

/// The statement of part `i` of `k`: the query with the part's condition, the keys wrapped
/// with the row when ordered (`keys`: one type per ORDER BY term), `LIMIT limit + offset` and
/// no OFFSET (the merged stream applies them), followed by the COMMIT of the part's
/// transaction.
pub fn part_statement(
    q: &Query,
    split: &Split,
    i: u32,
    k: u32,
    keys: Option<&[KeyType]>,
) -> Result<Statement> {
    let select = match keys {
        None => "data".to_string(),
        Some(types) => {
            let mut cols: Vec<String> = q
                .order_terms()
                .zip(types)
                .map(|((e, _, _), t)| t.select_sql(&e))
                .collect();
            cols.push("data".into());
            format!("json_build_array({}) AS data", cols.join(", "))
        }
    };
    let limit = match (q.limit_value(), q.offset_value()) {
        (Some(l), Some(o)) => Some(
            l.checked_add(o)
                .filter(|&n| n <= i64::MAX as u64)
                .ok_or_else(|| {
                    Error::invalid(
                        "parallel stream: LIMIT + OFFSET exceeds PostgreSQL's bigint maximum",
                    )
                })?,
        ),
        (l, _) => l,
    };
    let cond = part_condition(split, i, k);
    Ok(Statement {
        sql: q.sql_with(&select, Some(&cond), limit, None),
        params: q.params(),
    })
}

/// Encode a part's statement followed by `COMMIT`, then `Sync`: the server answers the
/// SELECT, then ParseComplete, BindComplete and CommandComplete for the COMMIT, then
/// ReadyForQuery (idle). After an error it skips to Sync (the transaction stays aborted and
/// the connection is not reused, see the reader).
pub fn encode_with_commit(st: &Statement) -> Result<Bytes> {
    let msg = st.encode()?;
    // `Statement::encode` ends with Sync ('S', length 4).
    let body = msg
        .strip_suffix(&[b'S', 0, 0, 0, 4][..])
        .ok_or_else(|| Error::invalid("internal error: the statement does not end with Sync"))?;
    let mut out = BytesMut::with_capacity(msg.len() + 64);
    out.extend_from_slice(body);
    let enc = |e: std::io::Error| Error::invalid(format!("could not encode COMMIT: {e}"));
    frontend::parse("", "COMMIT", std::iter::empty(), &mut out).map_err(enc)?;
    frontend::bind(
        "",
        "",
        std::iter::empty(),
        std::iter::empty::<Option<String>>(),
        |_: Option<String>, _| Ok(postgres_protocol::IsNull::Yes),
        std::iter::once(0i16),
        &mut out,
    )
    .map_err(|_| Error::invalid("could not encode COMMIT"))?;
    frontend::execute("", 0, &mut out).map_err(enc)?;
    frontend::sync(&mut out);
    Ok(out.freeze())
}

/// The direction of each ORDER BY term.
pub fn directions(q: &Query) -> Vec<SortDir> {
    q.order_terms().map(|(_, _, d)| d).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ranges_cover_every_block_once() {
        for pages in [0u64, 1, 2, 3, 7, 100, 1001, u32::MAX as u64] {
            for k in 1..=8u32 {
                let r = block_ranges(pages, k);
                assert_eq!(r.len(), k as usize);
                assert_eq!(r[0].0, None);
                assert_eq!(r[k as usize - 1].1, None);
                // Adjacent parts meet exactly: the end of one is the start of the next.
                for w in r.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "pages {pages} k {k}: {r:?}");
                    assert!(w[1].0.unwrap() <= pages);
                }
                // Nearly equal shares.
                let starts: Vec<u64> = r.iter().map(|x| x.0.unwrap_or(0)).collect();
                for w in starts.windows(2) {
                    let share = w[1] - w[0];
                    assert!(share == pages / k as u64 || share == pages / k as u64 + 1);
                }
            }
        }
        assert_eq!(
            block_ranges(10, 3),
            vec![(None, Some(3)), (Some(3), Some(6)), (Some(6), None)]
        );
    }

    #[test]
    fn part_conditions() {
        let s = Split::Blocks { pages: 10 };
        assert_eq!(part_condition(&s, 0, 3), "ctid < '(3,0)'::tid");
        assert_eq!(
            part_condition(&s, 1, 3),
            "ctid >= '(3,0)'::tid AND ctid < '(6,0)'::tid"
        );
        assert_eq!(part_condition(&s, 2, 3), "ctid >= '(6,0)'::tid");
        assert_eq!(part_condition(&s, 0, 1), "true");
        let m = Split::Modulo("id".into());
        assert_eq!(part_condition(&m, 2, 4), "coalesce(abs((id) % 4), 0) = 2");
        let r = Split::Ranges {
            expr: "id".into(),
            bounds: vec![-5, 10],
            nulls: true,
        };
        assert_eq!(part_condition(&r, 0, 3), "((id) < -5 OR (id) IS NULL)");
        assert_eq!(part_condition(&r, 1, 3), "(id) >= -5 AND (id) < 10");
        assert_eq!(part_condition(&r, 2, 3), "(id) >= 10");
        let r = Split::Ranges {
            expr: "id".into(),
            bounds: vec![],
            nulls: true,
        };
        assert_eq!(part_condition(&r, 0, 1), "true");
    }

    #[test]
    fn value_bounds_split_the_values_evenly_and_cover_all() {
        assert_eq!(value_bounds(1, 1_000_000, 2), vec![500_001]);
        assert_eq!(value_bounds(1, 9, 3), vec![4, 7]);
        assert_eq!(value_bounds(0, 0, 3), vec![0, 0]);
        assert_eq!(value_bounds(i64::MIN, i64::MAX, 2), vec![0]);
        assert_eq!(value_bounds(5, 5, 1), Vec::<i64>::new());
        for (lo, hi) in [
            (-7i64, 13i64),
            (0, 1),
            (i64::MAX - 3, i64::MAX),
            (i64::MIN, i64::MIN + 2),
        ] {
            for k in 1..=6u32 {
                let b = value_bounds(lo, hi, k);
                assert_eq!(b.len(), k as usize - 1);
                assert!(b.windows(2).all(|w| w[0] <= w[1]), "{lo} {hi} {k}: {b:?}");
                // Every value in lo..=hi falls in exactly one part.
                let span = (hi as i128 - lo as i128 + 1).min(50) as i64;
                for v in (0..span).map(|d| lo + d) {
                    let parts = (0..k as usize)
                        .filter(|&i| {
                            let above = i == 0 || v >= b[i - 1];
                            let below = i + 1 == k as usize || v < b[i];
                            above && below
                        })
                        .count();
                    assert_eq!(parts, 1, "value {v} of {lo}..={hi}, k {k}: {b:?}");
                }
            }
        }
    }

    #[test]
    fn the_range_probe_is_judged_by_its_plan_cost() {
        assert_eq!(
            plan_cost("Result  (cost=0.91..0.92 rows=1 width=17)"),
            Some(0.92)
        );
        assert_eq!(
            plan_cost("Seq Scan on t  (cost=0.00..70841.00 rows=1000000 width=4)"),
            Some(70841.0)
        );
        assert_eq!(plan_cost("Result"), None);
        assert!(ranges_are_cheap(0.92, 70841.0));
        assert!(!ranges_are_cheap(72000.0, 70841.0));
        assert!(!ranges_are_cheap(1.0, 5.0), "a tiny source is not worth it");
        assert!(!ranges_are_cheap(f64::NAN, 5.0));
        let (probe, scan) = range_probe_sql("(id)", "\"v\"");
        assert_eq!(
            probe,
            "EXPLAIN SELECT (SELECT min(((id))) FROM \"v\")::text, (SELECT max(((id))) FROM \"v\")::text, \
             EXISTS (SELECT 1 FROM \"v\" WHERE ((id)) IS NULL)"
        );
        assert_eq!(scan, "EXPLAIN SELECT 1 FROM \"v\"");
    }

    #[test]
    fn part_sql_adds_the_condition_keys_and_limit() {
        let mut q = Query::new("v").unwrap();
        q.where_params("a = $1", &[Some("x")]).unwrap();
        q.order_by("data->>'name'", Some("C"), SortDir::Desc)
            .unwrap()
            .order_by("(data->>'n')::int", None, SortDir::Asc)
            .unwrap()
            .limit(10)
            .unwrap()
            .offset(5)
            .unwrap();
        let st = part_statement(
            &q,
            &Split::Modulo("id".into()),
            1,
            2,
            Some(&[KeyType::Text, KeyType::Int]),
        )
        .unwrap();
        assert_eq!(
            st.sql,
            "SELECT json_build_array(((data->>'name'))::text, (((data->>'n')::int))::text, data) \
             AS data FROM \"v\" WHERE (a = $1) AND (coalesce(abs((id) % 2), 0) = 1) \
             ORDER BY (data->>'name') COLLATE \"C\" DESC, ((data->>'n')::int) ASC LIMIT 15"
        );
        assert_eq!(st.params, vec![Some("x".to_string())]);
        let mut q = Query::new("t").unwrap();
        q.offset(3).unwrap();
        let st = part_statement(&q, &Split::Blocks { pages: 4 }, 0, 2, None).unwrap();
        assert_eq!(st.sql, "SELECT data FROM \"t\" WHERE (ctid < '(2,0)'::tid)");
        assert_eq!(
            key_probe_sql(&Query::new("t").unwrap()),
            None,
            "no ORDER BY, no probe"
        );
    }

    #[test]
    fn key_types_refuse_what_cannot_be_compared_exactly() {
        assert_eq!(KeyType::of(23, 1, "n", None).unwrap(), KeyType::Int);
        assert_eq!(KeyType::of(1184, 1, "t", None).unwrap(), KeyType::Time);
        assert_eq!(
            KeyType::of(25, 1, "s", Some("\"C\"")).unwrap(),
            KeyType::Text
        );
        let e = KeyType::of(25, 2, "data->>'name'", None).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert!(e.message().contains("COLLATE \"C\""), "{e}");
        assert!(e.message().contains("term 2 (data->>'name')"), "{e}");
        let e = KeyType::of(25, 1, "s", Some("\"en_US\"")).unwrap_err();
        assert!(e.message().contains("collation \"en_US\""), "{e}");
        assert!(KeyType::of(3802, 1, "data", None)
            .unwrap_err()
            .message()
            .contains("jsonb"));
        assert!(KeyType::of(1042, 1, "c", Some("\"C\"")).is_err());
    }

    #[test]
    fn commit_follows_the_statement_before_sync() {
        let st = Statement {
            sql: "SELECT data FROM \"t\"".into(),
            params: vec![],
        };
        let msg = encode_with_commit(&st).unwrap();
        let plain = st.encode().unwrap();
        assert!(msg.starts_with(&plain[..plain.len() - 5]));
        assert!(msg.ends_with(&[b'S', 0, 0, 0, 4]));
        let tail = &msg[plain.len() - 5..];
        assert_eq!(tail[0], b'P');
        assert!(tail.windows(7).any(|w| w == b"COMMIT\0"));
        // Parse, Bind, Execute, Sync: four tags.
        let mut tags = Vec::new();
        let mut b = tail;
        while !b.is_empty() {
            let len = u32::from_be_bytes(b[1..5].try_into().unwrap()) as usize;
            tags.push(b[0]);
            b = &b[1 + len..];
        }
        assert_eq!(tags, b"PBES");
    }
}
