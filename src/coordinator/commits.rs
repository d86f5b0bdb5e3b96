//! The coordinator's commits: the forwarding task that hands each transition's writes
//! to the store's writer in order, and the publishing task that announces and answers
//! each transition after its commit, or rebuilds memory after a failed one (the design
//! is in [`super`], "Lock and commits").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Coordinator;
use super::state::Effect;
use crate::events::Event;
use crate::protocol::error::ErrorChain;
use crate::storage::sqlite::{Store, StoreError, TaskWrite, apply_task_writes};

/// A transition's writes on their way to the store's writer.
pub(crate) struct Submission {
    pub(super) writes: Vec<TaskWrite>,
    pub(super) generation: u64,
    pub(super) committed: oneshot::Sender<Result<(), StoreError>>,
}

/// A transition waiting for its commit to be announced and answered.
pub(crate) struct Entry {
    pub(super) generation: u64,
    /// `None` when it wrote nothing.
    pub(super) committed: Option<oneshot::Receiver<Result<(), StoreError>>>,
    pub(super) events: Vec<Event>,
    pub(super) effects: Vec<Effect>,
    pub(super) answer: oneshot::Sender<Result<(), StoreError>>,
}

impl Coordinator {
    /// The publishing task: takes the transitions in order, awaits each one's commit,
    /// then announces it, applies its effects and answers its caller. After a failed
    /// commit, answers the transitions of the same generation with the failure and
    /// rebuilds memory from the store.
    pub(super) async fn publish(self, mut entries: mpsc::UnboundedReceiver<Entry>) {
        let shutdown = self.parts().shutdown.clone();
        let mut failed: Option<(u64, StoreError)> = None;
        loop {
            let entry = tokio::select! {
                entry = entries.recv() => entry,
                () = shutdown.cancelled() => return,
            };
            let Some(entry) = entry else { return };
            let committed = match entry.committed {
                None => Ok(()),
                Some(commit) => commit.await.unwrap_or(Err(StoreError::WriterGone)),
            };
            if let Some((generation, cause)) = &failed
                && entry.generation == *generation
            {
                // It came after the failed one and saw its changes: undone with it.
                let _ = entry.answer.send(Err(cause.copy()));
                continue;
            }
            match committed {
                Ok(()) => {
                    for event in entry.events {
                        self.parts().sink.emit(event);
                    }
                    let _ = entry.answer.send(Ok(()));
                    self.apply(entry.effects);
                }
                Err(err) => {
                    warn!(
                        error = %ErrorChain(&err),
                        "a coordination write failed; the task queue is rebuilt from the store"
                    );
                    failed = Some((entry.generation, err.copy()));
                    drop(entry.effects);
                    // Answered once memory is back, so a retry meets the stored state.
                    self.rebuild().await;
                    let _ = entry.answer.send(Err(err));
                }
            }
        }
    }

    /// Reads the coordinator's part of the store and rebuilds memory from it, in a new
    /// generation. The read is retried (each second) until it succeeds or the hub stops.
    async fn rebuild(&self) {
        let stored = loop {
            match self.parts().store.coordination_snapshot().await {
                Ok(stored) => break stored,
                Err(err) => {
                    warn!(error = %ErrorChain(&err), "cannot read the task queue back");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = self.parts().shutdown.cancelled() => return,
                    }
                }
            }
        };
        let cli_available = self.parts().runner.any_cli();
        let (tasks, _) = self.transition(true, |txn| {
            txn.rebuild(stored, cli_available);
            txn.st.tasks.len()
        });
        info!(tasks, "task queue rebuilt from the store");
    }
}

/// The forwarding task: hands each transition's writes to the store's writer as one
/// job, in the order of the transitions, without waiting for their commits (so they
/// share group commits). A job runs only if no coordination job of its generation (or
/// a later one) failed before it; a failed job sets that fence, on the writer thread,
/// before the next job runs.
pub(super) async fn forward_writes(
    store: Store,
    fence: Arc<AtomicU64>,
    mut submissions: mpsc::UnboundedReceiver<Submission>,
    shutdown: CancellationToken,
) {
    loop {
        let submission = tokio::select! {
            submission = submissions.recv() => submission,
            () = shutdown.cancelled() => return,
        };
        let Some(Submission {
            writes,
            generation,
            committed,
        }) = submission
        else {
            return;
        };
        let (fence_job, fence_reply) = (Arc::clone(&fence), Arc::clone(&fence));
        let queued = store
            .submit(
                move |conn| {
                    if fence_job.load(Ordering::Acquire) >= generation {
                        return Err(StoreError::Fenced);
                    }
                    apply_task_writes(conn, &writes).inspect_err(|_| {
                        fence_job.fetch_max(generation, Ordering::AcqRel);
                    })
                },
                move |result| {
                    if result.is_err() {
                        fence_reply.fetch_max(generation, Ordering::AcqRel);
                    }
                    let _ = committed.send(result);
                },
            )
            .await;
        if let Err(err) = queued {
            // The writer is gone (the hub is stopping): the transition's caller is told.
            fence.fetch_max(generation, Ordering::AcqRel);
            debug!(error = %ErrorChain(&err), "a coordination write was not queued");
        }
    }
}
