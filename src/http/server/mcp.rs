//! `/mcp`: the task queue's MCP tools ([`crate::mcp`]) over MCP's Streamable HTTP
//! transport, so an agent reaches them with no extra process.
//!
//! A request passes the same gate as every route (the Host allowlist, then the Origin
//! allowlist), then needs a token, exactly as `/ws` does: the owner token or a live
//! client token (bound to an origin, only from that origin), as `Authorization: Bearer`.
//! The dashboard's session cookie does not count here. Each MCP session's tools open
//! in-process hub connections with that token's rights and scopes (a client token
//! without `tasks` gets `FORBIDDEN` from every tool), served by the same connection
//! loop as a WebSocket ([`crate::http::ws::handle_socket`]) over channels, under the
//! same connection limit. A session stays with the token that first used it.
//!
//! A public hub serves `/mcp` only with `public.enable_tasks`, behind its own gate (the
//! per-address rate, `public.hosts`, the configured origins, TLS or the trusted proxy,
//! as for `/ws`), and takes only tokens that hold the `tasks` scope: any other gets 403
//! before a session exists. Each hub connection a session opens also takes one of its
//! client address's connection slots (`public.per_address_connections`), as a WebSocket
//! does.
//!
//! Sessions follow the MCP revisions up to 2025-11-25 (`Mcp-Session-Id`); one unused
//! for [`SESSION_IDLE`] is closed, and with it its hub connections, so a worker that
//! vanished gives its task back to the queue.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Message;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use tracing::{Instrument, info_span};

use super::websocket::{Auth, Refusal, SocketState, authenticate};
use crate::auth::security::{Credential, extract_credential, token_hash};
use crate::connections::NewClient;
use crate::connections::tcp::ClientAddr;
use crate::http::error::HttpError;
use crate::mcp::{BoxFuture, Caller, Conn, ConnError, Connector, Coordination};
use crate::protocol::error::ErrorKind;
use crate::protocol::scopes::{Scope, Scopes};

/// How long an MCP session may go without a request before it is closed. Longer than
/// any tool's wait (`wait_s` at most one hour) plus the time an agent works between
/// two calls, in the common case.
pub(crate) const SESSION_IDLE: Duration = Duration::from_secs(2 * 3600);

/// How long a hub request of a tool may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Who an `/mcp` request authenticated as: what its connections get.
#[derive(Clone)]
struct McpCaller {
    is_owner: bool,
    token_id: Option<String>,
    scopes: Scopes,
    origin: Option<String>,
    remote_addr: SocketAddr,
}

/// Authenticates an `/mcp` request as `/ws` does, tokens only, and hands the caller to
/// the tools in the request's extensions.
pub(super) async fn authenticate_mcp(
    State(state): State<Arc<SocketState>>,
    axum::extract::ConnectInfo(addrs): axum::extract::ConnectInfo<
        crate::connections::tcp::ConnAddrs,
    >,
    axum::Extension(ClientAddr(client_ip)): axum::Extension<ClientAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let metrics = &state.connections.metrics;
    let unauthorized = |reason: &'static str| {
        metrics.refused("token");
        HttpError::unauthorized(reason)
            .with_header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"semantest-hub\""),
            )
            .into_response()
    };
    let Some(Credential::Token(token)) = extract_credential(request.headers()) else {
        return unauthorized("a token is required, as Authorization: Bearer");
    };
    let (is_owner, token_id, scopes) =
        match authenticate(&state.auth, request.headers(), &state.dashboard).await {
            Ok(Auth::Owner) => (true, None, Scopes::all()),
            Ok(Auth::Client(identity)) => (false, Some(identity.id), identity.scopes),
            Ok(Auth::Session { .. }) => return unauthorized("a token is required"),
            Err(Refusal::Unauthorized(reason)) => return unauthorized(reason),
            Err(Refusal::Unavailable) => {
                return HttpError::unavailable(
                    ErrorKind::Internal,
                    1,
                    "the shared database is unreachable; try again shortly",
                )
                .into_response();
            }
        };
    // A public hub admits only what can use the tools, so a token of another purpose
    // costs it no session.
    if state.public.is_some() && !scopes.contains(Scope::Tasks) {
        metrics.refused("scope");
        return HttpError::forbidden("/mcp needs a token with the `tasks` scope").into_response();
    }
    let peer = addrs.peer;
    let remote_addr = if client_ip == peer.ip().to_canonical() {
        peer
    } else {
        SocketAddr::new(client_ip, 0)
    };
    let caller = McpCaller {
        is_owner,
        token_id,
        scopes,
        origin: request
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        remote_addr,
    };
    request.extensions_mut().insert(Caller {
        key: token_hash(&token),
        data: Arc::new(caller),
    });
    next.run(request).await
}

/// The `/mcp` service: a [`Coordination`] per MCP session, connecting in process.
pub(super) fn service(
    state: Arc<SocketState>,
) -> StreamableHttpService<Coordination, LocalSessionManager> {
    let shutdown = state.connections.shutdown.child_token();
    let connector: Arc<dyn Connector> = Arc::new(InProcess { state });
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.keep_alive = Some(SESSION_IDLE);
    let mut config = StreamableHttpServerConfig::default();
    // The hub's gate has checked Host (with the port) and Origin already.
    config = config.disable_allowed_hosts();
    config.cancellation_token = shutdown;
    StreamableHttpService::new(
        move || Ok(Coordination::new(connector.clone())),
        Arc::new(sessions),
        config,
    )
}

/// Opens hub connections inside the hub, with the rights of the `/mcp` caller.
struct InProcess {
    state: Arc<SocketState>,
}

impl Connector for InProcess {
    fn connect<'a>(
        &'a self,
        caller: Option<&'a Caller>,
        role: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Conn>, ConnError>> {
        Box::pin(async move {
            let caller = caller
                .and_then(|c| c.data.downcast_ref::<McpCaller>())
                .cloned()
                .ok_or_else(|| ConnError::Unavailable("the request carried no token".into()))?;
            let ctx = self.state.connections.clone();
            // Per address first, as for /ws, so that one address cannot take the
            // global slots.
            let address_slot = match &self.state.public {
                Some(public) => Some(
                    public
                        .connection_slot(caller.remote_addr.ip(), &ctx.metrics)
                        .map_err(|_| ConnError::Rpc {
                            kind: ErrorKind::LimitReached.as_str().to_string(),
                            message: "too many connections from this address".into(),
                        })?,
                ),
                None => None,
            };
            let Ok(permit) = self.state.connection_slots.clone().try_acquire_owned() else {
                ctx.metrics.refused("capacity");
                return Err(ConnError::Rpc {
                    kind: ErrorKind::LimitReached.as_str().to_string(),
                    message: "too many connections".into(),
                });
            };
            let limits = &ctx.limits;
            let queue = limits.outgoing_queue;
            let (client, rx) = ctx.register(NewClient {
                origin: caller.origin.clone(),
                remote_addr: caller.remote_addr,
                is_owner: caller.is_owner,
                token_id: caller.token_id.clone(),
                session: None,
                scopes: caller.scopes,
                queue,
                shutdown: ctx.shutdown.clone(),
                patience: Duration::from_secs(limits.write_timeout_s),
                mode: ctx.mode,
            });
            ctx.access.connected(&client, caller.remote_addr).await;
            let (to_hub, from_client) = mpsc::channel::<Message>(64);
            let (to_client, from_hub) = mpsc::channel::<Message>(queue.max(1));
            let stream = Box::pin(futures_util::stream::unfold(
                from_client,
                |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) },
            ));
            let span = info_span!("conn", conn_id = client.id(), transport = "mcp");
            let served = crate::http::ws::handle_socket(
                PollSender::new(to_client),
                stream,
                ctx.clone(),
                client,
                rx,
            );
            ctx.tracker.spawn(
                async move {
                    served.await;
                    drop(permit);
                    drop(address_slot);
                }
                .instrument(span),
            );
            let mut conn = InProcessConn {
                to_hub,
                from_hub,
                next_id: 0,
                pending: VecDeque::new(),
            };
            conn.call("hub.hello", json!({"role": role, "name": name}))
                .await?;
            Ok(Box::new(conn) as Box<dyn Conn>)
        })
    }
}

/// A hub connection over channels: the other ends are a connection loop's stream and
/// sink.
struct InProcessConn {
    to_hub: mpsc::Sender<Message>,
    from_hub: mpsc::Receiver<Message>,
    next_id: u64,
    pending: VecDeque<Value>,
}

fn ended() -> ConnError {
    ConnError::Unavailable("the hub closed the connection".into())
}

impl InProcessConn {
    /// The next JSON-RPC message from the hub; answers pings on the way.
    async fn read(&mut self) -> Result<Value, ConnError> {
        loop {
            match self.from_hub.recv().await.ok_or_else(ended)? {
                Message::Text(text) => {
                    return serde_json::from_str(&text)
                        .map_err(|err| ConnError::Unavailable(format!("unreadable: {err}")));
                }
                Message::Ping(data) => {
                    let _ = self.to_hub.send(Message::Pong(data)).await;
                }
                Message::Close(_) => return Err(ended()),
                _ => {}
            }
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Value, ConnError> {
        self.next_id += 1;
        let id = self.next_id;
        let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.to_hub
            .send(Message::Text(frame.to_string().into()))
            .await
            .map_err(|_| ended())?;
        let deadline = tokio::time::Instant::now() + REQUEST_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| {
                    ConnError::Unavailable(format!(
                        "the hub did not answer within {REQUEST_TIMEOUT:?}"
                    ))
                })??;
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(ConnError::Rpc {
                        kind: error["data"]["kind"]
                            .as_str()
                            .unwrap_or("UNKNOWN")
                            .to_string(),
                        message: error["message"].as_str().unwrap_or("error").to_string(),
                    });
                }
                return Ok(message.get("result").cloned().unwrap_or(Value::Null));
            }
            if message.get("method").is_some() {
                self.pending.push_back(message);
            }
        }
    }
}

impl Conn for InProcessConn {
    fn request<'a>(
        &'a mut self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, ConnError>> {
        Box::pin(self.call(method, params))
    }

    fn next_notification(&mut self) -> BoxFuture<'_, Result<Value, ConnError>> {
        Box::pin(async move {
            if let Some(message) = self.pending.pop_front() {
                return Ok(message);
            }
            loop {
                let message = self.read().await?;
                if message.get("method").is_some() {
                    return Ok(message);
                }
            }
        })
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let _ = self.to_hub.send(Message::Close(None)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_outlive_the_longest_wait() {
        assert!(SESSION_IDLE > Duration::from_secs(3600));
    }
}
