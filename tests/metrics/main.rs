//! The metrics against the binary's one throwaway PostgreSQL: the dump after a session that
//! uses every feature (`dump`) and what each feature moves, exactly (`scenarios`). The
//! recorder is process-wide: the scenarios use entities of their own (`m_*`, the session
//! `d_*`) and hold `recording_shared()`, the session holds `recording_alone()`, so that
//! metrics without an entity label can be compared as deltas.
//!
//! Run one module with `cargo test --test metrics scenarios::`.

#[path = "../support/mod.rs"]
mod support;

mod dump;
mod scenarios;
