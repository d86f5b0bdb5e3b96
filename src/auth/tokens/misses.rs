//! Remembered misses: Origins and token ids the shared database said it does not know.
//!
//! Before a client authenticates, two requests ask PostgreSQL about something the
//! client chose: an `Origin` that is not in the in-memory copy of the live tokens, and
//! the `client` of a signature challenge (`?client=cl_…`). Without this cache, a client
//! sending new Origins or ids could make every request cost a query. A miss is kept for
//! [`MISS_TTL`], at most [`MAX_MISSES`] of them (least recently used first out, with
//! `hashlink`'s LRU map), so an unknown value costs one query per TTL however often it
//! is sent, and memory stays bounded however many values are sent.
//!
//! A cached miss must never refuse a client that has just been paired or given a
//! token. So: positives are never cached (the in-memory copy and the database are the
//! truth for them); every token created or re-keyed on this instance and every pairing
//! approved on another one (the broker's `PairingResolved` control message) forgets
//! every miss ([`Misses::forget_all`]); and a lookup that started before such a change
//! does not record its now-stale miss ([`Generation`]). A reload of the copy (every
//! second) that finds a token new to it forgets every miss as well, which bounds the
//! staleness by the reload period when the broker's news is lost (NATS delivers at most
//! once) or, for a token made with `client.create` elsewhere, never sent.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// How long a miss is believed.
pub const MISS_TTL: Duration = Duration::from_secs(10);

/// The most misses kept; the least recently used go first.
pub const MAX_MISSES: usize = 4096;

/// What a remembered miss is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Miss {
    /// No live token is bound to this Origin.
    Origin(String),
    /// No live token has this id.
    Client(String),
}

/// The state of the misses when a lookup started; a miss found by that lookup is
/// recorded only if nothing was forgotten since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

struct Inner {
    generation: u64,
    entries: LruCache<Miss, Instant>,
}

/// The remembered misses. Shared by every request of the instance.
pub struct Misses {
    // A std Mutex: map operations only, never held across an await.
    inner: Mutex<Inner>,
}

impl Default for Misses {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                generation: 0,
                entries: LruCache::new(MAX_MISSES),
            }),
        }
    }
}

impl Misses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `miss` was recorded less than [`MISS_TTL`] ago, at `now`.
    pub fn known(&self, miss: &Miss, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.entries.get(miss) {
            Some(at) if now.saturating_duration_since(*at) < MISS_TTL => true,
            Some(_) => {
                inner.entries.remove(miss);
                false
            }
            None => false,
        }
    }

    /// The generation to hand to [`Misses::record`] after the lookup that starts now.
    pub fn generation(&self) -> Generation {
        Generation(self.lock().generation)
    }

    /// Records `miss`, found at `now` by a lookup started at `since`, unless the
    /// misses were forgotten meanwhile.
    pub fn record(&self, miss: Miss, since: Generation, now: Instant) {
        let mut inner = self.lock();
        if inner.generation == since.0 {
            inner.entries.insert(miss, now);
        }
    }

    /// Forgets every miss: a token was created or changed, here or elsewhere.
    pub fn forget_all(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }

    /// Misses held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_believed_for_the_ttl_only() {
        let misses = Misses::default();
        let t0 = Instant::now();
        let origin = Miss::Origin("chrome-extension://x".into());
        assert!(!misses.known(&origin, t0));
        misses.record(origin.clone(), misses.generation(), t0);
        assert!(misses.known(&origin, t0 + MISS_TTL / 2));
        assert!(!misses.known(&Miss::Client("chrome-extension://x".into()), t0));
        assert!(!misses.known(&origin, t0 + MISS_TTL));
        assert!(misses.is_empty());
    }

    #[test]
    fn forgetting_drops_misses_and_stale_lookups() {
        let misses = Misses::default();
        let now = Instant::now();
        let id = Miss::Client("cl_1".into());
        misses.record(id.clone(), misses.generation(), now);
        // A lookup starts, a token is created meanwhile, the lookup ends with a miss.
        let started = misses.generation();
        misses.forget_all();
        assert!(!misses.known(&id, now));
        misses.record(id.clone(), started, now);
        assert!(!misses.known(&id, now), "a stale miss was recorded");
    }

    #[test]
    fn the_cache_is_bounded() {
        let misses = Misses::default();
        let now = Instant::now();
        for i in 0..MAX_MISSES + 10 {
            misses.record(Miss::Client(format!("cl_{i}")), misses.generation(), now);
        }
        assert_eq!(misses.len(), MAX_MISSES);
        assert!(!misses.known(&Miss::Client("cl_0".into()), now));
        assert!(misses.known(&Miss::Client(format!("cl_{}", MAX_MISSES + 9)), now));
    }
}
