//! The agent runner: runs the Claude Code CLI in a project as a live session and streams
//! its output.
//!
//! A run is one agent process: `claude -p --input-format stream-json --output-format
//! stream-json --verbose --permission-prompt-tool stdio --permission-mode <mode>
//! [--model M] [--resume <session>]` in the project directory ([`driver::claude`]), as
//! the leader of its own process group ([`process`]), with its output read into the
//! project's log ([`output`]). Each prompt is a `user` line on its stdin, never an
//! argument, so no prompt can be read as an option, and the session is always a UUID.
//! A run holds one or more turns: a turn ends with the agent's `result` line; then the
//! next queued follow-up starts the next turn, or, with none, a one-shot run
//! (`agent.run`) closes stdin and the process exits, while a live session (started by
//! `agent.send`) stays open for `agent.session_idle_s` before it does. Tool calls the
//! permission mode does not settle come to the hub as permission requests
//! ([`approvals`]); follow-ups and interrupts reach a running session through its
//! [`session::SessionHandle`]. The process gets the hub's environment without the hub's `SEMANTEST_HUB_*`
//! settings and secrets. Every run holds a [`slots::Permit`] from the
//! moment before its process starts until its process group is gone, so at most
//! `limits.max_running_agents` agents are ever alive.
//!
//! A run is started with [`Runner::start`] in one of two [`RunMode`]s:
//!
//! - **interactive** (`agent.run`): the project's one run, refused with `PROJECT_BUSY`
//!   while one goes; it sets the project's state and records its session as the one the
//!   next run resumes;
//! - **task**: started by the coordinator for a built-in agent worker. Several may run in
//!   the same project at once, each with its own run id, process group and fresh
//!   session, and none touches the project's state or session. Their `run_started` and
//!   `run_finished` lines carry the task id.
//!
//! The runner reports through its [`EventSink`] (`ProjectState`, `RunStarted`,
//! `RunFinished`) and never calls up into the hub; how a run ended comes back on the
//! run's own [`RunHandle::ended`].

pub mod approvals;
pub mod claude_cli;
pub mod driver;
mod launch;
pub mod metering;
pub mod output;
pub mod peer;
pub mod process;
mod queue;
pub mod session;
pub mod slots;
pub mod usage;

use std::collections::HashMap;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::config::AgentConfig;
use crate::events::{Event, EventSink};
use crate::projects::ProjectError;
use crate::projects::feed::{Feed, Line};
use crate::projects::{ActiveRun, Projects, RunSetup};
use crate::protocol::error::{ErrorChain, ErrorKind, RpcError};
use crate::protocol::{ProjectState, RunStatus, StateChange, Stream};
use crate::storage::sqlite::StoreError;
use crate::storage::sqlite::{RunOutcome, Store};
use crate::support::metrics::Metrics;
use crate::support::timestamp::now_ms;

use approvals::{Approvals, Asker};
use claude_cli::{CliSlot, Clis};
use launch::Launched;
use metering::{Meter, MeterParts};
use output::{Pump, Summary};
use session::{Live, Sent, Session, SessionCommand, SessionHandle};
use slots::{Permit, Slots};

use crate::protocol::agents::{AgentKind, Delivery, QueueState, SendMode};

/// The largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 256 * 1024;

/// Which kind of run, and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// The project's own run (`agent.run`).
    Interactive {
        /// Start a fresh session instead of resuming the project's.
        new_session: bool,
    },
    /// A run for one task, on behalf of a built-in agent worker.
    Task {
        /// The task.
        task_id: String,
        /// The agent worker.
        worker_id: String,
    },
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The project whose directory the agent runs in.
    pub project_id: String,
    /// The prompt, written to the CLI's stdin; at most [`MAX_PROMPT_BYTES`].
    pub prompt: String,
    /// Interactive or for a task.
    pub mode: RunMode,
    /// Seconds a turn may run before the run is stopped; `agent.timeout_s` when `None`.
    pub timeout_s: Option<u64>,
    /// Keep the process open between turns (a live session, `agent.send`), until
    /// `agent.session_idle_s` pass with no turn; otherwise the run ends after its last
    /// turn (`agent.run`, task runs).
    pub keep_open: bool,
    /// The agent to run; `None` runs the project's (`project.configure {agent}`).
    pub agent: Option<AgentKind>,
    /// The directory to run in instead of the project's: a task's git worktree
    /// (`project.configure {isolation: "worktree"}`). The project's own directory is
    /// still checked as for any run.
    pub workdir: Option<std::path::PathBuf>,
}

/// How a run ended, sent on [`RunHandle::ended`].
#[derive(Debug, Clone)]
pub struct RunEnd {
    /// The run id.
    pub run_id: String,
    /// As stored for the run.
    pub status: RunStatus,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// The `result` line's text, if any.
    pub result_text: Option<String>,
    /// The run's Claude Code session.
    pub session_id: Option<String>,
    /// The run's own cost in US dollars (the sum of its turns).
    pub cost_usd: Option<f64>,
    /// `duration_ms` from the `result` line.
    pub duration_ms: Option<i64>,
}

/// A started run.
#[derive(Debug)]
pub struct RunHandle {
    /// The run id (a UUIDv7).
    pub run_id: String,
    /// Cancel to stop the run (SIGINT, SIGTERM, SIGKILL to its group).
    pub stop: CancellationToken,
    /// Resolves once the run's process group is gone and its end recorded.
    pub ended: oneshot::Receiver<RunEnd>,
}

/// What a runner needs, handed over by the hub when it opens.
pub struct RunnerParts {
    /// The `[agent]` settings.
    pub config: AgentConfig,
    /// Records runs.
    pub store: Store,
    /// Takes output lines.
    pub feed: Feed,
    /// Interactive runs set the project's state and session.
    pub projects: Projects,
    /// Run counters.
    pub metrics: Arc<Metrics>,
    /// Where events go.
    pub sink: Arc<dyn EventSink>,
    /// The agent limit.
    pub slots: Slots,
    /// The agents' CLIs.
    pub clis: Clis,
    /// Owns every run's supervisor.
    pub tracker: TaskTracker,
    /// Stops every run at shutdown.
    pub shutdown: CancellationToken,
    /// Permission requests.
    pub approvals: Approvals,
}

struct Inner {
    parts: RunnerParts,
    /// Task runs in progress, by run id. A std `Mutex`: map operations only.
    task_runs: Mutex<HashMap<String, TaskRun>>,
    /// The interactive run of each project while its process is alive, by project id.
    /// A std `Mutex`: map operations only.
    sessions: Mutex<HashMap<String, SessionHandle>>,
}

struct TaskRun {
    task_id: String,
    stop: CancellationToken,
}

/// The handle to the runner; cheap to clone.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// A run's identity, shared by its start and its supervisor.
#[derive(Clone)]
struct RunContext {
    project_id: String,
    run: ActiveRun,
    mode: RunMode,
    timeout: Duration,
    keep_open: bool,
    /// Whether the process resumes a session (`--resume`).
    resumed: bool,
    /// The agent that runs.
    agent: AgentKind,
}

/// The `run_started` line the hub writes to the project's log.
#[derive(Serialize)]
struct RunStartedLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<&'a str>,
    prompt: &'a str,
    resume: Option<&'a str>,
    cwd: &'a std::path::Path,
}

/// The `run_finished` line the hub writes to the project's log.
#[derive(Serialize)]
struct RunFinishedLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    run_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_id: Option<&'a str>,
    status: RunStatus,
    exit_code: Option<i32>,
    reason: Option<&'a str>,
    total_cost_usd: Option<f64>,
    cost_usd: Option<f64>,
}

impl RunContext {
    fn task_id(&self) -> Option<&str> {
        match &self.mode {
            RunMode::Task { task_id, .. } => Some(task_id),
            RunMode::Interactive { .. } => None,
        }
    }

    fn interactive(&self) -> bool {
        matches!(self.mode, RunMode::Interactive { .. })
    }
}

enum Ending {
    Exited(std::io::Result<ExitStatus>),
    /// The driver cannot go on ([`driver::AgentEvent::Fatal`]), with why.
    Fatal(String),
    Stopped,
    TimedOut,
    /// An interrupted turn did not end within `agent.interrupt_timeout_ms`.
    InterruptIgnored,
}

/// Why a run could not start, or be killed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The prompt is empty.
    #[error("prompt is empty")]
    EmptyPrompt,
    /// The prompt is over [`MAX_PROMPT_BYTES`].
    #[error("prompt is larger than 256 KiB")]
    PromptTooLarge,
    /// `timeout_s` is outside 1..=`agent.max_timeout_s`.
    #[error("timeout_s must be between 1 and {0}")]
    Timeout(u64),
    /// No CLI was found for the agent.
    #[error("{}", cli_missing(*.0))]
    CliMissing(AgentKind),
    /// The CLI could not be started.
    #[error("{0}")]
    CannotStart(String),
    /// The project's directory now resolves elsewhere.
    #[error("{path} now resolves to {now}; remove and re-add the project")]
    PathChanged {
        /// The registered path.
        path: String,
        /// Where it resolves now.
        now: String,
    },
    /// `agent.kill` with nothing running.
    #[error("project {0} runs no agent")]
    NotRunning(String),
    /// `agent.interrupt` with no turn running.
    #[error("no turn of project {0} is running")]
    NoTurn(String),
    /// The session is closing (its process is about to exit).
    #[error("the session of project {0} is ending; send again in a moment")]
    Closing(String),
    /// No queued follow-up has that id, or it left the queue.
    #[error("{0}")]
    NotQueued(String),
    /// The project is missing, busy or has an invalid path.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The run could not be recorded.
    #[error("cannot record the run")]
    Store(#[from] StoreError),
}

impl From<RunError> for RpcError {
    fn from(err: RunError) -> Self {
        let kind = match &err {
            RunError::EmptyPrompt | RunError::Timeout(_) => ErrorKind::InvalidParams,
            RunError::PromptTooLarge => ErrorKind::TooLarge,
            RunError::CliMissing(_) | RunError::CannotStart(_) => ErrorKind::AgentUnavailable,
            RunError::PathChanged { .. } => ErrorKind::InvalidPath,
            RunError::NotRunning(_) | RunError::NoTurn(_) => ErrorKind::NotRunning,
            RunError::Closing(_) => ErrorKind::ProjectBusy,
            RunError::NotQueued(_) => ErrorKind::MessageNotQueued,
            RunError::Project(_) => {
                let RunError::Project(inner) = err else {
                    unreachable!()
                };
                return inner.into();
            }
            RunError::Store(source) => return RpcError::internal("record run", source),
        };
        RpcError::new(kind, err.to_string())
    }
}

/// Why a run of `agent` cannot start without its CLI, naming the setting to fix.
pub fn cli_missing(agent: AgentKind) -> String {
    match agent {
        AgentKind::Claude => {
            "the Claude Code CLI was not found; install it or set agent.cli_path".into()
        }
        other => format!(
            "the {} was not found; install it or set agent.{}.cli_path",
            other.title(),
            other.as_str()
        ),
    }
}

impl Runner {
    /// A runner with no runs.
    pub fn new(parts: RunnerParts) -> Self {
        Self {
            inner: Arc::new(Inner {
                parts,
                task_runs: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn parts(&self) -> &RunnerParts {
        &self.inner.parts
    }

    fn task_runs(&self) -> MutexGuard<'_, HashMap<String, TaskRun>> {
        self.inner
            .task_runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<String, SessionHandle>> {
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The approvals of every session.
    pub fn approvals(&self) -> &Approvals {
        &self.parts().approvals
    }

    /// The agent limit's permits.
    pub fn slots(&self) -> &Slots {
        &self.parts().slots
    }

    /// Claude Code's CLI.
    pub fn cli(&self) -> &CliSlot {
        self.parts().clis.get(AgentKind::Claude)
    }

    /// The hub's estimate of a turn's cost in US dollars from `agent.prices`; `None`
    /// when its model is unknown or not in the table.
    pub fn price(&self, tokens: &driver::TurnTokens) -> Option<f64> {
        let price = self.parts().config.prices.get(tokens.model.as_deref()?)?;
        let per = |count: u64, usd_per_mtok: f64| count as f64 * usd_per_mtok / 1_000_000.0;
        Some(
            per(tokens.input + tokens.cache_write, price.input)
                + per(tokens.cache_read, price.cached_input.unwrap_or(price.input))
                + per(tokens.output, price.output),
        )
    }

    /// Whether any agent's CLI was found (agent workers come online; a task whose agent
    /// has none fails to start, and says why).
    pub fn any_cli(&self) -> bool {
        AgentKind::ALL
            .into_iter()
            .any(|agent| self.clis().get(agent).get().is_some())
    }

    /// Every agent's CLI.
    pub fn clis(&self) -> &Clis {
        &self.parts().clis
    }

    /// Agent runs in progress (permits taken).
    pub fn running(&self) -> usize {
        self.slots().in_use()
    }

    /// Starts a run holding `permit` and returns its handle; the run continues in a task
    /// of the hub's tracker and gives the permit back when its process group is gone.
    ///
    /// # Errors
    /// `INVALID_PARAMS` or `TOO_LARGE` for a bad prompt or timeout, `PROJECT_NOT_FOUND`,
    /// `PROJECT_BUSY` (interactive), `INVALID_PATH` (the directory changed), and
    /// `AGENT_UNAVAILABLE` when the CLI is missing or cannot start.
    pub async fn start(&self, request: RunRequest, permit: Permit) -> Result<RunHandle, RunError> {
        let config = &self.parts().config;
        if request.prompt.trim().is_empty() {
            return Err(RunError::EmptyPrompt);
        }
        if request.prompt.len() > MAX_PROMPT_BYTES {
            return Err(RunError::PromptTooLarge);
        }
        let timeout_s = request.timeout_s.unwrap_or(config.timeout_s);
        if timeout_s == 0 || timeout_s > config.max_timeout_s {
            return Err(RunError::Timeout(config.max_timeout_s));
        }
        // The project's agent is read before the project is claimed, so a missing CLI
        // refuses the run without touching the project's state.
        let agent = match request.agent {
            Some(agent) => agent,
            None => self.parts().projects.get(&request.project_id)?.agent,
        };
        let cli = self
            .clis()
            .get(agent)
            .look_up()
            .await
            .ok_or(RunError::CliMissing(agent))?;
        let mut ctx = RunContext {
            project_id: request.project_id,
            run: ActiveRun {
                id: uuid::Uuid::now_v7().to_string(),
                started_at: now_ms(),
                stop: self.parts().shutdown.child_token(),
            },
            mode: request.mode,
            timeout: Duration::from_secs(timeout_s),
            keep_open: request.keep_open,
            resumed: false,
            agent,
        };
        let mut setup = self.prepare(&ctx).await?;
        // A task's worktree replaces the project's directory, once that is checked.
        if let Some(workdir) = request.workdir {
            setup.path = workdir;
        }
        let (path, resume) = (setup.path.clone(), setup.session.clone());
        ctx.resumed = resume.is_some();
        // A root span: the run outlives the connection or task that started it.
        let span = match ctx.task_id() {
            Some(task_id) => info_span!(parent: None, "run", run_id = %ctx.run.id,
                                        project_id = %ctx.project_id, task_id = %task_id),
            None => info_span!(parent: None, "run", run_id = %ctx.run.id,
                               project_id = %ctx.project_id),
        };
        async {
            let store = &self.parts().store;
            if let Err(err) = store
                .insert_run(
                    &ctx.run.id,
                    &ctx.project_id,
                    &request.prompt,
                    resume.as_deref(),
                    ctx.run.started_at,
                )
                .await
            {
                if ctx.interactive() {
                    self.parts()
                        .projects
                        .end_run(&ctx.project_id, ProjectState::Failed, Some("store error"))
                        .await
                        .ok();
                }
                return Err(err.into());
            }
            let (input, inputs) = mpsc::channel(session::INPUT_QUEUE);
            let launched = match self.launch(&cli, &ctx, inputs, setup).await {
                Ok(launched) => launched,
                Err(reason) => {
                    let outcome = RunOutcome::new(RunStatus::Failed, Some(reason.clone()));
                    // No output exists: only the finish line goes in the log.
                    self.record_end(&ctx, &outcome, permit).await;
                    return Err(RunError::CannotStart(reason));
                }
            };
            let Launched { child, tap, events } = launched;
            let (worker_id, task_id) = match &ctx.mode {
                RunMode::Task { task_id, worker_id } => (Some(worker_id.as_str()), Some(task_id)),
                RunMode::Interactive { .. } => (None, None),
            };
            let started_line = Self::hub_text(&RunStartedLine {
                kind: "run_started",
                run_id: &ctx.run.id,
                task_id: task_id.map(String::as_str),
                worker_id,
                prompt: &request.prompt,
                resume: resume.as_deref(),
                cwd: &path,
            });
            match task_id {
                Some(task_id) => {
                    self.task_runs().insert(
                        ctx.run.id.clone(),
                        TaskRun {
                            task_id: task_id.clone(),
                            stop: ctx.run.stop.clone(),
                        },
                    );
                }
                None => self.emit_state(&ctx, None),
            }
            self.parts().metrics.runs_started.inc();
            self.parts().sink.emit(Event::RunStarted);
            info!(pid = child.id(), agent = agent.as_str(), cli = %cli.path.display(),
              resume = resume.is_some(), worker_id, "agent run started");
            let (done, ended) = oneshot::channel();
            let handle = RunHandle {
                run_id: ctx.run.id.clone(),
                stop: ctx.run.stop.clone(),
                ended,
            };
            let (commands_tx, commands) = mpsc::channel(16);
            if ctx.interactive() {
                self.sessions().insert(
                    ctx.project_id.clone(),
                    SessionHandle {
                        run_id: ctx.run.id.clone(),
                        commands: commands_tx,
                    },
                );
            }
            let live = Live {
                input,
                commands,
                first_prompt: request.prompt,
                tap,
                events,
            };
            let supervisor = self
                .clone()
                .supervise(ctx, child, permit, done, started_line, live);
            self.parts()
                .tracker
                .spawn(supervisor.instrument(span.clone()));
            Ok(handle)
        }
        .instrument(span.clone())
        .await
    }

    /// Claims the project (interactive) or checks its directory (task); returns the
    /// directory, the model and the session of the run's agent to resume.
    async fn prepare(&self, ctx: &RunContext) -> Result<RunSetup, RunError> {
        let projects = &self.parts().projects;
        match &ctx.mode {
            RunMode::Interactive { new_session } => {
                let mut setup = projects
                    .begin_run(&ctx.project_id, ctx.run.clone(), Some(ctx.agent))
                    .await?;
                if *new_session {
                    projects
                        .set_agent_session(&ctx.project_id, ctx.agent, None)
                        .await?;
                    setup.session = None;
                }
                Ok(setup)
            }
            RunMode::Task { .. } => {
                let setup = projects.task_setup(&ctx.project_id, Some(ctx.agent))?;
                let path = setup.path.clone();
                match projects.validate(path.display().to_string()).await {
                    Ok(current) if current == path => Ok(setup),
                    Ok(current) => Err(RunError::PathChanged {
                        path: path.display().to_string(),
                        now: current.display().to_string(),
                    }),
                    Err(err) => Err(err.into()),
                }
            }
        }
    }

    /// Kills a project's interactive run. The state change arrives as `project.state`.
    ///
    /// # Errors
    /// `PROJECT_NOT_FOUND`, or `NOT_RUNNING` when nothing runs.
    pub fn kill(&self, project_id: &str) -> Result<(), RunError> {
        match self.parts().projects.active_run(project_id)? {
            Some(run) => {
                info!(run_id = %run.id, project_id, "kill requested");
                run.stop.cancel();
                Ok(())
            }
            None => Err(RunError::NotRunning(project_id.to_string())),
        }
    }

    /// Stops every run of a task (normally one). Returns how many were asked to stop;
    /// the end of each arrives on its [`RunHandle::ended`].
    pub fn stop_task(&self, task_id: &str) -> usize {
        let runs = self.task_runs();
        let mut stopped = 0;
        for run in runs.values().filter(|run| run.task_id == task_id) {
            run.stop.cancel();
            stopped += 1;
        }
        stopped
    }

    /// Encodes a line the hub writes into a run's log.
    fn hub_text<T: Serialize>(line: &T) -> Option<String> {
        serde_json::to_string(line)
            .inspect_err(|err| warn!(error = %err, "cannot encode a hub line"))
            .ok()
    }

    /// Stores a hub line (awaiting its commit) and fans it out.
    async fn hub_line(&self, ctx: &RunContext, text: Option<String>) {
        let Some(text) = text else { return };
        let line = Line {
            run_id: Some(&ctx.run.id),
            stream: Stream::Hub,
            text: &text,
        };
        if let Err(err) = self.parts().feed.append(&ctx.project_id, line).await {
            warn!(error = %ErrorChain(&err), project_id = %ctx.project_id, "cannot store a hub line");
        }
    }

    fn emit_state(&self, ctx: &RunContext, reason: Option<&str>) {
        if let Ok(view) = self.parts().projects.get(&ctx.project_id) {
            self.parts().sink.emit(Event::ProjectState(StateChange {
                project_id: ctx.project_id.clone(),
                state: view.state,
                session_id: view.session_id,
                run_id: Some(ctx.run.id.clone()),
                reason: reason.map(str::to_string),
            }));
        }
    }

    /// Records a run's end: the run row, the permit given back, the project's state
    /// (interactive) or the task run forgotten, then the finish line in the log
    /// (awaited), then the events.
    ///
    /// The state is stored before the finish line goes out, so a client that starts the
    /// next run as soon as it reads `run_finished` finds the project free, not
    /// `PROJECT_BUSY`.
    async fn record_end(&self, ctx: &RunContext, outcome: &RunOutcome, permit: Permit) {
        let line = self.record_end_row(ctx, outcome, permit).await;
        self.record_end_state(ctx, outcome).await;
        self.hub_line(ctx, line).await;
        if ctx.interactive() {
            self.emit_state(ctx, outcome.error.as_deref());
        }
        self.parts().sink.emit(Event::RunFinished);
    }

    /// The first part of [`Runner::record_end`]: the run row and the permit; returns the
    /// finish line to store.
    async fn record_end_row(
        &self,
        ctx: &RunContext,
        outcome: &RunOutcome,
        permit: Permit,
    ) -> Option<String> {
        if let Err(err) = self
            .parts()
            .store
            .finish_run(&ctx.run.id, outcome, now_ms())
            .await
        {
            warn!(error = %ErrorChain(&err), "cannot record the run's end");
        }
        // The process group is gone: the slot is free before anyone hears of the end.
        drop(permit);
        Self::hub_text(&RunFinishedLine {
            kind: "run_finished",
            run_id: &ctx.run.id,
            task_id: ctx.task_id(),
            status: outcome.status,
            exit_code: outcome.exit_code,
            reason: outcome.error.as_deref(),
            total_cost_usd: outcome.reported_total_usd,
            cost_usd: outcome.cost_usd,
        })
    }

    /// The second part of [`Runner::record_end`]: the project's state (interactive), or
    /// the task run forgotten.
    async fn record_end_state(&self, ctx: &RunContext, outcome: &RunOutcome) {
        if ctx.interactive() {
            let state = match outcome.status {
                RunStatus::Succeeded => ProjectState::Idle,
                RunStatus::Killed => ProjectState::Killed,
                _ => ProjectState::Failed,
            };
            if let Err(err) = self
                .parts()
                .projects
                .end_run(&ctx.project_id, state, outcome.error.as_deref())
                .await
            {
                warn!(error = %ErrorChain(&err), "cannot record the project's state");
            }
        } else {
            self.task_runs().remove(&ctx.run.id);
        }
    }

    async fn supervise(
        self,
        ctx: RunContext,
        mut child: Child,
        permit: Permit,
        done: oneshot::Sender<RunEnd>,
        started_line: Option<String>,
        live: Live,
    ) {
        let parts = self.parts();
        // Before any output line, so the log reads in order.
        self.hub_line(&ctx, started_line).await;
        let pgid = child.id().map(|pid| pid as i32).unwrap_or_default();
        let summary = Arc::new(Mutex::new(Summary::default()));
        let meter = Arc::new(Meter::new(MeterParts {
            store: parts.store.clone(),
            metrics: parts.metrics.clone(),
            project_id: ctx.project_id.clone(),
            project_name: parts
                .projects
                .get(&ctx.project_id)
                .map(|view| view.name)
                .unwrap_or_default(),
            run_id: ctx.run.id.clone(),
            resumed: ctx.resumed,
        }));
        let pump = Pump {
            feed: parts.feed.clone(),
            metrics: parts.metrics.clone(),
            projects: ctx.interactive().then(|| parts.projects.clone()),
            project_id: ctx.project_id.clone(),
            run_id: ctx.run.id.clone(),
            max_line: parts.config.max_line_bytes,
            summary: summary.clone(),
            events: None,
            meter: meter.clone(),
        };
        let pumps = [
            child.stdout.take().map(|out| {
                let pump = Pump {
                    events: Some(live.tap),
                    ..pump.clone()
                };
                tokio::spawn(pump.run(Stream::Stdout, out).in_current_span())
            }),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(pump.clone().run(Stream::Stderr, err).in_current_span())),
        ];
        let mut session = Session {
            runner: &self,
            ctx: &ctx,
            asker: Asker {
                project_id: ctx.project_id.clone(),
                run_id: ctx.run.id.clone(),
                task_id: ctx.task_id().map(str::to_owned),
                input: live.input,
            },
            turns: 0,
            turn_deadline: None,
            idle_deadline: None,
            interrupt_deadline: None,
            closing: false,
            next_now: None,
            summary: summary.clone(),
            meter: meter.clone(),
        };
        session.start_turn(&live.first_prompt, "prompt", None).await;
        let mut ending = session.run(&mut child, live.events, live.commands).await;
        // No new command reaches this run from now on.
        self.end_session(&ctx);
        let why = match &ending {
            Ending::Exited(_) => "the agent exited",
            _ => "the run was stopped",
        };
        parts.approvals.withdraw(&ctx.run.id, None, why).await;
        parts.approvals.end_run(&ctx.run.id);
        let grace = Duration::from_millis(parts.config.kill_grace_ms);
        let status = match &mut ending {
            Ending::Exited(status) => {
                process::end_leftovers(pgid, grace).await;
                status.as_ref().ok().copied()
            }
            Ending::Stopped | Ending::TimedOut | Ending::InterruptIgnored | Ending::Fatal(_) => {
                process::stop_group(pgid, &mut child, grace).await
            }
        };
        // Output already in the pipes is still read; a descendant that escaped the group
        // and holds a pipe open must not hold the run open too.
        for pump in pumps.into_iter().flatten() {
            let abort = pump.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), pump)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let summary = summary.lock().map(|s| s.clone()).unwrap_or_default();
        let (status_name, reason) = judge(&ending, status, &summary, &ctx, parts);
        let outcome = RunOutcome {
            status: status_name,
            exit_code: status.and_then(|s| s.code()),
            session_id: summary.session_id.clone(),
            // The run's own cost: its turns' sum, which the CLI's cumulative total
            // exceeds when the process carried a resumed session's total.
            cost_usd: meter.run_usd().or(summary.cost_usd),
            reported_total_usd: summary.cost_usd,
            duration_ms: summary.duration_ms,
            num_turns: summary.num_turns,
            error: reason,
        };
        info!(
            status = status_name.as_str(),
            exit_code = outcome.exit_code,
            cost_usd = summary.cost_usd,
            "agent run finished"
        );
        parts.metrics.observe_run(
            status_name.as_str(),
            (now_ms() - ctx.run.started_at) as f64 / 1000.0,
        );
        self.record_end(&ctx, &outcome, permit).await;
        let _ = done.send(RunEnd {
            run_id: ctx.run.id.clone(),
            status: outcome.status,
            reason: outcome.error,
            result_text: summary.result_text,
            session_id: outcome.session_id,
            cost_usd: outcome.cost_usd,
            duration_ms: outcome.duration_ms,
        });
    }

    /// Forgets a run's session handle, if it is still the project's.
    fn end_session(&self, ctx: &RunContext) {
        let mut sessions = self.sessions();
        if sessions
            .get(&ctx.project_id)
            .is_some_and(|s| s.run_id == ctx.run.id)
        {
            sessions.remove(&ctx.project_id);
        }
    }

    /// `agent.send`: a follow-up for the project's session. With a live session it is
    /// queued, steered into the running turn or interrupts it (`mode`), or starts a turn
    /// when none runs; with none, it starts a live session (holding `permit`, which is
    /// dropped otherwise) whose first turn is the oldest queued follow-up, this one
    /// queued behind the others.
    ///
    /// # Errors
    /// As [`Runner::start`], `PROJECT_BUSY` while the session is closing or another run
    /// holds the project, `TOO_LARGE`/`INVALID_PARAMS` for the text.
    pub async fn send(
        &self,
        project_id: &str,
        text: String,
        mode: SendMode,
        permit: impl FnOnce() -> Result<Permit, RpcError>,
    ) -> Result<Sent, RpcError> {
        if text.trim().is_empty() {
            return Err(RunError::EmptyPrompt.into());
        }
        if text.len() > MAX_PROMPT_BYTES {
            return Err(RunError::PromptTooLarge.into());
        }
        let handle = self.sessions().get(project_id).cloned();
        if let Some(handle) = handle {
            let (reply, answer) = oneshot::channel();
            let sent = handle
                .commands
                .send(SessionCommand::Send {
                    text: text.clone(),
                    mode,
                    reply,
                })
                .await;
            if sent.is_ok()
                && let Ok(result) = answer.await
            {
                return result.map_err(Into::into);
            }
            // The session ended meanwhile: start a new one below.
        }
        self.parts().projects.get(project_id)?;
        let queued = self
            .parts()
            .store
            .queued_messages(project_id.to_string())
            .await
            .map_err(|err| RpcError::internal("read queue", &err))?;
        let (first, queued_message) = if queued.is_empty() || mode != SendMode::Queue {
            (text, None)
        } else {
            let row = self.enqueue(project_id, text).await?;
            let first = self
                .parts()
                .store
                .take_next_queued(project_id.to_string(), String::new(), now_ms())
                .await
                .map_err(|err| RpcError::internal("take queued", &err))?;
            match first {
                Some(first) => {
                    self.queue_changed(&first, QueueState::Delivered);
                    (first.text, Some(row))
                }
                None => (row.text.clone(), None),
            }
        };
        let handle = self
            .start(
                RunRequest {
                    project_id: project_id.to_string(),
                    prompt: first,
                    mode: RunMode::Interactive { new_session: false },
                    timeout_s: None,
                    keep_open: true,
                    agent: None,
                    workdir: None,
                },
                permit()?,
            )
            .await?;
        Ok(Sent {
            run_id: handle.run_id,
            delivery: if queued_message.is_some() {
                Delivery::Queued
            } else {
                Delivery::Started
            },
            message: queued_message,
        })
    }

    /// `agent.interrupt`: stops the project's running turn through the agent's control
    /// protocol; its process group is signalled only if the turn does not end within
    /// `agent.interrupt_timeout_ms`. Pending approvals of the run are withdrawn.
    ///
    /// # Errors
    /// `NOT_RUNNING` when no turn runs.
    pub async fn interrupt(&self, project_id: &str) -> Result<String, RunError> {
        let handle = self.sessions().get(project_id).cloned();
        let Some(handle) = handle else {
            self.parts().projects.get(project_id)?;
            return Err(RunError::NoTurn(project_id.to_string()));
        };
        let (reply, answer) = oneshot::channel();
        if handle
            .commands
            .send(SessionCommand::Interrupt { reply })
            .await
            .is_err()
        {
            return Err(RunError::NoTurn(project_id.to_string()));
        }
        match answer.await {
            Ok(result) => result.map(|()| handle.run_id),
            Err(_) => Err(RunError::NoTurn(project_id.to_string())),
        }
    }
}

/// How a run ended and why, from how it stopped, its exit status and its summary.
fn judge(
    ending: &Ending,
    status: Option<ExitStatus>,
    summary: &Summary,
    ctx: &RunContext,
    parts: &RunnerParts,
) -> (RunStatus, Option<String>) {
    let exit_code = status.and_then(|s| s.code());
    let describe_exit = || match status {
        Some(s) if s.code().is_some() => format!(
            "the agent exited with code {}",
            s.code().unwrap_or_default()
        ),
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            format!(
                "the agent was ended by signal {}",
                s.signal().unwrap_or_default()
            )
        }
        None => "the agent's exit status is unknown".into(),
    };
    match ending {
        Ending::Stopped if parts.shutdown.is_cancelled() => {
            (RunStatus::Killed, Some("the hub shut down".to_string()))
        }
        Ending::Stopped => (RunStatus::Killed, Some("killed on request".to_string())),
        Ending::Fatal(reason) => (RunStatus::Failed, Some(reason.clone())),
        Ending::TimedOut => (
            RunStatus::TimedOut,
            Some(format!("timed out after {} s", ctx.timeout.as_secs())),
        ),
        Ending::InterruptIgnored => (
            RunStatus::Killed,
            Some(format!(
                "the agent did not stop within {} ms of an interrupt; its processes were ended",
                parts.config.interrupt_timeout_ms
            )),
        ),
        Ending::Exited(_) if summary.is_error => (
            RunStatus::Failed,
            Some(
                summary
                    .result_text
                    .clone()
                    .unwrap_or_else(|| "the agent reported an error".into()),
            ),
        ),
        Ending::Exited(_) if exit_code != Some(0) => (RunStatus::Failed, Some(describe_exit())),
        Ending::Exited(_) if !summary.result_seen => (
            RunStatus::Failed,
            Some("the agent exited without a result line".into()),
        ),
        Ending::Exited(_) => (RunStatus::Succeeded, None),
    }
}
