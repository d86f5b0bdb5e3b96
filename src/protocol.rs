//! The wire protocol: JSON-RPC 2.0 over WebSocket text frames, the convention of LSP and MCP.
//!
//! This module holds data only: the envelope, the params of every method, the shapes the
//! hub returns and pushes, and the method names. `docs/protocol.md` is the reference and
//! `docs/protocol.schema.json` the JSON Schema; golden tests below pin the wire format.
//!
//! Rules taken from the JSON-RPC 2.0 specification (<https://www.jsonrpc.org/specification>):
//! a request has `jsonrpc: "2.0"`, a `method` and an `id` (string or number); a message
//! without `id` is a notification and gets no response; errors use the codes of section
//! 5.1. Batches (section 6) are refused with `BATCH_UNSUPPORTED`, as MCP does.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::protocol::error::{ErrorKind, RpcError};

/// A stored or wire name that names no variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    /// What was being named, e.g. `task state`.
    pub what: &'static str,
    /// The name found.
    pub name: String,
}

/// `as_str` and [`std::str::FromStr`] for an enum stored by name: one table, so the two
/// directions cannot disagree.
macro_rules! stored_names {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::protocol::UnknownName;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(Self::$variant),)+
                    _ => Err($crate::protocol::UnknownName {
                        what: $what,
                        name: name.to_string(),
                    }),
                }
            }
        }
    };
}

pub mod agents;
pub mod clients;
pub mod coordination;
pub mod error;
pub mod events;
pub mod hub;
pub mod ids;
pub mod scopes;
pub mod usage;
pub mod worktrees;

/// The protocol version, sent in the signature and in `hub.hello`. Bumped on any
/// incompatible change of a shape below.
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket subprotocol the hub speaks (RFC 6455 section 1.9).
pub const SUBPROTOCOL: &str = "semantest-hub.v1";

/// Prefix of the `Sec-WebSocket-Protocol` entry that carries a token, for browsers, which
/// cannot set an `Authorization` header on a WebSocket: `semantest-hub.token.<hex>`.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "semantest-hub.token.";

/// Method and notification names.
pub mod method {
    /// Request: introduce the client (role, name).
    pub const HUB_HELLO: &str = "hub.hello";
    /// Request: hub status.
    pub const HUB_STATUS: &str = "hub.status";
    /// Request: the same report as `GET /health`.
    pub const HUB_HEALTH: &str = "hub.health";
    /// Request: configuration values with their sources.
    pub const HUB_CONFIG: &str = "hub.config";
    /// Request: connected clients. Notification `hub.connection` reports changes.
    pub const HUB_CONNECTIONS: &str = "hub.connections";
    /// Request: a one-time sign-in link for the dashboard (owner only).
    pub const HUB_LOGIN_LINK: &str = "hub.login_link";
    /// Request: sign every dashboard session out, closing their connections (owner only).
    pub const HUB_REVOKE_SESSIONS: &str = "hub.revoke_sessions";
    /// Request: register a project directory.
    pub const PROJECT_CREATE: &str = "project.create";
    /// Request: every project.
    pub const PROJECT_LIST: &str = "project.list";
    /// Request: one project.
    pub const PROJECT_GET: &str = "project.get";
    /// Request: unregister a project and delete its log (the directory is untouched).
    pub const PROJECT_DELETE: &str = "project.delete";
    /// Request: receive a project's output, replaying what came after `after_seq`.
    pub const PROJECT_SUBSCRIBE: &str = "project.subscribe";
    /// Request: stop receiving a project's output.
    pub const PROJECT_UNSUBSCRIBE: &str = "project.unsubscribe";
    /// Request: start an agent run.
    pub const AGENT_RUN: &str = "agent.run";
    /// Request: stop the running agent.
    pub const AGENT_KILL: &str = "agent.kill";
    /// Request: forget the session so the next run starts fresh.
    pub const AGENT_NEW_SESSION: &str = "agent.new_session";
    /// Request: stored output lines.
    pub const MESSAGES_LIST: &str = "messages.list";
    /// Request: a project's runs, newest first.
    pub const PROJECT_RUNS: &str = "project.runs";

    /// Notification: one agent output line.
    pub const PROJECT_OUTPUT: &str = "project.output";
    /// Notification: a project's state changed.
    pub const PROJECT_STATE: &str = "project.state";
    /// Notification: a project was registered.
    pub const PROJECT_CREATED: &str = "project.created";
    /// Notification: a project was removed.
    pub const PROJECT_DELETED: &str = "project.deleted";
    /// Notification: periodic statistics.
    pub const HUB_STATS: &str = "hub.stats";
    /// Notification: a client connected, changed or disconnected.
    pub const HUB_CONNECTION: &str = "hub.connection";
}

/// A JSON-RPC request id: a string or an integer (JSON-RPC 2.0 section 4; fractional
/// numbers are discouraged by the spec and refused here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    String(String),
}

/// An incoming message after envelope validation.
#[derive(Debug)]
pub enum Incoming {
    /// A request, which gets exactly one response.
    Request {
        /// Echoed in the response.
        id: RequestId,
        /// The method name.
        method: String,
        /// `params`, or `null` when absent.
        params: Value,
    },
    /// A notification from the client; it gets no response (JSON-RPC 2.0 section 4.1).
    Notification {
        /// The method name.
        method: String,
        /// `params`, or `null` when absent.
        params: Value,
    },
}

/// Why an incoming frame was refused, with the id to answer to when one was readable.
#[derive(Debug)]
pub struct EnvelopeError {
    /// The request id, or `None` (sent as `null`) when it could not be read.
    pub id: Option<RequestId>,
    /// The error to send.
    pub error: RpcError,
}

/// Parses one text frame into a request or notification.
///
/// # Errors
/// `PARSE_ERROR` for invalid JSON, `BATCH_UNSUPPORTED` for an array, `INVALID_REQUEST` for
/// anything that is not a JSON-RPC 2.0 request object.
pub fn parse_incoming(text: &str) -> Result<Incoming, EnvelopeError> {
    let value: Value = serde_json::from_str(text).map_err(|err| EnvelopeError {
        id: None,
        error: RpcError::new(ErrorKind::ParseError, format!("invalid JSON: {err}")),
    })?;
    let mut object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            return Err(EnvelopeError {
                id: None,
                error: RpcError::new(
                    ErrorKind::BatchUnsupported,
                    "batch requests are not supported; send one request per frame",
                ),
            });
        }
        _ => {
            return Err(EnvelopeError {
                id: None,
                error: RpcError::new(ErrorKind::InvalidRequest, "a request must be a JSON object"),
            });
        }
    };
    let invalid = |id: Option<RequestId>, message: &str| EnvelopeError {
        id,
        error: RpcError::new(ErrorKind::InvalidRequest, message),
    };
    let id = match object.remove("id") {
        None => None,
        Some(raw) => match serde_json::from_value::<RequestId>(raw) {
            Ok(id) => Some(id),
            Err(_) => return Err(invalid(None, "id must be a string or an integer")),
        },
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(id, "jsonrpc must be \"2.0\""));
    }
    let Some(Value::String(method)) = object.remove("method") else {
        return Err(invalid(id, "method must be a string"));
    };
    let params = object.remove("params").unwrap_or(Value::Null);
    if !matches!(params, Value::Null | Value::Object(_) | Value::Array(_)) {
        return Err(invalid(id, "params must be an object or an array"));
    }
    Ok(match id {
        Some(id) => Incoming::Request { id, method, params },
        None => Incoming::Notification { method, params },
    })
}

/// Deserializes a method's params; absent params count as `{}`.
///
/// # Errors
/// `INVALID_PARAMS` naming the first field that does not fit.
pub fn parse_params<T: for<'de> Deserialize<'de>>(params: Value) -> Result<T, RpcError> {
    let params = if params.is_null() {
        Value::Object(Default::default())
    } else {
        params
    };
    serde_json::from_value(params)
        .map_err(|err| RpcError::new(ErrorKind::InvalidParams, format!("invalid params: {err}")))
}

/// Serializes a success response.
pub fn response(id: &RequestId, result: &Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// Serializes an error response; `id` is `null` when the request's id was unreadable.
pub fn error_response(id: Option<&RequestId>, error: &RpcError) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()}).to_string()
}

/// Serializes a notification.
pub fn notification<P: Serialize>(method: &str, params: &P) -> String {
    #[derive(Serialize)]
    struct Notification<'a, P> {
        jsonrpc: &'static str,
        method: &'a str,
        params: &'a P,
    }
    serde_json::to_string(&Notification {
        jsonrpc: "2.0",
        method,
        params,
    })
    .expect("protocol types always serialize")
}

/// The role a client declares in `hub.hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The web dashboard.
    Dashboard,
    /// A browser extension.
    Extension,
    /// A client that creates tasks.
    Coordinator,
    /// A client that executes tasks.
    Worker,
    /// A script or the command-line client; the default.
    #[default]
    Script,
}

/// `hub.hello` params.
#[derive(Debug, Deserialize)]
pub struct HelloParams {
    /// The client's role.
    #[serde(default)]
    pub role: Role,
    /// A display name, at most 100 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// Whether this connection wants `hub.connection` notifications (it also needs
    /// `projects:read`). Absent: `true` for `role: "dashboard"`, `false` for any other
    /// role. Opt-in so that many clients opening and closing cost each change one frame
    /// per watcher, not one per connection (docs/protocol.md, "hub.connection").
    #[serde(default)]
    pub connection_events: Option<bool>,
}

/// `project.create` params.
#[derive(Debug, Deserialize)]
pub struct ProjectCreateParams {
    /// An absolute path to an existing directory.
    pub path: String,
    /// A display name; defaults to the directory's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// Params naming one project: `project.get`, `project.delete`, `project.unsubscribe`,
/// `agent.kill`, `agent.new_session`.
#[derive(Debug, Deserialize)]
pub struct ProjectRef {
    /// The project id.
    pub project_id: String,
}

/// `agent.kill` params.
#[derive(Debug, Deserialize)]
pub struct AgentKillParams {
    /// The project id.
    pub project_id: String,
    /// An isolated run of the project to stop (`agent.run {isolation: "worktree"}`);
    /// the project's own run when absent.
    #[serde(default)]
    pub run_id: Option<String>,
}

/// `project.subscribe` params.
#[derive(Debug, Deserialize)]
pub struct SubscribeParams {
    /// The project id.
    pub project_id: String,
    /// Replay every stored line with a greater `seq` first; absent means live lines only.
    #[serde(default)]
    pub after_seq: Option<u64>,
}

/// `agent.run` params.
#[derive(Debug, Deserialize)]
pub struct AgentRunParams {
    /// The project id.
    pub project_id: String,
    /// The prompt, written to the CLI's stdin (never an argument). At most 256 KiB.
    pub prompt: String,
    /// Start a fresh session instead of resuming the project's current one.
    #[serde(default)]
    pub new_session: bool,
    /// Wall-clock limit in seconds; defaults to `agent.timeout_s`, capped by
    /// `agent.max_timeout_s`.
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// The agent for this run only (`claude`, `codex`, `gemini`); the project's when
    /// absent. It resumes that agent's own session of the project.
    #[serde(default)]
    pub agent: Option<agents::AgentKind>,
    /// `worktree`: the run works in a git worktree of its own, on the branch
    /// `semantest/run-<run-id>` from the project's `HEAD`, beside the project's own run
    /// and other isolated runs (it neither claims the project nor resumes its session).
    /// `none` (the default) is the project's run.
    #[serde(default)]
    pub isolation: Option<worktrees::Isolation>,
    /// A follow-up in the worktree of an earlier isolated run (any run that worked
    /// there): resumes that worktree's session, in that worktree. Implies
    /// `isolation: "worktree"`; `new_session` starts a fresh session there instead.
    #[serde(default)]
    pub worktree: Option<String>,
}

/// `messages.list` params.
#[derive(Debug, Deserialize, Default)]
pub struct MessagesListParams {
    /// The project id.
    pub project_id: String,
    /// Only lines with a greater seq.
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Only lines with a smaller seq; with it, the page is the `limit` lines just before.
    #[serde(default)]
    pub before_seq: Option<u64>,
    /// Only lines at or after this RFC 3339 time.
    #[serde(default)]
    pub since: Option<String>,
    /// Only lines before this RFC 3339 time.
    #[serde(default)]
    pub until: Option<String>,
    /// Only lines of these kinds (`assistant`, `result`, `stderr`, ...).
    #[serde(default)]
    pub kinds: Option<Vec<String>>,
    /// Page size, 1..=1000, default 200.
    #[serde(default)]
    pub limit: Option<u32>,
    /// Full-text search: only lines whose text holds every word, 1 to 256 characters.
    #[serde(default)]
    pub q: Option<String>,
}

/// `project.runs` params.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProjectRunsParams {
    /// The project id.
    pub project_id: String,
    /// Only runs older than this one (its id), for the next page.
    #[serde(default)]
    pub before: Option<String>,
    /// Page size, 1..=200, default 50.
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Where an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    /// The agent's standard output.
    Stdout,
    /// The agent's standard error.
    Stderr,
    /// A line the hub wrote itself (run started, run finished).
    Hub,
}

stored_names!(Stream, "stream", { Stdout => "stdout", Stderr => "stderr", Hub => "hub" });

/// One stored output line: the params of `project.output` and an item of `messages.list`.
///
/// Exactly one of `event` (a stream-json object, embedded as it was printed) and `text` (a
/// line that was not a JSON object) is present.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// The project id.
    pub project_id: String,
    /// Position in the project's log, from 1, without gaps.
    pub seq: u64,
    /// When the hub read the line, RFC 3339 with milliseconds, UTC.
    pub ts: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// The stream it came from.
    pub stream: Stream,
    /// The stream-json `type` (`system`, `assistant`, `user`, `result`, ...), `text` for a
    /// non-JSON stdout line, `stderr`, or the hub's own `run_started` / `run_finished`.
    pub kind: String,
    /// The parsed stream-json event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Box<RawValue>>,
    /// The raw line, when it was not a JSON object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A project's state (DESIGN.md, "The agent runner").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    /// No run; the last one, if any, succeeded.
    Idle,
    /// An agent runs.
    Running,
    /// The last run failed (non-zero exit, error result, timeout, crash).
    Failed,
    /// The last run was killed.
    Killed,
}

stored_names!(ProjectState, "project state", {
    Idle => "idle", Running => "running", Failed => "failed", Killed => "killed",
});

/// How an agent run ended, as stored for the run and sent in its `run_finished` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Exited 0 with a `result` line that is not an error.
    Succeeded,
    /// Exited otherwise, or reported an error.
    Failed,
    /// Stopped on request or by the hub's shutdown.
    Killed,
    /// Stopped after its timeout.
    TimedOut,
    /// Found running after a crash of the hub and ended.
    Orphaned,
}

stored_names!(RunStatus, "run status", {
    Succeeded => "succeeded", Failed => "failed", Killed => "killed",
    TimedOut => "timed_out", Orphaned => "orphaned",
});

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The run a project is executing.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// The run id.
    pub id: String,
    /// RFC 3339 start time.
    pub started_at: String,
}

/// A project as returned by `project.*` methods.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectView {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Canonical absolute path.
    pub path: String,
    /// Current state.
    pub state: ProjectState,
    /// The session the next run of the project's agent resumes, if any.
    pub session_id: Option<String>,
    /// The agent that runs the project's turns (`project.configure`).
    pub agent: agents::AgentKind,
    /// The model its runs ask for; `null` lets the agent choose.
    pub model: Option<String>,
    /// The session each agent resumes, by agent (`{"claude": "…", "codex": "…"}`);
    /// resume is kept per project and per agent.
    pub sessions: std::collections::BTreeMap<agents::AgentKind, String>,
    /// The last output line's seq (0 when the log is empty).
    pub last_seq: u64,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// The current run, while running.
    pub run: Option<RunInfo>,
    /// Why the last run failed or was killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `project.state` notification params.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// The project id.
    pub project_id: String,
    /// The new state.
    pub state: ProjectState,
    /// The session the next run resumes.
    pub session_id: Option<String>,
    /// The run that caused the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why, for `failed` and `killed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_and_notification_are_told_apart() {
        match parse_incoming(r#"{"jsonrpc":"2.0","id":7,"method":"hub.status"}"#).unwrap() {
            Incoming::Request { id, method, params } => {
                assert_eq!(id, RequestId::Number(7));
                assert_eq!(method, "hub.status");
                assert!(params.is_null());
            }
            other => panic!("expected a request, got {other:?}"),
        }
        assert!(matches!(
            parse_incoming(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap(),
            Incoming::Notification { .. }
        ));
    }

    #[test]
    fn bad_envelopes_get_the_standard_codes() {
        let kind = |text: &str| parse_incoming(text).unwrap_err().error.kind;
        assert_eq!(kind("{nope"), ErrorKind::ParseError);
        assert_eq!(kind("[]"), ErrorKind::BatchUnsupported);
        assert_eq!(kind("42"), ErrorKind::InvalidRequest);
        assert_eq!(kind(r#"{"id":1,"method":"x"}"#), ErrorKind::InvalidRequest);
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1}"#),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            ErrorKind::InvalidRequest
        );
        // The id survives when the rest is wrong, so the client can match the error.
        let err = parse_incoming(r#"{"jsonrpc":"1.0","id":"a","method":"x"}"#).unwrap_err();
        assert_eq!(err.id, Some(RequestId::String("a".into())));
    }

    #[test]
    fn wrong_params_name_the_field() {
        let err = parse_params::<ProjectRef>(json!({"project_id": 5})).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParams);
        assert!(err.message.contains("invalid type"), "{}", err.message);
        let err = parse_params::<ProjectRef>(Value::Null).unwrap_err();
        assert!(err.message.contains("project_id"), "{}", err.message);
    }

    /// Pins the wire format of the pushed output line (golden JSON).
    #[test]
    fn output_notification_golden() {
        let output = Output {
            project_id: "p1".into(),
            seq: 3,
            ts: "2026-01-02T03:04:05.678Z".into(),
            run_id: Some("r1".into()),
            stream: Stream::Stdout,
            kind: "result".into(),
            event: Some(
                RawValue::from_string(r#"{"type":"result","total_cost_usd":0.5}"#.into()).unwrap(),
            ),
            text: None,
        };
        assert_eq!(
            notification(method::PROJECT_OUTPUT, &output),
            r#"{"jsonrpc":"2.0","method":"project.output","params":{"project_id":"p1","seq":3,"ts":"2026-01-02T03:04:05.678Z","run_id":"r1","stream":"stdout","kind":"result","event":{"type":"result","total_cost_usd":0.5}}}"#
        );
    }

    #[test]
    fn responses_golden() {
        assert_eq!(
            response(&RequestId::String("x".into()), &json!({"ok": true})),
            r#"{"id":"x","jsonrpc":"2.0","result":{"ok":true}}"#
        );
        let err = RpcError::new(ErrorKind::MethodNotFound, "unknown method nope");
        assert_eq!(
            error_response(None, &err),
            r#"{"error":{"code":-32601,"data":{"kind":"METHOD_NOT_FOUND"},"message":"unknown method nope"},"id":null,"jsonrpc":"2.0"}"#
        );
    }
}
