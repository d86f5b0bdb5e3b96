//! Several hub instances in public mode sharing one real nats-server
//! (tests/nats_server.rs): events, order per publisher, `event.request` answered on
//! another instance, revocation reaching every instance, an instance stopping, and a
//! NATS outage with its `/health` and metrics.
//!
//! The instances run in this process (the one that is killed runs as its own
//! `semantest-hub serve --public` process), behind a "proxy" (plain HTTP on loopback,
//! as public mode serves a TLS-terminating proxy; the test client plays the proxy),
//! each with its own data directory and owner token.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use semantest_hub::config::PublicConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::nats_server::NatsServer;
use crate::util::{TestHub, WAIT, Ws, eventually, test_config};

/// The public name the instances answer to.
const NAME: &str = "hub.test";

fn public_settings(broker: &str) -> PublicConfig {
    let public = PublicConfig {
        enabled: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        hosts: vec![NAME.into()],
        behind_proxy: true,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        per_address_rate_per_s: 100_000,
        per_address_burst: 100_000,
        broker: Some(broker.to_string()),
        ..Default::default()
    };
    public.validate().expect("valid public settings");
    public
}

/// An instance in `dir` using the NATS server at `broker`.
async fn instance_in(dir: tempfile::TempDir, broker: &str) -> TestHub {
    let mut config = test_config(dir.path());
    config.config.public = public_settings(broker);
    // The tests publish hundreds of events per connection in a burst.
    config.config.limits.rate_limit_per_s = 100_000;
    config.config.limits.rate_limit_burst = 100_000;
    TestHub::start_in(dir, config).await
}

async fn instance(broker: &str) -> TestHub {
    instance_in(tempfile::tempdir().unwrap(), broker).await
}

/// A client of `hub` with `token`.
async fn client_as(hub: &TestHub, token: &str) -> Ws {
    let mut request = hub.ws_request_as(token, None);
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static(NAME));
    tokio::time::timeout(WAIT, Ws::connect(request))
        .await
        .expect("an answer within the wait")
        .expect("client connects")
}

async fn client(hub: &TestHub) -> Ws {
    client_as(hub, &hub.token).await
}

/// `GET /health` as a monitoring address: `(status, body)`.
async fn health(hub: &TestHub) -> (u16, Value) {
    let (status, body) = get(hub, "/health").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// `GET path` as a monitoring address: `(status, body)`.
async fn get(hub: &TestHub, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("health within the wait")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, body.to_string())
}

/// Waits until `hub` holds `n` NATS subscriptions for its clients (the server has
/// them: the count is taken after a flush).
pub(crate) async fn subscribed_on_nats(hub: &TestHub, n: i64) {
    eventually("the instance subscribes on NATS", || {
        hub.hub().broker_health().subscriptions == n
    })
    .await;
}

/// The next `event` notification.
async fn next_event(ws: &mut Ws) -> Value {
    ws.notification("event").await
}

/// Publishes `count` events of `kind` numbered from `first`.
pub(crate) async fn publish_numbered(ws: &mut Ws, kind: &str, first: u64, count: u64) {
    for n in first..first + count {
        ws.ok("event.publish", json!({"type": kind, "payload": {"n": n}}))
            .await;
    }
}

/// Receives `count` events and checks that each publisher's arrive in order, by `seq`
/// and by payload number; returns how many came from each publisher.
pub(crate) async fn receive_in_order(ws: &mut Ws, count: usize) -> HashMap<String, u64> {
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    let mut per_publisher = HashMap::new();
    for _ in 0..count {
        let event = next_event(ws).await;
        let from = event["from"].as_str().unwrap().to_string();
        let seq = event["seq"].as_u64().unwrap();
        let n = event["payload"]["n"].as_u64().unwrap();
        if let Some((last_seq, last_n)) = last.get(&from) {
            assert!(
                seq > *last_seq && n == last_n + 1,
                "{from}: seq {seq} n {n} after seq {last_seq} n {last_n}"
            );
        }
        last.insert(from.clone(), (seq, n));
        *per_publisher.entry(from).or_insert(0) += 1;
    }
    per_publisher
}

#[tokio::test]
async fn a_subscriber_receives_every_instance_in_order_per_publisher() {
    let nats = NatsServer::start().await;
    let a = instance(&nats.url()).await;
    let b = instance(&nats.url()).await;
    let c = instance(&nats.url()).await;
    let mut subscriber = client(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["load.*"]}))
        .await;
    subscribed_on_nats(&a, 1).await;

    let (mut pub_b, mut pub_c) = (client(&b).await, client(&c).await);
    let count = 300;
    let publish_b = tokio::spawn(async move {
        publish_numbered(&mut pub_b, "load.tick", 0, count).await;
        pub_b
    });
    let publish_c = tokio::spawn(async move {
        publish_numbered(&mut pub_c, "load.tock.deep", 0, count).await;
        pub_c
    });
    let per_publisher = receive_in_order(&mut subscriber, 2 * count as usize).await;
    publish_b.await.unwrap();
    publish_c.await.unwrap();

    assert_eq!(per_publisher.len(), 2, "{per_publisher:?}");
    assert!(per_publisher.values().all(|n| *n == count));
    // Publishers on different instances have different names, even with equal ids.
    assert!(per_publisher.keys().all(|from| from.contains('@')));
    let health = a.hub().broker_health();
    assert!(health.healthy());
}

#[tokio::test]
async fn overlapping_patterns_deliver_a_remote_event_once() {
    let nats = NatsServer::start().await;
    let a = instance(&nats.url()).await;
    let b = instance(&nats.url()).await;
    let mut subscriber = client(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["x.*", "x.y", "*"]}))
        .await;
    subscribed_on_nats(&a, 3).await;
    let mut publisher = client(&b).await;
    publish_numbered(&mut publisher, "x.y", 0, 20).await;
    let per_publisher = receive_in_order(&mut subscriber, 20).await;
    assert_eq!(per_publisher.values().sum::<u64>(), 20);
    // A marker published after them is the next event: no copy came in between.
    publish_numbered(&mut publisher, "x.z", 20, 1).await;
    assert_eq!(next_event(&mut subscriber).await["payload"]["n"], 20);

    // The last local subscriber leaving closes the NATS subscriptions.
    subscriber
        .ok("event.unsubscribe", json!({"types": ["x.*", "x.y", "*"]}))
        .await;
    subscribed_on_nats(&a, 0).await;
}

#[tokio::test]
async fn event_request_is_answered_by_a_client_of_another_instance() {
    let nats = NatsServer::start().await;
    let a = instance(&nats.url()).await;
    let b = instance(&nats.url()).await;
    let mut responder = client(&b).await;
    responder
        .ok("event.subscribe", json!({"types": ["ask.*"]}))
        .await;
    subscribed_on_nats(&b, 1).await;

    let mut requester = client(&a).await;
    requester
        .send_raw(
            &json!({"jsonrpc": "2.0", "id": 99, "method": "event.request",
                "params": {"type": "ask.time", "payload": {"q": 1}, "timeout_ms": 10000}})
            .to_string(),
        )
        .await;
    let asked = next_event(&mut responder).await;
    assert_eq!(asked["type"], "ask.time");
    let correlation_id = asked["correlation_id"].as_str().unwrap().to_string();
    let published = responder
        .ok(
            "event.publish",
            json!({"type": "reply.time", "payload": {"a": 42}, "correlation_id": correlation_id}),
        )
        .await;
    // No request waits on B itself; the answer travels to A.
    assert_eq!(published["delivered"], 0);
    let response = requester.response(99).await;
    let answer = &response["result"];
    assert_eq!(answer["payload"]["a"], 42, "{response}");
    assert_eq!(answer["correlation_id"], correlation_id.as_str());
    assert_eq!(answer["type"], "reply.time");
}

/// Copies a stopped hub's data directory (the SQLite store and the secrets).
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Without a shared token store in this build, the two instances start from copies of
/// one data directory, so that both know the token; the revocation itself is only made
/// on A, and B learns of it through the control subject.
#[tokio::test]
async fn a_revocation_on_one_instance_closes_the_token_on_another_within_a_second() {
    let nats = NatsServer::start().await;
    let first = instance(&nats.url()).await;
    let mut owner = client(&first).await;
    let created = owner
        .ok(
            "client.create",
            json!({"name": "probe", "scopes": ["events"]}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["client"]["id"].as_str().unwrap().to_string();
    drop(owner);
    let dir_a = first.stop().await;
    let dir_b = tempfile::tempdir().unwrap();
    copy_dir(dir_a.path(), dir_b.path());
    let a = instance_in(dir_a, &nats.url()).await;
    let b = instance_in(dir_b, &nats.url()).await;
    eventually("both instances reach NATS", || {
        a.hub().broker_health().healthy() && b.hub().broker_health().healthy()
    })
    .await;

    let mut on_b = client_as(&b, &token).await;
    on_b.ok("event.subscribe", json!({"types": ["probe.*"]}))
        .await;
    let mut owner = client(&a).await;
    let revoked = Instant::now();
    owner.ok("client.revoke", json!({"client_id": id})).await;
    let frame = tokio::time::timeout(Duration::from_secs(1), on_b.closed())
        .await
        .expect("B closes the revoked token's connection within 1 s")
        .expect("a close frame");
    assert!(revoked.elapsed() < Duration::from_secs(1));
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "client token revoked");
    // B forgot the token: it opens nothing there any more.
    let mut request = b.ws_request_as(&token, None);
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static(NAME));
    match Ws::connect(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        Err(other) => panic!("expected 401, got {other}"),
        Ok(_) => panic!("the revoked token still connects to B"),
    }
}

/// An instance as its own `semantest-hub serve --public` process, SIGKILLed when dropped.
struct InstanceProcess {
    child: std::process::Child,
    port: u16,
    token: String,
    _dir: tempfile::TempDir,
}

impl InstanceProcess {
    async fn start(broker: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let empty_config = dir.path().join("public.toml");
        std::fs::write(&empty_config, "").unwrap();
        let child = std::process::Command::new(crate::util::hub_bin())
            .args(["--config"])
            .arg(&empty_config)
            .args(["serve", "--public", "--behind-proxy", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .args([
                "--secret-store",
                "file",
                "--log-level",
                "warn",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("SEMANTEST_HUB_PUBLIC__HOSTS", format!("[\"{NAME}\"]"))
            .env("SEMANTEST_HUB_PUBLIC__BROKER", broker)
            .env("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_RATE_PER_S", "100000")
            .env("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_BURST", "100000")
            .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "100000")
            .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "100000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the hub binary starts");
        let runtime = dir.path().join("server.json");
        eventually("the instance's runtime file", || runtime.exists()).await;
        let token = std::fs::read_to_string(dir.path().join("secrets/owner-token"))
            .unwrap()
            .trim()
            .to_string();
        Self {
            child,
            port,
            token,
            _dir: dir,
        }
    }

    async fn client(&self) -> Ws {
        let mut request = format!("ws://127.0.0.1:{}/ws", self.port)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert("host", HeaderValue::from_static(NAME));
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap(),
        );
        tokio::time::timeout(WAIT, Ws::connect(request))
            .await
            .expect("an answer within the wait")
            .expect("client connects")
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for InstanceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until an event of `kind` reaches `ws`, publishing one from `publisher` each
/// round (a process instance's NATS subscription cannot be watched from here).
async fn until_delivered(publisher: &mut Ws, ws: &mut Ws, kind: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {kind} event arrived");
        publisher
            .ok("event.publish", json!({"type": kind, "payload": {}}))
            .await;
        let round = Instant::now() + Duration::from_millis(200);
        while let Ok(event) = tokio::time::timeout_at(round.into(), next_event(ws)).await {
            if event["type"] == kind {
                return;
            }
        }
    }
}

#[tokio::test]
async fn killing_one_instance_loses_nothing_between_the_others() {
    let nats = NatsServer::start().await;
    let a = instance(&nats.url()).await;
    let c = instance(&nats.url()).await;
    let mut b = InstanceProcess::start(&nats.url()).await;
    let (mut sub_a, mut sub_c, mut sub_b) = (client(&a).await, client(&c).await, b.client().await);
    for (ws, hub) in [(&mut sub_a, &a), (&mut sub_c, &c)] {
        ws.ok("event.subscribe", json!({"types": ["f.*"]})).await;
        subscribed_on_nats(hub, 1).await;
    }
    sub_b.ok("event.subscribe", json!({"types": ["f.*"]})).await;
    let (mut pub_a, mut pub_c, mut pub_b) = (client(&a).await, client(&c).await, b.client().await);
    // B is wired both ways before the run: its events reach A and C, theirs reach B.
    until_delivered(&mut pub_b, &mut sub_a, "f.ready-b").await;
    until_delivered(&mut pub_b, &mut sub_c, "f.ready-b").await;
    until_delivered(&mut pub_a, &mut sub_b, "f.ready-a").await;
    // Warm-up events still on their way are not part of the count.
    for ws in [&mut sub_a, &mut sub_c] {
        ws.notifications.clear();
    }

    let count = 200;
    let (half_tx, half_rx) = tokio::sync::oneshot::channel();
    let mut half_tx = Some(half_tx);
    let publishers = tokio::spawn(async move {
        for n in 0..count {
            pub_a
                .ok("event.publish", json!({"type": "f.a", "payload": {"n": n}}))
                .await;
            pub_c
                .ok("event.publish", json!({"type": "f.c", "payload": {"n": n}}))
                .await;
            if n == count / 2
                && let Some(tx) = half_tx.take()
            {
                tx.send(()).ok();
            }
        }
        (pub_a, pub_c)
    });
    // B dies (SIGKILL) while A and C are publishing, with its clients connected.
    half_rx.await.unwrap();
    b.kill();
    drop((pub_b, sub_b));
    publishers.await.unwrap();

    for ws in [&mut sub_a, &mut sub_c] {
        // Each gets all of A's and C's events (one local, one from the other instance),
        // in order per publisher; late warm-up markers from B are skipped.
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut received = 0;
        while received < 2 * count {
            let event = next_event(ws).await;
            let kind = event["type"].as_str().unwrap().to_string();
            if kind.starts_with("f.ready") {
                continue;
            }
            let n = event["payload"]["n"].as_u64().unwrap();
            let expected = last.get(&kind).map_or(0, |last| last + 1);
            assert_eq!(n, expected, "{kind}: {n} after {:?}", last.get(&kind));
            last.insert(kind, n);
            received += 1;
        }
        assert_eq!(last.get("f.a"), Some(&(count - 1)));
        assert_eq!(last.get("f.c"), Some(&(count - 1)));
    }
}

#[tokio::test]
async fn a_nats_outage_keeps_local_delivery_and_cross_instance_delivery_resumes() {
    let mut nats = NatsServer::start().await;
    let a = instance(&nats.url()).await;
    let b = instance(&nats.url()).await;
    let mut subscriber = client(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["o.*"]}))
        .await;
    subscribed_on_nats(&a, 1).await;
    let (mut local, mut remote) = (client(&a).await, client(&b).await);
    remote
        .ok(
            "event.publish",
            json!({"type": "o.remote", "payload": {"n": 0}}),
        )
        .await;
    assert_eq!(next_event(&mut subscriber).await["type"], "o.remote");
    assert_eq!(health(&a).await.0, 200);

    nats.stop().await;
    eventually("A sees NATS gone", || !a.hub().broker_health().healthy()).await;
    let (status, body) = health(&a).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["broker"]["kind"], "nats");
    assert_eq!(body["broker"]["state"], "disconnected");
    let metrics = get(&a, "/metrics").await.1;
    assert!(
        metrics.contains("semantest_hub_broker_connected 0"),
        "{metrics}"
    );

    // Five seconds without NATS: A's own clients keep exchanging events.
    let outage = Instant::now();
    let mut n = 0;
    while outage.elapsed() < Duration::from_secs(5) {
        local
            .ok(
                "event.publish",
                json!({"type": "o.local", "payload": {"n": n}}),
            )
            .await;
        let event = next_event(&mut subscriber).await;
        assert_eq!(
            (event["type"].clone(), event["payload"]["n"].clone()),
            (json!("o.local"), json!(n))
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(n >= 40, "only {n} local events in 5 s");

    nats.resume().await;
    eventually("both instances reconnect", || {
        a.hub().broker_health().healthy() && b.hub().broker_health().healthy()
    })
    .await;
    let (status, body) = health(&a).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["broker"]["reconnects"].as_u64().unwrap() >= 1,
        "{body}"
    );
    let metrics = get(&a, "/metrics").await.1;
    assert!(
        metrics.contains("semantest_hub_broker_connected 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("semantest_hub_broker_reconnects_total 1"),
        "{metrics}"
    );

    // Cross-instance delivery resumes: a marker from B arrives (the subscription is
    // restored by the client on reconnect, so a few markers may go before it is).
    let deadline = Instant::now() + WAIT;
    let mut marker = 1;
    'resumed: loop {
        assert!(
            Instant::now() < deadline,
            "no event from B after the outage"
        );
        remote
            .ok(
                "event.publish",
                json!({"type": "o.remote", "payload": {"n": marker}}),
            )
            .await;
        let wait_until = Instant::now() + Duration::from_millis(500);
        while let Ok(event) =
            tokio::time::timeout_at(wait_until.into(), next_event(&mut subscriber)).await
        {
            if event["type"] == "o.remote" && event["payload"]["n"] == marker {
                break 'resumed;
            }
        }
        marker += 1;
    }
}

#[tokio::test]
async fn a_broker_url_with_a_password_stops_the_hub_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let empty_config = dir.path().join("public.toml");
    std::fs::write(&empty_config, "").unwrap();
    let output = tokio::process::Command::new(crate::util::hub_bin())
        .arg("--config")
        .arg(&empty_config)
        .args([
            "serve",
            "--public",
            "--behind-proxy",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(["--secret-store", "file", "--data-dir"])
        .arg(dir.path())
        .env("SEMANTEST_HUB_PUBLIC__HOSTS", format!("[\"{NAME}\"]"))
        .env(
            "SEMANTEST_HUB_PUBLIC__BROKER",
            "nats://hub:secret@127.0.0.1:4222",
        )
        .output();
    let output = tokio::time::timeout(WAIT, output)
        .await
        .expect("the hub exits within the wait")
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("public.broker"), "{stderr}");
    assert!(stderr.contains("SEMANTEST_HUB_BROKER_PASSWORD"), "{stderr}");
}

#[tokio::test]
async fn without_a_broker_the_health_reports_the_in_process_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.config.public = PublicConfig {
        broker: None,
        ..public_settings("nats://127.0.0.1:1")
    };
    let hub = TestHub::start_in(dir, config).await;
    let (status, body) = health(&hub).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["broker"]["kind"], "in_process");
    assert_eq!(body["broker"]["state"], "connected");
}
