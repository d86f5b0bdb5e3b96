//! The task queue as Model Context Protocol tools, so that an agent chat (Claude Code,
//! Codex, Gemini CLI, Cursor) runs a batch as a coordinator or a worker with no prompt
//! per task (docs/coordination.md, "Chats as coordinators and workers"). Built on the
//! official Rust SDK, `rmcp`, and served two ways: on stdio by `semantest-hub mcp`, a
//! client of the running hub ([`crate::cli`]), and at `/mcp` over Streamable HTTP by
//! the hub itself ([`crate::http`]). Both hand [`Coordination`] a [`Connector`] that
//! opens hub connections with the caller's rights; the tools know nothing else of the
//! transport.
//!
//! A session opens two connections on demand, each a [`link::Link`] actor: a worker
//! connection at `register_worker`, which keeps the lease of the task it holds with
//! heartbeats for as long as the session lives, and a coordinator connection at the
//! first coordinator tool, which receives the coordination notifications
//! `wait_for_tasks` waits on. A connection that broke (the hub restarted) is opened
//! again at the next tool call, registering the worker again. Over HTTP a session
//! stays with the credential that first used it.
//!
//! Tools answer with JSON (also as `structuredContent`). A failure is an MCP tool error
//! (`isError: true`) whose JSON has the hub's error `kind`, its `message` and a
//! `what_to_do` sentence for the model.

mod batch;
mod conn;
mod error;
mod link;
mod worktree;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, Extensions, Implementation, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::{Value, json};

pub use conn::{BoxFuture, Caller, Conn, ConnError, Connector};
use error::{ToolError, answer};
use link::Link;

/// The loop, in three lines, sent as the server's instructions at `initialize`.
pub const INSTRUCTIONS: &str = "\
Workers: call register_worker once, then loop: next_task, do the task, complete_task (or fail_task if you cannot), next_task again; stop only when next_task says the batch is finished.
Coordinators: call create_tasks once with the whole batch, then call wait_for_tasks again and again (it returns finished tasks with their reports) until it says the batch is finished; task_status and cancel_task when needed; a task that ran in its own git worktree comes with its diff summary: review it (task_diff), then merge_task or discard_task.
Never stop to ask the user between tasks: the hub hands out the tasks, and keeps your lease while you work.";

/// The longest `wait_s` a tool accepts, in seconds.
const MAX_WAIT_S: u64 = 3600;
/// `wait_s` when the model gives none: under the 60 s tool timeout some clients have.
const DEFAULT_WAIT_S: u64 = 50;

/// The MCP server's state: how to reach the hub, and the two connections.
#[derive(Clone)]
pub struct Coordination {
    connector: Arc<dyn Connector>,
    /// Over HTTP, the credential this session belongs to (see [`Coordination::admit`]).
    caller: Arc<std::sync::Mutex<Option<Caller>>>,
    worker: Arc<tokio::sync::Mutex<Option<WorkerLink>>>,
    coordinator: Arc<tokio::sync::Mutex<Option<Link>>>,
    /// Per project, the ids of finished tasks `wait_for_tasks` has returned already.
    reported: Arc<std::sync::Mutex<HashMap<String, HashSet<String>>>>,
    tool_router: ToolRouter<Self>,
}

#[derive(Clone)]
struct WorkerLink {
    link: Link,
    name: String,
    capabilities: Vec<String>,
    /// The MCP client's name and version, from `initialize`.
    agent: Option<String>,
}

/// `register_worker` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct RegisterWorker {
    /// A short name for this worker, shown to the coordinator and the user, e.g. `claude-1`.
    name: String,
    /// Task types this worker takes, e.g. ["code", "docs"]. Leave empty to take every type.
    #[serde(default)]
    capabilities: Vec<String>,
}

/// `next_task` arguments.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub(crate) struct NextTask {
    /// How long to wait for a task, in seconds (1 to 3600, default 50). When it returns
    /// with no task and the batch is not finished, call next_task again.
    wait_s: Option<u64>,
}

/// `complete_task` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CompleteTask {
    /// The id of the task you finished, from next_task.
    task_id: String,
    /// Your report: an object with at least `summary` (what you did, in a few sentences);
    /// `deliverables` (the files you changed or created) and any other fields are kept.
    report: serde_json::Map<String, Value>,
}

/// `fail_task` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct FailTask {
    /// The id of the task you could not do, from next_task.
    task_id: String,
    /// Why, in a sentence or two, for the next attempt and the coordinator.
    reason: String,
}

/// One task of `create_tasks`.
#[derive(Debug, Deserialize, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct NewTask {
    /// Optional id: letters, digits, `.`, `_`, `-` (up to 128, not starting with `.`).
    /// Leave it out to get a generated one. A batch created again with the same ids
    /// creates nothing twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    /// A one-line title (up to 500 characters).
    title: String,
    /// The instructions for the worker: what to do, precisely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    /// Background the worker needs: files, decisions, constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    context: Option<String>,
    /// How the worker knows it is done, e.g. ["cargo test passes"].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acceptance: Option<Vec<String>>,
    /// A task type; only workers with this capability (or with none) take it.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    /// Higher runs first; default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    priority: Option<i64>,
}

/// `create_tasks` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CreateTasks {
    /// The project: its id, or its registered directory (absolute path).
    project: String,
    /// The tasks, in the order they should start.
    tasks: Vec<NewTask>,
}

/// A project argument.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct ProjectArg {
    /// The project: its id, or its registered directory (absolute path).
    project: String,
}

/// `wait_for_tasks` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct WaitForTasks {
    /// The project: its id, or its registered directory (absolute path).
    project: String,
    /// How long to wait for a task to finish, in seconds (1 to 3600, default 50).
    wait_s: Option<u64>,
}

/// `cancel_task` arguments.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub(crate) struct CancelTask {
    /// The id of the task to cancel.
    task_id: String,
}

fn wait_of(wait_s: Option<u64>) -> Duration {
    Duration::from_secs(wait_s.unwrap_or(DEFAULT_WAIT_S).clamp(1, MAX_WAIT_S))
}

fn is_final(task: &Value) -> bool {
    matches!(
        task["state"].as_str(),
        Some("completed" | "failed" | "cancelled")
    )
}

/// The fields of a finished task a coordinator acts on.
fn finished_view(task: &Value) -> Value {
    json!({
        "id": task["id"], "title": task["title"], "state": task["state"],
        "worker_id": task["worker_id"], "completed_by": task["completed_by"],
        "report": task["report"], "failures": task["failures"],
    })
}

fn counts(tasks: &[Value]) -> Value {
    let count = |state: &str| tasks.iter().filter(|t| t["state"] == state).count();
    json!({
        "total": tasks.len(), "pending": count("pending"), "running": count("running"),
        "completed": count("completed"), "failed": count("failed"), "cancelled": count("cancelled"),
    })
}

#[tool_router]
impl Coordination {
    /// A session's tools, opening hub connections through `connector`.
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Self {
            connector,
            caller: Arc::default(),
            worker: Arc::default(),
            coordinator: Arc::default(),
            reported: Arc::default(),
            tool_router: Self::tool_router() + Self::worktree_router(),
        }
    }

    /// A new connection to the hub, greeted with `role`, with the session's rights.
    async fn connect(&self, role: &str, name: &str) -> Result<Box<dyn Conn>, ToolError> {
        let caller = self
            .caller
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        Ok(self.connector.connect(caller.as_ref(), role, name).await?)
    }

    /// Over HTTP, binds the session to the credential of its first tool call and
    /// refuses any other: a session id that leaks gives nothing to another token.
    /// Over stdio (no HTTP request) there is nothing to check.
    fn admit(&self, extensions: &Extensions) -> Result<(), ToolError> {
        let Some(parts) = extensions.get::<axum::http::request::Parts>() else {
            return Ok(());
        };
        let Some(caller) = parts.extensions.get::<Caller>() else {
            return Err(ToolError::new(
                "UNAUTHORIZED",
                "the request carried no credential",
                "Configure the MCP client with the hub token in an Authorization: Bearer header.",
            ));
        };
        let mut bound = self
            .caller
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match bound.as_ref() {
            Some(first) if first.key != caller.key => Err(ToolError::new(
                "UNAUTHORIZED",
                "this MCP session belongs to another token",
                "Start a new MCP session (initialize again) with your own token.",
            )),
            _ => {
                *bound = Some(caller.clone());
                Ok(())
            }
        }
    }

    /// The coordinator connection, opened on first use or after it broke.
    async fn coordinator(&self) -> Result<Link, ToolError> {
        let mut slot = self.coordinator.lock().await;
        if let Some(link) = slot.as_ref().filter(|link| !link.is_closed()) {
            return Ok(link.clone());
        }
        let client = self.connect("coordinator", "MCP coordinator").await?;
        let link = Link::start(client);
        *slot = Some(link.clone());
        Ok(link)
    }

    /// Opens a worker connection and registers it.
    async fn open_worker(
        &self,
        name: &str,
        capabilities: &[String],
        agent: Option<&str>,
    ) -> Result<WorkerLink, ToolError> {
        let client = self.connect("worker", name).await?;
        let link = Link::start(client);
        let registered = link
            .request("worker.register", registration(name, capabilities, agent))
            .await?;
        let lease_s = registered["lease_s"].as_u64().unwrap_or(60).max(1);
        // A third of the lease, so two heartbeats may be late before it runs out.
        link.keep_lease(Duration::from_millis(lease_s * 1000 / 3))
            .await;
        Ok(WorkerLink {
            link,
            name: name.to_string(),
            capabilities: capabilities.to_vec(),
            agent: agent.map(str::to_string),
        })
    }

    /// The worker connection, registered again if it broke.
    async fn worker(&self) -> Result<Link, ToolError> {
        let mut slot = self.worker.lock().await;
        let Some(worker) = slot.as_ref() else {
            return Err(ToolError::new(
                "NOT_A_WORKER",
                "this session has not registered as a worker",
                "Call register_worker first, then next_task.",
            ));
        };
        if !worker.link.is_closed() {
            return Ok(worker.link.clone());
        }
        let again = self
            .open_worker(&worker.name, &worker.capabilities, worker.agent.as_deref())
            .await?;
        let link = again.link.clone();
        *slot = Some(again);
        Ok(link)
    }

    /// A project id from an id or a registered directory; a token that may not list
    /// projects passes `project` on as the id.
    async fn project_id(&self, link: &Link, project: &str) -> Result<String, ToolError> {
        let project = project.trim();
        if !project.starts_with('/') {
            return Ok(project.to_string());
        }
        let list = link.request("project.list", json!({})).await?;
        let canonical = tokio::fs::canonicalize(project).await.ok();
        list["projects"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| {
                p["path"] == project
                    || canonical
                        .as_deref()
                        .and_then(|c| c.to_str())
                        .is_some_and(|c| p["path"] == c)
            })
            .and_then(|p| p["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                ToolError::new(
                    "PROJECT_NOT_FOUND",
                    format!("no project is registered at {project}"),
                    "Ask the user to register the directory with `semantest-hub project add DIR`, or pass the project id.",
                )
            })
    }

    async fn all_tasks(&self, link: &Link, project_id: &str) -> Result<Vec<Value>, ToolError> {
        let mut pages = crate::protocol::coordination::TaskPages::new(project_id);
        while let Some(params) = pages.next_params() {
            pages.add(&link.request("task.list", params).await?);
        }
        Ok(pages.into_tasks())
    }

    /// The task as a worker needs it, with where its report file would go.
    async fn hand_out(&self, link: &Link, task: &Value, revoked: Vec<Value>) -> Value {
        let id = task["id"].as_str().unwrap_or_default();
        let report_file = match link
            .request("project.get", json!({"project_id": task["project_id"]}))
            .await
        {
            Ok(project) => format!(
                "{}/reports/{id}.json",
                project["path"].as_str().unwrap_or(".")
            ),
            Err(_) => format!("reports/{id}.json in the project directory"),
        };
        let mut answer = json!({
            "task": {
                "id": task["id"], "project_id": task["project_id"], "title": task["title"],
                "type": task["type"], "context": task["context"], "prompt": task["prompt"],
                "acceptance": task["acceptance"], "attempts": task["attempts"],
                "failures": task["failures"], "report_file": report_file,
            },
            "batch_finished": false,
            "what_to_do": format!("Do task {id} now, in the project directory. When it is done, call complete_task with task_id {id:?} and a report {{summary, deliverables}}; if you cannot do it, call fail_task with the reason. Then call next_task again. The hub keeps your lease while you work."),
        });
        if !revoked.is_empty() {
            answer["taken_away"] = json!(revoked);
        }
        answer
    }

    async fn next(&self, wait: Duration) -> Result<Value, ToolError> {
        let link = self.worker().await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = link.changes();
        loop {
            changes.borrow_and_update();
            let (task, projects, revoked, closed) = {
                let mut inbox = link.inbox();
                let revoked = std::mem::take(&mut inbox.revoked);
                if let Some(held) = inbox.held.clone() {
                    (Some(held), Default::default(), revoked, None)
                } else if let Some(task) = inbox.assigned.pop_front() {
                    inbox.held = Some(task.clone());
                    (Some(task), Default::default(), revoked, None)
                } else {
                    if inbox.projects.is_empty()
                        && let Some(done) = inbox.batch_done.take()
                        && let Some(project) = done["project_id"].as_str()
                    {
                        inbox.projects.insert(project.to_string());
                    }
                    (None, inbox.projects.clone(), revoked, inbox.closed.clone())
                }
            };
            if let Some(task) = task {
                return Ok(self.hand_out(&link, &task, revoked).await);
            }
            if closed.is_none()
                && !projects.is_empty()
                && let Some(batches) = batch::finished(&link, &projects).await?
            {
                return Ok(json!({
                    "task": null, "batch_finished": true, "batch": batches.last(),
                    "batches": batches, "taken_away": revoked,
                    "what_to_do": "The batch is finished: stop here and tell the user it is done.",
                }));
            }
            if let Some(reason) = closed {
                return Err(ConnError::Unavailable(reason).into());
            }
            if !revoked.is_empty() {
                return Ok(json!({
                    "task": null, "batch_finished": false, "taken_away": revoked,
                    "what_to_do": "Stop working on the task taken away (see taken_away.reason) and call next_task again.",
                }));
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return Ok(json!({
                    "task": null, "batch_finished": false,
                    "what_to_do": "No task yet. Call next_task again right away to keep waiting.",
                }));
            }
        }
    }

    async fn wait_finished(&self, project: &str, wait: Duration) -> Result<Value, ToolError> {
        let link = self.coordinator().await?;
        let project_id = self.project_id(&link, project).await?;
        let deadline = tokio::time::Instant::now() + wait;
        let mut changes = link.changes();
        loop {
            changes.borrow_and_update();
            let tasks = self.all_tasks(&link, &project_id).await?;
            let fresh: Vec<Value> = {
                let mut reported = self
                    .reported
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let seen = reported.entry(project_id.clone()).or_default();
                tasks
                    .iter()
                    .filter(|task| is_final(task))
                    .filter(|task| seen.insert(task["id"].as_str().unwrap_or_default().into()))
                    .map(finished_view)
                    .collect()
            };
            let mut fresh = fresh;
            let mut diffs = worktree::summaries(&link, &fresh.iter().collect::<Vec<_>>()).await;
            for task in &mut fresh {
                if let Some(diff) = task["id"].as_str().and_then(|id| diffs.remove(id)) {
                    task["worktree"] = diff;
                }
            }
            let done = !tasks.is_empty() && tasks.iter().all(is_final);
            let timed_out = tokio::time::Instant::now() >= deadline;
            if !fresh.is_empty() || done || timed_out {
                let what_to_do = if done {
                    "The batch is finished: read the reports and tell the user the outcome."
                } else if fresh.is_empty() {
                    "Nothing finished yet. Call wait_for_tasks again."
                } else {
                    "Read these reports (create follow-up tasks if one needs it), then call wait_for_tasks again."
                };
                return Ok(json!({
                    "project_id": project_id, "finished": fresh, "counts": counts(&tasks),
                    "batch_finished": done, "what_to_do": what_to_do,
                }));
            }
            if let Some(reason) = link.inbox().closed.clone() {
                return Err(ConnError::Unavailable(reason).into());
            }
            let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
        }
    }

    /// Registers this chat session as a worker of the hub's task queue: call it once,
    /// before next_task. Tasks are then pushed to you one at a time.
    #[tool(
        description = "Register this session as a worker of the Semantest Hub task queue. Call it once, first, with a short name; then call next_task. capabilities limits the task types you take (empty: all)."
    )]
    async fn register_worker(
        &self,
        Parameters(args): Parameters<RegisterWorker>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&context.extensions) {
            return err.into_result();
        }
        let agent = agent_of(&context);
        let result = async {
            let mut slot = self.worker.lock().await;
            match slot.as_mut().filter(|worker| !worker.link.is_closed()) {
                // Again on the same connection: the hub keeps the worker's id and the
                // task it holds, and takes the new name and capabilities.
                Some(worker) => {
                    worker
                        .link
                        .request(
                            "worker.register",
                            registration(&args.name, &args.capabilities, agent.as_deref()),
                        )
                        .await?;
                    worker.name.clone_from(&args.name);
                    worker.capabilities.clone_from(&args.capabilities);
                    worker.agent.clone_from(&agent);
                }
                None => {
                    *slot = Some(
                        self.open_worker(&args.name, &args.capabilities, agent.as_deref())
                            .await?,
                    );
                }
            }
            Ok(json!({
                "registered": true, "name": args.name, "capabilities": args.capabilities,
                "what_to_do": "Call next_task now, and again after each complete_task or fail_task, until it says the batch is finished.",
            }))
        }
        .await;
        answer(result)
    }

    /// Waits until the hub gives this worker a task.
    #[tool(
        description = "Wait for your next task (blocks up to wait_s seconds) and return it: id, title, prompt, context, acceptance criteria and report_file. Do the task, then call complete_task or fail_task, then next_task again. If it returns task null with batch_finished false, call it again; if batch_finished is true, stop. Your lease is kept while you work."
    )]
    async fn next_task(
        &self,
        Parameters(args): Parameters<NextTask>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        answer(self.next(wait_of(args.wait_s)).await)
    }

    /// Completes the task this worker holds.
    #[tool(
        description = "Report that you finished a task from next_task: task_id and a report object with a summary of what you did and the deliverables (files changed). Then call next_task for the next one."
    )]
    async fn complete_task(
        &self,
        Parameters(args): Parameters<CompleteTask>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        answer(
            self.finish(
                "task.complete",
                &args.task_id,
                json!({"task_id": args.task_id, "report": args.report}),
            )
            .await,
        )
    }

    /// Fails the attempt of the task this worker holds.
    #[tool(
        description = "Give a task back because you cannot do it: task_id and the reason. It is retried (by you or another worker) until its attempts run out. Then call next_task."
    )]
    async fn fail_task(
        &self,
        Parameters(args): Parameters<FailTask>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        answer(
            self.finish(
                "task.fail",
                &args.task_id,
                json!({"task_id": args.task_id, "reason": args.reason}),
            )
            .await,
        )
    }

    /// Queues a batch of tasks in a project.
    #[tool(
        description = "Coordinator: queue a batch of tasks in a project (its id or registered directory). Each task needs a title and should have a prompt with precise instructions, context and acceptance criteria; give ids to make the call safe to repeat. Worker sessions and the hub's agent workers take them. Then call wait_for_tasks until the batch is finished."
    )]
    async fn create_tasks(
        &self,
        Parameters(args): Parameters<CreateTasks>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            let project_id = self.project_id(&link, &args.project).await?;
            let created = link
                .request(
                    "task.create",
                    json!({"project_id": project_id, "tasks": args.tasks}),
                )
                .await?;
            Ok(json!({
                "project_id": project_id, "created": created["created"], "existing": created["existing"],
                "what_to_do": "Call wait_for_tasks with this project now, and again after each answer, until batch_finished is true.",
            }))
        }
        .await;
        answer(result)
    }

    /// A project's tasks and workers now.
    #[tool(
        description = "Coordinator: the state of a project's batch now: counts by state, each task (id, title, state, worker, attempts; for a finished task that ran in its own git worktree, `worktree`: its branch, files changed, lines added and removed) and the workers serving it. Does not wait; to follow progress use wait_for_tasks."
    )]
    async fn task_status(
        &self,
        Parameters(args): Parameters<ProjectArg>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            let project_id = self.project_id(&link, &args.project).await?;
            let status = link
                .request("coordination.status", json!({"project_id": project_id}))
                .await?;
            let tasks = self.all_tasks(&link, &project_id).await?;
            let finished: Vec<&Value> = tasks.iter().filter(|t| is_final(t)).collect();
            let mut diffs = worktree::summaries(&link, &finished).await;
            let tasks: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let mut view = json!({"id": t["id"], "title": t["title"], "state": t["state"],
                           "worker_id": t["worker_id"], "attempts": t["attempts"]});
                    if let Some(diff) = t["id"].as_str().and_then(|id| diffs.remove(id)) {
                        view["worktree"] = diff;
                    }
                    view
                })
                .collect();
            Ok(json!({
                "project_id": project_id, "counts": counts_of(&status), "tasks": tasks,
                "workers": status["workers"], "agent_workers": status["agent_workers"],
            }))
        }
        .await;
        answer(result)
    }

    /// Waits for tasks to finish and returns them with their reports.
    #[tool(
        description = "Coordinator: wait (up to wait_s seconds) until tasks of the project finish, and return those finished since your last call, with their reports (or failure reasons), plus the counts. A task that ran in its own git worktree also has `worktree`: its branch, files changed, lines added and removed; read the change with task_diff, then merge_task or discard_task. Call it again after each answer until batch_finished is true."
    )]
    async fn wait_for_tasks(
        &self,
        Parameters(args): Parameters<WaitForTasks>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        answer(
            self.wait_finished(&args.project, wait_of(args.wait_s))
                .await,
        )
    }

    /// Cancels a queued or running task.
    #[tool(
        description = "Coordinator: cancel a queued or running task by id; a worker holding it is told to stop. A finished task stays as it is (cancelled: false)."
    )]
    async fn cancel_task(
        &self,
        Parameters(args): Parameters<CancelTask>,
        extensions: Extensions,
    ) -> CallToolResult {
        if let Err(err) = self.admit(&extensions) {
            return err.into_result();
        }
        let result = async {
            let link = self.coordinator().await?;
            Ok(link
                .request("task.cancel", json!({"task_id": args.task_id}))
                .await?)
        }
        .await;
        answer(result)
    }
}

impl Coordination {
    /// Sends `task.complete` or `task.fail` for the task this worker holds, lets the task
    /// go and says what to do next.
    async fn finish(&self, method: &str, task_id: &str, params: Value) -> Result<Value, ToolError> {
        let link = self.worker().await?;
        let done = link.request(method, params).await?;
        self.drop_held(&link, task_id);
        Ok(json!({
            "task_id": task_id, "state": done["state"], "duplicate": done["duplicate"],
            "what_to_do": "Call next_task now.",
        }))
    }

    fn drop_held(&self, link: &Link, task_id: &str) {
        let mut inbox = link.inbox();
        if inbox.held.as_ref().is_some_and(|t| t["id"] == task_id) {
            inbox.held = None;
        }
    }
}

/// `worker.register` params of an MCP worker: `via: "mcp"`, and the chat program.
fn registration(name: &str, capabilities: &[String], agent: Option<&str>) -> Value {
    json!({"name": name, "capabilities": capabilities, "via": "mcp", "agent": agent})
}

/// The MCP client's name and version from its `initialize` (`clientInfo`), e.g.
/// `claude-code 2.0.14`, cut to the 100 characters `worker.register` takes.
fn agent_of(context: &RequestContext<RoleServer>) -> Option<String> {
    let info = context.peer.peer_info()?;
    let client = &info.client_info;
    let text = format!("{} {}", client.name.trim(), client.version.trim());
    let text = text.trim();
    (!text.is_empty()).then(|| text.chars().take(100).collect())
}

fn counts_of(status: &Value) -> Value {
    json!({
        "total": status["total"], "pending": status["pending"], "running": status["running"],
        "completed": status["completed"], "failed": status["failed"], "cancelled": status["cancelled"],
    })
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Coordination {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "semantest-hub",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    /// Up to 2025-11-25: from 2026-07-28 on, MCP has no sessions (SEP-2567), and a
    /// worker's registration and held task live in its session.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25))
    }
}
