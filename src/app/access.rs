//! Access management on a running hub: client tokens, pairing requests and dashboard
//! sessions, with the side effects each change has (closing connections, the [`Event`]s
//! that notify admin connections and the desktop app, the control messages that tell
//! the other instances, expiring requests on time).
//!
//! [`Access`] is the one place where a revocation closes connections: a token revoked
//! here ([`Access::revoke`]) or on another instance ([`Access::revoked_elsewhere`]), a
//! token revoked between a connection's handshake and its registration
//! ([`Access::connected`]), and signed-out dashboard sessions
//! ([`Access::sessions_ended`]). Each revocation runs in one order: the store forgets
//! the credential, its connections are closed with 1008 (policy violation, RFC 6455
//! section 7.4.1), then the other instances and the admin connections are told.
//!
//! The `client.*` and `pairing.*` methods ([`crate::rpc`]) and the `/pair` endpoints
//! ([`crate::http::pairing`]) both go through here, so every path has the same effects.
//! It holds only the handles it uses, never the hub.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::pairing::{Approval, Claim, Issued, NewRequest, Outcome, PairingError, Pairings};
use crate::auth::security::token_hash;
use crate::auth::tokens::{
    self as client_tokens, ClientKind, ClientTokens, ClientView, NewClientToken,
};
use crate::connections::{CLOSE_POLICY, Client, Clients};
use crate::events::{Event, EventSink};
use crate::protocol::clients::ClientEvent;
use crate::protocol::error::RpcError;
use crate::protocol::scopes::{Scope, Scopes};
use crate::pubsub::nats::{Control, NatsBackplane};
use crate::storage::postgres::Database;
use crate::support::metrics::Metrics;
use crate::support::timestamp::now_ms;

/// The close reason sent to the connections of a revoked token (with 1008).
pub const REVOKED_REASON: &str = "client token revoked";

/// The close reason of a connection whose dashboard session was signed out.
pub const SIGNED_OUT_REASON: &str = "signed out";

/// How an instance learnt that a client token was revoked on another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedVia {
    /// The `token_revoked` control message over the broker (NATS), within milliseconds.
    Broker,
    /// The shared database's token reload ([`Access::start_upkeep`]), within 1 s.
    Reload,
}

impl RevokedVia {
    /// `broker` or `reload`, the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broker => "broker",
            Self::Reload => "reload",
        }
    }
}

/// What [`Access`] is built from.
pub struct AccessParts {
    /// The live client tokens.
    pub tokens: ClientTokens,
    /// The pending pairing requests.
    pub pairings: Pairings,
    /// The connections, to close those of a revoked credential.
    pub clients: Clients,
    /// Where admin and desktop news goes.
    pub sink: Arc<dyn EventSink>,
    /// The broker between instances, to tell them (public mode with `public.broker`).
    pub nats: Option<Arc<NatsBackplane>>,
    /// The shared database, when tokens and pairings live there (`public.database`).
    pub database: Option<Database>,
    /// `semantest_hub_tokens_revoked_elsewhere_total`.
    pub metrics: Arc<Metrics>,
    /// Spawns the expiry timers and the upkeep.
    pub tracker: TaskTracker,
    /// Ends them.
    pub shutdown: CancellationToken,
}

/// Client tokens, pairing requests and the revocations of tokens and sessions, with
/// their effects. Cheap to clone; every clone is the same.
#[derive(Clone)]
pub struct Access {
    inner: Arc<AccessParts>,
}

impl Access {
    /// Access over `parts`.
    pub fn new(parts: AccessParts) -> Self {
        Self {
            inner: Arc::new(parts),
        }
    }

    /// The live client tokens.
    pub fn tokens(&self) -> &ClientTokens {
        &self.inner.tokens
    }

    /// The pending pairing requests.
    pub fn pairings(&self) -> &Pairings {
        &self.inner.pairings
    }

    /// The shared database, when client tokens and pairings live there.
    pub fn database(&self) -> Option<&Database> {
        self.inner.database.as_ref()
    }

    fn emit(&self, event: Event) {
        self.inner.sink.emit(event);
    }

    /// Tells the other instances `control`; nothing without a broker between instances.
    fn announce(&self, control: &Control) {
        if let Some(nats) = &self.inner.nats {
            nats.send_control(control);
        }
    }

    /// Closes every connection made with token `id`; returns how many.
    fn close_token(&self, id: &str) -> usize {
        self.inner
            .clients
            .close_token(id, CLOSE_POLICY, REVOKED_REASON)
    }

    /// The `client.list` view of a live token.
    pub fn view(&self, id: &str) -> Option<ClientView> {
        let row = self.tokens().get(id)?;
        Some(client_tokens::view(
            &row,
            self.inner.clients.count_token(id),
        ))
    }

    /// Every live token, oldest first.
    pub fn list(&self) -> Vec<ClientView> {
        self.tokens()
            .list()
            .iter()
            .map(|row| client_tokens::view(row, self.inner.clients.count_token(&row.id)))
            .collect()
    }

    /// Every live token, oldest first, as the database has them now: with the shared
    /// database the in-memory copy is reloaded first (closing here the connections of tokens
    /// revoked elsewhere), so `client.list` shows tokens made through other instances.
    ///
    /// # Errors
    /// `INTERNAL` when the shared database cannot be read.
    pub async fn list_now(&self) -> Result<Vec<ClientView>, RpcError> {
        let gone = self
            .tokens()
            .refresh()
            .await
            .map_err(|err| RpcError::internal("client tokens", &err))?;
        for id in gone {
            self.revoked_elsewhere(&id, RevokedVia::Reload);
        }
        Ok(self.list())
    }

    fn changed(&self, event: ClientEvent, client: &ClientView) {
        self.emit(Event::ClientChanged {
            event,
            client: client.clone(),
        });
    }

    /// Creates a token and returns its view with the token (shown this once).
    ///
    /// # Errors
    /// `INVALID_PARAMS` for a bad name, origin or empty scopes; `INTERNAL` for the store.
    pub async fn create(&self, new: NewClientToken) -> Result<(ClientView, String), RpcError> {
        let (row, token) = self.tokens().create(new).await?;
        let view = client_tokens::view(&row, 0);
        self.changed(ClientEvent::Created, &view);
        Ok((view, token))
    }

    /// Revokes a token: it stops working at once, and every connection made with it is
    /// closed with 1008 (policy violation, RFC 6455 section 7.4.1).
    ///
    /// # Errors
    /// `CLIENT_NOT_FOUND`; `INTERNAL` for the store.
    pub async fn revoke(&self, id: &str) -> Result<ClientView, RpcError> {
        let row = self.tokens().revoke(id).await?;
        let closed = self.close_token(id);
        tracing::info!(client_id = %id, closed, "revoked token's connections closed");
        self.announce(&Control::TokenRevoked { id: id.to_string() });
        let view = client_tokens::view(&row, 0);
        self.changed(ClientEvent::Revoked, &view);
        Ok(view)
    }

    /// A connection made with a client token was registered: if the token was revoked
    /// since the handshake, the revocation still wins and the connection is closed with
    /// 1008; otherwise records that the token connected from `addr` (one store write per
    /// connection) and tells admin connections. Nothing for the owner's connections.
    pub async fn connected(&self, client: &Client, addr: SocketAddr) {
        let Some(id) = client.token_id() else {
            return;
        };
        if self.tokens().get(id).is_none() {
            client.close(CLOSE_POLICY, REVOKED_REASON);
            return;
        }
        if let Some(row) = self.tokens().touch(id, addr).await {
            let view = client_tokens::view(&row, self.inner.clients.count_token(id));
            self.changed(ClientEvent::Used, &view);
        }
    }

    /// Records a pairing request, tells admin connections and the desktop app, and arms
    /// its expiry.
    ///
    /// # Errors
    /// [`PairingError::TooManyPending`] or [`PairingError::TooManyFromAddress`].
    pub async fn request_pairing(&self, new: NewRequest) -> Result<Issued, PairingError> {
        let issued = self.pairings().request(new, now_ms()).await?;
        let request = &issued.request;
        tracing::info!(request_id = %request.id, origin = %request.origin, address = %request.address, "pairing requested");
        self.emit(Event::PairingRequested(request.clone()));
        self.announce(&Control::PairingRequested {
            request: request.clone(),
        });
        self.expire_at(issued.expires_at_ms);
        Ok(issued)
    }

    /// Runs [`Access::expire_due`] at `at` (epoch ms), unless the hub shuts down first.
    fn expire_at(&self, at: i64) {
        let access = self.clone();
        self.inner.tracker.spawn(async move {
            let wait = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_millis(wait)) => {}
                () = access.inner.shutdown.cancelled() => return,
            }
            access.expire_due().await;
        });
    }

    /// Expires what is due: each undecided request is reported as `pairing.resolved
    /// expired`, and each approved token nobody claimed in time is revoked (nobody holds it).
    pub async fn expire_due(&self) {
        let expired = match self.pairings().expire_due(now_ms()).await {
            Ok(expired) => expired,
            // Logged where it failed; the next sweep (any instance's) catches up.
            Err(_) => return,
        };
        for request_id in expired.requests {
            tracing::info!(request_id = %request_id, "pairing request expired");
            self.resolved(&request_id, Outcome::Expired);
        }
        for client_id in expired.unclaimed_clients {
            match self.revoke(&client_id).await {
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
        &self,
        id: &str,
        origin: &str,
        claim: &str,
    ) -> Result<Claim, PairingError> {
        self.expire_due().await;
        let claim = self.pairings().claim(id, origin, claim, now_ms()).await?;
        if let Claim::Approved {
            client_id, token, ..
        } = &claim
        {
            self.tokens().rekeyed(client_id, token_hash(token));
        }
        Ok(claim)
    }

    /// Tells this instance's admin connections and, through the broker, the other
    /// instances' that request `request_id` ended with `outcome`.
    fn resolved(&self, request_id: &str, outcome: Outcome) {
        self.emit(Event::PairingResolved {
            request_id: request_id.to_string(),
            outcome,
        });
        self.announce(&Control::PairingResolved {
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
        &self,
        request_id: &str,
        scopes: Option<Scopes>,
    ) -> Result<ClientView, RpcError> {
        let scopes = scopes.unwrap_or(Scopes::only(Scope::Events));
        let request = self.pairings().decidable(request_id, now_ms()).await?;
        // The value made here is never handed out: the claim gives the token a fresh one.
        let (row, _) = self
            .tokens()
            .create(NewClientToken {
                name: request.name.clone(),
                kind: ClientKind::Extension,
                origin: Some(request.origin.clone()),
                scopes,
            })
            .await?;
        let client_id = row.id.clone();
        let approval = Approval { client_id: row.id };
        if let Err(err) = self
            .pairings()
            .approve(request_id, now_ms(), approval)
            .await
        {
            if let Err(undo) = self.tokens().revoke(&client_id).await {
                tracing::warn!(client_id = %client_id, error = %crate::protocol::error::ErrorChain(&undo), "cannot revoke the token of a pairing decided meanwhile");
            }
            return Err(err.into());
        }
        tracing::info!(request_id, client_id = %client_id, scopes = %scopes.to_storage(), "pairing approved");
        // The token waits one TTL for its claim, then it is revoked.
        self.expire_at(now_ms().saturating_add(self.pairings().ttl_ms()));
        self.resolved(request_id, Outcome::Approved);
        let view = self.view(&client_id).ok_or_else(|| {
            RpcError::new(
                crate::protocol::error::ErrorKind::ClientNotFound,
                "the new token was revoked meanwhile",
            )
        })?;
        self.changed(ClientEvent::Created, &view);
        Ok(view)
    }

    /// Denies a pairing request; its claim then answers `denied` and no token exists.
    ///
    /// # Errors
    /// `PAIRING_NOT_FOUND`, `PAIRING_EXPIRED`, `PAIRING_DENIED`.
    pub async fn deny_pairing(&self, request_id: &str) -> Result<(), RpcError> {
        self.pairings().deny(request_id, now_ms()).await?;
        tracing::info!(request_id, "pairing denied");
        self.resolved(request_id, Outcome::Denied);
        Ok(())
    }

    /// With the shared database, starts the once-a-[`crate::storage::postgres::PROBE_EVERY`] (1 s)
    /// upkeep until shutdown: probe it (for `/health` and the 503 on new connections),
    /// reload the in-memory copy of the client tokens (so a token revoked through another
    /// instance leaves the Origin allowlist and the signature proofs, and its connections
    /// here are closed with 1008, within that bound even when no revocation notice
    /// arrives), and expire the pairing requests that are due (so they expire even when
    /// the instance that armed their timer is gone). Nothing to do with SQLite.
    pub fn start_upkeep(&self) {
        let Some(database) = self.database().cloned() else {
            return;
        };
        let access = self.clone();
        self.inner.tracker.spawn(async move {
            let mut tick = tokio::time::interval(crate::storage::postgres::PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = access.inner.shutdown.cancelled() => return,
                }
                if !database.probe().await {
                    continue;
                }
                match access.tokens().refresh().await {
                    Ok(gone) => {
                        for id in gone {
                            access.revoked_elsewhere(&id, RevokedVia::Reload);
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %crate::protocol::error::ErrorChain(&err), "cannot reload client tokens");
                    }
                }
                access.expire_due().await;
            }
        });
    }

    /// A client token was revoked on another instance of the deployment: closes this
    /// instance's connections made with it (1008, as for a local revocation) and drops
    /// it from the live tokens. `via` says how the news came; the first to bring it
    /// is counted in `semantest_hub_tokens_revoked_elsewhere_total{via}` (the reload
    /// only reports tokens it still found live, the broker path only counts when the
    /// token was still live here).
    pub fn revoked_elsewhere(&self, id: &str, via: RevokedVia) {
        let forgotten = self.tokens().forget(id);
        let closed = self.close_token(id);
        if via == RevokedVia::Reload || forgotten {
            self.inner.metrics.revoked_elsewhere(via.as_str());
        }
        tracing::info!(client_id = %id, closed, forgotten, via = via.as_str(), "token revoked on another instance");
    }

    /// Acts on control messages from the other instances until shutdown: revocations,
    /// and pairing news for this instance's admin connections (the request itself lives
    /// in the shared database).
    pub async fn follow_control(self, mut control: tokio::sync::mpsc::Receiver<Control>) {
        loop {
            let message = tokio::select! {
                message = control.recv() => message,
                () = self.inner.shutdown.cancelled() => None,
            };
            match message {
                Some(Control::TokenRevoked { id }) => {
                    self.revoked_elsewhere(&id, RevokedVia::Broker)
                }
                Some(Control::PairingRequested { request }) => {
                    self.emit(Event::PairingRequested(request))
                }
                Some(Control::PairingResolved {
                    request_id,
                    outcome,
                }) => {
                    // An approval created a token elsewhere: an Origin or id this
                    // instance remembered as unknown may be live now.
                    if outcome == Outcome::Approved {
                        self.tokens().forget_misses();
                    }
                    self.emit(Event::PairingResolved {
                        request_id,
                        outcome,
                    })
                }
                None => return,
            }
        }
    }

    /// Dashboard sessions ended (signed out; the store has forgotten them): closes the
    /// connections signed in with the session whose hash is `session`, or with `None`
    /// with any session, with 1008; returns how many.
    pub fn sessions_ended(&self, session: Option<&[u8; 32]>) -> usize {
        self.inner
            .clients
            .close_sessions(session, CLOSE_POLICY, SIGNED_OUT_REASON)
    }
}
