//! The coordinator: the task queue, the worker registry, leases and assignment.
//!
//! A coordinator queues tasks in a project (`task.create`); the hub hands each one to an
//! idle worker (`task.assigned`) and tells coordinators and dashboards about every change
//! (`task.completed`, `task.failed`, `worker.status`, `coordination.status`,
//! `project.completed`). Workers are connected clients that called `worker.register`, or
//! built-in agent workers: agent runs the hub starts itself, one task each
//! (`project.configure {agent_workers}`). Both kinds share the queue. The reference with
//! examples is `docs/coordination.md`.
//!
//! # Rules
//!
//! - **Order.** Higher `priority` first, then FIFO by creation (`seq`). Idle workers are
//!   served longest-idle first, each taking the first queued task it matches: a worker
//!   with no capabilities takes every type, a task with no type goes to any worker, and an
//!   agent worker only takes tasks of its own project.
//! - **Leases.** A client worker's assignment lasts `coordination.lease_s` and is renewed
//!   by `worker.heartbeat` or any other request from the worker. When the worker
//!   disconnects or lets its lease expire, the attempt fails and the task goes back to the
//!   queue; a worker whose lease expired is `offline` until its next request. An agent
//!   worker's run is bounded by `agent.timeout_s` instead.
//! - **Attempts.** Every failed attempt is kept with its reason (`failures`); after
//!   `coordination.max_attempts` of them the task fails for good.
//! - **Idempotence.** A task id is created once; a second completion of a finished task
//!   is answered `duplicate: true` and changes nothing; a completion from a worker the
//!   task is not assigned to is refused with `NOT_ASSIGNED`.
//! - **Durability.** Every change is written to the store before it is acknowledged or
//!   announced. At start, tasks that were `running` go back to the queue (without
//!   counting an attempt: the hub stopping is not the worker's fault) and finished tasks
//!   stay finished.
//!
//! # State
//!
//! Queued and running tasks, per-project counts and the online workers live in memory
//! behind one std `Mutex`; finished tasks are only in the store. The lock is held for the
//! whole of an operation, including its store writes and its notifications, so every
//! client sees changes in the order they happened and counts that add up. Nothing in an
//! operation awaits: store writes are single short statements, and notifications are
//! queued without waiting ([`Client::push`]). Starting and stopping agent runs happen
//! after the lock is released. Lock order: coordinator, then projects, the
//! store and the client registry; none of those ever calls back in.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::agent::{self, TaskRunEnd, TaskRunSpec};
use crate::clients::{Client, Clients};
use crate::config::CoordinationConfig;
use crate::error::{ErrorChain, ErrorKind, RpcError};
use crate::hub::{Hub, HubEvent};
use crate::project::ProjectError;
use crate::protocol::Role;
use crate::protocol::coordination::{
    CompletedBy, CoordinationStatus, Failure, ProjectCompleted, ProjectConfigureParams, ReportFile,
    ReportInvalid, ReportStatus, ReportUnknown, TaskAssigned, TaskCancelled, TaskCompleteParams,
    TaskCompleted, TaskCreateParams, TaskFailParams, TaskFailed, TaskListParams, TaskRevoked,
    TaskState, WorkerKind, WorkerRegisterParams, WorkerStatus, WorkerView, method,
};
use crate::protocol::notification;
use crate::store::{Store, StoreError, TaskRow, WorkerRow};
use crate::timestamp::{format_ms, now_ms};

/// Most tasks in one `task.create`.
pub const MAX_TASKS_PER_CREATE: usize = 10_000;
/// Largest task (prompt, context and acceptance together), in bytes.
pub const MAX_TASK_BYTES: usize = 256 * 1024;
/// Client workers not seen for this long are forgotten at start.
const FORGET_WORKERS_AFTER_MS: i64 = 7 * 86_400_000;

/// Why a coordination request failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    /// The params are well-formed but not acceptable (empty title, bad id, too many tasks).
    #[error("{0}")]
    Invalid(String),
    /// No task has the id.
    #[error("no task with id {0}")]
    TaskNotFound(String),
    /// The task is not assigned to the calling worker.
    #[error("task {task_id} is not assigned to worker {worker_id}")]
    NotAssigned {
        /// The task.
        task_id: String,
        /// The caller.
        worker_id: String,
    },
    /// The connection has not registered as a worker.
    #[error("this connection is not a worker; call worker.register first")]
    NotAWorker,
    /// The task id is taken by another project.
    #[error("task id {task_id} is already used in project {project_id}")]
    TaskExists {
        /// The task.
        task_id: String,
        /// The project that has it.
        project_id: String,
    },
    /// Agent workers need the agent CLI.
    #[error("the Claude Code CLI was not found; install it or set agent.cli_path")]
    AgentUnavailable,
    /// The project is missing.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The store failed.
    #[error("coordination store failed")]
    Store(#[from] StoreError),
}

impl From<CoordinationError> for RpcError {
    fn from(err: CoordinationError) -> Self {
        let kind = match &err {
            CoordinationError::Invalid(_) => ErrorKind::InvalidParams,
            CoordinationError::TaskNotFound(_) => ErrorKind::TaskNotFound,
            CoordinationError::NotAssigned { .. } => ErrorKind::NotAssigned,
            CoordinationError::NotAWorker => ErrorKind::NotAWorker,
            CoordinationError::TaskExists { .. } => ErrorKind::TaskExists,
            CoordinationError::AgentUnavailable => ErrorKind::AgentUnavailable,
            CoordinationError::Project(_) => {
                let CoordinationError::Project(inner) = err else {
                    unreachable!()
                };
                return inner.into();
            }
            CoordinationError::Store(source) => {
                return RpcError::internal("coordination store", source);
            }
        };
        RpcError::new(kind, err.to_string())
    }
}

/// Queue order: higher priority first, then creation order.
type QueueKey = (Reverse<i64>, i64, String);

fn queue_key(task: &TaskRow) -> QueueKey {
    (Reverse(task.priority), task.seq, task.id.clone())
}

/// Tasks of one project, by state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    pending: u64,
    running: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
}

impl Counts {
    fn slot(&mut self, state: TaskState) -> &mut u64 {
        match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Running => &mut self.running,
            TaskState::Completed => &mut self.completed,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        }
    }

    fn total(&self) -> u64 {
        self.pending + self.running + self.completed + self.failed + self.cancelled
    }
}

struct Worker {
    id: String,
    name: String,
    kind: WorkerKind,
    capabilities: Vec<String>,
    project_id: Option<String>,
    client: Option<Arc<Client>>,
    status: WorkerStatus,
    task_id: Option<String>,
    lease_until: Option<Instant>,
    /// Position in the idle order while idle.
    ticket: u64,
    /// An agent worker beyond the project's new `agent_workers`, removed when its run ends.
    retiring: bool,
    created_at: i64,
}

impl Worker {
    fn view(&self) -> WorkerView {
        WorkerView {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            capabilities: self.capabilities.clone(),
            status: self.status,
            task_id: self.task_id.clone(),
            project_id: self.project_id.clone(),
        }
    }

    fn row(&self) -> WorkerRow {
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

    fn takes(&self, task: &TaskRow) -> bool {
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

#[derive(Default)]
struct State {
    /// Queued and running tasks.
    tasks: HashMap<String, TaskRow>,
    /// Queued tasks per project, in queue order.
    queues: HashMap<String, BTreeSet<QueueKey>>,
    counts: HashMap<String, Counts>,
    /// Connected client workers (idle, working, or offline after a lease expired) and
    /// agent workers.
    workers: HashMap<String, Worker>,
    by_conn: HashMap<u64, String>,
    /// Idle workers, longest idle first.
    idle: BTreeSet<(u64, String)>,
    next_seq: i64,
    next_ticket: u64,
    /// `agent_workers` per project.
    agent_settings: HashMap<String, u32>,
}

/// Work to do once the lock is released.
#[derive(Debug)]
enum Effect {
    StartRun {
        worker_id: String,
        task: Box<TaskRow>,
    },
    StopRun {
        task_id: String,
    },
    /// Tell the front ends a batch finished.
    BatchFinished {
        project_id: String,
        message: String,
    },
}

/// The coordinator's state. Lives in the [`Hub`]; the operations are the functions of
/// this module, which take the hub.
pub struct Coordinator {
    store: Store,
    config: CoordinationConfig,
    state: Mutex<State>,
}

impl Coordinator {
    /// Loads queued and running tasks from the store; running ones go back to the queue.
    /// Every worker is stored offline until it registers again.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn load(store: Store, config: CoordinationConfig) -> Result<Self, StoreError> {
        let now = now_ms();
        let mut state = State {
            next_seq: store.max_task_seq()?,
            ..State::default()
        };
        for (project_id, task_state, count) in store.task_counts()? {
            // Running tasks are requeued just below.
            let task_state = if task_state == TaskState::Running {
                TaskState::Pending
            } else {
                task_state
            };
            *state.counts.entry(project_id).or_default().slot(task_state) += count;
        }
        let mut requeued = 0;
        for mut task in store.unfinished_tasks()? {
            if task.state == TaskState::Running {
                task.state = TaskState::Pending;
                task.worker_id = None;
                task.updated_at = now;
                store.update_task(&task)?;
                requeued += 1;
            }
            state
                .queues
                .entry(task.project_id.clone())
                .or_default()
                .insert(queue_key(&task));
            state.tasks.insert(task.id.clone(), task);
        }
        let forgotten = store.reset_workers(now, now - FORGET_WORKERS_AFTER_MS)?;
        state.agent_settings = store.agent_worker_settings()?.into_iter().collect();
        if requeued > 0 || !state.tasks.is_empty() {
            info!(
                queued = state.tasks.len(),
                requeued, forgotten, "task queue restored"
            );
        }
        Ok(Self {
            store,
            config,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every operation leaves the state consistent before it can panic (store writes
        // come first), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn op<'a>(&'a self, hub: &'a Hub) -> Op<'a> {
        let st = self.lock();
        let busy_agents = st
            .workers
            .values()
            .filter(|w| w.kind == WorkerKind::Agent && w.status == WorkerStatus::Working)
            .count();
        let running = hub.projects.running() + busy_agents.max(hub.task_runs.count());
        Op {
            st,
            store: &self.store,
            config: &self.config,
            clients: &hub.clients,
            agent_slots: hub
                .config
                .config
                .limits
                .max_running_agents
                .saturating_sub(running),
            now: now_ms(),
            effects: Vec::new(),
            touched: BTreeSet::new(),
            finished: Vec::new(),
            dirty: false,
        }
    }

    /// Whether `task_id` is still running on `worker_id`.
    fn holds(&self, worker_id: &str, task_id: &str) -> bool {
        self.lock().tasks.get(task_id).is_some_and(|task| {
            task.state == TaskState::Running && task.worker_id.as_deref() == Some(worker_id)
        })
    }
}

/// One operation under the lock, with what it must announce and do afterwards.
struct Op<'a> {
    st: MutexGuard<'a, State>,
    store: &'a Store,
    config: &'a CoordinationConfig,
    clients: &'a Clients,
    /// Agent runs that may still start.
    agent_slots: usize,
    now: i64,
    effects: Vec<Effect>,
    /// Projects whose `coordination.status` changed.
    touched: BTreeSet<String>,
    /// Projects whose last unfinished task just finished.
    finished: Vec<String>,
    /// Whether assignment may now be possible.
    dirty: bool,
}

fn observers(client: &Client) -> bool {
    matches!(client.role(), Role::Coordinator | Role::Dashboard)
}

fn observers_and_workers(client: &Client) -> bool {
    matches!(
        client.role(),
        Role::Coordinator | Role::Dashboard | Role::Worker
    )
}

impl Op<'_> {
    fn notify<P: Serialize>(&self, method: &str, params: &P, to: fn(&Client) -> bool) {
        self.clients
            .broadcast_to(Utf8Bytes::from(notification(method, params)), to);
    }

    fn push_to_worker<P: Serialize>(&self, worker_id: &str, method: &str, params: &P) {
        if let Some(client) = self
            .st
            .workers
            .get(worker_id)
            .and_then(|w| w.client.as_ref())
        {
            client.push(Utf8Bytes::from(notification(method, params)));
        }
    }

    fn active_projects(&self) -> Vec<String> {
        self.st
            .counts
            .iter()
            .filter(|(_, c)| c.pending + c.running > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn touch_all_active(&mut self) {
        let active = self.active_projects();
        self.touched.extend(active);
    }

    fn count_move(&mut self, project_id: &str, from: Option<TaskState>, to: TaskState) {
        let counts = self.st.counts.entry(project_id.to_string()).or_default();
        if let Some(from) = from {
            let slot = counts.slot(from);
            *slot = slot.saturating_sub(1);
        }
        *counts.slot(to) += 1;
        self.touched.insert(project_id.to_string());
        if to.is_terminal()
            && counts.pending == 0
            && counts.running == 0
            && !self.finished.iter().any(|p| p == project_id)
        {
            self.finished.push(project_id.to_string());
        }
    }

    /// Sets a worker's status and task, keeping the idle order, and announces it.
    fn set_worker(&mut self, worker_id: &str, status: WorkerStatus, task_id: Option<String>) {
        let st = &mut *self.st;
        let Some(worker) = st.workers.get_mut(worker_id) else {
            return;
        };
        if worker.status == WorkerStatus::Idle {
            st.idle.remove(&(worker.ticket, worker.id.clone()));
        }
        worker.status = status;
        worker.task_id = task_id;
        if status != WorkerStatus::Working {
            worker.lease_until = None;
        }
        if status == WorkerStatus::Idle {
            st.next_ticket += 1;
            worker.ticket = st.next_ticket;
            st.idle.insert((worker.ticket, worker.id.clone()));
            self.dirty = true;
        }
        let view = worker.view();
        if let Some(project_id) = &worker.project_id {
            self.touched.insert(project_id.clone());
        }
        self.notify(method::WORKER_STATUS, &view, observers);
    }

    /// Frees a client worker whose task ended without it; an agent worker stays busy
    /// until its run ends.
    fn release_holder(&mut self, worker_id: Option<&str>, reason: &str, task_id: &str) {
        let Some(worker_id) = worker_id else { return };
        let Some(worker) = self.st.workers.get(worker_id) else {
            return;
        };
        if worker.kind == WorkerKind::Client && worker.task_id.as_deref() == Some(task_id) {
            self.push_to_worker(
                worker_id,
                method::TASK_REVOKED,
                &TaskRevoked {
                    task_id: task_id.to_string(),
                    reason: reason.to_string(),
                },
            );
            self.set_worker(worker_id, WorkerStatus::Idle, None);
        }
    }

    /// Hands a queued task to an idle worker.
    fn assign(&mut self, task_id: &str, worker_id: &str) -> Result<(), StoreError> {
        let _span = info_span!("task", task_id).entered();
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(());
        };
        let key = queue_key(&task);
        task.state = TaskState::Running;
        task.worker_id = Some(worker_id.to_string());
        task.updated_at = self.now;
        self.store.update_task(&task)?;
        if let Some(queue) = self.st.queues.get_mut(&task.project_id) {
            queue.remove(&key);
        }
        self.st.tasks.insert(task.id.clone(), task.clone());
        self.count_move(
            &task.project_id,
            Some(TaskState::Pending),
            TaskState::Running,
        );
        self.set_worker(worker_id, WorkerStatus::Working, Some(task.id.clone()));
        let lease = Duration::from_secs(self.config.lease_s);
        let Some(worker) = self.st.workers.get_mut(worker_id) else {
            return Ok(());
        };
        debug!(
            worker_id,
            kind = worker.kind.as_str(),
            attempt = task.attempts + 1,
            "task assigned"
        );
        let started = json!({"project_id": task.project_id, "task_id": task.id,
                             "worker_id": worker_id, "attempt": task.attempts + 1});
        match worker.kind {
            WorkerKind::Client => {
                worker.lease_until = Some(Instant::now() + lease);
                let assigned = TaskAssigned {
                    task: task.view(),
                    lease_s: self.config.lease_s,
                };
                self.push_to_worker(worker_id, method::TASK_ASSIGNED, &assigned);
                self.notify(method::TASK_STARTED, &started, observers);
            }
            WorkerKind::Agent => {
                self.agent_slots = self.agent_slots.saturating_sub(1);
                self.notify(method::TASK_STARTED, &started, observers);
                self.effects.push(Effect::StartRun {
                    worker_id: worker_id.to_string(),
                    task: Box::new(task),
                });
            }
        }
        Ok(())
    }

    /// Completes a queued or running task.
    fn complete(
        &mut self,
        task_id: &str,
        source: CompletedBy,
        report: Value,
    ) -> Result<(), StoreError> {
        let _span = info_span!("task", task_id).entered();
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(());
        };
        let from = task.state;
        task.state = TaskState::Completed;
        task.report = Some(report.clone());
        task.completed_by = Some(source);
        task.updated_at = self.now;
        self.store.update_task(&task)?;
        self.forget(&task, from);
        self.count_move(&task.project_id, Some(from), TaskState::Completed);
        info!(worker_id = ?task.worker_id, source = source.as_str(), "task completed");
        self.notify(
            method::TASK_COMPLETED,
            &TaskCompleted {
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                worker: task.worker_id.clone(),
                source,
                report,
            },
            observers,
        );
        Ok(())
    }

    /// Records a failed attempt: back to the queue, or failed for good after the last
    /// attempt. Returns the new state. The holder is released by the caller.
    fn fail_attempt(&mut self, task_id: &str, reason: String) -> Result<TaskState, StoreError> {
        let _span = info_span!("task", task_id).entered();
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(TaskState::Pending);
        };
        let from = task.state;
        task.attempts += 1;
        task.failures.push(Failure {
            attempt: task.attempts,
            worker_id: task.worker_id.clone(),
            reason: reason.clone(),
            at: format_ms(self.now),
        });
        let worker = task.worker_id.take();
        task.state = if task.attempts >= self.config.max_attempts {
            TaskState::Failed
        } else {
            TaskState::Pending
        };
        task.updated_at = self.now;
        self.store.update_task(&task)?;
        let notice = TaskFailed {
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            worker: worker.clone(),
            reason: reason.clone(),
            attempts: task.attempts,
            failures: task.failures.clone(),
        };
        if task.state == TaskState::Failed {
            warn!(worker_id = ?worker, attempts = task.attempts, reason, "task failed");
            self.forget(&task, from);
            self.notify(method::TASK_FAILED, &notice, observers);
        } else {
            info!(worker_id = ?worker, attempts = task.attempts, reason, "attempt failed; task requeued");
            self.st
                .queues
                .entry(task.project_id.clone())
                .or_default()
                .insert(queue_key(&task));
            self.st.tasks.insert(task.id.clone(), task.clone());
            self.dirty = true;
            self.notify(method::TASK_REQUEUED, &notice, observers);
        }
        self.count_move(&task.project_id, Some(from), task.state);
        Ok(task.state)
    }

    /// Puts a running task back in the queue without counting an attempt.
    fn requeue(&mut self, task_id: &str) -> Result<(), StoreError> {
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(());
        };
        if task.state != TaskState::Running {
            return Ok(());
        }
        task.state = TaskState::Pending;
        task.worker_id = None;
        task.updated_at = self.now;
        self.store.update_task(&task)?;
        self.st
            .queues
            .entry(task.project_id.clone())
            .or_default()
            .insert(queue_key(&task));
        self.st.tasks.insert(task.id.clone(), task.clone());
        self.count_move(
            &task.project_id,
            Some(TaskState::Running),
            TaskState::Pending,
        );
        self.dirty = true;
        Ok(())
    }

    fn cancel(&mut self, task_id: &str) -> Result<(), StoreError> {
        let _span = info_span!("task", task_id).entered();
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(());
        };
        let from = task.state;
        task.state = TaskState::Cancelled;
        task.updated_at = self.now;
        self.store.update_task(&task)?;
        self.forget(&task, from);
        self.count_move(&task.project_id, Some(from), TaskState::Cancelled);
        info!(worker_id = ?task.worker_id, "task cancelled");
        self.notify(
            method::TASK_CANCELLED,
            &TaskCancelled {
                project_id: task.project_id.clone(),
                task_id: task.id.clone(),
                worker: task.worker_id.clone(),
            },
            observers,
        );
        Ok(())
    }

    /// Drops a task that reached a final state from memory.
    fn forget(&mut self, task: &TaskRow, from: TaskState) {
        if from == TaskState::Pending
            && let Some(queue) = self.st.queues.get_mut(&task.project_id)
        {
            queue.remove(&queue_key(task));
        }
        self.st.tasks.remove(&task.id);
    }

    /// The first queued task a worker takes.
    fn best_task_for(&self, worker: &Worker) -> Option<String> {
        let st = &*self.st;
        let first_match = |queue: &BTreeSet<QueueKey>| -> Option<QueueKey> {
            queue
                .iter()
                .find(|key| st.tasks.get(&key.2).is_some_and(|task| worker.takes(task)))
                .cloned()
        };
        match worker.kind {
            WorkerKind::Agent => {
                if self.agent_slots == 0 {
                    return None;
                }
                let project_id = worker.project_id.as_ref()?;
                st.queues
                    .get(project_id)
                    .and_then(first_match)
                    .map(|key| key.2)
            }
            WorkerKind::Client => st
                .queues
                .values()
                .filter_map(first_match)
                .min()
                .map(|key| key.2),
        }
    }

    /// Gives every idle worker the first queued task it takes, longest idle first.
    fn pump(&mut self) {
        let idle: Vec<String> = self.st.idle.iter().map(|(_, id)| id.clone()).collect();
        for worker_id in idle {
            let Some(worker) = self.st.workers.get(&worker_id) else {
                continue;
            };
            let Some(task_id) = self.best_task_for(worker) else {
                continue;
            };
            if let Err(err) = self.assign(&task_id, &worker_id) {
                warn!(error = %ErrorChain(&err), task_id, "cannot record an assignment");
                return;
            }
        }
    }

    fn status(&self, project_id: &str) -> CoordinationStatus {
        let counts = self.st.counts.get(project_id).copied().unwrap_or_default();
        let mut workers: Vec<WorkerView> = self
            .st
            .workers
            .values()
            .filter(|w| w.project_id.as_deref().is_none_or(|p| p == project_id))
            .map(Worker::view)
            .collect();
        workers.sort_by(|a, b| {
            (a.kind.as_str(), &a.name, &a.id).cmp(&(b.kind.as_str(), &b.name, &b.id))
        });
        CoordinationStatus {
            project_id: project_id.to_string(),
            total: counts.total(),
            completed: counts.completed,
            pending: counts.pending,
            running: counts.running,
            failed: counts.failed,
            cancelled: counts.cancelled,
            workers,
            agent_workers: self.st.agent_settings.get(project_id).copied().unwrap_or(0),
        }
    }

    /// Assigns what can be assigned, announces the changes, releases the lock and
    /// returns the effects to apply.
    fn finish(mut self) -> Vec<Effect> {
        if self.dirty {
            self.pump();
        }
        for project_id in std::mem::take(&mut self.touched) {
            let status = self.status(&project_id);
            self.notify(method::COORDINATION_STATUS, &status, observers);
        }
        for project_id in std::mem::take(&mut self.finished) {
            let counts = self.st.counts.get(&project_id).copied().unwrap_or_default();
            if counts.pending + counts.running > 0 {
                continue; // new tasks arrived in the same operation
            }
            let message = format!(
                "all {} tasks finished: {} completed, {} failed, {} cancelled",
                counts.total(),
                counts.completed,
                counts.failed,
                counts.cancelled
            );
            info!(
                project_id,
                completed = counts.completed,
                failed = counts.failed,
                "batch finished"
            );
            self.effects.push(Effect::BatchFinished {
                project_id: project_id.clone(),
                message: message.clone(),
            });
            self.notify(
                method::PROJECT_COMPLETED,
                &ProjectCompleted {
                    project_id: project_id.clone(),
                    total: counts.total(),
                    completed: counts.completed,
                    failed: counts.failed,
                    cancelled: counts.cancelled,
                    message,
                },
                observers_and_workers,
            );
        }
        self.effects
    }

    /// Adds, revives or retires a project's agent workers to match `count`.
    fn set_agent_workers(&mut self, project_id: &str, count: u32, cli_available: bool) {
        self.st.agent_settings.insert(project_id.to_string(), count);
        for slot in 1..=count {
            let id = agent_worker_id(project_id, slot);
            let status = if cli_available {
                WorkerStatus::Idle
            } else {
                WorkerStatus::Offline
            };
            match self.st.workers.get_mut(&id) {
                Some(worker) => {
                    worker.retiring = false;
                    if worker.status == WorkerStatus::Offline && cli_available {
                        self.set_worker(&id, WorkerStatus::Idle, None);
                    }
                }
                None => {
                    let worker = Worker {
                        id: id.clone(),
                        name: format!("agent {slot}"),
                        kind: WorkerKind::Agent,
                        capabilities: Vec::new(),
                        project_id: Some(project_id.to_string()),
                        client: None,
                        status: WorkerStatus::Offline,
                        task_id: None,
                        lease_until: None,
                        ticket: 0,
                        retiring: false,
                        created_at: self.now,
                    };
                    if let Err(err) = self.store.upsert_worker(&worker.row(), self.now) {
                        warn!(error = %ErrorChain(&err), worker_id = id, "cannot record an agent worker");
                    }
                    self.st.workers.insert(id.clone(), worker);
                    self.set_worker(&id, status, None);
                }
            }
        }
        let extra: Vec<String> = self
            .st
            .workers
            .values()
            .filter(|w| {
                w.kind == WorkerKind::Agent
                    && w.project_id.as_deref() == Some(project_id)
                    && agent_slot(&w.id).is_some_and(|slot| slot > count)
            })
            .map(|w| w.id.clone())
            .collect();
        for id in extra {
            self.retire_agent(&id);
        }
        self.touched.insert(project_id.to_string());
    }

    /// Removes an agent worker now, or when its run ends if it has one.
    fn retire_agent(&mut self, worker_id: &str) {
        let Some(worker) = self.st.workers.get_mut(worker_id) else {
            return;
        };
        if worker.status == WorkerStatus::Working {
            worker.retiring = true;
            return;
        }
        self.remove_worker(worker_id);
        if let Err(err) = self.store.delete_worker(worker_id) {
            warn!(error = %ErrorChain(&err), worker_id, "cannot delete an agent worker");
        }
    }

    /// Takes a worker out of the registry and announces it offline.
    fn remove_worker(&mut self, worker_id: &str) {
        let st = &mut *self.st;
        let Some(mut worker) = st.workers.remove(worker_id) else {
            return;
        };
        if worker.status == WorkerStatus::Idle {
            st.idle.remove(&(worker.ticket, worker.id.clone()));
        }
        if let Some(client) = &worker.client {
            st.by_conn.remove(&client.id());
        }
        worker.status = WorkerStatus::Offline;
        worker.task_id = None;
        match &worker.project_id {
            Some(project_id) => {
                self.touched.insert(project_id.clone());
            }
            None => self.touch_all_active(),
        }
        self.notify(method::WORKER_STATUS, &worker.view(), observers);
    }

    fn worker_by_conn(&self, client: &Client) -> Result<String, CoordinationError> {
        self.st
            .by_conn
            .get(&client.id())
            .cloned()
            .ok_or(CoordinationError::NotAWorker)
    }
}

fn agent_worker_id(project_id: &str, slot: u32) -> String {
    format!("agent-{slot}@{project_id}")
}

fn agent_slot(worker_id: &str) -> Option<u32> {
    worker_id
        .strip_prefix("agent-")?
        .split('@')
        .next()?
        .parse()
        .ok()
}

/// Runs `f` under the lock, then announces and applies what it did.
fn run<R>(hub: &Hub, f: impl FnOnce(&mut Op<'_>) -> R) -> R {
    let mut op = hub.coordinator.op(hub);
    let result = f(&mut op);
    let effects = op.finish();
    apply(hub, effects);
    result
}

/// Starts and stops agent runs; their ends come back through [`run_ended`].
fn apply(hub: &Hub, effects: Vec<Effect>) {
    for effect in effects {
        match effect {
            Effect::StopRun { task_id } => {
                hub.task_runs.stop(&task_id);
            }
            Effect::BatchFinished {
                project_id,
                message,
            } => {
                let project_name = hub
                    .projects
                    .get(&project_id)
                    .map(|p| p.name)
                    .unwrap_or_else(|_| project_id.clone());
                hub.emit(HubEvent::BatchFinished {
                    project_id,
                    project_name,
                    message,
                });
            }
            Effect::StartRun { worker_id, task } => {
                let spec = TaskRunSpec {
                    project_id: task.project_id.clone(),
                    task_id: task.id.clone(),
                    worker_id: worker_id.clone(),
                    prompt: agent_prompt(&task),
                };
                match agent::start_task_run(hub, spec) {
                    Ok((run_id, ended)) => {
                        let hub = hub.clone();
                        let span = info_span!(parent: None, "task", task_id = %task.id, worker_id = %worker_id);
                        let task_id = task.id;
                        hub.clone().tracker.spawn(
                            async move {
                                // Cancelled between the assignment and the start.
                                if !hub.coordinator.holds(&worker_id, &task_id) {
                                    hub.task_runs.stop(&task_id);
                                }
                                match ended.await {
                                    Ok(end) => run_ended(&hub, &worker_id, &task_id, end),
                                    Err(_) => run_ended(
                                        &hub,
                                        &worker_id,
                                        &task_id,
                                        TaskRunEnd {
                                            run_id,
                                            status: "failed".into(),
                                            reason: Some(
                                                "the run's supervisor ended unexpectedly".into(),
                                            ),
                                            result_text: None,
                                            session_id: None,
                                            cost_usd: None,
                                            duration_ms: None,
                                        },
                                    ),
                                }
                            }
                            .instrument(span),
                        );
                    }
                    Err(err) => run_not_started(hub, &worker_id, &task.id, &err),
                }
            }
        }
    }
}

/// The prompt of a task run: the task's title, type, context, instructions and acceptance
/// criteria, and where to write the report.
pub fn agent_prompt(task: &TaskRow) -> String {
    fn render(value: &Value) -> String {
        match value {
            Value::String(text) => text.clone(),
            Value::Array(items) if items.iter().all(Value::is_string) => items
                .iter()
                .filter_map(Value::as_str)
                .map(|item| format!("- {item}"))
                .collect::<Vec<_>>()
                .join("\n"),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        }
    }
    let id = &task.id;
    let mut prompt = format!(
        "# Task {id}: {}\n\nYou are one of several workers processing a batch of tasks in this project. \
         Do this task only.\n",
        task.title
    );
    if let Some(kind) = &task.kind {
        prompt.push_str(&format!("\n## Type\n\n{kind}\n"));
    }
    if let Some(context) = &task.context {
        prompt.push_str(&format!("\n## Context\n\n{}\n", render(context)));
    }
    if let Some(instructions) = &task.prompt {
        prompt.push_str(&format!("\n## Instructions\n\n{instructions}\n"));
    }
    if let Some(acceptance) = &task.acceptance {
        prompt.push_str(&format!(
            "\n## Acceptance criteria\n\n{}\n",
            render(acceptance)
        ));
    }
    prompt.push_str(&format!(
        "\n## When you are done\n\nWrite your report as JSON to `reports/{id}.json` in the project \
         directory: write `reports/{id}.json.tmp` first, then rename it. Its shape:\n\n\
         {{\"task_id\": \"{id}\", \"status\": \"completed\", \"summary\": \"what you did\", \
         \"deliverables\": [\"files you created or changed\"], \"score\": 0.9}}\n\n\
         `score` (0 to 1) is optional. If you could not do the task, write \"status\": \"failed\" \
         and say why in \"summary\".\n"
    ));
    prompt
}

/// A task id: 1 to 128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.`, so
/// that `reports/<id>.json` is a plain file name.
pub fn valid_task_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), CoordinationError> {
    if text.trim().is_empty() {
        return Err(CoordinationError::Invalid(format!("{field} is empty")));
    }
    if text.chars().count() > max_chars {
        return Err(CoordinationError::Invalid(format!(
            "{field} is longer than {max_chars} characters"
        )));
    }
    Ok(())
}

/// Starts the lease timer and the reports watcher and brings up the agent workers of
/// every configured project. Called once by [`crate::server::start`].
pub fn start(hub: &Hub) {
    let settings: Vec<(String, u32)> = hub
        .coordinator
        .lock()
        .agent_settings
        .iter()
        .map(|(project, count)| (project.clone(), *count))
        .collect();
    let cli_available = hub.agent_cli().is_some();
    run(hub, |op| {
        for (project_id, count) in settings {
            if count > 0 && hub.projects.get(&project_id).is_ok() {
                op.set_agent_workers(&project_id, count, cli_available);
            }
        }
        op.dirty = true;
    });
    if !cli_available
        && hub
            .coordinator
            .lock()
            .agent_settings
            .values()
            .any(|&n| n > 0)
    {
        warn!("agent workers stay offline: the Claude Code CLI was not found");
    }
    hub.tracker.spawn(run_leases(hub.clone()));
    crate::watch::start(hub);
}

/// Expires leases, and retries assignment in case agent capacity freed up, every
/// quarter lease (between 100 ms and 1 s).
async fn run_leases(hub: Hub) {
    let lease = Duration::from_secs(hub.config.config.coordination.lease_s);
    let period = (lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = hub.shutdown.cancelled() => return,
        }
        expire_leases(&hub);
    }
}

fn expire_leases(hub: &Hub) {
    let now = Instant::now();
    run(hub, |op| {
        let expired: Vec<(String, String)> = op
            .st
            .workers
            .values()
            .filter(|w| w.lease_until.is_some_and(|until| until <= now))
            .filter_map(|w| Some((w.id.clone(), w.task_id.clone()?)))
            .collect();
        for (worker_id, task_id) in expired {
            let reason = format!(
                "lease expired after {} s without a heartbeat",
                op.config.lease_s
            );
            warn!(worker_id, task_id, "lease expired");
            if let Err(err) = op.fail_attempt(&task_id, reason.clone()) {
                warn!(error = %ErrorChain(&err), task_id, "cannot record an expired lease");
            }
            op.push_to_worker(
                &worker_id,
                method::TASK_REVOKED,
                &TaskRevoked { task_id, reason },
            );
            op.set_worker(&worker_id, WorkerStatus::Offline, None);
        }
        op.dirty = true;
    });
}

/// Renews the lease of a worker's task, or brings a worker whose lease expired back
/// online: called for every request a worker sends.
pub fn touch(hub: &Hub, client: &Client) {
    if client.role() != Role::Worker {
        return;
    }
    let lease = Duration::from_secs(hub.coordinator.config.lease_s);
    {
        let mut st = hub.coordinator.lock();
        let Some(worker_id) = st.by_conn.get(&client.id()).cloned() else {
            return;
        };
        let Some(worker) = st.workers.get_mut(&worker_id) else {
            return;
        };
        match worker.status {
            WorkerStatus::Working => {
                worker.lease_until = Some(Instant::now() + lease);
                return;
            }
            WorkerStatus::Idle => return,
            WorkerStatus::Offline => {}
        }
    }
    run(hub, |op| {
        if let Ok(worker_id) = op.worker_by_conn(client) {
            info!(worker_id, "worker is back");
            op.set_worker(&worker_id, WorkerStatus::Idle, None);
            op.touch_all_active();
        }
    });
}

/// Cleans up after a closed connection: its worker goes offline and its task goes back
/// to the queue (a failed attempt, `worker disconnected`).
pub fn disconnected(hub: &Hub, client: &Client) {
    if !hub.coordinator.lock().by_conn.contains_key(&client.id()) {
        return;
    }
    run(hub, |op| {
        let Ok(worker_id) = op.worker_by_conn(client) else {
            return;
        };
        let task_id = op
            .st
            .workers
            .get(&worker_id)
            .and_then(|w| w.task_id.clone());
        // At shutdown the task stays `running` in the store and is requeued at the next
        // start without counting an attempt: the hub, not the worker, went away.
        if let Some(task_id) = task_id
            && !hub.shutdown.is_cancelled()
            && op
                .st
                .tasks
                .get(&task_id)
                .is_some_and(|t| t.state == TaskState::Running)
            && let Err(err) = op.fail_attempt(&task_id, "worker disconnected".into())
        {
            warn!(error = %ErrorChain(&err), task_id, "cannot requeue a task");
        }
        op.remove_worker(&worker_id);
        if let Err(err) = op
            .store
            .set_worker_status(&worker_id, WorkerStatus::Offline, op.now)
        {
            warn!(error = %ErrorChain(&err), worker_id, "cannot record a worker offline");
        }
        info!(worker_id, "worker disconnected");
    });
}

/// `worker.register`: makes the connection a worker (role `worker`). Registering again
/// on the same connection updates the name and capabilities and keeps the id.
///
/// # Errors
/// `INVALID_PARAMS` for an empty or long name, or too many capabilities.
pub fn worker_register(
    hub: &Hub,
    client: &Arc<Client>,
    params: WorkerRegisterParams,
) -> Result<Value, RpcError> {
    check_text("name", &params.name, 100).map_err(RpcError::from)?;
    if params.capabilities.len() > 100
        || params
            .capabilities
            .iter()
            .any(|c| c.is_empty() || c.len() > 100)
    {
        return Err(CoordinationError::Invalid(
            "capabilities: at most 100 names of 1 to 100 characters".into(),
        )
        .into());
    }
    client.set_identity(Role::Worker, Some(params.name.clone()));
    hub.clients.broadcast_change("updated", client);
    let worker_id = run(hub, |op| -> Result<String, CoordinationError> {
        if let Ok(worker_id) = op.worker_by_conn(client) {
            if let Some(worker) = op.st.workers.get_mut(&worker_id) {
                worker.name = params.name.clone();
                worker.capabilities = params.capabilities.clone();
                op.store.upsert_worker(&worker.row(), op.now)?;
                let view = worker.view();
                op.notify(method::WORKER_STATUS, &view, observers);
                op.dirty = true;
                op.touch_all_active();
            }
            return Ok(worker_id);
        }
        let worker = Worker {
            id: uuid::Uuid::now_v7().to_string(),
            name: params.name.clone(),
            kind: WorkerKind::Client,
            capabilities: params.capabilities.clone(),
            project_id: None,
            client: Some(client.clone()),
            status: WorkerStatus::Offline,
            task_id: None,
            lease_until: None,
            ticket: 0,
            retiring: false,
            created_at: op.now,
        };
        let id = worker.id.clone();
        op.store.upsert_worker(
            &WorkerRow {
                status: WorkerStatus::Idle,
                ..worker.row()
            },
            op.now,
        )?;
        op.st.by_conn.insert(client.id(), id.clone());
        op.st.workers.insert(id.clone(), worker);
        op.set_worker(&id, WorkerStatus::Idle, None);
        op.touch_all_active();
        info!(worker_id = id, name = params.name, capabilities = ?params.capabilities, "worker registered");
        Ok(id)
    })?;
    Ok(json!({ "worker_id": worker_id, "lease_s": hub.coordinator.config.lease_s }))
}

/// `worker.heartbeat`: the lease was renewed on receipt; answers with the worker's state.
///
/// # Errors
/// `NOT_A_WORKER`.
pub fn worker_heartbeat(hub: &Hub, client: &Client) -> Result<Value, RpcError> {
    let st = hub.coordinator.lock();
    let worker_id = st
        .by_conn
        .get(&client.id())
        .ok_or(CoordinationError::NotAWorker)?;
    let worker = st
        .workers
        .get(worker_id)
        .ok_or(CoordinationError::NotAWorker)?;
    let lease_ms = worker
        .lease_until
        .map(|until| until.saturating_duration_since(Instant::now()).as_millis() as u64);
    Ok(json!({
        "worker_id": worker.id,
        "status": worker.status,
        "task_id": worker.task_id,
        "lease_expires_in_ms": lease_ms,
    }))
}

/// `worker.list`: every connected client worker and agent worker.
pub fn worker_list(hub: &Hub) -> Value {
    let st = hub.coordinator.lock();
    let mut workers: Vec<WorkerView> = st.workers.values().map(Worker::view).collect();
    workers
        .sort_by(|a, b| (a.kind.as_str(), &a.name, &a.id).cmp(&(b.kind.as_str(), &b.name, &b.id)));
    json!({ "workers": workers })
}

/// `task.create`: queues tasks, idempotently by id. Returns `{created, existing}`, the ids
/// in each group in the order given. A client with the default role becomes a
/// coordinator, so it hears about its tasks.
///
/// # Errors
/// `PROJECT_NOT_FOUND`, `INVALID_PARAMS` (no tasks, too many, a bad id, an empty title,
/// too large), `TASK_EXISTS` when an id belongs to another project (then nothing is
/// created).
pub fn task_create(
    hub: &Hub,
    client: &Arc<Client>,
    params: TaskCreateParams,
) -> Result<Value, RpcError> {
    hub.projects.get(&params.project_id)?;
    if params.tasks.is_empty() || params.tasks.len() > MAX_TASKS_PER_CREATE {
        return Err(CoordinationError::Invalid(format!(
            "tasks must hold 1 to {MAX_TASKS_PER_CREATE} tasks"
        ))
        .into());
    }
    let mut specs = Vec::with_capacity(params.tasks.len());
    for (index, task) in params.tasks.into_iter().enumerate() {
        let id = task
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let invalid =
            |reason: String| CoordinationError::Invalid(format!("tasks[{index}]: {reason}"));
        if !valid_task_id(&id) {
            return Err(invalid(format!(
                "id {id:?} must be 1 to 128 characters from A-Z a-z 0-9 . _ - and not start with '.'"
            ))
            .into());
        }
        check_text("title", &task.title, 500).map_err(|err| invalid(err.to_string()))?;
        if let Some(kind) = &task.kind {
            check_text("type", kind, 100).map_err(|err| invalid(err.to_string()))?;
        }
        let size = task.prompt.as_ref().map_or(0, String::len)
            + task.context.as_ref().map_or(0, |v| v.to_string().len())
            + task.acceptance.as_ref().map_or(0, |v| v.to_string().len());
        if size > MAX_TASK_BYTES {
            return Err(RpcError::new(
                ErrorKind::TooLarge,
                format!("tasks[{index}]: prompt, context and acceptance exceed 256 KiB"),
            ));
        }
        specs.push((id, task));
    }
    if client.role() == Role::Script {
        let name = client.info().name;
        client.set_identity(Role::Coordinator, name);
        hub.clients.broadcast_change("updated", client);
    }
    let project_id = params.project_id;
    let (created, existing) = run(hub, |op| -> Result<_, CoordinationError> {
        let ids: Vec<&str> = specs.iter().map(|(id, _)| id.as_str()).collect();
        let owners = op.store.task_owners(&ids)?;
        if let Some((task_id, owner)) = owners.iter().find(|(_, owner)| **owner != project_id) {
            return Err(CoordinationError::TaskExists {
                task_id: task_id.clone(),
                project_id: owner.clone(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        let (mut created, mut existing, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (id, task) in specs {
            if owners.contains_key(&id) || !seen.insert(id.clone()) {
                existing.push(id);
                continue;
            }
            op.st.next_seq += 1;
            rows.push(TaskRow {
                id: id.clone(),
                project_id: project_id.clone(),
                seq: op.st.next_seq,
                title: task.title,
                kind: task.kind,
                context: task.context,
                prompt: task.prompt,
                acceptance: task.acceptance,
                priority: task.priority,
                state: TaskState::Pending,
                worker_id: None,
                attempts: 0,
                failures: Vec::new(),
                report: None,
                completed_by: None,
                created_at: op.now,
                updated_at: op.now,
            });
            created.push(id);
        }
        if let Err(err) = op.store.insert_tasks(&rows) {
            op.st.next_seq -= rows.len() as i64;
            return Err(err.into());
        }
        let views: Vec<_> = rows.iter().map(TaskRow::view).collect();
        if !views.is_empty() {
            op.notify(
                method::TASK_CREATED,
                &json!({"project_id": project_id, "tasks": views}),
                observers,
            );
        }
        for row in rows {
            op.st
                .queues
                .entry(project_id.clone())
                .or_default()
                .insert(queue_key(&row));
            op.st.tasks.insert(row.id.clone(), row);
            op.count_move(&project_id, None, TaskState::Pending);
        }
        op.touched.insert(project_id.clone());
        op.dirty = true;
        info!(
            project_id,
            created = created.len(),
            existing = existing.len(),
            "tasks queued"
        );
        Ok((created, existing))
    })?;
    Ok(json!({ "project_id": project_id, "created": created, "existing": existing }))
}

/// `task.list`: a page of a project's tasks in creation order. Returns `{tasks,
/// has_more}`; pass the last task's `seq` as `after_seq` for the next page.
///
/// # Errors
/// `PROJECT_NOT_FOUND`, `INVALID_PARAMS` for a limit outside 1..=10000.
pub fn task_list(hub: &Hub, params: TaskListParams) -> Result<Value, RpcError> {
    hub.projects.get(&params.project_id)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "limit must be between 1 and 10000",
        ));
    }
    let mut rows = hub
        .store
        .tasks(
            &params.project_id,
            params.state,
            params.after_seq.unwrap_or(0),
            limit,
        )
        .map_err(CoordinationError::from)?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let tasks: Vec<_> = rows.iter().map(TaskRow::view).collect();
    Ok(json!({ "tasks": tasks, "has_more": has_more }))
}

/// `task.get`: one task.
///
/// # Errors
/// `TASK_NOT_FOUND`.
pub fn task_get(hub: &Hub, task_id: &str) -> Result<Value, RpcError> {
    let row = hub
        .store
        .task(task_id)
        .map_err(CoordinationError::from)?
        .ok_or_else(|| CoordinationError::TaskNotFound(task_id.to_string()))?;
    Ok(serde_json::to_value(row.view()).unwrap_or_default())
}

fn finished_answer(hub: &Hub, task_id: &str) -> Result<TaskState, RpcError> {
    let row = hub
        .store
        .task(task_id)
        .map_err(CoordinationError::from)?
        .ok_or_else(|| CoordinationError::TaskNotFound(task_id.to_string()))?;
    Ok(row.state)
}

/// `task.cancel`: cancels a queued or running task. A client worker holding it gets
/// `task.revoked`; an agent run for it is stopped. Returns `{task_id, cancelled, state}`;
/// `cancelled` is false for a task that had already finished.
///
/// # Errors
/// `TASK_NOT_FOUND`.
pub fn task_cancel(hub: &Hub, task_id: &str) -> Result<Value, RpcError> {
    let cancelled = run(hub, |op| -> Result<bool, CoordinationError> {
        let Some(task) = op.st.tasks.get(task_id) else {
            return Ok(false);
        };
        let holder = (task.state == TaskState::Running)
            .then(|| task.worker_id.clone())
            .flatten();
        op.cancel(task_id)?;
        if let Some(holder) = holder {
            let is_agent = op
                .st
                .workers
                .get(&holder)
                .is_some_and(|w| w.kind == WorkerKind::Agent);
            if is_agent {
                op.effects.push(Effect::StopRun {
                    task_id: task_id.to_string(),
                });
            } else {
                op.release_holder(Some(&holder), "cancelled", task_id);
            }
        }
        Ok(true)
    })?;
    let state = if cancelled {
        TaskState::Cancelled
    } else {
        finished_answer(hub, task_id)?
    };
    Ok(json!({ "task_id": task_id, "cancelled": cancelled, "state": state }))
}

/// `task.complete`: the calling worker completed its task. Returns `{task_id, state,
/// duplicate}`; `duplicate: true` (and nothing changes) when the task had already
/// finished.
///
/// # Errors
/// `NOT_A_WORKER`, `TASK_NOT_FOUND`, `NOT_ASSIGNED` when the task is queued or held by
/// another worker.
pub fn task_complete(
    hub: &Hub,
    client: &Client,
    params: TaskCompleteParams,
) -> Result<Value, RpcError> {
    worker_answer(hub, client, &params.task_id, |op, worker_id| {
        op.complete(&params.task_id, CompletedBy::Worker, params.report)?;
        op.set_worker(worker_id, WorkerStatus::Idle, None);
        Ok(TaskState::Completed)
    })
}

/// `task.fail`: the calling worker's attempt failed. The task goes back to the queue, or
/// fails for good after its last attempt. Returns `{task_id, state, duplicate}`.
///
/// # Errors
/// `NOT_A_WORKER`, `INVALID_PARAMS` for an empty reason, `TASK_NOT_FOUND`,
/// `NOT_ASSIGNED`.
pub fn task_fail(hub: &Hub, client: &Client, params: TaskFailParams) -> Result<Value, RpcError> {
    check_text("reason", &params.reason, 10_000).map_err(RpcError::from)?;
    worker_answer(hub, client, &params.task_id, |op, worker_id| {
        let state = op.fail_attempt(&params.task_id, params.reason)?;
        op.set_worker(worker_id, WorkerStatus::Idle, None);
        Ok(state)
    })
}

fn worker_answer(
    hub: &Hub,
    client: &Client,
    task_id: &str,
    act: impl FnOnce(&mut Op<'_>, &str) -> Result<TaskState, StoreError>,
) -> Result<Value, RpcError> {
    let outcome = run(hub, |op| -> Result<Option<TaskState>, CoordinationError> {
        let worker_id = op.worker_by_conn(client)?;
        let Some(task) = op.st.tasks.get(task_id) else {
            return Ok(None);
        };
        if task.state != TaskState::Running || task.worker_id.as_deref() != Some(worker_id.as_str())
        {
            return Err(CoordinationError::NotAssigned {
                task_id: task_id.to_string(),
                worker_id,
            });
        }
        Ok(Some(act(op, &worker_id)?))
    })?;
    match outcome {
        Some(state) => Ok(json!({ "task_id": task_id, "state": state, "duplicate": false })),
        None => {
            let state = finished_answer(hub, task_id)?;
            info!(
                task_id,
                state = state.as_str(),
                "duplicate completion ignored"
            );
            Ok(json!({ "task_id": task_id, "state": state, "duplicate": true }))
        }
    }
}

/// `project.configure`: how many built-in agent workers serve the project (0 to
/// `limits.max_running_agents`). Extra workers that are busy finish their task first.
/// Returns `{project_id, agent_workers, workers}`.
///
/// # Errors
/// `PROJECT_NOT_FOUND`, `INVALID_PARAMS` above the limit, `AGENT_UNAVAILABLE` when agent
/// workers are asked for and the CLI is missing.
pub fn project_configure(hub: &Hub, params: ProjectConfigureParams) -> Result<Value, RpcError> {
    hub.projects.get(&params.project_id)?;
    let limit = hub.config.config.limits.max_running_agents;
    if params.agent_workers as usize > limit {
        return Err(CoordinationError::Invalid(format!(
            "agent_workers must be between 0 and {limit} (limits.max_running_agents)"
        ))
        .into());
    }
    if params.agent_workers > 0 && hub.agent_cli().is_none() {
        return Err(CoordinationError::AgentUnavailable.into());
    }
    hub.store
        .set_agent_workers(&params.project_id, params.agent_workers)
        .map_err(CoordinationError::from)?;
    let workers = run(hub, |op| {
        op.set_agent_workers(&params.project_id, params.agent_workers, true);
        op.dirty = true;
        let mut workers: Vec<WorkerView> = op
            .st
            .workers
            .values()
            .filter(|w| {
                w.kind == WorkerKind::Agent
                    && w.project_id.as_deref() == Some(params.project_id.as_str())
            })
            .map(Worker::view)
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        workers
    });
    info!(
        project_id = params.project_id,
        agent_workers = params.agent_workers,
        "project configured"
    );
    Ok(json!({
        "project_id": params.project_id,
        "agent_workers": params.agent_workers,
        "workers": workers,
    }))
}

/// `coordination.status` (request): the project's counts and workers now.
///
/// # Errors
/// `PROJECT_NOT_FOUND`.
pub fn status(hub: &Hub, project_id: &str) -> Result<CoordinationStatus, RpcError> {
    hub.projects.get(project_id)?;
    let op = hub.coordinator.op(hub);
    Ok(op.status(project_id))
}

/// A project was registered: its reports folder is scanned and watched.
pub fn project_added(hub: &Hub, project_id: &str, path: &str) {
    hub.watch.add_project(project_id, path);
}

/// A project was deleted (its tasks went with it in the store): forgets its tasks and
/// agent workers, stops their runs and frees client workers busy with its tasks.
pub fn project_deleted(hub: &Hub, project_id: &str) {
    hub.watch.remove_project(project_id);
    run(hub, |op| {
        op.st.agent_settings.remove(project_id);
        op.st.queues.remove(project_id);
        op.st.counts.remove(project_id);
        let tasks: Vec<TaskRow> = op
            .st
            .tasks
            .values()
            .filter(|t| t.project_id == project_id)
            .cloned()
            .collect();
        for task in tasks {
            op.st.tasks.remove(&task.id);
            if task.state == TaskState::Running {
                op.effects.push(Effect::StopRun {
                    task_id: task.id.clone(),
                });
                op.release_holder(
                    task.worker_id.as_deref(),
                    "the project was deleted",
                    &task.id,
                );
            }
        }
        let agents: Vec<String> = op
            .st
            .workers
            .values()
            .filter(|w| w.project_id.as_deref() == Some(project_id))
            .map(|w| w.id.clone())
            .collect();
        for worker_id in agents {
            op.remove_worker(&worker_id);
        }
        op.touched.remove(project_id);
    });
}

/// What the hub knows about the task a report file is named after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Queued or running in this project.
    Unfinished,
    /// Finished in this project.
    Finished,
    /// Not a task of this project.
    Unknown,
}

/// Looks up the task a report file names.
pub fn known(hub: &Hub, project_id: &str, task_id: &str) -> Known {
    if let Some(task) = hub.coordinator.lock().tasks.get(task_id) {
        return if task.project_id == project_id {
            Known::Unfinished
        } else {
            Known::Unknown
        };
    }
    match hub.store.task(task_id) {
        Ok(Some(task)) if task.project_id == project_id => Known::Finished,
        Ok(_) => Known::Unknown,
        Err(err) => {
            warn!(error = %ErrorChain(&err), task_id, "cannot look up a task");
            Known::Unknown
        }
    }
}

/// What a valid report file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// It completed its task.
    Completed,
    /// It recorded a failed attempt (status `failed`).
    Failed,
    /// The task had already finished; nothing changed.
    Duplicate,
    /// No such task in the project.
    Unknown,
}

/// Applies a valid report file: completes its task, or records a failed attempt. A
/// client worker holding the task gets `task.revoked`; an agent run holding it is left
/// to end, and its result is then a duplicate.
pub fn report(hub: &Hub, project_id: &str, task_id: &str, report: ReportFile) -> ReportOutcome {
    let outcome = run(hub, |op| -> Result<ReportOutcome, StoreError> {
        let Some(task) = op.st.tasks.get(task_id) else {
            return Ok(ReportOutcome::Duplicate);
        };
        if task.project_id != project_id {
            return Ok(ReportOutcome::Unknown);
        }
        let holder = (task.state == TaskState::Running)
            .then(|| task.worker_id.clone())
            .flatten();
        let outcome = match report.status {
            ReportStatus::Completed => {
                let value = serde_json::to_value(&report).unwrap_or_default();
                op.complete(task_id, CompletedBy::Report, value)?;
                op.release_holder(holder.as_deref(), "completed by a report file", task_id);
                ReportOutcome::Completed
            }
            ReportStatus::Failed => {
                op.fail_attempt(task_id, format!("report: {}", report.summary))?;
                op.release_holder(holder.as_deref(), "failed by a report file", task_id);
                ReportOutcome::Failed
            }
        };
        Ok(outcome)
    });
    match outcome {
        Ok(ReportOutcome::Duplicate) => match known(hub, project_id, task_id) {
            Known::Finished => {
                debug!(task_id, "report for a finished task ignored");
                ReportOutcome::Duplicate
            }
            _ => ReportOutcome::Unknown,
        },
        Ok(outcome) => outcome,
        Err(err) => {
            // Left in place: the file is read again at the next start.
            warn!(error = %ErrorChain(&err), task_id, "cannot record a report");
            ReportOutcome::Duplicate
        }
    }
}

/// Tells coordinators a report file is unusable (`task.report_invalid`).
pub fn report_invalid(hub: &Hub, notice: ReportInvalid) {
    warn!(
        task_id = notice.task_id,
        path = notice.path,
        reason = notice.reason,
        "invalid report"
    );
    hub.clients.broadcast_to(
        Utf8Bytes::from(notification(method::TASK_REPORT_INVALID, &notice)),
        observers,
    );
}

/// Tells coordinators a report file names no task of its project (`task.report_unknown`).
pub fn report_unknown(hub: &Hub, notice: ReportUnknown) {
    info!(
        task_id = notice.task_id,
        path = notice.path,
        "report for an unknown task"
    );
    hub.clients.broadcast_to(
        Utf8Bytes::from(notification(method::TASK_REPORT_UNKNOWN, &notice)),
        observers,
    );
}

/// The agent was asked to write `reports/<task-id>.json`. When it did, that report is
/// the task's outcome whether the watcher or the run's end sees it first, so a run's
/// generic result never overtakes the agent's own report.
fn apply_agent_report(hub: &Hub, task_id: &str) {
    let Ok(Some(task)) = hub.store.task(task_id) else {
        return;
    };
    let Ok(project) = hub.projects.get(&task.project_id) else {
        return;
    };
    let path = std::path::Path::new(&project.path)
        .join(crate::watch::REPORTS_DIR)
        .join(format!("{task_id}.json"));
    // An oversized file is left to the watcher, which reports it as invalid.
    let fits = std::fs::metadata(&path).is_ok_and(|m| m.len() <= crate::watch::MAX_REPORT_BYTES);
    let Some(bytes) = fits.then(|| std::fs::read(&path).ok()).flatten() else {
        return;
    };
    match crate::watch::parse_report(&bytes, task_id) {
        Ok(parsed) => {
            report(hub, &task.project_id, task_id, parsed);
        }
        // Left to the watcher, which reports it as invalid once it is stable.
        Err(err) => debug!(task_id, error = %err, "agent report not usable yet"),
    }
}

/// An agent run for a task ended: its result completes the task or fails the attempt,
/// unless the task already finished (a report file came first) or moved on. The agent
/// worker is then free, or removed if the project needs fewer.
fn run_ended(hub: &Hub, worker_id: &str, task_id: &str, end: TaskRunEnd) {
    if hub.shutdown.is_cancelled() {
        // The task stays `running` in the store and is requeued at the next start.
        return;
    }
    if end.status == "succeeded" {
        apply_agent_report(hub, task_id);
    }
    run(hub, |op| {
        let holds = op.st.tasks.get(task_id).is_some_and(|t| {
            t.state == TaskState::Running && t.worker_id.as_deref() == Some(worker_id)
        });
        let result = if !holds {
            debug!(task_id, run_id = end.run_id, "run result is a duplicate");
            Ok(())
        } else if end.status == "succeeded" {
            let report = json!({
                "status": "completed",
                "summary": end.result_text.clone().unwrap_or_default(),
                "deliverables": [],
                "run_id": end.run_id,
                "session_id": end.session_id,
                "cost_usd": end.cost_usd,
                "duration_ms": end.duration_ms,
            });
            op.complete(task_id, CompletedBy::Agent, report)
        } else {
            let reason = end
                .reason
                .clone()
                .unwrap_or_else(|| format!("the agent run {}", end.status));
            op.fail_attempt(task_id, format!("agent run {}: {reason}", end.run_id))
                .map(|_| ())
        };
        if let Err(err) = result {
            warn!(error = %ErrorChain(&err), task_id, "cannot record a run's result");
        }
        let retiring = op.st.workers.get(worker_id).map(|w| w.retiring);
        match retiring {
            Some(true) => op.retire_agent_now(worker_id),
            Some(false) => op.set_worker(worker_id, WorkerStatus::Idle, None),
            None => {}
        }
        op.dirty = true;
    });
}

impl Op<'_> {
    fn retire_agent_now(&mut self, worker_id: &str) {
        if let Some(worker) = self.st.workers.get_mut(worker_id) {
            worker.status = WorkerStatus::Offline;
        }
        self.retire_agent(worker_id);
    }
}

/// An agent run could not start. At the limit of running agents the task simply goes
/// back to the queue; otherwise the attempt fails and the agent worker goes offline
/// (until `project.configure` is called again) so that a broken setup does not burn
/// through the queue.
fn run_not_started(hub: &Hub, worker_id: &str, task_id: &str, err: &RpcError) {
    warn!(worker_id, task_id, error = %err, "cannot start a task run");
    run(hub, |op| {
        let result = if err.kind == ErrorKind::LimitReached {
            op.requeue(task_id)
        } else {
            op.fail_attempt(task_id, format!("cannot start the agent: {}", err.message))
                .map(|_| ())
        };
        if let Err(store_err) = result {
            warn!(error = %ErrorChain(&store_err), task_id, "cannot requeue a task");
        }
        let status = if err.kind == ErrorKind::LimitReached {
            WorkerStatus::Idle
        } else {
            WorkerStatus::Offline
        };
        if op.st.workers.get(worker_id).is_some_and(|w| w.retiring) {
            op.retire_agent_now(worker_id);
        } else {
            op.set_worker(worker_id, status, None);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_are_plain_file_names() {
        for ok in [
            "t1",
            "task-001",
            "a.b_c",
            "0190b2c4-8f3e-7abc-9def-0123456789ab",
        ] {
            assert!(valid_task_id(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "é", &"x".repeat(129)] {
            assert!(!valid_task_id(bad), "{bad}");
        }
    }

    #[test]
    fn agent_slots_round_trip() {
        assert_eq!(agent_slot(&agent_worker_id("0190-p", 3)), Some(3));
        assert_eq!(agent_slot("w-1"), None);
    }

    #[test]
    fn capabilities_match_types() {
        let worker = |caps: &[&str], kind| Worker {
            id: "w".into(),
            name: "w".into(),
            kind,
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
            project_id: (kind == WorkerKind::Agent).then(|| "p".to_string()),
            client: None,
            status: WorkerStatus::Idle,
            task_id: None,
            lease_until: None,
            ticket: 0,
            retiring: false,
            created_at: 0,
        };
        let task = |kind: Option<&str>, project: &str| TaskRow {
            id: "t".into(),
            project_id: project.into(),
            seq: 1,
            title: "t".into(),
            kind: kind.map(str::to_string),
            context: None,
            prompt: None,
            acceptance: None,
            priority: 0,
            state: TaskState::Pending,
            worker_id: None,
            attempts: 0,
            failures: vec![],
            report: None,
            completed_by: None,
            created_at: 0,
            updated_at: 0,
        };
        let any = worker(&[], WorkerKind::Client);
        let coder = worker(&["code"], WorkerKind::Client);
        let agent = worker(&[], WorkerKind::Agent);
        assert!(any.takes(&task(Some("review"), "p")));
        assert!(coder.takes(&task(Some("code"), "p")));
        assert!(!coder.takes(&task(Some("review"), "p")));
        assert!(
            coder.takes(&task(None, "p")),
            "an untyped task goes to anyone"
        );
        assert!(agent.takes(&task(Some("x"), "p")));
        assert!(
            !agent.takes(&task(None, "q")),
            "an agent serves its own project only"
        );
    }

    #[test]
    fn queue_order_is_priority_then_fifo() {
        let mut queue = BTreeSet::new();
        for (id, priority, seq) in [("a", 0, 1), ("b", 5, 2), ("c", 0, 3), ("d", 5, 4)] {
            queue.insert((Reverse(priority), seq, id.to_string()));
        }
        let order: Vec<&str> = queue.iter().map(|k| k.2.as_str()).collect();
        assert_eq!(order, ["b", "d", "a", "c"]);
    }

    #[test]
    fn prompt_names_the_report_file_and_renders_lists() {
        let task = TaskRow {
            id: "t7".into(),
            project_id: "p".into(),
            seq: 1,
            title: "Write the docs".into(),
            kind: Some("docs".into()),
            context: Some(json!("see README")),
            prompt: Some("Explain the queue.".into()),
            acceptance: Some(json!(["mentions leases", "has an example"])),
            priority: 0,
            state: TaskState::Pending,
            worker_id: None,
            attempts: 0,
            failures: vec![],
            report: None,
            completed_by: None,
            created_at: 0,
            updated_at: 0,
        };
        let prompt = agent_prompt(&task);
        assert!(prompt.starts_with("# Task t7: Write the docs"));
        assert!(prompt.contains("- mentions leases\n- has an example"));
        assert!(prompt.contains("reports/t7.json"));
        assert!(prompt.contains("Explain the queue."));
    }
}
