//! The streaming engine: rows are byte-exact (what the server sends as
//! text), NUL-terminated, in order; > 1 MB rows are intact; rows are handed over as soon as
//! they are read (never held back to fill a chunk); next / next_batch / try_next (NoWait) /
//! timeouts / for_each / the readiness fd behave as API.md says.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::stream::{Batch, ForEachEnd};
use fraiseql_wire::{ErrorKind, Next, StreamState, Wait};

/// Check the NUL after `row` and copy it out.
fn checked(row: &[u8]) -> Vec<u8> {
    // SAFETY: the library guarantees a NUL byte right after every row's bytes, in memory it
    // owns and keeps valid until the next call on the stream (API.md, "Zero copy").
    let after = unsafe { *row.as_ptr().add(row.len()) };
    assert_eq!(after, 0, "row of {} bytes is not NUL-terminated", row.len());
    row.to_vec()
}

#[test]
fn v_user_rows_are_byte_exact_nul_terminated_and_in_order() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_user")).unwrap();
    let mut rows = Vec::new();
    while let Next::Row(r) = stream.next(Wait::Forever).unwrap() {
        rows.push(checked(r));
    }
    assert_eq!(stream.next(Wait::Forever).unwrap(), Next::Done);
    let got = as_strings(&rows);
    let want = psql_lines(pg(), "SELECT data::text FROM v_user");
    assert_eq!(got.len(), 1000);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {i} differs");
    }
    // The heap order of users is n = 1..1000.
    let ns: Vec<i64> = rows.iter().map(|r| int_field(r, "n")).collect();
    assert_eq!(ns, (1..=1000).collect::<Vec<_>>());
    // Values a careless client would alter: untouched.
    let r = &got[0];
    assert!(
        r.contains("\"big\": 123456789012345678901234567890.123456789"),
        "{r}"
    );
    assert!(
        r.contains("\"tiny\": 0.000000000000000000000000000001"),
        "{r}"
    );
    assert!(
        r.contains(
            r#""escaped": "quote \" backslash \\ slash / newline \n tab \t cr \r ctrl \u0001 end""#
        ),
        "{r}"
    );
    assert!(r.contains("\"unicode\": \"Zoë 東京 🎉 ñ € 𝄞\""), "{r}");

    let st = stream.stats();
    assert_eq!(st.state, Some(StreamState::Completed));
    assert_eq!(st.total_rows_received, 1000);
    assert_eq!(st.total_rows_yielded, 1000);
    assert_eq!(st.items_buffered, 0);
    assert_eq!(
        st.total_bytes_received,
        rows.iter().map(|r| r.len() as u64).sum::<u64>()
    );
}

#[test]
fn rows_over_one_megabyte_are_intact() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_big")).unwrap();
    let mut rows = Vec::new();
    while let Next::Row(r) = stream.next(Wait::Forever).unwrap() {
        rows.push(checked(r));
    }
    let want = psql_lines(pg(), "SELECT data::text FROM v_big");
    assert_eq!(rows.len(), 5);
    for (i, (g, w)) in rows.iter().zip(&want).enumerate() {
        assert!(g.len() > 1 << 20, "row {i} is only {} bytes", g.len());
        assert!(
            g.as_slice() == w.as_bytes(),
            "row {i} differs ({} vs {} bytes)",
            g.len(),
            w.len()
        );
        assert_eq!(int_field(g, "i"), i as i64 + 1);
    }
}

#[test]
fn empty_view_is_done_immediately() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_empty")).unwrap();
    let t = Instant::now();
    assert_eq!(stream.next(Wait::Forever).unwrap(), Next::Done);
    assert!(t.elapsed() < Duration::from_secs(1));
    // Done is sticky.
    assert_eq!(stream.next(Wait::NoWait).unwrap(), Next::Done);
    assert_eq!(stream.stats().total_rows_received, 0);
    assert_eq!(stream.control().state(), StreamState::Completed);
}

#[test]
fn slow_rows_arrive_as_they_are_produced() {
    let client = socket_client();
    let t0 = Instant::now();
    let mut stream = client.execute(&query("v_slow")).unwrap();
    let mut arrivals = Vec::new();
    let mut is = Vec::new();
    while let Next::Row(r) = stream.next(Wait::Forever).unwrap() {
        arrivals.push(t0.elapsed());
        is.push(int_field(r, "i"));
    }
    assert_eq!(is, (1..=20).collect::<Vec<_>>());
    let (first, last) = (arrivals[0], arrivals[19]);
    assert!(
        first < Duration::from_millis(600),
        "first row after {first:?}: rows are held back"
    );
    assert!(
        last >= Duration::from_millis(1800),
        "last row after {last:?}"
    );
    // Rows trickle in: the 10th row arrived well before the last.
    assert!(
        arrivals[9] + Duration::from_millis(500) < last,
        "{arrivals:?}"
    );
}

#[test]
fn next_batch_respects_cap_and_order() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_user")).unwrap();
    let mut ns = Vec::new();
    let mut batches = 0;
    loop {
        match stream.next_batch(64, Wait::Forever).unwrap() {
            Batch::Rows(rows) => {
                assert!(!rows.is_empty() && rows.len() <= 64, "{} rows", rows.len());
                batches += 1;
                // Every row of the batch stays valid together, NUL-terminated.
                for r in &rows {
                    ns.push(int_field(&checked(r), "n"));
                }
            }
            Batch::Status(Next::Done) => break,
            Batch::Status(s) => panic!("{s:?}"),
        }
    }
    assert_eq!(ns, (1..=1000).collect::<Vec<_>>());
    assert!(
        batches >= 1000_usize.div_ceil(64),
        "{batches} batches of at most 64 rows"
    );
    assert_eq!(
        stream.next_batch(0, Wait::NoWait).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn next_batch_returns_what_is_ready_without_waiting_for_cap() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_slow")).unwrap();
    let t0 = Instant::now();
    let mut total = 0;
    let mut first_len = None;
    loop {
        match stream.next_batch(100, Wait::Forever).unwrap() {
            Batch::Rows(rows) => {
                assert!(!rows.is_empty());
                for r in &rows {
                    total += 1;
                    assert_eq!(int_field(r, "i"), total);
                }
                if first_len.is_none() {
                    first_len = Some((rows.len(), t0.elapsed()));
                }
            }
            Batch::Status(Next::Done) => break,
            Batch::Status(s) => panic!("{s:?}"),
        }
    }
    assert_eq!(total, 20);
    let (n, at) = first_len.unwrap();
    assert!(
        n < 20 && at < Duration::from_millis(600),
        "first batch: {n} rows after {at:?}"
    );
}

#[test]
fn try_next_would_block_before_a_row_arrives() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_slow")).unwrap();
    // The first row is produced ~0.1 s after the query starts.
    assert_eq!(stream.next(Wait::NoWait).unwrap(), Next::WouldBlock);
    let mut got = Vec::new();
    let mut would_block = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match stream.next(Wait::NoWait).unwrap() {
            Next::Row(r) => got.push(int_field(r, "i")),
            Next::WouldBlock => {
                would_block += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "stream did not finish");
    }
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
    assert!(
        would_block > 20,
        "only {would_block} WouldBlock while polling a slow stream"
    );
}

#[test]
fn next_with_timeout_returns_timeout_then_continues() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_slow")).unwrap();
    let t = Instant::now();
    assert_eq!(
        stream.next(Wait::For(Duration::from_millis(20))).unwrap(),
        Next::Timeout
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(20) && waited < Duration::from_millis(500),
        "timeout of 20 ms took {waited:?}"
    );
    assert_eq!(stream.control().state(), StreamState::Running);
    let mut got = Vec::new();
    loop {
        match stream.next(Wait::For(Duration::from_secs(5))).unwrap() {
            Next::Row(r) => got.push(int_field(r, "i")),
            Next::Done => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
}

#[test]
fn for_each_stops_when_asked_and_the_stream_goes_on() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_user")).unwrap();
    let mut seen = Vec::new();
    let end = stream
        .for_each(|r| {
            seen.push(int_field(r, "n"));
            seen.len() < 10
        })
        .unwrap();
    assert_eq!(end, ForEachEnd::Stopped);
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    // The row after the one that stopped comes next.
    match stream.next(Wait::Forever).unwrap() {
        Next::Row(r) => assert_eq!(int_field(r, "n"), 11),
        other => panic!("{other:?}"),
    }
    let mut rest = 0;
    assert_eq!(
        stream
            .for_each(|_| {
                rest += 1;
                true
            })
            .unwrap(),
        ForEachEnd::Done
    );
    assert_eq!(rest, 989);
}

#[test]
fn for_each_reports_a_server_error_after_the_rows() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_div_zero_after")).unwrap();
    let mut n = 0;
    let err = stream
        .for_each(|r| {
            n += 1;
            assert_eq!(int_field(r, "i"), n);
            true
        })
        .unwrap_err();
    assert_eq!(n, 50);
    assert_eq!(err.sqlstate(), Some("22012"));
}

#[test]
fn client_side_filters_run_on_the_consumer_and_are_counted() {
    let client = socket_client();
    let mut q = query("v_user");
    let consumer = std::thread::current().id();
    q.filter(std::sync::Arc::new(move |row: &[u8]| {
        assert_eq!(
            std::thread::current().id(),
            consumer,
            "filter ran on another thread"
        );
        int_field(row, "n") % 3 == 0
    }));
    let rows = rows_of(&client, &q);
    let ns: Vec<i64> = rows.iter().map(|r| int_field(r, "n")).collect();
    assert_eq!(ns, (1..=1000).filter(|n| n % 3 == 0).collect::<Vec<_>>());
}

#[test]
fn filter_counts_in_stats() {
    let client = socket_client();
    let mut q = query("v_user");
    q.filter(std::sync::Arc::new(|row: &[u8]| int_field(row, "n") <= 100));
    let mut stream = client.execute(&q).unwrap();
    let (rows, end) = drain(&mut stream);
    end.unwrap();
    assert_eq!(rows.len(), 100);
    let st = stream.stats();
    assert_eq!(st.total_rows_received, 1000);
    assert_eq!(st.total_rows_yielded, 100);
    assert_eq!(st.total_rows_filtered, 900);
    assert_eq!(st.items_buffered, 0);
}

fn readable(fd: i32, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    assert!(n >= 0, "poll failed");
    n == 1 && p.revents & libc::POLLIN != 0
}

#[test]
fn the_fd_is_readable_exactly_when_next_has_something() {
    let client = socket_client();
    let mut stream = client.execute(&query("v_slow")).unwrap();
    let fd = stream.control().fd().unwrap();
    assert!(fd >= 0);
    assert_eq!(stream.control().fd().unwrap(), fd, "one fd per stream");
    // The first row is produced ~0.1 s after the query starts.
    assert!(!readable(fd, 0), "fd readable before anything arrived");
    let mut got = Vec::new();
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match stream.next(Wait::NoWait).unwrap() {
            Next::Row(r) => got.push(int_field(r, "i")),
            Next::WouldBlock => {
                // Readable once a row (or the end) arrives, and then next() has it.
                assert!(readable(fd, 5000), "fd never became readable");
                polls += 1;
                match stream.next(Wait::NoWait).unwrap() {
                    Next::Row(r) => got.push(int_field(r, "i")),
                    Next::Done => break,
                    other => panic!("fd was readable but next() gave {other:?}"),
                }
            }
            Next::Done => break,
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline);
    }
    assert!(polls >= 10, "only {polls} waits on the fd for 20 slow rows");
    assert_eq!(got, (1..=20).collect::<Vec<_>>());
}
