//! The method dispatcher: one JSON-RPC request in, one result or error out.
//!
//! Each method family is a file with a `find(method) -> Option<Handler>` that names its
//! handlers; [`FAMILIES`] lists them, so a new family is a new file and one line there.
//! A handler takes its typed params and returns a `Serialize` result, encoded by
//! [`reply`] (an encoding failure is an `INTERNAL` error, never a `null`). Shapes are in
//! [`crate::protocol`] and `docs/protocol.md`. Handlers never panic on client input;
//! every failure is an [`RpcError`] with a stable kind.

mod agent;
mod clients;
mod coordination;
mod events;
mod hub;
mod messages;
mod mode;
mod project;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::app::hub::Hub;
use crate::connections::Client;
use crate::projects::feed::ReplayTicket;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::protocol::scopes::required_scope;
use crate::pubsub::broker::PendingRequest;

/// What a handler answers: a result to send now, with or without work after it, or no
/// result yet.
#[derive(Debug)]
pub enum Reply {
    /// Send this result.
    Now(Value),
    /// Send this result, then replay the project's history to the caller and go live
    /// (`project.subscribe`).
    ThenReplay {
        /// The result.
        result: Value,
        /// The project.
        project_id: String,
        /// Which lines, for which subscription.
        ticket: ReplayTicket,
    },
    /// Send no response yet: `event.request` answers with the event that answers it, or
    /// `TIMEOUT`, once [`PendingRequest::answer`] completes.
    Answer(PendingRequest),
    /// The result is what this future yields (a handler that awaits the shared
    /// database); the connection awaits it before reading its next request, so
    /// responses keep their order.
    Later(Later),
}

/// A result still being computed: see [`Reply::Later`].
pub struct Later(pub Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>>);

impl std::fmt::Debug for Later {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Later(..)")
    }
}

/// One request's context: the hub and the calling connection.
pub struct Call<'a> {
    /// The hub.
    pub hub: &'a Hub,
    /// The caller.
    pub client: &'a Arc<Client>,
}

/// A method's handler.
pub type Handler = fn(&Call<'_>, Value) -> Result<Reply, RpcError>;

/// The method families, each a function from a method name to its handler.
const FAMILIES: &[fn(&str) -> Option<Handler>] = &[
    hub::find,
    project::find,
    agent::find,
    messages::find,
    coordination::find,
    clients::find,
    events::find,
];

/// The methods a client may also send as a JSON-RPC notification, without an `id`: the
/// hub runs them and sends no response (JSON-RPC 2.0 section 4.1: a notification says the
/// client does not want the response, not that the request is void). These are the
/// fire-and-forget ones, where a client sending at a high rate has no use for a result.
/// Any other method sent without an `id` has no effect. Errors of either are logged and
/// counted in `semantest_hub_rpc_notification_errors_total{kind}`, never answered.
pub const NOTIFICATION_METHODS: &[&str] = &[
    crate::protocol::events::method::EVENT_PUBLISH,
    crate::protocol::coordination::method::WORKER_HEARTBEAT,
];

/// Handles one request from `client`.
///
/// # Errors
/// `METHOD_NOT_FOUND` for a method the hub does not have (looked up first, so that a
/// mistyped name says so whatever the token), then `FORBIDDEN` when the method is outside
/// the client's scopes (see [`crate::protocol::scopes::required_scope`]), the mode's refusal,
/// `INVALID_PARAMS`, or the method's own kinds.
pub fn dispatch(
    hub: &Hub,
    client: &Arc<Client>,
    method_name: &str,
    params: Value,
) -> Result<Reply, RpcError> {
    let handler = FAMILIES
        .iter()
        .find_map(|find| find(method_name))
        .ok_or_else(|| {
            RpcError::new(
                ErrorKind::MethodNotFound,
                format!("unknown method {method_name:?}"),
            )
        })?;
    if let Some(scope) = required_scope(method_name)
        && !client.scopes().contains(scope)
    {
        return Err(RpcError::new(
            ErrorKind::Forbidden,
            format!("{method_name} needs the {scope} scope, which this token does not have"),
        )
        .with_details(json!({ "method": method_name, "scope": scope.as_str() })));
    }
    mode::check(hub, method_name)?;
    handler(&Call { hub, client }, params)
}

/// Encodes a result.
///
/// # Errors
/// `INTERNAL` if it cannot be encoded (a bug, logged).
pub fn reply<T: Serialize>(result: &T) -> Result<Reply, RpcError> {
    serde_json::to_value(result)
        .map(Reply::Now)
        .map_err(|err| RpcError::internal("encode result", &err))
}

/// A reply computed by `work` (which owns what it needs: clone the hub), encoded like
/// [`reply`]'s.
///
/// # Errors
/// None here; `work`'s errors and encoding failures are the eventual response.
pub fn later<T, F>(work: F) -> Result<Reply, RpcError>
where
    T: Serialize,
    F: Future<Output = Result<T, RpcError>> + Send + 'static,
{
    let encoded = async move {
        let result = work.await?;
        serde_json::to_value(&result).map_err(|err| RpcError::internal("encode result", &err))
    };
    Ok(Reply::Later(Later(Box::pin(encoded))))
}

/// `UNAUTHORIZED` unless the caller is the owner.
///
/// # Errors
/// `UNAUTHORIZED`.
pub fn require_owner(client: &Client) -> Result<(), RpcError> {
    if client.is_owner() {
        Ok(())
    } else {
        Err(RpcError::new(
            ErrorKind::Unauthorized,
            "only the owner may do this",
        ))
    }
}

/// `PROJECT_NOT_FOUND` for `project_id`.
pub fn not_found(project_id: &str) -> RpcError {
    RpcError::new(
        ErrorKind::ProjectNotFound,
        format!("no project with id {project_id}"),
    )
}
