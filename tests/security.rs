use semantest_hub::security::{challenge_proof, token_hash};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::util::{TestHub, Ws};

/// Sends one raw HTTP/1.1 request and returns the status code.
async fn raw_status(port: u16, head: &str) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0; 64];
    let n = stream.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Sends one raw HTTP/1.1 request (add `Connection: close`) and returns the status and
/// the JSON body of the hub's one error shape, `{"error": {"kind", "message"}}`.
async fn raw_error(port: u16, head: &str) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut raw),
    )
    .await
    .expect("an answer within the wait")
    .unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    (status, serde_json::from_str(body).unwrap())
}

/// The HTTP status of a WebSocket upgrade attempt (101 when it succeeded).
async fn upgrade_status(
    hub: &TestHub,
    edit: impl FnOnce(&mut tokio_tungstenite::tungstenite::http::HeaderMap),
) -> u16 {
    let mut request = hub.ws_request();
    edit(request.headers_mut());
    match Ws::connect(request).await {
        Ok(_) => 101,
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

#[tokio::test]
async fn wrong_or_missing_host_is_forbidden_before_the_upgrade() {
    let hub = TestHub::start().await;
    let port = hub.port;
    for host in [
        "evil.example",
        "127.0.0.1:1",
        "localhost",
        &format!("rebind.evil:{port}"),
    ] {
        let status = upgrade_status(&hub, |h| {
            h.insert("host", HeaderValue::from_str(host).unwrap());
        })
        .await;
        assert_eq!(status, 403, "host {host}");
    }
    for host in [format!("localhost:{port}"), format!("[::1]:{port}")] {
        let status = upgrade_status(&hub, |h| {
            h.insert("host", HeaderValue::from_str(&host).unwrap());
        })
        .await;
        assert_eq!(status, 101, "host {host}");
    }
    // No Host at all (HTTP/1.0 style) and an empty Host.
    assert_eq!(raw_status(port, "GET /health HTTP/1.0\r\n\r\n").await, 403);
    assert_eq!(
        raw_status(port, "GET /health HTTP/1.1\r\nHost:\r\n\r\n").await,
        403
    );
    assert_eq!(
        raw_status(
            port,
            &format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
        )
        .await,
        200
    );
    // A trailing dot, a padded port and a second Host header are other names.
    for head in [
        format!("GET /health HTTP/1.1\r\nHost: localhost.:{port}\r\nConnection: close\r\n\r\n"),
        format!("GET /health HTTP/1.1\r\nHost: localhost:0{port}\r\nConnection: close\r\n\r\n"),
        format!(
            "GET /health HTTP/1.1\r\nHost: localhost:{port}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
        ),
    ] {
        let (status, body) = raw_error(port, &head).await;
        assert_eq!(status, 403, "{head}");
        assert_eq!(
            body,
            json!({"error": {"kind": "FORBIDDEN", "message": "host not allowed"}}),
            "{head}"
        );
    }
    hub.stop().await;
}

#[tokio::test]
async fn every_http_refusal_has_the_one_error_shape() {
    let hub = TestHub::start().await;
    let port = hub.port;
    let host = format!("Host: 127.0.0.1:{port}\r\nConnection: close");
    let token = &hub.token;
    for (head, status, kind) in [
        (
            format!("POST /health HTTP/1.1\r\n{host}\r\nContent-Length: 0\r\n\r\n"),
            405,
            "METHOD_NOT_FOUND",
        ),
        (
            format!("GET /no-such-file.js HTTP/1.1\r\n{host}\r\n\r\n"),
            404,
            "METHOD_NOT_FOUND",
        ),
        (
            format!("GET /semantest-signature?challenge= HTTP/1.1\r\n{host}\r\n\r\n"),
            400,
            "INVALID_PARAMS",
        ),
        (
            format!("GET /ws HTTP/1.1\r\n{host}\r\n\r\n"),
            401,
            "UNAUTHORIZED",
        ),
        (
            format!("GET /ws HTTP/1.1\r\n{host}\r\nAuthorization: Bearer {token}\r\n\r\n"),
            400,
            "INVALID_REQUEST",
        ),
        (
            format!("POST /session/check HTTP/1.1\r\n{host}\r\nContent-Length: 0\r\n\r\n"),
            401,
            "UNAUTHORIZED",
        ),
        (
            format!(
                "POST /pair HTTP/1.1\r\n{host}\r\nOrigin: chrome-extension://abc\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            422,
            "INVALID_PARAMS",
        ),
    ] {
        let (got, body) = raw_error(port, &head).await;
        assert_eq!(got, status, "{head}: {body}");
        assert_eq!(body["error"]["kind"], kind, "{head}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{head}: {body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 1, "{head}: {body}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn foreign_null_and_near_miss_origins_are_forbidden() {
    let hub = TestHub::start().await;
    let port = hub.port;
    let denied = [
        "https://evil.example".to_string(),
        "null".to_string(),
        format!("http://127.0.0.1:{port}.evil.example"),
        format!("http://127.0.0.1:{}", port + 1),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/"),
        "chrome-extension://notpaired".to_string(),
        // Every Tauri 2 app's webview origins; the hub's window loads the hub's own.
        "tauri://localhost".to_string(),
        "http://tauri.localhost".to_string(),
    ];
    for origin in &denied {
        let status = upgrade_status(&hub, |h| {
            h.insert("origin", HeaderValue::from_str(origin).unwrap());
        })
        .await;
        assert_eq!(status, 403, "origin {origin}");
        let (status, body) = raw_error(
            port,
            &format!(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(status, 403, "origin {origin}");
        assert_eq!(
            body,
            json!({"error": {"kind": "FORBIDDEN", "message": "origin not allowed"}}),
            "origin {origin}"
        );
    }
    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://[::1]:{port}"),
    ] {
        let status = upgrade_status(&hub, |h| {
            h.insert("origin", HeaderValue::from_str(&origin).unwrap());
        })
        .await;
        assert_eq!(status, 101, "origin {origin}");
    }
    hub.stop().await;
}

#[tokio::test]
async fn configured_extension_origins_are_allowed_exactly() {
    let hub = TestHub::start_with(|c| {
        c.config.allowed_origins = vec!["chrome-extension://abcdefgh".into()]
    })
    .await;
    let with_origin = |origin: &'static str| {
        move |h: &mut tokio_tungstenite::tungstenite::http::HeaderMap| {
            h.insert("origin", HeaderValue::from_static(origin));
        }
    };
    assert_eq!(
        upgrade_status(&hub, with_origin("chrome-extension://abcdefgh")).await,
        101
    );
    assert_eq!(
        upgrade_status(&hub, with_origin("chrome-extension://abcdefghi")).await,
        403
    );
    assert_eq!(
        upgrade_status(&hub, with_origin("chrome-extension://ABCDEFGH")).await,
        403
    );
    hub.stop().await;
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_without_upgrade() {
    let hub = TestHub::start().await;
    let no_token = upgrade_status(&hub, |h| {
        h.remove("authorization");
    })
    .await;
    assert_eq!(no_token, 401);
    let wrong = upgrade_status(&hub, |h| {
        h.insert("authorization", HeaderValue::from_static("Bearer 0000"));
    })
    .await;
    assert_eq!(wrong, 401);
    let cookie = upgrade_status(&hub, |h| {
        h.remove("authorization");
        h.insert(
            "cookie",
            HeaderValue::from_static("semantest_session=forged"),
        );
    })
    .await;
    assert_eq!(cookie, 401);
    // A token in the URL is never accepted.
    let url = format!("{}?token={}", hub.ws_url(), hub.token);
    match Ws::connect(url.into_client_request().unwrap()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    hub.stop().await;
}

#[tokio::test]
async fn a_token_in_the_subprotocol_works_and_is_never_echoed() {
    let hub = TestHub::start().await;
    let mut request = hub.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!(
            "semantest-hub.v1, semantest-hub.token.{}",
            hub.token
        ))
        .unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "semantest-hub.v1"
    );
    socket.close(None).await.unwrap();
    hub.stop().await;
}

#[tokio::test]
async fn signature_identifies_the_hub_and_proves_the_token() {
    let hub = TestHub::start().await;
    let http = reqwest::Client::new();
    let signature: Value = http
        .get(hub.http("/semantest-signature"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signature["service"], "semantest");
    assert_eq!(signature["mode"], "local");
    assert_eq!(signature["ws_path"], "/ws");
    assert_eq!(signature["protocol"], 1);
    assert!(!signature.to_string().contains(&hub.token));

    let signed: Value = http
        .get(hub.http("/semantest-signature?challenge=n0nce&client=owner"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let endpoint = format!("127.0.0.1:{}", hub.port);
    assert_eq!(signed["challenge"]["endpoint"], endpoint.as_str());
    assert_eq!(
        signed["challenge"]["proof"],
        challenge_proof(&token_hash(&hub.token), "n0nce", "owner", &endpoint)
    );
    assert_ne!(
        signed["challenge"]["proof"],
        challenge_proof(&token_hash("impostor"), "n0nce", "owner", &endpoint)
    );

    // Discovery works for extensions that are not paired yet; nothing else does.
    let from_extension = http
        .get(hub.http("/semantest-signature"))
        .header("origin", "chrome-extension://unpaired")
        .send()
        .await
        .unwrap();
    assert_eq!(from_extension.status(), 200);
    let metrics = http
        .get(hub.http("/metrics"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 403);
    hub.stop().await;
}

#[tokio::test]
async fn dashboard_sign_in_link_works_once_and_sets_a_strict_cookie() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let link = ws.ok("hub.login_link", json!({})).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(link.starts_with(&format!("http://127.0.0.1:{}/login?code=", hub.port)));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let first = http.get(&link).send().await.unwrap();
    assert_eq!(first.status(), 303);
    assert_eq!(first.headers()["location"], "/");
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // A browser navigating gets a page; a program asking for JSON gets the one error shape.
    let second = http
        .get(&link)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 401, "a reused link is refused");
    assert!(
        second.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(second.headers().get("set-cookie").is_none());
    let page = second.text().await.unwrap();
    assert!(page.contains("This sign-in link is not valid"), "{page}");
    let bad = http
        .get(hub.http("/login?code=deadbeef"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "UNAUTHORIZED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Links work once"),
        "{body}"
    );

    // The cookie opens the WebSocket from the dashboard's own origin.
    let session = cookie.split(';').next().unwrap().to_string();
    let mut request = hub.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", HeaderValue::from_str(&session).unwrap());
    request.headers_mut().insert(
        "origin",
        HeaderValue::from_str(&format!("http://127.0.0.1:{}", hub.port)).unwrap(),
    );
    let mut dashboard = Ws::connect(request).await.expect("cookie signs in");
    let status = dashboard.ok("hub.status", json!({})).await;
    assert_eq!(status["product"], "semantest-hub");

    // The dashboard page itself is served with a strict CSP.
    let page = http.get(hub.http("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    hub.stop().await;
}

#[tokio::test]
async fn health_and_metrics_report_the_hub() {
    let hub = TestHub::start().await;
    let mut ws = hub.client().await;
    let over_ws = ws.ok("hub.health", json!({})).await;
    assert_eq!(over_ws["status"], "ok");
    assert_eq!(over_ws["agent_cli"]["found"], true);
    let health: Value = reqwest::get(hub.http("/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["agent_cli"]["found"], true);
    assert_eq!(health["secret_store"], "file");
    assert!(health["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(health["disk"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(health["connections"], 1);
    let metrics = reqwest::get(hub.http("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("semantest_hub_ws_connections 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE semantest_hub_agent_run_duration_seconds histogram"));
    assert!(!metrics.contains(&hub.token));
    hub.stop().await;
}
