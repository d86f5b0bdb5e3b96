//! The follow-up queue of a project's live session: `agent.queue.*`, and the queued
//! messages the session takes as its next turns.

use super::{MAX_PROMPT_BYTES, RunError, Runner};
use crate::events::Event;
use crate::protocol::agents::{QueueState, QueuedMessage};
use crate::protocol::error::RpcError;
use crate::storage::sqlite::QueuedRow;
use crate::support::timestamp::now_ms;

impl Runner {
    /// Queues a follow-up in the store and tells the clients.
    pub(super) async fn enqueue(
        &self,
        project_id: &str,
        text: String,
    ) -> Result<QueuedMessage, RpcError> {
        let row = self
            .parts()
            .store
            .enqueue_message(
                format!("qm_{}", uuid::Uuid::now_v7().simple()),
                project_id.to_string(),
                text,
                now_ms(),
            )
            .await
            .map_err(|err| RpcError::internal("queue follow-up", &err))?;
        let view = queued_view(row);
        self.parts().sink.emit(Event::QueueChanged(view.clone()));
        Ok(view)
    }

    pub(super) fn queue_changed(&self, row: &QueuedRow, state: QueueState) {
        let mut view = queued_view(row.clone());
        view.state = state;
        self.parts().sink.emit(Event::QueueChanged(view));
    }

    /// `agent.queue.list`: the project's follow-ups still queued, oldest first.
    ///
    /// # Errors
    /// `PROJECT_NOT_FOUND`, or an internal store error.
    pub async fn queue(&self, project_id: &str) -> Result<Vec<QueuedMessage>, RpcError> {
        self.parts().projects.get(project_id)?;
        let rows = self
            .parts()
            .store
            .queued_messages(project_id.to_string())
            .await
            .map_err(|err| RpcError::internal("read queue", &err))?;
        Ok(rows.into_iter().map(queued_view).collect())
    }

    /// `agent.queue.update` (`text` is `Some`) and `agent.queue.cancel` (`None`): changes
    /// a follow-up that is still queued.
    ///
    /// # Errors
    /// `MESSAGE_NOT_QUEUED` when no follow-up has that id or it was already delivered or
    /// cancelled; `TOO_LARGE`/`INVALID_PARAMS` for the text.
    pub async fn change_queued(
        &self,
        id: &str,
        text: Option<String>,
    ) -> Result<QueuedMessage, RpcError> {
        if let Some(text) = &text {
            if text.trim().is_empty() {
                return Err(RunError::EmptyPrompt.into());
            }
            if text.len() > MAX_PROMPT_BYTES {
                return Err(RunError::PromptTooLarge.into());
            }
        }
        let changed = self
            .parts()
            .store
            .change_queued(id.to_string(), text, now_ms())
            .await
            .map_err(|err| RpcError::internal("change queued", &err))?;
        match changed {
            Some((row, true)) => {
                let view = queued_view(row);
                self.parts().sink.emit(Event::QueueChanged(view.clone()));
                Ok(view)
            }
            Some((row, false)) => Err(RpcError::from(RunError::NotQueued(format!(
                "follow-up {id} is already {}",
                row.state
            )))
            .with_details(serde_json::json!({"id": id, "state": row.state}))),
            None => Err(RunError::NotQueued(format!("no queued follow-up has id {id}")).into()),
        }
    }
}

/// A queued row as the wire shows it.
pub(super) fn queued_view(row: QueuedRow) -> QueuedMessage {
    QueuedMessage {
        id: row.id,
        project_id: row.project_id,
        text: row.text,
        state: match row.state.as_str() {
            "delivered" => QueueState::Delivered,
            "cancelled" => QueueState::Cancelled,
            _ => QueueState::Queued,
        },
        created_at: crate::support::timestamp::format_ms(row.created_at),
        updated_at: crate::support::timestamp::format_ms(row.updated_at),
        run_id: row.run_id.filter(|r| !r.is_empty()),
    }
}
