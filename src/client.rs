//! A small JSON-RPC client for a running hub, used by the command-line subcommands
//! (`status`, `project`, `agent run`) the way `ollama run` talks to its server.
//!
//! It finds the hub through the runtime file `server.json` in the data directory and
//! authenticates with the owner token from the secret store.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::SUBPROTOCOL;
use crate::server::RUNTIME_FILE;

/// A client failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No runtime file: the hub is not running for this data directory.
    #[error("no hub is running for {0} (start one with `semantest-hub serve`)")]
    NotRunning(String),
    /// The WebSocket could not be opened or broke.
    #[error("cannot talk to the hub at {url}")]
    Connect {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// The hub answered with a JSON-RPC error.
    #[error("{message} ({kind})")]
    Rpc {
        /// `error.data.kind`.
        kind: String,
        /// `error.message`.
        message: String,
    },
    /// The hub closed the connection or sent something unreadable.
    #[error("the hub closed the connection: {0}")]
    Closed(String),
    /// No answer in time.
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
}

/// Where a running hub listens, from its runtime file.
///
/// # Errors
/// [`ClientError::NotRunning`] when the file is missing or unreadable.
pub fn running_hub_url(data_dir: &Path) -> Result<String, ClientError> {
    let path = data_dir.join(RUNTIME_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| ClientError::NotRunning(data_dir.display().to_string()))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|_| ClientError::NotRunning(data_dir.display().to_string()))?;
    value["url"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ClientError::NotRunning(data_dir.display().to_string()))
}

/// An open connection to a hub.
pub struct HubClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    pending: VecDeque<Value>,
    timeout: Duration,
}

impl HubClient {
    /// Connects to `http_url` (`http://127.0.0.1:P`) with `token` as a bearer token.
    ///
    /// # Errors
    /// [`ClientError::Connect`], e.g. 401 for a wrong token.
    pub async fn connect(http_url: &str, token: &str) -> Result<Self, ClientError> {
        let url = format!("{}/ws", http_url.replacen("http", "ws", 1));
        let connect_err = |source| ClientError::Connect {
            url: url.clone(),
            source: Box::new(source),
        };
        let mut request = url.as_str().into_client_request().map_err(connect_err)?;
        let headers = request.headers_mut();
        headers.insert(
            "authorization",
            format!("Bearer {token}")
                .parse()
                .expect("hex token is a header value"),
        );
        headers.insert(
            "sec-websocket-protocol",
            SUBPROTOCOL.parse().expect("static header value"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(connect_err)?;
        Ok(Self {
            socket,
            next_id: 0,
            pending: VecDeque::new(),
            timeout: Duration::from_secs(30),
        })
    }

    /// Sends a request and waits for its response; notifications that arrive meanwhile
    /// are kept for [`HubClient::next_notification`].
    ///
    /// # Errors
    /// [`ClientError::Rpc`] for an error response, or a transport error.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.next_id += 1;
        let id = self.next_id;
        let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(frame.to_string()))
            .await
            .map_err(|err| ClientError::Closed(err.to_string()))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| ClientError::Timeout(self.timeout))??;
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                if let Some(error) = message.get("error") {
                    return Err(ClientError::Rpc {
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

    /// The next notification (`{method, params}`), waiting for one if none is queued.
    ///
    /// # Errors
    /// [`ClientError::Closed`] when the connection ends.
    pub async fn next_notification(&mut self) -> Result<Value, ClientError> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        loop {
            let message = self.read().await?;
            if message.get("method").is_some() {
                return Ok(message);
            }
        }
    }

    async fn read(&mut self) -> Result<Value, ClientError> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map_err(|err| ClientError::Closed(format!("unreadable frame: {err}")));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame
                            .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                            .unwrap_or_default(),
                    ));
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return Err(ClientError::Closed(err.to_string())),
                None => return Err(ClientError::Closed("end of stream".into())),
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
