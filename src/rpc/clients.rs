//! The `client.*` and `pairing.*` methods (scope `admin`, checked by the dispatcher).

use serde_json::{Value, json};

use crate::access;
use crate::client_tokens::{ClientKind, NewClientToken};
use crate::error::{ErrorKind, RpcError};
use crate::hub::Hub;
use crate::protocol::clients::{
    ClientCreateParams, ClientRef, PairingApproveParams, PairingRef, method,
};
use crate::protocol::parse_params;
use crate::timestamp::now_ms;

/// Whether `method` belongs to this family.
pub(super) fn handles(method: &str) -> bool {
    method.starts_with("client.") || method.starts_with("pairing.")
}

/// Handles a method of this family.
///
/// # Errors
/// `METHOD_NOT_FOUND` for an unknown one, `INVALID_PARAMS`, or the kinds of
/// [`crate::access`].
pub(super) fn dispatch(hub: &Hub, method: &str, params: Value) -> Result<Value, RpcError> {
    match method {
        method::CLIENT_LIST => Ok(json!({ "clients": access::list(hub) })),
        method::CLIENT_CREATE => client_create(hub, params),
        method::CLIENT_REVOKE => parse_params::<ClientRef>(params)
            .and_then(|p| access::revoke(hub, &p.client_id))
            .map(|_| json!({ "revoked": true })),
        method::PAIRING_LIST => Ok(json!({ "requests": hub.pairings.list(now_ms()) })),
        method::PAIRING_APPROVE => parse_params::<PairingApproveParams>(params)
            .and_then(|p| access::approve_pairing(hub, &p.request_id, p.scopes))
            .map(|client| json!({ "client": client })),
        method::PAIRING_DENY => parse_params::<PairingRef>(params)
            .and_then(|p| access::deny_pairing(hub, &p.request_id))
            .map(|()| json!({ "denied": true })),
        other => Err(RpcError::new(
            ErrorKind::MethodNotFound,
            format!("unknown method {other:?}"),
        )),
    }
}

fn client_create(hub: &Hub, params: Value) -> Result<Value, RpcError> {
    let p: ClientCreateParams = parse_params(params)?;
    if p.scopes.is_empty() {
        return Err(RpcError::new(
            ErrorKind::InvalidParams,
            "at least one scope is required",
        ));
    }
    let (client, token) = access::create(
        hub,
        NewClientToken {
            name: p.name,
            kind: ClientKind::Manual,
            origin: p.origin,
            scopes: p.scopes,
        },
    )?;
    Ok(json!({ "client": client, "token": token }))
}
