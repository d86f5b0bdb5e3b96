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
use serde_json::json;

use crate::util::cluster::{
    NAME, NatsServer, Shared, SlowLink, connect, connect_to, get, health, instance_with,
    next_event, owner, public_settings, publish_numbered, reach_nats, receive_in_order,
    subscribed_on_nats, until_delivered,
};
use crate::util::{HubProcess, TestHub, WAIT, Ws, eventually, runtime_port, when};

/// An instance using `nats`.
async fn instance(nats: &NatsServer) -> TestHub {
    crate::util::cluster::instance(Shared::broker(nats)).await
}

/// An instance in `dir` using `nats`.
async fn instance_in(dir: tempfile::TempDir, nats: &NatsServer) -> TestHub {
    crate::util::cluster::instance_in(dir, Shared::broker(nats)).await
}

/// The owner's connection to `hub`.
async fn client(hub: &TestHub) -> Ws {
    owner(hub).await
}

#[tokio::test]
async fn a_subscriber_receives_every_instance_in_order_per_publisher() {
    let nats = NatsServer::start().await;
    let a = instance(&nats).await;
    let b = instance(&nats).await;
    let c = instance(&nats).await;
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
    let (status, body) = health(&a).await;
    assert_eq!(
        (status, &body["broker"]["state"]),
        (200, &json!("connected"))
    );
}

/// `broker.subscriptions` counts a subscription once the NATS server has it, so an
/// event published anywhere after that reaches the subscriber. The client's flush only
/// writes the SUB to the socket; counted then, an event another instance published
/// next could reach the server first and go nowhere. A slow link between A and the
/// server makes that gap wide enough to see every time.
#[tokio::test]
async fn a_subscription_counts_once_the_nats_server_has_it() {
    let nats = NatsServer::start().await;
    let link = SlowLink::start(nats.port, Duration::from_millis(500)).await;
    let slow = PublicConfig {
        broker: Some(format!("nats://127.0.0.1:{}", link.port)),
        ..public_settings(Shared::default())
    };
    let a = instance_with(crate::util::cluster::data_dir(), slow).await;
    let b = instance(&nats).await;
    reach_nats(&[&a, &b]).await;
    let mut subscriber = client(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["slow.*"]}))
        .await;
    subscribed_on_nats(&a, 1).await;
    let mut publisher = client(&b).await;
    publish_numbered(&mut publisher, "slow.one", 0, 1).await;
    let event = subscriber
        .notification_within("event", WAIT)
        .await
        .expect("the event published after the subscription counted arrives");
    assert_eq!(
        (&event["type"], &event["payload"]["n"]),
        (&json!("slow.one"), &json!(0))
    );
}

#[tokio::test]
async fn overlapping_patterns_deliver_a_remote_event_once() {
    let nats = NatsServer::start().await;
    let a = instance(&nats).await;
    let b = instance(&nats).await;
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
    let a = instance(&nats).await;
    let b = instance(&nats).await;
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
/// on A, and B learns of it through the control subject, its only way to: B closing the
/// connection at all is the control message working. How soon it does is a figure
/// (`TARGET cluster revocation over NATS`, 1 s).
#[tokio::test]
async fn a_revocation_on_one_instance_closes_the_token_on_another_over_nats() {
    let nats = NatsServer::start().await;
    let first = instance(&nats).await;
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
    let dir_b = crate::util::cluster::data_dir();
    copy_dir(dir_a.path(), dir_b.path());
    let a = instance_in(dir_a, &nats).await;
    let b = instance_in(dir_b, &nats).await;
    reach_nats(&[&a, &b]).await;

    let mut on_b = connect(&b, &token, None)
        .await
        .expect("the token works on B");
    on_b.ok("event.subscribe", json!({"types": ["probe.*"]}))
        .await;
    let mut owner = client(&a).await;
    let revoked = Instant::now();
    owner.ok("client.revoke", json!({"client_id": id})).await;
    let frame = on_b
        .closed()
        .await
        .expect("B closes the revoked token's connection with a close frame");
    let took = revoked.elapsed();
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "client token revoked");
    crate::util::timing_target(
        "cluster revocation over NATS",
        &format!(
            "closed on B {:.1} ms after the revoke on A",
            took.as_secs_f64() * 1e3
        ),
        "within 1 s",
        took < Duration::from_secs(1),
    );
    // B forgot the token: it opens nothing there any more.
    match connect(&b, &token, None).await {
        Err(status) => assert_eq!(status, 401),
        Ok(_) => panic!("the revoked token still connects to B"),
    }
}

/// An instance as its own `semantest-hub serve --public` process, SIGKILLed when dropped.
/// It binds port 0 and the test reads the port from its runtime file, so no other
/// socket can take the port between choosing it and binding it.
struct InstanceProcess {
    process: HubProcess,
    port: u16,
    token: String,
    _dir: tempfile::TempDir,
}

impl InstanceProcess {
    async fn start(nats: &NatsServer) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let empty_config = dir.path().join("public.toml");
        std::fs::write(&empty_config, "").unwrap();
        let child = std::process::Command::new(crate::util::hub_bin())
            .args(["--config"])
            .arg(&empty_config)
            .args([
                "serve",
                "--public",
                "--behind-proxy",
                "--bind",
                "127.0.0.1:0",
                "--secret-store",
                "file",
                "--log-level",
                "warn",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("SEMANTEST_HUB_PUBLIC__HOSTS", format!("[\"{NAME}\"]"))
            .env("SEMANTEST_HUB_PUBLIC__BROKER", nats.url())
            .env("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_RATE_PER_S", "100000")
            .env("SEMANTEST_HUB_PUBLIC__PER_ADDRESS_BURST", "100000")
            .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "100000")
            .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "100000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the hub binary starts");
        let process = HubProcess(child);
        let port = runtime_port(dir.path()).await;
        let token = std::fs::read_to_string(dir.path().join("secrets/owner-token"))
            .unwrap()
            .trim()
            .to_string();
        Self {
            process,
            port,
            token,
            _dir: dir,
        }
    }

    async fn client(&self) -> Ws {
        connect_to(self.port, &self.token, None)
            .await
            .unwrap_or_else(|status| panic!("owner refused with {status}"))
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self) {
        self.process.kill();
    }
}

#[tokio::test]
async fn killing_one_instance_loses_nothing_between_the_others() {
    let nats = NatsServer::start().await;
    let a = instance(&nats).await;
    let c = instance(&nats).await;
    let mut b = InstanceProcess::start(&nats).await;
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
    let a = instance(&nats).await;
    let b = instance(&nats).await;
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
    let (status, body) = eventually("A to see NATS gone", async || {
        when(health(&a).await, |(_, body)| {
            body["broker"]["state"] == "disconnected"
        })
    })
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["broker"]["kind"], "nats");
    assert_eq!(body["broker"]["state"], "disconnected");
    let metrics = get(&a, "/metrics").await.1;
    assert!(
        metrics.contains("semantest_hub_broker_connected 0"),
        "{metrics}"
    );

    // Five seconds or more without NATS: A's own clients keep exchanging events, 40 at
    // least, one every 100 ms or so (how many fit in the 5 s is a figure).
    let outage = Instant::now();
    let mut n = 0;
    let mut in_five_seconds = None;
    while n < 40 || outage.elapsed() < Duration::from_secs(5) {
        if outage.elapsed() >= Duration::from_secs(5) && in_five_seconds.is_none() {
            in_five_seconds = Some(n);
        }
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
        // Pacing, not synchronisation: the outage lasts while events keep flowing.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let in_five_seconds = in_five_seconds.unwrap_or(n);
    crate::util::timing_target(
        "local events during a NATS outage",
        &format!("{in_five_seconds} in the first 5 s, paced at 100 ms"),
        "40 or more",
        in_five_seconds >= 40,
    );

    nats.resume().await;
    reach_nats(&[&a, &b]).await;
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
    until_delivered(&mut remote, &mut subscriber, "o.resumed").await;
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
    let hub = crate::util::cluster::instance(Shared::default()).await;
    let (status, body) = health(&hub).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["broker"]["kind"], "in_process");
    assert_eq!(body["broker"]["state"], "connected");
}
