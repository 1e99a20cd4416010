//! The live streams of the process, so that `fw_shutdown` can end them: each stream is
//! registered when `execute` returns it and unregistered when it is dropped. The registry
//! sits above the runtime: it registers itself once as the runtime's [`RuntimeHooks`], and
//! the runtime calls it back at shutdown and after a fork without knowing what a stream is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};

use super::shared::Shared;
use crate::runtime::{RuntimeHooks, ShutdownWork};

static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);
static STREAMS: Mutex<Option<HashMap<u64, Weak<Shared>>>> = Mutex::new(None);
static HOOKED: Once = Once::new();

/// The registry as the runtime's hooks.
struct Registry;

static REGISTRY: Registry = Registry;

impl RuntimeHooks for Registry {
    /// End every live stream (its consumer gets `Shutdown`), then return the cancel requests
    /// of those whose query may still run. In this order the consumers get `Shutdown`, not
    /// the cancellation the server answers with.
    fn shutdown(&self) -> Vec<ShutdownWork> {
        let live = take_all();
        let tokens: Vec<_> = live
            .iter()
            .filter(|s| s.lock().ended_at.is_none())
            .map(|s| s.cancel_token.clone())
            .collect();
        for s in &live {
            s.fail_for_shutdown();
        }
        tokens
            .into_iter()
            .map(|t| -> ShutdownWork {
                Box::pin(async move {
                    let _ = t.send().await;
                })
            })
            .collect()
    }

    fn forked(&self) {
        *lock() = None;
    }
}

fn lock() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Weak<Shared>>>> {
    STREAMS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every live stream, emptying the registry.
fn take_all() -> Vec<Arc<Shared>> {
    lock()
        .take()
        .map(|m| m.into_values().filter_map(|w| w.upgrade()).collect())
        .unwrap_or_default()
}

/// Register a stream that `execute` returns.
pub(crate) fn register(shared: &Arc<Shared>) -> u64 {
    HOOKED.call_once(|| crate::runtime::register_hooks(&REGISTRY));
    let id = NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed);
    lock()
        .get_or_insert_with(HashMap::new)
        .insert(id, Arc::downgrade(shared));
    id
}

/// Forget a stream being dropped (and any whose last handle is gone).
pub(crate) fn unregister(shared: &Arc<Shared>) {
    if let Some(map) = lock().as_mut() {
        map.retain(|_, w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(shared)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::Connection;
    use crate::stream::options::StreamOptions;
    use crate::stream::StreamState;

    fn shared() -> Arc<Shared> {
        let conn = Connection::without_socket();
        Arc::new(Shared::new(
            "registry_test".into(),
            StreamOptions::default(),
            conn.cancel_token().clone(),
        ))
    }

    /// The registry's shutdown hook ends a registered live stream with `Shutdown` and
    /// returns a cancel request for it; an unregistered one is left alone. (Only the hook is
    /// called: the process's runtime is not shut down, other tests use it.)
    #[test]
    fn the_shutdown_hook_ends_registered_streams_only() {
        let a = shared();
        let b = shared();
        register(&a);
        register(&b);
        unregister(&b);
        let live_before: Vec<_> = lock()
            .as_ref()
            .map(|m| m.values().filter_map(|w| w.upgrade()).collect())
            .unwrap_or_default();
        assert!(live_before.iter().any(|s| Arc::ptr_eq(s, &a)));
        assert!(!live_before.iter().any(|s| Arc::ptr_eq(s, &b)));
        drop(live_before);
        // Other tests' streams may be registered meanwhile: keep only ours in the count.
        let work = REGISTRY.shutdown();
        assert!(!work.is_empty(), "a cancel request for the live stream");
        assert_eq!(a.lock().state, StreamState::Failed);
        assert!(a.lock().ended_at.is_some());
        assert_eq!(b.lock().state, StreamState::Running);
        assert!(lock().is_none(), "the registry was emptied");
    }
}
