//! The one [`EventSink`]: turns the core's [`Event`]s into wire notifications, desktop
//! [`HubEvent`]s, the [`StatusSnapshot`] and its gauges.
//!
//! Who hears what: `hub.connection` goes to every other connection with
//! `projects:read` that asked for it (`hub.hello` `connection_events`, on by default for
//! dashboards only); `hub.stats` to dashboards and connections with a subscription;
//! project notifications (`project.created`, `project.deleted`,
//! `project.state`) go to every client; coordination notifications go to coordinators
//! and dashboards, `project.completed` also to workers; `task.assigned` and
//! `task.revoked` go to the one worker connection they name; `agent.approval_requested`,
//! `agent.approval_resolved` and `agent.queue_changed` go to connections holding the
//! `agents` scope; `pairing.requested`,
//! `pairing.resolved` and `client.changed` go to connections holding the `admin` scope.
//! The status snapshot is
//! recomputed here, and only here, after every event that can change it.
//!
//! [`Notifier::emit`] never waits: pushes go to the clients' bounded queues
//! ([`crate::connections::Client::push`]), the snapshot to a `watch` channel and desktop
//! events to a `broadcast` channel. It is called under the coordinator's lock, so it
//! takes only the client registry's and the project registry's locks, for map
//! operations, and never calls back into a producer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::connections::{Client, Clients};
use crate::events::{Event, EventSink, HubEvent, StatusSnapshot};
use crate::projects::Projects;
use crate::projects::feed::Feed;
use crate::protocol::agents::{ApprovalView, QueuedMessage, method as agents_method};
use crate::protocol::clients::{
    ClientChanged, PairingRequested, PairingResolved, method as clients_method,
};
use crate::protocol::coordination::method as coord;
use crate::protocol::hub::{ConnectionChange, ConnectionChanged};
use crate::protocol::scopes::Scope;
use crate::protocol::{ProjectState, ProjectView, Role, method, notification};
use crate::runner::slots::Slots;
use crate::support::metrics::Metrics;

/// `project.created` params.
#[derive(Serialize)]
struct ProjectCreated<'a> {
    project: &'a ProjectView,
}

/// `agent.approval_requested` params.
#[derive(Serialize)]
struct ApprovalRequested<'a> {
    approval: &'a ApprovalView,
}

/// `agent.queue_changed` params.
#[derive(Serialize)]
struct QueueChanged<'a> {
    message: &'a QueuedMessage,
}

/// `project.deleted` params.
#[derive(Serialize)]
struct ProjectDeleted<'a> {
    project_id: &'a str,
}

/// Coordinators and dashboards holding the `tasks` scope. The role is the client's own
/// claim (`hub.hello`), so it only selects who wants task news; the scope decides who
/// may see it, as it does for `task.list`.
fn observers(client: &Client) -> bool {
    matches!(client.role(), Role::Coordinator | Role::Dashboard)
        && client.scopes().contains(Scope::Tasks)
}

/// Coordinators, dashboards and workers holding the `tasks` scope.
fn observers_and_workers(client: &Client) -> bool {
    matches!(
        client.role(),
        Role::Coordinator | Role::Dashboard | Role::Worker
    ) && client.scopes().contains(Scope::Tasks)
}

/// Who a notification goes to.
enum To {
    /// Connections that may read projects (`projects:read`, as for `project.list`).
    ProjectReaders,
    Observers,
    ObserversAndWorkers,
    Connection(u64),
    /// Connections holding the `admin` scope (the owner's always).
    Admins,
    /// Connections holding the `agents` scope (the owner's always).
    Agents,
    /// Connections that asked for `hub.connection` and may list connections
    /// (`projects:read`, as for `hub.connections`), but the one the news is about.
    ConnectionWatchersBut(u64),
    /// Dashboards, and connections subscribed to some project's output.
    StatsWanted,
}

/// The sink; one per hub.
pub struct Notifier {
    clients: Clients,
    projects: Projects,
    feed: Feed,
    slots: Slots,
    metrics: Arc<Metrics>,
    port: AtomicU16,
    status: watch::Sender<StatusSnapshot>,
    desktop: broadcast::Sender<HubEvent>,
}

impl Notifier {
    /// A notifier over the registries whose counts make the status; `feed` says who
    /// subscribes to output, for `hub.stats`.
    pub fn new(
        clients: Clients,
        projects: Projects,
        feed: Feed,
        slots: Slots,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (status, _) = watch::channel(StatusSnapshot::default());
        let (desktop, _) = broadcast::channel(16);
        let notifier = Self {
            clients,
            projects,
            feed,
            slots,
            metrics,
            port: AtomicU16::new(0),
            status,
            desktop,
        };
        notifier.refresh();
        notifier
    }

    /// Watches the [`StatusSnapshot`].
    pub fn status(&self) -> watch::Receiver<StatusSnapshot> {
        self.status.subscribe()
    }

    /// Desktop events. A receiver more than 16 events behind skips the oldest.
    pub fn desktop_events(&self) -> broadcast::Receiver<HubEvent> {
        self.desktop.subscribe()
    }

    /// The port the hub listens on (0 before it is bound).
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    fn send<P: Serialize>(&self, name: &str, params: &P, to: To) {
        if let To::StatsWanted = to {
            let wants = |client: &Client| {
                client.role() == Role::Dashboard || self.feed.has_subscriptions(client.id())
            };
            // Nobody listening: not even encoded.
            if self.clients.all().iter().any(|c| wants(c)) {
                let message = Utf8Bytes::from(notification(name, params));
                self.clients.broadcast_to(message, wants);
            }
            return;
        }
        if let To::ConnectionWatchersBut(id) = to {
            // Nobody watching (the common case with many scripts or extensions): not
            // even encoded.
            if self.clients.has_watchers() {
                let message = Utf8Bytes::from(notification(name, params));
                self.clients.broadcast_to_watchers(message, |client| {
                    client.id() != id && client.scopes().contains(Scope::ProjectsRead)
                });
            }
            return;
        }
        let message = Utf8Bytes::from(notification(name, params));
        match to {
            To::StatsWanted | To::ConnectionWatchersBut(_) => {}
            To::ProjectReaders => self.clients.broadcast_to(message, |client| {
                client.scopes().contains(Scope::ProjectsRead)
            }),
            To::Observers => self.clients.broadcast_to(message, observers),
            To::ObserversAndWorkers => self.clients.broadcast_to(message, observers_and_workers),
            To::Admins => self
                .clients
                .broadcast_to(message, |client| client.scopes().contains(Scope::Admin)),
            To::Agents => self
                .clients
                .broadcast_to(message, |client| client.scopes().contains(Scope::Agents)),
            To::Connection(id) => {
                if let Some(client) = self.clients.get(id) {
                    client.push(message);
                }
            }
        }
    }

    /// Recomputes the snapshot and the gauges derived from it.
    fn refresh(&self) {
        let snapshot = StatusSnapshot {
            port: self.port(),
            connections: self.clients.count(),
            running_agents: self.slots.in_use(),
            projects: self.projects.count(),
        };
        self.metrics.connections.set(snapshot.connections as i64);
        self.metrics
            .running_agents
            .set(snapshot.running_agents as i64);
        self.metrics.projects.set(snapshot.projects as i64);
        self.status.send_if_modified(|current| {
            let changed = *current != snapshot;
            *current = snapshot;
            changed
        });
    }
}

impl EventSink for Notifier {
    fn emit(&self, event: Event) {
        match event {
            Event::Listening { port } => {
                self.port.store(port, Ordering::Relaxed);
                self.refresh();
            }
            Event::ConnectionsChanged | Event::RunStarted | Event::RunFinished => self.refresh(),
            Event::Connection { change, connection } => {
                self.send(
                    method::HUB_CONNECTION,
                    &ConnectionChanged {
                        event: change,
                        connection: &connection,
                    },
                    To::ConnectionWatchersBut(connection.id),
                );
                if change != ConnectionChange::Updated {
                    self.refresh();
                }
            }
            Event::Stats(stats) => self.send(method::HUB_STATS, &stats, To::StatsWanted),
            Event::ProjectCreated(project) => {
                self.send(
                    method::PROJECT_CREATED,
                    &ProjectCreated { project: &project },
                    To::ProjectReaders,
                );
                self.refresh();
            }
            Event::ProjectDeleted { project_id } => {
                self.send(
                    method::PROJECT_DELETED,
                    &ProjectDeleted {
                        project_id: &project_id,
                    },
                    To::ProjectReaders,
                );
                self.refresh();
            }
            Event::ProjectState(change) => {
                self.send(method::PROJECT_STATE, &change, To::ProjectReaders);
                // A run's end: the runner names the run and the project is no longer
                // running (agent.new_session changes the state without a run).
                if let Some(run_id) = &change.run_id
                    && change.state != ProjectState::Running
                {
                    let project_name = self
                        .projects
                        .get(&change.project_id)
                        .map(|p| p.name)
                        .unwrap_or_else(|_| change.project_id.clone());
                    let _ = self.desktop.send(HubEvent::RunFinished {
                        project_id: change.project_id.clone(),
                        project_name,
                        run_id: run_id.clone(),
                        state: change.state,
                        reason: change.reason.clone(),
                    });
                }
            }
            Event::TaskCreated(created) => self.send(coord::TASK_CREATED, &created, To::Observers),
            Event::TaskStarted(started) => self.send(coord::TASK_STARTED, &started, To::Observers),
            Event::TaskAssigned { conn_id, assigned } => {
                self.send(coord::TASK_ASSIGNED, &assigned, To::Connection(conn_id))
            }
            Event::TaskRevoked { conn_id, revoked } => {
                self.send(coord::TASK_REVOKED, &revoked, To::Connection(conn_id))
            }
            Event::TaskCompleted(done) => self.send(coord::TASK_COMPLETED, &done, To::Observers),
            Event::TaskFailed(failed) => self.send(coord::TASK_FAILED, &failed, To::Observers),
            Event::TaskRequeued(failed) => self.send(coord::TASK_REQUEUED, &failed, To::Observers),
            Event::TaskCancelled(cancelled) => {
                self.send(coord::TASK_CANCELLED, &cancelled, To::Observers)
            }
            Event::ReportInvalid(notice) => {
                self.send(coord::TASK_REPORT_INVALID, &notice, To::Observers)
            }
            Event::ReportUnknown(notice) => {
                self.send(coord::TASK_REPORT_UNKNOWN, &notice, To::Observers)
            }
            Event::WorkerStatus(view) => self.send(coord::WORKER_STATUS, &view, To::Observers),
            Event::CoordinationStatus(status) => {
                self.send(coord::COORDINATION_STATUS, &status, To::Observers)
            }
            Event::BatchFinished(completed) => {
                self.send(
                    coord::PROJECT_COMPLETED,
                    &completed,
                    To::ObserversAndWorkers,
                );
                let project_name = self
                    .projects
                    .get(&completed.project_id)
                    .map(|p| p.name)
                    .unwrap_or_else(|_| completed.project_id.clone());
                let _ = self.desktop.send(HubEvent::BatchFinished {
                    project_id: completed.project_id,
                    project_name,
                    message: completed.message,
                });
            }
            Event::PairingRequested(request) => {
                self.send(
                    clients_method::PAIRING_REQUESTED,
                    &PairingRequested { request: &request },
                    To::Admins,
                );
                let _ = self.desktop.send(HubEvent::PairingRequested {
                    request_id: request.id,
                    name: request.name,
                    origin: request.origin,
                    code: request.code,
                });
            }
            Event::PairingResolved {
                request_id,
                outcome,
            } => self.send(
                clients_method::PAIRING_RESOLVED,
                &PairingResolved {
                    request_id: &request_id,
                    outcome,
                },
                To::Admins,
            ),
            Event::ApprovalRequested(approval) => {
                self.send(
                    agents_method::AGENT_APPROVAL_REQUESTED,
                    &ApprovalRequested {
                        approval: &approval,
                    },
                    To::Agents,
                );
                let project_name = self
                    .projects
                    .get(&approval.project_id)
                    .map(|p| p.name)
                    .unwrap_or_else(|_| approval.project_id.clone());
                let target = ["command", "file_path", "url", "path", "pattern"]
                    .iter()
                    .find_map(|k| approval.input.get(*k).and_then(|v| v.as_str()))
                    .map(str::to_owned);
                let _ = self.desktop.send(HubEvent::ApprovalRequested {
                    project_id: approval.project_id,
                    project_name,
                    approval_id: approval.id,
                    tool_name: approval.tool_name,
                    target,
                });
            }
            Event::ApprovalResolved(resolved) => self.send(
                agents_method::AGENT_APPROVAL_RESOLVED,
                &resolved,
                To::Agents,
            ),
            Event::QueueChanged(message) => self.send(
                agents_method::AGENT_QUEUE_CHANGED,
                &QueueChanged { message: &message },
                To::Agents,
            ),
            Event::ClientChanged { event, client } => self.send(
                clients_method::CLIENT_CHANGED,
                &ClientChanged {
                    event,
                    client: &client,
                },
                To::Admins,
            ),
        }
    }
}
