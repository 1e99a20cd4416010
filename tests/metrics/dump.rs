//! Points 1-4: after a session that uses every feature, the dump (through the C
//! function `fw_metrics_dump`) has all 37 metrics with their types, HELP texts and real
//! histograms, every one of them moved, and `promtool check metrics` accepts it; the HTTP
//! endpoint serves the same exposition.

// Builds without a feature run only the tests that apply to them.
#![cfg_attr(
    not(all(feature = "metrics", feature = "metrics-http")),
    allow(unused_imports, dead_code)
)]

use std::ffi::CString;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use crate::support::metrics::*;
use fraiseql_wire::ffi::fw_status;
use fraiseql_wire::ffi::metrics::{
    fw_metrics_dump, fw_metrics_port, fw_metrics_serve, fw_metrics_stop,
};
use fraiseql_wire::metrics::{MetricKind, DEFINITIONS};

/// The session runs once per process; the tests below read its dump.
#[cfg(feature = "metrics")]
fn session() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    // The tests of tests/metrics/scenarios.rs compare metrics without an entity label as
    // deltas: none of them runs meanwhile.
    let _alone = recording_alone();
    run_successful("d_ok", 2);
    run_filtered("d_filter");
    run_pause_timeout("d_pause");
    run_cancel("d_cancel");
    run_memory_limit("d_memlimit");
    run_slow_consumer("d_slow");
    run_adaptive("d_adaptive");
    run_wrong_password();
    run_protocol_error("d_protocol");
    run_json_filter("d_json");
    run_json_failure("d_json_failure");
    *done = true;
}

#[cfg(feature = "metrics")]
#[test]
fn all_37_metrics_are_exported_and_moved() {
    session();
    let d = dump();
    for def in DEFINITIONS {
        assert_eq!(
            d.types.get(def.name).map(String::as_str),
            Some(def.kind.as_str()),
            "{}: TYPE line",
            def.name
        );
        assert_eq!(
            d.help.get(def.name).map(String::as_str),
            Some(def.help),
            "{}: HELP line",
            def.name
        );
        let family = d.family(def.name);
        assert!(!family.is_empty(), "{} has no series", def.name);
        for s in &family {
            let mut names: Vec<&str> = s
                .labels
                .keys()
                .map(String::as_str)
                .filter(|k| *k != "le")
                .collect();
            let mut want: Vec<&str> = def.labels.to_vec();
            names.sort_unstable();
            want.sort_unstable();
            assert_eq!(names, want, "{}: labels of {s:?}", def.name);
        }
        // Moved: some series is not zero (for histograms, some _count).
        let moved = match def.kind {
            MetricKind::Histogram => family
                .iter()
                .any(|s| s.name.ends_with("_count") && s.value > 0.0),
            MetricKind::Counter => family.iter().any(|s| s.value > 0.0),
            // Nothing is buffered any more at the end of the session: present is enough.
            MetricKind::Gauge if def.name == "fraiseql_stream_buffered_items" => true,
            MetricKind::Gauge => family.iter().any(|s| s.value > 0.0),
        };
        assert!(moved, "{} never moved during the session", def.name);
        if def.kind == MetricKind::Histogram {
            // Real histograms with the configured buckets, not summaries.
            let les: Vec<f64> = family
                .iter()
                .filter(|s| s.name.ends_with("_bucket"))
                .filter_map(|s| s.labels.get("le"))
                .filter(|le| *le != "+Inf")
                .map(|le| le.parse().unwrap())
                .collect();
            for b in def.buckets {
                assert!(les.contains(b), "{}: no bucket le={b}", def.name);
            }
        }
    }
    // Nothing but the product's metrics.
    for name in d.types.keys() {
        assert!(
            DEFINITIONS.iter().any(|def| def.name == name),
            "unexpected metric {name}"
        );
    }
    assert_eq!(d.types.len(), 37);
}

/// `promtool check metrics` on a real dump. Its linter flags metric names ending in `_ms`
/// ("metric names should not contain abbreviated units"): those names are fixed by the
/// product's metric list, so exactly that finding, for exactly those names, is accepted;
/// a parse error or any other finding fails.
#[cfg(feature = "metrics")]
#[test]
fn promtool_accepts_the_dump() {
    session();
    let text = ffi_dump_text();
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            panic!("promtool is required for this test (`scripts/install-deps prometheus`): {e}")
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(3),
        "promtool could not parse the dump (exit {code:?}):\n{report}"
    );
    let ms_names: Vec<&str> = DEFINITIONS
        .iter()
        .map(|d| d.name)
        .filter(|n| n.ends_with("_ms"))
        .collect();
    assert_eq!(ms_names.len(), 9);
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let accepted = ms_names.iter().any(|n| {
            line.trim() == format!("{n} metric names should not contain abbreviated units")
        });
        assert!(accepted, "promtool finding: {line}\nfull report:\n{report}");
    }
}

#[test]
fn dump_checks_its_arguments() {
    let mut out: *mut std::ffi::c_char = std::ptr::null_mut();
    assert_eq!(
        fw_metrics_dump(std::ptr::null_mut(), std::ptr::null_mut()),
        fw_status::FW_E_NULL
    );
    // `len` is optional.
    assert_eq!(
        fw_metrics_dump(&mut out, std::ptr::null_mut()),
        fw_status::FW_OK
    );
    assert!(!out.is_null());
    fraiseql_wire::ffi::runtime::fw_string_free(out);
}

#[cfg(feature = "metrics-http")]
fn http(port: u16, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("a response head");
    (head.to_string(), body.to_string())
}

#[cfg(all(feature = "metrics", feature = "metrics-http"))]
#[test]
fn http_endpoint_serves_the_dump() {
    session();
    // Serialised with the other endpoint test: one endpoint per process.
    let _g = endpoint_lock();
    let addr = CString::new("127.0.0.1:0").unwrap();
    assert_eq!(fw_metrics_serve(addr.as_ptr()), fw_status::FW_OK);
    let port = fw_metrics_port();
    assert_ne!(port, 0);
    assert_eq!(
        fw_metrics_serve(addr.as_ptr()),
        fw_status::FW_E_STATE,
        "already serving"
    );

    let (head, body) = http(
        port,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(len, body.len());
    let served = parse(&body);
    served.check_histograms();
    for def in DEFINITIONS {
        assert!(
            served.types.contains_key(def.name),
            "{} not served",
            def.name
        );
    }
    assert_eq!(
        served.value("fraiseql_queries_total", &[("entity", "d_ok")]),
        2.0
    );

    let (head, _) = http(port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    let (head, body) = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.is_empty());
    let (head, _) = http(port, "GET / HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (head, _) = http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    assert!(head.contains("Allow: GET, HEAD"), "{head}");

    assert_eq!(fw_metrics_stop(), fw_status::FW_OK);
    assert_eq!(fw_metrics_port(), 0);
    // The library has closed the listening socket when fw_metrics_stop returns. Another test
    // of this binary may be starting a child process at that moment (promtool, PostgreSQL):
    // between its fork and exec the child holds a copy of every descriptor, CLOEXEC ones
    // included, so the socket can outlive our close by that long. Allow it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the port is still open 2 s after fw_metrics_stop returned"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(fw_metrics_stop(), fw_status::FW_OK, "stop is idempotent");
    // And it can serve again.
    assert_eq!(fw_metrics_serve(addr.as_ptr()), fw_status::FW_OK);
    assert_eq!(fw_metrics_stop(), fw_status::FW_OK);
}

#[cfg(feature = "metrics-http")]
fn endpoint_lock() -> std::sync::MutexGuard<'static, ()> {
    static L: Mutex<()> = Mutex::new(());
    L.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(all(feature = "metrics", feature = "metrics-http"))]
#[test]
fn http_endpoint_rejects_bad_addresses() {
    let _g = endpoint_lock();
    assert_eq!(fw_metrics_serve(std::ptr::null()), fw_status::FW_E_NULL);
    let bad = CString::new("not an address").unwrap();
    assert_eq!(
        fw_metrics_serve(bad.as_ptr()),
        fw_status::FW_E_INVALID_ARGUMENT
    );
    // A port that is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = CString::new(taken.local_addr().unwrap().to_string()).unwrap();
    assert_eq!(fw_metrics_serve(addr.as_ptr()), fw_status::FW_E_IO);
    assert_eq!(fw_metrics_port(), 0);
}

/// Built without recording: the dump is valid and empty, and nothing panics.
#[cfg(not(feature = "metrics"))]
#[test]
fn without_the_metrics_feature_the_dump_is_empty() {
    run_successful("d_off", 1);
    let d = dump();
    assert!(d.samples.is_empty(), "{:?}", d.samples.first());
}

/// Built without `metrics-http`: the functions exist and say so.
#[cfg(not(feature = "metrics-http"))]
#[test]
fn without_metrics_http_serve_is_a_state_error() {
    let addr = CString::new("127.0.0.1:0").unwrap();
    assert_eq!(fw_metrics_serve(addr.as_ptr()), fw_status::FW_E_STATE);
    assert_eq!(fw_metrics_port(), 0);
    assert_eq!(fw_metrics_stop(), fw_status::FW_OK);
}
