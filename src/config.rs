//! Configuration: every setting in one struct, layered and validated at start.
//!
//! Layers, later ones winning: built-in defaults, the TOML file (`config.toml` in the
//! platform config directory, or `--config FILE`), `SEMANTEST_HUB_*` environment variables
//! (nested keys joined with `__`, e.g. `SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS=50`), then
//! command-line flags. [`LoadedConfig::sources`] tells where each value came from, for the
//! dashboard's settings view.
//!
//! Directories follow the platform conventions through the `directories` crate: XDG base
//! directories on Linux (`~/.config/semantest-hub`, `~/.local/share/semantest-hub`,
//! `~/.local/state/semantest-hub` for logs) and `~/Library/Application Support/dev.semantest.semantest-hub`
//! on macOS (logs in `~/Library/Logs/semantest-hub`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod backends;
mod public;
mod redact;

pub use backends::{
    DATABASE_PASSWORD_ENV, DEFAULT_SUBJECT_PREFIX, DatabaseTls, broker_servers,
    check_subject_prefix, database_settings, database_url,
};
pub use public::{Family, Mode, ProxyHeader, PublicConfig, PublicOverrides};

/// The default local port, the one the browser extension probes first.
pub const DEFAULT_PORT: u16 = 3003;
/// The last port tried when the ones before it are taken (3003–3012).
pub const LAST_FALLBACK_PORT: u16 = 3012;

/// Where secrets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SecretStoreKind {
    /// The OS keychain when reachable, else a mode-0600 file (logged and shown in `/health`).
    #[default]
    Auto,
    /// The OS keychain only: macOS Keychain or the Secret Service on Linux.
    Keychain,
    /// A mode-0600 file in the data directory.
    File,
}

/// Every setting of the hub.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP port. `None`: 3003, or the next free one up to 3012. `0`: any free port.
    pub port: Option<u16>,
    /// Addresses to listen on; local mode allows loopback addresses only.
    pub bind: Vec<IpAddr>,
    /// Data directory (SQLite store, secret file). Default: the platform data directory.
    pub data_dir: Option<PathBuf>,
    /// Log directory. Default: the platform log directory.
    pub log_dir: Option<PathBuf>,
    /// Where the owner token is kept.
    pub secret_store: SecretStoreKind,
    /// `tracing` filter, e.g. `info` or `semantest_hub=debug`.
    pub log_level: String,
    /// Extra origins allowed to open the WebSocket, matched exactly
    /// (`chrome-extension://<id>`, `moz-extension://<uuid>`).
    pub allowed_origins: Vec<String>,
    /// Connection and message limits.
    pub limits: Limits,
    /// The agent runner.
    pub agent: AgentConfig,
    /// Message log retention.
    pub retention: Retention,
    /// Seconds between `hub.stats` notifications.
    pub stats_interval_s: u64,
    /// The task queue, leases and the reports folder watcher.
    pub coordination: CoordinationConfig,
    /// Public mode: remote clients over TLS or a trusted proxy.
    pub public: PublicConfig,
    /// Pairing requests from browser extensions (docs/security.md).
    pub pairing: PairingConfig,
    /// The dashboard's sign-in sessions (docs/security.md).
    pub dashboard: DashboardConfig,
}

/// The dashboard's sign-in sessions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Seconds a session lives after its last use (sign-in, a WebSocket opened or closed
    /// with it): a sliding lifetime, so a dashboard in use stays signed in and one left
    /// alone that long must sign in again.
    pub session_lifetime_s: u64,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            // A week: a dashboard used on weekdays stays signed in; a forgotten one does not.
            session_lifetime_s: 7 * 24 * 3600,
        }
    }
}

/// Limits on pairing requests (`POST /pair`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PairingConfig {
    /// Seconds a request waits for the user's decision before it expires; an approved
    /// token waits as long again for its claim.
    pub request_ttl_s: u64,
    /// Requests pending at once, from everyone.
    pub max_pending: usize,
    /// Requests pending at once from one peer address.
    pub max_pending_per_address: usize,
}

impl Default for PairingConfig {
    fn default() -> Self {
        Self {
            request_ttl_s: 120,
            max_pending: 5,
            max_pending_per_address: 2,
        }
    }
}

/// Connection and message limits (DESIGN.md, "Limits").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest incoming WebSocket message, in bytes. Larger ones close with 1009.
    pub max_message_bytes: usize,
    /// Simultaneous WebSocket connections; more are refused with 503 before the upgrade.
    pub max_connections: usize,
    /// Registered projects.
    pub max_projects: usize,
    /// Agent runs at the same time across all projects.
    pub max_running_agents: usize,
    /// Messages queued for one connection. Output lines that do not fit are replayed
    /// from the store; other messages wait up to `write_timeout_s`, then 1008.
    pub outgoing_queue: usize,
    /// Sustained requests per second per connection.
    pub rate_limit_per_s: u32,
    /// Burst of requests per connection above the sustained rate.
    pub rate_limit_burst: u32,
    /// Seconds between pings (RFC 6455 section 5.5.2).
    pub ping_interval_s: u64,
    /// A connection that sends nothing (not even a pong) for this long is closed.
    pub idle_timeout_s: u64,
    /// Seconds an HTTP client may take to send a request's headers, counted from the
    /// moment the hub waits for them: on a new connection and again after each response
    /// of a keep-alive connection, so it is also how long an idle keep-alive connection
    /// stays open. A client that trickles its headers (slow-loris) is closed after it.
    /// Every listener, local and public; an upgraded WebSocket is outside it.
    pub header_timeout_s: u64,
    /// Seconds a single write to a client may take before the client counts as stuck.
    pub write_timeout_s: u64,
    /// Seconds shutdown waits for connections and runs before giving up on them.
    pub shutdown_grace_s: u64,
    /// Event type patterns one connection may subscribe to (`TOO_MANY_SUBSCRIPTIONS`).
    pub max_subscriptions: usize,
    /// Largest event payload, as JSON, in bytes (`TOO_LARGE`); `max_message_bytes` caps
    /// it.
    pub max_event_payload_bytes: usize,
    /// Sustained events per second one connection may publish (`event.publish` and
    /// `event.request`), with a burst of one second's worth (`RATE_LIMITED`). Publishes
    /// also count against `rate_limit_per_s`, like every request.
    pub event_rate_per_s: u32,
    /// Events a subscriber may lose in a row to a full queue before it is closed with
    /// 1008.
    pub max_dropped_events: u64,
    /// `event.request`s one connection may wait on at once (`LIMIT_REACHED`).
    pub max_pending_requests: usize,
    /// `event.publish` `idempotency_key`s the hub remembers per client identity (token,
    /// or the owner), each for 10 minutes; past this the oldest is forgotten first.
    pub max_idempotency_keys: usize,
}

/// The agent runner's settings (DESIGN.md, "The agent runner").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// The `claude` executable. Default: found on PATH or in the usual install locations.
    pub cli_path: Option<PathBuf>,
    /// `--permission-mode` (`default`, `acceptEdits`, `plan`, `bypassPermissions`).
    pub permission_mode: String,
    /// `--model`; `None` lets the CLI choose.
    pub model: Option<String>,
    /// Default run timeout in seconds.
    pub timeout_s: u64,
    /// Largest timeout a client may ask for, in seconds.
    pub max_timeout_s: u64,
    /// Milliseconds between SIGINT, SIGTERM and SIGKILL when stopping a run.
    pub kill_grace_ms: u64,
    /// Longest output line kept whole, in bytes; longer lines are cut and marked.
    pub max_line_bytes: usize,
    /// Extra environment variables for agent runs, e.g. `ANTHROPIC_BASE_URL` or
    /// `CLAUDE_CONFIG_DIR`; the hub's own environment is inherited as well.
    pub env: std::collections::BTreeMap<String, String>,
}

/// Retention of the message log, replacing file rotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Lines kept per project (the newest); 0 keeps all.
    pub max_lines_per_project: u64,
    /// Days a line is kept; 0 keeps lines forever.
    pub max_age_days: u64,
}

/// The coordinator's settings (DESIGN.md, "The coordinator"; docs/coordination.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinationConfig {
    /// Seconds an assignment lasts without a heartbeat or any other request from its
    /// worker; the task then goes back to the queue.
    pub lease_s: u64,
    /// Attempts a task gets; after this many failed attempts it fails for good.
    pub max_attempts: u32,
    /// Milliseconds the reports folder must be quiet before a file is read.
    pub report_debounce_ms: u64,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            lease_s: 60,
            max_attempts: 3,
            report_debounce_ms: 300,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: None,
            bind: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ],
            data_dir: None,
            log_dir: None,
            secret_store: SecretStoreKind::Auto,
            log_level: "info".into(),
            allowed_origins: Vec::new(),
            limits: Limits::default(),
            agent: AgentConfig::default(),
            retention: Retention::default(),
            stats_interval_s: 10,
            coordination: CoordinationConfig::default(),
            pairing: PairingConfig::default(),
            dashboard: DashboardConfig::default(),
            public: PublicConfig::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_connections: 100,
            max_projects: 100,
            max_running_agents: 8,
            outgoing_queue: 1024,
            rate_limit_per_s: 50,
            rate_limit_burst: 200,
            ping_interval_s: 30,
            idle_timeout_s: 300,
            header_timeout_s: 30,
            write_timeout_s: 10,
            shutdown_grace_s: 10,
            max_subscriptions: 100,
            max_event_payload_bytes: 256 * 1024,
            event_rate_per_s: 20_000,
            max_dropped_events: 10_000,
            max_pending_requests: 100,
            max_idempotency_keys: 1024,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            cli_path: None,
            permission_mode: "acceptEdits".into(),
            model: None,
            timeout_s: 30 * 60,
            max_timeout_s: 4 * 60 * 60,
            kill_grace_ms: 3000,
            max_line_bytes: 16 * 1024 * 1024,
            env: Default::default(),
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_lines_per_project: 100_000,
            max_age_days: 30,
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    /// `--port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `--bind`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Vec<IpAddr>>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--secret-store`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_store: Option<SecretStoreKind>,
    /// `--log-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `--public` and its flags.
    #[serde(skip_serializing_if = "PublicOverrides::is_empty")]
    pub public: PublicOverrides,
}

/// `SEMANTEST_HUB_*` variables that are not settings, so [`Config::load`] lets them be:
/// secrets the hub reads by itself (docs/configuration.md, `[public]`: the PostgreSQL
/// password and the NATS credentials), the owner token for scripts and the SDK's example (clients/js/README.md), and
/// the binaries and fixtures the test suites take (tests/browser/README.md). Any other
/// variable with the prefix must name a setting.
pub const NON_SETTING_ENV_VARS: &[&str] = &[
    DATABASE_PASSWORD_ENV,
    "SEMANTEST_HUB_BROKER_TOKEN",
    "SEMANTEST_HUB_BROKER_PASSWORD",
    "SEMANTEST_HUB_TOKEN",
    "SEMANTEST_HUB_BIN",
    "SEMANTEST_HUB_PUBLIC_BIN",
    "SEMANTEST_HUB_FIXTURES",
];

/// The top-level keys of [`Config`], lower case (`port`, `limits`, ...).
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The variables of the top-level keys, for messages: `SEMANTEST_HUB_PORT, …,
/// SEMANTEST_HUB_LIMITS__<key>, …`.
fn setting_variables() -> String {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                let name = format!("{ENV_PREFIX}{}", key.to_ascii_uppercase());
                if value.is_object() {
                    format!("{name}__<key>")
                } else {
                    name
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

/// The variables among `names` that start with [`ENV_PREFIX`] (in any case, as figment
/// matches it) but name neither a key of `keys` (before the first `__`) nor one of
/// [`NON_SETTING_ENV_VARS`], sorted.
fn unknown_env_vars(names: impl IntoIterator<Item = String>, keys: &[String]) -> Vec<String> {
    let mut unknown: Vec<String> = names
        .into_iter()
        .filter(|name| {
            let Some(rest) = name
                .get(..ENV_PREFIX.len())
                .filter(|head| head.eq_ignore_ascii_case(ENV_PREFIX))
                .map(|_| &name[ENV_PREFIX.len()..])
            else {
                return false;
            };
            let top = rest.split("__").next().unwrap_or_default();
            !keys.iter().any(|key| key.eq_ignore_ascii_case(top))
                && !NON_SETTING_ENV_VARS
                    .iter()
                    .any(|other| other.eq_ignore_ascii_case(name))
        })
        .collect();
    unknown.sort();
    unknown
}

/// A configuration error, reported at start with the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read or has a value of the wrong type.
    #[error("invalid configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// A value is out of its allowed range.
    #[error("invalid configuration: {key}: {reason}")]
    Invalid {
        /// The dotted key, e.g. `limits.max_connections`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A `SEMANTEST_HUB_*` environment variable names no setting (and is not one of
    /// [`NON_SETTING_ENV_VARS`]).
    #[error(
        "invalid configuration: environment variable {names} is not a setting; a setting's variable is one of {expected} (docs/configuration.md); correct or unset it"
    )]
    UnknownEnv {
        /// The offending variables, comma-separated.
        names: String,
        /// The variables of the top-level keys, comma-separated, sections as
        /// `SEMANTEST_HUB_LIMITS__<key>`.
        expected: String,
    },
    /// The platform gave no home directory to derive default directories from.
    #[error("cannot determine the home directory; pass --data-dir")]
    NoHome,
}

/// A validated configuration with its resolved directories and value sources.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The settings.
    pub config: Config,
    /// The data directory in force.
    pub data_dir: PathBuf,
    /// The log directory in force.
    pub log_dir: PathBuf,
    /// The config file that was read, if one existed.
    pub config_file: Option<PathBuf>,
    /// `(dotted key, value, source)` for every leaf value; source is `default`, `file`,
    /// `env` or `flag`.
    pub sources: Vec<(String, serde_json::Value, &'static str)>,
}

/// The prefix of every environment variable the hub reads: its settings
/// (`SEMANTEST_HUB_<SECTION>__<KEY>`) and its credentials (such as
/// `SEMANTEST_HUB_DATABASE_PASSWORD`). Agent processes get none of them.
pub const ENV_PREFIX: &str = "SEMANTEST_HUB_";

/// The platform directories of the app (`directories::ProjectDirs`).
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "semantest", "semantest-hub")
}

/// The default config file: `<platform config dir>/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("config.toml"))
}

/// The default config file of `serve --public`: `<platform config dir>/public.toml`.
pub fn default_public_config_file() -> Option<PathBuf> {
    project_dirs().map(|dirs| dirs.config_dir().join("public.toml"))
}

impl Config {
    /// `Public` when `public.enabled`, else `Local`.
    pub fn mode(&self) -> Mode {
        self.public.mode()
    }

    /// Loads defaults, then `config_file` (or the default file when it exists), then the
    /// environment, then `overrides`, and validates the result.
    ///
    /// # Errors
    /// [`ConfigError::Load`] for unreadable files, unknown keys or wrong types;
    /// [`ConfigError::Invalid`] for values out of range.
    pub fn load(
        config_file: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<LoadedConfig, ConfigError> {
        // Every `SEMANTEST_HUB_*` variable must name a setting, or be one of the few the
        // project uses for something else: a typo (`SEMANTEST_HUB_PROT`) stops the hub
        // instead of leaving the setting at its default. Figment reports unknown keys
        // inside a section (`SEMANTEST_HUB_LIMITS__MAX_CONECTIONS`) by itself.
        let keys = top_level_keys();
        let unknown = unknown_env_vars(
            std::env::vars_os().map(|(name, _)| name.to_string_lossy().into_owned()),
            &keys,
        );
        if !unknown.is_empty() {
            return Err(ConfigError::UnknownEnv {
                names: unknown.join(", "),
                expected: setting_variables(),
            });
        }
        let env = Env::prefixed(ENV_PREFIX).split("__").filter(move |key| {
            let top = key.as_str().split('.').next().unwrap_or_default();
            keys.iter().any(|known| known.eq_ignore_ascii_case(top))
        });
        Self::load_with_env(config_file, overrides, env)
    }

    fn load_with_env(
        config_file: Option<&Path>,
        overrides: &Overrides,
        env: Env,
    ) -> Result<LoadedConfig, ConfigError> {
        let file = match config_file {
            Some(path) => Some(path.to_path_buf()),
            // `--public` reads its own file, so settings for a public hub never leak into
            // the desktop hub's `config.toml`, nor the other way round.
            None if overrides.public.enabled == Some(true) => {
                default_public_config_file().filter(|path| path.exists())
            }
            None => default_config_file().filter(|path| path.exists()),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            // An explicitly named file must exist; figment would treat it as empty.
            if config_file.is_some() && !path.exists() {
                return Err(ConfigError::Invalid {
                    key: "config",
                    reason: format!("{} does not exist", path.display()),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        let figment = figment
            .merge(env)
            .merge(FlagLayer(Serialized::defaults(overrides)));
        let config: Config = figment
            .extract()
            .map_err(|err| ConfigError::Load(Box::new(err)))?;
        config.validate()?;
        let dirs = project_dirs();
        // A public hub on the same machine as the desktop one gets its own default
        // directories (`semantest-hub-public` beside `semantest-hub`), so the two never
        // share a database, an owner token or the data-directory lock.
        let mode = config.mode();
        let data_dir = match &config.data_dir {
            Some(dir) => absolute(dir),
            None => public_sibling(dirs.as_ref().ok_or(ConfigError::NoHome)?.data_dir(), mode),
        };
        let log_dir = match (&config.log_dir, &config.data_dir) {
            (Some(dir), _) => absolute(dir),
            // A custom data directory keeps its logs beside it, so tests and portable
            // installs stay self-contained.
            (None, Some(_)) => data_dir.join("logs"),
            (None, None) => public_sibling(&default_log_dir().ok_or(ConfigError::NoHome)?, mode),
        };
        let sources = value_sources(&figment, &config);
        Ok(LoadedConfig {
            config,
            data_dir,
            log_dir,
            config_file: file,
            sources,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.bind.is_empty() {
            return invalid("bind", "at least one address is required");
        }
        if let Some(addr) = self.bind.iter().find(|addr| !addr.is_loopback()) {
            return Err(ConfigError::Invalid {
                key: "bind",
                reason: format!(
                    "{addr} is not a loopback address; local mode listens on loopback only"
                ),
            });
        }
        if self.port.is_some_and(|p| p != 0 && p < 1024) {
            return invalid("port", "use 0 or a port from 1024 to 65535");
        }
        let limits = &self.limits;
        if !(1024..=64 * 1024 * 1024).contains(&limits.max_message_bytes) {
            return invalid(
                "limits.max_message_bytes",
                "must be between 1 KiB and 64 MiB",
            );
        }
        for (key, value) in [
            ("limits.max_connections", limits.max_connections),
            ("limits.max_projects", limits.max_projects),
            ("limits.max_running_agents", limits.max_running_agents),
            ("limits.outgoing_queue", limits.outgoing_queue),
            ("limits.max_subscriptions", limits.max_subscriptions),
            (
                "limits.max_event_payload_bytes",
                limits.max_event_payload_bytes,
            ),
            ("limits.max_pending_requests", limits.max_pending_requests),
            ("limits.max_idempotency_keys", limits.max_idempotency_keys),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            (
                "limits.rate_limit_per_s",
                u64::from(limits.rate_limit_per_s),
            ),
            (
                "limits.rate_limit_burst",
                u64::from(limits.rate_limit_burst),
            ),
            ("limits.ping_interval_s", limits.ping_interval_s),
            ("limits.idle_timeout_s", limits.idle_timeout_s),
            ("limits.write_timeout_s", limits.write_timeout_s),
            (
                "limits.event_rate_per_s",
                u64::from(limits.event_rate_per_s),
            ),
            ("limits.max_dropped_events", limits.max_dropped_events),
            ("agent.timeout_s", self.agent.timeout_s),
            ("agent.max_timeout_s", self.agent.max_timeout_s),
            ("stats_interval_s", self.stats_interval_s),
            ("coordination.lease_s", self.coordination.lease_s),
            (
                "coordination.max_attempts",
                u64::from(self.coordination.max_attempts),
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".into(),
                });
            }
        }
        if !(1..=300).contains(&limits.header_timeout_s) {
            return Err(ConfigError::Invalid {
                key: "limits.header_timeout_s",
                reason: "must be between 1 and 300 seconds".into(),
            });
        }
        if limits.idle_timeout_s <= limits.ping_interval_s {
            return invalid(
                "limits.idle_timeout_s",
                "must be longer than limits.ping_interval_s, or live clients would be dropped",
            );
        }
        if !(10..=60_000).contains(&self.coordination.report_debounce_ms) {
            return invalid(
                "coordination.report_debounce_ms",
                "must be between 10 and 60000",
            );
        }
        let pairing = &self.pairing;
        if !(1..=3600).contains(&pairing.request_ttl_s) {
            return invalid("pairing.request_ttl_s", "must be between 1 and 3600");
        }
        if !(1..=100).contains(&pairing.max_pending) {
            return invalid("pairing.max_pending", "must be between 1 and 100");
        }
        if !(1..=pairing.max_pending).contains(&pairing.max_pending_per_address) {
            return invalid(
                "pairing.max_pending_per_address",
                "must be between 1 and pairing.max_pending",
            );
        }
        if !(1..=365 * 24 * 3600).contains(&self.dashboard.session_lifetime_s) {
            return invalid(
                "dashboard.session_lifetime_s",
                "must be between 1 and 31536000 (365 days)",
            );
        }
        if self.agent.timeout_s > self.agent.max_timeout_s {
            return invalid("agent.timeout_s", "must not exceed agent.max_timeout_s");
        }
        if !(4096..=256 * 1024 * 1024).contains(&self.agent.max_line_bytes) {
            return invalid("agent.max_line_bytes", "must be between 4 KiB and 256 MiB");
        }
        const MODES: [&str; 4] = ["default", "acceptEdits", "plan", "bypassPermissions"];
        if !MODES.contains(&self.agent.permission_mode.as_str()) {
            return Err(ConfigError::Invalid {
                key: "agent.permission_mode",
                reason: format!("must be one of {}", MODES.join(", ")),
            });
        }
        for origin in &self.allowed_origins {
            if origin == "null" || !origin.contains("://") || origin.ends_with('/') {
                return Err(ConfigError::Invalid {
                    key: "allowed_origins",
                    reason: format!("{origin:?} is not an origin like chrome-extension://<id>"),
                });
            }
        }
        self.public.validate()?;
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError::Invalid {
                key: "log_level",
                reason: err.to_string(),
            });
        }
        Ok(())
    }
}

/// The platform log directory: `~/.local/state/semantest-hub/logs` (XDG state) on Linux,
/// `~/Library/Logs/semantest-hub` on macOS.
fn default_log_dir() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        let home = directories::BaseDirs::new()?.home_dir().to_path_buf();
        return Some(home.join("Library/Logs/semantest-hub"));
    }
    let dirs = project_dirs()?;
    let base = dirs.state_dir().unwrap_or(dirs.data_local_dir());
    Some(base.join("logs"))
}

/// `dir` in local mode; `<dir>-public` beside it in public mode.
fn public_sibling(dir: &Path, mode: Mode) -> PathBuf {
    match (mode, dir.file_name()) {
        (Mode::Public, Some(name)) => {
            let mut name = name.to_os_string();
            name.push("-public");
            dir.with_file_name(name)
        }
        _ => dir.to_path_buf(),
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Walks the effective configuration and asks figment which layer supplied each leaf.
fn value_sources(
    figment: &Figment,
    config: &Config,
) -> Vec<(String, serde_json::Value, &'static str)> {
    fn walk(prefix: &str, value: serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let key = if prefix.is_empty() {
                        key
                    } else {
                        format!("{prefix}.{key}")
                    };
                    walk(&key, value, out);
                }
            }
            leaf => out.push((prefix.to_string(), leaf)),
        }
    }
    let mut leaves = Vec::new();
    walk(
        "",
        serde_json::to_value(config).unwrap_or_default(),
        &mut leaves,
    );
    leaves
        .into_iter()
        .map(|(key, value)| {
            // Agent environment values may hold API keys: show that they are set, not what.
            let value = if key.starts_with("agent.env.") {
                serde_json::json!("<redacted>")
            } else {
                value
            };
            let source = match figment.find_metadata(&key).map(|m| m.name.as_ref()) {
                Some(name) if name.contains("TOML") => "file",
                Some(name) if name.contains("environment") => "env",
                Some("flag") => "flag",
                _ => "default",
            };
            (key, value, source)
        })
        .collect()
}

/// The command-line layer, named `flag` so that [`value_sources`] can recognise it.
struct FlagLayer<P>(P);

impl<P: figment::Provider> figment::Provider for FlagLayer<P> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("flag")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.0.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Env {
        Env::prefixed("SEMANTEST_HUB_TEST_UNUSED_PREFIX_")
    }

    #[test]
    fn defaults_are_valid_and_local() {
        let dir = tempfile::tempdir().unwrap();
        let overrides = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let loaded = Config::load_with_env(None, &overrides, no_env()).unwrap();
        assert_eq!(loaded.config.limits.max_connections, 100);
        assert_eq!(loaded.config.limits.max_message_bytes, 1 << 20);
        assert!(loaded.config.bind.iter().all(IpAddr::is_loopback));
        assert_eq!(loaded.log_dir, dir.path().join("logs"));
        let source = |key: &str| loaded.sources.iter().find(|(k, ..)| k == key).unwrap().2;
        assert_eq!(source("limits.max_connections"), "default");
        assert_eq!(source("data_dir"), "flag");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "port = 4000\n[limits]\nmax_projects = 7\nmax_connections = 9\n",
        )
        .unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS", "11");
            jail.set_env("SEMANTEST_HUB_BIN", "/not/a/setting");
            let overrides = Overrides {
                port: Some(4001),
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            let loaded = Config::load(Some(&file), &overrides).unwrap();
            assert_eq!(loaded.config.port, Some(4001));
            assert_eq!(loaded.config.limits.max_projects, 7);
            assert_eq!(loaded.config.limits.max_connections, 11);
            let source = |key: &str| loaded.sources.iter().find(|(k, ..)| k == key).unwrap().2;
            assert_eq!(source("port"), "flag");
            assert_eq!(source("limits.max_projects"), "file");
            assert_eq!(source("limits.max_connections"), "env");
            Ok(())
        });
    }

    #[test]
    fn unknown_env_vars_are_named_and_others_pass() {
        let keys = top_level_keys();
        let names = [
            "SEMANTEST_HUB_PROT",
            "SEMANTEST_HUB_PORT",
            "semantest_hub_limitz__max_connections",
            "SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS",
            "SEMANTEST_HUB_PUBLIC__HOSTS",
            "SEMANTEST_HUB_BIN",
            "SEMANTEST_HUB_PUBLIC_BIN",
            "SEMANTEST_HUB_TOKEN",
            "SEMANTEST_HUB_BROKER_TOKEN",
            "SEMANTEST_HUB_DATABASE_PASSWORD",
            "SEMANTEST_HUBBLE",
            "PATH",
        ]
        .map(String::from);
        assert_eq!(
            unknown_env_vars(names, &keys),
            [
                "SEMANTEST_HUB_PROT",
                "semantest_hub_limitz__max_connections"
            ]
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns figment::Error.
    fn a_mistyped_top_level_variable_stops_the_load() {
        let dir = tempfile::tempdir().unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SEMANTEST_HUB_PROT", "3005");
            let overrides = Overrides {
                data_dir: Some(dir.path().to_path_buf()),
                ..Default::default()
            };
            let err = Config::load(None, &overrides).unwrap_err().to_string();
            assert!(err.contains("SEMANTEST_HUB_PROT is not a setting"), "{err}");
            assert!(err.contains("SEMANTEST_HUB_PORT"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn public_mode_defaults_to_its_own_directories() {
        assert_eq!(
            public_sibling(
                Path::new("/home/u/.local/share/semantest-hub"),
                Mode::Public
            ),
            Path::new("/home/u/.local/share/semantest-hub-public")
        );
        assert_eq!(
            public_sibling(Path::new("/home/u/.local/share/semantest-hub"), Mode::Local),
            Path::new("/home/u/.local/share/semantest-hub")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        let cases = [
            ("bind = [\"0.0.0.0\"]", "bind"),
            ("[limits]\nmax_connections = 0", "limits.max_connections"),
            (
                "[limits]\nping_interval_s = 300\nidle_timeout_s = 60",
                "limits.idle_timeout_s",
            ),
            (
                "[agent]\npermission_mode = \"yolo\"",
                "agent.permission_mode",
            ),
            ("allowed_origins = [\"null\"]", "allowed_origins"),
            ("[coordination]\nlease_s = 0", "coordination.lease_s"),
            (
                "[limits]\nmax_subscriptions = 0",
                "limits.max_subscriptions",
            ),
            (
                "[coordination]\nreport_debounce_ms = 1",
                "coordination.report_debounce_ms",
            ),
            (
                "[dashboard]\nsession_lifetime_s = 0",
                "dashboard.session_lifetime_s",
            ),
        ];
        for (toml, key) in cases {
            std::fs::write(&file, toml).unwrap();
            let err =
                Config::load_with_env(Some(&file), &Overrides::default(), no_env()).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
        std::fs::write(&file, "[limits]\nmax_conections = 5").unwrap();
        let err = Config::load_with_env(Some(&file), &Overrides::default(), no_env()).unwrap_err();
        assert!(err.to_string().contains("max_conections"), "{err}");
        let missing = dir.path().join("missing.toml");
        assert!(Config::load_with_env(Some(&missing), &Overrides::default(), no_env()).is_err());
    }
}
