//! The whole many-instance deployment at once: three public instances sharing one real
//! PostgreSQL server and one real nats-server (tests/util/cluster.rs), behind a "proxy"
//! (plain HTTP on loopback; the test client plays the TLS-terminating proxy). A token
//! made through one instance works on another; a revocation on a third closes its
//! connections everywhere, once each, by the NATS control subject or the database's 1 s
//! reload, whichever comes first; pairing news reaches the owner on every instance;
//! events and `event.request` cross instances; losing the database refuses new
//! connections while open ones, and the events between instances, carry on.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::TestHub;
use crate::util::cluster::{
    NatsServer, ORIGIN, PostgresServer, Shared, connect, health_becomes, instance, metric, owner,
    post, publish_numbered, reach_nats, receive_in_order, subscribed_on_nats,
};

/// The reload period of the shared database's token copy: the target for a revocation
/// to close connections on the other instances, by whichever path.
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
        let shared = Shared::both(&pg, &nats);
        let (a, b, c) = tokio::join!(instance(shared), instance(shared), instance(shared));
        reach_nats(&[&a, &b, &c]).await;
        Self { pg, nats, a, b, c }
    }
}

const VIA_BROKER: &str = "semantest_hub_tokens_revoked_elsewhere_total{via=\"broker\"}";
const VIA_RELOAD: &str = "semantest_hub_tokens_revoked_elsewhere_total{via=\"reload\"}";

/// A revocation reaches the other instances by two paths: the NATS control subject and
/// each instance's reload of the token copy from the database (every second). Which one
/// comes first on an instance depends on when its reload falls, so the test holds that
/// exactly one acted on each; the control subject alone is held by
/// `cluster_events::a_revocation_on_one_instance_closes_the_token_on_another_over_nats`,
/// where it is the only path.
#[tokio::test]
async fn a_token_made_on_a_works_on_b_and_a_revocation_on_c_closes_it_on_a_and_b_once() {
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
    for ws in [&mut on_a, &mut on_b] {
        let frame = ws.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
        assert_eq!(frame.reason.as_str(), "client token revoked");
    }
    let elapsed = revoked_at.elapsed();
    // Exactly one of the two paths acted on each instance: the first to bring the news
    // closes the connections and is counted; the other finds nothing left to do.
    let mut paths = Vec::new();
    for (name, hub) in [("A", &a), ("B", &b)] {
        let (broker, reload) = (metric(hub, VIA_BROKER).await, metric(hub, VIA_RELOAD).await);
        assert_eq!(
            broker + reload,
            1.0,
            "{name}: broker {broker}, reload {reload}"
        );
        paths.push(format!(
            "{name} by {}",
            if broker == 1.0 { "NATS" } else { "reload" }
        ));
    }
    crate::util::timing_target(
        "cluster revocation",
        &format!(
            "A and B closed {:.1} ms after the revoke on C ({})",
            elapsed.as_secs_f64() * 1e3,
            paths.join(", ")
        ),
        "within the 1 s reload",
        elapsed < RELOAD,
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
