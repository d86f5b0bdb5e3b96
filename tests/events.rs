//! Event routing over real WebSockets: matching, no echo, order per publisher,
//! request/response, slow subscribers and bad input.

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::util::{TestHub, WAIT, Ws, eventually, metric, when};

/// A hub whose per-connection request limit does not get in the way of bursts.
async fn hub_with(edit: impl FnOnce(&mut semantest_hub::config::Limits)) -> TestHub {
    TestHub::start_with(|c| {
        c.config.limits.rate_limit_per_s = 100_000;
        c.config.limits.rate_limit_burst = 100_000;
        edit(&mut c.config.limits);
    })
    .await
}

/// The connection's name as events carry it in `from`.
async fn conn_name(ws: &mut Ws) -> String {
    let hello = ws.ok("hub.hello", json!({"role": "extension"})).await;
    format!("conn-{}", hello["connection_id"].as_u64().unwrap())
}

async fn subscribe(ws: &mut Ws, types: &[&str]) -> Value {
    ws.ok("event.subscribe", json!({ "types": types })).await
}

async fn publish(ws: &mut Ws, kind: &str, payload: Value) -> Value {
    ws.ok("event.publish", json!({"type": kind, "payload": payload}))
        .await
}

/// Reads `event` notifications until one of type `last`; returns them all, in order.
async fn events_until(ws: &mut Ws, last: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let event = ws.notification("event").await;
        let done = event["type"] == last;
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn types_of(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn exact_prefix_and_wildcard_subscriptions_match_as_documented() {
    let hub = hub_with(|_| {}).await;
    let mut publisher = hub.client().await;
    let mut exact = hub.client().await;
    let mut prefix = hub.client().await;
    let mut all = hub.client().await;
    let result = subscribe(&mut exact, &["probe.click", "zz.end"]).await;
    assert_eq!(
        result,
        json!({"subscribed": ["probe.click", "zz.end"], "total": 2})
    );
    subscribe(&mut prefix, &["probe.*", "zz.end"]).await;
    subscribe(&mut all, &["*"]).await;
    let sent = [
        "probe.click",
        "probe",
        "probe.click.left",
        "probes.x",
        "page.loaded",
    ];
    let mut delivered = Vec::new();
    for kind in sent {
        delivered
            .push(publish(&mut publisher, kind, json!({"kind": kind})).await["delivered"].clone());
    }
    assert_eq!(
        delivered,
        [json!(3), json!(1), json!(2), json!(1), json!(1)]
    );
    publish(&mut publisher, "zz.end", Value::Null).await;

    let got = events_until(&mut exact, "zz.end").await;
    assert_eq!(types_of(&got), ["probe.click", "zz.end"]);
    assert_eq!(got[0]["payload"], json!({"kind": "probe.click"}));
    let got = events_until(&mut prefix, "zz.end").await;
    assert_eq!(
        types_of(&got),
        ["probe.click", "probe.click.left", "zz.end"]
    );
    let got = events_until(&mut all, "zz.end").await;
    assert_eq!(
        types_of(&got),
        [
            "probe.click",
            "probe",
            "probe.click.left",
            "probes.x",
            "page.loaded",
            "zz.end"
        ]
    );
    // Every delivery has the documented shape.
    let name = conn_name(&mut publisher).await;
    for (i, event) in got.iter().enumerate() {
        assert_eq!(event["from"], name.as_str());
        assert_eq!(event["seq"], i as u64 + 1);
        assert!(event["ts"].as_str().unwrap().ends_with('Z'), "{event}");
        assert!(event.get("dropped").is_none() && event.get("correlation_id").is_none());
    }

    // Unsubscribing stops the deliveries; other patterns stay.
    let result = prefix
        .ok("event.unsubscribe", json!({"types": ["probe.*", "nope"]}))
        .await;
    assert_eq!(result, json!({"unsubscribed": ["probe.*"], "total": 1}));
    publish(&mut publisher, "probe.click.left", Value::Null).await;
    publish(&mut publisher, "zz.end", Value::Null).await;
    assert_eq!(
        types_of(&events_until(&mut prefix, "zz.end").await),
        ["zz.end"]
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_sender_never_gets_its_own_event() {
    let hub = hub_with(|_| {}).await;
    let mut sender = hub.client().await;
    let mut other = hub.client().await;
    subscribe(&mut sender, &["*"]).await;
    subscribe(&mut other, &["chat.*"]).await;
    let result = publish(&mut sender, "chat.message", json!("hi")).await;
    assert_eq!(result, json!({"delivered": 1, "seq": 1}));
    assert_eq!(other.notification("event").await["payload"], "hi");
    // The next event the sender sees is the other's, not its own.
    publish(&mut other, "chat.reply", json!("hello")).await;
    let event = sender.notification("event").await;
    assert_eq!(event["type"], "chat.reply");
    assert_eq!(event["seq"], 1);
    hub.stop().await;
}

/// `event.publish` and `worker.heartbeat` sent as JSON-RPC notifications (no `id`) run
/// and get no response (JSON-RPC 2.0 section 4.1); their failures, and any other method
/// sent without an id, are counted by kind and answered with nothing.
#[tokio::test]
async fn notifications_publish_without_a_response_and_failures_are_counted() {
    let hub = hub_with(|_| {}).await;
    let mut publisher = hub.client().await;
    let mut subscriber = hub.client().await;
    subscribe(&mut subscriber, &["fire.*"]).await;
    for n in 0..3 {
        publisher
            .send_raw(
                &json!({"jsonrpc": "2.0", "method": "event.publish",
                    "params": {"type": "fire.and.forget", "payload": n}})
                .to_string(),
            )
            .await;
    }
    for n in 0..3 {
        let event = subscriber.notification("event").await;
        assert_eq!(event["type"], "fire.and.forget");
        assert_eq!(event["payload"], n, "in the order sent");
    }
    // Bad params, a method that needs an id, a heartbeat from a connection that is no
    // worker: no response to any of them, so the next frame is the next call's answer.
    for frame in [
        json!({"jsonrpc": "2.0", "method": "event.publish", "params": {"type": ""}}),
        json!({"jsonrpc": "2.0", "method": "project.list"}),
        json!({"jsonrpc": "2.0", "method": "worker.heartbeat"}),
    ] {
        publisher.send_raw(&frame.to_string()).await;
    }
    let status = publisher.call("hub.status", json!({})).await;
    assert_eq!(status["result"]["product"], "semantest-hub", "{status}");
    assert_eq!(
        metric(
            hub.port,
            "rpc_notification_errors_total{kind=\"INVALID_PARAMS\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            hub.port,
            "rpc_notification_errors_total{kind=\"INVALID_REQUEST\"}"
        )
        .await,
        1.0
    );
    // A notification cannot do what the token may not: an events-only token's
    // worker.heartbeat is FORBIDDEN, counted, not run.
    let created = publisher
        .ok(
            "client.create",
            json!({"name": "events-only", "scopes": ["events"]}),
        )
        .await;
    let mut limited = Ws::connect(hub.ws_request_as(created["token"].as_str().unwrap(), None))
        .await
        .unwrap();
    limited
        .send_raw(&json!({"jsonrpc": "2.0", "method": "worker.heartbeat"}).to_string())
        .await;
    limited.ok("hub.hello", json!({"role": "script"})).await;
    assert_eq!(
        metric(
            hub.port,
            "rpc_notification_errors_total{kind=\"FORBIDDEN\"}"
        )
        .await,
        1.0
    );
    hub.stop().await;
}

#[tokio::test]
async fn each_publishers_events_arrive_in_order_at_every_subscriber() {
    const PUBLISHERS: usize = 3;
    const SUBSCRIBERS: usize = 10;
    const EACH: u64 = 200;
    let hub = hub_with(|_| {}).await;
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut ws = hub.client().await;
        subscribe(&mut ws, &["order.*"]).await;
        readers.push(tokio::spawn(async move {
            let mut seen: Vec<Value> = Vec::new();
            while seen.len() < PUBLISHERS * EACH as usize {
                seen.push(ws.notification("event").await);
            }
            seen
        }));
    }
    let mut writers = Vec::new();
    for p in 0..PUBLISHERS {
        let mut ws = hub.client().await;
        let name = conn_name(&mut ws).await;
        writers.push(tokio::spawn(async move {
            for i in 1..=EACH {
                let result = publish(&mut ws, &format!("order.p{p}"), json!({"i": i})).await;
                assert_eq!(result["seq"], i);
                assert_eq!(result["delivered"], SUBSCRIBERS as u64);
            }
            name
        }));
    }
    let mut names = Vec::new();
    for writer in writers {
        names.push(tokio::time::timeout(WAIT, writer).await.unwrap().unwrap());
    }
    for reader in readers {
        let seen = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        let mut last: HashMap<String, u64> = HashMap::new();
        for event in &seen {
            let from = event["from"].as_str().unwrap().to_string();
            let seq = event["seq"].as_u64().unwrap();
            assert_eq!(event["payload"]["i"], seq, "payload and seq agree");
            let previous = last.insert(from.clone(), seq).unwrap_or(0);
            assert_eq!(seq, previous + 1, "{from}: {seq} after {previous}");
            assert!(event.get("dropped").is_none());
        }
        for name in &names {
            assert_eq!(last.get(name), Some(&EACH), "all of {name}'s events");
        }
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_request_resolves_with_the_first_answer_and_times_out_without_one() {
    let hub = hub_with(|_| {}).await;
    let mut asker = hub.client().await;
    let mut responder = hub.client().await;
    let mut bystander = hub.client().await;
    let responder_name = conn_name(&mut responder).await;
    let asker_name = conn_name(&mut asker).await;
    subscribe(&mut responder, &["page.query"]).await;
    subscribe(&mut bystander, &["page.*"]).await;

    // The request is answered later; meanwhile the asker's connection keeps working.
    asker
        .send_raw(
            &json!({"jsonrpc": "2.0", "id": 100, "method": "event.request",
                    "params": {"type": "page.query", "payload": {"selector": "h1"}, "timeout_ms": 10000}})
            .to_string(),
        )
        .await;
    let request = responder.notification("event").await;
    assert_eq!(request["type"], "page.query");
    assert_eq!(request["payload"], json!({"selector": "h1"}));
    assert_eq!(request["from"], asker_name.as_str());
    let correlation_id = request["correlation_id"].as_str().unwrap().to_string();
    assert!(!correlation_id.is_empty());
    assert_eq!(
        asker.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );

    // The first publish carrying the id answers; a second one is an ordinary event.
    let answer = json!({"type": "page.answer", "payload": {"text": "Welcome"},
                        "correlation_id": correlation_id});
    let result = responder.ok("event.publish", answer.clone()).await;
    assert_eq!(
        result,
        json!({"delivered": 2, "seq": 1}),
        "bystander + asker"
    );
    let result = responder.ok("event.publish", answer).await;
    assert_eq!(result, json!({"delivered": 1, "seq": 2}));
    let response = asker.response(100).await;
    let answered = &response["result"];
    assert_eq!(answered["type"], "page.answer");
    assert_eq!(answered["payload"], json!({"text": "Welcome"}));
    assert_eq!(answered["correlation_id"], correlation_id.as_str());
    assert_eq!(answered["from"], responder_name.as_str());
    assert_eq!(answered["seq"], 1);
    assert!(answered["ts"].is_string());
    // The bystander saw the request and both answers as plain events.
    let seen = [
        bystander.notification("event").await,
        bystander.notification("event").await,
        bystander.notification("event").await,
    ];
    assert_eq!(
        types_of(&seen),
        ["page.query", "page.answer", "page.answer"]
    );

    // Nobody answers: TIMEOUT, with the id and how many subscribers the request reached.
    let error = asker
        .err(
            "event.request",
            json!({"type": "page.query", "payload": null, "timeout_ms": 200}),
        )
        .await;
    assert_eq!(error["code"], -32040);
    assert_eq!(error["data"]["kind"], "TIMEOUT");
    assert_eq!(error["data"]["delivered"], 2, "responder and bystander");
    assert_eq!(error["data"]["timeout_ms"], 200);
    let late = responder.notification("event").await["correlation_id"].clone();
    assert_eq!(error["data"]["correlation_id"], late);
    // An answer after the timeout is an ordinary event; the asker is unaffected.
    let result = responder
        .ok(
            "event.publish",
            json!({"type": "page.answer", "payload": 1, "correlation_id": late}),
        )
        .await;
    assert_eq!(result["delivered"], 1);
    assert_eq!(
        asker.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );
    for timeout_ms in [0, 60_001] {
        let error = asker
            .err(
                "event.request",
                json!({"type": "page.query", "payload": 1, "timeout_ms": timeout_ms}),
            )
            .await;
        assert_eq!(error["data"]["kind"], "INVALID_PARAMS");
    }
    hub.stop().await;
}

/// A WebSocket client with a tiny receive buffer that reads only when told to.
struct Laggard {
    socket: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Laggard {
    async fn connect(hub: &TestHub, types: &[&str]) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket
            .connect(([127, 0, 0, 1], hub.port).into())
            .await
            .unwrap();
        let (socket, _) =
            tokio_tungstenite::client_async(hub.ws_request(), MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        let mut laggard = Self { socket };
        let frame = json!({"jsonrpc": "2.0", "id": 1, "method": "event.subscribe",
                           "params": {"types": types}});
        laggard
            .socket
            .send(Message::text(frame.to_string()))
            .await
            .unwrap();
        let reply = laggard.next().await.expect("subscribe reply");
        assert_eq!(reply["id"], 1, "{reply}");
        assert!(reply["result"].is_object(), "{reply}");
        laggard
    }

    /// The next JSON text frame, or the close code once the hub closed.
    async fn next(&mut self) -> Result<Value, Option<CloseCode>> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a frame within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(None),
            }
        }
    }

    /// The next `event` notification's params.
    async fn event(&mut self) -> Result<Value, Option<CloseCode>> {
        loop {
            let frame = self.next().await?;
            if frame["method"] == "event" {
                return Ok(frame["params"].clone());
            }
        }
    }
}

/// Readers that take every `bulk.*` event until `bulk.end`.
fn spawn_readers(mut readers: Vec<Ws>) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    readers
        .drain(..)
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                loop {
                    let event = ws.notification("event").await;
                    assert!(event.get("dropped").is_none(), "a fast reader lost events");
                    seqs.push(event["seq"].as_u64().unwrap());
                    if event["type"] == "bulk.end" {
                        return seqs;
                    }
                }
            })
        })
        .collect()
}

const BULK: usize = 16 * 1024;
/// More than enough to fill any loopback socket buffers several times over.
const MAX_EVENTS: u64 = 5000;

#[tokio::test]
async fn a_slow_subscriber_loses_events_and_is_told_while_the_others_get_all() {
    const RING: usize = 4 * 1024 * 1024;
    let hub = hub_with(|l| {
        l.outgoing_queue = 64;
        l.write_timeout_s = 60;
        l.event_ring_bytes = RING;
    })
    .await;
    let events = &hub.hub().metrics().events;
    // The ring never holds more than its bound, plus the newest event.
    let bounded = || {
        let bytes = events.ring_bytes.get();
        assert!(
            bytes as usize <= RING + 2 * BULK,
            "the ring holds {bytes} bytes"
        );
    };
    let mut fast = Vec::new();
    for _ in 0..2 {
        let mut ws = hub.client().await;
        subscribe(&mut ws, &["bulk.*"]).await;
        fast.push(ws);
    }
    let fast = spawn_readers(fast);
    let mut slow = Laggard::connect(&hub, &["bulk.*"]).await;
    let mut publisher = hub.client().await;
    let body = "x".repeat(BULK);
    // Publish until the slow subscriber has fallen out of the ring for a while: 4 MiB
    // of 16 KiB events behind, plus what the sockets hold.
    let mut seq = 0;
    while events.dropped.get() < 20 {
        assert!(seq < MAX_EVENTS, "the slow subscriber never fell behind");
        let result = publish(&mut publisher, "bulk.data", json!(body)).await;
        seq = result["seq"].as_u64().unwrap();
        // Kept for all three: the loss comes later, when the ring pushes it out.
        assert_eq!(result["delivered"], 3);
        bounded();
    }
    // It reads again: it goes on with the oldest event the ring still holds.
    let reading = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let event = slow
                .event()
                .await
                .expect("the slow subscriber stays connected");
            seen.push((event["seq"].as_u64().unwrap(), event["dropped"].as_u64()));
            if event["type"] == "bulk.end" {
                return seen;
            }
        }
    });
    for _ in 0..10 {
        let result = publish(&mut publisher, "bulk.tail", json!("tail")).await;
        assert_eq!(result["delivered"], 3);
    }
    let last = publish(&mut publisher, "bulk.end", Value::Null).await;
    assert_eq!(last["delivered"], 3);
    let total = last["seq"].as_u64().unwrap();

    for reader in fast {
        let seqs = tokio::time::timeout(WAIT, reader).await.unwrap().unwrap();
        assert_eq!(
            seqs,
            (1..=total).collect::<Vec<_>>(),
            "a fast reader got every event"
        );
    }
    let seen = tokio::time::timeout(WAIT, reading).await.unwrap().unwrap();
    // Every gap is reported exactly by the delivery after it.
    let mut previous = 0;
    let mut lost = 0;
    for (seq, dropped) in &seen {
        assert!(*seq > previous, "in order");
        assert_eq!(dropped.unwrap_or(0), seq - previous - 1, "gap before {seq}");
        lost += dropped.unwrap_or(0);
        previous = *seq;
    }
    assert_eq!(previous, total);
    assert!(lost >= 20, "lost {lost}");
    assert_eq!(seen.len() as u64 + lost, total);
    let dropped = events.dropped.get();
    assert_eq!(dropped, lost);
    bounded();
    hub.stop().await;
}

/// Events reach a subscriber through the hub's event ring and its other messages through
/// its queue; an event published before a response was queued must still arrive first.
#[tokio::test]
async fn an_event_published_before_a_response_arrives_before_it() {
    let hub = hub_with(|_| {}).await;
    let mut subscriber = hub.client().await;
    subscribe(&mut subscriber, &["ord.*"]).await;
    let mut publisher = hub.client().await;
    for n in 0..300 {
        assert_eq!(
            publish(&mut publisher, "ord.n", json!(n)).await["delivered"],
            1
        );
        // The event is in the ring before this request is even sent.
        subscriber.ok("hub.status", json!({})).await;
        let before: Vec<&Value> = subscriber
            .notifications
            .iter()
            .filter(|m| m["method"] == "event")
            .collect();
        assert_eq!(before.len(), 1, "event {n} came before the response");
        assert_eq!(before[0]["params"]["payload"], n);
        subscriber.notifications.clear();
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_loses_too_many_events_is_closed_with_1008() {
    let hub = hub_with(|l| {
        l.outgoing_queue = 64;
        l.write_timeout_s = 60;
        l.max_dropped_events = 10;
        l.event_ring_bytes = 4 * 1024 * 1024;
    })
    .await;
    let mut fast = hub.client().await;
    subscribe(&mut fast, &["bulk.*"]).await;
    let fast = spawn_readers(vec![fast]);
    let mut slow = Laggard::connect(&hub, &["bulk.*"]).await;
    let mut publisher = hub.client().await;
    let body = "x".repeat(BULK);
    let closed = || hub.hub().metrics().events.slow_closed.get() == 1;
    let mut seq = 0;
    while !closed() {
        assert!(seq < MAX_EVENTS, "the slow subscriber was never closed");
        seq = publish(&mut publisher, "bulk.data", json!(body)).await["seq"]
            .as_u64()
            .unwrap();
    }
    // The others go on; the closed one gets what was queued, then 1008.
    publish(&mut publisher, "bulk.data", json!(body)).await;
    let end = publish(&mut publisher, "bulk.end", Value::Null).await;
    assert_eq!(end["delivered"], 1);
    let seqs = tokio::time::timeout(WAIT, fast.into_iter().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seqs.len() as u64, end["seq"].as_u64().unwrap());
    let mut frames = 0;
    let close = loop {
        match slow.next().await {
            Ok(_) => frames += 1,
            Err(close) => break close,
        }
        assert!(frames < MAX_EVENTS, "no close frame");
    };
    assert_eq!(close, Some(CloseCode::Policy), "closed with 1008");
    hub.stop().await;
}

#[tokio::test]
async fn bad_event_input_gets_its_error_and_the_connection_lives_on() {
    let hub = hub_with(|l| {
        l.max_subscriptions = 5;
        l.max_event_payload_bytes = 1024;
        l.event_rate_per_s = 50;
    })
    .await;
    let mut ws = hub.client().await;
    let mut other = hub.client().await;
    subscribe(&mut other, &["ok"]).await;
    async fn usable(ws: &mut Ws) {
        assert_eq!(
            ws.ok("event.publish", json!({"type": "ok", "payload": 1}))
                .await["delivered"],
            1
        );
    }
    let cases = [
        (
            "event.subscribe",
            json!({"types": ["Probe.click"]}),
            "INVALID_EVENT_TYPE",
            Some("Probe.click"),
        ),
        (
            "event.subscribe",
            json!({"types": ["ok.type", "a.*.b"]}),
            "INVALID_EVENT_TYPE",
            Some("a.*.b"),
        ),
        (
            "event.subscribe",
            json!({"types": ["probe*"]}),
            "INVALID_EVENT_TYPE",
            Some("probe*"),
        ),
        (
            "event.subscribe",
            json!({"types": ["*.click"]}),
            "INVALID_EVENT_TYPE",
            Some("*.click"),
        ),
        (
            "event.subscribe",
            json!({"types": ["a..b"]}),
            "INVALID_EVENT_TYPE",
            Some("a..b"),
        ),
        (
            "event.subscribe",
            json!({"types": ["x".repeat(129)]}),
            "INVALID_EVENT_TYPE",
            None,
        ),
        (
            "event.subscribe",
            json!({"types": []}),
            "INVALID_PARAMS",
            None,
        ),
        (
            "event.subscribe",
            json!({"types": "probe.*"}),
            "INVALID_PARAMS",
            None,
        ),
        (
            "event.unsubscribe",
            json!({"types": ["BAD"]}),
            "INVALID_EVENT_TYPE",
            Some("BAD"),
        ),
        (
            "event.publish",
            json!({"type": "probe.*", "payload": 1}),
            "INVALID_EVENT_TYPE",
            Some("probe.*"),
        ),
        (
            "event.publish",
            json!({"type": "*", "payload": 1}),
            "INVALID_EVENT_TYPE",
            Some("*"),
        ),
        (
            "event.publish",
            json!({"type": "Probe", "payload": 1}),
            "INVALID_EVENT_TYPE",
            Some("Probe"),
        ),
        (
            "event.publish",
            json!({"type": "ok"}),
            "INVALID_PARAMS",
            None,
        ),
        (
            "event.publish",
            json!({"type": "ok", "payload": 1, "extra": 2}),
            "INVALID_PARAMS",
            None,
        ),
        (
            "event.publish",
            json!({"type": "ok", "payload": 1, "correlation_id": ""}),
            "INVALID_PARAMS",
            None,
        ),
        (
            "event.publish",
            json!({"type": "ok", "payload": "x".repeat(2000)}),
            "TOO_LARGE",
            None,
        ),
        (
            "event.request",
            json!({"type": "q", "payload": "x".repeat(2000)}),
            "TOO_LARGE",
            None,
        ),
        (
            "event.request",
            json!({"type": "q.*", "payload": 1}),
            "INVALID_EVENT_TYPE",
            Some("q.*"),
        ),
        ("event.nope", json!({}), "METHOD_NOT_FOUND", None),
    ];
    for (method, params, kind, bad_type) in cases {
        let error = ws.err(method, params.clone()).await;
        assert_eq!(error["data"]["kind"], kind, "{method} {params}");
        if let Some(bad_type) = bad_type {
            assert_eq!(error["code"], -32041);
            assert_eq!(error["data"]["type"], bad_type);
        }
        usable(&mut ws).await;
    }
    // No bad subscription went in halfway.
    let result = subscribe(&mut ws, &["a", "b", "c"]).await;
    assert_eq!(result["total"], 3);
    // A flood of subscriptions stops at the limit, all or nothing per call.
    let error = ws
        .err("event.subscribe", json!({"types": ["d", "e", "f"]}))
        .await;
    assert_eq!(error["code"], -32042);
    assert_eq!(
        error["data"],
        json!({"kind": "TOO_MANY_SUBSCRIPTIONS", "limit": 5, "total": 3})
    );
    subscribe(&mut ws, &["d", "e"]).await;
    for i in 0..20 {
        let error = ws
            .err("event.subscribe", json!({"types": [format!("flood.{i}")]}))
            .await;
        assert_eq!(error["data"]["kind"], "TOO_MANY_SUBSCRIPTIONS");
    }
    // Held patterns can be subscribed again; freeing one makes room.
    assert_eq!(subscribe(&mut ws, &["a", "e"]).await["total"], 5);
    ws.ok("event.unsubscribe", json!({"types": ["a"]})).await;
    assert_eq!(subscribe(&mut ws, &["flood.0"]).await["total"], 5);
    usable(&mut ws).await;

    // Publishing faster than limits.event_rate_per_s is refused, not disconnected. The
    // publishes go out at once, without waiting for each reply: one at a time, a round
    // trip slower than 1/50 s (a loaded machine) never exceeds the rate.
    for id in 1..=200 {
        let frame = json!({"jsonrpc": "2.0", "id": format!("flood-{id}"), "method": "event.publish",
                           "params": {"type": "ok", "payload": 1}});
        ws.send_raw(&frame.to_string()).await;
    }
    let (mut replies, mut limited) = (0, 0);
    while replies < 200 {
        let reply = ws.next_json().await;
        if !reply["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("flood-"))
        {
            continue;
        }
        replies += 1;
        if reply["error"]["data"]["kind"] == "RATE_LIMITED" {
            limited += 1;
        }
    }
    assert!(limited > 0, "the event rate was never limited");
    assert_eq!(
        ws.ok("hub.status", json!({})).await["product"],
        "semantest-hub"
    );
    hub.stop().await;
}

#[tokio::test]
async fn subscriptions_end_with_the_connection() {
    let hub = hub_with(|_| {}).await;
    let mut publisher = hub.client().await;
    let mut sub = hub.client().await;
    subscribe(&mut sub, &["*"]).await;
    assert_eq!(
        publish(&mut publisher, "a", Value::Null).await["delivered"],
        1
    );
    sub.socket.close(None).await.unwrap();
    drop(sub);
    eventually("the subscriber's connection to end", async || {
        let status = publisher.ok("hub.status", json!({})).await;
        when(status["connections"].clone(), |connections| {
            *connections == 1
        })
    })
    .await;
    assert_eq!(
        publish(&mut publisher, "a", Value::Null).await["delivered"],
        0
    );
    hub.stop().await;
}

#[tokio::test]
async fn the_signature_and_metrics_show_event_routing() {
    let hub = hub_with(|_| {}).await;
    let signature: Value = reqwest::get(hub.http("/semantest-signature"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for capability in ["events", "events.idempotency"] {
        assert!(
            signature["capabilities"]
                .as_array()
                .unwrap()
                .contains(&json!(capability)),
            "{signature}"
        );
    }
    let mut publisher = hub.client().await;
    let mut sub = hub.client().await;
    subscribe(&mut sub, &["m.*"]).await;
    publish(&mut publisher, "m.x", Value::Null).await;
    publish(&mut publisher, "n.x", Value::Null).await;
    let text = reqwest::Client::new()
        .get(hub.http("/metrics"))
        .bearer_auth(&hub.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("semantest_hub_events_published_total 2"),
        "{text}"
    );
    assert!(text.contains("semantest_hub_event_deliveries_total{outcome=\"delivered\"} 1"));
    assert!(text.contains("semantest_hub_event_deliveries_total{outcome=\"dropped\"} 0"));
    hub.stop().await;
}

/// A client token with the `events` scope, created by the owner.
async fn events_token(owner: &mut Ws, name: &str) -> String {
    let created = owner
        .ok(
            "client.create",
            json!({"name": name, "scopes": ["events"], "origin": null}),
        )
        .await;
    created["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_publish_resent_after_a_reconnect_is_delivered_once() {
    let hub = hub_with(|_| {}).await;
    let mut owner = hub.client().await;
    let token = events_token(&mut owner, "resender").await;
    let other_token = events_token(&mut owner, "other").await;
    let mut sub = hub.client().await;
    subscribe(&mut sub, &["job.done", "job.end"]).await;
    let keyed =
        |n: u64| json!({"type": "job.done", "payload": {"n": n}, "idempotency_key": "job-42"});

    let mut first = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    let result = first.ok("event.publish", keyed(1)).await;
    assert_eq!(result, json!({"delivered": 1, "seq": 1}));
    drop(first);
    // The response was "lost": the client reconnects with the same token and resends.
    let mut second = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    assert_eq!(second.ok("event.publish", keyed(1)).await, result);
    // Another identity with the same key is a publish of its own.
    let mut other = Ws::connect(hub.ws_request_as(&other_token, None))
        .await
        .unwrap();
    assert_eq!(other.ok("event.publish", keyed(2)).await["delivered"], 1);
    // So is the owner's, and a fresh key of the first client.
    assert_eq!(owner.ok("event.publish", keyed(3)).await["delivered"], 1);
    let fresh = json!({"type": "job.done", "payload": {"n": 4}, "idempotency_key": "job-43"});
    assert_eq!(second.ok("event.publish", fresh).await["delivered"], 1);
    publish(&mut second, "job.end", Value::Null).await;
    let seen = events_until(&mut sub, "job.end").await;
    let payloads: Vec<&Value> = seen[..seen.len() - 1]
        .iter()
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(
        payloads,
        [
            &json!({"n": 1}),
            &json!({"n": 2}),
            &json!({"n": 3}),
            &json!({"n": 4})
        ]
    );

    // A bad key is INVALID_PARAMS and the connection goes on.
    for key in [
        json!(""),
        json!("k".repeat(129)),
        json!("a\u{7}b"),
        json!(7),
    ] {
        let error = second
            .err(
                "event.publish",
                json!({"type": "job.done", "payload": 1, "idempotency_key": key}),
            )
            .await;
        assert_eq!(error["data"]["kind"], "INVALID_PARAMS", "{key}: {error}");
    }
    let fresh = json!({"type": "job.done", "payload": 5, "idempotency_key": "job-44"});
    assert_eq!(second.ok("event.publish", fresh).await["delivered"], 1);
    assert_eq!(sub.notification("event").await["payload"], 5);
    hub.stop().await;
}
