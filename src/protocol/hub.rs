//! The hub's own reports: `hub.status`, `/health` (and `hub.health`), the `hub.stats`
//! notification, and the `agent_cli` object they share; the connections of
//! `hub.connections` and the `hub.connection` notification. `docs/protocol.md` describes
//! each; `docs/protocol.schema.json` has their schemas.

use std::path::PathBuf;

use serde::Serialize;

use crate::protocol::Role;
use crate::scopes::Scopes;

/// Where the CLI version probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Found; `claude --version` has not answered yet.
    Probing,
    /// Found (its version is `null` if it did not answer within 10 s).
    Found,
    /// No CLI was found.
    Missing,
}

/// The `agent_cli` object.
#[derive(Debug, Clone, Serialize)]
pub struct CliReport {
    /// Whether an executable was found.
    pub found: bool,
    /// `probing`, `found` or `missing`.
    pub state: ProbeState,
    /// Its absolute path; `null` when none was found, and for callers without `admin`
    /// over the WebSocket.
    pub path: Option<PathBuf>,
    /// The first line of `claude --version`, once known.
    pub version: Option<String>,
}

/// `hub.status` result.
#[derive(Debug, Clone, Serialize)]
pub struct HubStatus {
    /// Always `semantest-hub`.
    pub product: &'static str,
    /// The hub's version.
    pub version: &'static str,
    /// [`super::PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Random per hub process.
    pub instance_id: String,
    /// `local` or `public`.
    pub mode: &'static str,
    /// The bound port.
    pub port: u16,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Registered projects.
    pub projects: usize,
    /// Connected clients.
    pub connections: usize,
    /// Agent runs in progress (interactive and task runs).
    pub running_agents: usize,
    /// `keychain` or `file`.
    pub secret_store: &'static str,
    /// Claude Code's CLI (kept for clients that know one agent).
    pub agent_cli: CliReport,
    /// Every agent's CLI, by agent: `{"claude": …, "codex": …, "gemini": …}`.
    pub agent_clis: std::collections::BTreeMap<crate::protocol::agents::AgentKind, CliReport>,
    /// The data directory; left out for callers without `admin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Memory figures, bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// In use on the machine.
    pub used_bytes: u64,
    /// The machine's total.
    pub total_bytes: u64,
    /// Resident memory of the hub process.
    pub process_rss_bytes: u64,
}

/// Disk figures for the data directory's file system, bytes.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Free.
    pub available_bytes: u64,
    /// Size.
    pub total_bytes: u64,
}

/// `/health`'s `database` part.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct DatabaseHealth {
    /// `sqlite` (this instance's own file) or `postgres` (shared, `public.database`).
    pub kind: DatabaseKind,
    /// Whether the last query or probe succeeded.
    pub state: Reachability,
}

impl DatabaseHealth {
    /// The local SQLite database: always reachable while the hub runs.
    pub const SQLITE: Self = Self {
        kind: DatabaseKind::Sqlite,
        state: Reachability::Reachable,
    };

    /// Whether the hub can take new connections as far as the database goes.
    pub fn healthy(&self) -> bool {
        self.state == Reachability::Reachable
    }
}

/// Which database holds client tokens and pairings.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseKind {
    /// SQLite in the data directory.
    Sqlite,
    /// PostgreSQL (`public.database`).
    Postgres,
}

/// Whether the database answered lately.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// The last query or probe succeeded.
    Reachable,
    /// The last query or probe failed.
    Unreachable,
}

/// `/health`'s overall `status`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Every part is healthy.
    Ok,
    /// A part is not (the database is unreachable): `/health` answers 503 and new
    /// connections are refused.
    Unhealthy,
}

/// `GET /health` and `hub.health` result.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// `ok`, or `unhealthy` when a part is (see [`Health::healthy`]); `/health` then
    /// answers 503 with the same body.
    pub status: HealthStatus,
    /// Always `semantest-hub`.
    pub product: &'static str,
    /// The hub's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_s: u64,
    /// Whole-machine CPU usage, percent.
    pub cpu_percent: f32,
    /// Memory.
    pub memory: Memory,
    /// Disk.
    pub disk: Disk,
    /// Connected clients.
    pub connections: usize,
    /// Registered projects.
    pub projects: usize,
    /// Agent runs in progress.
    pub running_agents: usize,
    /// Claude Code's CLI (kept for clients that know one agent).
    pub agent_cli: CliReport,
    /// Every agent's CLI, by agent: `{"claude": …, "codex": …, "gemini": …}`.
    pub agent_clis: std::collections::BTreeMap<crate::protocol::agents::AgentKind, CliReport>,
    /// `keychain` or `file`.
    pub secret_store: &'static str,
    /// Where client tokens and pairings live, and whether it answers.
    pub database: DatabaseHealth,
    /// What an acknowledged write survives (docs/reliability.md).
    pub durability: DurabilityHealth,
    /// The event broker between instances.
    pub broker: BrokerHealth,
}

/// `/health`'s `durability` part: what the store's acknowledged writes survive.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct DurabilityHealth {
    /// `power_cut` (the default: fsynced before acknowledged) or `process_crash`
    /// (`storage.lose_acknowledged_writes_on_power_cut = true`).
    pub survives: &'static str,
    /// The SQLite `synchronous` setting in force: `full` or `normal`.
    pub synchronous: &'static str,
    /// The setting itself, `storage.lose_acknowledged_writes_on_power_cut`.
    pub lose_acknowledged_writes_on_power_cut: bool,
}

impl Health {
    /// Whether every part is healthy: the `status` is computed from this.
    pub fn healthy(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// `/health` `broker.kind`: what carries events between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerKind {
    /// Nothing leaves the process (no `public.broker`).
    InProcess,
    /// A NATS server (`public.broker`).
    Nats,
}

/// `/health` `broker.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerState {
    /// Reachable (the in-process broker always is).
    Connected,
    /// Not connected (yet, or any more); reconnecting in the background.
    Disconnected,
}

/// `/health` `broker`: the event broker between instances.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerHealth {
    /// `in_process` or `nats`.
    pub kind: BrokerKind,
    /// `connected` or `disconnected`.
    pub state: BrokerState,
    /// NATS subscriptions open for this instance's clients' patterns (0 in process).
    pub subscriptions: i64,
    /// Reconnections to the NATS server since start.
    pub reconnects: u64,
}

impl BrokerHealth {
    /// Whether the broker part is healthy: connected.
    pub fn healthy(&self) -> bool {
        self.state == BrokerState::Connected
    }
}

/// `hub.stats` notification params.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Seconds since start.
    pub uptime_s: u64,
    /// Connected clients.
    pub connections: usize,
    /// Registered projects.
    pub projects: usize,
    /// Agent runs in progress.
    pub running_agents: usize,
    /// Whole-machine CPU usage, percent.
    pub cpu_percent: f32,
    /// Memory in use on the machine, bytes.
    pub memory_used_bytes: u64,
    /// The machine's total memory, bytes.
    pub memory_total_bytes: u64,
    /// Resident memory of the hub process, bytes.
    pub process_rss_bytes: u64,
}

/// A client as shown by `hub.connections`.
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// Connection id, unique for the hub's lifetime.
    pub id: u64,
    /// Declared role.
    pub role: Role,
    /// Declared name.
    pub name: Option<String>,
    /// The Origin header, if any.
    pub origin: Option<String>,
    /// Peer address.
    pub remote_addr: String,
    /// RFC 3339 connection time.
    pub connected_at: String,
    /// Frames received.
    pub messages_in: u64,
    /// Frames queued to it.
    pub messages_out: u64,
    /// `PUBLIC` on a hub in public mode, `LOCAL` otherwise (`crate::config::Mode`).
    pub badge: &'static str,
    /// The client token it authenticated with (`cl_…`); null for the owner.
    pub client_id: Option<String>,
    /// What it may do.
    pub scopes: Scopes,
}

/// What happened to a connection, as `hub.connection` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionChange {
    /// It was accepted.
    Opened,
    /// It introduced itself (`hub.hello`) or registered as a worker.
    Updated,
    /// It ended.
    Closed,
}

/// `hub.connection` params.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionChanged<'a> {
    /// What happened.
    pub event: ConnectionChange,
    /// The connection as it is now (as it was last, once closed).
    pub connection: &'a ClientInfo,
}
