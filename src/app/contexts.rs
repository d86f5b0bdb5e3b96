//! The narrow contexts the composition root hands the RPC method families (in the style
//! of mini-redis's per-command handles): each family sees the parts its methods use and
//! nothing else, never the whole [`crate::app::hub::Hub`]. [`Contexts`] holds one of
//! each; the hub builds it once, in [`crate::app::hub::Hub::open`].
//!
//! Lifecycles that span parts and that a family starts (a project created or deleted, a
//! connection's identity changed) are methods of the context that owns the parts, so a
//! handler cannot wire them differently from the hub.

use std::sync::Arc;
use std::time::Instant;

use tracing::info;

use crate::app::access::Access;
use crate::app::notifier::Notifier;
use crate::app::sessions::Sessions;
use crate::auth::security::LoginCodes;
use crate::config::{LoadedConfig, PublicConfig};
use crate::connections::{Client, Clients};
use crate::coordinator::Coordinator;
use crate::coordinator::watch::Watch;
use crate::events::{Event, EventSink};
use crate::projects::feed::Feed;
use crate::projects::{ProjectError, Projects};
use crate::protocol::ProjectView;
use crate::protocol::hub::ConnectionChange;
use crate::pubsub::broker::Broker;
use crate::pubsub::nats::NatsBackplane;
use crate::runner::Runner;
use crate::runner::claude_cli::Clis;
use crate::storage::sqlite::Store;
use crate::support::metrics::Metrics;
use crate::support::monitor::Monitor;

/// One context per method family, and what the dispatcher checks before any of them.
pub(crate) struct Contexts {
    /// `public.*`: which families this hub serves.
    pub(crate) public: PublicConfig,
    /// `hub.*`.
    pub(crate) hub: HubCtx,
    /// `project.*` (but `project.configure`).
    pub(crate) projects: ProjectsCtx,
    /// `agent.*`.
    pub(crate) agents: AgentsCtx,
    /// `messages.list`.
    pub(crate) messages: MessagesCtx,
    /// `worker.*`, `task.*`, `project.configure`, `coordination.status`.
    pub(crate) tasks: TasksCtx,
    /// `event.*`.
    pub(crate) events: EventsCtx,
    /// `client.*` and `pairing.*`.
    pub(crate) access: Access,
}

/// The notifier as the parts above the core may use it: to report what the core did not
/// see.
#[derive(Clone)]
pub(crate) struct Notices(pub(super) Arc<Notifier>);

impl Notices {
    /// Sends an event to the notifier.
    pub(crate) fn emit(&self, event: Event) {
        self.0.emit(event);
    }

    /// Tells the other connections that `client` opened, changed (`hub.hello`,
    /// `worker.register`, `task.create` making it a coordinator) or closed.
    pub(crate) fn connection_changed(&self, change: ConnectionChange, client: &Client) {
        self.emit(Event::Connection {
            change,
            connection: client.info(),
        });
    }

    /// The port the hub listens on (0 before it is bound).
    pub(crate) fn port(&self) -> u16 {
        self.0.port()
    }
}

/// Fills in a view's `last_seq` from the feed, which tracks it line by line.
fn with_seq(feed: &Feed, mut view: ProjectView) -> ProjectView {
    if let Some(seq) = feed.last_seq(&view.id) {
        view.last_seq = seq;
    }
    view
}

/// What `hub.*` uses.
pub(crate) struct HubCtx {
    /// The configuration in force (`hub.config`).
    pub(crate) config: Arc<LoadedConfig>,
    /// Connected clients (`hub.connections`).
    pub(crate) clients: Clients,
    /// `hub.connection` on `hub.hello`.
    pub(crate) notices: Notices,
    /// This run of the hub (`hub.hello`).
    pub(crate) instance_id: String,
    /// `hub.status` and `hub.health`.
    pub(crate) reports: Reports,
    /// `hub.login_link`.
    pub(crate) login: LoginLinks,
    /// Dashboard sessions, and their connections (`hub.revoke_sessions`).
    pub(crate) sessions: Sessions,
}

/// One-time dashboard sign-in links.
#[derive(Clone)]
pub(crate) struct LoginLinks {
    pub(super) notices: Notices,
    pub(super) codes: Arc<LoginCodes>,
}

impl LoginLinks {
    /// A one-time sign-in link for the dashboard, valid for two minutes.
    pub(crate) fn link(&self) -> String {
        format!(
            "http://127.0.0.1:{}/login?code={}",
            self.notices.port(),
            self.codes.issue()
        )
    }
}

/// What the hub's reports on itself read (`hub.status`, `/health`, `hub.stats`; see
/// `hub/reports.rs`).
#[derive(Clone)]
pub(crate) struct Reports {
    pub(super) config: Arc<LoadedConfig>,
    pub(super) nats: Option<Arc<NatsBackplane>>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) access: Access,
    pub(super) instance_id: String,
    pub(super) notices: Notices,
    pub(super) started: Instant,
    pub(super) projects: Projects,
    pub(super) clients: Clients,
    pub(super) runner: Runner,
    pub(super) secret_store: &'static str,
    pub(super) monitor: Monitor,
    /// What the store's acknowledged writes survive.
    pub(super) durability: crate::storage::sqlite::Durability,
}

/// What `project.*` uses, and the project lifecycles.
#[derive(Clone)]
pub(crate) struct ProjectsCtx {
    /// Registered projects.
    pub(crate) projects: Projects,
    /// History plus live output (`project.subscribe`).
    pub(crate) feed: Feed,
    pub(super) watch: Arc<Watch>,
    pub(super) coordinator: Coordinator,
    pub(super) notices: Notices,
}

impl ProjectsCtx {
    /// Fills in a view's `last_seq` from the feed.
    pub(crate) fn with_seq(&self, view: ProjectView) -> ProjectView {
        with_seq(&self.feed, view)
    }

    /// A project with its current `last_seq`.
    ///
    /// # Errors
    /// `NotFound`.
    pub(crate) fn project(&self, id: &str) -> Result<ProjectView, ProjectError> {
        Ok(self.with_seq(self.projects.get(id)?))
    }

    /// Registers a project: the registry, its feed, its reports watch, and
    /// `project.created`.
    ///
    /// # Errors
    /// `ProjectError` for a path that cannot be a project, or the limit.
    pub(crate) async fn create_project(
        &self,
        path: &str,
        name: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        let view = self.projects.create(path, name).await?;
        self.feed.add_project(&view.id);
        self.watch.add_project(&view.id, &view.path);
        info!(project_id = %view.id, path = %view.path, "project created");
        self.notices.emit(Event::ProjectCreated(view.clone()));
        Ok(view)
    }

    /// Removes a project: the registry (its log and tasks go with it), its feed, its
    /// watch, its tasks and agent workers, and `project.deleted`.
    ///
    /// # Errors
    /// `NotFound`, `Busy` while it runs.
    pub(crate) async fn delete_project(&self, project_id: &str) -> Result<(), ProjectError> {
        self.projects.delete(project_id).await?;
        self.feed.remove_project(project_id);
        self.watch.remove_project(project_id);
        self.coordinator.project_deleted(project_id);
        info!(project_id, "project deleted");
        self.notices.emit(Event::ProjectDeleted {
            project_id: project_id.to_string(),
        });
        Ok(())
    }
}

/// What `agent.*` uses.
#[derive(Clone)]
pub(crate) struct AgentsCtx {
    /// Starts and kills runs.
    pub(crate) runner: Runner,
    /// Isolated runs' worktrees (`agent.run {isolation: "worktree"}`, `agent.run_*`).
    pub(crate) coordinator: Coordinator,
    /// `agent.new_session`.
    pub(crate) projects: Projects,
    /// `project.state` after `agent.new_session`.
    pub(crate) notices: Notices,
    pub(super) feed: Feed,
    /// The recorded usage (`agent.usage`).
    pub(crate) store: Store,
}

impl AgentsCtx {
    /// Fills in a view's `last_seq` from the feed.
    pub(crate) fn with_seq(&self, view: ProjectView) -> ProjectView {
        with_seq(&self.feed, view)
    }
}

/// What `messages.list` uses.
pub(crate) struct MessagesCtx {
    /// Whether the project exists.
    pub(crate) projects: Projects,
    /// The stored lines.
    pub(crate) store: Store,
}

/// What the task queue's methods use.
pub(crate) struct TasksCtx {
    /// The queue, workers and leases.
    pub(crate) coordinator: Coordinator,
    /// Whether the project exists.
    pub(crate) projects: Projects,
    /// Stored tasks (`task.list`, `task.get`, and the state of a finished task).
    pub(crate) store: Store,
    /// Whether the agent CLIs are there (`project.configure`).
    pub(crate) clis: Clis,
    /// `hub.connection` when a connection becomes a worker or a coordinator.
    pub(crate) notices: Notices,
    /// `coordination.lease_s`, in seconds.
    pub(crate) lease_s: u64,
    /// `limits.max_running_agents`: the most agent workers a project may have.
    pub(crate) max_running_agents: usize,
}

/// What `event.*` uses.
pub(crate) struct EventsCtx {
    /// Event routing.
    pub(crate) broker: Broker,
}
