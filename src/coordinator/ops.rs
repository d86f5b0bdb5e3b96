//! The coordinator's inputs as transitions: each request, report, run end and timer
//! tick is one method of [`Txn`], built on the primitives of [`super::state`].

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tracing::{debug, info, warn};

use super::CoordinationError;
use super::state::{Effect, Txn, Worker};
use crate::events::Event;
use crate::protocol::RunStatus;
use crate::protocol::coordination::{
    CompletedBy, NewTask, ReportFile, ReportStatus, TaskCreated, TaskState, WorkerClient,
    WorkerKind, WorkerStatus,
};
use crate::protocol::error::ErrorChain;
use crate::protocol::ids::{TaskId, WorkerId};
use crate::runner::RunEnd;
use crate::storage::sqlite::{StoreError, TaskRow, WorkerRow};

/// What a valid report file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOutcome {
    /// It completed its task.
    Completed,
    /// It recorded a failed attempt (status `failed`).
    Failed,
    /// The task had already finished (or is not in memory); nothing changed.
    Duplicate,
    /// No such task in the project.
    Unknown,
}

/// The report an agent run's own result makes when the agent wrote none.
#[derive(Serialize)]
struct RunReport<'a> {
    status: &'static str,
    summary: &'a str,
    deliverables: [(); 0],
    run_id: &'a str,
    session_id: Option<&'a str>,
    cost_usd: Option<f64>,
    duration_ms: Option<i64>,
}

/// What [`Txn::plan_tasks`] decided for a `task.create`.
#[derive(Debug)]
pub struct TaskPlan {
    /// The ids to create, in the order given.
    pub created: Vec<TaskId>,
    /// The ids that exist (or repeat), in the order given.
    pub existing: Vec<TaskId>,
    /// The rows to store, `seq`s reserved, one per created id.
    pub rows: Vec<TaskRow>,
}

impl Txn<'_> {
    /// `worker.register` on connection `conn_id`: a new client worker, or new name and
    /// capabilities for the one already there. Returns the worker id.
    ///
    /// # Errors
    /// The store's.
    pub fn register_worker(
        &mut self,
        conn_id: u64,
        name: &str,
        capabilities: &[String],
        client: &WorkerClient,
    ) -> Result<WorkerId, StoreError> {
        if let Some(worker_id) = self.worker_by_conn(conn_id) {
            let now = self.now;
            if let Some(worker) = self.st.workers.get_mut(&worker_id) {
                worker.name = name.to_string();
                worker.capabilities = capabilities.to_vec();
                worker.client = client.clone();
                let (row, view) = (worker.row(), worker.view());
                self.store().upsert_worker(&row, now)?;
                self.emit(Event::WorkerStatus(view));
                self.dirty = true;
                self.touch_all_active();
            }
            return Ok(worker_id);
        }
        let worker = Worker {
            capabilities: capabilities.to_vec(),
            conn_id: Some(conn_id),
            client: client.clone(),
            ..Worker::new(
                WorkerId::from(uuid::Uuid::now_v7().to_string()),
                name.to_string(),
                WorkerKind::Client,
                self.now,
            )
        };
        let id = worker.id.clone();
        self.store().upsert_worker(
            &WorkerRow {
                status: WorkerStatus::Idle,
                ..worker.row()
            },
            self.now,
        )?;
        self.st.by_conn.insert(conn_id, id.clone());
        self.st.workers.insert(id.clone(), worker);
        self.set_worker(&id, WorkerStatus::Idle, None);
        self.touch_all_active();
        info!(worker_id = %id, name, capabilities = ?capabilities, via = ?client.via, agent = ?client.agent, "worker registered");
        Ok(id)
    }

    /// A request from a worker's connection: renews its lease, or brings a worker whose
    /// lease expired back online.
    pub fn seen(&mut self, conn_id: u64) {
        let Some(worker_id) = self.worker_by_conn(conn_id) else {
            return;
        };
        let lease_ms = self.config().lease_s as i64 * 1000;
        let now = self.now;
        let Some(worker) = self.st.workers.get_mut(&worker_id) else {
            return;
        };
        match worker.status {
            WorkerStatus::Working => worker.lease_until = Some(now + lease_ms),
            WorkerStatus::Idle => {}
            WorkerStatus::Offline => {
                info!(%worker_id, "worker is back");
                self.set_worker(&worker_id, WorkerStatus::Idle, None);
                self.touch_all_active();
            }
        }
    }

    /// Fails the attempts of client workers whose lease ended by `now`; they go offline
    /// until their next request. Also fails the attempts of running tasks whose worker
    /// is no longer on them (left so by a [`Txn::rebuild`]), and retries assignment
    /// (agent slots may have freed).
    pub fn expire_leases(&mut self) {
        let now = self.now;
        let orphans: Vec<TaskId> = self
            .st
            .tasks
            .values()
            .filter(|t| {
                t.state == TaskState::Running
                    && t.worker_id
                        .as_ref()
                        .and_then(|w| self.st.workers.get(w))
                        .is_none_or(|w| w.task_id.as_ref() != Some(&t.id))
            })
            .map(|t| t.id.clone())
            .collect();
        for task_id in orphans {
            warn!(%task_id, "a running task has no worker on it; requeued");
            if let Err(err) =
                self.fail_attempt(&task_id, "the worker's result was not stored".into())
            {
                warn!(error = %ErrorChain(&err), %task_id, "cannot requeue a task");
            }
        }
        let expired: Vec<(WorkerId, TaskId)> = self
            .st
            .workers
            .values()
            .filter(|w| w.lease_until.is_some_and(|until| until <= now))
            .filter_map(|w| Some((w.id.clone(), w.task_id.clone()?)))
            .collect();
        for (worker_id, task_id) in expired {
            let reason = format!(
                "lease expired after {} s without a heartbeat",
                self.config().lease_s
            );
            warn!(%worker_id, %task_id, "lease expired");
            if let Err(err) = self.fail_attempt(&task_id, reason.clone()) {
                warn!(error = %ErrorChain(&err), %task_id, "cannot record an expired lease");
            }
            self.revoke(&worker_id, &task_id, &reason);
            self.set_worker(&worker_id, WorkerStatus::Offline, None);
        }
        self.dirty = true;
    }

    /// A connection closed: its worker goes offline and its task goes back to the queue
    /// (a failed attempt, `worker disconnected`). At shutdown the task stays `running`
    /// in the store and is requeued at the next start without counting an attempt: the
    /// hub, not the worker, went away.
    pub fn disconnected(&mut self, conn_id: u64, shutting_down: bool) {
        let Some(worker_id) = self.worker_by_conn(conn_id) else {
            return;
        };
        let task_id = self
            .st
            .workers
            .get(&worker_id)
            .and_then(|w| w.task_id.clone());
        if let Some(task_id) = task_id
            && !shutting_down
            && self.st.holds(&worker_id, &task_id)
            && let Err(err) = self.fail_attempt(&task_id, "worker disconnected".into())
        {
            warn!(error = %ErrorChain(&err), %task_id, "cannot requeue a task");
        }
        self.remove_worker(&worker_id);
        if let Err(err) =
            self.store()
                .set_worker_status(&worker_id, WorkerStatus::Offline, self.now)
        {
            warn!(error = %ErrorChain(&err), %worker_id, "cannot record a worker offline");
        }
        info!(%worker_id, "worker disconnected");
    }

    /// The first half of `task.create` (the whole is
    /// [`crate::coordinator::Coordinator::create_tasks`]): refuses ids owned by another project (`owners`
    /// maps the stored ids among the specs to their projects), sorts out the ids that
    /// exist, and builds the rows of the others with their `seq`s reserved. Writes
    /// nothing and changes nothing but the next `seq`.
    ///
    /// # Errors
    /// [`CoordinationError::TaskExists`].
    pub fn plan_tasks(
        &mut self,
        project_id: &str,
        specs: Vec<(TaskId, NewTask)>,
        owners: &HashMap<TaskId, String>,
    ) -> Result<TaskPlan, CoordinationError> {
        if let Some((task_id, owner)) = owners.iter().find(|(_, owner)| *owner != project_id) {
            return Err(CoordinationError::TaskExists {
                task_id: task_id.clone(),
                project_id: owner.clone(),
            });
        }
        let mut seen = HashSet::new();
        let (mut created, mut existing, mut rows) = (Vec::new(), Vec::new(), Vec::new());
        for (id, task) in specs {
            if owners.contains_key(&id) || !seen.insert(id.clone()) {
                existing.push(id);
                continue;
            }
            let seq = self.st.next_seq + rows.len() as i64 + 1;
            rows.push(TaskRow {
                kind: task.kind,
                context: task.context,
                prompt: task.prompt,
                acceptance: task.acceptance,
                priority: task.priority,
                agent: task.agent,
                ..TaskRow::pending(
                    id.clone(),
                    project_id.to_string(),
                    seq,
                    task.title,
                    self.now,
                )
            });
            created.push(id);
        }
        if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
            self.st.planned = Some(super::state::Planned {
                project_id: project_id.to_string(),
                seqs: first.seq..=last.seq,
            });
        }
        self.st.next_seq += rows.len() as i64;
        Ok(TaskPlan {
            created,
            existing,
            rows,
        })
    }

    /// The second half of `task.create`: stored rows join the queue and are announced.
    /// Called once per create, with no rows when none was stored or the project went.
    pub fn tasks_created(&mut self, project_id: &str, rows: Vec<TaskRow>, existing: usize) {
        self.st.planned = None;
        if rows.is_empty() {
            return;
        }
        self.emit(Event::TaskCreated(TaskCreated {
            project_id: project_id.to_string(),
            tasks: rows.iter().map(TaskRow::view).collect(),
        }));
        let created = rows.len();
        self.add_tasks(project_id, rows);
        info!(project_id, created, existing, "tasks queued");
    }

    /// `task.cancel`: false when the task is not queued or running. A client worker
    /// holding it gets `task.revoked`; an agent run for it is stopped.
    ///
    /// # Errors
    /// The store's.
    pub fn cancel_task(&mut self, task_id: &TaskId) -> Result<bool, StoreError> {
        let Some(task) = self.st.tasks.get(task_id) else {
            return Ok(false);
        };
        let holder = (task.state == TaskState::Running)
            .then(|| task.worker_id.clone())
            .flatten();
        self.cancel(task_id)?;
        if let Some(holder) = holder {
            let is_agent = self
                .st
                .workers
                .get(&holder)
                .is_some_and(|w| w.kind == WorkerKind::Agent);
            if is_agent {
                self.effect(Effect::StopRun {
                    task_id: task_id.clone(),
                });
            } else {
                self.release_holder(Some(&holder), "cancelled", task_id);
            }
        }
        Ok(true)
    }

    /// `task.complete` (`Ok(report)`) or `task.fail` (`Err(reason)`) from the worker on
    /// `conn_id`. Returns the task's new state, or `None` when it is no longer in memory
    /// (finished: a duplicate).
    ///
    /// # Errors
    /// `NOT_A_WORKER`, `NOT_ASSIGNED` when the task is queued or held by another worker,
    /// or the store's.
    pub fn answer(
        &mut self,
        conn_id: u64,
        task_id: &TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> Result<Option<TaskState>, CoordinationError> {
        let worker_id = self
            .worker_by_conn(conn_id)
            .ok_or(CoordinationError::NotAWorker)?;
        if !self.st.tasks.contains_key(task_id) {
            return Ok(None);
        }
        if !self.st.holds(&worker_id, task_id) {
            return Err(CoordinationError::NotAssigned {
                task_id: task_id.clone(),
                worker_id,
            });
        }
        let state = match outcome {
            Ok(report) => {
                self.complete(task_id, CompletedBy::Worker, report)?;
                TaskState::Completed
            }
            Err(reason) => self.fail_attempt(task_id, reason)?,
        };
        self.set_worker(&worker_id, WorkerStatus::Idle, None);
        Ok(Some(state))
    }

    /// A project was deleted (its tasks went with it in the store): forgets its tasks
    /// and agent workers, stops their runs and frees client workers busy with its tasks.
    pub fn project_deleted(&mut self, project_id: &str) {
        self.st.agent_settings.remove(project_id);
        self.st.queues.remove(project_id);
        self.st.counts.remove(project_id);
        let tasks: Vec<TaskRow> = self
            .st
            .tasks
            .values()
            .filter(|t| t.project_id == project_id)
            .cloned()
            .collect();
        for task in tasks {
            self.st.tasks.remove(&task.id);
            if task.state == TaskState::Running {
                self.effect(Effect::StopRun {
                    task_id: task.id.clone(),
                });
                self.release_holder(task.worker_id.as_ref(), "the project was deleted", &task.id);
            }
        }
        let agents: Vec<WorkerId> = self
            .st
            .workers
            .values()
            .filter(|w| w.project_id.as_deref() == Some(project_id))
            .map(|w| w.id.clone())
            .collect();
        for worker_id in agents {
            self.remove_worker(&worker_id);
        }
        self.untouch_project(project_id);
    }

    /// Applies a valid report file: completes its task, or records a failed attempt. A
    /// client worker holding the task gets `task.revoked`; an agent run holding it is
    /// left to end, and its result is then a duplicate.
    ///
    /// # Errors
    /// The store's.
    pub fn report(
        &mut self,
        project_id: &str,
        task_id: &TaskId,
        report: ReportFile,
    ) -> Result<ReportOutcome, CoordinationError> {
        let Some(task) = self.st.tasks.get(task_id) else {
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
                let value = serde_json::to_value(&report).map_err(CoordinationError::Encode)?;
                self.complete(task_id, CompletedBy::Report, value)?;
                self.release_holder(holder.as_ref(), "completed by a report file", task_id);
                ReportOutcome::Completed
            }
            ReportStatus::Failed => {
                self.fail_attempt(task_id, format!("report: {}", report.summary))?;
                self.release_holder(holder.as_ref(), "failed by a report file", task_id);
                ReportOutcome::Failed
            }
        };
        Ok(outcome)
    }

    /// An agent run for a task ended: its result completes the task or fails the
    /// attempt, unless the task already finished (a report file came first) or moved
    /// on. The agent worker is then free, or removed if the project needs fewer.
    pub fn run_ended(&mut self, worker_id: &WorkerId, task_id: &TaskId, end: &RunEnd) {
        let result = if !self.st.holds(worker_id, task_id) {
            debug!(%task_id, run_id = end.run_id, "run result is a duplicate");
            Ok(())
        } else if end.status == RunStatus::Succeeded {
            let report = RunReport {
                status: "completed",
                summary: end.result_text.as_deref().unwrap_or_default(),
                deliverables: [],
                run_id: &end.run_id,
                session_id: end.session_id.as_deref(),
                cost_usd: end.cost_usd,
                duration_ms: end.duration_ms,
            };
            match serde_json::to_value(&report) {
                Ok(value) => self
                    .complete(task_id, CompletedBy::Agent, value)
                    .map_err(CoordinationError::from),
                Err(err) => Err(CoordinationError::Encode(err)),
            }
        } else {
            let reason = end
                .reason
                .clone()
                .unwrap_or_else(|| format!("the agent run {}", end.status));
            self.fail_attempt(task_id, format!("agent run {}: {reason}", end.run_id))
                .map(|_| ())
                .map_err(CoordinationError::from)
        };
        if let Err(err) = result {
            warn!(error = %ErrorChain(&err), %task_id, "cannot record a run's result");
        }
        self.free_agent(worker_id, WorkerStatus::Idle);
        self.dirty = true;
    }

    /// An agent run could not start: the attempt fails and the agent worker goes
    /// offline (until `project.configure` is called again), so that a broken setup does
    /// not burn through the queue. The permit went back with the failed start.
    pub fn run_not_started(&mut self, worker_id: &WorkerId, task_id: &TaskId, reason: &str) {
        if let Err(err) = self.fail_attempt(task_id, format!("cannot start the agent: {reason}")) {
            warn!(error = %ErrorChain(&err), %task_id, "cannot requeue a task");
        }
        self.free_agent(worker_id, WorkerStatus::Offline);
    }

    /// An agent worker's run is over: it becomes `status`, or goes if it was retiring.
    fn free_agent(&mut self, worker_id: &WorkerId, status: WorkerStatus) {
        match self.st.workers.get(worker_id).map(|w| w.retiring) {
            Some(true) => self.retire_agent_now(worker_id),
            Some(false) => self.set_worker(worker_id, status, None),
            None => {}
        }
    }
}
