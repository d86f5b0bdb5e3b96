//! Client tokens: scopes, origin binding, revocation, persistence, the token CLI and the
//! signature challenge that proves the hub holds a client's token.

use semantest_hub::security::{challenge_proof, token_hash};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::util::{TestHub, WAIT, Ws, hub_bin};

/// Creates a client token through `client.create` and returns `(client, token)`.
async fn create(
    owner: &mut Ws,
    name: &str,
    scopes: &[&str],
    origin: Option<&str>,
) -> (Value, String) {
    let created = owner
        .ok(
            "client.create",
            json!({"name": name, "scopes": scopes, "origin": origin}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    (created["client"].clone(), token)
}

#[tokio::test]
async fn a_method_outside_the_tokens_scopes_is_forbidden() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (client, token) = create(&mut owner, "reader", &["projects:read"], None).await;
    assert_eq!(client["scopes"], json!(["projects:read"]));
    assert_eq!(client["kind"], "manual");
    assert_eq!(token.len(), 64);

    let mut reader = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    reader.ok("hub.hello", json!({"role": "script"})).await;
    reader.ok("project.list", json!({})).await;
    for (method, params, scope) in [
        ("project.create", json!({"path": "/tmp"}), "agents"),
        (
            "agent.run",
            json!({"project_id": "p", "prompt": "x"}),
            "agents",
        ),
        ("task.list", json!({"project_id": "p"}), "tasks"),
        ("client.list", json!({}), "admin"),
        (
            "client.create",
            json!({"name": "x", "scopes": ["admin"]}),
            "admin",
        ),
        ("pairing.approve", json!({"request_id": "pr_x"}), "admin"),
        ("hub.config", json!({}), "admin"),
    ] {
        let error = reader.err(method, params).await;
        assert_eq!(error["code"], -32030, "{method}: {error}");
        assert_eq!(error["data"]["kind"], "FORBIDDEN", "{method}");
        assert_eq!(error["data"]["scope"], scope, "{method}");
    }
    // A method the hub does not have is METHOD_NOT_FOUND whatever the token's scopes,
    // not FORBIDDEN: the caller learns it mistyped the name.
    for method in ["evnet.publish", "project.lsit", "nope"] {
        let error = reader.err(method, json!({})).await;
        assert_eq!(error["code"], -32601, "{method}: {error}");
        assert_eq!(error["data"]["kind"], "METHOD_NOT_FOUND", "{method}");
    }
    // The connection stays usable after refusals.
    reader.ok("hub.status", json!({})).await;
    // The owner has every scope.
    owner.ok("client.list", json!({})).await;
    hub.stop().await;
}

#[tokio::test]
async fn revoking_closes_live_connections_with_1008_and_later_use_gets_401() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (client, token) = create(&mut owner, "doomed", &["events"], None).await;
    let id = client["id"].as_str().unwrap().to_string();
    let mut first = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    let mut second = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    first.ok("hub.hello", json!({"role": "extension"})).await;
    second.ok("hub.hello", json!({"role": "extension"})).await;
    let listed = owner.ok("client.list", json!({})).await;
    let entry = &listed["clients"].as_array().unwrap()[0];
    assert_eq!(entry["id"], id.as_str());
    assert_eq!(entry["connected"], 2);
    assert!(
        entry["last_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(entry["last_used_at"].is_string());

    assert_eq!(
        owner.ok("client.revoke", json!({"client_id": id})).await,
        json!({"revoked": true})
    );
    for ws in [&mut first, &mut second] {
        let frame = ws.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
        assert_eq!(frame.reason.as_str(), "client token revoked");
    }
    let changed = loop {
        let changed = owner.notification("client.changed").await;
        if changed["event"] == "revoked" {
            break changed;
        }
    };
    assert_eq!(changed["client"]["id"], id.as_str());
    assert_eq!(hub.upgrade_status_as(&token, None).await, 401);
    let again = owner.err("client.revoke", json!({"client_id": id})).await;
    assert_eq!(again["data"]["kind"], "CLIENT_NOT_FOUND");
    assert_eq!(again["code"], -32034);
    assert_eq!(
        owner.ok("client.list", json!({})).await,
        json!({"clients": []})
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_bound_token_works_only_from_its_origin_and_survives_a_restart() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let origin = "chrome-extension://aaaabbbbccccddddeeeeffffgggghhhh";
    let (_, token) = create(&mut owner, "ext", &["events"], Some(origin)).await;
    let (_, other_token) = create(
        &mut owner,
        "other",
        &["events"],
        Some("moz-extension://other"),
    )
    .await;
    drop(owner);

    assert_eq!(hub.upgrade_status_as(&token, Some(origin)).await, 101);
    // Another paired origin passes the Origin allowlist but not the token's binding.
    assert_eq!(
        hub.upgrade_status_as(&token, Some("moz-extension://other"))
            .await,
        401
    );
    assert_eq!(
        hub.upgrade_status_as(&other_token, Some("moz-extension://other"))
            .await,
        101
    );
    // No Origin at all does not match a bound token either.
    assert_eq!(hub.upgrade_status_as(&token, None).await, 401);
    // An origin no live token has is not on the allowlist.
    assert_eq!(
        hub.upgrade_status_as(&token, Some("chrome-extension://unknown"))
            .await,
        403
    );

    let hub = hub.restart().await;
    assert_eq!(hub.upgrade_status_as(&token, Some(origin)).await, 101);
    assert_eq!(
        hub.upgrade_status_as(&token, Some("moz-extension://other"))
            .await,
        401
    );
    hub.stop().await;
}

#[tokio::test]
async fn client_create_refuses_bad_input() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    for params in [
        json!({"name": "", "scopes": ["events"]}),
        json!({"name": "x", "scopes": []}),
        json!({"name": "x", "scopes": ["root"]}),
        json!({"name": "x", "scopes": ["events"], "origin": "null"}),
        json!({"name": "x", "scopes": ["events"], "origin": "https://a/path"}),
        json!({"scopes": ["events"]}),
    ] {
        let error = owner.err("client.create", params.clone()).await;
        assert_eq!(error["data"]["kind"], "INVALID_PARAMS", "{params}");
    }
    owner.ok("hub.status", json!({})).await;
    hub.stop().await;
}

#[tokio::test]
async fn the_token_cli_creates_lists_and_revokes() {
    let hub = TestHub::start().await;
    let owner = hub.cli(&["token"]).await;
    assert_eq!(String::from_utf8_lossy(&owner.stdout).trim(), hub.token);

    let created = hub
        .cli(&[
            "token",
            "create",
            "--name",
            "ci-runner",
            "--scope",
            "tasks",
            "projects:read",
        ])
        .await;
    assert!(created.status.success(), "{created:?}");
    let token = String::from_utf8_lossy(&created.stdout).trim().to_string();
    assert_eq!(token.len(), 64);
    let note = String::from_utf8_lossy(&created.stderr);
    assert!(
        note.contains("shown only now") && note.contains("projects:read,tasks"),
        "{note}"
    );

    let mut ws = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
    ws.ok("project.list", json!({})).await;
    assert_eq!(
        ws.err("agent.kill", json!({"project_id": "p"})).await["data"]["kind"],
        "FORBIDDEN"
    );

    let list = hub.cli(&["token", "list"]).await;
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one token: {text}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].ends_with("CONNECTED"),
        "{text}"
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[2], cells[3], cells.last().copied()),
        ("manual", "ci-runner", "projects:read,tasks", Some("1")),
        "{text}"
    );
    assert!(!text.contains(&token), "the token is never listed");
    let id = cells[0].to_string();
    assert!(id.starts_with("cl_"), "{text}");
    // `-q` prints the ids only; `--json` the `client.list` result.
    let quiet = hub.cli(&["token", "list", "-q"]).await;
    assert_eq!(String::from_utf8_lossy(&quiet.stdout), format!("{id}\n"));
    let json: Value =
        serde_json::from_slice(&hub.cli(&["token", "list", "--json"]).await.stdout).unwrap();
    assert_eq!(json["clients"][0]["id"], id.as_str());
    assert_eq!(json["clients"][0]["connected"], 1);

    let revoked = hub.cli(&["token", "revoke", &id]).await;
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(u16::from(ws.closed().await.unwrap().code), 1008);
    let missing = hub.cli(&["token", "revoke", &id]).await;
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("CLIENT_NOT_FOUND"));

    let bad = hub
        .cli(&["token", "create", "--name", "x", "--scope", "root"])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("root"));
    hub.stop().await;
}

#[tokio::test]
async fn token_commands_without_a_hub_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(hub_bin())
        .args([
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--secret-store",
            "file",
        ])
        .args(["token", "list"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("no hub is running"));
}

async fn signature(hub: &TestHub, query: &str) -> reqwest::Response {
    reqwest::get(hub.http(&format!("/semantest-signature{query}")))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_signature_proof_verifies_with_the_right_token_only() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (client, token) = create(&mut owner, "ext", &["events"], None).await;
    let id = client["id"].as_str().unwrap();
    let endpoint = format!("127.0.0.1:{}", hub.port);

    let plain: Value = signature(&hub, "").await.json().await.unwrap();
    assert!(plain.get("challenge").is_none());
    assert!(
        plain["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("pairing"))
    );
    assert_eq!(plain["mode"], "local");

    let nonce = "5f1d3c0a9b8e7d6c5f1d3c0a9b8e7d6c";
    let signed: Value = signature(&hub, &format!("?challenge={nonce}&client={id}"))
        .await
        .json()
        .await
        .unwrap();
    let challenge = &signed["challenge"];
    assert_eq!(challenge["nonce"], nonce);
    assert_eq!(challenge["client"], id);
    assert_eq!(challenge["endpoint"], endpoint.as_str());
    let proof = challenge["proof"].as_str().unwrap();
    assert_eq!(
        proof,
        challenge_proof(&token_hash(&token), nonce, id, &endpoint)
    );
    for wrong in [hub.token.as_str(), "impostor", &token[1..]] {
        assert_ne!(
            proof,
            challenge_proof(&token_hash(wrong), nonce, id, &endpoint)
        );
    }
    assert!(!signed.to_string().contains(&token));

    // The owner proves itself the same way, with client id `owner`.
    let owner_signed: Value = signature(&hub, &format!("?challenge={nonce}&client=owner"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        owner_signed["challenge"]["proof"],
        challenge_proof(&token_hash(&hub.token), nonce, "owner", &endpoint)
    );

    // An unknown (or revoked) client id gets the plain answer with `challenge: null`.
    let unknown: Value = signature(&hub, &format!("?challenge={nonce}&client=cl_000000000000"))
        .await
        .json()
        .await
        .unwrap();
    assert!(unknown["challenge"].is_null());
    assert_eq!(unknown["service"], "semantest");
    owner.ok("client.revoke", json!({"client_id": id})).await;
    let revoked: Value = signature(&hub, &format!("?challenge={nonce}&client={id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(revoked["challenge"].is_null());

    // The endpoint comes from the socket, not from the Host header the client chose.
    let via_localhost = raw_get(
        ("127.0.0.1", hub.port),
        &format!("localhost:{}", hub.port),
        &format!("/semantest-signature?challenge={nonce}&client=owner"),
    )
    .await;
    assert_eq!(via_localhost["challenge"]["endpoint"], endpoint.as_str());
    // Over IPv6 loopback (when the machine has it) the endpoint is `[::1]:port`.
    if tokio::net::TcpStream::connect(("::1", hub.port))
        .await
        .is_ok()
    {
        let v6 = raw_get(
            ("::1", hub.port),
            &format!("127.0.0.1:{}", hub.port),
            &format!("/semantest-signature?challenge={nonce}&client=owner"),
        )
        .await;
        let v6_endpoint = format!("[::1]:{}", hub.port);
        assert_eq!(v6["challenge"]["endpoint"], v6_endpoint.as_str());
        assert_eq!(
            v6["challenge"]["proof"],
            challenge_proof(&token_hash(&hub.token), nonce, "owner", &v6_endpoint)
        );
    }

    // Malformed challenges are refused.
    for query in [
        format!("?challenge={nonce}"),
        "?challenge=&client=owner".to_string(),
        "?challenge=a%0Ab&client=owner".to_string(),
        format!("?challenge={}&client=owner", "x".repeat(257)),
    ] {
        assert_eq!(signature(&hub, &query).await.status(), 400, "{query}");
    }
    hub.stop().await;
}

/// A raw HTTP/1.1 GET to `addr` with the given Host header; returns the JSON body of a
/// 200 answer.
async fn raw_get(addr: (&str, u16), host: &str, path: &str) -> Value {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// A relaying impostor: a TCP proxy on its own port that forwards every byte to the
/// real hub (a relay that rewrites the Host header would be no better off).
async fn relay_to(port: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    relay_port
}

#[tokio::test]
async fn a_relaying_impostor_fails_verification() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (client, token) = create(&mut owner, "ext", &["events"], None).await;
    let id = client["id"].as_str().unwrap().to_string();
    let relay_port = relay_to(hub.port).await;

    let nonce = "0123456789abcdef0123456789abcdef";
    // The relay forwards the request unchanged, with the Host the real hub expects.
    let body = raw_get(
        ("127.0.0.1", relay_port),
        &format!("127.0.0.1:{}", hub.port),
        &format!("/semantest-signature?challenge={nonce}&client={id}"),
    )
    .await;
    let challenge = &body["challenge"];
    // The real hub answered, with a proof bound to where it really listens...
    let real_endpoint = format!("127.0.0.1:{}", hub.port);
    assert_eq!(challenge["endpoint"], real_endpoint.as_str());
    assert_eq!(
        challenge["proof"],
        challenge_proof(&token_hash(&token), nonce, &id, &real_endpoint)
    );
    // ...so the client, computing the proof for the endpoint it contacted, refuses it,
    // whatever the relay writes into `endpoint`.
    let contacted = format!("127.0.0.1:{relay_port}");
    assert_ne!(
        challenge["proof"],
        challenge_proof(&token_hash(&token), nonce, &id, &contacted)
    );
    hub.stop().await;
}

#[tokio::test]
async fn notifications_reach_only_the_scopes_that_may_read_them() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (_, events_token) = create(&mut owner, "extension", &["events"], None).await;
    let (_, reader_token) = create(&mut owner, "reader", &["projects:read"], None).await;
    let mut extension = Ws::connect(hub.ws_request_as(&events_token, None))
        .await
        .unwrap();
    // A role is the client's own claim: declaring itself a dashboard gives no task news,
    // and asking for connection news gives none without `projects:read`.
    let hello = extension
        .ok(
            "hub.hello",
            json!({"role": "dashboard", "connection_events": true}),
        )
        .await;
    assert_eq!(hello["connection_events"], false);
    let mut reader = Ws::connect(hub.ws_request_as(&reader_token, None))
        .await
        .unwrap();
    let hello = reader
        .ok(
            "hub.hello",
            json!({"role": "script", "connection_events": true}),
        )
        .await;
    assert_eq!(hello["connection_events"], true);

    // Project news, a connection change and task news, all emitted before these replies.
    let dir = tempfile::tempdir().unwrap();
    let project = owner
        .ok("project.create", json!({"path": dir.path()}))
        .await;
    let project_id = project["id"].as_str().unwrap();
    owner
        .ok(
            "task.create",
            json!({"project_id": project_id, "tasks": [{"id": "t1", "title": "one"}]}),
        )
        .await;
    let _late = hub.client().await;

    // Everything pushed before a reply is queued before it, so these replies come after.
    reader.ok("hub.status", json!({})).await;
    extension.ok("hub.status", json!({})).await;
    let methods = |ws: &Ws| -> Vec<String> {
        ws.notifications
            .iter()
            .map(|n| n["method"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let seen = methods(&reader);
    assert!(seen.contains(&"project.created".to_string()), "{seen:?}");
    assert!(seen.contains(&"hub.connection".to_string()), "{seen:?}");
    let leaked: Vec<String> = methods(&extension)
        .into_iter()
        .filter(|m| m.starts_with("project.") || m.starts_with("task.") || m == "hub.connection")
        .collect();
    assert!(leaked.is_empty(), "an events-only token saw {leaked:?}");
    hub.stop().await;
}

/// The `hub.connection` news of connection `id`, in the order `ws` received them, read up
/// to its `closed`.
async fn changes_of(ws: &mut Ws, id: &Value) -> Vec<String> {
    let mut events = Vec::new();
    while events.last().map(String::as_str) != Some("closed") {
        let change = ws.notification("hub.connection").await;
        if &change["connection"]["id"] == id {
            events.push(change["event"].as_str().unwrap().to_string());
        }
    }
    events
}

#[tokio::test]
async fn connection_news_goes_only_to_the_clients_that_asked_for_it() {
    let hub = TestHub::start().await;
    // All four hold the owner token, so all four may read connections.
    let mut quiet = hub.client().await;
    let hello = quiet.ok("hub.hello", json!({"role": "script"})).await;
    assert_eq!(hello["connection_events"], false);
    let mut asked = hub.client().await;
    let hello = asked
        .ok(
            "hub.hello",
            json!({"role": "extension", "connection_events": true}),
        )
        .await;
    assert_eq!(hello["connection_events"], true);
    let mut dashboard = hub.client().await;
    let hello = dashboard
        .ok("hub.hello", json!({"role": "dashboard"}))
        .await;
    assert_eq!(
        hello["connection_events"], true,
        "on by default for dashboards"
    );
    let mut declined = hub.client().await;
    let hello = declined
        .ok(
            "hub.hello",
            json!({"role": "dashboard", "connection_events": false}),
        )
        .await;
    assert_eq!(hello["connection_events"], false);

    // A connection opens, introduces itself and closes.
    let mut late = hub.client().await;
    let id = late.ok("hub.hello", json!({"name": "late"})).await["connection_id"].clone();
    late.socket.close(None).await.unwrap();
    drop(late);

    assert_eq!(
        changes_of(&mut asked, &id).await,
        ["opened", "updated", "closed"]
    );
    assert_eq!(
        changes_of(&mut dashboard, &id).await,
        ["opened", "updated", "closed"]
    );
    // The watchers also heard of the later watchers' introductions; the others heard of
    // nothing, though everything above was pushed before these replies.
    quiet.ok("hub.status", json!({})).await;
    declined.ok("hub.status", json!({})).await;
    for ws in [&quiet, &declined] {
        let heard: Vec<&Value> = ws
            .notifications
            .iter()
            .filter(|n| n["method"] == "hub.connection")
            .collect();
        assert!(heard.is_empty(), "unasked connection news: {heard:?}");
    }
    // The list the watchers keep matches hub.connections.
    let listed = asked.ok("hub.connections", json!({})).await;
    assert_eq!(listed["connections"].as_array().unwrap().len(), 4);
    hub.stop().await;
}
