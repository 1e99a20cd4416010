//! Parallel partitioned streams against the real server: every row of the serial query
//! arrives exactly once for k = 2, 3, 4 on a table (block ranges) and on a view (partition
//! expression); the ordered merge gives the serial order (with OFFSET/LIMIT); all parts read
//! one snapshot (a writer committing during the stream changes nothing); cancel and an error
//! in one part (division by zero, pg_terminate_backend) end the whole stream; the memory
//! budget covers all parts; a view without a partition expression and ORDER BY keys the
//! merge cannot compare are refused with InvalidArgument; connections return to the pool
//! outside any transaction.

use std::sync::OnceLock;
use std::time::Duration;

use crate::support::*;
use fraiseql_wire::query::partition::{self, Split};
use fraiseql_wire::{Client, ErrorKind, Next, ParallelStream, Query, SortDir, StreamState, Wait};

const ROWS: i64 = 20_000;

/// The fixture: `par_t` (a table with a jsonb `data` and an `id`), `par_v` (a view over it
/// exposing `id`), `par_err` (a view whose row 15000 divides by zero) and `par_json` (a view
/// with a `json` column whose text is kept as written).
fn fixture() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        pg().psql(&format!(
            "DROP TABLE IF EXISTS par_t CASCADE; \
             CREATE TABLE par_t (id int PRIMARY KEY, data jsonb NOT NULL); \
             INSERT INTO par_t SELECT i, jsonb_build_object('id', i, 'name', 'n' || lpad(i::text, 6, '0'), \
               'grp', i % 7, 'score', (i * 7919) % 1000 / 10.0, 'pad', repeat('x', 300)) \
               FROM generate_series(1, {ROWS}) i; \
             CREATE VIEW par_v AS SELECT id, data FROM par_t; \
             CREATE VIEW par_err AS SELECT id, jsonb_build_object('id', id, 'inv', 1 / (id - 15000)) AS data FROM par_t; \
             CREATE VIEW par_json AS SELECT id, ('{{\"id\":' || id || ',  \"b\":1, \"b\":2}}')::json AS data FROM par_t; \
             ANALYZE par_t;"
        ));
    });
}

fn drain_par(s: &mut ParallelStream) -> (Vec<Vec<u8>>, Result<(), fraiseql_wire::Error>) {
    let mut rows = Vec::new();
    loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(r)) => rows.push(r.to_vec()),
            Ok(Next::Done) => return (rows, Ok(())),
            Ok(other) => panic!("next(Forever) returned {other:?}"),
            Err(e) => return (rows, Err(e)),
        }
    }
}

fn parallel_rows(client: &Client, q: &Query) -> Vec<Vec<u8>> {
    let mut s = client.execute_parallel(q).expect("execute_parallel");
    let (rows, end) = drain_par(&mut s);
    end.expect("the parallel stream ends with Done");
    rows
}

/// The rows of parallel query `q`, which must be split as `split`.
fn rows_split_as(client: &Client, q: &Query, split: &Split) -> Vec<Vec<u8>> {
    let mut s = client.execute_parallel(q).expect("execute_parallel");
    assert_eq!(s.split(), split, "k = {}", q.partitions());
    let (rows, end) = drain_par(&mut s);
    end.expect("the parallel stream ends with Done");
    rows
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

#[test]
fn a_table_split_by_block_ranges_gives_every_row_once() {
    fixture();
    let client = socket_client();
    let serial = sorted(rows_of(&client, &query("par_t")));
    assert_eq!(serial.len() as i64, ROWS);
    for k in [2, 3, 4] {
        let mut q = query("par_t");
        q.parallel(k).unwrap();
        let mut s = client.execute_parallel(&q).unwrap();
        let (rows, end) = drain_par(&mut s);
        end.unwrap();
        assert_eq!(rows.len() as i64, ROWS, "k = {k}: row count");
        assert_eq!(
            sorted(rows),
            serial,
            "k = {k}: the same rows as the serial query"
        );
        let st = s.stats();
        assert_eq!(st.state, Some(StreamState::Completed));
        assert_eq!(
            st.total_rows_received as i64, ROWS,
            "k = {k}: stats are the sum"
        );
        assert_eq!(st.total_rows_yielded as i64, ROWS);
        assert_eq!(s.control().partitions(), k as usize);
    }
}

#[test]
fn a_view_split_by_a_partition_expression_gives_every_row_once() {
    fixture();
    let client = socket_client();
    let mut serial_q = query("par_v");
    serial_q.where_sql("id % 3 <> 1").unwrap();
    let serial = sorted(rows_of(&client, &serial_q));
    for k in [2, 3, 4] {
        let mut q = serial_q.clone();
        q.parallel(k).unwrap().partition_by("id").unwrap();
        // `id` is the table's key, which the view exposes: split by value ranges.
        let ranges = Split::Ranges {
            expr: "id".into(),
            bounds: partition::value_bounds(1, ROWS, k),
            nulls: false,
        };
        let rows = rows_split_as(&client, &q, &ranges);
        assert_eq!(rows.len(), serial.len(), "k = {k}");
        assert_eq!(sorted(rows), serial, "k = {k}");
        // An expression no index covers: split by modulo.
        let mut q = serial_q.clone();
        q.parallel(k).unwrap().partition_by("id + 0").unwrap();
        let rows = rows_split_as(&client, &q, &Split::Modulo("id + 0".into()));
        assert_eq!(sorted(rows), serial, "k = {k}: modulo");
    }
    // A json source: the text of each row is kept exactly (spaces, duplicate keys).
    let mut q = query("par_json");
    q.parallel(2).unwrap().partition_by("id").unwrap();
    let rows = parallel_rows(&client, &q);
    assert_eq!(sorted(rows), sorted(rows_of(&client, &query("par_json"))));
}

#[test]
fn value_ranges_give_every_row_once_with_nulls_and_negative_values() {
    pg().psql(
        "DROP TABLE IF EXISTS par_n CASCADE; \
         CREATE TABLE par_n (k int, data jsonb NOT NULL); \
         INSERT INTO par_n SELECT CASE WHEN i % 10 = 0 THEN NULL ELSE i - 2500 END, \
           jsonb_build_object('i', i, 'pad', repeat('y', 200)) FROM generate_series(1, 5000) i; \
         CREATE INDEX ON par_n (k); \
         CREATE VIEW par_nv AS SELECT k, data FROM par_n; \
         ANALYZE par_n;",
    );
    let client = socket_client();
    let serial = sorted(rows_of(&client, &query("par_nv")));
    assert_eq!(serial.len(), 5000);
    for k in [2, 3, 4] {
        let mut q = query("par_nv");
        q.parallel(k).unwrap().partition_by("k").unwrap();
        let ranges = Split::Ranges {
            expr: "k".into(),
            bounds: partition::value_bounds(-2499, 2499, k),
            nulls: true,
        };
        let rows = rows_split_as(&client, &q, &ranges);
        assert_eq!(
            sorted(rows),
            serial,
            "k = {k}: every row once, the NULLs too"
        );
    }
    // Ordered by the expression itself, with OFFSET and LIMIT, across the range bounds.
    let mut serial_q = query("par_nv");
    serial_q
        .order_by("k", None, SortDir::Desc)
        .unwrap()
        .order_by("(data->>'i')::int", None, SortDir::Asc)
        .unwrap()
        .offset(7)
        .unwrap()
        .limit(4000)
        .unwrap();
    let serial = rows_of(&client, &serial_q);
    let mut q = serial_q.clone();
    q.parallel(3).unwrap().partition_by("k").unwrap();
    assert_eq!(parallel_rows(&client, &q), serial);
}

#[test]
fn the_ordered_merge_gives_the_serial_order_with_offset_and_limit() {
    fixture();
    let client = socket_client();
    type Case = Box<dyn Fn(&mut Query)>;
    let cases: Vec<Case> = vec![
        Box::new(|q| {
            q.order_by("(data->>'score')::numeric", None, SortDir::Desc)
                .unwrap()
                .order_by("id", None, SortDir::Asc)
                .unwrap();
        }),
        Box::new(|q| {
            q.order_by("data->>'name'", Some("C"), SortDir::Asc)
                .unwrap()
                .offset(137)
                .unwrap()
                .limit(1000)
                .unwrap();
        }),
        Box::new(|q| {
            q.order_by("(data->>'grp')::int", None, SortDir::Asc)
                .unwrap()
                .order_by("data->>'name'", Some("C"), SortDir::Desc)
                .unwrap()
                .limit(5000)
                .unwrap();
        }),
    ];
    for (n, case) in cases.iter().enumerate() {
        let mut serial_q = query("par_v");
        case(&mut serial_q);
        let serial = rows_of(&client, &serial_q);
        for k in [2, 3, 4] {
            let mut q = serial_q.clone();
            q.parallel(k).unwrap().partition_by("id").unwrap();
            let rows = parallel_rows(&client, &q);
            assert_eq!(rows.len(), serial.len(), "case {n} k = {k}");
            assert!(rows == serial, "case {n} k = {k}: not the serial order");
        }
        // On the table (block ranges) too.
        let mut q = query("par_t");
        case(&mut q);
        q.parallel(3).unwrap();
        assert!(
            parallel_rows(&client, &q) == serial,
            "case {n} on the table: not the serial order"
        );
    }
}

#[test]
fn keys_the_merge_cannot_compare_exactly_are_refused() {
    fixture();
    let client = socket_client();
    let mut q = query("par_v");
    q.parallel(2)
        .unwrap()
        .partition_by("id")
        .unwrap()
        .order_by("data->>'name'", None, SortDir::Asc)
        .unwrap();
    let e = client.execute_parallel(&q).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("COLLATE \"C\""), "{e}");
    let mut q = query("par_v");
    q.parallel(2)
        .unwrap()
        .partition_by("id")
        .unwrap()
        .order_by("data", None, SortDir::Asc)
        .unwrap();
    let e = client.execute_parallel(&q).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("jsonb"), "{e}");
}

#[test]
fn a_view_without_a_partition_expression_is_an_invalid_argument() {
    fixture();
    let client = socket_client();
    let mut q = query("par_v");
    q.parallel(2).unwrap();
    let e = client.execute_parallel(&q).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("is a view"), "{e}");
    assert!(e.message().contains("fw_query_partition_by"), "{e}");
    // The serial API refuses a parallel query rather than run it serially.
    let e = client.execute(&q).err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // The connection used to look at the source is not left inside a transaction: a new
    // row is seen by the next query.
    pg().psql(
        "CREATE TABLE IF NOT EXISTS par_seen (data jsonb); INSERT INTO par_seen VALUES ('1');",
    );
    assert_eq!(rows_of(&client, &query("par_seen")).len(), 1);
}

#[test]
fn all_parts_read_one_snapshot_while_a_writer_commits() {
    fixture();
    pg().psql(
        "DROP TABLE IF EXISTS par_w; CREATE TABLE par_w (id int PRIMARY KEY, data jsonb); \
         INSERT INTO par_w SELECT i, jsonb_build_object('id', i, 'v', 0, 'pad', repeat('y', 400)) \
         FROM generate_series(1, 20000) i;",
    );
    let client = socket_client();
    let before = sorted(rows_of(&client, &query("par_w")));
    let mut q = query("par_w");
    q.parallel(3)
        .unwrap()
        .max_memory(64 * 1024, 0.8, 1.0)
        .unwrap();
    let mut s = client.execute_parallel(&q).unwrap();
    let mut rows = Vec::new();
    for _ in 0..100 {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(r) => rows.push(r.to_vec()),
            other => panic!("{other:?}"),
        }
    }
    // Committed while the parts are reading (the small budget keeps them from finishing):
    // new rows at the end of the table, updates and deletes everywhere.
    pg().psql(
        "INSERT INTO par_w SELECT i, jsonb_build_object('id', i, 'v', 1) FROM generate_series(20001, 25000) i; \
         UPDATE par_w SET data = jsonb_set(data, '{v}', '2') WHERE id % 5 = 0; \
         DELETE FROM par_w WHERE id % 11 = 0;",
    );
    let (rest, end) = drain_par(&mut s);
    end.unwrap();
    rows.extend(rest);
    assert_eq!(rows.len(), before.len());
    assert!(
        sorted(rows) == before,
        "the stream saw the writer's changes"
    );
    // The parts' connections went back to the pool outside their transaction: a serial
    // query sees the writer's rows.
    assert!(client.pool().idle_count() >= 1);
    let after = rows_of(&client, &query("par_w"));
    assert_eq!(after.len(), 25000 - 25000 / 11);
}

#[test]
fn an_error_in_one_part_ends_the_stream_after_the_rows_delivered() {
    fixture();
    let client = socket_client();
    for k in [2, 3] {
        let mut q = query("par_err");
        q.parallel(k).unwrap().partition_by("id").unwrap();
        let mut s = client.execute_parallel(&q).unwrap();
        let (rows, end) = drain_par(&mut s);
        let e = end.expect_err("the division by zero ends the stream");
        assert_eq!(e.kind(), ErrorKind::Server, "{e}");
        assert_eq!(e.sqlstate(), Some("22012"), "{e}");
        assert!(e.message().contains("parallel stream part"), "{e}");
        assert!((rows.len() as i64) < ROWS);
        assert_eq!(s.stats().state, Some(StreamState::Failed));
        assert_eq!(s.error().map(|e| e.kind()), Some(ErrorKind::Server));
        // The end is kept: the next call returns the error again.
        assert!(s.next(Wait::NoWait).is_err());
        // Each row delivered is a real row, once.
        let mut ids: Vec<i64> = rows.iter().map(|r| int_field(r, "id")).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), rows.len());
    }
    // The failed part's connection did not go back to the pool inside its aborted
    // transaction: queries on the client still work.
    assert_eq!(rows_of(&client, &query("par_t")).len() as i64, ROWS);
}

/// `par_t` read in `k` parts by a client tagged `app`, with a budget of `budget` bytes (small,
/// so that the parts are still running when the test acts on them).
fn par_t_in_parts(app: &str, k: u32, budget: usize) -> (Client, ParallelStream) {
    fixture();
    let client = socket_client_app(app);
    let mut q = query("par_t");
    q.parallel(k).unwrap().max_memory(budget, 0.8, 1.0).unwrap();
    let s = client.execute_parallel(&q).expect("execute_parallel");
    (client, s)
}

/// Within 5 s, no query on `source` of the client tagged `app` is active any more.
fn assert_no_query_left(app: &str, source: &str, what: &str) {
    let left = || active_queries(pg(), app, source);
    assert!(wait_until(Duration::from_secs(5), || left() == 0), "{what}");
}

#[test]
fn a_terminated_part_fails_the_stream() {
    let app = "fw_par_terminate";
    let (_client, mut s) = par_t_in_parts(app, 2, 32 * 1024);
    let mut n = 0;
    while n < 10 {
        if let Next::Row(_) = s.next(Wait::Forever).unwrap() {
            n += 1;
        }
    }
    let pids = backends_of(pg(), app);
    assert!(pids.len() >= 2, "both parts have a backend: {pids:?}");
    pg().psql(&format!("SELECT pg_terminate_backend({})", pids[0]));
    let (rows, end) = drain_par(&mut s);
    let e = end.expect_err("the terminated part fails the stream");
    assert!(matches!(e.kind(), ErrorKind::Io | ErrorKind::Server), "{e}");
    assert!((rows.len() as i64 + n) < ROWS, "the stream ended early");
    assert_eq!(s.stats().state, Some(StreamState::Failed));
    // The other part was cancelled: no query of this client stays active.
    assert_no_query_left(app, "par_t", "the other part's query still runs");
}

#[test]
fn cancel_stops_every_part() {
    let app = "fw_par_cancel";
    let (client, mut s) = par_t_in_parts(app, 3, 48 * 1024);
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    let control = s.control().clone();
    std::thread::spawn(move || control.cancel().unwrap())
        .join()
        .unwrap();
    let e = match s.next(Wait::Forever) {
        Err(e) => e,
        Ok(n) => panic!("expected Cancelled, got {n:?}"),
    };
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(s.control().state(), StreamState::Cancelled);
    s.control().cancel().expect("cancelling twice is fine");
    assert_no_query_left(app, "par_t", "a part's query still runs after cancel");
    // Pause and resume on a completed stream are State errors, as for a serial one.
    let mut q = query("par_t");
    q.parallel(2).unwrap().limit(10).unwrap();
    let mut s = client.execute_parallel(&q).unwrap();
    let (rows, end) = drain_par(&mut s);
    end.unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(
        s.control().pause(None).unwrap_err().kind(),
        ErrorKind::State
    );
    assert_eq!(s.control().cancel().unwrap_err().kind(), ErrorKind::State);
}

#[test]
fn a_merge_waiting_on_a_stalled_part_is_woken_by_pause_and_cancel() {
    fixture();
    pg().psql(
        "CREATE OR REPLACE VIEW par_stall AS SELECT id, data FROM par_t \
         WHERE CASE WHEN id = 3000 THEN pg_sleep(30) IS NOT NULL ELSE true END",
    );
    let app = "fw_par_stall";
    let client = socket_client_app(app);
    let mut q = query("par_stall");
    q.parallel(2).unwrap().partition_by("id").unwrap();
    let mut s = client.execute_parallel(&q).unwrap();
    // The rows before the stalled one, and those of the other part, flow: the merge reads
    // the parts itself, then waits on the stalled part's socket.
    let mut n = 0;
    while n < 2000 {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => n += 1,
            other => panic!("{other:?}"),
        }
    }
    let t0 = std::time::Instant::now();
    // A pause from another thread wakes it: `Paused` once the rows read are drained.
    let control = s.control().clone();
    let pauser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        control.pause(Some("stall test")).unwrap();
    });
    loop {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => n += 1,
            Next::Paused => break,
            other => panic!("{other:?}"),
        }
    }
    pauser.join().unwrap();
    s.control().resume().unwrap();
    // So does a cancel.
    let control = s.control().clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        control.cancel().unwrap();
    });
    let e = loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(_)) => n += 1,
            Ok(other) => panic!("{other:?}"),
            Err(e) => break e,
        }
    };
    canceller.join().unwrap();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "the waiting merge was not woken by the pause and the cancel (the stalled part sleeps 30 s)"
    );
    assert!((n as i64) < ROWS, "the stream ended early");
    assert_no_query_left(
        app,
        "par_stall",
        "the stalled part's query still runs after cancel",
    );
}

#[test]
fn pause_holds_every_part_and_the_budget_covers_the_whole_stream() {
    fixture();
    let client = socket_client();
    let budget = 64 * 1024;
    let mut q = query("par_t");
    q.parallel(4).unwrap().max_memory(budget, 0.8, 1.0).unwrap();
    let mut s = client.execute_parallel(&q).unwrap();
    assert_eq!(s.stats().memory_limit, budget as u64);
    let control = s.control().clone();
    control.pause(Some("test")).unwrap();
    assert_eq!(control.state(), StreamState::Paused);
    // Drain what was buffered before the pause, then Paused.
    let mut got = 0u64;
    loop {
        match s.next(Wait::For(Duration::from_secs(10))).unwrap() {
            Next::Row(_) => got += 1,
            Next::Paused => break,
            other => panic!("expected rows then Paused, got {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let received = s.stats().total_rows_received;
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        s.stats().total_rows_received,
        received,
        "no part reads while paused"
    );
    control.resume().unwrap();
    let mut peak = 0;
    loop {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => {
                got += 1;
                if got % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
        peak = peak.max(s.stats().estimated_memory);
    }
    assert_eq!(got as i64, ROWS);
    let st = s.stats();
    assert!(
        st.peak_memory <= budget as u64 && peak <= budget as u64,
        "peak {} / {peak} over the budget {budget}",
        st.peak_memory
    );
}

#[test]
fn parts_never_see_half_of_a_transaction_committed_while_they_start() {
    fixture();
    pg().psql(
        "DROP TABLE IF EXISTS par_pairs CASCADE; CREATE TABLE par_pairs (id int PRIMARY KEY, data jsonb); \
         CREATE VIEW par_pairs_v AS SELECT id, data FROM par_pairs;",
    );
    // A writer commits pairs (2i, 2i + 1) as fast as it can for 3 s: with k = 2 and
    // `id % 2`, each pair has one row in each part, so parts reading different snapshots
    // would see different numbers of even and odd rows.
    let vars = pg().vars.clone();
    let writer = std::thread::spawn(move || {
        let out = std::process::Command::new("psql")
            .args([
                "-X",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "DO $$ DECLARE i int := 0; t timestamptz := clock_timestamp(); BEGIN \
                 WHILE clock_timestamp() < t + interval '3 s' LOOP i := i + 1; \
                 INSERT INTO par_pairs VALUES (2 * i, jsonb_build_object('id', 2 * i)), \
                 (2 * i + 1, jsonb_build_object('id', 2 * i + 1)); COMMIT; END LOOP; END $$;",
            ])
            .env("PGHOST", &vars["FW_PG_SOCKET_DIR"])
            .env("PGPORT", &vars["FW_PG_PORT"])
            .env("PGDATABASE", &vars["FW_PG_DB"])
            .env("PGUSER", "fw_trust")
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let client = socket_client();
    let mut q = query("par_pairs_v");
    q.parallel(2).unwrap().partition_by("id").unwrap();
    let mut runs = 0;
    let mut nonempty = 0;
    while !writer.is_finished() {
        let rows = parallel_rows(&client, &q);
        let even = rows.iter().filter(|r| int_field(r, "id") % 2 == 0).count();
        assert_eq!(
            even * 2,
            rows.len(),
            "run {runs}: the parts read different snapshots"
        );
        runs += 1;
        nonempty += usize::from(!rows.is_empty());
    }
    writer.join().unwrap();
    assert!(nonempty >= 5, "only {nonempty} of {runs} runs saw rows");
}

/// The value of the series `name{entity="<entity>"}` in the metrics exposition (0 if absent).
fn metric(name: &str, entity: &str) -> f64 {
    let prefix = format!("{name}{{entity=\"{entity}\"}} ");
    fraiseql_wire::metrics::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

#[cfg(feature = "metrics")]
#[test]
fn the_metrics_count_one_query_for_all_parts() {
    fixture();
    pg().psql(
        "DROP TABLE IF EXISTS par_m; CREATE TABLE par_m AS SELECT i AS id, \
         jsonb_build_object('id', i) AS data FROM generate_series(1, 3000) i;",
    );
    let client = socket_client();
    let mut q = query("par_m");
    q.parallel(3).unwrap();
    for _ in 0..2 {
        assert_eq!(parallel_rows(&client, &q).len(), 3000);
    }
    assert_eq!(metric("fraiseql_queries_total", "par_m"), 2.0);
    assert_eq!(metric("fraiseql_query_success_total", "par_m"), 2.0);
    assert_eq!(metric("fraiseql_rows_processed_total", "par_m"), 6000.0);
    // A cancelled parallel stream is one cancelled query.
    let mut s = client.execute_parallel(&q).unwrap();
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    s.control().cancel().unwrap();
    assert!(s.next(Wait::Forever).is_err());
    drop(s);
    assert_eq!(metric("fraiseql_queries_total", "par_m"), 3.0);
    assert_eq!(metric("fraiseql_query_cancelled_total", "par_m"), 1.0);
    assert_eq!(metric("fraiseql_query_success_total", "par_m"), 2.0);
}
