//! The method dispatcher: one JSON-RPC request in, one result or error out.
//!
//! Each method family is a file with a `find(method) -> Option<Handler>` that names its
//! handlers; [`FAMILIES`] lists them, so a new family is a new file and one line there.
//! A handler takes its typed params and returns a `Serialize` result, encoded by
//! [`reply`] (an encoding failure is an `INTERNAL` error, never a `null`). Shapes are in
//! [`crate::protocol`] and `docs/protocol.md`. Handlers never panic on client input;
//! every failure is an [`RpcError`] with a stable kind.

mod agent;
mod coordination;
mod hub;
mod messages;
mod project;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::clients::Client;
use crate::error::{ErrorKind, RpcError};
use crate::feed::ReplayTicket;
use crate::hub::Hub;

/// Work to do after the response has been queued.
#[derive(Debug, PartialEq)]
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
}

/// One request's context: the hub and the calling connection.
pub struct Call<'a> {
    /// The hub.
    pub hub: &'a Hub,
    /// The caller.
    pub client: &'a Arc<Client>,
}

/// A result and what to do after sending it.
pub type Reply = (Value, After);

/// A method's handler.
pub type Handler = fn(&Call<'_>, Value) -> Result<Reply, RpcError>;

/// The method families, each a function from a method name to its handler.
const FAMILIES: &[fn(&str) -> Option<Handler>] = &[
    hub::find,
    project::find,
    agent::find,
    messages::find,
    coordination::find,
];

/// Handles one request from `client`.
///
/// # Errors
/// `METHOD_NOT_FOUND`, `INVALID_PARAMS`, or the method's own kinds.
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
    handler(&Call { hub, client }, params)
}

/// Encodes a result.
///
/// # Errors
/// `INTERNAL` if it cannot be encoded (a bug, logged).
pub fn reply<T: Serialize>(result: &T) -> Result<Reply, RpcError> {
    let value =
        serde_json::to_value(result).map_err(|err| RpcError::internal("encode result", &err))?;
    Ok((value, After::Nothing))
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
