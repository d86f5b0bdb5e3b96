//! The error clients see: a stable kind, a JSON-RPC 2.0 code and a short message.
//!
//! Every subsystem has its own `thiserror` enum with the context a reader of the log needs.
//! At the protocol edge those errors become an [`RpcError`]: the JSON-RPC `code` (the
//! standard ones from the JSON-RPC 2.0 specification, section 5.1, or one of the
//! implementation-defined server codes -32000..-32099), a human message, and the stable
//! [`ErrorKind`] in `error.data.kind` that clients branch on. Internal details (SQL
//! errors, OS errors) are logged, never sent.

use serde::Serialize;
use serde_json::{Value, json};

/// A stable, machine-readable error kind, sent as `error.data.kind`.
///
/// Kinds never change meaning once published; clients may match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorKind {
    /// The frame was not valid JSON (JSON-RPC -32700).
    ParseError,
    /// The JSON was not a valid JSON-RPC 2.0 request object (-32600).
    InvalidRequest,
    /// A JSON array: batches are not supported, as in MCP and LSP (-32600).
    BatchUnsupported,
    /// No such method (-32601).
    MethodNotFound,
    /// The params do not match the method's shape (-32602).
    InvalidParams,
    /// A project path is relative, missing, not a directory, or otherwise unusable (-32602).
    InvalidPath,
    /// The session an `agent.run` would resume is not a valid agent session id (a UUID),
    /// so it is not passed to the CLI; `agent.new_session` clears it (-32602).
    InvalidSession,
    /// No project has that id (-32001).
    ProjectNotFound,
    /// That directory is already a project (-32002).
    ProjectExists,
    /// The directory is inside another project or contains one (-32003).
    ProjectNested,
    /// The project already runs an agent (-32004).
    ProjectBusy,
    /// The project runs no agent, so there is nothing to kill (-32005).
    NotRunning,
    /// A configured limit (projects, connections, running agents) is reached (-32006).
    LimitReached,
    /// The caller is not allowed to do this (-32007).
    Unauthorized,
    /// The connection sends faster than its rate limit allows (-32008).
    RateLimited,
    /// A message or value exceeds its size limit (-32009).
    TooLarge,
    /// The agent CLI was not found or could not be started (-32010).
    AgentUnavailable,
    /// No task has that id (-32020).
    TaskNotFound,
    /// The task is not assigned to the calling worker (-32021).
    NotAssigned,
    /// The method is for workers, and this connection has not called `worker.register`
    /// (-32022).
    NotAWorker,
    /// A task id is already used in another project (-32023).
    TaskExists,
    /// Worktree isolation asked of a project that is not in a git repository with a
    /// commit (-32024).
    NotARepository,
    /// The task has no worktree branch to merge or discard: it never ran isolated, or
    /// was merged or discarded already (-32025).
    NoWorktree,
    /// The task's worktree is in use: its task is queued or running (-32026).
    WorktreeBusy,
    /// The merge would conflict; `data.files` lists the conflicting files and nothing
    /// was changed (-32027).
    MergeConflict,
    /// The checkout of the base branch has uncommitted changes in files the merge would
    /// change; `data.files` lists them and nothing was changed (-32028).
    UncommittedChanges,
    /// A git command failed; the message says what git said (-32029).
    GitFailed,
    /// The method is outside the client token's scopes (-32030).
    Forbidden,
    /// The pairing request was denied (-32031).
    PairingDenied,
    /// The pairing request expired before it was decided (-32032).
    PairingExpired,
    /// No pairing request has that id, or it is no longer pending (-32033).
    PairingNotFound,
    /// No live client token has that id (-32034).
    ClientNotFound,
    /// The method's family is switched off in this mode, e.g. `agent.run` on a public
    /// hub without `public.enable_agents` (-32050).
    Disabled,
    /// `event.request` got no answer within its timeout (-32040).
    Timeout,
    /// An event type or pattern breaks the type grammar; `data.type` names it (-32041).
    InvalidEventType,
    /// The connection holds `limits.max_subscriptions` event subscriptions (-32042).
    TooManySubscriptions,
    /// The disk holding the data directory is full, so the write was not made (nothing
    /// was half-written: the store rolled the transaction back). Retry once space is
    /// freed; the hub recovers without a restart (-32060).
    StorageFull,
    /// No pending approval has that id, and none resolved recently had it (-32070).
    ApprovalNotFound,
    /// The approval was already answered or withdrawn: the first answer wins;
    /// `data.resolution` tells how it ended (-32071).
    ApprovalResolved,
    /// No queued follow-up has that id, or it was already delivered or cancelled;
    /// `data.state` tells which when known (-32072).
    MessageNotQueued,
    /// Anything else; the detail is in the hub's log (-32603).
    Internal,
}

impl ErrorKind {
    /// The JSON-RPC `error.code` for this kind.
    pub fn code(self) -> i64 {
        match self {
            Self::ParseError => -32700,
            Self::InvalidRequest | Self::BatchUnsupported => -32600,
            Self::MethodNotFound => -32601,
            Self::InvalidParams | Self::InvalidPath | Self::InvalidSession => -32602,
            Self::Internal => -32603,
            Self::ProjectNotFound => -32001,
            Self::ProjectExists => -32002,
            Self::ProjectNested => -32003,
            Self::ProjectBusy => -32004,
            Self::NotRunning => -32005,
            Self::LimitReached => -32006,
            Self::Unauthorized => -32007,
            Self::RateLimited => -32008,
            Self::TooLarge => -32009,
            Self::AgentUnavailable => -32010,
            // The coordinator's kinds start at -32020, leaving room for the core's.
            Self::TaskNotFound => -32020,
            Self::NotAssigned => -32021,
            Self::NotAWorker => -32022,
            Self::TaskExists => -32023,
            Self::NotARepository => -32024,
            Self::NoWorktree => -32025,
            Self::WorktreeBusy => -32026,
            Self::MergeConflict => -32027,
            Self::UncommittedChanges => -32028,
            Self::GitFailed => -32029,
            // Client tokens and pairing.
            Self::Forbidden => -32030,
            Self::PairingDenied => -32031,
            Self::PairingExpired => -32032,
            Self::PairingNotFound => -32033,
            Self::ClientNotFound => -32034,
            // Public mode's kinds start at -32050.
            Self::Disabled => -32050,
            // Event routing's kinds start at -32040.
            Self::Timeout => -32040,
            Self::InvalidEventType => -32041,
            Self::TooManySubscriptions => -32042,
            // Storage faults start at -32060.
            Self::StorageFull => -32060,
            // Agent sessions start at -32070.
            Self::ApprovalNotFound => -32070,
            Self::ApprovalResolved => -32071,
            Self::MessageNotQueued => -32072,
        }
    }

    /// The kind as it appears on the wire, e.g. `"PROJECT_BUSY"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParseError => "PARSE_ERROR",
            Self::InvalidRequest => "INVALID_REQUEST",
            Self::BatchUnsupported => "BATCH_UNSUPPORTED",
            Self::MethodNotFound => "METHOD_NOT_FOUND",
            Self::InvalidParams => "INVALID_PARAMS",
            Self::InvalidPath => "INVALID_PATH",
            Self::InvalidSession => "INVALID_SESSION",
            Self::ProjectNotFound => "PROJECT_NOT_FOUND",
            Self::ProjectExists => "PROJECT_EXISTS",
            Self::ProjectNested => "PROJECT_NESTED",
            Self::ProjectBusy => "PROJECT_BUSY",
            Self::NotRunning => "NOT_RUNNING",
            Self::LimitReached => "LIMIT_REACHED",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::RateLimited => "RATE_LIMITED",
            Self::TooLarge => "TOO_LARGE",
            Self::AgentUnavailable => "AGENT_UNAVAILABLE",
            Self::TaskNotFound => "TASK_NOT_FOUND",
            Self::NotAssigned => "NOT_ASSIGNED",
            Self::NotAWorker => "NOT_A_WORKER",
            Self::TaskExists => "TASK_EXISTS",
            Self::NotARepository => "NOT_A_REPOSITORY",
            Self::NoWorktree => "NO_WORKTREE",
            Self::WorktreeBusy => "WORKTREE_BUSY",
            Self::MergeConflict => "MERGE_CONFLICT",
            Self::UncommittedChanges => "UNCOMMITTED_CHANGES",
            Self::GitFailed => "GIT_FAILED",
            Self::Forbidden => "FORBIDDEN",
            Self::PairingDenied => "PAIRING_DENIED",
            Self::PairingExpired => "PAIRING_EXPIRED",
            Self::PairingNotFound => "PAIRING_NOT_FOUND",
            Self::ClientNotFound => "CLIENT_NOT_FOUND",
            Self::Disabled => "DISABLED",
            Self::Timeout => "TIMEOUT",
            Self::ApprovalNotFound => "APPROVAL_NOT_FOUND",
            Self::ApprovalResolved => "APPROVAL_RESOLVED",
            Self::MessageNotQueued => "MESSAGE_NOT_QUEUED",
            Self::InvalidEventType => "INVALID_EVENT_TYPE",
            Self::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Self::StorageFull => "STORAGE_FULL",
            Self::Internal => "INTERNAL",
        }
    }
}

/// An error as sent to a client in a JSON-RPC response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The stable kind.
    pub kind: ErrorKind,
    /// A short, lowercase, human message with no internal detail.
    pub message: String,
    /// Extra machine-readable context merged into `error.data` (for example `project_id`).
    pub details: Option<Value>,
}

impl RpcError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: None,
        }
    }

    /// Adds machine-readable context, sent beside `kind` in `error.data`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An internal error: logs `source` with its chain and tells the client only that
    /// something failed. A full disk anywhere in the chain (see [`is_storage_full`]) is
    /// [`ErrorKind::StorageFull`] instead, so clients can tell it from a bug and retry.
    pub fn internal(context: &str, source: &(dyn std::error::Error + 'static)) -> Self {
        if is_storage_full(source) {
            tracing::error!(
                error = %ErrorChain(source),
                context,
                "the disk is full: writes fail until space is freed in the data directory"
            );
            return Self::new(
                ErrorKind::StorageFull,
                "the hub's disk is full; free space and retry",
            );
        }
        tracing::error!(error = %ErrorChain(source), context, "internal error");
        Self::new(ErrorKind::Internal, "internal error; see the hub log")
    }

    /// The JSON-RPC `error` object: `{code, message, data: {kind, ...details}}`.
    pub fn to_json(&self) -> Value {
        let mut data = json!({ "kind": self.kind.as_str() });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.details, &mut data) {
            for (key, value) in extra {
                map.insert(key.clone(), value.clone());
            }
        }
        json!({ "code": self.kind.code(), "message": self.message, "data": data })
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for RpcError {}

/// Whether `source` or any error beneath it says the disk is full: SQLite's
/// `SQLITE_FULL` (which SQLite reports for `ENOSPC`, see <https://sqlite.org/rescode.html#full>)
/// or an I/O error of kind [`std::io::ErrorKind::StorageFull`] (`ENOSPC`, `EDQUOT`).
pub fn is_storage_full(source: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(source);
    while let Some(err) = next {
        if let Some(rusqlite::Error::SqliteFailure(failure, _)) = err.downcast_ref()
            && failure.code == rusqlite::ErrorCode::DiskFull
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::StorageFull
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// Displays an error and all its sources on one line, `outer: inner: innermost`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_code_message_and_kind() {
        let err = RpcError::new(ErrorKind::ProjectBusy, "project is busy")
            .with_details(json!({"project_id": "p1"}));
        assert_eq!(
            err.to_json(),
            json!({"code": -32004, "message": "project is busy",
                   "data": {"kind": "PROJECT_BUSY", "project_id": "p1"}})
        );
    }

    #[test]
    fn serialized_kind_matches_as_str() {
        for kind in [
            ErrorKind::ParseError,
            ErrorKind::BatchUnsupported,
            ErrorKind::InvalidPath,
            ErrorKind::InvalidSession,
            ErrorKind::AgentUnavailable,
            ErrorKind::NotAssigned,
            ErrorKind::NotAWorker,
            ErrorKind::Forbidden,
            ErrorKind::PairingNotFound,
            ErrorKind::ClientNotFound,
            ErrorKind::Disabled,
            ErrorKind::InvalidEventType,
            ErrorKind::TooManySubscriptions,
            ErrorKind::StorageFull,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }

    #[test]
    fn a_full_disk_anywhere_in_the_chain_is_storage_full() {
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        );
        let err = RpcError::internal("test", &sqlite);
        assert_eq!(err.kind, ErrorKind::StorageFull);
        assert_eq!(err.to_json()["code"], -32060);
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert!(is_storage_full(&io));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(RpcError::internal("test", &other).kind, ErrorKind::Internal);
    }
}
