//! `Stream::next_block` (the core of `fw_stream_next_block`): the rows of a batch back to
//! back, each followed by a NUL, with `n + 1` offsets; the same rows as `next`, in order;
//! bounded by `max_rows` and `max_bytes`; SQL NULL as `null`; rows before a server error;
//! statuses (done, timeout) with an empty block; client-side filters applied.

use std::sync::Arc;
use std::time::Duration;

use crate::support::*;
use fraiseql_wire::stream::block::{Block, Filled};
use fraiseql_wire::stream::Stream;
use fraiseql_wire::{ErrorKind, Next, Wait};

/// Check the layout of `b` against its own rows, and return them.
fn checked_rows(b: &Block) -> Vec<Vec<u8>> {
    let (data, off) = (b.data(), b.offsets());
    assert!(!b.is_empty(), "a filled block holds a row");
    assert_eq!(off.len(), b.len() + 1);
    assert_eq!(off[0], 0);
    assert_eq!(
        *off.last().unwrap(),
        data.len(),
        "the last offset is the length"
    );
    let mut rows = Vec::new();
    for i in 0..b.len() {
        assert!(off[i] < off[i + 1], "offsets grow");
        assert_eq!(data[off[i + 1] - 1], 0, "row {i} is followed by its NUL");
        let row = &data[off[i]..off[i + 1] - 1];
        assert!(!row.contains(&0), "row {i} holds no NUL");
        assert_eq!(row, b.row(i));
        rows.push(row.to_vec());
    }
    // Splitting on NUL gives the same rows.
    let split: Vec<Vec<u8>> = data[..data.len() - 1]
        .split(|&c| c == 0)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(split, rows);
    rows
}

/// Every row through `next_block`, the sizes of the blocks, and the terminal outcome.
fn drain_blocks(
    s: &mut Stream,
    max_rows: usize,
    max_bytes: usize,
) -> (Vec<Vec<u8>>, Vec<usize>, Result<(), fraiseql_wire::Error>) {
    let mut b = Block::new();
    let (mut rows, mut sizes) = (Vec::new(), Vec::new());
    loop {
        match s.next_block(&mut b, max_rows, max_bytes, Wait::Forever) {
            Ok(Filled::Rows(n)) => {
                assert_eq!(n, b.len());
                sizes.push(n);
                rows.extend(checked_rows(&b));
            }
            Ok(Filled::Status(Next::Done)) => {
                assert!(b.is_empty(), "a status leaves the block empty");
                return (rows, sizes, Ok(()));
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => return (rows, sizes, Err(e)),
        }
    }
}

#[test]
fn blocks_hold_the_rows_of_next_in_order_byte_exact() {
    let client = socket_client();
    let want = rows_of(&client, &query("v_user"));
    assert_eq!(want.len(), 1000);
    let mut s = client.execute(&query("v_user")).unwrap();
    let (got, sizes, end) = drain_blocks(&mut s, 256, usize::MAX);
    end.unwrap();
    assert_eq!(got, want);
    assert!(sizes.iter().all(|&n| n <= 256), "{sizes:?}");
    // One block per chunk at most: far fewer blocks than rows.
    assert!(sizes.len() < 100, "{} blocks for 1000 rows", sizes.len());
    // Done again after the end.
    let mut b = Block::new();
    assert_eq!(
        s.next_block(&mut b, 8, usize::MAX, Wait::Forever).unwrap(),
        Filled::Status(Next::Done)
    );
}

#[test]
fn max_rows_and_max_bytes_bound_a_block() {
    let client = socket_client();
    let want = rows_of(&client, &query("v_user"));
    let mut q = query("v_user");
    q.chunk_size(100).unwrap();
    q.adaptive_chunking(false, 1, 1).unwrap();

    let mut s = client.execute(&q).unwrap();
    let (got, sizes, end) = drain_blocks(&mut s, 7, usize::MAX);
    end.unwrap();
    assert_eq!(got, want);
    assert!(sizes.iter().all(|&n| (1..=7).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().filter(|&&n| n == 7).count() > 100, "{sizes:?}");

    // A byte limit below one row: one row per block.
    let mut s = client.execute(&q).unwrap();
    let (got, sizes, end) = drain_blocks(&mut s, 256, 1);
    end.unwrap();
    assert_eq!(got, want);
    assert!(sizes.iter().all(|&n| n == 1), "{sizes:?}");

    // A byte limit of about three rows: blocks stop once they reach it.
    let limit = want[..3].iter().map(|r| r.len() + 1).sum::<usize>();
    let mut s = client.execute(&q).unwrap();
    let mut b = Block::new();
    let mut total = 0;
    while let Filled::Rows(n) = s.next_block(&mut b, 256, limit, Wait::Forever).unwrap() {
        let longest = checked_rows(&b).iter().map(|r| r.len() + 1).max().unwrap();
        assert!(b.data().len() < limit + longest, "{} bytes", b.data().len());
        assert!(n < 100);
        total += n;
    }
    assert_eq!(total, 1000);
}

#[test]
fn sql_null_is_the_json_null_and_an_empty_result_is_done() {
    let client = socket_client();
    let mut s = client.execute(&query("v_null")).unwrap();
    let (got, _, end) = drain_blocks(&mut s, 256, usize::MAX);
    end.unwrap();
    assert_eq!(
        as_strings(&got),
        vec![
            r#"{"i": 1}"#.to_string(),
            "null".into(),
            r#"{"i": 3}"#.into()
        ]
    );
    let mut s = client.execute(&query("v_empty")).unwrap();
    let (got, sizes, end) = drain_blocks(&mut s, 256, usize::MAX);
    end.unwrap();
    assert!(got.is_empty() && sizes.is_empty());
}

#[test]
fn rows_before_a_server_error_come_first() {
    let client = socket_client();
    let mut s = client.execute(&query("v_div_zero_after")).unwrap();
    let (got, _, end) = drain_blocks(&mut s, 256, usize::MAX);
    assert_eq!(got.len(), 50);
    let ns: Vec<i64> = got.iter().map(|r| int_field(r, "i")).collect();
    assert_eq!(ns, (1..=50).collect::<Vec<_>>());
    let e = end.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    assert_eq!(e.sqlstate(), Some("22012"));
    // The error again on the next call.
    let mut b = Block::new();
    let again = s
        .next_block(&mut b, 1, usize::MAX, Wait::Forever)
        .unwrap_err();
    assert_eq!(again.sqlstate(), Some("22012"));
    assert!(b.is_empty());
}

#[test]
fn a_timeout_leaves_an_empty_block_and_the_stream_usable() {
    let client = socket_client();
    let mut s = client.execute(&query("v_slow")).unwrap();
    let mut b = Block::new();
    let mut timeouts = 0;
    let mut rows = Vec::new();
    loop {
        match s
            .next_block(&mut b, 256, usize::MAX, Wait::For(Duration::from_millis(5)))
            .unwrap()
        {
            Filled::Rows(_) => rows.extend(checked_rows(&b)),
            Filled::Status(Next::Timeout) => {
                assert!(b.is_empty());
                timeouts += 1;
            }
            Filled::Status(Next::Done) => break,
            Filled::Status(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rows.len(), 20);
    assert!(
        timeouts > 0,
        "rows come every 0.1 s: some 5 ms waits time out"
    );
    assert!(matches!(
        s.next_block(&mut b, 0, 0, Wait::Forever),
        Err(e) if e.kind() == ErrorKind::InvalidArgument
    ));
}

#[test]
fn client_side_filters_apply_to_blocks() {
    let client = socket_client();
    let mut q = query("v_user");
    q.filter(Arc::new(|row: &[u8]| int_field(row, "n") % 3 == 0));
    let mut s = client.execute(&q).unwrap();
    let (got, _, end) = drain_blocks(&mut s, 64, usize::MAX);
    end.unwrap();
    let ns: Vec<i64> = got.iter().map(|r| int_field(r, "n")).collect();
    assert_eq!(ns, (1..=1000).filter(|n| n % 3 == 0).collect::<Vec<_>>());
    assert_eq!(s.control().stats().total_rows_filtered, 667);
}
