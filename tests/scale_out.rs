//! Scale-out against real servers: a primary and its streaming replica (pg_basebackup -R), and
//! PgBouncer in session and transaction pooling in front of the primary, all started by
//! scripts/pg-throwaway for this test binary and torn down by its watchdogs when the binary
//! exits. Covers every `target_session_attrs` value, `load_balance_hosts=random`, PgBouncer in
//! both modes (including server connections closed by PgBouncer's timeouts), and failover: the
//! primary stopped mid-stream, new streams moving on, the replica promoted.

mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, Error, ErrorKind, Next, Query, Wait};
use support::cluster::throwaway;
use support::{field, run, strings_within, Pg};

const DB: &str = "fraiseql_test";

/// A PostgreSQL server started for this binary.
struct Server {
    pg: Pg,
    dir: String,
    port: u16,
    socket: String,
}

impl Server {
    fn from(pg: Pg) -> Server {
        Server {
            dir: pg.dir().to_string(),
            port: pg.port(),
            socket: pg.var("FW_PG_SOCKET_DIR").to_string(),
            pg,
        }
    }

    fn primary() -> Server {
        Server::from(Pg::start(&["start", "--replication"]))
    }

    fn standby_of(primary: &Server) -> Server {
        Server::from(Pg::start(&["start-standby", &primary.dir]))
    }

    /// psql over the socket as the superuser; unaligned output without the final newline.
    fn psql(&self, sql: &str) -> String {
        self.pg.psql(sql).trim_end().to_string()
    }

    fn in_recovery(&self) -> bool {
        self.psql("SELECT pg_is_in_recovery()") == "t"
    }

    /// Sessions of this application_name on this server.
    fn sessions(&self, app: &str) -> usize {
        self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'"
        ))
        .parse()
        .unwrap()
    }

    fn pg_ctl(&self, args: &[&str]) {
        self.pg.pg_ctl(args)
    }

    /// What `host=...` and `port=...` list for this server.
    fn tcp(&self) -> (String, String) {
        ("127.0.0.1".to_string(), self.port.to_string())
    }

    fn stop_and_remove(&self) {
        self.pg.stop()
    }
}

/// The view every test streams: which server answered.
const WHERE_VIEW: &str = "CREATE VIEW v_where AS SELECT jsonb_build_object(\
     'recovery', pg_is_in_recovery(), 'port', current_setting('port')::int, \
     'pid', pg_backend_pid()) AS data; GRANT SELECT ON v_where TO PUBLIC";

/// Wait until the standby has replayed everything the primary has written so far.
fn wait_replayed(primary: &Server, standby: &Server) {
    let lsn = primary.psql("SELECT pg_current_wal_lsn()");
    let t = Instant::now();
    while standby.psql(&format!(
        "SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"
    )) != "t"
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the standby did not replay up to {lsn}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shared primary + standby (+ two PgBouncers) of the non-destructive tests.
struct Pair {
    primary: Server,
    standby: Server,
    bouncer_session: Bouncer,
    bouncer_transaction: Bouncer,
}

struct Bouncer {
    port: u16,
    socket: String,
}

impl Bouncer {
    fn start(primary: &Server, mode: &str, settings: &[&str]) -> Bouncer {
        let mut args = vec!["start-pgbouncer", primary.dir.as_str(), "--mode", mode];
        for s in settings {
            args.extend(["--set", s]);
        }
        let vars = throwaway(&args);
        Bouncer {
            port: vars["FW_PGB_PORT"].parse().unwrap(),
            socket: vars["FW_PGB_SOCKET_DIR"].clone(),
        }
    }

    /// A console command (`SHOW SERVERS`, ...) on PgBouncer's admin database.
    fn admin(&self, command: &str) -> String {
        run(
            Command::new("psql")
                .args(["-X", "-A", "-t", "-c", command])
                .args(["-h", &self.socket, "-p", &self.port.to_string()])
                .args(["-U", "fw_trust", "-d", "pgbouncer"]),
            &format!("pgbouncer admin {command}"),
        )
    }
}

fn pair() -> &'static Pair {
    static PAIR: OnceLock<Pair> = OnceLock::new();
    PAIR.get_or_init(|| {
        let primary = Server::primary();
        primary.psql(WHERE_VIEW);
        let standby = Server::standby_of(&primary);
        wait_replayed(&primary, &standby);
        assert!(standby.in_recovery());
        let bouncer_session = Bouncer::start(&primary, "session", &[]);
        let bouncer_transaction =
            Bouncer::start(&primary, "transaction", &["server_idle_timeout=1"]);
        Pair {
            primary,
            standby,
            bouncer_session,
            bouncer_transaction,
        }
    })
}

/// A conninfo listing `servers` in order, over TCP (trust for fw_trust on 127.0.0.1).
fn conninfo(servers: &[&Server], extra: &str) -> String {
    let (hosts, ports): (Vec<String>, Vec<String>) = servers.iter().map(|s| s.tcp()).unzip();
    format!(
        "host={} port={} dbname={DB} user=fw_trust sslmode=disable connect_timeout=10 {extra}",
        hosts.join(","),
        ports.join(",")
    )
}

/// Which server a stream ran on: (in recovery, port, backend pid).
fn where_from(client: &Client) -> Result<(bool, u16, i64), Error> {
    let mut stream = client.execute(&Query::new("v_where").unwrap())?;
    let rows = strings_within(&mut stream, Wait::For(Duration::from_secs(30)))?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    Ok((
        field(row, "recovery") == "true",
        field(row, "port").parse().unwrap(),
        field(row, "pid").parse().unwrap(),
    ))
}

fn port_of(conninfo: &str) -> u16 {
    let client = Client::connect(conninfo).unwrap_or_else(|e| panic!("connect {conninfo}: {e}"));
    where_from(&client)
        .unwrap_or_else(|e| panic!("stream on {conninfo}: {e}"))
        .1
}

fn connect_err(conninfo: &str) -> Error {
    match Client::connect(conninfo) {
        Ok(c) => panic!(
            "{conninfo}: connected to {:?}, expected a failure",
            where_from(&c)
        ),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------
// target_session_attrs
// ---------------------------------------------------------------------------------------------

#[test]
fn every_target_session_attrs_value_picks_the_right_server() {
    let p = pair();
    let (primary, standby) = (&p.primary, &p.standby);
    let expect = [
        ("any", [primary.port, standby.port]),
        ("read-write", [primary.port, primary.port]),
        ("primary", [primary.port, primary.port]),
        ("read-only", [standby.port, standby.port]),
        ("standby", [standby.port, standby.port]),
        ("prefer-standby", [standby.port, standby.port]),
    ];
    // sslmode=disable opens connections on the calling thread, require through the runtime.
    for ((tsa, [primary_first, standby_first]), ssl) in expect
        .into_iter()
        .flat_map(|e| [(e, "disable"), (e, "require")])
    {
        let extra = format!("target_session_attrs={tsa} sslmode={ssl}");
        assert_eq!(
            port_of(&conninfo(&[primary, standby], &extra)),
            primary_first,
            "{tsa}, primary listed first"
        );
        assert_eq!(
            port_of(&conninfo(&[standby, primary], &extra)),
            standby_first,
            "{tsa}, standby listed first"
        );
    }
}

/// A pooled connection is checked before reuse (one round trip) and, still qualifying, reused:
/// the same backend serves the next stream, on plain TCP (checked on the calling thread) and
/// on TLS (through the runtime).
#[test]
fn pooled_connections_are_checked_and_reused() {
    let p = pair();
    for tsa in [
        "standby",
        "primary",
        "read-only",
        "read-write",
        "prefer-standby",
    ] {
        for ssl in ["disable", "require"] {
            let ci = conninfo(
                &[&p.primary, &p.standby],
                &format!("target_session_attrs={tsa} sslmode={ssl}"),
            );
            let client = Client::connect(&ci).unwrap();
            let first = where_from(&client).unwrap();
            let second = where_from(&client).unwrap();
            assert_eq!(
                first, second,
                "{tsa} {ssl}: the pooled connection was not reused"
            );
        }
    }
}

#[test]
fn prefer_standby_falls_back_to_the_primary_in_a_second_pass() {
    let p = pair();
    let ci = conninfo(&[&p.primary], "target_session_attrs=prefer-standby");
    assert_eq!(port_of(&ci), p.primary.port);
}

#[test]
fn no_qualifying_host_names_each_host_and_why() {
    let p = pair();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ci = format!(
        "host=127.0.0.1,127.0.0.1 port={},{dead} dbname={DB} user=fw_trust sslmode=disable \
         target_session_attrs=primary",
        p.standby.port
    );
    let e = connect_err(&ci);
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let m = e.message();
    assert!(
        m.starts_with("no host qualifies for target_session_attrs=primary: "),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "127.0.0.1:{}: server is in hot standby mode",
            p.standby.port
        )),
        "{m}"
    );
    assert!(m.contains(&format!("127.0.0.1:{dead}: ")), "{m}");
    assert!(m.to_lowercase().contains("refused"), "{m}");

    let e = connect_err(&conninfo(&[&p.standby], "target_session_attrs=read-write"));
    assert!(
        e.message().ends_with(&format!(
            "127.0.0.1:{}: session is read-only",
            p.standby.port
        )),
        "{e}"
    );
    let e = connect_err(&conninfo(&[&p.primary], "target_session_attrs=standby"));
    assert!(
        e.message().ends_with(&format!(
            "127.0.0.1:{}: server is not in hot standby mode",
            p.primary.port
        )),
        "{e}"
    );
    let e = connect_err(&conninfo(&[&p.primary], "target_session_attrs=read-only"));
    assert!(e.message().ends_with("session is not read-only"), "{e}");
}

/// default_transaction_read_only, reported at startup, makes a primary's session read-only:
/// read-only accepts it, read-write skips it (primary/standby look at in_hot_standby only).
#[test]
fn default_transaction_read_only_counts_as_read_only() {
    let p = pair();
    let ro = "options='-c default_transaction_read_only=on'";
    let ci = |tsa: &str, servers: &[&Server]| {
        conninfo(servers, &format!("{ro} target_session_attrs={tsa}"))
    };
    assert_eq!(port_of(&ci("read-only", &[&p.primary])), p.primary.port);
    assert_eq!(port_of(&ci("primary", &[&p.primary])), p.primary.port);
    let e = connect_err(&ci("read-write", &[&p.primary]));
    assert!(e.message().ends_with("session is read-only"), "{e}");
}

#[test]
fn unix_sockets_are_hosts_too() {
    let p = pair();
    let ci = format!(
        "host={},{} port={},{} dbname={DB} user=fw_trust target_session_attrs=standby",
        p.primary.socket, p.standby.socket, p.primary.port, p.standby.port
    );
    assert_eq!(port_of(&ci), p.standby.port);
}

// ---------------------------------------------------------------------------------------------
// load_balance_hosts
// ---------------------------------------------------------------------------------------------

#[test]
fn random_balancing_spreads_new_connections_over_both_hosts() {
    let p = pair();
    const N: usize = 40;
    for (mode, app) in [("random", "fw_lb_random"), ("disable", "fw_lb_disable")] {
        let ci = conninfo(
            &[&p.primary, &p.standby],
            &format!("load_balance_hosts={mode} application_name={app}"),
        );
        let clients: Vec<Client> = (0..N)
            .map(|_| Client::connect(&ci).expect("connect"))
            .collect();
        let (on_primary, on_standby) = (p.primary.sessions(app), p.standby.sessions(app));
        assert_eq!(on_primary + on_standby, N, "{mode}");
        if mode == "random" {
            // Each connection picks the first host with probability 1/2: fewer than 8 of 40
            // on either side happens about once in 10^5 runs.
            assert!(
                on_primary >= 8 && on_standby >= 8,
                "random: {on_primary} on the primary, {on_standby} on the standby"
            );
        } else {
            assert_eq!(on_primary, N, "disable: the first host only");
        }
        drop(clients);
    }
}

// ---------------------------------------------------------------------------------------------
// PgBouncer
// ---------------------------------------------------------------------------------------------

fn bouncer_conninfo(b: &Bouncer, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} dbname={DB} user=fw_trust sslmode=disable \
         application_name={app}",
        b.port
    )
}

fn count_rows(client: &Client, source: &str) -> Result<usize, Error> {
    let mut stream = client.execute(&Query::new(source).unwrap())?;
    let mut n = 0;
    loop {
        match stream.next(Wait::For(Duration::from_secs(30)))? {
            Next::Row(_) => n += 1,
            Next::Done => return Ok(n),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn streams_through_pgbouncer_in_both_pooling_modes() {
    let p = pair();
    for (b, mode) in [
        (&p.bouncer_session, "session"),
        (&p.bouncer_transaction, "transaction"),
    ] {
        let client = Client::connect(&bouncer_conninfo(b, &format!("fw_pgb_{mode}")))
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        // One after the other on the pooled connection, then four at once.
        for _ in 0..3 {
            assert_eq!(count_rows(&client, "v_user").unwrap(), 1000, "{mode}");
        }
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let c = client.clone();
                std::thread::spawn(move || count_rows(&c, "v_user"))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().unwrap(), 1000, "{mode}");
        }
        // Errors come through, and the connection serves the next stream.
        let e = count_rows(&client, "v_does_not_exist").unwrap_err();
        assert_eq!(e.sqlstate(), Some("42P01"), "{mode}: {e}");
        assert_eq!(count_rows(&client, "app.tv_order").unwrap(), 500, "{mode}");
    }
}

/// Transaction pooling, server_idle_timeout=1: PgBouncer closes the idle server connection
/// under the client's pooled connection; the next stream gets a new backend.
#[test]
fn pgbouncer_closing_an_idle_server_connection() {
    let p = pair();
    let b = &p.bouncer_transaction;
    let client = Client::connect(&bouncer_conninfo(b, "fw_pgb_idle")).unwrap();
    let (_, _, first_pid) = where_from(&client).unwrap();
    let gone = |pid: i64| {
        p.primary.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}"
        )) == "0"
    };
    let t = Instant::now();
    while !gone(first_pid) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "PgBouncer did not close server connection {first_pid}: {}",
            b.admin("SHOW SERVERS")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, _, second_pid) = where_from(&client).expect("a stream after the server closed");
    assert_ne!(first_pid, second_pid);
    assert_eq!(count_rows(&client, "v_user").unwrap(), 1000);
}

/// PgBouncer closes a client's idle pooled connection: by client_idle_timeout (transaction
/// pooling; PgBouncer does not apply it to session-pooled clients, which hold their server),
/// and by the admin console's KILL (session pooling). The next stream on the same client
/// notices and opens a new connection.
#[test]
fn pgbouncer_closing_an_idle_client_connection() {
    let p = pair();
    let app = "fw_pgb_client_idle";
    for (mode, settings) in [
        ("transaction", &["client_idle_timeout=2"][..]),
        ("session", &[][..]),
    ] {
        let b = Bouncer::start(&p.primary, mode, settings);
        let clients = || {
            b.admin("SHOW CLIENTS")
                .lines()
                .filter(|l| l.contains(app))
                .count()
        };
        let client = Client::connect(&bouncer_conninfo(&b, app)).unwrap();
        assert_eq!(count_rows(&client, "v_user").unwrap(), 1000);
        assert_eq!(clients(), 1, "{mode}: {}", b.admin("SHOW CLIENTS"));
        if mode == "session" {
            b.admin(&format!("KILL {DB}"));
            b.admin(&format!("RESUME {DB}"));
        }
        wait_for(
            "PgBouncer to close the client",
            Duration::from_secs(20),
            || clients() == 0,
        );
        // The pooled connection holds PgBouncer's parting FATAL and then the end of the
        // stream: the pool sees it readable while idle and drops it before use, so the next
        // stream reconnects without reporting the dead connection's error.
        let rows = count_rows(&client, "v_user").unwrap_or_else(|e| {
            panic!("{mode}: the stream after PgBouncer closed the client: {e}")
        });
        assert_eq!(rows, 1000, "{mode}");
        assert_eq!(clients(), 1, "{mode}");
    }
}

// ---------------------------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------------------------

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The whole sequence on a pair of its own: a stream broken by the primary's shutdown reports
/// the server's 57P01 (or a broken connection) after the rows it delivered; new streams skip
/// the stopped primary; a standby client never reuses a pooled connection whose server was
/// promoted; after the promotion, read-write finds the new primary.
#[test]
fn failover_stop_the_primary_then_promote_the_standby() {
    let primary = Server::primary();
    primary.psql(WHERE_VIEW);
    let standby = Server::standby_of(&primary);
    wait_replayed(&primary, &standby);
    let both = [&primary, &standby];

    let writer = Client::connect(&conninfo(&both, "target_session_attrs=read-write")).unwrap();
    let reader = Client::connect(&conninfo(&both, "target_session_attrs=standby")).unwrap();
    let anyone = Client::connect(&conninfo(&both, "target_session_attrs=any")).unwrap();
    assert_eq!(where_from(&writer).unwrap().1, primary.port);
    assert_eq!(where_from(&reader).unwrap().1, standby.port);
    assert_eq!(where_from(&anyone).unwrap().1, primary.port);

    // A stream broken mid-way: v_slow sends 20 rows, one per 100 ms.
    let mut stream = writer.execute(&Query::new("v_slow").unwrap()).unwrap();
    let mut delivered = 0;
    while delivered < 3 {
        match stream.next(Wait::For(Duration::from_secs(10))).unwrap() {
            Next::Row(_) => delivered += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    primary.pg_ctl(&["stop", "-m", "fast", "-w"]);
    let end = loop {
        match stream.next(Wait::For(Duration::from_secs(10))) {
            Ok(Next::Row(_)) => delivered += 1,
            Ok(other) => panic!("the stream should break, got {other:?}"),
            Err(e) => break e,
        }
    };
    assert!((3..20).contains(&delivered), "{delivered} rows delivered");
    assert_eq!(stream.stats().total_rows_yielded, delivered as u64);
    match end.sqlstate() {
        Some(state) => assert!(["57P01", "57P02", "57P03"].contains(&state), "{end}"),
        None => assert_eq!(end.kind(), ErrorKind::Io, "{end}"),
    }
    drop(stream);

    // New streams on the same clients: the writer has nowhere to go, and says why.
    let e = where_from(&writer).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    let m = e.message();
    assert!(m.contains(&format!("127.0.0.1:{}: ", primary.port)), "{m}");
    assert!(
        m.contains(&format!("127.0.0.1:{}: session is read-only", standby.port)),
        "{m}"
    );
    // target_session_attrs=any moves on to the standby.
    // The pooled connection to the stopped primary holds the shutdown's 57P01 and the end of
    // the stream: it is dropped before use, so the first stream after the stop goes to the
    // standby without reporting the dead connection's error.
    let (recovery, port, _) =
        where_from(&anyone).unwrap_or_else(|e| panic!("any, first stream after the stop: {e}"));
    assert!(recovery);
    assert_eq!(port, standby.port);
    // The standby client keeps its standby.
    assert_eq!(where_from(&reader).unwrap().1, standby.port);

    // Promote the standby.
    standby.psql("SELECT pg_promote(true, 60)");
    wait_for("the promotion", Duration::from_secs(30), || {
        !standby.in_recovery()
    });

    // read-write finds the new primary, on the same client.
    let (recovery, port, _) = where_from(&writer).expect("read-write after the promotion");
    assert!(!recovery);
    assert_eq!(port, standby.port);
    // The standby client's pooled connection now leads to a primary: it is not reused, and
    // there is no standby left.
    let e = where_from(&reader).unwrap_err();
    assert!(
        e.message().contains(&format!(
            "127.0.0.1:{}: server is not in hot standby mode",
            standby.port
        )),
        "{e}"
    );

    drop((writer, reader, anyone));
    standby.stop_and_remove();
    primary.stop_and_remove();
}
