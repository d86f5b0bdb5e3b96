//! Semantest Hub: a local server for browser extensions, coding agents and task workers.
//!
//! The hub listens on loopback (port 3003, or the next free one up to 3012), speaks
//! JSON-RPC 2.0 over a WebSocket, runs the Claude Code CLI in registered project
//! directories, stores every output line in SQLite, and streams it live to subscribers
//! with gap-free replay. The desktop app, `semantest-hub serve` and a public deployment
//! all run this same crate.
//!
//! # Layout
//!
//! One folder (or file) per layer entry; dependencies point down only. A module uses
//! the lines below its own, never a line above and never a sibling on its own line.
//! `scripts/check-layers.py` holds this order and fails the test command on any
//! `crate::` path against it; `docs/architecture.md` draws the same lines.
//!
//! ```text
//!  cli/                        the command line: arguments, commands, tables, and   pub
//!                              its JSON-RPC client to a running hub
//!  http/                       server (binding, routes, gate, shutdown), ws (one   server pub
//!                              connection), pairing (the /pair endpoints), public/
//!                              (TLS, client address, per-address limits), assets
//!  mcp/                        the task queue as MCP tools (rmcp), over a Connector
//!                              (stdio: cli; /mcp: http); link (a connection's actor)
//!  rpc/                        dispatch (scope check first) + one file per method family
//!  app/                        hub (the composition root), access (token and pairing   hub pub
//!                              effects), sessions (dashboard sign-in), notifier
//!                              (the one EventSink), contexts (what each RPC method
//!                              family may use)
//!  coordinator/                the task queue: pure state, ops, the handle; watch
//!                              (the reports/ folder)
//!  runner/                     agent runs: claude_cli · process · output · slots
//!  projects/, pubsub/, auth/   registry and path rules + feed; broker/ + nats/   security pub
//!                              (client events); tokens, pairing, security
//!  connections/, storage/,     live connections + tcp (each connection's two     secrets pub
//!  events                      addresses); sqlite/, postgres/, secrets; the core's
//!                              Event + EventSink
//!  protocol/, config/,         wire types + error kinds + scopes; settings;       protocol, error,
//!  support                     timestamps, rate limits, file modes, logging,       scopes, config,
//!                              metrics, resource sampling                          logging pub
//! ```
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use semantest_hub::config::{Config, Overrides};
//!
//! let config = Config::load(None, &Overrides { port: Some(0), ..Default::default() })?;
//! let server = semantest_hub::server::start(config).await?;
//! println!("listening on {}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub(crate) mod app;
pub(crate) mod auth;
pub mod cli;
pub mod config;
pub(crate) mod connections;
pub(crate) mod coordinator;
pub(crate) mod events;
pub(crate) mod http;
pub(crate) mod mcp;
pub(crate) mod projects;
pub mod protocol;
pub(crate) mod pubsub;
pub(crate) mod rpc;
pub(crate) mod runner;
pub(crate) mod storage;
pub(crate) mod support;

// The crate's public API keeps its flat paths whatever folder a module lives in.
pub use app::hub;
pub use auth::security;
pub use http::server;
pub use protocol::{error, scopes};
pub use storage::secrets;
pub use support::logging;

/// Internals the criterion benches (`benches/`) and fuzz targets (`fuzz/`) exercise
/// directly, behind the `bench-internals` feature: not part of the crate's API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::coordinator::reports::{parse_report, read_report_file};
    pub use crate::projects::{PathPolicy, validate_path};
    pub use crate::runner::output::read_capped_line;
    pub use crate::storage::sqlite::{NewLine, ProjectRow, Store};
}

pub use config::{Config, LoadedConfig, Overrides};
pub use hub::{Hub, HubEvent, StartError, StatusSnapshot};
pub use server::{HubServer, start};
