//! What the subsystems report upwards: one [`Event`] enum and the [`EventSink`] it is
//! sent to.
//!
//! The runner and the coordinator never call back into the hub. They describe what
//! happened as an [`Event`] and hand it to the sink they were given when they were
//! opened; the one implementation, [`crate::app::notifier::Notifier`], turns events into wire
//! notifications, desktop [`HubEvent`]s and the [`StatusSnapshot`]. The trait lives here,
//! below its producers, so that producers depend on it and not on what consumes it.
//!
//! The sink is synchronous and must never wait: producers emit while they hold their own
//! lock (the coordinator does, so that every client sees its changes in the order they
//! happened), and a slow client must never stall them. Events for a connection are
//! addressed by its connection id, so this module needs nothing above the protocol.

use serde::Serialize;

use crate::protocol::agents::{ApprovalResolved, ApprovalView, QueuedMessage};
use crate::protocol::clients::{ClientEvent, ClientView, Outcome, RequestView};
use crate::protocol::coordination::{
    CoordinationStatus, ProjectCompleted, ReportInvalid, ReportUnknown, TaskAssigned,
    TaskCancelled, TaskCompleted, TaskCreated, TaskFailed, TaskRevoked, TaskStarted, WorkerView,
};
use crate::protocol::hub::{ClientInfo, ConnectionChange, Stats};
use crate::protocol::{ProjectState, ProjectView, StateChange};

/// Something that happened in the hub's core.
#[derive(Debug, Clone)]
pub enum Event {
    /// The server is listening on this port.
    Listening {
        /// The bound port.
        port: u16,
    },
    /// A connection opened or closed; the count changed.
    ConnectionsChanged,
    /// A connection opened, introduced itself or closed (`hub.connection`, to the
    /// other connections that may list connections).
    Connection {
        /// What happened.
        change: ConnectionChange,
        /// The connection as it is now.
        connection: ClientInfo,
    },
    /// The periodic figures (`hub.stats`, to dashboards and to connections with a
    /// subscription).
    Stats(Stats),
    /// A project was registered (`project.created`).
    ProjectCreated(ProjectView),
    /// A project was removed (`project.deleted`).
    ProjectDeleted {
        /// The project.
        project_id: String,
    },
    /// A project's interactive state changed (`project.state`).
    ProjectState(StateChange),
    /// An agent run started (interactive or for a task); the running count changed.
    RunStarted,
    /// An agent run ended and its process group is gone; the running count changed.
    RunFinished,
    /// Tasks were queued (`task.created`).
    TaskCreated(TaskCreated),
    /// A task was handed to a worker (`task.started`).
    TaskStarted(TaskStarted),
    /// A task was handed to a connected worker (`task.assigned`, to that worker only).
    TaskAssigned {
        /// The worker's connection.
        conn_id: u64,
        /// The assignment.
        assigned: TaskAssigned,
    },
    /// A connected worker lost its task (`task.revoked`, to that worker only).
    TaskRevoked {
        /// The worker's connection.
        conn_id: u64,
        /// What and why.
        revoked: TaskRevoked,
    },
    /// A task completed (`task.completed`).
    TaskCompleted(TaskCompleted),
    /// A task's last attempt failed (`task.failed`).
    TaskFailed(TaskFailed),
    /// An attempt failed and the task is queued again (`task.requeued`).
    TaskRequeued(TaskFailed),
    /// A task was cancelled (`task.cancelled`).
    TaskCancelled(TaskCancelled),
    /// A report file is unusable (`task.report_invalid`).
    ReportInvalid(ReportInvalid),
    /// A report file names no task of its project (`task.report_unknown`).
    ReportUnknown(ReportUnknown),
    /// A worker's status changed (`worker.status`).
    WorkerStatus(WorkerView),
    /// A project's counts or workers changed (`coordination.status`).
    CoordinationStatus(CoordinationStatus),
    /// Every task of a project finished (`project.completed`, and a desktop
    /// [`HubEvent::BatchFinished`]).
    BatchFinished(ProjectCompleted),
    /// A browser extension asks to pair (`pairing.requested` to `admin` connections, and
    /// a desktop [`HubEvent::PairingRequested`]).
    PairingRequested(RequestView),
    /// A pairing request was approved, denied or expired (`pairing.resolved`).
    PairingResolved {
        /// The request.
        request_id: String,
        /// How it ended.
        outcome: Outcome,
    },
    /// An agent's tool call waits for a person (`agent.approval_requested`, to
    /// connections holding the `agents` scope).
    ApprovalRequested(ApprovalView),
    /// A pending approval was answered, timed out or withdrawn
    /// (`agent.approval_resolved`, to connections holding the `agents` scope).
    ApprovalResolved(ApprovalResolved),
    /// A queued follow-up was added, edited, cancelled or delivered
    /// (`agent.queue_changed`, to connections holding the `agents` scope).
    QueueChanged(QueuedMessage),
    /// A client token was created, revoked or used (`client.changed`).
    ClientChanged {
        /// What happened.
        event: ClientEvent,
        /// The token as it is now.
        client: ClientView,
    },
}

/// Where the core's subsystems send their [`Event`]s.
///
/// Implementations must return at once: no waiting, no locks held for longer than a map
/// operation, never a call back into the producer.
pub trait EventSink: Send + Sync {
    /// Takes one event.
    fn emit(&self, event: Event);
}

/// Something a front end may want to tell the user about, e.g. with a desktop
/// notification. Delivered through [`crate::Hub::events`].
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// Every task of a project has finished (the `project.completed` notification).
    BatchFinished {
        /// The project.
        project_id: String,
        /// Its display name.
        project_name: String,
        /// A human summary, e.g. `all 20 tasks finished: 19 completed, 1 failed, 0 cancelled`.
        message: String,
    },
    /// An interactive agent run ended (its project left `running`); the desktop app
    /// tells the user how.
    RunFinished {
        /// The project.
        project_id: String,
        /// Its display name.
        project_name: String,
        /// The run.
        run_id: String,
        /// The project's state after the run: `idle` (it succeeded), `failed` (it failed
        /// or timed out) or `killed`.
        state: ProjectState,
        /// Why it failed or was killed.
        reason: Option<String>,
    },
    /// A browser extension asks to pair (the `pairing.requested` notification); the
    /// desktop app tells the user and opens the dashboard at `/#clients`.
    PairingRequested {
        /// The request's id.
        request_id: String,
        /// The extension's display name.
        name: String,
        /// Its exact Origin.
        origin: String,
        /// The 6-digit code the extension shows too.
        code: String,
    },
    /// An agent's tool call waits for a person (the `agent.approval_requested`
    /// notification); the desktop app tells the user and opens the dashboard at it
    /// (`/#/projects/<project_id>/approval/<approval_id>`).
    ApprovalRequested {
        /// The project whose agent asks.
        project_id: String,
        /// Its display name.
        project_name: String,
        /// The approval's id (`ap_…`).
        approval_id: String,
        /// The tool, e.g. `Bash`.
        tool_name: String,
        /// What the tool would act on, when its input names it: a Bash `command`, a
        /// `file_path`, a `url`, a `path` or a `pattern`.
        target: Option<String>,
    },
}

/// A summary of the hub for the tray and the dashboard, recomputed by the notifier
/// whenever an event may have changed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatusSnapshot {
    /// The port, once bound.
    pub port: u16,
    /// Connected clients.
    pub connections: usize,
    /// Running agents.
    pub running_agents: usize,
    /// Registered projects.
    pub projects: usize,
}
