//! The query builder against the real server: where/order/limit/offset
//! return exactly the rows SQL returns; the statement cannot be split into two (t_guard
//! survives injection attempts); sources are validated and quoted; schema-qualified json
//! sources work.

use crate::support::*;
use fraiseql_wire::{ErrorKind, Query, SortDir};

fn ns(rows: &[Vec<u8>]) -> Vec<i64> {
    rows.iter().map(|r| int_field(r, "n")).collect()
}

fn psql_ints(sql: &str) -> Vec<i64> {
    psql_lines(pg(), sql)
        .iter()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn order_by_with_collation_c_desc_matches_sql() {
    let client = socket_client();
    let mut q = query("v_user");
    q.order_by("data->>'name'", Some("C"), SortDir::Desc)
        .unwrap();
    let rows = as_strings(&rows_of(&client, &q));
    let want = psql_lines(
        pg(),
        "SELECT data::text FROM v_user ORDER BY data->>'name' COLLATE \"C\" DESC",
    );
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows, want);
    // Byte order: 東 (E6 9D B1) > 李 (E6 9D 8E) > Cyrillic > É > ASCII; "#991" > "#981" > ...
    assert!(
        rows[0].contains("\"name\": \"東京 太郎 #991\""),
        "{}",
        rows[0]
    );
    assert!(
        rows[999].contains("\"name\": \"Ada Lovelace #105\""),
        "{}",
        rows[999]
    );
}

#[test]
fn where_order_limit_offset_match_sql() {
    let client = socket_client();
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int % 7 = 0")
        .unwrap()
        .where_sql("data->>'active' = 'true' OR false")
        .unwrap()
        .order_by("(data->>'n')::int", None, SortDir::Desc)
        .unwrap()
        .limit(10)
        .unwrap()
        .offset(5)
        .unwrap();
    let got = ns(&rows_of(&client, &q));
    let want = psql_ints(
        "SELECT data->>'n' FROM v_user WHERE ((data->>'n')::int % 7 = 0) \
         AND (data->>'active' = 'true' OR false) ORDER BY (data->>'n')::int DESC \
         LIMIT 10 OFFSET 5",
    );
    assert_eq!(got, want);
    // Multiples of 14 from 994 down, skipping 5.
    assert_eq!(got, (0..10).map(|k| 994 - 14 * (5 + k)).collect::<Vec<_>>());
}

#[test]
fn predicates_are_parenthesised_before_and() {
    // Without parentheses `n = 1 OR n = 2 AND false` would keep n = 1.
    let client = socket_client();
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int = 1 OR (data->>'n')::int = 2")
        .unwrap()
        .where_sql("false")
        .unwrap();
    assert!(rows_of(&client, &q).is_empty());
}

#[test]
fn ascending_with_offset_only_and_limit_zero() {
    let client = socket_client();
    let mut q = query("v_user");
    q.order_by("(data->>'n')::int", None, SortDir::Asc)
        .unwrap()
        .offset(990)
        .unwrap();
    assert_eq!(ns(&rows_of(&client, &q)), (991..=1000).collect::<Vec<_>>());
    q.limit(0).unwrap();
    assert!(rows_of(&client, &q).is_empty());
}

#[test]
fn collation_errors_come_from_the_server() {
    let client = socket_client();
    let mut q = query("v_user");
    q.order_by("(data->>'n')::int", Some("C"), SortDir::Asc)
        .unwrap();
    let err = client.execute(&q).err().expect("collation on int");
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("42804"), "{err}");

    let mut q = query("v_user");
    q.order_by("data->>'name'", Some("no_such_collation"), SortDir::Asc)
        .unwrap();
    let err = client.execute(&q).err().expect("unknown collation");
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("42704"), "{err}");
    assert!(err.message().contains("no_such_collation"), "{err}");
}

fn t_guard_rows() -> String {
    pg().psql("SELECT count(*) FROM t_guard").trim().to_string()
}

#[test]
fn injection_through_where_sql_cannot_run_a_second_statement() {
    let client = socket_client();
    let attempts = [
        "true); DROP TABLE t_guard; --",
        "true); DROP TABLE t_guard; SELECT data FROM v_user WHERE (true",
        "true; DROP TABLE t_guard",
    ];
    for a in attempts {
        let mut q = query("v_user");
        q.where_sql(a).unwrap();
        let err = client
            .execute(&q)
            .err()
            .unwrap_or_else(|| panic!("{a:?} executed"));
        assert_eq!(err.kind(), ErrorKind::Server, "{a:?}: {err}");
        // 42601: a syntax error, or "cannot insert multiple commands into a prepared statement".
        assert_eq!(err.sqlstate(), Some("42601"), "{a:?}: {err}");
        assert_eq!(t_guard_rows(), "1", "t_guard was touched by {a:?}");
    }
    // Through order_by too.
    let mut q = query("v_user");
    q.order_by("1); DROP TABLE t_guard; --", None, SortDir::Asc)
        .unwrap();
    let err = client.execute(&q).err().expect("order_by injection");
    assert_eq!(err.sqlstate(), Some("42601"), "{err}");
    assert_eq!(t_guard_rows(), "1");
    // The client is still usable afterwards.
    let mut q = query("v_user");
    q.limit(4).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 4);
}

#[test]
fn sources_are_validated_before_any_io() {
    for bad in [
        "v_user; DROP TABLE t_guard",
        "v_user--",
        "app.tv_order.x",
        "",
        "1view",
        "v user",
        "\"v_user\"",
        "pg_catalog.pg_user)",
    ] {
        let err = Query::new(bad).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert!(err.message().contains("invalid source"), "{bad:?}: {err}");
    }
    assert_eq!(t_guard_rows(), "1");
}

#[test]
fn sources_are_quoted_so_case_is_kept() {
    let client = socket_client();
    let err = client
        .execute(&query("V_USER"))
        .err()
        .expect("quoted upper-case name does not exist");
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert!(err.message().contains("V_USER"), "{err}");
}

#[test]
fn schema_qualified_json_source_streams_verbatim() {
    let client = socket_client();
    let rows = as_strings(&rows_of(&client, &query("app.tv_order")));
    let want = psql_lines(pg(), "SELECT data FROM app.tv_order");
    assert_eq!(rows.len(), 500);
    assert_eq!(rows, want);
    // json (not jsonb) keeps json_build_object's spacing: `"id" : 1`.
    assert!(rows[0].starts_with("{\"id\" : "), "{}", rows[0]);
    assert!(rows.iter().any(|r| r.contains("寿司 🍣")));
}

#[test]
fn a_query_executes_many_times_with_the_same_result() {
    let client = socket_client();
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int <= 300").unwrap();
    let a = rows_of(&client, &q);
    let b = rows_of(&client, &q);
    assert_eq!(a.len(), 300);
    assert_eq!(a, b);
}
