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
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::app::hub::{Hub, StartError};
use crate::auth::security::dashboard_origins;
use crate::config::allowlist::HostAllowlist;
use crate::config::{DEFAULT_PORT, Family, LAST_FALLBACK_PORT, LoadedConfig, Mode};
use crate::http::error::HttpError;
use crate::http::public::PublicGate;
use crate::protocol::error::ErrorChain;

pub use crate::http::ws::read_error_close;
pub use discovery::OWNER_CLIENT_ID;
pub use websocket::websocket_settings;

/// Bytes tungstenite reads from a connection's socket at a time. Its default, 128 KiB
/// preallocated per connection, made 1,000 idle connections cost about 140 MB; larger
/// messages still arrive whole (the buffer grows while one is read).
const WS_READ_BUFFER: usize = 4 * 1024;

pub use crate::app::hub::RUNTIME_FILE;

#[derive(Clone)]
struct AppState {
    hub: Hub,
    /// The Host allowlist of a local hub (a public hub's is in `public`).
    hosts: Arc<HostAllowlist>,
    origins: Arc<Vec<String>>,
    /// The dashboard's own origins, the only ones the session cookie counts from.
    dashboard: Arc<Vec<String>>,
    connection_slots: Arc<Semaphore>,
    /// Set in public mode.
    public: Option<Arc<PublicGate>>,
}

impl FromRef<AppState> for Hub {
    fn from_ref(state: &AppState) -> Hub {
        state.hub.clone()
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
        local_url(&self.hub)
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
        info!("shutting down");
        self.hub.shutdown().cancel();
        self.hub.tracker().close();
        let grace = Duration::from_secs(self.hub.config().config.limits.shutdown_grace_s);
        let wait_all = async {
            self.hub.tracker().wait().await;
            for task in self.serve_tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(grace, wait_all).await.is_err() {
            warn!(
                grace_s = grace.as_secs(),
                "some tasks did not finish within the shutdown grace period"
            );
        }
        let store = self.hub.store().clone();
        let checkpoint = crate::support::blocking::off_runtime(move || {
            let checkpoint = store.checkpoint();
            store.close();
            checkpoint
        })
        .await;
        if let Err(err) = checkpoint {
            warn!(error = %ErrorChain(&err), "store checkpoint failed");
        }
        let _ = tokio::fs::remove_file(self.hub.config().data_dir.join(RUNTIME_FILE)).await;
        self.hub.release_data_dir();
        info!("stopped");
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
    let gate = match (public, listeners[0].local_addr()) {
        (true, Ok(local)) => Some(PublicGate::start(&hub, local)),
        _ => None,
    };
    let state = AppState {
        hub: hub.clone(),
        hosts: Arc::new(HostAllowlist::loopback(port)),
        origins: Arc::new(origins),
        dashboard: Arc::new(dashboard_origins(port)),
        connection_slots: Arc::new(Semaphore::new(settings.limits.max_connections)),
        public: gate,
    };
    let app = router(state);

    let mut addrs = Vec::new();
    let mut serve_tasks = Vec::new();
    for listener in listeners {
        if public {
            addrs.push(listener.local_addr().map_err(|source| StartError::Io {
                action: "read the listening address".into(),
                source,
            })?);
            serve_tasks.push(crate::http::public::serve(
                &hub,
                listener,
                app.clone(),
                tls.clone(),
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
    hub.access().start_upkeep();
    write_runtime_file(&hub)?;
    let server = HubServer {
        hub,
        addrs,
        serve_tasks,
    };
    info!(url = %server.url(), addrs = ?server.addrs, mode = hub_mode(&server.hub), "listening");
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

fn hub_mode(hub: &Hub) -> &'static str {
    hub.mode().as_str()
}

fn local_url(hub: &Hub) -> String {
    match hub.mode() {
        Mode::Local => format!("http://127.0.0.1:{}", hub.port()),
        Mode::Public => crate::http::public::local_url(&hub.config().config.public, hub.port()),
    }
}

fn write_runtime_file(hub: &Hub) -> Result<(), StartError> {
    use std::io::Write;
    let dir = &hub.config().data_dir;
    let mut body = json!({
        "url": local_url(hub),
        "port": hub.port(),
        "pid": std::process::id(),
        "instance_id": hub.instance_id(),
        "secret_store": hub.secret_store(),
    });
    let public = &hub.config().config.public;
    if hub.mode() == Mode::Public && !public.behind_proxy {
        // The name local clients must use for TLS (certificate and Host): the first of
        // `public.hosts`, as the configuration requires at least one.
        body["tls_host"] = json!(public.hosts.first());
    }
    let io_err = |source| StartError::Io {
        action: format!("write {}", dir.join(RUNTIME_FILE).display()),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_err)?;
    tmp.write_all(body.to_string().as_bytes()).map_err(io_err)?;
    tmp.persist(dir.join(RUNTIME_FILE))
        .map_err(|e| io_err(e.error))?;
    Ok(())
}

fn router(state: AppState) -> Router {
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
    let mcp_routes = mcp::routes(&state);
    // A public hub has no dashboard and no sign-in: tokens only. It serves `/mcp` when
    // it serves the task queue.
    let routes = if state.public.is_some() {
        let routes = routes.route("/login", get(no_login_in_public_mode));
        let routes = if state.hub.config().config.public.serves(Family::Tasks) {
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
        .layer(middleware::from_fn_with_state(state.clone(), gate::gate))
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
