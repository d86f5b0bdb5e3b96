//! Remembered `idempotency_key`s of `event.publish`, so that a publish resent after a
//! lost response is delivered once (docs/protocol.md, "Publishing once").
//!
//! Keys are scoped to a client identity, not to a connection, so that a client that
//! reconnects and resends still matches: the client token id (`cl_…`) or `owner`. Each
//! identity has its own [`Window`] behind its own lock; the broker holds that lock from
//! the key check through the delivery to the record of the result, so two connections
//! of one identity racing with the same key deliver once. Identities do not wait on
//! each other.
//!
//! Memory is bounded per identity: at most `limits.max_idempotency_keys` keys, each
//! for at most [`IDEMPOTENCY_WINDOW_S`] seconds, the oldest evicted first. An identity
//! whose keys have all expired is forgotten when a new identity arrives.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::connections::Client;
use crate::protocol::events::{IDEMPOTENCY_WINDOW_S, MAX_IDEMPOTENCY_KEY_CHARS, PublishResult};

/// The identity a client's keys belong to: its token id, `owner` for the owner, or its
/// connection for a connection that has neither (its keys then end with it, in effect).
pub(super) fn identity(client: &Client) -> String {
    match client.token_id() {
        Some(token_id) => token_id.to_string(),
        None if client.is_owner() => "owner".to_string(),
        None => format!("conn-{}", client.id()),
    }
}

/// Whether `key` is a valid `idempotency_key`: 1 to 128 characters, none a control
/// character (Unicode general category Cc).
pub(super) fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.chars().count() <= MAX_IDEMPOTENCY_KEY_CHARS
        && !key.chars().any(char::is_control)
}

/// The keys one identity published with, oldest first.
#[derive(Debug, Default)]
pub(super) struct Window {
    results: HashMap<Box<str>, PublishResult>,
    order: VecDeque<(Instant, Box<str>)>,
}

impl Window {
    /// Forgets the keys recorded more than `max_age` before `now`.
    pub(super) fn expire(&mut self, now: Instant, max_age: Duration) {
        while let Some((at, _)) = self.order.front()
            && now.saturating_duration_since(*at) > max_age
        {
            if let Some((_, key)) = self.order.pop_front() {
                self.results.remove(&key);
            }
        }
    }

    /// The result the first publish with `key` got, if it is still remembered.
    pub(super) fn get(&self, key: &str) -> Option<PublishResult> {
        self.results.get(key).copied()
    }

    /// Records the result of the first publish with `key`, evicting the oldest keys
    /// beyond `capacity`.
    pub(super) fn record(
        &mut self,
        key: &str,
        result: PublishResult,
        now: Instant,
        capacity: usize,
    ) {
        while self.order.len() >= capacity.max(1) {
            match self.order.pop_front() {
                Some((_, old)) => {
                    self.results.remove(&old);
                }
                None => break,
            }
        }
        let key: Box<str> = key.into();
        self.results.insert(key.clone(), result);
        self.order.push_back((now, key));
    }

    /// Keys remembered now.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }
}

/// Every identity's [`Window`].
pub(super) struct Keys {
    identities: Mutex<HashMap<String, Arc<Mutex<Window>>>>,
    /// `limits.max_idempotency_keys`.
    pub(super) capacity: usize,
    /// [`IDEMPOTENCY_WINDOW_S`].
    pub(super) max_age: Duration,
}

impl Keys {
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            identities: Mutex::default(),
            capacity,
            max_age: Duration::from_secs(IDEMPOTENCY_WINDOW_S),
        }
    }

    /// The window of `identity`, created when it has none.
    pub(super) fn window(&self, identity: String, now: Instant) -> Arc<Mutex<Window>> {
        let mut identities = self.identities.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(window) = identities.get(&identity) {
            return window.clone();
        }
        // A new identity: forget those whose keys have all expired and that nobody uses
        // now. A window in use is kept (`try_lock` fails or another `Arc` holds it).
        let max_age = self.max_age;
        identities.retain(|_, window| {
            if Arc::strong_count(window) > 1 {
                return true;
            }
            match window.try_lock() {
                Ok(mut window) => {
                    window.expire(now, max_age);
                    window.len() > 0
                }
                Err(_) => true,
            }
        });
        identities.entry(identity).or_default().clone()
    }

    /// Identities remembered now.
    #[cfg(test)]
    pub(super) fn identities(&self) -> usize {
        self.identities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Locks a window, also after a panic elsewhere (its data stays consistent: every
/// change is one insert or removal pair).
pub(super) fn lock(window: &Mutex<Window>) -> MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(|p| p.into_inner())
}
