//! Rate limiters that share one clock.
//!
//! `governor::RateLimiter::direct` makes a clock of its own, and making a
//! [`QuantaClock`] queries the CPU (`cpuid`, which traps to the hypervisor in a virtual
//! machine): with a limiter per connection (messages in [`crate::http::ws`], publishes in
//! [`crate::pubsub::broker`]) that was the largest part of the hub's own work per new
//! connection. A clone of one clock shares its calibration.

use std::sync::LazyLock;

use governor::clock::QuantaClock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

static CLOCK: LazyLock<QuantaClock> = LazyLock::new(QuantaClock::default);

/// A GCRA limiter admitting `quota` (governor's [`Quota`]: cells per period plus a burst),
/// on the shared clock.
pub(crate) fn direct(quota: Quota) -> DefaultDirectRateLimiter {
    RateLimiter::direct_with_clock(quota, CLOCK.clone())
}
