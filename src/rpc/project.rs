//! `project.*` (but `project.configure`, in [`super::coordination`]): the registry and
//! output subscriptions.

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, later, not_found, reply};
use crate::app::contexts::ProjectsCtx;
use crate::config::Family;
use crate::protocol::error::RpcError;
use crate::protocol::scopes::Scope;
use crate::protocol::{
    ProjectCreateParams, ProjectRef, ProjectView, SubscribeParams, method, parse_params,
};

type Call<'a> = super::Call<'a, ProjectsCtx>;

const READ: Option<Scope> = Some(Scope::ProjectsRead);
/// Registering and removing a project goes with running agents in it.
const AGENTS: Option<Scope> = Some(Scope::Agents);
const FAMILY: Option<Family> = Some(Family::Projects);

pub(super) const METHODS: &[Method] = &[
    row(method::PROJECT_CREATE, AGENTS, FAMILY, create),
    row(method::PROJECT_LIST, READ, FAMILY, list),
    row(method::PROJECT_GET, READ, FAMILY, get),
    row(method::PROJECT_DELETE, AGENTS, FAMILY, delete),
    row(method::PROJECT_SUBSCRIBE, READ, FAMILY, subscribe),
    row(method::PROJECT_UNSUBSCRIBE, READ, FAMILY, unsubscribe),
];

/// A row of this family's table: its handlers see [`ProjectsCtx`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<ProjectsCtx>,
) -> Method {
    Method::new(name, scope, family, Handler::Projects(handler))
}

fn create(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectCreateParams = parse_params(params)?;
    let ctx = call.ctx.clone();
    later(async move { Ok(ctx.create_project(&p.path, p.name.as_deref()).await?) })
}

/// `project.list` result.
#[derive(Serialize)]
struct ProjectList {
    projects: Vec<ProjectView>,
}

fn list(call: &Call<'_>, _: Value) -> Result<Reply, RpcError> {
    let ctx = call.ctx;
    reply(&ProjectList {
        projects: ctx
            .projects
            .list()
            .into_iter()
            .map(|v| ctx.with_seq(v))
            .collect(),
    })
}

fn get(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    reply(&call.ctx.project(&p.project_id)?)
}

/// `project.delete` result.
#[derive(Serialize)]
struct Deleted {
    deleted: bool,
}

fn delete(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ProjectRef = parse_params(params)?;
    let ctx = call.ctx.clone();
    later(async move {
        ctx.delete_project(&p.project_id).await?;
        Ok(Deleted { deleted: true })
    })
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
        .ctx
        .feed
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
    call.ctx.projects.get(&p.project_id)?;
    let was = call.ctx.feed.unsubscribe(&p.project_id, call.client.id());
    reply(&Unsubscribed { unsubscribed: was })
}
