//! The consumer reads the socket itself (client CPU): a stream started on the
//! caller's thread over a plain socket parks its reader, and a consumer that finds no chunk
//! queued reads and frames the socket on its own thread, as libpq does, instead of a runtime
//! thread reading, handing a chunk over and waking it. A consumer busy with its rows for
//! longer than `TAKE_OVER_AFTER` (20 ms) gets a reader task that reads ahead, and the reader
//! comes back to the consumer when it catches up. The runtime threads' context switches show
//! who reads. A parallel stream's merge reads its parts' sockets itself the same way.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use fraiseql_wire::{Client, Next, ParallelStream, Stream, Wait};
use support::fakepg::fakepg_with;
use support::*;

/// The tests count the runtime threads' context switches: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const ROWS: usize = 200_000;
const SOURCE: &str = "w_200k_430";

/// Count the rows `next_row` pulls (it says whether it got one) and the runtime threads'
/// context switches meanwhile.
fn counting(mut next_row: impl FnMut() -> bool) -> (usize, u64) {
    let before = runtime_switches();
    let mut n = 0;
    while next_row() {
        n += 1;
    }
    (n, runtime_switches() - before)
}

/// Whether `next` returned a row (a JSON object); false at the end.
fn is_row(next: fraiseql_wire::Result<Next<'_>>) -> bool {
    match next.expect("rows") {
        Next::Row(r) => {
            assert_eq!(r.first(), Some(&b'{'));
            true
        }
        Next::Done => false,
        other => panic!("{other:?}"),
    }
}

/// Drain `s`, returning the rows' count and the runtime threads' context switches meanwhile.
fn drain_counting(s: &mut Stream) -> (usize, u64) {
    counting(|| is_row(s.next(Wait::Forever)))
}

#[test]
fn a_consumer_that_keeps_up_reads_the_socket_itself() {
    let _g = serial();
    let f = fakepg_with(&["--pregen", "430"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    // Warm up: the connection, the runtime threads.
    let mut s = client.execute(&query("w_10k_430")).unwrap();
    drain_counting(&mut s);
    drop(s);

    let mut parked = client.execute(&query(SOURCE)).unwrap();
    let (n, parked_switches) = drain_counting(&mut parked);
    assert_eq!(n, ROWS);
    drop(parked);

    // The same stream watched through its event fd: a reader task reads it all.
    let mut task = client.execute(&query(SOURCE)).unwrap();
    task.control().fd().unwrap();
    let (n, task_switches) = drain_counting(&mut task);
    assert_eq!(n, ROWS);
    eprintln!(
        "runtime context switches for {ROWS} rows: {parked_switches} read by the consumer, \
         {task_switches} by a reader task"
    );
    assert!(
        parked_switches * 3 < task_switches,
        "runtime threads switched {parked_switches} times with the consumer reading, \
         {task_switches} with a reader task"
    );
}

#[test]
fn a_busy_consumer_gets_rows_read_ahead_and_the_reader_back_when_it_catches_up() {
    let _g = serial();
    let f = fakepg_with(&["--pregen", "430"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut q = query(SOURCE);
    q.max_memory(4 * 1024 * 1024, 0.9, 1.0).unwrap();
    q.read_ahead(2 * 1024 * 1024).unwrap();
    let mut s = client.execute(&q).unwrap();
    // The consumer is busy elsewhere: what `execute` read (at most 64 KiB) and then a reader
    // task's read-ahead, up to 2 MiB of chunks (~4,500 rows).
    assert!(
        wait_until(Duration::from_secs(5), || s.stats().items_buffered >= 3000),
        "nothing was read ahead while the consumer was away: {} rows buffered",
        s.stats().items_buffered
    );
    // It catches up and keeps up: the reader comes back to it, the runtime threads rest.
    let (n, switches) = drain_counting(&mut s);
    assert_eq!(n, ROWS);
    let mut task = client.execute(&query(SOURCE)).unwrap();
    task.control().fd().unwrap();
    let (n, task_switches) = drain_counting(&mut task);
    assert_eq!(n, ROWS);
    eprintln!(
        "runtime context switches after the read-ahead: {switches}; a reader task throughout: \
         {task_switches}"
    );
    assert!(
        switches * 3 < task_switches,
        "runtime threads switched {switches} times after the consumer caught up, \
         {task_switches} with a reader task throughout"
    );
}

#[test]
fn a_consumer_blocked_on_the_socket_is_woken_by_a_pause_and_by_a_cancel() {
    let _g = serial();
    // Rows 3 s late: the consumer waits in poll(2) on the socket.
    let f = fakepg_with(&[]);
    let client = Client::connect(&f.conninfo()).unwrap();
    for pause in [true, false] {
        let mut s = client.execute(&query("w_10_430__stall3000")).unwrap();
        let ctl = s.control().clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            if pause {
                ctl.pause(None).unwrap();
            } else {
                ctl.cancel().unwrap();
            }
        });
        let t0 = std::time::Instant::now();
        let got = s.next(Wait::Forever).map(|n| format!("{n:?}"));
        let waited = t0.elapsed();
        t.join().unwrap();
        assert!(
            waited < Duration::from_secs(2),
            "woken after {waited:?} (pause: {pause})"
        );
        if pause {
            assert_eq!(got.unwrap(), "Paused");
            // A reader task keeps the pause; after resume the rows come.
            s.control().resume().unwrap();
            let (rows, end) = drain(&mut s);
            end.unwrap();
            assert_eq!(rows.len(), 10);
        } else {
            let err = got.expect_err("cancelled");
            assert_eq!(err.kind(), fraiseql_wire::ErrorKind::Cancelled, "{err}");
        }
    }
}

#[test]
fn a_consumer_waiting_on_a_slow_query_leaves_the_runtime_idle() {
    let _g = serial();
    let f = fakepg_with(&[]);
    let client = Client::connect(&f.conninfo()).unwrap();
    // Rows 1.5 s late: the consumer waits in poll(2); the watchdog that hands a parked reader
    // to a task backs off to ten wake-ups a second (every 20 ms would be ~75 wake-ups, ~150 switches, in 1.5 s).
    let mut s = client.execute(&query("w_10_430__stall1500")).unwrap();
    let before = runtime_switches();
    let (rows, end) = drain(&mut s);
    let switches = runtime_switches() - before;
    end.unwrap();
    assert_eq!(rows.len(), 10);
    eprintln!("runtime context switches while waiting 1.5 s: {switches}");
    assert!(
        switches < 60,
        "the runtime threads switched {switches} times while the consumer waited"
    );
}

#[test]
fn after_a_long_wait_a_busy_consumer_still_gets_rows_read_ahead_at_once() {
    let _g = serial();
    let f = fakepg_with(&["--pregen", "430"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    // Rows 600 ms late: meanwhile the watchdog backs off to a wake-up every 100 ms. When the
    // rows come and the consumer then stays away, a task must still take the reader over
    // within about TAKE_OVER_AFTER (20 ms), not at the watchdog's next wake-up.
    for _ in 0..3 {
        let mut s = client.execute(&query("w_100k_430__stall600")).unwrap();
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => {}
            other => panic!("{other:?}"),
        }
        let first = s.stats().total_rows_received;
        std::thread::sleep(Duration::from_millis(40));
        let later = s.stats().total_rows_received;
        assert!(
            later >= first + 500,
            "{first} rows received with the first row, {later} after the consumer was away \
             40 ms: nothing was read ahead"
        );
        let (rows, end) = drain(&mut s);
        end.unwrap();
        assert_eq!(rows.len() + 1, 100_000);
    }
}

/// A consumer that waits on the stream's event fd (an event loop; a parallel stream's merge
/// waits on its parts' fds) and is faster than the socket is woken once its reader finds the
/// socket empty (or a quarter of the queue full), as one blocked in `next` is, not for every
/// chunk: it takes several chunks per wake-up.
#[test]
fn a_consumer_waiting_on_the_event_fd_takes_several_chunks_per_wake_up() {
    let _g = serial();
    let f = fakepg_with(&["--pregen", "430"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut s = client.execute(&query(SOURCE)).unwrap();
    let fd = s.control().fd().unwrap();
    let (mut n, mut wake_ups) = (0usize, 0u64);
    'stream: loop {
        loop {
            match s.next(Wait::NoWait).expect("rows") {
                Next::Row(_) => n += 1,
                Next::Done => break 'stream,
                Next::WouldBlock => break,
                other => panic!("{other:?}"),
            }
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack, count 1.
        let r = unsafe { libc::poll(&mut p, 1, 10_000) };
        assert_eq!(r, 1, "the event fd did not become readable within 10 s");
        wake_ups += 1;
    }
    assert_eq!(n, ROWS);
    let chunks = s.stats().chunks_received;
    eprintln!("{chunks} chunks, {wake_ups} wake-ups on the event fd");
    assert!(
        wake_ups * 2 < chunks,
        "the consumer was woken {wake_ups} times for {chunks} chunks"
    );
}

/// Drain a parallel stream, returning the rows' count and the runtime threads' context
/// switches meanwhile.
fn drain_parallel_counting(s: &mut ParallelStream) -> (usize, u64) {
    counting(|| is_row(s.next(Wait::Forever)))
}

#[test]
fn a_parallel_merge_that_keeps_up_reads_the_parts_sockets_itself() {
    let _g = serial();
    const PAR_ROWS: usize = 150_000;
    pg().psql(&format!(
        "DROP TABLE IF EXISTS parked_par; \
         CREATE TABLE parked_par AS SELECT i AS id, jsonb_build_object('id', i, 'pad', \
           repeat('z', 300)) AS data FROM generate_series(1, {PAR_ROWS}) i; \
         ANALYZE parked_par;"
    ));
    let client = socket_client();
    let mut q = query("parked_par");
    q.parallel(2).unwrap();
    // Warm up: the connections, the runtime threads.
    let mut s = client.execute_parallel(&q).unwrap();
    assert_eq!(drain_parallel_counting(&mut s).0, PAR_ROWS);
    drop(s);

    let mut merged = client.execute_parallel(&q).unwrap();
    let (n, merge_switches) = drain_parallel_counting(&mut merged);
    assert_eq!(n, PAR_ROWS);
    drop(merged);

    // The same stream watched through its descriptor: every part is read by a reader task.
    let mut tasks = client.execute_parallel(&q).unwrap();
    tasks.control().fd().unwrap();
    let (n, task_switches) = drain_parallel_counting(&mut tasks);
    assert_eq!(n, PAR_ROWS);
    eprintln!(
        "runtime context switches for {PAR_ROWS} rows in 2 parts: {merge_switches} read by \
         the merge, {task_switches} by reader tasks"
    );
    assert!(
        merge_switches * 3 < task_switches,
        "runtime threads switched {merge_switches} times with the merge reading, \
         {task_switches} with reader tasks"
    );
}
