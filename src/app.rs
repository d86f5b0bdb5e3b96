//! The application: the composition root ([`hub::Hub`]) that opens every part in order
//! and holds the cross-part lifecycles, and the operations with effects across parts
//! that take it: access (client tokens and pairing: revoke, close, announce), dashboard
//! sessions, and the notifier, the one [`crate::events::EventSink`] that turns the
//! core's events into notifications, desktop events and the status snapshot.
//!
//! Used by the RPC handlers and the HTTP edge above it; the parts below never see it.
//! The notifier is private: only the hub, which opens it, names it.

pub(crate) mod access;
pub mod hub;
mod notifier;
pub(crate) mod sessions;
