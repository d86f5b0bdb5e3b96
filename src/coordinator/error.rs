//! Why a coordination request failed, and its JSON-RPC error.

use crate::projects::ProjectError;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::ids::{TaskId, WorkerId};
use crate::storage::sqlite::StoreError;

/// Why a coordination request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The params are well-formed but not acceptable (empty title, bad id, too many tasks).
    #[error("{0}")]
    Invalid(String),
    /// No task has the id.
    #[error("no task with id {0}")]
    TaskNotFound(TaskId),
    /// The task is not assigned to the calling worker.
    #[error("task {task_id} is not assigned to worker {worker_id}")]
    NotAssigned {
        /// The task.
        task_id: TaskId,
        /// The caller.
        worker_id: WorkerId,
    },
    /// The connection has not registered as a worker.
    #[error("this connection is not a worker; call worker.register first")]
    NotAWorker,
    /// The task id is taken by another project.
    #[error("task id {task_id} is already used in project {project_id}")]
    TaskExists {
        /// The task.
        task_id: TaskId,
        /// The project that has it.
        project_id: String,
    },
    /// Agent workers need the project's agent CLI; the message names it and its setting.
    #[error("{0}")]
    AgentUnavailable(String),
    /// The project is missing.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The store failed.
    #[error("coordination store failed")]
    Store(#[from] StoreError),
    /// A report could not be encoded as JSON.
    #[error("cannot encode a report")]
    Encode(#[source] serde_json::Error),
}

impl From<CoordinationError> for RpcError {
    fn from(err: CoordinationError) -> Self {
        let kind = match &err {
            CoordinationError::Invalid(_) => ErrorKind::InvalidParams,
            CoordinationError::TaskNotFound(_) => ErrorKind::TaskNotFound,
            CoordinationError::NotAssigned { .. } => ErrorKind::NotAssigned,
            CoordinationError::NotAWorker => ErrorKind::NotAWorker,
            CoordinationError::TaskExists { .. } => ErrorKind::TaskExists,
            CoordinationError::AgentUnavailable(_) => ErrorKind::AgentUnavailable,
            CoordinationError::Project(_) => {
                let CoordinationError::Project(inner) = err else {
                    unreachable!()
                };
                return inner.into();
            }
            CoordinationError::Store(source) => {
                return RpcError::internal("coordination store", source);
            }
            CoordinationError::Encode(source) => {
                return RpcError::internal("coordination report", source);
            }
        };
        RpcError::new(kind, err.to_string())
    }
}
