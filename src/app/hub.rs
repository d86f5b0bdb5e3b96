//! The hub: the composition root. `Hub::open` opens every part in dependency order
//! and hands each only the handles it needs; the parts never see the [`Hub`]. It also
//! builds, once, the narrow context each RPC method family gets (`app::contexts`) and
//! each group of HTTP routes gets (`app::edge`), so no handler sees the [`Hub`] either.
//! It starts the background tasks and shuts everything down (`Hub::stop`).
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
//! sockets. Lifecycles that span parts are methods of the context that starts them (a
//! project created or deleted: `ProjectsCtx`; a connection opened or closed:
//! `ConnectionCtx`), so callers never wire the parts by hand.
//! It has no accessors for handlers to reach past their context: the crate's users get
//! the few reports and channels the front ends and the tests read.
//!
//! Files: this one opens, starts and stops the hub; `start` says why it could not
//! start; `data_dir` keeps the data directory private and locked, and writes the
//! runtime file; `reports` makes
//! `hub.status`, `/health` and `hub.stats` (from `contexts::Reports`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::app::access::{Access, AccessParts};
use crate::app::contexts::{
    AgentsCtx, Contexts, EventsCtx, HubCtx, LoginLinks, MessagesCtx, Notices, ProjectsCtx, Reports,
    TasksCtx,
};
use crate::app::edge::{
    AuthCtx, ConnectionCtx, DashboardCtx, DiscoveryCtx, Edge, GateCtx, MonitoringCtx, PairingCtx,
};
use crate::app::notifier::Notifier;
use crate::app::sessions::Sessions;
use crate::auth::pairing::Pairings;
use crate::auth::security::{LoginCodes, new_token, token_hash};
use crate::auth::tokens::ClientTokens;
use crate::config::{LoadedConfig, Mode};
use crate::connections::Clients;
use crate::coordinator::watch::{Watch, WatchParts};
use crate::coordinator::worktrees::{Worktrees, WorktreesParts};
use crate::coordinator::{Coordinator, CoordinatorParts};
use crate::events::{Event, EventSink};
use crate::projects::Projects;
use crate::projects::feed::Feed;
use crate::protocol::agents::AgentKind;
use crate::protocol::error::ErrorChain;
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

/// The parts behind a [`Hub`]: what it starts and stops, and the contexts it hands out.
struct Inner {
    config: Arc<LoadedConfig>,
    store: Store,
    projects: Projects,
    metrics: Arc<Metrics>,
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
    contexts: Arc<Contexts>,
    /// What each group of HTTP routes sees.
    edge: Edge,
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
    pub(crate) async fn open(config: LoadedConfig) -> Result<Self, StartError> {
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
        let sessions = Sessions::new(
            store.clone(),
            access.clone(),
            config.config.dashboard.session_lifetime_s,
        );
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
                sessions: sessions.clone(),
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
                notices: notices.clone(),
                lease_s: config.config.coordination.lease_s,
                max_running_agents: config.config.limits.max_running_agents,
            },
            events: EventsCtx {
                broker: broker.clone(),
            },
            access: access.clone(),
        };
        let contexts = Arc::new(contexts);
        let mode = config.config.mode();
        let edge = Edge {
            connections: ConnectionCtx {
                contexts: contexts.clone(),
                metrics: metrics.clone(),
                limits: config.config.limits.clone(),
                mode,
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                access: access.clone(),
                clients,
                feed,
                broker,
                coordinator: coordinator.clone(),
                notices,
            },
            auth: AuthCtx {
                owner_hash,
                access: access.clone(),
                sessions: sessions.clone(),
                mode,
            },
            gate: GateCtx {
                metrics: metrics.clone(),
                access: access.clone(),
            },
            pairing: PairingCtx {
                access: access.clone(),
                metrics: metrics.clone(),
                serves: config.config.public.serves_pairing(),
                request_ttl_s: config.config.pairing.request_ttl_s,
            },
            dashboard: DashboardCtx {
                sessions,
                codes: login_codes,
            },
            discovery: DiscoveryCtx {
                mode,
                instance_id: instance_id.clone(),
                public: config.config.public.clone(),
                owner_hash,
                access: access.clone(),
            },
            monitoring: MonitoringCtx {
                reports: contexts.hub.reports.clone(),
                metrics: metrics.clone(),
                monitor,
                store: store.clone(),
            },
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        let hub = Self {
            inner: Arc::new(Inner {
                data_dir_lock: std::sync::Mutex::new(Some(data_dir_lock)),
                config,
                store,
                projects,
                metrics,
                access,
                secret_store,
                instance_id,
                shutdown,
                tracker,
                notifier,
                coordinator,
                watch,
                contexts,
                edge,
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
        self.inner.access.start_upkeep();
    }

    /// What each group of HTTP routes sees, for the server.
    pub(crate) fn edge(&self) -> &Edge {
        &self.inner.edge
    }

    /// The configuration in force.
    pub fn config(&self) -> &LoadedConfig {
        &self.inner.config
    }

    /// `Local` or `Public` (`public.enabled`): decides the listener, the access rules,
    /// the method families served, the signature's `mode` and the clients' badges.
    pub(crate) fn mode(&self) -> Mode {
        self.inner.config.config.mode()
    }

    /// The SQLite store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Cancelled to shut everything down.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// The port the hub listens on (0 before it is bound).
    pub(crate) fn port(&self) -> u16 {
        self.inner.notifier.port()
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

    /// A one-time sign-in link for the dashboard, valid for two minutes.
    pub fn login_link(&self) -> String {
        self.inner.contexts.hub.login.link()
    }

    /// Shuts down gracefully: cancels everything (connections close with 1001, agent
    /// runs are killed), waits up to `limits.shutdown_grace_s` for every task and for
    /// `serving` (the listeners), then checkpoints and closes the store, removes the
    /// runtime file and releases the data directory for the next hub.
    pub(crate) async fn stop(&self, serving: impl Future<Output = ()>) {
        info!("shutting down");
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let grace = Duration::from_secs(self.config().config.limits.shutdown_grace_s);
        let wait_all = async {
            self.inner.tracker.wait().await;
            serving.await;
        };
        if tokio::time::timeout(grace, wait_all).await.is_err() {
            warn!(
                grace_s = grace.as_secs(),
                "some tasks did not finish within the shutdown grace period"
            );
        }
        let store = self.inner.store.clone();
        let checkpoint = off_runtime(move || {
            let checkpoint = store.checkpoint();
            store.close();
            checkpoint
        })
        .await;
        if let Err(err) = checkpoint {
            warn!(error = %ErrorChain(&err), "store checkpoint failed");
        }
        let _ = tokio::fs::remove_file(self.config().data_dir.join(RUNTIME_FILE)).await;
        if let Ok(mut lock) = self.inner.data_dir_lock.lock() {
            lock.take();
        }
        info!("stopped");
    }

    /// Sends an event to the notifier, for what the hub reports that the core did not
    /// see.
    fn emit(&self, event: Event) {
        self.inner.notifier.emit(event);
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
            self.emit(Event::Stats(self.inner.contexts.hub.reports.stats().await));
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
