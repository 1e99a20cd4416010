//! The integration tests' shared code, one copy of it: every test binary includes it with
//! `mod support;` (a binary made of modules, `tests/NAME/main.rs`, with
//! `#[path = "../support/mod.rs"] mod support;`) and writes `use support::*;` (or
//! `use crate::support::*;` in its modules).
//!
//! * [`cluster`]: the binary's throwaway PostgreSQL, [`pg()`] (one per test binary, shared by
//!   its tests, stopped at process exit), and further servers ([`Pg::start`]);
//! * [`client`]: clients of that server, draining streams, psql output, JSON fields of rows,
//!   [`wait_until`], pg_stat_activity, the process's threads;
//! * [`tls`]: certificates made with openssl for the TLS tests;
//! * [`fakepg`], [`fault`], [`idle_fake`]: fake servers (the benchmark suite's, a scripted one
//!   for fault injection, one for the pool's idle connections);
//! * [`metrics`]: the Prometheus text parser and the metric scenarios.
//!
//! Tests of one binary share its server: each uses tables, views, roles and
//! `application_name`s of its own, and what reads server-wide state (pg_stat_activity)
//! filters on its own `application_name`.

// Each test binary uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod cluster;
pub mod fakepg;
pub mod fault;
pub mod idle_fake;
pub mod metrics;
pub mod tls;

pub use client::*;
pub use cluster::{pg, Pg};

/// Run `cmd` to its end and return its stdout; a command that cannot start or fails fails the
/// test, with `what` and the command's stderr.
pub fn run(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
