//! `agent.*`: a project's interactive run.

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, reply};
use crate::app::contexts::AgentsCtx;
use crate::config::Family;
use crate::events::Event;
use crate::projects::ProjectError;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::Scope;
use crate::protocol::{AgentRunParams, ProjectRef, StateChange, method, parse_params};
use crate::runner::{RunMode, RunRequest};

type Call<'a> = super::Call<'a, AgentsCtx>;

const AGENTS: Option<Scope> = Some(Scope::Agents);
const FAMILY: Option<Family> = Some(Family::Agents);

pub(super) const METHODS: &[Method] = &[
    row(method::AGENT_RUN, AGENTS, FAMILY, run),
    row(method::AGENT_KILL, AGENTS, FAMILY, kill),
    row(method::AGENT_NEW_SESSION, AGENTS, FAMILY, new_session),
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
