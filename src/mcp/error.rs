//! A tool's failure as the model sees it: the hub's error kind, its message, a
//! sentence saying what to do about it, and the machine-readable fields the hub sent
//! beside the kind (e.g. the conflicting `files` of `MERGE_CONFLICT`).

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use super::conn::ConnError;

/// A tool's failure: the hub's error kind, its message, and what the model should do.
pub(crate) struct ToolError {
    kind: String,
    message: String,
    what_to_do: String,
    /// `error.data` of the hub's error without `kind`: kept in the tool's error object.
    details: serde_json::Map<String, Value>,
}

impl ToolError {
    pub(crate) fn new(
        kind: &str,
        message: impl Into<String>,
        what_to_do: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.to_string(),
            message: message.into(),
            what_to_do: what_to_do.into(),
            details: serde_json::Map::new(),
        }
    }

    /// `{"error": {kind, message, what_to_do, ...details}}`, as an MCP tool error.
    pub(crate) fn into_result(self) -> CallToolResult {
        let mut error = self.details;
        error.insert("kind".into(), json!(self.kind));
        error.insert("message".into(), json!(self.message));
        error.insert("what_to_do".into(), json!(self.what_to_do));
        CallToolResult::structured_error(json!({ "error": error }))
    }
}

impl From<ConnError> for ToolError {
    fn from(err: ConnError) -> Self {
        match err {
            ConnError::Rpc {
                kind,
                message,
                data,
            } => {
                let what_to_do = match kind.as_str() {
                    "PROJECT_NOT_FOUND" => {
                        "Check the project: pass the project id or the registered directory the user gave you (the user can list them with `semantest-hub project list`)."
                    }
                    "TASK_NOT_FOUND" => {
                        "Check the task id: use the id from next_task or task_status exactly."
                    }
                    "NOT_ASSIGNED" => {
                        "This task is not yours any more (cancelled, finished or its lease lost): drop it and call next_task."
                    }
                    "NOT_A_WORKER" => "Call register_worker first, then next_task.",
                    "TASK_EXISTS" => {
                        "Another project already uses one of these task ids: choose other ids, or leave `id` out to get generated ones."
                    }
                    "FORBIDDEN" => {
                        "The hub token this server uses lacks the `tasks` scope: ask the user to create one with `semantest-hub token create --name agent --scope tasks` and put it in the MCP configuration (SEMANTEST_HUB_TOKEN and SEMANTEST_HUB_CLIENT_ID, or the Authorization header for /mcp)."
                    }
                    "INVALID_PARAMS" | "TOO_LARGE" => {
                        "Fix the arguments as the message says and call the tool again."
                    }
                    "RATE_LIMITED" | "LIMIT_REACHED" => {
                        "Wait a few seconds, then call the tool again."
                    }
                    "MERGE_CONFLICT" => {
                        "The task's branch conflicts with the base branch in the files listed, and nothing was merged: create a follow-up task that redoes the change on the current base (then discard_task this one), or ask the user to merge the branch by hand."
                    }
                    "UNCOMMITTED_CHANGES" => {
                        "The project's checkout has uncommitted changes in the files listed, which the merge would overwrite, and nothing was merged: ask the user to commit or stash them, then call merge_task again."
                    }
                    "NO_WORKTREE" => {
                        "This task has no branch to merge or discard: it did not run in a worktree, was merged or discarded already, or started from a detached HEAD. Check it with task_status; there is nothing to retry."
                    }
                    "WORKTREE_BUSY" => {
                        "The task is still queued or running, so its worktree is in use: wait for it with wait_for_tasks, then call the tool again."
                    }
                    "NOT_A_REPOSITORY" | "GIT_FAILED" => {
                        "git could not do it: tell the user what the hub said; do not retry in a loop."
                    }
                    _ => "Tell the user what the hub said; do not retry in a loop.",
                };
                let mut error = Self::new(&kind, message, what_to_do);
                if let Value::Object(mut details) = data {
                    details.remove("kind");
                    error.details = details;
                }
                error
            }
            ConnError::Unavailable(message) => Self::new(
                "HUB_UNAVAILABLE",
                message,
                "The Semantest Hub is not reachable: ask the user to start it with `semantest-hub serve` (or the desktop app), then call the tool again.",
            ),
        }
    }
}

pub(crate) fn answer(result: Result<Value, ToolError>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => err.into_result(),
    }
}
