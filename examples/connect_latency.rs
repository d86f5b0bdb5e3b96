//! Connection set-up latency of a running hub with a client token: the time from opening
//! the TCP connection to the answer of the first `hub.hello`, which covers the token
//! check (an in-memory lookup with SQLite, a PostgreSQL query with `public.database`)
//! and the per-connection `last_used_at` write.
//!
//! ```sh
//! cargo run --release --example connect_latency -- \
//!     --url ws://127.0.0.1:8080/ws --host hub.example.com --owner-token "$(cat owner-token)"
//! ```
//!
//! It creates one client token with the owner token (`client.create`, scope `events`),
//! then opens `--count` connections one after another with it, each closed after its
//! `hub.hello`, and prints one `FIGURE` line with the median, p99 and maximum.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Parser)]
struct Args {
    /// The hub's WebSocket URL.
    #[arg(long)]
    url: String,
    /// The Host header to send (a public hub's name), if not the URL's.
    #[arg(long)]
    host: Option<String>,
    /// The owner token, to create the client token.
    #[arg(long)]
    owner_token: String,
    /// Connections to time.
    #[arg(long, default_value_t = 500)]
    count: usize,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(args: &Args, token: &str) -> Result<Socket> {
    let mut request = args.url.as_str().into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    if let Some(host) = &args.host {
        headers.insert("host", HeaderValue::from_str(host)?);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .context("WebSocket upgrade")?;
    Ok(socket)
}

async fn call(socket: &mut Socket, method: &str, params: Value) -> Result<Value> {
    let frame = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    socket.send(Message::text(frame.to_string())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .context("no answer within 10 s")?
            .context("connection closed")??;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text)?;
            if value["id"] == 1 {
                if let Some(error) = value.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(value["result"].clone());
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let mut owner = open(&args, &args.owner_token).await?;
    let created = call(
        &mut owner,
        "client.create",
        json!({"name": "connect latency", "scopes": ["events"]}),
    )
    .await?;
    let token = created["token"]
        .as_str()
        .context("client.create gave no token")?
        .to_string();

    let mut times = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let started = Instant::now();
        let mut socket = open(&args, &token).await?;
        call(&mut socket, "hub.hello", json!({})).await?;
        times.push(started.elapsed());
        socket.close(None).await.ok();
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "FIGURE connect_latency count={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        times.len(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
    );
    let revoke = json!({"client_id": created["client"]["id"]});
    call(&mut owner, "client.revoke", revoke).await?;
    Ok(())
}
