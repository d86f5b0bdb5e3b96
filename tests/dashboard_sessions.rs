//! Dashboard sessions, attacked from outside with raw upgrade requests and forged
//! headers: the cookie counts only from the dashboard's own origins, sign-out and
//! "sign out everywhere" end sessions and their sockets, and the lifetime slides.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, Request};

use crate::util::{TestHub, Ws, eventually_within};

/// The origin of a page on another loopback port (a dev server, say).
const OTHER_PORT_PAGE: &str = "http://127.0.0.1:5173";

/// Signs in through a fresh one-time link; returns the `semantest_session=<value>` pair
/// and the `Set-Cookie` header it came in.
async fn sign_in(hub: &TestHub) -> (String, String) {
    let mut owner = hub.client().await;
    let link = owner.ok("hub.login_link", json!({})).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(&link).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    let pair = set_cookie.split(';').next().unwrap().to_string();
    (pair, set_cookie)
}

/// An upgrade request carrying only `cookie` (no token), from `origin` if given, as a
/// browser attaches a same-site cookie to a WebSocket.
fn cookie_request(hub: &TestHub, cookie: &str, origin: Option<&str>) -> Request<()> {
    let mut request = hub.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert("cookie", HeaderValue::from_str(cookie).unwrap());
    if let Some(origin) = origin {
        headers.insert("origin", HeaderValue::from_str(origin).unwrap());
    }
    request
}

/// The status of an upgrade attempt (101 when it succeeded).
async fn status_of(request: Request<()>) -> u16 {
    match Ws::connect(request).await {
        Ok(_) => 101,
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn dashboard_origin(hub: &TestHub) -> String {
    format!("http://127.0.0.1:{}", hub.port)
}

/// Creates a client token through `client.create`; returns the token.
async fn token(owner: &mut Ws, scopes: &[&str], origin: Option<&str>) -> String {
    let created = owner
        .ok(
            "client.create",
            json!({"name": "page", "scopes": scopes, "origin": origin}),
        )
        .await;
    created["token"].as_str().unwrap().to_string()
}

/// A POST to a session endpoint with `cookie` from `origin` (browsers always send
/// Origin on a POST); returns the response.
async fn post_session(
    hub: &TestHub,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(hub.http(path))
        .header("cookie", cookie);
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn the_session_cookie_counts_only_from_the_dashboards_own_origins() {
    let hub = TestHub::start_with(|c| {
        c.config.allowed_origins = vec!["chrome-extension://configuredextension".into()]
    })
    .await;
    let mut owner = hub.client().await;
    // A page on another loopback port holds an events-only token bound to its origin,
    // so its Origin passes the allowlist.
    let events_token = token(&mut owner, &["events"], Some(OTHER_PORT_PAGE)).await;
    let (cookie, _) = sign_in(&hub).await;

    // Cookies ignore the port: the page's WebSocket carries the dashboard's cookie.
    for origin in [
        Some(OTHER_PORT_PAGE),
        Some("chrome-extension://configuredextension"),
        None,
    ] {
        assert_eq!(
            status_of(cookie_request(&hub, &cookie, origin)).await,
            401,
            "cookie from {origin:?}"
        );
    }
    // With its own token as well, the page is what its token says: events only.
    let mut request = cookie_request(&hub, &cookie, Some(OTHER_PORT_PAGE));
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&format!(
            "semantest-hub.v1, semantest-hub.token.{events_token}"
        ))
        .unwrap(),
    );
    let mut page = Ws::connect(request).await.expect("the token works");
    let refused = page
        .err("client.create", json!({"name": "x", "scopes": ["admin"]}))
        .await;
    assert_eq!(refused["data"]["kind"], "FORBIDDEN");

    // From the dashboard's own origins the cookie is the owner.
    for origin in [
        dashboard_origin(&hub),
        format!("http://localhost:{}", hub.port),
    ] {
        let mut dashboard = Ws::connect(cookie_request(&hub, &cookie, Some(&origin)))
            .await
            .unwrap_or_else(|err| panic!("cookie from {origin}: {err}"));
        let link = dashboard.ok("hub.login_link", json!({})).await;
        assert!(link["url"].as_str().unwrap().contains("/login?code="));
    }
    hub.stop().await;
}

#[tokio::test]
async fn sign_out_ends_the_session_and_closes_its_sockets() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    token(&mut owner, &["events"], Some(OTHER_PORT_PAGE)).await;
    let (cookie, _) = sign_in(&hub).await;
    let (other_cookie, _) = sign_in(&hub).await;
    let origin = dashboard_origin(&hub);
    let mut dashboard = Ws::connect(cookie_request(&hub, &cookie, Some(&origin)))
        .await
        .unwrap();
    let mut other = Ws::connect(cookie_request(&hub, &other_cookie, Some(&origin)))
        .await
        .unwrap();

    // Only the dashboard's own page may sign it out.
    for foreign in [Some(OTHER_PORT_PAGE), None] {
        let response = post_session(&hub, "/session/sign-out", &cookie, foreign).await;
        assert_eq!(response.status(), 401, "sign-out from {foreign:?}");
    }
    let check = post_session(&hub, "/session/check", &cookie, Some(&origin)).await;
    assert_eq!(check.status(), 204);

    let response = post_session(&hub, "/session/sign-out", &cookie, Some(&origin)).await;
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("semantest_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let frame = dashboard.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(
        status_of(cookie_request(&hub, &cookie, Some(&origin))).await,
        401
    );
    let check = post_session(&hub, "/session/check", &cookie, Some(&origin)).await;
    assert_eq!(check.status(), 401);
    // Another browser's session is untouched.
    let status = other.ok("hub.status", json!({})).await;
    assert_eq!(status["product"], "semantest-hub");
    hub.stop().await;
}

#[tokio::test]
async fn sign_out_everywhere_is_the_owners_and_ends_every_session() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let origin = dashboard_origin(&hub);
    let (first, _) = sign_in(&hub).await;
    let (second, _) = sign_in(&hub).await;
    let mut a = Ws::connect(cookie_request(&hub, &first, Some(&origin)))
        .await
        .unwrap();
    let mut b = Ws::connect(cookie_request(&hub, &second, Some(&origin)))
        .await
        .unwrap();

    // Neither an events token nor an admin token may do it.
    for scopes in [&["events"][..], &["admin"][..]] {
        let token = token(&mut owner, scopes, None).await;
        let mut client = Ws::connect(hub.ws_request_as(&token, None)).await.unwrap();
        let refused = client.err("hub.revoke_sessions", json!({})).await;
        let kind = refused["data"]["kind"].as_str().unwrap().to_string();
        assert!(
            kind == "FORBIDDEN" || kind == "UNAUTHORIZED",
            "{scopes:?}: {kind}"
        );
    }

    let result: Value = owner.ok("hub.revoke_sessions", json!({})).await;
    assert_eq!(result["revoked"], 2);
    assert_eq!(result["closed"], 2);
    for ws in [&mut a, &mut b] {
        let frame = ws.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
    }
    for cookie in [&first, &second] {
        assert_eq!(
            status_of(cookie_request(&hub, cookie, Some(&origin))).await,
            401
        );
    }
    // The owner token's own connection is no session and stays.
    owner.ok("hub.status", json!({})).await;
    hub.stop().await;
}

#[tokio::test]
async fn the_dashboard_signs_out_everywhere_over_http_from_its_own_origin_only() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    token(&mut owner, &["events"], Some(OTHER_PORT_PAGE)).await;
    let origin = dashboard_origin(&hub);
    let (first, _) = sign_in(&hub).await;
    let (second, _) = sign_in(&hub).await;
    let mut a = Ws::connect(cookie_request(&hub, &first, Some(&origin)))
        .await
        .unwrap();
    let mut b = Ws::connect(cookie_request(&hub, &second, Some(&origin)))
        .await
        .unwrap();
    const PATH: &str = "/session/sign-out-everywhere";
    for (cookie, from) in [
        (first.as_str(), Some(OTHER_PORT_PAGE)),
        (first.as_str(), None),
        ("semantest_session=forged", Some(origin.as_str())),
    ] {
        let response = post_session(&hub, PATH, cookie, from).await;
        assert_eq!(response.status(), 401, "{cookie} from {from:?}");
    }
    // Nothing was signed out by the refused attempts.
    a.ok("hub.status", json!({})).await;

    let response = post_session(&hub, PATH, &first, Some(&origin)).await;
    assert_eq!(response.status(), 204);
    for ws in [&mut a, &mut b] {
        let frame = ws.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1008);
    }
    for cookie in [&first, &second] {
        assert_eq!(
            status_of(cookie_request(&hub, cookie, Some(&origin))).await,
            401
        );
    }
    hub.stop().await;
}

/// Waits until `at`, the clock passing a lifetime boundary (not a synchronisation).
async fn until(at: Instant) {
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
}

#[tokio::test]
async fn the_session_lifetime_slides_with_use_and_then_expires() {
    const LIFETIME_S: u64 = 10;
    let lifetime = Duration::from_secs(LIFETIME_S);
    let hub = TestHub::start_with(|c| c.config.dashboard.session_lifetime_s = LIFETIME_S).await;
    let origin = dashboard_origin(&hub);
    let signed_in = Instant::now();
    let (cookie, set_cookie) = sign_in(&hub).await;
    assert!(
        set_cookie.contains(&format!("Max-Age={LIFETIME_S}")),
        "{set_cookie}"
    );

    // Used after 60% of its lifetime: the 101 refreshes the cookie's Max-Age.
    until(signed_in + lifetime * 6 / 10).await;
    let (socket, response) =
        tokio_tungstenite::connect_async(cookie_request(&hub, &cookie, Some(&origin)))
            .await
            .expect("the session is live");
    let refreshed = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        refreshed.contains(&format!("Max-Age={LIFETIME_S}")) && refreshed.contains("HttpOnly"),
        "{refreshed}"
    );
    drop(socket);

    // Past the lifetime counted from sign-in, it still works: it counts from the last use.
    until(signed_in + lifetime * 11 / 10).await;
    assert_eq!(
        status_of(cookie_request(&hub, &cookie, Some(&origin))).await,
        101,
        "a used session outlives its first deadline"
    );

    // Left alone for a whole lifetime, it expires (the check does not slide it).
    eventually_within(lifetime * 6, "the session to expire", async || {
        let check = post_session(&hub, "/session/check", &cookie, Some(&origin)).await;
        if check.status() == 401 {
            return Ok(());
        }
        assert_eq!(check.status(), 204);
        Err(check.status())
    })
    .await;
    assert_eq!(
        status_of(cookie_request(&hub, &cookie, Some(&origin))).await,
        401
    );
    hub.stop().await;
}

#[tokio::test]
async fn hub_status_hides_paths_from_clients_without_admin() {
    let hub = TestHub::start().await;
    let mut owner = hub.client().await;
    let full = owner.ok("hub.status", json!({})).await;
    assert!(full["data_dir"].is_string(), "{full}");
    assert!(full["agent_cli"]["path"].is_string(), "{full}");
    let health = owner.ok("hub.health", json!({})).await;
    assert!(health["agent_cli"]["path"].is_string(), "{health}");

    let events = token(&mut owner, &["events"], None).await;
    let mut client = Ws::connect(hub.ws_request_as(&events, None)).await.unwrap();
    let status = client.ok("hub.status", json!({})).await;
    assert!(status.get("data_dir").is_none(), "{status}");
    assert!(status["agent_cli"]["path"].is_null(), "{status}");
    assert_eq!(status["agent_cli"]["found"], true);
    let health = client.ok("hub.health", json!({})).await;
    assert!(health["agent_cli"]["path"].is_null(), "{health}");
    let text = format!("{status}{health}");
    let data_dir = full["data_dir"].as_str().unwrap();
    assert!(!text.contains(data_dir), "{text}");
    hub.stop().await;
}
