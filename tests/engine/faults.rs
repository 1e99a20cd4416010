//! Fault injection with the fake server of the benchmark suite (`benches/fakepg`): a broken
//! message after N rows delivers the N rows first, then the protocol error; a cut connection
//! delivers the rows before it, then an I/O error.

use crate::support::fakepg::fakepg;
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

/// A server error and a notice larger than the stream's memory budget (the default 2 MiB):
/// each is read whole and the stream goes on to its end (the error reported, truncated, after
/// the rows before it; the notice skipped), on the fake server's socket and over TCP. A stream
/// that waited for room its own read buffer held used to hang here.
#[test]
fn messages_larger_than_the_budget_are_read_whole() {
    let f = fakepg();
    for conninfo in [f.conninfo(), f.tcp_conninfo()] {
        let (tx, rx) = std::sync::mpsc::channel();
        let info = conninfo.clone();
        std::thread::spawn(move || {
            let client = Client::connect(&info).unwrap();
            let failed = rows_then_error(&client, "w_10k_430__error1234__bigmsg3mb");
            // The notice is skipped; the session stays usable for the next query.
            let mut st = client
                .execute(&Query::new("w_10k_430__notice500__bigmsg3mb").unwrap())
                .unwrap();
            let mut rows = 0;
            while let Next::Row(_) = st.next(Wait::Forever).unwrap() {
                rows += 1;
            }
            let _ = tx.send((failed, rows));
        });
        // A bounded wait: a hang fails the test instead of stalling it.
        let ((n, e), rows) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{conninfo}: no outcome within 60 s (hung)"));
        assert_eq!(rows, 10_000, "{conninfo}: every row, the notice skipped");
        assert_eq!(e.kind(), ErrorKind::Server, "{conninfo}");
        assert_eq!(e.sqlstate(), Some("22012"));
        assert_eq!(n, 1234, "{conninfo}: rows before the error");
        assert!(
            e.message().contains("bytes truncated"),
            "{:.200}",
            e.message()
        );
        assert!(e.message().len() < 20_000);
    }
}
