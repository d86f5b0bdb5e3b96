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
//! - `GET /login?code=`: redeems a one-time dashboard link for a session cookie.
//! - `POST /session/check`, `POST /session/sign-out`, `POST /session/sign-out-everywhere`:
//!   whether the dashboard's session is live; sign it out; sign every session out
//!   ([`crate::app::sessions`]). Only from the dashboard's own origin.
//! - `GET /` and `GET /<file>`: the dashboard.
//!
//! Every request first passes the Host allowlist; all but the signature and health
//! endpoints (which discovery needs before pairing) also pass the Origin allowlist:
//! the built-in and configured origins plus the origins of live client tokens (kept in
//! memory). The pairing endpoints also admit extension origins not yet paired. The
//! session cookie counts only from the dashboard's own origins, never from another
//! allowed one (see [`authenticate`]).
//!
//! In public mode ([`crate::http::public`]) the hub listens on `public.bind` with TLS or behind
//! a trusted proxy, every request is charged to its client address first, and there is
//! no `/login` and no dashboard.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::app::hub::{Hub, PRODUCT, StartError, VERSION};
use crate::app::sessions;
use crate::auth::pairing::is_extension_origin;
use crate::auth::security::{
    Credential, OriginCheck, allowed_hosts, challenge_proof, check_origin, cleared_session_cookie,
    dashboard_origins, extract_credential, from_dashboard, hashes_equal, host_allowed,
    session_cookie, single_origin, token_hash,
};
use crate::auth::tokens::Identity;
use crate::config::{DEFAULT_PORT, LAST_FALLBACK_PORT, Limits, LoadedConfig, Mode};
use crate::connections::tcp::{ClientAddr, ConnAddrs};
use crate::connections::{CLOSE_POLICY, NewClient};
use crate::http::assets;
use crate::http::public::PublicGate;
use crate::protocol::error::ErrorChain;
use crate::protocol::scopes::Scopes;
use crate::protocol::{PROTOCOL_VERSION, SUBPROTOCOL};

/// Bytes tungstenite reads from a connection's socket at a time. Its default, 128 KiB
/// preallocated per connection, made 1,000 idle connections cost about 140 MB; larger
/// messages still arrive whole (the buffer grows while one is read).
const WS_READ_BUFFER: usize = 4 * 1024;

pub use crate::app::hub::RUNTIME_FILE;

#[derive(Clone)]
struct AppState {
    hub: Hub,
    hosts: Arc<Vec<String>>,
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
        hosts: Arc::new(allowed_hosts(port)),
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
    crate::app::access::start_upkeep(&hub);
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
    let body = json!({
        "url": local_url(hub),
        "port": hub.port(),
        "pid": std::process::id(),
        "instance_id": hub.instance_id(),
        "secret_store": hub.secret_store(),
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
    let routes = Router::new()
        .route("/semantest-signature", get(signature))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/ws", get(websocket))
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
    // A public hub has no dashboard and no sign-in: tokens only.
    let routes = if state.public.is_some() {
        routes
            .route("/login", get(no_login_in_public_mode))
            .fallback(not_found)
    } else {
        routes
            .route("/login", get(login))
            .route("/session/check", post(session_check))
            .route("/session/sign-out", post(session_sign_out))
            .route(
                "/session/sign-out-everywhere",
                post(session_sign_out_everywhere),
            )
            .route("/", get(index))
            .route("/{*path}", get(asset))
    };
    routes
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

async fn no_login_in_public_mode() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no /login on a public hub: it takes tokens only, and has no dashboard",
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// The per-address rate (public mode), then the Host and Origin allowlists (see
/// [`crate::auth::security`]).
async fn gate(
    State(state): State<AppState>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match &state.public {
        Some(public) => match public.admit(addrs.peer, request.headers(), state.hub.metrics()) {
            Ok(client) => client,
            Err(refused) => return refused,
        },
        None => {
            if !host_allowed(request.headers(), &state.hosts) {
                state.hub.metrics().refused("host");
                return (StatusCode::FORBIDDEN, "host not allowed").into_response();
            }
            addrs.peer.ip()
        }
    };
    request.extensions_mut().insert(ClientAddr(client));
    let headers = request.headers();
    let path = request.uri().path();
    let discovery = matches!(path, "/semantest-signature" | "/health");
    // Exactly `/pair` or `/pair/<one segment>`: the two pairing routes, nothing under them.
    let pairing = path == "/pair"
        || path
            .strip_prefix("/pair/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    let origin_ok = discovery
        || match check_origin(headers, &state.origins) {
            OriginCheck::Absent | OriginCheck::Allowed => true,
            // Configured origins plus those of live tokens, and for the pairing endpoints
            // any extension origin (it is not paired yet).
            OriginCheck::Denied => match single_origin(headers) {
                None => false,
                Some(origin) if pairing && is_extension_origin(origin) => true,
                Some(origin) => state.hub.client_tokens().origin_paired_now(origin).await,
            },
        };
    if !origin_ok {
        state.hub.metrics().refused("origin");
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    next.run(request).await
}

#[derive(Deserialize)]
struct SignatureQuery {
    challenge: Option<String>,
    client: Option<String>,
}

/// The client id of the owner token in the signature challenge.
pub const OWNER_CLIENT_ID: &str = "owner";

/// Whether a challenge field is 1 to `max` characters, none of them a control
/// character (so the newline-separated proof message stays unambiguous).
fn challenge_field_ok(value: &str, max: usize) -> bool {
    !value.is_empty() && value.len() <= max && !value.chars().any(char::is_control)
}

/// The feature groups this hub serves, for the signature: the method families its mode
/// enables (`public.capabilities()`), plus `events`, which every hub offers, and
/// `pairing` where it is served (`public.serves_pairing()`).
fn capabilities(hub: &Hub) -> Vec<&'static str> {
    let public = &hub.config().config.public;
    let mut capabilities = public.capabilities();
    capabilities.extend(["events", "events.idempotency"]);
    if public.serves_pairing() {
        capabilities.push("pairing");
    }
    capabilities
}

/// The endpoint a public hub binds its challenge proof to: the Host the client
/// contacted (already checked against `public.hosts` by the gate), lowercased, with the
/// port filled in as 443 when the Host names none, since public clients arrive over
/// HTTPS (directly or through the proxy).
fn public_endpoint(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    // `[::1]:8443` and `hub.example.com:8443` name a port; `[::1]` and `hub.example.com` do not.
    let has_port = match host.rfind(':') {
        Some(colon) => {
            !host.ends_with(']') && host[colon + 1..].bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if has_port {
        host
    } else {
        format!("{host}:443")
    }
}

async fn signature(
    State(state): State<AppState>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    headers: HeaderMap,
    Query(query): Query<SignatureQuery>,
) -> Response {
    let hub = &state.hub;
    let mut body = json!({
        "service": "semantest",
        "product": PRODUCT,
        "version": VERSION,
        "protocol": PROTOCOL_VERSION,
        "mode": hub.mode().as_str(),
        "instance_id": hub.instance_id(),
        "ws_path": "/ws",
        "ws_subprotocol": SUBPROTOCOL,
        "capabilities": capabilities(hub),
    });
    if let Some(nonce) = query.challenge {
        if !challenge_field_ok(&nonce, 256) {
            return (
                StatusCode::BAD_REQUEST,
                "challenge must be 1 to 256 characters without control characters",
            )
                .into_response();
        }
        let Some(client) = query.client.filter(|c| challenge_field_ok(c, 64)) else {
            return (
                StatusCode::BAD_REQUEST,
                "client must be the token's id (cl_...) or owner, 1 to 64 characters",
            )
                .into_response();
        };
        let key = if client == OWNER_CLIENT_ID {
            Some(*hub.owner_hash())
        } else {
            hub.client_tokens().hash_of_now(&client).await
        };
        let endpoint = match &state.public {
            // Behind TLS or a proxy the listener's address is not what clients contact;
            // the gate has checked the Host against `public.hosts`.
            Some(_) => public_endpoint(&headers),
            // Where this connection actually arrived, never the Host header.
            None => addrs.local.to_string(),
        };
        body["challenge"] = match key {
            Some(key) => json!({
                "nonce": nonce,
                "client": client,
                "endpoint": endpoint,
                "proof": challenge_proof(&key, &nonce, &client, &endpoint),
            }),
            None => Value::Null,
        };
    }
    axum::Json(body).into_response()
}

/// Whether the request may see monitoring detail: always in local mode, from
/// `public.monitoring_from` in public mode.
fn may_monitor(state: &AppState, client: ClientAddr) -> bool {
    state
        .public
        .as_ref()
        .is_none_or(|public| public.may_monitor(client.0))
}

async fn health(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddr>,
) -> Response {
    let health = state.hub.health();
    let code = if health.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = if may_monitor(&state, client) {
        (code, axum::Json(health)).into_response()
    } else {
        let short = json!({"status": health.status, "product": PRODUCT, "version": VERSION});
        (code, axum::Json(short)).into_response()
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn metrics(
    State(state): State<AppState>,
    axum::Extension(client): axum::Extension<ClientAddr>,
) -> Response {
    if !may_monitor(&state, client) {
        return (
            StatusCode::FORBIDDEN,
            "metrics are served to public.monitoring_from addresses only",
        )
            .into_response();
    }
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

/// Who a WebSocket request authenticated as.
enum Auth {
    /// The owner token: every scope.
    Owner,
    /// A live dashboard session from the dashboard's own origin, just used (its lifetime
    /// slid): the owner. `hash` is its SHA-256, `cookie` the `Set-Cookie` renewing it.
    Session { hash: [u8; 32], cookie: String },
    /// A live client token, used from its origin.
    Client(Identity),
}

/// Why a WebSocket request was refused before the upgrade.
enum Refusal {
    /// No valid credential: 401 with this reason.
    Unauthorized(&'static str),
    /// The shared database cannot check the token: 503.
    Unavailable,
}

/// Who a WebSocket request authenticated as, or why not. A client token bound to an
/// origin counts only with exactly that Origin header. The session cookie counts only
/// with an Origin among `dashboard` (the hub's own): the Origin allowlist also admits
/// configured origins and those of live client tokens, and a browser attaches the cookie
/// to a WebSocket from any page on the same host whatever its port, so the cookie alone
/// would make such a page, or its events-only token's holder, the owner.
async fn authenticate(
    hub: &Hub,
    headers: &HeaderMap,
    dashboard: &[String],
) -> Result<Auth, Refusal> {
    use Refusal::Unauthorized;
    match extract_credential(headers) {
        None => Err(Unauthorized("a token is required")),
        Some(Credential::Token(token)) if hashes_equal(&token_hash(&token), hub.owner_hash()) => {
            Ok(Auth::Owner)
        }
        Some(Credential::Token(token)) => match hub
            .client_tokens()
            .authenticate(&token, single_origin(headers))
            .await
        {
            Ok(Some(identity)) => Ok(Auth::Client(identity)),
            Ok(None) => Err(Unauthorized("invalid token")),
            Err(err) => {
                warn!(error = %ErrorChain(&err), "client token lookup failed");
                Err(Refusal::Unavailable)
            }
        },
        Some(Credential::Session(_)) if hub.mode() == Mode::Public => Err(Unauthorized(
            "a public hub takes tokens only; there is no dashboard sign-in",
        )),
        Some(Credential::Session(_)) if !from_dashboard(headers, dashboard) => Err(Unauthorized(
            "the dashboard sign-in counts only on the dashboard's own page; use a token",
        )),
        Some(Credential::Session(session)) => match sessions::use_session(hub, &session) {
            Ok(Some(hash)) => Ok(Auth::Session {
                hash,
                cookie: sessions::cookie(hub, &session),
            }),
            Ok(None) => Err(Unauthorized(
                "sign-in expired; open the dashboard link again",
            )),
            Err(err) => {
                warn!(error = %ErrorChain(&err), "session lookup failed");
                Err(Unauthorized("sign-in could not be checked"))
            }
        },
    }
}

pub use crate::http::ws::read_error_close;

/// The protocol settings `/ws` upgrades a connection with: the `semantest.v1`
/// subprotocol when the client offers it, `limits.max_message_bytes` as the largest
/// message and frame (a larger one is closed with 1009, RFC 6455 section 7.4.1), and a
/// [`WS_READ_BUFFER`]-byte read buffer. Everything else (masking required, reserved bits
/// and unknown opcodes refused with 1002, invalid UTF-8 in text with 1007, pings
/// answered) is tungstenite's RFC 6455 handling. Public so that the conformance tests
/// (docs/conformance.md) can run an echo endpoint with exactly these settings.
pub fn websocket_settings(upgrade: WebSocketUpgrade, limits: &Limits) -> WebSocketUpgrade {
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(limits.max_message_bytes)
        .max_frame_size(limits.max_message_bytes)
        .read_buffer_size(WS_READ_BUFFER)
}

/// 503 for a new connection while the shared database is unreachable.
fn database_unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "1")],
        "the shared database is unreachable; try again shortly",
    )
        .into_response()
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    axum::Extension(ClientAddr(client_ip)): axum::Extension<ClientAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let hub = state.hub.clone();
    let peer = addrs.peer;
    // Without the shared database no token can be checked nor access managed: a new
    // connection goes to another instance (a load balancer retries on 503); open ones
    // carry on.
    if !hub.database_health().healthy() {
        hub.metrics().refused("database");
        return database_unavailable();
    }
    let auth = match authenticate(&hub, &headers, &state.dashboard).await {
        Ok(auth) => auth,
        Err(Refusal::Unavailable) => {
            hub.metrics().refused("database");
            return database_unavailable();
        }
        Err(Refusal::Unauthorized(reason)) => {
            hub.metrics().refused("token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"semantest-hub\"")],
                reason,
            )
                .into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // A session's 101 renews its cookie for another lifetime.
    let mut renewed_cookie = None;
    let (is_owner, token_id, session, scopes) = match auth {
        Auth::Owner => (true, None, None, Scopes::all()),
        Auth::Session { hash, cookie } => {
            renewed_cookie = Some(cookie);
            (true, None, Some(hash), Scopes::all())
        }
        Auth::Client(identity) => (false, Some(identity.id), None, identity.scopes),
    };
    // Per address first, so that one address cannot take the global slots.
    let address_slot = match &state.public {
        Some(public) => match public.connection_slot(client_ip, hub.metrics()) {
            Ok(slot) => Some((slot, public.limits.clone())),
            Err(refused) => return refused,
        },
        None => None,
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
    let queue = limits.outgoing_queue;
    let patience = std::time::Duration::from_secs(limits.write_timeout_s);
    // Behind a proxy the forwarded client has no known port.
    let remote_addr = if client_ip == peer.ip().to_canonical() {
        peer
    } else {
        SocketAddr::new(client_ip, 0)
    };
    let mode = hub.mode();
    let mut response = websocket_settings(upgrade, limits).on_upgrade(move |socket| async move {
        let (client, rx) = hub.clients().register(NewClient {
            origin,
            remote_addr,
            is_owner,
            token_id,
            session,
            scopes,
            queue,
            shutdown: hub.shutdown().clone(),
            patience,
            mode,
        });
        if let Some(id) = client.token_id() {
            // A revoke between the handshake and this registration must still win.
            if hub.client_tokens().get(id).is_none() {
                client.close(CLOSE_POLICY, crate::app::access::REVOKED_REASON);
            } else {
                crate::app::access::connected(&hub, id, remote_addr).await;
            }
        }
        match address_slot {
            Some((slot, limits)) => {
                let served =
                    crate::http::public::serve_socket(socket, hub.clone(), client, rx, limits);
                hub.tracker().track_future(served).await;
                drop(slot);
            }
            None => {
                let served = crate::http::ws::serve_socket(socket, hub.clone(), client, rx);
                hub.tracker().track_future(served).await;
            }
        }
        if let Some(hash) = &session {
            sessions::connection_ended(&hub, hash);
        }
        drop(permit);
    });
    if let Some(value) = renewed_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
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
    let cookie = match sessions::sign_in(hub) {
        Ok(cookie) => cookie,
        Err(err) => {
            warn!(error = %ErrorChain(&err), "cannot store the dashboard session");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot sign in; see the hub log",
            )
                .into_response();
        }
    };
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

/// The answer to a session request that does not come from the dashboard's own page.
fn not_from_dashboard() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "the dashboard sign-in counts only on the dashboard's own page",
    )
        .into_response()
}

/// `POST /session/check`: 204 while the request's session cookie is live, 401 otherwise
/// (no cookie, signed out, expired, or not from the dashboard's own origin). It is not a
/// use of the session. The dashboard asks when its WebSocket is refused, to tell a
/// sign-out from a hub that is down.
async fn session_check(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !from_dashboard(&headers, &state.dashboard) {
        return not_from_dashboard();
    }
    let live = session_cookie(&headers).map(|session| sessions::is_live(&state.hub, &session));
    let mut response = match live {
        Some(Ok(true)) => StatusCode::NO_CONTENT.into_response(),
        Some(Ok(false)) | None => (StatusCode::UNAUTHORIZED, "not signed in").into_response(),
        Some(Err(err)) => {
            warn!(error = %ErrorChain(&err), "session lookup failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the sign-in",
            )
                .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /session/sign-out`, from the dashboard's own origin: ends the request's session
/// (its connections are closed with 1008) and deletes the cookie; 204.
async fn session_sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !from_dashboard(&headers, &state.dashboard) {
        return not_from_dashboard();
    }
    if let Some(session) = session_cookie(&headers)
        && let Err(err) = sessions::sign_out(&state.hub, &session)
    {
        warn!(error = %ErrorChain(&err), "cannot sign the dashboard session out");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot sign out; see the hub log",
        )
            .into_response();
    }
    signed_out()
}

/// 204 deleting the session cookie.
fn signed_out() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cleared_session_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /session/sign-out-everywhere`, from the dashboard's own origin with a live
/// session (the owner): signs every session out, as `hub.revoke_sessions` does, and
/// deletes this browser's cookie; 204. Over HTTP, because the caller's own WebSocket is
/// one of those closed.
async fn session_sign_out_everywhere(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    if !from_dashboard(&headers, &state.dashboard) {
        return not_from_dashboard();
    }
    let live = session_cookie(&headers).map(|session| sessions::is_live(&state.hub, &session));
    match live {
        Some(Ok(true)) => {}
        Some(Ok(false)) | None => {
            return (StatusCode::UNAUTHORIZED, "not signed in").into_response();
        }
        Some(Err(err)) => {
            warn!(error = %ErrorChain(&err), "session lookup failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot check the sign-in",
            )
                .into_response();
        }
    }
    if let Err(err) = sessions::revoke_all(&state.hub) {
        warn!(error = %ErrorChain(&err), "cannot sign every dashboard session out");
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot sign out; see the hub log",
        )
            .into_response();
    }
    signed_out()
}

async fn index(headers: HeaderMap) -> Response {
    assets::serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    assets::serve(&path, &headers)
}
