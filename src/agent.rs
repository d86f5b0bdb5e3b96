//! The agent runner: runs the Claude Code CLI in a project and streams its output.
//!
//! A run executes `claude -p <prompt> --output-format stream-json --verbose
//! --permission-mode <mode> [--model M] [--resume <session>]` in the project directory
//! (Claude Code CLI reference, "CLI flags"). Every stdout line is a stream-json event
//! (`system`/`init`, `assistant`, `user`, `result`, ...); the `init` and `result` events
//! carry `session_id`, and `result` also `total_cost_usd`, `duration_ms`, `num_turns` and
//! `is_error`.
//!
//! stdout and stderr are read at the same time by two tasks, so a noisy stderr can never
//! fill its pipe and stall the agent. Lines are framed by hand with a cap
//! (`agent.max_line_bytes`, 16 MiB by default) instead of the usual 64 KiB limits.
//!
//! Each run is the leader of its own process group. Stopping it (kill, timeout, shutdown)
//! signals the whole group with SIGINT, then SIGTERM, then SIGKILL, `agent.kill_grace_ms`
//! apart, so tools the agent started in the background die with it. When the leader
//! exits by itself, leftovers in its group get SIGTERM then SIGKILL. The group id is
//! stored, so a run orphaned by a crash of the hub is found and ended at the next start.
//!
//! Besides a project's one interactive run (`agent.run`, refused with `PROJECT_BUSY`
//! while one goes), the coordinator starts *task runs* for its built-in agent workers
//! ([`start_task_run`]): several may run in the same project at once, each with its own
//! run id, process group and fresh session, and none touches the project's state or the
//! session `agent.run` resumes. Their output goes to the project's log like any run's,
//! tagged with their run id. [`TaskRuns`] tracks them; they count towards
//! `limits.max_running_agents`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Deserialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::error::{ErrorChain, ErrorKind, RpcError};
use crate::feed::Line;
use crate::hub::Hub;
use crate::project::{ActiveRun, validate_path};
use crate::protocol::{AgentRunParams, ProjectState, Stream};
use crate::store::{RunOutcome, Store};
use crate::timestamp::now_ms;

/// The largest prompt accepted, in bytes.
pub const MAX_PROMPT_BYTES: usize = 256 * 1024;

/// The agent CLI the hub found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentCli {
    /// Absolute path of the executable.
    pub path: PathBuf,
    /// The first line of `claude --version`, if it answered within 10 s.
    pub version: Option<String>,
}

/// Finds the `claude` executable: the configured path, then PATH, then the usual install
/// locations. Apps started at login on macOS get a minimal PATH, hence the list.
pub fn find_cli(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = configured {
        return is_executable(path).then(|| path.to_path_buf());
    }
    if let Ok(path) = which::which("claude") {
        return Some(path);
    }
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf())?;
    let candidates = [
        home.join(".claude/local/claude"),
        home.join(".local/bin/claude"),
        home.join(".npm-global/bin/claude"),
        home.join(".bun/bin/claude"),
        home.join(".volta/bin/claude"),
        PathBuf::from("/opt/homebrew/bin/claude"),
        PathBuf::from("/usr/local/bin/claude"),
        PathBuf::from("/usr/bin/claude"),
    ];
    candidates.into_iter().find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Asks the CLI for its version (`claude --version`), bounded by 10 s.
pub async fn probe_cli(path: PathBuf) -> AgentCli {
    let run = Command::new(&path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let version = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Ok(Ok(output)) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .map(|line| line.trim().to_string()),
        _ => None,
    };
    AgentCli { path, version }
}

/// The CLI arguments of a run.
pub fn build_args(
    prompt: &str,
    resume: Option<&str>,
    permission_mode: &str,
    model: Option<&str>,
) -> Vec<String> {
    let mut args = vec![
        "-p".to_string(),
        prompt.to_string(),
        "--output-format".into(),
        "stream-json".into(),
        "--verbose".into(),
        "--permission-mode".into(),
        permission_mode.into(),
    ];
    if let Some(model) = model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(session) = resume {
        args.extend(["--resume".into(), session.into()]);
    }
    args
}

/// What the `system`/`init` and `result` events told about a run.
#[derive(Debug, Default, Clone)]
struct Summary {
    /// An interactive run records its session as the project's; a task run does not.
    interactive: bool,
    session_id: Option<String>,
    result_seen: bool,
    is_error: bool,
    cost_usd: Option<f64>,
    duration_ms: Option<i64>,
    num_turns: Option<i64>,
    result_text: Option<String>,
}

/// The fields of `init` and `result` events the hub records.
#[derive(Deserialize)]
struct EventFields {
    session_id: Option<String>,
    is_error: Option<bool>,
    total_cost_usd: Option<f64>,
    duration_ms: Option<i64>,
    num_turns: Option<i64>,
    subtype: Option<String>,
    result: Option<serde_json::Value>,
}

/// Starts a run and returns its id; the run continues in a task of the hub's tracker.
///
/// # Errors
/// `INVALID_PARAMS` or `TOO_LARGE` for a bad prompt or timeout, `PROJECT_NOT_FOUND`,
/// `PROJECT_BUSY`, `LIMIT_REACHED`, `INVALID_PATH` (the directory changed), and
/// `AGENT_UNAVAILABLE` when the CLI is missing or cannot start.
pub fn start_run(hub: &Hub, params: AgentRunParams) -> Result<String, RpcError> {
    let config = &hub.config.config.agent;
    if params.prompt.trim().is_empty() {
        return Err(RpcError::new(ErrorKind::InvalidParams, "prompt is empty"));
    }
    if params.prompt.len() > MAX_PROMPT_BYTES {
        return Err(RpcError::new(
            ErrorKind::TooLarge,
            "prompt is larger than 256 KiB",
        ));
    }
    let timeout_s = params.timeout_s.unwrap_or(config.timeout_s);
    if timeout_s == 0 || timeout_s > config.max_timeout_s {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            format!("timeout_s must be between 1 and {}", config.max_timeout_s),
        ));
    }
    let cli = hub.agent_cli().ok_or_else(|| {
        RpcError::new(
            ErrorKind::AgentUnavailable,
            "the Claude Code CLI was not found; install it or set agent.cli_path",
        )
    })?;
    let limit = hub.config.config.limits.max_running_agents;
    if hub.running_agents() >= limit {
        return Err(RpcError::new(
            ErrorKind::LimitReached,
            format!("{limit} agents are already running, the configured maximum"),
        ));
    }
    let run = ActiveRun {
        id: uuid::Uuid::now_v7().to_string(),
        started_at: now_ms(),
        stop: hub.shutdown.child_token(),
    };
    let project_id = params.project_id;
    let (path, session) = hub.projects.begin_run(&project_id, run.clone())?;
    let resume = if params.new_session {
        hub.projects.set_session(&project_id, None)?;
        None
    } else {
        session
    };
    // A root span: the run outlives the connection that started it.
    let span = info_span!(parent: None, "run", run_id = %run.id, project_id = %project_id);
    let _entered = span.enter();

    let fail = |reason: String| -> RpcError {
        let outcome = RunOutcome {
            status: "failed".into(),
            error: Some(reason.clone()),
            ..Default::default()
        };
        finish(
            hub,
            &project_id,
            &run,
            &outcome,
            ProjectState::Failed,
            Some(&reason),
        );
        RpcError::new(ErrorKind::AgentUnavailable, reason)
    };
    if let Err(err) = hub.store.insert_run(
        &run.id,
        &project_id,
        &params.prompt,
        resume.as_deref(),
        run.started_at,
    ) {
        hub.projects
            .end_run(&project_id, ProjectState::Failed, Some("store error"))
            .ok();
        return Err(RpcError::internal("record run", &err));
    }
    let (child, pgid) =
        launch(hub, &cli, &run.id, &params.prompt, resume.as_deref(), &path).map_err(fail)?;
    hub.append_hub_line(
        &project_id,
        Some(&run.id),
        &serde_json::json!({"type": "run_started", "run_id": run.id, "prompt": params.prompt,
                            "resume": resume, "cwd": path}),
    );
    hub.broadcast_state(&project_id, Some(&run.id), None);
    hub.metrics.runs_started.inc();
    info!(pid = pgid, cli = %cli.path.display(), resume = resume.is_some(), "agent run started");

    let supervisor = supervise(
        hub.clone(),
        project_id.clone(),
        run.clone(),
        child,
        Duration::from_secs(timeout_s),
        None,
    );
    hub.tracker.spawn(supervisor.instrument(span.clone()));
    Ok(run.id)
}

/// Starts a run's CLI process and records its process group, so a crash of the hub
/// can be cleaned up later. Returns the child and its group id.
///
/// # Errors
/// A message for the user when the CLI cannot start or exits before it is tracked.
fn launch(
    hub: &Hub,
    cli: &AgentCli,
    run_id: &str,
    prompt: &str,
    resume: Option<&str>,
    dir: &Path,
) -> Result<(Child, i32), String> {
    let config = &hub.config.config.agent;
    let args = build_args(
        prompt,
        resume,
        &config.permission_mode,
        config.model.as_deref(),
    );
    let child = spawn_cli(cli, &args, dir, &config.env)
        .map_err(|err| format!("cannot start {}: {err}", cli.path.display()))?;
    let pgid = child
        .id()
        .map(|pid| pid as i32)
        .ok_or_else(|| "the agent exited before it could be tracked".to_string())?;
    if let Err(err) = hub.store.set_run_pgid(run_id, pgid) {
        warn!(error = %ErrorChain(&err), "cannot record the run's process group");
    }
    Ok((child, pgid))
}

/// Starts the CLI in `dir` as the leader of a new process group, with piped stdout
/// and stderr, no stdin, and `env` added to the hub's environment.
fn spawn_cli(
    cli: &AgentCli,
    args: &[String],
    dir: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> std::io::Result<Child> {
    Command::new(&cli.path)
        .args(args)
        .current_dir(dir)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// Kills a project's run. The state change arrives as `project.state`.
///
/// # Errors
/// `PROJECT_NOT_FOUND`, or `NOT_RUNNING` when nothing runs.
pub fn kill_run(hub: &Hub, project_id: &str) -> Result<(), RpcError> {
    match hub.projects.active_run(project_id)? {
        Some(run) => {
            info!(run_id = %run.id, project_id, "kill requested");
            run.stop.cancel();
            Ok(())
        }
        None => Err(RpcError::new(
            ErrorKind::NotRunning,
            format!("project {project_id} runs no agent"),
        )),
    }
}

enum Ending {
    Exited(std::io::Result<ExitStatus>),
    Stopped,
    TimedOut,
}

async fn supervise(
    hub: Hub,
    project_id: String,
    run: ActiveRun,
    mut child: Child,
    timeout: Duration,
    task: Option<TaskFinish>,
) {
    let pgid = child.id().map(|pid| pid as i32).unwrap_or_default();
    let summary = Arc::new(Mutex::new(Summary {
        interactive: task.is_none(),
        ..Summary::default()
    }));
    let max_line = hub.config.config.agent.max_line_bytes;
    let pumps = [
        child.stdout.take().map(|out| {
            tokio::spawn(
                pump(
                    hub.clone(),
                    project_id.clone(),
                    run.id.clone(),
                    Stream::Stdout,
                    out,
                    max_line,
                    summary.clone(),
                )
                .in_current_span(),
            )
        }),
        child.stderr.take().map(|err| {
            tokio::spawn(
                pump(
                    hub.clone(),
                    project_id.clone(),
                    run.id.clone(),
                    Stream::Stderr,
                    err,
                    max_line,
                    summary.clone(),
                )
                .in_current_span(),
            )
        }),
    ];
    let mut ending = tokio::select! {
        status = child.wait() => Ending::Exited(status),
        () = run.stop.cancelled() => Ending::Stopped,
        () = tokio::time::sleep(timeout) => Ending::TimedOut,
    };
    let grace = Duration::from_millis(hub.config.config.agent.kill_grace_ms);
    let status = match &mut ending {
        Ending::Exited(status) => {
            end_leftovers(pgid, grace).await;
            status.as_ref().ok().copied()
        }
        Ending::Stopped | Ending::TimedOut => stop_group(pgid, &mut child, grace).await,
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
    let (state, status_name, reason) = match ending {
        Ending::Stopped if hub.shutdown.is_cancelled() => (
            ProjectState::Killed,
            "killed",
            Some("the hub shut down".to_string()),
        ),
        Ending::Stopped => (
            ProjectState::Killed,
            "killed",
            Some("killed on request".to_string()),
        ),
        Ending::TimedOut => (
            ProjectState::Failed,
            "timed_out",
            Some(format!("timed out after {} s", timeout.as_secs())),
        ),
        Ending::Exited(_) if summary.is_error => (
            ProjectState::Failed,
            "failed",
            Some(
                summary
                    .result_text
                    .clone()
                    .unwrap_or_else(|| "the agent reported an error".into()),
            ),
        ),
        Ending::Exited(_) if exit_code != Some(0) => {
            (ProjectState::Failed, "failed", Some(describe_exit()))
        }
        Ending::Exited(_) if !summary.result_seen => (
            ProjectState::Failed,
            "failed",
            Some("the agent exited without a result line".into()),
        ),
        Ending::Exited(_) => (ProjectState::Idle, "succeeded", None),
    };
    let outcome = RunOutcome {
        status: status_name.into(),
        exit_code,
        session_id: summary.session_id.clone(),
        cost_usd: summary.cost_usd,
        duration_ms: summary.duration_ms,
        num_turns: summary.num_turns,
        error: reason.clone(),
    };
    info!(
        status = status_name,
        exit_code,
        cost_usd = summary.cost_usd,
        "agent run finished"
    );
    hub.metrics
        .observe_run(status_name, (now_ms() - run.started_at) as f64 / 1000.0);
    match task {
        None => finish(&hub, &project_id, &run, &outcome, state, reason.as_deref()),
        Some(task) => finish_task(&hub, &project_id, &run, outcome, task, summary.result_text),
    }
}

/// Records a run's end: the run row, the finish line in the log, the project's state.
fn finish(
    hub: &Hub,
    project_id: &str,
    run: &ActiveRun,
    outcome: &RunOutcome,
    state: ProjectState,
    reason: Option<&str>,
) {
    if let Err(err) = hub.store.finish_run(&run.id, outcome, now_ms()) {
        warn!(error = %ErrorChain(&err), "cannot record the run's end");
    }
    hub.append_hub_line(
        project_id,
        Some(&run.id),
        &serde_json::json!({"type": "run_finished", "run_id": run.id, "status": outcome.status,
                            "exit_code": outcome.exit_code, "reason": reason,
                            "total_cost_usd": outcome.cost_usd}),
    );
    if let Err(err) = hub.projects.end_run(project_id, state, reason) {
        warn!(error = %ErrorChain(&err), "cannot record the project's state");
    }
    hub.broadcast_state(project_id, Some(&run.id), reason);
}

/// Reads one stream line by line into the feed, noting `init` and `result` events.
async fn pump(
    hub: Hub,
    project_id: String,
    run_id: String,
    stream: Stream,
    reader: impl AsyncRead + Unpin,
    max_line: usize,
    summary: Arc<Mutex<Summary>>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut buf = Vec::new();
    loop {
        let dropped = match read_capped_line(&mut reader, &mut buf, max_line).await {
            Ok(Some(dropped)) => dropped,
            Ok(None) => return,
            Err(err) => {
                warn!(error = %err, stream = stream.as_str(), "cannot read agent output");
                return;
            }
        };
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        if text.ends_with('\r') {
            text.pop();
        }
        if dropped > 0 {
            text.push_str(&format!(
                " … [line cut: {dropped} more bytes over the {max_line}-byte limit]"
            ));
        }
        let output = match hub.feed.append(
            &project_id,
            Line {
                run_id: Some(&run_id),
                stream,
                text: &text,
            },
        ) {
            Ok(output) => output,
            Err(err) => {
                warn!(error = %ErrorChain(&err), "cannot store agent output; line dropped");
                continue;
            }
        };
        hub.metrics.output_lines.inc();
        if let (Some(event), "system" | "result") = (&output.event, output.kind.as_str()) {
            let Ok(fields) = serde_json::from_str::<EventFields>(event.get()) else {
                continue;
            };
            note_event(&hub, &project_id, &output.kind, fields, &summary);
        }
    }
}

fn note_event(
    hub: &Hub,
    project_id: &str,
    kind: &str,
    fields: EventFields,
    summary: &Mutex<Summary>,
) {
    let Ok(mut summary) = summary.lock() else {
        return;
    };
    if kind == "system" && fields.subtype.as_deref() != Some("init") {
        return;
    }
    if let Some(session_id) = &fields.session_id
        && summary.session_id.as_ref() != Some(session_id)
    {
        summary.session_id = Some(session_id.clone());
        // Recorded at once, so a run killed mid-way can still be resumed. A task run has
        // a session of its own and leaves the project's alone.
        if summary.interactive
            && let Err(err) = hub.projects.set_session(project_id, Some(session_id))
        {
            warn!(error = %ErrorChain(&err), "cannot record the session id");
        }
    }
    if kind == "result" {
        summary.result_seen = true;
        summary.is_error = fields.is_error.unwrap_or(false);
        summary.cost_usd = fields.total_cost_usd;
        summary.duration_ms = fields.duration_ms;
        summary.num_turns = fields.num_turns;
        summary.result_text = fields.result.and_then(|r| r.as_str().map(str::to_string));
    }
}

/// Reads one line (without its `\n`) into `buf`, keeping at most `max` bytes of it.
/// Returns `None` at end of input, else the number of bytes dropped from the line.
///
/// # Errors
/// The reader's I/O error.
pub async fn read_capped_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    buf.clear();
    let mut dropped = 0usize;
    let mut seen_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(seen_any.then_some(dropped));
        }
        seen_any = true;
        let (chunk, consumed, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let take = chunk.len().min(max.saturating_sub(buf.len()));
        buf.extend_from_slice(&chunk[..take]);
        dropped += chunk.len() - take;
        reader.consume(consumed);
        if done {
            return Ok(Some(dropped));
        }
    }
}

fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), signal).is_ok()
}

fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Stops a running agent: SIGINT, SIGTERM, SIGKILL to its whole group, `grace` apart,
/// stopping early once the leader has exited and the group is gone.
async fn stop_group(pgid: i32, child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        signal_group(pgid, signal);
        if wait_for_group(pgid, child, grace).await {
            return child.try_wait().ok().flatten();
        }
    }
    signal_group(pgid, Signal::SIGKILL);
    child.wait().await.ok()
}

/// After the leader exited on its own: ends what is left in its group.
async fn end_leftovers(pgid: i32, grace: Duration) {
    if !group_alive(pgid) {
        return;
    }
    signal_group(pgid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_group(pgid, Signal::SIGKILL);
}

/// Waits up to `grace` for the leader to exit and the group to empty. Zombies that the
/// system has not reaped yet still count as members, so a false result is possible for
/// a group that is in fact dying; the caller then escalates, which is harmless.
async fn wait_for_group(pgid: i32, child: &mut Child, grace: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let leader_done = matches!(child.try_wait(), Ok(Some(_)));
        if leader_done && !group_alive(pgid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ends the processes of runs left `running` by a crash of the hub and records those
/// runs as `orphaned`. A process is only killed if it is in the run's process group and
/// started after the run did, so a recycled group id never hits an unrelated program.
/// Returns the number of runs cleaned up.
pub fn clean_orphans(store: &Store) -> usize {
    let runs = match store.unfinished_runs() {
        Ok(runs) => runs,
        Err(err) => {
            warn!(error = %ErrorChain(&err), "cannot look for orphaned runs");
            return 0;
        }
    };
    if runs.is_empty() {
        return 0;
    }
    let mut system = sysinfo::System::new();
    system.refresh_processes(sysinfo::ProcessesToUpdate::All, true);
    for run in &runs {
        let mut killed = 0;
        if let Some(pgid) = run.pgid {
            let started_s = (run.started_at / 1000 - 1).max(0) as u64;
            for (pid, process) in system.processes() {
                let pid = Pid::from_raw(pid.as_u32() as i32);
                let in_group = nix::unistd::getpgid(Some(pid)).is_ok_and(|g| g.as_raw() == pgid);
                if in_group
                    && process.start_time() >= started_s
                    && nix::sys::signal::kill(pid, Signal::SIGKILL).is_ok()
                {
                    killed += 1;
                }
            }
        }
        warn!(run_id = %run.id, project_id = %run.project_id, killed, "cleaned up a run orphaned by a crash");
        let outcome = RunOutcome {
            status: "orphaned".into(),
            error: Some("the hub stopped while the run was going; its processes were ended".into()),
            ..Default::default()
        };
        if let Err(err) = store.finish_run(&run.id, &outcome, now_ms()) {
            warn!(error = %ErrorChain(&err), "cannot record an orphaned run");
        }
    }
    runs.len()
}

/// The task runs in progress, by run id; one per hub (`hub.task_runs`). A std `Mutex`
/// because every operation is a map lookup, never held across an await.
#[derive(Default)]
pub struct TaskRuns {
    runs: Mutex<HashMap<String, TaskRunHandle>>,
}

struct TaskRunHandle {
    task_id: String,
    stop: CancellationToken,
}

impl TaskRuns {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskRunHandle>> {
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of task runs in progress.
    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Stops every run of a task (normally one). Returns how many were asked to stop; the
    /// end of each arrives through its [`TaskRunEnd`].
    pub fn stop(&self, task_id: &str) -> usize {
        let map = self.map();
        let runs: Vec<_> = map.values().filter(|run| run.task_id == task_id).collect();
        for run in &runs {
            run.stop.cancel();
        }
        runs.len()
    }
}

/// A run the coordinator starts for one task, on behalf of a built-in agent worker.
#[derive(Debug, Clone)]
pub struct TaskRunSpec {
    /// The project whose directory the agent runs in.
    pub project_id: String,
    /// The task.
    pub task_id: String,
    /// The agent worker.
    pub worker_id: String,
    /// The prompt, passed as `-p`; at most [`MAX_PROMPT_BYTES`].
    pub prompt: String,
}

/// How a task run ended.
#[derive(Debug, Clone)]
pub struct TaskRunEnd {
    /// The run id.
    pub run_id: String,
    /// `succeeded`, `failed`, `killed` or `timed_out`, as stored for the run.
    pub status: String,
    /// Why it did not succeed.
    pub reason: Option<String>,
    /// The `result` line's text, if any.
    pub result_text: Option<String>,
    /// The run's own Claude Code session.
    pub session_id: Option<String>,
    /// `total_cost_usd` from the `result` line, in US dollars.
    pub cost_usd: Option<f64>,
    /// `duration_ms` from the `result` line.
    pub duration_ms: Option<i64>,
}

struct TaskFinish {
    task_id: String,
    done: oneshot::Sender<TaskRunEnd>,
}

/// Starts a task run in a fresh session and returns its run id and a receiver for its
/// end. The project's interactive run, state and session are left alone; the run's
/// output goes to the project's log with its run id, between `run_started` and
/// `run_finished` lines that carry the task id. The timeout is `agent.timeout_s`.
///
/// # Errors
/// `INVALID_PARAMS` or `TOO_LARGE` for a bad prompt, `PROJECT_NOT_FOUND`, `INVALID_PATH`
/// (the directory changed), `LIMIT_REACHED` and `AGENT_UNAVAILABLE`.
pub fn start_task_run(
    hub: &Hub,
    spec: TaskRunSpec,
) -> Result<(String, oneshot::Receiver<TaskRunEnd>), RpcError> {
    let config = &hub.config.config.agent;
    if spec.prompt.trim().is_empty() {
        return Err(RpcError::new(ErrorKind::InvalidParams, "prompt is empty"));
    }
    if spec.prompt.len() > MAX_PROMPT_BYTES {
        return Err(RpcError::new(
            ErrorKind::TooLarge,
            "prompt is larger than 256 KiB",
        ));
    }
    let cli = hub.agent_cli().ok_or_else(|| {
        RpcError::new(
            ErrorKind::AgentUnavailable,
            "the Claude Code CLI was not found; install it or set agent.cli_path",
        )
    })?;
    let limit = hub.config.config.limits.max_running_agents;
    if hub.running_agents() >= limit {
        return Err(RpcError::new(
            ErrorKind::LimitReached,
            format!("{limit} agents are already running, the configured maximum"),
        ));
    }
    let view = hub.projects.get(&spec.project_id)?;
    let path = PathBuf::from(&view.path);
    match validate_path(&view.path) {
        Ok(current) if current == path => {}
        Ok(current) => {
            return Err(RpcError::new(
                ErrorKind::InvalidPath,
                format!(
                    "{} now resolves to {}; remove and re-add the project",
                    view.path,
                    current.display()
                ),
            ));
        }
        Err(err) => return Err(err.into()),
    }
    let run = ActiveRun {
        id: uuid::Uuid::now_v7().to_string(),
        started_at: now_ms(),
        stop: hub.shutdown.child_token(),
    };
    let project_id = spec.project_id;
    let span = info_span!(parent: None, "run", run_id = %run.id, project_id = %project_id, task_id = %spec.task_id);
    let _entered = span.enter();
    if let Err(err) = hub
        .store
        .insert_run(&run.id, &project_id, &spec.prompt, None, run.started_at)
    {
        return Err(RpcError::internal("record task run", &err));
    }
    let fail = |reason: String| -> RpcError {
        let outcome = RunOutcome {
            status: "failed".into(),
            error: Some(reason.clone()),
            ..Default::default()
        };
        if let Err(err) = hub.store.finish_run(&run.id, &outcome, now_ms()) {
            warn!(error = %ErrorChain(&err), "cannot record the run's end");
        }
        RpcError::new(ErrorKind::AgentUnavailable, reason)
    };
    let (child, pgid) = launch(hub, &cli, &run.id, &spec.prompt, None, &path).map_err(fail)?;
    hub.task_runs.map().insert(
        run.id.clone(),
        TaskRunHandle {
            task_id: spec.task_id.clone(),
            stop: run.stop.clone(),
        },
    );
    hub.append_hub_line(
        &project_id,
        Some(&run.id),
        &serde_json::json!({"type": "run_started", "run_id": run.id, "task_id": spec.task_id,
                            "worker_id": spec.worker_id, "prompt": spec.prompt, "resume": null, "cwd": path}),
    );
    hub.metrics.runs_started.inc();
    hub.refresh_status();
    info!(pid = pgid, worker_id = %spec.worker_id, "task run started");
    let (done, ended) = oneshot::channel();
    let task = TaskFinish {
        task_id: spec.task_id,
        done,
    };
    let timeout = Duration::from_secs(config.timeout_s);
    let supervisor = supervise(
        hub.clone(),
        project_id,
        run.clone(),
        child,
        timeout,
        Some(task),
    );
    hub.tracker.spawn(supervisor.instrument(span.clone()));
    Ok((run.id, ended))
}

/// Records a task run's end and hands it to the coordinator.
fn finish_task(
    hub: &Hub,
    project_id: &str,
    run: &ActiveRun,
    outcome: RunOutcome,
    task: TaskFinish,
    result_text: Option<String>,
) {
    if let Err(err) = hub.store.finish_run(&run.id, &outcome, now_ms()) {
        warn!(error = %ErrorChain(&err), "cannot record the run's end");
    }
    hub.append_hub_line(
        project_id,
        Some(&run.id),
        &serde_json::json!({"type": "run_finished", "run_id": run.id, "task_id": task.task_id,
                            "status": outcome.status, "exit_code": outcome.exit_code,
                            "reason": outcome.error, "total_cost_usd": outcome.cost_usd}),
    );
    hub.task_runs.map().remove(&run.id);
    hub.refresh_status();
    let _ = task.done.send(TaskRunEnd {
        run_id: run.id.clone(),
        status: outcome.status,
        reason: outcome.error,
        result_text,
        session_id: outcome.session_id,
        cost_usd: outcome.cost_usd,
        duration_ms: outcome.duration_ms,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn capped_lines_keep_long_lines_whole_and_cut_huge_ones() {
        let long = "x".repeat(200_000);
        let input = format!("short\r\n{long}\nlast-without-newline");
        let mut reader = BufReader::with_capacity(1024, input.as_bytes());
        let mut buf = Vec::new();
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1 << 20)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(buf, b"short\r");
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1 << 20)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(buf.len(), 200_000);
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1 << 20)
                .await
                .unwrap(),
            Some(0)
        );
        assert_eq!(buf, b"last-without-newline");
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1 << 20)
                .await
                .unwrap(),
            None
        );

        let input = format!("{long}\nnext\n");
        let mut reader = BufReader::with_capacity(1024, input.as_bytes());
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1000).await.unwrap(),
            Some(199_000)
        );
        assert_eq!(buf.len(), 1000);
        assert_eq!(
            read_capped_line(&mut reader, &mut buf, 1000).await.unwrap(),
            Some(0)
        );
        assert_eq!(buf, b"next");
    }

    #[test]
    fn args_follow_the_cli_reference() {
        assert_eq!(
            build_args("hi", Some("s1"), "acceptEdits", Some("sonnet")),
            [
                "-p",
                "hi",
                "--output-format",
                "stream-json",
                "--verbose",
                "--permission-mode",
                "acceptEdits",
                "--model",
                "sonnet",
                "--resume",
                "s1"
            ]
        );
        assert!(!build_args("hi", None, "plan", None).contains(&"--resume".to_string()));
    }

    #[test]
    fn configured_cli_must_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("claude");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        assert_eq!(find_cli(Some(&file)), None);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_cli(Some(&file)), Some(file));
    }
}
