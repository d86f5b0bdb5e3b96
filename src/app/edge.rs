//! The narrow contexts the composition root hands the HTTP edge, as [`contexts`] does
//! for the RPC method families: each group of routes sees the parts it uses and nothing
//! else, never the whole [`crate::app::hub::Hub`]. [`Edge`] holds one of each; the hub
//! builds it once, in [`crate::app::hub::Hub::open`], and the server splits it into its
//! routers' states.
//!
//! A connection's lifecycle (registered, a request seen, closed) spans parts, so it is
//! methods of [`ConnectionCtx`], the context of the routes that open connections (`/ws`,
//! `/mcp`) and of the connection loop.
//!
//! [`contexts`]: crate::app::contexts

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::access::Access;
use crate::app::contexts::{Contexts, Notices, Reports};
use crate::app::sessions::Sessions;
use crate::auth::security::LoginCodes;
use crate::config::{Limits, Mode, PublicConfig};
use crate::connections::{Client, Clients, NewClient};
use crate::coordinator::Coordinator;
use crate::events::Event;
use crate::projects::feed::{Feed, ReplayTicket};
use crate::protocol::Role;
use crate::protocol::hub::ConnectionChange;
use crate::pubsub::broker::Broker;
use crate::storage::sqlite::Store;
use crate::support::metrics::Metrics;
use crate::support::monitor::Monitor;

/// One context per group of HTTP routes, and what the server runs its own tasks with.
pub(crate) struct Edge {
    /// `/ws`, `/mcp` and the connection loop.
    pub(crate) connections: ConnectionCtx,
    /// Who a `/ws` or `/mcp` request is.
    pub(crate) auth: AuthCtx,
    /// The gate every request passes.
    pub(crate) gate: GateCtx,
    /// `POST /pair`, `POST /pair/{request_id}`.
    pub(crate) pairing: PairingCtx,
    /// `/login`, `/session/*`.
    pub(crate) dashboard: DashboardCtx,
    /// `/semantest-signature`.
    pub(crate) discovery: DiscoveryCtx,
    /// `/health`, `/metrics`.
    pub(crate) monitoring: MonitoringCtx,
    /// Every long-lived task (the listeners' helpers: the public gate's pruning, TLS
    /// reloads).
    pub(crate) tracker: TaskTracker,
    /// Cancelled to shut everything down.
    pub(crate) shutdown: CancellationToken,
}

/// What the routes that open connections, and the connection loop, use: the RPC
/// contexts to dispatch to, and a connection's lifecycle.
#[derive(Clone)]
pub(crate) struct ConnectionCtx {
    /// What each RPC method family sees, for the dispatcher.
    pub(crate) contexts: Arc<Contexts>,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// `limits.*`.
    pub(crate) limits: Limits,
    /// `Local` or `Public`.
    pub(crate) mode: Mode,
    /// Every connection's task.
    pub(crate) tracker: TaskTracker,
    /// Cancelled to shut everything down.
    pub(crate) shutdown: CancellationToken,
    /// Revocations that race a new connection (`Access::connected`).
    pub(crate) access: Access,
    pub(super) clients: Clients,
    pub(super) feed: Feed,
    pub(super) broker: Broker,
    pub(super) coordinator: Coordinator,
    pub(super) notices: Notices,
}

impl ConnectionCtx {
    /// Registers an accepted connection, and tells the others (`hub.connection`).
    pub(crate) fn register(&self, new: NewClient) -> (Arc<Client>, mpsc::Receiver<Utf8Bytes>) {
        let (client, rx) = self.clients.register(new);
        self.notices
            .connection_changed(ConnectionChange::Opened, &client);
        (client, rx)
    }

    /// A connection was accepted and registered.
    pub(crate) fn opened(&self) {
        self.metrics.connections_accepted.inc();
        self.notices.emit(Event::ConnectionsChanged);
    }

    /// A request arrived on a connection: a worker's lease is renewed.
    pub(crate) fn request_from(&self, client: &Client) {
        if client.role() == Role::Worker {
            self.coordinator.seen(client.id());
        }
    }

    /// Replays a project's history to `client` after `project.subscribe` answered.
    pub(crate) fn start_replay(&self, project_id: &str, client: Arc<Client>, ticket: ReplayTicket) {
        self.feed.start_replay(project_id, client, ticket);
    }

    /// A connection closed: its subscriptions, its worker, its registry entry.
    pub(crate) fn closed(&self, client: &Arc<Client>) {
        self.feed.unsubscribe_all(client.id());
        self.broker.disconnect(client.id());
        self.coordinator.disconnected(client.id());
        self.clients.remove(client);
        self.notices
            .connection_changed(ConnectionChange::Closed, client);
    }

    /// `hub.status`, `/health` and `hub.stats`: whether the shared database answers.
    pub(crate) fn reports(&self) -> &Reports {
        &self.contexts.hub.reports
    }
}

/// What authenticating a `/ws` or `/mcp` request reads.
#[derive(Clone)]
pub(crate) struct AuthCtx {
    /// SHA-256 of the owner token.
    pub(crate) owner_hash: [u8; 32],
    /// The live client tokens.
    pub(crate) access: Access,
    /// Dashboard sessions (a public hub has none).
    pub(crate) sessions: Sessions,
    /// `Local` or `Public`.
    pub(crate) mode: Mode,
}

/// What the gate reads besides its allowlists: the origins of live client tokens, and
/// the refusal counters.
#[derive(Clone)]
pub(crate) struct GateCtx {
    /// Prometheus metrics (`refused`).
    pub(crate) metrics: Arc<Metrics>,
    /// The live client tokens (their origins).
    pub(crate) access: Access,
}

/// What the pairing endpoints use: the pairing requests, and their limits.
#[derive(Clone)]
pub(crate) struct PairingCtx {
    /// Pairing requests and claims.
    pub(crate) access: Access,
    /// Prometheus metrics (`refused`).
    pub(crate) metrics: Arc<Metrics>,
    /// Whether this hub serves pairing (`public.serves_pairing()`).
    pub(crate) serves: bool,
    /// `pairing.request_ttl_s`: the `Retry-After` of a refused request, in seconds.
    pub(crate) request_ttl_s: u64,
}

/// What the dashboard's routes use: one-time sign-in codes and sessions.
#[derive(Clone)]
pub(crate) struct DashboardCtx {
    /// Dashboard sessions.
    pub(crate) sessions: Sessions,
    /// One-time dashboard sign-in codes.
    pub(crate) codes: Arc<LoginCodes>,
}

/// What `/semantest-signature` tells and proves.
#[derive(Clone)]
pub(crate) struct DiscoveryCtx {
    /// `Local` or `Public`.
    pub(crate) mode: Mode,
    /// A random id for this run of the hub.
    pub(crate) instance_id: String,
    /// `public.*`: the capabilities served.
    pub(crate) public: PublicConfig,
    /// SHA-256 of the owner token (the `owner` challenge's key).
    pub(crate) owner_hash: [u8; 32],
    /// The live client tokens (a client's challenge key).
    pub(crate) access: Access,
}

/// What `/health` and `/metrics` read.
#[derive(Clone)]
pub(crate) struct MonitoringCtx {
    /// `/health`.
    pub(crate) reports: Reports,
    /// Prometheus metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Resource figures.
    pub(crate) monitor: Monitor,
    /// The store's commit count.
    pub(crate) store: Store,
}
