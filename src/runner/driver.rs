//! The hub's model of a live agent session, independent of any one agent CLI, and the
//! drivers that speak each CLI's own protocol ([`claude`], [`codex`]).
//!
//! A driver turns the agent's output into [`AgentEvent`]s (a session began, a tool call
//! needs permission, a permission request was cancelled, a turn ended with its usage)
//! and the hub's [`Command`]s (a prompt, a permission answer, an interrupt) into input
//! lines. The names follow the Agent Client Protocol where it has one: a permission
//! request is tied to a tool call id, answered by allowing or rejecting it, and a turn
//! ends with a [`StopReason`].
//!
//! # How a driver plugs in
//!
//! The session loop ([`super::session`]) only sees [`AgentEvent`]s and sends
//! [`Command`]s (as [`Input`]s); the runner picks the driver by [`AgentKind`]:
//!
//! - **Claude Code** speaks stream-json, which has no request ids: [`claude`] is a pair
//!   of pure functions, a line parser and a command encoder, run by the output reader and
//!   the stdin writer.
//! - **JSON-RPC agents** (Codex's app server, ACP agents such as Gemini) are stateful:
//!   they keep thread, session and turn ids and match answers to requests. Each is an
//!   `async fn drive(link: Link)` task that owns its state. It reads the agent's messages
//!   from [`Link::incoming`] (the output reader feeds every stdout line to the
//!   [`peer::Inbox`](super::peer::Inbox) after storing it in the log, so the raw lines
//!   stay in the log), sends through [`Link::peer`], takes the hub's commands from
//!   [`Link::inputs`] and reports on [`Link::events`]. It sends
//!   [`AgentEvent::SessionStarted`] once it knows the id to resume with, and
//!   [`AgentEvent::Fatal`] when the agent cannot be used (the run then ends as failed).
//!   [`Input::Close`] (or the channel closing) means: end the session, let the process
//!   exit (drop the peer, which closes stdin).
//!
//! To add an agent: a file here with its `args(&Start)` and `drive(Link)`, an arm in
//! [`args`] and [`drive`], and its CLI's name in [`super::claude_cli`]'s finder.

pub mod claude;
pub mod codex;

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::peer::{Dialect, Incoming, Peer};
use super::session::Input;
use crate::protocol::agents::AgentKind;

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

/// A turn's tokens, as a driver that counts them itself reports them (Claude Code's
/// figures come from its `result` line instead, see [`super::usage`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TurnTokens {
    /// The model that answered, if the agent said.
    pub model: Option<String>,
    /// Input tokens not read from the cache.
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// The reasoning part of `output`.
    pub reasoning: u64,
}

/// The end of a turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnEnd {
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The raw end-of-turn event (Claude Code's `result` line, Codex's `turn/completed`
    /// params, ACP's `session/prompt` result), kept for the log and for usage.
    pub raw: Value,
    /// The turn's tokens, from drivers that count them (Codex, ACP); `None` for Claude
    /// Code, whose `result` line is metered as it is read.
    pub tokens: Option<TurnTokens>,
    /// The agent's last message of the turn, or the error that ended it, when the
    /// driver knows it (Claude Code's is read from its `result` line).
    pub text: Option<String>,
    /// The driver's cumulative figures after the turn, stored with it: the
    /// [`Start::totals`] of a later run that resumes the session.
    pub totals: Option<Value>,
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
    /// The agent's id for the conversation, to resume it later (a Codex thread id, an
    /// ACP session id; a UUID). Claude Code's is read from its `init` line instead.
    SessionStarted {
        /// The id.
        session_id: String,
    },
    /// The agent cannot go on (its handshake failed, a turn could not start): the run
    /// ends as failed with this reason.
    Fatal {
        /// Why, for a person.
        reason: String,
    },
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
        /// The person allowed it for the rest of the session (`allow_always`, scope
        /// `session`): agents that can remember it (Codex's `acceptForSession`) are told.
        for_session: bool,
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

/// What a run starts with, for every driver.
#[derive(Debug, Clone)]
pub struct Start {
    /// The project's directory, the agent's working directory.
    pub cwd: PathBuf,
    /// The session (Claude, Gemini) or thread (Codex) to resume; a UUID checked by
    /// [`crate::projects::valid_session_id`].
    pub resume: Option<String>,
    /// The model, when the project or the configuration names one.
    pub model: Option<String>,
    /// Claude Code's `--permission-mode`.
    pub permission_mode: String,
    /// Codex's `sandbox` for the thread: `read-only`, `workspace-write` or
    /// `danger-full-access` (`agent.codex.sandbox`).
    pub sandbox: String,
    /// For a resumed session: the [`TurnEnd::totals`] the hub stored with its last turn,
    /// for agents whose usage is cumulative across processes (Codex's thread totals).
    pub totals: Option<Value>,
}

/// What a JSON-RPC driver task works with (see the module doc).
pub struct Link {
    /// Sends to the agent.
    pub peer: Peer,
    /// The agent's requests and notifications, in order; closes at the end of its output.
    pub incoming: mpsc::Receiver<Incoming>,
    /// The hub's commands, and [`Input::Close`].
    pub inputs: mpsc::Receiver<Input>,
    /// To the session loop.
    pub events: mpsc::Sender<AgentEvent>,
    /// The run's start.
    pub start: Start,
}

/// The JSON-RPC dialect of an agent, or `None` for Claude Code's stream-json.
pub fn dialect(kind: AgentKind) -> Option<Dialect> {
    match kind {
        AgentKind::Claude => None,
        AgentKind::Codex => Some(Dialect::NoVersion),
        AgentKind::Gemini => Some(Dialect::JsonRpc2),
    }
}

/// The CLI arguments of a run of `kind`; `None` when this build has no driver for it.
pub fn args(kind: AgentKind, start: &Start) -> Option<Vec<String>> {
    match kind {
        AgentKind::Claude => Some(claude::build_args(
            start.resume.as_deref(),
            &start.permission_mode,
            start.model.as_deref(),
        )),
        AgentKind::Codex => Some(codex::args()),
        AgentKind::Gemini => None,
    }
}

/// Runs the driver of a JSON-RPC agent until the session ends.
pub async fn drive(kind: AgentKind, link: Link) {
    match kind {
        AgentKind::Codex => codex::drive(link).await,
        AgentKind::Claude | AgentKind::Gemini => {
            let _ = link
                .events
                .send(AgentEvent::Fatal {
                    reason: format!("{} has no JSON-RPC driver in this build", kind.title()),
                })
                .await;
        }
    }
}
