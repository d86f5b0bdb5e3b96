//! Load test of a real hub process: many connections sending requests, and many
//! subscribers receiving one agent's output.
//!
//! ```sh
//! cargo build --release && cargo run --release --example load -- --connections 100 --rate 1000
//! ```
//!
//! It starts `target/release/semantest-hub serve` on a free port with a temporary data
//! directory and the fake agent CLI, then runs two phases and prints one `FIGURE` line per
//! measurement:
//! 1. **requests**: `--connections` clients send `hub.status` at `--rate` requests per
//!    second in total for `--seconds`; reports the achieved rate and latency percentiles.
//! 2. **fan-out**: `--subscribers` clients subscribe to one project while the fake agent
//!    prints `--lines` lines; reports delivered lines per second.
//!
//! The hub's resident memory (VmRSS from /proc, Linux) is sampled after each phase.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use semantest_hub::client::HubClient;
use serde_json::{Value, json};

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
        .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_PER_S", "10000")
        .env("SEMANTEST_HUB_LIMITS__RATE_LIMIT_BURST", "10000")
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
    let url = semantest_hub::client::running_hub_url(data.path())?;
    let token = std::fs::read_to_string(data.path().join("secrets/owner-token"))?
        .trim()
        .to_string();
    println!("FIGURE hub_rss_idle={} KiB", rss_kib(hub.id()));

    // Phase 1: requests.
    let per_connection = Duration::from_secs_f64(args.connections as f64 / args.rate as f64);
    let end = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let mut client = HubClient::connect(&url, &token).await?;
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
    println!("FIGURE hub_rss_after_requests={} KiB", rss_kib(hub.id()));

    // Phase 2: fan-out of one agent's output to many subscribers.
    let project_dir = tempfile::tempdir()?;
    let mut control = HubClient::connect(&url, &token).await?;
    let project = control
        .request("project.create", json!({"path": project_dir.path()}))
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_string();
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        let mut client = HubClient::connect(&url, &token).await?;
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
    println!("FIGURE hub_rss_after_fanout={} KiB", rss_kib(hub.id()));

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(hub.id().to_string())
        .status();
    let _ = hub.wait();
    Ok(())
}
