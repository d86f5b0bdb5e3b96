//! `client.*` and `pairing.*`: client tokens and pairing requests (scope `admin`,
//! checked by the dispatcher before any handler runs). Handlers see only
//! [`Access`], which owns the rules and effects. Those that write, or read the
//! pairing requests, may await the shared database, so they answer through
//! [`later`].

use serde::Serialize;
use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, later};
use crate::app::access::Access;
use crate::auth::pairing::RequestView;
use crate::auth::tokens::{ClientKind, ClientView, NewClientToken};
use crate::config::Family;
use crate::protocol::clients::{
    ClientCreateParams, ClientRef, PairingApproveParams, PairingRef, method,
};
use crate::protocol::error::RpcError;
use crate::protocol::parse_params;
use crate::protocol::scopes::Scope;
use crate::support::timestamp::now_ms;

type Call<'a> = super::Call<'a, Access>;

const ADMIN: Option<Scope> = Some(Scope::Admin);

/// Every mode serves them (public mode's pairing has its own switch, `public.pairing`,
/// checked at `/pair`).
pub(super) const METHODS: &[Method] = &[
    row(method::CLIENT_LIST, ADMIN, None, |call, _| {
        let access = call.ctx.clone();
        later(async move {
            let clients = access.list_now().await?;
            Ok(Clients { clients })
        })
    }),
    row(method::CLIENT_CREATE, ADMIN, None, client_create),
    row(method::CLIENT_REVOKE, ADMIN, None, client_revoke),
    row(method::PAIRING_LIST, ADMIN, None, |call, _| {
        let access = call.ctx.clone();
        later(async move {
            let requests = access.pairings().list(now_ms()).await?;
            Ok(Requests { requests })
        })
    }),
    row(method::PAIRING_APPROVE, ADMIN, None, pairing_approve),
    row(method::PAIRING_DENY, ADMIN, None, pairing_deny),
];

/// A row of this family's table: its handlers see [`Access`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<Access>,
) -> Method {
    Method::new(name, scope, family, Handler::Access(handler))
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
    let access = call.ctx.clone();
    later(async move {
        let new = NewClientToken {
            name: p.name,
            kind: ClientKind::Manual,
            origin: p.origin,
            scopes: p.scopes,
        };
        let (client, token) = access.create(new).await?;
        Ok(Created { client, token })
    })
}

fn client_revoke(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: ClientRef = parse_params(params)?;
    let access = call.ctx.clone();
    later(async move {
        access.revoke(&p.client_id).await?;
        Ok(Revoked { revoked: true })
    })
}

fn pairing_approve(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingApproveParams = parse_params(params)?;
    let access = call.ctx.clone();
    later(async move {
        let client = access.approve_pairing(&p.request_id, p.scopes).await?;
        Ok(Approved { client })
    })
}

fn pairing_deny(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: PairingRef = parse_params(params)?;
    let access = call.ctx.clone();
    later(async move {
        access.deny_pairing(&p.request_id).await?;
        Ok(Denied { denied: true })
    })
}
