//! Host selection, without I/O: the order in which the hosts of a connection string are tried
//! (`load_balance_hosts`), whether a started session qualifies (`target_session_attrs`, with
//! libpq 14+'s checks), which failures move on to the next host, and the error that names
//! every host tried when none qualified. The connection code in [`super`] performs the steps
//! these functions decide.
//!
//! The rules are libpq's (PostgreSQL 15/16 `fe-connect.c`):
//!
//! * `load_balance_hosts=random` shuffles the hosts (Fisher-Yates) once per connection
//!   attempt, then the addresses of each host name when it is resolved.
//! * A host is skipped when it cannot be reached (refused, unresolvable, timed out), when it
//!   answers the startup with SQLSTATE 57P03 ("cannot connect now": starting up, shutting
//!   down, or a standby without hot standby), and when its session does not have the
//!   attributes asked for. Any other error (authentication, an unknown database) ends the
//!   attempt at once.
//! * The session's attributes come from the `in_hot_standby` and
//!   `default_transaction_read_only` values that PostgreSQL 14+ reports at startup; a server
//!   that reported neither is asked with `SHOW transaction_read_only` (read-write, read-only)
//!   or `SELECT pg_catalog.pg_is_in_recovery()` (primary, standby, prefer-standby).
//! * `prefer-standby` first looks for a standby over all hosts; when none is one, it goes over
//!   all hosts again accepting any server.

use std::fmt;

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use crate::conninfo::{LoadBalanceHosts, TargetSessionAttrs};
use crate::error::{Error, ErrorKind};

/// A check query's exchange (the simple query protocol), without I/O: the request's bytes,
/// then each message of the answer until ReadyForQuery, which gives the first column of the
/// first row as text (`None` when the server answered with an error, or with no row).
/// ParameterStatus messages on the way are recorded in the session's state.
#[derive(Debug, Default)]
pub(crate) struct ValueQuery {
    value: Option<String>,
    failed: bool,
}

impl ValueQuery {
    pub(crate) fn request(sql: &str) -> Result<BytesMut, Error> {
        let mut out = BytesMut::new();
        frontend::query(sql, &mut out)
            .map_err(|e| Error::invalid(format!("invalid query: {e}")))?;
        Ok(out)
    }

    /// Take one message of the answer; `Some` (the value) at ReadyForQuery.
    pub(crate) fn on_message(
        &mut self,
        msg: Message,
        session: &mut SessionState,
    ) -> Option<Option<String>> {
        match msg {
            Message::DataRow(row) if self.value.is_none() => {
                use fallible_iterator::FallibleIterator;
                if let Ok(Some(Some(r))) = row.ranges().next() {
                    self.value = Some(String::from_utf8_lossy(&row.buffer()[r]).into_owned());
                }
            }
            Message::ErrorResponse(_) => self.failed = true,
            Message::ParameterStatus(p) => {
                if let (Ok(name), Ok(v)) = (p.name(), p.value()) {
                    session.parameter(name, v);
                }
            }
            Message::ReadyForQuery(_) => {
                return Some(if self.failed { None } else { self.value.take() })
            }
            _ => {}
        }
        None
    }
}

/// What is known of a session's attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    /// `in_hot_standby`: the server is a standby in recovery.
    pub in_hot_standby: Option<bool>,
    /// `default_transaction_read_only`.
    pub default_transaction_read_only: Option<bool>,
    /// The server reported the two values itself (PostgreSQL 14+), and reports their changes
    /// with each ReadyForQuery (so one round trip refreshes them).
    pub reported: bool,
}

impl SessionState {
    /// A ParameterStatus message: records the two values that matter here.
    pub fn parameter(&mut self, name: &str, value: &str) {
        let on = value == "on";
        match name {
            "in_hot_standby" => {
                self.in_hot_standby = Some(on);
                self.reported = true;
            }
            "default_transaction_read_only" => {
                self.default_transaction_read_only = Some(on);
                self.reported = true;
            }
            _ => {}
        }
    }

    /// The answer to a check query (libpq's reading: a value starting with "on" / "t").
    ///
    /// `transaction_read_only = on` proves that one of the two settings is on without saying
    /// which; as libpq does, both are then taken as on (and both as off for "off").
    pub fn answer(&mut self, query: CheckQuery, value: &str) {
        match query {
            CheckQuery::TransactionReadOnly => {
                let on = value.starts_with("on");
                self.default_transaction_read_only = Some(on);
                self.in_hot_standby = Some(on);
            }
            CheckQuery::InRecovery => self.in_hot_standby = Some(value.starts_with('t')),
        }
    }

    /// Forget the values that were learnt by asking (before a re-check of a pooled session:
    /// only reported values stay current by themselves).
    pub fn forget_answers(&mut self) {
        if !self.reported {
            *self = SessionState::default();
        }
    }
}

/// A query that tells a session's attributes when the server did not report them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckQuery {
    /// `SHOW transaction_read_only`.
    TransactionReadOnly,
    /// `SELECT pg_catalog.pg_is_in_recovery()`.
    InRecovery,
}

impl CheckQuery {
    pub fn sql(self) -> &'static str {
        match self {
            CheckQuery::TransactionReadOnly => "SHOW transaction_read_only",
            CheckQuery::InRecovery => "SELECT pg_catalog.pg_is_in_recovery()",
        }
    }
}

/// Why a started session does not qualify (libpq's messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// read-write asked, the session is read-only.
    ReadOnly,
    /// read-only asked, the session accepts writes.
    NotReadOnly,
    /// primary asked, the server is a standby.
    HotStandby,
    /// standby (or prefer-standby's first pass) asked, the server is not a standby.
    NotHotStandby,
    /// The check query failed.
    CheckFailed(CheckQuery),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::ReadOnly => f.write_str("session is read-only"),
            Rejection::NotReadOnly => f.write_str("session is not read-only"),
            Rejection::HotStandby => f.write_str("server is in hot standby mode"),
            Rejection::NotHotStandby => f.write_str("server is not in hot standby mode"),
            Rejection::CheckFailed(q) => write!(f, "\"{}\" failed", q.sql()),
        }
    }
}

/// What to do with a started session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// It qualifies.
    Accept,
    /// It does not: close it and try the next host.
    Reject(Rejection),
    /// Ask the server, record the answer ([`SessionState::answer`]) and check again.
    Ask(CheckQuery),
}

/// Which pass over the host list an attempt belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    First,
    /// prefer-standby's second pass, which accepts any server.
    Second,
}

/// Whether a session with `state` qualifies for `want` in `pass` (libpq's
/// `CONNECTION_CHECK_TARGET`).
pub fn check(want: TargetSessionAttrs, pass: Pass, state: SessionState) -> Check {
    use TargetSessionAttrs as T;
    match (want, pass) {
        (T::Any, _) | (T::PreferStandby, Pass::Second) => Check::Accept,
        (T::ReadWrite | T::ReadOnly, _) => {
            let (Some(ro), Some(hs)) = (state.default_transaction_read_only, state.in_hot_standby)
            else {
                return Check::Ask(CheckQuery::TransactionReadOnly);
            };
            let read_only = ro || hs;
            match (want, read_only) {
                (T::ReadWrite, true) => Check::Reject(Rejection::ReadOnly),
                (T::ReadOnly, false) => Check::Reject(Rejection::NotReadOnly),
                _ => Check::Accept,
            }
        }
        (T::Primary | T::Standby | T::PreferStandby, _) => {
            let Some(hs) = state.in_hot_standby else {
                return Check::Ask(CheckQuery::InRecovery);
            };
            match (want, hs) {
                (T::Primary, true) => Check::Reject(Rejection::HotStandby),
                (T::Standby | T::PreferStandby, false) => Check::Reject(Rejection::NotHotStandby),
                _ => Check::Accept,
            }
        }
    }
}

/// Shuffle as libpq does (Durstenfeld's Fisher-Yates): `pick(i)` returns a uniform index in
/// `0..=i`.
pub fn shuffle<T>(items: &mut [T], pick: &mut dyn FnMut(usize) -> usize) {
    for i in (1..items.len()).rev() {
        let j = pick(i).min(i);
        items.swap(i, j);
    }
}

/// The order in which to try the `n` hosts (indices into the host list).
pub fn host_order(
    n: usize,
    balance: LoadBalanceHosts,
    pick: &mut dyn FnMut(usize) -> usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if balance == LoadBalanceHosts::Random {
        shuffle(&mut order, pick);
    }
    order
}

/// Every attempt in order: each host of `order` in the first pass, and for prefer-standby all
/// of them again in the second.
pub fn attempts(want: TargetSessionAttrs, order: &[usize]) -> Vec<(Pass, usize)> {
    let mut out: Vec<(Pass, usize)> = order.iter().map(|&i| (Pass::First, i)).collect();
    if want == TargetSessionAttrs::PreferStandby {
        out.extend(order.iter().map(|&i| (Pass::Second, i)));
    }
    out
}

/// Whether a failed attempt on one host moves on to the next: an unreachable host (a
/// connection error without a server error), or a server that cannot accept connections now
/// (SQLSTATE 57P03). Everything else (authentication, TLS, a missing database) ends the
/// attempt, as in libpq.
pub fn moves_on(e: &Error) -> bool {
    match e.sqlstate() {
        Some(state) => state == "57P03",
        None => e.kind() == ErrorKind::Connect,
    }
}

/// One host that was tried and skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// `host:port` or the socket path.
    pub host: String,
    pub pass: Pass,
    /// Why, for people.
    pub reason: String,
}

/// The error when no host qualified: every host tried, and why it was skipped.
pub fn no_host(want: TargetSessionAttrs, skipped: &[Skipped]) -> Error {
    let list: Vec<String> = skipped
        .iter()
        .map(|s| match s.pass {
            Pass::First => format!("{}: {}", s.host, s.reason),
            Pass::Second => format!("{} (second pass, any server): {}", s.host, s.reason),
        })
        .collect();
    let head = match want {
        TargetSessionAttrs::Any => "could not connect to the server".to_string(),
        _ => format!("no host qualifies for target_session_attrs={want}"),
    };
    Error::new(ErrorKind::Connect, format!("{head}: {}", list.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetSessionAttrs as T;

    const PRIMARY: SessionState = SessionState {
        in_hot_standby: Some(false),
        default_transaction_read_only: Some(false),
        reported: true,
    };
    const STANDBY: SessionState = SessionState {
        in_hot_standby: Some(true),
        default_transaction_read_only: Some(false),
        reported: true,
    };
    /// A primary with default_transaction_read_only=on.
    const READ_ONLY_PRIMARY: SessionState = SessionState {
        in_hot_standby: Some(false),
        default_transaction_read_only: Some(true),
        reported: true,
    };
    const UNKNOWN: SessionState = SessionState {
        in_hot_standby: None,
        default_transaction_read_only: None,
        reported: false,
    };

    #[test]
    fn reported_values_decide_without_a_query() {
        let cases = [
            (T::Any, STANDBY, Check::Accept),
            (T::ReadWrite, PRIMARY, Check::Accept),
            (T::ReadWrite, STANDBY, Check::Reject(Rejection::ReadOnly)),
            (
                T::ReadWrite,
                READ_ONLY_PRIMARY,
                Check::Reject(Rejection::ReadOnly),
            ),
            (T::ReadOnly, STANDBY, Check::Accept),
            (T::ReadOnly, READ_ONLY_PRIMARY, Check::Accept),
            (T::ReadOnly, PRIMARY, Check::Reject(Rejection::NotReadOnly)),
            (T::Primary, PRIMARY, Check::Accept),
            // A read-only primary is still a primary.
            (T::Primary, READ_ONLY_PRIMARY, Check::Accept),
            (T::Primary, STANDBY, Check::Reject(Rejection::HotStandby)),
            (T::Standby, STANDBY, Check::Accept),
            (
                T::Standby,
                READ_ONLY_PRIMARY,
                Check::Reject(Rejection::NotHotStandby),
            ),
            (T::PreferStandby, STANDBY, Check::Accept),
            (
                T::PreferStandby,
                PRIMARY,
                Check::Reject(Rejection::NotHotStandby),
            ),
        ];
        for (want, state, expected) in cases {
            assert_eq!(
                check(want, Pass::First, state),
                expected,
                "{want} {state:?}"
            );
        }
        assert_eq!(
            check(T::PreferStandby, Pass::Second, PRIMARY),
            Check::Accept
        );
    }

    #[test]
    fn servers_that_report_nothing_are_asked() {
        assert_eq!(check(T::Any, Pass::First, UNKNOWN), Check::Accept);
        for want in [T::ReadWrite, T::ReadOnly] {
            assert_eq!(
                check(want, Pass::First, UNKNOWN),
                Check::Ask(CheckQuery::TransactionReadOnly)
            );
        }
        for want in [T::Primary, T::Standby, T::PreferStandby] {
            assert_eq!(
                check(want, Pass::First, UNKNOWN),
                Check::Ask(CheckQuery::InRecovery)
            );
        }
        // Only one of the two reported (cannot happen with PostgreSQL, which reports both):
        // read-write still asks.
        let half = SessionState {
            in_hot_standby: Some(false),
            ..UNKNOWN
        };
        assert_eq!(
            check(T::ReadWrite, Pass::First, half),
            Check::Ask(CheckQuery::TransactionReadOnly)
        );
        assert_eq!(check(T::Primary, Pass::First, half), Check::Accept);
    }

    #[test]
    fn answers_are_read_as_libpq_reads_them() {
        let mut s = UNKNOWN;
        s.answer(CheckQuery::TransactionReadOnly, "on");
        assert_eq!(
            check(T::ReadWrite, Pass::First, s),
            Check::Reject(Rejection::ReadOnly)
        );
        assert_eq!(check(T::ReadOnly, Pass::First, s), Check::Accept);
        let mut s = UNKNOWN;
        s.answer(CheckQuery::TransactionReadOnly, "off");
        assert_eq!(check(T::ReadWrite, Pass::First, s), Check::Accept);
        let mut s = UNKNOWN;
        s.answer(CheckQuery::InRecovery, "t");
        assert_eq!(check(T::Standby, Pass::First, s), Check::Accept);
        assert_eq!(
            check(T::Primary, Pass::First, s),
            Check::Reject(Rejection::HotStandby)
        );
        let mut s = UNKNOWN;
        s.answer(CheckQuery::InRecovery, "f");
        assert_eq!(check(T::Primary, Pass::First, s), Check::Accept);
    }

    #[test]
    fn parameter_status_is_recorded() {
        let mut s = SessionState::default();
        s.parameter("server_version", "15.8");
        assert_eq!(s, SessionState::default());
        s.parameter("in_hot_standby", "on");
        s.parameter("default_transaction_read_only", "off");
        assert_eq!(s, STANDBY);
        // After promotion the server reports the change with the next ReadyForQuery.
        s.parameter("in_hot_standby", "off");
        assert_eq!(s, PRIMARY);
    }

    #[test]
    fn forgetting_keeps_reported_values() {
        let mut s = STANDBY;
        s.forget_answers();
        assert_eq!(s, STANDBY);
        let mut s = UNKNOWN;
        s.answer(CheckQuery::InRecovery, "t");
        s.forget_answers();
        assert_eq!(s, UNKNOWN);
    }

    #[test]
    fn prefer_standby_makes_a_second_pass() {
        assert_eq!(
            attempts(T::PreferStandby, &[1, 0]),
            vec![
                (Pass::First, 1),
                (Pass::First, 0),
                (Pass::Second, 1),
                (Pass::Second, 0)
            ]
        );
        for want in [T::Any, T::ReadWrite, T::ReadOnly, T::Primary, T::Standby] {
            assert_eq!(
                attempts(want, &[0, 1]),
                vec![(Pass::First, 0), (Pass::First, 1)]
            );
        }
    }

    #[test]
    fn disable_keeps_the_order_and_random_shuffles() {
        let mut never = |_: usize| -> usize { panic!("no randomness without balancing") };
        assert_eq!(
            host_order(4, LoadBalanceHosts::Disable, &mut never),
            vec![0, 1, 2, 3]
        );
        // Fisher-Yates from the end: i=3 swaps with pick(3), then i=2, then i=1.
        let mut picks = vec![0usize, 0, 0].into_iter();
        let mut pick = |_: usize| picks.next().unwrap();
        assert_eq!(
            host_order(4, LoadBalanceHosts::Random, &mut pick),
            vec![1, 2, 3, 0]
        );
        // Each pick stays within 0..=i: a uniform source gives every order.
        let mut seen = std::collections::HashSet::new();
        let mut state = 12345u64;
        let mut lcg = |i: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % (i + 1)
        };
        for _ in 0..500 {
            seen.insert(host_order(3, LoadBalanceHosts::Random, &mut lcg));
        }
        assert_eq!(seen.len(), 6, "{seen:?}");
    }

    #[test]
    fn which_failures_move_on() {
        let refused = Error::new(ErrorKind::Connect, "could not connect: refused");
        assert!(moves_on(&refused));
        let starting = Error::server(
            ErrorKind::Connect,
            crate::error::ServerError {
                severity: "FATAL".into(),
                sqlstate: "57P03".into(),
                message: "the database system is starting up".into(),
                ..Default::default()
            },
        );
        assert!(moves_on(&starting));
        let no_db = Error::server(
            ErrorKind::Connect,
            crate::error::ServerError {
                sqlstate: "3D000".into(),
                ..Default::default()
            },
        );
        assert!(!moves_on(&no_db));
        let auth = Error::new(ErrorKind::Auth, "password authentication failed");
        assert!(!moves_on(&auth));
        let tls = Error::new(ErrorKind::Tls, "certificate verify failed");
        assert!(!moves_on(&tls));
    }

    #[test]
    fn the_error_names_every_host_and_why() {
        let skipped = [
            Skipped {
                host: "127.0.0.1:5432".into(),
                pass: Pass::First,
                reason: "server is in hot standby mode".into(),
            },
            Skipped {
                host: "127.0.0.1:5433".into(),
                pass: Pass::First,
                reason: "could not connect to 127.0.0.1:5433: Connection refused".into(),
            },
        ];
        let e = no_host(T::Primary, &skipped);
        assert_eq!(e.kind(), ErrorKind::Connect);
        assert_eq!(
            e.message(),
            "no host qualifies for target_session_attrs=primary: 127.0.0.1:5432: server is in \
             hot standby mode; 127.0.0.1:5433: could not connect to 127.0.0.1:5433: Connection \
             refused"
        );
    }
}
