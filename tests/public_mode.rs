//! Public mode: TLS with a certificate made here (rcgen), tokens only, the Host
//! allowlist of public names, per-address limits behind a trusted proxy, method
//! families off by default, the signature's mode.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use semantest_hub::config::{
    Config, LoadedConfig, Overrides, ProxyHeader, PublicConfig, PublicOverrides, SecretStoreKind,
};
use semantest_hub::security::{challenge_proof, token_hash};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::util::{TestHub, WAIT, Ws, eventually, test_config};

/// The public name the test certificate is issued for and the hub answers to.
pub(crate) const NAME: &str = "hub.test";

/// A self-signed certificate for [`NAME`], written as PEM files in `dir`, and a client
/// configuration that trusts it.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, TlsConnector) {
    let made = rcgen::generate_simple_self_signed(vec![NAME.to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (cert, key, TlsConnector::from(Arc::new(client)))
}

fn public_settings() -> PublicConfig {
    PublicConfig {
        enabled: true,
        bind: Some("127.0.0.1:0".parse().unwrap()),
        hosts: vec![NAME.into()],
        ..Default::default()
    }
}

/// A public hub with TLS on 127.0.0.1, and a connector that trusts its certificate.
pub(crate) async fn tls_hub(edit: impl FnOnce(&mut PublicConfig)) -> (TestHub, TlsConnector) {
    tls_hub_with(edit, |_| {}).await
}

/// [`tls_hub`], with `edit_all` applied to the whole configuration as well.
async fn tls_hub_with(
    edit: impl FnOnce(&mut PublicConfig),
    edit_all: impl FnOnce(&mut LoadedConfig),
) -> (TestHub, TlsConnector) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, connector) = certificate(dir.path());
    let mut config = test_config(dir.path());
    let mut public = public_settings();
    public.tls_cert = Some(cert);
    public.tls_key = Some(key);
    edit(&mut public);
    public.validate().expect("valid public settings");
    config.config.public = public;
    edit_all(&mut config);
    (TestHub::start_in(dir, config).await, connector)
}

/// A public hub serving plain HTTP behind a proxy on 127.0.0.1 (the test client plays
/// the proxy, writing X-Forwarded-For).
pub(crate) async fn proxied_hub(edit: impl FnOnce(&mut PublicConfig)) -> TestHub {
    proxied_hub_with(edit, |_| {}).await
}

/// [`proxied_hub`], with `edit_all` applied to the whole configuration as well.
async fn proxied_hub_with(
    edit: impl FnOnce(&mut PublicConfig),
    edit_all: impl FnOnce(&mut LoadedConfig),
) -> TestHub {
    TestHub::start_with(|config: &mut LoadedConfig| {
        let mut public = public_settings();
        public.behind_proxy = true;
        public.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        edit(&mut public);
        public.validate().expect("valid public settings");
        config.config.public = public;
        edit_all(config);
    })
    .await
}

pub(crate) async fn tls_connect(hub: &TestHub, connector: &TlsConnector) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake within the wait")
        .expect("TLS handshake with the test certificate")
}

/// One HTTP/1.1 request on `stream`; returns `(status, body)`.
async fn http<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    path: &str,
    host: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    // A peer may end TLS without close_notify; what arrived before counts.
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer within the wait");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn https(hub: &TestHub, connector: &TlsConnector, path: &str, host: &str) -> (u16, String) {
    http(tls_connect(hub, connector).await, path, host, &[]).await
}

async fn plain(hub: &TestHub, path: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    http(tcp, path, NAME, extra).await
}

/// A WebSocket over TLS with the owner token.
pub(crate) async fn wss(
    hub: &TestHub,
    connector: &TlsConnector,
) -> WebSocketStream<TlsStream<TcpStream>> {
    let mut request = format!("wss://{NAME}:{}/ws", hub.port)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", hub.token)).unwrap(),
    );
    let stream = tls_connect(hub, connector).await;
    let (socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
        .await
        .expect("upgrade within the wait")
        .expect("WebSocket over TLS");
    socket
}

/// A JSON-RPC call on a bare WebSocket; returns the whole response.
pub(crate) async fn call<S: AsyncRead + AsyncWrite + Unpin>(
    socket: &mut WebSocketStream<S>,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    let frame = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    socket.send(Message::text(frame.to_string())).await.unwrap();
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("an answer within the wait")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] == id {
                return value;
            }
        }
    }
}

/// A WebSocket through the "proxy": plain, with `X-Forwarded-For: client`.
async fn ws_from(hub: &TestHub, header: &str, client: &str) -> Result<Ws, tungstenite::Error> {
    let mut request = hub.ws_request();
    request.headers_mut().insert(
        tungstenite::http::HeaderName::from_bytes(header.as_bytes()).unwrap(),
        HeaderValue::from_str(client).unwrap(),
    );
    request
        .headers_mut()
        .insert("host", HeaderValue::from_static(NAME));
    tokio::time::timeout(WAIT, Ws::connect(request))
        .await
        .expect("an answer within the wait")
}

fn refused_with(result: Result<Ws, tungstenite::Error>, status: u16) {
    match result {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), status),
        Err(other) => panic!("expected HTTP {status}, got {other}"),
        Ok(_) => panic!("expected HTTP {status}, got a connection"),
    }
}

#[tokio::test]
async fn tls_serves_the_signature_with_mode_public() {
    let (hub, connector) = tls_hub(|_| {}).await;
    let (status, body) = https(&hub, &connector, "/semantest-signature", NAME).await;
    assert_eq!(status, 200, "{body}");
    let signature: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(signature["mode"], "public");
    assert_eq!(signature["service"], "semantest");
    let capabilities = signature["capabilities"].as_array().unwrap();
    for off in ["projects", "agents", "messages", "tasks"] {
        assert!(!capabilities.contains(&json!(off)), "{off} in {signature}");
    }
    // The same port does not speak plain HTTP.
    let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let mut tcp = tcp;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: hub.test\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut raw))
        .await
        .expect("closed");
    assert!(!String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 200"));
    hub.stop().await;
}

#[tokio::test]
async fn no_token_is_401_wrong_host_is_403_and_there_is_no_login() {
    let (hub, connector) = tls_hub(|_| {}).await;
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let stream = tls_connect(&hub, &connector).await;
    let (status, _) = http(stream, "/ws", NAME, &upgrade).await;
    assert_eq!(status, 401);
    // A dashboard session cookie is no credential on a public hub.
    let mut with_cookie = upgrade.to_vec();
    with_cookie.push(("Cookie", "semantest_session=0123"));
    let stream = tls_connect(&hub, &connector).await;
    let (status, body) = http(stream, "/ws", NAME, &with_cookie).await;
    assert_eq!(status, 401);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["kind"], "UNAUTHORIZED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens only"),
        "{body}"
    );
    for host in ["evil.test", "hub.test.evil.test", "localhost", "hub.test."] {
        let (status, body) = https(&hub, &connector, "/health", host).await;
        assert_eq!(status, 403, "Host {host}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            json!({"error": {"kind": "FORBIDDEN", "message": "host not allowed"}}),
            "Host {host}"
        );
    }
    let (status, body) = https(&hub, &connector, "/login?code=abc", NAME).await;
    assert_eq!(status, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["kind"], "DISABLED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens only"),
        "{body}"
    );
    let (status, _) = https(&hub, &connector, "/", NAME).await;
    assert_eq!(status, 404, "no dashboard on a public hub");
    hub.stop().await;
}

#[tokio::test]
async fn agents_projects_and_tasks_are_disabled_by_default() {
    let (hub, connector) = tls_hub(|_| {}).await;
    let mut socket = wss(&hub, &connector).await;
    let hello = call(&mut socket, 1, "hub.hello", json!({"role": "extension"})).await;
    assert!(hello.get("result").is_some(), "{hello}");
    let calls = [
        ("agent.run", json!({"project_id": "p", "prompt": "hi"})),
        ("agent.kill", json!({"project_id": "p"})),
        ("project.create", json!({"path": "/tmp"})),
        ("project.list", json!({})),
        ("messages.list", json!({"project_id": "p"})),
        ("task.create", json!({})),
        ("worker.register", json!({})),
        ("coordination.status", json!({})),
        ("hub.login_link", json!({})),
    ];
    for (i, (method, params)) in calls.into_iter().enumerate() {
        let response = call(&mut socket, 10 + i as u64, method, params).await;
        assert_eq!(response["error"]["code"], -32050, "{method}: {response}");
        assert_eq!(response["error"]["data"]["kind"], "DISABLED", "{method}");
    }
    // The connection stays usable, and its badge says PUBLIC.
    let connections = call(&mut socket, 30, "hub.connections", json!({})).await;
    let list = connections["result"]["connections"].as_array().unwrap();
    assert!(!list.is_empty());
    assert!(list.iter().all(|c| c["badge"] == "PUBLIC"), "{connections}");
    hub.stop().await;
}

#[tokio::test]
async fn enabled_families_are_served_and_listed() {
    let (hub, connector) = tls_hub(|public| public.enable_projects = true).await;
    let (_, body) = https(&hub, &connector, "/semantest-signature", NAME).await;
    let signature: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        signature["capabilities"],
        json!(["projects", "messages", "events", "events.idempotency"])
    );
    let mut socket = wss(&hub, &connector).await;
    let list = call(&mut socket, 1, "project.list", json!({})).await;
    assert!(list["result"]["projects"].is_array(), "{list}");
    let run = call(
        &mut socket,
        2,
        "agent.run",
        json!({"project_id": "p", "prompt": "x"}),
    )
    .await;
    assert_eq!(run["error"]["data"]["kind"], "DISABLED");
    hub.stop().await;
}

#[tokio::test]
async fn local_hub_badges_are_local_and_its_signature_says_local() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let connections = ws.ok("hub.connections", json!({})).await;
    assert_eq!(connections["connections"][0]["badge"], "LOCAL");
    let signature: Value = reqwest::get(hub.http("/semantest-signature"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signature["mode"], "local");
    assert_eq!(
        signature["capabilities"],
        json!([
            "projects",
            "agents",
            "messages",
            "tasks",
            "events",
            "events.idempotency",
            "pairing"
        ])
    );
    hub.stop().await;
}

#[tokio::test]
async fn per_address_connection_limit_counts_the_forwarded_client() {
    let hub = proxied_hub(|public| public.per_address_connections = 2).await;
    let mut first = ws_from(&hub, "x-forwarded-for", "203.0.113.1")
        .await
        .unwrap();
    let _second = ws_from(&hub, "x-forwarded-for", "198.51.100.9, 203.0.113.1")
        .await
        .unwrap();
    refused_with(ws_from(&hub, "x-forwarded-for", "203.0.113.1").await, 503);
    // Another address is not affected, and existing clients keep working.
    let mut other = ws_from(&hub, "x-forwarded-for", "203.0.113.2")
        .await
        .unwrap();
    other.ok("hub.status", json!({})).await;
    let connections = first.ok("hub.connections", json!({})).await;
    let addrs: Vec<&str> = connections["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["remote_addr"].as_str().unwrap())
        .collect();
    assert!(addrs.contains(&"203.0.113.1:0"), "{addrs:?}");
    assert!(addrs.contains(&"203.0.113.2:0"), "{addrs:?}");
    // A closed connection frees its slot.
    first.socket.close(None).await.unwrap();
    let _ = first.closed().await;
    // The slot is freed when the connection's task ends, just after it leaves the
    // registry.
    eventually("the address's slot to come back", async || {
        ws_from(&hub, "x-forwarded-for", "203.0.113.1").await
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn proxy_headers_other_than_the_configured_one_are_ignored() {
    // (A peer that is not a trusted proxy is not served at all:
    // `a_behind_proxy_hub_refuses_peers_that_are_not_its_proxies`.)
    // Trusted peer, but the hub reads X-Forwarded-For only: Forwarded is ignored.
    let hub = proxied_hub(|public| {
        public.per_address_connections = 1;
        public.proxy_header = ProxyHeader::XForwardedFor;
    })
    .await;
    let _a = ws_from(&hub, "forwarded", "for=203.0.113.1").await.unwrap();
    refused_with(ws_from(&hub, "forwarded", "for=203.0.113.2").await, 503);
    hub.stop().await;

    // And with proxy_header = "forwarded", RFC 7239 is read.
    let hub = proxied_hub(|public| {
        public.per_address_connections = 1;
        public.proxy_header = ProxyHeader::Forwarded;
    })
    .await;
    let _a = ws_from(&hub, "forwarded", "for=203.0.113.1").await.unwrap();
    let _b = ws_from(&hub, "forwarded", "for=\"[2001:db8::1]:443\"")
        .await
        .unwrap();
    refused_with(ws_from(&hub, "forwarded", "for=203.0.113.1").await, 503);
    hub.stop().await;
}

#[tokio::test]
async fn per_address_rate_refuses_floods_with_503_then_1013() {
    let hub = proxied_hub(|public| {
        public.per_address_rate_per_s = 1;
        public.per_address_burst = 5;
    })
    .await;
    // HTTP: one address runs out, another still gets answers.
    let mut refused = None;
    for _ in 0..20 {
        let (status, body) = plain(&hub, "/health", &[("X-Forwarded-For", "203.0.113.1")]).await;
        if status == 503 {
            refused = Some(body);
            break;
        }
        assert_eq!(status, 200);
    }
    let body = refused.expect("the flood is refused within 20 requests");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({"error": {"kind": "RATE_LIMITED", "message": "too many requests from this address; try again later"}}),
    );
    let (status, _) = plain(&hub, "/health", &[("X-Forwarded-For", "203.0.113.2")]).await;
    assert_eq!(status, 200);

    // WebSocket: a flooding address is closed with 1013; a client elsewhere goes on.
    let mut calm = ws_from(&hub, "x-forwarded-for", "198.51.100.1")
        .await
        .unwrap();
    let mut flood = ws_from(&hub, "x-forwarded-for", "198.51.100.2")
        .await
        .unwrap();
    for i in 0..50 {
        let frame = json!({"jsonrpc": "2.0", "id": i, "method": "hub.status"});
        if flood
            .socket
            .send(Message::text(frame.to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let frame = flood.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1013, "{frame:?}");
    calm.ok("hub.status", json!({})).await;
    hub.stop().await;
}

#[tokio::test]
async fn public_mode_refuses_to_start_without_tls_or_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        secret_store: Some(SecretStoreKind::File),
        public: PublicOverrides {
            enabled: Some(true),
            bind: Some("127.0.0.1:0".parse::<SocketAddr>().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = Config::load(None, &overrides).unwrap_err().to_string();
    assert!(
        err.contains("public.tls_cert") && err.contains("--behind-proxy"),
        "{err}"
    );

    // A certificate file that is not PEM stops the start with the file's name.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let mut config = test_config(dir.path());
    config.config.public = PublicConfig {
        tls_cert: Some(bad.clone()),
        tls_key: Some(bad),
        ..public_settings()
    };
    let err = match semantest_hub::start(config).await {
        Err(err) => semantest_hub::error::ErrorChain(&err).to_string(),
        Ok(_) => panic!("started with a bad certificate"),
    };
    assert!(
        err.contains("bad.pem") && err.contains("CERTIFICATE"),
        "{err}"
    );
}

#[tokio::test]
async fn the_binary_explains_what_public_mode_needs() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(crate::util::hub_bin())
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["serve", "--public", "--bind", "127.0.0.1:0"])
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs TLS"), "{stderr}");
    let output = tokio::process::Command::new(crate::util::hub_bin())
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--public", "--bind", "127.0.0.1"])
        .output();
    let output = tokio::time::timeout(WAIT, output).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("IP:PORT"), "{stderr}");
}

#[tokio::test]
async fn origins_come_from_configuration_only() {
    let (hub, connector) =
        tls_hub(|public| public.allowed_origins = vec!["chrome-extension://abcdef".into()]).await;
    let port = hub.port.to_string();
    let dashboard = format!("http://127.0.0.1:{port}");
    for (origin, expected) in [
        ("chrome-extension://abcdef", 200),
        (dashboard.as_str(), 403),
        ("tauri://localhost", 403),
        ("chrome-extension://other", 403),
    ] {
        let stream = tls_connect(&hub, &connector).await;
        let (status, body) = http(stream, "/metrics", NAME, &[("Origin", origin)]).await;
        assert_eq!(status, expected, "Origin {origin}: {body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn monitoring_detail_only_for_monitoring_addresses() {
    let hub = proxied_hub(|_| {}).await;
    // From the machine itself (no forwarded address): the full report and metrics.
    let (status, body) = plain(&hub, "/health", &[]).await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert!(health.get("memory").is_some(), "{health}");
    let (status, body) = plain(&hub, "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("semantest_hub_ws_connections"), "{body}");
    // From a remote client: status only, and no metrics.
    let remote = [("X-Forwarded-For", "203.0.113.50")];
    let (status, body) = plain(&hub, "/health", &remote).await;
    assert_eq!(status, 200);
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health,
        json!({"status": "ok", "product": "semantest-hub", "version": health["version"]})
    );
    let (status, _) = plain(&hub, "/metrics", &remote).await;
    assert_eq!(status, 403);
    hub.stop().await;
}

#[tokio::test]
async fn sighup_reloads_the_certificate() {
    let (hub, old) = tls_hub(|_| {}).await;
    let config = hub.hub().config().config.public.clone();
    let (cert, key) = (config.tls_cert.unwrap(), config.tls_key.unwrap());
    // A new certificate and key written over the old files, as a renewal does.
    let scratch = tempfile::tempdir().unwrap();
    let (new_cert, new_key, new) = certificate(scratch.path());
    std::fs::copy(new_cert, &cert).unwrap();
    std::fs::copy(new_key, &key).unwrap();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP).unwrap();
    // The reload runs on the blocking pool: poll handshakes.
    eventually("the new certificate to be served", async || {
        let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
        let name = ServerName::try_from(NAME).unwrap();
        new.connect(name, tcp).await.map_err(|err| err.to_string())
    })
    .await;
    // The old certificate is no longer served.
    let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    assert!(old.connect(name, tcp).await.is_err());
    hub.stop().await;
}

#[tokio::test]
async fn sockets_per_address_are_capped_before_tls() {
    let (hub, connector) = tls_hub(|public| public.per_address_sockets = 2).await;
    // Two sockets that never start a handshake hold this address's slots.
    let idle_a = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let _idle_b = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
    let name = ServerName::try_from(NAME).unwrap();
    let third = tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("an answer within the wait");
    assert!(third.is_err(), "a third socket from the address is closed");
    // Another address (127.0.0.2, same loopback interface) is not affected.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], hub.port)))
        .await
        .unwrap();
    let (status, _) = http(
        tokio::time::timeout(
            WAIT,
            connector.connect(ServerName::try_from(NAME).unwrap(), tcp),
        )
        .await
        .unwrap()
        .expect("handshake from another address"),
        "/health",
        NAME,
        &[],
    )
    .await;
    assert_eq!(status, 200);
    // Closing a socket frees its slot once the hub sees the end of it.
    drop(idle_a);
    eventually("the socket's slot to come back", async || {
        let tcp = TcpStream::connect(("127.0.0.1", hub.port)).await.unwrap();
        let name = ServerName::try_from(NAME).unwrap();
        connector
            .connect(name, tcp)
            .await
            .map_err(|err| err.to_string())
    })
    .await;
    hub.stop().await;
}

#[tokio::test]
async fn public_challenge_binds_the_proof_to_the_public_name() {
    let (hub, connector) = tls_hub(|_| {}).await;
    let nonce = "a-fresh-nonce-of-the-client";
    let path = format!("/semantest-signature?challenge={nonce}&client=owner");
    // A client that contacted `https://hub.test` (port 443 implied) ...
    let (status, body) = https(&hub, &connector, &path, NAME).await;
    assert_eq!(status, 200, "{body}");
    let signature: Value = serde_json::from_str(&body).unwrap();
    let challenge = &signature["challenge"];
    let endpoint = format!("{NAME}:443");
    assert_eq!(challenge["endpoint"], json!(endpoint), "{signature}");
    assert_eq!(
        challenge["proof"],
        json!(challenge_proof(
            &token_hash(&hub.token),
            nonce,
            "owner",
            &endpoint
        ))
    );
    // ... and one that named a port gets a proof for that port, not for 443.
    let (_, body) = https(&hub, &connector, &path, &format!("{NAME}:8443")).await;
    let signature: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        signature["challenge"]["endpoint"],
        json!(format!("{NAME}:8443"))
    );
    let wrong = challenge_proof(&token_hash(&hub.token), nonce, "owner", &endpoint);
    assert_ne!(signature["challenge"]["proof"], json!(wrong));
}

#[tokio::test]
async fn pairing_limits_count_the_forwarded_client_behind_a_proxy() {
    let hub = proxied_hub(|public| public.pairing = true).await;
    let pair = |forwarded: &'static str| {
        let url = format!("http://127.0.0.1:{}/pair", hub.port);
        async move {
            reqwest::Client::new()
                .post(url)
                .header(
                    "origin",
                    "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                )
                .header("x-forwarded-for", forwarded)
                .json(&json!({"name": "Semantest"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Two pending requests per address (`pairing.max_pending_per_address`): a third from
    // the same client is refused, while another client behind the same proxy still gets in.
    assert_eq!(pair("203.0.113.1").await, 201);
    assert_eq!(pair("203.0.113.1").await, 201);
    assert_eq!(pair("203.0.113.1").await, 429);
    assert_eq!(pair("203.0.113.2").await, 201);
    hub.stop().await;
}

/// `POST /pair` on the hub as the proxy would send it for `client`; `(status, body)`.
async fn pair_from(hub: &TestHub, client: &str, name: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/pair", hub.port))
        .header("host", NAME)
        .header(
            "origin",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
        )
        .header("x-forwarded-for", client)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// On a public hub anyone on the network could put pairing prompts in front of the
/// operator; pairing is off unless `public.pairing` turns it on.
#[tokio::test]
async fn a_public_hub_refuses_pairing_unless_enabled() {
    let hub = proxied_hub(|_| {}).await;
    let (status, body) = pair_from(&hub, "203.0.113.1", "Semantest").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["kind"], "DISABLED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("public.pairing"),
        "{body}"
    );
    let claim = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/pair/pr_0000000000000000",
            hub.port
        ))
        .header("host", NAME)
        .header(
            "origin",
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
        )
        .json(&json!({"claim": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(claim.status().as_u16(), 403);
    let mut owner = hub.client().await;
    assert_eq!(
        owner.ok("pairing.list", json!({})).await,
        json!({"requests": []})
    );
    let (_, signature) = plain(&hub, "/semantest-signature", &[]).await;
    let signature: Value = serde_json::from_str(&signature).unwrap();
    assert!(
        !signature["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("pairing")),
        "{signature}"
    );
    hub.stop().await;

    let hub = proxied_hub(|public| public.pairing = true).await;
    let (status, body) = pair_from(&hub, "203.0.113.1", "Semantest").await;
    assert_eq!(status, 201, "{body}");
    let (_, signature) = plain(&hub, "/semantest-signature", &[]).await;
    let signature: Value = serde_json::from_str(&signature).unwrap();
    assert!(
        signature["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("pairing")),
        "{signature}"
    );
    hub.stop().await;
}

/// One IPv6 host may use every address of its /64: the pending limit counts the prefix,
/// so rotating addresses inside it does not buy more pending requests.
#[tokio::test]
async fn pairing_limits_count_an_ipv6_client_by_its_slash_64() {
    let hub = proxied_hub(|public| public.pairing = true).await;
    assert_eq!(pair_from(&hub, "2001:db8:1:2::1", "one").await.0, 201);
    assert_eq!(pair_from(&hub, "2001:db8:1:2::2", "two").await.0, 201);
    let (status, body) = pair_from(&hub, "2001:db8:1:2:ffff:ffff:ffff:ffff", "three").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["kind"], "LIMIT_REACHED");
    // The next /64 is another client.
    assert_eq!(pair_from(&hub, "2001:db8:1:3::1", "four").await.0, 201);
    hub.stop().await;
}

/// Opens a TCP connection to `port` on `ip` from `source`.
async fn tcp_from(source: &str, ip: std::net::IpAddr, port: u16) -> TcpStream {
    let source: std::net::IpAddr = source.parse().unwrap();
    let socket = if source.is_ipv4() {
        tokio::net::TcpSocket::new_v4().unwrap()
    } else {
        tokio::net::TcpSocket::new_v6().unwrap()
    };
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(SocketAddr::new(ip, port)).await.unwrap()
}

/// Whether the hub closed `stream`: a read returns end of file or an error.
enum Trickle {
    /// The hub closed the connection after this many bytes were trickled.
    CutAfter(usize),
    /// The hub answered before the headers were complete.
    Answered(String),
}

/// Sends a request head one byte a second on `stream`, never finishing it, and reads at
/// the same time, until the hub closes the connection or `max_bytes` were sent.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, max_bytes: usize) -> Trickle {
    let head = format!("GET /health HTTP/1.1\r\nHost: {NAME}\r\nX-Trickle: ");
    let mut bytes = head.into_bytes();
    bytes.extend(std::iter::repeat_n(b'a', max_bytes));
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    for (sent, byte) in bytes.iter().enumerate() {
        tokio::select! {
            read = stream.read(&mut buf) => {
                return match read {
                    Ok(0) | Err(_) => Trickle::CutAfter(sent),
                    Ok(n) => Trickle::Answered(String::from_utf8_lossy(&buf[..n]).into()),
                };
            }
            _ = tick.tick() => {
                if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
                    return Trickle::CutAfter(sent);
                }
            }
        }
    }
    panic!(
        "the hub still waits for headers after {} bytes",
        bytes.len()
    );
}

/// One complete keep-alive `GET /health` on `stream`, reading the whole response.
async fn keep_alive_request<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    keep_alive_request_to(stream, NAME).await;
}

/// [`keep_alive_request`] with `Host: host`.
async fn keep_alive_request_to<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, host: &str) {
    let request = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("an answer within the wait")
            .unwrap();
        assert!(n > 0, "the hub closed a keep-alive connection it answered");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if body.len() >= length {
                return;
            }
        }
    }
}

/// A 2 s `limits.header_timeout_s`, so that the trickle tests are short.
fn short_header_timeout(config: &mut LoadedConfig) {
    config.config.limits.header_timeout_s = 2;
}

/// The trickle the hub must cut: well past the 2 s header timeout of these tests, with
/// room for a loaded machine, and far short of never.
const TRICKLE_BYTES: usize = 40;

/// Slow-loris over TLS: a client that sends a header byte a second holds a connection
/// (a task, a descriptor, a socket slot) for as long as it likes unless the hub bounds
/// the time to read a request head, on the first request and on every later one of a
/// keep-alive connection.
#[tokio::test]
async fn a_trickling_tls_client_is_cut_off_on_every_request() {
    let (hub, connector) = tls_hub_with(|_| {}, short_header_timeout).await;
    let mut first = tls_connect(&hub, &connector).await;
    match trickle(&mut first, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    // A keep-alive connection that behaved on its first request and trickles the next.
    let mut second = tls_connect(&hub, &connector).await;
    keep_alive_request(&mut second).await;
    match trickle(&mut second, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    // An idle keep-alive connection is closed as well.
    let mut idle = tls_connect(&hub, &connector).await;
    keep_alive_request(&mut idle).await;
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, idle.read(&mut buf))
        .await
        .expect("an idle keep-alive connection is closed within the wait");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    hub.stop().await;
}

/// The same trickle through `--behind-proxy`'s plain listener, which had no timeout at
/// all: the proxy's own timeouts do not protect the hub's port from the proxy's
/// network, and a proxy that streams headers through would pass the trickle on.
#[tokio::test]
async fn a_trickling_client_behind_a_proxy_is_cut_off_on_every_request() {
    let hub = proxied_hub_with(|_| {}, short_header_timeout).await;
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut first = tcp_from("127.0.0.1", local, hub.port).await;
    match trickle(&mut first, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    let mut second = tcp_from("127.0.0.1", local, hub.port).await;
    keep_alive_request(&mut second).await;
    match trickle(&mut second, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    hub.stop().await;
}

/// Behind a proxy the hub's port speaks plain HTTP and believes the forwarding header
/// of trusted proxies; anyone else who reaches the port directly would skip the proxy's
/// TLS and limits. Such a peer is closed before the hub reads a byte.
#[tokio::test]
async fn a_behind_proxy_hub_refuses_peers_that_are_not_its_proxies() {
    let hub = proxied_hub(|public| {
        public.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    // 127.0.0.1 is not the proxy: no answer, the connection is closed.
    let stranger = tcp_from("127.0.0.1", local, hub.port).await;
    let mut stranger = stranger;
    let request = format!("GET /health HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n");
    // The write may already fail if the hub closed first.
    let _ = stranger.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(WAIT, stranger.read_to_end(&mut raw))
        .await
        .expect("closed within the wait");
    assert!(
        raw.is_empty(),
        "a stranger got an answer: {:?} {read:?}",
        String::from_utf8_lossy(&raw)
    );
    // The proxy itself is served.
    let proxy = tcp_from("127.0.0.2", local, hub.port).await;
    let (status, _) = http(proxy, "/health", NAME, &[]).await;
    assert_eq!(status, 200);
    hub.stop().await;
}

/// The socket cap counts an IPv6 peer by its /64 (and its /48): exercised on `::1`,
/// the one IPv6 loopback address; `sockets::tests` covers other addresses of a prefix.
#[tokio::test]
async fn sockets_from_an_ipv6_peer_are_capped_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, connector) = certificate(dir.path());
    let mut config = test_config(dir.path());
    let mut public = public_settings();
    public.bind = Some("[::1]:0".parse().unwrap());
    public.tls_cert = Some(cert);
    public.tls_key = Some(key);
    public.per_address_sockets = 2;
    public.per_site_sockets = 2;
    public.validate().expect("valid public settings");
    config.config.public = public;
    let hub = TestHub::start_in(dir, config).await;
    let v6 = std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]);
    let _idle_a = tcp_from("::1", v6, hub.port).await;
    let _idle_b = tcp_from("::1", v6, hub.port).await;
    let tcp = tcp_from("::1", v6, hub.port).await;
    let third = tokio::time::timeout(
        WAIT,
        connector.connect(ServerName::try_from(NAME).unwrap(), tcp),
    )
    .await
    .expect("an answer within the wait");
    assert!(third.is_err(), "a third socket from ::1's /64 is closed");
    hub.stop().await;
}

/// The local hub's loopback listeners were served by `axum::serve`, which sets no header
/// timeout: a local process could hold connections open by trickling headers or idling
/// on keep-alive. They now have `limits.header_timeout_s` too.
#[tokio::test]
async fn a_trickling_client_of_a_local_hub_is_cut_off_on_every_request() {
    let hub = TestHub::start_with(short_header_timeout).await;
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut first = tcp_from("127.0.0.1", local, hub.port).await;
    match trickle(&mut first, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    let host = format!("127.0.0.1:{}", hub.port);
    let mut second = tcp_from("127.0.0.1", local, hub.port).await;
    keep_alive_request_to(&mut second, &host).await;
    match trickle(&mut second, TRICKLE_BYTES).await {
        Trickle::CutAfter(sent) => assert!(sent > 0),
        Trickle::Answered(text) => panic!("answered an unfinished head: {text}"),
    }
    // The listener still serves, and a WebSocket outlives the header timeout.
    let mut ws = hub.client().await;
    let mut idle = tcp_from("127.0.0.1", local, hub.port).await;
    keep_alive_request_to(&mut idle, &host).await;
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(WAIT, idle.read(&mut buf))
        .await
        .expect("an idle keep-alive connection is closed within the wait");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    ws.ok("hub.status", json!({})).await;
    hub.stop().await;
}

/// The HTTP/2 connection preface (RFC 9113 section 3.4) and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A SETTINGS acknowledgement, then a HEADERS frame on stream 1 with `GET /` over https
/// from HPACK's static table (RFC 7541 appendix A: indices 2, 7 and 4), ending the
/// stream.
const H2_ACK_AND_GET: &[u8] =
    b"\x00\x00\x00\x04\x01\x00\x00\x00\x00\x00\x00\x03\x01\x05\x00\x00\x00\x01\x82\x87\x84";

/// Whether the hub closes `stream` within the wait, reading (and dropping) what it sends.
async fn closed_within_wait<S: AsyncRead + Unpin>(stream: &mut S) -> bool {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// hyper's HTTP/2 server has no header or idle timeout, and a public listener's
/// protocol detection served a client that sends the HTTP/2 preface over TLS (ALPN
/// offers only http/1.1, but nothing stopped prior knowledge): one request, then an
/// idle connection held for good. Such a connection now gets no stream, so it never
/// makes a first request and is closed by the first-request timeout.
#[tokio::test]
async fn an_http2_client_of_a_public_hub_cannot_hold_a_connection() {
    let (hub, connector) = tls_hub_with(|_| {}, short_header_timeout).await;
    let mut stream = tls_connect(&hub, &connector).await;
    stream.write_all(H2_PREFACE).await.unwrap();
    // The server's SETTINGS come first; acknowledge them, then ask.
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("the server's first frames within the wait")
        .unwrap_or(0);
    if n > 0 {
        let _ = stream.write_all(H2_ACK_AND_GET).await;
    }
    assert!(
        closed_within_wait(&mut stream).await,
        "an HTTP/2 connection stayed open"
    );
    hub.stop().await;
}

/// A local hub speaks HTTP/1.1 only: the HTTP/2 preface is not a request it serves.
#[tokio::test]
async fn a_local_hub_does_not_speak_http2() {
    let hub = TestHub::start().await;
    let local = std::net::IpAddr::from([127, 0, 0, 1]);
    let mut stream = tcp_from("127.0.0.1", local, hub.port).await;
    stream.write_all(H2_PREFACE).await.unwrap();
    // What the hub sends first: an HTTP/1.1 error and a close, or, from an HTTP/2
    // server, a SETTINGS frame (a 9-byte frame header with type 4 at byte 3).
    let mut raw = Vec::new();
    let mut buf = [0u8; 256];
    tokio::time::timeout(WAIT, async {
        while raw.len() < 9 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("an answer or a close within the wait");
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 "),
        "answered in HTTP/2: {raw:?}"
    );
    hub.stop().await;
}
