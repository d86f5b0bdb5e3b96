//! Hub instances in public mode sharing a real PostgreSQL server ([`PostgresServer`]),
//! a real nats-server ([`NatsServer`]), or both: what the cluster tests
//! (tests/cluster_store.rs, tests/cluster_events.rs, tests/cluster.rs) have in common.
//!
//! Each instance runs in this process with its own port, data directory and owner token,
//! behind a "proxy": plain HTTP on loopback, as public mode serves a TLS-terminating
//! proxy, which the test client plays by sending the public Host name. Everything here
//! watches an instance from outside, as a client or a monitoring probe would: WebSocket
//! upgrades, `/health`, `/metrics`.

use std::collections::HashMap;

use semantest_hub::config::PublicConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};

pub use super::nats_server::NatsServer;
pub use super::postgres_server::{DATABASE, PASSWORD, PostgresServer, USER};
use super::{TestHub, WAIT, Ws, eventually, test_config, when};

/// The public name the instances answer to.
pub const NAME: &str = "hub.test";
/// The browser extension that pairs in the tests.
pub const ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

/// What an instance shares with the others: the database, the broker, both or neither.
#[derive(Clone, Copy, Default)]
pub struct Shared<'a> {
    pub database: Option<&'a PostgresServer>,
    pub broker: Option<&'a NatsServer>,
}

impl<'a> Shared<'a> {
    /// The database alone.
    pub fn database(pg: &'a PostgresServer) -> Self {
        Self {
            database: Some(pg),
            broker: None,
        }
    }

    /// The broker alone.
    pub fn broker(nats: &'a NatsServer) -> Self {
        Self {
            database: None,
            broker: Some(nats),
        }
    }

    /// Both.
    pub fn both(pg: &'a PostgresServer, nats: &'a NatsServer) -> Self {
        Self {
            database: Some(pg),
            broker: Some(nats),
        }
    }
}

/// The public settings of every instance: behind a TLS-terminating proxy on loopback,
/// answering to [`NAME`], pairing on, per-address limits out of the way of the tests'
/// bursts, sharing what `shared` names.
pub fn public_settings(shared: Shared) -> PublicConfig {
    let settings = PublicConfig {
        enabled: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        hosts: vec![NAME.into()],
        behind_proxy: true,
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        pairing: true,
        per_address_rate_per_s: 100_000,
        per_address_burst: 100_000,
        broker: shared.broker.map(NatsServer::url),
        database: shared.database.map(PostgresServer::url),
        ..Default::default()
    };
    settings.validate().expect("valid public settings");
    settings
}

/// A data directory whose file secret store holds the database password.
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("database-password"), PASSWORD).unwrap();
    dir
}

/// One public instance on its own port and data directory, sharing what `shared` names.
pub async fn instance(shared: Shared<'_>) -> TestHub {
    instance_in(data_dir(), shared).await
}

/// [`instance`] on an existing data directory (one made by [`data_dir`] if it shares the
/// database).
pub async fn instance_in(dir: tempfile::TempDir, shared: Shared<'_>) -> TestHub {
    instance_with(dir, public_settings(shared)).await
}

/// An instance on `dir` with the public settings `public` (made from
/// [`public_settings`], changed).
pub async fn instance_with(dir: tempfile::TempDir, public: PublicConfig) -> TestHub {
    let mut config = test_config(dir.path());
    config.config.public = public;
    // The tests publish hundreds of events per connection in a burst.
    config.config.limits.rate_limit_per_s = 100_000;
    config.config.limits.rate_limit_burst = 100_000;
    TestHub::start_in(dir, config).await
}

/// A WebSocket upgrade to the instance on `port` with `token` (and `origin`), through the
/// "proxy".
pub fn request_to(port: u16, token: &str, origin: Option<&str>) -> Request<()> {
    let mut request = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .unwrap();
    let headers = request.headers_mut();
    headers.insert("host", HeaderValue::from_static(NAME));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    if let Some(origin) = origin {
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    request
}

/// A client of the instance on `port` with `token` (and `origin`), or the HTTP status
/// that refused the upgrade.
pub async fn connect_to(port: u16, token: &str, origin: Option<&str>) -> Result<Ws, u16> {
    match tokio::time::timeout(WAIT, Ws::connect(request_to(port, token, origin)))
        .await
        .expect("an answer within the wait")
    {
        Ok(ws) => Ok(ws),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// [`connect_to`] `hub`.
pub async fn connect(hub: &TestHub, token: &str, origin: Option<&str>) -> Result<Ws, u16> {
    connect_to(hub.port, token, origin).await
}

/// The owner's connection to `hub`.
pub async fn owner(hub: &TestHub) -> Ws {
    connect(hub, &hub.token, None)
        .await
        .unwrap_or_else(|status| panic!("owner refused with {status}"))
}

/// `GET path` from a monitoring address: `(status, body)`.
pub async fn get(hub: &TestHub, path: &str) -> (u16, String) {
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

/// `POST path` to `hub` from the extension [`ORIGIN`]: `(status, body)` (`null` when the
/// body is not JSON).
pub async fn post(hub: &TestHub, path: &str, body: Value) -> (u16, Value) {
    let response = tokio::time::timeout(
        WAIT,
        reqwest::Client::new()
            .post(hub.http(path))
            .header("host", NAME)
            .header("origin", ORIGIN)
            .json(&body)
            .send(),
    )
    .await
    .expect("an answer within the wait")
    .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET /health` of `hub`: `(status, body)`.
pub async fn health(hub: &TestHub) -> (u16, Value) {
    let (status, body) = get(hub, "/health").await;
    (status, serde_json::from_str(&body).unwrap())
}

/// Polls `/health` of `hub` until it answers `status`; returns the body.
pub async fn health_becomes(hub: &TestHub, status: u16) -> Value {
    let what = format!("/health to answer {status}");
    let (_, body) = eventually(&what, async || {
        when(health(hub).await, |(got, _)| *got == status)
    })
    .await;
    body
}

/// The value of the `/metrics` line of `series` (a name with its labels, as written in
/// the exposition), 0 when it is absent.
pub async fn metric(hub: &TestHub, series: &str) -> f64 {
    let (status, text) = get(hub, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Waits until every one of `hubs` reports its broker connected in `/health`.
pub async fn reach_nats(hubs: &[&TestHub]) {
    for hub in hubs {
        eventually("the instance to reach NATS", async || {
            let broker = health(hub).await.1["broker"].clone();
            when(broker, |broker| broker["state"] == "connected")
        })
        .await;
    }
}

/// Waits until `hub` holds `n` NATS subscriptions for its clients (`/health`
/// `broker.subscriptions`, counted once the NATS server has them: after a flush).
pub async fn subscribed_on_nats(hub: &TestHub, n: i64) {
    eventually("the instance to subscribe on NATS", async || {
        let broker = health(hub).await.1["broker"].clone();
        when(broker, |broker| broker["subscriptions"] == n)
    })
    .await;
}

/// The next `event` notification.
pub async fn next_event(ws: &mut Ws) -> Value {
    ws.notification("event").await
}

/// Publishes `count` events of `kind` numbered from `first`.
pub async fn publish_numbered(ws: &mut Ws, kind: &str, first: u64, count: u64) {
    for n in first..first + count {
        ws.ok("event.publish", json!({"type": kind, "payload": {"n": n}}))
            .await;
    }
}

/// Receives `count` events and checks that each publisher's arrive in order, by `seq`
/// and by payload number; returns how many came from each publisher.
pub async fn receive_in_order(ws: &mut Ws, count: usize) -> HashMap<String, u64> {
    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    let mut per_publisher = HashMap::new();
    for received in 0..count {
        let Some(event) = ws.notification_within("event", WAIT).await else {
            panic!(
                "{received} of {count} events arrived (per publisher: {per_publisher:?}), then \
                 none within {WAIT:?}"
            )
        };
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

/// Publishes a marker event of `kind` from `publisher` until one reaches `subscriber`:
/// for a path whose subscription cannot be watched from here (an instance running as its
/// own process, or one that is restoring its NATS subscriptions after an outage).
/// Markers still on their way when one arrives reach `subscriber` later; the caller
/// skips them.
pub async fn until_delivered(publisher: &mut Ws, subscriber: &mut Ws, kind: &str) {
    let what = format!("a {kind} event to arrive");
    let mut sent = 0u32;
    eventually(&what, async || {
        publisher
            .ok("event.publish", json!({"type": kind, "payload": {}}))
            .await;
        sent += 1;
        // One marker's worth of waiting per round; a marker slower than that is found
        // in a later round.
        let round = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
        while let Ok(event) = tokio::time::timeout_at(round, next_event(subscriber)).await {
            if event["type"] == kind {
                return Ok(());
            }
        }
        Err(format!("{sent} markers published, none arrived"))
    })
    .await;
}

/// A TCP relay to a server on `target` that holds every byte its client sends for
/// `delay` before passing it on, in order, and passes the server's bytes back at once:
/// a slow link from one instance towards the NATS server, which shows what that
/// instance takes as done before the server has seen it.
pub struct SlowLink {
    /// The loopback port clients connect to instead of `target`.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    pub async fn start(target: u16, delay: std::time::Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                tokio::spawn(relay(client, server, delay));
            }
        });
        Self { port, task }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `client` to `server` `delay` late and `server` to `client` at once, until
/// either side ends.
async fn relay(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    delay: std::time::Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    let hold = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buf).await {
            let due = tokio::time::Instant::now() + delay;
            if held_tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let pass_on = async move {
        while let Some((due, bytes)) = held_rx.recv().await {
            tokio::time::sleep_until(due).await;
            if server_write.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    let back = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::select! {
        () = async { tokio::join!(hold, pass_on); } => {}
        () = back => {}
    }
}
