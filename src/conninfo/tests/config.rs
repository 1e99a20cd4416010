use super::*;

// ---- defaults -------------------------------------------------------

#[test]
fn empty_string_gives_all_defaults() {
    let c = ok("");
    assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
    assert_eq!(c.hostaddr, None);
    assert_eq!(c.user, "osuser");
    assert_eq!(c.dbname, "osuser");
    assert_eq!(c.password, None);
    assert_eq!(c.application_name, None);
    assert_eq!(c.connect_timeout, None);
    assert_eq!(c.options, None);
    assert_eq!(c.sslmode, SslMode::Prefer);
    assert_eq!(c.sslrootcert, None);
    assert_eq!(c.sslcert, None);
    assert_eq!(c.sslkey, None);
    assert!(c.sslsni);
    assert!(c.keepalives);
    assert_eq!(c.keepalives_idle, None);
    assert_eq!(c.keepalives_interval, None);
    assert_eq!(c.keepalives_count, None);
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
    assert_eq!(c.load_balance_hosts, LoadBalanceHosts::Disable);
    assert_eq!(c.tcp_user_timeout, None);
    assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
    assert_eq!(ok("   \t\n "), c);
    assert_eq!(ok("postgresql://"), c);
    assert_eq!(ok("postgres://"), c);
}

#[test]
fn default_user_is_the_effective_os_user() {
    let expected = os_user_name().expect("the test runs as a user with a passwd entry");
    let empty = |_: &str| None;
    let c = ConnConfig::parse_with_env("host=h", &empty).unwrap();
    assert_eq!(c.user, expected);
    assert_eq!(c.dbname, expected);
}

#[test]
fn parse_with_real_environment() {
    // Everything that matters is explicit, so the ambient environment
    // cannot change the outcome.
    let c = ConnConfig::parse(
        "host=db.example port=6000 user=u dbname=d password=p service='' \
         client_encoding=UTF8 sslmode=disable gssencmode=disable",
    )
    .unwrap();
    assert_eq!(c.hosts, vec![tcp("db.example", 6000)]);
    assert_eq!(c.user, "u");
    assert_eq!(c.password.as_deref(), Some("p"));
    assert_eq!(c.sslmode, SslMode::Disable);
}

// ---- Debug, describe, startup parameters ---------------------------

#[test]
fn debug_redacts_password() {
    let c = ok("host=h user=u password=hunter2 dbname=d");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("password: Some(\"***\")"), "{dbg}");
    assert!(dbg.contains("user: \"u\""), "{dbg}");
    let alt = format!("{c:#?}");
    assert!(!alt.contains("hunter2"), "{alt}");
    assert!(format!("{:?}", ok("host=h")).contains("password: None"));
}

#[test]
fn describe_is_safe() {
    let c = ok("host=127.0.0.1 port=5432 user=bob dbname=x password=hunter2");
    assert_eq!(c.describe(), "host=127.0.0.1 port=5432 user=bob dbname=x");
    let c = ok("host=a,/tmp port=1,2 user='b b' dbname=it\\'s");
    assert_eq!(
        c.describe(),
        r"host=a,/tmp port=1,2 user='b b' dbname='it\'s'"
    );
    let c = ok("host=h hostaddr=10.0.0.1 user=u dbname=d");
    assert_eq!(
        c.describe(),
        "host=h hostaddr=10.0.0.1 port=5432 user=u dbname=d"
    );
    let c = ok("host=a,b port=7 user=u dbname=d");
    assert_eq!(c.describe(), "host=a,b port=7 user=u dbname=d");
    // The description parses back to the same targets.
    let back = ok(&ok("host=a,/tmp port=1,2 user='b b' dbname=it\\'s").describe());
    assert_eq!(back.hosts, vec![tcp("a", 1), unix("/tmp", 2)]);
    assert_eq!((back.user.as_str(), back.dbname.as_str()), ("b b", "it's"));
}

#[test]
fn startup_params() {
    let s = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        ok("user=u dbname=d").startup_params(),
        s(&[
            ("user", "u"),
            ("database", "d"),
            ("client_encoding", "UTF8")
        ])
    );
    assert_eq!(
        ok("user=u dbname=d application_name=app options='-c geqo=off' password=pw")
            .startup_params(),
        s(&[
            ("user", "u"),
            ("database", "d"),
            ("application_name", "app"),
            ("options", "-c geqo=off"),
            ("client_encoding", "UTF8"),
        ])
    );
    assert_eq!(
        ok("user=u options=''").startup_params(),
        s(&[
            ("user", "u"),
            ("database", "u"),
            ("client_encoding", "UTF8")
        ])
    );
}
