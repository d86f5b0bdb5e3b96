//! The hub's one ring of encoded `event` frames, read by every subscriber's writer with a
//! cursor of its own.
//!
//! The broker pushes each event once: its frame (encoded once, refcounted) and the sorted
//! connections it is for. Each target's writer is woken (one [`Notify`] permit per
//! connection, so a burst costs a subscriber one wake-up, not one per event), reads what
//! is for it after its cursor and writes it in one batch. The ring is bounded in bytes
//! (`limits.event_ring_bytes`, docs/configuration.md), not per connection, the way the
//! bare server's one `broadcast` channel is: the memory events can hold is bounded per
//! hub whatever the number of subscribers, and a subscriber that stalls for a moment
//! finds its events still there.
//!
//! When the bound pushes the oldest entry out, each of its targets whose cursor had not
//! passed it loses that event: it is counted in the target's `missed`, reported as
//! `dropped` on its next delivery and in `semantest_hub_event_deliveries_total
//! {outcome="dropped"}`, and the caller closes a target that lost more than
//! `limits.max_dropped_events` in a row ([`Pushed::too_slow`]). Only the events that
//! were for a subscriber count against it.
//!
//! Locking: one std `RwLock`, never held across an await. Publishers take it to write
//! (append, evict); writers take it to read (copy the frames after their cursor, which is
//! advanced under the lock), so an eviction never races a read of the same cursor.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use super::Client;

/// One event for some of the hub's connections.
struct Entry {
    /// The `event` notification as sent, shared by every target.
    frame: Utf8Bytes,
    /// The connections it is for, sorted by id, each once.
    targets: Box<[Arc<Client>]>,
    /// What the entry counts against the bound: frame, targets and bookkeeping.
    bytes: usize,
}

struct State {
    entries: VecDeque<Entry>,
    /// Position of `entries[0]`; the next push gets `first + entries.len()`.
    first: u64,
    /// Sum of the entries' `bytes`.
    bytes: usize,
}

/// What a push pushed out of the ring, for the caller's metrics and its slow-subscriber
/// rule.
#[derive(Default)]
pub struct Pushed {
    /// Deliveries lost: evicted entries' targets whose cursor had not passed them.
    pub lost: u64,
    /// Targets that just lost more than the caller's `max_dropped` events in a row (each
    /// once per run of losses); the caller closes them.
    pub too_slow: Vec<Arc<Client>>,
    /// Bytes the ring holds after the push.
    pub bytes: usize,
}

/// The ring of encoded event frames, bounded in bytes. One per broker; cheap to share
/// as `Arc`.
pub struct EventRing {
    state: RwLock<State>,
    /// `limits.event_ring_bytes`.
    limit: usize,
}

impl std::fmt::Debug for EventRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRing")
            .field("limit", &self.limit)
            .field("bytes", &self.bytes())
            .finish()
    }
}

/// A connection's place as a reader of the ring: kept in its [`Client`].
#[derive(Default)]
pub(crate) struct Inbox {
    /// Set by the first subscription ([`Client::attach_events`]). Weak: the ring's
    /// entries hold their targets, which must not keep the ring alive.
    ring: OnceLock<Weak<EventRing>>,
    /// The position of the next entry to look at. Written under the ring's lock only.
    cursor: AtomicU64,
    /// Events for this connection pushed out of the ring before it read them, since its
    /// last delivery. Written under the ring's lock only.
    missed: AtomicU64,
    /// A permit when entries for it were pushed since the writer last looked.
    ready: Notify,
}

/// Bookkeeping an entry costs besides its frame and targets, for the bound.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 64;

impl EventRing {
    /// An empty ring that holds at most `limit` bytes of entries (at least the newest
    /// one, whatever its size).
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            state: RwLock::new(State {
                entries: VecDeque::new(),
                first: 0,
                bytes: 0,
            }),
            limit,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes the entries hold now, at most the limit plus one entry.
    pub fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// Entries held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether the ring holds no entry.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `frame` for `targets` (sorted by id, each once: the caller's contract),
    /// pushes out the oldest entries past the bound, and wakes the targets' writers.
    /// A target that loses more than `max_dropped` events in a row is returned in
    /// [`Pushed::too_slow`].
    pub fn push(&self, frame: Utf8Bytes, targets: Vec<Arc<Client>>, max_dropped: u64) -> Pushed {
        debug_assert!(targets.windows(2).all(|w| w[0].id() < w[1].id()));
        let bytes =
            frame.len() + targets.len() * std::mem::size_of::<Arc<Client>>() + ENTRY_OVERHEAD;
        let targets = targets.into_boxed_slice();
        let mut pushed = Pushed::default();
        {
            let mut state = self.write();
            Self::let_go_of_read(&mut state);
            state.bytes += bytes;
            state.entries.push_back(Entry {
                frame,
                targets: targets.clone(),
                bytes,
            });
            while state.bytes > self.limit && state.entries.len() > 1 {
                let Some(entry) = state.entries.pop_front() else {
                    break;
                };
                let seq = state.first;
                state.first += 1;
                state.bytes -= entry.bytes;
                for client in entry.targets.iter() {
                    let inbox = &client.events;
                    if inbox.cursor.load(Ordering::Relaxed) > seq {
                        continue;
                    }
                    pushed.lost += 1;
                    let missed = inbox.missed.fetch_add(1, Ordering::Relaxed) + 1;
                    if missed == max_dropped.saturating_add(1) && !client.closed().is_cancelled() {
                        pushed.too_slow.push(client.clone());
                    }
                }
            }
            pushed.bytes = state.bytes;
        }
        // After the lock: a woken writer finds the entry there.
        for client in targets.iter() {
            client.events.ready.notify_one();
        }
        pushed
    }

    /// Drops the oldest entries that every target has read (or closed), so that the
    /// ring holds only what some subscriber still needs: after a burst it shrinks as
    /// the readers catch up instead of keeping up to its bound, and a closed
    /// connection is not kept alive by entries it will never read. Stops at the first
    /// entry a target still needs, which keeps the entries in order.
    fn let_go_of_read(state: &mut State) {
        while let Some(front) = state.entries.front() {
            let seq = state.first;
            let needed = front.targets.iter().any(|client| {
                client.events.cursor.load(Ordering::Relaxed) <= seq
                    && !client.closed().is_cancelled()
            });
            if needed {
                break;
            }
            state.bytes -= front.bytes;
            state.entries.pop_front();
            state.first += 1;
        }
    }

    /// The position the next push gets.
    fn end(state: &State) -> u64 {
        state.first + state.entries.len() as u64
    }

    /// Copies into `out` the frames for `client` after its cursor and before position
    /// `until`, up to about `budget` bytes (at least one frame), and moves the cursor past
    /// what it looked at. The first frame after a loss carries `dropped`. Returns whether
    /// more before `until` may be waiting.
    fn take(&self, client: &Client, budget: usize, until: u64, out: &mut Vec<Utf8Bytes>) -> bool {
        let inbox = &client.events;
        let state = self.read();
        let end = Self::end(&state).min(until);
        // A cursor behind `first` fell out of the ring: what it missed is in `missed`.
        let mut at = inbox.cursor.load(Ordering::Relaxed).max(state.first);
        // A reader at the oldest entry may be the last one that needed it.
        let was_first = at == state.first;
        let mut bytes = 0;
        let id = client.id();
        while at < end && bytes < budget {
            let entry = &state.entries[(at - state.first) as usize];
            at += 1;
            if entry.targets.binary_search_by_key(&id, |c| c.id()).is_err() {
                continue;
            }
            let lost = match inbox.missed.load(Ordering::Relaxed) {
                0 => 0,
                _ => inbox.missed.swap(0, Ordering::Relaxed),
            };
            let frame = if lost == 0 {
                entry.frame.clone()
            } else {
                with_dropped(&entry.frame, lost)
            };
            bytes += frame.len();
            out.push(frame);
        }
        inbox.cursor.store(at, Ordering::Relaxed);
        drop(state);
        // Never waits for the lock: a publisher that holds it lets go of the same
        // entries on its push.
        if was_first && let Ok(mut state) = self.state.try_write() {
            Self::let_go_of_read(&mut state);
        }
        at < end
    }
}

/// `frame`, an `event` notification without `dropped`, with `"dropped": lost` added as
/// the last field of its params (where [`crate::protocol::events::Event`] serializes it):
/// the frame ends with the params' and the envelope's closing braces.
fn with_dropped(frame: &str, lost: u64) -> Utf8Bytes {
    let body = frame.strip_suffix("}}").unwrap_or(frame);
    Utf8Bytes::from(format!("{body},\"dropped\":{lost}}}}}"))
}

impl Client {
    /// Makes this connection a reader of `ring` from its current end, on its first
    /// subscription (later calls do nothing). The broker calls it under its routes lock,
    /// before the connection can be any event's target, so no event for it is pushed
    /// before its cursor.
    pub fn attach_events(&self, ring: &Arc<EventRing>) {
        if self.events.ring.get().is_some() {
            return;
        }
        let state = ring.read();
        self.events
            .cursor
            .store(EventRing::end(&state), Ordering::Relaxed);
        drop(state);
        let _ = self.events.ring.set(Arc::downgrade(ring));
    }

    /// Waits until events for this connection may be in the ring. Spurious wake-ups
    /// happen (a permit left by a batch already read); [`Client::take_events`] then finds
    /// nothing.
    pub async fn events_ready(&self) {
        self.events.ready.notified().await;
    }

    /// Copies the frames for this connection that the ring holds after its cursor and
    /// before position `until` ([`Client::events_end`], or `u64::MAX` for all) into
    /// `out`, up to about `budget` bytes, oldest first. Returns whether more may be
    /// waiting (then the connection's writer comes back for them without a wake-up).
    pub fn take_events(&self, budget: usize, until: u64, out: &mut Vec<Utf8Bytes>) -> bool {
        match self.events.ring.get().and_then(Weak::upgrade) {
            Some(ring) => ring.take(self, budget, until, out),
            None => false,
        }
    }

    /// The ring position the next event gets: every event published before this call
    /// is before it. 0 for a connection that never subscribed.
    pub fn events_end(&self) -> u64 {
        match self.events.ring.get().and_then(Weak::upgrade) {
            Some(ring) => EventRing::end(&ring.read()),
            None => 0,
        }
    }

    /// Events this connection lost to the ring's bound since its last delivery.
    pub fn missed_events(&self) -> u64 {
        self.events.missed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::connections::{Clients, NewClient};
    use crate::protocol::events::Event;
    use crate::protocol::scopes::Scopes;

    fn client(clients: &Clients) -> Arc<Client> {
        clients
            .register(NewClient {
                origin: None,
                remote_addr: "127.0.0.1:1".parse().unwrap(),
                is_owner: true,
                token_id: None,
                scopes: Scopes::all(),
                queue: 8,
                shutdown: CancellationToken::new(),
                patience: Duration::from_secs(5),
                mode: crate::config::Mode::Local,
                session: None,
            })
            .0
    }

    fn event(seq: u64, dropped: Option<u64>) -> Event {
        Event {
            kind: "t".into(),
            payload: serde_json::value::to_raw_value(&"x".repeat(1000)).unwrap(),
            correlation_id: None,
            from: "conn-1".into(),
            seq,
            ts: "2026-01-01T00:00:00.000Z".into(),
            dropped,
        }
    }

    fn frame(seq: u64) -> Utf8Bytes {
        Utf8Bytes::from(crate::protocol::notification("event", &event(seq, None)))
    }

    fn seqs(client: &Client) -> Vec<(u64, Option<u64>)> {
        let mut out = Vec::new();
        while client.take_events(4096, u64::MAX, &mut out) {}
        out.iter()
            .map(|text| {
                let value: serde_json::Value = serde_json::from_str(text).unwrap();
                let params = &value["params"];
                (params["seq"].as_u64().unwrap(), params["dropped"].as_u64())
            })
            .collect()
    }

    #[test]
    fn the_ring_holds_at_most_its_bound_in_bytes_whatever_the_readers_do() {
        let clients = Clients::default();
        let ring = EventRing::new(16 * 1024);
        assert!(ring.is_empty());
        let stalled = client(&clients);
        stalled.attach_events(&ring);
        let entry = frame(1).len();
        for seq in 1..=1000 {
            ring.push(frame(seq), vec![stalled.clone()], u64::MAX);
            assert!(ring.bytes() <= 16 * 1024, "{} bytes", ring.bytes());
        }
        // Full: as many 1 KiB entries as fit, not one per push.
        assert!(ring.len() < 16 * 1024 / entry + 1);
        assert!(ring.len() >= 16 * 1024 / (entry + 2 * ENTRY_OVERHEAD));
        // An entry larger than the bound is kept alone, the newest.
        let big = Utf8Bytes::from("x".repeat(64 * 1024));
        ring.push(big, vec![stalled.clone()], u64::MAX);
        assert_eq!(ring.len(), 1);
    }

    #[test]
    fn a_reader_that_falls_out_loses_only_its_own_events_and_is_told_once() {
        let clients = Clients::default();
        let ring = EventRing::new(8 * 1024);
        let (all, odd) = (client(&clients), client(&clients));
        all.attach_events(&ring);
        odd.attach_events(&ring);
        let mut lost = 0;
        for seq in 1..=40 {
            let targets = if seq % 2 == 1 {
                vec![all.clone(), odd.clone()]
            } else {
                vec![all.clone()]
            };
            lost += ring.push(frame(seq), targets, u64::MAX).lost;
        }
        let kept = ring.len() as u64;
        let first_kept = 40 - kept + 1;
        let all_missed = first_kept - 1;
        let odd_missed = (1..first_kept).filter(|s| s % 2 == 1).count() as u64;
        assert_eq!(all.missed_events(), all_missed);
        assert_eq!(odd.missed_events(), odd_missed);
        assert_eq!(lost, all_missed + odd_missed);
        // The first delivery after the loss carries it; the rest do not.
        let got = seqs(&all);
        assert_eq!(got[0], (first_kept, Some(all_missed)));
        assert_eq!(got.len() as u64, kept);
        assert!(got[1..].iter().all(|(_, dropped)| dropped.is_none()));
        let got = seqs(&odd);
        let first_odd = (first_kept..=40).find(|s| s % 2 == 1).unwrap();
        assert_eq!(got[0], (first_odd, Some(odd_missed)));
        assert!(got.iter().all(|(seq, _)| seq % 2 == 1));
        assert_eq!(all.missed_events() + odd.missed_events(), 0);
        // A reader that keeps up loses nothing more.
        for seq in 41..=200 {
            assert_eq!(ring.push(frame(seq), vec![all.clone()], u64::MAX).lost, 0);
            assert_eq!(seqs(&all), [(seq, None)]);
        }
    }

    #[test]
    fn entries_every_target_has_read_or_closed_are_let_go() {
        let clients = Clients::default();
        let ring = EventRing::new(1 << 20);
        let (fast, slow) = (client(&clients), client(&clients));
        fast.attach_events(&ring);
        slow.attach_events(&ring);
        for seq in 1..=10 {
            ring.push(frame(seq), vec![fast.clone(), slow.clone()], u64::MAX);
        }
        ring.push(frame(11), vec![fast.clone()], u64::MAX);
        assert_eq!(seqs(&fast).len(), 11);
        // The slow reader still needs the first ten; the eleventh is behind them.
        assert_eq!(ring.len(), 11);
        assert_eq!(seqs(&slow).len(), 10);
        // Everything was read: the ring is empty, it does not stay at its high mark.
        assert!(ring.is_empty(), "{} entries left", ring.len());
        assert_eq!(ring.bytes(), 0);
        // A closed target holds nothing: its entries go at the next push.
        ring.push(frame(12), vec![slow.clone()], u64::MAX);
        slow.close(1000, "bye");
        ring.push(frame(13), vec![fast.clone()], u64::MAX);
        assert_eq!(ring.len(), 1);
        assert_eq!(seqs(&fast), [(13, None)]);
        assert!(ring.is_empty());
        assert_eq!(slow.missed_events(), 0);
    }

    #[test]
    fn a_reader_past_the_drop_bound_is_reported_once() {
        let clients = Clients::default();
        let ring = EventRing::new(4 * 1024);
        let stalled = client(&clients);
        stalled.attach_events(&ring);
        let mut too_slow = 0;
        for seq in 1..=100 {
            too_slow += ring
                .push(frame(seq), vec![stalled.clone()], 5)
                .too_slow
                .len();
        }
        assert_eq!(too_slow, 1);
        assert!(stalled.missed_events() > 5);
    }

    #[test]
    fn a_reader_sees_nothing_published_before_it_attached_and_stops_at_until() {
        let clients = Clients::default();
        let ring = EventRing::new(1 << 20);
        let reader = client(&clients);
        ring.push(frame(1), vec![reader.clone()], u64::MAX);
        reader.attach_events(&ring);
        ring.push(frame(2), vec![reader.clone()], u64::MAX);
        let until = reader.events_end();
        ring.push(frame(3), vec![reader.clone()], u64::MAX);
        let mut out = Vec::new();
        assert!(!reader.take_events(1 << 20, until, &mut out));
        assert_eq!(out.len(), 1);
        assert_eq!(seqs(&reader), [(3, None)]);
    }

    #[test]
    fn the_dropped_count_is_spliced_where_the_event_encodes_it() {
        for lost in [1, 42, u64::MAX] {
            assert_eq!(
                with_dropped(&frame(7), lost).as_str(),
                crate::protocol::notification("event", &event(7, Some(lost)))
            );
        }
    }
}
