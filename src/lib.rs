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
//! | module | what it holds |
//! |---|---|
//! | [`config`] | every setting, layered from defaults, TOML, environment and flags |
//! | [`error`] | the error kinds and JSON-RPC codes clients see |
//! | [`protocol`] | the wire types: envelope, params, notifications |
//! | [`security`] | Host/Origin allowlists, tokens, one-time login codes |
//! | [`secrets`] | the OS keychain, or a mode-0600 file where there is none |
//! | [`store`] | SQLite: projects, runs, sessions, the message log |
//! | [`project`] | path validation and the project registry |
//! | [`feed`] | history plus live output per project, without gaps |
//! | [`broker`] | event routing: subscriptions by type, fan-out, request/response |
//! | [`agent`] | running the Claude Code CLI: process groups, output, kill |
//! | [`clients`] | connected clients and their bounded outgoing queues |
//! | [`coordinator`] | the task queue, workers, leases and assignment |
//! | [`watch`] | the `reports/` folder watcher that completes tasks |
//! | [`rpc`] | the method dispatcher |
//! | [`ws`] | one WebSocket connection: reader loop and writer task |
//! | [`server`] | binding, routes, the security gate, graceful shutdown |
//! | [`hub`] | the `Hub` handle bundling all of the above |
//! | [`assets`] | the embedded dashboard |
//! | [`metrics`], [`monitor`] | Prometheus metrics and resource sampling |
//! | [`client`] | a JSON-RPC client for the command line |
//! | [`logging`] | the `tracing` subscriber the binaries install |
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

pub mod agent;
pub mod assets;
pub mod broker;
pub mod client;
pub mod clients;
pub mod config;
pub mod coordinator;
pub mod error;
pub mod feed;
pub mod hub;
pub mod logging;
pub mod metrics;
pub mod monitor;
pub mod project;
pub mod protocol;
pub mod rpc;
pub mod secrets;
pub mod security;
pub mod server;
pub mod store;
pub mod timestamp;
pub mod watch;
pub mod ws;

pub use config::{Config, LoadedConfig, Overrides};
pub use hub::Hub;
pub use server::{HubServer, start};
