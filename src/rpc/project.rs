//! `project.*` (but `project.configure`, in [`super::coordination`]): the registry and
//! output subscriptions.

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, not_found, reply};
use crate::protocol::error::RpcError;
use crate::protocol::{
    ProjectCreateParams, ProjectRef, ProjectView, SubscribeParams, method, parse_params,
};

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::PROJECT_CREATE => create,
        method::PROJECT_LIST => list,
        method::PROJECT_GET => get,
        method::PROJECT_DELETE => delete,
        method::PROJECT_SUBSCRIBE => subscribe,
        method::PROJECT_UNSUBSCRIBE => unsubscribe,
        _ => return None,
    })
}

fn create(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectCreateParams = parse_params(params)?;
    reply(&call.hub.create_project(&p.path, p.name.as_deref())?)
}

/// `project.list` result.
#[derive(Serialize)]
struct ProjectList {
    projects: Vec<ProjectView>,
}

fn list(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let hub = call.hub;
    reply(&ProjectList {
        projects: hub
            .projects()
            .list()
            .into_iter()
            .map(|v| hub.with_seq(v))
            .collect(),
    })
}

fn get(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    reply(&call.hub.project(&p.project_id)?)
}

/// `project.delete` result.
#[derive(Serialize)]
struct Deleted {
    deleted: bool,
}

fn delete(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    call.hub.delete_project(&p.project_id)?;
    reply(&Deleted { deleted: true })
}

/// `project.subscribe` result.
#[derive(Serialize)]
struct Subscribed {
    project_id: String,
    last_seq: u64,
}

fn subscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: SubscribeParams = parse_params(params)?;
    let (last_seq, ticket) = call
        .hub
        .feed()
        .subscribe(&p.project_id, call.client, p.after_seq)
        .ok_or_else(|| not_found(&p.project_id))?;
    let reply = reply(&Subscribed {
        project_id: p.project_id.clone(),
        last_seq,
    })?;
    Ok(match (reply, ticket) {
        (Reply::Now(result), Some(ticket)) => Reply::ThenReplay {
            result,
            project_id: p.project_id,
            ticket,
        },
        (reply, _) => reply,
    })
}

/// `project.unsubscribe` result.
#[derive(Serialize)]
struct Unsubscribed {
    unsubscribed: bool,
}

fn unsubscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    call.hub.projects().get(&p.project_id)?;
    let was = call.hub.feed().unsubscribe(&p.project_id, call.client.id());
    reply(&Unsubscribed { unsubscribed: was })
}
