//! Streams against the binary's one throwaway PostgreSQL (and the benchmark suite's fake
//! server): adaptive chunking, `next_block`, client-side filtering, memory bounds,
//! pause/resume and statistics. One module per subject (each was a test binary of its own);
//! they share one server: what reads pg_stat_activity filters on an `application_name` of its
//! own.
//!
//! Run one module with `cargo test --test stream memory::` (likewise `pause::`, ...).
//! Logging (a process-wide callback), the RSS measurements (child processes) and the
//! context-switch counts of the runtime (`stream_parked`, `stream_coalesce`) keep binaries
//! of their own.

#[path = "../support/mod.rs"]
mod support;

mod adaptive;
mod block;
mod filter;
mod memory;
mod pause;
mod stats;
