//! For the metrics tests: a strict parser of the Prometheus text exposition format and
//! helpers to read values out of a dump.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_char, CStr};

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name -> `# TYPE`.
    pub types: HashMap<String, String>,
    /// Family name -> `# HELP`.
    pub help: HashMap<String, String>,
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_name(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !is_name_char(c, i == 0))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    assert!(end > 0, "expected a metric name at {s:?}");
    (&s[..end], &s[end..])
}

fn parse_labels(mut s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    assert!(s.starts_with('{'));
    s = &s[1..];
    loop {
        s = s.trim_start();
        if let Some(rest) = s.strip_prefix('}') {
            return (labels, rest.to_string());
        }
        let (name, rest) = parse_name(s);
        let rest = rest
            .strip_prefix("=\"")
            .unwrap_or_else(|| panic!("expected =\" after label {name} in {line:?}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "duplicate label {name} in {line:?}"
        );
        s = &rest[end + 1..];
        s = s.strip_prefix(',').unwrap_or(s);
    }
}

fn parse_value(s: &str, line: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s
            .parse()
            .unwrap_or_else(|_| panic!("bad value {s:?} in {line:?}")),
    }
}

/// Parse `text`; panics on anything that is not valid exposition syntax.
pub fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            assert!(
                e.help.insert(name.to_string(), help.to_string()).is_none(),
                "two HELP lines for {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
                "bad type in {line:?}"
            );
            assert!(
                e.types.insert(name.to_string(), ty.to_string()).is_none(),
                "two TYPE lines for {name}"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (name, rest) = parse_name(line);
        let (labels, rest) = if rest.starts_with('{') {
            parse_labels(rest, line)
        } else {
            (BTreeMap::new(), rest.to_string())
        };
        let mut fields = rest.split_whitespace();
        let value = parse_value(
            fields
                .next()
                .unwrap_or_else(|| panic!("no value in {line:?}")),
            line,
        );
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .unwrap_or_else(|_| panic!("bad timestamp in {line:?}"));
        }
        assert!(fields.next().is_none(), "trailing text in {line:?}");
        e.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    e
}

fn label_map(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Exposition {
    /// The value of the sample with exactly this name and label set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want = label_map(labels);
        let mut found = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want);
        let first = found.next().map(|s| s.value);
        assert!(
            found.next().is_none(),
            "two samples {name}{labels:?} in one dump"
        );
        first
    }

    /// Like [`get`](Self::get), absent counts as 0 (a series not created yet).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// A histogram's `_count` for these labels (0 if absent).
    pub fn count(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(&format!("{family}_count"), labels)
    }

    /// A histogram's `_sum` for these labels (0 if absent).
    pub fn sum(&self, family: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(&format!("{family}_sum"), labels)
    }

    /// A histogram's cumulative bucket `le` for these labels.
    pub fn bucket(&self, family: &str, labels: &[(&str, &str)], le: &str) -> f64 {
        let mut l: Vec<(&str, &str)> = labels.to_vec();
        l.push(("le", le));
        self.get(&format!("{family}_bucket"), &l)
            .unwrap_or_else(|| panic!("no bucket le={le} for {family}{labels:?}"))
    }

    /// Every sample of a family (for histograms: its _bucket/_sum/_count samples).
    pub fn family(&self, family: &str) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == family
                    || s.name
                        .strip_prefix(family)
                        .is_some_and(|r| ["_bucket", "_sum", "_count"].contains(&r))
            })
            .collect()
    }

    /// Check the structure of every histogram family: per label set, cumulative buckets that
    /// end with `+Inf` equal to `_count`, and a `_sum`.
    pub fn check_histograms(&self) {
        for (family, ty) in &self.types {
            if ty != "histogram" {
                continue;
            }
            // Label set (without `le`) -> (le, cumulative count) pairs.
            type Buckets = Vec<(f64, f64)>;
            let mut series: BTreeMap<Vec<(String, String)>, Buckets> = BTreeMap::new();
            for s in self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
            {
                let le = s.labels.get("le").expect("bucket without le");
                let key: Vec<(String, String)> = s
                    .labels
                    .iter()
                    .filter(|(k, _)| *k != "le")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                series
                    .entry(key)
                    .or_default()
                    .push((parse_value(le, le), s.value));
            }
            assert!(!series.is_empty(), "histogram {family} has no buckets");
            for (key, mut buckets) in series {
                buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
                assert!(
                    buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                    "{family}{key:?}: buckets not cumulative"
                );
                let last = buckets.last().unwrap();
                assert!(last.0.is_infinite(), "{family}{key:?}: no +Inf bucket");
                let labels: Vec<(&str, &str)> =
                    key.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let count = self
                    .get(&format!("{family}_count"), &labels)
                    .unwrap_or_else(|| panic!("{family}{key:?}: no _count"));
                assert_eq!(last.1, count, "{family}{key:?}: +Inf bucket != _count");
                assert!(
                    self.get(&format!("{family}_sum"), &labels).is_some(),
                    "{family}{key:?}: no _sum"
                );
            }
        }
    }
}

/// The dump through the C function `fw_metrics_dump`, parsed.
pub fn ffi_dump_text() -> String {
    let mut out: *mut c_char = std::ptr::null_mut();
    let mut len: usize = 0;
    let st = fraiseql_wire::ffi::metrics::fw_metrics_dump(&mut out, &mut len);
    assert_eq!(st, fraiseql_wire::ffi::fw_status::FW_OK);
    assert!(!out.is_null());
    // SAFETY: fw_metrics_dump returned a NUL-terminated string of `len` bytes.
    let text = unsafe { CStr::from_ptr(out) }
        .to_str()
        .expect("the dump is UTF-8")
        .to_string();
    assert_eq!(text.len(), len, "len is the string's length");
    fraiseql_wire::ffi::runtime::fw_string_free(out);
    text
}

/// The dump through the C function, parsed.
pub fn dump() -> Exposition {
    let e = parse(&ffi_dump_text());
    e.check_histograms();
    e
}

/// The dump through the Rust API, parsed.
pub fn render() -> Exposition {
    parse(&fraiseql_wire::metrics::render())
}

// ---------------------------------------------------------------------------------------------
// Scenarios: each runs one feature on its own entity (a view created for it, so that the
// process-global metrics of one entity are moved by that scenario only).
// ---------------------------------------------------------------------------------------------

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use fraiseql_wire::stream::{Next, Stream, StreamStats, Wait};
use fraiseql_wire::{Client, ErrorKind};

use super::client::{query, socket_client, wait_until};
use super::cluster::pg;

/// Tests that count TCP connections or authentications exactly take this lock.
pub static TCP: Mutex<()> = Mutex::new(());

pub fn tcp_lock() -> std::sync::MutexGuard<'static, ()> {
    TCP.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tests that compare metrics as deltas hold this shared; a session that moves many metrics
/// at once holds it alone.
static RECORDING: RwLock<()> = RwLock::new(());

pub fn recording_shared() -> RwLockReadGuard<'static, ()> {
    RECORDING.read().unwrap_or_else(|e| e.into_inner())
}

pub fn recording_alone() -> RwLockWriteGuard<'static, ()> {
    RECORDING.write().unwrap_or_else(|e| e.into_inner())
}

/// `CREATE OR REPLACE VIEW name AS body` in the test database.
pub fn view(name: &str, body: &str) {
    pg().psql(&format!("CREATE OR REPLACE VIEW {name} AS {body}"));
}

/// Read every row: (rows, bytes of JSON text), then the outcome.
pub fn drain_counts(s: &mut Stream) -> (u64, u64, fraiseql_wire::Result<()>) {
    let (mut rows, mut bytes) = (0, 0);
    loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(r)) => {
                rows += 1;
                bytes += r.len() as u64;
            }
            Ok(Next::Done) => return (rows, bytes, Ok(())),
            Ok(other) => panic!("next(Wait::Forever) returned {other:?}"),
            Err(e) => return (rows, bytes, Err(e)),
        }
    }
}

/// `n` successful queries over the 1000 rows of `users`: (rows, bytes) streamed.
pub fn run_successful(entity: &str, n: usize) -> (u64, u64) {
    view(entity, "SELECT data FROM users");
    let c = socket_client();
    let (mut rows, mut bytes) = (0, 0);
    for _ in 0..n {
        let mut s = c.execute(&query(entity)).expect("execute");
        let (r, b, end) = drain_counts(&mut s);
        end.expect("the stream completes");
        rows += r;
        bytes += b;
    }
    (rows, bytes)
}

/// A client-side predicate keeping the 500 active users of 1000.
pub fn run_filtered(entity: &str) -> StreamStats {
    view(entity, "SELECT data FROM users");
    let c = socket_client();
    let mut q = query(entity);
    q.filter(Arc::new(|row: &[u8]| {
        row.windows(14).any(|w| w == b"\"active\": true")
    }));
    let mut s = c.execute(&q).expect("execute");
    let (rows, _, end) = drain_counts(&mut s);
    end.expect("the stream completes");
    assert_eq!(rows, 500);
    s.stats()
}

/// The same predicate read with `next_batch`; returns the stream still open (not freed), with
/// the number of rows it delivered.
pub fn run_filtered_batch(entity: &str) -> (Stream, u64) {
    use fraiseql_wire::stream::Batch;
    view(entity, "SELECT data FROM users");
    let c = socket_client();
    let mut q = query(entity);
    q.filter(Arc::new(|row: &[u8]| {
        row.windows(14).any(|w| w == b"\"active\": true")
    }));
    let mut s = c.execute(&q).expect("execute");
    let mut n = 0;
    loop {
        match s.next_batch(100, Wait::Forever).expect("rows") {
            Batch::Rows(rows) => n += rows.len() as u64,
            Batch::Status(Next::Done) => break,
            Batch::Status(other) => panic!("{other:?}"),
        }
    }
    (s, n)
}

/// Pause with a 300 ms timeout that expires, then pause and resume explicitly (50 ms), on
/// v_slow (20 rows over 2 s). Returns the stream's stats at the end.
pub fn run_pause_timeout(entity: &str) -> StreamStats {
    view(entity, "SELECT data FROM v_slow");
    let c = socket_client();
    let mut s = c.execute(&query(entity)).expect("execute");
    assert!(matches!(s.next(Wait::Forever), Ok(Next::Row(_))));
    let ctl = s.control().clone();
    ctl.set_pause_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    ctl.pause(Some("test")).unwrap();
    ctl.pause(None).unwrap(); // idempotent: not a second pause
    assert!(
        wait_until(Duration::from_secs(10), || s.stats().pause_timeouts == 1),
        "the pause timeout never expired"
    );
    ctl.set_pause_timeout(None).unwrap();
    ctl.pause(None).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    ctl.resume().unwrap();
    ctl.resume().unwrap(); // idempotent
    let (_, _, end) = drain_counts(&mut s);
    end.expect("the stream completes");
    s.stats()
}

/// Execute a 30-second query and cancel it (twice). Returns once the reader has finished.
pub fn run_cancel(entity: &str) {
    view(entity, "SELECT data FROM v_sleep30");
    let c = socket_client();
    let mut s = c.execute(&query(entity)).expect("execute");
    s.control().cancel().unwrap();
    s.control().cancel().unwrap();
    let err = s.next(Wait::Forever).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

/// Free a running stream after its first row (a cancel too).
pub fn run_drop_early(entity: &str) {
    view(entity, "SELECT data FROM v_slow");
    let c = socket_client();
    let mut s = c.execute(&query(entity)).expect("execute");
    assert!(matches!(s.next(Wait::Forever), Ok(Next::Row(_))));
    drop(s);
}

/// v_big (rows over 1 MB) with a 64 KiB hard limit.
pub fn run_memory_limit(entity: &str) {
    view(entity, "SELECT data FROM v_big");
    let c = socket_client();
    let mut q = query(entity);
    q.max_memory(64 * 1024, 0.8, 1.0).unwrap();
    let mut s = c.execute(&q).expect("execute");
    let (_, _, end) = drain_counts(&mut s);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::MemoryLimit);
}

/// A consumer slower than the server, with a budget of 32 KiB: the reader waits for room.
pub fn run_slow_consumer(entity: &str) -> StreamStats {
    view(entity, "SELECT data FROM users");
    let c = socket_client();
    let mut q = query(entity);
    q.max_memory(32 * 1024, 0.8, 1.0).unwrap();
    q.chunk_size(8).unwrap();
    q.adaptive_chunking(false, 1, 1).unwrap();
    let mut s = c.execute(&q).expect("execute");
    let mut n = 0u64;
    loop {
        match s.next(Wait::Forever).expect("rows") {
            Next::Row(_) => {
                n += 1;
                if n <= 40 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n, 1000);
    s.stats()
}

/// Adaptive chunking, 16 rows to start, 1 MiB budget, a consumer that starts late: the
/// channel is full when it starts, so the average occupancy over the first 100 chunks is far
/// above the high mark and the size shrinks 16 -> 8 (then no change for 5 s).
pub fn run_adaptive(entity: &str) -> StreamStats {
    view(entity, "SELECT data FROM v_bench_10k");
    let c = socket_client();
    let mut q = query(entity);
    q.chunk_size(16).unwrap();
    q.adaptive_chunking(true, 1, 1024).unwrap();
    q.max_memory(1024 * 1024, 0.9, 1.0).unwrap();
    // The whole budget may be queued ahead (the default read-ahead is half of it).
    q.read_ahead(1024 * 1024).unwrap();
    let mut s = c.execute(&q).expect("execute");
    assert!(
        wait_until(Duration::from_secs(10), || s.stats().items_buffered >= 1500),
        "the channel never filled"
    );
    let (rows, _, end) = drain_counts(&mut s);
    end.expect("the stream completes");
    assert_eq!(rows, 10000);
    s.stats()
}

use super::fault::msg as be_msg;

/// A fake server that accepts one connection with trust, then answers the query with a
/// RowDescription and a DataRow of two columns (a protocol violation). Returns its port.
pub fn misbehaving_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        s.read_exact(&mut startup).unwrap();
        let mut out = be_msg(b'R', &0i32.to_be_bytes());
        out.extend(be_msg(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]));
        out.extend(be_msg(b'Z', b"I"));
        s.write_all(&out).unwrap();
        // Frontend messages: tag + length; answer each of the extended-protocol sequence.
        loop {
            let mut tag = [0u8; 1];
            if s.read_exact(&mut tag).is_err() {
                return;
            }
            s.read_exact(&mut len).unwrap();
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            s.read_exact(&mut body).unwrap();
            let reply = match tag[0] {
                b'P' => be_msg(b'1', &[]),
                b'B' => be_msg(b'2', &[]),
                b'D' => {
                    let mut d = 1i16.to_be_bytes().to_vec();
                    d.extend_from_slice(b"data\0");
                    d.extend_from_slice(&0i32.to_be_bytes()); // table oid
                    d.extend_from_slice(&0i16.to_be_bytes()); // column
                    d.extend_from_slice(&114i32.to_be_bytes()); // json
                    d.extend_from_slice(&(-1i16).to_be_bytes());
                    d.extend_from_slice(&(-1i32).to_be_bytes());
                    d.extend_from_slice(&0i16.to_be_bytes());
                    be_msg(b'T', &d)
                }
                b'E' => {
                    let mut d = 2i16.to_be_bytes().to_vec();
                    for v in [b"1", b"2"] {
                        d.extend_from_slice(&1i32.to_be_bytes());
                        d.extend_from_slice(v);
                    }
                    be_msg(b'D', &d)
                }
                b'X' => return,
                _ => continue,
            };
            if s.write_all(&reply).is_err() {
                return;
            }
        }
    });
    port
}

/// A query against the misbehaving server: the stream fails with a protocol error.
pub fn run_protocol_error(entity: &str) {
    let port = misbehaving_server();
    let c = Client::connect(&format!(
        "host=127.0.0.1 port={port} user=fake dbname=fake sslmode=disable connect_timeout=5"
    ))
    .expect("connect to the fake server");
    let mut s = c.execute(&query(entity)).expect("execute");
    let (rows, _, end) = drain_counts(&mut s);
    assert_eq!(rows, 0);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::Protocol);
}

/// A wrong SCRAM password over TCP.
pub fn run_wrong_password() {
    let err = Client::connect(&pg().tcp_conninfo("fw_scram", "not-the-password"))
        .err()
        .expect("a wrong password fails");
    assert_eq!(err.kind(), ErrorKind::Auth);
}

/// The built-in JSON predicate `/active == true` on the 1000 users: 500 rows delivered.
pub fn run_json_filter(entity: &str) -> StreamStats {
    view(entity, "SELECT data FROM users");
    let c = socket_client();
    let mut q = query(entity);
    q.filter_json("/active", fraiseql_wire::query::JsonOp::Eq, Some("true"))
        .unwrap();
    let mut s = c.execute(&q).expect("execute");
    let (rows, _, end) = drain_counts(&mut s);
    end.expect("the stream completes");
    assert_eq!(rows, 500);
    s.stats()
}

/// The built-in JSON predicate on two rows, one of which nests too deep to be compared: that
/// row is rejected as a parse failure; the other matches.
pub fn run_json_failure(entity: &str) {
    view(
        entity,
        "SELECT ('{\"a\": ' || repeat('[', 300) || repeat(']', 300) || '}')::json AS data \
         UNION ALL SELECT '{\"a\": [1]}'::json",
    );
    let c = socket_client();
    let mut q = query(entity);
    q.filter_json("/a", fraiseql_wire::query::JsonOp::Contains, Some("1"))
        .unwrap();
    let mut s = c.execute(&q).expect("execute");
    let (rows, _, end) = drain_counts(&mut s);
    end.expect("the stream completes");
    assert_eq!(rows, 1);
}

/// What a JSON-parsing feature reports for one chunk of 12 rows, 2 of them invalid.
pub fn run_deserialization_events(entity: &str) {
    use fraiseql_wire::metrics;
    metrics::rows_deserialized(entity, 10);
    metrics::deserialization_failed(entity, "invalid_json");
    metrics::deserialization_failed(entity, "invalid_json");
    metrics::json_parse_error(entity);
    metrics::json_parse_error(entity);
    metrics::json_parse(entity, Duration::from_micros(300));
    metrics::deserialization_duration(entity, Duration::from_micros(200));
}
