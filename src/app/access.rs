//! Access management on a running hub: client tokens and pairing requests, with the
//! side effects each change has (closing connections, the [`Event`]s that notify admin
//! connections and the desktop app, expiring requests on time).
//!
//! The `client.*` and `pairing.*` methods ([`crate::rpc`]) and the `/pair` endpoints
//! ([`crate::http::pairing`]) both go through here, so every path has the same effects.

use std::net::SocketAddr;

use crate::app::hub::{Hub, RevokedVia};
use crate::auth::pairing::{Approval, Claim, Issued, NewRequest, Outcome, PairingError};
use crate::auth::security::token_hash;
use crate::auth::tokens::{self as client_tokens, ClientKind, ClientView, NewClientToken};
use crate::connections::CLOSE_POLICY;
use crate::events::Event;
use crate::protocol::clients::ClientEvent;
use crate::protocol::error::RpcError;
use crate::protocol::scopes::{Scope, Scopes};
use crate::pubsub::nats::Control;
use crate::support::timestamp::now_ms;

pub use crate::connections::REVOKED_REASON;

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

/// Every live token, oldest first, as the database has them now: with the shared
/// database the in-memory copy is reloaded first (closing here the connections of tokens
/// revoked elsewhere), so `client.list` shows tokens made through other instances.
///
/// # Errors
/// `INTERNAL` when the shared database cannot be read.
pub async fn list_now(hub: &Hub) -> Result<Vec<ClientView>, RpcError> {
    let gone = hub
        .client_tokens()
        .refresh()
        .await
        .map_err(|err| RpcError::internal("client tokens", &err))?;
    for id in gone {
        hub.token_revoked_elsewhere(&id, RevokedVia::Reload);
    }
    Ok(list(hub))
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
pub async fn create(hub: &Hub, new: NewClientToken) -> Result<(ClientView, String), RpcError> {
    let (row, token) = hub.client_tokens().create(new).await?;
    let view = client_tokens::view(&row, 0);
    changed(hub, ClientEvent::Created, &view);
    Ok((view, token))
}

/// Revokes a token: it stops working at once, and every connection made with it is
/// closed with 1008 (policy violation, RFC 6455 section 7.4.1).
///
/// # Errors
/// `CLIENT_NOT_FOUND`; `INTERNAL` for the store.
pub async fn revoke(hub: &Hub, id: &str) -> Result<ClientView, RpcError> {
    let row = hub.client_tokens().revoke(id).await?;
    let closed = hub.clients().close_token(id, CLOSE_POLICY, REVOKED_REASON);
    tracing::info!(client_id = %id, closed, "revoked token's connections closed");
    hub.announce(&Control::TokenRevoked { id: id.to_string() });
    let view = client_tokens::view(&row, 0);
    changed(hub, ClientEvent::Revoked, &view);
    Ok(view)
}

/// Records that token `id` opened a connection from `addr` (one store write per
/// connection) and tells admin connections.
pub async fn connected(hub: &Hub, id: &str, addr: SocketAddr) {
    if let Some(row) = hub.client_tokens().touch(id, addr).await {
        let view = client_tokens::view(&row, hub.clients().count_token(id));
        changed(hub, ClientEvent::Used, &view);
    }
}

/// Records a pairing request, tells admin connections and the desktop app, and arms
/// its expiry.
///
/// # Errors
/// [`PairingError::TooManyPending`] or [`PairingError::TooManyFromAddress`].
pub async fn request_pairing(hub: &Hub, new: NewRequest) -> Result<Issued, PairingError> {
    let issued = hub.pairings().request(new, now_ms()).await?;
    let request = &issued.request;
    tracing::info!(request_id = %request.id, origin = %request.origin, address = %request.address, "pairing requested");
    hub.emit(Event::PairingRequested(request.clone()));
    hub.announce(&Control::PairingRequested {
        request: request.clone(),
    });
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
        expire_due(&hub2).await;
    });
}

/// Expires what is due: each undecided request is reported as `pairing.resolved
/// expired`, and each approved token nobody claimed in time is revoked (nobody holds it).
pub async fn expire_due(hub: &Hub) {
    let expired = match hub.pairings().expire_due(now_ms()).await {
        Ok(expired) => expired,
        // Logged where it failed; the next sweep (any instance's) catches up.
        Err(_) => return,
    };
    for request_id in expired.requests {
        tracing::info!(request_id = %request_id, "pairing request expired");
        resolved(hub, &request_id, Outcome::Expired);
    }
    for client_id in expired.unclaimed_clients {
        match revoke(hub, &client_id).await {
            Ok(_) => tracing::info!(client_id = %client_id, "unclaimed pairing token revoked"),
            // The user revoked it meanwhile.
            Err(err) => {
                tracing::debug!(client_id = %client_id, error = %err, "unclaimed pairing token already gone")
            }
        }
    }
}

/// Answers a claim for request `id` (after expiring what is due). A token handed over
/// through the shared database has a fresh value; this instance's copy learns it at once.
///
/// # Errors
/// [`PairingError::Unavailable`].
pub async fn claim_pairing(
    hub: &Hub,
    id: &str,
    origin: &str,
    claim: &str,
) -> Result<Claim, PairingError> {
    expire_due(hub).await;
    let claim = hub.pairings().claim(id, origin, claim, now_ms()).await?;
    if let Claim::Approved {
        client_id, token, ..
    } = &claim
    {
        hub.client_tokens().rekeyed(client_id, token_hash(token));
    }
    Ok(claim)
}

/// Tells this instance's admin connections and, through the broker, the other
/// instances' that request `request_id` ended with `outcome`.
fn resolved(hub: &Hub, request_id: &str, outcome: Outcome) {
    hub.emit(Event::PairingResolved {
        request_id: request_id.to_string(),
        outcome,
    });
    hub.announce(&Control::PairingResolved {
        request_id: request_id.to_string(),
        outcome,
    });
}

/// Approves a pairing request: issues a token bound to the request's Origin with
/// `scopes` (default `events`), which waits for the extension's claim. A decision or
/// expiry that lands between the check and the approval (on this instance or another)
/// wins, and the token just issued is revoked again.
///
/// # Errors
/// `PAIRING_NOT_FOUND`, `PAIRING_EXPIRED`, `PAIRING_DENIED`, `INVALID_PARAMS` for empty
/// scopes, `INTERNAL` for the store.
pub async fn approve_pairing(
    hub: &Hub,
    request_id: &str,
    scopes: Option<Scopes>,
) -> Result<ClientView, RpcError> {
    let scopes = scopes.unwrap_or(Scopes::only(Scope::Events));
    let request = hub.pairings().decidable(request_id, now_ms()).await?;
    let (row, token) = hub
        .client_tokens()
        .create(NewClientToken {
            name: request.name.clone(),
            kind: ClientKind::Extension,
            origin: Some(request.origin.clone()),
            scopes,
        })
        .await?;
    let client_id = row.id.clone();
    let approval = Approval {
        client_id: row.id,
        token,
        scopes: row.scopes,
    };
    if let Err(err) = hub.pairings().approve(request_id, now_ms(), approval).await {
        if let Err(undo) = hub.client_tokens().revoke(&client_id).await {
            tracing::warn!(client_id = %client_id, error = %crate::protocol::error::ErrorChain(&undo), "cannot revoke the token of a pairing decided meanwhile");
        }
        return Err(err.into());
    }
    tracing::info!(request_id, client_id = %client_id, scopes = %scopes.to_storage(), "pairing approved");
    // The token waits one TTL for its claim, then it is revoked.
    expire_at(hub, now_ms().saturating_add(hub.pairings().ttl_ms()));
    resolved(hub, request_id, Outcome::Approved);
    let view = view(hub, &client_id).ok_or_else(|| {
        RpcError::new(
            crate::protocol::error::ErrorKind::ClientNotFound,
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
pub async fn deny_pairing(hub: &Hub, request_id: &str) -> Result<(), RpcError> {
    hub.pairings().deny(request_id, now_ms()).await?;
    tracing::info!(request_id, "pairing denied");
    resolved(hub, request_id, Outcome::Denied);
    Ok(())
}

/// With the shared database, starts the once-a-[`crate::storage::postgres::PROBE_EVERY`] (1 s)
/// upkeep until shutdown: probe it (for `/health` and the 503 on new connections),
/// reload the in-memory copy of the client tokens (so a token revoked through another
/// instance leaves the Origin allowlist and the signature proofs, and its connections
/// here are closed with 1008, within that bound even when no revocation notice
/// arrives), and expire the pairing requests that are due (so they expire even when
/// the instance that armed their timer is gone). Nothing to do with SQLite.
pub fn start_upkeep(hub: &Hub) {
    let Some(database) = hub.database().cloned() else {
        return;
    };
    let hub2 = hub.clone();
    hub.tracker().spawn(async move {
        let mut tick = tokio::time::interval(crate::storage::postgres::PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = hub2.shutdown().cancelled() => return,
            }
            if !database.probe().await {
                continue;
            }
            match hub2.client_tokens().refresh().await {
                Ok(gone) => {
                    for id in gone {
                        hub2.token_revoked_elsewhere(&id, RevokedVia::Reload);
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "cannot reload client tokens");
                }
            }
            expire_due(&hub2).await;
        }
    });
}
