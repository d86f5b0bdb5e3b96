//! Pairing a browser extension: request, the user's decision, the one-time claim, the
//! limits, and the origin rules around it.

use std::net::IpAddr;

use semantest_hub::hub::HubEvent;
use serde_json::{Value, json};

use crate::util::{TestHub, WAIT, Ws};

const ORIGIN: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";
const OTHER_ORIGIN: &str = "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba";
const THIRD_ORIGIN: &str = "moz-extension://6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f";
const FOURTH_ORIGIN: &str = "safari-web-extension://ABCD-1234";

/// An HTTP client whose connections come from `source` (any 127.0.0.0/8 address), so
/// a test can act as several peers.
fn http_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn post(
    http: &reqwest::Client,
    url: String,
    origin: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = http.post(url).json(&body);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let cache = response.headers().get("cache-control").cloned();
    let body = response.json().await.unwrap_or(Value::Null);
    if status != 403 || body.get("status").is_some() {
        assert_eq!(
            cache.as_ref().map(|v| v.to_str().unwrap()),
            Some("no-store")
        );
    }
    (status, body)
}

/// `POST /pair` from `origin` as peer `source`.
async fn request_pairing(hub: &TestHub, source: &str, origin: &str, name: &str) -> (u16, Value) {
    post(
        &http_from(source),
        hub.http("/pair"),
        Some(origin),
        json!({"name": name}),
    )
    .await
}

/// `POST /pair/{id}` with `claim` from `origin`.
async fn claim(hub: &TestHub, id: &str, origin: &str, claim: &str) -> (u16, Value) {
    post(
        &reqwest::Client::new(),
        hub.http(&format!("/pair/{id}")),
        Some(origin),
        json!({"claim": claim}),
    )
    .await
}

fn text(value: &Value) -> String {
    value.as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_approved_pairing_delivers_a_token_once_that_works_only_from_its_origin() {
    let hub = TestHub::start().await;
    let mut events = hub.hub().events();
    let mut owner = hub.client().await;
    // A connection without `admin` hears nothing of pairing.
    let created = owner
        .ok(
            "client.create",
            json!({"name": "reader", "scopes": ["events", "projects:read", "agents", "tasks"]}),
        )
        .await;
    let mut reader = Ws::connect(hub.ws_request_as(created["token"].as_str().unwrap(), None))
        .await
        .unwrap();
    reader.ok("hub.hello", json!({"role": "dashboard"})).await;

    // Before pairing, the extension's origin may reach discovery and /pair only.
    assert_eq!(hub.upgrade_status_as(&hub.token, Some(ORIGIN)).await, 403);

    let (status, issued) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Semantest Recorder").await;
    assert_eq!(status, 201, "{issued}");
    let (id, code, secret) = (
        text(&issued["request_id"]),
        text(&issued["code"]),
        text(&issued["claim"]),
    );
    assert_eq!(code.len(), 6);
    assert!(code.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(secret.len(), 64);
    assert!(issued["expires_at"].is_string());
    assert_eq!(issued["poll_after_ms"], 1000);

    // The owner hears of it, with the same code, and so does the desktop app.
    let requested = owner.notification("pairing.requested").await;
    assert_eq!(requested["request"]["id"], id.as_str());
    assert_eq!(requested["request"]["code"], code.as_str());
    assert_eq!(requested["request"]["origin"], ORIGIN);
    assert_eq!(requested["request"]["name"], "Semantest Recorder");
    assert!(
        requested["request"].get("claim").is_none(),
        "the claim is the requester's only"
    );
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        event,
        HubEvent::PairingRequested {
            request_id: id.clone(),
            name: "Semantest Recorder".into(),
            origin: ORIGIN.into(),
            code: code.clone(),
        }
    );
    // Notifications are queued to every recipient at once, so by the time the owner
    // has its copy the reader would have one queued before this response.
    reader.ok("hub.status", json!({})).await;
    assert!(
        reader
            .notifications
            .iter()
            .all(|n| !n["method"].as_str().unwrap().starts_with("pairing.")),
        "{:?}",
        reader.notifications
    );
    let listed = owner.ok("pairing.list", json!({})).await;
    assert_eq!(listed["requests"][0]["id"], id.as_str());
    assert_eq!(listed["requests"][0]["address"], "127.0.0.1");

    let (status, pending) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!((status, pending["status"].as_str()), (202, Some("pending")));

    let approved = owner
        .ok(
            "pairing.approve",
            json!({"request_id": id, "scopes": ["events", "projects:read"]}),
        )
        .await;
    let client = &approved["client"];
    assert_eq!(client["kind"], "extension");
    assert_eq!(client["origin"], ORIGIN);
    assert_eq!(client["scopes"], json!(["events", "projects:read"]));
    let resolved = owner.notification("pairing.resolved").await;
    assert_eq!(resolved, json!({"request_id": id, "outcome": "approved"}));
    assert_eq!(
        owner.notification("client.changed").await["event"],
        "created"
    );

    // The claim from another origin, or with another secret, learns nothing.
    assert_eq!(
        claim(&hub, &id, "chrome-extension://other", &secret)
            .await
            .0,
        404
    );
    assert_eq!(claim(&hub, &id, ORIGIN, &"0".repeat(64)).await.0, 404);
    let (status, delivered) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!(status, 200, "{delivered}");
    assert_eq!(delivered["status"], "approved");
    assert_eq!(delivered["client_id"], client["id"]);
    assert_eq!(delivered["scopes"], json!(["events", "projects:read"]));
    let token = text(&delivered["token"]);
    // Exactly once.
    let (status, again) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!((status, again["status"].as_str()), (404, Some("unknown")));

    // The token works from its origin (now on the allowlist), within its scopes.
    let mut ext = Ws::connect(hub.ws_request_as(&token, Some(ORIGIN)))
        .await
        .unwrap();
    ext.ok("project.list", json!({})).await;
    let forbidden = ext
        .err("agent.run", json!({"project_id": "p", "prompt": "x"}))
        .await;
    assert_eq!(forbidden["data"]["kind"], "FORBIDDEN");
    // Not from anywhere else.
    assert_eq!(hub.upgrade_status_as(&token, None).await, 401);
    assert_eq!(
        hub.upgrade_status_as(&token, Some("chrome-extension://other"))
            .await,
        403
    );
    assert_eq!(
        hub.upgrade_status_as(&token, Some(&format!("http://127.0.0.1:{}", hub.port)))
            .await,
        401
    );

    // The paired origin persists across a restart, through its token.
    drop(ext);
    drop(owner);
    let hub = hub.restart().await;
    assert_eq!(hub.upgrade_status_as(&token, Some(ORIGIN)).await, 101);
    // Revoking takes the origin off the allowlist again.
    let mut owner = hub.client().await;
    owner
        .ok("client.revoke", json!({"client_id": client["id"]}))
        .await;
    assert_eq!(hub.upgrade_status_as(&token, Some(ORIGIN)).await, 403);
    hub.stop().await;
}

#[tokio::test]
async fn a_denied_request_gets_a_clear_answer_and_no_token() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let (_, issued) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Ext").await;
    let (id, secret) = (text(&issued["request_id"]), text(&issued["claim"]));
    assert_eq!(
        owner.ok("pairing.deny", json!({"request_id": id})).await,
        json!({"denied": true})
    );
    assert_eq!(
        owner.notification("pairing.resolved").await,
        json!({"request_id": id, "outcome": "denied"})
    );
    let (status, body) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!(status, 403);
    assert_eq!(body["status"], "denied");
    assert_eq!(body["error"]["kind"], "PAIRING_DENIED");
    assert!(body.get("token").is_none());
    let late = owner
        .err("pairing.approve", json!({"request_id": id}))
        .await;
    assert_eq!(
        (late["code"].as_i64(), late["data"]["kind"].as_str()),
        (Some(-32031), Some("PAIRING_DENIED"))
    );
    let unknown = owner
        .err("pairing.deny", json!({"request_id": "pr_nope"}))
        .await;
    assert_eq!(unknown["data"]["kind"], "PAIRING_NOT_FOUND");
    assert_eq!(
        owner.ok("client.list", json!({})).await,
        json!({"clients": []})
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_expired_request_gets_a_clear_answer_and_no_token() {
    // A one-second TTL instead of two minutes; the hub's own timer expires it.
    let hub = TestHub::start_with(|c| c.config.pairing.request_ttl_s = 1).await;
    let mut owner = hub.client().await;
    let (_, issued) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Ext").await;
    let (id, secret) = (text(&issued["request_id"]), text(&issued["claim"]));
    assert_eq!(
        owner.notification("pairing.requested").await["request"]["id"],
        id.as_str()
    );
    assert_eq!(
        owner.notification("pairing.resolved").await,
        json!({"request_id": id, "outcome": "expired"})
    );
    let (status, body) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!(status, 410);
    assert_eq!(body["status"], "expired");
    assert_eq!(body["error"]["kind"], "PAIRING_EXPIRED");
    assert!(body.get("token").is_none());
    let late = owner
        .err("pairing.approve", json!({"request_id": id}))
        .await;
    assert_eq!(late["data"]["kind"], "PAIRING_EXPIRED");
    assert_eq!(
        owner.ok("pairing.list", json!({})).await,
        json!({"requests": []})
    );
    assert_eq!(
        owner.ok("client.list", json!({})).await,
        json!({"clients": []})
    );

    // An approved token nobody claims within another TTL is revoked: nobody holds it.
    let (_, issued) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Ext").await;
    let (id, secret) = (text(&issued["request_id"]), text(&issued["claim"]));
    let client = owner.ok("pairing.approve", json!({"request_id": id})).await["client"].clone();
    let revoked = loop {
        let changed = owner.notification("client.changed").await;
        if changed["event"] == "revoked" {
            break changed;
        }
    };
    assert_eq!(revoked["client"]["id"], client["id"]);
    let (status, body) = claim(&hub, &id, ORIGIN, &secret).await;
    assert_eq!((status, body["status"].as_str()), (410, Some("expired")));
    assert_eq!(
        owner.ok("client.list", json!({})).await,
        json!({"clients": []})
    );
    hub.stop().await;
}

#[tokio::test]
async fn pending_requests_are_limited_globally_and_per_extension() {
    let hub = TestHub::start().await;
    for _ in 0..2 {
        assert_eq!(
            request_pairing(&hub, "127.0.0.1", ORIGIN, "Ext").await.0,
            201
        );
    }
    let (status, body) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Ext").await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["kind"], "LIMIT_REACHED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this address or extension"),
        "{body}"
    );

    // Other extensions still get in, up to 5 pending in all.
    for origin in [OTHER_ORIGIN, OTHER_ORIGIN, THIRD_ORIGIN] {
        assert_eq!(
            request_pairing(&hub, "127.0.0.1", origin, "Ext").await.0,
            201,
            "{origin}"
        );
    }
    let (status, body) = request_pairing(&hub, "127.0.0.1", FOURTH_ORIGIN, "Ext").await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["kind"], "LIMIT_REACHED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many pairing requests are pending")
    );

    // Deciding one frees a slot.
    let mut owner = hub.client().await;
    let pending = owner.ok("pairing.list", json!({})).await;
    assert_eq!(pending["requests"].as_array().unwrap().len(), 5);
    let first = text(&pending["requests"][0]["id"]);
    owner.ok("pairing.deny", json!({"request_id": first})).await;
    assert_eq!(
        request_pairing(&hub, "127.0.0.1", FOURTH_ORIGIN, "Ext")
            .await
            .0,
        201
    );
    hub.stop().await;
}

/// Every local extension reaches the hub from loopback, so a limit per address alone
/// let the first extension (or a malicious one) hold every slot of 127.0.0.1 and lock
/// every other extension out of pairing. The limit counts each extension's Origin.
#[tokio::test]
async fn one_local_extension_cannot_hold_every_pending_slot() {
    let hub = TestHub::start().await;
    // The squatter asks until it is refused, from every loopback address it can bind.
    let mut held = 0;
    for source in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        loop {
            let (status, body) = request_pairing(&hub, source, ORIGIN, "Squatter").await;
            if status != 201 {
                assert_eq!(
                    (status, body["error"]["kind"].as_str()),
                    (429, Some("LIMIT_REACHED"))
                );
                break;
            }
            held += 1;
            assert!(held <= 5, "the squatter was never refused");
        }
    }
    assert!(held < 5, "one extension took every pending slot ({held})");
    // Another extension on the same machine still gets its request in front of the user.
    let (status, body) = request_pairing(&hub, "127.0.0.1", OTHER_ORIGIN, "Semantest").await;
    assert_eq!(status, 201, "{body}");
    let mut owner = hub.client().await;
    let pending = owner.ok("pairing.list", json!({})).await;
    assert!(
        pending["requests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["origin"] == OTHER_ORIGIN),
        "{pending}"
    );
    hub.stop().await;
}

/// U+202E RIGHT-TO-LEFT OVERRIDE (general category Cf) in a name reverses the text
/// shown after it, so a crafted name could make the notification show another code than
/// the one issued. Such a name is refused: the user is never asked about it.
#[tokio::test]
async fn a_name_with_a_bidi_override_never_reaches_the_approver() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let mut events = hub.hub().events();
    for name in [
        "Semantest \u{202E}654321",
        "Semantest \u{2066}code\u{2069}",
        "Zero\u{200B}width",
        "line\u{2028}break",
    ] {
        let (status, body) = request_pairing(&hub, "127.0.0.1", ORIGIN, name).await;
        assert_eq!(status, 400, "{name:?}: {body}");
        assert_eq!(body["error"]["kind"], "INVALID_PARAMS", "{name:?}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("bidirectional"),
            "{body}"
        );
    }
    // What the approver sees: nothing was listed, notified or sent to the desktop app.
    assert_eq!(
        owner.ok("pairing.list", json!({})).await,
        json!({"requests": []})
    );
    assert!(
        owner
            .notifications
            .iter()
            .all(|n| n["method"] != "pairing.requested"),
        "{:?}",
        owner.notifications
    );
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, HubEvent::PairingRequested { .. }),
            "the desktop app was told: {event:?}"
        );
    }
    // A plain name in another script is fine, and shown as sent.
    let (status, _) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Sémantest ミ").await;
    assert_eq!(status, 201);
    let listed = owner.ok("pairing.list", json!({})).await;
    assert_eq!(listed["requests"][0]["name"], "Sémantest ミ");
    hub.stop().await;
}

#[tokio::test]
async fn pairing_needs_an_extension_origin_and_a_valid_body() {
    let hub = TestHub::start().await;
    let http = reqwest::Client::new();
    let dashboard = format!("http://127.0.0.1:{}", hub.port);
    for (origin, expected) in [
        (None, 403),
        (Some("https://evil.example"), 403),
        (Some(dashboard.as_str()), 403),
        (Some("chrome-extension://"), 403),
        (Some("chrome-extension://abc/path"), 403),
    ] {
        let (status, body) = post(&http, hub.http("/pair"), origin, json!({"name": "x"})).await;
        assert_eq!(status, expected, "{origin:?}: {body}");
    }
    let (status, body) = post(&http, hub.http("/pair"), None, json!({"name": "x"})).await;
    assert_eq!(
        (status, body["error"]["kind"].as_str()),
        (403, Some("FORBIDDEN"))
    );
    for body in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "extra": 1}),
        json!({"name": "a\u{1}"}),
    ] {
        let (status, reply) = post(
            &http,
            hub.http("/pair"),
            Some("moz-extension://1234-abcd"),
            body.clone(),
        )
        .await;
        assert!((400..=422).contains(&status), "{body}: {status}");
        assert_eq!(reply["error"]["kind"], "INVALID_PARAMS", "{body}");
    }
    let huge = json!({"name": "x".repeat(10_000)});
    let (status, _) = post(
        &http,
        hub.http("/pair"),
        Some("moz-extension://1234-abcd"),
        huge,
    )
    .await;
    assert_eq!(status, 413);
    // Every extension scheme may ask.
    for origin in [
        "moz-extension://6f1b7c3e-1b2a-4c5d-9e8f-0a1b2c3d4e5f",
        "safari-web-extension://ABCD-1234",
    ] {
        let (status, _) = request_pairing(&hub, "127.0.0.5", origin, "Ext").await;
        assert_eq!(status, 201, "{origin}");
    }
    // The exception covers the two pairing routes only, nothing under or beside them.
    for path in ["/pair/x/../../metrics", "/pair/a/b", "/pairing", "/metrics"] {
        let status = http
            .get(hub.http(path))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403, "{path}");
    }
    // An unknown request id is just unknown.
    let (status, body) = claim(&hub, "pr_0000000000000000", ORIGIN, "x").await;
    assert_eq!((status, body["status"].as_str()), (404, Some("unknown")));
    hub.stop().await;
}

/// A hub without a browser at hand: the owner answers from the command line, comparing
/// the code `pair list` shows with the one the extension shows.
#[tokio::test]
async fn the_command_line_lists_approves_and_denies_pairing_requests() {
    let hub = TestHub::start().await;
    let stdout = |output: &std::process::Output| {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout.clone()).unwrap()
    };

    let empty = hub.cli(&["pair", "list"]).await;
    assert_eq!(stdout(&empty), "");
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no pending pairing requests"));

    let (status, first) = request_pairing(&hub, "127.0.0.1", ORIGIN, "Recorder").await;
    assert_eq!(status, 201, "{first}");
    let (status, second) = request_pairing(&hub, "127.0.0.2", OTHER_ORIGIN, "Stranger").await;
    assert_eq!(status, 201, "{second}");
    let (first_id, first_code) = (text(&first["request_id"]), text(&first["code"]));
    let second_id = text(&second["request_id"]);

    // The table: a header, then one row per request, oldest first, with the code.
    let table = stdout(&hub.cli(&["pair", "list"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("CODE"),
        "{table}"
    );
    for (line, id, code, name, origin, address) in [
        (
            lines[1],
            &first_id,
            &first_code,
            "Recorder",
            ORIGIN,
            "127.0.0.1",
        ),
        (
            lines[2],
            &second_id,
            &text(&second["code"]),
            "Stranger",
            OTHER_ORIGIN,
            "127.0.0.2",
        ),
    ] {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            &cells[..5],
            [id.as_str(), code, name, origin, address],
            "{table}"
        );
    }
    // `--json` is the `pairing.list` result itself.
    let listed: Value =
        serde_json::from_str(&stdout(&hub.cli(&["pair", "list", "--json"]).await)).unwrap();
    assert_eq!(listed["requests"][0]["id"], first_id.as_str());
    assert_eq!(listed["requests"][1]["code"], second["code"]);

    // Approve with scopes: the extension's claim then delivers a token with them.
    let approved = stdout(
        &hub.cli(&[
            "pair",
            "approve",
            &first_id,
            "--scope",
            "events",
            "projects:read",
        ])
        .await,
    );
    assert!(
        approved.starts_with(&format!("approved {first_id}: client cl_")),
        "{approved}"
    );
    assert!(approved.contains("events,projects:read"), "{approved}");
    let (status, delivered) = claim(&hub, &first_id, ORIGIN, &text(&first["claim"])).await;
    assert_eq!(
        (status, delivered["status"].as_str()),
        (200, Some("approved"))
    );
    assert_eq!(delivered["scopes"], json!(["events", "projects:read"]));

    // Deny: the claim answers denied, and the request cannot be approved any more.
    assert_eq!(
        stdout(&hub.cli(&["pair", "deny", &second_id]).await).trim(),
        format!("denied {second_id}")
    );
    let (_, refused) = claim(&hub, &second_id, OTHER_ORIGIN, &text(&second["claim"])).await;
    assert_eq!(refused["status"], "denied");
    let again = hub.cli(&["pair", "approve", &second_id]).await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("denied"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // Unknown scopes are refused by the command line before the hub is asked.
    let bad = hub
        .cli(&["pair", "approve", &second_id, "--scope", "root"])
        .await;
    assert!(!bad.status.success());
    assert!(stdout(&hub.cli(&["pair", "list"]).await).is_empty());
}
