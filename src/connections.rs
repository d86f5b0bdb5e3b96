//! Connected clients: one [`Client`] handle per WebSocket, and the registry of them.
//!
//! Everything sent to a client goes through its bounded outgoing queue, drained by the
//! connection's writer task, except `event` deliveries: those the writer reads from the
//! broker's one [`event_ring::EventRing`], bounded in bytes per hub. Pushes never wait: a broadcast notification that finds the
//! queue full waits in the client's overflow, which is bounded too and moved into the
//! queue in order by the connection's writer as it makes room (no task per message or
//! per client). A client that makes no room for the write timeout, or lets the overflow
//! fill, has stopped reading, and it is closed with 1008
//! (policy violation, RFC 6455 section 7.4.1) instead of being buffered without end.

pub mod event_ring;
pub(crate) mod tcp;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Mode;
use crate::protocol::Role;
pub use crate::protocol::hub::ClientInfo;
use crate::protocol::scopes::Scopes;
use crate::support::timestamp::format_ms;

/// Close code for a client that does not read fast enough (RFC 6455 section 7.4.1).
pub const CLOSE_POLICY: u16 = 1008;

/// Close code when the hub shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a message over the size limit.
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a frame that breaks RFC 6455 (reserved bits or opcodes, bad
/// fragmentation, an unmasked frame, a bad close frame), RFC 6455 section 7.4.1.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code for a text message that is not valid UTF-8, RFC 6455 sections 8.1, 7.4.1.
pub const CLOSE_INVALID_DATA: u16 = 1007;
/// Close code for a normal close, used for the idle timeout.
pub const CLOSE_NORMAL: u16 = 1000;

/// The result of [`Client::try_push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The message is queued.
    Queued,
    /// The queue is full; nothing was queued.
    Full,
    /// The connection is gone.
    Gone,
}

struct Mutable {
    role: Role,
    name: Option<String>,
}

/// Broadcast notifications that found the queue full, waiting in order for room.
#[derive(Default)]
struct Overflow {
    /// Messages that found the queue full, with the time each began to wait. While any
    /// waits, new pushes wait behind it, so that notifications keep their order.
    waiting: VecDeque<(Utf8Bytes, tokio::time::Instant)>,
}

/// One connected client. Shared by its connection task, the registry and subscriptions.
pub struct Client {
    id: u64,
    origin: Option<String>,
    remote_addr: SocketAddr,
    connected_at: i64,
    is_owner: bool,
    token_id: Option<String>,
    session: Option<[u8; 32]>,
    scopes: Scopes,
    mode: Mode,
    tx: mpsc::Sender<Utf8Bytes>,
    /// Queue slots output lines leave free, so replies and state changes still fit while
    /// a subscriber catches up.
    headroom: usize,
    /// How long a message may wait for room before the client counts as not reading.
    patience: std::time::Duration,
    /// At most this many notifications wait in `overflow`: the queue's capacity.
    overflow_limit: usize,
    overflow: Mutex<Overflow>,
    closed: CancellationToken,
    close_code: Mutex<Option<(u16, &'static str)>>,
    mutable: Mutex<Mutable>,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    /// Its place as a reader of the broker's event ring, once it subscribed.
    events: event_ring::Inbox,
}

impl Client {
    /// The connection id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The client address: the peer's, or behind a trusted proxy the forwarded one
    /// (port 0 then).
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote_addr
    }

    /// Whether the client authenticated with the owner token or a dashboard session.
    pub fn is_owner(&self) -> bool {
        self.is_owner
    }

    /// The client token it authenticated with; `None` for the owner.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The SHA-256 of the dashboard session it signed in with, if it did.
    pub fn session(&self) -> Option<&[u8; 32]> {
        self.session.as_ref()
    }

    /// What it may do: every scope for the owner, the token's scopes otherwise.
    pub fn scopes(&self) -> Scopes {
        self.scopes
    }

    /// The declared role.
    pub fn role(&self) -> Role {
        self.lock().role
    }

    fn lock(&self) -> MutexGuard<'_, Mutable> {
        self.mutable
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the role and name from `hub.hello`.
    pub fn set_identity(&self, role: Role, name: Option<String>) {
        let mut mutable = self.lock();
        mutable.role = role;
        mutable.name = name;
    }

    /// Queues a message without making the caller wait. Returns false if the client is
    /// gone or was just closed for not reading. When the queue is full the message waits
    /// in the client's overflow, in order; the connection's writer moves the overflow into
    /// the queue as it makes room ([`Client::refill`]), so no task is spawned for it. A
    /// client whose oldest waiting message has waited the write timeout, or that lets
    /// more than the queue's capacity wait, is not reading and is closed with 1008 (the
    /// writer's own write timeout closes a client that stopped reading while nothing
    /// more is pushed).
    pub fn push(self: &Arc<Self>, message: Utf8Bytes) -> bool {
        let mut overflow = self.overflow();
        if overflow.waiting.is_empty() {
            match self.try_push(message.clone()) {
                Push::Queued => return true,
                Push::Gone => return false,
                Push::Full => {}
            }
        }
        let stalled = overflow
            .waiting
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= self.patience);
        if stalled || overflow.waiting.len() >= self.overflow_limit {
            overflow.waiting.clear();
            drop(overflow);
            self.close(CLOSE_POLICY, "client is not reading its messages");
            return false;
        }
        overflow
            .waiting
            .push_back((message, tokio::time::Instant::now()));
        true
    }

    /// Moves waiting messages into the queue, in order, while it has room. The
    /// connection's writer calls it after each write, as it makes room.
    pub fn refill(&self) {
        let mut overflow = self.overflow();
        while let Some((message, since)) = overflow.waiting.pop_front() {
            match self.try_push(message.clone()) {
                Push::Queued => {}
                Push::Full => {
                    overflow.waiting.push_front((message, since));
                    return;
                }
                Push::Gone => {
                    overflow.waiting.clear();
                    return;
                }
            }
        }
    }

    fn overflow(&self) -> MutexGuard<'_, Overflow> {
        self.overflow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues an output line without waiting, leaving the headroom free. `Full` leaves
    /// the client open: the feed delivers the line later from the store.
    pub fn try_push_output(&self, message: Utf8Bytes) -> Push {
        if self.tx.capacity() <= self.headroom {
            return if self.tx.is_closed() {
                Push::Gone
            } else {
                Push::Full
            };
        }
        self.try_push(message)
    }

    /// Queues an output line, waiting until it fits with the headroom still free.
    /// Returns false if the client is gone.
    pub async fn send_output(&self, message: Utf8Bytes) -> bool {
        tokio::select! {
            permits = self.tx.reserve_many(self.headroom + 1) => match permits {
                Ok(mut permits) => {
                    if let Some(permit) = permits.next() {
                        permit.send(message);
                        self.messages_out.fetch_add(1, Ordering::Relaxed);
                    }
                    true
                }
                Err(_) => false,
            },
            () = self.closed.cancelled() => false,
        }
    }

    fn try_push(&self, message: Utf8Bytes) -> Push {
        match self.tx.try_send(message) {
            Ok(()) => {
                self.messages_out.fetch_add(1, Ordering::Relaxed);
                Push::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => Push::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Push::Gone,
        }
    }

    /// Queues a message, waiting for room (for replies and replays, which are paced by
    /// the client's own reading). Returns false if the client is gone.
    pub async fn send(&self, message: Utf8Bytes) -> bool {
        tokio::select! {
            sent = self.tx.send(message) => {
                if sent.is_ok() {
                    self.messages_out.fetch_add(1, Ordering::Relaxed);
                }
                sent.is_ok()
            }
            () = self.closed.cancelled() => false,
        }
    }

    /// Asks the connection to close with `code`; the first reason wins.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut close_code = self.close_code.lock().unwrap_or_else(|p| p.into_inner());
        if close_code.is_none() {
            *close_code = Some((code, reason));
            if code == CLOSE_POLICY {
                tracing::warn!(conn_id = self.id, reason, "closing client");
            }
        }
        self.closed.cancel();
    }

    /// The code and reason given to [`Client::close`], if it was called.
    pub fn close_code(&self) -> Option<(u16, &'static str)> {
        *self.close_code.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cancelled when the connection must end.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// Counts a received frame.
    pub fn count_in(&self) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot for `hub.connections`.
    pub fn info(&self) -> ClientInfo {
        let mutable = self.lock();
        ClientInfo {
            id: self.id,
            role: mutable.role,
            name: mutable.name.clone(),
            origin: self.origin.clone(),
            remote_addr: self.remote_addr.to_string(),
            connected_at: format_ms(self.connected_at),
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            badge: self.mode.badge(),
            client_id: self.token_id.clone(),
            scopes: self.scopes,
        }
    }
}

/// What is known about a connection when it is accepted.
pub struct NewClient {
    /// The Origin header.
    pub origin: Option<String>,
    /// Peer address.
    pub remote_addr: SocketAddr,
    /// Whether it authenticated as the owner.
    pub is_owner: bool,
    /// The client token it authenticated with, for anyone but the owner.
    pub token_id: Option<String>,
    /// The SHA-256 of the dashboard session it authenticated with (then it is the owner).
    pub session: Option<[u8; 32]>,
    /// What it may do ([`Scopes::all`] for the owner).
    pub scopes: Scopes,
    /// Outgoing queue capacity.
    pub queue: usize,
    /// The hub's shutdown token; the client's own token is a child of it.
    pub shutdown: CancellationToken,
    /// How long a queued message may wait for room (`limits.write_timeout_s`).
    pub patience: std::time::Duration,
    /// The hub's mode, which decides the badge.
    pub mode: Mode,
}

/// The registry of connected clients. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clients {
    next_id: Arc<AtomicU64>,
    // A std Mutex: lookups and inserts only, never held across an await.
    clients: Arc<Mutex<HashMap<u64, Arc<Client>>>>,
    /// The connections that asked for `hub.connection`, a subset of `clients` kept apart
    /// so that a change reaches its few watchers without a pass over every connection
    /// (with 10,000 connections, a pass per open or close is O(N²) over the churn).
    watchers: Arc<Mutex<HashMap<u64, Arc<Client>>>>,
}

impl Clients {
    fn map(&self) -> MutexGuard<'_, HashMap<u64, Arc<Client>>> {
        self.clients
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watchers(&self) -> MutexGuard<'_, HashMap<u64, Arc<Client>>> {
        self.watchers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts or stops sending `client` the `hub.connection` notifications
    /// ([`Clients::broadcast_to_watchers`]). Nothing happens for a client that is no
    /// longer registered, so a late call cannot keep a closed connection.
    pub fn watch_connections(&self, client: &Arc<Client>, on: bool) {
        let map = self.map();
        let mut watchers = self.watchers();
        if on && map.contains_key(&client.id) {
            watchers.insert(client.id, client.clone());
        } else {
            watchers.remove(&client.id);
        }
    }

    /// Whether any connection asked for `hub.connection`.
    pub fn has_watchers(&self) -> bool {
        !self.watchers().is_empty()
    }

    /// Pushes a message to every connection that asked for `hub.connection` and that
    /// `filter` accepts.
    pub fn broadcast_to_watchers(&self, message: Utf8Bytes, filter: impl Fn(&Client) -> bool) {
        let targets: Vec<Arc<Client>> = self
            .watchers()
            .values()
            .filter(|c| filter(c))
            .cloned()
            .collect();
        for client in targets {
            client.push(message.clone());
        }
    }

    /// Registers a client and returns it with the receiving end of its queue.
    pub fn register(&self, new: NewClient) -> (Arc<Client>, mpsc::Receiver<Utf8Bytes>) {
        let (tx, rx) = mpsc::channel(new.queue);
        let client = Arc::new(Client {
            id: self.next_id.fetch_add(1, Ordering::Relaxed) + 1,
            origin: new.origin,
            remote_addr: new.remote_addr,
            connected_at: crate::support::timestamp::now_ms(),
            is_owner: new.is_owner,
            token_id: new.token_id,
            session: new.session,
            scopes: new.scopes,
            mode: new.mode,
            tx,
            headroom: new.queue / 4,
            patience: new.patience,
            overflow_limit: new.queue,
            overflow: Mutex::new(Overflow::default()),
            closed: new.shutdown.child_token(),
            close_code: Mutex::new(None),
            mutable: Mutex::new(Mutable {
                role: Role::default(),
                name: None,
            }),
            messages_in: AtomicU64::new(0),
            messages_out: AtomicU64::new(0),
            events: event_ring::Inbox::default(),
        });
        self.map().insert(client.id, client.clone());
        (client, rx)
    }

    /// Removes a client.
    pub fn remove(&self, client: &Client) {
        let mut map = self.map();
        map.remove(&client.id);
        self.watchers().remove(&client.id);
    }

    /// Pushes a message to every client that `filter` accepts.
    pub fn broadcast_to(&self, message: Utf8Bytes, filter: impl Fn(&Client) -> bool) {
        let targets: Vec<Arc<Client>> =
            self.map().values().filter(|c| filter(c)).cloned().collect();
        for client in targets {
            client.push(message.clone());
        }
    }

    /// Snapshots of every client, by id.
    pub fn infos(&self) -> Vec<ClientInfo> {
        let mut infos: Vec<ClientInfo> = self.map().values().map(|c| c.info()).collect();
        infos.sort_by_key(|info| info.id);
        infos
    }

    /// The client with connection id `id`, while it is connected.
    pub fn get(&self, id: u64) -> Option<Arc<Client>> {
        self.map().get(&id).cloned()
    }

    /// Number of connected clients.
    pub fn count(&self) -> usize {
        self.map().len()
    }

    /// Closes, with `code`, every connection made with client token `token_id`;
    /// returns how many.
    pub fn close_token(&self, token_id: &str, code: u16, reason: &'static str) -> usize {
        let targets: Vec<Arc<Client>> = self
            .map()
            .values()
            .filter(|c| c.token_id() == Some(token_id))
            .cloned()
            .collect();
        for client in &targets {
            client.close(code, reason);
        }
        targets.len()
    }

    /// Closes, with `code`, every connection signed in with a dashboard session: the one
    /// whose hash is `session`, or with `None` every one; returns how many.
    pub fn close_sessions(
        &self,
        session: Option<&[u8; 32]>,
        code: u16,
        reason: &'static str,
    ) -> usize {
        let targets: Vec<Arc<Client>> = self
            .map()
            .values()
            .filter(|c| match (c.session(), session) {
                (Some(own), Some(wanted)) => own == wanted,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .cloned()
            .collect();
        for client in &targets {
            client.close(code, reason);
        }
        targets.len()
    }

    /// How many connections are open with client token `token_id`.
    pub fn count_token(&self, token_id: &str) -> usize {
        self.map()
            .values()
            .filter(|c| c.token_id() == Some(token_id))
            .count()
    }

    /// Every connected client.
    pub fn all(&self) -> Vec<Arc<Client>> {
        self.map().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A client with a queue of `queue` messages that nobody drains yet.
    fn client(queue: usize) -> (Arc<Client>, mpsc::Receiver<Utf8Bytes>) {
        Clients::default().register(NewClient {
            origin: None,
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            is_owner: true,
            token_id: None,
            scopes: Scopes::all(),
            queue,
            shutdown: CancellationToken::new(),
            patience: Duration::from_secs(5),
            mode: Mode::Local,
            session: None,
        })
    }

    fn texts(rx: &mut mpsc::Receiver<Utf8Bytes>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok())
            .map(|t| t.as_str().to_string())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn pushes_past_a_full_queue_wait_in_order_and_arrive_once_there_is_room() {
        let (client, mut rx) = client(2);
        for n in 0..3 {
            assert!(client.push(Utf8Bytes::from(n.to_string())));
        }
        assert_eq!(texts(&mut rx), ["0", "1"]);
        // Room now, but a push made before the writer moves the overflow in waits behind
        // it rather than jumping the queue.
        assert!(client.push(Utf8Bytes::from("3")));
        assert!(texts(&mut rx).is_empty());
        // The writer, having made room, moves the overflow in, in order.
        client.refill();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            seen.push(rx.recv().await.unwrap().as_str().to_string());
        }
        assert_eq!(seen, ["2", "3"]);
        assert_eq!(client.close_code(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_spawns_nothing() {
        let (client, _rx) = client(1);
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        for n in 0..2 {
            assert!(client.push(Utf8Bytes::from(n.to_string())));
        }
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            tasks
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_lets_the_overflow_fill_is_closed_with_1008() {
        let (client, _rx) = client(2);
        // Two in the queue, two waiting, the fifth finds the overflow full.
        for n in 0..4 {
            assert!(client.push(Utf8Bytes::from(n.to_string())));
        }
        assert!(!client.push(Utf8Bytes::from("4")));
        assert_eq!(
            client.close_code().map(|(code, _)| code),
            Some(CLOSE_POLICY)
        );
        assert!(client.closed().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_makes_no_room_within_the_patience_is_closed_with_1008() {
        let (client, _rx) = client(2);
        for n in 0..3 {
            assert!(client.push(Utf8Bytes::from(n.to_string())));
        }
        // Within the patience, a message may still wait.
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(client.push(Utf8Bytes::from("3")));
        assert_eq!(client.close_code(), None);
        // The oldest waiting message has waited the patience: the next push closes it.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!client.push(Utf8Bytes::from("4")));
        assert!(client.closed().is_cancelled());
        assert_eq!(
            client.close_code().map(|(code, _)| code),
            Some(CLOSE_POLICY)
        );
    }
}
