//! The hub: the composition root. [`Hub::open`] opens every part in dependency order
//! and hands each only the handles it needs; the parts never see the [`Hub`]. It also
//! builds, once, the narrow context each RPC method family gets
//! (`app::contexts`), so no handler sees the [`Hub`] either.
//!
//! ```text
//! secrets, store ─► projects, feed, clients ─► notifier (the event sink)
//!                 ─► broker ─► nats (public mode with public.broker)
//!                 ─► access (client tokens, pairings, revocations)
//!                 ─► runner (slots, CLI) ─► coordinator ─► watch
//! ```
//!
//! The desktop app, `semantest-hub serve` and a public deployment all build the same
//! [`Hub`] and differ only in configuration. [`crate::http::server::start`] binds it to
//! sockets. Lifecycles that span parts are methods here (a connection opened or
//! closed) or of the context that starts them (a project created or deleted:
//! `ProjectsCtx`), so callers never wire the parts by hand.
//! Its accessors are crate-internal; the crate's users get the few reports and
//! channels the front ends need.
//!
//! Files: this one opens the hub and holds the lifecycles; `start` says why it could
//! not start; `data_dir` keeps the data directory private and locked; `reports` makes
//! `hub.status`, `/health` and `hub.stats` (from `contexts::Reports`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::app::access::{Access, AccessParts};
use crate::app::contexts::{
    AgentsCtx, Contexts, EventsCtx, HubCtx, LoginLinks, MessagesCtx, Notices, ProjectsCtx, Reports,
    TasksCtx,
};
use crate::app::notifier::Notifier;
use crate::auth::pairing::Pairings;
use crate::auth::security::{LoginCodes, new_token, token_hash};
use crate::auth::tokens::ClientTokens;
use crate::config::{LoadedConfig, Mode};
use crate::connections::{Client, Clients, NewClient};
use crate::coordinator::watch::{Watch, WatchParts};
use crate::coordinator::worktrees::{Worktrees, WorktreesParts};
use crate::coordinator::{Coordinator, CoordinatorParts};
use crate::events::{Event, EventSink};
use crate::projects::Projects;
use crate::projects::feed::Feed;
use crate::protocol::Role;
use crate::protocol::agents::AgentKind;
use crate::protocol::error::ErrorChain;
use crate::protocol::hub::ConnectionChange;
use crate::pubsub::broker::{Broker, BrokerLimits};
use crate::pubsub::nats::{Credentials, NatsBackplane, NatsError, NatsSettings, without_user};
use crate::runner::approvals::{Approvals, ApprovalsParts};
use crate::runner::claude_cli::Clis;
use crate::runner::process::clean_orphans;
use crate::runner::slots::Slots;
use crate::runner::{Runner, RunnerParts};
use crate::storage::postgres::Database;
use crate::storage::secrets::Secrets;
use crate::storage::sqlite::{Durability, Store};
use crate::support::blocking::off_runtime;
use crate::support::metrics::Metrics;
use crate::support::monitor::Monitor;
use crate::support::timestamp::now_ms;

mod data_dir;
mod reports;
mod start;

pub use crate::events::{HubEvent, StatusSnapshot};
pub use data_dir::RUNTIME_FILE;
use data_dir::{lock_data_dir, make_private};
pub use start::StartError;
use start::{database_password, describe, path_policy, shared_database};

/// The product name in the signature and `/health`.
pub const PRODUCT: &str = "semantest-hub";
/// The hub's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The secret name of the owner token.
pub const OWNER_TOKEN: &str = "owner-token";

/// The parts behind a [`Hub`].
struct Inner {
    config: Arc<LoadedConfig>,
    store: Store,
    projects: Projects,
    feed: Feed,
    clients: Clients,
    broker: Broker,
    metrics: Arc<Metrics>,
    monitor: Monitor,
    login_codes: Arc<LoginCodes>,
    owner_hash: [u8; 32],
    /// Client tokens, pairings, revocations.
    access: Access,
    secret_store: &'static str,
    instance_id: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    notifier: Arc<Notifier>,
    coordinator: Coordinator,
    watch: Arc<Watch>,
    /// What each RPC method family sees.
    contexts: Contexts,
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

        // Opening and loading read the disk: on the blocking pool.
        let durability = if config.config.storage.lose_acknowledged_writes_on_power_cut {
            Durability::ProcessCrash
        } else {
            Durability::PowerCut
        };
        let store = off_runtime({
            let data_dir = data_dir.clone();
            move || Store::open_with(&data_dir, durability)
        })
        .await?;
        let (client_tokens, pairings, database) = match shared {
            None => (
                ClientTokens::load(store.clone()).await?,
                Pairings::new(config.config.pairing.clone(), store.clone()),
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
        let orphans = off_runtime({
            let store = store.clone();
            move || clean_orphans(&store)
        })
        .await;
        if orphans > 0 {
            warn!(orphans, "runs orphaned by a previous crash were cleaned up");
        }
        let projects = off_runtime({
            let (store, max_projects) = (store.clone(), config.config.limits.max_projects);
            let policy = path_policy(&config);
            move || Projects::load(store, max_projects, policy)
        })
        .await?;
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
            feed.clone(),
            slots.clone(),
            metrics.clone(),
        ));
        let sink: Arc<dyn EventSink> = notifier.clone();

        let clis = Clis::find(&config.config.agent);
        if clis.get(AgentKind::Claude).get().is_none() {
            warn!("Claude Code CLI not found; agent runs will be refused until it is installed");
        }
        tracker.spawn(clis.clone().probe());
        let approvals = Approvals::open(ApprovalsParts {
            policy: config.config.agent.approvals.clone(),
            store: store.clone(),
            feed: feed.clone(),
            sink: sink.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        })
        .await;
        let runner = Runner::new(RunnerParts {
            approvals,
            config: config.config.agent.clone(),
            store: store.clone(),
            feed: feed.clone(),
            projects: projects.clone(),
            metrics: metrics.clone(),
            sink: sink.clone(),
            slots,
            clis,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        });
        let parts = CoordinatorParts {
            store: store.clone(),
            config: config.config.coordination.clone(),
            runner: runner.clone(),
            projects: projects.clone(),
            sink,
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
            worktrees: Worktrees::new(WorktreesParts {
                store: store.clone(),
                projects: projects.clone(),
                root: data_dir.join("worktrees"),
                retention: Duration::from_secs(config.config.coordination.worktree_retention_s),
            }),
        };
        let coordinator = off_runtime(move || Coordinator::load(parts)).await?;
        let monitor = off_runtime({
            let data_dir = data_dir.clone();
            move || Monitor::new(&data_dir)
        })
        .await;
        let access = Access::new(AccessParts {
            tokens: client_tokens,
            pairings,
            clients: clients.clone(),
            sink: notifier.clone(),
            nats: nats.clone(),
            database,
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        });
        let config = Arc::new(config);
        let login_codes = Arc::new(LoginCodes::default());
        let watch = Arc::new(Watch::default());
        let notices = Notices(notifier.clone());
        let contexts = Contexts {
            public: config.config.public.clone(),
            hub: HubCtx {
                config: config.clone(),
                clients: clients.clone(),
                notices: notices.clone(),
                instance_id: instance_id.clone(),
                reports: Reports {
                    config: config.clone(),
                    nats,
                    metrics: metrics.clone(),
                    access: access.clone(),
                    instance_id: instance_id.clone(),
                    notices: notices.clone(),
                    started: Instant::now(),
                    projects: projects.clone(),
                    clients: clients.clone(),
                    runner: runner.clone(),
                    secret_store,
                    monitor: monitor.clone(),
                    durability: store.durability(),
                },
                login: LoginLinks {
                    notices: notices.clone(),
                    codes: login_codes.clone(),
                },
                store: store.clone(),
                access: access.clone(),
            },
            projects: ProjectsCtx {
                projects: projects.clone(),
                feed: feed.clone(),
                watch: watch.clone(),
                coordinator: coordinator.clone(),
                notices: notices.clone(),
            },
            agents: AgentsCtx {
                runner: runner.clone(),
                coordinator: coordinator.clone(),
                projects: projects.clone(),
                notices: notices.clone(),
                feed: feed.clone(),
                store: store.clone(),
            },
            messages: MessagesCtx {
                projects: projects.clone(),
                store: store.clone(),
            },
            tasks: TasksCtx {
                coordinator: coordinator.clone(),
                projects: projects.clone(),
                store: store.clone(),
                clis: runner.clis().clone(),
                notices,
                lease_s: config.config.coordination.lease_s,
                max_running_agents: config.config.limits.max_running_agents,
            },
            events: EventsCtx {
                broker: broker.clone(),
            },
            access: access.clone(),
        };
        let hub = Self {
            inner: Arc::new(Inner {
                data_dir_lock: std::sync::Mutex::new(Some(data_dir_lock)),
                config,
                store,
                projects,
                feed,
                clients,
                broker,
                metrics,
                monitor,
                login_codes,
                owner_hash,
                access,
                secret_store,
                instance_id,
                shutdown,
                tracker,
                notifier,
                coordinator,
                watch,
                contexts,
            }),
        };
        if let Some(control) = control {
            hub.inner
                .tracker
                .spawn(hub.inner.access.clone().follow_control(control));
        }
        Ok(hub)
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

    /// Client tokens, pairing requests and revocations.
    pub(crate) fn access(&self) -> &Access {
        &self.inner.access
    }

    /// The live client tokens.
    pub(crate) fn client_tokens(&self) -> &ClientTokens {
        self.inner.access.tokens()
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

    /// History plus live output.
    pub(crate) fn feed(&self) -> &Feed {
        &self.inner.feed
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Resource figures.
    pub(crate) fn monitor(&self) -> &Monitor {
        &self.inner.monitor
    }

    /// One-time dashboard sign-in codes.
    pub(crate) fn login_codes(&self) -> &LoginCodes {
        &self.inner.login_codes
    }

    /// SHA-256 of the owner token.
    pub(crate) fn owner_hash(&self) -> &[u8; 32] {
        &self.inner.owner_hash
    }

    /// `keychain` or `file`.
    pub(crate) fn secret_store(&self) -> &'static str {
        self.inner.secret_store
    }

    /// A random id for this run of the hub.
    pub(crate) fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Cancelled to shut everything down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Every long-lived task: connections, runs, timers.
    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.inner.tracker
    }

    /// The port the hub listens on (0 before it is bound).
    pub(crate) fn port(&self) -> u16 {
        self.inner.notifier.port()
    }

    /// Releases the data directory for the next hub; called at the end of shutdown.
    pub(crate) fn release_data_dir(&self) {
        if let Ok(mut lock) = self.inner.data_dir_lock.lock() {
            lock.take();
        }
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

    /// Sends an event to the notifier, for what the hub reports that the core did not
    /// see.
    fn emit(&self, event: Event) {
        self.inner.notifier.emit(event);
    }

    /// What each RPC method family sees, for the dispatcher.
    pub(crate) fn contexts(&self) -> &Contexts {
        &self.inner.contexts
    }

    /// `hub.status`, `/health` and `hub.stats`.
    pub(crate) fn reports(&self) -> &Reports {
        &self.inner.contexts.hub.reports
    }

    /// A one-time sign-in link for the dashboard, valid for two minutes.
    pub fn login_link(&self) -> String {
        self.inner.contexts.hub.login.link()
    }

    /// Registers an accepted connection, and tells the others (`hub.connection`).
    pub(crate) fn register_connection(
        &self,
        new: NewClient,
    ) -> (Arc<Client>, tokio::sync::mpsc::Receiver<Utf8Bytes>) {
        let (client, rx) = self.inner.clients.register(new);
        self.connection_changed(ConnectionChange::Opened, &client);
        (client, rx)
    }

    /// Tells the other connections that `client` opened, changed (`hub.hello`,
    /// `worker.register`) or closed.
    fn connection_changed(&self, change: ConnectionChange, client: &Client) {
        self.inner
            .contexts
            .hub
            .notices
            .connection_changed(change, client);
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
        self.connection_changed(ConnectionChange::Closed, client);
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
            self.emit(Event::Stats(self.reports().stats().await));
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
            match off_runtime(move || store.prune(max_lines, cutoff)).await {
                Ok(0) => {}
                Ok(deleted) => info!(deleted, "message log retention applied"),
                Err(err) => warn!(error = %ErrorChain(&err), "message log retention failed"),
            }
        }
    }
}
