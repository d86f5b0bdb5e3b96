//! Why a run could not start, be killed or take a follow-up, and the JSON-RPC error
//! each reason answers with.

use crate::projects::ProjectError;
use crate::protocol::agents::AgentKind;
use crate::protocol::error::{ErrorKind, RpcError};
use crate::storage::sqlite::StoreError;

/// Why a run could not start, or be killed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The prompt is empty.
    #[error("prompt is empty")]
    EmptyPrompt,
    /// The prompt is over [`MAX_PROMPT_BYTES`](super::MAX_PROMPT_BYTES).
    #[error("prompt is larger than 256 KiB")]
    PromptTooLarge,
    /// `timeout_s` is outside 1..=`agent.max_timeout_s`.
    #[error("timeout_s must be between 1 and {0}")]
    Timeout(u64),
    /// No CLI was found for the agent.
    #[error("{}", cli_missing(*.0))]
    CliMissing(AgentKind),
    /// The CLI could not be started.
    #[error("{0}")]
    CannotStart(String),
    /// The project's directory now resolves elsewhere.
    #[error("{path} now resolves to {now}; remove and re-add the project")]
    PathChanged {
        /// The registered path.
        path: String,
        /// Where it resolves now.
        now: String,
    },
    /// `agent.kill` with nothing running.
    #[error("project {0} runs no agent")]
    NotRunning(String),
    /// `agent.interrupt` with no turn running.
    #[error("no turn of project {0} is running")]
    NoTurn(String),
    /// The session is closing (its process is about to exit).
    #[error("the session of project {0} is ending; send again in a moment")]
    Closing(String),
    /// No queued follow-up has that id, or it left the queue.
    #[error("{0}")]
    NotQueued(String),
    /// The project is missing, busy or has an invalid path.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// The run could not be recorded.
    #[error("cannot record the run")]
    Store(#[from] StoreError),
}

impl From<RunError> for RpcError {
    fn from(err: RunError) -> Self {
        let kind = match &err {
            RunError::EmptyPrompt | RunError::Timeout(_) => ErrorKind::InvalidParams,
            RunError::PromptTooLarge => ErrorKind::TooLarge,
            RunError::CliMissing(_) | RunError::CannotStart(_) => ErrorKind::AgentUnavailable,
            RunError::PathChanged { .. } => ErrorKind::InvalidPath,
            RunError::NotRunning(_) | RunError::NoTurn(_) => ErrorKind::NotRunning,
            RunError::Closing(_) => ErrorKind::ProjectBusy,
            RunError::NotQueued(_) => ErrorKind::MessageNotQueued,
            RunError::Project(_) => {
                let RunError::Project(inner) = err else {
                    unreachable!()
                };
                return inner.into();
            }
            RunError::Store(source) => return RpcError::internal("record run", source),
        };
        RpcError::new(kind, err.to_string())
    }
}

/// Why a run of `agent` cannot start without its CLI, naming the setting to fix.
pub fn cli_missing(agent: AgentKind) -> String {
    match agent {
        AgentKind::Claude => {
            "the Claude Code CLI was not found; install it or set agent.cli_path".into()
        }
        other => format!(
            "the {} was not found; install it or set agent.{}.cli_path",
            other.title(),
            other.as_str()
        ),
    }
}
