//! The NATS backplane: carries events, `event.request` answers and control messages
//! between the hub instances of one public deployment, through a NATS server
//! (`public.broker`), with the official client `async-nats`.
//!
//! One NATS connection per instance. Published events go out from one task, in the
//! order the broker handed them over, so one publisher's events reach every other
//! instance in order (NATS keeps the order of one connection's messages on one
//! subject). The connection is opened with `no_echo`, so an instance never receives its
//! own messages back.
//!
//! Each pattern the instance's clients hold is one NATS subscription, opened when the
//! first local subscriber arrives and closed when the last leaves (the broker counts;
//! see [`crate::pubsub::broker::backplane`]). An event that matches several of them arrives
//! once per subscription; the copies are recognised by `(from, seq)` and delivered
//! once. Subjects: [`subjects`].
//!
//! `event.request` across instances: the requesting instance keeps the waiter, as
//! without a backplane. An `event.publish` with a `correlation_id` that no local
//! request waits for is also sent on `<prefix>-answers`, which every instance
//! subscribes to; the instance whose request waits for that id resolves it, the others
//! ignore it.
//!
//! When the NATS server is lost, the instance keeps routing among its own clients;
//! `/health` reports `broker.state = "disconnected"` (HTTP 503) and
//! `semantest_hub_broker_connected` is 0. The client reconnects with a capped backoff
//! ([`reconnect_delay`]) and restores its subscriptions itself. Events published
//! while it is away wait in its buffer; past [`OUTGOING_CAPACITY`] they are not sent
//! to other instances and are counted in `semantest_hub_broker_unsent_total`.

mod credentials;
pub mod subjects;

pub use self::credentials::{Credentials, PASSWORD_ENV, PASSWORD_SECRET, without_user};

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{ConnectOptions, RequestError, RequestErrorKind, ServerAddr};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::protocol::clients::{Outcome, RequestView};
use crate::protocol::events::Event;
use crate::protocol::hub::BrokerState;
use crate::pubsub::broker::backplane::Backplane;
use crate::pubsub::broker::{Broker, check_type, parse_pattern};
use crate::storage::secrets::SecretError;
use crate::support::metrics::BrokerMetrics;

use self::subjects::Subjects;

/// Events waiting to be sent to NATS; past this, new ones are not sent (counted).
pub const OUTGOING_CAPACITY: usize = 16_384;

/// How long a flush at shutdown, or a round trip confirming a subscription, may wait
/// for the server.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// `(from, seq)` pairs remembered to recognise copies of one event.
const RECENT_CAPACITY: usize = 65_536;

/// How long to wait before the `attempt`-th reconnect: 100 ms doubling to at most 2 s,
/// so a NATS server that comes back is found within about 2 s.
pub fn reconnect_delay(attempt: usize) -> Duration {
    let exponent = u32::try_from(attempt.min(5)).unwrap_or(5);
    Duration::from_millis((100u64 << exponent).min(2_000))
}

/// What [`NatsBackplane::start`] needs.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    /// The servers from `public.broker`, without credentials.
    pub servers: Vec<ServerAddr>,
    /// `public.broker_subject_prefix`.
    pub prefix: String,
    /// From the environment or the keychain.
    pub credentials: Credentials,
    /// This instance's id, as the NATS connection name.
    pub instance_id: String,
}

/// A hub-internal message on `<prefix>-control`, never delivered to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// A client token was revoked on one instance; every instance closes its
    /// connections made with it and forgets it (`Access::revoked_elsewhere`).
    TokenRevoked {
        /// The token id, `cl_…`.
        id: String,
    },
    /// A browser extension asked to pair through another instance: this one tells its
    /// admin connections too (`pairing.requested`).
    PairingRequested {
        /// The request as `pairing.list` shows it.
        request: RequestView,
    },
    /// A pairing request was approved, denied or expired on another instance
    /// (`pairing.resolved` to this one's admin connections).
    PairingResolved {
        /// The request's id, `pr_…`.
        request_id: String,
        /// How it ended.
        outcome: Outcome,
    },
}

/// Why the NATS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The client refused the options (the servers are reached in the background, so
    /// an unreachable server is not this error).
    #[error("cannot set up the NATS connection")]
    Connect(#[from] async_nats::ConnectError),
    /// The secret store could not be read for the credentials.
    #[error(transparent)]
    Secrets(#[from] SecretError),
    /// `public.broker` names a user but no password was given.
    #[error(
        "public.broker names the NATS user {user:?} but no password was found: set {PASSWORD_ENV} or the keychain entry {PASSWORD_SECRET}"
    )]
    NoPassword {
        /// The user name from the URL.
        user: String,
    },
    /// A server address that cannot be written back.
    #[error("{0:?} is not a NATS server address")]
    Url(String),
}

/// The patterns this instance's clients want from other instances, shared between the
/// broker's calls and the task that holds the NATS subscriptions. A set, not a queue of
/// changes: bounded by the patterns subscribed at once, however fast clients subscribe
/// and leave, and the task only has to make its subscriptions match it.
#[derive(Default)]
struct Interest {
    wanted: Mutex<HashSet<String>>,
    changed: Notify,
}

impl Interest {
    fn set(&self, pattern: &str, wanted: bool) {
        {
            let mut set = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
            if wanted {
                set.insert(pattern.to_string());
            } else {
                set.remove(pattern);
            }
        }
        self.changed.notify_one();
    }

    fn wanted(&self) -> HashSet<String> {
        self.wanted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Control messages from other instances that may wait for the hub to act on them.
/// When it falls behind, the NATS subscription waits (and the server's slow-consumer
/// rule applies) rather than this buffer growing.
const CONTROL_CAPACITY: usize = 256;

struct Outgoing {
    subject: String,
    body: Bytes,
}

/// Recently seen `(from, seq)`, to deliver an event that arrives through several
/// subscriptions once.
#[derive(Default)]
struct Recent {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
}

impl Recent {
    /// True the first time `(from, seq)` is seen.
    fn first(&mut self, from: &str, seq: u64) -> bool {
        let mut hasher = DefaultHasher::new();
        (from, seq).hash(&mut hasher);
        let key = hasher.finish();
        if !self.seen.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > RECENT_CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// The NATS side of one instance. Cheap to share (`Arc`); the broker holds it as its
/// [`Backplane`].
pub struct NatsBackplane {
    client: async_nats::Client,
    subjects: Subjects,
    outgoing: mpsc::Sender<Outgoing>,
    interest: Arc<Interest>,
    metrics: BrokerMetrics,
}

impl std::fmt::Debug for NatsBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBackplane")
            .field("subjects", &self.subjects)
            .field("state", &self.state())
            .finish()
    }
}

/// What the backplane's tasks share.
#[derive(Clone)]
struct Parts {
    client: async_nats::Client,
    broker: Broker,
    subjects: Subjects,
    metrics: BrokerMetrics,
    recent: Arc<Mutex<Recent>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl NatsBackplane {
    /// Opens the NATS connection (in the background: the hub starts and serves its own
    /// clients while the server is unreachable), attaches itself to `broker`, and
    /// starts its tasks on `tracker` until `shutdown`. Control messages from other
    /// instances arrive on the returned receiver.
    ///
    /// # Errors
    /// [`NatsError::Connect`] when the client refuses the options.
    pub async fn start(
        settings: NatsSettings,
        broker: &Broker,
        metrics: BrokerMetrics,
        tracker: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> Result<(Arc<Self>, mpsc::Receiver<Control>), NatsError> {
        let events = metrics.clone();
        let mut options = ConnectOptions::new()
            .name(format!("semantest-hub {}", settings.instance_id))
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                let metrics = events.clone();
                async move { observe(&metrics, &event) }
            });
        options = match settings.credentials {
            Credentials::None => options,
            Credentials::Token(token) => options.token(token),
            Credentials::UserPassword { user, password } => {
                options.user_and_password(user, password)
            }
        };
        let client = options.connect(settings.servers).await?;
        let subjects = Subjects::new(&settings.prefix);
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_CAPACITY);
        let interest = Arc::new(Interest::default());
        let (control_tx, control_rx) = mpsc::channel(CONTROL_CAPACITY);
        let parts = Parts {
            client: client.clone(),
            broker: broker.clone(),
            subjects: subjects.clone(),
            metrics: metrics.clone(),
            recent: Arc::default(),
            tracker: tracker.clone(),
            shutdown: shutdown.clone(),
        };
        tracker.spawn(parts.clone().send_all(outgoing_rx));
        tracker.spawn(parts.clone().follow_interest(interest.clone()));
        tracker.spawn(parts.clone().receive_answers());
        tracker.spawn(parts.receive_control(control_tx));
        let backplane = Arc::new(Self {
            client,
            subjects,
            outgoing,
            interest,
            metrics,
        });
        broker.attach(backplane.clone(), &short_id(&settings.instance_id));
        Ok((backplane, control_rx))
    }

    /// Whether the NATS connection is up now.
    pub fn state(&self) -> BrokerState {
        match self.client.connection_state() {
            State::Connected => BrokerState::Connected,
            State::Pending | State::Disconnected => BrokerState::Disconnected,
        }
    }

    /// Sends a control message to the other instances (not to this one).
    pub fn send_control(&self, control: &Control) {
        match serde_json::to_vec(control) {
            Ok(body) => self.send(self.subjects.control(), body.into()),
            Err(err) => tracing::warn!(error = %err, "cannot encode a control message"),
        }
    }

    fn send(&self, subject: String, body: Bytes) {
        if self.outgoing.try_send(Outgoing { subject, body }).is_err() {
            self.metrics.unsent.inc();
        }
    }

    fn send_event(&self, subject: String, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(body) => self.send(subject, body.into()),
            Err(err) => tracing::warn!(error = %err, "cannot encode an event for NATS"),
        }
    }
}

impl Backplane for NatsBackplane {
    fn publish(&self, event: &Event) {
        self.send_event(self.subjects.event(&event.kind), event);
    }

    fn answer(&self, event: &Event) {
        self.send_event(self.subjects.answers(), event);
    }

    fn interest_added(&self, pattern: &str) {
        self.interest.set(pattern, true);
    }

    fn interest_removed(&self, pattern: &str) {
        self.interest.set(pattern, false);
    }
}

/// The first 8 characters of the instance id, the `@<instance>` in `from`.
fn short_id(instance_id: &str) -> String {
    instance_id.chars().filter(|c| *c != '-').take(8).collect()
}

/// Keeps the metrics in step with the connection's events.
fn observe(metrics: &BrokerMetrics, event: &async_nats::Event) {
    match event {
        async_nats::Event::Connected => {
            if metrics.connected.set(1) == 0 && metrics.mark_connected() {
                metrics.reconnects.inc();
            }
            tracing::info!("connected to the NATS server");
        }
        async_nats::Event::Disconnected => {
            metrics.connected.set(0);
            tracing::warn!("lost the NATS server; serving local clients only until it is back");
        }
        async_nats::Event::SlowConsumer(sid) => {
            tracing::warn!(sid, "NATS subscription fell behind; events were lost");
        }
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

impl Parts {
    /// Sends queued messages in order.
    async fn send_all(self, mut outgoing: mpsc::Receiver<Outgoing>) {
        loop {
            let message = tokio::select! {
                message = outgoing.recv() => message,
                () = self.shutdown.cancelled() => None,
            };
            let Some(Outgoing { subject, body }) = message else {
                break;
            };
            // During an outage the client's own buffer fills and this waits; shutdown
            // does not.
            let sent = tokio::select! {
                sent = self.client.publish(subject, body) => sent,
                () = self.shutdown.cancelled() => break,
            };
            if let Err(err) = sent {
                self.metrics.unsent.inc();
                tracing::debug!(error = %err, "event not sent to NATS");
            } else {
                self.metrics.sent.inc();
            }
        }
        // Bounded: without a server the flush would wait for the next connection.
        match tokio::time::timeout(FLUSH_WAIT, self.client.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(error = %err, "NATS flush at shutdown failed"),
            Err(_) => tracing::debug!("NATS flush at shutdown timed out"),
        }
    }

    /// Opens and closes a subscription per pattern the broker reports.
    /// Keeps one NATS subscription per wanted pattern: after each change, unsubscribes
    /// what is no longer wanted and subscribes what is newly wanted.
    async fn follow_interest(self, interest: Arc<Interest>) {
        let mut held: HashMap<String, CancellationToken> = HashMap::new();
        loop {
            tokio::select! {
                () = interest.changed.notified() => {}
                () = self.shutdown.cancelled() => break,
            }
            let wanted = interest.wanted();
            held.retain(|pattern, stop| {
                let keep = wanted.contains(pattern);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for pattern in wanted {
                if held.contains_key(&pattern) {
                    continue;
                }
                let Ok(parsed) = parse_pattern(&pattern) else {
                    continue;
                };
                let subject = self.subjects.pattern(parsed);
                match self.client.subscribe(subject.clone()).await {
                    Ok(subscriber) => {
                        let stop = self.shutdown.child_token();
                        held.insert(pattern, stop.clone());
                        self.tracker
                            .spawn(self.clone().receive_events(subscriber, stop.clone()));
                        self.tracker
                            .spawn(self.clone().count_when_confirmed(subject, stop));
                    }
                    Err(err) => {
                        tracing::warn!(subject, error = %err, "cannot subscribe on NATS");
                    }
                }
            }
        }
    }

    /// Counts a subscription in `semantest_hub_broker_subscriptions` once the server has
    /// it, and uncounts it when it stops. The server has it once it has answered a
    /// request sent after the SUB ([`Parts::round_trip`]): NATS handles a connection's
    /// commands in order. (The client's `flush` only writes the SUB to the socket;
    /// counted then, an event another instance publishes next could reach the server
    /// before the SUB and go nowhere.) Until then it asks again every [`FLUSH_WAIT`], in
    /// its own task, so that an outage holds neither the next interest change nor the
    /// shutdown.
    async fn count_when_confirmed(self, subject: String, stop: CancellationToken) {
        loop {
            let answered = tokio::select! {
                answered = self.round_trip() => answered,
                () = stop.cancelled() => return,
            };
            match answered {
                Ok(()) => break,
                Err(err) if err.kind() == RequestErrorKind::TimedOut => {
                    tracing::debug!(
                        subject,
                        "NATS server slow to confirm a subscription; still waiting"
                    );
                }
                Err(err) => {
                    tracing::debug!(subject, error = %err, "NATS subscription not confirmed; trying again");
                    tokio::select! {
                        () = tokio::time::sleep(FLUSH_WAIT) => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
        }
        self.metrics.subscriptions.inc();
        tracing::debug!(subject, "subscribed on NATS");
        stop.cancelled().await;
        self.metrics.subscriptions.dec();
    }

    /// A round trip to the NATS server, behind every command this connection sent
    /// before: a request to [`Subjects::probe`], where nobody subscribes, which the
    /// server answers itself ("no responders", NATS 2.2+) when it reaches it. Its own
    /// inbox subscription ends with it, so an attempt that times out leaves nothing
    /// behind.
    async fn round_trip(&self) -> Result<(), RequestError> {
        let request = async_nats::Request::new()
            .inbox(self.client.new_inbox())
            .timeout(Some(FLUSH_WAIT));
        match self
            .client
            .send_request(self.subjects.probe(), request)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == RequestErrorKind::NoResponders => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn receive_events(self, mut subscriber: async_nats::Subscriber, stop: CancellationToken) {
        loop {
            let message = tokio::select! {
                message = subscriber.next() => message,
                () = stop.cancelled() => None,
            };
            let Some(message) = message else {
                break;
            };
            let Some(event) = self.decode(&message) else {
                continue;
            };
            let kind = self.subjects.kind_of(message.subject.as_str());
            if kind != Some(event.kind.as_str()) || check_type(&event.kind).is_err() {
                tracing::debug!(subject = %message.subject, "NATS event on a subject that does not match its type; ignored");
                continue;
            }
            let first = self
                .recent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .first(&event.from, event.seq);
            if first {
                self.metrics.received.inc();
                self.broker.deliver_remote(&event);
            }
        }
    }

    /// Resolves local `event.request`s with answers published elsewhere.
    async fn receive_answers(self) {
        let Some(mut subscriber) = self.subscribe(self.subjects.answers()).await else {
            return;
        };
        loop {
            let message = tokio::select! {
                message = subscriber.next() => message,
                () = self.shutdown.cancelled() => None,
            };
            let Some(message) = message else {
                break;
            };
            if let Some(event) = self.decode(&message) {
                self.broker.answer_remote(event);
            }
        }
    }

    /// Hands control messages from other instances to the hub.
    async fn receive_control(self, to_hub: mpsc::Sender<Control>) {
        let Some(mut subscriber) = self.subscribe(self.subjects.control()).await else {
            return;
        };
        loop {
            let message = tokio::select! {
                message = subscriber.next() => message,
                () = self.shutdown.cancelled() => None,
            };
            let Some(message) = message else {
                break;
            };
            match serde_json::from_slice::<Control>(&message.payload) {
                Ok(control) => {
                    let sent = tokio::select! {
                        sent = to_hub.send(control) => sent.is_ok(),
                        () = self.shutdown.cancelled() => false,
                    };
                    if !sent {
                        break;
                    }
                }
                Err(err) => tracing::warn!(error = %err, "unknown control message; ignored"),
            }
        }
    }

    async fn subscribe(&self, subject: String) -> Option<async_nats::Subscriber> {
        match self.client.subscribe(subject.clone()).await {
            Ok(subscriber) => Some(subscriber),
            Err(err) => {
                tracing::error!(subject, error = %err, "cannot subscribe on NATS");
                None
            }
        }
    }

    fn decode(&self, message: &async_nats::Message) -> Option<Event> {
        match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => Some(event),
            Err(err) => {
                tracing::debug!(subject = %message.subject, error = %err, "undecodable NATS event; ignored");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_two_seconds() {
        assert_eq!(reconnect_delay(0), Duration::from_millis(100));
        assert_eq!(reconnect_delay(1), Duration::from_millis(200));
        assert_eq!(reconnect_delay(4), Duration::from_millis(1_600));
        assert_eq!(reconnect_delay(5), Duration::from_secs(2));
        assert_eq!(reconnect_delay(1_000), Duration::from_secs(2));
    }

    #[test]
    fn copies_are_recognised_by_publisher_and_seq() {
        let mut recent = Recent::default();
        assert!(recent.first("conn-1@a", 1));
        assert!(!recent.first("conn-1@a", 1));
        assert!(recent.first("conn-1@b", 1));
        assert!(recent.first("conn-1@a", 2));
    }

    #[test]
    fn control_messages_have_the_contract_shape() {
        let control = Control::TokenRevoked {
            id: "cl_0123456789ab".into(),
        };
        let json = serde_json::to_value(&control).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "token_revoked", "id": "cl_0123456789ab"})
        );
        assert_eq!(serde_json::from_value::<Control>(json).unwrap(), control);
    }

    #[test]
    fn pairing_news_round_trips() {
        let request = RequestView {
            id: "pr_0123456789abcdef".into(),
            name: "My extension".into(),
            origin: "chrome-extension://abcdefghijklmnopabcdefghijklmnop".into(),
            code: "123456".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            expires_at: "2026-01-01T00:02:00.000Z".into(),
            address: "192.0.2.1".into(),
        };
        let requested = Control::PairingRequested { request };
        let json = serde_json::to_value(&requested).unwrap();
        assert_eq!(json["type"], "pairing_requested");
        assert_eq!(json["request"]["code"], "123456");
        assert_eq!(serde_json::from_value::<Control>(json).unwrap(), requested);
        let resolved = Control::PairingResolved {
            request_id: "pr_0123456789abcdef".into(),
            outcome: Outcome::Denied,
        };
        let json = serde_json::to_value(&resolved).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "pairing_resolved", "request_id": "pr_0123456789abcdef", "outcome": "denied"})
        );
        assert_eq!(serde_json::from_value::<Control>(json).unwrap(), resolved);
    }
}
