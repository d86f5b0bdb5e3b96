//! `worker.*`, `task.*`, `project.configure` and `coordination.status`: the task queue
//! (`docs/coordination.md`). Params are checked here; the rules are the coordinator's.

use serde_json::Value;
use tracing::info;

use super::{Handler, HandlerFn, Method, Reply, later, reply};
use crate::app::contexts::TasksCtx;
use crate::config::Family;
use crate::coordinator::reports::valid_task_id;
use crate::coordinator::{CoordinationError, MAX_TASK_BYTES, MAX_TASKS_PER_CREATE};
use crate::protocol::Role;
use crate::protocol::coordination::{
    ProjectConfigureParams, ProjectConfigured, StatusParams, TASK_LIST_MAX, TaskAnswer,
    TaskCancelResult, TaskCompleteParams, TaskCreateParams, TaskFailParams, TaskListParams,
    TaskPage, TaskRef, TaskState, TasksCreated, WorkerClient, WorkerList, WorkerRegisterParams,
    WorkerRegistered, method,
};
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::hub::ConnectionChange;
use crate::protocol::ids::TaskId;
use crate::protocol::parse_params;
use crate::protocol::scopes::Scope;
use crate::protocol::worktrees::TaskDetail;
use crate::storage::sqlite::{Store, TaskRow};

type Call<'a> = super::Call<'a, TasksCtx>;

const TASKS: Option<Scope> = Some(Scope::Tasks);
const FAMILY: Option<Family> = Some(Family::Tasks);

/// All in the tasks family; `project.configure` starts agent workers, so it needs
/// `agents`.
pub(super) const METHODS: &[Method] = &[
    row(method::WORKER_REGISTER, TASKS, FAMILY, worker_register),
    row(method::WORKER_HEARTBEAT, TASKS, FAMILY, |call, _| {
        let beat = call.ctx.coordinator.heartbeat(call.client.id())?;
        reply(&beat)
    })
    .also_as_notification(),
    row(method::WORKER_LIST, TASKS, FAMILY, |call, _| {
        reply(&WorkerList {
            workers: call.ctx.coordinator.workers(),
        })
    }),
    row(method::TASK_CREATE, TASKS, FAMILY, task_create),
    row(method::TASK_LIST, TASKS, FAMILY, task_list),
    row(method::TASK_GET, TASKS, FAMILY, task_get),
    row(method::TASK_CANCEL, TASKS, FAMILY, task_cancel),
    row(method::TASK_COMPLETE, TASKS, FAMILY, task_complete),
    row(method::TASK_FAIL, TASKS, FAMILY, task_fail),
    row(method::TASK_MERGE, TASKS, FAMILY, task_merge),
    row(method::TASK_DISCARD, TASKS, FAMILY, task_discard),
    row(
        method::PROJECT_CONFIGURE,
        Some(Scope::Agents),
        FAMILY,
        project_configure,
    ),
    row(method::COORDINATION_STATUS, TASKS, FAMILY, status),
];

/// A row of this family's table: its handlers see [`TasksCtx`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<TasksCtx>,
) -> Method {
    Method::new(name, scope, family, Handler::Tasks(handler))
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

/// `worker.register`: makes the connection a worker (role `worker`). Registering again
/// on the same connection updates the name, capabilities, `via` and `agent` and keeps
/// the id.
fn worker_register(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: WorkerRegisterParams = parse_params(params)?;
    check_text("name", &params.name, 100)?;
    if let Some(agent) = &params.agent {
        check_text("agent", agent, 100)?;
    }
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
    call.client
        .set_identity(Role::Worker, Some(params.name.clone()));
    call.ctx
        .notices
        .connection_changed(ConnectionChange::Updated, call.client);
    let (coordinator, conn_id, lease_s) = (
        call.ctx.coordinator.clone(),
        call.client.id(),
        call.ctx.lease_s,
    );
    let client = WorkerClient {
        via: params.via,
        agent: params.agent,
    };
    later(async move {
        let worker_id = coordinator
            .register_worker(conn_id, &params.name, &params.capabilities, &client)
            .await?;
        Ok(WorkerRegistered { worker_id, lease_s })
    })
}

/// `task.create`: queues tasks, idempotently by id. A client with the default role
/// becomes a coordinator, so it hears about its tasks.
fn task_create(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: TaskCreateParams = parse_params(params)?;
    call.ctx.projects.get(&params.project_id)?;
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
        specs.push((TaskId::from(id), task));
    }
    if call.client.role() == Role::Script {
        let name = call.client.info().name;
        call.client.set_identity(Role::Coordinator, name);
        call.ctx
            .notices
            .connection_changed(ConnectionChange::Updated, call.client);
    }
    let coordinator = call.ctx.coordinator.clone();
    later(async move {
        let (created, existing) = coordinator.create_tasks(&params.project_id, specs).await?;
        Ok(TasksCreated {
            project_id: params.project_id,
            created,
            existing,
        })
    })
}

/// `task.list`: a page of a project's tasks in creation order; pass the last task's
/// `seq` as `after_seq` for the next page.
fn task_list(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: TaskListParams = parse_params(params)?;
    call.ctx.projects.get(&params.project_id)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=TASK_LIST_MAX).contains(&limit) {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "limit must be between 1 and 10000",
        ));
    }
    let store = call.ctx.store.clone();
    later(async move {
        let mut rows = store
            .tasks(
                &params.project_id,
                params.state,
                params.after_seq.unwrap_or(0),
                limit,
            )
            .await
            .map_err(CoordinationError::from)?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(TaskPage {
            tasks: rows.iter().map(TaskRow::view).collect(),
            has_more,
        })
    })
}

/// A task as stored.
async fn stored_task(store: &Store, task_id: &TaskId) -> Result<TaskRow, RpcError> {
    Ok(store
        .task_of(task_id.clone())
        .await
        .map_err(CoordinationError::from)?
        .ok_or_else(|| CoordinationError::TaskNotFound(task_id.clone()))?)
}

/// `task.get`: the task, with its worktree and diff when it ran isolated.
fn task_get(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let TaskRef { task_id } = parse_params(params)?;
    let (store, coordinator) = (call.ctx.store.clone(), call.ctx.coordinator.clone());
    later(async move {
        let task = stored_task(&store, &task_id).await?.view();
        let worktree = coordinator.worktrees().view(task_id.as_str()).await?;
        Ok(TaskDetail { task, worktree })
    })
}

/// `task.merge`: the task's branch into its base branch; refused, changing nothing,
/// when it would conflict or overwrite uncommitted changes.
fn task_merge(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let TaskRef { task_id } = parse_params(params)?;
    let coordinator = call.ctx.coordinator.clone();
    later(async move { Ok(coordinator.worktrees().merge(task_id.as_str()).await?) })
}

/// `task.discard`: the task's worktree and branch removed, unmerged.
fn task_discard(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let TaskRef { task_id } = parse_params(params)?;
    let coordinator = call.ctx.coordinator.clone();
    later(async move { Ok(coordinator.worktrees().discard(task_id.as_str()).await?) })
}

/// `task.cancel`: `cancelled` is false for a task that had already finished.
fn task_cancel(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let TaskRef { task_id } = parse_params(params)?;
    let (coordinator, store) = (call.ctx.coordinator.clone(), call.ctx.store.clone());
    later(async move {
        let cancelled = coordinator.cancel(&task_id).await?;
        let state = if cancelled {
            TaskState::Cancelled
        } else {
            stored_task(&store, &task_id).await?.state
        };
        Ok(TaskCancelResult {
            task_id,
            cancelled,
            state,
        })
    })
}

fn task_complete(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: TaskCompleteParams = parse_params(params)?;
    answer(call, params.task_id, Ok(params.report))
}

fn task_fail(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: TaskFailParams = parse_params(params)?;
    check_text("reason", &params.reason, 10_000)?;
    answer(call, params.task_id, Err(params.reason))
}

/// `task.complete` and `task.fail`: `duplicate: true` (and nothing changes) when the
/// task had already finished. Answered once the change is stored.
fn answer(
    call: &Call<'_>,
    task_id: TaskId,
    outcome: Result<Value, String>,
) -> Result<Reply, RpcError> {
    let (coordinator, store, conn_id) = (
        call.ctx.coordinator.clone(),
        call.ctx.store.clone(),
        call.client.id(),
    );
    later(async move {
        let answered = coordinator.answer(conn_id, &task_id, outcome).await?;
        let (state, duplicate) = match answered {
            Some(state) => (state, false),
            None => {
                let state = stored_task(&store, &task_id).await?.state;
                info!(
                    %task_id,
                    state = state.as_str(),
                    "duplicate completion ignored"
                );
                (state, true)
            }
        };
        Ok(TaskAnswer {
            task_id,
            state,
            duplicate,
        })
    })
}

/// The longest model name `project.configure` takes, in characters.
const MAX_MODEL_CHARS: usize = 200;

/// `project.configure`: the project's agent and model, and how many built-in agent
/// workers serve it (0 to `limits.max_running_agents`; extra workers that are busy
/// finish their task first), and where their task runs work (`isolation`). Each is
/// optional; what is absent stays as it is. The isolation is applied first, so the
/// workers it starts already use it.
fn project_configure(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let params: ProjectConfigureParams = parse_params(params)?;
    let ctx = call.ctx;
    let view = ctx.projects.get(&params.project_id)?;
    if params.agent_workers.is_none()
        && params.agent.is_none()
        && params.model.is_none()
        && params.isolation.is_none()
    {
        return Err(CoordinationError::Invalid(
            "give at least one of agent_workers, agent, model and isolation".into(),
        )
        .into());
    }
    let limit = ctx.max_running_agents;
    if let Some(count) = params.agent_workers
        && count as usize > limit
    {
        return Err(CoordinationError::Invalid(format!(
            "agent_workers must be between 0 and {limit} (limits.max_running_agents)"
        ))
        .into());
    }
    if let Some(model) = &params.model
        && (model.chars().count() > MAX_MODEL_CHARS
            || model.chars().any(|c| c.is_control())
            || model.starts_with('-'))
    {
        return Err(CoordinationError::Invalid(format!(
            "model must be at most {MAX_MODEL_CHARS} characters, with no control characters, \
             and not start with '-'"
        ))
        .into());
    }
    let agent = params.agent.unwrap_or(view.agent);
    let workers_after = params
        .agent_workers
        .unwrap_or_else(|| ctx.coordinator.status(&params.project_id).agent_workers);
    let (coordinator, projects, cli) = (
        ctx.coordinator.clone(),
        ctx.projects.clone(),
        ctx.clis.get(agent).clone(),
    );
    later(async move {
        if workers_after > 0 && cli.look_up().await.is_none() {
            return Err(
                CoordinationError::AgentUnavailable(crate::runner::cli_missing(agent)).into(),
            );
        }
        let view = if params.agent.is_some() || params.model.is_some() {
            projects
                .configure_agent(&params.project_id, params.agent, params.model.as_deref())
                .await?
        } else {
            view
        };
        let worktrees = coordinator.worktrees();
        if let Some(isolation) = params.isolation {
            worktrees
                .set_isolation(&params.project_id, isolation)
                .await?;
        }
        let isolation = worktrees.isolation(&params.project_id).await?;
        let workers = match params.agent_workers {
            Some(count) => coordinator.configure(&params.project_id, count).await?,
            None => coordinator
                .status(&params.project_id)
                .workers
                .into_iter()
                .filter(|w| {
                    w.kind == crate::protocol::coordination::WorkerKind::Agent
                        && w.project_id.as_deref() == Some(params.project_id.as_str())
                })
                .collect(),
        };
        info!(
            project_id = params.project_id,
            agent_workers = workers_after,
            agent = view.agent.as_str(),
            model = view.model.as_deref(),
            isolation = isolation.as_str(),
            "project configured"
        );
        Ok(ProjectConfigured {
            project_id: params.project_id,
            agent_workers: workers_after,
            isolation,
            workers,
            agent: view.agent,
            model: view.model,
        })
    })
}

fn status(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: StatusParams = parse_params(params)?;
    call.ctx.projects.get(&p.project_id)?;
    reply(&call.ctx.coordinator.status(&p.project_id))
}
