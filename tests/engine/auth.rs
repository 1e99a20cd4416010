//! Authentication against the real server: trust over the Unix socket,
//! cleartext, md5 and SCRAM-SHA-256 over TCP each connect and stream; a wrong password is
//! `Auth` with SQLSTATE 28P01; a missing one is `Auth`; no password ever shows in an error.

use crate::support::*;
use fraiseql_wire::conninfo::ConnConfig;
use fraiseql_wire::{Client, Error, ErrorKind};

/// The password roles of the harness: (user, password, pg_hba method).
const PASSWORD_ROLES: [(&str, &str, &str); 3] = [
    ("fw_plain", "plain-secret", "cleartext"),
    ("fw_md5", "md5-secret", "md5"),
    ("fw_scram", "scram-secret", "scram-sha-256"),
];

/// A wrong password that cannot occur in any server message by accident.
const WRONG: &str = "Wr0ng-Pa55word-q7Zx";

fn assert_secret_absent(e: &Error, secret: &str) {
    for text in [e.to_string(), e.message().to_string(), format!("{e:?}")] {
        assert!(
            !text.contains(secret),
            "the password {secret:?} appears in an error: {text}"
        );
    }
}

/// Stream the first 25 users and check them against SQL.
fn stream_25(client: &Client) {
    let mut q = query("v_user");
    q.order_by("(data->>'n')::int", None, fraiseql_wire::SortDir::Asc)
        .unwrap()
        .limit(25)
        .unwrap();
    let got: Vec<i64> = rows_of(client, &q)
        .iter()
        .map(|r| int_field(r, "n"))
        .collect();
    assert_eq!(got, (1..=25).collect::<Vec<_>>());
}

#[test]
fn trust_over_the_unix_socket_connects_and_streams() {
    let app = "fw_auth_trust";
    let client = socket_client_app(app);
    stream_25(&client);
    // The session really is a socket session (no client address) of fw_trust.
    let rows = psql_lines(
        pg(),
        &format!(
            "SELECT usename, coalesce(client_addr::text, 'socket') FROM pg_stat_activity \
             WHERE application_name = '{app}'"
        ),
    );
    assert_eq!(rows, vec!["fw_trust|socket".to_string()]);
}

#[test]
fn password_methods_connect_and_stream() {
    for (user, password, method) in PASSWORD_ROLES {
        let app = format!("fw_auth_ok_{user}");
        let conninfo = format!(
            "{} application_name={app}",
            pg().tcp_conninfo(user, password)
        );
        let client = Client::connect(&conninfo)
            .unwrap_or_else(|e| panic!("{method} login as {user} failed: {e}"));
        stream_25(&client);
        let rows = psql_lines(
            pg(),
            &format!(
                "SELECT usename, host(client_addr) FROM pg_stat_activity \
                 WHERE application_name = '{app}'"
            ),
        );
        assert_eq!(rows, vec![format!("{user}|127.0.0.1")], "{method}");
    }
}

#[test]
fn wrong_password_is_auth_with_28p01() {
    for (user, password, method) in PASSWORD_ROLES {
        let err = Client::connect(&pg().tcp_conninfo(user, WRONG))
            .err()
            .unwrap_or_else(|| panic!("{method}: a wrong password was accepted"));
        assert_eq!(err.kind(), ErrorKind::Auth, "{method}: {err}");
        assert_eq!(err.sqlstate(), Some("28P01"), "{method}: {err}");
        let se = err.server_error().expect("server fields");
        assert!(
            se.message.contains("password authentication failed") && se.message.contains(user),
            "{method}: {}",
            se.message
        );
        assert!(err.to_string().contains("28P01"), "{err}");
        assert_secret_absent(&err, WRONG);
        assert_secret_absent(&err, password);
    }
}

#[test]
fn missing_password_is_auth_and_names_the_method() {
    // No PG* environment and no password file: the server's request cannot be answered.
    let no_env = |_: &str| -> Option<String> { None };
    for (user, _, method) in PASSWORD_ROLES {
        let conninfo = format!(
            "host=127.0.0.1 port={} dbname={} user={user} sslmode=disable",
            pg().port(),
            pg().var("FW_PG_DB")
        );
        let config = ConnConfig::parse_with_env(&conninfo, &no_env).unwrap();
        assert_eq!(config.password, None);
        let err = Client::with_config(config)
            .err()
            .unwrap_or_else(|| panic!("{method}: connected without a password"));
        assert_eq!(err.kind(), ErrorKind::Auth, "{method}: {err}");
        assert!(
            err.message().contains("no password was supplied"),
            "{method}: {err}"
        );
    }
}

#[test]
fn the_password_never_appears_in_errors() {
    // A correct password and a failure after authentication (unknown database).
    let conninfo = format!(
        "host=127.0.0.1 port={} dbname=fw_no_such_db user=fw_scram password=scram-secret \
         sslmode=disable",
        pg().port()
    );
    let err = Client::connect(&conninfo).err().expect("unknown database");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(err.sqlstate(), Some("3D000"), "{err}");
    assert!(err.message().contains("fw_no_such_db"), "{err}");
    assert_secret_absent(&err, "scram-secret");

    // The URI form with a wrong password.
    let uri = format!(
        "postgresql://fw_md5:{WRONG}@127.0.0.1:{}/{}?sslmode=disable",
        pg().port(),
        pg().var("FW_PG_DB")
    );
    let err = Client::connect(&uri).err().expect("wrong password");
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert_secret_absent(&err, WRONG);

    // A malformed string right after the password.
    let err = Client::connect("password=hunter2-very-secret port=notaport")
        .err()
        .expect("bad port");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_secret_absent(&err, "hunter2-very-secret");

    // Connection refused with a password in the string.
    let port = crate::support::free_port();
    let err = Client::connect(&format!(
        "host=127.0.0.1 port={port} user=fw_md5 password=hunter2-very-secret sslmode=disable"
    ))
    .err()
    .expect("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_secret_absent(&err, "hunter2-very-secret");
}
