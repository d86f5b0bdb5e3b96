//! Per-address limits for public mode: WebSocket connections held at once, and a
//! request rate shared by every HTTP request and WebSocket message from one address.
//!
//! An address is the client address from [`super::forwarded`]. IPv6 clients are limited
//! per /64 prefix, the smallest block a site is normally given (RFC 6177), since a
//! single host can pick any address inside it. The rate is a GCRA limiter per address
//! (`governor`'s keyed limiter); its table is pruned every minute of the addresses whose
//! budget has refilled, so a scan from many addresses does not grow memory without
//! bound. Over the limit, a request gets 503 before any upgrade, and an open WebSocket
//! is closed with 1013 Try Again Later (RFC 6455 section 7.4.1, IANA registry);
//! clients from other addresses are not affected.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::Stream;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::connections::Client;

/// Close code for a connection whose address sends too fast: "Try Again Later".
pub const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// How often the rate table forgets addresses whose budget has refilled.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The key an address is limited under: IPv4 as is, IPv6 by its /64
/// ([`crate::connections::tcp::address_key`]).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    crate::connections::tcp::address_key(ip)
}

/// Counted slots per address: at most `per_address` held at once by one address, as
/// keyed by its key function ([`limit_key`] unless [`Slots::keyed`] says otherwise).
#[derive(Debug)]
pub struct Slots {
    per_address: usize,
    key: fn(IpAddr) -> IpAddr,
    // A std Mutex: held for a map update, never across an await.
    held: Mutex<HashMap<IpAddr, usize>>,
}

impl Slots {
    /// At most `per_address` slots per address (0 is treated as 1).
    pub fn new(per_address: usize) -> Arc<Self> {
        Self::keyed(per_address, limit_key)
    }

    /// At most `per_key` slots per value of `key` (0 is treated as 1), e.g.
    /// [`crate::connections::tcp::site_key`] to count an IPv6 /48.
    pub fn keyed(per_key: usize, key: fn(IpAddr) -> IpAddr) -> Arc<Self> {
        Arc::new(Self {
            per_address: per_key.max(1),
            key,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `ip`, held until it is dropped; `None` when the address already holds
    /// `per_address`.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = (self.key)(ip);
        let mut held = self.lock();
        let count = held.entry(key).or_default();
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: self.clone(),
            key,
        })
    }

    #[cfg(test)]
    /// Slots `ip` holds now.
    #[cfg(test)]
    pub fn held_by(&self, ip: IpAddr) -> usize {
        self.lock().get(&(self.key)(ip)).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The per-address limits of a public hub. Shared by every request.
pub struct AddressLimits {
    connections: Arc<Slots>,
    rate: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for AddressLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressLimits")
            .field("connections", &self.connections)
            .field("tracked", &self.rate.len())
            .finish()
    }
}

impl AddressLimits {
    /// `per_address` connections per address, and `rate_per_s` requests per second with
    /// bursts of `burst` (both at least 1; 0 is treated as 1).
    pub fn new(per_address: usize, rate_per_s: u32, burst: u32) -> Arc<Self> {
        let quota = Quota::per_second(NonZeroU32::new(rate_per_s).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Arc::new(Self {
            connections: Slots::new(per_address),
            rate: RateLimiter::keyed(quota),
        })
    }

    /// Takes one request from `ip`'s budget; false when it is spent.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.rate.check_key(&limit_key(ip)).is_ok()
    }

    /// A connection slot for `ip`, held until the slot is dropped; `None` when the
    /// address already holds `per_address` connections.
    pub fn connect(&self, ip: IpAddr) -> Option<AddressSlot> {
        self.connections.take(ip)
    }

    #[cfg(test)]
    /// Connections `ip` holds now.
    #[cfg(test)]
    pub fn connections_of(&self, ip: IpAddr) -> usize {
        self.connections.held_by(ip)
    }

    /// Addresses in the rate table.
    #[cfg(test)]
    pub fn tracked_addresses(&self) -> usize {
        self.rate.len()
    }

    /// Forgets addresses whose budget has refilled, and frees the table's spare room.
    pub fn prune(&self) {
        self.rate.retain_recent();
        self.rate.shrink_to_fit();
    }

    /// Prunes every [`PRUNE_EVERY`] until `shutdown`.
    pub async fn prune_until(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => self.prune(),
            }
        }
    }
}

/// One connection counted against its address; dropping it frees the slot.
#[derive(Debug)]
pub struct AddressSlot {
    slots: Arc<Slots>,
    key: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// A WebSocket message stream that charges each data frame to its address, and ends
/// the connection with [`CLOSE_TRY_AGAIN_LATER`] once the address's budget is spent.
pub struct AddressRateLimited<S> {
    inner: S,
    limits: Arc<AddressLimits>,
    ip: IpAddr,
    client: Arc<Client>,
    done: bool,
}

impl<S> AddressRateLimited<S> {
    /// Wraps `inner`, the messages of `client` from `ip`.
    pub fn new(inner: S, limits: Arc<AddressLimits>, ip: IpAddr, client: Arc<Client>) -> Self {
        Self {
            inner,
            limits,
            ip,
            client,
            done: false,
        }
    }
}

impl<S> Stream for AddressRateLimited<S>
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let next = Pin::new(&mut this.inner).poll_next(cx);
        if let Poll::Ready(Some(Ok(Message::Text(_) | Message::Binary(_)))) = &next
            && !this.limits.allow(this.ip)
        {
            tracing::info!(
                conn_id = this.client.id(),
                addr = %this.ip,
                "closing a connection: its address sends too fast"
            );
            this.client.close(
                CLOSE_TRY_AGAIN_LATER,
                "too many requests from this address; try again later",
            );
            this.done = true;
            return Poll::Ready(None);
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_per_address() {
        let limits = AddressLimits::new(2, 10, 10);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let first = limits.connect(a).unwrap();
        let _second = limits.connect(a).unwrap();
        assert!(limits.connect(a).is_none());
        assert!(limits.connect(b).is_some());
        drop(first);
        assert_eq!(limits.connections_of(a), 1);
        assert!(limits.connect(a).is_some());
    }

    #[test]
    fn rate_per_address_and_ipv6_by_prefix() {
        let limits = AddressLimits::new(1, 1, 3);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let same_site: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let other: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert!((0..3).all(|_| limits.allow(a)));
        assert!(!limits.allow(same_site));
        assert!(limits.allow(other));
        assert_eq!(limits.tracked_addresses(), 2);
        assert_eq!(
            limit_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
