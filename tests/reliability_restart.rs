//! A server restart (`pg_ctl restart -m fast` of the throwaway cluster), in a test binary of
//! its own since it ends every session of the server. Over the Unix socket, TCP and TLS: a
//! stream running across the restart ends with `Io` (the server's FATAL 57P01 kept) after
//! the rows before it; the pooled connections, all closed by the server, are dropped; and
//! each client's next query works on a new connection. See docs/reliability.md.

mod support;

use std::time::{Duration, Instant};

use fraiseql_wire::{Client, ErrorKind, Next, StreamState, Wait};
use support::*;

fn conninfo(transport: &str, app: &str) -> String {
    let p = pg();
    match transport {
        "unix" => format!("{} application_name={app}", p.socket_conninfo()),
        "tcp" => format!(
            "{} application_name={app}",
            p.tcp_conninfo("fw_trust", "unused")
        ),
        _ => p.tls_conninfo(&format!("application_name={app}")),
    }
}

/// `pg_ctl restart -m fast` of the throwaway cluster, as the user that owns it.
fn restart_server() {
    let log = format!("{}/log/postgres.log", pg().dir());
    pg().pg_ctl(&["-l", &log, "-m", "fast", "-w", "-t", "60", "restart"]);
}

fn assert_usable(client: &Client, what: &str) {
    let mut q = query("v_user");
    q.where_sql("(data->>'n')::int BETWEEN 10 AND 19").unwrap();
    let mut s = client
        .execute(&q)
        .unwrap_or_else(|e| panic!("{what}: execute failed: {e}"));
    let (rows, end) = drain(&mut s);
    end.unwrap_or_else(|e| panic!("{what}: the stream failed: {e}"));
    let ns: Vec<i64> = rows.iter().map(|r| int_field(r, "n")).collect();
    assert_eq!(ns, (10..=19).collect::<Vec<_>>(), "{what}");
}

#[test]
fn the_clients_recover_from_a_server_restart() {
    let transports = ["unix", "tcp", "tls"];
    // Per transport: a client with an idle pooled connection, and one streaming v_slow.
    let idle: Vec<Client> = transports
        .iter()
        .map(|t| Client::connect(&conninfo(t, &format!("fw_restart_idle_{t}"))).unwrap())
        .collect();
    let busy: Vec<Client> = transports
        .iter()
        .map(|t| Client::connect(&conninfo(t, &format!("fw_restart_busy_{t}"))).unwrap())
        .collect();
    let mut streams: Vec<_> = busy
        .iter()
        .zip(transports)
        .map(|(c, t)| {
            let mut s = c.execute(&query("v_slow")).unwrap();
            match s.next(Wait::Forever).unwrap() {
                Next::Row(r) => assert_eq!(int_field(r, "i"), 1, "{t}"),
                other => panic!("{t}: {other:?}"),
            }
            s
        })
        .collect();
    for c in &idle {
        assert_eq!(c.pool().idle_count(), 1);
    }

    restart_server();

    for (s, t) in streams.iter_mut().zip(transports) {
        let started = Instant::now();
        let mut rows = 1;
        let err = loop {
            match s.next(Wait::For(Duration::from_secs(10))) {
                Ok(Next::Row(r)) => {
                    rows += 1;
                    assert_eq!(int_field(r, "i"), rows, "{t}");
                }
                Ok(other) => panic!("{t}: {other:?}"),
                Err(e) => break e,
            }
        };
        assert!(rows < 20, "{t}: every row arrived across the restart");
        assert!(started.elapsed() < Duration::from_secs(5), "{t}");
        assert_eq!(err.kind(), ErrorKind::Io, "{t}: {err}");
        assert_eq!(err.sqlstate(), Some("57P01"), "{t}: {err}");
        assert_eq!(s.control().state(), StreamState::Failed, "{t}");
    }
    drop(streams);
    for (c, t) in idle.iter().zip(transports) {
        assert_usable(c, &format!("pooled connection across a restart, {t}"));
        assert_usable(c, &format!("the next query after the restart, {t}"));
        assert_eq!(
            backends_of(pg(), &format!("fw_restart_idle_{t}")).len(),
            1,
            "{t}"
        );
    }
    for (c, t) in busy.iter().zip(transports) {
        assert_usable(c, &format!("after a stream broken by the restart, {t}"));
    }
}
