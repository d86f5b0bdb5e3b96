//! Queue throughput: create → assign → complete through the real server.
//!
//! A hub on port 0, one coordinator and `--workers` worker clients, all real WebSocket
//! clients in this process. The clock starts when the coordinator sends the first
//! `task.create` (tasks go in batches of 1,000) and stops when it receives
//! `project.completed`; each worker completes every task it is assigned at once. The
//! figures are tasks per second per run, their median, and the process's peak resident
//! memory (`VmHWM`, hub and clients together).
//!
//! ```text
//! cargo run --release --example queue_bench -- [--workers 50] [--tasks 10000] [--runs 3]
//! ```
//!
//! Rate limits and the outgoing queue are raised for the run: the defaults exist to stop
//! one misbehaving client, and 50 workers completing as fast as they can are not that.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use semantest_hub::cli::HubClient;
use semantest_hub::config::{Config, Overrides, SecretStoreKind};
use serde_json::{Value, json};

const CHUNK: usize = 1000;

struct Args {
    workers: usize,
    tasks: usize,
    runs: usize,
}

fn args() -> Result<Args> {
    let mut args = Args {
        workers: 50,
        tasks: 10_000,
        runs: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it
            .next()
            .with_context(|| format!("{flag} needs a value"))?
            .parse()
            .with_context(|| format!("{flag} needs a number"))?;
        match flag.as_str() {
            "--workers" => args.workers = value,
            "--tasks" => args.tasks = value,
            "--runs" => args.runs = value,
            other => bail!("unknown flag {other}; use --workers, --tasks, --runs"),
        }
    }
    Ok(args)
}

/// Peak resident set size of this process in KiB (`VmHWM` in `/proc/self/status`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn worker(mut client: HubClient) -> Result<usize> {
    let mut done = 0;
    loop {
        let message = client.next_notification().await?;
        match message["method"].as_str() {
            Some("task.assigned") => {
                let task_id = message["params"]["task"]["id"].clone();
                client
                    .request(
                        "task.complete",
                        json!({"task_id": task_id, "report": {"summary": "ok"}}),
                    )
                    .await?;
                done += 1;
            }
            Some("project.completed") => return Ok(done),
            _ => {}
        }
    }
}

async fn one_run(args: &Args) -> Result<f64> {
    let data = tempfile::tempdir()?;
    let project_dir = tempfile::tempdir()?;
    let overrides = Overrides {
        secret_store: Some(SecretStoreKind::File),
        data_dir: Some(data.path().to_path_buf()),
        port: Some(0),
        log_level: Some("warn".into()),
        ..Default::default()
    };
    let mut loaded = Config::load(None, &overrides)?;
    let limits = &mut loaded.config.limits;
    limits.rate_limit_per_s = 1_000_000;
    limits.rate_limit_burst = 1_000_000;
    limits.outgoing_queue = 1 << 20;
    let server = semantest_hub::start(loaded).await?;
    let token = std::fs::read_to_string(data.path().join("secrets/owner-token"))?;
    let url = server.url();
    let connect = || HubClient::connect(&url, token.trim());

    let mut coordinator = connect().await?;
    coordinator
        .request("hub.hello", json!({"role": "coordinator", "name": "bench"}))
        .await?;
    let project = coordinator
        .request("project.create", json!({"path": project_dir.path()}))
        .await?;
    let project_id = project["id"].as_str().context("project id")?.to_string();
    let mut workers = Vec::new();
    for i in 0..args.workers {
        let mut client = connect().await?;
        client
            .request("worker.register", json!({"name": format!("bench-{i}")}))
            .await?;
        workers.push(tokio::spawn(worker(client)));
    }

    let started = Instant::now();
    for chunk in (0..args.tasks).collect::<Vec<_>>().chunks(CHUNK) {
        let tasks: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"id": format!("b{i:06}"), "title": format!("bench task {i}")}))
            .collect();
        coordinator
            .request(
                "task.create",
                json!({"project_id": project_id, "tasks": tasks}),
            )
            .await?;
    }
    let deadline = Duration::from_secs(600);
    let completed = tokio::time::timeout(deadline, async {
        loop {
            let message = coordinator.next_notification().await?;
            if message["method"] == "project.completed" {
                return anyhow::Ok(message["params"]["completed"].as_u64().unwrap_or(0));
            }
        }
    })
    .await
    .context("the batch did not finish within 10 minutes")??;
    let elapsed = started.elapsed();
    let mut done = 0;
    for worker in workers {
        done += worker.await??;
    }
    if completed as usize != args.tasks || done != args.tasks {
        bail!(
            "expected {} completions, the hub counted {completed} and the workers {done}",
            args.tasks
        );
    }
    server.shutdown().await;
    Ok(args.tasks as f64 / elapsed.as_secs_f64())
}

fn main() -> Result<()> {
    let args = args()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut rates = Vec::new();
    for run in 1..=args.runs {
        let rate = runtime.block_on(one_run(&args))?;
        println!(
            "run {run}: {} tasks, {} workers: {rate:.0} tasks/s, peak RSS {} MiB",
            args.tasks,
            args.workers,
            peak_rss_kib().map_or("?".into(), |kib| format!("{:.1}", kib as f64 / 1024.0))
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "median of {}: {median:.0} tasks/s; peak RSS {} MiB (hub and {} clients in one process); data on {}",
        rates.len(),
        peak_rss_kib().map_or("?".into(), |kib| format!("{:.1}", kib as f64 / 1024.0)),
        args.workers + 1,
        filesystem_of(&std::env::temp_dir()),
    );
    Ok(())
}

/// The filesystem type holding `path`, from `/proc/mounts` (tmpfs makes SQLite faster).
fn filesystem_of(path: &Path) -> String {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "?".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, mount, kind) = (fields.next()?, fields.next()?, fields.next()?);
            path.starts_with(mount)
                .then(|| (mount.len(), kind.to_string()))
        })
        .max()
        .map_or("?".into(), |(_, kind)| kind)
}
