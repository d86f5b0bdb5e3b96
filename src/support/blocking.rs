//! Blocking work (SQLite, the file system) kept off the tokio runtime's worker threads.
//!
//! Async code hands blocking work to the blocking pool with [`off_runtime`] (or
//! `spawn_blocking`); `tokio::task::block_in_place` is not used (clippy's
//! `disallowed_methods` in `clippy.toml` refuses it), since it still parks a worker
//! thread for the call's duration. Threads where blocking is allowed carry a mark (the
//! store's writer thread for its whole life, an [`off_runtime`] closure while it runs);
//! [`assert_off_runtime`] checks it in debug builds, where every sync store call makes
//! it, so a test that reaches a sync store call from a worker thread fails.

use std::cell::Cell;

thread_local! {
    /// Set on threads (or for the span of a call) where blocking is allowed.
    static OFF_RUNTIME: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread, for its whole life, as one where blocking is allowed (the
/// writer thread).
pub(crate) fn mark_off_runtime() {
    OFF_RUNTIME.with(|off| off.set(true));
}

/// Marks the current thread as off the runtime until dropped (a `spawn_blocking`
/// closure).
pub(crate) struct OffRuntime(bool);

impl OffRuntime {
    pub(crate) fn enter() -> Self {
        Self(OFF_RUNTIME.with(|off| off.replace(true)))
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        OFF_RUNTIME.with(|off| off.set(self.0));
    }
}

/// Panics in debug builds when called on a thread that drives a tokio runtime, unless
/// the thread was marked off the runtime.
#[track_caller]
pub(crate) fn assert_off_runtime() {
    if cfg!(debug_assertions)
        && tokio::runtime::Handle::try_current().is_ok()
        && !OFF_RUNTIME.with(Cell::get)
    {
        panic!("a store call ran on a tokio worker thread; await the async form instead");
    }
}

/// Runs `f`, which blocks (SQLite, the file system), on the blocking pool, marked off
/// the runtime, and returns its result: the async callers' way to blocking work. A
/// panic in `f` resumes in the caller.
///
/// # Panics
/// When `f` panics, or when the runtime shuts down before `f` ran.
pub(crate) async fn off_runtime<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let task = tokio::task::spawn_blocking(move || {
        let _off = OffRuntime::enter();
        f()
    });
    match task.await {
        Ok(result) => result,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(_) => panic!("a blocking task was cancelled: the runtime is shutting down"),
    }
}
