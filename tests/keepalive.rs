//! Connection keepalives (`keepalives`, `keepalives_idle`, `keepalives_interval`,
//! `keepalives_count`) and `tcp_user_timeout` are applied to the TCP socket, and a server that
//! stops answering is detected within the configured time.
//!
//! A silent peer is one whose packets stop arriving (a host that died, a network cut), not one
//! that merely stops sending: its kernel would still acknowledge keepalive probes. To cut the
//! network without touching the machine's, the test runs itself again in a network namespace
//! of its own (`unshare --net`: only its loopback, gone when it exits), with the fake server
//! (benches/fakepg) inside, and drops the fake server's TCP packets with nftables. What each
//! knob detects:
//!
//! * keepalive probes find a silent peer while the client waits for rows (it sends nothing
//!   itself): after `keepalives_idle` + `keepalives_count` x `keepalives_interval`;
//! * `tcp_user_timeout` bounds how long sent data may stay unacknowledged: a query sent into a
//!   cut network fails after it (the kernel's default retransmissions take about 15 minutes);
//!   with keepalives on, Linux also applies it to the probes, so it cuts their count short.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use fraiseql_wire::{Client, Error, ErrorKind, Next, Query, Wait};

const CHILD: &str = "FW_KEEPALIVE_NETNS";

fn run(cmd: &str, args: &[&str]) {
    support::run(
        Command::new(cmd).args(args),
        &format!("{cmd} {args:?} (scripts/install-deps installs it)"),
    );
}

/// Drop every TCP packet to or from `port` in this namespace (both directions pass the
/// output hook on the loopback).
fn cut_network(port: &str) {
    run("nft", &["add", "table", "inet", "fw_cut"]);
    run(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "fw_cut",
            "out",
            "{ type filter hook output priority 0; }",
        ],
    );
    run(
        "nft",
        &[
            "add", "rule", "inet", "fw_cut", "out", "tcp", "sport", port, "drop",
        ],
    );
    run(
        "nft",
        &[
            "add", "rule", "inet", "fw_cut", "out", "tcp", "dport", port, "drop",
        ],
    );
}

fn heal_network() {
    run("nft", &["delete", "table", "inet", "fw_cut"]);
}

/// Wait for the next row or the end, and say how long it took.
fn next_outcome(stream: &mut fraiseql_wire::stream::Stream) -> (Result<Next<'_>, Error>, Duration) {
    let t = Instant::now();
    let r = stream.next(Wait::For(Duration::from_secs(60)));
    (r, t.elapsed())
}

fn assert_broken(what: &str, r: Result<String, Error>, took: Duration, within: Duration) {
    let e = match r {
        Ok(got) => panic!("{what}: expected a broken connection, got {got}"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}");
    assert!(
        e.message().contains("timed out"),
        "{what}: the kernel's ETIMEDOUT: {e}"
    );
    assert!(
        took < within,
        "{what}: detected after {took:?}, the settings allow {within:?}"
    );
    eprintln!("{what}: detected after {took:?}: {e}");
}

fn in_namespace() {
    run("ip", &["link", "set", "lo", "up"]);
    let f = support::fakepg::fakepg();
    let base = |extra: &str| format!("{} connect_timeout=5 {extra}", f.tcp_conninfo());

    // 1. Keepalive probes while the client waits for rows (stall: no row for 10 minutes).
    // Probes after 1 s idle, every 1 s, 2 unanswered: about 3 s.
    let client = Client::connect(&base(
        "keepalives_idle=1 keepalives_interval=1 keepalives_count=2",
    ))
    .expect("connect to the fake server");
    let mut stream = client
        .execute(&Query::new("w_10_430__stall600000").unwrap())
        .expect("the query starts");
    cut_network(&f.port);
    let (r, took) = next_outcome(&mut stream);
    assert_broken(
        "keepalives, waiting for rows",
        r.map(|n| format!("{n:?}")),
        took,
        Duration::from_secs(15),
    );
    assert!(took >= Duration::from_millis(1500), "too early: {took:?}");
    drop(stream);
    drop(client);
    heal_network();

    // 2. The same probes, 100 of them (about 100 s), cut short by tcp_user_timeout=2500.
    let client = Client::connect(&base(
        "keepalives_idle=1 keepalives_interval=1 keepalives_count=100 tcp_user_timeout=2500",
    ))
    .expect("connect");
    let mut stream = client
        .execute(&Query::new("w_10_430__stall600000").unwrap())
        .expect("the query starts");
    cut_network(&f.port);
    let (r, took) = next_outcome(&mut stream);
    assert_broken(
        "tcp_user_timeout over keepalives",
        r.map(|n| format!("{n:?}")),
        took,
        Duration::from_secs(15),
    );
    drop(stream);
    drop(client);
    heal_network();

    // 3. No keepalives: a query sent into the cut network stays unacknowledged, and
    // tcp_user_timeout=2000 ends the connection.
    let client = Client::connect(&base("keepalives=0 tcp_user_timeout=2000")).expect("connect");
    let rows = {
        let mut s = client
            .execute(&Query::new("w_small").unwrap())
            .expect("w_small");
        let mut n = 0;
        while let Next::Row(_) = s.next(Wait::Forever).expect("rows") {
            n += 1;
        }
        n
    };
    assert_eq!(rows, 10);
    // The pooled connection is idle now; the network goes silent under it.
    cut_network(&f.port);
    let t = Instant::now();
    let r = client
        .execute(&Query::new("w_small").unwrap())
        .and_then(|mut s| {
            let mut n = 0;
            loop {
                match s.next(Wait::For(Duration::from_secs(60)))? {
                    Next::Row(_) => n += 1,
                    other => return Ok(format!("{other:?} after {n} rows")),
                }
            }
        });
    let took = t.elapsed();
    // connect_timeout=5 bounds the new connection the client opens after the pooled one
    // failed; both fail.
    let e = match r {
        Ok(got) => panic!("tcp_user_timeout: expected a failure, got {got}"),
        Err(e) => e,
    };
    assert!(
        matches!(e.kind(), ErrorKind::Io | ErrorKind::Connect),
        "tcp_user_timeout: {e}"
    );
    assert!(
        took < Duration::from_secs(20),
        "tcp_user_timeout: detected after {took:?}"
    );
    eprintln!("tcp_user_timeout, a query into a cut network: failed after {took:?}: {e}");
    heal_network();
}

#[test]
fn a_silent_server_is_detected_within_the_configured_time() {
    if std::env::var_os(CHILD).is_some() {
        in_namespace();
        return;
    }
    // Build the fake server here: the namespace has no network for cargo.
    support::fakepg::fakepg_binary();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(&exe)
        .args([
            "--exact",
            "a_silent_server_is_detected_within_the_configured_time",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the test in its network namespace failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the test did not run in the namespace:\n{stdout}"
    );
}

#[test]
fn keepalive_settings_reach_the_socket() {
    // The values are checked on the socket by the kernel: one it refuses fails the
    // connection, as in libpq (TCP_KEEPCNT accepts at most 127).
    let f = support::fakepg::fakepg();
    let e = Client::connect(&format!("{} keepalives_count=1000", f.tcp_conninfo()))
        .err()
        .expect("TCP_KEEPCNT=1000 is refused by Linux");
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.message().contains("keepalive"), "{e}");
    let e = Client::connect(&format!("{} keepalives_idle=100000", f.tcp_conninfo()))
        .err()
        .expect("TCP_KEEPIDLE above 32767 s is refused by Linux");
    assert!(e.message().contains("keepalive"), "{e}");
    Client::connect(&format!(
        "{} keepalives_idle=30 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=10000",
        f.tcp_conninfo()
    ))
    .expect("valid settings");
}
