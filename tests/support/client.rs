//! Clients of the stock server and what the tests read back: connecting, draining a stream,
//! psql output, JSON fields of a row, polling, pg_stat_activity, the process's threads.
//! Everything goes through the public Rust API and the throwaway server of [`pg()`].

use std::time::{Duration, Instant};

use fraiseql_wire::stream::Stream;
use fraiseql_wire::{Client, Error, Next, Query, Wait};

use super::cluster::{pg, Pg};

/// Trust over the Unix socket, tagged with `application_name` so that a test can find its own
/// backends in `pg_stat_activity` (tests of one binary run in parallel on one server).
pub fn socket_conninfo_app(app: &str) -> String {
    format!("{} application_name={app}", pg().socket_conninfo())
}

/// A client over the Unix socket (trust).
pub fn socket_client() -> Client {
    Client::connect(&pg().socket_conninfo()).expect("trust connection over the socket")
}

/// A client over the Unix socket tagged with `application_name`.
pub fn socket_client_app(app: &str) -> Client {
    Client::connect(&socket_conninfo_app(app)).expect("trust connection over the socket")
}

pub fn query(source: &str) -> Query {
    Query::new(source).expect("valid source")
}

/// Every remaining row of `stream` (copied out), then the terminal outcome.
pub fn drain(stream: &mut Stream) -> (Vec<Vec<u8>>, Result<(), Error>) {
    let mut rows = Vec::new();
    loop {
        match stream.next(Wait::Forever) {
            Ok(Next::Row(r)) => rows.push(r.to_vec()),
            Ok(Next::Done) => return (rows, Ok(())),
            Ok(other) => panic!("next(Wait::Forever) returned {other:?}"),
            Err(e) => return (rows, Err(e)),
        }
    }
}

/// Every remaining row as a string, each `next` waiting at most `wait`; the first error is
/// returned (a timeout or a pause panics).
pub fn strings_within(s: &mut Stream, wait: Wait) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    loop {
        match s.next(wait)? {
            Next::Row(r) => out.push(String::from_utf8(r.to_vec()).expect("rows are UTF-8")),
            Next::Done => return Ok(out),
            other => panic!("unexpected {other:?} while draining"),
        }
    }
}

/// Every remaining row as a string; panics on an error.
pub fn drain_strings(s: &mut Stream) -> Vec<String> {
    strings_within(s, Wait::Forever).expect("stream row")
}

pub fn execute(c: &Client, q: &Query) -> Stream {
    c.execute(q).expect("execute")
}

/// Execute `q` on `client` and collect every row; panics on any error.
pub fn rows_of(client: &Client, q: &Query) -> Vec<Vec<u8>> {
    let mut s = client.execute(q).expect("execute");
    let (rows, end) = drain(&mut s);
    end.expect("stream ends with Done");
    rows
}

/// Rows as UTF-8 strings.
pub fn as_strings(rows: &[Vec<u8>]) -> Vec<String> {
    rows.iter()
        .map(|r| String::from_utf8(r.clone()).expect("rows are UTF-8"))
        .collect()
}

/// The lines psql prints for `sql` on `pg` (unaligned, tuples only): one per row.
pub fn psql_lines(pg: &Pg, sql: &str) -> Vec<String> {
    pg.lines(sql)
}

/// psql on the stock server; its unaligned output.
pub fn psql(sql: &str) -> String {
    pg().psql(sql)
}

/// A top-level member of a JSON row (a JSON object).
pub fn json_field(row: &[u8], key: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(row).unwrap_or_else(|e| {
        panic!(
            "row is not JSON ({e}): {:.200}",
            String::from_utf8_lossy(row)
        )
    });
    match v.get(key) {
        Some(field) => field.clone(),
        None => panic!("no field {key:?} in {:.200}", String::from_utf8_lossy(row)),
    }
}

/// The integer value of top-level field `key` of a row.
pub fn int_field(row: &[u8], key: &str) -> i64 {
    json_field(row, key).as_i64().unwrap_or_else(|| {
        panic!(
            "field {key:?} is not an integer in {:.200}",
            String::from_utf8_lossy(row)
        )
    })
}

/// A top-level member of a row as text: a string's value, anything else as JSON text.
pub fn field(row: &str, key: &str) -> String {
    match json_field(row.as_bytes(), key) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Poll `f` every 10 ms until it returns true or `timeout` passes (a last check after the
/// deadline); returns whether it did.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Backend pids of the sessions with this application_name (other than psql's own).
pub fn backends_of(pg: &Pg, app: &str) -> Vec<i32> {
    psql_lines(
        pg,
        &format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' \
             AND pid <> pg_backend_pid() ORDER BY pid"
        ),
    )
    .iter()
    .map(|l| l.parse().expect("pid"))
    .collect()
}

/// Backends with this application_name that are currently running a statement containing
/// `fragment`.
pub fn active_queries(pg: &Pg, app: &str, fragment: &str) -> usize {
    psql_lines(
        pg,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
             AND state = 'active' AND query LIKE '%{fragment}%' AND pid <> pg_backend_pid()"
        ),
    )[0]
    .parse()
    .unwrap()
}

/// A TCP port on 127.0.0.1 with nothing listening (bound once by the OS, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

/// Thread ids and names (`comm`) of this process's threads.
pub fn threads() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let entry = entry.unwrap();
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A thread may exit between readdir and read.
        if let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) {
            out.push((tid, comm.trim_end().to_string()));
        }
    }
    out
}

/// Threads named like the runtime's workers.
pub fn runtime_threads() -> Vec<u32> {
    threads()
        .into_iter()
        .filter(|(_, name)| name == fraiseql_wire::runtime::THREAD_NAME)
        .map(|(tid, _)| tid)
        .collect()
}

/// Voluntary plus involuntary context switches of the runtime's worker threads.
pub fn runtime_switches() -> u64 {
    runtime_threads()
        .into_iter()
        .map(|tid| switches_in(&format!("/proc/self/task/{tid}/status")))
        .sum()
}

/// Context switches of the runtime's threads and of the calling thread (the consumer, which
/// reads the socket itself while it keeps up: see `Parked` in src/stream/driver/mod.rs).
pub fn consumer_and_runtime_switches() -> u64 {
    runtime_switches() + switches_in("/proc/thread-self/status")
}

fn switches_in(status: &str) -> u64 {
    std::fs::read_to_string(status)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("ctxt_switches:"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse::<u64>().ok())
        .sum::<u64>()
}

/// The blocked-signal mask of thread `tid` (`SigBlk` in its status file).
pub fn blocked_signals(tid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("SigBlk:"))
        .expect("SigBlk line");
    u64::from_str_radix(line["SigBlk:".len()..].trim(), 16).unwrap()
}

/// Wait up to `within` until `fragment` is running exactly `n` times for `app` in
/// pg_stat_activity.
pub fn active_queries_become(app: &str, fragment: &str, n: usize, within: Duration) -> bool {
    wait_until(within, || active_queries(pg(), app, fragment) == n)
}

/// The wait event of the backend of `app` running a query whose text contains `needle`
/// (empty when not waiting), or None when no such backend is active.
pub fn backend_wait_event(app: &str, needle: &str) -> Option<String> {
    psql_lines(
        pg(),
        &format!(
            "SELECT coalesce(wait_event, '') FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND state = 'active' \
             AND application_name = '{app}' AND query LIKE '%{needle}%'"
        ),
    )
    .into_iter()
    .next()
}

/// Create `name` once per test binary (idempotent across the tests that need it).
pub fn create_once(name: &str, sql: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    psql(&format!(
        "DO $$ BEGIN IF to_regclass('{name}') IS NULL THEN EXECUTE $q${sql}$q$; END IF; END $$"
    ));
}

/// A client of the stock server (Unix socket, trust) and a query on `source`, through the C
/// API; the caller frees them with `fw_query_free` and `fw_client_free`.
pub fn c_client_query(
    source: &str,
) -> (
    *mut fraiseql_wire::ffi::client::fw_client,
    *mut fraiseql_wire::ffi::query::fw_query,
) {
    use fraiseql_wire::ffi::client::fw_client_new;
    use fraiseql_wire::ffi::fw_status::FW_OK;
    use fraiseql_wire::ffi::query::fw_query_new;
    let conninfo = std::ffi::CString::new(pg().socket_conninfo()).unwrap();
    let mut client = std::ptr::null_mut();
    assert_eq!(fw_client_new(conninfo.as_ptr(), &mut client), FW_OK);
    let source = std::ffi::CString::new(source).unwrap();
    let mut q = std::ptr::null_mut();
    assert_eq!(fw_query_new(client, source.as_ptr(), &mut q), FW_OK);
    (client, q)
}
