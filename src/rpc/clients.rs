//! `client.*` and `pairing.*`: client tokens and pairing requests (scope `admin`,
//! checked by the dispatcher before any handler runs).

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, reply};
use crate::access;
use crate::client_tokens::{ClientKind, ClientView, NewClientToken};
use crate::error::RpcError;
use crate::pairing::RequestView;
use crate::protocol::clients::{
    ClientCreateParams, ClientRef, PairingApproveParams, PairingRef, method,
};
use crate::protocol::parse_params;
use crate::timestamp::now_ms;

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::CLIENT_LIST => |call, _| {
            reply(&Clients {
                clients: access::list(call.hub),
            })
        },
        method::CLIENT_CREATE => client_create,
        method::CLIENT_REVOKE => client_revoke,
        method::PAIRING_LIST => |call, _| {
            reply(&Requests {
                requests: call.hub.pairings().list(now_ms()),
            })
        },
        method::PAIRING_APPROVE => pairing_approve,
        method::PAIRING_DENY => pairing_deny,
        _ => return None,
    })
}

/// `client.list` result.
#[derive(Serialize)]
struct Clients {
    clients: Vec<ClientView>,
}

/// `client.create` result: the token is in this response only.
#[derive(Serialize)]
struct Created {
    client: ClientView,
    token: String,
}

/// `pairing.approve` result.
#[derive(Serialize)]
struct Approved {
    client: ClientView,
}

/// `pairing.list` result.
#[derive(Serialize)]
struct Requests {
    requests: Vec<RequestView>,
}

/// `client.revoke` result.
#[derive(Serialize)]
struct Revoked {
    revoked: bool,
}

/// `pairing.deny` result.
#[derive(Serialize)]
struct Denied {
    denied: bool,
}

fn client_create(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ClientCreateParams = parse_params(params)?;
    let (client, token) = access::create(
        call.hub,
        NewClientToken {
            name: p.name,
            kind: ClientKind::Manual,
            origin: p.origin,
            scopes: p.scopes,
        },
    )?;
    reply(&Created { client, token })
}

fn client_revoke(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ClientRef = parse_params(params)?;
    access::revoke(call.hub, &p.client_id)?;
    reply(&Revoked { revoked: true })
}

fn pairing_approve(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingApproveParams = parse_params(params)?;
    let client = access::approve_pairing(call.hub, &p.request_id, p.scopes)?;
    reply(&Approved { client })
}

fn pairing_deny(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingRef = parse_params(params)?;
    access::deny_pairing(call.hub, &p.request_id)?;
    reply(&Denied { denied: true })
}
