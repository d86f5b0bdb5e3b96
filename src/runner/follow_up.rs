//! What reaches a project's live session while it runs: `agent.send` (a follow-up,
//! queued, steered or interrupting, or the start of a new session) and
//! `agent.interrupt`.

use tokio::sync::oneshot;

use crate::protocol::agents::{Delivery, QueueState, SendMode};
use crate::protocol::error::RpcError;
use crate::support::timestamp::now_ms;

use super::session::{Sent, SessionCommand};
use super::slots::Permit;
use super::{MAX_PROMPT_BYTES, RunError, RunMode, RunRequest, Runner};

impl Runner {
    /// `agent.send`: a follow-up for the project's session. With a live session it is
    /// queued, steered into the running turn or interrupts it (`mode`), or starts a turn
    /// when none runs; with none, it starts a live session (holding `permit`, which is
    /// dropped otherwise) whose first turn is the oldest queued follow-up, this one
    /// queued behind the others.
    ///
    /// # Errors
    /// As [`Runner::start`], `PROJECT_BUSY` while the session is closing or another run
    /// holds the project, `TOO_LARGE`/`INVALID_PARAMS` for the text.
    pub async fn send(
        &self,
        project_id: &str,
        text: String,
        mode: SendMode,
        permit: impl FnOnce() -> Result<Permit, RpcError>,
    ) -> Result<Sent, RpcError> {
        if text.trim().is_empty() {
            return Err(RunError::EmptyPrompt.into());
        }
        if text.len() > MAX_PROMPT_BYTES {
            return Err(RunError::PromptTooLarge.into());
        }
        let handle = self.sessions().get(project_id).cloned();
        if let Some(handle) = handle {
            let (reply, answer) = oneshot::channel();
            let sent = handle
                .commands
                .send(SessionCommand::Send {
                    text: text.clone(),
                    mode,
                    reply,
                })
                .await;
            if sent.is_ok()
                && let Ok(result) = answer.await
            {
                return result.map_err(Into::into);
            }
            // The session ended meanwhile: start a new one below.
        }
        self.parts().projects.get(project_id)?;
        let queued = self
            .parts()
            .store
            .queued_messages(project_id.to_string())
            .await
            .map_err(|err| RpcError::internal("read queue", &err))?;
        let (first, queued_message) = if queued.is_empty() || mode != SendMode::Queue {
            (text, None)
        } else {
            let row = self.enqueue(project_id, text).await?;
            let first = self
                .parts()
                .store
                .take_next_queued(project_id.to_string(), String::new(), now_ms())
                .await
                .map_err(|err| RpcError::internal("take queued", &err))?;
            match first {
                Some(first) => {
                    self.queue_changed(&first, QueueState::Delivered);
                    (first.text, Some(row))
                }
                None => (row.text.clone(), None),
            }
        };
        let handle = self
            .start(
                RunRequest {
                    project_id: project_id.to_string(),
                    prompt: first,
                    mode: RunMode::Interactive { new_session: false },
                    timeout_s: None,
                    keep_open: true,
                    agent: None,
                    workdir: None,
                    run_id: None,
                },
                permit()?,
            )
            .await?;
        Ok(Sent {
            run_id: handle.run_id,
            delivery: if queued_message.is_some() {
                Delivery::Queued
            } else {
                Delivery::Started
            },
            message: queued_message,
        })
    }

    /// `agent.interrupt`: stops the project's running turn through the agent's control
    /// protocol; its process group is signalled only if the turn does not end within
    /// `agent.interrupt_timeout_ms`. Pending approvals of the run are withdrawn.
    ///
    /// # Errors
    /// `NOT_RUNNING` when no turn runs.
    pub async fn interrupt(&self, project_id: &str) -> Result<String, RunError> {
        let handle = self.sessions().get(project_id).cloned();
        let Some(handle) = handle else {
            self.parts().projects.get(project_id)?;
            return Err(RunError::NoTurn(project_id.to_string()));
        };
        let (reply, answer) = oneshot::channel();
        if handle
            .commands
            .send(SessionCommand::Interrupt { reply })
            .await
            .is_err()
        {
            return Err(RunError::NoTurn(project_id.to_string()));
        }
        match answer.await {
            Ok(result) => result.map(|()| handle.run_id),
            Err(_) => Err(RunError::NoTurn(project_id.to_string())),
        }
    }
}
