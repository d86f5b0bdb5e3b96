//! What the MCP tools need of a hub connection, whatever carries it: the WebSocket of
//! `semantest-hub mcp` (a separate process, [`crate::cli`]) or an in-process connection
//! of the hub's own `/mcp` endpoint ([`crate::http`]).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

/// A boxed, sendable future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a hub request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnError {
    /// The hub answered with a JSON-RPC error.
    #[error("{message} ({kind})")]
    Rpc {
        /// `error.data.kind`, e.g. `PROJECT_NOT_FOUND`.
        kind: String,
        /// `error.message`.
        message: String,
        /// `error.data` beside `kind` (e.g. the `files` of `MERGE_CONFLICT`), `null`
        /// when there is none.
        data: Value,
    },
    /// No hub could be reached or trusted, or the connection ended; the sentence says
    /// which.
    #[error("{0}")]
    Unavailable(String),
}

/// One JSON-RPC connection to the hub, with the rights of the token it was opened with.
pub trait Conn: Send + 'static {
    /// Sends a request and waits for its result; notifications that arrive meanwhile are
    /// kept for [`Conn::next_notification`].
    fn request<'a>(
        &'a mut self,
        method: &'a str,
        params: Value,
    ) -> BoxFuture<'a, Result<Value, ConnError>>;

    /// The next notification (`{method, params}`). Cancel-safe: dropped before it
    /// completes, it loses nothing.
    fn next_notification(&mut self) -> BoxFuture<'_, Result<Value, ConnError>>;

    /// Closes the connection.
    fn close(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// Who called a tool over HTTP: the key of the credential the request carried (its
/// SHA-256), and what the HTTP layer needs to open connections with its rights.
#[derive(Clone)]
pub struct Caller {
    /// SHA-256 of the credential; an MCP session stays with the credential that first
    /// used it.
    pub key: [u8; 32],
    /// The HTTP layer's own record of the caller.
    pub data: Arc<dyn Any + Send + Sync>,
}

/// Opens hub connections for the tools.
pub trait Connector: Send + Sync + 'static {
    /// A new connection that said `hub.hello` with `role` and `name`, with the rights
    /// of `caller` (over HTTP) or of the configured token (stdio, `caller` is `None`).
    fn connect<'a>(
        &'a self,
        caller: Option<&'a Caller>,
        role: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn Conn>, ConnError>>;
}
