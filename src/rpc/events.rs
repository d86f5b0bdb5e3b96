//! `event.*`: subscriptions by type, publishing, and requests answered by correlation id
//! (docs/protocol.md, "Event routing"). The routing itself is [`crate::pubsub::broker`].

use serde_json::Value;

use super::{Call, Handler, Reply, reply};
use crate::protocol::error::RpcError;
use crate::protocol::events::{TypesParams, method};
use crate::protocol::parse_params;

pub(super) fn find(name: &str) -> Option<Handler> {
    Some(match name {
        method::EVENT_SUBSCRIBE => subscribe,
        method::EVENT_UNSUBSCRIBE => unsubscribe,
        method::EVENT_PUBLISH => publish,
        method::EVENT_REQUEST => request,
        _ => return None,
    })
}

fn subscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: TypesParams = parse_params(params)?;
    reply(&call.hub.broker().subscribe(call.client, p.types)?)
}

fn unsubscribe(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let p: TypesParams = parse_params(params)?;
    reply(&call.hub.broker().unsubscribe(call.client, p.types)?)
}

fn publish(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    reply(
        &call
            .hub
            .broker()
            .publish(call.client, parse_params(params)?)?,
    )
}

/// Publishes now; the response is sent when the answer comes ([`Reply::Answer`]).
fn request(call: &Call<'_>, params: Value) -> Result<Reply, RpcError> {
    let pending = call
        .hub
        .broker()
        .request(call.client, parse_params(params)?)?;
    Ok(Reply::Answer(pending))
}
