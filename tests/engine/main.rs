//! The engine against the binary's one throwaway PostgreSQL (and the benchmark suite's fake
//! server): authentication, cancellation, the client and its pool, connection strings,
//! errors, fault injection, the query builder, result shape, streaming, server-side filters,
//! and real server faults. One module per subject (each was a test binary of its own); they
//! share one server: each uses `application_name`s, views and roles of its own.
//!
//! Run one module with `cargo test --test engine auth::` (likewise `cancel::`, ...).
//! Tests that need a process or a server to themselves (runtime shutdown, the runtime's
//! laziness, a server restart, replicas, TLS certificate switches, ...) keep binaries of
//! their own.

#[path = "../support/mod.rs"]
mod support;

mod auth;
mod cancel;
mod client;
mod connect;
mod errors;
mod faults;
mod parallel;
mod query;
mod reliability;
mod shape;
mod stream;
mod where_filters;
