//! The whole many-instance deployment at once: three public instances sharing one real
//! PostgreSQL server (tests/postgres_server.rs) and one real nats-server
//! (tests/nats_server.rs), behind a "proxy" (plain HTTP on loopback; the test client
//! plays the TLS-terminating proxy). A token made through one instance works on
//! another; a revocation on a third closes its connection at once through the NATS
//! control subject (not the database's 1 s reload); pairing news reaches the owner on
//! every instance; events and `event.request` cross instances; losing the database
//! refuses new connections while open ones, and the events between instances, carry
//! on.

use std::time::{Duration, Instant};

use semantest_hub::config::PublicConfig;
use serde_json::json;

use crate::cluster_events::{publish_numbered, receive_in_order, subscribed_on_nats};
use crate::cluster_store::{connect, health_becomes, owner, post};
use crate::nats_server::NatsServer;
use crate::postgres_server::{PASSWORD, PostgresServer};
use crate::util::{TestHub, WAIT, eventually, test_config};

/// The public name the instances answer to.
const NAME: &str = "hub.test";
const ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

/// The reload period of the shared database's token copy: a close faster than this,
/// counted under `via="broker"`, came over NATS.
const RELOAD: Duration = Duration::from_secs(1);

/// The deployment: the shared services and three instances.
struct Cluster {
    pg: PostgresServer,
    nats: NatsServer,
    a: TestHub,
    b: TestHub,
    c: TestHub,
}

impl Cluster {
    async fn start() -> Self {
        let (pg, nats) = tokio::join!(PostgresServer::start(), NatsServer::start());
        let (a, b, c) = tokio::join!(
            instance(&pg, &nats),
            instance(&pg, &nats),
            instance(&pg, &nats)
        );
        eventually("every instance reaches NATS", || {
            [&a, &b, &c]
                .iter()
                .all(|hub| hub.hub().broker_health().healthy())
        })
        .await;
        Self { pg, nats, a, b, c }
    }
}

/// One public instance with its own port, data directory and owner token, sharing the
/// database and the broker.
async fn instance(pg: &PostgresServer, nats: &NatsServer) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("database-password"), PASSWORD).unwrap();
    let mut config = test_config(dir.path());
    let public = PublicConfig {
        enabled: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        hosts: vec![NAME.into()],
        behind_proxy: true,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        pairing: true,
        per_address_rate_per_s: 100_000,
        per_address_burst: 100_000,
        broker: Some(nats.url()),
        database: Some(pg.url()),
        ..Default::default()
    };
    public.validate().expect("valid public settings");
    config.config.public = public;
    // The tests publish hundreds of events per connection in a burst.
    config.config.limits.rate_limit_per_s = 100_000;
    config.config.limits.rate_limit_burst = 100_000;
    TestHub::start_in(dir, config).await
}

/// `GET path` from a monitoring address: `(status, body)`.
async fn get(hub: &TestHub, path: &str) -> (u16, String) {
    let response = tokio::time::timeout(
        WAIT,
        reqwest::Client::new()
            .get(hub.http(path))
            .header("host", NAME)
            .send(),
    )
    .await
    .expect("an answer within the wait")
    .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The value of the metric line starting with `series` (0 when it is absent).
async fn metric(hub: &TestHub, series: &str) -> f64 {
    let (status, text) = get(hub, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

const VIA_BROKER: &str = "semantest_hub_tokens_revoked_elsewhere_total{via=\"broker\"}";
const VIA_RELOAD: &str = "semantest_hub_tokens_revoked_elsewhere_total{via=\"reload\"}";

#[tokio::test]
async fn a_token_made_on_a_works_on_b_and_a_revocation_on_c_closes_it_on_a_over_nats() {
    // Bound, not `..`: the servers live as long as the test.
    let Cluster {
        pg: _pg,
        nats: _nats,
        a,
        b,
        c,
    } = Cluster::start().await;
    let created = owner(&a)
        .await
        .ok(
            "client.create",
            json!({"name": "reader", "scopes": ["events"]}),
        )
        .await;
    let id = created["client"]["id"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();

    // Made through A, it works on B at once (B checks new connections in PostgreSQL).
    let mut on_b = connect(&b, &token, None)
        .await
        .expect("the token works on B");
    on_b.ok("hub.hello", json!({})).await;
    let mut on_a = connect(&a, &token, None)
        .await
        .expect("the token works on A");
    on_a.ok("hub.hello", json!({})).await;

    let mut owner_c = owner(&c).await;
    let revoked_at = Instant::now();
    let revoked = owner_c.ok("client.revoke", json!({"client_id": id})).await;
    assert_eq!(revoked["revoked"], true);
    for (name, ws) in [("A", &mut on_a), ("B", &mut on_b)] {
        let frame = tokio::time::timeout(RELOAD, ws.closed())
            .await
            .unwrap_or_else(|_| panic!("{name} closes the revoked token's connection within 1 s"))
            .expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
        assert_eq!(frame.reason.as_str(), "client token revoked");
    }
    let elapsed = revoked_at.elapsed();
    assert!(elapsed < RELOAD, "closed after {elapsed:?}");
    // The control message did it on A: A learnt of the revocation first through the
    // broker, and its reload (which only reports tokens still live in its copy) found
    // nothing left to do. The reload could only come first if it read the database in
    // the millisecond or so between C's commit and the control message's arrival.
    assert_eq!(metric(&a, VIA_BROKER).await, 1.0);
    assert_eq!(metric(&a, VIA_RELOAD).await, 0.0);
    // On B too, exactly one of the two paths acted.
    assert_eq!(
        metric(&b, VIA_BROKER).await + metric(&b, VIA_RELOAD).await,
        1.0
    );
    assert_eq!(connect(&a, &token, None).await.err(), Some(401));
    assert_eq!(connect(&b, &token, None).await.err(), Some(401));
}

#[tokio::test]
async fn owners_on_every_instance_hear_of_a_pairing_made_on_another() {
    // Bound, not `..`: the servers live as long as the test.
    let Cluster {
        pg: _pg,
        nats: _nats,
        a,
        b,
        c,
    } = Cluster::start().await;
    let (mut owner_a, mut owner_c) = (owner(&a).await, owner(&c).await);
    // Each owner connection is live before the request (a round trip each).
    owner_a.ok("hub.hello", json!({})).await;
    owner_c.ok("hub.hello", json!({})).await;

    let (status, requested) = post(&b, "/pair", json!({"name": "My extension"})).await;
    assert_eq!(status, 201, "{requested}");
    let request_id = requested["request_id"].as_str().unwrap().to_string();
    for ws in [&mut owner_a, &mut owner_c] {
        let heard = ws.notification("pairing.requested").await;
        assert_eq!(heard["request"]["id"], request_id.as_str(), "{heard}");
        assert_eq!(heard["request"]["code"], requested["code"]);
        assert_eq!(heard["request"]["origin"], ORIGIN);
    }

    // Approved on C: A hears the outcome too (and C itself, as always).
    owner_c
        .ok(
            "pairing.approve",
            json!({"request_id": request_id, "scopes": ["events"]}),
        )
        .await;
    for ws in [&mut owner_a, &mut owner_c] {
        let resolved = ws.notification("pairing.resolved").await;
        assert_eq!(
            resolved,
            json!({"request_id": request_id, "outcome": "approved"})
        );
    }

    // A second request, denied on A: C hears the denial.
    let (status, second) = post(&b, "/pair", json!({"name": "Other extension"})).await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["request_id"].as_str().unwrap().to_string();
    assert_eq!(
        owner_a.notification("pairing.requested").await["request"]["id"],
        second_id.as_str()
    );
    owner_a
        .ok("pairing.deny", json!({"request_id": second_id}))
        .await;
    let resolved = owner_c.notification("pairing.resolved").await;
    assert_eq!(
        resolved,
        json!({"request_id": second_id, "outcome": "denied"})
    );
}

/// An extension's Origin, looked up on B before pairing and remembered there as
/// unknown, is served by B as soon as the pairing is approved on C: the approval's
/// `PairingResolved` news on the NATS control subject makes B forget its misses, so the
/// freshly paired extension is not refused for the rest of the miss TTL (10 s), nor
/// until B's next reload of the token copy.
#[tokio::test]
async fn a_pairing_approved_on_c_is_not_refused_on_b_by_a_remembered_miss() {
    // Bound, not `..`: the servers live as long as the test.
    let Cluster {
        pg: _pg,
        nats: _nats,
        a: _a,
        b,
        c,
    } = Cluster::start().await;
    let (mut owner_b, mut owner_c) = (owner(&b).await, owner(&c).await);
    owner_b.ok("hub.hello", json!({})).await;
    owner_c.ok("hub.hello", json!({})).await;
    // Before pairing, the extension's Origin is refused on B, which remembers the miss.
    let owner_token = b.token.clone();
    assert_eq!(
        connect(&b, &owner_token, Some(ORIGIN)).await.err(),
        Some(403)
    );

    let (status, requested) = post(&c, "/pair", json!({"name": "My extension"})).await;
    assert_eq!(status, 201, "{requested}");
    let request_id = requested["request_id"].as_str().unwrap().to_string();
    owner_c
        .ok(
            "pairing.approve",
            json!({"request_id": request_id, "scopes": ["events"]}),
        )
        .await;
    // B has acted on the control message once its owner hears the outcome.
    let resolved = owner_b.notification("pairing.resolved").await;
    assert_eq!(
        resolved,
        json!({"request_id": request_id, "outcome": "approved"})
    );
    let (status, claimed) = post(
        &c,
        &format!("/pair/{request_id}"),
        json!({"claim": requested["claim"]}),
    )
    .await;
    assert_eq!(status, 200, "{claimed}");
    let token = claimed["token"].as_str().unwrap().to_string();
    connect(&b, &token, Some(ORIGIN))
        .await
        .unwrap_or_else(|status| panic!("the paired extension was refused on B: {status}"));
}

#[tokio::test]
async fn events_from_b_and_c_reach_a_in_order_and_c_answers_a_request_from_a() {
    // Bound, not `..`: the servers live as long as the test.
    let Cluster {
        pg: _pg,
        nats: _nats,
        a,
        b,
        c,
    } = Cluster::start().await;
    let mut subscriber = owner(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["load.*"]}))
        .await;
    subscribed_on_nats(&a, 1).await;

    let (mut pub_b, mut pub_c) = (owner(&b).await, owner(&c).await);
    let count = 200;
    let publish_b = tokio::spawn(async move {
        publish_numbered(&mut pub_b, "load.tick", 0, count).await;
        pub_b
    });
    let publish_c = tokio::spawn(async move {
        publish_numbered(&mut pub_c, "load.tock", 0, count).await;
        pub_c
    });
    let per_publisher = receive_in_order(&mut subscriber, 2 * count as usize).await;
    publish_b.await.unwrap();
    let mut responder = publish_c.await.unwrap();
    assert_eq!(per_publisher.len(), 2, "{per_publisher:?}");
    assert!(per_publisher.values().all(|n| *n == count));
    assert!(per_publisher.keys().all(|from| from.contains('@')));

    responder
        .ok("event.subscribe", json!({"types": ["ask.*"]}))
        .await;
    subscribed_on_nats(&c, 1).await;
    subscriber
        .send_raw(
            &json!({"jsonrpc": "2.0", "id": 99, "method": "event.request",
                "params": {"type": "ask.time", "payload": {"q": 1}, "timeout_ms": 10000}})
            .to_string(),
        )
        .await;
    let asked = responder.notification("event").await;
    assert_eq!(asked["type"], "ask.time");
    let correlation_id = asked["correlation_id"].as_str().unwrap().to_string();
    responder
        .ok(
            "event.publish",
            json!({"type": "reply.time", "payload": {"a": 42}, "correlation_id": correlation_id}),
        )
        .await;
    let response = subscriber.response(99).await;
    assert_eq!(response["result"]["payload"]["a"], 42, "{response}");
    assert_eq!(
        response["result"]["correlation_id"],
        correlation_id.as_str()
    );
}

#[tokio::test]
async fn without_the_database_new_connections_get_503_and_events_still_cross_instances() {
    let Cluster {
        pg,
        nats: _nats,
        a,
        b,
        c,
    } = Cluster::start().await;
    let mut subscriber = owner(&a).await;
    subscriber
        .ok("event.subscribe", json!({"types": ["d.*"]}))
        .await;
    subscribed_on_nats(&a, 1).await;
    let (mut pub_b, mut pub_c) = (owner(&b).await, owner(&c).await);

    pg.stop().await;
    for hub in [&a, &b, &c] {
        let body = health_becomes(hub, 503).await;
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["database"]["state"], "unreachable");
        assert_eq!(body["broker"]["state"], "connected", "{body}");
        let token = hub.token.clone();
        assert_eq!(connect(hub, &token, None).await.err(), Some(503));
    }

    // The open connections carry on, and events between instances still flow, in order.
    publish_numbered(&mut pub_b, "d.b", 0, 50).await;
    publish_numbered(&mut pub_c, "d.c", 0, 50).await;
    let per_publisher = receive_in_order(&mut subscriber, 100).await;
    assert_eq!(per_publisher.len(), 2, "{per_publisher:?}");
    assert!(per_publisher.values().all(|n| *n == 50));
    let hello = subscriber.ok("hub.hello", json!({})).await;
    assert!(hello["protocol"].is_number(), "{hello}");

    pg.start_again().await;
    health_becomes(&a, 200).await;
    let token = a.token.clone();
    connect(&a, &token, None)
        .await
        .expect("new connections are served again");
}
