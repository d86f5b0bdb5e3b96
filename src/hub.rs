//! The hub: one cheap-to-clone bundle of handles to every subsystem.
//!
//! The desktop app, `semantest-hub serve` and a public deployment all build the same
//! [`Hub`] and differ only in configuration. [`crate::server::start`] binds it to
//! sockets.

use std::ops::Deref;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::agent::{self, AgentCli};
use crate::broker::{Broker, BrokerLimits};
use crate::clients::Clients;
use crate::config::LoadedConfig;
use crate::coordinator::Coordinator;
use crate::error::ErrorChain;
use crate::feed::{Feed, Line};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::project::{ProjectError, Projects};
use crate::protocol::{
    PROTOCOL_VERSION, ProjectView, Role, StateChange, Stream, method, notification,
};
use crate::secrets::{SecretError, Secrets};
use crate::security::{LoginCodes, new_token, token_hash};
use crate::store::{Store, StoreError};
use crate::timestamp::now_ms;
use crate::watch::Watch;

/// The product name in the signature and `/health`.
pub const PRODUCT: &str = "semantest-hub";
/// The hub's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The secret name of the owner token.
pub const OWNER_TOKEN: &str = "owner-token";

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another hub (the desktop app, or `serve`) already uses the data directory.
    #[error(
        "another hub is already running with data directory {0}; stop it first, or use another --data-dir"
    )]
    DataDirBusy(std::path::PathBuf),
    /// The secret store failed.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Projects could not be loaded.
    #[error(transparent)]
    Projects(#[from] ProjectError),
    /// No port could be bound.
    #[error("cannot listen on {addrs}")]
    Bind {
        /// The addresses tried.
        addrs: String,
        /// The last OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another I/O failure (data directory, runtime file).
    #[error("cannot {action}")]
    Io {
        /// What was being done.
        action: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Something a front end may want to tell the user about, e.g. with a desktop
/// notification. Delivered through [`Hub::events`].
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
}

/// A summary of the hub for the tray and the dashboard.
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

/// The shared state behind a [`Hub`].
pub struct Inner {
    /// The configuration in force.
    pub config: LoadedConfig,
    /// The SQLite store.
    pub store: Store,
    /// Registered projects.
    pub projects: Projects,
    /// History plus live output.
    pub feed: Feed,
    /// Connected clients.
    pub clients: Clients,
    /// Event routing.
    pub broker: Broker,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Resource figures.
    pub monitor: Monitor,
    /// One-time dashboard sign-in codes.
    pub login_codes: LoginCodes,
    /// SHA-256 of the owner token.
    pub owner_hash: [u8; 32],
    /// `keychain` or `file`.
    pub secret_store: &'static str,
    /// A random id for this run of the hub.
    pub instance_id: String,
    /// When the hub started.
    pub started: Instant,
    /// Cancelled to shut everything down.
    pub shutdown: CancellationToken,
    /// Every long-lived task: connections, runs, timers.
    pub tracker: TaskTracker,
    /// The task queue, workers and leases.
    pub coordinator: Coordinator,
    /// The projects' `reports/` folder watcher.
    pub watch: Watch,
    /// Agent runs started for tasks by the built-in agent workers.
    pub task_runs: agent::TaskRuns,
    port: OnceLock<u16>,
    /// The exclusive lock on `<data_dir>/hub.lock`, released at shutdown.
    data_dir_lock: std::sync::Mutex<Option<std::fs::File>>,
    agent_cli: RwLock<Option<AgentCli>>,
    status: watch::Sender<StatusSnapshot>,
    events: tokio::sync::broadcast::Sender<HubEvent>,
}

/// The hub. Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Deref for Hub {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl Hub {
    /// Opens the secret store and the database, cleans up runs orphaned by a crash,
    /// loads the projects and looks for the agent CLI. Blocking calls (keychain,
    /// SQLite) run on the blocking pool.
    ///
    /// # Errors
    /// [`StartError`] when the secret store or database cannot be opened.
    pub async fn open(config: LoadedConfig) -> Result<Self, StartError> {
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| StartError::Io {
            action: format!("create data directory {}", data_dir.display()),
            source,
        })?;
        let data_dir_lock = lock_data_dir(&data_dir)?;
        let kind = config.config.secret_store;
        let dir = data_dir.clone();
        let (secret_store, owner_hash) = tokio::task::spawn_blocking(move || {
            let secrets = Secrets::open(kind, &dir)?;
            let token = secrets.get_or_create(OWNER_TOKEN, new_token)?;
            Ok::<_, SecretError>((secrets.backend_name(), token_hash(&token)))
        })
        .await
        .expect("secret store task panicked")?;
        info!(secret_store, "owner token ready");

        let store = Store::open(&data_dir)?;
        let orphans = agent::clean_orphans(&store);
        let projects = Projects::load(store.clone(), config.config.limits.max_projects)?;
        let tracker = TaskTracker::new();
        let feed = Feed::new(
            store.clone(),
            projects.list().into_iter().map(|p| (p.id, p.last_seq)),
            tracker.clone(),
        );
        let coordinator = Coordinator::load(store.clone(), config.config.coordination.clone())?;
        let cli = match agent::find_cli(config.config.agent.cli_path.as_deref()) {
            Some(path) => Some(agent::probe_cli(path).await),
            None => None,
        };
        match &cli {
            Some(cli) => {
                info!(path = %cli.path.display(), version = ?cli.version, "agent CLI found")
            }
            None => {
                warn!("Claude Code CLI not found; agent runs will be refused until it is installed")
            }
        }
        if orphans > 0 {
            warn!(orphans, "runs orphaned by a previous crash were cleaned up");
        }
        let monitor = Monitor::new(&data_dir);
        let (status, _) = watch::channel(StatusSnapshot::default());
        let (events, _) = tokio::sync::broadcast::channel(16);
        let metrics = Metrics::new();
        let broker = Broker::new(
            BrokerLimits::from_config(&config.config.limits),
            metrics.events.clone(),
        );
        Ok(Self {
            inner: Arc::new(Inner {
                data_dir_lock: std::sync::Mutex::new(Some(data_dir_lock)),
                config,
                store,
                projects,
                feed,
                clients: Clients::default(),
                broker,
                metrics,
                monitor,
                login_codes: LoginCodes::default(),
                owner_hash,
                secret_store,
                instance_id: uuid::Uuid::new_v4().to_string(),
                started: Instant::now(),
                shutdown: CancellationToken::new(),
                tracker,
                coordinator,
                watch: Watch::default(),
                task_runs: agent::TaskRuns::default(),
                port: OnceLock::new(),
                agent_cli: RwLock::new(cli),
                status,
                events,
            }),
        })
    }

    /// The port the hub listens on (0 before it is bound).
    pub fn port(&self) -> u16 {
        self.port.get().copied().unwrap_or(0)
    }

    pub(crate) fn set_port(&self, port: u16) {
        let _ = self.port.set(port);
        self.refresh_status();
    }

    /// The agent CLI, if found. When it was missing, it is looked for again, so a CLI
    /// installed while the hub runs is picked up without a restart.
    pub fn agent_cli(&self) -> Option<AgentCli> {
        if let Some(cli) = self.agent_cli.read().ok().and_then(|cli| cli.clone()) {
            return Some(cli);
        }
        let path = agent::find_cli(self.config.config.agent.cli_path.as_deref())?;
        let cli = AgentCli {
            path,
            version: None,
        };
        if let Ok(mut slot) = self.agent_cli.write() {
            *slot = Some(cli.clone());
        }
        Some(cli)
    }

    /// Releases the data directory for the next hub; called at the end of shutdown.
    pub(crate) fn release_data_dir(&self) {
        if let Ok(mut lock) = self.data_dir_lock.lock() {
            lock.take();
        }
    }

    /// Agent runs in progress: projects' interactive runs plus task runs.
    pub fn running_agents(&self) -> usize {
        self.projects.running() + self.task_runs.count()
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Events for the user, for the desktop app's notifications. A receiver that falls
    /// more than 16 events behind skips the oldest.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.events.subscribe()
    }

    /// Sends an event to every [`Hub::events`] receiver; without one it is dropped.
    pub(crate) fn emit(&self, event: HubEvent) {
        let _ = self.events.send(event);
    }

    /// Watches the [`StatusSnapshot`], for the tray.
    pub fn status(&self) -> watch::Receiver<StatusSnapshot> {
        self.status.subscribe()
    }

    /// Recomputes the [`StatusSnapshot`] and the gauges derived from it.
    pub fn refresh_status(&self) {
        let snapshot = StatusSnapshot {
            port: self.port(),
            connections: self.clients.count(),
            running_agents: self.running_agents(),
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

    /// A one-time sign-in link for the dashboard, valid for two minutes.
    pub fn login_link(&self) -> String {
        format!(
            "http://127.0.0.1:{}/login?code={}",
            self.port(),
            self.login_codes.issue()
        )
    }

    /// A project with its current `last_seq`.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn project(&self, id: &str) -> Result<ProjectView, ProjectError> {
        let view = self.projects.get(id)?;
        Ok(self.with_seq(view))
    }

    /// Fills in a view's `last_seq` from the feed, which tracks it line by line.
    pub fn with_seq(&self, mut view: ProjectView) -> ProjectView {
        if let Some(seq) = self.feed.last_seq(&view.id) {
            view.last_seq = seq;
        }
        view
    }

    /// Pushes a JSON notification to every client.
    pub fn broadcast<P: Serialize>(&self, method: &str, params: &P) {
        self.clients
            .broadcast(Utf8Bytes::from(notification(method, params)));
    }

    /// Pushes `project.state` for a project to every client.
    pub fn broadcast_state(&self, project_id: &str, run_id: Option<&str>, reason: Option<&str>) {
        if let Ok(view) = self.projects.get(project_id) {
            self.broadcast(
                method::PROJECT_STATE,
                &StateChange {
                    project_id: project_id.to_string(),
                    state: view.state,
                    session_id: view.session_id,
                    run_id: run_id.map(str::to_string),
                    reason: reason.map(str::to_string),
                },
            );
        }
        self.refresh_status();
    }

    /// Appends a line written by the hub itself (stream `hub`) to a project's log.
    pub fn append_hub_line(&self, project_id: &str, run_id: Option<&str>, event: &Value) {
        let text = event.to_string();
        if let Err(err) = self.feed.append(
            project_id,
            Line {
                run_id,
                stream: Stream::Hub,
                text: &text,
            },
        ) {
            warn!(error = %ErrorChain(&err), project_id, "cannot store a hub line");
        }
    }

    /// `hub.status`: what the hub is and how busy it is.
    pub fn status_json(&self) -> Value {
        json!({
            "product": PRODUCT,
            "version": VERSION,
            "protocol": PROTOCOL_VERSION,
            "instance_id": self.instance_id,
            "mode": "local",
            "port": self.port(),
            "uptime_s": self.uptime_s(),
            "projects": self.projects.count(),
            "connections": self.clients.count(),
            "running_agents": self.running_agents(),
            "secret_store": self.secret_store,
            "agent_cli": self.agent_cli_json(),
            "data_dir": self.config.data_dir,
        })
    }

    fn agent_cli_json(&self) -> Value {
        match self.agent_cli() {
            Some(cli) => json!({"found": true, "path": cli.path, "version": cli.version}),
            None => json!({"found": false, "path": null, "version": null}),
        }
    }

    /// `GET /health`: status, resources, counts and agent CLI availability.
    pub fn health_json(&self) -> Value {
        let sample = self.monitor.latest();
        json!({
            "status": "ok",
            "product": PRODUCT,
            "version": VERSION,
            "uptime_s": self.uptime_s(),
            "cpu_percent": sample.cpu_percent,
            "memory": {
                "used_bytes": sample.memory_used_bytes,
                "total_bytes": sample.memory_total_bytes,
                "process_rss_bytes": sample.process_rss_bytes,
            },
            "disk": {
                "available_bytes": sample.disk_available_bytes,
                "total_bytes": sample.disk_total_bytes,
            },
            "connections": self.clients.count(),
            "projects": self.projects.count(),
            "running_agents": self.running_agents(),
            "agent_cli": self.agent_cli_json(),
            "secret_store": self.secret_store,
        })
    }

    /// The `hub.stats` params.
    pub fn stats_json(&self) -> Value {
        let sample = self.monitor.latest();
        json!({
            "uptime_s": self.uptime_s(),
            "connections": self.clients.count(),
            "projects": self.projects.count(),
            "running_agents": self.running_agents(),
            "cpu_percent": sample.cpu_percent,
            "memory_used_bytes": sample.memory_used_bytes,
            "memory_total_bytes": sample.memory_total_bytes,
            "process_rss_bytes": sample.process_rss_bytes,
        })
    }

    /// Pushes `hub.stats` every `stats_interval_s` to dashboards and subscribers, and
    /// only while there is one.
    pub(crate) async fn run_stats(self) {
        let period = Duration::from_secs(self.config.config.stats_interval_s);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            self.metrics.observe_process(&self.monitor.latest());
            let wants = |client: &crate::clients::Client| {
                client.role() == Role::Dashboard || self.feed.has_subscriptions(client.id())
            };
            if !self.clients.all().iter().any(|c| wants(c)) {
                continue;
            }
            let message = Utf8Bytes::from(notification(method::HUB_STATS, &self.stats_json()));
            self.clients.broadcast_to(message, wants);
        }
    }

    /// Applies retention hourly (and once at start).
    pub(crate) async fn run_retention(self) {
        let mut ticker = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.shutdown.cancelled() => return,
            }
            let retention = &self.config.config.retention;
            let cutoff = (retention.max_age_days > 0)
                .then(|| now_ms() - (retention.max_age_days as i64) * 86_400_000);
            let store = self.store.clone();
            let max_lines = retention.max_lines_per_project;
            match tokio::task::spawn_blocking(move || store.prune(max_lines, cutoff)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(deleted)) => info!(deleted, "message log retention applied"),
                Ok(Err(err)) => warn!(error = %ErrorChain(&err), "message log retention failed"),
                Err(_) => warn!("message log retention task panicked"),
            }
        }
    }
}

/// Takes an exclusive lock on `<data_dir>/hub.lock`, so two hubs never share a store:
/// the second would otherwise treat the first one's runs as orphans and kill them.
/// The OS drops the lock when the process dies, so a crash never leaves it stuck.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    let path = data_dir.join("hub.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Io {
            action: format!("open {}", path.display()),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StartError::DataDirBusy(data_dir.to_path_buf()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::Io {
            action: format!("lock {}", path.display()),
            source,
        }),
    }
}
