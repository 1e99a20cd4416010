//! Connection strings through `Client::connect`: URI and key=value forms
//! reach the right server as the right user with the right settings; a bad string is
//! `InvalidArgument` naming the problem; a refused connection is `Connect` with an actionable
//! message and returns at once; `connect_timeout` is honoured.

use std::time::{Duration, Instant};

use crate::support::*;
use fraiseql_wire::{Client, ErrorKind};

fn session_of(app: &str) -> Vec<String> {
    psql_lines(
        pg(),
        &format!(
            "SELECT usename, datname, coalesce(host(client_addr), 'socket') \
             FROM pg_stat_activity WHERE application_name = '{app}'"
        ),
    )
}

fn stream_count(client: &Client, limit: u64) -> usize {
    let mut q = query("v_user");
    q.limit(limit).unwrap();
    rows_of(client, &q).len()
}

#[test]
fn uri_form_over_tcp() {
    let app = "fw_conn_uri";
    let uri = format!(
        "postgresql://fw_scram:scram-secret@127.0.0.1:{}/{}?sslmode=disable&application_name={app}",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    let client = Client::connect(&uri).expect("URI connects");
    assert_eq!(stream_count(&client, 11), 11);
    assert_eq!(
        session_of(app),
        vec![format!("fw_scram|{}|127.0.0.1", pg().var("FW_PG_DB"))]
    );
}

#[test]
fn uri_form_with_percent_encoded_socket_dir_and_password() {
    let app = "fw_conn_uri_sock";
    let dir: String = pg()
        .var("FW_PG_SOCKET_DIR")
        .replace('%', "%25")
        .replace('/', "%2F");
    let uri = format!(
        "postgresql://fw_trust@{dir}:{}/{}?application_name={app}",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    let client = Client::connect(&uri).expect("URI with a socket directory connects");
    assert_eq!(stream_count(&client, 3), 3);
    assert_eq!(
        session_of(app),
        vec![format!("fw_trust|{}|socket", pg().var("FW_PG_DB"))]
    );

    // A percent-encoded password ("md5-secret" with its dash encoded).
    let app = "fw_conn_uri_pct";
    let uri = format!(
        "postgresql://fw_md5:md5%2Dsecret@127.0.0.1:{}/{}?sslmode=disable&application_name={app}",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    let client = Client::connect(&uri).expect("percent-decoded password");
    assert_eq!(stream_count(&client, 2), 2);
    assert_eq!(session_of(app).len(), 1);
}

#[test]
fn key_value_form_with_quoted_values() {
    let app = "fw conn kv";
    let conninfo = format!(
        "host = '127.0.0.1' port={} dbname='{}' user=fw_plain password='plain-secret' \
         sslmode=disable application_name='{app}' options='-c search_path=app'",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    let client = Client::connect(&conninfo).expect("key=value connects");
    // search_path=app from `options`: the unqualified name resolves in schema app.
    let rows = rows_of(&client, &query("tv_order"));
    assert_eq!(rows.len(), 500);
    assert_eq!(
        session_of(app),
        vec![format!("fw_plain|{}|127.0.0.1", pg().var("FW_PG_DB"))]
    );
}

#[test]
fn bad_strings_are_invalid_argument_naming_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("host=127.0.0.1 port=notaport", "port"),
        ("host=127.0.0.1 port=70000", "port"),
        ("hostname=127.0.0.1", "hostname"),
        ("sslmode=sometimes", "sslmode"),
        ("host=127.0.0.1 dbname", "dbname"),
        ("host='unterminated", "quote"),
        ("postgresql://127.0.0.1:99999/db", "port"),
        ("postgresql://127.0.0.1/db?bogus_param=1", "bogus_param"),
        ("postgresql://127.0.0.1/db%zz", "%"),
        ("connect_timeout=soon", "connect_timeout"),
    ];
    for (s, needle) in cases {
        let t = Instant::now();
        let err = Client::connect(s)
            .err()
            .unwrap_or_else(|| panic!("{s:?} was accepted"));
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{s:?}: {err}");
        assert!(
            err.message().contains(needle),
            "{s:?}: the message should name {needle:?}: {err}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{s:?}: no I/O expected"
        );
    }
}

#[test]
fn connection_refused_is_connect_and_does_not_hang() {
    let port = free_port();
    let t = Instant::now();
    let err = Client::connect(&format!(
        "host=127.0.0.1 port={port} user=fw_trust dbname=x sslmode=disable"
    ))
    .err()
    .expect("nothing listens on that port");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "refused connect took {:?}",
        t.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let m = err.message();
    assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
    assert!(m.to_lowercase().contains("refused"), "{m}");
    assert_eq!(err.sqlstate(), None);

    // A socket directory without a server: also Connect, naming the socket path.
    let err = Client::connect(&format!(
        "host=/nonexistent-fw-dir port={port} user=u dbname=d"
    ))
    .err()
    .expect("no socket there");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(
        err.message()
            .contains(&format!("/nonexistent-fw-dir/.s.PGSQL.{port}")),
        "{err}"
    );
}

#[test]
fn unknown_database_is_connect_with_3d000() {
    let err = Client::connect(&format!(
        "host={} port={} user=fw_trust dbname=fw_missing_db",
        pg().var("FW_PG_SOCKET_DIR"),
        pg().port()
    ))
    .err()
    .expect("unknown database");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(err.sqlstate(), Some("3D000"));
    assert!(err.message().contains("fw_missing_db"), "{err}");
}

#[test]
fn connect_timeout_is_honoured() {
    // A listener that never accepts: the kernel completes the TCP handshake (backlog), the
    // startup packet is sent, and no answer ever comes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // A Unix socket likewise.
    let dir = tempfile_dir();
    let unix_port = 5999;
    let unix =
        std::os::unix::net::UnixListener::bind(dir.join(format!(".s.PGSQL.{unix_port}"))).unwrap();
    // Plain TCP and Unix sockets are opened on the calling thread; sslmode=prefer asks for
    // TLS first (no answer either) through the runtime.
    for conninfo in [
        format!("host=127.0.0.1 port={port} user=u dbname=d sslmode=disable connect_timeout=2"),
        format!("host=127.0.0.1 port={port} user=u dbname=d sslmode=prefer connect_timeout=2"),
        format!(
            "host={} port={unix_port} user=u dbname=d connect_timeout=2",
            dir.display()
        ),
    ] {
        let t = Instant::now();
        let err = Client::connect(&conninfo)
            .err()
            .expect("a silent server cannot be connected to");
        let took = t.elapsed();
        assert_eq!(err.kind(), ErrorKind::Connect, "{conninfo}: {err}");
        assert!(err.message().contains("timed out"), "{conninfo}: {err}");
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
            "{conninfo}: connect_timeout=2 gave up after {took:?}"
        );
    }
    drop(listener);
    drop(unix);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh private directory for a Unix socket.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fw-connect-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
