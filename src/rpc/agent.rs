//! `agent.*`: a project's interactive run.

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, reply};
use crate::events::Event;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::{AgentRunParams, ProjectRef, StateChange, method, parse_params};
use crate::runner::{RunMode, RunRequest};

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::AGENT_RUN => run,
        method::AGENT_KILL => kill,
        method::AGENT_NEW_SESSION => new_session,
        _ => return None,
    })
}

/// `agent.run` result.
#[derive(Serialize)]
struct Started {
    run_id: String,
    project_id: String,
}

fn run(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: AgentRunParams = parse_params(params)?;
    let runner = call.hub.runner();
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
    call.hub.runner().kill(&p.project_id)?;
    reply(&Killed { killed: true })
}

fn new_session(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let hub = call.hub;
    if hub.projects().active_run(&p.project_id)?.is_some() {
        return Err(RpcError::new(
            ErrorKind::ProjectBusy,
            "the project is running; kill the run before starting a new session",
        ));
    }
    let view = hub.projects().set_session(&p.project_id, None)?;
    hub.emit(Event::ProjectState(StateChange {
        project_id: p.project_id,
        state: view.state,
        session_id: view.session_id.clone(),
        run_id: None,
        reason: None,
    }));
    reply(&hub.with_seq(view))
}
