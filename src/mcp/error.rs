//! A tool's failure as the model sees it: the hub's error kind, its message, and a
//! sentence saying what to do about it.

use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use super::conn::ConnError;

/// A tool's failure: the hub's error kind, its message, and what the model should do.
pub(crate) struct ToolError {
    kind: String,
    message: String,
    what_to_do: String,
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
        }
    }

    pub(crate) fn into_result(self) -> CallToolResult {
        CallToolResult::structured_error(json!({
            "error": {"kind": self.kind, "message": self.message, "what_to_do": self.what_to_do}
        }))
    }
}

impl From<ConnError> for ToolError {
    fn from(err: ConnError) -> Self {
        match err {
            ConnError::Rpc { kind, message } => {
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
                    _ => "Tell the user what the hub said; do not retry in a loop.",
                };
                Self::new(&kind, message, what_to_do)
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
