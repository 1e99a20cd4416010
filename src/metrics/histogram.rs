//! Fixed-bucket Prometheus histograms for the hot paths.
//!
//! Recording is a binary search over the bucket bounds and two uncontended atomic additions:
//! no allocation, no timestamp, no lock, and nothing to fold later. (The exporter's own
//! histogram storage keeps every sample, with a timestamp, until it is folded into buckets at
//! the next render; measured, that was about five times the cost per sample of this, plus the
//! fold.) Rendered in the text exposition format with cumulative `_bucket` lines, `_sum` and
//! `_count`; `_count` is the sum of the buckets read, so `le="+Inf"` always equals it.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most buckets a histogram may have (bounds plus the `+Inf` overflow).
const CELLS: usize = 24;

/// The counters of one histogram, alone on their cache lines (the reader and the consumer
/// record into different histograms of the same entity at the same time).
#[repr(C, align(128))]
struct Cells {
    /// The sum of the observed values, as `f64` bits.
    sum: AtomicU64,
    /// Non-cumulative counts: `buckets[i]` counts values in `(bounds[i-1], bounds[i]]`; the
    /// slot after the last bound counts the values above it.
    buckets: [AtomicU64; CELLS],
}

pub(crate) struct Hist {
    bounds: &'static [f64],
    cells: Box<Cells>,
}

impl Hist {
    pub fn new(bounds: &'static [f64]) -> Hist {
        assert!(bounds.len() < CELLS, "too many histogram buckets");
        Hist {
            bounds,
            cells: Box::new(Cells {
                sum: AtomicU64::new(0f64.to_bits()),
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            }),
        }
    }

    #[inline]
    pub fn record(&self, v: f64) {
        // `le` semantics: a value equal to a bound belongs to that bound's bucket.
        let i = self.bounds.partition_point(|b| *b < v);
        self.cells.buckets[i].fetch_add(1, Ordering::Relaxed);
        let sum = &self.cells.sum;
        let mut cur = sum.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + v).to_bits();
            match sum.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Append this series: `labels` is the rendered label list without braces (e.g.
    /// `entity="v_user"`), empty for none.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, le) in self.bounds.iter().enumerate() {
            cumulative += self.cells.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.cells.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let sum = f64::from_bits(self.cells.sum.load(Ordering::Relaxed));
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// A label value escaped for the text format.
pub(crate) fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_with_le_semantics() {
        static B: &[f64] = &[0.5, 1.0, 10.0];
        let h = Hist::new(B);
        for v in [0.1, 0.5, 0.75, 1.0, 5.0, 11.0, 0.0] {
            h.record(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "entity=\"e\"");
        assert_eq!(
            out,
            "x_bucket{entity=\"e\",le=\"0.5\"} 3\n\
             x_bucket{entity=\"e\",le=\"1\"} 5\n\
             x_bucket{entity=\"e\",le=\"10\"} 6\n\
             x_bucket{entity=\"e\",le=\"+Inf\"} 7\n\
             x_sum{entity=\"e\"} 18.35\n\
             x_count{entity=\"e\"} 7\n"
        );
        let mut out = String::new();
        Hist::new(B).render(&mut out, "y", "");
        assert!(out.starts_with("y_bucket{le=\"0.5\"} 0\n"));
        assert!(out.ends_with("y_sum 0\ny_count 0\n"));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("a\nb"), "a\\nb");
    }

    #[test]
    fn exact_under_concurrency() {
        static B: &[f64] = &[1.0, 2.0];
        let h = std::sync::Arc::new(Hist::new(B));
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000 {
                        h.record(f64::from(i % 3));
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        let mut out = String::new();
        h.render(&mut out, "z", "");
        assert!(out.contains("z_count 40000\n"), "{out}");
        assert!(out.contains("z_sum 39996\n"), "{out}");
    }
}
