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
//! - **isolated** (`agent.run {isolation: "worktree"}`): an interactive run in its own
//!   git worktree. Like a task run it neither claims the project nor touches its state
//!   or session, so several may run at once; its session is its own (fresh, or the one
//!   its worktree's last run left, for a follow-up there).
//!
//! The runner reports through its [`EventSink`] (`ProjectState`, `RunStarted`,
//! `RunFinished`) and never calls up into the hub; how a run ended comes back on the
//! run's own [`RunHandle::ended`].

pub mod approvals;
pub mod claude_cli;
pub mod driver;
mod error;
mod follow_up;
mod hub_lines;
mod launch;
pub mod metering;
pub mod output;
pub mod peer;
pub mod process;
mod queue;
pub mod session;
pub mod slots;
mod supervise;
pub mod usage;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span};

use crate::config::AgentConfig;
use crate::events::{Event, EventSink};
use crate::projects::feed::Feed;
use crate::projects::{ActiveRun, Projects, RunSetup};
use crate::protocol::{ProjectState, RunStatus};
use crate::storage::sqlite::{RunOutcome, Store};
use crate::support::metrics::Metrics;
use crate::support::timestamp::now_ms;

pub use error::{RunError, cli_missing};

use approvals::Approvals;
use claude_cli::{CliSlot, Clis};
use hub_lines::RunStartedLine;
use launch::Launched;
use session::{Live, SessionHandle};
use slots::{Permit, Slots};

use crate::protocol::agents::AgentKind;

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
    /// An interactive run in its own git worktree (given as [`RunRequest::workdir`]).
    Isolated {
        /// The session to resume (a follow-up in the worktree), or `None` for a fresh
        /// one.
        resume: Option<String>,
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
    /// (`project.configure {isolation: "worktree"}`) or an isolated run's. The project's
    /// own directory is still checked as for any run.
    pub workdir: Option<std::path::PathBuf>,
    /// The run id to use (a UUIDv7 the caller made, e.g. to name the run's worktree
    /// before it starts); a new one when `None`.
    pub run_id: Option<String>,
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

/// A run that does not hold the project: a task run, or an isolated run (no task).
struct TaskRun {
    project_id: String,
    task_id: Option<String>,
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

impl RunContext {
    fn task_id(&self) -> Option<&str> {
        match &self.mode {
            RunMode::Task { task_id, .. } => Some(task_id),
            RunMode::Interactive { .. } | RunMode::Isolated { .. } => None,
        }
    }

    fn interactive(&self) -> bool {
        matches!(self.mode, RunMode::Interactive { .. })
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
                id: request
                    .run_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
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
                RunMode::Interactive { .. } | RunMode::Isolated { .. } => (None, None),
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
            if ctx.interactive() {
                self.emit_state(&ctx, None);
            } else {
                self.task_runs().insert(
                    ctx.run.id.clone(),
                    TaskRun {
                        project_id: ctx.project_id.clone(),
                        task_id: task_id.cloned(),
                        stop: ctx.run.stop.clone(),
                    },
                );
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
            RunMode::Task { .. } | RunMode::Isolated { .. } => {
                let mut setup = projects.task_setup(&ctx.project_id, Some(ctx.agent))?;
                if let RunMode::Isolated { resume } = &ctx.mode {
                    setup.session.clone_from(resume);
                }
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

    /// Kills an isolated run of a project (`agent.run {isolation: "worktree"}`) by its
    /// id. Its end arrives as its `run_finished` line.
    ///
    /// # Errors
    /// `PROJECT_NOT_FOUND`, or `NOT_RUNNING` when no isolated run of the project has
    /// the id (task runs are stopped through their task).
    pub fn kill_run(&self, project_id: &str, run_id: &str) -> Result<(), RunError> {
        self.parts().projects.get(project_id)?;
        match self.task_runs().get(run_id) {
            Some(run) if run.task_id.is_none() && run.project_id == project_id => {
                info!(run_id, project_id, "kill requested");
                run.stop.cancel();
                Ok(())
            }
            _ => Err(RunError::NotRunning(format!("{project_id} (run {run_id})"))),
        }
    }

    /// Stops every run of a task (normally one). Returns how many were asked to stop;
    /// the end of each arrives on its [`RunHandle::ended`].
    pub fn stop_task(&self, task_id: &str) -> usize {
        let runs = self.task_runs();
        let mut stopped = 0;
        for run in runs
            .values()
            .filter(|run| run.task_id.as_deref() == Some(task_id))
        {
            run.stop.cancel();
            stopped += 1;
        }
        stopped
    }
}
