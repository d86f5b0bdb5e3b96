//! Unit tests of the broker: the type grammar, matching, limits, slow subscribers and
//! requests, with real [`Client`] queues and no sockets.

use super::*;
use crate::connections::{Clients, NewClient};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn limits() -> BrokerLimits {
    BrokerLimits {
        max_subscriptions: 4,
        max_payload_bytes: 64,
        event_rate_per_s: 1000,
        max_dropped: 5,
        max_pending_requests: 2,
        max_idempotency_keys: 3,
        event_ring_bytes: 1 << 20,
    }
}

struct Peer {
    client: Arc<Client>,
    rx: mpsc::Receiver<Utf8Bytes>,
}

impl Peer {
    fn new(clients: &Clients, queue: usize) -> Self {
        Self::with_token(clients, queue, None)
    }

    /// A connection authenticated with the client token `token_id`, or the owner's.
    fn with_token(clients: &Clients, queue: usize, token_id: Option<&str>) -> Self {
        let (client, rx) = clients.register(NewClient {
            origin: None,
            remote_addr: "127.0.0.1:1".parse().unwrap(),
            is_owner: token_id.is_none(),
            token_id: token_id.map(str::to_string),
            session: None,
            scopes: crate::protocol::scopes::Scopes::all(),
            queue,
            shutdown: CancellationToken::new(),
            patience: Duration::from_secs(1),
            mode: crate::config::Mode::Local,
        });
        Self { client, rx }
    }

    /// What the connection's writer would send now: its queue, then its events in the
    /// ring.
    fn frames(&mut self) -> Vec<Utf8Bytes> {
        let mut texts = Vec::new();
        while let Ok(text) = self.rx.try_recv() {
            texts.push(text);
        }
        assert!(!self.client.take_events(usize::MAX, u64::MAX, &mut texts));
        texts
    }

    /// The events it would receive now, as `(type, seq, dropped)`.
    fn events(&mut self) -> Vec<(String, u64, Option<u64>)> {
        let mut out = Vec::new();
        for text in self.frames() {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["method"] != "event" {
                continue;
            }
            let params = &frame["params"];
            out.push((
                params["type"].as_str().unwrap().to_string(),
                params["seq"].as_u64().unwrap(),
                params["dropped"].as_u64(),
            ));
        }
        out
    }
}

fn publish(broker: &Broker, peer: &Peer, kind: &str) -> Result<PublishResult, EventError> {
    broker.publish(
        &peer.client,
        PublishParams {
            kind: kind.into(),
            payload: json!({"n": 1}),
            correlation_id: None,
            idempotency_key: None,
        },
    )
}

fn types(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| t.to_string()).collect()
}

#[test]
fn patterns_follow_the_grammar() {
    assert_eq!(parse_pattern("*").unwrap(), Pattern::All);
    assert_eq!(parse_pattern("probe.*").unwrap(), Pattern::Prefix("probe"));
    assert_eq!(
        parse_pattern("a.b-c_d.9").unwrap(),
        Pattern::Exact("a.b-c_d.9")
    );
    for bad in [
        "", "Probe", "a..b", ".a", "a.", "a.*.b", "a*", "*.a", "**", "a.**", "a b", "é", ".*",
        "a/b",
    ] {
        assert!(
            matches!(parse_pattern(bad), Err(EventError::InvalidType { .. })),
            "{bad:?}"
        );
    }
    assert!(parse_pattern(&"a".repeat(128)).is_ok());
    assert!(parse_pattern(&"a".repeat(129)).is_err());
    assert!(check_type("probe.click").is_ok());
    for bad in ["*", "probe.*", "a.*.b", "A", ""] {
        assert!(check_type(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn exact_prefix_and_all_match_as_documented() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let publisher = Peer::new(&clients, 64);
    let mut exact = Peer::new(&clients, 64);
    let mut prefix = Peer::new(&clients, 64);
    let mut all = Peer::new(&clients, 64);
    broker
        .subscribe(&exact.client, types(&["probe.click"]))
        .unwrap();
    broker
        .subscribe(&prefix.client, types(&["probe.*"]))
        .unwrap();
    broker.subscribe(&all.client, types(&["*"])).unwrap();
    for kind in [
        "probe.click",
        "probe",
        "probe.click.left",
        "probes.x",
        "page",
    ] {
        publish(&broker, &publisher, kind).unwrap();
    }
    let kinds = |peer: &mut Peer| -> Vec<String> {
        peer.events().into_iter().map(|(kind, ..)| kind).collect()
    };
    assert_eq!(kinds(&mut exact), ["probe.click"]);
    assert_eq!(kinds(&mut prefix), ["probe.click", "probe.click.left"]);
    assert_eq!(
        kinds(&mut all),
        [
            "probe.click",
            "probe",
            "probe.click.left",
            "probes.x",
            "page"
        ]
    );
}

#[test]
fn overlapping_patterns_deliver_once_and_never_echo() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let mut sender = Peer::new(&clients, 64);
    let mut other = Peer::new(&clients, 64);
    let all_of_them = types(&["a.b.c", "a.*", "a.b.*", "*"]);
    broker
        .subscribe(&sender.client, all_of_them.clone())
        .unwrap();
    broker.subscribe(&other.client, all_of_them).unwrap();
    let result = publish(&broker, &sender, "a.b.c").unwrap();
    assert_eq!(
        result,
        PublishResult {
            delivered: 1,
            seq: 1
        }
    );
    assert_eq!(other.events(), [("a.b.c".to_string(), 1, None)]);
    assert!(sender.events().is_empty());
}

#[test]
fn each_event_is_encoded_once_for_all_its_subscribers() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let publisher = Peer::new(&clients, 64);
    let mut one = Peer::new(&clients, 64);
    let mut two = Peer::new(&clients, 64);
    broker.subscribe(&one.client, types(&["e.*"])).unwrap();
    broker.subscribe(&two.client, types(&["*"])).unwrap();
    publish(&broker, &publisher, "e.x").unwrap();
    let (first, second) = (one.frames().remove(0), two.frames().remove(0));
    assert_eq!(first, second);
    assert_eq!(
        first.as_str().as_ptr(),
        second.as_str().as_ptr(),
        "one shared buffer"
    );
}

#[test]
fn unsubscribe_and_disconnect_remove_routes() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let publisher = Peer::new(&clients, 64);
    let mut sub = Peer::new(&clients, 64);
    let result = broker
        .subscribe(&sub.client, types(&["x.*", "y", "x.*"]))
        .unwrap();
    assert_eq!(result.subscribed, ["x.*", "y"]);
    assert_eq!(result.total, 2);
    let result = broker
        .unsubscribe(&sub.client, types(&["x.*", "z"]))
        .unwrap();
    assert_eq!(result.unsubscribed, ["x.*"]);
    assert_eq!(result.total, 1);
    assert_eq!(publish(&broker, &publisher, "x.1").unwrap().delivered, 0);
    assert_eq!(publish(&broker, &publisher, "y").unwrap().delivered, 1);
    broker.disconnect(sub.client.id());
    assert_eq!(publish(&broker, &publisher, "y").unwrap().delivered, 0);
    assert_eq!(broker.subscriptions(sub.client.id()), 0);
    assert_eq!(sub.events().len(), 1);
    let routes = broker.read();
    assert!(routes.exact.is_empty() && routes.prefix.is_empty() && routes.all.is_empty());
}

#[test]
fn limits_refuse_without_partial_effects() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let peer = Peer::new(&clients, 64);
    assert!(matches!(
        broker.subscribe(&peer.client, types(&["ok", "Bad"])),
        Err(EventError::InvalidType { .. })
    ));
    assert_eq!(broker.subscriptions(peer.client.id()), 0);
    broker
        .subscribe(&peer.client, types(&["a", "b", "c"]))
        .unwrap();
    assert!(matches!(
        broker.subscribe(&peer.client, types(&["d", "e"])),
        Err(EventError::TooManySubscriptions { limit: 4, total: 3 })
    ));
    // Subscribing again to held patterns costs nothing.
    broker
        .subscribe(&peer.client, types(&["a", "b", "c", "d"]))
        .unwrap();
    assert!(matches!(
        broker.subscribe(&peer.client, Vec::new()),
        Err(EventError::NoTypes)
    ));
    let big = PublishParams {
        kind: "a".into(),
        payload: json!("x".repeat(100)),
        correlation_id: None,
        idempotency_key: None,
    };
    assert!(matches!(
        broker.publish(&peer.client, big),
        Err(EventError::PayloadTooLarge { limit: 64, .. })
    ));
    // Refused publishes take no seq.
    assert_eq!(publish(&broker, &peer, "a").unwrap().seq, 1);
}

#[test]
fn the_event_rate_is_limited_per_connection() {
    let clients = Clients::default();
    let broker = Broker::new(
        BrokerLimits {
            event_rate_per_s: 3,
            ..limits()
        },
        EventMetrics::default(),
    );
    let (one, two) = (Peer::new(&clients, 8), Peer::new(&clients, 8));
    for _ in 0..3 {
        publish(&broker, &one, "a").unwrap();
    }
    assert!(matches!(
        publish(&broker, &one, "a"),
        Err(EventError::RateLimited { rate: 3 })
    ));
    publish(&broker, &two, "a").unwrap();
}

#[test]
fn a_subscriber_behind_the_ring_loses_its_oldest_events_is_told_then_closed_past_the_bound() {
    let clients = Clients::default();
    let metrics = EventMetrics::default();
    // A ring of about four small events.
    let broker = Broker::new(
        BrokerLimits {
            event_ring_bytes: 4 * 400,
            ..limits()
        },
        metrics.clone(),
    );
    let publisher = Peer::new(&clients, 64);
    let mut slow = Peer::new(&clients, 8);
    let mut fast = Peer::new(&clients, 8);
    broker.subscribe(&slow.client, types(&["*"])).unwrap();
    broker.subscribe(&fast.client, types(&["tick"])).unwrap();
    let mut fast_seen = Vec::new();
    for _ in 0..9 {
        assert_eq!(publish(&broker, &publisher, "tick").unwrap().delivered, 2);
        fast_seen.extend(fast.events());
    }
    let kept = broker.ring().len() as u64;
    assert!((2..9).contains(&kept), "{kept} kept");
    // The slow one lost the oldest; the fast one, which read as they came, nothing.
    assert_eq!(metrics.dropped.get(), 9 - kept);
    assert_eq!(fast_seen.len(), 9);
    assert!(fast_seen.iter().all(|(_, _, dropped)| dropped.is_none()));
    let seen = slow.events();
    assert_eq!(seen.len() as u64, kept);
    // The first it reads says how many it lost; the others, nothing.
    assert_eq!(seen[0], ("tick".to_string(), 9 - kept + 1, Some(9 - kept)));
    assert!(seen[1..].iter().all(|(_, _, dropped)| dropped.is_none()));
    publish(&broker, &publisher, "tick").unwrap();
    assert_eq!(slow.events(), [("tick".to_string(), 10, None)]);
    assert!(!slow.client.closed().is_cancelled());
    // Losing more than max_dropped (5) in a row closes the subscriber with 1008.
    for _ in 0..(kept + 10) {
        publish(&broker, &publisher, "tick").unwrap();
        fast.events();
    }
    assert!(slow.client.closed().is_cancelled());
    assert_eq!(slow.client.close_code().map(|(code, _)| code), Some(1008));
    assert_eq!(metrics.slow_closed.get(), 1);
    assert!(!fast.client.closed().is_cancelled());
    // A closing subscriber is not counted as reached.
    assert_eq!(publish(&broker, &publisher, "tick").unwrap().delivered, 1);
}

#[tokio::test]
async fn requests_get_the_first_answer_or_time_out() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let asker = Peer::new(&clients, 64);
    let mut responder = Peer::new(&clients, 64);
    broker.subscribe(&responder.client, types(&["q"])).unwrap();
    let pending = broker
        .request(
            &asker.client,
            RequestParams {
                kind: "q".into(),
                payload: json!(1),
                timeout_ms: Some(5000),
            },
        )
        .unwrap();
    assert_eq!(pending.delivered(), 1);
    let frame: Value = serde_json::from_str(&responder.frames()[0]).unwrap();
    assert_eq!(frame["params"]["correlation_id"], pending.correlation_id());
    let answer = PublishParams {
        kind: "a".into(),
        payload: json!("yes"),
        correlation_id: Some(pending.correlation_id().to_string()),
        idempotency_key: None,
    };
    assert_eq!(
        broker.publish(&responder.client, answer).unwrap().delivered,
        1
    );
    let event = pending.answer().await.unwrap();
    assert_eq!(event.payload.get(), r#""yes""#);
    assert_eq!(event.from, connection_name(responder.client.id()));
    assert!(broker.waiters().is_empty());

    let pending = broker
        .request(
            &asker.client,
            RequestParams {
                kind: "q".into(),
                payload: json!(2),
                timeout_ms: Some(20),
            },
        )
        .unwrap();
    let id = pending.correlation_id().to_string();
    match pending.answer().await {
        Err(EventError::Timeout {
            correlation_id,
            timeout_ms: 20,
            delivered: 1,
        }) => assert_eq!(correlation_id, id),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(broker.waiters().is_empty());
}

#[test]
fn waiting_requests_are_bounded_per_connection() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let asker = Peer::new(&clients, 64);
    let ask = || {
        broker.request(
            &asker.client,
            RequestParams {
                kind: "q".into(),
                payload: Value::Null,
                timeout_ms: None,
            },
        )
    };
    let first = ask().unwrap();
    let _second = ask().unwrap();
    assert!(matches!(
        ask(),
        Err(EventError::TooManyRequests { limit: 2 })
    ));
    drop(first);
    ask().unwrap();
    assert!(matches!(
        broker.request(
            &asker.client,
            RequestParams {
                kind: "q".into(),
                payload: Value::Null,
                timeout_ms: Some(60_001),
            },
        ),
        Err(EventError::InvalidTimeout)
    ));
}

fn keyed(kind: &str, key: &str) -> PublishParams {
    PublishParams {
        kind: kind.into(),
        payload: json!({"n": 1}),
        correlation_id: None,
        idempotency_key: Some(key.into()),
    }
}

#[test]
fn a_repeated_key_of_one_identity_is_delivered_once_across_connections() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let mut sub = Peer::new(&clients, 16);
    broker.subscribe(&sub.client, types(&["a"])).unwrap();
    let first_conn = Peer::with_token(&clients, 16, Some("cl_one"));
    let first = broker
        .publish(&first_conn.client, keyed("a", "k1"))
        .unwrap();
    assert_eq!(
        first,
        PublishResult {
            delivered: 1,
            seq: 1
        }
    );
    // The same token on a new connection (a reconnect) resends: the first result, no event.
    let second_conn = Peer::with_token(&clients, 16, Some("cl_one"));
    let again = broker
        .publish(&second_conn.client, keyed("a", "k1"))
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(sub.events(), vec![("a".to_string(), 1, None)]);
    // Another identity with the same key, and another key, are publishes of their own.
    let other = Peer::with_token(&clients, 16, Some("cl_two"));
    assert_eq!(
        broker
            .publish(&other.client, keyed("a", "k1"))
            .unwrap()
            .delivered,
        1
    );
    assert_eq!(
        broker
            .publish(&second_conn.client, keyed("a", "k2"))
            .unwrap()
            .seq,
        1
    );
    // The owner is one identity too, separate from every token.
    let owner = Peer::new(&clients, 16);
    assert_eq!(
        broker
            .publish(&owner.client, keyed("a", "k1"))
            .unwrap()
            .delivered,
        1
    );
    assert_eq!(sub.events().len(), 3);
    // Without a key nothing is remembered: each publish is delivered.
    publish(&broker, &first_conn, "a").unwrap();
    publish(&broker, &first_conn, "a").unwrap();
    assert_eq!(sub.events().len(), 2);
}

#[test]
fn bad_keys_are_refused_and_a_failed_publish_records_nothing() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let mut sub = Peer::new(&clients, 16);
    broker.subscribe(&sub.client, types(&["a"])).unwrap();
    let peer = Peer::with_token(&clients, 16, Some("cl_one"));
    for key in [
        String::new(),
        "k".repeat(129),
        "a\nb".into(),
        "\u{7f}".into(),
    ] {
        assert!(
            matches!(
                broker.publish(&peer.client, keyed("a", &key)),
                Err(EventError::InvalidIdempotencyKey)
            ),
            "{key:?}"
        );
    }
    // 128 characters of 2 bytes each are fine: the limit counts characters.
    let long = "é".repeat(128);
    assert_eq!(
        broker
            .publish(&peer.client, keyed("a", &long))
            .unwrap()
            .delivered,
        1
    );
    // A publish refused after the key check (bad type) does not take the key.
    assert!(broker.publish(&peer.client, keyed("A", "k")).is_err());
    assert_eq!(
        broker
            .publish(&peer.client, keyed("a", "k"))
            .unwrap()
            .delivered,
        1
    );
    assert_eq!(sub.events().len(), 2);
}

#[test]
fn the_window_evicts_the_oldest_key_first_and_forgets_expired_ones() {
    let max_age = Duration::from_secs(600);
    let start = Instant::now();
    let mut window = idempotency::Window::default();
    for (n, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let result = PublishResult {
            delivered: n,
            seq: n as u64,
        };
        window.record(key, result, start + Duration::from_secs(n as u64), 3);
    }
    assert_eq!(window.len(), 3);
    assert_eq!(window.get("a"), None);
    assert_eq!(window.get("b").unwrap().seq, 1);
    // Ten minutes after "b" it is still there; a second later it, and only it, is gone.
    window.expire(start + Duration::from_secs(601), max_age);
    assert_eq!(window.get("b").unwrap().seq, 1);
    window.expire(start + Duration::from_secs(602), max_age);
    assert_eq!(window.get("b"), None);
    assert_eq!(window.get("c").unwrap().seq, 2);
    window.expire(start + Duration::from_secs(700), max_age);
    assert_eq!(window.len(), 0);

    // Through the broker, the capacity (3 in these limits) bounds one identity's keys.
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let mut sub = Peer::new(&clients, 16);
    broker.subscribe(&sub.client, types(&["a"])).unwrap();
    let peer = Peer::with_token(&clients, 16, Some("cl_one"));
    for key in ["k1", "k2", "k3", "k4", "k1"] {
        broker.publish(&peer.client, keyed("a", key)).unwrap();
    }
    // k1 was evicted by k4, so its resend is delivered again; k4 is still remembered.
    broker.publish(&peer.client, keyed("a", "k4")).unwrap();
    assert_eq!(sub.events().len(), 5);
}

#[test]
fn identities_whose_keys_expired_are_forgotten() {
    let keys = idempotency::Keys::new(4);
    let now = Instant::now();
    let window = keys.window("cl_old".into(), now);
    idempotency::lock(&window).record(
        "k",
        PublishResult {
            delivered: 0,
            seq: 1,
        },
        now,
        4,
    );
    drop(window);
    keys.window("cl_new".into(), now);
    assert_eq!(keys.identities(), 2);
    keys.window("cl_later".into(), now + Duration::from_secs(601));
    // cl_old's only key expired and cl_new never had one: both are gone.
    assert_eq!(keys.identities(), 1);
}

#[test]
fn racing_duplicates_of_one_identity_deliver_once() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let mut sub = Peer::new(&clients, 1024);
    broker.subscribe(&sub.client, types(&["a"])).unwrap();
    let peers: Vec<Peer> = (0..4)
        .map(|_| Peer::with_token(&clients, 16, Some("cl_one")))
        .collect();
    for round in 0..50 {
        let key = format!("k{round}");
        let results: Vec<PublishResult> = std::thread::scope(|scope| {
            let handles: Vec<_> = peers
                .iter()
                .map(|peer| {
                    let (broker, key) = (&broker, &key);
                    scope.spawn(move || broker.publish(&peer.client, keyed("a", key)).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
        assert_eq!(sub.events().len(), 1, "round {round}");
    }
}

/// A backplane that records what the broker hands it.
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }
}

impl Backplane for Recorder {
    fn publish(&self, event: &Event) {
        let line = format!("publish {} {}", event.kind, event.from);
        self.calls.lock().unwrap().push(line);
    }

    fn answer(&self, event: &Event) {
        let line = format!("answer {}", event.correlation_id.as_deref().unwrap_or("-"));
        self.calls.lock().unwrap().push(line);
    }

    fn interest_added(&self, pattern: &str) {
        self.calls.lock().unwrap().push(format!("+{pattern}"));
    }

    fn interest_removed(&self, pattern: &str) {
        self.calls.lock().unwrap().push(format!("-{pattern}"));
    }
}

fn remote_event(kind: &str, correlation_id: Option<&str>, payload: &str) -> Event {
    Event {
        kind: kind.into(),
        payload: RawValue::from_string(payload.into()).unwrap(),
        correlation_id: correlation_id.map(str::to_string),
        from: "conn-1@other".into(),
        seq: 1,
        ts: "2026-01-02T03:04:05.678Z".into(),
        dropped: None,
    }
}

#[test]
fn the_backplane_hears_first_and_last_interest_and_every_local_publish() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let recorder = Arc::new(Recorder::default());
    broker.attach(recorder.clone(), "inst1");
    let (one, two) = (Peer::new(&clients, 64), Peer::new(&clients, 64));
    broker.subscribe(&one.client, types(&["a.*", "b"])).unwrap();
    broker.subscribe(&two.client, types(&["a.*", "*"])).unwrap();
    assert_eq!(recorder.take(), ["+a.*", "+b", "+*"]);
    broker.unsubscribe(&one.client, types(&["a.*"])).unwrap();
    assert!(recorder.take().is_empty(), "two still holds a.*");
    broker.disconnect(two.client.id());
    let mut removed = recorder.take();
    removed.sort();
    assert_eq!(removed, ["-*", "-a.*"]);

    publish(&broker, &one, "c.d").unwrap();
    let name = format!("conn-{}@inst1", one.client.id());
    assert_eq!(recorder.take(), [format!("publish c.d {name}")]);
    // A correlation id that nothing here waits for also goes out as an answer.
    let answer = PublishParams {
        kind: "c.d".into(),
        payload: json!(1),
        correlation_id: Some("req-1".into()),
        idempotency_key: None,
    };
    broker.publish(&one.client, answer).unwrap();
    assert_eq!(
        recorder.take(),
        ["answer req-1".to_string(), format!("publish c.d {name}")]
    );
}

#[tokio::test]
async fn remote_events_fan_out_locally_and_answer_local_requests_without_going_back() {
    let clients = Clients::default();
    let broker = Broker::new(limits(), EventMetrics::default());
    let recorder = Arc::new(Recorder::default());
    broker.attach(recorder.clone(), "inst1");
    let mut subscriber = Peer::new(&clients, 64);
    broker
        .subscribe(&subscriber.client, types(&["r.*", "*"]))
        .unwrap();
    recorder.take();

    assert_eq!(broker.deliver_remote(&remote_event("r.x", None, "1")), 1);
    assert_eq!(subscriber.events(), [("r.x".to_string(), 1, None)]);
    // Over the payload limit (64 bytes here): dropped.
    let big = format!("\"{}\"", "x".repeat(100));
    assert_eq!(broker.deliver_remote(&remote_event("r.x", None, &big)), 0);
    assert!(subscriber.events().is_empty());

    let asker = Peer::new(&clients, 64);
    let pending = broker
        .request(
            &asker.client,
            RequestParams {
                kind: "q".into(),
                payload: json!(1),
                timeout_ms: Some(5000),
            },
        )
        .unwrap();
    let id = pending.correlation_id().to_string();
    assert!(!broker.answer_remote(remote_event("a", Some("unknown"), "2")));
    assert!(broker.answer_remote(remote_event("a", Some(&id), "3")));
    let event = pending.answer().await.unwrap();
    assert_eq!(
        (event.payload.get(), event.from.as_str()),
        ("3", "conn-1@other")
    );
    // Only the local request went out; nothing that came in was sent on again.
    let calls = recorder.take();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(calls[0].starts_with("publish q conn-"), "{calls:?}");
}
