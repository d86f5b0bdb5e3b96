//! The HTTP edge: the server (binding, routes, the security gate, graceful shutdown),
//! one WebSocket connection, the `/pair` endpoints an extension calls before it holds a
//! token, public mode (TLS, the client address behind trusted proxies, per-address
//! limits) and the embedded dashboard files.
//!
//! The top layer of the hub: it uses the RPC dispatcher and the composition root
//! below it, and nothing below uses it. Each group of routes gets its narrow context
//! from the composition root (`app::edge`) as its router's `State`, never the whole
//! hub. Only [`server`] is visible outside: the rest is
//! private to the edge.

mod assets;
mod error;
mod pairing;
mod public;
pub mod server;
mod ws;
