use super::*;

// ---- hosts and ports ------------------------------------------------

#[test]
fn multi_host() {
    let c = ok("host=a,b,c port=1,2,3");
    assert_eq!(c.hosts, vec![tcp("a", 1), tcp("b", 2), tcp("c", 3)]);
    let c = ok("host=a,b port=7");
    assert_eq!(c.hosts, vec![tcp("a", 7), tcp("b", 7)]);
    let c = ok("host=a,/tmp");
    assert_eq!(c.hosts, vec![tcp("a", 5432), unix("/tmp", 5432)]);
    let c = ok("host=a,,b port=1,,3");
    assert_eq!(
        c.hosts,
        vec![tcp("a", 1), unix(DEFAULT_SOCKET_DIR, 5432), tcp("b", 3)]
    );
    let c = ok("postgresql://u@a:1,b,c:3/db");
    assert_eq!(c.hosts, vec![tcp("a", 1), tcp("b", 5432), tcp("c", 3)]);
    let c = ok("postgresql://a,b:9/db");
    assert_eq!(c.hosts, vec![tcp("a", 5432), tcp("b", 9)]);
    assert_eq!(
        fail("host=a,b,c port=1,2"),
        "could not match 2 port numbers to 3 hosts"
    );
    assert_eq!(
        fail("host=a port=1,2"),
        "could not match 2 port numbers to 1 hosts"
    );
}

#[test]
fn ports() {
    assert_eq!(ok("port=1").hosts[0].1, 1);
    assert_eq!(ok("port=65535").hosts[0].1, 65535);
    assert_eq!(ok("port=' 5433 '").hosts[0].1, 5433);
    assert_eq!(ok("port=''").hosts[0].1, 5432);
    for bad in ["0", "65536", "99999999", "abc", "-1", "+5", "54x", "1.5"] {
        assert_eq!(
            fail(&format!("port={bad}")),
            format!("invalid port number: \"{bad}\"")
        );
    }
    assert_eq!(fail("postgresql://h:abc"), "invalid port number: \"abc\"");
}

#[test]
fn hostaddr() {
    let c = ok("hostaddr=10.0.0.1 port=6000");
    assert_eq!(c.hosts, vec![tcp("10.0.0.1", 6000)]);
    assert_eq!(c.hostaddr.as_deref(), Some("10.0.0.1"));
    assert_eq!(c.hostaddr_at(0), Some("10.0.0.1".parse().unwrap()));
    let c = ok("host=db.example,other hostaddr=10.0.0.1,");
    assert_eq!(c.hosts, vec![tcp("db.example", 5432), tcp("other", 5432)]);
    assert_eq!(c.hostaddr_at(0), Some("10.0.0.1".parse().unwrap()));
    assert_eq!(c.hostaddr_at(1), None);
    assert_eq!(c.hostaddr_at(2), None);
    let c = ok("host=,h hostaddr=::1,");
    assert_eq!(c.hosts, vec![tcp("::1", 5432), tcp("h", 5432)]);
    assert_eq!(ok("").hostaddr_at(0), None);
    assert_eq!(
        fail("hostaddr=db.example"),
        "could not parse network address \"db.example\" in hostaddr (expected a numeric IP address)"
    );
    assert_eq!(
        fail("host=a,b hostaddr=1.2.3.4"),
        "could not match 2 host names to 1 hostaddr values"
    );
}

#[test]
fn verify_full_needs_a_host_name_not_only_hostaddr() {
    const MSG: &str = "host name must be specified for a verified SSL connection";
    for s in [
        "hostaddr=127.0.0.1 sslmode=verify-full",
        "host='' hostaddr=127.0.0.1 sslmode=verify-full",
        "host=db.example, hostaddr=,10.0.0.1 sslmode=verify-full",
        // sslrootcert=system makes the default sslmode verify-full
        "hostaddr=127.0.0.1 sslrootcert=system",
    ] {
        let m = fail(s);
        assert!(m.contains(MSG), "{s}: {m}");
    }
    let m = fail("host=a,,b hostaddr=,10.0.0.2, sslmode=verify-full");
    assert!(m.contains("(host 2 of 3, hostaddr 10.0.0.2)"), "{m}");
    // a host name given with the address, or a mode that checks no name, is fine
    ok("host=db.example hostaddr=127.0.0.1 sslmode=verify-full");
    ok("host=127.0.0.1 hostaddr=127.0.0.1 sslmode=verify-full");
    ok("hostaddr=127.0.0.1 sslmode=verify-ca");
    ok("hostaddr=127.0.0.1 sslmode=require");
}

// ---- individual options --------------------------------------------

#[test]
fn sslmode_values() {
    for (s, m) in [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        assert_eq!(ok(&format!("sslmode={s}")).sslmode, m);
        assert_eq!(m.as_str(), s);
        assert_eq!(m.to_string(), s);
    }
    assert_eq!(fail("sslmode=bogus"), "invalid sslmode value: \"bogus\"");
    assert_eq!(
        fail("sslmode=Require"),
        "invalid sslmode value: \"Require\""
    );
    assert_eq!(fail("sslmode=''"), "invalid sslmode value: \"\"");
    assert!(SslMode::Require.requires_tls());
    assert!(!SslMode::Prefer.requires_tls());
    assert!(SslMode::VerifyCa.verifies_certificate());
    assert!(!SslMode::Require.verifies_certificate());
    assert!(SslMode::VerifyFull.verifies_hostname());
    assert!(!SslMode::VerifyCa.verifies_hostname());
}

#[test]
fn connect_timeout_values() {
    assert_eq!(ok("connect_timeout=0").connect_timeout, None);
    assert_eq!(ok("connect_timeout=-5").connect_timeout, None);
    assert_eq!(
        ok("connect_timeout=1").connect_timeout,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        ok("connect_timeout=2").connect_timeout,
        Some(Duration::from_secs(2))
    );
    assert_eq!(
        ok("connect_timeout=' 30 '").connect_timeout,
        Some(Duration::from_secs(30))
    );
    for bad in ["abc", "1.5", "", "99999999999"] {
        assert_eq!(
            fail(&format!("connect_timeout='{bad}'")),
            format!("invalid integer value \"{bad}\" for connection option \"connect_timeout\"")
        );
    }
}

#[test]
fn keepalive_options() {
    let c = ok("keepalives=0 keepalives_idle=30 keepalives_interval=-1 keepalives_count=4");
    assert!(!c.keepalives);
    assert_eq!(c.keepalives_idle, Some(Duration::from_secs(30)));
    assert_eq!(c.keepalives_interval, Some(Duration::from_secs(0)));
    assert_eq!(c.keepalives_count, Some(4));
    assert!(ok("keepalives=1").keepalives);
    assert!(ok("keepalives=7").keepalives);
    assert_eq!(
        fail("keepalives=yes"),
        "invalid integer value \"yes\" for connection option \"keepalives\""
    );
    assert_eq!(
        fail("keepalives_count=x"),
        "invalid integer value \"x\" for connection option \"keepalives_count\""
    );
}

#[test]
fn ssl_files_and_sni() {
    let c = ok("sslrootcert=/ca.pem sslcert=/c.pem sslkey=/k.pem sslsni=0");
    assert_eq!(c.sslrootcert, Some(PathBuf::from("/ca.pem")));
    assert_eq!(c.sslcert, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.sslkey, Some(PathBuf::from("/k.pem")));
    assert!(!c.sslsni);
    assert!(ok("sslsni=1").sslsni);
    assert_eq!(ok("sslrootcert=''").sslrootcert, None);
    assert_eq!(
        ok("sslrootcert=system").sslrootcert,
        Some(PathBuf::from("system"))
    );
    assert_eq!(fail("sslsni=yes"), "invalid sslsni value: \"yes\"");
}

#[test]
fn application_name_and_fallback() {
    assert_eq!(
        ok("fallback_application_name=fb")
            .application_name
            .as_deref(),
        Some("fb")
    );
    assert_eq!(
        ok("fallback_application_name=fb application_name=app")
            .application_name
            .as_deref(),
        Some("app")
    );
    assert_eq!(
        ok("fallback_application_name=fb application_name=''")
            .application_name
            .as_deref(),
        Some("fb")
    );
    let env = env_of(&[("PGAPPNAME", "envapp")]);
    let c = parse_env("fallback_application_name=fb", &env).unwrap();
    assert_eq!(c.application_name.as_deref(), Some("envapp"));
}

#[test]
fn target_session_attrs() {
    use TargetSessionAttrs as T;
    for (v, want) in [
        ("any", T::Any),
        ("read-write", T::ReadWrite),
        ("read-only", T::ReadOnly),
        ("primary", T::Primary),
        ("standby", T::Standby),
        ("prefer-standby", T::PreferStandby),
    ] {
        let c = ok(&format!("target_session_attrs={v}"));
        assert_eq!(c.target_session_attrs, want);
        assert_eq!(want.as_str(), v);
        let c = parse_env("", &env_of(&[("PGTARGETSESSIONATTRS", v)])).unwrap();
        assert_eq!(c.target_session_attrs, want, "from PGTARGETSESSIONATTRS");
    }
    assert_eq!(
        fail("target_session_attrs=bogus"),
        "invalid target_session_attrs value: \"bogus\""
    );
    assert_eq!(
        fail("target_session_attrs=Primary"),
        "invalid target_session_attrs value: \"Primary\""
    );
}

#[test]
fn load_balance_hosts() {
    assert_eq!(
        ok("load_balance_hosts=random").load_balance_hosts,
        LoadBalanceHosts::Random
    );
    assert_eq!(
        ok("load_balance_hosts=disable").load_balance_hosts,
        LoadBalanceHosts::Disable
    );
    let c = parse_env("", &env_of(&[("PGLOADBALANCEHOSTS", "random")])).unwrap();
    assert_eq!(c.load_balance_hosts, LoadBalanceHosts::Random);
    assert_eq!(
        fail("load_balance_hosts=yes"),
        "invalid load_balance_hosts value: \"yes\""
    );
}

#[test]
fn tcp_user_timeout() {
    assert_eq!(
        ok("tcp_user_timeout=1500").tcp_user_timeout,
        Some(Duration::from_millis(1500))
    );
    assert_eq!(
        ok("tcp_user_timeout=-5").tcp_user_timeout,
        Some(Duration::ZERO)
    );
    assert_eq!(
        fail("tcp_user_timeout=1s"),
        "invalid integer value \"1s\" for connection option \"tcp_user_timeout\""
    );
}

#[test]
fn client_encoding() {
    ok("client_encoding=UTF8");
    ok("client_encoding=utf8");
    ok("client_encoding=UTF-8");
    assert_eq!(
        fail("client_encoding=LATIN1"),
        "client_encoding \"LATIN1\" is not supported (only UTF8 is)"
    );
    assert_eq!(
        fail_env("", &env_of(&[("PGCLIENTENCODING", "SQL_ASCII")])),
        "client_encoding \"SQL_ASCII\" is not supported (only UTF8 is)"
    );
}

#[test]
fn gssencmode_channel_binding_and_ignored_options() {
    ok("gssencmode=disable");
    ok("gssencmode=prefer");
    assert_eq!(
        fail("gssencmode=require"),
        "gssencmode value \"require\" is not supported (no GSSAPI support)"
    );
    assert_eq!(fail("gssencmode=x"), "invalid gssencmode value: \"x\"");
    assert_eq!(
        ok("channel_binding=disable").channel_binding,
        ChannelBindingMode::Disable
    );
    assert_eq!(
        ok("channel_binding=prefer").channel_binding,
        ChannelBindingMode::Prefer
    );
    assert_eq!(
        ok("channel_binding=require").channel_binding,
        ChannelBindingMode::Require
    );
    assert_eq!(
        fail("channel_binding=maybe"),
        "invalid channel_binding value: \"maybe\""
    );
    assert_eq!(
        ok("sslcompression=1 krbsrvname=postgres gsslib=gssapi"),
        ok("")
    );
    assert_eq!(
        fail("service=mydb"),
        "connection option \"service\" (\"mydb\") is not supported: there is no pg_service.conf support"
    );
    ok("service=''");
}

// ---- environment ----------------------------------------------------

#[test]
fn environment_defaults() {
    let env = env_of(&[
        ("PGHOST", "envhost,/envsock"),
        ("PGPORT", "1111,2222"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGAPPNAME", "envapp"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("PGOPTIONS", "-c x=1"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "/r.pem"),
        ("PGSSLCERT", "/c.pem"),
        ("PGSSLKEY", "/k.pem"),
        ("PGTARGETSESSIONATTRS", "any"),
        ("PGCHANNELBINDING", "require"),
    ]);
    let c = parse_env("", &env).unwrap();
    assert_eq!(c.hosts, vec![tcp("envhost", 1111), unix("/envsock", 2222)]);
    assert_eq!(c.user, "envuser");
    assert_eq!(c.password.as_deref(), Some("envpw"));
    assert_eq!(c.dbname, "envdb");
    assert_eq!(c.application_name.as_deref(), Some("envapp"));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(c.options.as_deref(), Some("-c x=1"));
    assert_eq!(c.sslmode, SslMode::VerifyFull);
    assert_eq!(c.sslrootcert, Some(PathBuf::from("/r.pem")));
    assert_eq!(c.sslcert, Some(PathBuf::from("/c.pem")));
    assert_eq!(c.sslkey, Some(PathBuf::from("/k.pem")));
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Any);
    assert_eq!(c.channel_binding, ChannelBindingMode::Require);

    let c = parse_env("", &env_of(&[("PGHOSTADDR", "127.0.0.1")])).unwrap();
    assert_eq!(c.hosts, vec![tcp("127.0.0.1", 5432)]);
    assert_eq!(c.hostaddr.as_deref(), Some("127.0.0.1"));
}

#[test]
fn explicit_values_win_over_environment() {
    let env = env_of(&[
        ("PGHOST", "envhost"),
        ("PGPORT", "1111"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGSSLMODE", "verify-full"),
        ("PGCONNECT_TIMEOUT", "bogus"),
    ]);
    let c = parse_env(
        "host=h port=2 user=u password=p dbname=d sslmode=disable connect_timeout=0",
        &env,
    )
    .unwrap();
    assert_eq!(c.hosts, vec![tcp("h", 2)]);
    assert_eq!(c.user, "u");
    assert_eq!(c.password.as_deref(), Some("p"));
    assert_eq!(c.dbname, "d");
    assert_eq!(c.sslmode, SslMode::Disable);
    assert_eq!(c.connect_timeout, None);

    let c = parse_env(
        "postgresql://u:p@h:2/d?sslmode=disable&connect_timeout=0",
        &env,
    )
    .unwrap();
    assert_eq!(c.hosts, vec![tcp("h", 2)]);
    assert_eq!((c.user.as_str(), c.dbname.as_str()), ("u", "d"));
    assert_eq!(c.sslmode, SslMode::Disable);

    // Parts absent from a URI still come from the environment.
    let c = parse_env("postgresql://h/d?connect_timeout=0", &env).unwrap();
    assert_eq!(c.hosts, vec![tcp("h", 1111)]);
    assert_eq!(c.user, "envuser");

    // An explicit empty value overrides the environment with the built-in
    // default, as libpq.
    let c = parse_env("host='' port='' user='' dbname='' connect_timeout=0", &env).unwrap();
    assert_eq!(c.hosts, vec![unix(DEFAULT_SOCKET_DIR, 5432)]);
    assert_eq!(c.user, "osuser");
    assert_eq!(c.dbname, "osuser");
}

#[test]
fn empty_environment_variables_are_unset() {
    let env = env_of(&[("PGSSLMODE", ""), ("PGHOST", ""), ("PGUSER", "")]);
    let c = parse_env("", &env).unwrap();
    assert_eq!(c, ok(""));
}

#[test]
fn environment_errors() {
    assert_eq!(
        fail_env("", &env_of(&[("PGSSLMODE", "nope")])),
        "invalid sslmode value: \"nope\""
    );
    assert_eq!(
        fail_env("", &env_of(&[("PGPORT", "0")])),
        "invalid port number: \"0\""
    );
    assert_eq!(
        fail_env("", &env_of(&[("PGCONNECT_TIMEOUT", "soon")])),
        "invalid integer value \"soon\" for connection option \"connect_timeout\""
    );
    assert_eq!(
        fail_env("", &env_of(&[("PGSERVICE", "svc")])),
        "connection option \"service\" (\"svc\") is not supported: there is no pg_service.conf support"
    );
}

#[test]
fn default_user_lookup_failure_is_reported_only_when_needed() {
    let no_user = || Err(err("could not look up local user ID 4242: boom"));
    let empty = |_: &str| None;
    assert_eq!(
        parse_inner("host=h", &empty, &no_user).unwrap_err().message,
        "could not look up local user ID 4242: boom"
    );
    assert_eq!(parse_inner("user=u", &empty, &no_user).unwrap().user, "u");
}
