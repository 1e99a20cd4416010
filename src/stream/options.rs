//! Per-stream settings chosen on the query: chunk size, adaptive chunking bounds, memory limits.

use crate::error::{Error, Result};

/// Default starting chunk size in rows.
pub const DEFAULT_CHUNK_ROWS: usize = 256;
/// Default adaptive bounds.
pub const DEFAULT_ADAPTIVE_MIN: usize = 16;
pub const DEFAULT_ADAPTIVE_MAX: usize = 1024;
/// Default memory budget of a stream: small enough that a 1M-row stream keeps the whole
/// process under 16 MiB peak RSS even when the consumer sleeps and the budget stays full
/// (the allocator keeps up to about twice the live bytes: tests/stream_rss.rs), large enough
/// to keep the socket busy (reads are at most 256 KiB; see docs/performance.md).
pub const DEFAULT_MAX_MEMORY: usize = 2 * 1024 * 1024;
/// Default [`StreamOptions::read_ahead`]: two read buffers' worth.
pub const DEFAULT_READ_AHEAD: usize = 512 * 1024;
pub const DEFAULT_WARN_RATIO: f64 = 0.8;
pub const DEFAULT_FAIL_RATIO: f64 = 1.0;
/// Default [`StreamOptions::describe_wait`].
pub const DEFAULT_DESCRIBE_WAIT: std::time::Duration = std::time::Duration::from_millis(20);
/// Default shortest time between two adaptive chunk-size changes.
pub const DEFAULT_ADAPTIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// Smallest budget accepted: one socket read must fit.
pub const MIN_MAX_MEMORY: usize = 16 * 1024;

/// Bounds of adaptive chunk sizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveChunking {
    pub min_rows: usize,
    pub max_rows: usize,
}

impl AdaptiveChunking {
    pub fn new(min_rows: usize, max_rows: usize) -> Result<AdaptiveChunking> {
        if min_rows == 0 {
            return Err(Error::invalid(
                "adaptive chunking: min_rows must be at least 1",
            ));
        }
        if max_rows < min_rows {
            return Err(Error::invalid(format!(
                "adaptive chunking: max_rows ({max_rows}) is smaller than min_rows ({min_rows})"
            )));
        }
        Ok(AdaptiveChunking { min_rows, max_rows })
    }
}

impl Default for AdaptiveChunking {
    fn default() -> Self {
        AdaptiveChunking {
            min_rows: DEFAULT_ADAPTIVE_MIN,
            max_rows: DEFAULT_ADAPTIVE_MAX,
        }
    }
}

/// The stream's memory budget.
///
/// * `bytes` is the hard budget: what the stream holds (rows waiting in the channel, the chunk
///   the consumer is reading, the socket read buffer) never exceeds it. When it is full the
///   reader stops reading the socket, so the server blocks in send (TCP backpressure).
/// * `warn_ratio`: when the held bytes cross `warn_ratio * bytes`, a warning is logged and
///   counted in the stream's stats (`memory_warnings`); it is re-armed when usage falls below.
/// * `fail_ratio`: a single row larger than `fail_ratio * bytes` can never be buffered within
///   the budget; the stream fails with `FW_E_MEMORY_LIMIT` as soon as the row's header is read,
///   before its bytes are buffered. Rows before it are still delivered.
///
/// `0 < warn_ratio <= fail_ratio <= 1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryLimits {
    pub bytes: usize,
    pub warn_ratio: f64,
    pub fail_ratio: f64,
}

impl MemoryLimits {
    pub fn new(bytes: usize, warn_ratio: f64, fail_ratio: f64) -> Result<MemoryLimits> {
        if bytes < MIN_MAX_MEMORY {
            return Err(Error::invalid(format!(
                "max_memory: {bytes} bytes is below the minimum of {MIN_MAX_MEMORY} bytes"
            )));
        }
        let ok = |r: f64| r.is_finite() && r > 0.0 && r <= 1.0;
        if !ok(warn_ratio) {
            return Err(Error::invalid(format!(
                "max_memory: warn_ratio {warn_ratio} must be in (0, 1]"
            )));
        }
        if !ok(fail_ratio) {
            return Err(Error::invalid(format!(
                "max_memory: fail_ratio {fail_ratio} must be in (0, 1]"
            )));
        }
        if warn_ratio > fail_ratio {
            return Err(Error::invalid(format!(
                "max_memory: warn_ratio {warn_ratio} is above fail_ratio {fail_ratio}"
            )));
        }
        Ok(MemoryLimits {
            bytes,
            warn_ratio,
            fail_ratio,
        })
    }

    /// Bytes above which a warning is raised.
    pub fn warn_bytes(&self) -> usize {
        (self.bytes as f64 * self.warn_ratio) as usize
    }

    /// Largest single row (DataRow message) that may be buffered.
    pub fn max_row_bytes(&self) -> usize {
        (self.bytes as f64 * self.fail_ratio) as usize
    }
}

impl Default for MemoryLimits {
    fn default() -> Self {
        MemoryLimits {
            bytes: DEFAULT_MAX_MEMORY,
            warn_ratio: DEFAULT_WARN_RATIO,
            fail_ratio: DEFAULT_FAIL_RATIO,
        }
    }
}

/// All per-stream settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamOptions {
    pub chunk_size: usize,
    /// `None` = fixed chunk size.
    pub adaptive: Option<AdaptiveChunking>,
    /// Shortest time between two adaptive changes.
    pub adaptive_interval: std::time::Duration,
    pub memory: MemoryLimits,
    /// Longest wait before a socket read on a steady server-bound stream, so that one read
    /// takes several of the server's packets (see [`super::coalesce`]); also the most a row
    /// is delayed by it. `Duration::ZERO` reads every packet as it arrives.
    pub read_coalesce: std::time::Duration,
    /// Most bytes of chunks queued for the consumer before the reader stops reading: the
    /// reader stays this far ahead of a slower consumer. The memory budget still bounds
    /// everything (a large row may use all of it); this only keeps the queue, and so the
    /// process's memory and the data's trip through the CPU caches, short.
    pub read_ahead: usize,
    /// How long `execute` waits for the server's first answer (the result's description, or
    /// a refusal) before it returns the stream anyway; `None` waits as long as it takes.
    /// The query is sent without a Flush after Describe, so the server sends the
    /// description together with the first rows (one packet for a small result, as for
    /// libpq's simple query); a slow query is then described only with its first rows, and
    /// this bounds how long `execute` blocks on it. Errors the server reports by then are
    /// returned by `execute`; later ones (a wrong result shape included) by the stream.
    pub describe_wait: Option<std::time::Duration>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            chunk_size: DEFAULT_CHUNK_ROWS,
            adaptive: Some(AdaptiveChunking::default()),
            adaptive_interval: DEFAULT_ADAPTIVE_INTERVAL,
            memory: MemoryLimits::default(),
            read_coalesce: super::coalesce::DEFAULT_MAX_LINGER,
            read_ahead: DEFAULT_READ_AHEAD,
            describe_wait: Some(DEFAULT_DESCRIBE_WAIT),
        }
    }
}

impl StreamOptions {
    /// The most the queue of chunks holds: the read-ahead within the budget.
    pub fn queue_limit(&self) -> usize {
        self.read_ahead.min(self.memory.bytes)
    }

    /// The chunk size the stream starts with.
    pub fn initial_chunk_size(&self) -> usize {
        match self.adaptive {
            Some(a) => self.chunk_size.clamp(a.min_rows, a.max_rows),
            None => self.chunk_size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits_validate() {
        assert!(MemoryLimits::new(1 << 20, 0.8, 1.0).is_ok());
        assert!(MemoryLimits::new(1 << 20, 0.5, 0.5).is_ok());
        assert!(MemoryLimits::new(100, 0.8, 1.0).is_err());
        assert!(MemoryLimits::new(1 << 20, 0.0, 1.0).is_err());
        assert!(MemoryLimits::new(1 << 20, 0.9, 0.8).is_err());
        assert!(MemoryLimits::new(1 << 20, 0.8, 1.1).is_err());
        assert!(MemoryLimits::new(1 << 20, f64::NAN, 1.0).is_err());
        let m = MemoryLimits::new(1000 * 1000, 0.5, 0.9).unwrap();
        assert_eq!(m.warn_bytes(), 500_000);
        assert_eq!(m.max_row_bytes(), 900_000);
    }

    #[test]
    fn adaptive_bounds_validate_and_clamp() {
        assert!(AdaptiveChunking::new(0, 10).is_err());
        assert!(AdaptiveChunking::new(10, 9).is_err());
        assert!(AdaptiveChunking::new(5, 5).is_ok());
        let o = StreamOptions {
            chunk_size: 5000,
            ..Default::default()
        };
        assert_eq!(o.initial_chunk_size(), DEFAULT_ADAPTIVE_MAX);
        let o = StreamOptions {
            chunk_size: 5000,
            adaptive: None,
            ..Default::default()
        };
        assert_eq!(o.initial_chunk_size(), 5000);
    }
}
