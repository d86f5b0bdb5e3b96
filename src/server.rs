//! The HTTP server: binding, routes, the security gate and graceful shutdown.
//!
//! Routes:
//! - `GET /semantest-signature`: what this server is (no secrets); `?challenge=<nonce>`
//!   adds a proof that it knows the owner token.
//! - `GET /health`: status, resources, counts, agent CLI.
//! - `GET /metrics`: Prometheus text format.
//! - `GET /ws`: the JSON-RPC WebSocket (token required).
//! - `GET /login?code=`: redeems a one-time dashboard link for a session cookie.
//! - `GET /` and `GET /<file>`: the dashboard.
//!
//! Every request first passes the Host allowlist; all but the signature and health
//! endpoints (which discovery needs before pairing) also pass the Origin allowlist.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::assets;
use crate::clients::NewClient;
use crate::config::{DEFAULT_PORT, LAST_FALLBACK_PORT, LoadedConfig};
use crate::error::ErrorChain;
use crate::hub::{Hub, PRODUCT, StartError, VERSION};
use crate::protocol::{PROTOCOL_VERSION, SUBPROTOCOL};
use crate::security::{
    Credential, OriginCheck, SESSION_COOKIE, allowed_hosts, builtin_origins, challenge_proof,
    check_origin, extract_credential, hashes_equal, host_allowed, new_token, token_hash,
};
use crate::timestamp::now_ms;

/// How long a dashboard session cookie lasts.
const SESSION_DAYS: i64 = 30;

/// Bytes tungstenite reads from a connection's socket at a time. Its default, 128 KiB
/// preallocated per connection, made 1,000 idle connections cost about 140 MB; larger
/// messages still arrive whole (the buffer grows while one is read).
const WS_READ_BUFFER: usize = 4 * 1024;

/// The name of the runtime file in the data directory that tells local clients where
/// the hub listens: `{"url", "port", "pid", "instance_id"}`.
pub const RUNTIME_FILE: &str = "server.json";

#[derive(Clone)]
struct AppState {
    hub: Hub,
    hosts: Arc<Vec<String>>,
    origins: Arc<Vec<String>>,
    connection_slots: Arc<Semaphore>,
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

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
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
        match tokio::task::spawn_blocking(move || store.checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %ErrorChain(&err), "store checkpoint failed"),
            Err(_) => warn!("store checkpoint panicked"),
        }
        let _ = std::fs::remove_file(self.hub.config().data_dir.join(RUNTIME_FILE));
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
    let listeners = bind(&config.config.bind, config.config.port)?;
    let hub = Hub::open(config).await?;
    let port = listeners[0]
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_default();
    let mut origins = builtin_origins(port);
    origins.extend(hub.config().config.allowed_origins.iter().cloned());
    let state = AppState {
        hub: hub.clone(),
        hosts: Arc::new(allowed_hosts(port)),
        origins: Arc::new(origins),
        connection_slots: Arc::new(Semaphore::new(hub.config().config.limits.max_connections)),
    };
    let app = router(state);

    let mut addrs = Vec::new();
    let mut serve_tasks = Vec::new();
    for listener in listeners {
        let listener =
            tokio::net::TcpListener::from_std(listener).map_err(|source| StartError::Io {
                action: "register the listener with the runtime".into(),
                source,
            })?;
        addrs.push(listener.local_addr().map_err(|source| StartError::Io {
            action: "read the listening address".into(),
            source,
        })?);
        let shutdown = hub.shutdown().clone();
        let service = app
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        // Replies are small writes that must leave at once: without TCP_NODELAY, Nagle's
        // algorithm holds one behind the peer's delayed ACK (RFC 1122 section 4.2.3.4).
        let listener = listener.tap_io(|stream| {
            if let Err(err) = stream.set_nodelay(true) {
                debug!(error = %err, "cannot set TCP_NODELAY on an accepted connection");
            }
        });
        serve_tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
            if let Err(err) = served {
                warn!(error = %err, "server stopped with an error");
            }
        }));
    }
    hub.start_background(port);
    write_runtime_file(&hub)?;
    let server = HubServer {
        hub,
        addrs,
        serve_tasks,
    };
    info!(url = %server.url(), addrs = ?server.addrs, "listening");
    Ok(server)
}

fn bind(addrs: &[IpAddr], port: Option<u16>) -> Result<Vec<std::net::TcpListener>, StartError> {
    let candidates: Vec<u16> = match port {
        None => (DEFAULT_PORT..=LAST_FALLBACK_PORT).collect(),
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

fn write_runtime_file(hub: &Hub) -> Result<(), StartError> {
    use std::io::Write;
    let dir = &hub.config().data_dir;
    let body = json!({
        "url": format!("http://127.0.0.1:{}", hub.port()),
        "port": hub.port(),
        "pid": std::process::id(),
        "instance_id": hub.instance_id(),
    });
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
    Router::new()
        .route("/semantest-signature", get(signature))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
        .route("/login", get(login))
        .route("/", get(index))
        .route("/{*path}", get(asset))
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// The Host and Origin allowlists (see [`crate::security`]).
async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if !host_allowed(headers, &state.hosts) {
        state.hub.metrics().refused("host");
        return (StatusCode::FORBIDDEN, "host not allowed").into_response();
    }
    let discovery = matches!(request.uri().path(), "/semantest-signature" | "/health");
    if !discovery && check_origin(headers, &state.origins) == OriginCheck::Denied {
        state.hub.metrics().refused("origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    next.run(request).await
}

#[derive(Deserialize)]
struct SignatureQuery {
    challenge: Option<String>,
}

async fn signature(State(state): State<AppState>, Query(query): Query<SignatureQuery>) -> Response {
    let hub = &state.hub;
    let mut body = json!({
        "service": "semantest",
        "product": PRODUCT,
        "version": VERSION,
        "protocol": PROTOCOL_VERSION,
        "mode": "local",
        "instance_id": hub.instance_id(),
        "ws_path": "/ws",
        "ws_subprotocol": SUBPROTOCOL,
        "capabilities": ["projects", "agents", "messages", "tasks"],
    });
    if let Some(nonce) = query.challenge {
        if nonce.is_empty() || nonce.len() > 256 {
            return (
                StatusCode::BAD_REQUEST,
                "challenge must be 1 to 256 characters",
            )
                .into_response();
        }
        body["challenge"] =
            json!({ "nonce": nonce, "proof": challenge_proof(hub.owner_hash(), &nonce) });
    }
    axum::Json(body).into_response()
}

async fn health(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(state.hub.health()).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn metrics(State(state): State<AppState>) -> Response {
    let hub = &state.hub;
    hub.metrics().observe_process(&hub.monitor().latest());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        hub.metrics().encode(),
    )
        .into_response()
}

/// Who a WebSocket request authenticated as, or why not.
fn authenticate(hub: &Hub, headers: &HeaderMap) -> Result<(), &'static str> {
    match extract_credential(headers) {
        None => Err("a token is required"),
        Some(Credential::Token(token)) if hashes_equal(&token_hash(&token), hub.owner_hash()) => {
            Ok(())
        }
        Some(Credential::Token(_)) => Err("invalid token"),
        Some(Credential::Session(session)) => match hub
            .store()
            .dashboard_session_valid(&token_hash(&session), now_ms())
        {
            Ok(true) => Ok(()),
            Ok(false) => Err("sign-in expired; open the dashboard link again"),
            Err(err) => {
                warn!(error = %ErrorChain(&err), "session lookup failed");
                Err("sign-in could not be checked")
            }
        },
    }
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(remote_addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let hub = state.hub.clone();
    if let Err(reason) = authenticate(&hub, &headers) {
        hub.metrics().refused("token");
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"semantest-hub\"")],
            reason,
        )
            .into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Ok(permit) = state.connection_slots.clone().try_acquire_owned() else {
        hub.metrics().refused("capacity");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections").into_response();
    };
    let limits = &hub.config().config.limits;
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (queue, max_message) = (limits.outgoing_queue, limits.max_message_bytes);
    let patience = std::time::Duration::from_secs(limits.write_timeout_s);
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .read_buffer_size(WS_READ_BUFFER)
        .on_upgrade(move |socket| async move {
            let (client, rx) = hub.clients().register(NewClient {
                origin,
                remote_addr,
                is_owner: true,
                queue,
                shutdown: hub.shutdown().clone(),
                patience,
            });
            let tracked = hub.tracker().track_future(crate::ws::serve_socket(
                socket,
                hub.clone(),
                client,
                rx,
            ));
            tracked.await;
            drop(permit);
        })
}

#[derive(Deserialize)]
struct LoginQuery {
    code: Option<String>,
}

async fn login(State(state): State<AppState>, Query(query): Query<LoginQuery>) -> Response {
    let hub = &state.hub;
    let redeemed = query
        .code
        .as_deref()
        .is_some_and(|code| hub.login_codes().redeem(code));
    if !redeemed {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                header::CONTENT_SECURITY_POLICY,
                assets::CONTENT_SECURITY_POLICY,
            )],
            Html(
                "<!doctype html><meta charset=utf-8><title>Sign-in link not valid</title>\
                 <h1>This sign-in link is not valid</h1>\
                 <p>Links work once and for two minutes. Open the dashboard again from the tray \
                 menu, or run <code>semantest-hub dashboard</code>.</p>",
            ),
        )
            .into_response();
    }
    let session = new_token();
    let now = now_ms();
    if let Err(err) = hub.store().insert_dashboard_session(
        &token_hash(&session),
        now,
        now + SESSION_DAYS * 86_400_000,
    ) {
        warn!(error = %ErrorChain(&err), "cannot store the dashboard session");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot sign in; see the hub log",
        )
            .into_response();
    }
    info!("dashboard signed in");
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_DAYS * 86_400
    );
    let mut response = Redirect::to("/").into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn index(headers: HeaderMap) -> Response {
    assets::serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&path, &headers)
}
