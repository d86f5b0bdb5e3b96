//! A live session: the loop of a run's supervisor between the process's start and its
//! end (turns, permission requests, follow-ups, interrupts, deadlines), the writer that
//! owns the agent's stdin, the commands the RPC side sends it, and the session's log
//! lines.
//!
//! The loop ([`Session::run`]) is the one owner of a run's turn state; everything else
//! reaches it through its bounded command channel, so no lock spans an `.await`. A turn's
//! end (the agent's `result` line) is handled in one place, [`Session::on_turn_end`].
//!
//! One writer task per agent process owns its stdin and writes the lines it is sent, in
//! order ([`Input`]); closing stdin is a message too, so the answers already queued are
//! written before the end of input. Everything that talks to the agent (the supervisor,
//! an approval's answer) holds a clone of the writer's bounded sender.

use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use std::sync::{Arc, Mutex};

use super::approvals::Asker;
use super::driver::{AgentEvent, Command, StopReason, TurnEnd, claude};
use super::metering::Meter;
use super::output::{Summary, Tap};
use super::supervise::Ending;
use super::{RunContext, RunError, Runner};
use crate::protocol::agents::{AgentKind, Delivery, QueueState, QueuedMessage, SendMode};
use crate::protocol::error::ErrorChain;
use crate::support::timestamp::now_ms;

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

/// What a run's supervisor gets besides its process.
pub(super) struct Live {
    /// The agent's stdin.
    pub(super) input: mpsc::Sender<Input>,
    /// From the RPC side (`agent.send`, `agent.interrupt`).
    pub(super) commands: mpsc::Receiver<SessionCommand>,
    /// The first turn's prompt.
    pub(super) first_prompt: String,
    /// Where the stdout reader hands the agent's protocol lines.
    pub(super) tap: Tap,
    /// The driver's events.
    pub(super) events: mpsc::Receiver<AgentEvent>,
}

/// A run's turns: the state its supervisor keeps between events.
pub(super) struct Session<'a> {
    pub(super) runner: &'a Runner,
    pub(super) ctx: &'a RunContext,
    pub(super) asker: Asker,
    /// Turns started so far.
    pub(super) turns: u32,
    /// While a turn runs: when it times out.
    pub(super) turn_deadline: Option<tokio::time::Instant>,
    /// While a live session waits for a message: when it closes.
    pub(super) idle_deadline: Option<tokio::time::Instant>,
    /// After an interrupt: when the process group is signalled.
    pub(super) interrupt_deadline: Option<tokio::time::Instant>,
    /// stdin was closed; the process is about to exit.
    pub(super) closing: bool,
    /// An `interrupt` follow-up, delivered before the queue.
    pub(super) next_now: Option<String>,
    /// What the run reported, for its end.
    pub(super) summary: Arc<Mutex<Summary>>,
    /// Records each turn's usage.
    pub(super) meter: Arc<Meter>,
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Session<'_> {
    fn running(&self) -> bool {
        self.turn_deadline.is_some()
    }

    /// Runs the session until its process exits or it must be stopped.
    pub(super) async fn run(
        &mut self,
        child: &mut Child,
        mut events: mpsc::Receiver<AgentEvent>,
        mut commands: mpsc::Receiver<SessionCommand>,
    ) -> Ending {
        let mut events_open = true;
        loop {
            tokio::select! {
                status = child.wait() => return Ending::Exited(status),
                () = self.ctx.run.stop.cancelled() => return Ending::Stopped,
                () = until(self.turn_deadline) => return Ending::TimedOut,
                () = until(self.interrupt_deadline) => return Ending::InterruptIgnored,
                () = until(self.idle_deadline) => {
                    self.idle_deadline = None;
                    self.log(SessionLine::new("session_idle", &self.ctx.run.id)).await;
                    self.close().await;
                }
                event = events.recv(), if events_open => match event {
                    Some(AgentEvent::Fatal { reason }) => {
                        warn!(reason, "the agent cannot go on");
                        return Ending::Fatal(reason);
                    }
                    Some(event) => self.on_event(event).await,
                    None => events_open = false,
                },
                Some(command) = commands.recv() => self.on_command(command).await,
            }
        }
    }

    async fn on_event(&mut self, event: AgentEvent) {
        let approvals = &self.runner.parts().approvals;
        match event {
            AgentEvent::PermissionRequested(request) => approvals.ask(&self.asker, request).await,
            AgentEvent::PermissionCancelled { request_id } => {
                approvals
                    .withdraw(
                        &self.ctx.run.id,
                        Some(&request_id),
                        "the agent cancelled the request",
                    )
                    .await;
            }
            AgentEvent::TurnEnded(end) => self.on_turn_end(end).await,
            AgentEvent::SessionStarted { session_id } => self.on_session(session_id).await,
            // Handled by the loop, which ends the run.
            AgentEvent::Fatal { .. } => {}
            AgentEvent::Malformed { reason } => {
                warn!(
                    reason,
                    "the agent sent a control line the hub cannot use; ignored"
                );
            }
        }
    }

    /// The driver learnt the id to resume the conversation with: it becomes the run's,
    /// and for an interactive run the one the project's next run of this agent resumes.
    /// An id that is not a UUID is never recorded (it could be read as an option where a
    /// CLI takes it as an argument).
    async fn on_session(&mut self, session_id: String) {
        if !crate::projects::valid_session_id(&session_id) {
            warn!(
                session_id,
                "the agent reported a session id that is not a UUID; ignored"
            );
            return;
        }
        if let Ok(mut summary) = self.summary.lock() {
            summary.session_id = Some(session_id.clone());
        }
        if self.ctx.interactive()
            && let Err(err) = self
                .runner
                .parts()
                .projects
                .set_agent_session(&self.ctx.project_id, self.ctx.agent, Some(&session_id))
                .await
        {
            warn!(error = %ErrorChain(&err), "cannot record the session id");
        }
    }

    /// A turn ended: the one place a turn's end is handled.
    async fn on_turn_end(&mut self, end: TurnEnd) {
        if self.ctx.agent != AgentKind::Claude {
            // Claude Code's `result` line is summarised and metered as it is read.
            if let Ok(mut summary) = self.summary.lock() {
                // As with Claude Code's `result`, the run's outcome is its last turn's:
                // an interrupted or failed last turn fails the run, with why.
                summary.result_seen = true;
                summary.is_error = end.stop_reason != StopReason::EndTurn;
                summary.num_turns = Some(i64::from(self.turns));
                summary.result_text = match end.stop_reason {
                    StopReason::Cancelled => Some("the turn was interrupted".into()),
                    _ => end.text.clone(),
                };
            }
            if let Some(tokens) = &end.tokens {
                let session_id = self.summary.lock().ok().and_then(|s| s.session_id.clone());
                let usd = self.runner.price(tokens);
                self.meter
                    .record_tokens(tokens, end.totals.as_ref(), session_id, usd)
                    .await;
            }
        }
        self.turn_deadline = None;
        self.interrupt_deadline = None;
        let mut line = SessionLine::new("turn_ended", &self.ctx.run.id);
        line.turn = Some(self.turns);
        line.stop_reason = Some(end.stop_reason.as_str());
        self.log(line).await;
        if self.closing {
            return;
        }
        if let Some(text) = self.next_now.take() {
            self.start_turn(&text, "follow_up", None).await;
            return;
        }
        let parts = self.runner.parts();
        let next = parts
            .store
            .take_next_queued(
                self.ctx.project_id.clone(),
                self.ctx.run.id.clone(),
                now_ms(),
            )
            .await;
        match next {
            Ok(Some(row)) => {
                self.runner.queue_changed(&row, QueueState::Delivered);
                self.start_turn(&row.text, "follow_up", Some(&row.id)).await;
            }
            Ok(None) if self.ctx.keep_open => {
                self.idle_deadline = Some(
                    tokio::time::Instant::now() + Duration::from_secs(parts.config.session_idle_s),
                );
            }
            Ok(None) => self.close().await,
            Err(err) => {
                warn!(error = %ErrorChain(&err), "cannot read the follow-up queue");
                self.close().await;
            }
        }
    }

    async fn on_command(&mut self, command: SessionCommand) {
        match command {
            SessionCommand::Send { text, mode, reply } => {
                let result = self.send(text, mode).await;
                let _ = reply.send(result);
            }
            SessionCommand::Interrupt { reply } => {
                let result = if self.running() && !self.closing {
                    self.interrupt().await;
                    Ok(())
                } else {
                    Err(RunError::NoTurn(self.ctx.project_id.clone()))
                };
                let _ = reply.send(result);
            }
        }
    }

    async fn send(&mut self, text: String, mode: SendMode) -> Result<Sent, RunError> {
        let sent = |delivery, message| Sent {
            run_id: self.ctx.run.id.clone(),
            delivery,
            message,
        };
        if self.closing {
            return Err(RunError::Closing(self.ctx.project_id.clone()));
        }
        if !self.running() {
            self.start_turn(&text, "follow_up", None).await;
            return Ok(sent(Delivery::Started, None));
        }
        match mode {
            SendMode::Queue => {
                let message = self
                    .runner
                    .enqueue(&self.ctx.project_id, text)
                    .await
                    .map_err(|err| RunError::CannotStart(err.message))?;
                let mut line = SessionLine::new("follow_up_queued", &self.ctx.run.id);
                line.message_id = Some(&message.id);
                line.text = Some(&message.text);
                self.log(line).await;
                Ok(sent(Delivery::Queued, Some(message)))
            }
            SendMode::Steer => {
                self.write(Command::Prompt { text: text.clone() }).await;
                let mut line = SessionLine::new("follow_up_delivered", &self.ctx.run.id);
                line.turn = Some(self.turns);
                line.source = Some("steer");
                line.text = Some(&text);
                self.log(line).await;
                Ok(sent(Delivery::Steered, None))
            }
            SendMode::Interrupt => {
                self.next_now = Some(text);
                self.interrupt().await;
                Ok(sent(Delivery::Interrupting, None))
            }
        }
    }

    async fn interrupt(&mut self) {
        let request_id = format!("hub_interrupt_{}", self.turns);
        self.write(Command::Interrupt { request_id }).await;
        let withdrawn = self
            .runner
            .parts()
            .approvals
            .withdraw(&self.ctx.run.id, None, "the turn was interrupted")
            .await;
        let mut line = SessionLine::new("interrupt", &self.ctx.run.id);
        line.turn = Some(self.turns);
        line.withdrawn = Some(withdrawn);
        self.log(line).await;
        info!(withdrawn, "turn interrupted");
        let bound = Duration::from_millis(self.runner.parts().config.interrupt_timeout_ms);
        self.interrupt_deadline = Some(tokio::time::Instant::now() + bound);
    }

    pub(super) async fn start_turn(
        &mut self,
        text: &str,
        source: &'static str,
        message_id: Option<&str>,
    ) {
        self.idle_deadline = None;
        self.turns += 1;
        self.turn_deadline = Some(tokio::time::Instant::now() + self.ctx.timeout);
        let mut line = SessionLine::new("turn_started", &self.ctx.run.id);
        line.turn = Some(self.turns);
        line.source = Some(source);
        line.message_id = message_id;
        if source != "prompt" {
            // The first prompt is already in `run_started`.
            line.text = Some(text);
        }
        self.log(line).await;
        self.write(Command::Prompt {
            text: text.to_string(),
        })
        .await;
    }

    /// Closes the agent's stdin: it exits once it has nothing left to do.
    async fn close(&mut self) {
        self.closing = true;
        let _ = self.asker.input.send(Input::Close).await;
    }

    async fn write(&self, command: Command) {
        if self
            .asker
            .input
            .send(Input::Command(command))
            .await
            .is_err()
        {
            debug!("the agent's input is closed");
        }
    }

    async fn log(&self, line: SessionLine<'_>) {
        self.runner
            .hub_line(self.ctx, Runner::hub_text(&line))
            .await;
    }
}
