//! `runtime::shutdown`. Process-global, so it has this test binary to
//! itself: it cancels a live stream (its consumer gets `Shutdown` and the server query stops),
//! joins the worker threads, and every later call fails with `Shutdown`.

mod support;

use std::time::{Duration, Instant};

use fraiseql_wire::{runtime, Client, ErrorKind, Wait};
use support::*;

#[test]
fn shutdown_cancels_live_streams_and_refuses_later_calls() {
    let app = "fw_shutdown";
    let client = socket_client_app(app);
    let stream = client.execute(&query("v_sleep30")).unwrap();
    assert!(
        active_queries_become(app, "v_sleep30", 1, Duration::from_secs(5)),
        "v_sleep30 never became active"
    );
    assert_eq!(runtime_threads().len(), runtime::WORKER_THREADS);

    let consumer = std::thread::spawn(move || {
        let mut stream = stream;
        let r = stream.next(Wait::Forever).map(|n| format!("{n:?}"));
        (r, stream)
    });
    std::thread::sleep(Duration::from_millis(200));

    let t = Instant::now();
    assert!(runtime::shutdown(Duration::from_secs(5)), "first shutdown");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );

    let (r, stream) = consumer.join().unwrap();
    let err = r.expect_err("the live stream ends with an error");
    assert_eq!(err.kind(), ErrorKind::Shutdown, "{err}");
    assert!(err.message().contains("shut down"), "{err}");

    // The server query was cancelled, not left running for 30 s.
    assert!(
        active_queries_become(app, "v_sleep30", 0, Duration::from_secs(1)),
        "v_sleep30 still runs after shutdown"
    );
    // The worker threads are gone.
    assert!(
        wait_until(Duration::from_secs(2), || runtime_threads().is_empty()),
        "runtime threads still alive: {:?}",
        threads()
    );

    // Every later call is refused.
    let err = Client::connect(&pg().socket_conninfo())
        .err()
        .expect("after shutdown");
    assert_eq!(err.kind(), ErrorKind::Shutdown, "{err}");
    let err = client
        .execute(&query("v_user"))
        .err()
        .expect("after shutdown");
    assert_eq!(err.kind(), ErrorKind::Shutdown, "{err}");
    assert!(
        !runtime::shutdown(Duration::from_secs(1)),
        "second shutdown is a no-op"
    );
    assert!(
        runtime_threads().is_empty(),
        "a later call restarted the runtime"
    );

    // Tearing down what is left neither hangs nor panics.
    let t = Instant::now();
    drop(stream);
    drop(client);
    assert!(t.elapsed() < Duration::from_secs(1));
}
