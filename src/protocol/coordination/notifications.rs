//! The params of the coordinator's notifications: what a worker is pushed
//! (`task.assigned`, `task.revoked`) and what the queue's watchers hear (`task.*`).

use serde::Serialize;
use serde_json::Value;

use super::{CompletedBy, Failure, TaskView};
use crate::protocol::ids::{TaskId, WorkerId};

/// `task.assigned` params, pushed to one worker.
#[derive(Debug, Clone, Serialize)]
pub struct TaskAssigned {
    /// The task.
    pub task: TaskView,
    /// Seconds the lease lasts without a heartbeat or other request from the worker.
    pub lease_s: u64,
}

/// `task.revoked` params, pushed to the worker that held the task.
#[derive(Debug, Clone, Serialize)]
pub struct TaskRevoked {
    /// The task.
    pub task_id: TaskId,
    /// Why: `cancelled`, `lease expired`, `completed by a report file`.
    pub reason: String,
}

/// `task.completed` params.
#[derive(Debug, Clone, Serialize)]
pub struct TaskCompleted {
    /// The project.
    pub project_id: String,
    /// The task.
    pub task_id: TaskId,
    /// The worker that held it, if any (a report file may complete a queued task).
    pub worker: Option<WorkerId>,
    /// What completed it.
    pub source: CompletedBy,
    /// The report.
    pub report: Value,
}

/// `task.failed` (final) and `task.requeued` (an attempt failed) params.
#[derive(Debug, Clone, Serialize)]
pub struct TaskFailed {
    /// The project.
    pub project_id: String,
    /// The task.
    pub task_id: TaskId,
    /// The worker whose attempt failed, if any.
    pub worker: Option<WorkerId>,
    /// Why the last attempt failed.
    pub reason: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Every failed attempt, oldest first.
    pub failures: Vec<Failure>,
}

/// `task.cancelled` params.
#[derive(Debug, Clone, Serialize)]
pub struct TaskCancelled {
    /// The project.
    pub project_id: String,
    /// The task.
    pub task_id: TaskId,
    /// The worker that held it, if any.
    pub worker: Option<WorkerId>,
}

/// `task.report_invalid` params.
#[derive(Debug, Clone, Serialize)]
pub struct ReportInvalid {
    /// The project.
    pub project_id: String,
    /// The task the file is named after.
    pub task_id: TaskId,
    /// The file's absolute path.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// `task.report_unknown` params.
#[derive(Debug, Clone, Serialize)]
pub struct ReportUnknown {
    /// The project.
    pub project_id: String,
    /// The task id the file is named after.
    pub task_id: TaskId,
    /// The file's absolute path.
    pub path: String,
}

/// `task.created` params.
#[derive(Debug, Clone, Serialize)]
pub struct TaskCreated {
    /// The project.
    pub project_id: String,
    /// The tasks just queued, in the order given.
    pub tasks: Vec<TaskView>,
}

/// `task.started` params: a task was handed to a worker.
#[derive(Debug, Clone, Serialize)]
pub struct TaskStarted {
    /// The project.
    pub project_id: String,
    /// The task.
    pub task_id: TaskId,
    /// The worker.
    pub worker_id: WorkerId,
    /// This attempt's number, from 1.
    pub attempt: u32,
}
