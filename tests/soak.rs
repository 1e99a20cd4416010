//! Soak: several threads loop over connect / stream / pause / cancel / free against the
//! throwaway PostgreSQL (Unix socket, TCP and TLS) for `FW_SOAK_SECS` seconds (default 60;
//! `make soak` runs 600), while the process's resident memory (`VmRSS` in /proc/self/status)
//! and open file descriptors (/proc/self/fd) are sampled twice a second. After a warm-up (the
//! first quarter), both must stay flat: the highest value of the last half of the samples is
//! at most the highest of the half before plus a tolerance (RSS: 8 MiB or 10 %; descriptors:
//! 8), a leak of one descriptor or a few KiB per iteration over thousands of iterations shows.
//! Every operation's outcome is checked too. See docs/reliability.md.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, ErrorKind, Next, Query, Stream, StreamState, Wait};
use support::*;

const WAIT: Wait = Wait::For(Duration::from_secs(20));

fn conninfo(transport: usize) -> String {
    let p = pg();
    match transport % 3 {
        0 => format!("{} application_name=fw_soak", p.socket_conninfo()),
        1 => format!(
            "{} application_name=fw_soak",
            p.tcp_conninfo("fw_trust", "unused")
        ),
        _ => p.tls_conninfo("application_name=fw_soak"),
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

/// A small xorshift generator: each thread its own sequence of operations.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn next_row(s: &mut Stream, what: &str) -> Vec<u8> {
    match s.next(WAIT) {
        Ok(Next::Row(r)) => r.to_vec(),
        other => panic!("{what}: expected a row, got {other:?}"),
    }
}

/// Drain to the end; the number of rows.
fn count(s: &mut Stream, what: &str) -> usize {
    let mut n = 0;
    loop {
        match s.next(WAIT) {
            Ok(Next::Row(_)) => n += 1,
            Ok(Next::Done) => return n,
            other => panic!("{what}: {other:?} after {n} rows"),
        }
    }
}

/// One operation, picked by `op`, on `client` (a client of the thread's own, over
/// `transport`).
fn operation(op: u64, client: &Client, transport: usize) {
    match op {
        // A new client (connect, start-up, authentication), a small query, drop.
        0 => {
            let c = Client::connect(&conninfo(transport)).expect("connect");
            let mut q = Query::new("v_user").unwrap();
            q.limit(5).unwrap();
            let mut s = c.execute(&q).unwrap();
            assert_eq!(count(&mut s, "new client"), 5);
        }
        // A whole stream.
        1 => {
            let mut s = client.execute(&Query::new("v_user").unwrap()).unwrap();
            assert_eq!(count(&mut s, "v_user"), 1000);
        }
        // Big rows (over 1 MB each), the stream freed after the first.
        2 => {
            let mut s = client.execute(&Query::new("v_big").unwrap()).unwrap();
            assert!(next_row(&mut s, "v_big").len() > 1_000_000);
        }
        // Pause and resume, then cancel: the next call reports the cancel.
        3 => {
            let mut s = client.execute(&Query::new("v_slow").unwrap()).unwrap();
            next_row(&mut s, "v_slow");
            s.control().pause(Some("soak")).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.control().resume().unwrap();
            next_row(&mut s, "v_slow after resume");
            s.control().cancel().unwrap();
            let err = s.next(WAIT).expect_err("cancelled");
            assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
            assert_eq!(s.control().state(), StreamState::Cancelled);
        }
        // Freed while the server is still running the query (a cancel from the free).
        4 => {
            let s = client.execute(&Query::new("v_sleep30").unwrap()).unwrap();
            drop(s);
        }
        // Client-side and built-in predicates.
        5 => {
            let mut q = Query::new("v_user").unwrap();
            q.filter(Arc::new(|row: &[u8]| row.len() % 2 == 0));
            q.filter_json("/n", fraiseql_wire::query::JsonOp::Le, Some("500"))
                .unwrap();
            let mut s = client.execute(&q).unwrap();
            let n = count(&mut s, "filtered");
            let st = s.stats();
            assert!(n > 0 && n <= 500, "{n} rows");
            // Rows the built-in predicate rejects count as received and filtered.
            assert_eq!(st.total_rows_received, 1000);
            assert_eq!(st.total_rows_yielded, n as u64);
        }
        // A server error after rows: the rows, then the error; the connection is reused.
        _ => {
            let mut s = client
                .execute(&Query::new("v_div_zero_after").unwrap())
                .unwrap();
            let mut n = 0;
            let err = loop {
                match s.next(WAIT) {
                    Ok(Next::Row(_)) => n += 1,
                    Ok(other) => panic!("v_div_zero_after: {other:?}"),
                    Err(e) => break e,
                }
            };
            assert_eq!(n, 50);
            assert_eq!(err.sqlstate(), Some("22012"), "{err}");
        }
    }
}

#[test]
fn memory_and_descriptors_stay_flat_under_a_loop_of_streams() {
    let secs: u64 = std::env::var("FW_SOAK_SECS")
        .ok()
        .map(|s| s.parse().expect("FW_SOAK_SECS is a number of seconds"))
        .unwrap_or(60);
    let threads = 4;
    let until = Instant::now() + Duration::from_secs(secs);
    pg();
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64, u64)>::new()));
    let sampler = {
        let (stop, samples) = (stop.clone(), samples.clone());
        let t0 = Instant::now();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                samples
                    .lock()
                    .unwrap()
                    .push((t0.elapsed().as_secs_f64(), rss_kib(), open_fds()));
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let ops = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|i| {
            let ops = ops.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1234_5678_9ABC));
                // Each thread keeps a client per transport.
                let clients: Vec<Client> = (0..3)
                    .map(|t| Client::connect(&conninfo(t)).expect("connect"))
                    .collect();
                while Instant::now() < until {
                    let transport = rng.below(3) as usize;
                    let op = rng.below(7);
                    operation(op, &clients[transport], transport);
                    ops.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let mut panicked = None;
    for w in workers {
        if let Err(e) = w.join() {
            panicked = Some(e);
        }
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    if let Some(e) = panicked {
        std::panic::resume_unwind(e);
    }
    let ops = ops.load(Ordering::Relaxed);
    let samples = samples.lock().unwrap().clone();
    eprintln!("soak: {secs} s, {threads} threads, {ops} operations");
    for (t, rss, fds) in samples.iter().step_by(4) {
        eprintln!("soak: {t:7.1} s  rss {rss:>8} KiB  fds {fds:>4}");
    }
    assert!(
        ops >= 10 * secs.min(60),
        "only {ops} operations in {secs} s"
    );
    let after_warm_up: Vec<_> = samples[samples.len() / 4..].to_vec();
    assert!(after_warm_up.len() >= 8, "too few samples");
    let (first, last) = after_warm_up.split_at(after_warm_up.len() / 2);
    let max = |s: &[(f64, u64, u64)], f: fn(&(f64, u64, u64)) -> u64| s.iter().map(f).max();
    let (rss_before, rss_after) = (max(first, |s| s.1).unwrap(), max(last, |s| s.1).unwrap());
    let (fds_before, fds_after) = (max(first, |s| s.2).unwrap(), max(last, |s| s.2).unwrap());
    let rss_tolerance = (8 * 1024).max(rss_before / 10);
    assert!(
        rss_after <= rss_before + rss_tolerance,
        "RSS grew after the warm-up: {rss_before} KiB, then {rss_after} KiB (tolerance \
         {rss_tolerance} KiB)"
    );
    assert!(
        fds_after <= fds_before + 8,
        "open descriptors grew after the warm-up: {fds_before}, then {fds_after}"
    );
}
