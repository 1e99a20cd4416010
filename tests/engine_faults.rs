//! Fault injection with the fake server of the benchmark suite (`benches/fakepg`): a broken
//! message after N rows delivers the N rows first, then the protocol error; a cut connection
//! delivers the rows before it, then an I/O error.

mod fakepg_support;

use fakepg_support::fakepg;
use fraiseql_wire::{Client, ErrorKind, Next, Query, Wait};

fn rows_then_error(client: &Client, source: &str) -> (usize, fraiseql_wire::Error) {
    let mut s = client.execute(&Query::new(source).unwrap()).unwrap();
    let mut n = 0;
    loop {
        match s.next(Wait::Forever) {
            Ok(Next::Row(_)) => n += 1,
            Ok(other) => panic!("{source}: expected an error after {n} rows, got {other:?}"),
            Err(e) => return (n, e),
        }
    }
}

#[test]
fn rows_before_a_fault_are_delivered_then_the_error() {
    let f = fakepg();
    let client = Client::connect(&format!(
        "host={} port={} user=bench dbname=bench",
        f.dir, f.port
    ))
    .unwrap();

    let (n, e) = rows_then_error(&client, "w_10k_430__malformed700");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(n, 700, "rows before the malformed message");

    let (n, e) = rows_then_error(&client, "w_10k_430__badrow700");
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(n, 700, "rows before the two-column DataRow");

    let (n, e) = rows_then_error(&client, "w_10k_430__cut3000");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(n, 3000, "rows before the cut");

    let (n, e) = rows_then_error(&client, "w_10k_430__error1234");
    assert_eq!(e.kind(), ErrorKind::Server, "{e}");
    assert_eq!(e.sqlstate(), Some("22012"));
    assert_eq!(n, 1234);
}
