//! Freeing a running stream and leaving the process: the query must not go on running on the
//! server. A child process (this test binary again, running the ignored `child` test) starts
//! a 30-second query through the C API, frees the stream (after `fw_stream_cancel`, in one
//! variant), frees the client, calls `fw_shutdown(1000)` or not, and exits; the parent checks
//! `pg_stat_activity` from outside.

mod support;

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fraiseql_wire::ffi::client::{fw_client_free, fw_client_new};
use fraiseql_wire::ffi::fw_status;
use fraiseql_wire::ffi::query::{
    fw_query_execute, fw_query_free, fw_query_new, fw_query_where_sql,
};
use fraiseql_wire::ffi::runtime::fw_shutdown;
use fraiseql_wire::ffi::stream::{fw_stream_cancel, fw_stream_free};
use support::*;

const READY: &str = "FW_FREE_EXIT_CHILD_RUNNING";

/// The child's part (run by the parent with `--ignored`): everything through the C API.
#[test]
#[ignore = "the child process of a_freed_running_stream_is_cancelled_before_the_process_exits"]
fn child() {
    let conninfo = std::env::var("FW_FREE_EXIT_CONNINFO").expect("run by the parent test");
    let marker = std::env::var("FW_FREE_EXIT_MARKER").unwrap();
    let shutdown = std::env::var("FW_FREE_EXIT_SHUTDOWN").unwrap() == "1";
    let cancel_first = std::env::var("FW_FREE_EXIT_CANCEL").unwrap() == "1";
    let conninfo = CString::new(conninfo).unwrap();
    let source = CString::new("v_sleep30").unwrap();
    let predicate = CString::new(format!("'{marker}' <> ''")).unwrap();
    let mut client = std::ptr::null_mut();
    let mut q = std::ptr::null_mut();
    let mut s = std::ptr::null_mut();
    assert_eq!(
        fw_client_new(conninfo.as_ptr(), &mut client),
        fw_status::FW_OK
    );
    assert_eq!(
        fw_query_new(client, source.as_ptr(), &mut q),
        fw_status::FW_OK
    );
    assert_eq!(fw_query_where_sql(q, predicate.as_ptr()), fw_status::FW_OK);
    assert_eq!(fw_query_execute(q, &mut s), fw_status::FW_OK);
    println!("{READY}");
    std::io::stdout().flush().unwrap();
    // The parent has seen the query running on the server.
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    if cancel_first {
        assert_eq!(fw_stream_cancel(s), fw_status::FW_OK);
    }
    fw_stream_free(s);
    fw_query_free(q);
    fw_client_free(client);
    if shutdown {
        assert_eq!(fw_shutdown(1000), fw_status::FW_OK);
    }
    std::process::exit(0);
}

fn tls_conninfo(app: &str) -> String {
    let p = pg();
    p.tls_conninfo(&format!("application_name={app}"))
}

/// Run the child on `conninfo`; returns once it exited.
fn run_child(conninfo: &str, app: &str, marker: &str, shutdown: bool, cancel_first: bool) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FW_FREE_EXIT_CONNINFO", conninfo)
        .env("FW_FREE_EXIT_MARKER", marker)
        .env("FW_FREE_EXIT_SHUTDOWN", if shutdown { "1" } else { "0" })
        .env("FW_FREE_EXIT_CANCEL", if cancel_first { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the test binary runs again as the child");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert_ne!(
            out.read_line(&mut line).unwrap(),
            0,
            "the child ended before its query ran"
        );
        // libtest prints "test child ... " before the test runs, on the same line.
        if line.trim_end().ends_with(READY) {
            break;
        }
    }
    assert!(
        active_queries_become(app, marker, 1, Duration::from_secs(10)),
        "the child's query never showed up as running"
    );
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the child did not exit within 20 s of the free");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "the child failed: {status}");
}

#[test]
fn a_freed_running_stream_is_cancelled_before_the_process_exits() {
    let mut still_running = Vec::new();
    // (fw_shutdown, fw_stream_cancel before the free)
    for (shutdown, cancel_first) in [(true, false), (false, false), (true, true)] {
        for transport in ["unix", "tcp", "tls"] {
            let variant = u8::from(shutdown) + 2 * u8::from(cancel_first);
            let app = format!("fw_free_exit_{transport}_{variant}");
            let marker = format!("fw-free-exit-{transport}-{variant}");
            let conninfo = match transport {
                "unix" => format!("{} application_name={app}", pg().socket_conninfo()),
                "tcp" => format!(
                    "{} application_name={app}",
                    pg().tcp_conninfo("fw_trust", "unused")
                ),
                _ => tls_conninfo(&app),
            };
            run_child(&conninfo, &app, &marker, shutdown, cancel_first);
            let what = format!(
                "over {transport}, {}freed then exit {} fw_shutdown",
                if cancel_first { "cancelled, " } else { "" },
                if shutdown { "after" } else { "without" }
            );
            if !active_queries_become(&app, &marker, 0, Duration::from_secs(2)) {
                still_running.push(what);
            }
        }
    }
    assert!(
        still_running.is_empty(),
        "the query still runs on the server 2 s after the process exited: {}",
        still_running.join("; ")
    );
}
