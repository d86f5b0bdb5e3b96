//! `/mcp` on a public hub: served only with `public.enable_tasks`, over the hub's TLS
//! (or behind its trusted proxy), and refused to what `/ws` refuses there (no token, a
//! foreign Origin or Host, a cookie instead of a token) and to a token without the
//! `tasks` scope. Each attack is mounted from outside: raw HTTP over a real TLS socket.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::mcp_http::McpHttp;
use crate::public_mode::{NAME, call, proxied_hub, tls_connect, tls_hub, wss};
use crate::util::{TestHub, WAIT};

/// An `initialize` request body.
fn initialize() -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "attacker", "version": "1"}}})
    .to_string()
}

/// POSTs `initialize` to `/mcp` over TLS with `host` and the `extra` header lines;
/// returns the status and the whole answer (head and body).
async fn post_over_tls(
    hub: &TestHub,
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    extra: &str,
) -> (u16, String) {
    let body = initialize();
    // HTTP/1.0: the answer ends with the connection, with no chunked framing to undo.
    let request = format!(
        "POST /mcp HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = tls_connect(hub, connector).await;
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
    (status, text)
}

/// A client token with `scopes`, made by the owner over WSS.
async fn client_token(
    hub: &TestHub,
    connector: &tokio_rustls::TlsConnector,
    scopes: &[&str],
) -> String {
    let mut socket = wss(hub, connector).await;
    let made = call(
        &mut socket,
        1,
        "client.create",
        json!({"name": format!("mcp-{}", scopes.join("-")), "scopes": scopes}),
    )
    .await;
    made["result"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("client.create: {made}"))
        .to_string()
}

#[tokio::test]
async fn a_public_hub_serves_mcp_over_tls_to_tasks_tokens_only() {
    let (hub, connector) = tls_hub(|public| {
        public.enable_projects = true;
        public.enable_tasks = true;
    })
    .await;
    let tasks = client_token(&hub, &connector, &["tasks"]).await;
    let events = client_token(&hub, &connector, &["events"]).await;
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");

    // The owner and a `tasks` token open sessions, over TLS, under the public name.
    for token in [&hub.token, &tasks] {
        let (status, answer) = post_over_tls(&hub, &connector, NAME, &bearer(token)).await;
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("mcp-session-id:"),
            "{answer}"
        );
        assert!(answer.contains("semantest-hub"), "{answer}");
    }
    // No token; a wrong one; the dashboard's cookie instead of a token.
    let (status, _) = post_over_tls(&hub, &connector, NAME, "").await;
    assert_eq!(status, 401, "no token");
    let wrong = bearer(&"0".repeat(64));
    let (status, _) = post_over_tls(&hub, &connector, NAME, &wrong).await;
    assert_eq!(status, 401, "a wrong token");
    let cookie = format!("Cookie: semantest_session={}\r\n", "a".repeat(64));
    let (status, _) = post_over_tls(&hub, &connector, NAME, &cookie).await;
    assert_eq!(status, 401, "a cookie is no token");
    // A token for another purpose gets no session.
    let (status, answer) = post_over_tls(&hub, &connector, NAME, &bearer(&events)).await;
    assert_eq!(status, 403, "a token without `tasks`: {answer}");
    assert!(answer.contains("tasks"), "{answer}");
    // A page of another site, even with a good token; a name that is not the hub's.
    let foreign = format!("{}Origin: https://evil.example\r\n", bearer(&tasks));
    let (status, _) = post_over_tls(&hub, &connector, NAME, &foreign).await;
    assert_eq!(status, 403, "a foreign Origin");
    let (status, _) = post_over_tls(&hub, &connector, "evil.example", &bearer(&tasks)).await;
    assert_eq!(status, 403, "a foreign Host");
    hub.stop().await;
}

#[tokio::test]
async fn a_public_hub_without_the_task_queue_has_no_mcp() {
    let (hub, connector) = tls_hub(|public| public.enable_projects = true).await;
    let bearer = format!("Authorization: Bearer {}\r\n", hub.token);
    let (status, answer) = post_over_tls(&hub, &connector, NAME, &bearer).await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer.contains("DISABLED"), "{answer}");
    hub.stop().await;
}

/// The worker loop through `/mcp` of a public hub behind its proxy, with a client token
/// holding `tasks` only.
#[tokio::test]
async fn a_worker_chat_runs_a_task_through_a_public_hubs_mcp() {
    let hub = proxied_hub(|public| {
        public.enable_projects = true;
        public.enable_tasks = true;
    })
    .await;
    let mut request = hub.ws_request();
    request.headers_mut().insert("host", NAME.parse().unwrap());
    let mut ws = crate::util::Ws::connect(request).await.unwrap();
    let (project_id, _dir) = hub.project(&mut ws).await;
    let made = ws
        .ok(
            "client.create",
            json!({"name": "chat", "scopes": ["tasks"]}),
        )
        .await;
    let token = made["token"].as_str().unwrap();
    let mut worker = McpHttp::start_at(hub.http("/mcp"), Some(NAME), token).await;
    worker
        .ok("register_worker", json!({"name": "remote-chat"}))
        .await;
    ws.ok(
        "task.create",
        json!({"project_id": project_id, "tasks": [{"id": "r1", "title": "Remotely"}]}),
    )
    .await;
    let task = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(task["task"]["id"], "r1", "{task}");
    worker
        .ok(
            "complete_task",
            json!({"task_id": "r1", "report": {"summary": "done from afar"}}),
        )
        .await;
    let end = worker.ok("next_task", json!({"wait_s": 30})).await;
    assert_eq!(end["batch_finished"], true, "{end}");
    let done = ws.ok("task.get", json!({"task_id": "r1"})).await;
    assert_eq!(done["report"]["summary"], "done from afar", "{done}");
    assert_eq!(done["state"], "completed", "{done}");
}
