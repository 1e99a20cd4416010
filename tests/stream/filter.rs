//! Client-side filtering: `where_sql` + a C-style predicate (run on the consumer's
//! thread) + the built-in JSON predicate (run in the reader, before the channel), checked row
//! for row against the same condition evaluated by PostgreSQL.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use crate::support::*;
use fraiseql_wire::ffi::client::{fw_client, fw_client_free, fw_client_new};
use fraiseql_wire::ffi::fw_status;
use fraiseql_wire::ffi::query::*;
use fraiseql_wire::ffi::stream::*;
use fraiseql_wire::query::JsonOp;
use fraiseql_wire::{Query, SortDir};

/// Library rows' "n" values for `q`, and the stream's final stats.
fn run(q: &Query) -> (Vec<String>, fraiseql_wire::StreamStats) {
    let c = socket_client();
    let mut s = execute(&c, q);
    let rows = drain_strings(&mut s);
    (rows.iter().map(|r| field(r, "n")).collect(), s.stats())
}

fn sql_ns(pred: &str) -> Vec<String> {
    psql_lines(
        pg(),
        &format!("SELECT data->>'n' FROM v_user WHERE {pred} ORDER BY (data->>'n')::int"),
    )
}

fn ordered(src: &str) -> Query {
    let mut q = Query::new(src).unwrap();
    q.order_by("(data->>'n')::int", None, SortDir::Asc).unwrap();
    q
}

#[test]
fn where_sql_c_predicate_and_builtin_predicate_match_sql() {
    let mut q = ordered("v_user");
    q.where_sql("(data->>'n')::int % 3 <> 0").unwrap();
    // The C-style predicate (Rust closure through Query::filter): active rows only.
    q.filter(Arc::new(|row: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(row).unwrap();
        v["active"] == serde_json::Value::Bool(true)
    }));
    // Built-in: score > 50 and the city contains an 'o'.
    q.filter_json("/score", JsonOp::Gt, Some("50")).unwrap();
    q.filter_json("/address/city", JsonOp::Contains, Some("\"o\""))
        .unwrap();
    let (got, st) = run(&q);
    let want = sql_ns(
        "(data->>'n')::int % 3 <> 0 AND (data->>'active')::boolean \
         AND (data->>'score')::numeric > 50 AND strpos(data#>>'{address,city}', 'o') > 0",
    );
    assert!(
        !want.is_empty() && want.len() < 300,
        "a selective condition: {}",
        want.len()
    );
    assert_eq!(got, want);
    // Counters: received = what where_sql let through; every other row was filtered.
    let after_where = psql("SELECT count(*) FROM v_user WHERE (data->>'n')::int % 3 <> 0");
    assert_eq!(st.total_rows_received.to_string(), after_where.trim());
    assert_eq!(st.total_rows_yielded, want.len() as u64);
    assert_eq!(
        st.total_rows_received,
        st.total_rows_yielded + st.total_rows_filtered
    );
    assert_eq!(st.items_buffered, 0);
    // JSON bytes of rejected rows count as received too.
    let bytes =
        psql("SELECT sum(octet_length(data::text)) FROM v_user WHERE (data->>'n')::int % 3 <> 0");
    assert_eq!(st.total_bytes_received.to_string(), bytes.trim());
}

#[test]
fn each_builtin_operator_matches_sql() {
    let cases: &[(&str, JsonOp, Option<&str>, &str)] = &[
        ("/n", JsonOp::Eq, Some("500"), "(data->>'n')::int = 500"),
        ("/n", JsonOp::Eq, Some("5e2"), "(data->>'n')::int = 500"),
        ("/n", JsonOp::Ne, Some("500"), "(data->>'n')::int <> 500"),
        ("/score", JsonOp::Lt, Some("10"), "(data->>'score')::numeric < 10"),
        ("/score", JsonOp::Le, Some("10.0"), "(data->>'score')::numeric <= 10"),
        ("/score", JsonOp::Gt, Some("99.5"), "(data->>'score')::numeric > 99.5"),
        ("/score", JsonOp::Ge, Some("99.5"), "(data->>'score')::numeric >= 99.5"),
        ("/neg", JsonOp::Lt, Some("-990"), "(data->>'neg')::int < -990"),
        ("/float", JsonOp::Eq, Some("250"), "(data->>'float')::numeric = 250"),
        // Strings by code point.
        ("/email", JsonOp::Lt, Some("\"user2\""), "data->>'email' < 'user2' COLLATE \"C\""),
        ("/name", JsonOp::Ge, Some("\"Z\""), "data->>'name' >= 'Z' COLLATE \"C\""),
        ("/address/city", JsonOp::Eq, Some("\"東京\""), "data#>>'{address,city}' = '東京'"),
        ("/active", JsonOp::Eq, Some("true"), "(data->>'active')::boolean"),
        ("/nothing", JsonOp::Eq, Some("null"), "data->'nothing' = 'null'::jsonb"),
        ("/nothing", JsonOp::Exists, None, "data ? 'nothing'"),
        ("/nope", JsonOp::Exists, None, "data ? 'nope'"),
        ("/nope", JsonOp::Ne, Some("1"), "false"),
        ("/matrix/0/1", JsonOp::Eq, Some("11"), "(data#>>'{matrix,0,1}')::int = 11"),
        ("/matrix/2/0/deep/deeper/2", JsonOp::Exists, None, "true"),
        ("/tags", JsonOp::Contains, Some("\"t1\""), "data->'tags' ? 't1'"),
        ("/tags", JsonOp::Contains, Some("\"t\""), "false"),
        ("/name", JsonOp::Contains, Some("\"Ada\""), "strpos(data->>'name', 'Ada') > 0"),
        ("/address", JsonOp::Contains, Some("\"zip\""), "true"),
        ("/address", JsonOp::Eq, Some("{\"zip\": \"00007\", \"city\": \"東京\", \"street\": \"1 Main St\", \"geo\": {\"lng\": -179.5, \"lat\": -88.75}}"), "(data->>'n')::int = 1"),
        // Exact decimals, beyond f64: 'big' is 123456789012345678901234567890.123456789.
        ("/big", JsonOp::Eq, Some("123456789012345678901234567890.123456789"), "true"),
        ("/big", JsonOp::Eq, Some("123456789012345678901234567890.12345679"), "false"),
        ("/big", JsonOp::Lt, Some("123456789012345678901234567890.1234567891"), "true"),
        ("/tiny", JsonOp::Eq, Some("1e-30"), "true"),
        ("/escaped", JsonOp::Contains, Some("\"newline \\n tab\""), "true"),
        ("/unicode", JsonOp::Contains, Some("\"🎉\""), "true"),
        ("", JsonOp::Contains, Some("\"empty_obj\""), "true"),
    ];
    let c = socket_client();
    for (ptr, op, val, sql) in cases {
        let mut q = ordered("v_user");
        q.filter_json(ptr, *op, *val).unwrap();
        let mut s = execute(&c, &q);
        let got: Vec<String> = drain_strings(&mut s)
            .iter()
            .map(|r| field(r, "n"))
            .collect();
        assert_eq!(got, sql_ns(sql), "{ptr} {op:?} {val:?} vs {sql}");
        let st = s.stats();
        assert_eq!(st.total_rows_received, 1000);
        assert_eq!(st.total_rows_filtered, 1000 - got.len() as u64);
    }
}

#[test]
fn builtin_predicate_runs_before_the_channel() {
    // Rejected rows never occupy the channel: with everything rejected, a tiny budget and a
    // consumer that takes nothing, the reader still gets to the end of the result.
    let c = socket_client();
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(16 * 1024, 0.8, 1.0).unwrap();
    q.filter_json("/id", JsonOp::Gt, Some("9990")).unwrap();
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    assert!(
        wait_until(std::time::Duration::from_secs(20), || {
            ctl.stats().total_rows_received == 10_000
        }),
        "the reader went through all rows without the consumer: {:?}",
        ctl.stats()
    );
    let st = ctl.stats();
    assert_eq!(st.total_rows_filtered, 9990);
    assert_eq!(st.items_buffered, 10);
    assert!(st.peak_memory <= 16 * 1024, "{st:?}");
    let rows = drain_strings(&mut s);
    let ids: Vec<String> = rows.iter().map(|r| field(r, "id")).collect();
    assert_eq!(
        ids,
        (9991..=10_000).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    let st = s.stats();
    assert_eq!(st.total_rows_yielded, 10);
    assert_eq!(st.items_buffered, 0);
}

#[test]
fn too_deep_rows_are_rejected_and_the_stream_goes_on() {
    create_once(
        "v_filter_deep",
        "CREATE VIEW v_filter_deep AS SELECT jsonb_build_object('i', i, 'd', \
         CASE WHEN i = 2 THEN (repeat('[', 200) || repeat(']', 200))::jsonb ELSE '[]'::jsonb END) \
         AS data FROM generate_series(1, 3) AS i",
    );
    let c = socket_client();
    let mut q = Query::new("v_filter_deep").unwrap();
    q.filter_json("/d", JsonOp::Eq, Some("[]")).unwrap();
    let mut s = execute(&c, &q);
    let got: Vec<String> = drain_strings(&mut s)
        .iter()
        .map(|r| field(r, "i"))
        .collect();
    assert_eq!(got, ["1", "3"]);
    let st = s.stats();
    assert_eq!((st.total_rows_received, st.total_rows_filtered), (3, 1));
    // Deep nesting elsewhere in a row is only scanned, never a failure.
    let mut q = Query::new("v_filter_deep").unwrap();
    q.filter_json("/i", JsonOp::Ge, Some("2")).unwrap();
    let mut s = execute(&c, &q);
    assert_eq!(drain_strings(&mut s).len(), 2);
}

#[test]
fn null_rows_are_json_null_for_the_predicate() {
    let c = socket_client();
    let mut q = Query::new("v_null").unwrap();
    q.filter_json("", JsonOp::Eq, Some("null")).unwrap();
    let mut s = execute(&c, &q);
    assert_eq!(drain_strings(&mut s), ["null"]);
    let mut q = Query::new("v_null").unwrap();
    q.filter_json("/i", JsonOp::Exists, None).unwrap();
    let mut s = execute(&c, &q);
    assert_eq!(drain_strings(&mut s).len(), 2);
}

// ----- through the C API -------------------------------------------------------------------

unsafe extern "C" fn odd_n(userdata: *mut c_void, json: *const c_char, len: usize) -> bool {
    let calls = &*(userdata as *const std::sync::atomic::AtomicUsize);
    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let row = std::slice::from_raw_parts(json.cast::<u8>(), len);
    assert_eq!(*json.add(len), 0, "rows are NUL-terminated");
    let v: serde_json::Value = serde_json::from_slice(row).unwrap();
    v["n"].as_i64().unwrap() % 2 == 1
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

#[test]
fn c_api_combines_where_sql_c_predicate_and_fw_query_filter_json() {
    let conninfo = cs(&common_conninfo());
    let mut client: *mut fw_client = std::ptr::null_mut();
    assert_eq!(
        fw_client_new(conninfo.as_ptr(), &mut client),
        fw_status::FW_OK
    );
    let mut q: *mut fw_query = std::ptr::null_mut();
    assert_eq!(
        fw_query_new(client, cs("v_user").as_ptr(), &mut q),
        fw_status::FW_OK
    );
    assert_eq!(
        fw_query_where_sql(q, cs("(data->>'n')::int <= 600").as_ptr()),
        fw_status::FW_OK
    );
    assert_eq!(
        fw_query_order_by(q, cs("(data->>'n')::int").as_ptr(), std::ptr::null(), 0),
        fw_status::FW_OK
    );
    let calls = std::sync::atomic::AtomicUsize::new(0);
    assert_eq!(
        fw_query_filter(q, Some(odd_n), &calls as *const _ as *mut c_void),
        fw_status::FW_OK
    );
    let ptr = cs("/tags");
    let val = cs("\"t2\"");
    assert_eq!(
        fw_query_filter_json(
            q,
            ptr.as_ptr(),
            fw_json_op::FW_JSON_CONTAINS as i32,
            val.as_ptr()
        ),
        fw_status::FW_OK
    );
    assert_eq!(
        fw_query_filter_json(
            q,
            cs("/score").as_ptr(),
            fw_json_op::FW_JSON_GE as i32,
            cs("20").as_ptr()
        ),
        fw_status::FW_OK
    );
    // Bad arguments.
    for (p, op, v) in [
        ("tags", 0, Some("1")), // not a pointer
        ("/a~2", 0, Some("1")), // bad escape
        ("/a", 8, Some("1")),   // no such op
        ("/a", -1, Some("1")),
        ("/a", 0, Some("{")),   // not JSON
        ("/a", 2, Some("[1]")), // lt on an array
    ] {
        let v = v.map(cs);
        let st = fw_query_filter_json(
            q,
            cs(p).as_ptr(),
            op,
            v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr()),
        );
        assert_eq!(st, fw_status::FW_E_INVALID_ARGUMENT, "{p} {op}");
    }
    assert_eq!(
        fw_query_filter_json(q, cs("/a").as_ptr(), 0, std::ptr::null()),
        fw_status::FW_E_NULL
    );
    assert_eq!(
        fw_query_filter_json(q, std::ptr::null(), 6, std::ptr::null()),
        fw_status::FW_E_NULL
    );
    assert_eq!(
        fw_query_filter_json(std::ptr::null_mut(), ptr.as_ptr(), 6, std::ptr::null()),
        fw_status::FW_E_NULL
    );
    // EXISTS takes no value.
    assert_eq!(
        fw_query_filter_json(q, cs("/email").as_ptr(), 6, std::ptr::null()),
        fw_status::FW_OK
    );

    let mut s: *mut fw_stream = std::ptr::null_mut();
    assert_eq!(fw_query_execute(q, &mut s), fw_status::FW_OK);
    let mut got = Vec::new();
    let mut row = fw_row {
        data: std::ptr::null(),
        len: 0,
    };
    loop {
        match fw_stream_next(s, &mut row, -1) {
            fw_status::FW_OK => {
                let r = unsafe { std::slice::from_raw_parts(row.data.cast::<u8>(), row.len) };
                got.push(field(std::str::from_utf8(r).unwrap(), "n"));
            }
            fw_status::FW_DONE => break,
            other => panic!("{other:?}"),
        }
    }
    let want = sql_ns(
        "(data->>'n')::int <= 600 AND (data->>'n')::int % 2 = 1 AND data->'tags' ? 't2' \
         AND (data->>'score')::numeric >= 20",
    );
    assert_eq!(got, want);
    let mut st: fw_stats = unsafe { std::mem::zeroed() };
    st.struct_size = std::mem::size_of::<fw_stats>();
    assert_eq!(fw_stream_stats(s, &mut st), fw_status::FW_OK);
    assert_eq!(st.total_rows_received, 600);
    assert_eq!(st.total_rows_yielded, want.len() as u64);
    assert_eq!(st.total_rows_filtered, 600 - want.len() as u64);
    // The C predicate only saw the rows the built-in predicates let into the channel.
    let builtin_pass = psql(
        "SELECT count(*) FROM v_user WHERE (data->>'n')::int <= 600 AND data->'tags' ? 't2' \
         AND (data->>'score')::numeric >= 20",
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed).to_string(),
        builtin_pass.trim()
    );
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(client);
}

fn common_conninfo() -> String {
    pg().socket_conninfo()
}

/// What the shared predicate of `one_query_on_two_threads_calls_its_predicate_concurrently`
/// records: per calling thread, its calls; and a rendezvous at each thread's first call.
#[derive(Default)]
struct SharedPredicate {
    calls: std::sync::Mutex<std::collections::HashMap<std::thread::ThreadId, usize>>,
    arrived: std::sync::Mutex<usize>,
    both: std::sync::Condvar,
    /// Both threads were inside the predicate at the same time.
    met: std::sync::atomic::AtomicBool,
}

unsafe extern "C" fn shared_odd_n(userdata: *mut c_void, json: *const c_char, len: usize) -> bool {
    let p = &*(userdata as *const SharedPredicate);
    let first = {
        let mut calls = p.calls.lock().unwrap();
        let n = calls.entry(std::thread::current().id()).or_insert(0);
        *n += 1;
        *n == 1
    };
    if first {
        // Wait (at most 10 s) inside the predicate until the other thread is inside it too.
        let mut arrived = p.arrived.lock().unwrap();
        *arrived += 1;
        p.both.notify_all();
        let (arrived, _) = p
            .both
            .wait_timeout_while(arrived, std::time::Duration::from_secs(10), |a| *a < 2)
            .unwrap();
        if *arrived >= 2 {
            p.met.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let row = std::slice::from_raw_parts(json.cast::<u8>(), len);
    let v: serde_json::Value = serde_json::from_slice(row).unwrap();
    v["n"].as_i64().unwrap() % 2 == 1
}

/// A raw handle moved to another thread (the C API's handles are thread-safe where the
/// header says so: a query may be executed from any thread).
struct Handle<T>(*mut T);
// SAFETY: see above; the test keeps the handles alive until the threads are joined.
unsafe impl<T> Send for Handle<T> {}

#[test]
fn one_query_on_two_threads_calls_its_predicate_concurrently() {
    // The documented contract (fw_query_filter): every stream executed from a query calls the
    // query's predicate, each on its consumer's thread, so two streams consumed on two
    // threads call it at the same time; the predicate must be thread-safe. Each stream still
    // gets exactly its own rows filtered.
    let conninfo = cs(&common_conninfo());
    let mut client: *mut fw_client = std::ptr::null_mut();
    assert_eq!(
        fw_client_new(conninfo.as_ptr(), &mut client),
        fw_status::FW_OK
    );
    let mut q: *mut fw_query = std::ptr::null_mut();
    assert_eq!(
        fw_query_new(client, cs("v_user").as_ptr(), &mut q),
        fw_status::FW_OK
    );
    let pred = SharedPredicate::default();
    assert_eq!(
        fw_query_filter(q, Some(shared_odd_n), &pred as *const _ as *mut c_void),
        fw_status::FW_OK
    );
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let q = Handle(q);
            std::thread::spawn(move || {
                let q = q;
                let mut s: *mut fw_stream = std::ptr::null_mut();
                assert_eq!(fw_query_execute(q.0, &mut s), fw_status::FW_OK);
                let mut row = fw_row {
                    data: std::ptr::null(),
                    len: 0,
                };
                let mut ns = Vec::new();
                let end = loop {
                    match fw_stream_next(s, &mut row, -1) {
                        fw_status::FW_OK => {
                            // SAFETY: a row from fw_stream_next, valid until the next call.
                            let r = unsafe {
                                std::slice::from_raw_parts(row.data.cast::<u8>(), row.len)
                            };
                            ns.push(field(std::str::from_utf8(r).unwrap(), "n"));
                        }
                        other => break other,
                    }
                };
                let mut st: fw_stats = unsafe { std::mem::zeroed() };
                st.struct_size = std::mem::size_of::<fw_stats>();
                assert_eq!(fw_stream_stats(s, &mut st), fw_status::FW_OK);
                fw_stream_free(s);
                (std::thread::current().id(), end, ns, st.total_rows_received)
            })
        })
        .collect();
    let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(
        pred.met.load(std::sync::atomic::Ordering::SeqCst),
        "the two streams never called the predicate at the same time"
    );
    let want = sql_ns("(data->>'n')::int % 2 = 1");
    let calls = pred.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "called from {} threads", calls.len());
    for (thread, end, mut ns, received) in results {
        assert_eq!(end, fw_status::FW_DONE);
        ns.sort_by_key(|n| n.parse::<i64>().unwrap());
        assert_eq!(ns, want, "each stream gets exactly its own rows");
        // Each consumer thread called the predicate once per row of its own stream.
        assert_eq!(calls[&thread] as u64, received);
    }
    fw_query_free(q);
    fw_client_free(client);
}
