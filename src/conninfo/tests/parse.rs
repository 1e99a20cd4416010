use super::*;

// ---- key=value form -------------------------------------------------

#[test]
fn key_value_basic() {
    let c = ok("host=localhost port=5433 user=bob password=pw dbname=mydb \
                application_name=app options='-c search_path=x' connect_timeout=10");
    assert_eq!(c.hosts, vec![tcp("localhost", 5433)]);
    assert_eq!(c.user, "bob");
    assert_eq!(c.password.as_deref(), Some("pw"));
    assert_eq!(c.dbname, "mydb");
    assert_eq!(c.application_name.as_deref(), Some("app"));
    assert_eq!(c.options.as_deref(), Some("-c search_path=x"));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(10)));
}

#[test]
fn key_value_whitespace_around_equals() {
    let c = ok("  host =  h1\tport= 1234\nuser\t=\tu  ");
    assert_eq!(c.hosts, vec![tcp("h1", 1234)]);
    assert_eq!(c.user, "u");
}

#[test]
fn key_value_quoting_and_escapes() {
    let c = ok(r"password='it\'s a \\ secret' dbname='my db' user=a\ b options=x\'y");
    assert_eq!(c.password.as_deref(), Some(r"it's a \ secret"));
    assert_eq!(c.dbname, "my db");
    assert_eq!(c.user, "a b");
    assert_eq!(c.options.as_deref(), Some("x'y"));
    // Quoted value directly followed by the next keyword.
    let c = ok("dbname='x'user=y");
    assert_eq!((c.dbname.as_str(), c.user.as_str()), ("x", "y"));
    // Empty quoted value means "default" for user.
    assert_eq!(ok("user='' dbname=d").user, "osuser");
}

#[test]
fn key_value_later_duplicate_wins() {
    assert_eq!(ok("dbname=a dbname=b").dbname, "b");
}

#[test]
fn key_value_value_after_equals_skips_whitespace_like_libpq() {
    // libpq skips whitespace after '=', so an "empty" value swallows the
    // next word.
    let c = ok("application_name= dbname=d");
    assert_eq!(c.application_name.as_deref(), Some("dbname=d"));
    assert_eq!(c.dbname, "osuser");
}

#[test]
fn key_value_errors() {
    assert_eq!(fail("host=h foo=bar"), "invalid connection option \"foo\"");
    assert_eq!(
        fail("host"),
        "missing \"=\" after \"host\" in connection info string"
    );
    assert_eq!(
        fail("host=h dbname"),
        "missing \"=\" after \"dbname\" in connection info string"
    );
    assert_eq!(
        fail("host='abc"),
        "unterminated quoted string in connection info string"
    );
    assert_eq!(
        fail(r"host='abc\"),
        "unterminated quoted string in connection info string"
    );
    assert_eq!(
        fail("replication=database"),
        "connection option \"replication\" is not supported by fraiseql-wire"
    );
}

#[test]
fn key_value_errors_never_echo_password_fragments() {
    let m = fail("password=abc s3cr3t host=h");
    assert!(!m.contains("s3cr3t"), "{m}");
    assert!(m.contains("password"), "{m}");
    let m = fail("password=abc s3cr3t=x");
    assert!(!m.contains("s3cr3t"), "{m}");
    let m = fail("password='s3cr3t");
    assert!(!m.contains("s3cr3t"), "{m}");
    // A mistyped URI is not echoed either.
    let m = fail("postgresql:/u:s3cr3t@h/db");
    assert!(!m.contains("s3cr3t"), "{m}");
    assert!(m.contains("postgresql://"), "{m}");
}

// ---- URI form -------------------------------------------------------

#[test]
fn uri_full() {
    let c = ok("postgresql://bob:pw@db.example.com:6543/mydb?application_name=app&sslmode=require");
    assert_eq!(c.hosts, vec![tcp("db.example.com", 6543)]);
    assert_eq!(c.user, "bob");
    assert_eq!(c.password.as_deref(), Some("pw"));
    assert_eq!(c.dbname, "mydb");
    assert_eq!(c.application_name.as_deref(), Some("app"));
    assert_eq!(c.sslmode, SslMode::Require);
    assert_eq!(ok("postgres://bob@h/d"), ok("postgresql://bob@h/d"));
}

#[test]
fn uri_partial_forms() {
    let c = ok("postgresql://h");
    assert_eq!(c.hosts, vec![tcp("h", 5432)]);
    assert_eq!(c.dbname, "osuser");
    let c = ok("postgresql://h:7000");
    assert_eq!(c.hosts, vec![tcp("h", 7000)]);
    let c = ok("postgresql:///db");
    assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
    assert_eq!(c.dbname, "db");
    let c = ok("postgresql://:7000/db");
    assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 7000)]);
    let c = ok("postgresql://user@/db");
    assert_eq!(c.user, "user");
    assert_eq!(c.password, None);
    let c = ok("postgresql://:pw@h");
    assert_eq!(c.user, "osuser");
    assert_eq!(c.password.as_deref(), Some("pw"));
    let c = ok("postgresql://u:@h");
    assert_eq!(c.password, None);
    let c = ok("postgresql://h/db?");
    assert_eq!(c.dbname, "db");
    let c = ok("postgresql://h?dbname=q&&user=z&");
    assert_eq!((c.dbname.as_str(), c.user.as_str()), ("q", "z"));
}

#[test]
fn uri_percent_decoding_everywhere() {
    let c = ok("postgresql://us%40er:p%3Aw%2F%40d@h%2Dx:5%34%332/d%20b?application_name=a%26b&options=-c%20x%3Dy");
    assert_eq!(c.user, "us@er");
    assert_eq!(c.password.as_deref(), Some("p:w/@d"));
    assert_eq!(c.hosts, vec![tcp("h-x", 5432)]);
    assert_eq!(c.dbname, "d b");
    assert_eq!(c.application_name.as_deref(), Some("a&b"));
    assert_eq!(c.options.as_deref(), Some("-c x=y"));
    // '+' is not a space; non-ASCII is fine.
    let c = ok("postgresql://h/a+b%C3%A9");
    assert_eq!(c.dbname, "a+bé");
    // Query keys are decoded too.
    assert_eq!(ok("postgresql://h?db%6eame=x").dbname, "x");
}

#[test]
fn uri_ipv6() {
    let c = ok("postgresql://[::1]:5433/db");
    assert_eq!(c.hosts, vec![tcp("::1", 5433)]);
    let c = ok("postgresql://u@[2001:db8::7]/db");
    assert_eq!(c.hosts, vec![tcp("2001:db8::7", 5432)]);
    let c = ok("postgresql://[fe80::1%25eth0]");
    assert_eq!(c.hosts, vec![tcp("fe80::1%eth0", 5432)]);
    let c = ok("postgresql://[::1]:1,[::2]:2");
    assert_eq!(c.hosts, vec![tcp("::1", 1), tcp("::2", 2)]);
    let c = ok("postgresql://[::1]?sslmode=disable");
    assert_eq!(c.hosts, vec![tcp("::1", 5432)]);
    // Key/value form takes IPv6 without brackets.
    assert_eq!(ok("host=::1 port=5").hosts, vec![tcp("::1", 5)]);
}

#[test]
fn uri_socket_paths() {
    let c = ok("postgresql://%2Fvar%2Frun%2Fpostgresql/db");
    assert_eq!(c.hosts, vec![unix("/var/run/postgresql", 5432)]);
    assert_eq!(c.dbname, "db");
    let c = ok("postgresql://%2Ftmp:6000/db");
    assert_eq!(c.hosts, vec![unix("/tmp", 6000)]);
    let c = ok("postgresql:///db?host=/tmp&port=7000");
    assert_eq!(c.hosts, vec![unix("/tmp", 7000)]);
    let c = ok("postgresql://ignored/db?host=%2Fsock");
    assert_eq!(c.hosts, vec![unix("/sock", 5432)]);
    assert_eq!(ok("host=/tmp").hosts, vec![unix("/tmp", 5432)]);
}

#[test]
fn uri_ssl_true_means_require() {
    assert_eq!(ok("postgresql://h?ssl=true").sslmode, SslMode::Require);
    assert_eq!(
        fail("postgresql://h?ssl=false"),
        "invalid URI query parameter: \"ssl\""
    );
}

#[test]
fn uri_errors() {
    assert_eq!(
        fail("postgresql://h?foo=bar"),
        "invalid URI query parameter: \"foo\""
    );
    assert_eq!(
        fail("postgresql://h?require_auth=md5"),
        "connection option \"require_auth\" is not supported by fraiseql-wire"
    );
    assert_eq!(
        fail("postgresql://host:5432:5433"),
        "invalid port number: \"5432:5433\""
    );
    assert_eq!(
        fail("postgresql://h?sslmode"),
        "missing key/value separator \"=\" in URI query parameter: \"sslmode\""
    );
    assert_eq!(
        fail("postgresql://h?options=a=b"),
        "extra key/value separator \"=\" in URI query parameter \"options\" \
         (percent-encode \"=\" as %3D)"
    );
    assert_eq!(
        fail("postgresql://[::1"),
        "end of string reached when looking for matching \"]\" in IPv6 host address in URI"
    );
    assert_eq!(
        fail("postgresql://[]/db"),
        "IPv6 host address may not be empty in URI"
    );
    assert_eq!(
        fail("postgresql://[::1]x/db"),
        "unexpected character \"x\" at position 19 in URI (expected \":\" or \"/\")"
    );
    assert_eq!(
        fail("postgresql://h/d%zzb"),
        "invalid percent-encoded token in URI database name: \"d%zzb\""
    );
    assert_eq!(
        fail("postgresql://h%2/d"),
        "invalid percent-encoded token in URI host: \"h%2\""
    );
    assert_eq!(
        fail("postgresql://h/d%00"),
        "forbidden value %00 in percent-encoded URI database name: \"d%00\""
    );
    assert_eq!(
        fail("postgresql://h/d%FF"),
        "percent-decoded URI database name is not valid UTF-8: \"d%FF\""
    );
    assert_eq!(
        fail("postgresql://u%ZZ@h"),
        "invalid percent-encoded token in URI user name: \"u%ZZ\""
    );
    assert_eq!(
        fail("postgresql://h?application_name=%G1"),
        "invalid percent-encoded token in URI query parameter \"application_name\": \"%G1\""
    );
}

#[test]
fn uri_errors_never_contain_the_password() {
    let cases = [
        "postgresql://u:s3cr3t@host:99999999/db",
        "postgresql://u:s3cr3t@host/db?foo=1",
        "postgresql://u:s3cr3t@host/db?sslmode=bogus",
        "postgresql://u:s3cr3t%zz@host/db",
        "postgresql://u:s3cr3t%00@host/db",
        "postgresql://u:s3cr3t%FF@host/db",
        "postgresql://host/db?password=s3cr3t%zz",
        "postgresql://host/db?password=s3cr3t=x",
        "postgresql://host/db?password=s3cr3t&connect_timeout=s3cr3t",
        "postgresql://u:s3cr3t@[::1",
    ];
    for case in cases {
        let m = fail(case);
        assert!(!m.contains("s3cr3t"), "{case}: {m}");
    }
    assert_eq!(
        fail("postgresql://u:s3cr3t@host:99999999/db"),
        "invalid port number: \"99999999\""
    );
    assert_eq!(
        fail("postgresql://u:s3cr3t%zz@host/db"),
        "invalid percent-encoded token in URI password"
    );
    // Even a value that happens to equal the password is scrubbed.
    assert_eq!(
        fail("postgresql://u:12345x@host:12345x/db"),
        "invalid port number: \"***\""
    );
    // A short password is hidden only as a whole quoted value, so the
    // rest of the message stays readable.
    assert_eq!(
        fail("postgresql://u:p@host:p/db"),
        "invalid port number: \"***\""
    );
    assert_eq!(
        fail("postgresql://u:p@host/db?sslmode=prefer-p"),
        "invalid sslmode value: \"prefer-p\""
    );
    let env = env_of(&[("PGPASSWORD", "envs3cr3t"), ("PGPORT", "envs3cr3t")]);
    let m = fail_env("", &env);
    assert!(!m.contains("envs3cr3t"), "{m}");
}
