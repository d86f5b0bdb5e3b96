//! The one Origin validator and the one Host check, pure functions over strings.
//!
//! - [`origin`]: [`parse_origin`] decides which strings are serialized origins; every
//!   origin the hub stores or compares (the `allowed_origins` settings, a client token's
//!   origin, a pairing request's extension origin) passes it first, and the gate then
//!   matches the request's `Origin` against them exactly.
//! - [`host`]: [`HostAllowlist::allows`] decides whether a `Host` header names this hub,
//!   in local mode (the loopback names on the hub's port) and in public mode
//!   (`public.hosts` and the listening address) alike; the settings' host entries parse
//!   with the same [`HostEntry::parse`].
//!
//! They sit at the bottom of the crate, beside the settings that use them, and depend on
//! nothing in it.

pub mod host;
pub mod origin;

pub use host::{HostAllowlist, HostEntry, host_header};
pub use origin::{is_extension_origin, parse_origin};
