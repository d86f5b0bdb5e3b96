//! The per-token cap on `/mcp` sessions (`limits.mcp_sessions_per_token`): each MCP
//! session holds in-process hub connections and tool state, so one token may not open
//! them without end.
//!
//! The cap counts, per credential (the SHA-256 key of [`Caller`]), the sessions it
//! opened that the session manager still has, plus the `initialize` requests of that
//! credential in flight. A session leaves the count as soon as the manager forgets it:
//! the client ended it (HTTP `DELETE` with its `Mcp-Session-Id`), it went
//! [`super::SESSION_IDLE`] without a request (rmcp's `keep_alive`), or the hub is
//! stopping. The manager is asked again at each new `initialize` of the credential, so
//! the count needs no timer of its own.
//!
//! A refused `initialize` gets `429 Too Many Requests` and a JSON-RPC error with no id
//! (MCP 2025-06-18, "Streamable HTTP": a server that cannot accept a message returns an
//! HTTP error status, and its body may be a JSON-RPC error response without an id),
//! of kind `LIMIT_REACHED` with the cap as `error.data.limit`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::SessionId;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde_json::json;

use crate::mcp::Caller;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::support::metrics::Metrics;

/// The header that names an MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// The sessions each credential holds.
pub(in crate::http::server) struct SessionCap {
    manager: Arc<LocalSessionManager>,
    per_token: usize,
    /// `refused("mcp_sessions")`.
    metrics: Arc<Metrics>,
    /// A std `Mutex`: held for a few vector operations, never across an `.await`.
    tokens: Mutex<HashMap<[u8; 32], Held>>,
}

#[derive(Default)]
struct Held {
    /// Sessions this credential opened, possibly ended since (pruned at the next
    /// `initialize`).
    sessions: Vec<SessionId>,
    /// Its `initialize` requests in flight.
    opening: usize,
}

/// One credential's slot for a session being opened; given back on drop unless the
/// session opened.
struct Reservation {
    cap: Arc<SessionCap>,
    key: [u8; 32],
}

impl SessionCap {
    /// A cap of `per_token` sessions per credential over the sessions of `manager`.
    pub(in crate::http::server) fn new(
        manager: Arc<LocalSessionManager>,
        per_token: usize,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            manager,
            per_token: per_token.max(1),
            metrics,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn tokens(&self) -> MutexGuard<'_, HashMap<[u8; 32], Held>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new session of `key`, or `None` when it holds the cap already.
    async fn reserve(self: &Arc<Self>, key: [u8; 32]) -> Option<Reservation> {
        let known: Vec<SessionId> = self
            .tokens()
            .get(&key)
            .map(|held| held.sessions.clone())
            .unwrap_or_default();
        let mut ended = Vec::new();
        for id in known {
            if !self.manager.has_session(&id).await.unwrap_or(false) {
                ended.push(id);
            }
        }
        let mut tokens = self.tokens();
        let held = tokens.entry(key).or_default();
        held.sessions.retain(|id| !ended.contains(id));
        if held.sessions.len() + held.opening >= self.per_token {
            return None;
        }
        held.opening += 1;
        Some(Reservation {
            cap: self.clone(),
            key,
        })
    }
}

impl Reservation {
    /// The session opened: it holds the slot until the manager forgets it.
    fn opened(self, id: SessionId) {
        self.cap
            .tokens()
            .entry(self.key)
            .or_default()
            .sessions
            .push(id);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut tokens = self.cap.tokens();
        if let Some(held) = tokens.get_mut(&self.key) {
            held.opening = held.opening.saturating_sub(1);
            if held.opening == 0 && held.sessions.is_empty() {
                tokens.remove(&self.key);
            }
        }
    }
}

/// Counts the sessions each credential opens, and refuses an `initialize` (a POST
/// without `Mcp-Session-Id`) beyond the cap. Runs inside [`super::authenticate_mcp`],
/// which put the [`Caller`] in the request.
pub(in crate::http::server) async fn limit_sessions(
    State(cap): State<Arc<SessionCap>>,
    request: Request,
    next: Next,
) -> Response {
    let opens = request.method() == Method::POST && !request.headers().contains_key(SESSION_HEADER);
    let key = request
        .extensions()
        .get::<Caller>()
        .map(|caller| caller.key);
    let (true, Some(key)) = (opens, key) else {
        return next.run(request).await;
    };
    let Some(reservation) = cap.reserve(key).await else {
        cap.metrics.refused("mcp_sessions");
        tracing::warn!(
            limit = cap.per_token,
            "MCP session refused: the token holds its maximum of sessions"
        );
        return refusal(cap.per_token);
    };
    let response = next.run(request).await;
    let session = response
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|_| response.status().is_success());
    if let Some(id) = session {
        reservation.opened(SessionId::from(id));
    }
    response
}

/// `429` with a JSON-RPC error without an id, kind `LIMIT_REACHED`.
fn refusal(limit: usize) -> Response {
    let error = RpcError::new(
        ErrorKind::LimitReached,
        format!(
            "this token already holds {limit} MCP sessions (limits.mcp_sessions_per_token); end one (HTTP DELETE with its Mcp-Session-Id) or wait for an idle one to expire"
        ),
    )
    .with_details(json!({ "limit": limit }));
    let body = json!({"jsonrpc": "2.0", "id": null, "error": error.to_json()});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_is_held_by_an_open_session_and_freed_by_its_end() {
        let manager = Arc::new(LocalSessionManager::default());
        let cap = SessionCap::new(manager.clone(), 2, Arc::new(Metrics::new()));
        let (one, two) = ([1; 32], [2; 32]);
        let first = cap.reserve(one).await.expect("a first slot");
        let second = cap.reserve(one).await.expect("a second slot");
        assert!(cap.reserve(one).await.is_none(), "in flight counts");
        assert!(
            cap.reserve(two).await.is_some(),
            "another token has its own"
        );
        drop(first);
        let (id, _transport) = manager.create_session().await.unwrap();
        cap.reserve(one)
            .await
            .expect("a slot given back")
            .opened(id.clone());
        drop(second);
        let third = cap.reserve(one).await.expect("one open, one free");
        assert!(cap.reserve(one).await.is_none());
        drop(third);
        manager.close_session(&id).await.unwrap();
        let _a = cap.reserve(one).await.expect("the ended session's slot");
        let _b = cap.reserve(one).await.expect("and the other");
        assert!(
            cap.tokens().get(&two).is_none(),
            "nothing kept for a token with none"
        );
    }
}
