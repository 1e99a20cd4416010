//! A row holding a NUL byte (PostgreSQL never sends one; the fake server's `nulbyte<K>` fault
//! does) cannot be separated in a block: `next_block` ends the block before it, fails on it
//! with a `State` error without consuming it, and `next` still returns it.

mod support;

use fraiseql_wire::stream::block::{Block, Filled};
use fraiseql_wire::{Client, ErrorKind, Next, Query, Wait};
use support::fakepg::fakepg;

#[test]
fn a_row_with_a_nul_byte_ends_the_block_and_is_left_to_next() {
    let f = fakepg();
    let client = Client::connect(&format!(
        "host={} port={} user=bench dbname=bench",
        f.dir, f.port
    ))
    .unwrap();
    let mut q = Query::new("w_12_430__nulbyte4").unwrap();
    q.chunk_size(64).unwrap();
    q.adaptive_chunking(false, 1, 1).unwrap();
    let mut s = client.execute(&q).unwrap();
    let mut b = Block::new();
    let mut seen = Vec::new(); // (row number, how it came)
    let mut n = 0;
    loop {
        match s.next_block(&mut b, 256, usize::MAX, Wait::Forever) {
            Ok(Filled::Rows(k)) => {
                assert!(!b.data()[..b.data().len() - 1]
                    .split(|&c| c == 0)
                    .any(|r| r.is_empty()));
                for _ in 0..k {
                    n += 1;
                    seen.push((n, "block"));
                }
            }
            Ok(Filled::Status(Next::Done)) => break,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::State, "{e}");
                assert!(e.to_string().contains("NUL byte"), "{e}");
                // Not consumed: next_block fails again, next returns it.
                let again = s.next_block(&mut b, 256, usize::MAX, Wait::Forever);
                assert!(matches!(again, Err(e) if e.kind() == ErrorKind::State));
                match s.next(Wait::Forever).unwrap() {
                    Next::Row(r) => assert!(r.contains(&0), "the row with the NUL byte"),
                    other => panic!("unexpected {other:?}"),
                }
                n += 1;
                seen.push((n, "next"));
            }
        }
    }
    let by_next: Vec<u64> = seen
        .iter()
        .filter(|(_, how)| *how == "next")
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(by_next, vec![4, 8, 12]);
    assert_eq!(n, 12);
    let st = s.control().stats();
    assert_eq!(st.total_rows_yielded, 12);
    assert_eq!(st.items_buffered, 0);
}
