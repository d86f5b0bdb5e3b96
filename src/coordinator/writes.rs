//! The coordinator's port to storage: the writes a transition makes under the lock.
//! The hub's SQLite [`Store`] implements it (each write blocks until committed, off the
//! runtime's workers: [`crate::support::blocking`]); unit tests use an in-memory double.
//! `task.create`'s big insert is not here: it runs outside the lock.

use crate::protocol::coordination::WorkerStatus;
use crate::storage::sqlite::{Store, StoreError, TaskRow, WorkerRow};

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
    fn set_worker_status(&self, id: &str, status: WorkerStatus, now: i64)
    -> Result<(), StoreError>;
    /// Forgets a worker.
    ///
    /// # Errors
    /// [`StoreError`].
    fn delete_worker(&self, id: &str) -> Result<(), StoreError>;
    /// Records a project's `agent_workers` (`project.configure`).
    ///
    /// # Errors
    /// [`StoreError`], also for a project that does not exist.
    fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError>;
}

impl TaskStore for Store {
    fn update_task(&self, row: &TaskRow) -> Result<(), StoreError> {
        Store::update_task(self, row)
    }
    fn upsert_worker(&self, row: &WorkerRow, now: i64) -> Result<(), StoreError> {
        Store::upsert_worker(self, row, now)
    }
    fn set_worker_status(
        &self,
        id: &str,
        status: WorkerStatus,
        now: i64,
    ) -> Result<(), StoreError> {
        Store::set_worker_status(self, id, status, now)
    }
    fn delete_worker(&self, id: &str) -> Result<(), StoreError> {
        Store::delete_worker(self, id)
    }
    fn set_agent_workers(&self, project_id: &str, count: u32) -> Result<(), StoreError> {
        Store::set_agent_workers(self, project_id, count)
    }
}
