//! Helpers shared by the `stream_*` integration tests (stats, filtering, memory
//! bounds, adaptive chunking, pause/resume, logging).

#![allow(dead_code)]

use std::time::{Duration, Instant};

use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::{Client, Query, Stream};

#[path = "../common/mod.rs"]
pub mod common;

pub fn client() -> Client {
    Client::connect(&common::pg().socket_conninfo()).expect("connect to the test server")
}

pub fn psql(sql: &str) -> String {
    common::pg().psql(sql)
}

/// Lines of a psql result.
pub fn psql_lines(sql: &str) -> Vec<String> {
    psql(sql)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Every remaining row as a string; panics on an error.
pub fn drain(s: &mut Stream) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match s.next(Wait::Forever).expect("stream row") {
            Next::Row(r) => out.push(String::from_utf8(r.to_vec()).unwrap()),
            Next::Done => return out,
            other => panic!("unexpected {other:?} while draining"),
        }
    }
}

/// A top-level member of a row as JSON text (numbers and strings as written).
pub fn field(row: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(row).unwrap();
    match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn execute(c: &Client, q: &Query) -> Stream {
    c.execute(q).expect("execute")
}

/// Poll `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}

/// The wait event of the backend running a query whose text contains `needle` (empty when
/// not waiting), or None when no such backend is active.
pub fn backend_wait_event(needle: &str) -> Option<String> {
    let out = psql(&format!(
        "SELECT coalesce(wait_event, '') FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%{needle}%'"
    ));
    out.lines().next().map(str::to_string)
}

/// Create `name` once per test binary (idempotent across the tests that need it).
pub fn create_once(name: &str, sql: &str) {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    psql(&format!(
        "DO $$ BEGIN IF to_regclass('{name}') IS NULL THEN EXECUTE $q${sql}$q$; END IF; END $$"
    ));
}
