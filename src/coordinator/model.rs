//! What the coordinator keeps in memory: workers, per-project counts, the queue key.

use std::cmp::Reverse;

use crate::protocol::coordination::{
    TaskState, WorkerClient, WorkerKind, WorkerStatus, WorkerView,
};
use crate::protocol::ids::{TaskId, WorkerId};
use crate::storage::sqlite::{TaskRow, WorkerRow};

/// Queue order: higher priority first, then creation order.
pub type QueueKey = (Reverse<i64>, i64, TaskId);

/// A task's place in its project's queue.
pub fn queue_key(task: &TaskRow) -> QueueKey {
    (Reverse(task.priority), task.seq, task.id.clone())
}

/// Tasks of one project, by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Queued.
    pub pending: u64,
    /// Assigned.
    pub running: u64,
    /// Completed.
    pub completed: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl Counts {
    /// The count of tasks in `state`.
    pub fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Running => &mut self.running,
            TaskState::Completed => &mut self.completed,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }

    /// Every task.
    pub fn total(&self) -> u64 {
        self.pending + self.running + self.completed + self.failed + self.cancelled
    }
}

/// A worker: a connected client that registered, or a built-in agent worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Its id.
    pub id: WorkerId,
    /// Display name.
    pub name: String,
    /// Client or agent.
    pub kind: WorkerKind,
    /// Task types it takes; empty takes all.
    pub capabilities: Vec<String>,
    /// The project of an agent worker.
    pub project_id: Option<String>,
    /// The connection of a client worker.
    pub conn_id: Option<u64>,
    /// Idle, working or offline.
    pub status: WorkerStatus,
    /// The task it holds.
    pub task_id: Option<TaskId>,
    /// When a client worker's lease ends, epoch milliseconds.
    pub lease_until: Option<i64>,
    /// Position in the idle order while idle.
    pub ticket: u64,
    /// An agent worker beyond the project's new `agent_workers`, removed when its run ends.
    pub retiring: bool,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// What runs a client worker, as it said; kept in memory only, since a client worker
    /// registers again after a restart.
    pub client: WorkerClient,
}

impl Worker {
    /// An offline worker with no capabilities, project or connection yet.
    pub fn new(id: WorkerId, name: String, kind: WorkerKind, now: i64) -> Self {
        Self {
            id,
            name,
            kind,
            capabilities: Vec::new(),
            project_id: None,
            conn_id: None,
            status: WorkerStatus::Offline,
            task_id: None,
            lease_until: None,
            ticket: 0,
            retiring: false,
            created_at: now,
            client: WorkerClient::default(),
        }
    }

    /// The wire form.
    pub fn view(&self) -> WorkerView {
        WorkerView {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            capabilities: self.capabilities.clone(),
            status: self.status,
            task_id: self.task_id.clone(),
            project_id: self.project_id.clone(),
            via: (self.kind == WorkerKind::Client).then_some(self.client.via),
            agent: self.client.agent.clone(),
        }
    }

    /// The stored form.
    pub fn row(&self) -> WorkerRow {
        WorkerRow {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            capabilities: self.capabilities.clone(),
            project_id: self.project_id.clone(),
            status: self.status,
            created_at: self.created_at,
        }
    }

    /// Whether the worker takes the task.
    pub fn takes(&self, task: &TaskRow) -> bool {
        if self.kind == WorkerKind::Agent
            && self.project_id.as_deref() != Some(task.project_id.as_str())
        {
            return false;
        }
        self.capabilities.is_empty()
            || task
                .kind
                .as_ref()
                .is_none_or(|kind| self.capabilities.contains(kind))
    }
}

/// Views of workers, by kind, name and id.
pub fn sorted_views<'a>(workers: impl Iterator<Item = &'a Worker>) -> Vec<WorkerView> {
    let mut views: Vec<WorkerView> = workers.map(Worker::view).collect();
    views.sort_by(|a, b| (a.kind.as_str(), &a.name, &a.id).cmp(&(b.kind.as_str(), &b.name, &b.id)));
    views
}

/// The id of a project's `slot`-th agent worker.
pub fn agent_worker_id(project_id: &str, slot: u32) -> WorkerId {
    WorkerId::from(format!("agent-{slot}@{project_id}"))
}

/// The slot of an agent worker id.
pub fn agent_slot(worker_id: &WorkerId) -> Option<u32> {
    worker_id
        .as_str()
        .strip_prefix("agent-")?
        .split('@')
        .next()?
        .parse()
        .ok()
}
