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
//! Dependencies point down only; each line uses the lines below it, never above
//! (`docs/architecture.md` lists every edge).
//!
//! ```text
//!  client                      the command-line JSON-RPC client              pub
//!  server, ws, pairing_http    binding, routes, gate, shutdown; a WebSocket;  server pub
//!                              the /pair endpoints
//!  public                      public mode at the edge: TLS, client address
//!                              behind trusted proxies, per-address limits
//!  rpc/                        dispatch (scope check first) + one file per method family
//!  access, sessions            client tokens and pairing with their effects;
//!                              dashboard sessions: sign-in, sliding lifetime, sign-out
//!  hub                         the composition root: opens the parts in order,  pub
//!                              hands each only the handles it needs
//!  watch                       the reports/ folder actor (coordinator handle only)
//!  coordinator/   notifier     task queue: pure state transitions + handle ·
//!                              the one EventSink: notifications, desktop, status
//!  runner/                     cli · process · output · slots (agent permits)
//!  nats                        the NATS backplane between public instances:
//!                              events, request answers, control messages
//!  feed, broker                history plus live output; event routing
//!  clients, project            connections; project registry and path rules
//!  client_tokens, pairing      live tokens by hash, paired origins; pending pairings
//!  store, security, events     SQLite; tokens, allowlists; Event + EventSink  security pub
//!  database                    the PostgreSQL state public instances share
//!  protocol, secrets, metrics  wire types; keychain or file; Prometheus       protocol, secrets pub
//!  error, timestamp, config,   error kinds; times; settings; dashboard files; error, config,
//!  assets, monitor, logging,   resource sampling; tracing subscriber;         logging pub
//!  scopes, conn_info,          token scopes; each connection's two addresses; scopes pub
//!  rate_limit, file_modes      rate limiters on one shared clock; private
//!                              (0700/0600) directories and files
//! ```
//!
//! The binary, the desktop shell, the examples and the tests use only the `pub` modules
//! and the re-exports below; the rest is internal to the crate. The runner and the
//! coordinator report upwards through `events::Event`s, never by calling the hub; the
//! agent limit is a semaphore permit taken before a run starts and held by the run.
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
