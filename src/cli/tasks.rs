//! `task …` and `worker next`: the task queue for chats and scripts that run shell
//! commands rather than speak JSON-RPC (docs/coordination.md, "Task commands").
//!
//! Every command is one connection to the running hub, with the credentials of
//! [`Credentials::from_env_or_owner`]. `worker next` registers its connection as a
//! worker and keeps it (and so the task's lease) while the process lives; since only
//! that connection may answer `task.complete`, `task complete` and `task fail` finish a
//! task the documented other way, with its report file `reports/<id>.json`, which the
//! hub reads, records and announces like a worker's answer, and which revokes the task
//! from the waiting `worker next`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::client::{ClientError, HubClient};
use super::output::{print_json, print_table, text_or, write_stdout};
use super::projects::resolve_project;
use crate::config::{LoadedConfig, SecretStoreKind};
use crate::http::server::OWNER_CLIENT_ID;

/// The environment variable with a token to use instead of the owner token.
pub const TOKEN_ENV: &str = "SEMANTEST_HUB_TOKEN";
/// The environment variable with the id (`cl_…`) of the client token in [`TOKEN_ENV`];
/// absent or `owner` when that is the owner token.
pub const CLIENT_ID_ENV: &str = "SEMANTEST_HUB_CLIENT_ID";

/// How long `task complete` and `task fail` wait for the hub to read the report file.
const REPORT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `task …` subcommands.
#[derive(Subcommand)]
pub(super) enum TaskCommand {
    /// Queue tasks in a project from a JSON file, or `-` for stdin: an array of tasks or
    /// `{"tasks": [...]}`, each `{id?, title, type?, context?, prompt?, acceptance?,
    /// priority?}`. Ids that exist already are listed as existing, not created again.
    #[command(after_help = super::examples::TASK_CREATE)]
    Create {
        /// A project id, or a registered project's directory.
        project: String,
        /// The JSON file, or `-` for stdin.
        file: String,
        /// Print the hub's result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a project's tasks in creation order.
    #[command(after_help = super::examples::TASK_LIST)]
    List {
        /// A project id, or a registered project's directory.
        project: String,
        /// Only tasks in this state.
        #[arg(long, value_parser = ["pending", "running", "completed", "failed", "cancelled"])]
        state: Option<String>,
        /// Print the tasks as JSON (`{"tasks": [...]}`).
        #[arg(long)]
        json: bool,
        /// Print only the task ids, one per line.
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
    },
    /// Show one task: its state, worker, attempts and their reasons, its report, and
    /// for an isolated task its branch and diff.
    #[command(after_help = super::examples::TASK_SHOW)]
    Show {
        /// The task's id.
        id: String,
        /// Print the task as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a queued or running task (the worker holding it is told to stop).
    #[command(after_help = super::examples::TASK_CANCEL)]
    Cancel {
        /// The task's id.
        id: String,
        /// Print the hub's result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Merge an isolated task's branch into its base branch (fast-forward, else a merge
    /// commit); refused, changing nothing, when it would conflict or overwrite
    /// uncommitted changes.
    #[command(after_help = super::examples::TASK_MERGE)]
    Merge {
        /// The task's id.
        id: String,
        /// Print the hub's result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an isolated task's worktree and branch, unmerged.
    #[command(after_help = super::examples::TASK_DISCARD)]
    Discard {
        /// The task's id.
        id: String,
        /// Print the hub's result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print each change to a project's tasks as it happens, until every task has
    /// finished; exits at once when none is pending or running.
    #[command(after_help = super::examples::TASK_WATCH)]
    Watch {
        /// A project id, or a registered project's directory.
        project: String,
        /// One JSON object per line: `{"event": <notification>, ...params}`.
        #[arg(long)]
        json: bool,
    },
    /// Complete a task with a report: the report file `reports/ID.json` is written in
    /// the task's project, and the hub records it as the task's report.
    #[command(after_help = super::examples::TASK_COMPLETE)]
    Complete {
        /// The task's id.
        id: String,
        /// A JSON report (an object with `summary`, or any text), from a file or `-`
        /// for stdin. Default: a report saying only that the task is done.
        #[arg(long, value_name = "FILE")]
        report: Option<String>,
        /// Print the finished task as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fail the current attempt of a task: it goes back to the queue, or fails for good
    /// after its last attempt.
    #[command(after_help = super::examples::TASK_FAIL)]
    Fail {
        /// The task's id.
        id: String,
        /// Why, for the next attempt and the coordinator.
        #[arg(long)]
        reason: String,
        /// Print the task as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `worker …` subcommands.
#[derive(Subcommand)]
pub(super) enum WorkerCommand {
    /// Register as a worker and wait for a task; print it as one JSON line, then keep
    /// the task's lease while the process lives. Exits 0 once the task is finished
    /// (`task complete` or `task fail` from another shell), 1 when it is taken away
    /// (cancelled, or a lease lost). Ctrl-C gives the task back to the queue.
    #[command(after_help = super::examples::WORKER_NEXT)]
    Next(WorkerNext),
}

/// `worker next` options.
#[derive(Args)]
pub(super) struct WorkerNext {
    /// The worker's display name.
    #[arg(long)]
    name: String,
    /// A task type this worker takes; repeat for several. None: every type.
    #[arg(long = "capability", value_name = "TYPE")]
    capabilities: Vec<String>,
    /// Give up after this many seconds without a task (exit 3). Default: wait for ever.
    #[arg(long, value_name = "SECONDS")]
    wait: Option<u64>,
}

/// What a command uses to reach the running hub.
#[derive(Clone)]
pub(super) struct Credentials {
    /// `http://<IP>:<port>`, from the runtime file.
    pub(super) url: String,
    /// `owner` or `cl_…`.
    pub(super) client_id: String,
    /// The token.
    pub(super) token: String,
}

impl Credentials {
    /// The token in `SEMANTEST_HUB_TOKEN` (with `SEMANTEST_HUB_CLIENT_ID` naming a client
    /// token), else the owner token; the hub from the runtime file.
    ///
    /// # Errors
    /// No hub running, or no owner token.
    pub(super) async fn from_env_or_owner(
        loaded: &LoadedConfig,
        explicit_store: Option<SecretStoreKind>,
    ) -> Result<Self> {
        let url = super::running_hub_url(&loaded.data_dir)?;
        let from_env = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.trim().is_empty());
        let (client_id, token) = match from_env {
            Some(token) => (
                std::env::var(CLIENT_ID_ENV)
                    .ok()
                    .filter(|id| !id.trim().is_empty())
                    .unwrap_or_else(|| OWNER_CLIENT_ID.to_string()),
                token.trim().to_string(),
            ),
            None => (
                OWNER_CLIENT_ID.to_string(),
                super::owner_token(loaded, explicit_store).await?,
            ),
        };
        Ok(Self {
            url,
            client_id: client_id.trim().to_string(),
            token,
        })
    }

    /// A verified connection that said hello with `role`.
    ///
    /// # Errors
    /// As [`HubClient::connect_as`], and the hello's error.
    pub(super) async fn connect(&self, role: &str, name: &str) -> Result<HubClient, ClientError> {
        let mut client = HubClient::connect_as(&self.url, &self.client_id, &self.token).await?;
        client
            .request("hub.hello", json!({"role": role, "name": name}))
            .await?;
        Ok(client)
    }
}

/// The project id for `project`: a project id, or a registered directory. With a token
/// that may not list projects (no `projects:read`), `project` is taken as the id.
pub(super) async fn project_id_of(client: &mut HubClient, project: &str) -> Result<String> {
    match resolve_project(client, project).await {
        Ok(id) => Ok(id),
        Err(err) if is_kind(&err, "FORBIDDEN") => Ok(project.to_string()),
        Err(err) => Err(err),
    }
}

fn is_kind(err: &anyhow::Error, kind: &str) -> bool {
    matches!(err.downcast_ref::<ClientError>(), Some(ClientError::Rpc { kind: k, .. }) if k == kind)
}

/// Reads `source`, a file name or `-` for stdin, as text.
fn read_source(source: &str) -> Result<String> {
    if source == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")
    } else {
        std::fs::read_to_string(source).with_context(|| format!("cannot read {source}"))
    }
}

/// The tasks of a `task create` input: an array, or an object with `tasks`.
fn tasks_of(text: &str, source: &str) -> Result<Value> {
    let value: Value = serde_json::from_str(text)
        .with_context(|| format!("{source} is not JSON: expected an array of tasks"))?;
    match value {
        Value::Array(_) => Ok(value),
        Value::Object(mut object) if object.get("tasks").is_some_and(Value::is_array) => {
            Ok(object.remove("tasks").unwrap_or_default())
        }
        _ => bail!(
            "{source} must hold an array of tasks, or {{\"tasks\": [...]}}, each with at least a title"
        ),
    }
}

/// Every task of a project, all pages.
pub(super) async fn all_tasks(client: &mut HubClient, project_id: &str) -> Result<Vec<Value>> {
    let mut pages = crate::protocol::coordination::TaskPages::new(project_id);
    while let Some(params) = pages.next_params() {
        pages.add(&client.request("task.list", params).await?);
    }
    Ok(pages.into_tasks())
}

fn print_tasks(tasks: &[Value]) -> Result<()> {
    let rows: Vec<Vec<String>> = tasks
        .iter()
        .map(|task| {
            vec![
                text_or(task, "id", ""),
                text_or(task, "state", ""),
                text_or(task, "type", "-"),
                task["attempts"].as_u64().unwrap_or(0).to_string(),
                text_or(task, "worker_id", "-"),
                text_or(task, "title", ""),
            ]
        })
        .collect();
    print_table(
        &["ID", "STATE", "TYPE", "ATTEMPTS", "WORKER", "TITLE"],
        &rows,
    )
}

/// A JSON value on one line, or `-` for null.
fn compact(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn print_task(task: &Value) -> Result<()> {
    let rows = [
        ("id", text_or(task, "id", "")),
        ("project", text_or(task, "project_id", "")),
        ("title", text_or(task, "title", "")),
        ("state", text_or(task, "state", "")),
        ("type", text_or(task, "type", "-")),
        ("priority", compact(&task["priority"])),
        ("worker", text_or(task, "worker_id", "-")),
        ("attempts", compact(&task["attempts"])),
        ("by", text_or(task, "completed_by", "-")),
        ("created", text_or(task, "created_at", "")),
        ("updated", text_or(task, "updated_at", "")),
        ("prompt", compact(&task["prompt"])),
        ("context", compact(&task["context"])),
        ("accept", compact(&task["acceptance"])),
        ("report", compact(&task["report"])),
    ];
    for (key, value) in rows {
        outln!("{key:<9} {value}")?;
    }
    for failure in task["failures"].as_array().into_iter().flatten() {
        outln!(
            "failure   attempt {} by {} at {}: {}",
            compact(&failure["attempt"]),
            text_or(failure, "worker_id", "-"),
            text_or(failure, "at", "?"),
            text_or(failure, "reason", ""),
        )?;
    }
    Ok(())
}

/// `task …`.
pub(super) async fn task_command(creds: &Credentials, action: TaskCommand) -> Result<ExitCode> {
    let mut client = creds.connect("script", "semantest-hub CLI").await?;
    let code = match action {
        TaskCommand::Create {
            project,
            file,
            json,
        } => {
            let tasks = tasks_of(&read_source(&file)?, &file)?;
            let project_id = project_id_of(&mut client, &project).await?;
            let result = client
                .request(
                    "task.create",
                    json!({"project_id": project_id, "tasks": tasks}),
                )
                .await?;
            if json {
                print_json(&result)?;
            } else {
                for (label, key) in [("created", "created"), ("existing", "existing")] {
                    for id in result[key].as_array().into_iter().flatten() {
                        outln!("{label:<9} {}", id.as_str().unwrap_or_default())?;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        TaskCommand::List {
            project,
            state,
            json,
            quiet,
        } => {
            let project_id = project_id_of(&mut client, &project).await?;
            let mut tasks = all_tasks(&mut client, &project_id).await?;
            if let Some(state) = state {
                tasks.retain(|task| task["state"] == state.as_str());
            }
            if json {
                print_json(&json!({"tasks": tasks}))?;
            } else if quiet {
                for task in &tasks {
                    outln!("{}", text_or(task, "id", ""))?;
                }
            } else if tasks.is_empty() {
                errln!(
                    "no tasks; queue some with `semantest-hub task create {project} tasks.json`"
                );
            } else {
                print_tasks(&tasks)?;
            }
            ExitCode::SUCCESS
        }
        TaskCommand::Show { id, json } => {
            let task = client.request("task.get", json!({"task_id": id})).await?;
            if json {
                print_json(&task)?;
            } else {
                print_task(&task)?;
                super::worktrees::print_worktree(&task)?;
            }
            ExitCode::SUCCESS
        }
        TaskCommand::Merge { id, json } => {
            super::worktrees::merge_or_discard(&mut client, &id, true, json).await?;
            ExitCode::SUCCESS
        }
        TaskCommand::Discard { id, json } => {
            super::worktrees::merge_or_discard(&mut client, &id, false, json).await?;
            ExitCode::SUCCESS
        }
        TaskCommand::Cancel { id, json } => {
            let result = client
                .request("task.cancel", json!({"task_id": id}))
                .await?;
            if json {
                print_json(&result)?;
            } else if result["cancelled"] == true {
                outln!("cancelled {id}")?;
            } else {
                outln!(
                    "{id} had already finished: {}",
                    text_or(&result, "state", "?")
                )?;
            }
            ExitCode::SUCCESS
        }
        TaskCommand::Watch { project, json } => {
            let project_id = project_id_of(&mut client, &project).await?;
            watch(&mut client, &project_id, json).await?
        }
        TaskCommand::Complete { id, report, json } => {
            let report = match report {
                Some(source) => report_of(&read_source(&source)?),
                None => json!({"summary": "done"}),
            };
            finish(&mut client, &id, "completed", report, json).await?
        }
        TaskCommand::Fail { id, reason, json } => {
            if reason.trim().is_empty() {
                bail!("--reason must say why the attempt failed");
            }
            finish(&mut client, &id, "failed", json!({"summary": reason}), json).await?
        }
    };
    client.close().await;
    Ok(code)
}

/// A report from what the user gave: a JSON object as it is, anything else (other
/// JSON, or plain text) as its `summary`.
fn report_of(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Value::Object(object),
        Ok(Value::String(summary)) => json!({"summary": summary}),
        Ok(other) => json!({"summary": other.to_string()}),
        Err(_) => json!({"summary": text.trim()}),
    }
}

/// The report file's path for `task` (`<project>/reports/<id>.json`).
async fn report_path(client: &mut HubClient, task: &Value) -> Result<PathBuf> {
    let project_id = text_or(task, "project_id", "");
    let project = client
        .request("project.get", json!({"project_id": project_id}))
        .await
        .context("cannot find the task's project directory")?;
    let dir = project["path"]
        .as_str()
        .context("the hub sent no project path")?;
    Ok(Path::new(dir)
        .join("reports")
        .join(format!("{}.json", text_or(task, "id", ""))))
}

/// Writes the report file of task `id` with `status`, then waits until the hub has
/// read it: the task finished (or, for a failure, went back to the queue), or the hub
/// found the file invalid.
async fn finish(
    client: &mut HubClient,
    id: &str,
    status: &str,
    report: Value,
    json: bool,
) -> Result<ExitCode> {
    let task = client.request("task.get", json!({"task_id": id})).await?;
    let state = text_or(&task, "state", "");
    if matches!(state.as_str(), "completed" | "failed" | "cancelled") {
        bail!("task {id} has already finished: {state}");
    }
    // An observer gets the task.* notifications that say the file was read.
    client
        .request(
            "hub.hello",
            json!({"role": "coordinator", "name": "semantest-hub CLI"}),
        )
        .await?;
    let mut report = match report {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    report.insert("task_id".into(), json!(id));
    report.insert("status".into(), json!(status));
    // The hub reads a report file once per content; the attempt number makes the
    // report of each attempt new, so a task failed twice in a row is failed twice.
    let attempts = task["attempts"].as_u64().unwrap_or(0);
    report.insert("attempt".into(), json!(attempts + 1));
    report
        .entry("summary")
        .or_insert_with(|| json!(format!("{status} from the command line")));
    let path = report_path(client, &task).await?;
    write_report(&path, &Value::Object(report)).await?;
    let read = tokio::time::timeout(REPORT_READ_TIMEOUT, async {
        loop {
            let note = client.next_notification().await?;
            let params = &note["params"];
            if params["task_id"] != id {
                continue;
            }
            match note["method"].as_str().unwrap_or_default() {
                "task.report_invalid" => {
                    bail!(
                        "the hub refused {}: {}",
                        path.display(),
                        text_or(params, "reason", "invalid report")
                    )
                }
                "task.completed" | "task.failed" | "task.requeued" | "task.cancelled" => {
                    return Ok(());
                }
                _ => {}
            }
        }
    })
    .await;
    match read {
        Ok(result) => result?,
        Err(_) => {
            // No notification in time: the state itself may still say it was read.
            let now = client.request("task.get", json!({"task_id": id})).await?;
            if now["state"] == task["state"] && now["attempts"].as_u64() == Some(attempts) {
                bail!(
                    "wrote {} but the hub did not read it within {:?}",
                    path.display(),
                    REPORT_READ_TIMEOUT
                );
            }
        }
    }
    let now = client.request("task.get", json!({"task_id": id})).await?;
    if json {
        print_json(&now)?;
    } else {
        outln!("{id} {}", text_or(&now, "state", "?"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `report` to `path` as the hub expects report files: a temporary name
/// first, then a rename, so the watcher never reads half a file.
async fn write_report(path: &Path, report: &Value) -> Result<()> {
    let dir = path.parent().context("a report path has a folder")?;
    let text = serde_json::to_vec_pretty(report)?;
    let (dir, path) = (dir.to_path_buf(), path.to_path_buf());
    tokio::task::spawn_blocking(move || -> Result<()> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".report")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot write in {}", dir.display()))?;
        std::io::Write::write_all(&mut tmp, &text)?;
        tmp.persist(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    })
    .await?
}

/// The counts line of a `coordination.status`.
fn counts(status: &Value) -> String {
    format!(
        "{} tasks: {} pending, {} running, {} completed, {} failed, {} cancelled",
        compact(&status["total"]),
        compact(&status["pending"]),
        compact(&status["running"]),
        compact(&status["completed"]),
        compact(&status["failed"]),
        compact(&status["cancelled"]),
    )
}

fn batch_done(status: &Value) -> bool {
    status["pending"].as_u64() == Some(0) && status["running"].as_u64() == Some(0)
}

/// `task watch`: the status now, then each change, until the batch is done.
async fn watch(client: &mut HubClient, project_id: &str, json: bool) -> Result<ExitCode> {
    client
        .request(
            "hub.hello",
            json!({"role": "coordinator", "name": "semantest-hub task watch"}),
        )
        .await?;
    let status = client
        .request("coordination.status", json!({"project_id": project_id}))
        .await?;
    let show = |method: &str, params: &Value| -> Result<()> {
        if json {
            let mut line = json!({"event": method});
            if let (Some(out), Some(fields)) = (line.as_object_mut(), params.as_object()) {
                out.extend(fields.clone());
            }
            let mut text = serde_json::to_vec(&line)?;
            text.push(b'\n');
            write_stdout(&text)
        } else {
            let task = text_or(params, "task_id", "");
            let worker = text_or(params, "worker", "-");
            let text = match method {
                "coordination.status" => counts(params),
                "task.created" => format!(
                    "created   {}",
                    params["tasks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|t| text_or(t, "id", ""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "task.started" => format!(
                    "started   {task} by {} (attempt {})",
                    text_or(params, "worker_id", "-"),
                    compact(&params["attempt"])
                ),
                "task.completed" => format!(
                    "completed {task} by {worker}: {}",
                    summary(&params["report"])
                ),
                "task.requeued" => format!("requeued  {task}: {}", text_or(params, "reason", "")),
                "task.failed" => format!("failed    {task}: {}", text_or(params, "reason", "")),
                "task.cancelled" => format!("cancelled {task}"),
                "task.report_invalid" => format!(
                    "invalid report for {task}: {}",
                    text_or(params, "reason", "")
                ),
                "project.completed" => text_or(params, "message", "done"),
                _ => return Ok(()),
            };
            write_stdout(format!("{text}\n").as_bytes())
        }
    };
    show("coordination.status", &status)?;
    if batch_done(&status) {
        return Ok(ExitCode::SUCCESS);
    }
    let mut interrupt = super::interrupt()?;
    loop {
        let note = tokio::select! {
            note = client.next_notification() => note?,
            _ = interrupt.recv() => return Ok(ExitCode::from(130)),
        };
        let params = &note["params"];
        if params["project_id"] != project_id {
            continue;
        }
        let method = note["method"].as_str().unwrap_or_default();
        // Each change is followed by its status; the events say more.
        if method != "coordination.status" {
            show(method, params)?;
        }
        if method == "project.completed" {
            return Ok(ExitCode::SUCCESS);
        }
    }
}

/// A report's `summary`, or the report on one line.
fn summary(report: &Value) -> String {
    report["summary"]
        .as_str()
        .map_or_else(|| compact(report), str::to_string)
}

/// `worker next`.
pub(super) async fn worker_command(creds: &Credentials, action: WorkerCommand) -> Result<ExitCode> {
    let WorkerCommand::Next(options) = action;
    let mut client = creds.connect("worker", &options.name).await?;
    let registered = client
        .request(
            "worker.register",
            json!({"name": options.name, "capabilities": options.capabilities}),
        )
        .await?;
    let lease_s = registered["lease_s"].as_u64().unwrap_or(60).max(1);
    // A third of the lease, so two heartbeats may be late before it runs out.
    let mut beat = tokio::time::interval(Duration::from_millis(lease_s * 1000 / 3));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut interrupt = super::interrupt()?;
    let deadline = options
        .wait
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let no_task = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(no_task);
    let mut held: Option<String> = None;
    let code = loop {
        tokio::select! {
            note = client.next_notification() => {
                let note = note?;
                let params = &note["params"];
                match note["method"].as_str().unwrap_or_default() {
                    "task.assigned" if held.is_none() => {
                        held = Some(text_or(&params["task"], "id", ""));
                        let mut line = serde_json::to_vec(&params["task"])?;
                        line.push(b'\n');
                        write_stdout(&line)?;
                    }
                    "task.revoked" if held.as_deref() == params["task_id"].as_str() => {
                        let reason = text_or(params, "reason", "");
                        if reason.starts_with("completed by") || reason.starts_with("failed by") {
                            break ExitCode::SUCCESS;
                        }
                        errln!("task {} was taken away: {reason}", held.unwrap_or_default());
                        break ExitCode::FAILURE;
                    }
                    _ => {}
                }
            }
            _ = beat.tick() => {
                client.request("worker.heartbeat", json!({})).await?;
            }
            () = &mut no_task, if held.is_none() => {
                errln!("no task within {} s", options.wait.unwrap_or_default());
                break ExitCode::from(3);
            }
            _ = interrupt.recv() => break ExitCode::from(130),
        }
    };
    client.close().await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_an_array_or_an_object_with_tasks() {
        let array = tasks_of(r#"[{"title": "a"}]"#, "f").unwrap();
        assert_eq!(array, json!([{"title": "a"}]));
        let object = tasks_of(r#"{"tasks": [{"title": "a"}]}"#, "f").unwrap();
        assert_eq!(object, json!([{"title": "a"}]));
        for bad in [r#"{"title": "a"}"#, "3", "not json"] {
            assert!(tasks_of(bad, "f").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_report_is_an_object_or_becomes_its_summary() {
        assert_eq!(
            report_of(r#"{"summary": "s", "score": 1}"#),
            json!({"summary": "s", "score": 1})
        );
        assert_eq!(report_of("\"text\""), json!({"summary": "text"}));
        assert_eq!(
            report_of("plain words\n"),
            json!({"summary": "plain words"})
        );
    }
}
