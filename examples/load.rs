//! Load test of a real hub process: many connections sending requests, many subscribers
//! receiving one agent's output, and event fan-out.
//!
//! ```sh
//! cargo build --release && cargo run --release --example load -- --connections 100 --rate 1000
//! # event fan-out only: 100 subscribers, 500 events/s of 1 KiB offered (50,000 deliveries/s)
//! cargo run --release --example load -- --phases events --event-rate 500
//! # the same at saturation: publishers send as fast as the hub answers
//! cargo run --release --example load -- --phases events --event-rate 0
//! ```
//!
//! It starts `target/release/semantest-hub serve` on a free port with a temporary data
//! directory and the fake agent CLI, then runs the phases named by `--phases` and prints
//! one `FIGURE` line per measurement:
//! 1. **requests**: `--connections` clients send `hub.status` at `--rate` requests per
//!    second in total for `--seconds`; reports the achieved rate and latency percentiles.
//! 2. **output**: `--subscribers` clients subscribe to one project while the fake agent
//!    prints `--lines` lines; reports delivered lines per second.
//! 3. **events**: `--event-subscribers` clients subscribe to `load.*` while
//!    `--event-publishers` connections publish `--event-bytes` payloads at `--event-rate`
//!    events per second in total for `--event-seconds` (0: as fast as the hub answers,
//!    with at most 64 publishes in flight per publisher). Each payload carries its send
//!    time, so every delivery gives a latency; reports deliveries per second, p50/p99/max
//!    latency, events lost to full queues (`dropped`), and the hub's peak RSS.
//!
//! The hub's resident memory (VmRSS from /proc, Linux) is sampled after each phase.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use semantest_hub::cli::HubClient;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A phase of the load test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Phase {
    Requests,
    Output,
    Events,
}

#[derive(Parser)]
struct Args {
    /// The hub binary.
    #[arg(long, default_value = "target/release/semantest-hub")]
    hub: PathBuf,
    /// Concurrent connections in the request phase.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Total requests per second in the request phase.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Length of the request phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Subscribers in the fan-out phase.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Agent output lines in the fan-out phase.
    #[arg(long, default_value_t = 5000)]
    lines: u64,
    /// Phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "requests,output,events"
    )]
    phases: Vec<Phase>,
    /// Subscribers of `load.*` in the event phase.
    #[arg(long, default_value_t = 100)]
    event_subscribers: usize,
    /// Publishing connections in the event phase.
    #[arg(long, default_value_t = 2)]
    event_publishers: usize,
    /// Offered events per second, across all publishers; 0 publishes as fast as the hub
    /// answers.
    #[arg(long, default_value_t = 500)]
    event_rate: u64,
    /// Bytes of each event's payload as JSON.
    #[arg(long, default_value_t = 1024)]
    event_bytes: usize,
    /// Length of the event phase, in seconds.
    #[arg(long, default_value_t = 10)]
    event_seconds: u64,
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process has used, from /proc (Linux; clock ticks of
/// 1/100 s, the USER_HZ of every mainstream Linux build).
fn cpu_seconds(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let fake = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-claude");
    let mut hub = Command::new(&args.hub)
        .args([
            "serve",
            "--port",
            "0",
            "--secret-store",
            "file",
            "--log-level",
            "warn",
            "--data-dir",
        ])
        .arg(data.path())
        .env("SEMANTEST_HUB_AGENT__CLI_PATH", &fake)
        .env("SEMANTEST_HUB_LIMITS__MAX_CONNECTIONS", "1000")
        .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "1000000")
        .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "1000000")
        .env("SEMANTEST_HUB_LIMITS__EVENT_RATE_PER_S", "1000000")
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (build it with cargo build --release)",
                args.hub.display()
            )
        })?;
    let runtime_file = data.path().join("server.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runtime_file.exists() {
        anyhow::ensure!(Instant::now() < deadline, "the hub did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let url = semantest_hub::cli::running_hub_url(data.path())?;
    let token = std::fs::read_to_string(data.path().join("secrets/owner-token"))?
        .trim()
        .to_string();
    println!("FIGURE hub_rss_idle={} KiB", rss_kib(hub.id()));
    if args.phases.contains(&Phase::Requests) {
        request_phase(&args, &url, &token, hub.id()).await?;
    }
    if args.phases.contains(&Phase::Output) {
        output_phase(&args, &url, &token, hub.id()).await?;
    }
    if args.phases.contains(&Phase::Events) {
        event_phase(&args, &url, &token, hub.id()).await?;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(hub.id().to_string())
        .status();
    let _ = hub.wait();
    Ok(())
}

async fn request_phase(args: &Args, url: &str, token: &str, hub: u32) -> Result<()> {
    let per_connection = Duration::from_secs_f64(args.connections as f64 / args.rate as f64);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let mut client = HubClient::connect(url, token).await?;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut tick = tokio::time::interval(per_connection);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < end {
                tick.tick().await;
                let sent = Instant::now();
                match client.request("hub.status", json!({})).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
    };
    println!(
        "FIGURE requests_per_s={:.0} req/s",
        latencies.len() as f64 / elapsed
    );
    println!(
        "FIGURE request_latency_p50={:.2} ms",
        pct(0.50).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!(
        "FIGURE request_latency_p99={:.2} ms",
        pct(0.99).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    );
    println!("FIGURE request_errors={errors} count");
    println!("FIGURE hub_rss_after_requests={} KiB", rss_kib(hub));
    Ok(())
}

/// Fan-out of one agent's output to many subscribers.
async fn output_phase(args: &Args, url: &str, token: &str, hub: u32) -> Result<()> {
    let project_dir = tempfile::tempdir()?;
    let mut control = HubClient::connect(url, token).await?;
    let project = control
        .request("project.create", json!({"path": project_dir.path()}))
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_string();
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let mut client = HubClient::connect(url, token).await?;
        client
            .request("project.subscribe", json!({"project_id": project_id}))
            .await?;
        subscribers.push(client);
    }
    let started = Instant::now();
    let run = control
        .request(
            "agent.run",
            json!({"project_id": project_id, "prompt": format!("lines {}", args.lines)}),
        )
        .await?;
    let run_id = run["run_id"].as_str().context("run id")?.to_string();
    let mut waits = Vec::new();
    for mut client in subscribers {
        let run_id = run_id.clone();
        waits.push(tokio::spawn(async move {
            let mut received = 0u64;
            loop {
                // A subscriber that falls too far behind is closed with 1008 by design.
                let message = match client.next_notification().await {
                    Ok(message) => message,
                    Err(err) => {
                        eprintln!("subscriber stopped: {err}");
                        return (received, false);
                    }
                };
                let params: &Value = &message["params"];
                if message["method"] == "project.output" && params["run_id"] == run_id.as_str() {
                    received += 1;
                    if params["kind"] == "run_finished" {
                        return (received, true);
                    }
                }
            }
        }));
    }
    let (mut delivered, mut complete) = (0, 0);
    for wait in waits {
        let (received, finished) = wait.await?;
        delivered += received;
        complete += usize::from(finished);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("FIGURE fanout_lines_delivered={delivered} lines");
    println!(
        "FIGURE fanout_subscribers_complete={complete} of {}",
        args.subscribers
    );
    println!(
        "FIGURE fanout_delivery_rate={:.0} lines/s",
        delivered as f64 / elapsed
    );
    println!("FIGURE fanout_seconds={elapsed:.2} s");
    println!("FIGURE hub_rss_after_fanout={} KiB", rss_kib(hub));
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A bare WebSocket to the hub: the event phase reads frames without parsing them as
/// JSON, so the load generator spends its CPU on the hub's output, not on itself.
async fn open_socket(url: &str, token: &str) -> Result<Socket> {
    let ws_url = format!("{}/ws", url.replacen("http", "ws", 1));
    let mut request = ws_url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    request.headers_mut().insert(
        "sec-websocket-protocol",
        semantest_hub::protocol::SUBPROTOCOL.parse()?,
    );
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    Ok(socket)
}

/// Reads text frames until the one with `"id":<id>`; returns it.
async fn wait_reply(socket: &mut Socket, id: u64) -> Result<String> {
    let needle = format!("\"id\":{id},");
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .context("no reply")?
            .context("connection closed")??;
        if let Message::Text(text) = message
            && text.contains(&needle)
        {
            return Ok(text.to_string());
        }
    }
}

/// The unsigned integer after `key` in `text`, e.g. `"t":` in a payload.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    deliveries: u64,
    dropped: u64,
    latencies_us: Vec<u32>,
    last: Option<Instant>,
}

/// Event fan-out: subscribers of `load.*`, publishers at an offered rate, latency from
/// the send time in each payload.
async fn event_phase(args: &Args, url: &str, token: &str, hub: u32) -> Result<()> {
    let base = Instant::now();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut subscribers = Vec::new();
    for _ in 0..args.event_subscribers {
        let mut socket = open_socket(url, token).await?;
        let subscribe =
            r#"{"jsonrpc":"2.0","id":1,"method":"event.subscribe","params":{"types":["load.*"]}}"#;
        socket.send(Message::text(subscribe)).await?;
        let reply = wait_reply(&mut socket, 1).await?;
        anyhow::ensure!(reply.contains("\"result\""), "subscribe failed: {reply}");
        let stop = stop.clone();
        subscribers.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            loop {
                // After the publishers stop, a subscriber is done once it hears nothing
                // for a second (it has drained its queue).
                let wait = if stop.is_cancelled() { 1 } else { 3600 };
                let next = tokio::select! {
                    next = tokio::time::timeout(Duration::from_secs(wait), socket.next()) => next,
                    () = stop.cancelled(), if !stop.is_cancelled() => continue,
                };
                let Ok(Some(Ok(message))) = next else { break };
                let Message::Text(text) = message else {
                    continue;
                };
                let Some(sent) = number_after(&text, r#""t":"#) else {
                    continue;
                };
                let now = base.elapsed().as_micros() as u64;
                seen.latencies_us
                    .push(now.saturating_sub(sent).min(u64::from(u32::MAX)) as u32);
                seen.deliveries += 1;
                seen.dropped += number_after(&text, r#""dropped":"#).unwrap_or(0);
                seen.last = Some(Instant::now());
            }
            seen
        }));
    }

    let peak_rss = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let (peak_rss, stop) = (peak_rss.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.is_cancelled() {
                tick.tick().await;
                peak_rss.fetch_max(rss_kib(hub), std::sync::atomic::Ordering::Relaxed);
            }
        })
    };

    let publishers = args.event_publishers.max(1);
    let pad = "x".repeat(
        args.event_bytes
            .saturating_sub(r#"{"t":0000000000,"pad":""}"#.len()),
    );
    let (hub_cpu_start, own_cpu_start) = (cpu_seconds(&hub.to_string()), cpu_seconds("self"));
    let started = Instant::now();
    let end = started + Duration::from_secs(args.event_seconds);
    let per_publisher = args.event_rate as f64 / publishers as f64;
    let mut tasks = Vec::new();
    for _ in 0..publishers {
        let socket = open_socket(url, token).await?;
        let pad = pad.clone();
        tasks.push(tokio::spawn(async move {
            publish_events(socket, &pad, per_publisher, base, end).await
        }));
    }
    let (mut published, mut queued, mut errors) = (0, 0, 0);
    for task in tasks {
        let (p, q, e) = task.await??;
        published += p;
        queued += q;
        errors += e;
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    stop.cancel();
    let hub_cpu = cpu_seconds(&hub.to_string()) - hub_cpu_start;
    let own_cpu = cpu_seconds("self") - own_cpu_start;
    let _ = sampler.await;
    let mut seen = Seen::default();
    for subscriber in subscribers {
        let one = subscriber.await?;
        seen.deliveries += one.deliveries;
        seen.dropped += one.dropped;
        seen.latencies_us.extend(one.latencies_us);
        seen.last = seen.last.max(one.last);
    }
    let seconds = seen
        .last
        .map_or(publish_seconds, |last| (last - started).as_secs_f64());
    seen.latencies_us.sort_unstable();
    let pct = |p: f64| {
        let n = seen.latencies_us.len();
        seen.latencies_us
            .get(((n as f64 * p) as usize).min(n.saturating_sub(1)))
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    println!(
        "FIGURE event_subscribers={} publishers={publishers} payload={} B offered={} events/s",
        args.event_subscribers,
        args.event_bytes,
        if args.event_rate == 0 {
            "max".to_string()
        } else {
            args.event_rate.to_string()
        }
    );
    println!(
        "FIGURE events_published={published} events ({:.0} events/s)",
        published as f64 / publish_seconds
    );
    println!("FIGURE event_publish_errors={errors} count");
    println!("FIGURE event_deliveries_queued={queued} deliveries (the hub's delivered counts)");
    println!(
        "FIGURE event_deliveries_received={} deliveries",
        seen.deliveries
    );
    println!("FIGURE event_dropped_reported={} events", seen.dropped);
    println!(
        "FIGURE event_delivery_rate={:.0} deliveries/s",
        seen.deliveries as f64 / seconds
    );
    println!(
        "FIGURE event_hub_cpu={hub_cpu:.2} s ({:.0} deliveries per hub CPU second); load generator {own_cpu:.2} s",
        seen.deliveries as f64 / hub_cpu.max(0.01)
    );
    println!("FIGURE event_latency_p50={:.2} ms", pct(0.50));
    println!("FIGURE event_latency_p99={:.2} ms", pct(0.99));
    println!("FIGURE event_latency_max={:.2} ms", pct(1.0));
    println!(
        "FIGURE hub_rss_peak_events={} KiB",
        peak_rss.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!("FIGURE hub_rss_after_events={} KiB", rss_kib(hub));
    Ok(())
}

/// Publishes `load.tick` events until `end`, `rate` per second (0: as fast as the hub
/// answers), with at most 64 in flight. Returns (published, deliveries the hub reported,
/// errors).
async fn publish_events(
    socket: Socket,
    pad: &str,
    rate: f64,
    base: Instant,
    end: Instant,
) -> Result<(u64, u64, u64)> {
    const IN_FLIGHT: usize = 64;
    let (mut sink, mut stream) = socket.split();
    let window = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let reader = {
        let window = window.clone();
        tokio::spawn(async move {
            let (mut answered, mut queued, mut errors) = (0u64, 0u64, 0u64);
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                // Responses start with their id or error (serde_json sorts the keys);
                // notifications such as hub.connection start with "jsonrpc".
                if !(text.starts_with(r#"{"id":"#) || text.starts_with(r#"{"error":"#)) {
                    continue;
                }
                answered += 1;
                match number_after(&text, r#""delivered":"#) {
                    Some(delivered) => queued += delivered,
                    None => errors += 1,
                }
                window.add_permits(1);
            }
            (answered, queued, errors)
        })
    };
    let mut id = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    while Instant::now() < end {
        let due = if rate > 0.0 {
            tick.tick().await;
            (started.elapsed().as_secs_f64() * rate) as u64
        } else {
            id + 1
        };
        while id < due {
            match window.try_acquire() {
                Ok(permit) => permit.forget(),
                Err(_) => {
                    // Send what is buffered before waiting for its answers.
                    sink.flush().await?;
                    window.acquire().await?.forget();
                }
            }
            id += 1;
            let t = base.elapsed().as_micros();
            let frame = format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"event.publish","params":{{"type":"load.tick","payload":{{"t":{t},"pad":"{pad}"}}}}}}"#
            );
            sink.feed(Message::text(frame)).await?;
        }
        sink.flush().await?;
    }
    // Wait for the outstanding answers, then close.
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        window.acquire_many(IN_FLIGHT as u32),
    )
    .await;
    sink.close().await?;
    let (answered, queued, errors) = reader.await?;
    anyhow::ensure!(answered <= id, "more answers than requests");
    Ok((id, queued, errors))
}
