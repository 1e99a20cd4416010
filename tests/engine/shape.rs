//! Result shape. The statement is always `SELECT data FROM <source>`, so
//! its result has exactly one column named `data`; what can still be wrong:
//! * `data` is not json/jsonb (v_not_json): `Schema` at execute, naming what came;
//! * the source has no `data` column (v_wrong_name): the server refuses the statement
//!   (`Server`, SQLSTATE 42703 naming the column);
//! * extra columns in the source (v_two_cols) are not selected: the result has the right shape
//!   and streams (the C suite asserts the same).
//!
//! After each, the client stays usable. An SQL NULL `data` yields the JSON text `null` (the
//! documented decision).

use crate::support::*;
use fraiseql_wire::{ErrorKind, Next, Wait};

/// The client still streams exactly what SQL says.
fn assert_usable(client: &fraiseql_wire::Client, after: &str) {
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int <= 3").unwrap();
    let ns: Vec<i64> = rows_of(client, &q)
        .iter()
        .map(|r| int_field(r, "n"))
        .collect();
    assert_eq!(ns, vec![1, 2, 3], "after {after}");
}

#[test]
fn non_json_data_is_a_schema_error_naming_what_came() {
    let app = "fw_shape_text";
    let client = socket_client_app(app);
    let err = client
        .execute(&query("v_not_json"))
        .err()
        .expect("a text column was accepted");
    assert_eq!(err.kind(), ErrorKind::Schema, "{err}");
    assert_eq!(err.sqlstate(), None, "not a server error");
    assert_eq!(
        err.message(),
        "the result must be exactly one column named \"data\" of type json or jsonb; \
         got 1 column(s): data (text)"
    );
    assert_usable(&client, "v_not_json");
    // The refused query does not linger on the server.
    assert!(
        wait_until(std::time::Duration::from_secs(2), || {
            pg().psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
                     AND state = 'active'"
            ))
            .trim()
                == "0"
        }),
        "a schema-refused query is still running"
    );
}

#[test]
fn a_source_without_a_data_column_is_refused_by_the_server() {
    let client = socket_client();
    let err = client
        .execute(&query("v_wrong_name"))
        .err()
        .expect("a view without `data` was accepted");
    assert_eq!(err.kind(), ErrorKind::Server, "{err}");
    assert_eq!(err.sqlstate(), Some("42703"), "{err}");
    assert!(
        err.message().contains("column \"data\" does not exist"),
        "{err}"
    );
    assert_usable(&client, "v_wrong_name");
}

#[test]
fn extra_source_columns_are_not_selected() {
    let client = socket_client();
    let rows = as_strings(&rows_of(&client, &query("v_two_cols")));
    assert_eq!(rows, vec!["{\"i\": 1}"]);
    assert_usable(&client, "v_two_cols");
}

#[test]
fn null_data_yields_the_json_text_null() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_null")).unwrap();
    let mut rows = Vec::new();
    loop {
        match stream.next(Wait::Forever).unwrap() {
            Next::Row(r) => {
                // SAFETY: the library guarantees a NUL byte right after every row's bytes, in
                // memory it owns, valid until the next call on the stream (API.md).
                let nul = unsafe { *r.as_ptr().add(r.len()) };
                assert_eq!(nul, 0, "row {} is not NUL-terminated", rows.len());
                rows.push(String::from_utf8(r.to_vec()).unwrap());
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(rows, vec!["{\"i\": 1}", "null", "{\"i\": 3}"]);
    let st = stream.stats();
    assert_eq!(st.total_rows_received, 3);
    assert_eq!(st.total_rows_yielded, 3);
}
