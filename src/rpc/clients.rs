//! `client.*` and `pairing.*`: client tokens and pairing requests (scope `admin`,
//! checked by the dispatcher before any handler runs). Those that write, or read the
//! pairing requests, may await the shared database, so they answer through
//! [`later`].

use serde::Serialize;
use serde_json::Value;

use super::{Call, Handler, Reply, later};
use crate::app::access;
use crate::auth::pairing::RequestView;
use crate::auth::tokens::{ClientKind, ClientView, NewClientToken};
use crate::protocol::clients::{
    ClientCreateParams, ClientRef, PairingApproveParams, PairingRef, method,
};
use crate::protocol::error::RpcError;
use crate::protocol::parse_params;
use crate::support::timestamp::now_ms;

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::CLIENT_LIST => |call, _| {
            let hub = call.hub.clone();
            later(async move {
                let clients = access::list_now(&hub).await?;
                Ok(Clients { clients })
            })
        },
        method::CLIENT_CREATE => client_create,
        method::CLIENT_REVOKE => client_revoke,
        method::PAIRING_LIST => |call, _| {
            let hub = call.hub.clone();
            later(async move {
                let requests = hub.pairings().list(now_ms()).await?;
                Ok(Requests { requests })
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
    let hub = call.hub.clone();
    later(async move {
        let new = NewClientToken {
            name: p.name,
            kind: ClientKind::Manual,
            origin: p.origin,
            scopes: p.scopes,
        };
        let (client, token) = access::create(&hub, new).await?;
        Ok(Created { client, token })
    })
}

fn client_revoke(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ClientRef = parse_params(params)?;
    let hub = call.hub.clone();
    later(async move {
        access::revoke(&hub, &p.client_id).await?;
        Ok(Revoked { revoked: true })
    })
}

fn pairing_approve(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingApproveParams = parse_params(params)?;
    let hub = call.hub.clone();
    later(async move {
        let client = access::approve_pairing(&hub, &p.request_id, p.scopes).await?;
        Ok(Approved { client })
    })
}

fn pairing_deny(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingRef = parse_params(params)?;
    let hub = call.hub.clone();
    later(async move {
        access::deny_pairing(&hub, &p.request_id).await?;
        Ok(Denied { denied: true })
    })
}
