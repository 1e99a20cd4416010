//! The internal tokio runtime: started lazily (by the first client: see `Client::with_config`),
//! a fixed number of named worker threads with all
//! signals blocked, replaced after fork() (detected by process id, with or without the fork
//! hooks), and shut down by `fw_shutdown`.
//!
//! The runtime knows nothing of streams: what must happen to them at shutdown and after a
//! fork is registered with it as a [`RuntimeHooks`] (the stream registry,
//! `crate::stream::registry`). Nothing here imports `crate::stream`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, ErrorKind, Result};

/// Worker threads of the runtime. Reading sockets is cheap; the consumers run on host threads.
pub const WORKER_THREADS: usize = 2;
pub const THREAD_NAME: &str = "fraiseql-wire";

struct Global {
    runtime: Option<Runtime>,
    pid: u32,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    runtime: None,
    pid: 0,
});
static SHUT_DOWN: AtomicBool = AtomicBool::new(false);
/// Tasks of [`spawn_before_shutdown`] not finished yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// What depends on the runtime, told of its shutdown and of a fork (see [`register_hooks`]).
static HOOKS: Mutex<Vec<&'static dyn RuntimeHooks>> = Mutex::new(Vec::new());

/// A future the shutdown runs on the runtime before stopping it (within its timeout).
pub type ShutdownWork = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something above the runtime that must act when it shuts down or is replaced in a forked
/// child (the stream registry). Registered once with [`register_hooks`].
pub trait RuntimeHooks: Sync {
    /// `fw_shutdown`, before the runtime stops: end what runs on it (the consumers get
    /// `Shutdown`) and return the work to finish on the runtime first (cancel requests).
    fn shutdown(&self) -> Vec<ShutdownWork>;
    /// In a forked child: forget the parent's objects (they are not this process's).
    fn forked(&self);
}

/// Register `hooks` (once; a second registration of the same object is ignored).
pub fn register_hooks(hooks: &'static dyn RuntimeHooks) {
    let mut g = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    if !g.iter().any(|h| std::ptr::addr_eq(*h, hooks)) {
        g.push(hooks);
    }
}

fn hooks() -> Vec<&'static dyn RuntimeHooks> {
    HOOKS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn global() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn is_shut_down() -> bool {
    SHUT_DOWN.load(Ordering::Acquire)
}

// The signal masks below stay on libc's sigfillset/pthread_sigmask: rustix offers only the raw
// kernel call (`rustix::runtime::kernel_sigprocmask`, unsafe and meant for code that replaces
// libc), which would bypass the C library's own handling of the signals it reserves for its
// threads.
fn block_signals_in_this_thread() {
    // SAFETY: sigfillset/pthread_sigmask on a local, zero-initialised sigset_t.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn build() -> Result<Runtime> {
    // Block signals in this thread while the workers are spawned so that they inherit a full
    // mask from birth; restore the caller's mask afterwards.
    // SAFETY: saving and restoring this thread's signal mask with valid sigset_t values.
    let saved = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(4)
        .thread_name(THREAD_NAME)
        .on_thread_start(block_signals_in_this_thread)
        .enable_all()
        .build();
    // SAFETY: restores the mask saved above.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut());
    }
    rt.map_err(|e| Error::new(ErrorKind::Io, format!("could not start the runtime: {e}")))
}

/// The runtime's handle, starting it on first use and replacing it in a forked child.
pub fn handle() -> Result<Handle> {
    if is_shut_down() {
        return Err(Error::shutdown());
    }
    let mut g = global();
    let pid = std::process::id();
    if g.runtime.is_some() && g.pid != pid {
        // A forked child: the parent's worker threads do not exist here, and the runtime's
        // epoll instance is shared with the parent. Leak it untouched.
        std::mem::forget(g.runtime.take());
        for h in hooks() {
            h.forked();
        }
        // The parent's pending tasks do not exist here.
        PENDING.store(0, Ordering::Release);
    }
    if g.runtime.is_none() {
        g.runtime = Some(build()?);
        g.pid = pid;
    }
    Ok(g.runtime
        .as_ref()
        .expect("runtime present")
        .handle()
        .clone())
}

/// Run `fut` on the runtime and block this (host) thread until it completes.
pub fn block_on<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let h = handle()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.spawn(async move {
        let _ = tx.send(fut.await);
    });
    match rx.blocking_recv() {
        Ok(r) => r,
        Err(_) => Err(if is_shut_down() {
            Error::shutdown()
        } else {
            Error::new(ErrorKind::Panic, "an internal task ended without a result")
        }),
    }
}

/// Spawn a task whose result nobody waits for (e.g. a cancel request).
pub fn spawn_detached(fut: impl Future<Output = ()> + Send + 'static) {
    if let Ok(h) = handle() {
        h.spawn(fut);
    }
}

/// [`spawn_detached`] for a task that `fw_shutdown` waits for (within its timeout) before
/// it stops the runtime: a cancel request, which a shutdown followed by `exit` would
/// otherwise drop half-sent.
pub fn spawn_before_shutdown(fut: impl Future<Output = ()> + Send + 'static) {
    /// Counts the task as pending until it ends or is dropped unfinished.
    struct Pending;
    impl Drop for Pending {
        fn drop(&mut self) {
            PENDING.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if let Ok(h) = handle() {
        PENDING.fetch_add(1, Ordering::AcqRel);
        let pending = Pending;
        h.spawn(async move {
            let _pending = pending;
            fut.await;
        });
    }
}

/// Wait until the tasks of [`spawn_before_shutdown`] have ended (polled every millisecond).
async fn pending_tasks_done() {
    while PENDING.load(Ordering::Acquire) > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Cancel live streams, stop the runtime (waiting up to `timeout` for its threads), and make
/// every later call fail with `Shutdown`. Returns `false` if it was already shut down.
pub fn shutdown(timeout: Duration) -> bool {
    if SHUT_DOWN.swap(true, Ordering::AcqRel) {
        return false;
    }
    let mut g = global();
    let rt = if g.pid == std::process::id() {
        g.runtime.take()
    } else {
        std::mem::forget(g.runtime.take());
        None
    };
    drop(g);
    if let Some(rt) = rt {
        // What runs on the runtime ends first (every stream: its consumer gets `Shutdown`);
        // the work the hooks return (the servers asked to stop each running query), and
        // the tasks already on their way (`spawn_before_shutdown`: a stream cancelled or
        // freed just before), are done before the runtime stops.
        let work: Vec<ShutdownWork> = hooks().iter().flat_map(|h| h.shutdown()).collect();
        let _ = rt.block_on(async {
            tokio::time::timeout(timeout, async {
                for w in work {
                    w.await;
                }
                pending_tasks_done().await;
            })
            .await
        });
        rt.shutdown_timeout(timeout);
    }
    true
}

/// Holds the global lock across fork() (see `fw_fork_prepare`).
pub struct ForkGuard(#[allow(dead_code)] MutexGuard<'static, Global>);

pub fn fork_prepare() -> ForkGuard {
    ForkGuard(global())
}

/// In the child: release the lock taken before fork (if any) and abandon the parent's runtime.
pub fn fork_child(held: Option<ForkGuard>) {
    let mut g = match held {
        Some(ForkGuard(g)) => g,
        None => global(),
    };
    if g.pid != std::process::id() {
        std::mem::forget(g.runtime.take());
        PENDING.store(0, Ordering::Release);
    }
    drop(g);
    for h in hooks() {
        h.forked();
    }
}
