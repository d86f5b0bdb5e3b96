//! The benchmark's WebSocket client: connect (with the hub's token), send text, await a
//! reply by JSON-RPC id. Kept deliberately thin so the client costs little CPU next to
//! the server it measures.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::target::{Endpoint, Kind};

/// An open connection.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// Its sending half.
pub type Sink = SplitSink<Socket, Message>;
/// Its receiving half.
pub type Source = SplitStream<Socket>;

/// Longest wait for any single reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a WebSocket to `endpoint` with the token (hub) and `TCP_NODELAY` on the client
/// side, so that any Nagle delay measured is the server's. Small buffers: the client
/// holds up to 10,000 connections itself.
///
/// # Errors
/// When the handshake fails.
pub async fn connect(endpoint: &Endpoint) -> Result<Socket> {
    let mut request = endpoint.ws_url.as_str().into_client_request()?;
    if let Some(token) = &endpoint.token {
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("semantest-hub.v1"),
        );
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .with_context(|| format!("connect to {}", endpoint.ws_url))?;
    Ok(socket)
}

/// A JSON-RPC request frame.
pub fn request(id: u64, method: &str, params: &Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The `id` of a reply frame (a frame with an id: the hub's result or error, or the bare
/// server's echo), or `None` for a notification.
pub fn reply_id(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        id: Option<u64>,
    }
    serde_json::from_str::<Envelope>(text).ok()?.id
}

/// Sends `text` and waits for the frame with JSON-RPC id `id`, skipping notifications.
///
/// # Errors
/// When the connection fails or no reply comes within [`REPLY_TIMEOUT`].
pub async fn call(sink: &mut Sink, source: &mut Source, id: u64, text: String) -> Result<String> {
    sink.send(Message::text(text)).await?;
    tokio::time::timeout(REPLY_TIMEOUT, async {
        while let Some(message) = source.next().await {
            if let Message::Text(text) = message?
                && reply_id(&text) == Some(id)
            {
                return Ok(text.to_string());
            }
        }
        bail!("connection closed before the reply")
    })
    .await
    .context("no reply in time")?
}

/// Calls `method` on the hub and returns its `result`, or the error object as an error.
///
/// # Errors
/// A JSON-RPC error (its `message` and `code`), or a transport failure.
pub async fn rpc(
    sink: &mut Sink,
    source: &mut Source,
    id: u64,
    method: &str,
    params: &Value,
) -> Result<Value> {
    let text = call(sink, source, id, request(id, method, params)).await?;
    let mut value: Value = serde_json::from_str(&text)?;
    if let Some(error) = value.get("error") {
        bail!(RpcFailure {
            code: error["code"].as_i64().unwrap_or(0),
            message: error["message"].as_str().unwrap_or("").to_string(),
        });
    }
    Ok(value["result"].take())
}

/// A JSON-RPC error answer.
#[derive(Debug)]
pub struct RpcFailure {
    /// The JSON-RPC code.
    pub code: i64,
    /// The message.
    pub message: String,
}

impl std::error::Error for RpcFailure {}

impl std::fmt::Display for RpcFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

/// The JSON-RPC "method not found" code (JSON-RPC 2.0 section 5.1).
pub const METHOD_NOT_FOUND: i64 = -32601;

/// Nanoseconds since the Unix epoch: a clock every local process shares.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The `"bench_t":<ns>` stamp in a frame, if any.
pub fn stamp(text: &str) -> Option<u64> {
    const KEY: &str = "\"bench_t\":";
    let at = text.find(KEY)? + KEY.len();
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// Frames that subscribe a connection to the fan-out under test.
pub fn subscribe_frame(kind: Kind, id: u64, what: &Subscription) -> String {
    match (kind, what) {
        (Kind::Bare, _) => format!("{{\"ctl\":\"sub\",\"id\":{id}}}"),
        (Kind::Hub, Subscription::Project(project_id)) => request(
            id,
            "project.subscribe",
            &serde_json::json!({"project_id": project_id}),
        ),
        (Kind::Hub, Subscription::Events) => request(
            id,
            "event.subscribe",
            &serde_json::json!({"types": ["bench.*"]}),
        ),
    }
}

/// What a fan-out subscriber subscribes to.
#[derive(Debug, Clone)]
pub enum Subscription {
    /// A project's output (`project.subscribe`).
    Project(String),
    /// Events of type `bench.*` (`event.subscribe`).
    Events,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_and_ids_are_found() {
        assert_eq!(stamp(r#"{"a":1,"bench_t":12345,"b":2}"#), Some(12345));
        assert_eq!(stamp(r#"{"a":1}"#), None);
        assert_eq!(reply_id(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#), Some(7));
        assert_eq!(reply_id(r#"{"jsonrpc":"2.0","method":"x"}"#), None);
    }
}
