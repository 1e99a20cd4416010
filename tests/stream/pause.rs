//! Pause/resume: idempotent, FW_E_STATE on terminal streams, no socket reads while
//! paused (the server blocks in ClientWrite, the connection stays open), buffered rows still
//! consumable, FW_PAUSED instead of blocking, exact continuation, pause timeout, durations,
//! truthful state.

use std::ffi::CString;
use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::ffi::client::fw_client_free;
use fraiseql_wire::ffi::fw_status::{self, *};
use fraiseql_wire::ffi::query::*;
use fraiseql_wire::ffi::stream::*;
use fraiseql_wire::stream::{Next, Wait};
use fraiseql_wire::{ErrorKind, Query, StreamState};

const KIB: usize = 1024;

#[test]
fn paused_stream_reads_nothing_and_resumes_exactly() {
    let c = socket_client_app("fw_pause_exact");
    let mut q = Query::new("v_bench_10k").unwrap();
    q.max_memory(1024 * KIB, 0.9, 1.0).unwrap();
    let mut s = execute(&c, &q);
    let ctl = s.control().clone();
    let mut ids: Vec<String> = Vec::new();
    let take =
        |s: &mut fraiseql_wire::Stream, ids: &mut Vec<String>| match s.next(Wait::Forever).unwrap()
        {
            Next::Row(r) => {
                ids.push(field(std::str::from_utf8(r).unwrap(), "id"));
                true
            }
            Next::Paused => false,
            other => panic!("{other:?}"),
        };
    for _ in 0..100 {
        assert!(take(&mut s, &mut ids));
    }
    ctl.pause(Some("nightly backup")).unwrap();
    assert_eq!(ctl.state(), StreamState::Paused);
    ctl.pause(None).unwrap(); // idempotent
    std::thread::sleep(Duration::from_millis(300));
    let a = ctl.stats();
    std::thread::sleep(Duration::from_millis(700));
    let b = ctl.stats();
    assert_eq!(
        a.total_bytes_received, b.total_bytes_received,
        "no read while paused"
    );
    assert_eq!(a.total_rows_received, b.total_rows_received);
    assert_eq!(b.pause_count, 1);
    assert_eq!(b.state, Some(StreamState::Paused));
    assert!(b.paused_ms_total >= 900, "{b:?}");
    // Invariant while paused.
    assert_eq!(
        b.total_rows_received,
        b.total_rows_yielded + b.total_rows_filtered + b.items_buffered
    );
    // The server is blocked writing to us; the connection is open.
    assert!(
        wait_until(Duration::from_secs(5), || backend_wait_event(
            "fw_pause_exact",
            "v_bench_10k"
        )
        .as_deref()
            == Some("ClientWrite")),
        "{:?}",
        backend_wait_event("fw_pause_exact", "v_bench_10k")
    );
    // Buffered rows can still be consumed, then FW_PAUSED instead of blocking.
    let buffered = b.items_buffered;
    assert!(buffered > 0, "{b:?}");
    let t = Instant::now();
    let mut got = 0;
    while take(&mut s, &mut ids) {
        got += 1;
    }
    assert_eq!(got, buffered);
    assert!(t.elapsed() < Duration::from_secs(2), "did not block");
    assert_eq!(s.next(Wait::Forever).unwrap(), Next::Paused);
    assert_eq!(s.next(Wait::NoWait).unwrap(), Next::Paused);
    let c_ = ctl.stats();
    assert_eq!(c_.items_buffered, 0);
    assert_eq!(c_.total_rows_received, c_.total_rows_yielded);
    // Resume: the rest arrives, nothing lost or repeated.
    ctl.resume().unwrap();
    ctl.resume().unwrap(); // idempotent
    assert_eq!(ctl.state(), StreamState::Running);
    for r in drain_strings(&mut s) {
        ids.push(field(&r, "id"));
    }
    let want = psql_lines(pg(), "SELECT data->>'id' FROM v_bench_10k");
    assert_eq!(ids.len(), 10_000);
    assert_eq!(ids, want);
    let st = s.stats();
    assert_eq!(st.state, Some(StreamState::Completed));
    assert_eq!(st.pause_count, 1);
    assert!(
        st.paused_ms_total >= 1000 && st.paused_ms_total < 5000,
        "{st:?}"
    );
    assert_eq!(st.pause_timeouts, 0);
    assert_eq!(st.items_buffered, 0);
}

#[test]
fn pause_and_resume_on_terminal_streams_are_state_errors() {
    let c = socket_client();
    // Completed.
    let mut s = execute(&c, &Query::new("v_null").unwrap());
    drain_strings(&mut s);
    let ctl = s.control().clone();
    assert_eq!(ctl.state(), StreamState::Completed);
    assert_eq!(ctl.pause(None).unwrap_err().kind(), ErrorKind::State);
    assert_eq!(ctl.resume().unwrap_err().kind(), ErrorKind::State);
    assert_eq!(ctl.state(), StreamState::Completed);
    // Failed.
    let mut s = execute(&c, &Query::new("v_div_zero_after").unwrap());
    let mut n = 0;
    while let Ok(Next::Row(_)) = s.next(Wait::Forever) {
        n += 1;
    }
    assert_eq!(n, 50);
    let ctl = s.control().clone();
    assert_eq!(ctl.state(), StreamState::Failed);
    assert_eq!(ctl.pause(Some("x")).unwrap_err().kind(), ErrorKind::State);
    assert_eq!(ctl.resume().unwrap_err().kind(), ErrorKind::State);
    // Cancelled (while paused).
    let s = execute(&c, &Query::new("v_slow").unwrap());
    let ctl = s.control().clone();
    ctl.pause(None).unwrap();
    ctl.cancel().unwrap();
    assert_eq!(ctl.state(), StreamState::Cancelled);
    assert_eq!(ctl.pause(None).unwrap_err().kind(), ErrorKind::State);
    assert_eq!(ctl.resume().unwrap_err().kind(), ErrorKind::State);
    let st = ctl.stats();
    assert_eq!(st.pause_count, 1);
    drop(s);
}

#[test]
fn pause_timeout_resumes_by_itself_and_durations_add_up() {
    let c = socket_client();
    let mut s = execute(&c, &Query::new("v_slow").unwrap());
    let ctl = s.control().clone();
    assert!(matches!(s.next(Wait::Forever).unwrap(), Next::Row(_)));
    // Two explicit pauses.
    ctl.pause(None).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ctl.resume().unwrap();
    ctl.pause(Some("second")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    ctl.resume().unwrap();
    let st = ctl.stats();
    assert_eq!(st.pause_count, 2);
    assert!(
        (500..900).contains(&st.paused_ms_total),
        "each pause's duration is recorded: {st:?}"
    );
    // A pause with a timeout resumes by itself, even with nobody calling in.
    ctl.set_pause_timeout(Some(Duration::from_millis(250)))
        .unwrap();
    ctl.pause(Some("timed")).unwrap();
    assert_eq!(ctl.state(), StreamState::Paused);
    assert!(wait_until(Duration::from_secs(3), || ctl.state()
        == StreamState::Running));
    let st = ctl.stats();
    assert_eq!(st.pause_count, 3);
    assert_eq!(st.pause_timeouts, 1);
    assert!(
        (750..1400).contains(&st.paused_ms_total),
        "the timed pause lasted its timeout: {st:?}"
    );
    // A timeout set while paused applies to that pause.
    ctl.set_pause_timeout(None).unwrap();
    ctl.pause(None).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    ctl.set_pause_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    assert!(wait_until(Duration::from_secs(3), || ctl.state()
        == StreamState::Running));
    assert_eq!(ctl.stats().pause_timeouts, 2);
    // All 20 rows arrive.
    assert_eq!(drain_strings(&mut s).len(), 19);
    let st = s.stats();
    assert_eq!(st.total_rows_yielded, 20);
    assert_eq!(st.state, Some(StreamState::Completed));
}

#[test]
fn consumer_blocked_in_next_gets_paused_when_the_stream_is_paused() {
    let c = socket_client();
    let mut s = execute(&c, &Query::new("v_sleep30").unwrap());
    let ctl = s.control().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        ctl.pause(Some("from another thread")).unwrap();
    });
    let t0 = Instant::now();
    assert_eq!(s.next(Wait::Forever).unwrap(), Next::Paused);
    assert!(t0.elapsed() < Duration::from_secs(5));
    t.join().unwrap();
    // Freeing a paused stream cancels it.
    let ctl = s.control().clone();
    drop(s);
    assert_eq!(ctl.state(), StreamState::Cancelled);
}

#[test]
fn state_snapshot_is_truthful_through_the_c_api() {
    let (client, q) = c_client_query("v_slow");
    let mut s: *mut fw_stream = std::ptr::null_mut();
    assert_eq!(fw_query_execute(q, &mut s), FW_OK);
    let state = |s| fw_stream_state_snapshot(s);
    assert_eq!(state(s), fw_stream_state::FW_STATE_RUNNING);
    let mut row = fw_row {
        data: std::ptr::null(),
        len: 0,
    };
    assert_eq!(fw_stream_next(s, &mut row, -1), FW_OK);
    let reason = CString::new("c api").unwrap();
    assert_eq!(fw_stream_pause_with_reason(s, reason.as_ptr()), FW_OK);
    assert_eq!(fw_stream_pause(s), FW_OK);
    assert_eq!(state(s), fw_stream_state::FW_STATE_PAUSED);
    // Drain what is buffered, then FW_PAUSED (also with a timeout and from try_next).
    let mut st = fw_status::FW_OK;
    while st == FW_OK {
        st = fw_stream_next(s, &mut row, 1000);
    }
    assert_eq!(st, FW_PAUSED);
    assert_eq!(fw_stream_try_next(s, &mut row), FW_PAUSED);
    assert_eq!(fw_stream_set_pause_timeout(s, 100), FW_OK);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(state(s), fw_stream_state::FW_STATE_RUNNING);
    assert_eq!(fw_stream_resume(s), FW_OK);
    loop {
        match fw_stream_next(s, &mut row, -1) {
            FW_OK => {}
            FW_DONE => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(state(s), fw_stream_state::FW_STATE_COMPLETED);
    assert_eq!(fw_stream_pause(s), FW_E_STATE);
    assert_eq!(fw_stream_resume(s), FW_E_STATE);
    assert_eq!(fw_stream_pause_with_reason(s, reason.as_ptr()), FW_E_STATE);
    let mut stats: fw_stats = unsafe { std::mem::zeroed() };
    stats.struct_size = std::mem::size_of::<fw_stats>();
    assert_eq!(fw_stream_stats(s, &mut stats), FW_OK);
    assert_eq!(stats.state, fw_stream_state::FW_STATE_COMPLETED);
    assert_eq!(stats.total_rows_yielded, 20);
    assert_eq!(stats.pause_count, 1);
    assert_eq!(stats.pause_timeouts, 1);
    assert_eq!(
        fw_stream_state_snapshot(std::ptr::null()),
        fw_stream_state::FW_STATE_INVALID
    );
    assert_eq!(fw_stream_pause(std::ptr::null_mut()), FW_E_NULL);
    fw_stream_free(s);

    // Failed and cancelled.
    let src = CString::new("v_div_zero_after").unwrap();
    let mut q2: *mut fw_query = std::ptr::null_mut();
    assert_eq!(fw_query_new(client, src.as_ptr(), &mut q2), FW_OK);
    assert_eq!(fw_query_execute(q2, &mut s), FW_OK);
    while fw_stream_next(s, &mut row, -1) == FW_OK {}
    assert_eq!(state(s), fw_stream_state::FW_STATE_FAILED);
    assert_eq!(fw_stream_pause(s), FW_E_STATE);
    fw_stream_free(s);
    assert_eq!(fw_query_execute(q, &mut s), FW_OK);
    assert_eq!(fw_stream_cancel(s), FW_OK);
    assert_eq!(state(s), fw_stream_state::FW_STATE_CANCELLED);
    assert_eq!(fw_stream_resume(s), FW_E_STATE);
    fw_stream_free(s);
    fw_query_free(q2);
    fw_query_free(q);
    fw_client_free(client);
}
