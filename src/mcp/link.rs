//! One connection of the MCP server to the hub, as an actor: a task owns the
//! [`Conn`], runs the requests the tools send it through a bounded channel one at
//! a time (the hub answers a connection's requests in order anyway), sends
//! `worker.heartbeat` on a timer once asked, and files each notification in the
//! connection's [`Inbox`]. Tools read the inbox under its std `Mutex` (held for a few
//! field moves, never across an `.await`) and wait for it to change on a `watch`
//! counter, which they mark as seen *before* they look, so no change falls between
//! the look and the wait.

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::conn::{Conn, ConnError};

/// Requests waiting for the actor; a tool call sends one at a time, so this is ample.
const QUEUE: usize = 16;

/// What the hub pushed to this connection that a tool has yet to hand on.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// Tasks assigned to this worker (`task.assigned`'s `task`), not yet handed out.
    pub(crate) assigned: VecDeque<Value>,
    /// The task handed out by `next_task` and not yet finished.
    pub(crate) held: Option<Value>,
    /// `task.revoked` params of tasks taken away since a tool last said so.
    pub(crate) revoked: Vec<Value>,
    /// The projects of the tasks assigned to this worker: its batch
    /// ([`super::batch`]).
    pub(crate) projects: BTreeSet<String>,
    /// The last `project.completed` since a task was last assigned: the batch a worker
    /// that was given no task yet takes as its own.
    pub(crate) batch_done: Option<Value>,
    /// Why the connection ended, once it has.
    pub(crate) closed: Option<String>,
}

impl Inbox {
    fn file(&mut self, note: &Value) {
        let params = &note["params"];
        match note["method"].as_str().unwrap_or_default() {
            "task.assigned" => {
                self.batch_done = None;
                if let Some(project) = params["task"]["project_id"].as_str() {
                    self.projects.insert(project.to_string());
                }
                self.assigned.push_back(params["task"].clone());
            }
            "task.revoked" => {
                let id = &params["task_id"];
                self.assigned.retain(|task| &task["id"] != id);
                if self.held.as_ref().is_some_and(|task| &task["id"] == id) {
                    self.held = None;
                    self.revoked.push(params.clone());
                }
            }
            "project.completed" => self.batch_done = Some(params.clone()),
            _ => {}
        }
    }
}

enum Message {
    Call {
        method: String,
        params: Value,
        reply: oneshot::Sender<Result<Value, ConnError>>,
    },
    Heartbeat(Duration),
}

/// A handle on the actor; the connection closes when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Link {
    messages: mpsc::Sender<Message>,
    inbox: Arc<Mutex<Inbox>>,
    changes: watch::Receiver<u64>,
}

impl Link {
    /// Starts the actor on an open, greeted connection.
    pub(crate) fn start(client: Box<dyn Conn>) -> Self {
        let (messages, rx) = mpsc::channel(QUEUE);
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let (changed, changes) = watch::channel(0);
        tokio::spawn(run(client, rx, inbox.clone(), changed));
        Self {
            messages,
            inbox,
            changes,
        }
    }

    /// Sends a request and waits for its result.
    ///
    /// # Errors
    /// The hub's error ([`ConnError::Rpc`]), or [`ConnError::Unavailable`] when the
    /// connection has ended.
    pub(crate) async fn request(&self, method: &str, params: Value) -> Result<Value, ConnError> {
        let (reply, answer) = oneshot::channel();
        let closed = || ConnError::Unavailable(self.closed_reason());
        self.messages
            .send(Message::Call {
                method: method.to_string(),
                params,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// Renews the worker's lease every `period` from now on.
    pub(crate) async fn keep_lease(&self, period: Duration) {
        let _ = self.messages.send(Message::Heartbeat(period)).await;
    }

    /// The inbox, locked briefly.
    pub(crate) fn inbox(&self) -> MutexGuard<'_, Inbox> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver to wait for the next change of the inbox; mark it seen
    /// (`borrow_and_update`) before looking.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.messages.is_closed() || self.inbox().closed.is_some()
    }

    fn closed_reason(&self) -> String {
        self.inbox()
            .closed
            .clone()
            .unwrap_or_else(|| "the connection ended".into())
    }
}

async fn run(
    mut client: Box<dyn Conn>,
    mut messages: mpsc::Receiver<Message>,
    inbox: Arc<Mutex<Inbox>>,
    changed: watch::Sender<u64>,
) {
    let file = |note: &Value| {
        inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .file(note);
        changed.send_modify(|count| *count += 1);
    };
    let mut beat: Option<tokio::time::Interval> = None;
    let reason = loop {
        tokio::select! {
            message = messages.recv() => match message {
                None => break "the MCP server closed it".to_string(),
                Some(Message::Call { method, params, reply }) => {
                    let result = client.request(&method, params).await;
                    let broken = broken(&result);
                    let _ = reply.send(result);
                    if let Some(reason) = broken {
                        break reason;
                    }
                }
                Some(Message::Heartbeat(period)) => {
                    let mut interval = tokio::time::interval(period);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    beat = Some(interval);
                }
            },
            note = client.next_notification() => match note {
                Ok(note) => file(&note),
                Err(err) => break err.to_string(),
            },
            _ = async { beat.as_mut().expect("guarded").tick().await }, if beat.is_some() => {
                let result = client.request("worker.heartbeat", json!({})).await;
                if let Err(err) = &result {
                    tracing::debug!(error = %err, "heartbeat failed");
                }
                if let Some(reason) = broken(&result) {
                    break reason;
                }
            }
        }
    };
    tracing::debug!(reason = %reason, "hub connection ended");
    inbox
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .closed = Some(reason);
    changed.send_modify(|count| *count += 1);
    client.close().await;
}

/// Why the connection is no longer usable after `result`: any error but the hub's own
/// answer.
fn broken(result: &Result<Value, ConnError>) -> Option<String> {
    match result {
        Ok(_) | Err(ConnError::Rpc { .. }) => None,
        Err(err) => Some(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(method: &str, params: Value) -> Value {
        json!({"jsonrpc": "2.0", "method": method, "params": params})
    }

    #[test]
    fn the_inbox_files_assignments_revocations_and_batch_ends() {
        let mut inbox = Inbox::default();
        inbox.file(&note(
            "project.completed",
            json!({"project_id": "p", "total": 1}),
        ));
        assert!(inbox.batch_done.is_some());
        inbox.file(&note(
            "task.assigned",
            json!({"task": {"id": "t1", "project_id": "a"}}),
        ));
        inbox.file(&note(
            "task.assigned",
            json!({"task": {"id": "t2", "project_id": "b"}}),
        ));
        assert!(inbox.batch_done.is_none(), "a new task starts a new batch");
        assert_eq!(
            inbox.projects.iter().collect::<Vec<_>>(),
            ["a", "b"],
            "the worker's batch spans the projects of its tasks"
        );
        inbox.held = inbox.assigned.pop_front();
        inbox.file(&note(
            "task.revoked",
            json!({"task_id": "t1", "reason": "cancelled"}),
        ));
        inbox.file(&note(
            "task.revoked",
            json!({"task_id": "t2", "reason": "cancelled"}),
        ));
        assert!(inbox.held.is_none() && inbox.assigned.is_empty());
        assert_eq!(
            inbox.revoked.len(),
            1,
            "only the held task is news to the agent"
        );
    }
}
