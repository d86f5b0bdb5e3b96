//! The method dispatcher: one JSON-RPC request in, one result or error out.
//!
//! Shapes are in [`crate::protocol`] and `docs/protocol.md`. Handlers never panic on
//! client input; every failure is an [`RpcError`] with a stable kind.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::agent;
use crate::broker::PendingRequest;
use crate::clients::Client;
use crate::coordinator;
use crate::error::{ErrorKind, RpcError};
use crate::feed::ReplayTicket;
use crate::hub::{Hub, PRODUCT, VERSION};
use crate::protocol::coordination::{self as coord, method as coord_method};
use crate::protocol::events::{self, method as event_method};
use crate::protocol::{
    AgentRunParams, HelloParams, MessagesListParams, PROTOCOL_VERSION, ProjectCreateParams,
    ProjectRef, SubscribeParams, method, parse_params,
};
use crate::store::MessageQuery;
use crate::timestamp::parse_rfc3339;

/// Work to do after the response has been queued.
#[derive(Debug)]
pub enum After {
    /// Nothing.
    Nothing,
    /// Replay a project's history, then go live.
    Replay {
        /// The project.
        project_id: String,
        /// Which lines, for which subscription.
        ticket: ReplayTicket,
    },
    /// Send no response yet: `event.request` answers with the event that answers it, or
    /// `TIMEOUT`, once [`PendingRequest::answer`] completes.
    Answer(PendingRequest),
}

/// Bytes of stored lines returned by one `messages.list` page at most; a page stops
/// early (with `has_more`) rather than build a huge response.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Handles one request from `client`.
///
/// # Errors
/// `METHOD_NOT_FOUND`, `INVALID_PARAMS`, or the method's own kinds.
pub fn dispatch(
    hub: &Hub,
    client: &Arc<Client>,
    method_name: &str,
    params: Value,
) -> Result<(Value, After), RpcError> {
    let done = |value: Value| Ok((value, After::Nothing));
    match method_name {
        method::HUB_HELLO => {
            let p: HelloParams = parse_params(params)?;
            let name = p.name.map(|n| n.chars().take(100).collect::<String>());
            client.set_identity(p.role, name);
            hub.clients.broadcast_change("updated", client);
            done(json!({
                "connection_id": client.id(),
                "protocol": PROTOCOL_VERSION,
                "server": {"product": PRODUCT, "version": VERSION, "instance_id": hub.instance_id},
            }))
        }
        method::HUB_STATUS => done(hub.status_json()),
        method::HUB_HEALTH => done(hub.health_json()),
        method::HUB_CONFIG => done(json!({
            "values": hub.config.sources.iter()
                .map(|(key, value, source)| json!({"key": key, "value": value, "source": source}))
                .collect::<Vec<_>>(),
            "config_file": hub.config.config_file,
            "data_dir": hub.config.data_dir,
            "log_dir": hub.config.log_dir,
        })),
        method::HUB_CONNECTIONS => done(json!({ "connections": hub.clients.infos() })),
        method::HUB_LOGIN_LINK => {
            require_owner(client)?;
            done(json!({ "url": hub.login_link() }))
        }
        method::PROJECT_CREATE => {
            let p: ProjectCreateParams = parse_params(params)?;
            let view = hub.projects.create(&p.path, p.name.as_deref())?;
            hub.feed.add_project(&view.id);
            coordinator::project_added(hub, &view.id, &view.path);
            tracing::info!(project_id = %view.id, path = %view.path, "project created");
            hub.broadcast(method::PROJECT_CREATED, &json!({ "project": view }));
            hub.refresh_status();
            done(serde_json::to_value(view).unwrap_or_default())
        }
        method::PROJECT_LIST => {
            let projects: Vec<_> = hub
                .projects
                .list()
                .into_iter()
                .map(|v| hub.with_seq(v))
                .collect();
            done(json!({ "projects": projects }))
        }
        method::PROJECT_GET => {
            let p: ProjectRef = parse_params(params)?;
            done(serde_json::to_value(hub.project(&p.project_id)?).unwrap_or_default())
        }
        method::PROJECT_DELETE => {
            let p: ProjectRef = parse_params(params)?;
            hub.projects.delete(&p.project_id)?;
            hub.feed.remove_project(&p.project_id);
            coordinator::project_deleted(hub, &p.project_id);
            tracing::info!(project_id = %p.project_id, "project deleted");
            hub.broadcast(
                method::PROJECT_DELETED,
                &json!({ "project_id": p.project_id }),
            );
            hub.refresh_status();
            done(json!({ "deleted": true }))
        }
        method::PROJECT_SUBSCRIBE => {
            let p: SubscribeParams = parse_params(params)?;
            let (last_seq, ticket) = hub
                .feed
                .subscribe(&p.project_id, client, p.after_seq)
                .ok_or_else(|| not_found(&p.project_id))?;
            let after = match ticket {
                Some(ticket) => After::Replay {
                    project_id: p.project_id.clone(),
                    ticket,
                },
                None => After::Nothing,
            };
            Ok((
                json!({ "project_id": p.project_id, "last_seq": last_seq }),
                after,
            ))
        }
        method::PROJECT_UNSUBSCRIBE => {
            let p: ProjectRef = parse_params(params)?;
            hub.projects.get(&p.project_id)?;
            let was = hub.feed.unsubscribe(&p.project_id, client.id());
            done(json!({ "unsubscribed": was }))
        }
        method::AGENT_RUN => {
            let p: AgentRunParams = parse_params(params)?;
            let project_id = p.project_id.clone();
            let run_id = agent::start_run(hub, p)?;
            done(json!({ "run_id": run_id, "project_id": project_id }))
        }
        method::AGENT_KILL => {
            let p: ProjectRef = parse_params(params)?;
            agent::kill_run(hub, &p.project_id)?;
            done(json!({ "killed": true }))
        }
        method::AGENT_NEW_SESSION => {
            let p: ProjectRef = parse_params(params)?;
            if hub.projects.active_run(&p.project_id)?.is_some() {
                return Err(RpcError::new(
                    ErrorKind::ProjectBusy,
                    "the project is running; kill the run before starting a new session",
                ));
            }
            let view = hub.projects.set_session(&p.project_id, None)?;
            hub.broadcast_state(&p.project_id, None, None);
            done(serde_json::to_value(hub.with_seq(view)).unwrap_or_default())
        }
        method::MESSAGES_LIST => {
            let p: MessagesListParams = parse_params(params)?;
            hub.projects.get(&p.project_id)?;
            let limit = p.limit.unwrap_or(200);
            if !(1..=1000).contains(&limit) {
                return Err(RpcError::new(
                    ErrorKind::InvalidParams,
                    "limit must be between 1 and 1000",
                ));
            }
            let time = |value: Option<String>| {
                value
                    .map(|text| parse_rfc3339(&text))
                    .transpose()
                    .map_err(|err| RpcError::new(ErrorKind::InvalidParams, err))
            };
            let query = MessageQuery {
                project_id: p.project_id,
                after_seq: p.after_seq,
                before_seq: p.before_seq,
                since: time(p.since)?,
                until: time(p.until)?,
                kinds: p.kinds.unwrap_or_default(),
                limit,
                max_bytes: MAX_PAGE_BYTES,
            };
            let page = hub
                .store
                .messages(&query)
                .map_err(|err| RpcError::internal("messages.list", &err))?;
            done(json!({ "messages": page.messages, "has_more": page.has_more }))
        }
        // The coordinator: docs/coordination.md.
        coord_method::WORKER_REGISTER => done(coordinator::worker_register(
            hub,
            client,
            parse_params(params)?,
        )?),
        coord_method::WORKER_HEARTBEAT => done(coordinator::worker_heartbeat(hub, client)?),
        coord_method::WORKER_LIST => done(coordinator::worker_list(hub)),
        coord_method::TASK_CREATE => done(coordinator::task_create(
            hub,
            client,
            parse_params(params)?,
        )?),
        coord_method::TASK_LIST => done(coordinator::task_list(hub, parse_params(params)?)?),
        coord_method::TASK_GET => done(coordinator::task_get(
            hub,
            &parse_params::<coord::TaskRef>(params)?.task_id,
        )?),
        coord_method::TASK_CANCEL => done(coordinator::task_cancel(
            hub,
            &parse_params::<coord::TaskRef>(params)?.task_id,
        )?),
        coord_method::TASK_COMPLETE => done(coordinator::task_complete(
            hub,
            client,
            parse_params(params)?,
        )?),
        coord_method::TASK_FAIL => {
            done(coordinator::task_fail(hub, client, parse_params(params)?)?)
        }
        coord_method::PROJECT_CONFIGURE => {
            done(coordinator::project_configure(hub, parse_params(params)?)?)
        }
        coord_method::COORDINATION_STATUS => {
            let p: coord::StatusParams = parse_params(params)?;
            done(serde_json::to_value(coordinator::status(hub, &p.project_id)?).unwrap_or_default())
        }
        // Event routing: docs/protocol.md, "Event routing".
        event_method::EVENT_SUBSCRIBE => {
            let p: events::TypesParams = parse_params(params)?;
            done(events::to_result(&hub.broker.subscribe(client, p.types)?)?)
        }
        event_method::EVENT_UNSUBSCRIBE => {
            let p: events::TypesParams = parse_params(params)?;
            done(events::to_result(
                &hub.broker.unsubscribe(client, p.types)?,
            )?)
        }
        event_method::EVENT_PUBLISH => done(events::to_result(
            &hub.broker.publish(client, parse_params(params)?)?,
        )?),
        event_method::EVENT_REQUEST => Ok((
            Value::Null,
            After::Answer(hub.broker.request(client, parse_params(params)?)?),
        )),
        other => Err(RpcError::new(
            ErrorKind::MethodNotFound,
            format!("unknown method {other:?}"),
        )),
    }
}

fn require_owner(client: &Client) -> Result<(), RpcError> {
    if client.is_owner() {
        Ok(())
    } else {
        Err(RpcError::new(
            ErrorKind::Unauthorized,
            "only the owner may do this",
        ))
    }
}

fn not_found(project_id: &str) -> RpcError {
    RpcError::new(
        ErrorKind::ProjectNotFound,
        format!("no project with id {project_id}"),
    )
}
