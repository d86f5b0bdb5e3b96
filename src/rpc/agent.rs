//! `agent.*`: a project's interactive run and live session (runs, follow-ups,
//! interrupts, queued follow-ups, approvals of tool calls, approval policies), runs in a
//! git worktree of their own (`agent.run {isolation: "worktree"}`, `agent.run_worktree`,
//! `agent.run_merge`, `agent.run_discard`), and what the agents cost (`agent.usage`).

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, later, not_found, reply};
use crate::app::contexts::AgentsCtx;
use crate::config::Family;
use crate::coordinator::worktrees::{IsolatedRun, IsolatedStarted};
use crate::events::Event;
use crate::projects::ProjectError;
use crate::protocol::agents::{
    AnswerParams, AnsweredBy, ApprovalsListParams, PolicySetParams, QueueRef, QueueUpdateParams,
    SendParams, method as agents_method,
};
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scope;
use crate::protocol::usage::{
    AgentUsageParams, AgentUsageResult, MAX_UTC_OFFSET_MINUTES, method as usage_method,
};
use crate::protocol::worktrees::{Isolation, RunRef, method as worktrees_method};
use crate::protocol::{
    AgentKillParams, AgentRunParams, ProjectRef, StateChange, method, parse_params,
};
use crate::runner::{RunMode, RunRequest};
use crate::storage::sqlite::UsageQuery;
use crate::support::timestamp::parse_rfc3339;

type Call<'a> = super::Call<'a, AgentsCtx>;

const AGENTS: Option<Scope> = Some(Scope::Agents);
const FAMILY: Option<Family> = Some(Family::Agents);

pub(super) const METHODS: &[Method] = &[
    row(method::AGENT_RUN, AGENTS, FAMILY, run),
    row(method::AGENT_KILL, AGENTS, FAMILY, kill),
    row(method::AGENT_NEW_SESSION, AGENTS, FAMILY, new_session),
    row(agents_method::AGENT_SEND, AGENTS, FAMILY, send),
    row(agents_method::AGENT_INTERRUPT, AGENTS, FAMILY, interrupt),
    row(
        agents_method::AGENT_APPROVALS_LIST,
        AGENTS,
        FAMILY,
        approvals_list,
    ),
    row(
        agents_method::AGENT_APPROVALS_ANSWER,
        AGENTS,
        FAMILY,
        approvals_answer,
    ),
    row(agents_method::AGENT_QUEUE_LIST, AGENTS, FAMILY, queue_list),
    row(
        agents_method::AGENT_QUEUE_UPDATE,
        AGENTS,
        FAMILY,
        queue_update,
    ),
    row(
        agents_method::AGENT_QUEUE_CANCEL,
        AGENTS,
        FAMILY,
        queue_cancel,
    ),
    row(agents_method::AGENT_POLICY_GET, AGENTS, FAMILY, policy_get),
    row(agents_method::AGENT_POLICY_SET, AGENTS, FAMILY, policy_set),
    row(usage_method::AGENT_USAGE, AGENTS, FAMILY, usage),
    row(
        worktrees_method::AGENT_RUN_WORKTREE,
        AGENTS,
        FAMILY,
        run_worktree,
    ),
    row(worktrees_method::AGENT_RUN_MERGE, AGENTS, FAMILY, run_merge),
    row(
        worktrees_method::AGENT_RUN_DISCARD,
        AGENTS,
        FAMILY,
        run_discard,
    ),
];

/// A row of this family's table: its handlers see [`AgentsCtx`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<AgentsCtx>,
) -> Method {
    Method::new(name, scope, family, Handler::Agents(handler))
}

/// `agent.run` result.
#[derive(Serialize)]
struct Started {
    run_id: String,
    project_id: String,
    /// An isolated run's worktree.
    #[serde(skip_serializing_if = "Option::is_none")]
    worktree: Option<IsolatedStarted>,
}

/// A permit of the agent limit, or `LIMIT_REACHED`.
fn permit(runner: &crate::runner::Runner) -> Result<crate::runner::slots::Permit, RpcError> {
    let limit = runner.slots().max();
    runner.slots().try_acquire().ok_or_else(|| {
        RpcError::new(
            ErrorKind::LimitReached,
            format!("{limit} agents are already running, the configured maximum"),
        )
    })
}

fn run(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AgentRunParams = parse_params(params)?;
    let isolated = match (p.isolation, &p.worktree) {
        (Some(Isolation::None), Some(_)) => {
            return Err(RpcError::new(
                ErrorKind::InvalidParams,
                "worktree (a follow-up in a run's worktree) cannot go with isolation \"none\"",
            ));
        }
        (Some(Isolation::Worktree), _) | (_, Some(_)) => true,
        _ => false,
    };
    let runner = call.ctx.runner.clone();
    let permit = permit(&runner)?;
    if isolated {
        let coordinator = call.ctx.coordinator.clone();
        return later(async move {
            let run = IsolatedRun {
                project_id: p.project_id.clone(),
                prompt: p.prompt,
                follow_up: p.worktree,
                new_session: p.new_session,
                timeout_s: p.timeout_s,
                agent: p.agent,
            };
            let (run_id, worktree) = coordinator.start_isolated_run(run, permit).await?;
            Ok(Started {
                run_id,
                project_id: p.project_id,
                worktree: Some(worktree),
            })
        });
    }
    later(async move {
        let handle = runner
            .start(
                RunRequest {
                    project_id: p.project_id.clone(),
                    prompt: p.prompt,
                    mode: RunMode::Interactive {
                        new_session: p.new_session,
                    },
                    timeout_s: p.timeout_s,
                    keep_open: false,
                    agent: p.agent,
                    workdir: None,
                    run_id: None,
                },
                permit,
            )
            .await?;
        Ok(Started {
            run_id: handle.run_id,
            project_id: p.project_id,
            worktree: None,
        })
    })
}

/// `agent.kill` result.
#[derive(Serialize)]
struct Killed {
    killed: bool,
}

/// `agent.run_worktree`: the worktree a run worked in, with its diff.
fn run_worktree(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let RunRef { run_id } = parse_params(params)?;
    let coordinator = call.ctx.coordinator.clone();
    later(async move { Ok(coordinator.worktrees().run_view(&run_id).await?) })
}

/// `agent.run_merge`: the run's worktree branch merged into its base branch.
fn run_merge(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let RunRef { run_id } = parse_params(params)?;
    let coordinator = call.ctx.coordinator.clone();
    later(async move { Ok(coordinator.worktrees().merge_run(&run_id).await?) })
}

/// `agent.run_discard`: the run's worktree and branch removed, unmerged.
fn run_discard(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let RunRef { run_id } = parse_params(params)?;
    let coordinator = call.ctx.coordinator.clone();
    later(async move { Ok(coordinator.worktrees().discard_run(&run_id).await?) })
}

fn kill(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AgentKillParams = parse_params(params)?;
    match &p.run_id {
        Some(run_id) => call.ctx.runner.kill_run(&p.project_id, run_id)?,
        None => call.ctx.runner.kill(&p.project_id)?,
    }
    reply(&Killed { killed: true })
}

fn new_session(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let ctx = call.ctx.clone();
    later(async move {
        let view = ctx
            .projects
            .new_session(&p.project_id)
            .await
            .map_err(|err| match err {
                ProjectError::Busy(_) => RpcError::new(
                    ErrorKind::ProjectBusy,
                    "the project is running; kill the run before starting a new session",
                ),
                err => err.into(),
            })?;
        ctx.notices.emit(Event::ProjectState(StateChange {
            project_id: p.project_id,
            state: view.state,
            session_id: view.session_id.clone(),
            run_id: None,
            reason: None,
        }));
        Ok(ctx.with_seq(view))
    })
}

fn send(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: SendParams = parse_params(params)?;
    let runner = call.ctx.runner.clone();
    later(async move {
        let permits = runner.clone();
        runner
            .send(&p.project_id, p.text, p.mode, move || permit(&permits))
            .await
    })
}

/// `agent.interrupt` result.
#[derive(Serialize)]
struct Interrupted {
    interrupted: bool,
    run_id: String,
}

fn interrupt(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let runner = call.ctx.runner.clone();
    later(async move {
        let run_id = runner.interrupt(&p.project_id).await?;
        Ok(Interrupted {
            interrupted: true,
            run_id,
        })
    })
}

fn approvals_list(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ApprovalsListParams = if params.is_null() {
        ApprovalsListParams::default()
    } else {
        parse_params(params)?
    };
    let approvals = call.ctx.runner.approvals().list(p.project_id.as_deref());
    reply(&serde_json::json!({ "approvals": approvals }))
}

fn approvals_answer(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AnswerParams = parse_params(params)?;
    let info = call.client.info();
    let by = AnsweredBy::Client {
        connection_id: info.id,
        role: serde_json::to_value(info.role)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        name: info.name,
        client_id: info.client_id,
        origin: info.origin,
    };
    let approvals = call.ctx.runner.approvals().clone();
    later(async move {
        let (approval, resolution) = approvals.answer(p, by).await?;
        Ok(serde_json::json!({ "approval": approval, "resolution": resolution }))
    })
}

fn queue_list(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let runner = call.ctx.runner.clone();
    later(async move {
        let messages = runner.queue(&p.project_id).await?;
        Ok(serde_json::json!({ "messages": messages }))
    })
}

fn queue_update(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: QueueUpdateParams = parse_params(params)?;
    let runner = call.ctx.runner.clone();
    later(async move {
        let message = runner.change_queued(&p.id, Some(p.text)).await?;
        Ok(serde_json::json!({ "message": message }))
    })
}

fn queue_cancel(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: QueueRef = parse_params(params)?;
    let runner = call.ctx.runner.clone();
    later(async move {
        let message = runner.change_queued(&p.id, None).await?;
        Ok(serde_json::json!({ "message": message }))
    })
}

fn policy_get(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    call.ctx.projects.get(&p.project_id)?;
    reply(&call.ctx.runner.approvals().policy(&p.project_id))
}

fn policy_set(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PolicySetParams = parse_params(params)?;
    call.ctx.projects.get(&p.project_id)?;
    let approvals = call.ctx.runner.approvals().clone();
    later(async move { Ok(approvals.set_policy(p).await?) })
}
/// `agent.usage`: the recorded turns summed per day, project or run.
///
/// # Errors
/// `INVALID_PARAMS` for a time that is not RFC 3339, `since` not before `until`, or an
/// offset beyond ±840 minutes; `PROJECT_NOT_FOUND` for a `project_id` that is neither
/// registered nor has recorded usage (a deleted project's usage is still answered).
fn usage(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AgentUsageParams = parse_params(params)?;
    let time = |name: &str, value: Option<String>| {
        value
            .map(|text| parse_rfc3339(&text))
            .transpose()
            .map_err(|err| RpcError::new(ErrorKind::InvalidParams, format!("{name}: {err}")))
    };
    let since = time("since", p.since)?;
    let until = time("until", p.until)?;
    if let (Some(since), Some(until)) = (since, until)
        && since >= until
    {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "since must be before until",
        ));
    }
    let offset = p.utc_offset_minutes.unwrap_or(0);
    if offset.abs() > MAX_UTC_OFFSET_MINUTES {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            format!(
                "utc_offset_minutes must be between -{MAX_UTC_OFFSET_MINUTES} and {MAX_UTC_OFFSET_MINUTES}"
            ),
        ));
    }
    let registered = match &p.project_id {
        Some(id) => call.ctx.projects.get(id).is_ok(),
        None => true,
    };
    let store = call.ctx.store.clone();
    let query = UsageQuery {
        project_id: p.project_id,
        since,
        until,
        group_by: p.group_by,
        utc_offset_minutes: offset,
    };
    later(async move {
        let report = store
            .usage(query.clone())
            .await
            .map_err(|err| RpcError::internal("agent.usage", &err))?;
        if !registered && report.total.turns == 0 {
            // Neither a project nor any usage in range: check the whole history before
            // calling the id unknown.
            let ever = store
                .usage(UsageQuery {
                    since: None,
                    until: None,
                    ..query.clone()
                })
                .await
                .map_err(|err| RpcError::internal("agent.usage", &err))?;
            if ever.total.turns == 0 {
                return Err(not_found(query.project_id.as_deref().unwrap_or_default()));
            }
        }
        Ok(AgentUsageResult {
            group_by: query.group_by,
            rows: report.rows,
            total: report.total,
            truncated: report.truncated,
        })
    })
}
