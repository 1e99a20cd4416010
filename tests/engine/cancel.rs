//! Cancellation: `StreamControl::cancel` from another thread never blocks,
//! stops the server query (it leaves `pg_stat_activity` within 1 s) and the consumer gets
//! `Cancelled`; dropping a running stream cancels too; cancel on a finished stream is a
//! `State` error; cancelling twice is fine.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::{ErrorKind, Next, StreamState, Wait};

/// Execute v_sleep30 and wait until the server is running it for this application_name.
fn start_sleep30(app: &str) -> (fraiseql_wire::Client, fraiseql_wire::Stream) {
    let client = socket_client_app(app);
    let t0 = Instant::now();
    let stream = client
        .execute(&query("v_sleep30"))
        .expect("execute v_sleep30");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "execute must return once the result is described, not when the first row arrives \
         (took {:?})",
        t0.elapsed()
    );
    assert!(
        active_queries_become(app, "v_sleep30", 1, Duration::from_secs(5)),
        "the v_sleep30 query never showed up as active in pg_stat_activity"
    );
    (client, stream)
}

#[test]
fn cancel_from_another_thread_stops_the_server_query() {
    let app = "fw_cancel_thread";
    let (client, mut stream) = start_sleep30(app);
    let control = stream.control().clone();
    let consumer = std::thread::spawn(move || {
        let t = Instant::now();
        let r = stream.next(Wait::Forever).map(|n| format!("{n:?}"));
        (r, t.elapsed(), stream)
    });
    // Let the consumer block in next().
    std::thread::sleep(Duration::from_millis(200));

    let t = Instant::now();
    control.cancel().expect("cancel a running stream");
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(50),
        "cancel must never block, took {took:?}"
    );

    let t = Instant::now();
    assert!(
        active_queries_become(app, "v_sleep30", 0, Duration::from_secs(1)),
        "the query is still active in pg_stat_activity 1 s after cancel"
    );
    assert!(t.elapsed() <= Duration::from_millis(1100));

    let (r, waited, stream) = consumer.join().unwrap();
    let err = r.expect_err("a cancelled stream yields an error, not a row");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(
        waited < Duration::from_secs(5),
        "consumer woke after {waited:?}"
    );
    assert_eq!(stream.control().state(), StreamState::Cancelled);
    assert_eq!(stream.error().map(|e| e.kind()), Some(ErrorKind::Cancelled));
    drop(stream);

    // The client is still usable.
    let mut q = query("v_user");
    q.limit(7).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 7);
}

#[test]
fn dropping_a_running_stream_cancels_the_server_query() {
    let app = "fw_cancel_drop";
    let (client, stream) = start_sleep30(app);
    let t = Instant::now();
    drop(stream);
    assert!(
        t.elapsed() < Duration::from_millis(50),
        "dropping a stream must not block, took {:?}",
        t.elapsed()
    );
    assert!(
        active_queries_become(app, "v_sleep30", 0, Duration::from_secs(1)),
        "the query is still active 1 s after its stream was dropped"
    );
    let mut q = query("v_user");
    q.limit(3).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 3);
}

#[test]
fn cancel_twice_is_ok_and_next_reports_cancelled() {
    let app = "fw_cancel_twice";
    let (_client, mut stream) = start_sleep30(app);
    let control = stream.control().clone();
    control.cancel().expect("first cancel");
    control.cancel().expect("second cancel is a no-op");
    assert_eq!(control.state(), StreamState::Cancelled);
    let t = Instant::now();
    let err = stream.next(Wait::Forever).expect_err("cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    assert!(t.elapsed() < Duration::from_secs(1));
    // Repeated calls keep reporting the same outcome, even non-blocking ones.
    let err = stream.next(Wait::NoWait).expect_err("still cancelled");
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(
        active_queries_become(app, "v_sleep30", 0, Duration::from_secs(1)),
        "the query is still active 1 s after cancel"
    );
    // Pause/resume on a cancelled stream are state errors.
    assert_eq!(
        control.pause(None).unwrap_err().kind(),
        ErrorKind::State,
        "pause after cancel"
    );
    assert_eq!(control.resume().unwrap_err().kind(), ErrorKind::State);
}

#[test]
fn cancel_drops_buffered_rows() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_user")).unwrap();
    // Take one row so that rows are certainly buffered, then cancel.
    assert!(matches!(stream.next(Wait::Forever).unwrap(), Next::Row(_)));
    let control = stream.control().clone();
    match control.cancel() {
        Ok(()) => {
            let err = stream
                .next(Wait::Forever)
                .expect_err("rows after cancel are dropped");
            assert_eq!(err.kind(), ErrorKind::Cancelled);
            assert_eq!(stream.stats().items_buffered, 0);
        }
        // The reader may already have received all 1000 rows: then the stream is completed
        // and cancel is refused, and every row is still delivered.
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::State, "{e}");
            let (rows, end) = drain(&mut stream);
            end.unwrap();
            assert_eq!(rows.len(), 999);
        }
    }
}

#[test]
fn cancel_on_a_completed_stream_is_a_state_error() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_empty")).unwrap();
    assert_eq!(stream.next(Wait::Forever).unwrap(), Next::Done);
    let err = stream
        .control()
        .cancel()
        .expect_err("cannot cancel a completed stream");
    assert_eq!(err.kind(), ErrorKind::State, "{err}");
    assert_eq!(stream.control().state(), StreamState::Completed);
    // Still Done afterwards.
    assert_eq!(stream.next(Wait::Forever).unwrap(), Next::Done);

    let mut q = query("v_user");
    q.limit(5).unwrap();
    let mut stream = client.execute(&q).unwrap();
    let (rows, end) = drain(&mut stream);
    end.unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(
        stream.control().cancel().unwrap_err().kind(),
        ErrorKind::State
    );
}

#[test]
fn cancel_on_a_failed_stream_is_a_state_error() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_div_zero_after")).unwrap();
    let (rows, end) = drain(&mut stream);
    assert_eq!(rows.len(), 50);
    assert_eq!(end.unwrap_err().kind(), ErrorKind::Server);
    assert_eq!(stream.control().state(), StreamState::Failed);
    assert_eq!(
        stream.control().cancel().unwrap_err().kind(),
        ErrorKind::State
    );
}

#[test]
fn dropping_a_stream_blocked_on_backpressure_stops_the_server_query() {
    // 1M documents: the stream's byte budget fills, the reader stops reading, and the server
    // blocks in send (ClientWrite) where a CancelRequest alone cannot interrupt it.
    let app = "fw_cancel_backpressure";
    let client = socket_client_app(app);
    let mut stream = client.execute(&query("v_bench_1m")).unwrap();
    assert!(matches!(stream.next(Wait::Forever).unwrap(), Next::Row(_)));
    assert!(
        wait_until(Duration::from_secs(5), || {
            pg().psql(&format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
                 AND state = 'active' AND wait_event = 'ClientWrite'"
            ))
            .trim()
                == "1"
        }),
        "the server never blocked in send: no backpressure"
    );
    // Far fewer rows than the server has to send were received, within the byte budget.
    let st = stream.stats();
    assert!(st.total_rows_received < 100_000);
    assert!(
        st.estimated_memory <= st.memory_limit,
        "the stream holds {} bytes, over its budget of {}",
        st.estimated_memory,
        st.memory_limit
    );
    drop(stream);
    assert!(
        active_queries_become(app, "v_bench_1m", 0, Duration::from_secs(1)),
        "the query is still active 1 s after its stream was dropped"
    );
    let mut q = query("v_user");
    q.limit(3).unwrap();
    assert_eq!(rows_of(&client, &q).len(), 3);
}
