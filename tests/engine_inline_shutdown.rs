//! `runtime::shutdown` while a query waits on the calling thread (the inline start of
//! `execute`, see tests/engine_inline.rs): the wait is interrupted and `execute` fails with
//! `Shutdown` at once instead of waiting for the server. Process-global, so it has this test
//! binary to itself. The query waits because another session holds a lock on its table (and
//! `execute` waits for its description however long it takes: `describe_wait(None)`).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use fraiseql_wire::{runtime, ErrorKind};
use support::*;

#[test]
fn shutdown_interrupts_an_execute_waiting_on_the_server() {
    let pg = pg();
    pg.psql(
        "CREATE TABLE IF NOT EXISTS t_inline_lock AS SELECT jsonb_build_object('i', 1) AS data",
    );
    let client = socket_client_app("fw_inline_shutdown");
    // The connection is in the pool (connect keeps it): the query starts inline.
    assert_eq!(client.pool().idle_count(), 1);

    // Another session takes the table's lock and keeps it for 20 s.
    let mut locker = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "BEGIN; LOCK TABLE t_inline_lock IN ACCESS EXCLUSIVE MODE; \
             SELECT pg_sleep(20); COMMIT;",
        )
        .env("PGHOST", pg.var("FW_PG_SOCKET_DIR"))
        .env("PGPORT", pg.var("FW_PG_PORT"))
        .env("PGDATABASE", pg.var("FW_PG_DB"))
        .env("PGUSER", "fw_trust")
        .env("PGAPPNAME", "fw_inline_locker")
        .spawn()
        .expect("psql starts");
    assert!(
        wait_until(Duration::from_secs(10), || {
            pg.psql(
                "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 WHERE c.relname = 't_inline_lock' AND l.mode = 'AccessExclusiveLock' \
                 AND l.granted",
            )
            .trim()
                == "1"
        }),
        "the other session never took the lock"
    );

    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let mut q = query("t_inline_lock");
        q.describe_wait(None).unwrap();
        let r = client.execute(&q);
        (r.err(), t.elapsed())
    });
    // The query is waiting for the lock on the server.
    assert!(
        active_queries_become(
            "fw_inline_shutdown",
            "t_inline_lock",
            1,
            Duration::from_secs(5)
        ),
        "the query never reached the server"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !waiter.is_finished(),
        "execute returned while the table was locked"
    );

    let t = Instant::now();
    assert!(runtime::shutdown(Duration::from_secs(5)));
    let (err, waited) = waiter.join().unwrap();
    let err = err.expect("execute fails after shutdown");
    assert_eq!(err.kind(), ErrorKind::Shutdown, "{err}");
    assert!(
        t.elapsed() < Duration::from_secs(5) && waited < Duration::from_secs(15),
        "execute waited {waited:?}, {:?} after the shutdown",
        t.elapsed()
    );

    let _ = locker.kill();
    let _ = locker.wait();
}
