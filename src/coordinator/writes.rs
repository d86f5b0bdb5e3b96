//! The coordinator's port to storage: the writes a transition makes under the lock.
//!
//! The hub's transitions write into a [`Recorder`]: the writes are collected in order,
//! and the coordinator queues them for the store's writer as one job, still under its
//! lock, so the order of the writes is the order of the transitions. It awaits the
//! commit after the lock is released, and only then answers and announces the
//! transition ([`super`], "Lock"). Unit tests use an in-memory double that applies
//! (or refuses) each write at once. `task.create`'s big insert is not here: it runs
//! outside the lock.

use std::cell::RefCell;

use crate::protocol::coordination::WorkerStatus;
use crate::protocol::ids::WorkerId;
use crate::storage::sqlite::{StoreError, TaskRow, TaskWrite, WorkerRow};

/// The writes a transition makes.
pub trait TaskStore {
    /// Writes a task's new state.
    ///
    /// # Errors
    /// [`StoreError`].
    fn update_task(&self, row: &TaskRow) -> Result<(), StoreError>;
    /// Records a worker.
    ///
    /// # Errors
    /// [`StoreError`].
    fn upsert_worker(&self, row: &WorkerRow, now: i64) -> Result<(), StoreError>;
    /// Records a worker's status.
    ///
    /// # Errors
    /// [`StoreError`].
    fn set_worker_status(
        &self,
        id: &WorkerId,
        status: WorkerStatus,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Forgets a worker.
    ///
    /// # Errors
    /// [`StoreError`].
    fn delete_worker(&self, id: &WorkerId) -> Result<(), StoreError>;
    /// Records a project's `agent_workers` (`project.configure`).
    ///
    /// # Errors
    /// [`StoreError`], also for a project that does not exist.
    fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError>;
}

/// Collects a transition's writes, in order, for one write job; never fails (the
/// commit's outcome comes later, to the coordinator).
#[derive(Debug, Default)]
pub struct Recorder {
    writes: RefCell<Vec<TaskWrite>>,
}

impl Recorder {
    /// The writes recorded so far, in order; leaves the recorder empty.
    pub fn take(&self) -> Vec<TaskWrite> {
        self.writes.take()
    }

    fn push(&self, write: TaskWrite) -> Result<(), StoreError> {
        self.writes.borrow_mut().push(write);
        Ok(())
    }
}

impl TaskStore for Recorder {
    fn update_task(&self, row: &TaskRow) -> Result<(), StoreError> {
        self.push(TaskWrite::UpdateTask(row.clone()))
    }
    fn upsert_worker(&self, row: &WorkerRow, now: i64) -> Result<(), StoreError> {
        self.push(TaskWrite::UpsertWorker(row.clone(), now))
    }
    fn set_worker_status(
        &self,
        id: &WorkerId,
        status: WorkerStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        self.push(TaskWrite::SetWorkerStatus(id.clone(), status, now))
    }
    fn delete_worker(&self, id: &WorkerId) -> Result<(), StoreError> {
        self.push(TaskWrite::DeleteWorker(id.clone()))
    }
    fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError> {
        self.push(TaskWrite::SetAgentWorkers(project_id.to_string(), count))
    }
}
