//! The coordinator's port to storage: the writes (and the one read) a transition makes.
//! The hub's SQLite [`Store`] implements it; unit tests use an in-memory double.

use std::collections::HashMap;

use crate::protocol::coordination::WorkerStatus;
use crate::storage::sqlite::{Store, StoreError, TaskRow, WorkerRow};

/// The writes (and the one read) a transition makes.
pub trait TaskStore {
    /// Owners of the given task ids that exist.
    ///
    /// # Errors
    /// [`StoreError`].
    fn task_owners(&self, ids: &[&str]) -> Result<HashMap<String, String>, StoreError>;
    /// Inserts new tasks.
    ///
    /// # Errors
    /// [`StoreError`].
    fn insert_tasks(&self, rows: &[TaskRow]) -> Result<(), StoreError>;
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
}

impl TaskStore for Store {
    fn task_owners(&self, ids: &[&str]) -> Result<HashMap<String, String>, StoreError> {
        Store::task_owners(self, ids)
    }
    fn insert_tasks(&self, rows: &[TaskRow]) -> Result<(), StoreError> {
        Store::insert_tasks(self, rows)
    }
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
}
