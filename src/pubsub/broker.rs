//! Event routing: subscriptions by type, fan-out to subscribers, and request/response by
//! correlation id.
//!
//! A [`Broker`] is a cheap-to-clone handle that knows connections only as [`Client`]s.
//! Types and patterns follow NATS subject syntax (dot-separated segments; see
//! [`crate::protocol::events`]). Subscriptions live in three indexes, so a publish looks
//! up its subscribers instead of testing every pattern: exact types in one map, `prefix.*`
//! patterns in another (keyed by the prefix, probed once per segment boundary of the
//! type), and `*` in a list.
//!
//! The fan-out is the hub's hot path. Each event is encoded once, as a refcounted
//! [`Utf8Bytes`], and pushed once into the broker's [`EventRing`] with the sorted list of
//! its subscribers; each subscriber's writer is woken (at most once per batch) and reads
//! what is for it with a cursor of its own. The ring is bounded in bytes per hub
//! (`limits.event_ring_bytes`), like the one `broadcast` channel of a bare server, so a
//! subscriber that stalls for a moment finds its events there and memory does not grow
//! with the number of subscribers. A subscriber that falls further behind than the ring
//! holds loses its oldest events instead of growing the hub's memory: its next delivery
//! carries `dropped`, the number it lost since its previous delivery. One that loses more
//! than `limits.max_dropped_events` in a row is closed with 1008 (RFC 6455 section
//! 7.4.1); one that stops reading altogether is also closed by the connection's write
//! timeout. This follows NATS, whose client libraries drop messages for a "slow consumer"
//! past its pending limit and whose server disconnects a client that falls too far
//! behind; here the loss is reported in-band.
//!
//! A publish may carry an `idempotency_key`: the broker remembers recent keys per client
//! identity (its token, or the owner) with the result they got, and answers a repeat
//! with that result instead of delivering again ([`idempotency`]).
//!
//! Between instances of one deployment, a [`Backplane`] carries events (the NATS one
//! lives in [`crate::pubsub::nats`]); without one, nothing leaves the process. Local delivery
//! is the same either way: the backplane is told after the local fan-out, and events
//! from other instances enter that fan-out through [`Broker::deliver_remote`].
//!
//! The file is some 750 lines because the three indexes, the fan-out that
//! walks them and the per-subscriber drop accounting share one lock and one invariant
//! (a connection matching through several patterns gets an event once). The backplane's
//! entry points ([`Broker::attach`], [`Broker::deliver_remote`],
//! [`Broker::answer_remote`] and the interest calls in `subscribe`/`removed`) stay here:
//! they are a few lines each over that same fan-out, waiter map and route table, and a
//! submodule would have to open those up. The trait, the key store, the refusals
//! ([`EventError`] and the type grammar, `rules.rs`) and the tests live in their own
//! files.

pub mod backplane;
mod idempotency;
mod rules;

pub use rules::{EventError, Pattern, check_type, parse_pattern};

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use governor::{DefaultDirectRateLimiter, Quota};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::connections::event_ring::EventRing;
use crate::connections::{CLOSE_POLICY, Client};

use self::backplane::{Backplane, InProcess};
use crate::config::Limits;
use crate::protocol::events::{
    DEFAULT_REQUEST_TIMEOUT_MS, Event, MAX_CORRELATION_ID_LEN, MAX_REQUEST_TIMEOUT_MS,
    PublishParams, PublishResult, RequestParams, SubscribeResult, UnsubscribeResult,
    connection_name, method,
};
use crate::protocol::notification;
use crate::support::metrics::EventMetrics;
use crate::support::timestamp::{format_ms, now_ms};

/// The broker's limits, from `[limits]` (docs/configuration.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerLimits {
    /// `limits.max_subscriptions`: patterns one connection may hold.
    pub max_subscriptions: usize,
    /// `limits.max_event_payload_bytes`, capped by `limits.max_message_bytes`: largest
    /// payload, as JSON.
    pub max_payload_bytes: usize,
    /// `limits.event_rate_per_s`: sustained events per second per connection; the
    /// burst is one second's worth.
    pub event_rate_per_s: u32,
    /// `limits.max_dropped_events`: events a subscriber may lose in a row before it is
    /// closed with 1008.
    pub max_dropped: u64,
    /// `limits.max_pending_requests`: `event.request`s one connection may wait on.
    pub max_pending_requests: usize,
    /// `limits.max_idempotency_keys`: `idempotency_key`s remembered per client
    /// identity; the oldest is forgotten first.
    pub max_idempotency_keys: usize,
    /// `limits.event_ring_bytes`: bytes of encoded events kept for the subscribers.
    pub event_ring_bytes: usize,
}

impl BrokerLimits {
    /// The event limits of a configuration.
    pub fn from_config(limits: &Limits) -> Self {
        Self {
            max_subscriptions: limits.max_subscriptions,
            max_payload_bytes: limits.max_event_payload_bytes.min(limits.max_message_bytes),
            event_rate_per_s: limits.event_rate_per_s,
            max_dropped: limits.max_dropped_events,
            max_pending_requests: limits.max_pending_requests,
            max_idempotency_keys: limits.max_idempotency_keys,
            event_ring_bytes: limits.event_ring_bytes,
        }
    }
}

/// What the broker keeps per connection: its client, its place as a subscriber and as a
/// publisher.
struct Conn {
    client: Arc<Client>,
    /// `conn-<id>`, encoded once.
    name: String,
    /// The last `seq` this connection published.
    seq: AtomicU64,
    limiter: DefaultDirectRateLimiter,
    /// `event.request`s waiting for an answer.
    pending: AtomicUsize,
}

impl Conn {
    fn id(&self) -> u64 {
        self.client.id()
    }
}

type Bucket = Vec<Arc<Conn>>;

#[derive(Default)]
struct Routes {
    exact: HashMap<Box<str>, Bucket>,
    prefix: HashMap<Box<str>, Bucket>,
    all: Bucket,
    /// Every connection the broker knows, with the patterns it holds.
    conns: HashMap<u64, (Arc<Conn>, HashSet<Box<str>>)>,
}

impl Routes {
    fn bucket(&mut self, pattern: Pattern<'_>) -> &mut Bucket {
        match pattern {
            Pattern::All => &mut self.all,
            Pattern::Prefix(prefix) => self.prefix.entry(prefix.into()).or_default(),
            Pattern::Exact(kind) => self.exact.entry(kind.into()).or_default(),
        }
    }

    /// Takes `conn_id` out of the pattern's bucket; true when that emptied the bucket.
    fn remove(&mut self, pattern: Pattern<'_>, conn_id: u64) -> bool {
        let (map, key) = match pattern {
            Pattern::All => {
                let before = self.all.len();
                self.all.retain(|c| c.id() != conn_id);
                return before > 0 && self.all.is_empty();
            }
            Pattern::Prefix(prefix) => (&mut self.prefix, prefix),
            Pattern::Exact(kind) => (&mut self.exact, kind),
        };
        if let Some(bucket) = map.get_mut(key) {
            bucket.retain(|c| c.id() != conn_id);
            if bucket.is_empty() {
                map.remove(key);
                return true;
            }
        }
        false
    }

    /// The subscribers of `kind` other than `sender`, each once.
    fn targets(&self, kind: &str, sender: u64) -> Vec<&Arc<Conn>> {
        // `a.b.c` is matched by `a.b.c`, `a.*`, `a.b.*` and `*`: one lookup per segment.
        let prefixes = kind
            .match_indices('.')
            .filter_map(|(at, _)| self.prefix.get(&kind[..at]));
        let mut sources = 0;
        let mut targets = Vec::new();
        let fixed = [self.exact.get(kind), Some(&self.all)];
        for bucket in fixed.into_iter().flatten().chain(prefixes) {
            if !bucket.is_empty() {
                sources += 1;
                targets.extend(bucket.iter().filter(|c| c.id() != sender));
            }
        }
        if sources > 1 {
            // A connection may match through several patterns; it gets the event once.
            targets.sort_unstable_by_key(|c| c.id());
            targets.dedup_by_key(|c| c.id());
        }
        targets
    }
}

struct Inner {
    limits: BrokerLimits,
    metrics: EventMetrics,
    // std locks: held for lookups and non-blocking pushes, never across an await.
    routes: RwLock<Routes>,
    waiters: Mutex<HashMap<String, oneshot::Sender<Event>>>,
    keys: idempotency::Keys,
    /// The encoded events the subscribers' writers read.
    ring: Arc<EventRing>,
    /// Set once by [`Broker::attach`]; unset, nothing leaves the process.
    backplane: OnceLock<Attached>,
}

/// A backplane and this instance's tag in `from`.
struct Attached {
    backplane: Arc<dyn Backplane>,
    /// Appended to `conn-<id>` as `@<instance>`, so that publishers on different
    /// instances never share a name.
    instance: String,
}

/// The `sender` of an event that came from another instance: no local connection.
const REMOTE: u64 = u64::MAX;

/// The event router. Cheap to clone; every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl Broker {
    /// A broker with no subscriptions, counting into `metrics`.
    pub fn new(limits: BrokerLimits, metrics: EventMetrics) -> Self {
        Self {
            inner: Arc::new(Inner {
                limits,
                metrics,
                routes: RwLock::default(),
                waiters: Mutex::default(),
                keys: idempotency::Keys::new(limits.max_idempotency_keys),
                ring: EventRing::new(limits.event_ring_bytes),
                backplane: OnceLock::new(),
            }),
        }
    }

    /// Connects the broker to the other instances of a deployment, before the first
    /// connection arrives: events published here are handed to `backplane` after the
    /// local fan-out, and publishers are named `conn-<id>@<instance>` in `from`. A
    /// second call is ignored (the first backplane stays).
    pub fn attach(&self, backplane: Arc<dyn Backplane>, instance: &str) {
        let attached = Attached {
            backplane,
            instance: instance.to_string(),
        };
        if self.inner.backplane.set(attached).is_err() {
            tracing::warn!("the broker already has a backplane; the second one is ignored");
        }
    }

    /// The attached backplane, or [`InProcess`] (nothing leaves the process).
    fn backplane(&self) -> &dyn Backplane {
        match self.inner.backplane.get() {
            Some(attached) => attached.backplane.as_ref(),
            None => &InProcess,
        }
    }

    /// Delivers an event published on another instance to this instance's subscribers
    /// of its type, through the same fan-out as a local publish; it is not handed to the
    /// backplane again and answers no `event.request` (answers come through
    /// [`Broker::answer_remote`]). Returns how many queues took it.
    ///
    /// An event whose payload is over `limits.max_event_payload_bytes` is dropped (the
    /// publishing instance should have refused it; it may be configured otherwise).
    pub fn deliver_remote(&self, event: &Event) -> usize {
        if !self.fits(event) {
            return 0;
        }
        self.fan_out(event, REMOTE)
    }

    fn fits(&self, event: &Event) -> bool {
        let size = event.payload.get().len();
        let fits = size <= self.inner.limits.max_payload_bytes;
        if !fits {
            tracing::warn!(
                size,
                from = %event.from,
                "event from another instance is over the payload limit; dropped"
            );
        }
        fits
    }

    /// Resolves this instance's `event.request` that waits for `event.correlation_id`,
    /// with an answer published on another instance. Returns whether one waited.
    pub fn answer_remote(&self, event: Event) -> bool {
        let Some(id) = event.correlation_id.as_deref() else {
            return false;
        };
        if !self.fits(&event) {
            return false;
        }
        let waiter = self.waiters().remove(id);
        waiter.is_some_and(|waiter| waiter.send(event).is_ok())
    }

    fn read(&self) -> RwLockReadGuard<'_, Routes> {
        self.inner.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Routes> {
        self.inner.routes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<String, oneshot::Sender<Event>>> {
        self.inner.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_conn(&self, client: &Arc<Client>) -> Arc<Conn> {
        let rate = std::num::NonZeroU32::new(self.inner.limits.event_rate_per_s)
            .unwrap_or(std::num::NonZeroU32::MIN);
        Arc::new(Conn {
            client: client.clone(),
            name: match self.inner.backplane.get() {
                Some(attached) => format!("{}@{}", connection_name(client.id()), attached.instance),
                None => connection_name(client.id()),
            },
            seq: AtomicU64::new(0),
            limiter: crate::support::rate_limit::direct(Quota::per_second(rate)),
            pending: AtomicUsize::new(0),
        })
    }

    fn conn(&self, client: &Arc<Client>) -> Arc<Conn> {
        if let Some((conn, _)) = self.read().conns.get(&client.id()) {
            return conn.clone();
        }
        let mut routes = self.write();
        let entry = routes
            .conns
            .entry(client.id())
            .or_insert_with(|| (self.new_conn(client), HashSet::new()));
        entry.0.clone()
    }

    /// `event.subscribe`: adds every pattern of `types`, or none of them.
    ///
    /// # Errors
    /// [`EventError::NoTypes`], [`EventError::InvalidType`] naming the first bad pattern,
    /// [`EventError::TooManySubscriptions`] when the new ones would not fit.
    pub fn subscribe(
        &self,
        client: &Arc<Client>,
        types: Vec<String>,
    ) -> Result<SubscribeResult, EventError> {
        if types.is_empty() {
            return Err(EventError::NoTypes);
        }
        for text in &types {
            parse_pattern(text)?;
        }
        let mut seen = HashSet::new();
        let types: Vec<String> = types
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        let mut routes = self.write();
        let (conn, held) = routes
            .conns
            .entry(client.id())
            .or_insert_with(|| (self.new_conn(client), HashSet::new()));
        let conn = conn.clone();
        let fresh: Vec<&String> = types
            .iter()
            .filter(|t| !held.contains(t.as_str()))
            .collect();
        let limit = self.inner.limits.max_subscriptions;
        if held.len() + fresh.len() > limit {
            return Err(EventError::TooManySubscriptions {
                limit,
                total: held.len(),
            });
        }
        held.extend(fresh.iter().map(|t| Box::from(t.as_str())));
        let total = held.len();
        // Under the routes lock, before it can be any event's target: its cursor starts
        // before every event it is a target of.
        client.attach_events(&self.inner.ring);
        let backplane = self.backplane();
        for text in fresh {
            if let Ok(pattern) = parse_pattern(text) {
                let bucket = routes.bucket(pattern);
                if bucket.is_empty() {
                    backplane.interest_added(text);
                }
                bucket.push(conn.clone());
            }
        }
        Ok(SubscribeResult {
            subscribed: types,
            total,
        })
    }

    /// `event.unsubscribe`: removes the patterns of `types` the connection holds.
    /// Patterns it does not hold are left out of `unsubscribed`, not refused.
    ///
    /// # Errors
    /// [`EventError::NoTypes`], [`EventError::InvalidType`].
    pub fn unsubscribe(
        &self,
        client: &Client,
        types: Vec<String>,
    ) -> Result<UnsubscribeResult, EventError> {
        if types.is_empty() {
            return Err(EventError::NoTypes);
        }
        for text in &types {
            parse_pattern(text)?;
        }
        let mut routes = self.write();
        let Some((_, held)) = routes.conns.get_mut(&client.id()) else {
            return Ok(UnsubscribeResult {
                unsubscribed: Vec::new(),
                total: 0,
            });
        };
        let unsubscribed: Vec<String> = types
            .into_iter()
            .filter(|t| held.remove(t.as_str()))
            .collect();
        let total = held.len();
        for text in &unsubscribed {
            if let Ok(pattern) = parse_pattern(text) {
                self.removed(&mut routes, pattern, text, client.id());
            }
        }
        Ok(UnsubscribeResult {
            unsubscribed,
            total,
        })
    }

    /// Forgets a connection that ended: its subscriptions and its publisher state. Its
    /// waiting `event.request`s end with the connection's own tasks.
    pub fn disconnect(&self, client_id: u64) {
        let mut routes = self.write();
        let Some((_, held)) = routes.conns.remove(&client_id) else {
            return;
        };
        for text in &held {
            if let Ok(pattern) = parse_pattern(text) {
                self.removed(&mut routes, pattern, text, client_id);
            }
        }
    }

    /// Takes a connection out of a pattern's bucket, and tells the backplane when it
    /// was the last.
    fn removed(&self, routes: &mut Routes, pattern: Pattern<'_>, text: &str, conn_id: u64) {
        if routes.remove(pattern, conn_id) {
            self.backplane().interest_removed(text);
        }
    }

    /// The patterns a connection holds.
    #[cfg(test)]
    fn subscriptions(&self, client_id: u64) -> usize {
        self.read()
            .conns
            .get(&client_id)
            .map_or(0, |(_, held)| held.len())
    }

    /// `event.publish`: delivers the event to every subscriber of its type except the
    /// sender, and answers the waiting `event.request` its `correlation_id` names.
    ///
    /// With an `idempotency_key` that the client's identity (token, or the owner) already
    /// published with in the last
    /// [`IDEMPOTENCY_WINDOW_S`](crate::protocol::events::IDEMPOTENCY_WINDOW_S) seconds
    /// and that was not evicted since, nothing is delivered and the first publish's
    /// result is returned, whatever type and payload the repeat carries. The identity's keys stay
    /// locked from the check to the record, so a concurrent duplicate waits and then
    /// gets that result. A publish that fails records nothing.
    ///
    /// # Errors
    /// [`EventError::InvalidType`], [`EventError::InvalidCorrelationId`],
    /// [`EventError::InvalidIdempotencyKey`], [`EventError::PayloadTooLarge`],
    /// [`EventError::RateLimited`].
    pub fn publish(
        &self,
        client: &Arc<Client>,
        mut params: PublishParams,
    ) -> Result<PublishResult, EventError> {
        check_type(&params.kind)?;
        if let Some(id) = &params.correlation_id
            && (id.is_empty() || id.len() > MAX_CORRELATION_ID_LEN)
        {
            return Err(EventError::InvalidCorrelationId);
        }
        let key = params.idempotency_key.take();
        if let Some(key) = &key
            && !idempotency::is_valid_key(key)
        {
            return Err(EventError::InvalidIdempotencyKey);
        }
        let payload = self.encode_payload(&params.payload)?;
        let Some(key) = key else {
            return self.publish_now(client, params, payload);
        };
        let keys = &self.inner.keys;
        let window = keys.window(idempotency::identity(client), Instant::now());
        // Held through the delivery: the check and the delivery are one step for this
        // identity. Only std locks that are never held across an await are taken inside.
        let mut window = idempotency::lock(&window);
        // Read under the lock, so that one identity's keys are recorded in time order.
        let now = Instant::now();
        window.expire(now, keys.max_age);
        if let Some(first) = window.get(&key) {
            tracing::debug!(
                conn_id = client.id(),
                "repeated idempotency key; not delivered again"
            );
            return Ok(first);
        }
        let result = self.publish_now(client, params, payload)?;
        window.record(&key, result, now, keys.capacity);
        Ok(result)
    }

    /// Admits, stamps and delivers a checked publish.
    fn publish_now(
        &self,
        client: &Arc<Client>,
        params: PublishParams,
        payload: Box<RawValue>,
    ) -> Result<PublishResult, EventError> {
        let conn = self.conn(client);
        self.admit(&conn)?;
        let event = self.stamp(&conn, params.kind, payload, params.correlation_id);
        let mut delivered = self.fan_out(&event, conn.id());
        let mut answered = false;
        if let Some(id) = &event.correlation_id {
            let waiter = self.waiters().remove(id.as_str());
            if let Some(waiter) = waiter
                && waiter.send(event.clone()).is_ok()
            {
                delivered += 1;
                answered = true;
            }
        }
        let seq = event.seq;
        let backplane = self.backplane();
        if event.correlation_id.is_some() && !answered {
            backplane.answer(&event);
        }
        backplane.publish(&event);
        Ok(PublishResult { delivered, seq })
    }

    /// `event.request`: publishes the event with a fresh correlation id and returns the
    /// wait for its answer, to be awaited after the call returns.
    ///
    /// # Errors
    /// As [`Broker::publish`], plus [`EventError::InvalidTimeout`] and
    /// [`EventError::TooManyRequests`].
    pub fn request(
        &self,
        client: &Arc<Client>,
        params: RequestParams,
    ) -> Result<PendingRequest, EventError> {
        check_type(&params.kind)?;
        let timeout_ms = params.timeout_ms.unwrap_or(DEFAULT_REQUEST_TIMEOUT_MS);
        if !(1..=MAX_REQUEST_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(EventError::InvalidTimeout);
        }
        let payload = self.encode_payload(&params.payload)?;
        let conn = self.conn(client);
        let limit = self.inner.limits.max_pending_requests;
        if conn.pending.load(Ordering::Relaxed) >= limit {
            return Err(EventError::TooManyRequests { limit });
        }
        self.admit(&conn)?;
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let (answer, receiver) = oneshot::channel();
        // Registered before the event goes out, so that no answer can come too early.
        self.waiters().insert(correlation_id.clone(), answer);
        conn.pending.fetch_add(1, Ordering::Relaxed);
        let mut pending = PendingRequest {
            broker: self.clone(),
            conn: conn.clone(),
            correlation_id: correlation_id.clone(),
            receiver,
            timeout_ms,
            delivered: 0,
        };
        let event = self.stamp(&conn, params.kind, payload, Some(correlation_id));
        pending.delivered = self.fan_out(&event, conn.id());
        self.backplane().publish(&event);
        Ok(pending)
    }

    fn encode_payload(&self, payload: &Value) -> Result<Box<RawValue>, EventError> {
        let limit = self.inner.limits.max_payload_bytes;
        let raw = serde_json::value::to_raw_value(payload)?;
        let size = raw.get().len();
        if size > limit {
            return Err(EventError::PayloadTooLarge { size, limit });
        }
        Ok(raw)
    }

    fn admit(&self, conn: &Conn) -> Result<(), EventError> {
        conn.limiter.check().map_err(|_| EventError::RateLimited {
            rate: self.inner.limits.event_rate_per_s,
        })
    }

    fn stamp(
        &self,
        conn: &Conn,
        kind: String,
        payload: Box<RawValue>,
        correlation_id: Option<String>,
    ) -> Event {
        self.inner.metrics.published.inc();
        Event {
            kind,
            payload,
            correlation_id,
            from: conn.name.clone(),
            seq: conn.seq.fetch_add(1, Ordering::Relaxed) + 1,
            ts: format_ms(now_ms()),
            dropped: None,
        }
    }

    /// Pushes the event into the ring for its subscribers (those not closing); returns
    /// how many it is for.
    fn fan_out(&self, event: &Event, sender: u64) -> usize {
        let mut targets: Vec<Arc<Client>> = {
            let routes = self.read();
            routes
                .targets(&event.kind, sender)
                .into_iter()
                .filter(|conn| !conn.client.closed().is_cancelled())
                .map(|conn| conn.client.clone())
                .collect()
        };
        if targets.is_empty() {
            return 0;
        }
        // The ring looks its readers up by id; a bucket is in subscription order.
        targets.sort_unstable_by_key(|client| client.id());
        let delivered = targets.len();
        // Encoded once; the ring holds it once for all its targets.
        let message = Utf8Bytes::from(notification(method::EVENT, event));
        let pushed = self
            .inner
            .ring
            .push(message, targets, self.inner.limits.max_dropped);
        let metrics = &self.inner.metrics;
        metrics.delivered.inc_by(delivered as u64);
        metrics
            .ring_bytes
            .set(i64::try_from(pushed.bytes).unwrap_or(i64::MAX));
        if pushed.lost > 0 {
            metrics.dropped.inc_by(pushed.lost);
        }
        for client in pushed.too_slow {
            metrics.slow_closed.inc();
            tracing::warn!(
                conn_id = client.id(),
                dropped = client.missed_events(),
                "subscriber lost too many events in a row"
            );
            client.close(CLOSE_POLICY, "subscriber is too slow for its events");
        }
        delivered
    }

    /// The ring the subscribers read (for tests).
    #[cfg(test)]
    pub fn ring(&self) -> &Arc<EventRing> {
        &self.inner.ring
    }
}

/// An `event.request` waiting for its answer. Dropping it gives up the wait.
pub struct PendingRequest {
    broker: Broker,
    conn: Arc<Conn>,
    correlation_id: String,
    receiver: oneshot::Receiver<Event>,
    timeout_ms: u64,
    delivered: usize,
}

impl std::fmt::Debug for PendingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRequest")
            .field("correlation_id", &self.correlation_id)
            .field("timeout_ms", &self.timeout_ms)
            .field("delivered", &self.delivered)
            .finish()
    }
}

impl PendingRequest {
    /// The correlation id the request event carries.
    #[cfg(test)]
    fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Subscribers the request event reached.
    #[cfg(test)]
    fn delivered(&self) -> usize {
        self.delivered
    }

    /// Waits for the first `event.publish` that carries the request's correlation id.
    ///
    /// # Errors
    /// [`EventError::Timeout`] when none comes within `timeout_ms`.
    pub async fn answer(mut self) -> Result<Event, EventError> {
        let wait = Duration::from_millis(self.timeout_ms);
        let metrics = &self.broker.inner.metrics;
        match tokio::time::timeout(wait, &mut self.receiver).await {
            Ok(Ok(event)) => {
                metrics.answered.inc();
                Ok(event)
            }
            _ => {
                metrics.timed_out.inc();
                Err(EventError::Timeout {
                    correlation_id: self.correlation_id.clone(),
                    timeout_ms: self.timeout_ms,
                    delivered: self.delivered,
                })
            }
        }
    }
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        self.broker.waiters().remove(&self.correlation_id);
        self.conn.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
