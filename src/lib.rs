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
//!  credentials                 token and pairing rows both databases hold; the
//!                              PairingStore port the pairing rules are written over
//!  protocol, secrets, metrics  wire types; keychain or file; Prometheus       protocol, secrets pub
//!  error, timestamp, config,   error kinds; times; settings; dashboard files; error, config,
//!  assets, monitor, logging,   resource sampling; tracing subscriber;         logging pub
//!  scopes, conn_info,          token scopes; each connection's two addresses; scopes pub
//!  rate_limit, file_modes      rate limiters on one shared clock; private
//!                              (0700/0600) directories and files
//!  allowlist, http_error       the one Origin validator and Host check; the one
//!                              HTTP error (status + {error: {kind, message}})
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

pub(crate) mod access;
pub(crate) mod allowlist;
pub(crate) mod assets;
pub(crate) mod broker;
pub mod client;
pub(crate) mod client_tokens;
pub(crate) mod clients;
pub mod config;
pub(crate) mod conn_info;
pub(crate) mod coordinator;
pub(crate) mod credentials;
pub(crate) mod database;
pub mod error;
pub(crate) mod events;
pub(crate) mod feed;
pub(crate) mod file_modes;
pub(crate) mod http_error;
pub mod hub;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod monitor;
pub(crate) mod nats;
pub(crate) mod notifier;
pub(crate) mod pairing;
pub(crate) mod pairing_http;
pub(crate) mod project;
pub mod protocol;
pub(crate) mod public;
pub(crate) mod rate_limit;
pub(crate) mod rpc;
pub(crate) mod runner;
pub mod scopes;
pub mod secrets;
pub mod security;
pub mod server;
pub(crate) mod sessions;
pub(crate) mod store;
pub(crate) mod timestamp;
pub(crate) mod watch;
pub(crate) mod ws;

/// Internals the criterion benches (`benches/`) and fuzz targets (`fuzz/`) exercise
/// directly, behind the `bench-internals` feature: not part of the crate's API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::coordinator::reports::{parse_report, read_report_file};
    pub use crate::project::{PathPolicy, validate_path};
    pub use crate::runner::output::read_capped_line;
    pub use crate::store::{NewLine, ProjectRow, Store};
}

pub use config::{Config, LoadedConfig, Overrides};
pub use hub::{Hub, HubEvent, StartError, StatusSnapshot};
pub use server::{HubServer, start};
