//! The internal runtime: started lazily, exactly `WORKER_THREADS` worker
//! threads named "fraiseql-wire", every signal blocked in them, and the caller's own signal
//! mask untouched. One test function: the laziness check needs a process where nothing has
//! used the library yet.

use std::time::Duration;

mod support;

use fraiseql_wire::runtime::{THREAD_NAME, WORKER_THREADS};
use support::*;

fn this_thread_tid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn runtime_is_lazy_and_has_named_workers_with_signals_blocked() {
    // Start the server first: it is a child process, not a library call.
    let pg = pg();
    assert!(
        runtime_threads().is_empty(),
        "runtime threads exist before the library was used: {:?}",
        threads()
    );
    // Parsing a query or a conninfo needs no runtime either.
    let mut q = query("v_user");
    q.limit(100).unwrap();
    assert!(runtime_threads().is_empty());

    let my_mask_before = blocked_signals(this_thread_tid());
    let client = socket_client();
    // The runtime starts with the first client, not with its first query (a new thread
    // names itself once it runs: allow it a moment).
    assert!(
        wait_until(Duration::from_secs(2), || runtime_threads().len()
            == WORKER_THREADS),
        "no runtime after the first client: {:?}",
        threads()
    );
    let rows = rows_of(&client, &q);
    assert_eq!(rows.len(), 100);
    // A TCP connection too (by IP address: no name lookup, no blocking-pool thread).
    let tcp = fraiseql_wire::Client::connect(&pg.tcp_conninfo("fw_scram", "scram-secret")).unwrap();
    assert_eq!(rows_of(&tcp, &q).len(), 100);

    let workers = runtime_threads();
    assert_eq!(
        workers.len(),
        WORKER_THREADS,
        "threads named {THREAD_NAME:?}: {:?}",
        threads()
    );
    assert_eq!(THREAD_NAME, "fraiseql-wire");

    for tid in &workers {
        let mask = blocked_signals(*tid);
        for sig in (1..=31).chain(34..=64) {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue; // cannot be blocked
            }
            assert!(
                mask & (1u64 << (sig - 1)) != 0,
                "signal {sig} is not blocked in worker {tid} (SigBlk {mask:016x})"
            );
        }
    }
    // The host thread's mask is what it was: the library only masks its own threads.
    assert_eq!(blocked_signals(this_thread_tid()), my_mask_before);

    // Many streams later, still the same threads.
    for _ in 0..5 {
        assert_eq!(rows_of(&client, &q).len(), 100);
    }
    let mut again = runtime_threads();
    let mut before = workers.clone();
    again.sort();
    before.sort();
    assert_eq!(again, before, "the worker threads were replaced");

    // A host name is resolved on the runtime's blocking pool: those threads are the
    // library's too (same name, bounded), and have every signal blocked as well.
    let by_name = fraiseql_wire::Client::connect(&format!(
        "host=localhost port={} dbname={} user=fw_md5 password=md5-secret sslmode=disable",
        pg.port(),
        pg.var("FW_PG_DB")
    ))
    .unwrap();
    assert_eq!(rows_of(&by_name, &q).len(), 100);
    let all = runtime_threads();
    assert!(
        all.len() <= WORKER_THREADS + 4,
        "{} library threads: {:?}",
        all.len(),
        threads()
    );
    for tid in all {
        let mask = blocked_signals(tid);
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGPIPE,
            libc::SIGCHLD,
            libc::SIGUSR1,
        ] {
            assert!(
                mask & (1u64 << (sig - 1)) != 0,
                "signal {sig} reaches thread {tid}"
            );
        }
    }
}
