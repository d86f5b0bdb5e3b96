//! The HTTP server: binding, routes, the security gate and graceful shutdown.
//!
//! Routes:
//! - `GET /semantest-signature`: what this server is (no secrets);
//!   `?challenge=<nonce>&client=<client id>` adds a proof that it holds that client's
//!   token, bound to the address the request arrived on (docs/security.md).
//! - `POST /pair`, `POST /pair/{request_id}`: pairing for browser extensions
//!   ([`crate::http::pairing`]).
//! - `GET /health`: status, resources, counts, agent CLI.
//! - `GET /metrics`: Prometheus text format.
//! - `GET /ws`: the JSON-RPC WebSocket (token required).
//! - `POST|GET|DELETE /mcp`: the task queue's MCP tools over Streamable HTTP, token
//!   required ([`mcp`]); on a public hub only with `public.enable_tasks`, and only a
//!   token with the `tasks` scope.
//! - `GET /login?code=`: redeems a one-time dashboard link for a session cookie.
//! - `POST /session/check`, `POST /session/sign-out`, `POST /session/sign-out-everywhere`:
//!   whether the dashboard's session is live; sign it out; sign every session out
//!   ([`crate::app::sessions`]). Only from the dashboard's own origin.
//! - `GET /` and `GET /<file>`: the dashboard.
//!
//! Every request first passes the Host allowlist; all but the signature and health
//! endpoints (which discovery needs before pairing) also pass the Origin allowlist:
//! the built-in and configured origins plus the origins of live client tokens (kept in
//! memory). The pairing endpoints also admit extension origins not yet paired
//! ([`gate`]). The session cookie counts only from the dashboard's own origins, never
//! from another allowed one ([`websocket`]). Every refusal is a
//! [`crate::http::error::HttpError`]: a status and `{"error": {"kind", "message"}}`.
//!
//! Submodules, one per concern: [`gate`], [`discovery`] (signature, health, metrics),
//! [`websocket`] (authentication and the upgrade), [`dashboard`] (sign-in, sessions,
//! the dashboard's files).
//!
//! In public mode ([`crate::http::public`]) the hub listens on `public.bind` with TLS or behind
//! a trusted proxy, every request is charged to its client address first, and there is
//! no `/login` and no dashboard.

mod dashboard;
mod discovery;
mod gate;
mod mcp;
mod websocket;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::app::edge::PairingCtx;
use crate::app::hub::{Hub, StartError};
use crate::auth::security::dashboard_origins;
use crate::config::allowlist::HostAllowlist;
use crate::config::{Config, DEFAULT_PORT, Family, LAST_FALLBACK_PORT, LoadedConfig, Mode};
use crate::http::error::HttpError;
use crate::http::public::PublicGate;
use dashboard::DashboardState;
use discovery::DiscoveryState;
use gate::GateState;
use websocket::SocketState;

pub use crate::http::ws::read_error_close;
pub use discovery::OWNER_CLIENT_ID;
pub use websocket::websocket_settings;

/// Bytes tungstenite reads from a connection's socket at a time. Its default, 128 KiB
/// preallocated per connection, made 1,000 idle connections cost about 140 MB; larger
/// messages still arrive whole (the buffer grows while one is read).
const WS_READ_BUFFER: usize = 4 * 1024;

pub use crate::app::hub::RUNTIME_FILE;

/// The routes' state: one narrow context per group of routes, which its handlers
/// extract as their `State` ([`FromRef`]); none of them sees the [`Hub`].
#[derive(Clone)]
struct AppState {
    /// The gate every request passes.
    gate: Arc<GateState>,
    /// `/ws` and `/mcp`.
    sockets: Arc<SocketState>,
    /// `/pair`, `/pair/{request_id}`.
    pairing: PairingCtx,
    /// `/login`, `/session/*`.
    dashboard: Arc<DashboardState>,
    /// `/semantest-signature`, `/health`, `/metrics`.
    discovery: Arc<DiscoveryState>,
}

impl FromRef<AppState> for Arc<SocketState> {
    fn from_ref(state: &AppState) -> Self {
        state.sockets.clone()
    }
}

impl FromRef<AppState> for PairingCtx {
    fn from_ref(state: &AppState) -> Self {
        state.pairing.clone()
    }
}

impl FromRef<AppState> for Arc<DashboardState> {
    fn from_ref(state: &AppState) -> Self {
        state.dashboard.clone()
    }
}

impl FromRef<AppState> for Arc<DiscoveryState> {
    fn from_ref(state: &AppState) -> Self {
        state.discovery.clone()
    }
}

/// A running hub server.
pub struct HubServer {
    hub: Hub,
    addrs: Vec<SocketAddr>,
    serve_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HubServer {
    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.hub.port()
    }

    /// The addresses it listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `http://127.0.0.1:<port>`; in public mode `https://` (or `http://` behind a
    /// proxy) and the listening address, or loopback when it listens on every address.
    pub fn url(&self) -> String {
        local_url(&self.hub.config().config, self.hub.port())
    }

    /// Resolves when shutdown has been requested (by [`HubServer::shutdown`] or any
    /// holder of the hub).
    pub async fn cancelled(&self) {
        self.hub.shutdown().cancelled().await;
    }

    /// Shuts down gracefully: stops accepting, closes every connection with 1001, kills
    /// agent runs, waits up to `limits.shutdown_grace_s` for all tasks, then checkpoints
    /// and closes the store and removes the runtime file.
    pub async fn shutdown(self) {
        let serving = async {
            for task in self.serve_tasks {
                let _ = task.await;
            }
        };
        self.hub.stop(serving).await;
    }
}

/// Opens the hub and starts serving it.
///
/// The port is `port` if set (0 for any free port), else 3003 or the next free port up
/// to 3012, the range the browser extension probes.
///
/// # Errors
/// [`StartError`] when the hub cannot open its data or no port is free.
pub async fn start(config: LoadedConfig) -> Result<HubServer, StartError> {
    let public = config.config.mode() == Mode::Public;
    let listeners = if public {
        vec![crate::http::public::bind(&config.config.public)?]
    } else {
        bind(&config.config.bind, config.config.port)?
    };
    let tls = crate::http::public::tls_config(&config.config)?;
    let hub = Hub::open(config).await?;
    let port = listeners[0]
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_default();
    let settings = &hub.config().config;
    let mut origins = if public {
        settings.public.allowed_origins.clone()
    } else {
        dashboard_origins(port)
    };
    origins.extend(settings.allowed_origins.iter().cloned());
    let edge = hub.edge();
    let gate = match (public, listeners[0].local_addr()) {
        (true, Ok(local)) => Some(PublicGate::start(
            &settings.public,
            local,
            &edge.tracker,
            &edge.shutdown,
        )),
        _ => None,
    };
    // The dashboard's own origins, the only ones the session cookie counts from.
    let dashboard = Arc::new(dashboard_origins(port));
    let serves_tasks = settings.public.serves(Family::Tasks);
    let state = AppState {
        gate: Arc::new(GateState {
            ctx: edge.gate.clone(),
            hosts: HostAllowlist::loopback(port),
            origins,
            public: gate.clone(),
        }),
        sockets: Arc::new(SocketState {
            connections: edge.connections.clone(),
            auth: edge.auth.clone(),
            dashboard: dashboard.clone(),
            connection_slots: Arc::new(Semaphore::new(settings.limits.max_connections)),
            public: gate.clone(),
        }),
        pairing: edge.pairing.clone(),
        dashboard: Arc::new(DashboardState {
            ctx: edge.dashboard.clone(),
            origins: dashboard,
        }),
        discovery: Arc::new(DiscoveryState {
            ctx: edge.discovery.clone(),
            monitoring: edge.monitoring.clone(),
            public: gate.clone(),
        }),
    };
    let app = router(state, gate.is_some(), serves_tasks);

    let mut addrs = Vec::new();
    let mut serve_tasks = Vec::new();
    for listener in listeners {
        if public {
            addrs.push(listener.local_addr().map_err(|source| StartError::Io {
                action: "read the listening address".into(),
                source,
            })?);
            serve_tasks.push(crate::http::public::serve(
                &hub.config().config,
                listener,
                app.clone(),
                tls.clone(),
                &edge.tracker,
                &edge.shutdown,
            )?);
            continue;
        }
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| StartError::Io {
                action: "register the listener with the runtime".into(),
                source,
            })?;
        addrs.push(listener.local_addr().map_err(|source| StartError::Io {
            action: "read the listening address".into(),
            source,
        })?);
        serve_tasks.push(tokio::spawn(crate::connections::tcp::serve(
            listener,
            app.clone(),
            hub.shutdown().clone(),
            std::time::Duration::from_secs(hub.config().config.limits.header_timeout_s),
        )));
    }
    hub.start_background(port);
    hub.write_runtime_file(&local_url(&hub.config().config, hub.port()))
        .await?;
    let server = HubServer {
        hub,
        addrs,
        serve_tasks,
    };
    info!(url = %server.url(), addrs = ?server.addrs, mode = server.hub.mode().as_str(), "listening");
    Ok(server)
}

fn bind(addrs: &[IpAddr], port: Option<u16>) -> Result<Vec<std::net::TcpListener>, StartError> {
    let candidates: Vec<u16> = match port {
        None => (DEFAULT_PORT..=LAST_FALLBACK_PORT).collect(),
        // Port 0: the kernel picks a port free on the first address, which another
        // program may hold on the second; ask again for a fresh one a few times.
        Some(0) => vec![0; 8],
        Some(port) => vec![port],
    };
    let mut last_error = None;
    'ports: for candidate in candidates {
        let mut listeners = Vec::new();
        let mut chosen = candidate;
        for (i, ip) in addrs.iter().enumerate() {
            match bind_one(SocketAddr::new(*ip, chosen)) {
                Ok(listener) => {
                    if i == 0 {
                        chosen = listener.local_addr().map(|a| a.port()).unwrap_or(chosen);
                    }
                    listeners.push(listener);
                }
                // A machine without IPv6 still serves IPv4.
                Err(err)
                    if i > 0
                        && ip.is_ipv6()
                        && err.kind() == std::io::ErrorKind::AddrNotAvailable =>
                {
                    warn!(addr = %ip, "IPv6 loopback unavailable; serving IPv4 only");
                }
                Err(err) => {
                    last_error = Some(err);
                    continue 'ports;
                }
            }
        }
        return Ok(listeners);
    }
    let addrs_text = addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let ports = match port {
        None => format!("ports {DEFAULT_PORT}-{LAST_FALLBACK_PORT}"),
        Some(port) => format!("port {port}"),
    };
    Err(StartError::Bind {
        addrs: format!("{addrs_text} ({ports})"),
        source: last_error.unwrap_or_else(|| std::io::Error::other("no address to bind")),
    })
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn local_url(config: &Config, port: u16) -> String {
    match config.mode() {
        Mode::Local => format!("http://127.0.0.1:{port}"),
        Mode::Public => crate::http::public::local_url(&config.public, port),
    }
}

/// The routes; `public` for a public hub (no dashboard, no sign-in), which serves
/// `/mcp` only when it `serves_tasks`.
fn router(state: AppState, public: bool, serves_tasks: bool) -> Router {
    let routes = Router::new()
        .route("/semantest-signature", get(discovery::signature))
        .route("/health", get(discovery::health))
        .route("/metrics", get(discovery::metrics))
        .route("/ws", get(websocket::websocket))
        .route(
            "/pair",
            post(crate::http::pairing::request)
                .layer(DefaultBodyLimit::max(crate::http::pairing::MAX_BODY_BYTES)),
        )
        .route(
            "/pair/{request_id}",
            post(crate::http::pairing::claim)
                .layer(DefaultBodyLimit::max(crate::http::pairing::MAX_BODY_BYTES)),
        );
    let mcp_routes = Router::new()
        .route_service("/mcp", mcp::service(state.sockets.clone()))
        .layer(middleware::from_fn_with_state(
            state.sockets.clone(),
            mcp::authenticate_mcp,
        ));
    // A public hub has no dashboard and no sign-in: tokens only. It serves `/mcp` when
    // it serves the task queue.
    let routes = if public {
        let routes = routes.route("/login", get(no_login_in_public_mode));
        let routes = if serves_tasks {
            routes.merge(mcp_routes)
        } else {
            routes.route("/mcp", any(no_mcp_in_public_mode))
        };
        routes.fallback(not_found)
    } else {
        routes
            .route("/login", get(dashboard::login))
            .route("/session/check", post(dashboard::session_check))
            .route("/session/sign-out", post(dashboard::session_sign_out))
            .route(
                "/session/sign-out-everywhere",
                post(dashboard::session_sign_out_everywhere),
            )
            .merge(mcp_routes)
            .route("/", get(dashboard::index))
            .route("/{*path}", get(dashboard::asset))
    };
    routes
        .layer(middleware::from_fn_with_state(
            state.gate.clone(),
            gate::gate,
        ))
        // Outermost: whatever refused the request, the body has the one shape.
        .layer(middleware::map_response(crate::http::error::uniform))
        .with_state(state)
}

/// `/login` on a public hub: 404 `DISABLED`, there is no sign-in to redeem.
async fn no_login_in_public_mode() -> Response {
    HttpError::new(
        axum::http::StatusCode::NOT_FOUND,
        crate::protocol::error::ErrorKind::Disabled,
        "no /login on a public hub: it takes tokens only, and has no dashboard",
    )
    .into_response()
}

/// `/mcp` on a public hub that does not serve the task queue: 404 `DISABLED`.
async fn no_mcp_in_public_mode() -> Response {
    HttpError::new(
        axum::http::StatusCode::NOT_FOUND,
        crate::protocol::error::ErrorKind::Disabled,
        "no /mcp on this public hub: it serves the task queue only with public.enable_tasks",
    )
    .into_response()
}

/// Any other route: 404 `METHOD_NOT_FOUND`.
async fn not_found() -> Response {
    HttpError::not_found("not found").into_response()
}
