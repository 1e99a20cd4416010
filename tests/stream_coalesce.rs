//! Read coalescing (server-bound CPU): when the server sends a steady flow of small
//! packets that the reader keeps up with, the reader waits a measured time (at most
//! `read_coalesce`, default 1 ms) so that one read takes several packets, instead of waking
//! (and waking the consumer) once per packet. The fake server's `slow<US>` fault paces its
//! answer like PostgreSQL does: 8 KiB pieces with a pause after each.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use fraiseql_wire::{Client, Next, Wait};
use support::fakepg::fakepg_with;
use support::*;

/// The tests count the runtime threads' (and the consumer's) context switches: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// 20,000 documents of ~430 bytes (~8.8 MB) in 8 KiB pieces, 100 us apart.
const PACED: &str = "w_20k_430__slow100";
const PIECES: u64 = 8_800_000 / 8192;

struct Run {
    rows: Vec<Vec<u8>>,
    chunks: u64,
    switches: u64,
}

fn run(client: &Client, coalesce: Duration) -> Run {
    let mut q = query(PACED);
    q.read_coalesce(coalesce).unwrap();
    let before = consumer_and_runtime_switches();
    let mut s = client.execute(&q).unwrap();
    let (rows, end) = drain(&mut s);
    end.expect("the stream ends normally");
    let switches = consumer_and_runtime_switches() - before;
    let chunks = s.stats().chunks_received;
    Run {
        rows,
        chunks,
        switches,
    }
}

#[test]
fn a_paced_server_is_read_in_a_few_large_reads() {
    let _g = serial();
    let f = fakepg_with(&[]);
    let client = Client::connect(&f.conninfo()).unwrap();
    run(&client, Duration::ZERO); // warm up: connection, runtime threads
    let each = run(&client, Duration::ZERO);
    let coalesced = run(&client, Duration::from_millis(1));
    eprintln!(
        "per packet: {} chunks, {} context switches; coalesced: {} chunks, {} switches \
         ({PIECES} pieces)",
        each.chunks, each.switches, coalesced.chunks, coalesced.switches
    );
    assert_eq!(coalesced.rows.len(), 20_000);
    assert!(coalesced.rows == each.rows, "the same rows either way");
    // Without coalescing every piece that finds the reader waiting is a read and a chunk;
    // with it, a read takes ~1 ms of the flow (several pieces).
    assert!(
        coalesced.chunks * 2 < each.chunks.min(PIECES),
        "{} chunks coalesced vs {} per packet ({PIECES} pieces)",
        coalesced.chunks,
        each.chunks
    );
    assert!(
        coalesced.switches * 2 < each.switches,
        "context switches (runtime and consumer): {} coalesced vs {} per packet",
        coalesced.switches,
        each.switches
    );
}

#[test]
fn a_trickle_is_delivered_as_it_comes() {
    let _g = serial();
    // 8 KiB pieces 2 ms apart (4 MB/s, under a packet per millisecond): no wait applies even
    // when up to 100 ms are allowed, so each piece is read when it arrives.
    let f = fakepg_with(&["--fault", "slow2000"]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut q = query("w_400_430");
    q.read_coalesce(Duration::from_millis(100)).unwrap();
    let mut s = client.execute(&q).unwrap();
    let (rows, end) = drain(&mut s);
    end.unwrap();
    assert_eq!(rows.len(), 400);
    let pieces = 400 * 440 / 8192;
    let chunks = s.stats().chunks_received;
    assert!(chunks * 2 >= pieces, "{chunks} chunks for {pieces} pieces");
}

#[test]
fn a_pause_interrupts_a_wait() {
    let _g = serial();
    let f = fakepg_with(&[]);
    let client = Client::connect(&f.conninfo()).unwrap();
    let mut q = query("w_20k_430__slow100");
    // A long wait, so that control events land during one.
    q.read_coalesce(Duration::from_millis(100)).unwrap();
    let mut s = client.execute(&q).unwrap();
    let mut got = 0;
    while got < 2000 {
        match s.next(Wait::Forever).unwrap() {
            Next::Row(_) => got += 1,
            other => panic!("{other:?}"),
        }
    }
    s.control().pause(None).unwrap();
    // Drain what was read before the pause, then nothing more comes.
    loop {
        match s.next(Wait::For(Duration::from_millis(500))).unwrap() {
            Next::Row(_) => got += 1,
            Next::Paused => break,
            other => panic!("{other:?}"),
        }
    }
    let received = s.stats().total_rows_received;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        s.stats().total_rows_received,
        received,
        "no reads while paused"
    );
    s.control().resume().unwrap();
    let (rest, end) = drain(&mut s);
    end.unwrap();
    assert_eq!(got + rest.len(), 20_000);
}
