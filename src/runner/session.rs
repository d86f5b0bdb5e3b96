//! A live session's plumbing: the writer that owns the agent's stdin, the commands a
//! session's supervisor takes from the RPC side, and the session's log lines.
//!
//! One writer task per agent process owns its stdin and writes the lines it is sent, in
//! order ([`Input`]); closing stdin is a message too, so the answers already queued are
//! written before the end of input. Everything that talks to the agent (the supervisor,
//! an approval's answer) holds a clone of the writer's bounded sender.

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use super::RunError;
use super::driver::{Command, claude};
use crate::protocol::agents::{Delivery, QueuedMessage, SendMode};

/// Lines waiting for the writer, at most; a sender waits for room.
pub const INPUT_QUEUE: usize = 64;

/// What the writer of a session's stdin takes.
#[derive(Debug)]
pub enum Input {
    /// Write this command's line.
    Command(Command),
    /// Close stdin: the agent ends once its turn is over.
    Close,
}

/// Writes each [`Input`] to the agent's stdin until [`Input::Close`] or until every
/// sender is gone, then closes it. A write error (the agent exited) ends the writer; the
/// process's exit tells the rest.
pub async fn write_input(mut stdin: ChildStdin, mut inputs: mpsc::Receiver<Input>) {
    while let Some(input) = inputs.recv().await {
        let Input::Command(command) = input else {
            break;
        };
        let mut line = claude::encode(&command);
        line.push('\n');
        if let Err(err) = stdin.write_all(line.as_bytes()).await {
            debug!(error = %err, "the agent's stdin is closed");
            return;
        }
        if let Err(err) = stdin.flush().await {
            debug!(error = %err, "the agent's stdin is closed");
            return;
        }
    }
    // Dropping stdin closes the pipe: end of input.
}

/// What `agent.send` became.
#[derive(Debug, Clone, Serialize)]
pub struct Sent {
    /// The run (agent process) of the session.
    pub run_id: String,
    /// What happened to the message.
    pub delivery: Delivery,
    /// The queued message, for `queued`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<QueuedMessage>,
}

/// A request from the RPC side to a session's supervisor.
pub enum SessionCommand {
    /// `agent.send` to a live session.
    Send {
        /// The text.
        text: String,
        /// How it joins.
        mode: SendMode,
        /// The outcome.
        reply: oneshot::Sender<Result<Sent, RunError>>,
    },
    /// `agent.interrupt`.
    Interrupt {
        /// Whether a turn was running.
        reply: oneshot::Sender<Result<(), RunError>>,
    },
}

/// The handle to a live session's supervisor, kept by the runner per project.
#[derive(Clone)]
pub struct SessionHandle {
    /// The session's run.
    pub run_id: String,
    /// To its supervisor.
    pub commands: mpsc::Sender<SessionCommand>,
}

/// A session line of the project log (`turn_started`, `turn_ended`,
/// `follow_up_queued`, `follow_up_delivered`, `interrupt`, `session_idle`).
#[derive(Serialize)]
pub struct SessionLine<'a> {
    /// The line's kind.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The run.
    pub run_id: &'a str,
    /// The turn's number in the run, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// `prompt`, `follow_up`, `steer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'static str>,
    /// The queued message's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<&'a str>,
    /// The text, for a follow-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    /// For `turn_ended`: `end_turn`, `cancelled` or `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<&'static str>,
    /// For `interrupt`: how many pending approvals were withdrawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<usize>,
}

impl<'a> SessionLine<'a> {
    /// A line of `kind` for `run_id`, every other field empty.
    pub fn new(kind: &'static str, run_id: &'a str) -> Self {
        Self {
            kind,
            run_id,
            turn: None,
            source: None,
            message_id: None,
            text: None,
            stop_reason: None,
            withdrawn: None,
        }
    }
}
