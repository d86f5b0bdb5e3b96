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
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub(crate) mod allowlist;

mod backends;
mod load;
mod public;
mod redact;

pub use load::{
    ConfigError, ENV_PREFIX, LoadedConfig, NON_SETTING_ENV_VARS, default_config_file,
    default_public_config_file, is_agent_env, project_dirs,
};

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
    /// The store's durability (docs/reliability.md).
    pub storage: StorageConfig,
}

/// The store's durability: what an acknowledged write survives.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// `false` (the default): every write is on stable storage before it is acknowledged
    /// (a JSON-RPC result, a `task.*` notification, an output line pushed), so it
    /// survives a power cut or a kernel crash (SQLite `synchronous=FULL`: one fsync of
    /// the WAL per group commit). `true`: the store skips that fsync
    /// (`synchronous=NORMAL`); acknowledged writes still survive a crash of the hub, but
    /// a power cut or a kernel crash may roll back the last ones acknowledged. Named for
    /// what it risks; `/health` reports it (`durability`).
    pub lose_acknowledged_writes_on_power_cut: bool,
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
    /// Events a subscriber may lose in a row (pushed out of the event ring before it
    /// read them) before it is closed with 1008.
    pub max_dropped_events: u64,
    /// Bytes of encoded events the hub keeps for its subscribers to read, in one ring
    /// shared by every connection (frames and their target lists). A subscriber that
    /// falls further behind than this loses the oldest of its events (`dropped`).
    pub event_ring_bytes: usize,
    /// `event.request`s one connection may wait on at once (`LIMIT_REACHED`).
    pub max_pending_requests: usize,
    /// `event.publish` `idempotency_key`s the hub remembers per client identity (token,
    /// or the owner), each for 10 minutes; past this the oldest is forgotten first.
    pub max_idempotency_keys: usize,
    /// MCP sessions (Streamable HTTP, `/mcp`) one token may hold open at once; an
    /// `initialize` beyond it gets 429 with a `LIMIT_REACHED` JSON-RPC error. A session
    /// ends with an HTTP `DELETE`, or after two hours without a request.
    pub mcp_sessions_per_token: usize,
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
    /// Seconds a live session (one started by `agent.send`) stays open with no turn
    /// running; then its process ends and the next message resumes the session.
    pub session_idle_s: u64,
    /// Milliseconds an interrupted turn has to stop through the control protocol before
    /// its process group is signalled.
    pub interrupt_timeout_ms: u64,
    /// The approval policy of every project (docs/agents.md, "Policies").
    pub approvals: ApprovalsConfig,
    /// The Codex CLI (`[agent.codex]`).
    pub codex: CodexConfig,
    /// The Gemini CLI (`[agent.gemini]`).
    pub gemini: GeminiConfig,
    /// US dollars per million tokens, by model, for agents that report tokens but no
    /// cost (Codex, Gemini): the hub's estimate of a turn's cost (`[agent.prices]`,
    /// docs/agents.md, "Usage and cost"). A model not listed is recorded without a cost.
    pub prices: std::collections::BTreeMap<String, Price>,
}

/// A model's price in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens not read from the cache.
    pub input: f64,
    /// Input tokens read from the cache; `input` when not set.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Output tokens (reasoning included).
    pub output: f64,
}

/// The default price table: the providers' published list prices for standard API use,
/// as of 2025-09 (https://openai.com/api/pricing, https://ai.google.dev/gemini-api/docs/pricing;
/// Gemini 2.5 Pro at its price for prompts up to 200k tokens). Override or extend it
/// with `[agent.prices]`.
pub fn default_prices() -> std::collections::BTreeMap<String, Price> {
    let price = |input, cached_input, output| Price {
        input,
        cached_input: Some(cached_input),
        output,
    };
    [
        ("gpt-5", price(1.25, 0.125, 10.0)),
        ("gpt-5-codex", price(1.25, 0.125, 10.0)),
        ("gpt-5-mini", price(0.25, 0.025, 2.0)),
        ("gpt-5-nano", price(0.05, 0.005, 0.4)),
        ("gemini-2.5-pro", price(1.25, 0.31, 10.0)),
        ("gemini-2.5-flash", price(0.30, 0.075, 2.5)),
        ("gemini-2.5-flash-lite", price(0.10, 0.025, 0.4)),
    ]
    .into_iter()
    .map(|(model, price)| (model.to_string(), price))
    .collect()
}

/// The Codex CLI's settings (docs/agents.md, "Codex").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CodexConfig {
    /// The `codex` executable. Default: found on PATH or in the usual install locations.
    pub cli_path: Option<PathBuf>,
    /// The model of projects that name none; `None` lets the CLI choose.
    pub model: Option<String>,
    /// The thread's sandbox: `read-only`, `workspace-write` (default) or
    /// `danger-full-access`. Every command still asks (approval policy `untrusted`).
    pub sandbox: String,
    /// Extra environment variables for Codex runs (e.g. `CODEX_HOME`,
    /// `OPENAI_API_KEY`), on top of `agent.env`.
    pub env: std::collections::BTreeMap<String, String>,
}

impl Default for CodexConfig {
    fn default() -> Self {
        Self {
            cli_path: None,
            model: None,
            sandbox: "workspace-write".into(),
            env: Default::default(),
        }
    }
}

/// The Gemini CLI's settings (docs/agents.md, "Gemini").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiConfig {
    /// The `gemini` executable. Default: found on PATH or in the usual install locations.
    pub cli_path: Option<PathBuf>,
    /// The model of projects that name none; `None` lets the CLI choose.
    pub model: Option<String>,
    /// Extra environment variables for Gemini runs (e.g. `GEMINI_API_KEY`), on top of
    /// `agent.env`.
    pub env: std::collections::BTreeMap<String, String>,
}

/// Which tool calls the hub answers itself and how long a person has for the others.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Tools the hub allows without asking (read-only ones by default).
    pub never_ask: Vec<String>,
    /// Tools that always ask a person: neither `never_ask` nor a remembered
    /// `allow_always`/`reject_always` rule answers them.
    pub always_ask: Vec<String>,
    /// Seconds a request waits for an answer; then it is denied with `timeout_message`.
    pub timeout_s: u64,
    /// What the agent is told when nobody answered in time.
    pub timeout_message: String,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            never_ask: ["Read", "Glob", "Grep", "LS", "NotebookRead", "TodoWrite"]
                .into_iter()
                .map(String::from)
                .collect(),
            always_ask: Vec::new(),
            timeout_s: 600,
            timeout_message: "Nobody answered this permission request in time, so it was \
                              denied. Do not retry it; tell the user what you wanted to run."
                .into(),
        }
    }
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
    /// Seconds a finished task's git worktree is kept (`isolation: "worktree"`) before
    /// its directory is removed; its branch stays until merged or discarded. 0 removes
    /// it as soon as the run's work is committed.
    pub worktree_retention_s: u64,
}

impl Default for CoordinationConfig {
    fn default() -> Self {
        Self {
            lease_s: 60,
            max_attempts: 3,
            report_debounce_ms: 300,
            worktree_retention_s: 7 * 24 * 3600,
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
            storage: StorageConfig::default(),
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
            event_ring_bytes: 64 * 1024 * 1024,
            max_pending_requests: 100,
            max_idempotency_keys: 1024,
            mcp_sessions_per_token: 16,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            cli_path: None,
            permission_mode: "default".into(),
            model: None,
            timeout_s: 30 * 60,
            max_timeout_s: 4 * 60 * 60,
            kill_grace_ms: 3000,
            max_line_bytes: 16 * 1024 * 1024,
            env: Default::default(),
            session_idle_s: 600,
            interrupt_timeout_ms: 10_000,
            approvals: ApprovalsConfig::default(),
            codex: CodexConfig::default(),
            gemini: GeminiConfig::default(),
            prices: default_prices(),
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
