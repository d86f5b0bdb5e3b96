//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Names follow the Prometheus naming guide (<https://prometheus.io/docs/practices/naming/>):
//! a `semantest_hub_` prefix, base units (seconds, bytes) in the name, `_total` on
//! counters (added by `prometheus-client`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Run status label: `succeeded`, `failed`, `killed`, `timed_out`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// The status.
    pub status: String,
}

/// Refusal reason label: `host`, `origin`, `token`, `capacity`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: String,
}

/// WebSocket close code label (RFC 6455 section 7.4.1), e.g. `1000`, `1008`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The close code.
    pub code: u16,
}

/// How news of a revocation made on another instance arrived: `broker` (the control
/// message over NATS) or `reload` (the shared database's 1 s token reload).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViaLabel {
    /// The path.
    pub via: String,
}

/// Token kind label: `input`, `output`, `cache_read`, `cache_creation`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenKindLabel {
    /// The kind.
    pub kind: String,
}

/// Error kind label, e.g. `PROJECT_BUSY`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: String,
}

/// Outcome label of event routing: `delivered`, `dropped` (deliveries); `answered`,
/// `timed_out` (requests).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: String,
}

/// Event routing's counters, handed to [`crate::pubsub::broker::Broker`]. Each is a handle to a
/// counter registered in [`Metrics`], resolved once so the fan-out never looks up a label.
#[derive(Clone, Debug, Default)]
pub struct EventMetrics {
    /// Events accepted by `event.publish` and `event.request`.
    pub published: Counter,
    /// Deliveries kept in the event ring for subscribers.
    pub delivered: Counter,
    /// Deliveries lost: pushed out of the event ring before the subscriber read them.
    pub dropped: Counter,
    /// Bytes the event ring holds now (`limits.event_ring_bytes` at most, plus one
    /// event).
    pub ring_bytes: Gauge,
    /// Subscribers closed with 1008 for dropping more than `limits.max_dropped_events`.
    pub slow_closed: Counter,
    /// `event.request`s that got their answer.
    pub answered: Counter,
    /// `event.request`s that timed out.
    pub timed_out: Counter,
}

/// The backplane's figures (`semantest_hub_broker_*`), handed to
/// [`crate::pubsub::nats::NatsBackplane`]. With the in-process broker they stay at their start
/// values, except `connected`, which is 1.
#[derive(Clone, Debug, Default)]
pub struct BrokerMetrics {
    /// 1 while connected to the NATS server (always 1 in process), else 0.
    pub connected: Gauge,
    /// Reconnections after a lost connection.
    pub reconnects: Counter,
    /// Messages sent to NATS.
    pub sent: Counter,
    /// Events received from other instances (each once, copies not counted).
    pub received: Counter,
    /// Messages not sent to NATS: its buffer was full or the send failed.
    pub unsent: Counter,
    /// NATS subscriptions open for this instance's clients' patterns.
    pub subscriptions: Gauge,
    /// Whether a first connection was made, so that the next ones count as reconnects.
    pub ever_connected: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl BrokerMetrics {
    /// Marks that a first connection happened; returns whether one had happened
    /// before.
    pub fn mark_connected(&self) -> bool {
        self.ever_connected
            .swap(true, std::sync::atomic::Ordering::Relaxed)
    }
}

/// Every metric of the hub.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// WebSocket connections accepted since start.
    pub connections_accepted: Counter,
    /// Upgrades refused, by reason (`host`, `origin`, `token`, `capacity`).
    pub connections_refused: Family<ReasonLabel, Counter>,
    /// WebSocket connections ended, by the close code the hub chose for them.
    pub connections_closed: Family<CodeLabel, Counter>,
    /// WebSocket messages received.
    pub messages_received: Counter,
    /// JSON-RPC errors sent, by kind.
    pub rpc_errors: Family<KindLabel, Counter>,
    /// Client notifications that failed, by kind; a notification gets no response.
    pub notification_errors: Family<KindLabel, Counter>,
    /// Client tokens revoked on another instance that this one learnt of first by
    /// `via` (`broker` or `reload`); its connections with them were closed then.
    pub tokens_revoked_elsewhere: Family<ViaLabel, Counter>,
    /// Agent runs started.
    pub runs_started: Counter,
    /// Agent runs finished, by status.
    pub runs_finished: Family<StatusLabel, Counter>,
    /// Agent run wall-clock durations in seconds.
    pub run_duration: Histogram,
    /// Agent output lines stored.
    pub output_lines: Counter,
    /// Agent tokens used, by kind, summed over turns.
    pub agent_tokens: Family<TokenKindLabel, Counter>,
    /// Agent cost in US dollars, summed over turns.
    pub agent_cost: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Registered projects.
    pub projects: Gauge,
    /// Agents running now.
    pub running_agents: Gauge,
    /// Resident memory of the hub process in bytes.
    pub resident_memory: Gauge,
    /// Hub CPU usage in percent of one core.
    pub cpu_percent: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Group commits of the store's writer (each one fsync of the WAL with
    /// `synchronous=FULL`), brought up to date when `/metrics` is scraped.
    pub store_commits: Counter,
    /// Serialises the updates of `store_commits`.
    store_commits_seen: std::sync::Mutex<()>,
    /// Event routing.
    pub events: EventMetrics,
    /// The backplane between instances.
    pub broker: BrokerMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("semantest_hub");
        let metrics = Self {
            registry: Registry::default(),
            connections: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
            messages_received: Counter::default(),
            rpc_errors: Family::default(),
            notification_errors: Family::default(),
            tokens_revoked_elsewhere: Family::default(),
            runs_started: Counter::default(),
            runs_finished: Family::default(),
            run_duration: Histogram::new([0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0]),
            output_lines: Counter::default(),
            agent_tokens: Family::default(),
            agent_cost: Counter::default(),
            projects: Gauge::default(),
            running_agents: Gauge::default(),
            resident_memory: Gauge::default(),
            cpu_percent: Gauge::default(),
            store_commits: Counter::default(),
            store_commits_seen: std::sync::Mutex::new(()),
            events: EventMetrics::default(),
            broker: BrokerMetrics::default(),
        };
        registry.register(
            "ws_connections",
            "Open WebSocket connections",
            metrics.connections.clone(),
        );
        registry.register(
            "ws_connections_accepted",
            "WebSocket connections accepted",
            metrics.connections_accepted.clone(),
        );
        registry.register(
            "ws_connections_refused",
            "WebSocket upgrades refused, by reason",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "ws_connections_closed",
            "WebSocket connections ended, by the close code the hub chose (RFC 6455 section 7.4.1)",
            metrics.connections_closed.clone(),
        );
        registry.register(
            "ws_messages_received",
            "WebSocket messages received",
            metrics.messages_received.clone(),
        );
        registry.register(
            "rpc_errors",
            "JSON-RPC errors sent, by kind",
            metrics.rpc_errors.clone(),
        );
        registry.register(
            "rpc_notification_errors",
            "Client notifications (requests without an id) that failed, by kind; they get no response",
            metrics.notification_errors.clone(),
        );
        registry.register(
            "tokens_revoked_elsewhere",
            "Client tokens revoked on another instance, by how this one learnt of it first (broker, reload)",
            metrics.tokens_revoked_elsewhere.clone(),
        );
        registry.register(
            "agent_runs_started",
            "Agent runs started",
            metrics.runs_started.clone(),
        );
        registry.register(
            "agent_runs_finished",
            "Agent runs finished, by status",
            metrics.runs_finished.clone(),
        );
        registry.register(
            "agent_run_duration_seconds",
            "Agent run durations",
            metrics.run_duration.clone(),
        );
        registry.register(
            "agent_output_lines",
            "Agent output lines stored",
            metrics.output_lines.clone(),
        );
        registry.register(
            "agent_tokens",
            "Agent tokens used, by kind (input, output, cache_read, cache_creation)",
            metrics.agent_tokens.clone(),
        );
        registry.register(
            "agent_cost_usd",
            "Agent cost in US dollars, as the agent CLI reported it",
            metrics.agent_cost.clone(),
        );
        registry.register("projects", "Registered projects", metrics.projects.clone());
        registry.register(
            "agents_running",
            "Agents running now",
            metrics.running_agents.clone(),
        );
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the hub",
            metrics.resident_memory.clone(),
        );
        registry.register(
            "process_cpu_percent",
            "CPU usage of the hub, percent of one core",
            metrics.cpu_percent.clone(),
        );
        registry.register(
            "store_commits",
            "Group commits of the store (one WAL fsync each with synchronous=FULL)",
            metrics.store_commits.clone(),
        );
        let events = register_events(&mut registry);
        register_broker(&mut registry, &metrics.broker);
        Self {
            registry,
            events,
            ..metrics
        }
    }

    /// Records the hub process's own figures from a resource sample.
    pub fn observe_process(&self, sample: &crate::support::monitor::Sample) {
        self.resident_memory.set(sample.process_rss_bytes as i64);
        self.cpu_percent.set(f64::from(sample.process_cpu_percent));
    }

    /// Brings `store_commits` up to `commits`, the store's own count.
    pub fn observe_store_commits(&self, commits: u64) {
        let _serial = self
            .store_commits_seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let seen = self.store_commits.get();
        if commits > seen {
            self.store_commits.inc_by(commits - seen);
        }
    }

    /// Counts a finished run.
    pub fn observe_run(&self, status: &str, seconds: f64) {
        self.runs_finished
            .get_or_create(&StatusLabel {
                status: status.into(),
            })
            .inc();
        self.run_duration.observe(seconds);
    }

    /// Counts one agent turn: its cost in US dollars and its tokens by kind.
    pub fn observe_turn(&self, usd: f64, tokens: [(&str, u64); 4]) {
        if usd > 0.0 {
            self.agent_cost.inc_by(usd);
        }
        for (kind, count) in tokens {
            self.agent_tokens
                .get_or_create(&TokenKindLabel { kind: kind.into() })
                .inc_by(count);
        }
    }

    /// Counts a refused upgrade.
    pub fn refused(&self, reason: &str) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts a connection that ended with the close `code` the hub chose. The code is
    /// counted whether or not the close frame reached the client: a peer that stopped
    /// reading cannot be sent one.
    pub fn closed(&self, code: u16) {
        self.connections_closed
            .get_or_create(&CodeLabel { code })
            .inc();
    }

    /// Counts a token revoked elsewhere that this instance learnt of first by `via`.
    pub fn revoked_elsewhere(&self, via: &str) {
        self.tokens_revoked_elsewhere
            .get_or_create(&ViaLabel { via: via.into() })
            .inc();
    }

    /// Counts a client notification that failed.
    pub fn notification_error(&self, kind: &str) {
        self.notification_errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// Counts an error sent to a client.
    pub fn rpc_error(&self, kind: &str) {
        self.rpc_errors
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// The text exposition, `# EOF` terminated (OpenMetrics 1.0).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Registers event routing's metrics: `events_published_total`,
/// `event_deliveries_total{outcome="delivered"|"dropped"}`,
/// `event_slow_subscribers_closed_total` and
/// `event_requests_total{outcome="answered"|"timed_out"}`.
fn register_events(registry: &mut Registry) -> EventMetrics {
    let deliveries = Family::<OutcomeLabel, Counter>::default();
    let requests = Family::<OutcomeLabel, Counter>::default();
    let outcome = |family: &Family<OutcomeLabel, Counter>, outcome: &str| {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.into(),
            })
            .clone()
    };
    let events = EventMetrics {
        published: Counter::default(),
        delivered: outcome(&deliveries, "delivered"),
        dropped: outcome(&deliveries, "dropped"),
        slow_closed: Counter::default(),
        ring_bytes: Gauge::default(),
        answered: outcome(&requests, "answered"),
        timed_out: outcome(&requests, "timed_out"),
    };
    registry.register(
        "events_published",
        "Events accepted by event.publish and event.request",
        events.published.clone(),
    );
    registry.register(
        "event_deliveries",
        "Event deliveries to subscribers, by outcome (delivered, dropped)",
        deliveries,
    );
    registry.register(
        "event_ring_bytes",
        "Bytes of encoded events the ring shared by all subscribers holds now",
        events.ring_bytes.clone(),
    );
    registry.register(
        "event_slow_subscribers_closed",
        "Subscribers closed with 1008 for dropping more than limits.max_dropped_events",
        events.slow_closed.clone(),
    );
    registry.register(
        "event_requests",
        "event.request calls, by outcome (answered, timed_out)",
        requests,
    );
    events
}

fn register_broker(registry: &mut Registry, broker: &BrokerMetrics) {
    registry.register(
        "broker_connected",
        "1 while the broker between instances is reachable (always 1 in process), else 0",
        broker.connected.clone(),
    );
    registry.register(
        "broker_reconnects",
        "Reconnections to the NATS server after a lost connection",
        broker.reconnects.clone(),
    );
    registry.register(
        "broker_sent",
        "Messages sent to the NATS server",
        broker.sent.clone(),
    );
    registry.register(
        "broker_received",
        "Events received from other instances",
        broker.received.clone(),
    );
    registry.register(
        "broker_unsent",
        "Messages not sent to the NATS server (buffer full or send failed)",
        broker.unsent.clone(),
    );
    registry.register(
        "broker_subscriptions",
        "NATS subscriptions open for this instance's clients",
        broker.subscriptions.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions() {
        let metrics = Metrics::new();
        metrics.observe_run("succeeded", 2.0);
        metrics.refused("origin");
        let text = metrics.encode();
        assert!(
            text.contains("semantest_hub_agent_runs_finished_total{status=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(text.contains("semantest_hub_ws_connections_refused_total{reason=\"origin\"} 1"));
        assert!(text.contains("semantest_hub_agent_run_duration_seconds_count 1"));
        metrics.events.published.inc();
        metrics.events.delivered.inc_by(3);
        let text = metrics.encode();
        assert!(
            text.contains("semantest_hub_events_published_total 1"),
            "{text}"
        );
        assert!(text.contains("semantest_hub_event_deliveries_total{outcome=\"delivered\"} 3"));
        assert!(text.contains("semantest_hub_event_deliveries_total{outcome=\"dropped\"} 0"));
        assert!(text.contains("semantest_hub_event_requests_total{outcome=\"timed_out\"} 0"));
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
