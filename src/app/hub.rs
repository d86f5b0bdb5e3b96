//! The hub: the composition root. [`Hub::open`] opens every part in dependency order
//! and hands each only the handles it needs; the parts never see the [`Hub`].
//!
//! ```text
//! secrets, store ─► projects, feed, clients ─► notifier (the event sink)
//!                 ─► broker ─► nats (public mode with public.broker)
//!                 ─► runner (slots, CLI) ─► coordinator ─► watch
//! ```
//!
//! The desktop app, `semantest-hub serve` and a public deployment all build the same
//! [`Hub`] and differ only in configuration. [`crate::http::server::start`] binds it to
//! sockets. Lifecycles that span parts (a project created or deleted, a connection
//! opened or closed) are methods here, so callers never wire the parts by hand.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::app::notifier::Notifier;
use crate::auth::pairing::Pairings;
use crate::auth::security::{LoginCodes, new_token, token_hash};
use crate::auth::tokens::ClientTokens;
use crate::config::{LoadedConfig, Mode};
use crate::connections::{CLOSE_POLICY, Client, Clients, REVOKED_REASON};
use crate::coordinator::watch::{Watch, WatchParts};
use crate::coordinator::{Coordinator, CoordinatorParts};
use crate::events::{Event, EventSink};
use crate::projects::feed::Feed;
use crate::projects::{PathPolicy, ProjectError, Projects};
use crate::protocol::error::ErrorChain;
use crate::protocol::hub::{
    BrokerHealth, BrokerKind, BrokerState, DatabaseHealth, Disk, Health, HealthStatus, HubStatus,
    Memory, Stats,
};
use crate::protocol::{PROTOCOL_VERSION, ProjectView, Role, method, notification};
use crate::pubsub::broker::{Broker, BrokerLimits};
use crate::pubsub::nats::{
    Control, Credentials, NatsBackplane, NatsError, NatsSettings, without_user,
};
use crate::runner::claude_cli::CliSlot;
use crate::runner::process::clean_orphans;
use crate::runner::slots::Slots;
use crate::runner::{Runner, RunnerParts};
use crate::storage::postgres::{DATABASE_PASSWORD_SECRET, Database, DatabaseError};
use crate::storage::secrets::{SecretError, Secrets};
use crate::storage::sqlite::{Store, StoreError};
use crate::support::metrics::Metrics;
use crate::support::monitor::Monitor;
use crate::support::timestamp::now_ms;

/// How an instance learnt that a client token was revoked on another one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedVia {
    /// The `token_revoked` control message over the broker (NATS), within milliseconds.
    Broker,
    /// The shared database's token reload (`access::start_upkeep`), within 1 s.
    Reload,
}

impl RevokedVia {
    /// `broker` or `reload`, the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Broker => "broker",
            Self::Reload => "reload",
        }
    }
}

pub use crate::events::{HubEvent, StatusSnapshot};

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
    /// The NATS broker (`public.broker`) could not be set up.
    #[error(transparent)]
    Broker(#[from] NatsError),
    /// No port could be bound.
    #[error("cannot listen on {addrs}")]
    Bind {
        /// The addresses tried.
        addrs: String,
        /// The last OS error.
        #[source]
        source: std::io::Error,
    },
    /// `public.database` is set but the database cannot be used: unreachable, refused
    /// the credentials, or a migration failed. The hub does not start without it.
    #[error("cannot use the shared database {target} (public.database)")]
    Database {
        /// `user@host:port/dbname`, never a password.
        target: String,
        /// What failed.
        #[source]
        source: DatabaseError,
    },
    /// `public.database` is not a usable PostgreSQL URL (the reason says why).
    #[error("invalid public.database: {0}")]
    DatabaseUrl(String),
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

/// The parsed `public.database` when public mode uses the shared database. Checked
/// again here (the configuration was validated when loaded) so that a configuration
/// built some other way cannot fall back to SQLite silently.
fn shared_database(
    config: &LoadedConfig,
) -> Result<Option<(tokio_postgres::Config, crate::config::DatabaseTls)>, StartError> {
    let public = &config.config.public;
    match public.database.as_deref().filter(|_| public.enabled) {
        None => Ok(None),
        Some(url) => crate::config::database_settings(url)
            .map(Some)
            .map_err(StartError::DatabaseUrl),
    }
}

/// `user@host:port/dbname` of a database configuration, for messages (no password).
fn describe(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => String::new(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        pg.get_user().unwrap_or(""),
        pg.get_dbname().unwrap_or("")
    )
}

/// What may not be a project: the home directory and its hidden folders, and the hub's
/// own config, data and log directories (see [`PathPolicy`]).
fn path_policy(config: &LoadedConfig) -> PathPolicy {
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf());
    let config_dir = crate::config::project_dirs().map(|dirs| dirs.config_dir().to_path_buf());
    let mut hub_dirs: Vec<(&Path, &'static str)> = vec![
        (&config.data_dir, "the hub's data directory"),
        (&config.log_dir, "the hub's log directory"),
    ];
    if let Some(dir) = &config_dir {
        hub_dirs.push((dir, "the hub's config directory"));
    }
    if let Some(dir) = config.config_file.as_deref().and_then(Path::parent) {
        hub_dirs.push((dir, "the folder of the hub's config file"));
    }
    PathPolicy::new(home.as_deref(), &hub_dirs)
}

/// The PostgreSQL password: `SEMANTEST_HUB_DATABASE_PASSWORD`, else the secret store's
/// `database-password` entry, else none (trust or certificate authentication).
fn database_password(secrets: &Secrets) -> Result<Option<String>, SecretError> {
    if let Ok(password) = std::env::var(crate::config::DATABASE_PASSWORD_ENV)
        && !password.is_empty()
    {
        return Ok(Some(password));
    }
    secrets.get(DATABASE_PASSWORD_SECRET)
}

/// The parts behind a [`Hub`].
struct Inner {
    config: LoadedConfig,
    store: Store,
    projects: Projects,
    feed: Feed,
    clients: Clients,
    broker: Broker,
    /// The NATS backplane in public mode with `public.broker`; else events stay in process.
    nats: Option<Arc<NatsBackplane>>,
    metrics: Arc<Metrics>,
    monitor: Monitor,
    login_codes: LoginCodes,
    owner_hash: [u8; 32],
    client_tokens: ClientTokens,
    pairings: Pairings,
    /// The PostgreSQL database shared with other instances (`public.database`).
    database: Option<Database>,
    secret_store: &'static str,
    instance_id: String,
    started: Instant,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    notifier: Arc<Notifier>,
    runner: Runner,
    coordinator: Coordinator,
    watch: Watch,
    /// The exclusive lock on `<data_dir>/hub.lock`, released at shutdown.
    data_dir_lock: std::sync::Mutex<Option<std::fs::File>>,
}

/// The hub. Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl Hub {
    /// Opens the secret store and the database, cleans up runs orphaned by a crash,
    /// loads the projects and the task queue, and looks for the agent CLI (its version
    /// is asked in the background). Blocking calls (keychain, SQLite) run on the
    /// blocking pool.
    ///
    /// # Errors
    /// [`StartError`] when the secret store or database cannot be opened.
    pub async fn open(config: LoadedConfig) -> Result<Self, StartError> {
        let data_dir = config.data_dir.clone();
        make_private(&config)?;
        let data_dir_lock = lock_data_dir(&data_dir).await?;
        let kind = config.config.secret_store;
        let dir = data_dir.clone();
        let shared = shared_database(&config)?;
        let wants_password = shared.is_some();
        let servers = match (config.config.mode(), &config.config.public.broker) {
            (Mode::Public, Some(broker)) => {
                Some(crate::config::broker_servers(broker).map_err(NatsError::Url)?)
            }
            _ => None,
        };
        let wanted = servers.clone();
        let (secret_store, owner_hash, database_password, credentials) =
            tokio::task::spawn_blocking(move || {
                let secrets = Secrets::open(kind, &dir)?;
                let token = secrets.get_or_create(OWNER_TOKEN, new_token)?;
                let password = if wants_password {
                    database_password(&secrets)?
                } else {
                    None
                };
                let credentials = match &wanted {
                    Some(servers) => Some(Credentials::resolve(servers, &secrets)?),
                    None => None,
                };
                Ok::<_, StartError>((
                    secrets.backend_name(),
                    token_hash(&token),
                    password,
                    credentials,
                ))
            })
            .await
            .expect("secret store task panicked")?;
        info!(secret_store, "owner token ready");
        let instance_id = uuid::Uuid::new_v4().to_string();

        let store = Store::open(&data_dir)?;
        let (client_tokens, pairings, database) = match shared {
            None => (
                ClientTokens::load(store.clone())?,
                Pairings::new(config.config.pairing.clone()),
                None,
            ),
            Some((mut pg, tls)) => {
                let target = describe(&pg);
                if let Some(password) = database_password {
                    pg.password(password);
                }
                let failed = |source| StartError::Database {
                    target: target.clone(),
                    source,
                };
                let database = Database::connect(pg, &tls).await.map_err(failed)?;
                let tokens = ClientTokens::load_shared(database.clone())
                    .await
                    .map_err(failed)?;
                info!(database = %target, "client tokens and pairings are shared in PostgreSQL");
                (
                    tokens,
                    Pairings::shared(database.clone(), config.config.pairing.clone()),
                    Some(database),
                )
            }
        };
        let orphans = clean_orphans(&store);
        if orphans > 0 {
            warn!(orphans, "runs orphaned by a previous crash were cleaned up");
        }
        let projects = Projects::load(
            store.clone(),
            config.config.limits.max_projects,
            path_policy(&config),
        )?;
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let feed = Feed::new(
            store.clone(),
            projects.list().into_iter().map(|p| (p.id, p.last_seq)),
            tracker.clone(),
        );
        let clients = Clients::default();
        let metrics = Arc::new(Metrics::new());
        let broker = Broker::new(
            BrokerLimits::from_config(&config.config.limits),
            metrics.events.clone(),
        );
        let (nats, control) = match servers.zip(credentials) {
            Some((servers, credentials)) => {
                let settings = NatsSettings {
                    servers: servers.iter().map(without_user).collect::<Result<_, _>>()?,
                    prefix: config.config.public.broker_subject_prefix.clone(),
                    credentials,
                    instance_id: instance_id.clone(),
                };
                info!(broker = ?config.config.public.broker, "events go between instances through NATS");
                let (nats, control) = NatsBackplane::start(
                    settings,
                    &broker,
                    metrics.broker.clone(),
                    &tracker,
                    &shutdown,
                )
                .await?;
                (Some(nats), Some(control))
            }
            None => {
                metrics.broker.connected.set(1);
                (None, None)
            }
        };
        let slots = Slots::new(config.config.limits.max_running_agents);
        let notifier = Arc::new(Notifier::new(
            clients.clone(),
            projects.clone(),
            slots.clone(),
            metrics.clone(),
        ));
        let sink: Arc<dyn EventSink> = notifier.clone();

        let cli = CliSlot::find(config.config.agent.cli_path.as_deref());
        if cli.get().is_some() {
            tracker.spawn(cli.clone().probe());
        } else {
            warn!("Claude Code CLI not found; agent runs will be refused until it is installed");
        }
        let runner = Runner::new(RunnerParts {
            config: config.config.agent.clone(),
            store: store.clone(),
            feed: feed.clone(),
            projects: projects.clone(),
            metrics: metrics.clone(),
            sink: sink.clone(),
            slots,
            cli,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        });
        let coordinator = Coordinator::load(CoordinatorParts {
            store: store.clone(),
            config: config.config.coordination.clone(),
            runner: runner.clone(),
            projects: projects.clone(),
            sink,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        })?;
        let monitor = Monitor::new(&data_dir);
        let hub = Self {
            inner: Arc::new(Inner {
                data_dir_lock: std::sync::Mutex::new(Some(data_dir_lock)),
                config,
                store,
                projects,
                feed,
                clients,
                broker,
                nats,
                metrics,
                monitor,
                login_codes: LoginCodes::default(),
                owner_hash,
                client_tokens,
                pairings,
                database,
                secret_store,
                instance_id,
                started: Instant::now(),
                shutdown,
                tracker,
                notifier,
                runner,
                coordinator,
                watch: Watch::default(),
            }),
        };
        if let Some(control) = control {
            hub.inner.tracker.spawn(hub.clone().follow_control(control));
        }
        Ok(hub)
    }

    /// Acts on control messages from the other instances until shutdown.
    async fn follow_control(self, mut control: tokio::sync::mpsc::Receiver<Control>) {
        loop {
            let message = tokio::select! {
                message = control.recv() => message,
                () = self.inner.shutdown.cancelled() => None,
            };
            match message {
                Some(Control::TokenRevoked { id }) => {
                    self.token_revoked_elsewhere(&id, RevokedVia::Broker)
                }
                // Pairing news from the instance where it happened, for this one's admin
                // connections (the request itself lives in the shared database).
                Some(Control::PairingRequested { request }) => {
                    self.emit(Event::PairingRequested(request))
                }
                Some(Control::PairingResolved {
                    request_id,
                    outcome,
                }) => {
                    // An approval created a token elsewhere: an Origin or id this
                    // instance remembered as unknown may be live now.
                    if outcome == crate::auth::pairing::Outcome::Approved {
                        self.client_tokens().forget_misses();
                    }
                    self.emit(Event::PairingResolved {
                        request_id,
                        outcome,
                    })
                }
                None => return,
            }
        }
    }

    /// A client token was revoked on another instance of the deployment: closes this
    /// instance's connections made with it (1008, as for a local revocation) and drops
    /// it from the live tokens. `via` says how the news came; the first to bring it
    /// is counted in `semantest_hub_tokens_revoked_elsewhere_total{via}` (the reload
    /// only reports tokens it still found live, the broker path only counts when the
    /// token was still live here).
    pub fn token_revoked_elsewhere(&self, id: &str, via: RevokedVia) {
        let closed = self
            .inner
            .clients
            .close_token(id, CLOSE_POLICY, REVOKED_REASON);
        let forgotten = self.inner.client_tokens.forget(id);
        if via == RevokedVia::Reload || forgotten {
            self.inner.metrics.revoked_elsewhere(via.as_str());
        }
        info!(client_id = %id, closed, forgotten, via = via.as_str(), "token revoked on another instance");
    }

    /// Tells the other instances `control` (a revocation, pairing news); nothing
    /// without a broker between instances.
    pub(crate) fn announce(&self, control: &Control) {
        if let Some(nats) = &self.inner.nats {
            nats.send_control(control);
        }
    }

    /// `/health` `broker`.
    pub fn broker_health(&self) -> BrokerHealth {
        let metrics = &self.inner.metrics.broker;
        match &self.inner.nats {
            Some(nats) => BrokerHealth {
                kind: BrokerKind::Nats,
                state: nats.state(),
                subscriptions: metrics.subscriptions.get(),
                reconnects: metrics.reconnects.get(),
            },
            None => BrokerHealth {
                kind: BrokerKind::InProcess,
                state: BrokerState::Connected,
                subscriptions: 0,
                reconnects: 0,
            },
        }
    }

    /// Starts the background parts once the server listens on `port`: `hub.stats`,
    /// retention, the coordinator's agent workers and lease timer,
    /// and the reports watcher.
    pub(crate) fn start_background(&self, port: u16) {
        self.inner.notifier.emit(Event::Listening { port });
        let tracker = &self.inner.tracker;
        tracker.spawn(self.clone().run_stats());
        tracker.spawn(self.clone().run_retention());
        self.inner.coordinator.start();
        self.inner.watch.start(WatchParts {
            coordinator: self.inner.coordinator.clone(),
            debounce: Duration::from_millis(self.config().config.coordination.report_debounce_ms),
            projects: self
                .inner
                .projects
                .list()
                .into_iter()
                .map(|p| (p.id, p.path))
                .collect(),
            tracker: tracker.clone(),
            shutdown: self.inner.shutdown.clone(),
        });
    }

    /// The live client tokens.
    pub fn client_tokens(&self) -> &ClientTokens {
        &self.inner.client_tokens
    }

    /// Pending pairing requests.
    pub fn pairings(&self) -> &Pairings {
        &self.inner.pairings
    }

    /// Where client tokens and pairings live and whether it answers: the local SQLite
    /// database is always reachable; the shared PostgreSQL database as last seen.
    pub fn database_health(&self) -> DatabaseHealth {
        self.inner
            .database
            .as_ref()
            .map_or(DatabaseHealth::SQLITE, Database::health)
    }

    /// The shared database, when client tokens and pairings live there.
    pub(crate) fn database(&self) -> Option<&Database> {
        self.inner.database.as_ref()
    }

    /// The configuration in force.
    pub fn config(&self) -> &LoadedConfig {
        &self.inner.config
    }

    /// `Local` or `Public` (`public.enabled`): decides the listener, the access rules,
    /// the method families served, the signature's `mode` and the clients' badges.
    pub fn mode(&self) -> Mode {
        self.inner.config.config.mode()
    }

    /// The SQLite store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Registered projects.
    pub fn projects(&self) -> &Projects {
        &self.inner.projects
    }

    /// History plus live output.
    pub fn feed(&self) -> &Feed {
        &self.inner.feed
    }

    /// Connected clients.
    pub fn clients(&self) -> &Clients {
        &self.inner.clients
    }

    /// Event routing.
    pub(crate) fn broker(&self) -> &Broker {
        &self.inner.broker
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Resource figures.
    pub fn monitor(&self) -> &Monitor {
        &self.inner.monitor
    }

    /// One-time dashboard sign-in codes.
    pub fn login_codes(&self) -> &LoginCodes {
        &self.inner.login_codes
    }

    /// SHA-256 of the owner token.
    pub fn owner_hash(&self) -> &[u8; 32] {
        &self.inner.owner_hash
    }

    /// `keychain` or `file`.
    pub fn secret_store(&self) -> &'static str {
        self.inner.secret_store
    }

    /// A random id for this run of the hub.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Cancelled to shut everything down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Every long-lived task: connections, runs, timers.
    pub fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The agent runner.
    pub fn runner(&self) -> &Runner {
        &self.inner.runner
    }

    /// The task queue, workers and leases.
    pub fn coordinator(&self) -> &Coordinator {
        &self.inner.coordinator
    }

    /// The port the hub listens on (0 before it is bound).
    pub fn port(&self) -> u16 {
        self.inner.notifier.port()
    }

    /// Releases the data directory for the next hub; called at the end of shutdown.
    pub(crate) fn release_data_dir(&self) {
        if let Ok(mut lock) = self.inner.data_dir_lock.lock() {
            lock.take();
        }
    }

    /// Agent runs in progress: interactive runs plus task runs.
    pub fn running_agents(&self) -> usize {
        self.inner.runner.running()
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }

    /// Events for the user, for the desktop app's notifications. A receiver that falls
    /// more than 16 events behind skips the oldest.
    pub fn events(&self) -> broadcast::Receiver<HubEvent> {
        self.inner.notifier.desktop_events()
    }

    /// Watches the [`StatusSnapshot`], for the tray.
    pub fn status(&self) -> watch::Receiver<StatusSnapshot> {
        self.inner.notifier.status()
    }

    /// Sends an event to the notifier, for parts above the core (the server, the RPC
    /// layer) that report something the core did not see.
    pub(crate) fn emit(&self, event: Event) {
        self.inner.notifier.emit(event);
    }

    /// A one-time sign-in link for the dashboard, valid for two minutes.
    pub fn login_link(&self) -> String {
        format!(
            "http://127.0.0.1:{}/login?code={}",
            self.port(),
            self.inner.login_codes.issue()
        )
    }

    /// A project with its current `last_seq`.
    ///
    /// # Errors
    /// `NotFound`.
    pub fn project(&self, id: &str) -> Result<ProjectView, ProjectError> {
        let view = self.inner.projects.get(id)?;
        Ok(self.with_seq(view))
    }

    /// Fills in a view's `last_seq` from the feed, which tracks it line by line.
    pub fn with_seq(&self, mut view: ProjectView) -> ProjectView {
        if let Some(seq) = self.inner.feed.last_seq(&view.id) {
            view.last_seq = seq;
        }
        view
    }

    /// Registers a project: the registry, its feed, its reports watch, and
    /// `project.created`.
    ///
    /// # Errors
    /// `ProjectError` for a path that cannot be a project, or the limit.
    pub fn create_project(
        &self,
        path: &str,
        name: Option<&str>,
    ) -> Result<ProjectView, ProjectError> {
        let view = self.inner.projects.create(path, name)?;
        self.inner.feed.add_project(&view.id);
        self.inner.watch.add_project(&view.id, &view.path);
        info!(project_id = %view.id, path = %view.path, "project created");
        self.emit(Event::ProjectCreated(view.clone()));
        Ok(view)
    }

    /// Removes a project: the registry (its log and tasks go with it), its feed, its
    /// watch, its tasks and agent workers, and `project.deleted`.
    ///
    /// # Errors
    /// `NotFound`, `Busy` while it runs.
    pub fn delete_project(&self, project_id: &str) -> Result<(), ProjectError> {
        self.inner.projects.delete(project_id)?;
        self.inner.feed.remove_project(project_id);
        self.inner.watch.remove_project(project_id);
        self.inner.coordinator.project_deleted(project_id);
        info!(project_id, "project deleted");
        self.emit(Event::ProjectDeleted {
            project_id: project_id.to_string(),
        });
        Ok(())
    }

    /// A connection was accepted and registered.
    pub(crate) fn connection_opened(&self) {
        self.inner.metrics.connections_accepted.inc();
        self.emit(Event::ConnectionsChanged);
    }

    /// A request arrived on a connection: a worker's lease is renewed.
    pub(crate) fn request_from(&self, client: &Client) {
        if client.role() == Role::Worker {
            self.inner.coordinator.seen(client.id());
        }
    }

    /// A connection closed: its subscriptions, its worker, its registry entry.
    pub(crate) fn connection_closed(&self, client: &Arc<Client>) {
        self.inner.feed.unsubscribe_all(client.id());
        self.inner.broker.disconnect(client.id());
        self.inner.coordinator.disconnected(client.id());
        self.inner.clients.remove(client);
        self.emit(Event::ConnectionsChanged);
    }

    /// `hub.status`: what the hub is and how busy it is.
    pub fn status_report(&self) -> HubStatus {
        HubStatus {
            product: PRODUCT,
            version: VERSION,
            protocol: PROTOCOL_VERSION,
            instance_id: self.inner.instance_id.clone(),
            mode: self.mode().as_str(),
            port: self.port(),
            uptime_s: self.uptime_s(),
            projects: self.inner.projects.count(),
            connections: self.inner.clients.count(),
            running_agents: self.running_agents(),
            secret_store: self.inner.secret_store,
            agent_cli: self.inner.runner.cli().report(),
            data_dir: Some(self.inner.config.data_dir.clone()),
        }
    }

    /// `GET /health`: status, resources, counts, agent CLI availability and the broker;
    /// `status` is `unhealthy` while the broker between instances is lost.
    pub fn health(&self) -> Health {
        let sample = self.inner.monitor.latest();
        let database = self.database_health();
        let broker = self.broker_health();
        let status = if database.healthy() && broker.healthy() {
            HealthStatus::Ok
        } else {
            HealthStatus::Unhealthy
        };
        Health {
            status,
            product: PRODUCT,
            version: VERSION,
            uptime_s: self.uptime_s(),
            cpu_percent: sample.cpu_percent,
            memory: Memory {
                used_bytes: sample.memory_used_bytes,
                total_bytes: sample.memory_total_bytes,
                process_rss_bytes: sample.process_rss_bytes,
            },
            disk: Disk {
                available_bytes: sample.disk_available_bytes,
                total_bytes: sample.disk_total_bytes,
            },
            connections: self.inner.clients.count(),
            projects: self.inner.projects.count(),
            running_agents: self.running_agents(),
            agent_cli: self.inner.runner.cli().report(),
            secret_store: self.inner.secret_store,
            database,
            broker,
        }
    }

    /// The `hub.stats` params.
    pub fn stats(&self) -> Stats {
        let sample = self.inner.monitor.latest();
        Stats {
            uptime_s: self.uptime_s(),
            connections: self.inner.clients.count(),
            projects: self.inner.projects.count(),
            running_agents: self.running_agents(),
            cpu_percent: sample.cpu_percent,
            memory_used_bytes: sample.memory_used_bytes,
            memory_total_bytes: sample.memory_total_bytes,
            process_rss_bytes: sample.process_rss_bytes,
        }
    }

    /// Pushes `hub.stats` every `stats_interval_s` to dashboards and subscribers, and
    /// only while there is one.
    async fn run_stats(self) {
        let period = Duration::from_secs(self.config().config.stats_interval_s);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.shutdown.cancelled() => return,
            }
            // `/metrics` samples the process figures itself when it is scraped.
            let wants = |client: &Client| {
                client.role() == Role::Dashboard || self.inner.feed.has_subscriptions(client.id())
            };
            if !self.inner.clients.all().iter().any(|c| wants(c)) {
                continue;
            }
            let message = Utf8Bytes::from(notification(method::HUB_STATS, &self.stats()));
            self.inner.clients.broadcast_to(message, wants);
        }
    }

    /// Applies retention hourly (and once at start).
    async fn run_retention(self) {
        let mut ticker = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = self.inner.shutdown.cancelled() => return,
            }
            let retention = &self.config().config.retention;
            let cutoff = (retention.max_age_days > 0)
                .then(|| now_ms() - (retention.max_age_days as i64) * 86_400_000);
            let store = self.inner.store.clone();
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
/// How long [`lock_data_dir`] waits for the lock before it reports the data directory as
/// busy: long enough for a hub that is stopping (or a child process that still holds a
/// copy of the descriptor between fork and exec) to let go, short enough that a second
/// hub started by mistake is told at once.
const DATA_DIR_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Creates the data directory with mode 0700, and takes group and other permissions
/// away from what an older version or a wider umask left there: the directory, the
/// database with its WAL, shared-memory and journal files, the lock, the runtime file
/// and the secrets folder; also the app's own config folder when the config file in use
/// is in it. Each repair is logged. Only the hub's own entries are touched, so a data
/// directory pointed at a shared place does not have others' files changed.
fn make_private(config: &LoadedConfig) -> Result<(), StartError> {
    use crate::support::file_modes::{create_private_dir, restrict};
    let data_dir = &config.data_dir;
    create_private_dir(data_dir).map_err(|source| StartError::Io {
        action: format!("create data directory {}", data_dir.display()),
        source,
    })?;
    let mut targets: Vec<(std::path::PathBuf, bool)> = vec![(data_dir.clone(), false)];
    for name in [
        crate::storage::sqlite::DATABASE_FILE,
        &format!("{}-wal", crate::storage::sqlite::DATABASE_FILE),
        &format!("{}-shm", crate::storage::sqlite::DATABASE_FILE),
        &format!("{}-journal", crate::storage::sqlite::DATABASE_FILE),
        LOCK_FILE,
        RUNTIME_FILE,
    ] {
        targets.push((data_dir.join(name), false));
    }
    targets.push((data_dir.join(crate::storage::secrets::SECRETS_DIR), true));
    let app_config_dir = crate::config::project_dirs().map(|dirs| dirs.config_dir().to_path_buf());
    if let (Some(file), Some(dir)) = (&config.config_file, app_config_dir)
        && file.parent() == Some(dir.as_path())
    {
        targets.push((dir, true));
    }
    for (path, recursive) in targets {
        let repaired = restrict(&path, recursive).map_err(|source| StartError::Io {
            action: format!("restrict the permissions of {}", path.display()),
            source,
        })?;
        for fixed in repaired {
            warn!(
                path = %fixed.path.display(),
                from = format_args!("{:o}", fixed.from),
                to = format_args!("{:o}", fixed.to),
                "repaired permissions: other users could read this; now owner only"
            );
        }
    }
    Ok(())
}

/// The name of the runtime file in the data directory that tells local clients where
/// the hub listens and where it keeps the owner token:
/// `{"url", "port", "pid", "instance_id", "secret_store"}` (`keychain` or `file`), mode 0600. The server
/// writes it once it listens and removes it at shutdown.
pub const RUNTIME_FILE: &str = "server.json";

/// The data-directory lock file, held for the hub's lifetime.
const LOCK_FILE: &str = "hub.lock";

async fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, StartError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .mode(crate::support::file_modes::FILE_MODE)
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Io {
            action: format!("open {}", path.display()),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + DATA_DIR_LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StartError::DataDirBusy(data_dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(StartError::Io {
                    action: format!("lock {}", path.display()),
                    source,
                });
            }
        }
    }
}
