//! The coordinator's wire types: tasks, workers, reports and their notifications.
//!
//! Data only, like the rest of [`crate::protocol`]; the behaviour is in
//! `crate::coordinator` and the reference with examples in `docs/coordination.md`.
//! Golden tests below pin the shapes a coordinator, a worker and the dashboard rely on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::ids::{TaskId, WorkerId};

mod notifications;
pub use notifications::*;

/// Method and notification names of the coordinator.
pub mod method {
    /// Request: register this connection as a worker → `{worker_id}`.
    pub const WORKER_REGISTER: &str = "worker.register";
    /// Request: renew the lease of the worker's task.
    pub const WORKER_HEARTBEAT: &str = "worker.heartbeat";
    /// Request: the workers the hub knows (connected clients and agent workers).
    pub const WORKER_LIST: &str = "worker.list";
    /// Request: queue tasks in a project, idempotently by task id.
    pub const TASK_CREATE: &str = "task.create";
    /// Request: a project's tasks, by queue order.
    pub const TASK_LIST: &str = "task.list";
    /// Request: one task.
    pub const TASK_GET: &str = "task.get";
    /// Request: cancel a task that has not finished.
    pub const TASK_CANCEL: &str = "task.cancel";
    /// Request (worker): the task is done, with a report.
    pub const TASK_COMPLETE: &str = "task.complete";
    /// Request (worker): this attempt at the task failed.
    pub const TASK_FAIL: &str = "task.fail";
    /// Request: merge a task's worktree branch into its base branch.
    pub const TASK_MERGE: &str = "task.merge";
    /// Request: remove a task's worktree and branch unmerged.
    pub const TASK_DISCARD: &str = "task.discard";
    /// Request: set how many built-in agent workers a project runs, and its isolation.
    pub const PROJECT_CONFIGURE: &str = "project.configure";
    /// Request and notification: a project's counts and workers.
    pub const COORDINATION_STATUS: &str = "coordination.status";

    /// Notification (to the worker): a task to execute.
    pub const TASK_ASSIGNED: &str = "task.assigned";
    /// Notification (to coordinators and dashboards): tasks were queued; params
    /// `{project_id, tasks: [TaskView]}`.
    pub const TASK_CREATED: &str = "task.created";
    /// Notification (to coordinators and dashboards): a worker took a task; params
    /// `{project_id, task_id, worker_id, attempt}` (attempt counts from 1).
    pub const TASK_STARTED: &str = "task.started";
    /// Notification (to the worker): the assignment ended without the worker's doing
    /// (cancelled, lease expired, completed by a report file).
    pub const TASK_REVOKED: &str = "task.revoked";
    /// Notification: a task completed.
    pub const TASK_COMPLETED: &str = "task.completed";
    /// Notification: a task failed for good, after its last attempt.
    pub const TASK_FAILED: &str = "task.failed";
    /// Notification: an attempt failed and the task went back to the queue.
    pub const TASK_REQUEUED: &str = "task.requeued";
    /// Notification: a task was cancelled.
    pub const TASK_CANCELLED: &str = "task.cancelled";
    /// Notification: a report file could not be used; the task is left as it was.
    pub const TASK_REPORT_INVALID: &str = "task.report_invalid";
    /// Notification: a report file names no task of its project; it is left alone.
    pub const TASK_REPORT_UNKNOWN: &str = "task.report_unknown";
    /// Notification: a worker appeared, changed status or went offline.
    pub const WORKER_STATUS: &str = "worker.status";
    /// Notification: every task of a project has finished.
    pub const PROJECT_COMPLETED: &str = "project.completed";
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// In the queue.
    Pending,
    /// Assigned to a worker, under a lease.
    Running,
    /// Done; final.
    Completed,
    /// Every attempt failed; final.
    Failed,
    /// Cancelled by a client; final.
    Cancelled,
}

stored_names!(TaskState, "task state", {
    Pending => "pending", Running => "running", Completed => "completed",
    Failed => "failed", Cancelled => "cancelled",
});

impl TaskState {
    /// Whether the state is final.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// What completed a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompletedBy {
    /// A worker's `task.complete`.
    Worker,
    /// A `reports/<task-id>.json` file.
    Report,
    /// The result of a built-in agent worker's run.
    Agent,
}

stored_names!(CompletedBy, "completion source", { Worker => "worker", Report => "report", Agent => "agent" });

/// A worker's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Waiting for a task.
    Idle,
    /// Executing a task.
    Working,
    /// Disconnected, or unresponsive since its lease expired (it comes back with its next
    /// request), or an agent worker whose run could not start.
    Offline,
}

stored_names!(WorkerStatus, "worker status", { Idle => "idle", Working => "working", Offline => "offline" });

/// What kind of worker it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerKind {
    /// A connected client that called `worker.register`.
    Client,
    /// An agent run the hub starts itself (`project.configure {agent_workers}`).
    Agent,
}

stored_names!(WorkerKind, "worker kind", { Client => "client", Agent => "agent" });

/// How a client worker reaches the hub, as it says in `worker.register` (`via`): the
/// dashboard tells a chat over MCP from a program on the WebSocket by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerVia {
    /// A program speaking the JSON-RPC protocol on `/ws` (the default).
    #[default]
    Websocket,
    /// A chat's MCP tools (`semantest-hub mcp`, or `/mcp`).
    Mcp,
}

/// What runs a client worker, as it said in `worker.register`. Self-declared, for display
/// only: like the name, it grants nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerClient {
    /// How it reaches the hub.
    pub via: WorkerVia,
    /// The program behind it, e.g. `claude-code 2.0.14` (an MCP client's name and
    /// version), at most 100 characters.
    pub agent: Option<String>,
}

/// One task of `task.create`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The task id: 1 to 128 characters from `A-Z a-z 0-9 . _ -`, not starting with `.`
    /// (it names the report file). Generated (UUID v7) when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// A one-line title, 1 to 500 characters.
    pub title: String,
    /// The task type, matched against workers' capabilities.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Background for the worker: a string, or any JSON value.
    #[serde(default)]
    pub context: Option<Value>,
    /// Instructions for the worker.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Acceptance criteria: a string, a list of strings, or any JSON value.
    #[serde(default)]
    pub acceptance: Option<Value>,
    /// Higher runs first; FIFO within a priority. Default 0.
    #[serde(default)]
    pub priority: i64,
    /// The agent an agent worker runs it with (`claude`, `codex`, `gemini`); the
    /// project's when absent.
    #[serde(default)]
    pub agent: Option<crate::protocol::agents::AgentKind>,
}

/// `task.create` params.
#[derive(Debug, Deserialize)]
pub struct TaskCreateParams {
    /// The project.
    pub project_id: String,
    /// 1 to 10,000 tasks.
    pub tasks: Vec<NewTask>,
}

/// `task.list` params.
#[derive(Debug, Deserialize)]
pub struct TaskListParams {
    /// The project.
    pub project_id: String,
    /// Only tasks in this state.
    #[serde(default)]
    pub state: Option<TaskState>,
    /// Only tasks created after this one (its `seq`), for paging.
    #[serde(default)]
    pub after_seq: Option<i64>,
    /// Page size, 1..=10000, default 1000.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// The largest `task.list` page (`limit`).
pub const TASK_LIST_MAX: u32 = 10_000;

/// The client side of `task.list` paging, shared by the CLI and the MCP server: every
/// task of a project, in creation order, read in pages of [`TASK_LIST_MAX`], each next
/// page after the last `seq` seen, until `has_more` is false. It does no I/O:
///
/// ```ignore
/// let mut pages = TaskPages::new(project_id);
/// while let Some(params) = pages.next_params() {
///     pages.add(&client.request("task.list", params).await?);
/// }
/// let tasks = pages.into_tasks();
/// ```
#[derive(Debug)]
pub struct TaskPages {
    project_id: String,
    after_seq: u64,
    tasks: Vec<Value>,
    done: bool,
}

impl TaskPages {
    /// Paging through `project_id`'s tasks from the first.
    pub fn new(project_id: &str) -> Self {
        Self {
            project_id: project_id.to_string(),
            after_seq: 0,
            tasks: Vec::new(),
            done: false,
        }
    }

    /// The params of the next `task.list`, or `None` once the last page is in.
    pub fn next_params(&self) -> Option<Value> {
        (!self.done).then(|| {
            serde_json::json!({
                "project_id": self.project_id,
                "after_seq": self.after_seq,
                "limit": TASK_LIST_MAX,
            })
        })
    }

    /// Takes in a `task.list` result (`{tasks, has_more}`).
    pub fn add(&mut self, page: &Value) {
        let items = page["tasks"].as_array().cloned().unwrap_or_default();
        self.after_seq = items
            .last()
            .and_then(|task| task["seq"].as_u64())
            .unwrap_or(self.after_seq);
        self.tasks.extend(items);
        self.done = page["has_more"] != true;
    }

    /// The tasks read.
    pub fn into_tasks(self) -> Vec<Value> {
        self.tasks
    }
}

/// Params naming one task: `task.get`, `task.cancel`.
#[derive(Debug, Deserialize)]
pub struct TaskRef {
    /// The task id.
    pub task_id: TaskId,
}

/// `task.complete` params.
#[derive(Debug, Deserialize)]
pub struct TaskCompleteParams {
    /// The task id.
    pub task_id: TaskId,
    /// The worker's report: any JSON value, conventionally the report file's shape
    /// ([`ReportFile`]).
    #[serde(default)]
    pub report: Value,
}

/// `task.fail` params.
#[derive(Debug, Deserialize)]
pub struct TaskFailParams {
    /// The task id.
    pub task_id: TaskId,
    /// Why this attempt failed; kept in the task's `failures`.
    pub reason: String,
}

/// `worker.register` params.
#[derive(Debug, Deserialize)]
pub struct WorkerRegisterParams {
    /// A display name, 1 to 100 characters.
    pub name: String,
    /// Task types this worker takes; empty (the default) takes every type.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// How it reaches the hub: `websocket` (the default) or `mcp`.
    #[serde(default)]
    pub via: WorkerVia,
    /// The program behind it, e.g. `claude-code 2.0.14`; 1 to 100 characters.
    #[serde(default)]
    pub agent: Option<String>,
}

/// `project.configure` params.
#[derive(Debug, Deserialize)]
pub struct ProjectConfigureParams {
    /// The project.
    pub project_id: String,
    /// How many agent runs the hub keeps busy with this project's tasks; 0 stops them.
    /// Unchanged when absent.
    #[serde(default)]
    pub agent_workers: Option<u32>,
    /// The agent that runs the project's turns: `claude`, `codex` or `gemini`.
    /// Unchanged when absent.
    #[serde(default)]
    pub agent: Option<crate::protocol::agents::AgentKind>,
    /// The model the project's runs ask for, passed to its agent as it is; `""` clears
    /// it (the agent's setting or the CLI chooses). At most 200 characters. Unchanged
    /// when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// Where task runs work: `none` (the project directory) or `worktree` (a git
    /// worktree per task). Unchanged when absent.
    #[serde(default)]
    pub isolation: Option<super::worktrees::Isolation>,
}

/// `coordination.status` request params.
#[derive(Debug, Deserialize)]
pub struct StatusParams {
    /// The project.
    pub project_id: String,
}

/// One failed attempt at a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The attempt's number, from 1.
    pub attempt: u32,
    /// The worker that held the task, if any.
    pub worker_id: Option<WorkerId>,
    /// Why it failed: the worker's reason, `worker disconnected`, `lease expired ...`.
    pub reason: String,
    /// RFC 3339 time.
    pub at: String,
}

/// A task as returned by `task.*` and pushed in `task.assigned`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    /// The task id.
    pub id: TaskId,
    /// Its project.
    pub project_id: String,
    /// Creation order across the hub, from 1; the queue is FIFO by it within a priority.
    pub seq: i64,
    /// The title.
    pub title: String,
    /// The type, if any.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The context, if any.
    pub context: Option<Value>,
    /// The instructions, if any.
    pub prompt: Option<String>,
    /// The acceptance criteria, if any.
    pub acceptance: Option<Value>,
    /// Higher runs first.
    pub priority: i64,
    /// The state.
    pub state: TaskState,
    /// The worker holding it (while `running`) or that completed it.
    pub worker_id: Option<WorkerId>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Every failed attempt, oldest first.
    pub failures: Vec<Failure>,
    /// The report that completed it.
    pub report: Option<Value>,
    /// What completed it.
    pub completed_by: Option<CompletedBy>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// The agent that must run it on an agent worker; left out when the project's runs
    /// it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::protocol::agents::AgentKind>,
}

/// A worker as listed by `worker.list`, pushed in `worker.status` and included in
/// `coordination.status`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerView {
    /// The worker id.
    pub id: WorkerId,
    /// Its display name.
    pub name: String,
    /// Client or agent.
    pub kind: WorkerKind,
    /// Task types it takes; empty takes every type.
    pub capabilities: Vec<String>,
    /// Its status.
    pub status: WorkerStatus,
    /// The task it holds.
    pub task_id: Option<TaskId>,
    /// The project an agent worker serves; `null` for clients, which serve every project.
    pub project_id: Option<String>,
    /// How a client worker reaches the hub, as it said; `null` for agent workers.
    pub via: Option<WorkerVia>,
    /// The program behind a client worker, as it said (`null` when it did not).
    pub agent: Option<String>,
}

/// `coordination.status`: a project's counts, which always add up to `total`, and the
/// workers that can serve it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoordinationStatus {
    /// The project.
    pub project_id: String,
    /// Every task of the project.
    pub total: u64,
    /// Completed tasks.
    pub completed: u64,
    /// Tasks in the queue.
    pub pending: u64,
    /// Tasks held by a worker.
    pub running: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Cancelled tasks.
    pub cancelled: u64,
    /// Connected client workers and this project's agent workers.
    pub workers: Vec<WorkerView>,
    /// The project's built-in agent workers setting (`project.configure`).
    pub agent_workers: u32,
}

/// `worker.register` result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerRegistered {
    /// The worker's id, kept while the connection lasts.
    pub worker_id: WorkerId,
    /// Seconds a lease lasts.
    pub lease_s: u64,
}

/// `worker.heartbeat` result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerHeartbeat {
    /// The worker.
    pub worker_id: WorkerId,
    /// Its status.
    pub status: WorkerStatus,
    /// The task it holds.
    pub task_id: Option<TaskId>,
    /// Milliseconds left on its lease, while it holds a task.
    pub lease_expires_in_ms: Option<u64>,
}

/// `worker.list` result.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerList {
    /// Every connected client worker and agent worker.
    pub workers: Vec<WorkerView>,
}

/// `task.create` result.
#[derive(Debug, Clone, Serialize)]
pub struct TasksCreated {
    /// The project.
    pub project_id: String,
    /// Ids of the tasks queued now.
    pub created: Vec<TaskId>,
    /// Ids that already existed (nothing changed for them).
    pub existing: Vec<TaskId>,
}

/// `task.list` result.
#[derive(Debug, Clone, Serialize)]
pub struct TaskPage {
    /// The page, in creation order.
    pub tasks: Vec<TaskView>,
    /// Whether more follow.
    pub has_more: bool,
}

/// `task.cancel` result.
#[derive(Debug, Clone, Serialize)]
pub struct TaskCancelResult {
    /// The task.
    pub task_id: TaskId,
    /// False for a task that had already finished.
    pub cancelled: bool,
    /// Its state now.
    pub state: TaskState,
}

/// `task.complete` and `task.fail` result.
#[derive(Debug, Clone, Serialize)]
pub struct TaskAnswer {
    /// The task.
    pub task_id: TaskId,
    /// Its state now.
    pub state: TaskState,
    /// True when the task had already finished and nothing changed.
    pub duplicate: bool,
}

/// `project.configure` result.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectConfigured {
    /// The project.
    pub project_id: String,
    /// The setting now.
    pub agent_workers: u32,
    /// The project's isolation now.
    pub isolation: super::worktrees::Isolation,
    /// The project's agent workers now, by name.
    pub workers: Vec<WorkerView>,
    /// The project's agent now.
    pub agent: crate::protocol::agents::AgentKind,
    /// The project's model now; `null`: the agent chooses.
    pub model: Option<String>,
}

/// `project.completed` params.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectCompleted {
    /// The project.
    pub project_id: String,
    /// Every task of the project.
    pub total: u64,
    /// Completed tasks.
    pub completed: u64,
    /// Failed tasks.
    pub failed: u64,
    /// Cancelled tasks.
    pub cancelled: u64,
    /// A human summary, e.g. `all 20 tasks finished: 19 completed, 1 failed`.
    pub message: String,
}

/// What a report says about its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportStatus {
    /// The task is done.
    Completed,
    /// The attempt failed; `summary` says why.
    Failed,
}

/// A report file, `<project>/reports/<task-id>.json`:
///
/// ```json
/// {"task_id": "t1", "status": "completed", "summary": "added the endpoint",
///  "deliverables": ["src/api.rs"], "score": 0.9}
/// ```
///
/// `task_id` is optional and, when present, must match the file name. Other fields are
/// kept with the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFile {
    /// The task, if repeated in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Completed or failed.
    pub status: ReportStatus,
    /// What was done, or why it failed.
    pub summary: String,
    /// Files or artefacts produced.
    #[serde(default)]
    pub deliverables: Vec<Value>,
    /// A self-assessed score, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Any other fields, kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_pages_follow_the_last_seq_until_has_more_is_false() {
        let mut pages = TaskPages::new("p");
        assert_eq!(pages.next_params().unwrap()["after_seq"], 0);
        pages.add(&serde_json::json!({"tasks": [{"seq": 1}, {"seq": 2}], "has_more": true}));
        let params = pages.next_params().unwrap();
        assert_eq!(
            (
                &params["project_id"],
                &params["after_seq"],
                &params["limit"]
            ),
            (
                &serde_json::json!("p"),
                &serde_json::json!(2),
                &serde_json::json!(TASK_LIST_MAX)
            )
        );
        pages.add(&serde_json::json!({"tasks": [{"seq": 3}], "has_more": false}));
        assert!(pages.next_params().is_none());
        assert_eq!(pages.into_tasks().len(), 3);
    }
    use crate::protocol::notification;
    use serde_json::json;

    fn task() -> TaskView {
        TaskView {
            id: "t1".into(),
            project_id: "p1".into(),
            seq: 7,
            title: "Add the endpoint".into(),
            kind: Some("code".into()),
            context: Some(json!("the API lives in src/api.rs")),
            prompt: None,
            acceptance: Some(json!(["tests pass"])),
            priority: 2,
            state: TaskState::Running,
            worker_id: Some("w1".into()),
            attempts: 1,
            failures: vec![Failure {
                attempt: 1,
                worker_id: Some("w0".into()),
                reason: "worker disconnected".into(),
                at: "2026-01-02T03:04:05.678Z".into(),
            }],
            report: None,
            completed_by: None,
            created_at: "2026-01-02T03:04:05.000Z".into(),
            updated_at: "2026-01-02T03:04:06.000Z".into(),
            agent: None,
        }
    }

    /// Pins `task.assigned`, the message every worker parses.
    #[test]
    fn task_assigned_golden() {
        assert_eq!(
            notification(
                method::TASK_ASSIGNED,
                &TaskAssigned {
                    task: task(),
                    lease_s: 60
                }
            ),
            concat!(
                r#"{"jsonrpc":"2.0","method":"task.assigned","params":{"task":{"id":"t1","project_id":"p1","seq":7,"#,
                r#""title":"Add the endpoint","type":"code","context":"the API lives in src/api.rs","prompt":null,"#,
                r#""acceptance":["tests pass"],"priority":2,"state":"running","worker_id":"w1","attempts":1,"#,
                r#""failures":[{"attempt":1,"worker_id":"w0","reason":"worker disconnected","at":"2026-01-02T03:04:05.678Z"}],"#,
                r#""report":null,"completed_by":null,"created_at":"2026-01-02T03:04:05.000Z","#,
                r#""updated_at":"2026-01-02T03:04:06.000Z"},"lease_s":60}}"#
            )
        );
    }

    /// Pins `coordination.status`, the message coordinators and the dashboard follow.
    #[test]
    fn status_golden() {
        let status = CoordinationStatus {
            project_id: "p1".into(),
            total: 4,
            completed: 1,
            pending: 1,
            running: 1,
            failed: 1,
            cancelled: 0,
            workers: vec![WorkerView {
                id: "w1".into(),
                name: "alpha".into(),
                kind: WorkerKind::Client,
                capabilities: vec![],
                status: WorkerStatus::Working,
                task_id: Some("t1".into()),
                project_id: None,
                via: Some(WorkerVia::Mcp),
                agent: Some("claude-code 2.0.14".into()),
            }],
            agent_workers: 2,
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"project_id": "p1", "total": 4, "completed": 1, "pending": 1, "running": 1,
                   "failed": 1, "cancelled": 0,
                   "workers": [{"id": "w1", "name": "alpha", "kind": "client", "capabilities": [],
                                "status": "working", "task_id": "t1", "project_id": null,
                                "via": "mcp", "agent": "claude-code 2.0.14"}],
                   "agent_workers": 2})
        );
    }

    #[test]
    fn report_files_parse_strictly_where_it_matters() {
        let report: ReportFile = serde_json::from_value(json!({
            "status": "completed", "summary": "done", "deliverables": ["a.txt"], "score": 0.5, "notes": "x"
        }))
        .unwrap();
        assert_eq!(report.status, ReportStatus::Completed);
        assert_eq!(report.extra.get("notes"), Some(&json!("x")));
        assert!(
            serde_json::from_value::<ReportFile>(json!({"status": "done", "summary": "x"}))
                .is_err()
        );
        assert!(serde_json::from_value::<ReportFile>(json!({"status": "completed"})).is_err());
        // Extra fields survive a round trip, flattened beside the known ones.
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            json!({"status": "completed", "summary": "done", "deliverables": ["a.txt"], "score": 0.5, "notes": "x"})
        );
    }

    #[test]
    fn new_tasks_take_type_and_refuse_unknown_fields() {
        let task: NewTask =
            serde_json::from_value(json!({"title": "t", "type": "code", "priority": 3})).unwrap();
        assert_eq!(task.kind.as_deref(), Some("code"));
        assert_eq!(task.priority, 3);
        assert!(serde_json::from_value::<NewTask>(json!({"title": "t", "typo": 1})).is_err());
    }
}
