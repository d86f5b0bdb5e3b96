//! Publish and subscribe between clients (the `event.*` methods): the in-process
//! [`broker`] (subscriptions by type, fan-out, `event.request` by correlation id) and
//! the [`nats`] backplane that carries the same traffic between the instances of a
//! public deployment.
//!
//! Not to be confused with [`crate::events`], the core's own reports upward.

pub(crate) mod broker;
pub(crate) mod nats;
