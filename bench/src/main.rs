//! `bench`: drives a real Semantest Hub process over loopback and, in the same run, a
//! bare tokio-tungstenite server doing the same job with nothing else, and reports every
//! figure as the median of several runs, its spread, and its ratio to the bare server.
//!
//! ```text
//! cargo build --release && cargo run --release -p semantest-bench -- run --out docs/perf
//! cargo run --release -p semantest-bench -- plot docs/perf/results.json --out docs/perf
//! ```
//!
//! `run` writes `results.json` (every run's value, medians, spreads, ratios and the load
//! sweeps) and `results.csv` (one row per run and figure) to `--out`, prints a table, and
//! draws the SVG plots. See docs/performance.md for the method.

mod bare;
mod fakecli;
mod mcp;
mod plot;
mod scenarios;
mod stats;
mod target;
mod wsclient;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::{Value, json};

use crate::scenarios::LoadPoint;
use crate::stats::{Summary, summarize};
use crate::target::{HubSpec, Kind, Server};

#[derive(Parser)]
#[command(about = "Benchmarks a Semantest Hub process against a bare WebSocket server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the scenarios and writes results.json, results.csv and the plots.
    Run(RunArgs),
    /// Draws the SVG plots from a results.json.
    Plot {
        /// The results file `run` wrote.
        input: PathBuf,
        /// Where the SVG files go.
        #[arg(long, default_value = "docs/perf")]
        out: PathBuf,
    },
    /// Prints the results table of a results.json (Markdown).
    Table {
        /// The results file `run` wrote.
        input: PathBuf,
    },
    /// The bare tokio-tungstenite server (started by `run`).
    #[command(hide = true)]
    BareServer {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// The fake agent CLI (run by the hub through a wrapper script).
    #[command(hide = true)]
    FakeCli {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Parser, Clone)]
struct RunArgs {
    /// The hub binary (a release build).
    #[arg(long, default_value = "target/release/semantest-hub")]
    hub: PathBuf,
    /// A real Claude Code CLI for the start-up figure with the CLI installed
    /// (default: `claude` on PATH or target/claude-code/node_modules/.bin/claude).
    #[arg(long)]
    claude: Option<PathBuf>,
    /// Runs of every figure; medians and spreads are over these.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Only these scenarios (comma-separated): rpc, setup, connections, events, output,
    /// volume, tasks, mcp, startup, idle; and, run only when named here, `cluster` (three
    /// public-mode instances over a nats-server from PATH against one with the in-process
    /// broker) and `fanout` (100 subscribers, 4 publishers, 1 KiB events at the
    /// `--fanout-rates`).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Seconds of each load point.
    #[arg(long, default_value_t = 4.0)]
    secs: f64,
    /// Seconds of the idle measurement.
    #[arg(long, default_value_t = 60.0)]
    idle_secs: f64,
    /// Concurrent connections for the connections figure.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// The connections figure's connections hold the owner token, as the dashboard and the
    /// command-line client do, instead of a client token with the `events` scope.
    #[arg(long)]
    connections_owner: bool,
    /// Offered deliveries/s of the `fanout` sweep (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "900000,1200000,1500000,1800000"
    )]
    fanout_rates: Vec<f64>,
    /// Megabytes of agent output for the volume figure.
    #[arg(long, default_value_t = 100)]
    volume_mb: u64,
    /// Tasks for the task-queue figure.
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Events per second from each of the cluster run's publishers (one per instance).
    #[arg(long, default_value_t = 200.0)]
    cluster_rate: f64,
    /// Where results and plots go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// A label stored with the results (e.g. the commit measured).
    #[arg(long, default_value = "")]
    label: String,
}

/// The figures of the issue's table, in its order.
struct Figure {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    target: &'static str,
}

const FIGURES: &[Figure] = &[
    Figure {
        id: "event_saturation",
        title: "event fan-out, 100 subscribers: saturation",
        unit: "deliveries/s",
        target: ">= 700,000/s and >= 75% of bare",
    },
    Figure {
        id: "event_p99_50k",
        title: "event fan-out latency at 50,000 deliveries/s: p99",
        unit: "ms",
        target: "<= 2.5 ms",
    },
    Figure {
        id: "event_p50_50k",
        title: "event fan-out latency at 50,000 deliveries/s: p50",
        unit: "ms",
        target: "-",
    },
    Figure {
        id: "event_rss_50k",
        title: "event fan-out at 50,000 deliveries/s: server RSS",
        unit: "MiB",
        target: "<= 25 MB",
    },
    Figure {
        id: "output_saturation",
        title: "agent output to 100 subscribers: saturation",
        unit: "deliveries/s",
        target: ">= 300,000/s",
    },
    Figure {
        id: "output_rss_saturation",
        title: "agent output at saturation: server peak RSS",
        unit: "MiB",
        target: "bounded",
    },
    Figure {
        id: "output_p99_50k",
        title: "agent output latency at 50,000 deliveries/s: p99",
        unit: "ms",
        target: "<= 5 ms",
    },
    Figure {
        id: "output_p50_50k",
        title: "agent output latency at 50,000 deliveries/s: p50",
        unit: "ms",
        target: "-",
    },
    Figure {
        id: "volume_mb_s",
        title: "agent output volume, 100 MB to the log and 10 subscribers",
        unit: "MB/s",
        target: ">= 50 MB/s, no loss",
    },
    Figure {
        id: "volume_lost",
        title: "agent output volume: lines lost",
        unit: "lines",
        target: "0",
    },
    Figure {
        id: "conn_rss",
        title: "10,000 concurrent authenticated connections: server RSS",
        unit: "MiB",
        target: "<= 150 MB",
    },
    Figure {
        id: "conn_errors",
        title: "10,000 concurrent connections: failures",
        unit: "connections",
        target: "0",
    },
    Figure {
        id: "conn_open_s",
        title: "10,000 concurrent connections: time to open them all",
        unit: "s",
        target: "<= 2x bare",
    },
    Figure {
        id: "setup_p50",
        title: "connection set-up (connect, authenticate, first reply): p50",
        unit: "ms",
        target: "<= 2x bare",
    },
    Figure {
        id: "setup_p99",
        title: "connection set-up: p99",
        unit: "ms",
        target: "-",
    },
    Figure {
        id: "rpc_p50_5k",
        title: "RPC round trip (hub.status) at 5,000/s over 100 connections: p50",
        unit: "ms",
        target: "<= 1.5x bare",
    },
    Figure {
        id: "rpc_p99_5k",
        title: "RPC round trip at 5,000/s: p99",
        unit: "ms",
        target: "<= 2x bare",
    },
    Figure {
        id: "tasks_per_s",
        title: "task queue create -> assign -> complete, 50 workers",
        unit: "tasks/s",
        target: ">= 5,000/s",
    },
    Figure {
        id: "mcp_next_task_p50",
        title: "MCP next_task over /mcp to a task assigned already: p50",
        unit: "ms",
        target: "-",
    },
    Figure {
        id: "mcp_next_task_p99",
        title: "MCP next_task over /mcp to a task assigned already: p99",
        unit: "ms",
        target: "<= 100 ms",
    },
    Figure {
        id: "mcp_to_worker_p50",
        title: "task.create to a waiting MCP worker's next_task answer: p50",
        unit: "ms",
        target: "-",
    },
    Figure {
        id: "mcp_to_worker_p99",
        title: "task.create to a waiting MCP worker's next_task answer: p99",
        unit: "ms",
        target: "<= 100 ms",
    },
    Figure {
        id: "startup_ms",
        title: "start-up: launch to /health 200 (fake CLI)",
        unit: "ms",
        target: "<= 100 ms",
    },
    Figure {
        id: "startup_cli_ms",
        title: "start-up with the real Claude Code CLI installed",
        unit: "ms",
        target: "<= 100 ms",
    },
    Figure {
        id: "idle_cpu_ms",
        title: "idle CPU with no clients, per 60 s",
        unit: "ms",
        target: "<= 10 ms",
    },
];

/// Samples of each MCP figure per run.
const MCP_SAMPLES: usize = 200;

/// Offered loads of the sweeps; 0 = as fast as possible (saturation).
const RPC_RATES: &[f64] = &[1000.0, 2500.0, 5000.0, 10_000.0, 20_000.0];
const FANOUT_RATES: &[f64] = &[
    10_000.0, 25_000.0, 50_000.0, 100_000.0, 200_000.0, 400_000.0, 0.0,
];

#[derive(Default, Serialize)]
struct Results {
    /// (figure, "hub"|"bare") → one value per run.
    values: BTreeMap<String, BTreeMap<&'static str, Vec<f64>>>,
    /// sweep → "hub"|"bare" → offered → one point per run.
    sweeps: BTreeMap<String, BTreeMap<&'static str, BTreeMap<String, Vec<LoadPoint>>>>,
    /// Free-form observations (e.g. the idle wake-ups per thread).
    notes: BTreeMap<String, Value>,
}

fn side(kind: Kind) -> &'static str {
    match kind {
        Kind::Hub => "hub",
        Kind::Bare => "bare",
    }
}

impl Results {
    fn add(&mut self, figure: &str, kind: Kind, value: f64) {
        println!("  {figure} [{}] = {value:.3}", side(kind));
        self.values
            .entry(figure.to_string())
            .or_default()
            .entry(side(kind))
            .or_default()
            .push(value);
    }

    fn point(&mut self, sweep: &str, kind: Kind, point: LoadPoint) {
        println!(
            "  {sweep} [{}] offered {:.0}: achieved {:.0}, p50 {:.3} ms, p99 {:.3} ms, lost {}, rss {:.1} MiB",
            side(kind),
            point.offered,
            point.achieved,
            point.p50_ms,
            point.p99_ms,
            point.lost,
            point.rss_peak_mib
        );
        self.sweeps
            .entry(sweep.to_string())
            .or_default()
            .entry(side(kind))
            .or_default()
            .entry(format!("{:.0}", point.offered))
            .or_default()
            .push(point);
    }
}

/// Three public-mode instances joined by NATS, 100 subscribers and one publisher on
/// each, 1 KiB events; beside it the same 300 subscribers and 3 publishers on one
/// instance with the in-process broker. Prints and returns one line per run and side.
async fn cluster(spec: &HubSpec, args: &RunArgs) -> Result<Value> {
    let mut lines = Vec::new();
    println!("| broker | run | deliveries/s | p50 ms | p99 ms | lost | RSS per instance MiB |");
    println!("|---|---|---|---|---|---|---|");
    for run in 1..=args.runs {
        for nats in [true, false] {
            let broker = if nats {
                Some(target::start_nats().await?)
            } else {
                None
            };
            let mut servers = Vec::new();
            let url = broker.as_ref().map(|b| b.url.clone());
            if nats {
                for _ in 0..3 {
                    servers.push(target::start_public_hub(spec, url.as_deref()).await?);
                }
            } else {
                servers.push(target::start_public_hub(spec, None).await?);
            }
            // One instance alone gets all 300 subscribers and the three publishers.
            let spread = scenarios::Spread {
                subs_per: 300 / servers.len(),
                publishers_per: 3 / servers.len(),
                rate: args.cluster_rate,
                secs: args.secs,
                size: 1024,
            };
            let (point, rss) = scenarios::cluster_fanout(&servers, spread).await?;
            let side = if nats { "nats x3" } else { "in-process x1" };
            let rss_text: Vec<String> = rss.iter().map(|r| format!("{r:.1}")).collect();
            println!(
                "| {side} | {run} | {:.0} | {:.2} | {:.2} | {} | {} |",
                point.achieved,
                point.p50_ms,
                point.p99_ms,
                point.lost,
                rss_text.join(" / ")
            );
            lines.push(json!({"broker": side, "run": run, "point": point, "rss_mib": rss}));
            for server in servers {
                server.stop().await;
            }
            drop(broker);
        }
    }
    Ok(Value::Array(lines))
}

fn wants(args: &RunArgs, scenario: &str) -> bool {
    args.only.is_empty() || args.only.iter().any(|s| s == scenario)
}

/// Writes the wrapper script that makes the hub run `bench fake-cli`.
fn fake_cli_wrapper(dir: &std::path::Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe()?;
    let path = dir.join("claude");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec '{}' fake-cli \"$@\"\n", exe.display()),
    )?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The real CLI, if one is installed.
fn find_claude(args: &RunArgs) -> Option<PathBuf> {
    if let Some(path) = &args.claude {
        return Some(path.clone());
    }
    let local = PathBuf::from("target/claude-code/node_modules/.bin/claude");
    if local.exists() {
        return std::fs::canonicalize(local).ok();
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("claude"))
            .find(|p| p.is_file())
    })
}

/// Settings of the hub under test that limit one client and would cap a measurement:
/// every `limits.*rate*` / `limits.*burst*` key the hub reports in `hub.config` that
/// the base environment does not already raise.
async fn extra_limits(spec: &HubSpec) -> Result<Vec<(String, String)>> {
    use futures_util::StreamExt;
    let server = target::start_hub(spec).await?;
    let (mut sink, mut source) = wsclient::connect(&server.endpoint).await?.split();
    let config = wsclient::rpc(&mut sink, &mut source, 1, "hub.config", &json!({})).await?;
    server.stop().await;
    let mut env = Vec::new();
    for value in config["values"].as_array().into_iter().flatten() {
        let Some(key) = value["key"].as_str() else {
            continue;
        };
        let Some(name) = key.strip_prefix("limits.") else {
            continue;
        };
        let raise = (name.contains("rate") || name.contains("burst"))
            && !matches!(name, "rate_limit_per_s" | "rate_limit_burst");
        if raise && value["value"].is_u64() {
            env.push((
                format!("SEMANTEST_HUB_LIMITS__{}", name.to_uppercase()),
                "1000000".to_string(),
            ));
        }
    }
    Ok(env)
}

/// A fresh server of `kind`: one per measurement, so that no figure inherits another's
/// memory or connections.
async fn start(spec: &HubSpec, kind: Kind) -> Result<Server> {
    match kind {
        Kind::Hub => target::start_hub(spec).await,
        Kind::Bare => target::start_bare().await,
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let nofile = target::raise_nofile()?;
    if wants(&args, "connections") && nofile < args.connections as u64 * 2 + 1000 {
        println!(
            "note: the open-files limit is {nofile}; {} connections need about {} (client and server)",
            args.connections,
            args.connections * 2 + 1000
        );
    }
    std::fs::create_dir_all(&args.out)?;
    let scratch = tempfile::tempdir()?;
    let mut spec = HubSpec {
        binary: std::fs::canonicalize(&args.hub)
            .with_context(|| format!("{} (cargo build --release)", args.hub.display()))?,
        cli: fake_cli_wrapper(scratch.path())?,
        env: Vec::new(),
    };
    spec.env = extra_limits(&spec).await?;
    let mut results = Results::default();
    let events = {
        let probe = target::start_hub(&spec).await?;
        let has = scenarios::has_events(&probe.endpoint).await?;
        probe.stop().await;
        has
    };
    results.notes.insert(
        "event_methods".into(),
        json!(if events { "available" } else { "not available" }),
    );
    results.notes.insert("extra_env".into(), json!(spec.env));
    let secs = args.secs;

    if args.only.iter().any(|s| s == "cluster") {
        results
            .notes
            .insert("cluster".into(), cluster(&spec, &args).await?);
    }
    for run in 1..=args.runs {
        println!("== run {run} of {}", args.runs);
        if wants(&args, "rpc") {
            for &rate in RPC_RATES {
                for kind in [Kind::Hub, Kind::Bare] {
                    let server = start(&spec, kind).await?;
                    let point = scenarios::round_trip(&server.endpoint, 100, rate, secs).await?;
                    if rate == 5000.0 {
                        results.add("rpc_p50_5k", server.endpoint.kind, point.p50_ms);
                        results.add("rpc_p99_5k", server.endpoint.kind, point.p99_ms);
                    }
                    results.point("rpc", server.endpoint.kind, point);
                    server.stop().await;
                }
            }
        }
        if wants(&args, "setup") {
            for kind in [Kind::Hub, Kind::Bare] {
                let server = start(&spec, kind).await?;
                let mut l = scenarios::setup(&server.endpoint, 300).await?;
                results.add("setup_p50", server.endpoint.kind, l.percentile_ms(50.0));
                results.add("setup_p99", server.endpoint.kind, l.percentile_ms(99.0));
                server.stop().await;
            }
        }
        if wants(&args, "connections") {
            let count = args.connections;
            for kind in [Kind::Hub, Kind::Bare] {
                let server = start(&spec, kind).await?;
                let held = scenarios::hold(&server, count, args.connections_owner).await?;
                results.add("conn_rss", server.endpoint.kind, held.rss_mib);
                results.add("conn_open_s", server.endpoint.kind, held.open_secs);
                results.add("conn_errors", server.endpoint.kind, held.errors as f64);
                results.notes.insert(
                    format!("conn_open_{}_{run}", side(server.endpoint.kind)),
                    json!({"open": held.open, "owner_token": held.owner, "frames_received": held.frames}),
                );
                results.notes.insert(
                    format!("conn_rss_before_{}_{run}", side(server.endpoint.kind)),
                    json!(held.rss_before_mib),
                );
                server.stop().await;
            }
        }
        if wants(&args, "events") {
            if events {
                for &rate in FANOUT_RATES {
                    for kind in [Kind::Hub, Kind::Bare] {
                        let server = start(&spec, kind).await?;
                        let Some(point) =
                            scenarios::event_fanout(&server, 100, rate, secs, 1024).await?
                        else {
                            server.stop().await;
                            continue;
                        };
                        let kind = server.endpoint.kind;
                        if rate == 0.0 {
                            results.add("event_saturation", kind, point.achieved);
                        }
                        if rate == 50_000.0 {
                            results.add("event_p99_50k", kind, point.p99_ms);
                            results.add("event_p50_50k", kind, point.p50_ms);
                            results.add("event_rss_50k", kind, point.rss_peak_mib);
                        }
                        results.point("events", kind, point);
                        server.stop().await;
                    }
                }
            } else {
                println!("  event fan-out: not available (the hub has no event.subscribe)");
            }
        }
        if args.only.iter().any(|s| s == "fanout") {
            for &rate in &args.fanout_rates {
                for kind in [Kind::Hub, Kind::Bare] {
                    let server = start(&spec, kind).await?;
                    let spread = scenarios::Spread {
                        subs_per: 100,
                        publishers_per: 4,
                        rate: rate / 400.0,
                        secs,
                        size: 1024,
                    };
                    let (point, _) =
                        scenarios::cluster_fanout(std::slice::from_ref(&server), spread).await?;
                    results.point("fanout", server.endpoint.kind, point);
                    server.stop().await;
                }
            }
        }
        if wants(&args, "output") {
            for &rate in FANOUT_RATES {
                // Enough lines for `secs` at the offered rate; 20,000 at saturation.
                let count = if rate == 0.0 {
                    20_000
                } else {
                    ((rate / 100.0) * secs) as u64
                };
                for kind in [Kind::Hub, Kind::Bare] {
                    let server = start(&spec, kind).await?;
                    let point = scenarios::output_fanout(&server, 100, rate, count, 1024).await?;
                    let kind = server.endpoint.kind;
                    if rate == 0.0 {
                        results.add("output_saturation", kind, point.achieved);
                        results.add("output_rss_saturation", kind, point.rss_peak_mib);
                    }
                    if rate == 50_000.0 {
                        results.add("output_p99_50k", kind, point.p99_ms);
                        results.add("output_p50_50k", kind, point.p50_ms);
                    }
                    results.point("output", kind, point);
                    server.stop().await;
                }
            }
        }
        if wants(&args, "volume") {
            let mb = args.volume_mb;
            for kind in [Kind::Hub, Kind::Bare] {
                let server = start(&spec, kind).await?;
                let (rate, lost, rss) = scenarios::volume(&server, 10, mb).await?;
                results.add("volume_mb_s", server.endpoint.kind, rate);
                results.add("volume_lost", server.endpoint.kind, lost as f64);
                results.notes.insert(
                    format!("volume_rss_{}_{run}", side(server.endpoint.kind)),
                    json!(rss),
                );
                server.stop().await;
            }
        }
        if wants(&args, "tasks") {
            let hub = target::start_hub(&spec).await?;
            let rate = scenarios::task_queue(&hub.endpoint, 50, args.tasks).await?;
            results.add("tasks_per_s", Kind::Hub, rate);
            hub.stop().await;
        }
        if wants(&args, "mcp") {
            let hub = target::start_hub(&spec).await?;
            let (mut round_trip, mut to_worker) =
                mcp::worker_loop(&hub.endpoint, MCP_SAMPLES).await?;
            for (figure, value) in [
                ("mcp_next_task_p50", round_trip.percentile_ms(50.0)),
                ("mcp_next_task_p99", round_trip.percentile_ms(99.0)),
                ("mcp_to_worker_p50", to_worker.percentile_ms(50.0)),
                ("mcp_to_worker_p99", to_worker.percentile_ms(99.0)),
            ] {
                results.add(figure, Kind::Hub, value);
            }
            hub.stop().await;
        }
        if wants(&args, "startup") {
            results.add(
                "startup_ms",
                Kind::Hub,
                scenarios::hub_startup(&spec).await?,
            );
            results.add("startup_ms", Kind::Bare, scenarios::bare_startup().await?);
            if let Some(claude) = find_claude(&args) {
                let real = HubSpec {
                    cli: claude,
                    ..spec.clone()
                };
                results.add(
                    "startup_cli_ms",
                    Kind::Hub,
                    scenarios::hub_startup(&real).await?,
                );
            }
        }
        if wants(&args, "idle") {
            let hub = target::start_hub(&spec).await?;
            let bare = target::start_bare().await?;
            let (h, b) = tokio::join!(
                scenarios::idle(&hub, args.idle_secs),
                scenarios::idle(&bare, args.idle_secs)
            );
            let ((hub_ms, threads), (bare_ms, _)) = (h?, b?);
            let per_60 = 60.0 / args.idle_secs;
            results.add("idle_cpu_ms", Kind::Hub, hub_ms * per_60);
            results.add("idle_cpu_ms", Kind::Bare, bare_ms * per_60);
            results.notes.insert(
                format!("idle_wakeups_{run}"),
                json!(threads
                    .iter()
                    .map(|(name, wakes, ms)| json!({"thread": name, "wakeups": wakes, "cpu_ms": ms}))
                    .collect::<Vec<_>>()),
            );
            hub.stop().await;
            bare.stop().await;
        }
    }

    let report = report(&results, &args)?;
    let json_path = args.out.join("results.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&report)?)?;
    write_csv(&results, &args.out.join("results.csv"))?;
    print_table(&report);
    if let Err(err) = plot::draw_all(&report, &args.out) {
        println!("no plots: {err:#}");
    }
    println!(
        "wrote {} and results.csv, plots in {}",
        json_path.display(),
        args.out.display()
    );
    Ok(())
}

fn summary_json(values: Option<&Vec<f64>>) -> Value {
    match values.and_then(|v| summarize(v).map(|s| (s, v))) {
        Some((Summary { median, min, max }, runs)) => {
            json!({"median": median, "min": min, "max": max, "runs": runs})
        }
        None => Value::Null,
    }
}

/// The machine-readable report: figures with medians, spreads and ratios; sweeps with
/// per-point medians.
fn report(results: &Results, args: &RunArgs) -> Result<Value> {
    let mut figures = Vec::new();
    for figure in FIGURES {
        let sides = results.values.get(figure.id);
        let hub = summary_json(sides.and_then(|s| s.get("hub")));
        let bare = summary_json(sides.and_then(|s| s.get("bare")));
        let ratio = match (hub["median"].as_f64(), bare["median"].as_f64()) {
            (Some(h), Some(b)) if b != 0.0 => json!(h / b),
            _ => Value::Null,
        };
        figures.push(json!({
            "id": figure.id, "title": figure.title, "unit": figure.unit, "target": figure.target,
            "hub": hub, "bare": bare, "ratio_to_bare": ratio,
        }));
    }
    let mut sweeps = serde_json::Map::new();
    for (sweep, by_side) in &results.sweeps {
        let mut sides = serde_json::Map::new();
        for (side_name, by_offered) in by_side {
            let mut points: Vec<Value> = by_offered
                .values()
                .map(|runs| {
                    let pick = |f: fn(&LoadPoint) -> f64| {
                        summarize(&runs.iter().map(f).collect::<Vec<_>>())
                            .map_or(0.0, |s| s.median)
                    };
                    json!({
                        "offered": runs[0].offered,
                        "achieved": pick(|p| p.achieved),
                        "achieved_min": runs.iter().map(|p| p.achieved).fold(f64::INFINITY, f64::min),
                        "achieved_max": runs.iter().map(|p| p.achieved).fold(0.0, f64::max),
                        "p50_ms": pick(|p| p.p50_ms),
                        "p99_ms": pick(|p| p.p99_ms),
                        "p999_ms": pick(|p| p.p999_ms),
                        "lost": pick(|p| p.lost as f64),
                        "rss_peak_mib": pick(|p| p.rss_peak_mib),
                        "runs": runs.len(),
                    })
                })
                .collect();
            points.sort_by(|a, b| {
                let key = |v: &Value| match v["offered"].as_f64().unwrap_or(0.0) {
                    0.0 => f64::INFINITY,
                    x => x,
                };
                key(a).total_cmp(&key(b))
            });
            sides.insert((*side_name).to_string(), Value::Array(points));
        }
        sweeps.insert(sweep.clone(), Value::Object(sides));
    }
    Ok(json!({
        "label": args.label,
        "hub_binary": args.hub,
        "runs": args.runs,
        "load_point_secs": args.secs,
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        },
        "figures": figures,
        "sweeps": sweeps,
        "notes": results.notes,
    }))
}

fn write_csv(results: &Results, path: &std::path::Path) -> Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(file, "figure,server,run,value")?;
    for (figure, sides) in &results.values {
        for (side_name, values) in sides {
            for (i, value) in values.iter().enumerate() {
                writeln!(file, "{figure},{side_name},{},{value}", i + 1)?;
            }
        }
    }
    writeln!(file)?;
    writeln!(
        file,
        "sweep,server,offered,run,achieved,p50_ms,p99_ms,p999_ms,lost,rss_peak_mib"
    )?;
    for (sweep, sides) in &results.sweeps {
        for (side_name, points) in sides {
            for runs in points.values() {
                for (i, p) in runs.iter().enumerate() {
                    writeln!(
                        file,
                        "{sweep},{side_name},{},{},{:.1},{:.4},{:.4},{:.4},{},{:.1}",
                        p.offered,
                        i + 1,
                        p.achieved,
                        p.p50_ms,
                        p.p99_ms,
                        p.p999_ms,
                        p.lost,
                        p.rss_peak_mib
                    )?;
                }
            }
        }
    }
    file.flush()?;
    Ok(())
}

fn fmt_summary(value: &Value) -> String {
    match (
        value["median"].as_f64(),
        value["min"].as_f64(),
        value["max"].as_f64(),
    ) {
        (Some(m), Some(lo), Some(hi)) => format!("{} ({}-{})", num(m), num(lo), num(hi)),
        _ => "not measured".into(),
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn print_table(report: &Value) {
    println!();
    println!("| figure | target | hub median (min-max) | bare median (min-max) | ratio to bare |");
    println!("|---|---|---|---|---|");
    for figure in report["figures"].as_array().into_iter().flatten() {
        let ratio = figure["ratio_to_bare"]
            .as_f64()
            .map_or("-".into(), |r| format!("{r:.2}x"));
        println!(
            "| {} ({}) | {} | {} | {} | {} |",
            figure["title"].as_str().unwrap_or(""),
            figure["unit"].as_str().unwrap_or(""),
            figure["target"].as_str().unwrap_or(""),
            fmt_summary(&figure["hub"]),
            fmt_summary(&figure["bare"]),
            ratio
        );
    }
    if let Some(events) = report["notes"]["event_methods"].as_str() {
        println!("event methods: {events}");
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::FakeCli { args } => fakecli::run(&args),
        Command::BareServer { port } => tokio::runtime::Runtime::new()?.block_on(bare::serve(port)),
        Command::Plot { input, out } => {
            let report: Value = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
            plot::draw_all(&report, &out)
        }
        Command::Table { input } => {
            let report: Value = serde_json::from_str(&std::fs::read_to_string(&input)?)?;
            print_table(&report);
            Ok(())
        }
        Command::Run(args) => tokio::runtime::Runtime::new()?.block_on(run(args)),
    }
}
