//! A JSON-RPC peer over lines: the one connection code shared by the agents that speak
//! JSON-RPC on their stdio, `codex app-server` and the Agent Client Protocol
//! (`gemini --acp`).
//!
//! Both are JSON-RPC 2.0 in shape, one message per line (JSONL), with requests going
//! both ways: the hub asks the agent (`thread/start`, `session/prompt`), and the agent
//! asks the hub (`item/commandExecution/requestApproval`, `session/request_permission`),
//! whose answer may come minutes later, once a person decided. The only difference on
//! the wire is the `"jsonrpc":"2.0"` member: ACP sends and expects it, Codex's app
//! server leaves it out ([`Dialect`]). Incoming messages are told apart by their members,
//! never by that one: `id` with `method` is a request, `method` alone a notification,
//! `id` with `result` or `error` a response.
//!
//! The peer is split in two halves so the hub's own output reader (which stores every
//! raw line in the project's log first) can feed it:
//!
//! - [`Peer`], cheap to clone, sends: [`Peer::request`] gives the response as a future,
//!   matched by id; [`Peer::notify`]; [`Peer::respond`] and [`Peer::respond_error`]
//!   answer an agent's request by its id, at any later time. Lines go through a bounded
//!   channel to one writer, so a slow agent makes senders wait rather than buffer without
//!   bound. Dropping every `Peer` closes that channel: the writer then closes stdin.
//! - [`Inbox`] receives: [`Inbox::receive`] routes a response to the future waiting for
//!   it and returns every other message as an [`Incoming`]. A line that is not a
//!   JSON-RPC message (bad JSON, a response to no request, an id of the wrong type) comes
//!   back as [`Incoming::Malformed`], never an error that ends the connection.
//!
//! [`write_lines`] is the writer task over a child's stdin; the hub's output reader
//! calls [`Inbox::receive`] with each stdout line.
//!
//! The `agent-client-protocol` SDK crate is deliberately not used: it changed major
//! version four times in five months of 2026, and its process transport runs its own
//! `async-io` reactor beside tokio. This module is the part of it the hub needs, on
//! tokio, and serves the Codex app server as well.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// Which JSON-RPC flavour the agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// JSON-RPC 2.0 with the `"jsonrpc":"2.0"` member on every message (the Agent Client
    /// Protocol, `gemini --acp`).
    JsonRpc2,
    /// The same shapes without the `jsonrpc` member (`codex app-server`; its README:
    /// "the `"jsonrpc":"2.0"` header is omitted").
    NoVersion,
}

/// A request id: JSON-RPC allows a number or a string, and the answer must carry the
/// same value back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A number (what the hub sends; Codex and Gemini number their own requests too).
    Number(i64),
    /// A string.
    Text(String),
}

impl RequestId {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => n.as_i64().map(Self::Number),
            Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(Self::Text(s.clone())),
            _ => None,
        }
    }

    /// The id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(n) => json!(n),
            Self::Text(s) => json!(s),
        }
    }

    /// The id as it appears in JSON (`7`, `"abc"`): the hub's text form of an agent's
    /// request id (a pending approval's `request_id`), turned back by [`RequestId::parse`].
    pub fn to_text(&self) -> String {
        self.to_value().to_string()
    }

    /// The id from its [`RequestId::to_text`] form.
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str::<Value>(text)
            .ok()
            .as_ref()
            .and_then(Self::from_value)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The `error` member of a response.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorObject {
    /// The JSON-RPC code.
    pub code: i64,
    /// The message.
    pub message: String,
    /// `data`, if any.
    pub data: Option<Value>,
}

/// Why a request got no result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerError {
    /// The agent answered with an error.
    #[error("the agent answered {method} with error {}: {}", .error.code, .error.message)]
    Remote {
        /// The request's method.
        method: String,
        /// What it said.
        error: ErrorObject,
    },
    /// The connection closed (the agent exited, or the hub closed it) before an answer.
    #[error("the agent closed the connection before answering {method}")]
    Closed {
        /// The request's method.
        method: String,
    },
}

/// A message from the agent other than a response to the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A request: answer it with [`Peer::respond`] or [`Peer::respond_error`] and `id`.
    Request {
        /// Its id.
        id: RequestId,
        /// The method.
        method: String,
        /// `params`, `Value::Null` when absent.
        params: Value,
    },
    /// A notification.
    Notification {
        /// The method.
        method: String,
        /// `params`, `Value::Null` when absent.
        params: Value,
    },
    /// A line that is not a usable JSON-RPC message, with why. Log it and go on.
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

type Waiter = oneshot::Sender<Result<Value, ErrorObject>>;

struct Shared {
    dialect: Dialect,
    next_id: AtomicI64,
    /// Requests sent and not answered yet, by id, with their method (for errors). A std
    /// `Mutex`: map operations only.
    waiting: Mutex<HashMap<i64, (String, Waiter)>>,
}

impl Shared {
    fn waiting(&self) -> MutexGuard<'_, HashMap<i64, (String, Waiter)>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The sending half; cheap to clone.
#[derive(Clone)]
pub struct Peer {
    shared: Arc<Shared>,
    out: mpsc::Sender<String>,
}

/// The receiving half.
pub struct Inbox {
    shared: Arc<Shared>,
}

/// A peer whose lines go to `out` (one line per message, without its newline), and the
/// inbox its incoming lines are given to.
pub fn pair(dialect: Dialect, out: mpsc::Sender<String>) -> (Peer, Inbox) {
    let shared = Arc::new(Shared {
        dialect,
        next_id: AtomicI64::new(0),
        waiting: Mutex::new(HashMap::new()),
    });
    (
        Peer {
            shared: shared.clone(),
            out,
        },
        Inbox { shared },
    )
}

/// A response that has not arrived yet; see [`Peer::request`].
pub struct Response {
    method: String,
    answer: oneshot::Receiver<Result<Value, ErrorObject>>,
}

impl Response {
    /// Waits for the answer.
    ///
    /// # Errors
    /// [`PeerError::Remote`] for an error response, [`PeerError::Closed`] when the
    /// connection ended first.
    pub async fn result(self) -> Result<Value, PeerError> {
        match self.answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(PeerError::Remote {
                method: self.method,
                error,
            }),
            Err(_) => Err(PeerError::Closed {
                method: self.method,
            }),
        }
    }
}

impl Peer {
    fn frame(&self, mut message: Map<String, Value>) -> String {
        if self.shared.dialect == Dialect::JsonRpc2 {
            message.insert("jsonrpc".into(), json!("2.0"));
        }
        Value::Object(message).to_string()
    }

    async fn send(&self, line: String, method: &str) -> Result<(), PeerError> {
        self.out.send(line).await.map_err(|_| PeerError::Closed {
            method: method.to_string(),
        })
    }

    /// Sends a request and returns its [`Response`], which resolves when the agent
    /// answers. Ids are numbers from 0, unique in the connection. Waits for room in the
    /// writer's queue; the response itself is awaited separately, so a caller can keep
    /// serving the agent's own requests meanwhile.
    ///
    /// # Errors
    /// [`PeerError::Closed`] when the writer is gone.
    pub async fn request(&self, method: &str, params: Value) -> Result<Response, PeerError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (waiter, answer) = oneshot::channel();
        self.shared
            .waiting()
            .insert(id, (method.to_string(), waiter));
        let mut message = Map::new();
        message.insert("id".into(), json!(id));
        message.insert("method".into(), json!(method));
        message.insert("params".into(), params);
        if let Err(err) = self.send(self.frame(message), method).await {
            self.shared.waiting().remove(&id);
            return Err(err);
        }
        Ok(Response {
            method: method.to_string(),
            answer,
        })
    }

    /// Sends a notification (`params` left out when `Value::Null`).
    ///
    /// # Errors
    /// [`PeerError::Closed`] when the writer is gone.
    pub async fn notify(&self, method: &str, params: Value) -> Result<(), PeerError> {
        let mut message = Map::new();
        message.insert("method".into(), json!(method));
        if !params.is_null() {
            message.insert("params".into(), params);
        }
        self.send(self.frame(message), method).await
    }

    /// Answers the agent's request `id` with `result`.
    ///
    /// # Errors
    /// [`PeerError::Closed`] when the writer is gone.
    pub async fn respond(&self, id: &RequestId, result: Value) -> Result<(), PeerError> {
        let mut message = Map::new();
        message.insert("id".into(), id.to_value());
        message.insert("result".into(), result);
        self.send(self.frame(message), "a response").await
    }

    /// Answers the agent's request `id` with an error (e.g. -32601 for a method the hub
    /// does not serve).
    ///
    /// # Errors
    /// [`PeerError::Closed`] when the writer is gone.
    pub async fn respond_error(
        &self,
        id: &RequestId,
        code: i64,
        message_text: &str,
    ) -> Result<(), PeerError> {
        let mut message = Map::new();
        message.insert("id".into(), id.to_value());
        message.insert(
            "error".into(),
            json!({"code": code, "message": message_text}),
        );
        self.send(self.frame(message), "a response").await
    }
}

impl Inbox {
    /// Reads one incoming line: a response goes to its waiting [`Response`] (and `None`
    /// comes back); anything else is returned. Never fails: what cannot be used is
    /// [`Incoming::Malformed`].
    pub fn receive(&self, line: &str) -> Option<Incoming> {
        let line = line.trim();
        if line.is_empty() {
            return None;
        }
        let malformed = |reason: &str| {
            Some(Incoming::Malformed {
                reason: reason.to_string(),
            })
        };
        let Ok(Value::Object(mut message)) = serde_json::from_str::<Value>(line) else {
            return malformed("not a JSON object");
        };
        let method = match message.remove("method") {
            Some(Value::String(method)) if !method.is_empty() => Some(method),
            None => None,
            Some(_) => return malformed("a method that is not a string"),
        };
        let params = message.remove("params").unwrap_or(Value::Null);
        let id = message.get("id").filter(|id| !id.is_null());
        match (method, id) {
            (Some(method), Some(id)) => match RequestId::from_value(id) {
                Some(id) => Some(Incoming::Request { id, method, params }),
                None => malformed("a request id that is neither a number nor a string"),
            },
            (Some(method), None) => Some(Incoming::Notification { method, params }),
            (None, Some(id)) => {
                let Some(id) = id.as_i64() else {
                    return malformed("a response to an id the hub never sent");
                };
                let Some((_, waiter)) = self.shared.waiting().remove(&id) else {
                    return malformed("a response to no pending request");
                };
                let answer = match (message.remove("result"), message.remove("error")) {
                    (_, Some(error)) => Err(error_object(&error)),
                    (Some(result), None) => Ok(result),
                    (None, None) => Ok(Value::Null),
                };
                // The caller may have stopped waiting; that is its choice.
                let _ = waiter.send(answer);
                None
            }
            (None, None) => malformed("neither a method nor an id"),
        }
    }

    /// Fails every request still waiting with [`PeerError::Closed`]: the agent's output
    /// ended, so no answer can come.
    pub fn close(&self) {
        self.shared.waiting().clear();
    }
}

fn error_object(error: &Value) -> ErrorObject {
    ErrorObject {
        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        data: error.get("data").cloned(),
    }
}

/// Writes each line of `lines` to `writer`, a newline after each, until the channel
/// closes (every [`Peer`] dropped) or a write fails; then shuts the writer down (for a
/// child's stdin: end of input).
pub async fn write_lines(mut writer: impl AsyncWrite + Unpin, mut lines: mpsc::Receiver<String>) {
    while let Some(mut line) = lines.recv().await {
        line.push('\n');
        let written = async {
            writer.write_all(line.as_bytes()).await?;
            writer.flush().await
        };
        if let Err(err) = written.await {
            debug!(error = %err, "the agent's input is closed");
            return;
        }
    }
    let _ = writer.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

    /// Runs a peer over `reader` and `writer` with its own reader and writer tasks: lines
    /// over `max_line` bytes are cut (and then reported malformed), every incoming message
    /// but responses arrives on the returned channel (`capacity` deep; the reader waits for
    /// room), which closes at the end of input. Used where no output log sits in between.
    fn connect(
        dialect: Dialect,
        reader: impl AsyncRead + Unpin + Send + 'static,
        writer: impl AsyncWrite + Unpin + Send + 'static,
        capacity: usize,
        max_line: usize,
    ) -> (Peer, mpsc::Receiver<Incoming>) {
        let (out, lines) = mpsc::channel(capacity);
        let (peer, inbox) = pair(dialect, out);
        let (incoming_tx, incoming) = mpsc::channel(capacity);
        tokio::spawn(write_lines(writer, lines));
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match crate::runner::output::append_capped_line(&mut reader, &mut buf, max_line)
                    .await
                {
                    Ok(Some(dropped)) => {
                        let message = if dropped > 0 {
                            Some(Incoming::Malformed {
                                reason: format!("a line over {max_line} bytes"),
                            })
                        } else {
                            inbox.receive(&String::from_utf8_lossy(&buf))
                        };
                        if let Some(message) = message
                            && incoming_tx.send(message).await.is_err()
                        {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            inbox.close();
        });
        (peer, incoming)
    }

    struct Agent {
        lines: tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>>,
        write: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    }

    impl Agent {
        async fn next(&mut self) -> Value {
            let line =
                tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.next_line())
                    .await
                    .expect("a line in time")
                    .unwrap()
                    .expect("a line");
            serde_json::from_str(&line).unwrap()
        }

        async fn say(&mut self, line: &str) {
            self.write.write_all(line.as_bytes()).await.unwrap();
            self.write.write_all(b"\n").await.unwrap();
        }
    }

    fn simple(dialect: Dialect) -> (Peer, mpsc::Receiver<Incoming>, Agent) {
        let (hub_side, agent_side) = tokio::io::duplex(64 * 1024);
        let (hub_read, hub_write) = tokio::io::split(hub_side);
        let (agent_read, agent_write) = tokio::io::split(agent_side);
        let (peer, incoming) = connect(dialect, hub_read, hub_write, 16, 4096);
        let agent = Agent {
            lines: BufReader::new(agent_read).lines(),
            write: agent_write,
        };
        (peer, incoming, agent)
    }

    async fn next(incoming: &mut mpsc::Receiver<Incoming>) -> Incoming {
        tokio::time::timeout(std::time::Duration::from_secs(10), incoming.recv())
            .await
            .expect("a message in time")
            .expect("a message")
    }

    #[tokio::test]
    async fn requests_are_answered_by_id_in_any_order() {
        let (peer, _incoming, mut agent) = simple(Dialect::NoVersion);
        let first = peer.request("initialize", json!({"a": 1})).await.unwrap();
        let second = peer.request("thread/start", json!({})).await.unwrap();
        let sent = agent.next().await;
        assert_eq!(
            sent,
            json!({"id": 0, "method": "initialize", "params": {"a": 1}})
        );
        assert_eq!(agent.next().await["id"], 1);
        agent
            .say(r#"{"id":1,"result":{"thread":{"id":"t1"}}}"#)
            .await;
        agent
            .say(r#"{"id":0,"error":{"code":-32600,"message":"no"}}"#)
            .await;
        assert_eq!(
            second.result().await.unwrap(),
            json!({"thread": {"id": "t1"}})
        );
        match first.result().await {
            Err(PeerError::Remote { method, error }) => {
                assert_eq!(method, "initialize");
                assert_eq!((error.code, error.message.as_str()), (-32600, "no"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn acp_messages_carry_the_version_member() {
        let (peer, _incoming, mut agent) = simple(Dialect::JsonRpc2);
        peer.notify("session/cancel", json!({"sessionId": "s"}))
            .await
            .unwrap();
        assert_eq!(
            agent.next().await,
            json!({"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "s"}})
        );
        peer.notify("initialized", Value::Null).await.unwrap();
        assert_eq!(
            agent.next().await,
            json!({"jsonrpc": "2.0", "method": "initialized"})
        );
    }

    #[tokio::test]
    async fn agent_requests_are_answered_later_by_their_own_id() {
        let (peer, mut incoming, mut agent) = simple(Dialect::NoVersion);
        agent
            .say(r#"{"method":"item/commandExecution/requestApproval","id":0,"params":{"itemId":"c1"}}"#)
            .await;
        agent
            .say(
                r#"{"jsonrpc":"2.0","id":"p-7","method":"session/request_permission","params":{}}"#,
            )
            .await;
        agent
            .say(r#"{"method":"turn/started","params":{"turn":{"id":"u1"}}}"#)
            .await;
        let Incoming::Request {
            id: first,
            method,
            params,
        } = next(&mut incoming).await
        else {
            panic!("not a request");
        };
        assert_eq!(method, "item/commandExecution/requestApproval");
        assert_eq!(params["itemId"], "c1");
        let Incoming::Request { id: second, .. } = next(&mut incoming).await else {
            panic!("not a request");
        };
        assert_eq!(second, RequestId::Text("p-7".into()));
        assert!(
            matches!(next(&mut incoming).await, Incoming::Notification { method, .. } if method == "turn/started")
        );
        // Answered in the other order, each by its own id value.
        peer.respond(&second, json!({"outcome": {"outcome": "cancelled"}}))
            .await
            .unwrap();
        peer.respond(&first, json!({"decision": "accept"}))
            .await
            .unwrap();
        assert_eq!(agent.next().await["id"], "p-7");
        assert_eq!(
            agent.next().await,
            json!({"id": 0, "result": {"decision": "accept"}})
        );
        // The text form survives a round trip through a pending approval's id.
        assert_eq!(RequestId::parse(&first.to_text()), Some(first));
        assert_eq!(RequestId::parse(&second.to_text()), Some(second));
    }

    #[tokio::test]
    async fn malformed_lines_are_reported_and_the_connection_goes_on() {
        let (peer, mut incoming, mut agent) = simple(Dialect::NoVersion);
        for line in [
            "not json",
            "[1,2]",
            r#"{"id":99,"result":{}}"#,
            r#"{"id":"x","result":{}}"#,
            r#"{"id":{"a":1},"method":"m"}"#,
            r#"{"method":7}"#,
            r#"{"params":{}}"#,
            &"x".repeat(5000),
        ] {
            agent.say(line).await;
            assert!(
                matches!(next(&mut incoming).await, Incoming::Malformed { .. }),
                "{line}"
            );
        }
        let pending = peer.request("ping", json!({})).await.unwrap();
        agent.next().await;
        agent.say(r#"{"id":0,"result":"pong"}"#).await;
        assert_eq!(pending.result().await.unwrap(), json!("pong"));
    }

    #[tokio::test]
    async fn the_end_of_output_fails_the_requests_still_waiting() {
        let (peer, mut incoming, agent) = simple(Dialect::JsonRpc2);
        let pending = peer.request("session/prompt", json!({})).await.unwrap();
        drop(agent);
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(10), incoming.recv())
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            pending.result().await,
            Err(PeerError::Closed { method }) if method == "session/prompt"
        ));
    }
}
