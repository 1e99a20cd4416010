//! fraiseql-wire: stream JSON rows from PostgreSQL into C programs (and, through the C ABI,
//! Go, Ruby, Node and Python) with bounded memory and real backpressure.
//!
//! The Rust core is usable on its own:
//!
//! ```no_run
//! use fraiseql_wire::{Client, Query, stream::{Next, Wait}};
//! let client = Client::connect("host=/var/run/postgresql dbname=app")?;
//! let mut q = Query::new("v_user")?;
//! q.where_sql("data->>'active' = 'true'")?;
//! let mut stream = client.execute(&q)?;
//! while let Next::Row(json) = stream.next(Wait::Forever)? {
//!     println!("{}", String::from_utf8_lossy(json));
//! }
//! # Ok::<(), fraiseql_wire::Error>(())
//! ```
//!
//! The C boundary lives in [`ffi`]; it only translates.

pub mod client;
pub mod connection;
pub mod conninfo;
pub mod error;
pub mod ffi;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod log;
pub mod metrics;
pub mod parallel;
pub(crate) mod protocol;
pub mod query;
pub mod runtime;
pub mod stream;

pub use client::Client;
pub use error::{Error, ErrorKind, Result, ServerError};
pub use parallel::{ParallelControl, ParallelStream};
pub use query::{Op, OrderKind, Query, SortDir, Statement};
pub use stream::{Next, Stream, StreamControl, StreamState, StreamStats, Wait};

/// The library version (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
