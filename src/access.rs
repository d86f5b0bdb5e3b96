//! Access management on a running hub: client tokens and pairing requests, with the
//! side effects each change has (closing connections, the [`Event`]s that notify admin
//! connections and the desktop app, expiring requests on time).
//!
//! The `client.*` and `pairing.*` methods ([`crate::rpc`]) and the `/pair` endpoints
//! ([`crate::pairing_http`]) both go through here, so every path has the same effects.

use std::net::SocketAddr;

use crate::client_tokens::{self, ClientKind, ClientView, NewClientToken};
use crate::clients::CLOSE_POLICY;
use crate::error::RpcError;
use crate::events::Event;
use crate::hub::Hub;
use crate::pairing::{Approval, Issued, NewRequest, Outcome, PairingError};
use crate::protocol::clients::ClientEvent;
use crate::scopes::{Scope, Scopes};
use crate::timestamp::now_ms;

pub use crate::clients::REVOKED_REASON;

/// The `client.list` view of a live token.
pub fn view(hub: &Hub, id: &str) -> Option<ClientView> {
    let row = hub.client_tokens().get(id)?;
    Some(client_tokens::view(&row, hub.clients().count_token(id)))
}

/// Every live token, oldest first.
pub fn list(hub: &Hub) -> Vec<ClientView> {
    hub.client_tokens()
        .list()
        .iter()
        .map(|row| client_tokens::view(row, hub.clients().count_token(&row.id)))
        .collect()
}

fn changed(hub: &Hub, event: ClientEvent, client: &ClientView) {
    hub.emit(Event::ClientChanged {
        event,
        client: client.clone(),
    });
}

/// Creates a token and returns its view with the token (shown this once).
///
/// # Errors
/// `INVALID_PARAMS` for a bad name, origin or empty scopes; `INTERNAL` for the store.
pub fn create(hub: &Hub, new: NewClientToken) -> Result<(ClientView, String), RpcError> {
    let (row, token) = hub.client_tokens().create(new)?;
    let view = client_tokens::view(&row, 0);
    changed(hub, ClientEvent::Created, &view);
    Ok((view, token))
}

/// Revokes a token: it stops working at once, and every connection made with it is
/// closed with 1008 (policy violation, RFC 6455 section 7.4.1).
///
/// # Errors
/// `CLIENT_NOT_FOUND`; `INTERNAL` for the store.
pub fn revoke(hub: &Hub, id: &str) -> Result<ClientView, RpcError> {
    let row = hub.client_tokens().revoke(id)?;
    let closed = hub.clients().close_token(id, CLOSE_POLICY, REVOKED_REASON);
    tracing::info!(client_id = %id, closed, "revoked token's connections closed");
    hub.announce_revocation(id);
    let view = client_tokens::view(&row, 0);
    changed(hub, ClientEvent::Revoked, &view);
    Ok(view)
}

/// Records that token `id` opened a connection from `addr` (one store write per
/// connection) and tells admin connections.
pub fn connected(hub: &Hub, id: &str, addr: SocketAddr) {
    if let Some(row) = hub.client_tokens().touch(id, addr) {
        let view = client_tokens::view(&row, hub.clients().count_token(id));
        changed(hub, ClientEvent::Used, &view);
    }
}

/// Records a pairing request, tells admin connections and the desktop app, and arms
/// its expiry.
///
/// # Errors
/// [`PairingError::TooManyPending`] or [`PairingError::TooManyFromAddress`].
pub fn request_pairing(hub: &Hub, new: NewRequest) -> Result<Issued, PairingError> {
    let issued = hub.pairings().request(new, now_ms())?;
    let request = &issued.request;
    tracing::info!(request_id = %request.id, origin = %request.origin, address = %request.address, "pairing requested");
    hub.emit(Event::PairingRequested(request.clone()));
    expire_at(hub, issued.expires_at_ms);
    Ok(issued)
}

/// Runs [`expire_due`] at `at` (epoch ms), unless the hub shuts down first.
fn expire_at(hub: &Hub, at: i64) {
    let hub2 = hub.clone();
    hub.tracker().spawn(async move {
        let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
            () = hub2.shutdown().cancelled() => return,
        }
        expire_due(&hub2);
    });
}

/// Expires what is due: each undecided request is reported as `pairing.resolved
/// expired`, and each approved token nobody claimed in time is revoked (nobody holds it).
pub fn expire_due(hub: &Hub) {
    let expired = hub.pairings().expire_due(now_ms());
    for request_id in expired.requests {
        tracing::info!(request_id = %request_id, "pairing request expired");
        resolved(hub, &request_id, Outcome::Expired);
    }
    for client_id in expired.unclaimed_clients {
        match revoke(hub, &client_id) {
            Ok(_) => tracing::info!(client_id = %client_id, "unclaimed pairing token revoked"),
            // The user revoked it meanwhile.
            Err(err) => {
                tracing::debug!(client_id = %client_id, error = %err, "unclaimed pairing token already gone")
            }
        }
    }
}

fn resolved(hub: &Hub, request_id: &str, outcome: Outcome) {
    hub.emit(Event::PairingResolved {
        request_id: request_id.to_string(),
        outcome,
    });
}

/// Approves a pairing request: issues a token bound to the request's Origin with
/// `scopes` (default `events`), which waits for the extension's claim.
///
/// # Errors
/// `PAIRING_NOT_FOUND`, `PAIRING_EXPIRED`, `PAIRING_DENIED`, `INVALID_PARAMS` for empty
/// scopes, `INTERNAL` for the store.
pub fn approve_pairing(
    hub: &Hub,
    request_id: &str,
    scopes: Option<Scopes>,
) -> Result<ClientView, RpcError> {
    let scopes = scopes.unwrap_or(Scopes::only(Scope::Events));
    let client_id = hub.pairings().approve(request_id, now_ms(), |request| {
        let (row, token) = hub.client_tokens().create(NewClientToken {
            name: request.name.clone(),
            kind: ClientKind::Extension,
            origin: Some(request.origin.clone()),
            scopes,
        })?;
        Ok::<_, RpcError>(Approval {
            client_id: row.id,
            token,
            scopes: row.scopes,
        })
    })?;
    tracing::info!(request_id, client_id = %client_id, scopes = %scopes.to_storage(), "pairing approved");
    // The token waits one TTL for its claim, then it is revoked.
    expire_at(hub, now_ms().saturating_add(hub.pairings().ttl_ms()));
    resolved(hub, request_id, Outcome::Approved);
    let view = view(hub, &client_id).ok_or_else(|| {
        RpcError::new(
            crate::error::ErrorKind::ClientNotFound,
            "the new token was revoked meanwhile",
        )
    })?;
    changed(hub, ClientEvent::Created, &view);
    Ok(view)
}

/// Denies a pairing request; its claim then answers `denied` and no token exists.
///
/// # Errors
/// `PAIRING_NOT_FOUND`, `PAIRING_EXPIRED`, `PAIRING_DENIED`.
pub fn deny_pairing(hub: &Hub, request_id: &str) -> Result<(), RpcError> {
    hub.pairings().deny(request_id, now_ms())?;
    tracing::info!(request_id, "pairing denied");
    resolved(hub, request_id, Outcome::Denied);
    Ok(())
}
