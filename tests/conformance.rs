//! WebSocket conformance (docs/conformance.md): the Autobahn TestSuite's case files, run
//! by kosoku (`tests/conformance/autobahn.py`), against
//! - an echo endpoint built with [`websocket_settings`], the exact settings `/ws`
//!   upgrades with (subprotocol, message and frame limit, read buffer), because
//!   Autobahn's cases expect the server to echo what it receives and `/ws` answers
//!   JSON-RPC instead;
//! - `/ws` itself, through a loopback proxy that adds an events-only client token as a
//!   bearer header (Autobahn's client sends no credentials), for every case whose accepted
//!   outcomes have the server send no data message: pings, reserved bits, opcodes,
//!   fragmentation errors, invalid UTF-8, close handling.
//!
//! Both need `kosoku` for Python 3 (scripts/deps.sh installs the pinned version). Without
//! it the tests fail with the install command, never pass silently.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use semantest_hub::config::Limits;
use semantest_hub::server::{read_error_close, websocket_settings};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::TestHub;

/// A run takes 10 to 40 s on two cores; this bounds a hung one.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// One case's verdict as `autobahn.py` writes it.
#[derive(Debug, Deserialize)]
struct Outcome {
    id: String,
    behavior: String,
    behavior_close: String,
    passed: bool,
    expects_message: bool,
    remote_close_code: Option<u16>,
    description: String,
}

/// Permessage-deflate (RFC 7692): the hub's WebSocket stack does not offer it, so it
/// negotiates no compression and Autobahn reports these cases UNIMPLEMENTED.
const COMPRESSION_CASES: [&str; 2] = ["12.", "13."];

fn is_compression(id: &str) -> bool {
    COMPRESSION_CASES
        .iter()
        .any(|prefix| id.starts_with(prefix))
}

/// Runs `autobahn.py` against `url` and returns every case's outcome.
async fn autobahn(url: &str, name: &str, exclude: &[&str]) -> Vec<Outcome> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reports = root.join("target/conformance").join(name);
    std::fs::create_dir_all(&reports).unwrap();
    let out = reports.join("summary.json");
    // scripts/deps.sh's virtual environment, else a python3 that has kosoku.
    let venv = root.join("target/kosoku/bin/python3");
    let python = if venv.exists() {
        venv
    } else {
        "python3".into()
    };
    let mut command = tokio::process::Command::new(python);
    command
        .arg(root.join("tests/conformance/autobahn.py"))
        .arg(url)
        .arg(&out)
        .arg("--report")
        .arg(&reports)
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for case in exclude {
        command.arg("--exclude").arg(case);
    }
    let status = tokio::time::timeout(RUN_LIMIT, command.status())
        .await
        .expect("the Autobahn run finishes in time")
        .expect("python3 runs");
    assert!(
        status.success(),
        "autobahn.py failed ({status}); is kosoku installed? \
         `. scripts/deps.sh; ensure_conformance_deps`"
    );
    let summary = std::fs::read_to_string(&out).unwrap();
    let outcomes: Vec<Outcome> = serde_json::from_str(&summary).unwrap();
    assert!(outcomes.len() > 200, "only {} cases ran", outcomes.len());
    outcomes
}

/// An echo endpoint on a loopback port with `/ws`'s settings for `limits`.
async fn echo_server(limits: Limits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move |upgrade: WebSocketUpgrade| {
        let limits = limits.clone();
        async move { echo(upgrade, &limits) }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn echo(upgrade: WebSocketUpgrade, limits: &Limits) -> Response {
    websocket_settings(upgrade, limits).on_upgrade(|mut socket| async move {
        // Pings are answered and closes returned by the stack itself, as on /ws.
        let mut close = None;
        while let Some(read) = socket.recv().await {
            let message = match read {
                Ok(message) => message,
                Err(err) => {
                    // As /ws: 1009, 1002 or 1007 by the error; an I/O error ends it.
                    close = read_error_close(&err).map(|(code, reason)| CloseFrame {
                        code,
                        reason: Utf8Bytes::from_static(reason),
                    });
                    break;
                }
            };
            let echo = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                Message::Ping(_) | Message::Pong(_) => continue,
            };
            if socket.send(echo).await.is_err() {
                break;
            }
        }
        // As /ws's writer does: a close frame (the stack answers a peer's close with
        // its own instead), then the TCP close.
        let _ = socket.send(Message::Close(close)).await;
        let _ = SinkExt::close(&mut socket).await;
    })
}

/// A loopback proxy to the hub on `port` that sets `Host` to the hub's and adds `token`
/// as `Authorization: Bearer`, then relays bytes both ways.
async fn token_proxy(port: u16, token: String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(relay(client, port, token.clone()));
        }
    });
    addr
}

async fn relay(mut client: TcpStream, port: u16, token: String) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Ok(());
        }
        head.push(client.read_u8().await?);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let mut request = format!("{}\r\n", lines.next().unwrap_or_default());
    for line in lines.filter(|line| !line.is_empty()) {
        let name = line.split(':').next().unwrap_or_default();
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("authorization") {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str(&format!(
        "Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ));
    let mut hub = TcpStream::connect(("127.0.0.1", port)).await?;
    hub.write_all(request.as_bytes()).await?;
    tokio::io::copy_bidirectional(&mut client, &mut hub).await?;
    Ok(())
}

/// The message size of a 9.x case in MiB, from its description ("... length 4 * 2**20").
fn mebibytes(description: &str) -> Option<usize> {
    let (before, _) = description.split_once(" * 2**20")?;
    before.rsplit(' ').next()?.parse().ok()
}

fn failures(outcomes: &[Outcome], expected: impl Fn(&Outcome) -> bool) -> Vec<&Outcome> {
    outcomes.iter().filter(|o| !expected(o)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_cases_pass_on_an_echo_endpoint_with_the_settings_of_ws() {
    let limits = Limits::default();
    let max = limits.max_message_bytes;
    let addr = echo_server(limits).await;
    let outcomes = autobahn(&format!("ws://{addr}"), "echo", &[]).await;
    let unexpected = failures(&outcomes, |o| {
        if is_compression(&o.id) {
            // Not offered, so not negotiated: nothing to check but that it says so.
            return o.behavior == "UNIMPLEMENTED" && o.behavior_close == "OK";
        }
        if o.id.starts_with("9.") && !o.passed {
            // Messages over limits.max_message_bytes are refused by design: 1009.
            return mebibytes(&o.description).is_some_and(|m| m << 20 > max)
                && o.remote_close_code == Some(1009);
        }
        o.passed
    });
    assert!(unexpected.is_empty(), "limit {max}: {unexpected:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autobahn_cases_without_an_echo_pass_on_ws_itself() {
    let hub = TestHub::start().await;
    // An events-only client, the least a client can hold: no notification of the hub's
    // (project news, for instance) reaches a case, which expects none.
    let mut owner = hub.client().await;
    let created = owner
        .ok(
            "client.create",
            json!({"name": "autobahn", "scopes": ["events"]}),
        )
        .await;
    let token = created["token"].as_str().unwrap().to_string();
    let proxy = token_proxy(hub.port, token).await;
    // Whole categories whose every case needs an echo, left out to save time: framing
    // (1), limits and performance (9), auto-fragmentation (10), compression (12, 13).
    let outcomes = autobahn(
        &format!("ws://{proxy}/ws"),
        "ws",
        &["1.*", "9.*", "10.*", "12.*", "13.*"],
    )
    .await;
    let applicable: Vec<&Outcome> = outcomes.iter().filter(|o| !o.expects_message).collect();
    assert!(
        applicable.len() > 50,
        "only {} cases apply to /ws",
        applicable.len()
    );
    let unexpected: Vec<&&Outcome> = applicable.iter().filter(|o| !o.passed).collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    hub.stop().await;
}
