//! Server-side filtering with bound values against the real server: typed predicates
//! (`Query::where_path`, every operator), parameterised SQL (`Query::where_params`) and
//! `Query::order_by_path`. Each operator's rows are compared with the same condition written
//! by hand in SQL on the fixture table `filter_docs` (tests/fixtures/schema.sql), through the
//! jsonb view `v_filter` and the json view `v_filter_json`. Injection attempts through values
//! and pointers stay data; EXPLAIN shows that an expression index on `(data->>'email')` serves
//! `Op::Eq`.

use crate::support::*;
use fraiseql_wire::{Client, ErrorKind, Op, OrderKind, Query, SortDir};

fn ids(rows: &[Vec<u8>]) -> Vec<i64> {
    rows.iter().map(|r| int_field(r, "id")).collect()
}

fn sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v
}

/// The ids of `filter_docs` rows satisfying the hand-written SQL `cond`, ascending.
fn want(cond: &str) -> Vec<i64> {
    psql_lines(
        pg(),
        &format!("SELECT id FROM filter_docs WHERE {cond} ORDER BY id"),
    )
    .iter()
    .map(|l| l.parse().unwrap())
    .collect()
}

/// The ids `sql` (a query on `filter_docs` returning `id`) returns, in its order.
fn want_ordered(sql: &str) -> Vec<i64> {
    psql_lines(pg(), sql)
        .iter()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// Run `pointer op value` on both views and compare with `cond`; returns the ids.
fn check(client: &Client, pointer: &str, op: Op, value: Option<&str>, cond: &str) -> Vec<i64> {
    let expected = want(cond);
    for source in ["v_filter", "v_filter_json"] {
        let mut q = query(source);
        q.where_path(pointer, op, value)
            .unwrap_or_else(|e| panic!("{pointer} {op:?} {value:?}: {e}"));
        let mut s = client
            .execute(&q)
            .unwrap_or_else(|e| panic!("{source} {pointer} {op:?} {value:?}: {e}"));
        let (rows, end) = drain(&mut s);
        end.unwrap_or_else(|e| panic!("{source} {pointer} {op:?} {value:?}: {e}"));
        assert_eq!(
            sorted(ids(&rows)),
            expected,
            "{source}: {pointer} {op:?} {value:?} vs {cond}\nSQL: {}",
            q.sql()
        );
    }
    expected
}

const ALL_IDS: std::ops::RangeInclusive<i64> = 1..=16;

#[test]
fn comparisons_match_hand_written_sql() {
    let c = socket_client();
    let num = "CASE WHEN jsonb_typeof(data->'score') = 'number' THEN (data->'score')::numeric END";
    // strings
    assert_eq!(
        check(
            &c,
            "/email",
            Op::Eq,
            Some(r#""ada@example.com""#),
            "data->>'email' = 'ada@example.com'"
        ),
        [1]
    );
    let ne = check(
        &c,
        "/status",
        Op::Ne,
        Some(r#""active""#),
        "data->>'status' <> 'active'",
    );
    assert_eq!(ne, [3, 4, 7, 10, 13]);
    check(&c, "/name", Op::Lt, Some(r#""M""#), "data->>'name' < 'M'");
    check(
        &c,
        "/name",
        Op::Ge,
        Some(r#""Zoë""#),
        "data->>'name' >= 'Zoë'",
    );
    // unicode on both sides, nested
    assert_eq!(
        check(
            &c,
            "/address/city",
            Op::Eq,
            Some(r#""東京""#),
            "data->'address'->>'city' = '東京'"
        ),
        [3]
    );
    // numbers: exact decimals, the last of 39 digits decides
    assert_eq!(
        check(
            &c,
            "/score",
            Op::Eq,
            Some("123456789012345678901234567890.123456789"),
            &format!("{num} = 123456789012345678901234567890.123456789")
        ),
        [4]
    );
    assert_eq!(
        check(&c, "/score", Op::Eq, Some("10.5"), &format!("{num} = 10.5")),
        [2, 14],
        "10.5 = 10.50"
    );
    check(&c, "/score", Op::Gt, Some("10"), &format!("{num} > 10"));
    check(&c, "/score", Op::Ge, Some("10"), &format!("{num} >= 10"));
    check(
        &c,
        "/score",
        Op::Lt,
        Some("1e-40"),
        &format!("{num} < 1e-40"),
    );
    assert_eq!(
        check(&c, "/score", Op::Le, Some("0"), &format!("{num} <= 0")),
        [3, 7]
    );
    check(&c, "/score", Op::Ne, Some("10"), &format!("{num} <> 10"));
    // 1e3 in the document is 1000
    assert_eq!(
        check(
            &c,
            "/score",
            Op::Eq,
            Some("1000.0"),
            &format!("{num} = 1000")
        ),
        [13]
    );
    // booleans
    assert_eq!(
        check(
            &c,
            "/active",
            Op::Eq,
            Some("true"),
            "data->'active' = 'true'::jsonb"
        ),
        [1, 3, 4]
    );
    assert_eq!(
        check(
            &c,
            "/active",
            Op::Ne,
            Some("false"),
            "data->'active' = 'true'::jsonb"
        ),
        [1, 3, 4]
    );
    check(
        &c,
        "/active",
        Op::Lt,
        Some("true"),
        "data->'active' = 'false'::jsonb",
    );
    // null: missing key or JSON null
    let is_null = check(
        &c,
        "/email",
        Op::Eq,
        Some("null"),
        "NOT data ? 'email' OR data->'email' = 'null'::jsonb",
    );
    assert!(is_null.contains(&7) && is_null.contains(&8), "{is_null:?}");
    check(
        &c,
        "/email",
        Op::Ne,
        Some("null"),
        "data ? 'email' AND data->'email' <> 'null'::jsonb",
    );
    // nested deeper, array index, an object key that looks like an index
    assert_eq!(
        check(
            &c,
            "/nested/deep/deeper/value",
            Op::Eq,
            Some("42"),
            "data #> '{nested,deep,deeper,value}' = '42'"
        ),
        [12]
    );
    assert_eq!(
        check(
            &c,
            "/matrix/1/0",
            Op::Eq,
            Some("3"),
            "data->'matrix'->1->0 = '3'"
        ),
        [12]
    );
    assert_eq!(
        check(
            &c,
            "/nums/0",
            Op::Ge,
            Some("3"),
            "CASE jsonb_typeof(data->'nums') WHEN 'array' THEN (data->'nums'->0)::numeric \
             WHEN 'object' THEN (data->'nums'->'0')::numeric END >= 3"
        ),
        [2, 4, 10, 14]
    );
    assert_eq!(
        check(
            &c,
            "/0",
            Op::Eq,
            Some(r#""zero key""#),
            "data->>'0' = 'zero key'"
        ),
        [11]
    );
}

#[test]
fn pointer_escapes_reach_the_right_keys() {
    let c = socket_client();
    for (pointer, key, value) in [
        ("/a~1b", "a/b", "slash key"),
        ("/m~0n", "m~n", "tilde key"),
        ("/it's", "it''s", "quote key"),
        ("/back\\slash", "back\\slash", "bs key"),
        ("/$1", "$1", "dollar key"),
        ("/", "", "empty key"),
    ] {
        let got = check(
            &c,
            pointer,
            Op::Eq,
            Some(&format!("\"{value}\"")),
            &format!("data->>'{key}' = '{value}'"),
        );
        assert_eq!(got, [11], "{pointer}");
    }
}

#[test]
fn in_lists_match_hand_written_sql() {
    let c = socket_client();
    assert_eq!(
        check(
            &c,
            "/status",
            Op::In,
            Some(r#"["pending", "inactive", "nope"]"#),
            "data->>'status' IN ('pending', 'inactive', 'nope')"
        ),
        [3, 4, 7, 10]
    );
    check(
        &c,
        "/status",
        Op::NotIn,
        Some(r#"["active", "pending"]"#),
        "data->>'status' NOT IN ('active', 'pending')",
    );
    check(
        &c,
        "/score",
        Op::In,
        Some("[10.5, -3, 1000, 123456789012345678901234567890.123456788]"),
        "CASE WHEN jsonb_typeof(data->'score') = 'number' THEN (data->'score')::numeric END \
         IN (10.5, -3, 1000, 123456789012345678901234567890.123456788)",
    );
    check(
        &c,
        "/active",
        Op::In,
        Some("[false]"),
        "data->'active' = 'false'::jsonb",
    );
    // quotes, backslashes and commas inside the elements stay inside them
    assert_eq!(
        check(
            &c,
            "/name",
            Op::In,
            Some(
                r#"["back\\slash C:\\dir", "O'Brien $1 '); DROP TABLE t_guard; --", "a,b", "{x}"]"#
            ),
            r"data->>'name' IN (E'back\\slash C:\\dir', 'O''Brien $1 ''); DROP TABLE t_guard; --')"
        ),
        [7, 9]
    );
    // empty lists: IN matches nothing, NOT IN everything (missing keys included)
    assert_eq!(
        check(&c, "/status", Op::In, Some("[]"), "false"),
        Vec::<i64>::new()
    );
    assert_eq!(
        check(&c, "/status", Op::NotIn, Some("[]"), "true"),
        ALL_IDS.collect::<Vec<_>>()
    );
}

#[test]
fn text_operators_match_hand_written_sql() {
    let c = socket_client();
    check(
        &c,
        "/email",
        Op::Like,
        Some(r#""%@example.com""#),
        "right(data->>'email', 12) = '@example.com'",
    );
    check(
        &c,
        "/email",
        Op::ILike,
        Some(r#""%@EXAMPLE.com""#),
        "lower(right(data->>'email', 12)) = '@example.com'",
    );
    // % and _ in the value are literal: "50%" is not "50" + anything, "_sale" not "?sale"
    assert_eq!(
        check(
            &c,
            "/name",
            Op::StartsWith,
            Some(r#""50%""#),
            "starts_with(data->>'name', '50%')"
        ),
        [5]
    );
    assert_eq!(
        check(
            &c,
            "/name",
            Op::EndsWith,
            Some(r#""_sale""#),
            "right(data->>'name', 5) = '_sale'"
        ),
        [5]
    );
    assert_eq!(
        check(
            &c,
            "/name",
            Op::ContainsText,
            Some(r#""off_""#),
            "strpos(data->>'name', 'off_') > 0"
        ),
        [5]
    );
    // a backslash is literal too
    assert_eq!(
        check(
            &c,
            "/name",
            Op::ContainsText,
            Some(r#""\\""#),
            r"strpos(data->>'name', E'\\') > 0"
        ),
        [7]
    );
    assert_eq!(
        check(
            &c,
            "/name",
            Op::StartsWith,
            Some(r#""東京""#),
            "starts_with(data->>'name', '東京')"
        ),
        [3]
    );
    assert_eq!(
        check(
            &c,
            "/name",
            Op::IContainsText,
            Some(r#""zOë ÅNG""#),
            "strpos(lower(data->>'name'), lower('zOë ÅNG')) > 0"
        ),
        [2]
    );
    check(
        &c,
        "/name",
        Op::IContainsText,
        Some(r#""ROCKET""#),
        "strpos(lower(data->>'name'), 'rocket') > 0",
    );
    // an empty string: STARTS_WITH "" is every row with a name
    check(
        &c,
        "/name",
        Op::StartsWith,
        Some(r#""""#),
        "data->>'name' IS NOT NULL",
    );
}

#[test]
fn exists_match_hand_written_sql() {
    let c = socket_client();
    let with_email = check(&c, "/email", Op::Exists, None, "data ? 'email'");
    assert!(with_email.contains(&7), "JSON null counts as present");
    check(&c, "/email", Op::NotExists, None, "NOT data ? 'email'");
    // nested: "address" is a string in row 10, city is null in row 7
    assert_eq!(
        check(
            &c,
            "/address/city",
            Op::Exists,
            None,
            "jsonb_typeof(data->'address') = 'object' AND data->'address' ? 'city'"
        ),
        [1, 2, 3, 4, 5, 7]
    );
    check(
        &c,
        "/address/city",
        Op::NotExists,
        None,
        "NOT (jsonb_typeof(data->'address') = 'object' AND data->'address' ? 'city') \
         OR data->'address' IS NULL",
    );
    // an index step: arrays with an element 0, and the object with key "0"
    let cond = "(jsonb_typeof(data->'nums') = 'array' AND jsonb_array_length(data->'nums') > 0) \
                OR (jsonb_typeof(data->'nums') = 'object' AND data->'nums' ? '0')";
    assert_eq!(
        check(&c, "/nums/0", Op::Exists, None, cond),
        [1, 2, 4, 10, 14]
    );
    check(
        &c,
        "/nums/0",
        Op::NotExists,
        None,
        &format!("NOT ({cond}) OR data->'nums' IS NULL"),
    );
    // "tags" holds the string "poet" in no row but string elements must not count as keys
    assert_eq!(
        check(&c, "/tags/poet", Op::Exists, None, "false"),
        Vec::<i64>::new()
    );
    assert_eq!(check(&c, "/a~1b", Op::Exists, None, "data ? 'a/b'"), [11]);
    assert_eq!(
        check(&c, "", Op::Exists, None, "true"),
        ALL_IDS.collect::<Vec<_>>()
    );
}

#[test]
fn json_operators_match_hand_written_sql() {
    let c = socket_client();
    assert_eq!(
        check(
            &c,
            "/address",
            Op::JsonContains,
            Some(r#"{"city": "Zürich"}"#),
            r#"data->'address' @> '{"city": "Zürich"}'"#
        ),
        [2]
    );
    // a scalar: an array holding it, or the scalar itself
    assert_eq!(
        check(
            &c,
            "/tags",
            Op::JsonContains,
            Some(r#""poet""#),
            r#"data->'tags' @> '"poet"'"#
        ),
        [1, 2, 14]
    );
    assert_eq!(
        check(
            &c,
            "/tags",
            Op::JsonContains,
            Some(r#""not-an-array""#),
            r#"data->'tags' @> '"not-an-array"'"#
        ),
        [10]
    );
    check(
        &c,
        "/tags",
        Op::JsonContains,
        Some(r#"["poet", "math"]"#),
        r#"data->'tags' @> '["math", "poet"]'"#,
    );
    check(
        &c,
        "/address/geo",
        Op::JsonContains,
        Some(r#"{"lat": -23.50}"#),
        r#"data->'address'->'geo' @> '{"lat": -23.5}'"#,
    );
    check(
        &c,
        "/address/city",
        Op::JsonContains,
        Some("null"),
        r#"data->'address'->'city' @> 'null'"#,
    );
    assert_eq!(
        check(
            &c,
            "/matrix/1",
            Op::JsonContains,
            Some("[3]"),
            "data->'matrix'->1 @> '[3]'"
        ),
        [12]
    );
    check(
        &c,
        "",
        Op::JsonContains,
        Some(r#"{"status": "active", "tags": ["sale"]}"#),
        r#"data @> '{"status": "active", "tags": ["sale"]}'"#,
    );

    let arr = "CASE WHEN jsonb_typeof(data->'tags') = 'array' THEN data->'tags' END";
    assert_eq!(
        check(
            &c,
            "/tags",
            Op::ArrayOverlaps,
            Some(r#"["poet", "sale", "none"]"#),
            &format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text({arr}) t \
                 WHERE t IN ('poet', 'sale', 'none'))"
            )
        ),
        [1, 2, 5, 6, 14]
    );
    // "not-an-array" is a string, not an array with that element
    assert_eq!(
        check(
            &c,
            "/tags",
            Op::ArrayOverlaps,
            Some(r#"["not-an-array"]"#),
            "false"
        ),
        Vec::<i64>::new()
    );
    let nums = "CASE WHEN jsonb_typeof(data->'nums') = 'array' THEN data->'nums' END";
    assert_eq!(
        check(
            &c,
            "/nums",
            Op::ArrayOverlaps,
            Some("[2, 20]"),
            &format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements({nums}) e WHERE e IN ('2', '20'))"
            )
        ),
        [1, 4, 14]
    );
    let mixed = "CASE WHEN jsonb_typeof(data->'mixed') = 'array' THEN data->'mixed' END";
    assert_eq!(
        check(
            &c,
            "/mixed",
            Op::ArrayOverlaps,
            Some(r#"[{"k": 1}, null]"#),
            &format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements({mixed}) e \
                 WHERE e IN ('{{\"k\": 1}}', 'null'))"
            )
        ),
        [15]
    );
    assert_eq!(
        check(&c, "/tags", Op::ArrayOverlaps, Some("[]"), "false"),
        Vec::<i64>::new()
    );

    let len = "CASE WHEN jsonb_typeof(data->'tags') = 'array' \
               THEN jsonb_array_length(data->'tags') END";
    assert_eq!(
        check(
            &c,
            "/tags",
            Op::ArrayLengthEq,
            Some("0"),
            &format!("{len} = 0")
        ),
        [3]
    );
    check(
        &c,
        "/tags",
        Op::ArrayLengthGt,
        Some("1"),
        &format!("{len} > 1"),
    );
    check(
        &c,
        "/tags",
        Op::ArrayLengthLt,
        Some("2"),
        &format!("{len} < 2"),
    );
    assert_eq!(
        check(
            &c,
            "/matrix/0",
            Op::ArrayLengthEq,
            Some("2"),
            "jsonb_array_length(data->'matrix'->0) = 2"
        ),
        [12]
    );
}

#[test]
fn matches_is_full_text_search() {
    let c = socket_client();
    let tsv = "to_tsvector('simple', coalesce(data->>'body', ''))";
    assert_eq!(
        check(
            &c,
            "/body",
            Op::Matches,
            Some(r#""quick -lazy""#),
            &format!("{tsv} @@ to_tsquery('simple', 'quick & !lazy')")
        ),
        [13]
    );
    assert_eq!(
        check(
            &c,
            "/body",
            Op::Matches,
            Some(r#""\"lazy dog\"""#),
            &format!("{tsv} @@ to_tsquery('simple', 'lazy <-> dog')")
        ),
        [1]
    );
    check(
        &c,
        "/body",
        Op::Matches,
        Some(r#""quick or français""#),
        &format!("{tsv} @@ to_tsquery('simple', 'quick | français')"),
    );
}

#[test]
fn predicates_combine_with_each_other_and_with_sql() {
    let c = socket_client();
    let mut q = query("v_filter");
    q.where_path("/status", Op::Eq, Some(r#""active""#))
        .unwrap()
        .where_sql("(data->>'id')::int > 1")
        .unwrap()
        .where_params(
            "data->>'email' LIKE $1 OR data->>'name' = $2",
            &[Some("%.com"), Some("Fourteen")],
        )
        .unwrap()
        .where_path("/score", Op::Gt, Some("0"))
        .unwrap();
    let got = sorted(ids(&rows_of(&c, &q)));
    assert_eq!(
        got,
        want(
            "data->>'status' = 'active' AND id > 1 \
             AND (data->>'email' LIKE '%.com' OR data->>'name' = 'Fourteen') \
             AND CASE WHEN jsonb_typeof(data->'score') = 'number' \
                 THEN (data->'score')::numeric END > 0"
        )
    );
    assert_eq!(got, [2, 5, 6, 14]);
    assert_eq!(q.param_count(), 4);
}

#[test]
fn order_by_path_matches_hand_written_sql() {
    let c = socket_client();
    for (dir, sql_dir) in [(SortDir::Asc, "ASC"), (SortDir::Desc, "DESC")] {
        let mut q = query("v_filter");
        q.where_path("/name", Op::Ne, Some("null"))
            .unwrap()
            .order_by_path("/name", OrderKind::Text, Some("C"), dir)
            .unwrap();
        assert_eq!(
            ids(&rows_of(&c, &q)),
            want_ordered(&format!(
                "SELECT id FROM filter_docs WHERE data->>'name' IS NOT NULL \
                 ORDER BY data->>'name' COLLATE \"C\" {sql_dir}"
            )),
        );
        let mut q = query("v_filter_json");
        q.order_by_path("/score", OrderKind::Numeric, None, dir)
            .unwrap()
            .order_by_path("/id", OrderKind::Numeric, None, SortDir::Asc)
            .unwrap();
        let got = ids(&rows_of(&c, &q));
        assert_eq!(
            got,
            want_ordered(&format!(
                "SELECT id FROM filter_docs ORDER BY CASE WHEN jsonb_typeof(data->'score') \
                 = 'number' THEN (data->'score')::numeric END {sql_dir}, id"
            ))
        );
        // numeric, not text: -3 < 0 < 1e-30 < 10 < 10.5 = 10.50 < 1000 < 1.2e29
        if dir == SortDir::Asc {
            assert_eq!(got[..9], [3, 7, 6, 1, 2, 14, 13, 5, 4]);
        }
    }
    // rows without the value sort as NULL: last ascending, first descending
    for (dir, at) in [(SortDir::Asc, 0), (SortDir::Desc, 15)] {
        let mut q = query("v_filter");
        q.order_by_path("/nested/deep/deeper/value", OrderKind::Numeric, None, dir)
            .unwrap();
        let got = ids(&rows_of(&c, &q));
        assert_eq!(got.len(), 16);
        assert_eq!(got[at], 12, "{dir:?}: {got:?}");
    }
}

#[test]
fn where_params_binds_values_and_renumbers_fragments() {
    let c = socket_client();
    let mut q = query("v_filter");
    q.where_params(
        "data->>'status' = $2 AND '$1' <> $$ $1 $$ /* $1 */ AND \"data\"->>'name' <> $1 -- $1",
        &[Some("Zoë Ångström"), Some("active")],
    )
    .unwrap()
    .where_params(
        "(data->>'id')::int = ANY($1::int[]) OR $2::text IS NULL",
        &[Some("{1,2,5,9,13}"), Some("x")],
    )
    .unwrap()
    .where_params("(data->'score') IS NOT NULL OR $1 = 'never'", &[Some("v")])
    .unwrap();
    assert_eq!(sorted(ids(&rows_of(&c, &q))), [1, 5, 9]);

    // a NULL value is SQL NULL
    let mut q = query("v_filter");
    q.where_params("data->>'email' IS NOT DISTINCT FROM $1", &[None])
        .unwrap();
    assert_eq!(
        sorted(ids(&rows_of(&c, &q))),
        want("data->>'email' IS NULL")
    );
    // values are data, whatever they contain
    for v in [
        "O'Brien $1 '); DROP TABLE t_guard; --",
        "back\\slash C:\\dir",
        "naïve café 𝄞",
    ] {
        let mut q = query("v_filter");
        q.where_params("data->>'name' = $1", &[Some(v)]).unwrap();
        let got = ids(&rows_of(&c, &q));
        assert_eq!(got.len(), 1, "{v}");
        assert_eq!(got, want(&format!("data->>'name' = $v${v}$v$")));
    }
    assert_eq!(t_guard_rows(), "1");
}

#[test]
fn where_params_errors_at_the_call_and_from_the_server() {
    let c = socket_client();
    let mut q = query("v_filter");
    for (sql, n, msg) in [
        ("x = $2", 1, "refers to a parameter that was not given"),
        ("x = $1 OR y = $3", 3, "parameter $2 is not used"),
        ("x = $0", 1, "numbered from $1"),
        ("x = '$1'", 1, "parameter $1 is not used"),
        ("x = $1) OR (true", 1, "unbalanced ')'"),
        ("x = 'open", 0, "ends inside a string literal"),
    ] {
        let e = q.where_params(sql, &vec![Some("v"); n]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{sql}");
        assert!(e.message().contains(msg), "{sql}: {e}");
    }
    let e = q.where_sql("data->>'a' = $1").unwrap_err();
    assert!(e.message().contains("where_params"), "{e}");
    // nothing was added
    assert_eq!(rows_of(&c, &q).len(), 16);
    // an injection attempt through a typed value is a type error, not a predicate
    let mut q = query("v_filter");
    q.where_params("(data->>'id')::int = $1::int", &[Some("1 OR 1=1")])
        .unwrap();
    let e = c.execute(&q).err().expect("not an integer");
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert_eq!(e.sqlstate(), Some("22P02"), "{e}");
    // a parameter whose type the server cannot infer
    let mut q = query("v_filter");
    q.where_params("$1 IS NULL", &[None]).unwrap();
    let e = c.execute(&q).err().expect("untyped parameter");
    assert_eq!(e.sqlstate(), Some("42P18"), "{e}");
    // the client is still usable
    let mut q = query("v_filter");
    q.where_params("(data->>'id')::int = $1", &[Some("3")])
        .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [3]);
}

#[test]
fn literals_mean_the_same_with_standard_conforming_strings_off() {
    let c = Client::connect(&format!(
        "{} options='-c standard_conforming_strings=off'",
        pg().socket_conninfo()
    ))
    .unwrap();
    let mut q = query("v_filter");
    q.where_path("/back\\slash", Op::Eq, Some(r#""bs key""#))
        .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [11]);
    let mut q = query("v_filter");
    q.where_params(
        r"data->>'name' = E'back\\slash C:\\dir' AND $1 = 'x'",
        &[Some("x")],
    )
    .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [7]);
    let mut q = query("v_filter");
    q.where_path("/name", Op::ContainsText, Some(r#""\\""#))
        .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [7]);
}

/// A fragment that PostgreSQL would read differently from the check is refused at the call;
/// when it is not, the rows the server returns show the fragment escaping its parentheses.
fn refused_at_the_call(c: &Client, sql: &str, msg: &str) {
    let mut q = query("v_filter");
    q.where_params("(data->>'id')::int = $1", &[Some("3")])
        .unwrap();
    match q.where_params(sql, &[None]) {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{sql:?}: {e}");
            assert!(e.message().contains(msg), "{sql:?}: {e}");
            // nothing was added
            assert_eq!(ids(&rows_of(c, &q)), [3]);
        }
        Ok(_) => panic!(
            "{sql:?} was accepted; the server returned ids {:?} for id = 3 AND it",
            ids(&rows_of(c, &q))
        ),
    }
}

#[test]
fn a_literal_continued_on_a_new_line_is_refused() {
    // PostgreSQL joins E'x' and the next line's '\'' ...' into one E'' string, so the
    // `) OR true OR (true` after it is SQL.
    refused_at_the_call(
        &socket_client(),
        "$1::text IS NULL OR E'x'\n'\\'' = '\\' ) OR true OR (true --'\n",
        "continues the string literal",
    );
}

#[test]
fn n_literals_mean_the_same_with_standard_conforming_strings_off() {
    let c = Client::connect(&format!(
        "{} options='-c standard_conforming_strings=off'",
        pg().socket_conninfo()
    ))
    .unwrap();
    // with the setting off, N'\' ' is one literal and `) OR true OR (true` is SQL
    refused_at_the_call(
        &c,
        "$1::text IS NULL OR N'\\' ' IS NOT NULL) OR true OR (true --'\n",
        "standard_conforming_strings",
    );
    // without a backslash before a quote, an N'' literal is accepted and, like '...', takes
    // backslash escapes with the setting off
    let mut q = query("v_filter");
    q.where_params(
        r"data->>'name' = N'back\\slash C:\\dir' AND $1 = 'x'",
        &[Some("x")],
    )
    .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [7]);
}

fn t_guard_rows() -> String {
    pg().psql("SELECT count(*) FROM t_guard").trim().to_string()
}

#[test]
fn injection_through_values_and_pointers_stays_data() {
    let c = socket_client();
    let attacks = [
        "'); DELETE FROM t_guard; --",
        "x' OR '1'='1",
        "$2",
        "\\'; DROP TABLE t_guard; --",
        "$$; DROP TABLE t_guard; $$",
        "*/ OR true /*",
        "O'Brien $1 '); DROP TABLE t_guard; --",
    ];
    for a in attacks {
        let json = json_string(a);
        // Through values: the rows are those the same value matches as a literal.
        let lit = format!("$atk${a}$atk$");
        let name = "coalesce(data->>'name', '')";
        for (op, cond) in [
            (Op::Eq, format!("{name} = {lit}")),
            (Op::Like, format!("{name} LIKE {lit}")),
            (Op::StartsWith, format!("starts_with({name}, {lit})")),
            (Op::ContainsText, format!("strpos({name}, {lit}) > 0")),
            (
                Op::Matches,
                format!("to_tsvector('simple', {name}) @@ websearch_to_tsquery('simple', {lit})"),
            ),
        ] {
            check(&c, "/name", op, Some(&json), &cond);
        }
        check(
            &c,
            "/name",
            Op::In,
            Some(&format!("[{json}]")),
            &format!("{name} IN ({lit})"),
        );
        check(
            &c,
            "/tags",
            Op::JsonContains,
            Some(&json),
            &format!("data->'tags' @> to_jsonb({lit}::text)"),
        );
        // Through pointers: a key of that name, which no row has.
        let pointer = format!("/{}", a.replace('~', "~0").replace('/', "~1"));
        for (op, v) in [
            (Op::Eq, Some("\"x\"")),
            (Op::Exists, None),
            (Op::JsonContains, Some("1")),
        ] {
            check(&c, &pointer, op, v, "false");
        }
        check(&c, &pointer, Op::NotExists, None, "true");
        let mut q = query("v_filter");
        q.order_by_path(&pointer, OrderKind::Text, None, SortDir::Asc)
            .unwrap();
        assert_eq!(rows_of(&c, &q).len(), 16, "order by {pointer:?}");
    }
    // The row whose name is an injection attempt is found by it, as data.
    let mut q = query("v_filter");
    q.where_path(
        "/name",
        Op::Eq,
        Some(r#""O'Brien $1 '); DROP TABLE t_guard; --""#),
    )
    .unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [9]);
    assert_eq!(t_guard_rows(), "1");
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn a_non_numeric_value_fails_a_numeric_comparison_on_the_server() {
    // Documented: numbers compare as `(->>)::numeric` (indexable), so a string at the path in
    // a scanned row is an error rather than a silent non-match.
    let c = socket_client();
    let mut q = query("v_filter_mixed");
    q.where_path("/v", Op::Gt, Some("0")).unwrap();
    // From execute or from the stream (after the first row), depending on timing.
    let e = match c.execute(&q) {
        Err(e) => e,
        Ok(mut s) => drain(&mut s).1.expect_err("'abc'::numeric"),
    };
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert_eq!(e.sqlstate(), Some("22P02"), "{e}");
    // text comparison works on the same data
    let mut q = query("v_filter_mixed");
    q.where_path("/v", Op::Eq, Some(r#""abc""#)).unwrap();
    assert_eq!(ids(&rows_of(&c, &q)), [2]);
}

/// The plan of `q`'s statement, as the server makes it for the bound values (a custom plan,
/// as for the unnamed statement the library sends).
fn explain(q: &Query) -> String {
    let st = q.statement();
    let args = st
        .params
        .iter()
        .map(|p| match p {
            Some(v) => fraiseql_wire::query::ident::quote_literal(v),
            None => "NULL".into(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let (prepare, execute) = if st.params.is_empty() {
        (
            format!("PREPARE p AS {}", st.sql),
            "EXPLAIN EXECUTE p".to_string(),
        )
    } else {
        (
            format!("PREPARE p AS {}", st.sql),
            format!("EXPLAIN EXECUTE p({args})"),
        )
    };
    pg().psql(&format!("{prepare};\n{execute}"))
}

fn index_scans(index: &str) -> i64 {
    pg().psql(&format!(
        "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = '{index}'"
    ))
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn an_expression_index_on_email_serves_eq() {
    pg().psql(
        "CREATE TABLE IF NOT EXISTS idx_docs AS \
           SELECT jsonb_build_object('id', i, 'email', 'user' || i || '@example.com', \
                                     'address', jsonb_build_object('city', 'c' || (i % 100))) AS data \
           FROM generate_series(1, 20000) AS i; \
         CREATE INDEX IF NOT EXISTS idx_docs_email ON idx_docs ((data->>'email')); \
         CREATE INDEX IF NOT EXISTS idx_docs_gin ON idx_docs USING gin (data jsonb_path_ops); \
         ANALYZE idx_docs;",
    );
    let c = socket_client();
    let mut q = query("idx_docs");
    q.where_path("/email", Op::Eq, Some(r#""user4242@example.com""#))
        .unwrap();
    let plan = explain(&q);
    assert!(
        plan.contains("Index Scan using idx_docs_email")
            || plan.contains("Bitmap Index Scan on idx_docs_email"),
        "{plan}"
    );
    assert!(
        plan.contains("((data ->> 'email'::text) = 'user4242@example.com'::text)"),
        "{plan}"
    );
    // The library's own execution, with the value bound, scans the index.
    let before = index_scans("idx_docs_email");
    assert_eq!(ids(&rows_of(&c, &q)), [4242]);
    assert!(
        wait_until(std::time::Duration::from_secs(30), || index_scans(
            "idx_docs_email"
        ) > before),
        "idx_docs_email was not scanned"
    );
    // Containment on a path with only keys is tested on the document: a GIN index serves it.
    let mut q = query("idx_docs");
    q.where_path("/address", Op::JsonContains, Some(r#"{"city": "c42"}"#))
        .unwrap();
    let plan = explain(&q);
    assert!(plan.contains("Bitmap Index Scan on idx_docs_gin"), "{plan}");
    assert_eq!(rows_of(&c, &q).len(), 200);
}
