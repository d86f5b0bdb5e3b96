//! `event.*`: subscriptions by type, publishing, and requests answered by correlation id
//! (docs/protocol.md, "Event routing"). The routing itself is [`crate::pubsub::broker`].

use serde_json::Value;

use super::{Handler, HandlerFn, Method, Reply, reply};
use crate::app::contexts::EventsCtx;
use crate::config::Family;
use crate::protocol::error::RpcError;
use crate::protocol::events::{TypesParams, method};
use crate::protocol::parse_params;
use crate::protocol::scopes::Scope;

type Call<'a> = super::Call<'a, EventsCtx>;

const EVENTS: Option<Scope> = Some(Scope::Events);

/// Every mode serves them.
pub(super) const METHODS: &[Method] = &[
    row(method::EVENT_SUBSCRIBE, EVENTS, None, subscribe),
    row(method::EVENT_UNSUBSCRIBE, EVENTS, None, unsubscribe),
    row(method::EVENT_PUBLISH, EVENTS, None, publish).also_as_notification(),
    row(method::EVENT_REQUEST, EVENTS, None, request),
];

/// A row of this family's table: its handlers see [`EventsCtx`] only.
const fn row(
    name: &'static str,
    scope: Option<Scope>,
    family: Option<Family>,
    handler: HandlerFn<EventsCtx>,
) -> Method {
    Method::new(name, scope, family, Handler::Events(handler))
}

fn subscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: TypesParams = parse_params(params)?;
    reply(&call.ctx.broker.subscribe(call.client, p.types)?)
}

fn unsubscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: TypesParams = parse_params(params)?;
    reply(&call.ctx.broker.unsubscribe(call.client, p.types)?)
}

fn publish(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    reply(
        &call
            .ctx
            .broker
            .publish(call.client, parse_params(params)?)?,
    )
}

/// Publishes now; the response is sent when the answer comes ([`Reply::Answer`]).
fn request(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let pending = call
        .ctx
        .broker
        .request(call.client, parse_params(params)?)?;
    Ok(Reply::Answer(pending))
}
