//! The coordinator's state machine: the queue, the workers and every transition.
//!
//! A transition is a method of [`Txn`], which borrows the [`State`] with its inputs:
//! the time (`now`, epoch milliseconds, given by the caller), the configuration, the
//! agent [`Slots`] and a [`TaskStore`] for writes. It collects the [`Event`]s to announce
//! and the [`Effect`]s to apply once the lock is released; [`Txn::finish`] assigns what
//! can be assigned and returns both. Nothing here reads a clock, opens a socket or
//! knows the SQLite store, so every rule is unit-tested with plain values
//! (`coordinator/tests.rs`).
//!
//! Writes go through the [`TaskStore`] port. The hub records them
//! ([`super::writes::Recorder`]) and commits each transition's writes as one job after
//! the transition; when a commit fails, [`Txn::rebuild`] puts memory back in agreement
//! with the store (the durability rule of [`super`]).

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;
use tracing::{debug, info, info_span, warn};

use crate::config::CoordinationConfig;
use crate::events::Event;
use crate::protocol::coordination::{
    CompletedBy, CoordinationStatus, Failure, ProjectCompleted, TaskAssigned, TaskCancelled,
    TaskCompleted, TaskFailed, TaskRevoked, TaskStarted, TaskState, WorkerKind, WorkerStatus,
};
use crate::protocol::error::ErrorChain;
use crate::protocol::ids::{TaskId, WorkerId};
use crate::runner::slots::{Permit, Slots};
use crate::storage::sqlite::{StoreError, TaskRow};

pub use super::model::{
    Counts, QueueKey, Worker, agent_slot, agent_worker_id, queue_key, sorted_views,
};
pub use super::writes::TaskStore;
use crate::support::timestamp::format_ms;

/// Queued and running tasks, counts and workers.
#[derive(Debug, Default)]
pub struct State {
    /// Queued and running tasks.
    pub tasks: HashMap<TaskId, TaskRow>,
    /// Queued tasks per project, in queue order.
    pub queues: HashMap<String, BTreeSet<QueueKey>>,
    /// Per project.
    pub counts: HashMap<String, Counts>,
    /// Connected client workers (idle, working, or offline after a lease expired) and
    /// agent workers.
    pub workers: HashMap<WorkerId, Worker>,
    /// Client workers by connection id.
    pub by_conn: HashMap<u64, WorkerId>,
    /// Idle workers, longest idle first.
    pub idle: BTreeSet<(u64, WorkerId)>,
    /// The last task `seq` given.
    pub next_seq: i64,
    next_ticket: u64,
    /// `agent_workers` per project.
    pub agent_settings: HashMap<String, u32>,
    /// The rows of the `task.create` in progress: planned, maybe partly stored, not
    /// queued yet. A rebuild leaves them to the create.
    pub planned: Option<Planned>,
}

/// The rows a `task.create` planned and has not queued yet.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Their project.
    pub project_id: String,
    /// Their `seq`s.
    pub seqs: std::ops::RangeInclusive<i64>,
}

impl State {
    /// The state after a restart: `counts` as stored, `tasks` the unfinished ones. Tasks
    /// that were `running` go back to the queue without counting an attempt (the hub
    /// stopping is not the worker's fault); they are returned, to be written back.
    pub fn recover(
        next_seq: i64,
        counts: Vec<(String, TaskState, u64)>,
        tasks: Vec<TaskRow>,
        agent_settings: HashMap<String, u32>,
        now: i64,
    ) -> (Self, Vec<TaskRow>) {
        let mut state = State {
            next_seq,
            agent_settings,
            ..State::default()
        };
        for (project_id, task_state, count) in counts {
            let task_state = match task_state {
                TaskState::Running => TaskState::Pending,
                other => other,
            };
            *state.counts.entry(project_id).or_default().slot(task_state) += count;
        }
        let mut requeued = Vec::new();
        for mut task in tasks {
            if task.state == TaskState::Running {
                task.state = TaskState::Pending;
                task.worker_id = None;
                task.updated_at = now;
                requeued.push(task.clone());
            }
            state
                .queues
                .entry(task.project_id.clone())
                .or_default()
                .insert(queue_key(&task));
            state.tasks.insert(task.id.clone(), task);
        }
        (state, requeued)
    }

    /// Whether `task_id` is running on `worker_id`.
    pub fn holds(&self, worker_id: &WorkerId, task_id: &TaskId) -> bool {
        self.tasks.get(task_id).is_some_and(|task| {
            task.state == TaskState::Running && task.worker_id.as_ref() == Some(worker_id)
        })
    }

    /// A project's counts and workers.
    pub fn status(&self, project_id: &str) -> CoordinationStatus {
        let counts = self.counts.get(project_id).copied().unwrap_or_default();
        let workers = sorted_views(
            self.workers
                .values()
                .filter(|w| w.project_id.as_deref().is_none_or(|p| p == project_id)),
        );
        CoordinationStatus {
            project_id: project_id.to_string(),
            total: counts.total(),
            completed: counts.completed,
            pending: counts.pending,
            running: counts.running,
            failed: counts.failed,
            cancelled: counts.cancelled,
            workers,
            agent_workers: self.agent_settings.get(project_id).copied().unwrap_or(0),
        }
    }
}

/// Work to do once the lock is released.
#[derive(Debug)]
pub enum Effect {
    /// Start an agent run for a task, with the permit taken at assignment.
    StartRun {
        /// The agent worker.
        worker_id: WorkerId,
        /// The task.
        task: Box<TaskRow>,
        /// The agent slot.
        permit: Permit,
    },
    /// Stop the agent run of a task.
    StopRun {
        /// The task.
        task_id: TaskId,
    },
}

/// One transition under the lock, with what it must announce and do afterwards.
pub struct Txn<'a> {
    /// The state.
    pub st: &'a mut State,
    store: &'a dyn TaskStore,
    config: &'a CoordinationConfig,
    slots: &'a Slots,
    /// The time of the transition, epoch milliseconds.
    pub now: i64,
    events: Vec<Event>,
    effects: Vec<Effect>,
    /// Projects whose `coordination.status` changed.
    touched: BTreeSet<String>,
    /// Projects whose last unfinished task just finished.
    finished: Vec<String>,
    /// Whether assignment may now be possible.
    pub dirty: bool,
}

impl<'a> Txn<'a> {
    /// Starts a transition.
    pub fn new(
        st: &'a mut State,
        store: &'a dyn TaskStore,
        config: &'a CoordinationConfig,
        slots: &'a Slots,
        now: i64,
    ) -> Self {
        Self {
            st,
            store,
            config,
            slots,
            now,
            events: Vec::new(),
            effects: Vec::new(),
            touched: BTreeSet::new(),
            finished: Vec::new(),
            dirty: false,
        }
    }

    /// The writes port.
    pub fn store(&self) -> &dyn TaskStore {
        self.store
    }

    /// The settings.
    pub fn config(&self) -> &CoordinationConfig {
        self.config
    }

    /// Queues an event.
    pub fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Queues an effect.
    pub fn effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Forgets that a project's status changed (it was deleted).
    pub fn untouch_project(&mut self, project_id: &str) {
        self.touched.remove(project_id);
    }

    fn active_projects(&self) -> Vec<String> {
        self.st
            .counts
            .iter()
            .filter(|(_, c)| c.pending + c.running > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Marks every project with unfinished tasks as changed (a client worker serves all).
    pub fn touch_all_active(&mut self) {
        let active = self.active_projects();
        self.touched.extend(active);
    }

    /// Moves a task between counts; the move into a final state may finish a batch.
    pub fn count_move(&mut self, project_id: &str, from: Option<TaskState>, to: TaskState) {
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
    pub fn set_worker(
        &mut self,
        worker_id: &WorkerId,
        status: WorkerStatus,
        task_id: Option<TaskId>,
    ) {
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
        self.events.push(Event::WorkerStatus(view));
    }

    /// Tells a client worker it lost its task.
    pub fn revoke(&mut self, worker_id: &WorkerId, task_id: &TaskId, reason: &str) {
        if let Some(conn_id) = self.st.workers.get(worker_id).and_then(|w| w.conn_id) {
            self.events.push(Event::TaskRevoked {
                conn_id,
                revoked: TaskRevoked {
                    task_id: task_id.clone(),
                    reason: reason.to_string(),
                },
            });
        }
    }

    /// Frees a client worker whose task ended without it; an agent worker stays busy
    /// until its run ends.
    pub fn release_holder(&mut self, worker_id: Option<&WorkerId>, reason: &str, task_id: &TaskId) {
        let Some(worker_id) = worker_id else { return };
        let Some(worker) = self.st.workers.get(worker_id) else {
            return;
        };
        if worker.kind == WorkerKind::Client && worker.task_id.as_ref() == Some(task_id) {
            self.revoke(worker_id, task_id, reason);
            self.set_worker(worker_id, WorkerStatus::Idle, None);
        }
    }

    /// Hands a queued task to an idle worker; an agent worker's `permit` goes with the
    /// run it starts.
    fn assign(
        &mut self,
        task_id: &TaskId,
        worker_id: &WorkerId,
        permit: Option<Permit>,
    ) -> Result<(), StoreError> {
        let _span = info_span!("task", %task_id).entered();
        let Some(mut task) = self.st.tasks.get(task_id).cloned() else {
            return Ok(());
        };
        let key = queue_key(&task);
        task.state = TaskState::Running;
        task.worker_id = Some(worker_id.clone());
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
        let lease_ms = self.config.lease_s as i64 * 1000;
        let Some(worker) = self.st.workers.get_mut(worker_id) else {
            return Ok(());
        };
        debug!(
            %worker_id,
            kind = worker.kind.as_str(),
            attempt = task.attempts + 1,
            "task assigned"
        );
        let started = TaskStarted {
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            worker_id: worker_id.clone(),
            attempt: task.attempts + 1,
        };
        match (worker.kind, permit) {
            (WorkerKind::Agent, Some(permit)) => {
                self.events.push(Event::TaskStarted(started));
                self.effects.push(Effect::StartRun {
                    worker_id: worker_id.clone(),
                    task: Box::new(task),
                    permit,
                });
            }
            (_, _) => {
                worker.lease_until = Some(self.now + lease_ms);
                if let Some(conn_id) = worker.conn_id {
                    self.events.push(Event::TaskAssigned {
                        conn_id,
                        assigned: TaskAssigned {
                            task: task.view(),
                            lease_s: self.config.lease_s,
                        },
                    });
                }
                self.events.push(Event::TaskStarted(started));
            }
        }
        Ok(())
    }

    /// Completes a queued or running task.
    ///
    /// # Errors
    /// The store's; nothing changed then.
    pub fn complete(
        &mut self,
        task_id: &TaskId,
        source: CompletedBy,
        report: Value,
    ) -> Result<(), StoreError> {
        let _span = info_span!("task", %task_id).entered();
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
        self.events.push(Event::TaskCompleted(TaskCompleted {
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            worker: task.worker_id.clone(),
            source,
            report,
        }));
        Ok(())
    }

    /// Records a failed attempt: back to the queue, or failed for good after the last
    /// attempt. Returns the new state. The holder is released by the caller.
    ///
    /// # Errors
    /// The store's; nothing changed then.
    pub fn fail_attempt(
        &mut self,
        task_id: &TaskId,
        reason: String,
    ) -> Result<TaskState, StoreError> {
        let _span = info_span!("task", %task_id).entered();
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
            self.events.push(Event::TaskFailed(notice));
        } else {
            info!(worker_id = ?worker, attempts = task.attempts, reason, "attempt failed; task requeued");
            self.enqueue(task.clone());
            self.events.push(Event::TaskRequeued(notice));
        }
        self.count_move(&task.project_id, Some(from), task.state);
        Ok(task.state)
    }

    /// Puts a task (back) in its project's queue.
    fn enqueue(&mut self, task: TaskRow) {
        self.st
            .queues
            .entry(task.project_id.clone())
            .or_default()
            .insert(queue_key(&task));
        self.st.tasks.insert(task.id.clone(), task);
        self.dirty = true;
    }

    /// Cancels a queued or running task.
    ///
    /// # Errors
    /// The store's; nothing changed then.
    pub fn cancel(&mut self, task_id: &TaskId) -> Result<(), StoreError> {
        let _span = info_span!("task", %task_id).entered();
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
        self.events.push(Event::TaskCancelled(TaskCancelled {
            project_id: task.project_id.clone(),
            task_id: task.id.clone(),
            worker: task.worker_id.clone(),
        }));
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

    /// Queues new tasks (already checked and numbered).
    pub fn add_tasks(&mut self, project_id: &str, rows: Vec<TaskRow>) {
        for row in rows {
            self.enqueue(row);
            self.count_move(project_id, None, TaskState::Pending);
        }
        self.touched.insert(project_id.to_string());
    }

    /// The first queued task a worker takes.
    fn best_task_for(&self, worker: &Worker) -> Option<TaskId> {
        let st = &*self.st;
        let first_match = |queue: &BTreeSet<QueueKey>| -> Option<QueueKey> {
            queue
                .iter()
                .find(|key| st.tasks.get(&key.2).is_some_and(|task| worker.takes(task)))
                .cloned()
        };
        match worker.kind {
            WorkerKind::Agent => {
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

    /// Gives every idle worker the first queued task it takes, longest idle first. An
    /// agent worker only gets one if an agent slot is free: its permit is taken here,
    /// under the lock, so concurrent starts cannot overrun the limit.
    fn pump(&mut self) {
        let idle: Vec<WorkerId> = self.st.idle.iter().map(|(_, id)| id.clone()).collect();
        for worker_id in idle {
            let Some(worker) = self.st.workers.get(&worker_id) else {
                continue;
            };
            let Some(task_id) = self.best_task_for(worker) else {
                continue;
            };
            let permit = match worker.kind {
                WorkerKind::Agent => match self.slots.try_acquire() {
                    Some(permit) => Some(permit),
                    None => continue,
                },
                WorkerKind::Client => None,
            };
            if let Err(err) = self.assign(&task_id, &worker_id, permit) {
                warn!(error = %ErrorChain(&err), %task_id, "cannot record an assignment");
                return;
            }
        }
    }

    /// Assigns what can be assigned and returns what to announce and do.
    pub fn finish(mut self) -> (Vec<Event>, Vec<Effect>) {
        if self.dirty {
            self.pump();
        }
        for project_id in std::mem::take(&mut self.touched) {
            let status = self.st.status(&project_id);
            self.events.push(Event::CoordinationStatus(status));
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
            self.events.push(Event::BatchFinished(ProjectCompleted {
                project_id,
                total: counts.total(),
                completed: counts.completed,
                failed: counts.failed,
                cancelled: counts.cancelled,
                message,
            }));
        }
        (self.events, self.effects)
    }

    /// Marks a project's `coordination.status` as changed.
    pub fn touch_project(&mut self, project_id: &str) {
        self.touched.insert(project_id.to_string());
    }

    /// `project.configure`: stores the project's `agent_workers`, then adds, revives or
    /// retires its agent workers to match. Run under the coordinator's lock, like every
    /// transition, so the stored count and the live one never disagree: of two calls, the
    /// one that stores last is the one in force.
    ///
    /// # Errors
    /// The store's; then nothing changed.
    pub fn configure_agent_workers(
        &mut self,
        project_id: &str,
        count: u32,
    ) -> Result<(), StoreError> {
        self.store.set_agent_workers(project_id, count)?;
        self.set_agent_workers(project_id, count, true);
        self.dirty = true;
        Ok(())
    }

    /// Adds, revives or retires a project's agent workers to match `count`.
    pub fn set_agent_workers(&mut self, project_id: &str, count: u32, cli_available: bool) {
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
                        project_id: Some(project_id.to_string()),
                        ..Worker::new(
                            id.clone(),
                            format!("agent {slot}"),
                            WorkerKind::Agent,
                            self.now,
                        )
                    };
                    if let Err(err) = self.store.upsert_worker(&worker.row(), self.now) {
                        warn!(error = %ErrorChain(&err), worker_id = %id, "cannot record an agent worker");
                    }
                    self.st.workers.insert(id.clone(), worker);
                    self.set_worker(&id, status, None);
                }
            }
        }
        let extra: Vec<WorkerId> = self
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
    pub fn retire_agent(&mut self, worker_id: &WorkerId) {
        let Some(worker) = self.st.workers.get_mut(worker_id) else {
            return;
        };
        if worker.status == WorkerStatus::Working {
            worker.retiring = true;
            return;
        }
        self.remove_worker(worker_id);
        if let Err(err) = self.store.delete_worker(worker_id) {
            warn!(error = %ErrorChain(&err), %worker_id, "cannot delete an agent worker");
        }
    }

    /// Retires an agent worker whose run just ended.
    pub fn retire_agent_now(&mut self, worker_id: &WorkerId) {
        if let Some(worker) = self.st.workers.get_mut(worker_id) {
            worker.status = WorkerStatus::Offline;
        }
        self.retire_agent(worker_id);
    }

    /// Takes a worker out of the registry and announces it offline.
    pub fn remove_worker(&mut self, worker_id: &WorkerId) {
        let st = &mut *self.st;
        let Some(mut worker) = st.workers.remove(worker_id) else {
            return;
        };
        if worker.status == WorkerStatus::Idle {
            st.idle.remove(&(worker.ticket, worker.id.clone()));
        }
        if let Some(conn_id) = worker.conn_id {
            st.by_conn.remove(&conn_id);
        }
        worker.status = WorkerStatus::Offline;
        worker.task_id = None;
        match &worker.project_id {
            Some(project_id) => {
                self.touched.insert(project_id.clone());
            }
            None => self.touch_all_active(),
        }
        self.events.push(Event::WorkerStatus(worker.view()));
    }

    /// The worker registered on a connection.
    pub fn worker_by_conn(&self, conn_id: u64) -> Option<WorkerId> {
        self.st.by_conn.get(&conn_id).cloned()
    }
}
