//! The backplane: what carries events between hub instances that serve one public
//! deployment (docs/deployment.md, "Many instances").
//!
//! The [`Broker`](super::Broker) stays the local router: it fans an event out to this
//! instance's subscribers exactly as before, then hands it to its [`Backplane`], which
//! sends it to the other instances. Events that arrive from another instance enter the
//! local fan-out through [`Broker::deliver_remote`](super::Broker::deliver_remote) and
//! are never sent on again, so an event crosses the backplane once.
//!
//! The broker also tells the backplane which patterns its subscribers hold: the first
//! local subscriber of a pattern calls [`Backplane::interest_added`], the last one to
//! leave [`Backplane::interest_removed`], so each instance receives only the events its
//! clients want (reference counted per pattern).
//!
//! Every method is called on the publishing or subscribing request's own thread, some
//! under the broker's routing lock: an implementation must not block or await; it
//! queues the work for its own task.

use crate::protocol::events::Event;

/// Carries events to the other instances of a deployment.
pub trait Backplane: Send + Sync + 'static {
    /// `event` was published on this instance and delivered locally; send it to the
    /// instances that subscribe to its type.
    fn publish(&self, event: &Event);

    /// `event` carries a `correlation_id` that no `event.request` on this instance waits
    /// for; send it to the instance whose request does, if any.
    fn answer(&self, event: &Event);

    /// The first local subscriber of `pattern` (an exact type, `prefix.*` or `*`) arrived.
    fn interest_added(&self, pattern: &str);

    /// The last local subscriber of `pattern` left.
    fn interest_removed(&self, pattern: &str);
}

/// The single-process backplane: nothing leaves the process. Used in local mode and in
/// public mode without `public.broker`.
#[derive(Debug, Default, Clone, Copy)]
pub struct InProcess;

impl Backplane for InProcess {
    fn publish(&self, _event: &Event) {}

    fn answer(&self, _event: &Event) {}

    fn interest_added(&self, _pattern: &str) {}

    fn interest_removed(&self, _pattern: &str) {}
}
