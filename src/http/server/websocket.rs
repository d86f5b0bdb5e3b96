//! `GET /ws`: who the request authenticated as, the connection limits, and the upgrade
//! to the JSON-RPC WebSocket ([`crate::http::ws`], or [`crate::http::public::serve_socket`] in
//! public mode).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::warn;

use super::WS_READ_BUFFER;
use crate::app::edge::{AuthCtx, ConnectionCtx};
use crate::auth::security::{
    Credential, extract_credential, from_dashboard, hashes_equal, single_origin, token_hash,
};
use crate::auth::tokens::Identity;
use crate::config::{Limits, Mode};
use crate::connections::NewClient;
use crate::connections::tcp::{ClientAddr, ConnAddrs};
use crate::http::error::HttpError;
use crate::http::public::PublicGate;
use crate::protocol::SUBPROTOCOL;
use crate::protocol::error::{ErrorChain, ErrorKind};
use crate::protocol::scopes::Scopes;

/// What the routes that open connections (`/ws`, `/mcp`) use.
pub(in crate::http) struct SocketState {
    /// A connection's lifecycle, and what its requests are dispatched to.
    pub(in crate::http) connections: ConnectionCtx,
    /// Who a request is.
    pub(in crate::http) auth: AuthCtx,
    /// The dashboard's own origins, the only ones the session cookie counts from.
    pub(in crate::http) dashboard: Arc<Vec<String>>,
    /// `limits.max_connections`.
    pub(in crate::http) connection_slots: Arc<Semaphore>,
    /// Set in public mode: the per-address connection slots.
    pub(in crate::http) public: Option<Arc<PublicGate>>,
}

/// Who a WebSocket request authenticated as.
pub(super) enum Auth {
    /// The owner token: every scope.
    Owner,
    /// A live dashboard session from the dashboard's own origin, just used (its lifetime
    /// slid): the owner. `hash` is its SHA-256, `cookie` the `Set-Cookie` renewing it.
    Session { hash: [u8; 32], cookie: String },
    /// A live client token, used from its origin.
    Client(Identity),
}

/// Why a WebSocket request was refused before the upgrade.
pub(super) enum Refusal {
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
pub(super) async fn authenticate(
    auth: &AuthCtx,
    headers: &HeaderMap,
    dashboard: &[String],
) -> Result<Auth, Refusal> {
    use Refusal::Unauthorized;
    match extract_credential(headers) {
        None => Err(Unauthorized("a token is required")),
        Some(Credential::Token(token)) if hashes_equal(&token_hash(&token), &auth.owner_hash) => {
            Ok(Auth::Owner)
        }
        Some(Credential::Token(token)) => match auth
            .access
            .tokens()
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
        Some(Credential::Session(_)) if auth.mode == Mode::Public => Err(Unauthorized(
            "a public hub takes tokens only; there is no dashboard sign-in",
        )),
        Some(Credential::Session(_)) if !from_dashboard(headers, dashboard) => Err(Unauthorized(
            "the dashboard sign-in counts only on the dashboard's own page; use a token",
        )),
        Some(Credential::Session(session)) => match auth.sessions.use_session(&session).await {
            Ok(Some(hash)) => Ok(Auth::Session {
                hash,
                cookie: auth.sessions.cookie(&session),
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

/// 503 `INTERNAL` with `Retry-After: 1` for a new connection while the shared database
/// is unreachable.
fn database_unavailable() -> Response {
    HttpError::unavailable(
        ErrorKind::Internal,
        1,
        "the shared database is unreachable; try again shortly",
    )
    .into_response()
}

pub(super) async fn websocket(
    State(state): State<Arc<SocketState>>,
    ConnectInfo(addrs): ConnectInfo<ConnAddrs>,
    axum::Extension(ClientAddr(client_ip)): axum::Extension<ClientAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ctx = state.connections.clone();
    let sessions = state.auth.sessions.clone();
    let peer = addrs.peer;
    // Without the shared database no token can be checked nor access managed: a new
    // connection goes to another instance (a load balancer retries on 503); open ones
    // carry on.
    if !ctx.reports().database_health().healthy() {
        ctx.metrics.refused("database");
        return database_unavailable();
    }
    let auth = match authenticate(&state.auth, &headers, &state.dashboard).await {
        Ok(auth) => auth,
        Err(Refusal::Unavailable) => {
            ctx.metrics.refused("database");
            return database_unavailable();
        }
        Err(Refusal::Unauthorized(reason)) => {
            ctx.metrics.refused("token");
            return HttpError::unauthorized(reason)
                .with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"semantest-hub\""),
                )
                .into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return HttpError::new(
                rejection.status(),
                ErrorKind::InvalidRequest,
                rejection.body_text(),
            )
            .into_response();
        }
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
        Some(public) => match public.connection_slot(client_ip, &ctx.metrics) {
            Ok(slot) => Some((slot, public.limits.clone())),
            Err(refused) => return refused.into_response(),
        },
        None => None,
    };
    let Ok(permit) = state.connection_slots.clone().try_acquire_owned() else {
        ctx.metrics.refused("capacity");
        return HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::LimitReached,
            "too many connections",
        )
        .into_response();
    };
    let limits = &ctx.limits;
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
    let mode = ctx.mode;
    let mut response = websocket_settings(upgrade, limits).on_upgrade(move |socket| async move {
        let (client, rx) = ctx.register(NewClient {
            origin,
            remote_addr,
            is_owner,
            token_id,
            session,
            scopes,
            queue,
            shutdown: ctx.shutdown.clone(),
            patience,
            mode,
        });
        // A revoke between the handshake and this registration must still win.
        ctx.access.connected(&client, remote_addr).await;
        match address_slot {
            Some((slot, limits)) => {
                let served =
                    crate::http::public::serve_socket(socket, ctx.clone(), client, rx, limits);
                ctx.tracker.track_future(served).await;
                drop(slot);
            }
            None => {
                let served = crate::http::ws::serve_socket(socket, ctx.clone(), client, rx);
                ctx.tracker.track_future(served).await;
            }
        }
        if let Some(hash) = &session {
            sessions.connection_ended(hash).await;
        }
        drop(permit);
    });
    if let Some(value) = renewed_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
