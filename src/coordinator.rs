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
//! - **Agent slots.** An agent worker is only given a task when an agent slot
//!   ([`crate::runner::slots`]) is free; the permit is taken under the lock, at
//!   assignment, and held by the run, so agent workers and `agent.run` together never
//!   exceed `limits.max_running_agents` and no assignment has to be undone.
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
//! # Parts
//!
//! - [`state`]: the state and its primitive transitions, pure (time, store and slots are
//!   inputs), with [`ops`] the transition for each input, [`model`] the workers and
//!   counts, and [`writes`] the storage port;
//! - this module: the [`Coordinator`] handle, which locks, runs a transition, emits its
//!   events and, after the lock, applies its effects (starting and stopping runs);
//! - [`reports`]: report files; [`prompt`]: the prompt of a task run; `runs`: a task
//!   run from its worktree to its end; [`worktrees`]: a git worktree per task
//!   (`project.configure {isolation: "worktree"}`).
//!
//! # Lock and commits
//!
//! Queued and running tasks, per-project counts and the online workers live in memory
//! behind one std `Mutex`; finished tasks are only in the store. Under the lock a
//! transition changes memory, records its writes ([`writes::Recorder`]) and queues
//! them, with its events and effects, in the order of the transitions; nothing under it
//! awaits or blocks. After the lock:
//!
//! - a forwarding task hands each transition's writes to the store's writer as one job
//!   ([`Store::submit`]), in that order; the writer is FIFO and commits what is queued
//!   together (one fsync per group), so transitions from many connections share
//!   commits;
//! - a publishing task takes the transitions in the same order, awaits each one's
//!   commit, and only then emits its events, applies its effects (starting and stopping
//!   runs) and answers its caller, who awaits that answer asynchronously. So nothing is
//!   acknowledged or announced before it is on disk, and clients see changes in the
//!   order they happened, with counts that add up.
//!
//! **When a commit fails** (a full disk: `STORAGE_FULL`), memory is ahead of the store.
//! The failed transition's job sets a fence (its generation) on the writer thread, so
//! every later coordination job of the same generation fails without writing: the
//! store holds exactly the transitions before the failure. The publisher answers the
//! failed transition and every later one of its generation with the failure, drops
//! their events and effects, reads the coordinator's part of the store, and under the
//! lock rebuilds memory from it ([`state::Txn::rebuild`]) and starts a new generation.
//! Memory and store agree again and nothing that was not stored was acknowledged; the
//! callers that got the error retry.
//!
//! Lock order: coordinator, then the slots and the notifier's client and project
//! registries; none of those ever calls back in.

pub(crate) mod commits;
mod error;
pub mod model;
pub mod ops;
pub mod prompt;
pub mod rebuild;
pub mod reports;
mod runs;
pub mod state;
pub mod worktrees;
pub mod writes;

pub(crate) mod watch;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::CoordinationConfig;
use crate::events::{Event, EventSink};
use crate::projects::Projects;
use crate::protocol::coordination::{
    CoordinationStatus, NewTask, ReportFile, ReportInvalid, ReportUnknown, TaskState, WorkerClient,
    WorkerHeartbeat, WorkerKind, WorkerStatus, WorkerView,
};
use crate::protocol::error::ErrorChain;
use crate::protocol::ids::{TaskId, WorkerId};
use crate::runner::Runner;
use crate::storage::sqlite::{Store, StoreError};
use crate::support::timestamp::now_ms;

use commits::{Entry, Submission, forward_writes};
pub use error::CoordinationError;
use ops::ReportOutcome;
use reports::Known;
use state::{Effect, State, Txn};
use writes::Recorder;

/// Most tasks in one `task.create`.
pub const MAX_TASKS_PER_CREATE: usize = 10_000;
/// Largest task (prompt, context and acceptance together), in bytes.
pub const MAX_TASK_BYTES: usize = 256 * 1024;
/// Client workers not seen for this long are forgotten at start.
const FORGET_WORKERS_AFTER_MS: i64 = 7 * 86_400_000;

/// A clock for transitions: epoch milliseconds that never go backwards (wall time at
/// start plus monotonic time since), so a clock step cannot expire or stretch leases.
struct Clock {
    wall0: i64,
    t0: Instant,
}

impl Clock {
    fn new() -> Self {
        Self {
            wall0: now_ms(),
            t0: Instant::now(),
        }
    }

    fn now(&self) -> i64 {
        self.wall0 + self.t0.elapsed().as_millis() as i64
    }
}

/// What a coordinator needs, handed over by the hub when it opens.
pub struct CoordinatorParts {
    /// Tasks and workers.
    pub store: Store,
    /// The `[coordination]` settings.
    pub config: CoordinationConfig,
    /// Starts and stops agent runs; its slots bound agent workers.
    pub runner: Runner,
    /// Project directories, for agents' report files.
    pub projects: Projects,
    /// Where events go.
    pub sink: Arc<dyn EventSink>,
    /// Owns the lease timer and the tasks that wait for runs.
    pub tracker: TaskTracker,
    /// Stops them.
    pub shutdown: CancellationToken,
    /// Isolated task runs' worktrees.
    pub worktrees: worktrees::Worktrees,
}

struct Inner {
    parts: CoordinatorParts,
    clock: Clock,
    state: Mutex<State>,
    /// The generation of the transitions: a new one starts after each failed commit.
    /// Changed under the state lock only.
    generation: AtomicU64,
    /// Transitions' writes, to the forwarding task, in order.
    ///
    /// Unbounded because it is fed under the state lock, a std `Mutex` that cannot wait
    /// for room; it cannot grow without bound all the same: one message per transition,
    /// and a transition a peer causes (a request) is awaited to its commit before the
    /// connection reads its next request, so at most one per connection is in flight
    /// (connections are capped, `limits.max_connections`); the others (lease timers,
    /// disconnects, run ends) are at most one per worker or run at a time.
    forward: mpsc::UnboundedSender<Submission>,
    /// Transitions, to the publishing task, in order; bounded as `forward` is (one
    /// entry per transition, sent beside its submission).
    publish: mpsc::UnboundedSender<Entry>,
    /// Held by a `task.create` from its read of the ids' owners to its rows queued.
    creating: tokio::sync::Mutex<()>,
    /// Wakes the parked lease timer after a transition (which may have queued a task or
    /// taken a lease).
    wake: tokio::sync::Notify,
}

/// The handle to the coordinator; cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

impl Coordinator {
    /// Loads queued and running tasks from the store; running ones go back to the queue.
    /// Every worker is stored offline until it registers again. Starts the tasks that
    /// forward writes and publish transitions (on `parts.tracker`): call it on a tokio
    /// runtime.
    ///
    /// # Errors
    /// [`StoreError`].
    pub fn load(parts: CoordinatorParts) -> Result<Self, StoreError> {
        let clock = Clock::new();
        let now = clock.now();
        let store = &parts.store;
        let (state, requeued) = State::recover(
            store.max_task_seq()?,
            store.task_counts()?,
            store.unfinished_tasks()?,
            store.agent_worker_settings()?.into_iter().collect(),
            now,
        );
        for task in &requeued {
            store.update_task(task)?;
        }
        let forgotten = store.reset_workers(now, now - FORGET_WORKERS_AFTER_MS)?;
        if !requeued.is_empty() || !state.tasks.is_empty() {
            info!(
                queued = state.tasks.len(),
                requeued = requeued.len(),
                forgotten,
                "task queue restored"
            );
        }
        let (forward, submissions) = mpsc::unbounded_channel();
        let (publish, entries) = mpsc::unbounded_channel();
        let fence = Arc::new(AtomicU64::new(0));
        let this = Self {
            inner: Arc::new(Inner {
                parts,
                clock,
                state: Mutex::new(state),
                generation: AtomicU64::new(1),
                forward,
                publish,
                creating: tokio::sync::Mutex::new(()),
                wake: tokio::sync::Notify::new(),
            }),
        };
        let tracker = &this.parts().tracker;
        tracker.spawn(forward_writes(
            this.parts().store.clone(),
            fence,
            submissions,
            this.parts().shutdown.clone(),
        ));
        tracker.spawn(this.clone().publish(entries));
        Ok(this)
    }

    fn parts(&self) -> &CoordinatorParts {
        &self.inner.parts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A transition never panics halfway in practice; if one did, the state it left
        // is what the next rebuild would repair.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs a transition under the lock and queues its writes, events and effects, in
    /// order; returns its result and the receiver of its answer (the commit's outcome,
    /// sent once it is announced). `rebuild` starts a new generation first (after a
    /// failed commit).
    fn transition<R>(
        &self,
        new_generation: bool,
        f: impl FnOnce(&mut Txn<'_>) -> R,
    ) -> (R, oneshot::Receiver<Result<(), StoreError>>) {
        let parts = self.parts();
        let recorder = Recorder::default();
        let (answer, answered) = oneshot::channel();
        let result = {
            let mut st = self.lock();
            let generation = if new_generation {
                self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1
            } else {
                self.inner.generation.load(Ordering::Acquire)
            };
            let mut txn = Txn::new(
                &mut st,
                &recorder,
                &parts.config,
                parts.runner.slots(),
                self.inner.clock.now(),
            );
            let result = f(&mut txn);
            let (events, effects) = txn.finish();
            let writes = recorder.take();
            let committed = (!writes.is_empty()).then(|| {
                let (committed, commit) = oneshot::channel();
                // Both tasks end only at shutdown; a send after is an answer nobody awaits.
                let _ = self.inner.forward.send(Submission {
                    writes,
                    generation,
                    committed,
                });
                commit
            });
            let _ = self.inner.publish.send(Entry {
                generation,
                committed,
                events,
                effects,
                answer,
            });
            result
        };
        self.inner.wake.notify_waiters();
        (result, answered)
    }

    /// Runs a transition and returns its result once it is stored and announced.
    ///
    /// # Errors
    /// The commit's failure ([`StoreError`]); the transition is then undone.
    async fn run<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> Result<R, StoreError> {
        let (result, answered) = self.transition(false, f);
        answered.await.map_err(|_| StoreError::WriterGone)??;
        Ok(result)
    }

    /// Runs a transition whose result acknowledges nothing to anyone (a timer, a
    /// closed connection, a run's end): it is announced after its commit all the same.
    fn run_detached<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        self.transition(false, f).0
    }

    /// Whether the lease timer has anything to do: a task queued or running, or a lease
    /// held.
    fn has_timed_work(&self) -> bool {
        let st = self.lock();
        !st.tasks.is_empty() || st.workers.values().any(|w| w.lease_until.is_some())
    }

    /// Starts and stops agent runs; their ends come back through [`Txn::run_ended`].
    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::StopRun { task_id } => {
                    self.parts().runner.stop_task(task_id.as_str());
                }
                Effect::StartRun {
                    worker_id,
                    task,
                    permit,
                } => self.start_run(worker_id, *task, permit),
            }
        }
    }

    /// Brings up the agent workers of every configured project and starts the lease
    /// timer. Called once, when the server starts.
    pub fn start(&self) {
        let cli_available = self.parts().runner.any_cli();
        let projects = self.parts().projects.clone();
        let any = self.run_detached(|txn| {
            let settings: Vec<(String, u32)> = txn
                .st
                .agent_settings
                .iter()
                .map(|(project, count)| (project.clone(), *count))
                .collect();
            let mut any = false;
            for (project_id, count) in settings {
                if count > 0 && projects.get(&project_id).is_ok() {
                    txn.set_agent_workers(&project_id, count, cli_available);
                    any = true;
                }
            }
            txn.dirty = true;
            any
        });
        if any && !cli_available {
            warn!("agent workers stay offline: the Claude Code CLI was not found");
        }
        let this = self.clone();
        self.parts().tracker.spawn(this.run_leases());
        let worktrees = self.parts().worktrees.clone();
        self.parts()
            .tracker
            .spawn(worktrees.run_retention(self.parts().shutdown.clone()));
    }

    /// The worktrees of isolated tasks.
    pub fn worktrees(&self) -> &worktrees::Worktrees {
        &self.parts().worktrees
    }

    /// Expires leases, and retries assignment in case agent slots freed up, every
    /// quarter lease (between 100 ms and 1 s) while a task is queued or running or a
    /// lease is held. Otherwise it sleeps until a transition wakes it, so an idle hub
    /// does not wake up for it.
    async fn run_leases(self) {
        let lease = Duration::from_secs(self.parts().config.lease_s);
        let period = (lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let shutdown = self.parts().shutdown.clone();
        loop {
            // Registered before the check, so a transition in between still wakes it.
            let woken = self.inner.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.has_timed_work() {
                tokio::select! {
                    () = woken => {}
                    () = shutdown.cancelled() => return,
                }
                ticker.reset();
                continue;
            }
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.cancelled() => return,
            }
            self.run_detached(|txn| txn.expire_leases());
        }
    }

    /// Renews the lease of a worker's task, or brings a worker whose lease expired back
    /// online: called for every request a worker connection sends.
    pub fn seen(&self, conn_id: u64) {
        let now = self.inner.clock.now();
        {
            let mut st = self.lock();
            let Some(worker_id) = st.by_conn.get(&conn_id).cloned() else {
                return;
            };
            let lease_ms = self.parts().config.lease_s as i64 * 1000;
            match st.workers.get_mut(&worker_id) {
                Some(worker) if worker.status == WorkerStatus::Offline => {}
                Some(worker) => {
                    if worker.task_id.is_some() {
                        worker.lease_until = Some(now + lease_ms);
                    }
                    return;
                }
                None => return,
            }
        }
        self.run_detached(|txn| txn.seen(conn_id));
    }

    /// Cleans up after a closed connection.
    pub fn disconnected(&self, conn_id: u64) {
        if !self.lock().by_conn.contains_key(&conn_id) {
            return;
        }
        let shutting_down = self.parts().shutdown.is_cancelled();
        self.run_detached(|txn| txn.disconnected(conn_id, shutting_down));
    }

    /// `worker.register` for connection `conn_id`; returns the worker id once it is
    /// stored.
    ///
    /// # Errors
    /// The store's.
    pub async fn register_worker(
        &self,
        conn_id: u64,
        name: &str,
        capabilities: &[String],
        client: &WorkerClient,
    ) -> Result<WorkerId, CoordinationError> {
        Ok(self
            .run(|txn| txn.register_worker(conn_id, name, capabilities, client))
            .await??)
    }

    /// `worker.heartbeat`: the worker's state (its lease was renewed on receipt).
    ///
    /// # Errors
    /// `NOT_A_WORKER`.
    pub fn heartbeat(&self, conn_id: u64) -> Result<WorkerHeartbeat, CoordinationError> {
        let now = self.inner.clock.now();
        let st = self.lock();
        let worker = st
            .by_conn
            .get(&conn_id)
            .and_then(|id| st.workers.get(id))
            .ok_or(CoordinationError::NotAWorker)?;
        Ok(WorkerHeartbeat {
            worker_id: worker.id.clone(),
            status: worker.status,
            task_id: worker.task_id.clone(),
            lease_expires_in_ms: worker.lease_until.map(|until| (until - now).max(0) as u64),
        })
    }

    /// Every connected client worker and agent worker.
    pub fn workers(&self) -> Vec<WorkerView> {
        state::sorted_views(self.lock().workers.values())
    }

    /// `task.create` with checked specs.
    ///
    /// # Errors
    /// `TASK_EXISTS`, or the store's.
    ///
    /// Up to 10,000 rows are written, so the insert runs outside the lock, in chunks
    /// ([`crate::storage::sqlite::CHUNK_ROWS`]): the owners of the ids are read first, the rows
    /// are planned (their `seq`s reserved) under the lock, written chunk by chunk, and
    /// only the committed rows join the queue and are announced, under the lock again.
    /// Creates run one at a time (`creating`), so no other create can store one of
    /// these ids between the read and the write. If a chunk fails, the chunks before it
    /// are committed and queued, and the error is returned; a retry (idempotent by id)
    /// creates the rest.
    pub async fn create_tasks(
        &self,
        project_id: &str,
        specs: Vec<(TaskId, NewTask)>,
    ) -> Result<(Vec<TaskId>, Vec<TaskId>), CoordinationError> {
        let _creating = self.inner.creating.lock().await;
        let store = &self.parts().store;
        let ids = specs.iter().map(|(id, _)| id.clone()).collect();
        let owners = store.task_owners_of(ids).await?;
        let ops::TaskPlan {
            created,
            existing,
            rows,
        } = self
            .run(|txn| txn.plan_tasks(project_id, specs, &owners))
            .await??;
        let mut stored = Vec::with_capacity(rows.len());
        let mut failure = None;
        for chunk in rows.chunks(crate::storage::sqlite::CHUNK_ROWS) {
            match store.insert_task_chunk(chunk.to_vec()).await {
                Ok(()) => stored.extend_from_slice(chunk),
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        // A project deleted meanwhile took its stored rows with it: queue nothing.
        if self.parts().projects.get(project_id).is_err() {
            stored.clear();
        }
        let queued = self
            .run(|txn| txn.tasks_created(project_id, stored, existing.len()))
            .await;
        match (failure, queued) {
            (Some(err), _) | (None, Err(err)) => Err(err.into()),
            (None, Ok(())) => Ok((created, existing)),
        }
    }

    /// `task.cancel`: whether it was cancelled now.
    ///
    /// # Errors
    /// The store's.
    pub async fn cancel(&self, task_id: &TaskId) -> Result<bool, CoordinationError> {
        Ok(self.run(|txn| txn.cancel_task(task_id)).await??)
    }

    /// `task.complete` (`Ok(report)`) or `task.fail` (`Err(reason)`); `None` for a task
    /// that already finished.
    ///
    /// # Errors
    /// `NOT_A_WORKER`, `NOT_ASSIGNED`, or the store's.
    pub async fn answer(
        &self,
        conn_id: u64,
        task_id: &TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> Result<Option<TaskState>, CoordinationError> {
        self.run(|txn| txn.answer(conn_id, task_id, outcome))
            .await?
    }

    /// `project.configure`: stores the project's `agent_workers` and applies it, in one
    /// transition; returns the project's agent workers after the change.
    ///
    /// # Errors
    /// The store's; then nothing changed.
    pub async fn configure(
        &self,
        project_id: &str,
        agent_workers: u32,
    ) -> Result<Vec<WorkerView>, CoordinationError> {
        Ok(self
            .run(|txn| {
                txn.configure_agent_workers(project_id, agent_workers)?;
                let mut workers: Vec<WorkerView> = txn
                    .st
                    .workers
                    .values()
                    .filter(|w| {
                        w.kind == WorkerKind::Agent && w.project_id.as_deref() == Some(project_id)
                    })
                    .map(state::Worker::view)
                    .collect();
                workers.sort_by(|a, b| a.name.cmp(&b.name));
                Ok::<_, StoreError>(workers)
            })
            .await??)
    }

    /// `coordination.status` of a project.
    pub fn status(&self, project_id: &str) -> CoordinationStatus {
        self.lock().status(project_id)
    }

    /// A project was deleted.
    pub fn project_deleted(&self, project_id: &str) {
        self.run_detached(|txn| txn.project_deleted(project_id));
    }

    /// What the hub knows of the task a report file is named after.
    pub async fn known(&self, project_id: &str, task_id: &TaskId) -> Known {
        if let Some(task) = self.lock().tasks.get(task_id) {
            return if task.project_id == project_id {
                Known::Unfinished
            } else {
                Known::Unknown
            };
        }
        match self.parts().store.task_of(task_id.clone()).await {
            Ok(Some(task)) if task.project_id == project_id => Known::Finished,
            Ok(_) => Known::Unknown,
            Err(err) => {
                warn!(error = %ErrorChain(&err), %task_id, "cannot look up a task");
                Known::Unknown
            }
        }
    }

    /// Applies a valid report file.
    pub async fn report(
        &self,
        project_id: &str,
        task_id: &TaskId,
        report: ReportFile,
    ) -> ReportOutcome {
        let outcome = self.run_detached(|txn| txn.report(project_id, task_id, report));
        match outcome {
            Ok(ReportOutcome::Duplicate) => match self.known(project_id, task_id).await {
                Known::Finished => {
                    debug!(%task_id, "report for a finished task ignored");
                    ReportOutcome::Duplicate
                }
                _ => ReportOutcome::Unknown,
            },
            Ok(outcome) => outcome,
            Err(err) => {
                // Left in place: the file is read again at the next start.
                warn!(error = %ErrorChain(&err), %task_id, "cannot record a report");
                ReportOutcome::Duplicate
            }
        }
    }

    /// Tells coordinators a report file is unusable (`task.report_invalid`).
    pub fn report_invalid(&self, notice: ReportInvalid) {
        warn!(
            task_id = %notice.task_id,
            path = notice.path,
            reason = notice.reason,
            "invalid report"
        );
        self.parts().sink.emit(Event::ReportInvalid(notice));
    }

    /// Tells coordinators a report file names no task of its project
    /// (`task.report_unknown`).
    pub fn report_unknown(&self, notice: ReportUnknown) {
        info!(
            task_id = %notice.task_id,
            path = notice.path,
            "report for an unknown task"
        );
        self.parts().sink.emit(Event::ReportUnknown(notice));
    }
}

#[cfg(test)]
mod tests;
