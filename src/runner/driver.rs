//! The hub's model of a live agent session, independent of any one agent CLI, and the
//! drivers that speak each CLI's own protocol ([`claude`]).
//!
//! A driver turns the agent's output lines into [`AgentEvent`]s (a session began, a
//! tool call needs permission, a permission request was cancelled, a turn ended) and the
//! hub's [`Command`]s (a prompt, a permission answer, an interrupt) into input lines.
//! The names follow the Agent Client Protocol where it has one: a permission request is
//! tied to a tool call id, answered by allowing or rejecting it, and a turn ends with a
//! [`StopReason`]. A Codex (`codex app-server`) or Gemini (`gemini --acp`) driver is a
//! new file beside [`claude`] that maps its protocol onto the same types.

pub mod claude;
pub mod gemini;

use serde_json::Value;

/// A tool call the agent may not run without an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionRequest {
    /// The driver's id for the request, echoed in the answer.
    pub request_id: String,
    /// The tool, e.g. `Bash`.
    pub tool_name: String,
    /// The input the agent proposes (an object).
    pub input: Value,
    /// The agent's suggestions for an "always" answer; `[]` when none.
    pub suggestions: Value,
    /// The tool call this request is about, as streamed in the agent's output.
    pub tool_use_id: Option<String>,
    /// A line for a person, when the agent gave one.
    pub description: Option<String>,
}

/// Why a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The agent finished the turn.
    EndTurn,
    /// The turn was interrupted (by an interrupt or a deny-and-interrupt answer).
    Cancelled,
    /// The turn ended in an error.
    Error,
}

impl StopReason {
    /// The name written in the log's `turn_ended` line (ACP's `end_turn`, `cancelled`,
    /// and `error` for a failed turn).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

/// The end of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEnd {
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The raw end-of-turn event (Claude Code's `result` line), for the parts of the hub
    /// that read usage and cost from it.
    pub raw: Value,
}

/// Something the agent said that the session acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// A tool call waits for permission.
    PermissionRequested(PermissionRequest),
    /// The agent no longer waits for this request (it was interrupted).
    PermissionCancelled {
        /// The driver's request id.
        request_id: String,
    },
    /// A turn ended.
    TurnEnded(TurnEnd),
    /// A protocol line the driver could not use, with why; logged, never fatal.
    Malformed {
        /// What was wrong.
        reason: String,
    },
}

/// An answer to a [`PermissionRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum PermissionAnswer {
    /// Run the tool with this input (the proposed one or an edited one).
    Allow {
        /// The input the tool runs with.
        input: Value,
    },
    /// Do not run it; the agent is told `message`.
    Deny {
        /// What the agent reads.
        message: String,
        /// Also end the turn.
        interrupt: bool,
    },
}

/// What the hub tells the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A user message: starts a turn when none runs, else is folded into the running
    /// one at the agent's next step (the hub keeps its own queue for separate turns).
    Prompt {
        /// The text.
        text: String,
    },
    /// The answer to a permission request.
    Answer {
        /// The driver's request id.
        request_id: String,
        /// The answer.
        answer: PermissionAnswer,
    },
    /// Stop the running turn; the session stays open.
    Interrupt {
        /// An id for the request, unique in the session.
        request_id: String,
    },
}
