//! Logging: `fw_set_log_callback` delivers the library's debug messages and warnings
//! on the threads that call into the library (messages from the runtime are queued), never on
//! a runtime thread; with no callback nothing is recorded or printed.

mod support;

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::Mutex;
use std::time::Duration;

use fraiseql_wire::ffi::client::{fw_client, fw_client_free, fw_client_new};
use fraiseql_wire::ffi::fw_status::*;
use fraiseql_wire::ffi::log::{fw_log_level, fw_set_log_callback};
use fraiseql_wire::ffi::query::*;
use fraiseql_wire::ffi::stream::*;
use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::Query;
use support::*;

/// The log sink is global: the tests of this binary take turns.
static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Default)]
struct Seen {
    msgs: Vec<(fw_log_level, String, std::thread::ThreadId, Option<String>)>,
}

unsafe extern "C" fn record(userdata: *mut c_void, level: fw_log_level, msg: *const c_char) {
    let seen = &*(userdata as *const Mutex<Seen>);
    let t = std::thread::current();
    seen.lock().unwrap().msgs.push((
        level,
        CStr::from_ptr(msg).to_string_lossy().into_owned(),
        t.id(),
        t.name().map(str::to_string),
    ));
}

fn open(src: &str) -> (*mut fw_client, *mut fw_query, *mut fw_stream) {
    // The child of `nothing_is_printed` uses its parent's server.
    let conninfo = std::env::var("FW_LOG_CONNINFO").unwrap_or_else(|_| pg().socket_conninfo());
    let conninfo = CString::new(conninfo).unwrap();
    let mut client: *mut fw_client = std::ptr::null_mut();
    assert_eq!(fw_client_new(conninfo.as_ptr(), &mut client), FW_OK);
    let mut q: *mut fw_query = std::ptr::null_mut();
    let src = CString::new(src).unwrap();
    assert_eq!(fw_query_new(client, src.as_ptr(), &mut q), FW_OK);
    let mut s: *mut fw_stream = std::ptr::null_mut();
    assert_eq!(fw_query_execute(q, &mut s), FW_OK);
    (client, q, s)
}

fn close((c, q, s): (*mut fw_client, *mut fw_query, *mut fw_stream)) {
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(c);
}

#[test]
fn callback_runs_on_the_calling_thread_with_debug_messages() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seen: &'static Mutex<Seen> = Box::leak(Box::default());
    let ud = seen as *const Mutex<Seen> as *mut c_void;
    assert_eq!(
        fw_set_log_callback(7, Some(record), ud),
        FW_E_INVALID_ARGUMENT
    );
    assert_eq!(
        fw_set_log_callback(fw_log_level::FW_LOG_DEBUG as i32, Some(record), ud),
        FW_OK
    );
    let h = open("v_slow");
    let s = h.2;
    let reason = CString::new("maintenance-42").unwrap();
    assert_eq!(fw_stream_set_pause_timeout(s, 150), FW_OK);
    assert_eq!(fw_stream_pause_with_reason(s, reason.as_ptr()), FW_OK);
    // The pause message is delivered at the end of that very call, on this thread.
    {
        let m = seen.lock().unwrap();
        assert!(
            m.msgs
                .iter()
                .any(|(l, msg, _, _)| *l == fw_log_level::FW_LOG_DEBUG
                    && msg.contains("maintenance-42")),
            "{:?}",
            m.msgs
        );
    }
    // The timeout expires on a runtime thread: its message waits for our next call.
    std::thread::sleep(Duration::from_millis(500));
    let before = seen.lock().unwrap().msgs.len();
    assert_eq!(
        fw_stream_state_snapshot(s),
        fw_stream_state::FW_STATE_RUNNING
    );
    let m = seen.lock().unwrap();
    assert!(
        m.msgs[before..]
            .iter()
            .any(|(_, msg, _, _)| msg.contains("pause timeout")),
        "queued message delivered on the next call: {:?}",
        m.msgs
    );
    let me = std::thread::current().id();
    for (_, msg, tid, name) in &m.msgs {
        assert_eq!(*tid, me, "{msg} delivered on {name:?}");
        assert_ne!(name.as_deref(), Some(fraiseql_wire::runtime::THREAD_NAME));
    }
    drop(m);
    // Below the minimum level: not delivered.
    assert_eq!(
        fw_set_log_callback(fw_log_level::FW_LOG_WARN as i32, Some(record), ud),
        FW_OK
    );
    let n = seen.lock().unwrap().msgs.len();
    assert_eq!(fw_stream_pause(s), FW_OK);
    assert_eq!(fw_stream_resume(s), FW_OK);
    assert_eq!(
        seen.lock().unwrap().msgs.len(),
        n,
        "debug messages filtered out"
    );
    close(h);
    assert_eq!(fw_set_log_callback(0, None, std::ptr::null_mut()), FW_OK);
}

#[test]
fn another_host_thread_may_receive_queued_messages() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let seen: &'static Mutex<Seen> = Box::leak(Box::default());
    let ud = seen as *const Mutex<Seen> as *mut c_void;
    assert_eq!(fw_set_log_callback(0, Some(record), ud), FW_OK);
    let h = open("v_slow");
    assert_eq!(fw_stream_set_pause_timeout(h.2, 100), FW_OK);
    assert_eq!(fw_stream_pause(h.2), FW_OK);
    std::thread::sleep(Duration::from_millis(400));
    // Any host thread's call delivers: here a thread we start ourselves.
    let t = std::thread::Builder::new()
        .name("host-thread".into())
        .spawn(|| {
            fw_stream_state_snapshot(std::ptr::null());
        })
        .unwrap();
    t.join().unwrap();
    let m = seen.lock().unwrap();
    let timeout_msg = m
        .msgs
        .iter()
        .find(|(_, msg, _, _)| msg.contains("pause timeout"))
        .expect("delivered");
    assert_ne!(
        timeout_msg.3.as_deref(),
        Some(fraiseql_wire::runtime::THREAD_NAME)
    );
    drop(m);
    close(h);
    assert_eq!(fw_set_log_callback(0, None, std::ptr::null_mut()), FW_OK);
}

#[test]
fn without_a_callback_nothing_is_recorded() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(fw_set_log_callback(0, None, std::ptr::null_mut()), FW_OK);
    // Produce debug messages and a warning with no callback installed.
    let h = open("v_bench_10k");
    let reason = CString::new("nobody-listens").unwrap();
    assert_eq!(fw_stream_pause_with_reason(h.2, reason.as_ptr()), FW_OK);
    assert_eq!(fw_stream_resume(h.2), FW_OK);
    close(h);
    assert!(fraiseql_wire::log::drain().is_empty(), "nothing was queued");
    // Installing a callback afterwards delivers none of it.
    let seen: &'static Mutex<Seen> = Box::leak(Box::default());
    let ud = seen as *const Mutex<Seen> as *mut c_void;
    assert_eq!(fw_set_log_callback(0, Some(record), ud), FW_OK);
    fw_stream_state_snapshot(std::ptr::null());
    assert!(seen
        .lock()
        .unwrap()
        .msgs
        .iter()
        .all(|(_, m, _, _)| !m.contains("nobody-listens")),);
    assert_eq!(fw_set_log_callback(0, None, std::ptr::null_mut()), FW_OK);
}

/// Child half of `nothing_is_printed`: streams with pauses and memory warnings, no callback.
#[test]
fn child_streams_without_a_callback() {
    if std::env::var_os("FW_LOG_CHILD").is_none() {
        return;
    }
    let h = open("v_bench_10k");
    let reason = CString::new("child-pause").unwrap();
    assert_eq!(fw_stream_pause_with_reason(h.2, reason.as_ptr()), FW_OK);
    assert_eq!(fw_stream_resume(h.2), FW_OK);
    let mut row = fw_row {
        data: std::ptr::null(),
        len: 0,
    };
    while fw_stream_next(h.2, &mut row, -1) == FW_OK {}
    close(h);
    println!("CHILD-DONE");
}

#[test]
fn nothing_is_printed() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_streams_without_a_callback",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FW_LOG_CHILD", "1")
        .env("FW_LOG_CONNINFO", pg().socket_conninfo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("CHILD-DONE"), "{stdout}");
    for line in stdout.lines().chain(stderr.lines()) {
        let harness = line.is_empty()
            || line.starts_with("running ")
            || line.starts_with("test ")
            || line.starts_with("test result")
            || line.starts_with("CHILD-DONE")
            || line == "ok"
            || line.starts_with("pg-throwaway");
        assert!(harness, "the library printed: {line:?}");
    }
}

// The library's own log queue, read from Rust (the queue is process-wide: any call through
// the C API by a test running beside these would drain it, so they live in this binary and
// take their turn).

#[test]
fn crossing_the_warning_ratio_is_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    fraiseql_wire::log::set_min_level(Some(fraiseql_wire::log::Level::Warn));
    let c = socket_client();
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(128 * 1024, 0.5, 1.0).unwrap();
    let mut s = execute(&c, &q);
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    // The consumer sleeps: the buffer fills past half the budget.
    let ctl = s.control().clone();
    assert!(wait_until(Duration::from_secs(5), || ctl
        .stats()
        .memory_warnings
        >= 1));
    let st = ctl.stats();
    assert!(st.estimated_memory >= 64 * 1024, "{st:?}");
    drain_strings(&mut s);
    let msgs = fraiseql_wire::log::drain();
    assert!(
        msgs.iter()
            .any(|(l, m)| *l == fraiseql_wire::log::Level::Warn
                && m.contains("v_bench_10k")
                && m.contains("warning threshold")),
        "{msgs:?}"
    );
    // A stream that stays low never warns.
    let mut q = Query::new("v_user").unwrap();
    q.max_memory(4096 * 1024, 0.9, 1.0).unwrap();
    let mut s = execute(&c, &q);
    drain_strings(&mut s);
    assert_eq!(s.stats().memory_warnings, 0);
    fraiseql_wire::log::set_min_level(None);
}

#[test]
fn pause_reason_reaches_the_log_at_debug_level() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    use fraiseql_wire::log::{self, Level};
    log::set_min_level(Some(Level::Debug));
    let c = socket_client();
    let mut s = execute(&c, &Query::new("v_user").unwrap());
    let ctl = s.control().clone();
    ctl.pause(Some("reason-7f3a")).unwrap();
    ctl.resume().unwrap();
    drain_strings(&mut s);
    let msgs = log::drain();
    assert!(
        msgs.iter()
            .any(|(l, m)| *l == Level::Debug && m.contains("paused") && m.contains("reason-7f3a")),
        "{msgs:?}"
    );
    assert!(msgs
        .iter()
        .any(|(l, m)| *l == Level::Debug && m.contains("resumed")));
    log::set_min_level(None);
}
