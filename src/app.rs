//! The application: the composition root ([`hub::Hub`]) that opens every part in order
//! and holds the cross-part lifecycles, and the operations with effects across parts
//! that take it: access (client tokens and pairing: revoke, close, announce), dashboard
//! sessions, and the notifier, the one [`crate::events::EventSink`] that turns the
//! core's events into notifications, desktop events and the status snapshot.
//!
//! The RPC handlers above it get only their family's narrow context ([`contexts`]), and
//! the HTTP edge's routes only theirs ([`edge`]); the hub builds both once, and the
//! parts below never see it. The notifier is private: only the hub and the contexts
//! name it.

pub(crate) mod access;
pub(crate) mod contexts;
pub(crate) mod edge;
pub mod hub;
mod notifier;
pub(crate) mod sessions;
