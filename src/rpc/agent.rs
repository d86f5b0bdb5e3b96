//! `agent.*`: a project's interactive run, and what the agents cost (`agent.usage`).

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, later, not_found, reply};
use crate::app::contexts::AgentsCtx;
use crate::config::Family;
use crate::events::Event;
use crate::projects::ProjectError;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scope;
use crate::protocol::usage::{
    AgentUsageParams, AgentUsageResult, MAX_UTC_OFFSET_MINUTES, method as usage_method,
};
use crate::protocol::{AgentRunParams, ProjectRef, StateChange, method, parse_params};
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
    row(usage_method::AGENT_USAGE, AGENTS, FAMILY, usage),
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
}

fn run(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AgentRunParams = parse_params(params)?;
    let runner = &call.ctx.runner;
    let limit = runner.slots().max();
    let permit = runner.slots().try_acquire().ok_or_else(|| {
        RpcError::new(
            ErrorKind::LimitReached,
            format!("{limit} agents are already running, the configured maximum"),
        )
    })?;
    let handle = runner.start(
        RunRequest {
            project_id: p.project_id.clone(),
            prompt: p.prompt,
            mode: RunMode::Interactive {
                new_session: p.new_session,
            },
            timeout_s: p.timeout_s,
        },
        permit,
    )?;
    reply(&Started {
        run_id: handle.run_id,
        project_id: p.project_id,
    })
}

/// `agent.kill` result.
#[derive(Serialize)]
struct Killed {
    killed: bool,
}

fn kill(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    call.ctx.runner.kill(&p.project_id)?;
    reply(&Killed { killed: true })
}

fn new_session(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let ctx = call.ctx;
    let view = ctx
        .projects
        .new_session(&p.project_id)
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
    reply(&ctx.with_seq(view))
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
