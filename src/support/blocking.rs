//! Blocking work (SQLite, the file system) kept off the tokio runtime's worker threads.
//!
//! [`blocking`] runs a closure that blocks: on a multi-thread runtime's worker through
//! `block_in_place`, elsewhere directly. Threads where blocking is allowed carry a mark
//! (the store's writer thread for its whole life, a `spawn_blocking` closure or a
//! [`blocking`] section while it runs); [`assert_off_runtime`] checks it in debug builds.

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
/// closure or a `block_in_place` section).
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

/// Runs `f`, which blocks, without stalling the runtime: on a multi-thread runtime's
/// worker through `block_in_place` (the runtime moves the worker's other tasks to
/// another thread meanwhile), elsewhere directly.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| {
                let _off = OffRuntime::enter();
                f()
            })
        }
        _ => {
            let _off = OffRuntime::enter();
            f()
        }
    }
}
