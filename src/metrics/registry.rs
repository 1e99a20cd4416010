//! The library's own Prometheus recorder and the handles the engine records into.
//!
//! Nothing is installed as the process-global `metrics` recorder: the recorder lives in a
//! static of this library, metrics are registered on it directly, and the engine keeps the
//! returned handles. So the library's numbers are right whatever else is loaded into the
//! process (another library with its own global recorder, this library loaded twice).
//!
//! Handles are cached per label set: every metric labelled by `entity` is registered once per
//! entity (an [`EntityMetrics`]), the first time a query on that entity starts, and found
//! again through a per-thread one-entry cache (a string compare), falling back to a
//! read-locked map. Events never build labels; only the first event of a new label set does.
//!
//! Counters and gauges are handles of the Prometheus recorder. Histograms are the library's
//! fixed-bucket atomic histograms ([`Hist`]), rendered after the recorder's output in the same
//! exposition: recording one is two uncontended atomic additions.

// Without the `metrics` feature only `render` is used (the dump is then empty).
#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use metrics::{Counter, Gauge, Key, KeyName, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use super::defs::{self, MetricKind, DEFINITIONS};
use super::histogram::{escape, Hist};

static META: Metadata<'static> =
    Metadata::new("fraiseql_wire", Level::INFO, Some("fraiseql_wire::metrics"));

pub(crate) struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    entities: RwLock<HashMap<Box<str>, Arc<EntityMetrics>>>,
    /// Counters without an entity label, by (name, label values).
    counters: Mutex<HashMap<(&'static str, [&'static str; 2]), Counter>>,
    /// `fraiseql_auth_duration_ms` by mechanism.
    auth_ms: Mutex<Vec<(&'static str, Arc<Hist>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::new)
}

impl Registry {
    fn new() -> Registry {
        let recorder = PrometheusBuilder::new().build_recorder();
        for d in DEFINITIONS {
            let name = KeyName::from_const_str(d.name);
            match d.kind {
                MetricKind::Counter => recorder.describe_counter(name, None, d.help.into()),
                MetricKind::Gauge => recorder.describe_gauge(name, None, d.help.into()),
                // Rendered by `render` from the library's own histograms.
                MetricKind::Histogram => {}
            }
        }
        let handle = recorder.handle();
        Registry {
            recorder,
            handle,
            entities: RwLock::new(HashMap::new()),
            counters: Mutex::new(HashMap::new()),
            auth_ms: Mutex::new(Vec::new()),
        }
    }

    /// The Prometheus text exposition of every metric that has a series.
    pub fn render(&self) -> String {
        let mut entities: Vec<Arc<EntityMetrics>> = self
            .entities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        entities.sort_by(|a, b| a.name.cmp(&b.name));
        for m in &entities {
            m.sync_buffered();
        }
        let mut out = self.handle.render();
        let auth: Vec<(&'static str, Arc<Hist>)> = lock(&self.auth_ms).clone();
        for d in DEFINITIONS
            .iter()
            .filter(|d| d.kind == MetricKind::Histogram)
        {
            let series: Vec<(String, &Hist)> = if d.name == "fraiseql_auth_duration_ms" {
                auth.iter()
                    .map(|(m, h)| (format!("mechanism=\"{}\"", escape(m)), &**h))
                    .collect()
            } else {
                entities
                    .iter()
                    .filter_map(|m| {
                        let h = m.histogram(d.name)?;
                        Some((format!("entity=\"{}\"", escape(&m.name)), h))
                    })
                    .collect()
            };
            if series.is_empty() {
                continue;
            }
            out.push_str(&format!(
                "# HELP {} {}\n# TYPE {} histogram\n",
                d.name, d.help, d.name
            ));
            for (labels, h) in series {
                h.render(&mut out, d.name, &labels);
            }
            out.push('\n');
        }
        out
    }

    fn key(name: &'static str, values: &[&str]) -> Key {
        let def = defs::find(name).expect("metric is defined");
        debug_assert_eq!(def.labels.len(), values.len(), "{name}");
        let labels: Vec<Label> = def
            .labels
            .iter()
            .zip(values)
            .map(|(k, v)| Label::new(*k, v.to_string()))
            .collect();
        Key::from_parts(name, labels)
    }

    pub fn new_counter(&self, name: &'static str, values: &[&str]) -> Counter {
        self.recorder
            .register_counter(&Self::key(name, values), &META)
    }

    pub fn new_gauge(&self, name: &'static str, values: &[&str]) -> Gauge {
        self.recorder
            .register_gauge(&Self::key(name, values), &META)
    }

    /// Add `n` to a counter without an entity label (one or two static label values).
    pub fn count(&self, name: &'static str, values: [&'static str; 2], n: u64) {
        let mut map = lock(&self.counters);
        let c = map.entry((name, values)).or_insert_with(|| {
            let nlabels = defs::find(name).map(|d| d.labels.len()).unwrap_or(0);
            self.new_counter(name, &values[..nlabels])
        });
        c.increment(n);
    }

    /// Observe an authentication time for `mechanism`.
    pub fn observe_auth(&self, mechanism: &'static str, ms: f64) {
        let mut v = lock(&self.auth_ms);
        if let Some((_, h)) = v.iter().find(|(m, _)| *m == mechanism) {
            h.record(ms);
            return;
        }
        let h = Arc::new(Hist::new(defs::AUTH_MS));
        h.record(ms);
        v.push((mechanism, h));
    }

    /// Record a histogram sample.
    #[inline]
    pub fn observe(&self, h: &Hist, v: f64) {
        h.record(v);
    }

    fn entity_slow(&self, name: &str) -> Arc<EntityMetrics> {
        if let Some(m) = self
            .entities
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return m.clone();
        }
        let mut map = self.entities.write().unwrap_or_else(|e| e.into_inner());
        map.entry(name.into())
            .or_insert_with(|| Arc::new(EntityMetrics::new(self, name)))
            .clone()
    }
}

/// Every handle labelled by one entity, registered together.
pub(crate) struct EntityMetrics {
    pub name: Box<str>,
    pub queries: Counter,
    pub success: Counter,
    pub cancelled: Counter,
    pub completed_success: Counter,
    pub completed_error: Counter,
    pub completed_cancelled: Counter,
    pub rows_processed: Counter,
    pub rows_filtered: Counter,
    pub rows_deserialized: Counter,
    pub json_parse_errors: Counter,
    pub memory_limit: Counter,
    pub paused: Counter,
    pub resumed: Counter,
    pub pause_timeouts: Counter,
    pub startup_ms: Hist,
    pub total_ms: Hist,
    pub query_rows: Hist,
    pub query_bytes: Hist,
    pub chunk_ms: Hist,
    pub chunk_rows: Hist,
    pub json_parse_ms: Hist,
    pub filter_ms: Hist,
    pub deserialization_ms: Hist,
    pub send_latency_ms: Hist,
    pub occupancy: Hist,
    pub pause_ms: Hist,
    pub chunk_bytes: Gauge,
    /// `fraiseql_stream_buffered_items`: set from the two counters below at each render, so
    /// the reader (adding) and the consumer (taking) never write the same cache line.
    buffered: Gauge,
    buffered_in: Padded,
    buffered_out: Padded,
    /// `fraiseql_query_error_total` by error category.
    errors: Mutex<Vec<(&'static str, Counter)>>,
    /// `fraiseql_rows_deserialization_failed_total` by reason.
    deserialization_failed: Mutex<Vec<(Box<str>, Counter)>>,
}

impl EntityMetrics {
    fn new(r: &Registry, entity: &str) -> EntityMetrics {
        let c = |n| r.new_counter(n, &[entity]);
        let h = |n| Hist::new(defs::find(n).expect("metric is defined").buckets);
        let g = |n| r.new_gauge(n, &[entity]);
        EntityMetrics {
            name: entity.into(),
            queries: c("fraiseql_queries_total"),
            success: c("fraiseql_query_success_total"),
            cancelled: c("fraiseql_query_cancelled_total"),
            completed_success: r
                .new_counter("fraiseql_query_completed_total", &[entity, "success"]),
            completed_error: r.new_counter("fraiseql_query_completed_total", &[entity, "error"]),
            completed_cancelled: r
                .new_counter("fraiseql_query_completed_total", &[entity, "cancelled"]),
            rows_processed: c("fraiseql_rows_processed_total"),
            rows_filtered: c("fraiseql_rows_filtered_total"),
            rows_deserialized: c("fraiseql_rows_deserialized_total"),
            json_parse_errors: c("fraiseql_json_parse_errors_total"),
            memory_limit: c("fraiseql_memory_limit_exceeded_total"),
            paused: c("fraiseql_stream_paused_total"),
            resumed: c("fraiseql_stream_resumed_total"),
            pause_timeouts: c("fraiseql_stream_pause_timeout_expired_total"),
            startup_ms: h("fraiseql_query_startup_duration_ms"),
            total_ms: h("fraiseql_query_total_duration_ms"),
            query_rows: h("fraiseql_query_rows_processed"),
            query_bytes: h("fraiseql_query_bytes_received"),
            chunk_ms: h("fraiseql_chunk_processing_duration_ms"),
            chunk_rows: h("fraiseql_chunk_size_rows"),
            json_parse_ms: h("fraiseql_json_parse_duration_ms"),
            filter_ms: h("fraiseql_filter_duration_ms"),
            deserialization_ms: h("fraiseql_deserialization_duration_ms"),
            send_latency_ms: h("fraiseql_channel_send_latency_ms"),
            occupancy: h("fraiseql_channel_occupancy_rows"),
            pause_ms: h("fraiseql_stream_pause_duration_ms"),
            chunk_bytes: g("fraiseql_chunk_size_bytes"),
            buffered: g("fraiseql_stream_buffered_items"),
            buffered_in: Padded::default(),
            buffered_out: Padded::default(),
            errors: Mutex::new(Vec::new()),
            deserialization_failed: Mutex::new(Vec::new()),
        }
    }

    /// The histogram of this entity named `name`.
    fn histogram(&self, name: &str) -> Option<&Hist> {
        Some(match name {
            "fraiseql_query_startup_duration_ms" => &self.startup_ms,
            "fraiseql_query_total_duration_ms" => &self.total_ms,
            "fraiseql_query_rows_processed" => &self.query_rows,
            "fraiseql_query_bytes_received" => &self.query_bytes,
            "fraiseql_chunk_processing_duration_ms" => &self.chunk_ms,
            "fraiseql_chunk_size_rows" => &self.chunk_rows,
            "fraiseql_json_parse_duration_ms" => &self.json_parse_ms,
            "fraiseql_filter_duration_ms" => &self.filter_ms,
            "fraiseql_deserialization_duration_ms" => &self.deserialization_ms,
            "fraiseql_channel_send_latency_ms" => &self.send_latency_ms,
            "fraiseql_channel_occupancy_rows" => &self.occupancy,
            "fraiseql_stream_pause_duration_ms" => &self.pause_ms,
            _ => return None,
        })
    }

    /// Rows buffered in streams of this entity went up (positive) or down (negative).
    #[inline]
    pub fn buffered_rows(&self, delta: i64) {
        if delta >= 0 {
            self.buffered_in.0.fetch_add(delta, Ordering::Relaxed);
        } else {
            self.buffered_out.0.fetch_add(-delta, Ordering::Relaxed);
        }
    }

    fn sync_buffered(&self) {
        // `out` first: a row counted out is always counted in already, so the value read is
        // never below the true one.
        let out = self.buffered_out.0.load(Ordering::Acquire);
        let inn = self.buffered_in.0.load(Ordering::Acquire);
        self.buffered.set((inn - out) as f64);
    }

    pub fn query_error(&self, category: &'static str) {
        let mut v = lock(&self.errors);
        if let Some((_, c)) = v.iter().find(|(k, _)| *k == category) {
            c.increment(1);
            return;
        }
        let c = registry().new_counter("fraiseql_query_error_total", &[&self.name, category]);
        c.increment(1);
        v.push((category, c));
    }

    pub fn deserialization_failed(&self, reason: &str, n: u64) {
        let mut v = lock(&self.deserialization_failed);
        if let Some((_, c)) = v.iter().find(|(k, _)| &**k == reason) {
            c.increment(n);
            return;
        }
        let c = registry().new_counter(
            "fraiseql_rows_deserialization_failed_total",
            &[&self.name, reason],
        );
        c.increment(n);
        v.push((reason.into(), c));
    }
}

/// An atomic alone on its cache line.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicI64);

thread_local! {
    /// The entity this thread recorded for last (a reader task or a consumer thread records
    /// for the same entity chunk after chunk).
    static LAST: RefCell<Option<Arc<EntityMetrics>>> = const { RefCell::new(None) };
}

/// Run `f` with the handles of `entity` (registered on first use).
#[inline]
pub(crate) fn with_entity<R>(entity: &str, f: impl FnOnce(&EntityMetrics) -> R) -> R {
    let mut f = Some(f);
    let hit = LAST
        .try_with(|c| {
            let slot = c.try_borrow().ok()?;
            match slot.as_ref() {
                Some(m) if *m.name == *entity => f.take().map(|f| f(m)),
                _ => None,
            }
        })
        .ok()
        .flatten();
    if let Some(r) = hit {
        return r;
    }
    let m = registry().entity_slow(entity);
    let _ = LAST.try_with(|c| {
        if let Ok(mut slot) = c.try_borrow_mut() {
            *slot = Some(m.clone());
        }
    });
    let f = f.take().expect("closure not run yet");
    f(&m)
}
